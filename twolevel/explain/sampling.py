"""Perturbation sampling: switch segments on and off and run the network on every sample.

Each sample is a 0/1 vector over segments (1 = the segment keeps its spectrogram values,
0 = it is set to the hide value). The masks are built on the model's device by indexing the
segment map with the 0/1 matrix (``keep = z[:, segment_map]``): one gather per batch, no Python
loop per segment or per sample (``torch.index_select`` on the flattened map, the same lookup).
All 7 mid-level and 8 emotion outputs come from the same passes.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Optional

import numpy as np
import torch

from ..options import SAMPLING_DESIGNS as DESIGNS
from ..options import default
from ..signal import N_BANDS, WINDOW_FRAMES, WINDOW_SAMPLES

#: ``callable(done_samples, total_samples)``, called after every batch.
ProgressCallback = Optional[Callable[[int, int], None]]


def sample_switches(n_samples: int, n_segments: int, seed: int, design: str = "antithetic") -> np.ndarray:
    """Random 0/1 matrix ``(n_samples, n_segments)`` uint8; row 0 is all ones (the input itself).

    Every switch is on with probability 1/2, as in LIME's image explainer. ``design`` says how
    rows relate:

    * ``"independent"``: every row drawn on its own (LIME's sampling).
    * ``"antithetic"``: rows come in pairs, a random row and its complement (``1 - z``; pair 0 is
      the input and the all-off row). Each row has the same distribution as before, so the
      surrogate estimates the same weights, but in a pair every even-order interaction of the
      segments (the network's pairwise non-linearity) takes the same value while the switches
      flip, so it no longer leaks into the weights (a fold-over design; exactly so with equal sample
      weights, nearly with LIME's kernel, which weighs a pair's rows within ~10 % of each other).
      The p-values keep their formula, which now over-states the weights' noise a little. Measured
      on 9 clips (benchmarks/results/adaptive-antithetic.md): two 50,000-sample selections agree
      at mean Jaccard 0.92 instead of 0.87-0.90, and ``samples="auto"`` needs half the samples.

    Drawn from ``numpy.random.default_rng(seed)``; the same seed and design give the same matrix,
    and the first ``m`` rows of an ``n``-row matrix are the ``m``-row matrix (rounds of
    ``samples="auto"`` rely on it).
    """
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {', '.join(DESIGNS)}, got {design!r}")
    rng = np.random.default_rng(seed)
    if design == "independent":
        switches = rng.integers(0, 2, size=(n_samples, n_segments), dtype=np.uint8)
    else:
        drawn = rng.integers(0, 2, size=((n_samples + 1) // 2, n_segments), dtype=np.uint8)
        drawn[0] = 1
        switches = np.empty((2 * len(drawn), n_segments), dtype=np.uint8)
        switches[0::2] = drawn
        np.subtract(1, drawn, out=switches[1::2])
        switches = switches[:n_samples]
    switches[0] = 1
    return switches


def perturbed_batch(spectrogram: torch.Tensor, segment_map: torch.Tensor, switches: torch.Tensor,
                    hide_value: float) -> torch.Tensor:
    """Build perturbed network inputs.

    Args:
        spectrogram: ``(frames, bands)`` normalised input, on the device.
        segment_map: int64 ``(frames, bands)`` segment ids, on the device.
        switches: ``(batch, n_segments)`` 0/1 (bool, integer or float), on the device.
        hide_value: value of hidden cells (in the normalised input space).

    Returns:
        ``(batch, 1, frames, bands)`` float tensor: the input where a cell's segment is on,
        ``hide_value`` where it is off.
    """
    frames, bands = segment_map.shape
    # One gather per batch: column j of the result is the switch of cell j's segment. index_select
    # on a flat map is several times faster on CPU than z[:, segment_map] followed by torch.where.
    keep = torch.index_select(switches.to(spectrogram.dtype), 1, segment_map.reshape(-1))
    # keep * (x - hide) + hide: x where on, hide where off, in two in-place passes.
    keep.mul_((spectrogram - hide_value).reshape(1, -1)).add_(hide_value)
    return keep.view(-1, 1, frames, bands)


@torch.inference_mode()
def run_perturbations(network, spectrogram: np.ndarray, segment_map: np.ndarray, switches: np.ndarray,
                      hide_value: float = default("hide_value"), batch_size: int = default("batch_size"),
                      progress: ProgressCallback = None, precision: str = default("precision")) -> np.ndarray:
    """Network outputs for every perturbed sample.

    Args:
        network: module with ``forward_spectrogram((B, 1, frames, bands)) -> (mid (B, 7), emo (B, 8))``
            and a ``.device`` (or parameters from which the device is read).
        spectrogram: ``(frames, bands)`` normalised input.
        segment_map: ``(frames, bands)`` segment ids from 0.
        switches: ``(n_samples, n_segments)`` 0/1 matrix.
        hide_value: value written into hidden segments.
        batch_size: samples per forward pass.
        progress: optional ``callable(done, total)``.
        precision: ``"fp32"``, or ``"bf16"``: the forward passes under ``torch.autocast``.

    Returns:
        float64 ``(n_samples, n_mid + n_emo)``: mid-levels then emotions, in label order.
    """
    device = network_device(network)
    spec = torch.as_tensor(np.asarray(spectrogram, dtype=np.float32), device=device)
    seg = torch.as_tensor(np.asarray(segment_map, dtype=np.int64), device=device)
    total = len(switches)
    on_gpu = device.type == "cuda"
    # Batches are padded (with copies of their first row) to fixed sizes. On a GPU, to one of a few
    # (padded_rows), so that cuDNN picks (or, with cudnn.benchmark, times) its kernels once per size
    # and process, not again for every odd-sized last batch or deletion check (measured on an H100:
    # a new shape cost ~0.3 s, against 0.44 s for all 50,000 passes of a one-trunk model). On a CPU,
    # to the full batch size, so that the heap kept by runtime.tune_allocator is reused exactly:
    # activation blocks of other sizes fragment it, and a process grew with every call (3-trunk
    # model, samples="auto", one thread: 1.1 GB after the first round, 5.2 GB after six, 7.2 GB in a
    # TorchServe worker; padded to powers of two: 2.5 GB; to the full batch: 1.6 GB throughout).
    # That costs up to batch_size - 1 passes per call: 944 more of 50,000 for those six rounds.
    # On a GPU also all switches go in one copy, and the outputs stay on the device and are copied
    # back once, so that no batch waits for the host.
    source = torch.from_numpy(np.ascontiguousarray(switches))
    if on_gpu:
        source = source.to(device)
    # The outputs go into one buffer made at the first batch: a small block kept per batch would sit
    # in the hole the batch's activations left and split it for the next batch (the 3-trunk model,
    # one thread, 50,000 samples: 3.0 GB with a list of per-batch outputs, 1.5 GB with the buffer).
    outputs = None
    for start in range(0, total, batch_size):
        chunk = source[start:start + batch_size].to(device)
        rows = len(chunk)
        padding = (padded_rows(rows, batch_size) if on_gpu else max(rows, batch_size)) - rows
        if padding:  # pad with copies of the first row
            chunk = torch.cat([chunk, chunk[:1].expand(padding, -1)])
        with autocast(device, precision):
            mid, emo = network.forward_spectrogram(perturbed_batch(spec, seg, chunk, hide_value))
        if outputs is None:
            n_mid = mid.shape[1]
            outputs = torch.empty((total, n_mid + emo.shape[1]), dtype=torch.float32, device=device)
        outputs[start:start + rows, :n_mid] = mid[:rows]
        outputs[start:start + rows, n_mid:] = emo[:rows]
        if progress is not None:  # on a GPU: batches queued; the copy back below waits for them
            progress(min(start + batch_size, total), total)
    if outputs is None:
        return np.empty((0, 0), dtype=np.float64)
    return outputs.double().cpu().numpy()


def autocast(device: torch.device, precision: str):
    """The context the forward passes run in: none for ``"fp32"``, autocast to bf16 or fp16 for
    ``"bf16"`` and ``"fp16"``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")


def padded_rows(rows: int, batch_size: int) -> int:
    """Rows a GPU batch of ``rows`` samples is padded to: the next power of two (at least 64), at
    most ``batch_size``; so a process sees at most ~7 batch shapes per batch size. (A CPU batch is
    padded to ``batch_size`` itself: see :func:`run_perturbations`.)"""
    if rows >= batch_size:
        return rows
    return min(batch_size, max(64, 1 << (rows - 1).bit_length()))


def gpu_batch_rows(batch_size: int) -> list[int]:
    """Every batch size :func:`run_perturbations` gives a GPU for this ``batch_size``, ascending."""
    return sorted({padded_rows(rows, batch_size) for rows in range(1, batch_size + 1)})


@torch.inference_mode()
def warm_up(network, batch_size: int = default("batch_size"), precision: str = default("precision")) -> list[int]:
    """Run the front end once on a 10 s window and the network once on every GPU batch shape of
    the perturbation passes (in ``precision``).

    The first pass of a shape pays for kernel selection and lazy module loading (measured on an
    H100 for 50,000 samples: 1.19 s cold against 0.70 s warm; with ``cudnn.benchmark`` at paper
    width, 11.4 s against 2.8 s), and the front end's first STFT about 0.13 s more. Servers call
    this once after loading, so that no request pays it. A no-op on the CPU (its kernels need no
    per-shape selection worth the time).

    Returns:
        the batch sizes run (``[]`` on the CPU).
    """
    device = network_device(network)
    if device.type != "cuda":
        return []
    rows = gpu_batch_rows(batch_size)
    frontend = getattr(network, "frontend", None)
    if frontend is not None:  # the explained window's spectrogram (explainer step 1)
        frontend(torch.zeros(1, WINDOW_SAMPLES, device=device))
    spec = torch.zeros(WINDOW_FRAMES, N_BANDS, device=device)
    seg = torch.zeros(WINDOW_FRAMES, N_BANDS, dtype=torch.int64, device=device)
    for n in rows:
        with autocast(device, precision):
            network.forward_spectrogram(perturbed_batch(spec, seg, torch.ones(n, 1, device=device), 0.0))
    torch.cuda.synchronize(device)
    return rows


def network_device(network) -> torch.device:
    """The device a module runs on: its ``.device`` attribute, else its first parameter's or buffer's."""
    device = getattr(network, "device", None)
    if isinstance(device, torch.device):
        return device
    for tensor in list(network.parameters()) + list(network.buffers()):
        return tensor.device
    return torch.device("cpu")
