"""Process-wide settings that make the CPU forward passes fast: the C allocator, once per process.

Why: a batch of 256 perturbed spectrograms allocates activation blocks of 10 to 800 MB per layer.
glibc's malloc serves blocks above its mmap threshold (at most 32 MB when left to itself) with
``mmap`` and hands them back to the kernel on ``free``, so every batch page-faults its activations
in again: half of an explanation's time was kernel time (issue 10: user 2m20, sys 2m29).
``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` would fix it, but environment variables only
act when set before the process starts, which the Python API, ``twolevel-cli`` and the TorchServe
worker cannot all rely on. So :func:`tune_allocator` sets the same two knobs with ``mallopt``
when a model is loaded: big blocks come from the heap and stay there for the next batch.

Cost: the process keeps its peak heap (the largest batch's activations: ~0.5 GB per trunk of the
shipped width at batch 256, a few GB at paper width) instead of returning it between batches. That
peak stays the peak only while batches keep one shape: blocks of other sizes fragment a heap that
is never trimmed, so :func:`twolevel.explain.sampling.run_perturbations` pads every CPU batch to
the full batch size. Blocks
above :data:`MMAP_THRESHOLD_BYTES` are still mapped and returned. ``TWOLEVEL_MALLOPT=0`` turns it
off. Without glibc (macOS, musl, Windows) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

#: ``mallopt`` parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (a paper-width activation block at batch 256 is ~0.8 GB).
MMAP_THRESHOLD_BYTES = 1 << 30
#: Never give the top of the heap back (-1 is read as the largest unsigned value).
TRIM_THRESHOLD_BYTES = -1

_state: dict = {}


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; returns whether they are in effect.

    Idempotent and cheap after the first call. Returns False (and changes nothing) off glibc, when
    ``$TWOLEVEL_MALLOPT`` is ``0``, or when ``mallopt`` refuses a value.
    """
    if "tuned" in _state:
        return _state["tuned"]
    tuned = False
    if os.environ.get("TWOLEVEL_MALLOPT", "1").strip().lower() not in {"0", "false", "no", "off"}:
        tuned = _mallopt_glibc()
    _state["tuned"] = tuned
    return tuned


def _mallopt_glibc() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error; setting either one also stops glibc from moving
    # the thresholds by itself.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) & bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def allocator_tuned() -> bool | None:
    """Whether :func:`tune_allocator` took effect in this process (None: not called yet)."""
    return _state.get("tuned")
