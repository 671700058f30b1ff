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
    assert [r["case"] for r in rows] == ["shipped w0.125 fp32", "shipped w0.125 bf16 (precision option)",
                                         "shipped w0.125 fp32 auto", "paper w0.0625 random weights fp32",
                                         "paper w0.0625 random weights bf16 (precision option)"]
    assert all(r["samples"] > 0 and r["tflops"] > 0 for r in rows)
    assert 0.0 <= rows[1]["jaccard_vs_fp32_min"] <= rows[1]["jaccard_vs_fp32_mean"] <= 1.0
    assert (tmp_path / "gpu_check.md").read_text().count("\n| ") == 6  # header + 5 cases


def test_stored_teacher_outputs_teach_as_the_teachers_folders_do(tmp_path, monkeypatch, members):
    """The device's student runs (scripts/device/stored_teachers.py) grow each fold's training set with
    exactly what the teachers' folders would give it."""
    import numpy as np

    monkeypatch.syspath_prepend(str(ROOT / "scripts" / "device"))
    from store_teacher_outputs import stored_outputs
    from stored_teachers import stored_teachers

    from synthetic import synthetic_set
    from twolevel.checkpoint import load_checkpoint, read_checkpoint
    from twolevel.distill import distilling, teacher_midlevels

    data, (m1, m2) = members  # an emotion teacher and a mid-level teacher, two folds each
    corpus = synthetic_set(6, 9, prefix="corpus:", rated=False)
    groups = {5: ([m1], [m2])}
    stored = stored_outputs(corpus, groups, state="best")  # fold<F>.pt, as the teachers' folders are read
    (tmp_path / "emotion").mkdir(), (tmp_path / "midlevel").mkdir()
    for fold in (0, 1):
        test = set(read_checkpoint(m1 / f"fold{fold}.pt")["metadata"]["test_ids"])
        train = data.subset([i for i, x in enumerate(data.ids) if x not in test])
        real = distilling([m1], corpus, n_items=4, seed=3, midlevel_teachers=[m2])(train)
        with stored_teachers(stored, 5):
            grown = distilling([tmp_path / "emotion"], corpus, n_items=4, seed=3,
                               midlevel_teachers=[tmp_path / "midlevel"])(train)
        assert grown.ids == real.ids and len(grown) == len(train) + 4
        assert np.array_equal(grown.emotions, real.emotions, equal_nan=True)
        assert np.array_equal(grown.midlevels, real.midlevels)
    # --state last reads the last-epoch fold models (fold<F>-last.pt) of the mid-level teachers
    last = stored_outputs(corpus, groups, state="last")["partitions"][5]["folds"][0]
    model = load_checkpoint(m2 / "fold0-last.pt")
    assert last["test_ids"] == sorted(model.metadata["test_ids"])
    assert np.array_equal(last["midlevels"], teacher_midlevels([model], corpus.specs))


def test_gpu_trunks_dry_run_compares_both_layouts(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_trunks.py"), "--device", "cpu",
                           "--batch-sizes", "4", "--repeats", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_trunks.json").read_text())
    assert report["trunks"] == 3 and [r["precision"] for r in report["rows"]] == ["fp32", "bf16"]
    assert all(r["grouped_s"] > 0 and r["one_after_another_s"] > 0 and r["max_abs_gap_fp32"] < 1e-4
               for r in report["rows"])
