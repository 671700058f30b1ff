"""Measurements of ``benchmarks/gpu_check.sh``: 50,000-sample explanations on the device.

Cases (one 10 s window of ``nebula.ogg``, target articulation, no resynthesis):

* the shipped model (width 0.125), fp32, fixed 50,000 samples, and ``samples="auto"``;
* the library's ``precision="bf16"`` (autocast of the perturbation passes and the deletion check) for
  the shipped model, with the Jaccard overlap of every output's selection between bf16 and fp32;
* on CUDA, the library's ``precision="fp16"`` for the shipped model, with the same Jaccard;
* the paper-width network (width 1.0; ``--paper-model`` a trained checkpoint, else random weights
  with the shipped normalisation: the cost per sample is the paper's, but a random network's
  effects are tiny, so its bf16 Jaccard is a worst case), fp32 and bf16.

Reports samples/s of the perturbation passes, achieved TFLOP/s (2 x multiply-adds of the CNN per
sample) and wall seconds per explanation, warm (the second run of the same explanation in the
process: what a server's requests cost after its warm-up on load) and cold (the first run:
kernel selection and lazy loading for every new batch shape), as a Markdown table and JSON (``--out``).
``--device cpu --samples 2000`` is a dry run that exercises every line without a GPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from twolevel import example_path
from twolevel.checkpoint import default_model_path, load_checkpoint
from twolevel.explain import explain
from twolevel.explain.selection import jaccard, select_segments
from twolevel.labels import TARGET_NAMES
from twolevel.model import A2Mid2EJoint, ModelConfig, multiply_adds
from twolevel.options import precision_runs_on
from twolevel.predict import TwoLevelModel


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(name: str, model: TwoLevelModel, audio, samples, batch_size: int, width: float,
             cap: int, precision: str = "fp32") -> tuple[dict, object]:
    """The same explanation twice: cold (the first passes of this network and precision in the
    process) and warm (what every later request of a server costs; servers warm up on load)."""
    device = model.device
    walls = []
    for _ in range(2):
        synchronise(device)
        start = time.perf_counter()
        exp = explain(model, audio, target="articulation", n_samples=samples, auto_cap=cap, batch_size=batch_size,
                      resynthesis=False, precision=precision)
        synchronise(device)
        walls.append(time.perf_counter() - start)
    cold, wall = walls
    n = int(exp.parameters["n_samples"])
    sampling = exp.timings["sampling"]
    flops = 2.0 * multiply_adds(width, trunks=model.network.config.trunks) * n / sampling
    row = {"case": name, "samples": n, "requested": samples, "wall_s": wall, "cold_wall_s": cold,
           "sampling_s": sampling, "samples_per_s": n / sampling, "tflops": flops / 1e12,
           "surrogate_s": exp.timings.get("surrogate"), "faithfulness_s": exp.timings.get("faithfulness"),
           "batch_size": batch_size}
    print(f"  {name}: {n:,} samples in {wall:.2f} s warm, {cold:.2f} s cold (sampling {sampling:.2f} s = "
          f"{n / sampling:,.0f} samples/s, {flops / 1e12:.2f} TFLOP/s)", flush=True)
    return row, exp


def all_selections(exp, ratio: float = 1e-6) -> dict[str, set]:
    """Output name -> its signed selection ``{(segment, +1 or -1)}`` at ``ratio``, for all 15 outputs."""
    out = {}
    for i, name in enumerate(TARGET_NAMES):
        positive, negative = select_segments(exp.surrogate.coef[i], exp.surrogate.pvalues[i], ratio)
        out[name] = {(s, 1) for s in positive} | {(s, -1) for s in negative}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=0, help="default: 4096 on CUDA, 256 on CPU")
    parser.add_argument("--paper-width", type=float, default=1.0, help="width of the 'paper' cases (dry runs: less)")
    parser.add_argument("--paper-model", default=None, help="a trained paper-width checkpoint (default: random weights)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="time cuDNN's kernels per shape")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    device = torch.device(args.device)
    batch = args.batch_size or (4096 if device.type == "cuda" else 256)
    if device.type == "cuda":  # off by default, as in the library; on, cuDNN times kernels per new shape
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "cudnn_benchmark": bool(args.cudnn_benchmark)}
    print(f"device: {info['device']} (torch {info['torch']}, CUDA {info['cuda']})", flush=True)

    shipped = TwoLevelModel(load_checkpoint(default_model_path(), device=str(device)))
    audio = shipped.load_audio(example_path("nebula.ogg"))
    bf16_ok = device.type == "cpu" or torch.cuda.is_bf16_supported()
    rows = []

    def against_fp32(row: dict, fp32, other, what: str) -> None:
        a, b = all_selections(fp32), all_selections(other)
        overlaps = {name: jaccard(a[name], b[name]) for name in TARGET_NAMES}
        row["jaccard_vs_fp32_min"] = min(overlaps.values())
        row["jaccard_vs_fp32_mean"] = float(np.mean(list(overlaps.values())))
        rows.append(row)
        print(f"  {what} vs fp32 selections: Jaccard min {row['jaccard_vs_fp32_min']:.3f}, "
              f"mean {row['jaccard_vs_fp32_mean']:.3f} over 15 outputs", flush=True)

    def fp32_and_bf16(label: str, network: A2Mid2EJoint, width: float):
        row, fp32 = run_case(f"{label} fp32", TwoLevelModel(network), audio, args.samples, batch, width, args.samples)
        rows.append(row)
        if not bf16_ok:
            return fp32
        row, bf16 = run_case(f"{label} bf16 (precision option)", TwoLevelModel(network), audio, args.samples, batch,
                             width, args.samples, precision="bf16")
        against_fp32(row, fp32, bf16, "bf16")
        return fp32

    width = shipped.network.config.width
    shipped_fp32 = fp32_and_bf16(f"shipped w{width:g}", shipped.network, width)
    if precision_runs_on(device.type, "fp16"):  # the library's precision="fp16" (CUDA only)
        row, fp16 = run_case(f"shipped w{width:g} fp16 (precision option)", shipped, audio, args.samples, batch, width,
                             args.samples, precision="fp16")
        against_fp32(row, shipped_fp32, fp16, "fp16")
    row, _ = run_case(f"shipped w{width:g} fp32 auto", shipped, audio, "auto", batch, width, args.samples)
    rows.append(row)

    if args.paper_model:  # a trained paper-width checkpoint: meaningful bf16 Jaccard
        paper = load_checkpoint(args.paper_model, device=str(device))
        label = f"paper w{paper.config.width:g} ({Path(args.paper_model).name})"
    else:  # random weights: the cost per sample is the paper's; tiny effects make bf16's Jaccard a worst case
        torch.manual_seed(0)
        paper = A2Mid2EJoint(ModelConfig(width=args.paper_width), mean=float(shipped.network.frontend.mean),
                             std=float(shipped.network.frontend.std)).to(device).eval()
        paper.model_version = "paper-width-random"
        label = f"paper w{args.paper_width:g} random weights"
    fp32_and_bf16(label, paper, paper.config.width)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    lines = [f"Device: {info['device']}, torch {info['torch']}, CUDA {info['cuda']}, "
             f"cudnn.benchmark {'on' if info['cudnn_benchmark'] else 'off'}", "",
             "| case | samples | wall s (warm) | wall s (cold) | samples/s | TFLOP/s | vs fp32 Jaccard (min / mean) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        jac = (f"{r['jaccard_vs_fp32_min']:.3f} / {r['jaccard_vs_fp32_mean']:.3f}" if "jaccard_vs_fp32_min" in r else "")
        lines.append(f"| {r['case']} | {r['samples']:,} | {r['wall_s']:.2f} | {r['cold_wall_s']:.2f} | {r['samples_per_s']:,.0f} | "
                     f"{r['tflops']:.2f} | {jac} |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
