"""The shipped multi-trunk model's convolutions on a device: grouped (one stack) vs one trunk after another.

On the CPU the inference stack runs the trunks one after another as plain convolutions
(``benchmarks/bench_trunks.py``: 3-5 % faster there). A GPU may prefer the other: one grouped
convolution launches a third of the kernels. This times, on ``--device``, both stacks of the
shipped model's weights on ready perturbed-size inputs (``batch x 1 x frames x bands``), per
batch size and precision (fp32, bf16 autocast), and checks they give the same outputs.

    python benchmarks/gpu_trunks.py --device cuda --out OUT       (a dry run: --device cpu --batch-sizes 64)

Prints and writes ``OUT/gpu_trunks.md`` and ``.json``: seconds per batch, samples/s and the ratio
one-after-another / grouped (below 1: the split is faster).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from gpu_sweep import timed  # beside this script: seconds per call after a warm-up, synchronised
from twolevel.checkpoint import default_model_path, load_checkpoint
from twolevel.explain.sampling import autocast
from twolevel.predict import TwoLevelModel
from twolevel.signal import N_BANDS, WINDOW_FRAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per setting")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    device = torch.device(args.device)
    network = TwoLevelModel(load_checkpoint(default_model_path(), device=str(device))).network.eval()
    trunks = network.config.trunks
    stacks = {"grouped": network.inference_features(False), "one_after_another": network.inference_features(True)}
    rows = []
    for batch in args.batch_sizes:
        torch.manual_seed(0)
        x = torch.randn(batch, 1, WINDOW_FRAMES, N_BANDS, device=device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            gap = (stacks["grouped"](x) - stacks["one_after_another"](x)).abs().max().item()
        for precision in ("fp32", "bf16"):
            seconds = {}
            for name, stack in stacks.items():
                def call(stack=stack, precision=precision):
                    with torch.inference_mode(), autocast(device, precision):
                        stack(x)
                seconds[name] = timed(call, device, args.repeats)
            rows.append({"batch": batch, "precision": precision, "max_abs_gap_fp32": gap,
                         "grouped_s": seconds["grouped"], "one_after_another_s": seconds["one_after_another"],
                         "samples_per_s_grouped": batch / seconds["grouped"],
                         "samples_per_s_one_after_another": batch / seconds["one_after_another"],
                         "ratio": seconds["one_after_another"] / seconds["grouped"]})
            print(f"batch {batch} {precision}: grouped {seconds['grouped'] * 1e3:.2f} ms, one after another "
                  f"{seconds['one_after_another'] * 1e3:.2f} ms, ratio {rows[-1]['ratio']:.3f} (gap {gap:.1e})",
                  flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    lines = [f"Device: {name}, torch {torch.__version__}, shipped model with {trunks} trunks "
             f"(width {network.config.width})", "",
             "| batch | precision | grouped ms | one after another ms | samples/s grouped | samples/s split "
             "| ratio split/grouped | max gap fp32 |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['precision']} | {r['grouped_s'] * 1e3:.2f} "
                     f"| {r['one_after_another_s'] * 1e3:.2f} "
                     f"| {r['samples_per_s_grouped']:,.0f} | {r['samples_per_s_one_after_another']:,.0f} "
                     f"| {r['ratio']:.3f} | {r['max_abs_gap_fp32']:.1e} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_trunks.md").write_text("\n".join(lines) + "\n")
    (out / "gpu_trunks.json").write_text(json.dumps({"device": name, "torch": torch.__version__,
                                                     "trunks": trunks, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
