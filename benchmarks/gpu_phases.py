"""Where a 50,000-sample explanation spends its seconds on a GPU, cold and warm.

Its first version timed one explanation after a 700-sample warm-up: on the H100 lent on
2026-11-26 the shipped model took 2.95 s, while the bare forward of 50,000 samples
(``gpu_sweep.py``) took 0.33 s. This script found the gap: first passes of new batch shapes.
It times ``warm_up`` and the first explanation after it (a server's start), then, for each
setting, the same explanation three times in one process (run 1: the setting's first run;
runs 2-3 warm) with the explainer's own phase timings (segmentation, sampling, surrogate,
faithfulness), for

* ``torch.backends.cudnn.benchmark`` off (PyTorch's default) and on;
* the library's precisions fp32, bf16 and fp16 (autocast of the perturbation passes; the Jaccard
  overlap of all 15 outputs' selections against fp32, same seed; fp16 on CUDA only);
* batch sizes 256 (the option's default), 1024 and 4096;
* ``samples="auto"``;
* the paper-width network (random weights: the cost is the paper's) in fp32, bf16 and fp16.

Then one warm fp32 run under ``torch.profiler`` (top operators by device and host time), and the
surrogate's normal equations in float64 on the device against the CPU fit.

    python benchmarks/gpu_phases.py --out OUT_DIR            # on a CUDA machine
    python benchmarks/gpu_phases.py --device cpu --samples 1500 --paper-width 0.125   # dry run
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import all_selections, synchronise  # noqa: E402

from twolevel import example_path  # noqa: E402
from twolevel.checkpoint import default_model_path, load_checkpoint  # noqa: E402
from twolevel.explain import explain  # noqa: E402
from twolevel.explain.sampling import sample_switches, warm_up  # noqa: E402
from twolevel.explain.selection import jaccard  # noqa: E402
from twolevel.explain.surrogate import cosine_distance_to_ones, fit_surrogate, lime_kernel  # noqa: E402
from twolevel.labels import TARGET_NAMES  # noqa: E402
from twolevel.model import A2Mid2EJoint, ModelConfig  # noqa: E402
from twolevel.options import precisions_on  # noqa: E402
from twolevel.predict import TwoLevelModel  # noqa: E402

PHASES = ("segmentation", "sampling", "surrogate", "faithfulness")


def timed_explain(model: TwoLevelModel, audio, samples, batch_size: int, cap: int, precision: str = "fp32"):
    device = model.device
    synchronise(device)
    start = time.perf_counter()
    exp = explain(model, audio, target="articulation", samples=samples, auto_cap=cap, batch_size=batch_size,
                  resynthesis=False, precision=precision)
    synchronise(device)
    return time.perf_counter() - start, exp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--paper-width", type=float, default=1.0)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    casts = precisions_on(device.type)  # the library's options
    shipped = TwoLevelModel(load_checkpoint(default_model_path(), device=str(device)))
    audio = shipped.load_audio(example_path("nebula.ogg"))
    rows, reference = [], {}

    def case(label: str, network, samples=None, batch: int = 4096, runs: int = 3, cast: str = "fp32",
             bench: bool = False) -> None:
        if on_gpu:
            torch.backends.cudnn.benchmark = bench
        model = TwoLevelModel(network)
        samples = samples or args.samples
        for run in range(1, runs + 1):
            if on_gpu:
                torch.cuda.reset_peak_memory_stats(device)
            wall, exp = timed_explain(model, audio, samples, batch, args.samples, precision=cast)
            row = {"case": label, "cast": cast, "cudnn_benchmark": bench, "batch": batch, "run": run,
                   "samples": int(exp.parameters["n_samples"]), "wall_s": wall,
                   **{f"{p}_s": float(exp.timings.get(p, 0.0)) for p in PHASES}}
            if on_gpu:
                row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
            if samples == args.samples and run == runs:
                key = (label.split()[0], batch)
                if cast == "fp32" and not bench:
                    reference[key] = all_selections(exp)
                elif key in reference:
                    mine = all_selections(exp)
                    overlaps = [jaccard(reference[key][n], mine[n]) for n in TARGET_NAMES]
                    row["jaccard_vs_fp32_min"], row["jaccard_vs_fp32_mean"] = min(overlaps), float(np.mean(overlaps))
            rows.append(row)
            extra = "".join(f" {p} {row[p + '_s']:.3f}" for p in PHASES)
            jac = f" J {row['jaccard_vs_fp32_min']:.3f}/{row['jaccard_vs_fp32_mean']:.3f}" if "jaccard_vs_fp32_min" in row else ""
            print(f"  {label} {cast} bench={int(bench)} batch {batch} run {run}: {row['samples']:,} in "
                  f"{wall:.3f} s ({extra.strip()}){jac}", flush=True)

    net = shipped.network
    # A server's start: warm_up (every batch shape of the default batch size, here 4096), then the
    # first request; run 1 of every later case is then warm (benchmarks/gpu_check.py times cold runs).
    synchronise(device)
    start = time.perf_counter()
    warmed = warm_up(net, 4096)
    warm_up_s = time.perf_counter() - start
    print(f"  warm_up: batch sizes {warmed} in {warm_up_s:.3f} s", flush=True)
    case("shipped after warm_up", net, runs=1)
    for bench in (False, True):
        for cast in casts:
            case("shipped", net, cast=cast, bench=bench)
    for batch in (256, 1024):
        case("shipped", net, batch=batch, runs=2)
    case("shipped auto", net, samples="auto", runs=3)
    case("shipped auto", net, samples="auto", runs=2, bench=True)

    # One warm fp32 run under the profiler: what the host and the device spend it on.
    torch.backends.cudnn.benchmark = False
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if on_gpu else [])
    with torch.profiler.profile(activities=activities) as prof:
        timed_explain(shipped, audio, args.samples, 4096, args.samples)
    sort = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
    profile_text = (prof.key_averages().table(sort_by=sort, row_limit=25) + "\n\n"
                    + prof.key_averages().table(sort_by="cpu_time_total", row_limit=25))

    # The surrogate's normal equations on the device (float64) vs the whole CPU fit.
    window_segments = 300
    switches = sample_switches(args.samples, window_segments, 0)
    outputs = np.random.default_rng(0).normal(size=(args.samples, 15))
    start = time.perf_counter()
    fit_surrogate(switches, outputs)
    cpu_fit = time.perf_counter() - start
    x = torch.from_numpy(switches).to(device, torch.float64)
    w = torch.from_numpy(lime_kernel(cosine_distance_to_ones(switches))).to(device)
    y = torch.from_numpy(outputs).to(device)
    synchronise(device)
    start = time.perf_counter()
    for _ in range(3):
        xw = torch.cat([x, torch.ones(len(x), 1, device=device, dtype=torch.float64)], 1) * w.sqrt()[:, None]
        gram, rhs = xw.T @ xw, xw.T @ (y * w.sqrt()[:, None])
        beta = torch.linalg.solve(gram, rhs)
        (y * w.sqrt()[:, None] - xw @ beta).square().sum(0).cpu()
    device_fit = (time.perf_counter() - start) / 3
    surrogate = {"cpu_fit_s": cpu_fit, "device_normal_equations_s": device_fit, "segments": window_segments,
                 "warm_up_s": warm_up_s}
    print(f"  surrogate, {window_segments} segments: CPU fit {cpu_fit:.3f} s, device normal equations "
          f"{device_fit:.4f} s", flush=True)

    torch.manual_seed(0)
    paper = A2Mid2EJoint(ModelConfig(width=args.paper_width), mean=float(net.frontend.mean),
                         std=float(net.frontend.std)).to(device).eval()
    paper.model_version = "paper-width-random"
    for cast in casts:
        case(f"paper-w{args.paper_width:g}", paper, cast=cast, bench=True, runs=2)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"device": torch.cuda.get_device_name(device) if on_gpu else "cpu", "torch": torch.__version__}
    (out / "gpu_phases.json").write_text(json.dumps({"info": info, "rows": rows, "surrogate": surrogate}, indent=2))
    (out / "gpu_profile.txt").write_text(profile_text)
    lines = [f"Device: {info['device']}, torch {info['torch']}", "",
             "| case | cast | cudnn.benchmark | batch | run | samples | wall s | segmentation | sampling | "
             "surrogate | faithfulness | Jaccard vs fp32 (min / mean) |", "|---" * 12 + "|"]
    for r in rows:
        jac = f"{r['jaccard_vs_fp32_min']:.3f} / {r['jaccard_vs_fp32_mean']:.3f}" if "jaccard_vs_fp32_min" in r else ""
        lines.append(f"| {r['case']} | {r['cast']} | {'on' if r['cudnn_benchmark'] else 'off'} | {r['batch']} | "
                     f"{r['run']} | {r['samples']:,} | {r['wall_s']:.3f} | "
                     + " | ".join(f"{r[p + '_s']:.3f}" for p in PHASES) + f" | {jac} |")
    lines += ["", f"warm_up (batch sizes {warmed}) before the first case: {warm_up_s:.3f} s", "", f"Surrogate ({window_segments} segments, {args.samples:,} samples): CPU fit {cpu_fit:.3f} s; "
              f"normal equations + solve + residuals in float64 on the device {device_fit:.4f} s"]
    (out / "gpu_phases.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
