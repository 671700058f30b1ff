#!/usr/bin/env python3
"""Pre-train the trunk and mid-level head on a corpus's descriptor targets (twolevel/pretrain.py).

    python scripts/pretrain_corpus.py cache/debian-audio/corpus --out runs/pretrained-w0.125.pt
    twolevel-cli train ../shared/data/soundtracks-set1 --init-from runs/pretrained-w0.125.pt --out model.pt

The corpus comes from scripts/fetch_debian_audio.py. Loss: the variance-scaled mid-level MSE
only (corpus windows have no emotion ratings); AdamW, cosine schedule, last epoch kept.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--width", type=float, default=0.125)
    ap.add_argument("--lr", type=float, default=6e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--freq-shift", type=int, default=0)
    ap.add_argument("--log", type=Path, default=None, help="append one JSON line per epoch")
    args = ap.parse_args(argv)
    import torch

    from twolevel.pretrain import pretrain
    from twolevel.training import TrainConfig

    torch.set_num_threads(int(os.environ.get("TWOLEVEL_THREADS", "1")))
    cfg = TrainConfig(width=args.width, epochs=args.epochs, lr=args.lr, seed=args.seed, freq_shift=args.freq_shift)
    log = open(args.log, "a") if args.log else None

    def on_epoch(rec):
        if log is not None:
            log.write(json.dumps(rec) + "\n")
            log.flush()

    path = pretrain(args.corpus, cfg, args.out, progress=sys.stderr.isatty(), on_epoch=on_epoch)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
