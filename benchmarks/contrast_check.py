#!/usr/bin/env python3
"""Does a model's concept output respond to what a contrast teaches, or to how its pairs were made?

    python benchmarks/contrast_check.py MODEL [MODEL ...]                  # modulation (tonal stability)
    python benchmarks/contrast_check.py --contrast rhythm MODEL [MODEL ...]  # rhythm stability
    python benchmarks/contrast_check.py --contrast dissonance MODEL [MODEL ...]  # dissonance
    python benchmarks/contrast_check.py --contrast mode MODEL [MODEL ...]  # minorness
    python benchmarks/contrast_check.py --contrast dissonance --soundtracks DATA MODEL  # on real music

For each of the 12 probe pairs of the contrast's concept (probes/: a = less of the quality, b =
more: for tonal stability a far key every bar vs one key, for rhythm stability notes at random
times vs a steady grid, for dissonance consonant triads vs clusters, for minorness a tune in major
vs the same in minor), prints the output gap b - a, and the mean gap control - twin of 8
constructed pairs (twolevel/augment.py: modulation_pair, rhythm_pair, dissonance_pair, whose
clashing mix is the "control", or mode_pair, whose minor twin is) made from clip b and from clip
a. For the mode contrast the rebuilt twin is the major one on clip b and the minor one on clip a,
so a model that learned how the twin was rebuilt, not its mode, ranks one of the two columns
wrong. A model that learned the quality ranks the probe pairs right and the constructed pairs
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

from twolevel.augment import dissonance_pair, mode_pair, modulation_pair, rhythm_pair  # noqa: E402
from twolevel.checkpoint import load_checkpoint  # noqa: E402
from twolevel.probes import load_probes  # noqa: E402
from twolevel.signal import WINDOW_FRAMES  # noqa: E402
from twolevel.training import (DISSONANCE, MINORNESS, RHYTHM_STABILITY, TONAL_STABILITY,  # noqa: E402
                               cached_spectrograms, crop, predict_spectrograms)

SYNTHETIC_PAIRS = 8
#: contrast -> (probe concept, mid-level index, pair maker, what clip a and clip b are)
CONTRASTS = {
    "modulation": ("tonal_stability", TONAL_STABILITY, modulation_pair, ("modulating", "one key")),
    "rhythm": ("rhythm_stability", RHYTHM_STABILITY, rhythm_pair, ("loose", "steady")),
    "dissonance": ("dissonance", DISSONANCE, dissonance_pair, ("consonant", "dissonant")),
    "mode": ("minorness", MINORNESS, mode_pair, ("major", "minor")),
}


def _pairs(make_pair, spec: torch.Tensor, gen: torch.Generator, n: int) -> list:
    """Up to ``n`` constructed pairs from one clip (:func:`~twolevel.augment.mode_pair` gives None
    for a crop without a clear key)."""
    made = (make_pair(spec, gen, WINDOW_FRAMES) for _ in range(n))
    return [p for p in made if p is not None]


def _gaps(model, index: int, pairs: list) -> np.ndarray:
    """Output ``index`` of each pair's control minus its twin's."""
    if not pairs:
        return np.zeros(0)
    # each window is one 10 s clip to predict_spectrograms, so its output is that window's
    out = predict_spectrograms(model, [w.numpy() for pair in pairs for w in pair])[0][:, index]
    return out[0::2] - out[1::2]


def check(path: str | None, contrast: str = "modulation") -> list[tuple[str, float, float, float]]:
    """``(pair, probe gap, constructed gap on b, constructed gap on a)`` per probe pair of the concept."""
    concept, index, make_pair, _ = CONTRASTS[contrast]
    model = load_checkpoint(path, device="cpu")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for pair in (p for p in load_probes() if p["concept"] == concept):
        spec_a, spec_b = (torch.from_numpy(s) for s in cached_spectrograms([pair["path_a"], pair["path_b"]]))
        made_b, made_a = (_pairs(make_pair, s, gen, SYNTHETIC_PAIRS) for s in (spec_b, spec_a))
        probe = predict_spectrograms(model, [crop(spec_a, 0).numpy(), crop(spec_b, 0).numpy()])[0][:, index]
        on_b, on_a = _gaps(model, index, made_b), _gaps(model, index, made_a)
        rows.append((pair["a"].rsplit("-", 1)[0], float(probe[1] - probe[0]),
                     float(on_b.mean()) if len(on_b) else float("nan"), float(on_a.mean()) if len(on_a) else float("nan")))
    return rows


def check_soundtracks(path: str | None, dataset_dir: str, contrast: str, clips: int = 20, per_clip: int = 3
                      ) -> np.ndarray:
    """Gap control - twin of the concept's output for constructed pairs from Soundtracks clips."""
    from twolevel.data import load_soundtracks

    _, index, make_pair, _ = CONTRASTS[contrast]
    model = load_checkpoint(path, device="cpu")
    paths = load_soundtracks(dataset_dir).audio_paths[::15][:clips]
    gen = torch.Generator().manual_seed(0)
    made = [p for s in cached_spectrograms(paths) for p in _pairs(make_pair, torch.from_numpy(s), gen, per_clip)]
    return _gaps(model, index, made)


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
