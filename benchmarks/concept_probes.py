#!/usr/bin/env python3
"""Per-concept table of the probe suite for one or more models.

    python benchmarks/concept_probes.py                         # the shipped model
    python benchmarks/concept_probes.py runs/a.pt runs/b.pt --json
    python benchmarks/concept_probes.py --ensemble runs/a.pt runs/b.pt runs/c.pt   # their mean outputs
    python benchmarks/concept_probes.py runs/s*.pt --probes DIR --per-pair minorness  # which pairs are hard

For each of the 7 mid-levels (12 pairs each) and the emotion pairs (minor/major, slow/fast),
how many rendered pairs the model orders right (twolevel/probes.py); goal: >= 11 of 12 per
mid-level and every emotion pair.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twolevel.probes import format_probe_table, run_probes  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="checkpoints (default: the shipped model)")
    ap.add_argument("--probes", type=Path, default=None, help="probe folder (default: probes/)")
    ap.add_argument("--descriptors", action="store_true",
                    help="score the raw descriptor targets (twolevel/targets.py) instead of a model")
    ap.add_argument("--tonality", action="store_true",
                    help="score the sharper descriptors of twolevel/tonality.py on their three concepts")
    ap.add_argument("--ensemble", action="store_true",
                    help="score the models as one ensemble: the mean of their outputs for each clip (each "
                         "model alone is scored too)")
    ap.add_argument("--per-pair", metavar="CONCEPT", default=None,
                    help="also, for that concept, each pair across the models: how many order it right, the "
                         "median margin and what the pair is, hardest first")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = {}
    if args.tonality:
        from twolevel.probes import tonality_outputs
        from twolevel.tonality import TONALITY_DESCRIPTORS

        results = run_probes(tonality_outputs, args.probes, kinds=("midlevel",), concepts=set(TONALITY_DESCRIPTORS))
        print(json.dumps({"tonality": [r.as_dict() for r in results]}, indent=1) if args.json
              else "tonality descriptors\n" + format_probe_table(results))
        return 0
    if args.descriptors:
        from twolevel.probes import descriptor_outputs

        results = run_probes(descriptor_outputs, args.probes, kinds=("midlevel",))
        print(json.dumps({"descriptors": [r.as_dict() for r in results]}, indent=1) if args.json
              else "descriptor targets\n" + format_probe_table(results))
        return 0
    from functools import lru_cache

    from twolevel.errors import CheckpointError, OptionError
    from twolevel.predict import TwoLevelModel
    from twolevel.probes import format_pair_table, load_probes, mean_outputs, pair_agreement, prediction_outputs

    pairs = []  # --per-pair: that concept's pairs, checked before any model is scored
    if args.per_pair:
        try:
            suite = load_probes(args.probes)
        except OptionError as err:
            sys.exit(f"concept_probes: {err}")
        pairs = [p for p in suite if p["concept"] == args.per_pair]
        if not pairs:
            sys.exit(f"concept_probes: --per-pair {args.per_pair}: the suite has no such concept; it has "
                     f"{sorted({p['concept'] for p in suite})}")

    scorers = []  # per model: clip path -> its outputs, cached for the ensemble
    for path in args.models or [None]:
        try:
            model = TwoLevelModel.load(path)
        except CheckpointError as err:  # a missing or unreadable model: say so, not a traceback
            sys.exit(f"concept_probes: {err}")
        scored = lru_cache(maxsize=None)(lambda clip, model=model: prediction_outputs(model.predict(clip)))
        scorers.append(scored)
        results = run_probes(scored, args.probes)
        out[model.model_version] = [r.as_dict() for r in results]
        if not args.json:
            print(f"model {model.model_version}")
            print(format_probe_table(results))
            print()
    if args.ensemble:
        results = run_probes(mean_outputs(scorers), args.probes)
        out["ensemble"] = [r.as_dict() for r in results]
        if not args.json:
            print(f"ensemble of {len(scorers)} models (mean outputs)")
            print(format_probe_table(results))
    if args.per_pair:
        margins = [[r for r in results if r["concept"] == args.per_pair][0]["margins"]
                   for name, results in out.items() if name != "ensemble"]
        if args.json:
            out["per_pair"] = {"concept": args.per_pair, "pairs": pair_agreement(margins, pairs)}
        else:
            print(f"\n{args.per_pair}: each pair across {len(margins)} models")
            print(format_pair_table(margins, pairs))
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
