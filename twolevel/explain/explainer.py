"""``explain()``: the level-2 explanation of one output for one 10 s window.

Pipeline (paper-facts.md): model input spectrogram -> Felzenszwalb segments -> random on/off
samples of the segments (batched forward passes on the model's device, all 15 outputs at once)
-> LIME's weighted linear surrogate with p-values -> selection by p / |weight| < ratio ->
deletion check -> resynthesis to audio.
"""
from __future__ import annotations

import math
import numbers
import time

import numpy as np
import torch

from ..audio import Audio, load_audio, loop_pad
from ..effects import Effects
from ..errors import OptionError
from ..frontend import band_centre_frequencies
from ..labels import EMOTION_NAMES, MIDLEVEL_NAMES, TARGET_NAMES, target_index
from ..signal import SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SAMPLES, WINDOW_SECONDS
from .explanation import Explanation
from .faithfulness import DEFAULT_RANDOM_DRAWS, deletion_check
from .resynthesis import DEFAULT_MOMENTUM, resynthesise
from .sampling import ProgressCallback, network_device, run_perturbations, sample_switches
from .segments import segment_spectrogram
from .selection import DEFAULT_RATIO, Selection, select_segments, selection_stability
from .surrogate import KERNEL_WIDTH, fit_surrogate

DEFAULT_SAMPLES = 50_000
#: Upper bound on samples: the surrogate's design matrix is samples x segments float64.
MAX_SAMPLES = 200_000
#: Lower bound: this many samples per coefficient (segments + intercept), so that every weight
#: and its p-value are estimable with residual degrees of freedom to spare.
SAMPLES_PER_COEFFICIENT = 2
MAX_BATCH_SIZE = 8192
MAX_GRIFFIN_LIM_ITERS = 5000
#: Mid-levels traced for an emotion target (those with the largest |effect| on it for this clip).
DEFAULT_TOP_MIDLEVELS = 3


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def minimum_samples(n_segments: int) -> int:
    """Fewest samples accepted for ``n_segments`` segments."""
    return SAMPLES_PER_COEFFICIENT * (n_segments + 1)


def _check_options(target, n_samples, ratio, batch_size, hide_value, griffin_lim_iters, top_midlevels):
    try:
        kind, index = target_index(str(target))
    except ValueError as err:
        raise OptionError(str(err), code="unknown_target") from None
    if not _is_int(n_samples) or not (1 <= n_samples <= MAX_SAMPLES):
        raise OptionError(f"samples must be a whole number from 1 to {MAX_SAMPLES:,} "
                          f"(at least 2 x (segments + 1), about 600 for 10 s), got {n_samples!r}", code="bad_samples")
    if not _is_number(ratio) or ratio <= 0:
        raise OptionError(f"ratio must be a positive number (the paper's is 1e-6), got {ratio!r}", code="bad_ratio")
    if not _is_int(batch_size) or not (1 <= batch_size <= MAX_BATCH_SIZE):
        raise OptionError(f"batch size must be a whole number from 1 to {MAX_BATCH_SIZE}, got {batch_size!r}",
                          code="bad_batch_size")
    if not _is_number(hide_value):
        raise OptionError(f"hide value must be a finite number, got {hide_value!r}", code="bad_hide_value")
    if not _is_int(griffin_lim_iters) or not (1 <= griffin_lim_iters <= MAX_GRIFFIN_LIM_ITERS):
        raise OptionError(f"Griffin-Lim iterations must be a whole number from 1 to {MAX_GRIFFIN_LIM_ITERS}, "
                          f"got {griffin_lim_iters!r}", code="bad_iterations")
    if not _is_int(top_midlevels) or not (1 <= top_midlevels <= len(MIDLEVEL_NAMES)):
        raise OptionError(f"top_midlevels must be 1..{len(MIDLEVEL_NAMES)}, got {top_midlevels!r}",
                          code="bad_top_midlevels")
    return kind, index


def explain_window(samples: np.ndarray, offset: float) -> tuple[np.ndarray, bool]:
    """The 10 s window starting at ``offset`` s (loop-padded when the clip is shorter than 10 s).

    Raises:
        OptionError(code="bad_offset") when no full window starts there.
    """
    duration = len(samples) / SAMPLE_RATE
    latest = max(0.0, duration - WINDOW_SECONDS)
    if not _is_number(offset) or offset < 0 or offset > latest + 1e-9:
        where = "0 (the clip is shorter than 10 s)" if latest == 0 else f"0 to {latest:.2f} s"
        raise OptionError(f"offset {offset!r} s is out of range: the clip lasts {duration:.2f} s, so a 10 s "
                          f"window can start at {where}", code="bad_offset")
    start = min(int(round(offset * SAMPLE_RATE)), max(0, len(samples) - WINDOW_SAMPLES))
    window = samples[start:start + WINDOW_SAMPLES]
    return loop_pad(window, WINDOW_SAMPLES).astype(np.float32), len(samples) < WINDOW_SAMPLES


def _network_and_frontend(model):
    """Accept a :class:`TwoLevelModel` or any object whose ``.network`` (or itself) has
    ``forward_spectrogram`` and a ``.frontend``."""
    network = getattr(model, "network", model)
    if not hasattr(network, "forward_spectrogram"):
        raise TypeError("explain() needs a model whose network has forward_spectrogram()")
    frontend = getattr(network, "frontend", None) or getattr(model, "frontend", None)
    if frontend is None:
        raise TypeError("explain() needs a model with a .frontend (audio -> normalised spectrogram)")
    return network, frontend


def _emotion_layer(model, network) -> tuple[np.ndarray, np.ndarray] | None:
    layer = getattr(network, "emotion", None)
    if isinstance(layer, torch.nn.Linear):
        return (layer.weight.detach().cpu().double().numpy(), layer.bias.detach().cpu().double().numpy())
    return None


def explain(model, audio: Audio, target: str = "articulation", n_samples: int = DEFAULT_SAMPLES,
            ratio: float = DEFAULT_RATIO, seed: int = 0, batch_size: int = 256, hide_value: float = 0.0,
            offset: float = 0.0, resynthesis: bool = True, griffin_lim_iters: int = 64,
            progress: ProgressCallback = None, top_midlevels: int = DEFAULT_TOP_MIDLEVELS,
            faithfulness_draws: int = DEFAULT_RANDOM_DRAWS) -> Explanation:
    """Explain one output of the model on one 10 s window with LIME on spectrogram segments.

    Args:
        model: a :class:`twolevel.predict.TwoLevelModel` (or any object whose ``.network`` has
            ``forward_spectrogram`` and ``.frontend``).
        audio: decoded :class:`twolevel.audio.Audio` (22,050 Hz mono); a path or file bytes are
            decoded first.
        target: a mid-level or emotion name. For an emotion, the ``top_midlevels`` mid-levels with
            the largest |effect| on it for this window are traced too (same passes).
        n_samples: perturbation samples (paper: 50,000); at least 2 x (segments + 1).
        ratio: keep a segment when p / |weight| < ratio.
        seed: seeds the samples, the deletion check's random draws and Griffin-Lim's initial phase.
        batch_size: samples per forward pass.
        hide_value: value of hidden segments, in the normalised input space (0, the paper's).
        offset: start of the explained window, s.
        resynthesis: build the audio of the explanations.
        griffin_lim_iters: Griffin-Lim iterations.
        progress: ``callable(done_samples, total_samples)`` after every batch, or None.

    Returns:
        :class:`Explanation`.

    Raises:
        OptionError: ``unknown_target``, ``bad_samples``, ``bad_offset``, ``bad_ratio``, ...
    """
    t_start = time.perf_counter()
    kind, _ = _check_options(target, n_samples, ratio, batch_size, hide_value, griffin_lim_iters, top_midlevels)
    if not _is_int(seed) or seed < 0:
        raise OptionError(f"seed must be a non-negative whole number, got {seed!r}", code="bad_seed")
    network, frontend = _network_and_frontend(model)
    if not isinstance(audio, Audio):  # a path or file bytes: decode with the model's own limits
        audio = model.load_audio(audio) if hasattr(model, "load_audio") else load_audio(audio)
    device = network_device(network)
    window, loop_padded = explain_window(audio.samples, offset)
    # Dropout or batch statistics would make every sample random: explain the network in eval mode.
    if network.training:
        network.eval()
    timings = {}

    t = time.perf_counter()
    with torch.inference_mode():
        spec = frontend(torch.from_numpy(window)[None].to(device))[0, 0, :WINDOW_FRAMES]
    spectrogram = spec.float().cpu().numpy()
    segmentation = segment_spectrogram(spectrogram)
    timings["segmentation"] = time.perf_counter() - t
    n_segments = segmentation.n_segments
    if n_samples < minimum_samples(n_segments):
        raise OptionError(f"samples={n_samples} is too few for the {n_segments} segments of this window: "
                          f"need at least {minimum_samples(n_segments)} (2 x (segments + 1)); "
                          f"the paper uses 50,000", code="bad_samples")

    t = time.perf_counter()
    switches = sample_switches(n_samples, n_segments, seed)
    outputs = run_perturbations(network, spectrogram, segmentation.labels, switches, float(hide_value),
                                batch_size, progress)
    timings["sampling"] = time.perf_counter() - t
    timings["samples_per_second"] = n_samples / max(timings["sampling"], 1e-9)

    t = time.perf_counter()
    fit = fit_surrogate(switches, outputs)
    timings["surrogate"] = time.perf_counter() - t

    # The unperturbed window (row 0) gives the predictions and the level-1 effects.
    mid, emo = outputs[0, :len(MIDLEVEL_NAMES)], outputs[0, len(MIDLEVEL_NAMES):]
    layer = _emotion_layer(model, network)
    effects = Effects.from_layer(*layer, mid) if layer else Effects(np.zeros((len(EMOTION_NAMES), len(MIDLEVEL_NAMES))), emo)

    traced = [(target, "target", None)]
    if kind == "emotion":
        traced += [(m, "via_midlevel", effect) for m, effect in effects.top_midlevels(target, top_midlevels)]
    selections = []
    for output, role, effect in traced:
        i = TARGET_NAMES.index(output)
        positive, negative = select_segments(fit.coef[i], fit.pvalues[i], ratio)
        selections.append(Selection(output, positive, negative, float(ratio), role, effect))

    t = time.perf_counter()
    checks = deletion_check(network, spectrogram, segmentation.labels, n_segments,
                            {s.output: (s.positive, s.negative) for s in selections},
                            {n: i for i, n in enumerate(TARGET_NAMES)}, float(hide_value),
                            faithfulness_draws, seed, batch_size)
    selections = [Selection(s.output, s.positive, s.negative, s.ratio, s.role, s.effect, checks[s.output])
                  for s in selections]
    timings["faithfulness"] = time.perf_counter() - t

    resynth = None
    if resynthesis:
        t = time.perf_counter()
        masks = {s.output: (segmentation.mask(s.positive), segmentation.mask(s.negative)) for s in selections}
        resynth = resynthesise(window, masks, frontend.filterbank.detach().cpu().numpy(), griffin_lim_iters,
                               DEFAULT_MOMENTUM, device, seed)
        timings["resynthesis"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start

    parameters = {
        "target": target, "n_samples": n_samples, "ratio": float(ratio), "seed": seed, "batch_size": batch_size,
        "hide_value": float(hide_value), "offset": float(offset), "kernel_width": KERNEL_WIDTH,
        "distance": "cosine to all-ones", "segmentation": segmentation.parameters(),
        "resynthesis": bool(resynthesis), "griffin_lim_iters": griffin_lim_iters, "momentum": DEFAULT_MOMENTUM,
        "top_midlevels": top_midlevels if kind == "emotion" else None,
        "faithfulness_draws": faithfulness_draws, "device": str(device),
    }
    return Explanation(
        name=audio.name,
        model_version=str(getattr(model, "model_version", getattr(network, "model_version", "unknown"))),
        target=target, target_kind=kind, offset=float(offset), loop_padded=loop_padded,
        spectrogram=spectrogram, segmentation=segmentation, surrogate=fit, selections=selections,
        midlevels=dict(zip(MIDLEVEL_NAMES, map(float, mid))), emotions=dict(zip(EMOTION_NAMES, map(float, emo))),
        effects=effects, parameters=parameters, timings=timings, band_frequencies=band_centre_frequencies(),
        resynthesis=resynth,
    )


def repeats_summary(runs: list[dict]) -> dict:
    """Stability of the selections over runs with different seeds (explanation dicts, same window).

    Returns:
        ``{"seeds": [...], "runs": K, "outputs": {output: {"positive", "negative", "signed", "pairs"}}}``
        with mean pairwise Jaccard overlaps of the selected segment ids.
    """
    outputs = [s["output"] for s in runs[0]["selections"]]
    per_output = {}
    for output in outputs:
        chosen = [next(s for s in run["selections"] if s["output"] == output) for run in runs
                  if any(s["output"] == output for s in run["selections"])]
        per_output[output] = selection_stability(chosen)
    return {"seeds": [run["parameters"]["seed"] for run in runs], "runs": len(runs), "outputs": per_output}
