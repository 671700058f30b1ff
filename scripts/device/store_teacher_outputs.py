"""Teachers' outputs on the corpus windows, per fold, for a device run that cannot carry the teachers.

A student's cross-validation needs each fold's teachers (``twolevel/distill.py``: the 4 members'
fold models for the emotion targets, and optionally models whose mid-levels the windows learn).
Their fold models are too large to travel with the corpus and the data (scripts/device/README.md),
but all the student reads of them is their mean output on the 274 corpus windows: this script
computes exactly that here (``teacher_emotions`` / ``teacher_midlevels``, the same functions) and
writes it small; ``stored_teachers.py`` trains on the device with it.

    python scripts/device/store_teacher_outputs.py OUT.pkl --partitions 0 1 2 3 4 \
        --emotion 'runs/distill/p{P}/m{10*P}' ... --midlevel 'runs/distill/p{P}/avg/s{10*P+9}' --state last

A ``{...}`` in a folder pattern is an integer expression of the partition ``P`` (``m{10*P+1}``).
``--state last`` reads the folders' ``fold<F>-last.pt`` (the last epoch) for the mid-level teachers;
the emotion teachers are read as ``fold_teachers`` reads them (``fold<F>.pt``).
"""
from __future__ import annotations

import argparse
import hashlib
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from twolevel.checkpoint import load_checkpoint
from twolevel.corpus import corpus_training_set
from twolevel.distill import teacher_emotions, teacher_midlevels


def spec_key(spec) -> str:
    """A window's identity: the digest of its float32 bytes (the driver matches windows by it)."""
    return hashlib.sha1(np.ascontiguousarray(spec, dtype=np.float32).tobytes()).hexdigest()


def folder(pattern: str, p: int) -> Path:
    """``pattern`` for partition ``p``: each ``{expr}`` is an integer expression of ``P``."""
    return Path(re.sub(r"\{([^}]*)\}", lambda m: str(int(eval(m.group(1), {"__builtins__": {}}, {"P": p}))), pattern))


def fold_models(directory: Path, suffix: str) -> dict[frozenset, object]:
    """``directory``'s fold models (``fold<F><suffix>.pt``) keyed by their test clips."""
    out = {}
    for path in sorted(Path(directory).glob(f"fold[0-9]{suffix}.pt")):
        model = load_checkpoint(path, device="cpu")
        out[frozenset(model.metadata["test_ids"])] = model
    if not out:
        raise SystemExit(f"{directory}: no fold models fold<F>{suffix}.pt")
    return out


def stored_outputs(corpus, groups: dict[int, tuple[list[Path], list[Path]]], state: str = "last") -> dict:
    """What the student reads of its teachers: per partition and fold (keyed by the fold's test clips),
    the emotion teachers' mean emotions and the mid-level teachers' mean mid-levels on ``corpus``'s
    windows (``(n, 8)`` and ``(n, 7)`` float64, rows in ``corpus`` order, ``keys`` naming each row's
    window). ``groups``: partition -> (emotion teacher folders, mid-level teacher folders)."""
    stored = {"keys": [spec_key(s) for s in corpus.specs], "corpus_ids": list(corpus.ids), "partitions": {}}
    for p, (emotion_dirs, midlevel_dirs) in groups.items():
        emo = [fold_models(d, "") for d in emotion_dirs]
        mid = [fold_models(d, "-last" if state == "last" else "") for d in midlevel_dirs]
        folds = []
        for test in emo[0]:
            if any(test not in g for g in emo + mid):
                raise SystemExit(f"partition {p}: a folder lacks the fold whose test clips are {sorted(test)[:3]}...")
            entry = {"test_ids": sorted(test), "emotions": teacher_emotions([g[test] for g in emo], corpus.specs)}
            if mid:
                entry["midlevels"] = teacher_midlevels([g[test] for g in mid], corpus.specs)
            folds.append(entry)
        print(f"partition {p}: {len(folds)} folds stored", flush=True)
        stored["partitions"][p] = {"folds": folds, "emotion": list(map(str, emotion_dirs)),
                                   "midlevel": list(map(str, midlevel_dirs)), "state": state}
    return stored


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--corpus", default="cache/debian-audio/corpus")
    ap.add_argument("--descriptors", default="v3")
    ap.add_argument("--partitions", nargs="+", type=int, required=True)
    ap.add_argument("--emotion", nargs="+", required=True, help="folder patterns of the emotion teachers")
    ap.add_argument("--midlevel", nargs="*", default=[], help="folder patterns of the mid-level teachers")
    ap.add_argument("--state", choices=["best", "last"], default="last", help="the mid-level teachers' state")
    args = ap.parse_args()
    torch.set_num_threads(1)
    corpus = corpus_training_set(Path(args.corpus), descriptors=args.descriptors)
    groups = {p: ([folder(pat, p) for pat in args.emotion], [folder(pat, p) for pat in args.midlevel])
              for p in args.partitions}
    with open(args.out, "wb") as f:
        pickle.dump(stored_outputs(corpus, groups, args.state), f)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
