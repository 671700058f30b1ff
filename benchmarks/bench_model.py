"""Model forward throughput (windows/s) at batch 1, 8 and 64, paper width vs a compact width.

Ratios in one run: each case's throughput relative to the paper width at batch 1.
"""
from __future__ import annotations

import pytest
import torch

from twolevel.signal import WINDOW_FRAMES
from twolevel.model import A2Mid2EJoint, ModelConfig, multiply_adds

RESULTS: dict[tuple[float, int], float] = {}


@pytest.mark.parametrize("width", [1.0, 0.25])
@pytest.mark.parametrize("batch", [1, 8, 64])
def test_forward_throughput(benchmark, width, batch):
    torch.manual_seed(0)
    model = A2Mid2EJoint(ModelConfig(width=width)).eval()
    spec = torch.randn(batch, 1, WINDOW_FRAMES, 149)

    @torch.inference_mode()
    def forward():
        return model.forward_spectrogram(spec)

    forward()  # warm-up
    rounds = 1 if width * batch >= 32 else 3
    benchmark.pedantic(forward, rounds=rounds, iterations=1)
    per_second = batch / benchmark.stats.stats.min
    RESULTS[(width, batch)] = per_second
    benchmark.extra_info.update({"windows_per_second": per_second, "gmac_per_window": multiply_adds(width) / 1e9})
    base = RESULTS.get((1.0, 1))
    if base:
        benchmark.extra_info["ratio_vs_paper_width_batch1"] = per_second / base
    print(f"\nwidth {width} batch {batch}: {per_second:.2f} windows/s"
          + (f" (x{per_second / base:.2f} of paper width at batch 1)" if base else ""))


PRECISION: dict[str, float] = {}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_perturbation_pass_precision(benchmark, precision):
    """The shipped width's perturbation pass (batch 256) under fp32 and bf16 autocast; bf16's
    ratio to fp32 in the same run (ExplainOptions.precision; about 1.5x on AVX-512 BF16 CPUs)."""
    from twolevel.explain.sampling import autocast

    torch.manual_seed(0)
    model = A2Mid2EJoint(ModelConfig(width=0.125)).eval()
    spec = torch.randn(256, 1, WINDOW_FRAMES, 149)

    @torch.inference_mode()
    def forward():
        with autocast(torch.device("cpu"), precision):
            return model.forward_spectrogram(spec)

    forward()  # warm-up
    benchmark.pedantic(forward, rounds=3, iterations=1)
    PRECISION[precision] = 256 / benchmark.stats.stats.min
    benchmark.extra_info["samples_per_second"] = PRECISION[precision]
    if precision == "bf16" and "fp32" in PRECISION:
        benchmark.extra_info["ratio_vs_fp32"] = PRECISION["bf16"] / PRECISION["fp32"]
        print(f"\nbf16 / fp32 perturbation passes: {PRECISION['bf16'] / PRECISION['fp32']:.2f}x")
