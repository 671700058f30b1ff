"""bf16 against fp32 perturbation passes on this machine: seconds and the selections they give.

For each clip, one explanation per precision with the same seed and samples; reports the wall
time of the perturbation passes, their ratio, and the Jaccard overlap of every output's signed
selection (all 15 outputs at the explanation's ratio) between the two.

    python benchmarks/precision_check.py [--samples 50000] [--clips a.ogg b.ogg ...] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import all_selections  # noqa: E402

from twolevel import example_path  # noqa: E402
from twolevel.explain import explain  # noqa: E402
from twolevel.explain.selection import jaccard  # noqa: E402
from twolevel.labels import TARGET_NAMES  # noqa: E402
from twolevel.predict import TwoLevelModel  # noqa: E402

EXAMPLES = ("nebula.ogg", "enemy-unknown.ogg", "awakening.ogg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--clips", nargs="+", default=None, help="default: the three example clips")
    parser.add_argument("--target", default="articulation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = TwoLevelModel.load(device="cpu")
    clips = args.clips or [str(example_path(name)) for name in EXAMPLES]
    rows = []
    for clip in clips:
        audio = model.load_audio(clip)
        runs = {}
        for precision in ("fp32", "bf16"):
            exp = explain(model, audio, target=args.target, samples=args.samples, precision=precision,
                          resynthesis=False)
            runs[precision] = exp
        a, b = (all_selections(runs[p], runs[p].selection.ratio) for p in ("fp32", "bf16"))
        overlaps = [jaccard(a[n], b[n]) for n in TARGET_NAMES if a[n] or b[n]]
        seconds = {p: float(runs[p].timings["sampling"]) for p in runs}
        row = {"clip": Path(clip).name, "samples": args.samples, "fp32_s": seconds["fp32"], "bf16_s": seconds["bf16"],
               "speedup": seconds["fp32"] / seconds["bf16"], "jaccard_min": min(overlaps),
               "jaccard_mean": float(np.mean(overlaps)), "outputs_compared": len(overlaps)}
        rows.append(row)
        print(f"{row['clip']}: fp32 {row['fp32_s']:.1f} s, bf16 {row['bf16_s']:.1f} s ({row['speedup']:.2f}x); "
              f"selections Jaccard min {row['jaccard_min']:.3f}, mean {row['jaccard_mean']:.3f} "
              f"over {row['outputs_compared']} outputs", flush=True)
    info = {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    lines = [f"bf16 vs fp32 perturbation passes, {info['threads']} thread(s), torch {info['torch']}, "
             f"{args.samples:,} samples, target {args.target}", "",
             "| clip | fp32 s | bf16 s | speed-up | selections Jaccard min / mean (outputs) |", "|---|---:|---:|---:|---|"]
    lines += [f"| {r['clip']} | {r['fp32_s']:.1f} | {r['bf16_s']:.1f} | {r['speedup']:.2f}x | "
              f"{r['jaccard_min']:.3f} / {r['jaccard_mean']:.3f} ({r['outputs_compared']}) |" for r in rows]
    (out / "precision.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
