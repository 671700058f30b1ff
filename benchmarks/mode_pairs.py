#!/usr/bin/env python3
"""Which minor/major probe pairs fail, and does a struck, decaying note hide the mode from a model?

    python benchmarks/mode_pairs.py MODEL [MODEL ...] [--probes DIR ...] [--decay 0.3 0.1 0.05] [--json]

For each model and each mode pair of each probe suite (default: the committed ``probes/``; add
``--probes cache/probes-validation`` for the validation suite, ``scripts/render_probes.py``): whether
the pair is right (happy and valence up, sad down from minor to major) and how far minorness
falls. With ``--effects``, why, in level-1 terms: each checked emotion's change from minor to major
split into its mid-levels' effect changes (weight x mid-level change), the largest three printed
(session 23: the validation pairs that fail, fail on valence, which barely reads minorness). With
``--decay``, the same drop again with both clips' spectrograms under one percussive envelope
(``twolevel.augment.percussive_envelope``: struck every eighth note of the pair's tempo, dying away
with each time constant in seconds), which turns sustained tones into marimba-like ones. The summary
counts, per pair, the models that get it right.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twolevel.augment import percussive_envelope  # noqa: E402
from twolevel.checkpoint import default_model_path  # noqa: E402
from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES  # noqa: E402
from twolevel.predict import TwoLevelModel  # noqa: E402
from twolevel.probes import load_probes  # noqa: E402
from twolevel.training import cached_spectrograms, predict_spectrograms  # noqa: E402


def pair_rows(model: TwoLevelModel, probe_dir, decays) -> list[dict]:
    """One row per mode pair of ``probe_dir``: instrument, right, minorness drop (minor - major),
    and the drop under each decay time constant."""
    minorness = MIDLEVEL_NAMES.index("minorness")
    network = model.network
    rows = []
    for pair in load_probes(probe_dir):
        if pair["concept"] != "mode":
            continue
        # right or wrong exactly as the probe suite scores it (the model's own predict on the audio)
        a, b = (model.predict(pair[k]) for k in ("path_a", "path_b"))
        change = b.emotion_vector - a.emotion_vector
        right = all(sign * change[EMOTION_NAMES.index(e)] > 0 for e, sign in pair["higher"].items())
        row = {"instrument": pair["instrument"], "right": bool(right),
               "minorness_drop": float(a.midlevel_vector[minorness] - b.midlevel_vector[minorness]),
               # level 1: each checked emotion's change, minor -> major, per mid-level (weight x change)
               "effect_changes": {e: dict(zip(MIDLEVEL_NAMES, map(float, b.effects.contributions[i]
                                                                     - a.effects.contributions[i])))
                                  for e in pair["higher"] for i in [EMOTION_NAMES.index(e)]}}
        # the spectrograms only where an envelope needs them
        specs = [torch.from_numpy(s) for s in cached_spectrograms([pair["path_a"], pair["path_b"]])] if decays else []
        eighth = 30.0 / pair["bpm"]["a"]  # seconds per eighth note
        for decay in decays:
            struck = [percussive_envelope(s, eighth, decay, 0.0).numpy() for s in specs]
            m = predict_spectrograms(network, struck)[0]
            row[f"drop_decay_{decay:g}"] = float(m[0, minorness] - m[1, minorness])
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="checkpoints (default: the shipped model)")
    ap.add_argument("--probes", action="append", default=None, help="probe folder(s) (default: probes/)")
    ap.add_argument("--decay", type=float, nargs="*", default=[], help="percussive decay time constants, s")
    ap.add_argument("--effects", action="store_true",
                    help="print each checked emotion's change split into its mid-levels' effect changes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    suites = args.probes or [None]
    out = {}
    for path in args.models or [str(default_model_path())]:
        model = TwoLevelModel.load(path, device="cpu")
        out[path] = {str(d or "probes"): pair_rows(model, d, args.decay) for d in suites}
        if not args.json:
            for suite, rows in out[path].items():
                print(f"{path} [{suite}]: {sum(r['right'] for r in rows)} of {len(rows)} right")
                for r in rows:
                    decays = "  ".join(f"decay {d:g} s {r[f'drop_decay_{d:g}']:+.3f}" for d in args.decay)
                    print(f"  {r['instrument']:15s} {'right' if r['right'] else 'WRONG'}  minorness drop "
                          f"{r['minorness_drop']:+.3f}  {decays}")
                    if args.effects:
                        for emotion, parts in r["effect_changes"].items():
                            top = sorted(parts.items(), key=lambda kv: -abs(kv[1]))[:3]
                            print(f"      {emotion:<8} {sum(parts.values()):+.4f} = "
                                  + "  ".join(f"{name} {value:+.4f}" for name, value in top) + "  ...")
    if args.json:
        print(json.dumps(out, indent=1))
    elif len(out) > 1:
        print("per pair, models right:")
        for suite in out[next(iter(out))]:
            rows = [out[m][suite] for m in out]
            for i, first in enumerate(rows[0]):
                n_right = sum(r[i]["right"] for r in rows)
                falls = sum(r[i]["minorness_drop"] > 0 for r in rows)
                print(f"  [{suite}] {first['instrument']:15s} right in {n_right} of {len(rows)}; "
                      f"minorness falls in {falls} (median {np.median([r[i]['minorness_drop'] for r in rows]):+.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
