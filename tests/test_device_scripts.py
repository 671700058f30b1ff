"""The device machine's scripts run there with minutes to spare, once per session at most: a dry
run on the CPU here catches what would waste that call (session 17's GPU check lost its bf16 cases
to an attribute the bf16 wrapper lacked)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_writes_every_case(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                           "--samples", "600", "--paper-width", "0.0625", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())["rows"]
    assert [r["case"] for r in rows] == ["shipped w0.125 fp32", "shipped w0.125 bf16 autocast",
                                         "shipped w0.125 fp32 auto", "paper w0.0625 random weights fp32",
                                         "paper w0.0625 random weights bf16 autocast"]
    assert all(r["samples"] > 0 and r["tflops"] > 0 for r in rows)
    assert 0.0 <= rows[1]["jaccard_vs_fp32_min"] <= rows[1]["jaccard_vs_fp32_mean"] <= 1.0
    assert (tmp_path / "gpu_check.md").read_text().count("\n| ") == 6  # header + 5 cases
