"""``samples="auto"``: sample in rounds, refit, and stop once the selections have converged.

Why a projection. The paper's rule keeps a segment when ``p / |w| < 1e-6``; a p-value shrinks as
samples are added, so with the plain rule the selection keeps growing with ``n`` (on the shipped
model: ~15 segments at 1,562 samples, ~150 at 50,000) and never settles before the 50,000 the
rule was set for. Each round therefore selects what the paper's rule would keep at the paper's
50,000 samples (or at the cap, when a larger one is asked for): a segment's t statistic grows like
``sqrt(n)`` for a fixed effect, so its t at ``N`` samples is estimated as ``t_n * sqrt(N / n)``
and its p-value read from that (:func:`projected_selection`). At ``N`` this is the paper's rule
itself; a cap below 50,000 gives an earlier estimate of the same 50,000-sample selection.

Rounds double the sample count (``cap / 32, cap / 16, ... cap``); the samples of a round are the
first rows of the cap's sample matrix (:func:`~twolevel.explain.sampling.sample_switches` draws
prefix-consistently), so an ``auto`` run is the beginning of the fixed run with the same seed. It
stops when, for every traced output, the selection agrees with the previous round's at Jaccard
>= ``agreement`` on (segment, sign) pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import stats

from ..labels import TARGET_NAMES
from .sampling import ProgressCallback, network_device, run_perturbations, sample_switches
from .selection import jaccard, signed_segments
from .surrogate import SurrogateFit, fit_surrogate

#: The word that asks for an adaptive sample count.
AUTO = "auto"
#: Most samples an ``auto`` explanation draws (the paper's count).
DEFAULT_CAP = 50_000
#: Jaccard of consecutive rounds' selections at which an output counts as converged. Chosen on
#: benchmarks/results/adaptive-antithetic.md (9 clips, a mid-level and an emotion, 3 seeds, the
#: antithetic design): at 0.9 auto matched an independent 50,000-sample reference at mean Jaccard
#: 0.895 (a second 50,000-sample run: 0.920) with a median of 25,000 samples; 0.85 gave 0.871 with
#: a median of 12,500. (With LIME's independent draws, 0.9 needed a median of 37,500-50,000.)
DEFAULT_AGREEMENT = 0.9
#: The sample count the paper's selection rule was set for; selections are projected to it.
PAPER_SAMPLES = 50_000
#: Rounds: the cap halved this many times is the first round.
HALVINGS = 5


def round_sizes(cap: int, first_at_least: int = 0, halvings: int = HALVINGS) -> list[int]:
    """Sample counts after each round: ``cap / 2**halvings, ..., cap / 2, cap`` (ceil), none below
    ``first_at_least`` (the fewest samples that fit the surrogate), at least one round."""
    sizes = [-(-cap // 2 ** j) for j in range(halvings, -1, -1)]
    kept = [n for n in sizes if n >= first_at_least]
    return kept or [cap]


def projected_selection(fit: SurrogateFit, output: int, ratio: float, cap: int) -> tuple[list[int], list[int]]:
    """Segments the paper's rule ``p / |w| < ratio`` is expected to keep at ``cap`` samples.

    The t statistic of each weight is scaled by ``sqrt(cap / n)`` (its standard error shrinks like
    ``1 / sqrt(n)``) and its two-sided p-value read at the cap's residual degrees of freedom.

    Returns:
        ``(positive_ids, negative_ids)``, each sorted by decreasing ``|w|``.
    """
    coef = fit.coef[output]
    magnitude = np.abs(coef)
    scale = np.sqrt(max(cap, fit.n_samples) / fit.n_samples)
    df = max(cap, fit.n_samples) - fit.n_samples + fit.df_resid
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(fit.stderr[output] > 0, magnitude / fit.stderr[output], np.inf) * scale
        pvalue = np.where(np.isfinite(t), 2.0 * stats.t.sf(t, df), 0.0)
        score = np.where(magnitude > 0, pvalue / magnitude, np.inf)
    kept = np.isfinite(score) & (score < ratio)
    order = np.argsort(-magnitude, kind="stable")
    return ([int(i) for i in order if kept[i] and coef[i] > 0], [int(i) for i in order if kept[i] and coef[i] < 0])


@dataclass(frozen=True)
class Round:
    """One round: samples drawn so far, each traced output's selection size and its Jaccard
    overlap with the previous round's selection (None in the first round)."""

    n_samples: int
    selected: dict[str, int]
    jaccard: dict[str, float | None]

    def to_dict(self) -> dict:
        return {"n_samples": self.n_samples, "selected": dict(self.selected), "jaccard": dict(self.jaccard)}


@dataclass(frozen=True)
class Convergence:
    """How an ``auto`` sample count was reached (``explanation.json``: ``parameters.adaptive``)."""

    n_samples: int
    converged: bool
    cap: int
    agreement: float
    rounds: list[Round] = field(default_factory=list)
    rule: str = "projected"
    projected_to: int | None = None

    def to_dict(self) -> dict:
        return {"n_samples": self.n_samples, "converged": self.converged, "cap": self.cap,
                "agreement": self.agreement, "rule": self.rule, "projected_to": self.projected_to or self.cap,
                "rule_text": ("each round keeps the segments whose p-value, projected to projected_to samples "
                              "(t x sqrt(projected_to / n)), passes p / |w| < ratio; stops when every traced output's "
                              "selection agrees with the previous round's at Jaccard >= agreement"),
                "rounds": [r.to_dict() for r in self.rounds]}


@dataclass(frozen=True)
class AdaptiveResult:
    """The samples an ``auto`` run drew, the network's outputs on them, the last fit and the
    selections it gave (output name -> ``(positive, negative)``)."""

    switches: np.ndarray
    outputs: np.ndarray
    fit: SurrogateFit
    selections: dict[str, tuple[list[int], list[int]]]
    convergence: Convergence


def converge(outputs_for: Callable[[int, int], np.ndarray], switches: np.ndarray,
             traced: Callable[[np.ndarray], list[str]], ratio: float, cap: int,
             first_at_least: int, agreement: float = DEFAULT_AGREEMENT, project_to: int | None = None,
             fit_device=None) -> AdaptiveResult:
    """The round loop, independent of how outputs are produced.

    Args:
        outputs_for: ``(start, stop) -> (stop - start, n_outputs)`` network outputs of
            ``switches[start:stop]``.
        switches: ``(cap, n_segments)`` 0/1 matrix; rounds use its first rows.
        traced: the unperturbed outputs (row 0) -> names of the outputs whose selections must converge.
        ratio, cap, agreement: the selection threshold, the most samples, the Jaccard to reach.
        project_to: the sample count whose selection each round estimates (default: ``cap``).
        first_at_least: fewest samples of the first round.
        fit_device: where the surrogate's passes over the samples run (:func:`fit_surrogate`'s ``device``).
    """
    project_to = project_to or cap
    outputs = None
    rounds: list[Round] = []
    previous: dict[str, set] | None = None
    done, converged = 0, False
    for n in round_sizes(cap, first_at_least):
        block = outputs_for(done, n)
        if outputs is None:
            outputs = np.empty((cap, block.shape[1]), dtype=np.float64)
        outputs[done:n] = block
        done = n
        fit = fit_surrogate(switches[:n], outputs[:n], device=fit_device)
        names = traced(outputs[0])
        chosen = {name: projected_selection(fit, TARGET_NAMES.index(name), ratio, project_to) for name in names}
        signed = {name: signed_segments(*sel) for name, sel in chosen.items()}
        overlap = {name: (jaccard(previous[name], signed[name]) if previous and name in previous else None)
                   for name in names}
        rounds.append(Round(n, {name: len(s) for name, s in signed.items()}, overlap))
        if previous is not None and all(v is not None and v >= agreement for v in overlap.values()):
            converged = True
            break
        previous = signed
    convergence = Convergence(done, converged or done >= cap, cap, agreement, rounds, projected_to=project_to)
    return AdaptiveResult(switches[:done], outputs[:done], fit, chosen, convergence)


def sample_adaptively(network, spectrogram: np.ndarray, segment_map: np.ndarray, n_segments: int, seed: int,
                      traced: Callable[[np.ndarray], list[str]], ratio: float, hide_value: float = 0.0,
                      batch_size: int = 256, cap: int = DEFAULT_CAP, first_at_least: int = 0,
                      agreement: float = DEFAULT_AGREEMENT, design: str = "antithetic",
                      progress: ProgressCallback = None, precision: str = "fp32") -> AdaptiveResult:
    """Perturbation rounds through ``network`` until the traced selections converge (or ``cap``).

    Each round estimates the selection at ``max(cap, PAPER_SAMPLES)`` samples, so a small cap
    gives an early estimate of the paper's 50,000-sample selection rather than the plain rule at
    the cap (which keeps far fewer segments).

    ``progress(done, total)`` is called after every batch with ``total`` the cap, and once more
    at the end as ``progress(drawn, drawn)`` when the rounds stopped early.
    """
    switches = sample_switches(cap, n_segments, seed, design)

    def outputs_for(start: int, stop: int) -> np.ndarray:
        report = None if progress is None else (lambda done, _total: progress(start + done, cap))
        return run_perturbations(network, spectrogram, segment_map, switches[start:stop], hide_value, batch_size,
                                 report, precision)

    result = converge(outputs_for, switches, traced, ratio, cap, first_at_least, agreement,
                      project_to=max(cap, PAPER_SAMPLES), fit_device=network_device(network))
    if progress is not None and result.convergence.n_samples < cap:
        progress(result.convergence.n_samples, result.convergence.n_samples)
    return result
