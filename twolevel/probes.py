"""Concept probes: does a model order rendered pairs that differ in one quality the right way?

``probes/`` (rendered by ``scripts/render_probes.py``, committed) holds pairs of 10 s clips; in
each pair clip ``b`` has more of one quality than clip ``a`` (more melodious, more staccato,
steadier, ...). For the 7 mid-level concepts, a pair is ordered right when the model's output of
that mid-level is higher for ``b``; emotion pairs (minor/major, slow/fast) name the emotions
expected higher (+1) or lower (-1) in ``b``, and a pair is right when all of them are.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .labels import EMOTION_NAMES, MIDLEVEL_NAMES

#: The committed probe suite (in the source tree, not in the installed package).
DEFAULT_PROBE_DIR = Path(__file__).resolve().parent.parent / "probes"


@dataclass(frozen=True)
class ProbeResult:
    """How many pairs of one concept a model ordered right, and each pair's margin (b - a)."""

    concept: str
    kind: str  # "midlevel" or "emotion"
    correct: int
    total: int
    margins: tuple[float, ...]

    def as_dict(self) -> dict:
        return {"concept": self.concept, "kind": self.kind, "correct": self.correct, "total": self.total,
                "margins": [round(m, 4) for m in self.margins]}


def load_probes(probe_dir: Path | None = None) -> list[dict]:
    """The pairs of ``probes.json`` with their clip paths resolved."""
    from .errors import OptionError

    probe_dir = Path(probe_dir or DEFAULT_PROBE_DIR)
    index = probe_dir / "probes.json"
    if not index.is_file():
        raise OptionError(f"{probe_dir}: no probes.json (render it with scripts/render_probes.py)")
    pairs = json.loads(index.read_text())["pairs"]
    for p in pairs:
        p["path_a"], p["path_b"] = probe_dir / p["a"], probe_dir / p["b"]
    return pairs


def prediction_outputs(prediction) -> dict[str, float]:
    """A :class:`~twolevel.predict.Prediction` as probe outputs: mid-level and emotion name -> value."""
    return {**dict(zip(MIDLEVEL_NAMES, map(float, prediction.midlevel_vector))),
            **dict(zip(EMOTION_NAMES, map(float, prediction.emotion_vector)))}


def descriptor_outputs(path: Path) -> dict[str, float]:
    """The 7 raw descriptors of a clip (the targets the mid-levels learn), as probe outputs."""
    from .audio import load_audio
    from .targets import raw_descriptors

    return dict(zip(MIDLEVEL_NAMES, map(float, raw_descriptors(load_audio(path).samples))))


def tonality_outputs(path: Path) -> dict[str, float]:
    """The sharper descriptors of :mod:`twolevel.tonality` (tonal stability, minorness, pulse clarity)."""
    from .audio import load_audio
    from .tonality import tonality_descriptors

    return tonality_descriptors(load_audio(path).samples)


def mean_outputs(scorers) -> Callable[[Path], dict[str, float]]:
    """One probe scorer from several (callables ``path -> {output: value}``): the mean of their
    outputs, so that :func:`run_probes` scores an ensemble."""
    scorers = list(scorers)
    if not scorers:
        raise ValueError("no scorers to average")

    def mean(path: Path) -> dict[str, float]:
        each = [score(path) for score in scorers]
        return {name: float(np.mean([o[name] for o in each])) for name in each[0]}

    return mean


def run_probes(model, probe_dir: Path | None = None, kinds=("midlevel", "emotion"),
               concepts=None) -> list[ProbeResult]:
    """Score ``model`` on every probe concept of ``kinds``, in suite order.

    ``model`` is a :class:`~twolevel.predict.TwoLevelModel`, or any callable ``path -> {output: value}``
    (e.g. :func:`descriptor_outputs`, to check the descriptor targets themselves); ``concepts``
    restricts the suite to those concepts.
    """
    pairs = [p for p in load_probes(probe_dir) if p["kind"] in kinds and (concepts is None or p["concept"] in concepts)]
    cache: dict[Path, dict[str, float]] = {}

    def out(path: Path) -> dict[str, float]:
        if path not in cache:
            cache[path] = model(path) if callable(model) else prediction_outputs(model.predict(path))
        return cache[path]

    by_concept: dict[str, list] = {}
    kinds: dict[str, str] = {}
    for p in pairs:
        a, b = out(p["path_a"]), out(p["path_b"])
        # the margin of the pair: the smallest signed gap over the outputs it checks
        margin = min(sign * (b[name] - a[name]) for name, sign in p["higher"].items())
        by_concept.setdefault(p["concept"], []).append(margin)
        kinds[p["concept"]] = p["kind"]
    return [ProbeResult(c, kinds[c], int(sum(m > 0 for m in ms)), len(ms), tuple(ms)) for c, ms in by_concept.items()]


def format_probe_table(results: list[ProbeResult], goal_midlevel: int = 11, of: int = 12) -> str:
    """The results as a table, each concept against its goal: ``goal_midlevel`` of every ``of`` pairs for
    a mid-level (11 of 12: the issue's goal; 22 of a 24-pair suite), every pair for an emotion."""
    lines = [f"{'concept':<20}{'kind':<10}{'right':>7}  {'median margin':>14}  goal"]
    for r in results:
        goal = math.ceil(goal_midlevel * r.total / of) if r.kind == "midlevel" else r.total
        flag = "ok" if r.correct >= min(goal, r.total) else "below"
        lines.append(f"{r.concept:<20}{r.kind:<10}{r.correct:>3}/{r.total:<3}  {np.median(r.margins):>+14.4f}  "
                     f"{flag} (>= {min(goal, r.total)})")
    return "\n".join(lines)


def pair_agreement(margins, pairs: list[dict]) -> list[dict]:
    """One concept's pairs across models, hardest first: per pair its index in the suite, how many
    models order it right (of ``models``), the median margin, and what it is (instrument, key, tempo
    where the suite records them, else its two clips).

    ``margins`` is ``(models, pairs)``: each model's :attr:`ProbeResult.margins` of the concept;
    ``pairs`` are that concept's entries of :func:`load_probes`, in suite order. Separates pairs
    that every model finds hard from a model's luck on them (session 24: seeds of one recipe
    differed mostly by which of seven hard pairs they happened to get).
    """
    margins = np.atleast_2d(np.asarray(margins, dtype=float))
    if margins.shape[1] != len(pairs):
        raise ValueError(f"{margins.shape[1]} margins per model for {len(pairs)} pairs")
    rows = []
    for i, p in enumerate(pairs):
        what = [p.get("instrument") or f"{p['a']} -> {p['b']}"]
        what += [f"tonic {p['tonic']}"] if "tonic" in p else []
        what += [f"{p['bpm']:g} bpm"] if "bpm" in p else []
        rows.append({"pair": i, "right": int((margins[:, i] > 0).sum()), "models": len(margins),
                     "median_margin": round(float(np.median(margins[:, i])), 4), "what": ", ".join(what)})
    return sorted(rows, key=lambda r: (r["right"], r["pair"]))


def format_pair_table(margins, pairs: list[dict]) -> str:
    """:func:`pair_agreement` as a table, one line per pair, hardest first."""
    lines = [f"{'pair':>4}  {'right':>7}  {'median margin':>14}  what"]
    for r in pair_agreement(margins, pairs):
        lines.append(f"{r['pair']:>4}  {r['right']:>3}/{r['models']:<3}  {r['median_margin']:>+14.4f}  {r['what']}")
    return "\n".join(lines)
