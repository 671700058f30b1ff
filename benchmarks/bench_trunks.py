"""A 3-trunk model's convolutions on the CPU: grouped (one stack) vs one trunk after another.

The shipped model has three trunks (``ModelConfig.trunks``). Its inference stack
(:meth:`twolevel.model.A2Mid2EJoint.inference_features`) runs them one after another as plain
convolutions on the CPU in fp32; the grouped stack it is cut from is the baseline here. Ratio in one run: seconds per
batch of 256 perturbed windows, one after another / grouped (below 1: the split is faster).

    python -m pytest benchmarks/bench_trunks.py --benchmark-only -s
"""
from __future__ import annotations

import pytest
import torch

from twolevel.model import A2Mid2EJoint, ModelConfig
from twolevel.signal import WINDOW_FRAMES

SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def stacks():
    torch.manual_seed(0)
    model = A2Mid2EJoint(ModelConfig(width=0.125, trunks=3)).eval()
    return {"grouped": model.inference_features(False), "one_after_another": model.inference_features(True)}


@pytest.mark.parametrize("layout", ["grouped", "one_after_another"])
def test_trunk_layout(benchmark, stacks, layout):
    spec = torch.randn(256, 1, WINDOW_FRAMES, 149).contiguous(memory_format=torch.channels_last)
    stack = stacks[layout]

    @torch.inference_mode()
    def forward():
        return stack(spec)

    forward()  # warm-up
    benchmark.pedantic(forward, rounds=3, iterations=1)
    SECONDS[layout] = benchmark.stats.stats.min
    if len(SECONDS) == 2:
        ratio = SECONDS["one_after_another"] / SECONDS["grouped"]
        benchmark.extra_info["ratio_vs_grouped"] = ratio
        print(f"\none trunk after another / grouped: {ratio:.2f} "
              f"({SECONDS['one_after_another']:.2f} s vs {SECONDS['grouped']:.2f} s per batch of 256)")
