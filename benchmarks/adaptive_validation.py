"""Validate ``samples="auto"`` against 50,000-sample references, on real clips, for two targets.

For every clip (the three examples and six Soundtracks excerpts, first 10 s window) and seed, the
network's 15 outputs on the first 50,000 samples of that seed's sample matrix are computed once
and cached (``runs/adaptive/<clip>_<design>_s<seed>_50000.npz``); ``sample_switches`` is prefix-consistent,
so an ``auto`` run with seed s is exactly the start of that matrix, and the round loop
(:func:`twolevel.explain.adaptive.converge`, the code ``explain`` runs) is replayed on the cache.

Per clip and target (a mid-level and an emotion; an emotion traces its 3 strongest mid-levels):

* ``auto n``: samples ``auto`` used, per seed 0, 1, 2;
* ``J ref``: Jaccard of the auto selection (seed s) against a fixed 50,000-sample run with an
  independent seed (100), worst traced output, mean over the 3 seeds;
* ``J seeds``: mean pairwise Jaccard of the 3 seeds' auto selections (worst traced output);
* ``floor``: the same two comparisons for the fixed 50,000-sample selection itself (seed 0 vs the
  reference): how reproducible the paper's own selection is;
* ``12.5k plain``: the paper's rule on the first 12,500 samples vs the reference;
* ``12.5k projected``: the projection ``auto`` uses, on the first 12,500 samples, vs the reference
  (what ``auto_cap=12500`` would give).

Jaccard is over (segment, sign) pairs. Run (slow the first time: 4 x 50,000 passes per clip):
``nice -n 10 .venv/bin/python benchmarks/adaptive_validation.py [--agreement 0.85 0.9] [--design independent]``;
writes ``benchmarks/results/adaptive-<design>.md``. Every run (samples, reference, floor) uses the
one ``--design``.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch

from twolevel import example_path
from twolevel.effects import Effects
from twolevel.explain.adaptive import DEFAULT_AGREEMENT, DEFAULT_CAP, converge, projected_selection
from twolevel.explain.explainer import explain_window, minimum_samples
from twolevel.explain.sampling import run_perturbations, sample_switches
from twolevel.explain.segments import segment_spectrogram
from twolevel.explain.selection import jaccard, select_segments, signed_segments
from twolevel.explain.surrogate import fit_surrogate
from twolevel.labels import MIDLEVEL_NAMES, TARGET_NAMES
from twolevel.options import SAMPLING_DESIGNS
from twolevel.predict import TwoLevelModel
from twolevel.signal import WINDOW_FRAMES

ROOT = Path(__file__).resolve().parents[1]
SOUNDTRACKS = ROOT.parent / "shared" / "data" / "soundtracks-set1" / "audio"
CLIPS = [example_path("nebula.ogg"), example_path("enemy-unknown.ogg"), example_path("awakening.ogg")] + [
    SOUNDTRACKS / f"{n}.mp3" for n in ("001", "055", "103", "157", "205", "253")]
TARGETS = ("articulation", "energy")
SEEDS = (0, 1, 2)
REFERENCE_SEED = 100
CACHE = ROOT / "runs" / "adaptive"


def window_of(model: TwoLevelModel, clip: Path):
    audio = model.load_audio(clip)
    window, _ = explain_window(audio.samples, 0.0)
    with torch.inference_mode():
        spec = model.network.frontend(torch.from_numpy(window)[None])[0, 0, :WINDOW_FRAMES].numpy()
    return spec, segment_spectrogram(spec)


class CachedOutputs:
    """The network's outputs on the first rows of one seed's sample matrix, computed on demand and
    cached in ``runs/adaptive/<clip>_<design>_s<seed>_<rows>.npz`` (the longest cache found is reused)."""

    def __init__(self, model, clip: Path, seed: int, spec, seg, compute: bool, design: str):
        self.model, self.clip, self.seed, self.spec, self.seg, self.compute = model, clip, seed, spec, seg, compute
        self.switches = sample_switches(DEFAULT_CAP, seg.n_segments, seed, design)
        self.stem = f"{clip.stem}_{design}_s{seed}"
        found = sorted(CACHE.glob(f"{self.stem}_*.npz"), key=lambda f: int(f.stem.rsplit("_", 1)[1]))
        self.outputs = np.load(found[-1])["outputs"] if found else np.empty((0, len(TARGET_NAMES)))

    def upto(self, n: int) -> np.ndarray:
        if len(self.outputs) < n:
            if not self.compute:
                raise LookupError(f"{self.clip.stem} seed {self.seed}: {len(self.outputs)} cached rows, {n} needed")
            start = time.perf_counter()
            more = run_perturbations(self.model.network, self.spec, self.seg.labels,
                                     self.switches[len(self.outputs):n], 0.0, 256)
            rate = (n - len(self.outputs)) / (time.perf_counter() - start)
            self.outputs = np.concatenate([self.outputs, more])
            CACHE.mkdir(parents=True, exist_ok=True)
            for old in CACHE.glob(f"{self.stem}_*.npz"):
                old.unlink()
            np.savez(CACHE / f"{self.stem}_{n}.npz", outputs=self.outputs,
                     n_segments=self.seg.n_segments)
            print(f"  {self.clip.stem} seed {self.seed}: {n:,} rows ({rate:.0f} samples/s)", file=sys.stderr, flush=True)
        return self.outputs[:n]


def traced_for(model, target: str):
    weight = model.emotion_weight
    bias = model.emotion_bias

    def traced(row0: np.ndarray) -> list[str]:
        if target in MIDLEVEL_NAMES:
            return [target]
        effects = Effects.from_layer(weight, bias, row0[:len(MIDLEVEL_NAMES)])
        return [target] + [m for m, _ in effects.top_midlevels(target, 3)]
    return traced


def plain(fit, name: str) -> set:
    i = TARGET_NAMES.index(name)
    return signed_segments(*select_segments(fit.coef[i], fit.pvalues[i], 1e-6))


def evaluate(model, clip: Path, agreement: float, compute: bool, design: str) -> list[dict]:
    spec, seg = window_of(model, clip)
    k = seg.n_segments
    cache = {s: CachedOutputs(model, clip, s, spec, seg, compute, design) for s in SEEDS + (REFERENCE_SEED,)}
    try:
        ref_out, full_out = cache[REFERENCE_SEED].upto(DEFAULT_CAP), cache[0].upto(DEFAULT_CAP)
    except LookupError as err:
        print(f"  skipped: {err}", file=sys.stderr)
        return []
    switches = {s: c.switches for s, c in cache.items()}
    ref_fit = fit_surrogate(switches[REFERENCE_SEED], ref_out)
    full_fit = fit_surrogate(switches[0], full_out)
    part_fit = fit_surrogate(switches[0][:12_500], full_out[:12_500])
    rows = []
    for target in TARGETS:
        traced = traced_for(model, target)
        names = traced(ref_out[0])
        auto = {}
        for s in SEEDS:  # a seed whose outputs are not cached (with --no-compute) is left out
            try:
                result = converge(lambda a, b, s=s: cache[s].upto(b)[a:b], switches[s], traced, 1e-6, DEFAULT_CAP,
                                  minimum_samples(k), agreement)
            except LookupError as err:
                print(f"  seed left out: {err}", file=sys.stderr)
                continue
            auto[s] = (result.convergence.n_samples,
                       {n: signed_segments(*result.selections[n]) for n in result.selections})
        if not auto:
            return []
        ref = {n: plain(ref_fit, n) for n in names}
        j_ref = [min(jaccard(sel[n], ref[n]) for n in names if n in sel) for _, sel in auto.values()]
        j_seeds = [min(jaccard(auto[a][1][n], auto[b][1][n]) for n in names if n in auto[a][1] and n in auto[b][1])
                   for a, b in itertools.combinations(sorted(auto), 2)]
        floor = min(jaccard(plain(full_fit, n), ref[n]) for n in names)
        plain_part = min(jaccard(plain(part_fit, n), ref[n]) for n in names)
        projected_part = min(jaccard(signed_segments(*projected_selection(part_fit, TARGET_NAMES.index(n), 1e-6,
                                                                          DEFAULT_CAP)), ref[n]) for n in names)
        rows.append({"clip": clip.stem, "segments": k, "target": target, "outputs": names,
                     "seeds": sorted(auto), "auto_n": [auto[s][0] for s in sorted(auto)], "j_ref": float(np.mean(j_ref)),
                     "j_ref_min": min(j_ref), "j_seeds": float(np.mean(j_seeds)) if j_seeds else None,
                     "floor": floor, "plain_12500": plain_part, "projected_12500": projected_part,
                     "ref_size": {n: len(ref[n]) for n in names}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="validate samples='auto' against 50,000-sample references")
    parser.add_argument("--agreement", type=float, nargs="+", default=[DEFAULT_AGREEMENT])
    parser.add_argument("--no-compute", action="store_true", help="use cached outputs only; skip clips without")
    parser.add_argument("--clips", nargs="+", default=None, help="clip names (stems) to evaluate; default: all")
    parser.add_argument("--design", choices=SAMPLING_DESIGNS, default=SAMPLING_DESIGNS[0],
                        help="how every run draws its perturbations (default: %(default)s)")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/adaptive-<design>.md")
    args = parser.parse_args()
    args.out = args.out or str(ROOT / "benchmarks" / "results" / f"adaptive-{args.design}.md")
    torch.set_num_threads(1)
    model = TwoLevelModel.load(device="cpu")
    lines = [f"# samples='auto' vs 50,000-sample references, {args.design} design (model {model.model_version})", "",
             "Worst traced output per row (an emotion traces itself and its 3 strongest mid-levels); "
             "Jaccard over (segment, sign). `floor`: the fixed 50,000-sample selection (seed 0) vs the "
             "reference (seed 100), i.e. how reproducible the paper's own selection is. Generated by "
             "benchmarks/adaptive_validation.py.", ""]
    for agreement in args.agreement:
        rows, missing = [], []
        for clip in CLIPS:
            if not Path(clip).is_file() or (args.clips and Path(clip).stem not in args.clips):
                continue
            found = evaluate(model, Path(clip), agreement, not args.no_compute, args.design)
            rows += found
            if not found:
                missing.append(Path(clip).stem)
        if not rows:
            continue
        lines += [f"## agreement {agreement:g}", "",
                  "| clip | segments | target | auto n per seed | J ref (mean / min) | J seeds | floor (50k vs 50k) | 12.5k plain vs ref | 12.5k projected vs ref | ref sizes |",
                  "|---|---:|---|---|---|---:|---:|---:|---:|---|"]
        for r in rows:
            j_seeds = "n/a (1 seed)" if r["j_seeds"] is None else f"{r['j_seeds']:.3f}"
            used = ", ".join(f"s{s}: {n:,}" for s, n in zip(r["seeds"], r["auto_n"]))
            lines.append(f"| {r['clip']} | {r['segments']} | {r['target']} | {used} | "
                         f"{r['j_ref']:.3f} / {r['j_ref_min']:.3f} | {j_seeds} | {r['floor']:.3f} | "
                         f"{r['plain_12500']:.3f} | {r['projected_12500']:.3f} | {', '.join(f'{k}:{v}' for k, v in r['ref_size'].items())} |")
        used = [n for r in rows for n in r["auto_n"]]
        lines += ["", f"Runs: {len(used)}; samples used: median {np.median(used):,.0f}, "
                      f"at most 12,500 in {sum(n <= 12_500 for n in used)} of {len(used)}, cap reached in "
                      f"{sum(n >= DEFAULT_CAP for n in used)}; mean J ref {np.mean([r['j_ref'] for r in rows]):.3f}, "
                      f"mean J seeds {np.mean([r['j_seeds'] for r in rows if r['j_seeds'] is not None] or [np.nan]):.3f}, mean floor "
                      f"{np.mean([r['floor'] for r in rows]):.3f}."
                      + (f" Not evaluated (outputs not computed): {', '.join(missing)}." if missing else ""), ""]
        print("\n".join(lines[-len(rows) - 6:]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
