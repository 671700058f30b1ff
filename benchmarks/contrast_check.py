#!/usr/bin/env python3
"""Does a model's concept output respond to what a contrast teaches, or to how its pairs were made?

    python benchmarks/contrast_check.py MODEL [MODEL ...]                  # modulation (tonal stability)
    python benchmarks/contrast_check.py --contrast rhythm MODEL [MODEL ...]  # rhythm stability
    python benchmarks/contrast_check.py --contrast dissonance MODEL [MODEL ...]  # dissonance
    python benchmarks/contrast_check.py --contrast dissonance --soundtracks DATA MODEL  # on real music

For each of the 12 probe pairs of the contrast's concept (probes/: a = less of the quality, b =
more: for tonal stability a far key every bar vs one key, for rhythm stability notes at random
times vs a steady grid, for dissonance consonant triads vs clusters), prints the output gap b - a,
and the mean gap control - twin of 8 constructed pairs (twolevel/augment.py: modulation_pair,
rhythm_pair or dissonance_pair, whose clashing mix is the "control") made from clip b and
from clip a. A model that learned the quality ranks the probe pairs right and the constructed pairs
of clip b right. A model that learned a construction artifact ranks the constructed pairs right
by a wide margin, those of clip a (which already lacks the quality) just as wide, and the probes
at chance (MODEL_CARD.md, "Tonal stability by contrast").

With ``--soundtracks DATA`` it makes 3 constructed pairs from each of 20 Soundtracks clips (every
15th) instead, and counts how many the model ranks right: whether it applies the construction's
answer to real music.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twolevel.augment import dissonance_pair, modulation_pair, rhythm_pair  # noqa: E402
from twolevel.checkpoint import load_checkpoint  # noqa: E402
from twolevel.probes import load_probes  # noqa: E402
from twolevel.signal import WINDOW_FRAMES  # noqa: E402
from twolevel.training import (DISSONANCE, RHYTHM_STABILITY, TONAL_STABILITY, cached_spectrograms, crop,  # noqa: E402
                               predict_spectrograms)

SYNTHETIC_PAIRS = 8
#: contrast -> (probe concept, mid-level index, pair maker, what clip a and clip b are)
CONTRASTS = {
    "modulation": ("tonal_stability", TONAL_STABILITY, modulation_pair, ("modulating", "one key")),
    "rhythm": ("rhythm_stability", RHYTHM_STABILITY, rhythm_pair, ("loose", "steady")),
    "dissonance": ("dissonance", DISSONANCE, dissonance_pair, ("consonant", "dissonant")),
}


def check(path: str | None, contrast: str = "modulation") -> list[tuple[str, float, float, float]]:
    """``(pair, probe gap, constructed gap on b, constructed gap on a)`` per probe pair of the concept."""
    concept, index, make_pair, _ = CONTRASTS[contrast]
    model = load_checkpoint(path, device="cpu")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for pair in (p for p in load_probes() if p["concept"] == concept):
        spec_a, spec_b = (torch.from_numpy(s) for s in cached_spectrograms([pair["path_a"], pair["path_b"]]))
        made = [make_pair(s, gen, WINDOW_FRAMES) for s in (spec_b, spec_a) for _ in range(SYNTHETIC_PAIRS)]
        windows = [crop(spec_a, 0), crop(spec_b, 0)] + [c for c, _ in made] + [t for _, t in made]
        # each window is one 10 s clip to predict_spectrograms, so its output is that window's
        out = predict_spectrograms(model, [w.numpy() for w in windows])[0][:, index]
        n = 2 * SYNTHETIC_PAIRS
        gaps = out[2:2 + n] - out[2 + n:]
        rows.append((pair["a"].rsplit("-", 1)[0], float(out[1] - out[0]), float(gaps[:SYNTHETIC_PAIRS].mean()),
                     float(gaps[SYNTHETIC_PAIRS:].mean())))
    return rows


def check_soundtracks(path: str | None, dataset_dir: str, contrast: str, clips: int = 20, per_clip: int = 3
                      ) -> np.ndarray:
    """Gap control - twin of the concept's output for constructed pairs from Soundtracks clips."""
    from twolevel.data import load_soundtracks

    _, index, make_pair, _ = CONTRASTS[contrast]
    model = load_checkpoint(path, device="cpu")
    paths = load_soundtracks(dataset_dir).audio_paths[::15][:clips]
    gen = torch.Generator().manual_seed(0)
    made = [make_pair(torch.from_numpy(s), gen, WINDOW_FRAMES) for s in cached_spectrograms(paths)
            for _ in range(per_clip)]
    out = predict_spectrograms(model, [w.numpy() for pair in made for w in pair])[0][:, index]
    return out[0::2] - out[1::2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="checkpoints (default: the shipped model)")
    ap.add_argument("--contrast", choices=sorted(CONTRASTS), default="modulation")
    ap.add_argument("--soundtracks", metavar="DATA", default=None,
                    help="constructed pairs from the Soundtracks clips in DATA instead of the probes")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    a_name, b_name = CONTRASTS[args.contrast][3]
    for path in args.models or [None]:
        if args.soundtracks:
            gaps = check_soundtracks(path, args.soundtracks, args.contrast)
            print(f"{path or 'shipped model'}: {int((gaps > 0).sum())}/{len(gaps)} constructed pairs from "
                  f"Soundtracks clips ranked right, median gap {np.median(gaps):+.3f}")
            continue
        rows = check(path, args.contrast)
        print(f"{path or 'shipped model'}\n| pair | probe: {b_name} - {a_name} | constructed, {b_name} clip "
              f"| constructed, {a_name} clip |")
        print("|---|---|---|---|")
        for name, probe, on_b, on_a in rows:
            print(f"| {name} | {probe:+.3f} | {on_b:+.3f} | {on_a:+.3f} |")
        print(f"right: probes {sum(r[1] > 0 for r in rows)}/{len(rows)}, constructed on the {b_name} clips "
              f"{sum(r[2] > 0 for r in rows)}/{len(rows)}; median gaps {np.median([r[1] for r in rows]):+.3f}, "
              f"{np.median([r[2] for r in rows]):+.3f}, {np.median([r[3] for r in rows]):+.3f}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
