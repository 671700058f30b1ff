#!/usr/bin/env python3
"""Does a mode contrast on the emotion layer (level 1) fix the minor/major probe pairs?

The fold models' layers are refitted as the shipped recipe fits them (least squares on the fold's
non-test clips, shrunk 0.004 towards the trained layer, which is recovered where a run kept its
fitted layer), once as they are and once with a
:class:`~twolevel.emotion_layer.LayerContrast` of mode twins: :func:`~twolevel.augment.mode_pair`
windows (the third and sixth degrees swapped) of the same non-test clips, whose major twin must
raise happy and valence and lower sad (:func:`~twolevel.emotion_layer.mode_contrast`). Each fold
model's test clips are scored both ways; "twins right" is the share of the fit clips' twins whose
three emotion changes all have the asked sign under the layer.

Usage::

    python benchmarks/layer_mode_contrast.py DATA runs/distill/p0/avg/s9 ... --state last [--weight 1] [--json]
    python benchmarks/layer_mode_contrast.py DATA --final twolevel/assets/twolevel-default.pt --out runs/m.pt

``--final`` refits a final model's layer on all clips with the contrast (its own shrinkage and
prior) and writes it, for the probes (``benchmarks/concept_probes.py``). Results of session 18:
``benchmarks/results/layer-mode-contrast.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twolevel.augment import mode_pair  # noqa: E402
from twolevel.checkpoint import load_checkpoint, save_checkpoint, weights_digest  # noqa: E402
from twolevel.data import load_soundtracks  # noqa: E402
from twolevel.emotion_layer import least_squares_layer, mode_contrast, shrinkage_prior  # noqa: E402
from twolevel.labels import EMOTION_NAMES  # noqa: E402
from twolevel.signal import WINDOW_FRAMES  # noqa: E402
from twolevel.training import pearson, predict_spectrograms, soundtracks_training_set  # noqa: E402


def mode_twins(specs, draws: int = 4, seed: int = 0):
    """``(owner (pairs,), minor, major)``: up to ``draws`` mode twins per clip (10 s windows
    ``(frames, bands)``, un-normalised), clips without a clear key giving none."""
    gen = torch.Generator().manual_seed(seed)
    owner, minor, major = [], [], []
    for i, spec in enumerate(specs):
        for _ in range(draws):
            pair = mode_pair(torch.from_numpy(np.asarray(spec)), gen, WINDOW_FRAMES)
            if pair is not None:
                owner.append(i)
                minor.append(pair[0].numpy())
                major.append(pair[1].numpy())
    return np.asarray(owner), minor, major


def fitted_prior(model, mids, ratings, shrinkage_of_trained: float) -> tuple[np.ndarray, float]:
    """``(prior, shrinkage)`` of the model's layer: the layer it was pulled towards, and how hard; a
    layer that was trained, not fitted, is the prior itself, at ``shrinkage_of_trained``."""
    weight = model.emotion.weight.detach().double().numpy()
    bias = model.emotion.bias.detach().double().numpy()
    meta = model.metadata
    cfg = meta.get("config", {})
    if cfg.get("emotion_layer", "trained") != "trained":  # trained, then fitted: shrinkage from the run
        shrinkage = cfg["emotion_layer_shrinkage"]
    elif meta.get("emotion_layer") == "least-squares":  # merged trunks, fitted by `twolevel-cli merge`
        shrinkage = meta["emotion_layer_shrinkage"]
    else:
        return weight, shrinkage_of_trained
    return (shrinkage_prior(mids, ratings, weight, bias, shrinkage), shrinkage) if shrinkage else (weight, 0.0)


def layer_with_and_without(model, data, fit_idx, twins, weight: float, margin: float, shrinkage: float):
    """Both fits on the clips ``fit_idx``: ``{"": (w, b), "contrast": (w, b)}``, and the contrast."""
    owner, minor, major = twins
    mids = predict_spectrograms(model, data.specs)[0]
    keep = np.isin(owner, fit_idx)
    low = predict_spectrograms(model, [m for m, k in zip(minor, keep) if k])[0]
    high = predict_spectrograms(model, [m for m, k in zip(major, keep) if k])[0]
    contrast = mode_contrast(low, high, EMOTION_NAMES, weight, margin)
    prior, shrinkage = fitted_prior(model, mids[fit_idx], data.emotions[fit_idx], shrinkage)
    fits = {tag: least_squares_layer(mids[fit_idx], data.emotions[fit_idx], prior=prior, shrinkage=shrinkage,
                                     contrast=c) for tag, c in (("", None), ("contrast", contrast))}
    return mids, fits, contrast


def fold_row(model_path: Path, data, twins, weight: float, margin: float, shrinkage: float) -> dict:
    model = load_checkpoint(model_path, device="cpu")
    test = np.array([data.ids.index(i) for i in model.metadata["test_ids"]])
    fit_idx = np.setdiff1d(np.arange(len(data.ids)), test)
    mids, fits, contrast = layer_with_and_without(model, data, fit_idx, twins, weight, margin, shrinkage)
    row = {"model": str(model_path), "twins": len(contrast.deltas)}
    for tag, (w, b) in fits.items():
        r = pearson(mids[test] @ w.T + b, data.emotions[test])
        name = tag or "fit"
        row[name] = float(np.nanmean(r))
        row[name + "_sad"] = float(r[EMOTION_NAMES.index("sad")])
        row[name + "_twins_right"] = float(contrast.satisfied(w).mean())
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset_dir")
    ap.add_argument("models", nargs="*", type=Path, help="folders with fold<F>.pt (--save-fold-models)")
    ap.add_argument("--state", choices=("saved", "last"), default="saved")
    ap.add_argument("--weight", type=float, default=1.0, help="the contrast's weight against the MSE")
    ap.add_argument("--margin", type=float, default=0.01, help="emotion change asked of each twin (ratings/10)")
    ap.add_argument("--shrinkage", type=float, default=0.004,
                    help="for a model whose layer was trained, not fitted: the pull towards it (the shipped "
                         "recipe's 0.004); a fitted layer keeps its own")
    ap.add_argument("--draws", type=int, default=4, help="mode_pair draws per clip (seed 0)")
    ap.add_argument("--final", type=Path, help="refit this model's layer on all clips with the contrast")
    ap.add_argument("--out", type=Path, help="with --final: the checkpoint to write")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if bool(args.final) != bool(args.out) or (args.final and args.models):
        ap.error("give fold-model folders, or --final MODEL with --out PATH")
    torch.set_num_threads(1)
    data = soundtracks_training_set(load_soundtracks(args.dataset_dir), midlevel_targets="none")
    twins = mode_twins(data.specs, args.draws)
    if args.final:
        model = load_checkpoint(args.final, device="cpu")
        _, fits, contrast = layer_with_and_without(model, data, np.arange(len(data.ids)), twins, args.weight,
                                                   args.margin, args.shrinkage)
        w, b = fits["contrast"]
        state = {**model.state_dict(), "emotion.weight": torch.as_tensor(w, dtype=torch.float32),
                 "emotion.bias": torch.as_tensor(b, dtype=torch.float32)}
        model.load_state_dict(state)
        version = f"{args.final.stem}-modelayer{args.weight:g}-{weights_digest(model.state_dict())}"
        save_checkpoint(model, args.out, model_version=version,
                        metadata={**model.metadata, "emotion_layer_mode_contrast": args.weight})
        out = {"out": str(args.out), "version": version, "twins": len(contrast.deltas),
               "twins_right_before": float(contrast.satisfied(fits[""][0]).mean()),
               "twins_right_after": float(contrast.satisfied(w).mean())}
        before, after = out["twins_right_before"], out["twins_right_after"]
        print(json.dumps(out, indent=1) if args.json else
              f"wrote {args.out} ({version}): twins right {before:.3f} -> {after:.3f}")
        return 0
    rows = []
    for folder in args.models:
        for f in range(10):
            path = folder / (f"fold{f}-last.pt" if args.state == "last" else f"fold{f}.pt")
            if path.is_file():
                rows.append(fold_row(path, data, twins, args.weight, args.margin, args.shrinkage))
                if not args.json:
                    r = rows[-1]
                    print(f"{path}: {r['fit']:.4f} -> {r['contrast']:.4f}; twins right {r['fit_twins_right']:.3f} -> "
                          f"{r['contrast_twins_right']:.3f}", flush=True)
    if not rows:
        ap.error("no fold models found in the folders given")
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("model", "twins")}
    summary["folds"] = len(rows)
    if args.json:
        print(json.dumps({"weight": args.weight, "margin": args.margin, "folds": rows, "summary": summary}, indent=1))
    else:
        print(f"{len(rows)} fold models: {summary['fit']:.4f} -> {summary['contrast']:.4f} "
              f"(sad {summary['fit_sad']:.3f} -> {summary['contrast_sad']:.3f}); "
              f"twins right {summary['fit_twins_right']:.3f} -> {summary['contrast_twins_right']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
