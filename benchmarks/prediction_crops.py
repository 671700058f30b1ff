"""Do more 10 s crops per clip at prediction time raise cross-validated accuracy?

Training draws a random 10 s crop of a clip each time; prediction (``predict``, ``evaluate`` and
the cross-validation score) averages the clip's consecutive windows, two for most Soundtracks
excerpts (about 16 s). This scores each fold model saved by ``twolevel-cli train --folds 5
--save-fold-models DIR`` on its own test clips with windows every ``--hops`` frames instead (31.3
frames per second; ``consecutive`` is the default), and prints the mean test r over the 8 emotions
and each hop's paired difference to the consecutive windows.

Usage::

    python benchmarks/prediction_crops.py ../shared/data/soundtracks-set1 runs/distill/p0/m0 runs/distill/p0/m1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from twolevel.checkpoint import load_checkpoint
from twolevel.data import load_soundtracks
from twolevel.training import pearson, predict_spectrograms, soundtracks_training_set


def parse_hop(text: str) -> int | None:
    return None if text == "consecutive" else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset_dir")
    parser.add_argument("members", nargs="+", type=Path, help="folders with fold<F>.pt")
    parser.add_argument("--hops", default="consecutive,156,62,31,16",
                        help="comma-separated window hops in frames ('consecutive': one window)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    hops = [parse_hop(h) for h in args.hops.split(",")]
    data = soundtracks_training_set(load_soundtracks(args.dataset_dir))
    rows = []
    for member in args.members:
        for path in sorted(member.glob("fold*.pt")):
            model = load_checkpoint(path, device="cpu")  # its metadata lists the fold's test clips
            index = [data.ids.index(i) for i in model.metadata["test_ids"]]
            specs, truth = [data.specs[i] for i in index], data.emotions[index]
            scores = [float(np.nanmean(pearson(predict_spectrograms(model, specs, hop_frames=h)[1], truth)))
                      for h in hops]
            rows.append({"model": str(path), "r": scores})
    r = np.array([row["r"] for row in rows])
    summary = {"hops": args.hops.split(","), "mean_r": r.mean(axis=0).tolist(),
               "difference": (r - r[:, :1]).mean(axis=0).tolist(),
               "better": (r > r[:, :1]).sum(axis=0).tolist(), "n_models": len(rows)}
    if args.json:
        print(json.dumps({"models": rows, "summary": summary}, indent=1))
        return
    print("model | " + " | ".join(summary["hops"]))
    for row in rows:
        print(f"{row['model']} | " + " | ".join(f"{v:.4f}" for v in row["r"]))
    print("mean | " + " | ".join(f"{v:.4f}" for v in summary["mean_r"]))
    print("minus consecutive | " + " | ".join(f"{v:+.4f}" for v in summary["difference"]))
    print(f"better, of {len(rows)} | " + " | ".join(str(b) for b in summary["better"]))


if __name__ == "__main__":
    main()
