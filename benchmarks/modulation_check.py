#!/usr/bin/env python3
"""Does a model's tonal-stability output respond to key changes, or to how they were made?

    python benchmarks/modulation_check.py MODEL [MODEL ...]

For each of the 12 tonal-stability probe pairs (probes/: a = a far key every bar, b = one key),
prints the output gap b - a, and the mean gap control - modulated of 8 synthetic modulation
pairs (twolevel/augment.py, modulation_pair) spliced from the one-key clip b and from the
modulating clip a. A model that learned keys ranks the probe pairs right and the synthetic pairs
of clip b right. A model that learned a splicing artifact ranks the synthetic pairs right by a
wide margin, those of the already-modulating clip a just as wide, and the probes at chance
(MODEL_CARD.md, "Tonal stability by contrast").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twolevel.augment import modulation_pair  # noqa: E402
from twolevel.checkpoint import load_checkpoint  # noqa: E402
from twolevel.probes import load_probes  # noqa: E402
from twolevel.signal import WINDOW_FRAMES  # noqa: E402
from twolevel.training import TONAL_STABILITY, cached_spectrograms, crop, predict_spectrograms  # noqa: E402

SYNTHETIC_PAIRS = 8


def check(path: str | None) -> list[tuple[str, float, float, float]]:
    """``(pair, probe gap, synthetic gap on b, synthetic gap on a)`` per tonal-stability probe pair."""
    model = load_checkpoint(path, device="cpu")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for pair in (p for p in load_probes() if p["concept"] == "tonal_stability"):
        spec_a, spec_b = (torch.from_numpy(s) for s in cached_spectrograms([pair["path_a"], pair["path_b"]]))
        synthetic = [modulation_pair(s, gen, WINDOW_FRAMES) for s in (spec_b, spec_a) for _ in range(SYNTHETIC_PAIRS)]
        windows = [crop(spec_a, 0), crop(spec_b, 0)] + [c for c, _ in synthetic] + [m for _, m in synthetic]
        # each window is one 10 s clip to predict_spectrograms, so its output is that window's
        out = predict_spectrograms(model, [w.numpy() for w in windows])[0][:, TONAL_STABILITY]
        n = 2 * SYNTHETIC_PAIRS
        gaps = out[2:2 + n] - out[2 + n:]
        rows.append((pair["a"].rsplit("-", 1)[0], float(out[1] - out[0]), float(gaps[:SYNTHETIC_PAIRS].mean()),
                     float(gaps[SYNTHETIC_PAIRS:].mean())))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="checkpoints (default: the shipped model)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for path in args.models or [None]:
        rows = check(path)
        print(f"{path or 'shipped model'}\n| pair | probe: one key - modulating | synthetic, one-key clip | synthetic, modulating clip |")
        print("|---|---|---|---|")
        for name, probe, on_b, on_a in rows:
            print(f"| {name} | {probe:+.3f} | {on_b:+.3f} | {on_a:+.3f} |")
        print(f"right: probes {sum(r[1] > 0 for r in rows)}/12, synthetic on the one-key clips "
              f"{sum(r[2] > 0 for r in rows)}/12; median gaps {np.median([r[1] for r in rows]):+.3f}, "
              f"{np.median([r[2] for r in rows]):+.3f}, {np.median([r[3] for r in rows]):+.3f}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
