"""Where the selection's noise comes from, on the cached outputs of the adaptive validation.

With the antithetic design, a pair of samples ``z`` and ``1 - z`` gives ``y(z) - y(1 - z) =
sum_j w_j (2 z_j - 1) + 2 * odd(z)``: the intercept and every even-order interaction cancel. This
script fits that *paired-difference* regression (pair weight: the mean of the two rows' LIME
kernel weights) beside the surrogate ``explain`` fits (weighted least squares on all rows) and
reports, per clip and output:

* ``r(w)``: correlation of the two fits' weights (1.000: the surrogate's weights already are the
  paired estimator's, the even-order part of the response does not reach them);
* ``se ratio``: median of the surrogate's standard error over the paired one: how much the paper's
  p-values over-state the weights' noise (they still count the even-order part as noise);
* for each estimator, the selection size at 50,000 samples, its floor (two independently seeded
  50,000-sample runs, Jaccard over (segment, sign)) and the 12,500-sample selection projected to
  50,000 (as ``samples="auto"`` does) against the other seed's 50,000.

Needs ``runs/adaptive/<clip>_antithetic_s0_50000.npz`` and ``..._s100_50000.npz`` (written by
``benchmarks/adaptive_validation.py``); writes ``benchmarks/results/surrogate-noise.md``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from twolevel.explain.adaptive import projected_selection
from twolevel.explain.sampling import sample_switches
from twolevel.explain.selection import jaccard, select_segments, signed_segments
from twolevel.explain.surrogate import cosine_distance_to_ones, fit_surrogate, lime_kernel
from twolevel.labels import TARGET_NAMES

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "runs" / "adaptive"
OUTPUTS = ("articulation", "energy", "rhythm_stability", "melodiousness", "dissonance")
FULL, PART, RATIO = 50_000, 12_500, 1e-6


def paired_fit(switches: np.ndarray, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(coef (t, k), stderr (t, k), df, pairs)`` of ``y(z) - y(1 - z)`` on ``2 z - 1``, no intercept."""
    first, second = switches[0::2].astype(np.float64), switches[1::2].astype(np.float64)
    pairs = min(len(first), len(second))
    first, second = first[:pairs], second[:pairs]
    diff = outputs[0::2][:pairs] - outputs[1::2][:pairs]
    weight = (lime_kernel(cosine_distance_to_ones(first)) + lime_kernel(cosine_distance_to_ones(second))) / 2
    fit = fit_surrogate(2 * first - 1, diff, sample_weight=weight, intercept=False)
    return fit.coef, fit.stderr, fit.df_resid, pairs


def paired_selection(fit, output: int, project_pairs: int) -> set:
    coef, stderr, df, pairs = fit
    magnitude = np.abs(coef[output])
    scale = np.sqrt(max(project_pairs, pairs) / pairs)
    p = 2 * stats.t.sf(magnitude / stderr[output] * scale, max(project_pairs, pairs) - pairs + df)
    kept = p / magnitude < RATIO
    return signed_segments(np.flatnonzero(kept & (coef[output] > 0)), np.flatnonzero(kept & (coef[output] < 0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "surrogate-noise.md"))
    args = parser.parse_args()
    rows = []
    for first in sorted(CACHE.glob(f"*_antithetic_s0_{FULL}.npz")):
        other = first.with_name(first.name.replace("_s0_", "_s100_"))
        if not other.is_file():
            continue
        clip = first.name.split("_antithetic")[0]
        a, b = np.load(first), np.load(other)
        k = int(a["n_segments"])
        sw_a, sw_b = sample_switches(FULL, k, 0, "antithetic"), sample_switches(FULL, k, 100, "antithetic")
        y_a, y_b = a["outputs"], b["outputs"]
        wls = {"ref": fit_surrogate(sw_b, y_b), "full": fit_surrogate(sw_a, y_a),
               "part": fit_surrogate(sw_a[:PART], y_a[:PART])}
        pair = {"ref": paired_fit(sw_b, y_b), "full": paired_fit(sw_a, y_a), "part": paired_fit(sw_a[:PART], y_a[:PART])}
        for name in OUTPUTS:
            i = TARGET_NAMES.index(name)
            ref = signed_segments(*select_segments(wls["ref"].coef[i], wls["ref"].pvalues[i], RATIO))
            full = signed_segments(*select_segments(wls["full"].coef[i], wls["full"].pvalues[i], RATIO))
            part = signed_segments(*projected_selection(wls["part"], i, RATIO, FULL))
            p_ref, p_full, p_part = (paired_selection(pair[key], i, FULL // 2) for key in ("ref", "full", "part"))
            rows.append({"clip": clip, "output": name, "k": k,
                         "r_w": float(np.corrcoef(wls["ref"].coef[i], pair["ref"][0][i])[0, 1]),
                         "se_ratio": float(np.median(wls["ref"].stderr[i] / pair["ref"][1][i])),
                         "wls": (len(ref), jaccard(full, ref), jaccard(part, ref)),
                         "paired": (len(p_ref), jaccard(p_full, p_ref), jaccard(p_part, p_ref))})
            print(rows[-1], flush=True)
    if not rows:
        raise SystemExit(f"no cached pairs in {CACHE}: run benchmarks/adaptive_validation.py first")
    lines = ["# Where the selection's noise comes from (antithetic design, shipped model)", "",
             "Generated by benchmarks/surrogate_noise.py from the cached outputs of benchmarks/adaptive_validation.py. "
             "WLS: the surrogate `explain` fits; paired: `y(z) - y(1-z)` on `2z - 1`. "
             "Sizes are (segment, sign) selections at 50,000 samples; floor: two 50,000-sample seeds; "
             "12.5k: the first 12,500 samples projected to 50,000, against the other seed's 50,000.", "",
             "| clip | output | segments | r(w) | se ratio | WLS size | WLS floor | WLS 12.5k | paired size | paired floor | paired 12.5k |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['output']} | {r['k']} | {r['r_w']:.4f} | {r['se_ratio']:.2f} | "
                     f"{r['wls'][0]} | {r['wls'][1]:.3f} | {r['wls'][2]:.3f} | "
                     f"{r['paired'][0]} | {r['paired'][1]:.3f} | {r['paired'][2]:.3f} |")
    mean = lambda key, j: float(np.mean([r[key][j] for r in rows]))  # noqa: E731
    lines += ["", f"Mean over {len(rows)} rows: r(w) {np.mean([r['r_w'] for r in rows]):.4f}, se ratio "
                  f"{np.median([r['se_ratio'] for r in rows]):.2f} (median); WLS size {mean('wls', 0):.0f}, floor "
                  f"{mean('wls', 1):.3f}, 12.5k {mean('wls', 2):.3f}; paired size {mean('paired', 0):.0f}, floor "
                  f"{mean('paired', 1):.3f}, 12.5k {mean('paired', 2):.3f}.", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines[-2:]))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
