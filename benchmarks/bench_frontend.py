"""Front end for a 10 s clip: nnAudio inside the model vs librosa's STFT + the same filterbank in numpy.

Run: ``make bench`` or ``pytest benchmarks/bench_frontend.py --benchmark-only``.
The ratio (librosa time / ours) is stored in the benchmark's ``extra_info`` and printed.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from twolevel.frontend import Frontend, log_filterbank
from twolevel.signal import HOP_LENGTH, N_FFT, WINDOW_SAMPLES

librosa = pytest.importorskip("librosa")


def best_of(fn, repeats: int = 5) -> float:
    """Best wall time of ``repeats`` calls, in seconds (the baseline measured in the same run)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return (np.random.default_rng(0).standard_normal(WINDOW_SAMPLES) * 0.1).astype(np.float32)


def librosa_log_spectrogram(samples: np.ndarray, bank: np.ndarray) -> np.ndarray:
    mag = np.abs(librosa.stft(samples, n_fft=N_FFT, hop_length=HOP_LENGTH, window="hann", center=True,
                              pad_mode="reflect"))
    return np.log10(1.0 + bank @ mag).T


def test_frontend_vs_librosa(benchmark, clip):
    frontend = Frontend().eval()
    x = torch.from_numpy(clip)[None]
    bank = log_filterbank()

    @torch.inference_mode()
    def ours():
        return frontend.log_spectrogram(x)

    ref = librosa_log_spectrogram(clip, bank)
    np.testing.assert_allclose(ours()[0].numpy(), ref, atol=2e-3)  # same representation
    baseline = best_of(lambda: librosa_log_spectrogram(clip, bank))
    benchmark(ours)
    ours_seconds = benchmark.stats.stats.min
    ratio = ours_seconds / baseline
    benchmark.extra_info.update({"librosa_seconds": baseline, "time_ratio_vs_librosa": ratio})
    # nnAudio computes the STFT as a convolution: slower than an FFT on a CPU, but it runs on the
    # model's device inside the graph, where the GPU makes it cheap and no host round trip is needed.
    print(f"\nfront end, 10 s clip: librosa+numpy {baseline * 1e3:.1f} ms, ours {ours_seconds * 1e3:.1f} ms "
          f"(time ratio ours/librosa = {ratio:.2f})")
