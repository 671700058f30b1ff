"""Markdown table of cross-validation reports written by ``twolevel-cli train --folds K``.

    python benchmarks/cv_report.py runs/cv-w0.125.json runs/cv-w0.25.json
    python benchmarks/cv_report.py --pool runs/cv-*.json   # plus one row per configuration over all its seeds

Prints, per report: width, learning rate, loss scaling, seed (initialisation and folds), clips that train / validate per fold, epochs, folds finished, multiply-adds per 10 s window, mean +- sd over folds
of the test Pearson r of each emotion and of their average (for the best-validation state and
for the state after the last epoch, which is what a final model trained on all clips is), the mean epoch time and best epochs.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from twolevel.labels import EMOTION_NAMES
from twolevel.training import TrainConfig, summarise_cv


def _n_clips(res: dict) -> int:
    """Clips the report's folds partition (from the finished folds' test sets)."""
    return sum(len(f["test_ids"]) for f in res["folds"].values()) * res["k"] // max(len(res["folds"]), 1)


def _distillation(res: dict) -> list[str]:
    """``["distilled: K teachers, N windows"]`` for a distilled student's report, else ``[]``."""
    d = (res.get("extra_settings") or {}).get("distillation") or res.get("distillation")
    if not d:
        return []
    return [f"distilled: {len(d['teachers'])} teachers, {d.get('items') or 'all'} corpus windows"]


def rows(reports: list[dict]) -> list[str]:
    short = {"valence": "val", "energy": "ener", "tension": "tens", "anger": "ang", "fear": "fear",
             "happy": "hap", "sad": "sad", "tender": "tend"}
    out = ["| width | lr | loss | seed | train / val | epochs | folds | GMAC / 10 s | " + " | ".join(short[e] for e in EMOTION_NAMES)
           + " | **avg** | avg, last epoch | avg, weight average | mid-level r | s / epoch | best epochs |",
           "|---|---|---|---|---|---|---|---|" + "---|" * (len(EMOTION_NAMES) + 6)]
    for res in reports:
        s = summarise_cv(res)
        cfg = res["config"]
        extras = ([cfg.get("loss_scale", "raw")] + [f"{k} {cfg[k]:g}" for k in ("ema", "freq_shift", "gain_db", "time_mask",
                                                                          "modulation_weight", "rhythm_weight",
                                                                          "dissonance_weight", "mode_weight", "additivity_weight")
                                                    if cfg.get(k)]
                  + ([f"init {Path(cfg['init_from']).stem}"] if cfg.get("init_from") else [])
                  + ([f"descriptors {cfg['descriptors']}"] if cfg.get("descriptors", "v1") != "v1" else [])
                  + ([f"swa {cfg['swa_epochs']}"] if cfg.get("swa_epochs") else [])
                  + _distillation(res))
        seed = f"{cfg['seed']}" + (f" (folds {res['fold_seed']})" if res.get("fold_seed", cfg["seed"]) != cfg["seed"] else "")
        fold = next(iter(res["folds"].values()), {})
        n = res.get("n_clips") or _n_clips(res)
        k = res.get("k_per_seed", res["k"])
        inner = res.get("inner_folds", k - 1)
        n_val = fold.get("n_val", (n - n // k) // inner)
        sizes = f"{n - n // k - n_val} / {n_val}"
        if not s.get("n_folds"):
            out.append(f"| {cfg['width']:g} | {cfg['lr']:g} | {', '.join(extras)} | {seed} | {sizes} | {cfg['epochs']} | 0/{res['k']} | {res['multiply_adds'] / 1e9:.3f} | (no fold finished) |")
            continue
        one = s["n_folds"] == 1
        cells = [f"{s[e]['mean']:.2f}" + ("" if one else f" ± {s[e]['sd']:.2f}") for e in EMOTION_NAMES]
        avg = s["average"]
        last = s.get("average_last")
        last_cell = "" if last is None else f"{last['mean']:.3f}" + ("" if one else f" ± {last['sd']:.3f}")
        swa = s.get("average_swa")
        swa_cell = "" if swa is None else f"{swa['mean']:.3f}" + ("" if one else f" ± {swa['sd']:.3f}")
        out.append(f"| {cfg['width']:g} | {cfg['lr']:g} | {', '.join(extras)} | {seed} | {sizes} | {cfg['epochs']} | {s['n_folds']}/{res['k']} | {res['multiply_adds'] / 1e9:.3f} | "
                   + " | ".join(cells) + f" | **{avg['mean']:.3f}" + ("" if one else f" ± {avg['sd']:.3f}") + f"** | {last_cell} | {swa_cell} | "
                   f"{s['midlevel_average']['mean']:.2f} | {s['epoch_seconds']:.1f} | "
                   f"{', '.join(map(str, s['best_epochs']))} |")
    return out


def pooled(reports: list[dict]) -> list[dict]:
    """One report per configuration run with several seeds: the folds of all its seeds together."""
    groups: dict[str, list[dict]] = {}
    for res in reports:
        # fields a report predates take their defaults, so that old and new reports of one recipe pool
        config = {**TrainConfig().to_dict(), **res["config"]}
        key = json.dumps({**config, "seed": None, "k": res["k"], "inner": res.get("inner_folds"),
                          "extra": _distillation(res)}, sort_keys=True)  # a distilled student is another recipe
        groups.setdefault(key, []).append(res)
    out = []
    for reports in groups.values():
        if len(reports) < 2:
            continue
        first = reports[0]
        folds = {f"{r['config']['seed']}:{name}": fold for r in reports for name, fold in r["folds"].items()}
        n_clips = _n_clips(first)
        seeds = "+".join(str(r["config"]["seed"]) for r in reports)
        out.append({**first, "config": {**first["config"], "seed": seeds}, "k": sum(r["k"] for r in reports),
                    "folds": folds, "n_clips": n_clips, "k_per_seed": first["k"]})
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Markdown table of cross-validation reports (twolevel-cli train --folds K)")
    parser.add_argument("reports", nargs="+", help="JSON reports written by twolevel-cli train --folds K --out FILE")
    parser.add_argument("--pool", action="store_true", help="add one row per configuration over all its seeds")
    args = parser.parse_args()
    reports = []
    for name in args.reports:
        try:
            reports.append(json.loads(Path(name).read_text()))
        except (OSError, ValueError) as err:
            parser.error(f"{name}: {err}")
    print("\n".join(rows(reports + (pooled(reports) if args.pool else []))))
