"""``explain()``: the level-2 explanation of one output for one 10 s window.

Pipeline (paper-facts.md): model input spectrogram -> Felzenszwalb segments -> random on/off
samples of the segments (batched forward passes on the model's device, all 15 outputs at once)
-> LIME's weighted linear surrogate with p-values -> selection by p / |weight| < ratio ->
deletion check -> resynthesis to audio. Each step is a named function below; :func:`explain`
runs them in order and times each with one :class:`Stopwatch`.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..audio import Audio, load_audio, loop_pad
from ..effects import Effects
from ..errors import OptionError
from ..frontend import band_centre_frequencies
from ..labels import EMOTION_NAMES, MIDLEVEL_NAMES, TARGET_NAMES
from ..options import SAMPLES_PER_COEFFICIENT, ExplainOptions, check_precision_on
from ..signal import SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SAMPLES, WINDOW_SECONDS
from .adaptive import AUTO, AdaptiveResult, sample_adaptively
from .explanation import Explanation
from .faithfulness import deletion_check
from .resynthesis import DEFAULT_MOMENTUM, Resynthesis, resynthesise
from .sampling import ProgressCallback, network_device, run_perturbations, sample_switches
from .segments import Segmentation, segment_spectrogram
from .selection import Selection, select_segments, selection_stability
from .surrogate import KERNEL_WIDTH, SurrogateFit, fit_surrogate


def minimum_samples(n_segments: int) -> int:
    """Fewest samples accepted for ``n_segments`` segments."""
    return SAMPLES_PER_COEFFICIENT * (n_segments + 1)


def explain_window(samples: np.ndarray, offset: float) -> tuple[np.ndarray, bool]:
    """The 10 s window starting at ``offset`` s (loop-padded when the clip is shorter than 10 s).

    Raises:
        OptionError(code="bad_offset") when no full window starts there.
    """
    duration = len(samples) / SAMPLE_RATE
    latest = max(0.0, duration - WINDOW_SECONDS)
    if offset > latest + 1e-9:
        where = "0 (the clip is shorter than 10 s)" if latest == 0 else f"0 to {latest:.2f} s"
        raise OptionError(f"offset {offset!r} s is out of range: the clip lasts {duration:.2f} s, so a 10 s "
                          f"window can start at {where}", code="bad_offset")
    start = min(int(round(offset * SAMPLE_RATE)), max(0, len(samples) - WINDOW_SAMPLES))
    window = samples[start:start + WINDOW_SAMPLES]
    return loop_pad(window, WINDOW_SAMPLES).astype(np.float32), len(samples) < WINDOW_SAMPLES


class Stopwatch:
    """Seconds spent in each named step (``with clock("sampling"): ...``), in the order run.

    ``timings`` may take other measurements too (they keep their place in the order)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = time.perf_counter() - t

    def total(self) -> dict[str, float]:
        return {**self.timings, "total": time.perf_counter() - self.start}


@dataclass
class _Window:
    """The explained window and what the steps derive from it."""

    samples: np.ndarray          # float32 (220,500,) audio the model hears
    loop_padded: bool
    spectrogram: np.ndarray      # float32 (313, 149) normalised model input
    segmentation: Segmentation


def _spectrogram_and_segments(network, samples: np.ndarray, loop_padded: bool) -> _Window:
    """Step 1: the window's model-input spectrogram and its Felzenszwalb segments."""
    with torch.inference_mode():
        spec = network.frontend(torch.from_numpy(samples)[None].to(network_device(network)))[0, 0, :WINDOW_FRAMES]
    spectrogram = spec.float().cpu().numpy()
    return _Window(samples, loop_padded, spectrogram, segment_spectrogram(spectrogram))


def _check_enough_samples(options: ExplainOptions, n_segments: int) -> None:
    most = options.auto_cap if options.samples == AUTO else options.samples
    if most < minimum_samples(n_segments):
        what = f"auto_cap={most}" if options.samples == AUTO else f"samples={most}"
        raise OptionError(f"{what} is too few for the {n_segments} segments of this window: "
                          f"need at least {minimum_samples(n_segments)} (2 x (segments + 1)); "
                          f"the paper uses 50,000", code="bad_samples")


def _perturb(network, window: _Window, options: ExplainOptions, progress: ProgressCallback):
    """Step 2: random on/off switches of the segments and the network's 15 outputs for each.

    Returns ``(switches, outputs, adaptive)``; ``adaptive`` is the :class:`AdaptiveResult` of a
    ``samples="auto"`` run (its rounds refit the surrogate), else None.
    """
    if options.samples == AUTO:
        seg = window.segmentation

        def traced_names(row0: np.ndarray) -> list[str]:  # row 0: the unperturbed window
            effects = _level_one_effects(network, row0[:len(MIDLEVEL_NAMES)])
            return [name for name, _, _ in _traced(effects, options)]

        adaptive = sample_adaptively(network, window.spectrogram, seg.labels, seg.n_segments, options.seed,
                                     traced_names, options.ratio, options.hide_value, options.batch_size,
                                     options.auto_cap, minimum_samples(seg.n_segments), design=options.design,
                                     progress=progress, precision=options.precision)
        return adaptive.switches, adaptive.outputs, adaptive
    switches = sample_switches(options.samples, window.segmentation.n_segments, options.seed, options.design)
    outputs = run_perturbations(network, window.spectrogram, window.segmentation.labels, switches,
                                options.hide_value, options.batch_size, progress, options.precision)
    return switches, outputs, None


def _level_one_effects(network, midlevels: np.ndarray) -> Effects:
    """Step 3b: weight x value of the network's linear emotion layer for the unperturbed window."""
    layer = network.emotion
    return Effects.from_layer(layer.weight.detach().cpu().double().numpy(),
                              layer.bias.detach().cpu().double().numpy(), midlevels)


def _traced(effects: Effects, options: ExplainOptions) -> list[tuple[str, str, float | None]]:
    """(output, role, effect) of the target and, for an emotion, its strongest mid-levels."""
    traced = [(options.target, "target", None)]
    if options.target_kind == "emotion":
        traced += [(m, "via_midlevel", effect) for m, effect in effects.top_midlevels(options.target,
                                                                                       options.top_midlevels)]
    return traced


def _traced_selections(fit: SurrogateFit, effects: Effects, options: ExplainOptions,
                       adaptive: AdaptiveResult | None = None) -> list[Selection]:
    """Step 4: the target's segments and, for an emotion, those of its strongest mid-levels
    (an ``auto`` run's selections are those of its last round)."""
    selections = []
    for output, role, effect in _traced(effects, options):
        i = TARGET_NAMES.index(output)
        positive, negative = (adaptive.selections[output] if adaptive is not None
                              else select_segments(fit.coef[i], fit.pvalues[i], options.ratio))
        selections.append(Selection(output, positive, negative, options.ratio, role, effect))
    return selections


def _with_deletion_checks(network, window: _Window, selections: list[Selection],
                          options: ExplainOptions) -> list[Selection]:
    """Step 5: does hiding each selection move its output more than hiding random segments?"""
    checks = deletion_check(network, window.spectrogram, window.segmentation.labels, window.segmentation.n_segments,
                            {s.output: (s.positive, s.negative) for s in selections},
                            {n: i for i, n in enumerate(TARGET_NAMES)}, options.hide_value,
                            options.faithfulness_draws, options.seed, options.batch_size, options.precision)
    return [Selection(s.output, s.positive, s.negative, s.ratio, s.role, s.effect, checks[s.output])
            for s in selections]


def _resynthesise(network, window: _Window, selections: list[Selection], options: ExplainOptions) -> Resynthesis:
    """Step 6: the selected segments back to audio."""
    seg = window.segmentation
    masks = {s.output: (seg.mask(s.positive), seg.mask(s.negative)) for s in selections}
    return resynthesise(window.samples, masks, network.frontend.filterbank.detach().cpu().numpy(),
                        options.griffin_lim_iters, DEFAULT_MOMENTUM, network_device(network), options.seed)


def _parameters(options: ExplainOptions, segmentation: Segmentation, device, n_samples: int,
                adaptive: AdaptiveResult | None) -> dict:
    """The record of what was run (``Explanation.parameters``): ``n_samples`` drawn, ``samples``
    asked for (a number or ``"auto"``), and for ``auto`` the rounds (``adaptive``)."""
    return {
        "target": options.target, "n_samples": n_samples, "samples": options.samples,
        "auto_cap": options.auto_cap if adaptive is not None else None,
        "adaptive": adaptive.convergence.to_dict() if adaptive is not None else None,
        "ratio": options.ratio, "seed": options.seed, "design": options.design,
        "batch_size": options.batch_size, "hide_value": options.hide_value, "offset": options.offset,
        "kernel_width": KERNEL_WIDTH, "distance": "cosine to all-ones", "segmentation": segmentation.parameters(),
        "resynthesis": options.resynthesis, "griffin_lim_iters": options.griffin_lim_iters,
        "momentum": DEFAULT_MOMENTUM,
        "top_midlevels": options.top_midlevels if options.target_kind == "emotion" else None,
        "faithfulness_draws": options.faithfulness_draws, "device": str(device), "precision": options.precision,
    }


def explain(model, audio: Audio, options: ExplainOptions | None = None, progress: ProgressCallback = None,
            **changes) -> Explanation:
    """Explain one output of the model on one 10 s window with LIME on spectrogram segments.

    Args:
        model: a :class:`twolevel.predict.TwoLevelModel` (or :class:`~twolevel.explain.planted.PlantedModel`):
            anything with ``.network`` (``forward_spectrogram``, ``frontend``, an ``emotion``
            linear layer) and ``.model_version``.
        audio: decoded :class:`twolevel.audio.Audio` (22,050 Hz mono); a path or file bytes are
            decoded first, with the model's length limit.
        options: :class:`~twolevel.options.ExplainOptions` (default: the paper's settings).
        progress: ``callable(done_samples, total_samples)`` after every batch, or None.
        **changes: options to change, by name (``target="energy", samples=5000``; ``n_samples``
            is accepted for ``samples``).

    Returns:
        :class:`Explanation`.

    Raises:
        OptionError: ``unknown_target``, ``bad_samples``, ``bad_offset``, ``bad_ratio``, ...
    """
    if "n_samples" in changes:
        changes["samples"] = changes.pop("n_samples")
    options = (options or ExplainOptions()).replace(**changes)
    clock = Stopwatch()
    network = model.network
    if not isinstance(audio, Audio):  # a path or file bytes: decode with the model's own limits
        audio = model.load_audio(audio) if hasattr(model, "load_audio") else load_audio(audio)
    check_precision_on(network_device(network).type, options.precision)  # before any work
    # Dropout or batch statistics would make every sample random: explain the network in eval mode.
    network.eval()

    with clock("segmentation"):
        window = _spectrogram_and_segments(network, *explain_window(audio.samples, options.offset))
    _check_enough_samples(options, window.segmentation.n_segments)
    with clock("sampling"):  # for samples="auto", the rounds' refits included
        switches, outputs, adaptive = _perturb(network, window, options, progress)
    n_samples = len(switches)
    clock.timings["samples_per_second"] = n_samples / max(clock.timings["sampling"], 1e-9)
    with clock("surrogate"):  # step 3 (an auto run's last round already fitted it)
        fit = (adaptive.fit if adaptive is not None
               else fit_surrogate(switches, outputs, device=network_device(network)))
    # The unperturbed window (row 0: all segments on) gives the predictions and the level-1 effects.
    mid, emo = outputs[0, :len(MIDLEVEL_NAMES)], outputs[0, len(MIDLEVEL_NAMES):]
    effects = _level_one_effects(network, mid)
    selections = _traced_selections(fit, effects, options, adaptive)
    with clock("faithfulness"):
        selections = _with_deletion_checks(network, window, selections, options)
    resynth = None
    if options.resynthesis:
        with clock("resynthesis"):
            resynth = _resynthesise(network, window, selections, options)
    timings = clock.total()

    return Explanation(
        name=audio.name, model_version=str(model.model_version), target=options.target,
        target_kind=options.target_kind, offset=options.offset, loop_padded=window.loop_padded,
        spectrogram=window.spectrogram, segmentation=window.segmentation, surrogate=fit, selections=selections,
        midlevels=dict(zip(MIDLEVEL_NAMES, map(float, mid))), emotions=dict(zip(EMOTION_NAMES, map(float, emo))),
        effects=effects, parameters=_parameters(options, window.segmentation, network_device(network), n_samples, adaptive),
        timings=timings, band_frequencies=band_centre_frequencies(), resynthesis=resynth,
    )


def repeats_summary(runs: list[Explanation]) -> dict:
    """Stability of the selections over runs with different seeds (same window).

    Returns:
        ``{"seeds": [...], "runs": K, "outputs": {output: {"positive", "negative", "signed", "pairs"}}}``
        with mean pairwise Jaccard overlaps of the selected segment ids.
    """
    per_output = {}
    for sel in runs[0].selections:
        chosen = [s.to_dict() for run in runs for s in run.selections if s.output == sel.output]
        per_output[sel.output] = selection_stability(chosen)
    return {"seeds": [run.parameters["seed"] for run in runs], "runs": len(runs), "outputs": per_output}
