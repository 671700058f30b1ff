"""Corpus jobs (`predict|explain --endpoint URL DIR --concurrency N --jsonl OUT`): the resume rules
without a server, then a real TorchServe with 2 workers: 50 files, one bad, one worker killed
mid-run (TorchServe restarts it), and nothing missing from OUT."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from twolevel.corpus_jobs import TRANSIENT, finished_files, run_corpus
from twolevel.errors import AudioError, TwolevelError

SR = 22_050


def write_wav(path: Path, seconds: float, freq: float, seed: int) -> None:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t)) + 0.02 * rng.standard_normal(len(t))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), SR, format="WAV", subtype="PCM_16")
    path.write_bytes(buf.getvalue())


def lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def test_resume_skips_results_and_final_errors_and_retries_transient_ones(tmp_path):
    files = []
    for i in range(6):
        f = tmp_path / "music" / f"{i}.wav"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"x")
        files.append(f)
    out = tmp_path / "out.jsonl"
    calls: list[str] = []
    flaky = {str(files[4]): 1}  # fails once with a transient error, then answers

    def call(path):
        calls.append(str(path))
        if path == files[2]:
            raise AudioError("not audio", code="not_audio")
        if flaky.get(str(path)):
            flaky[str(path)] -= 1
            raise TwolevelError("worker died", code="server_error")
        if path == files[5]:
            raise TwolevelError("down", code="server_down")
        return {"name": path.name}

    summary = run_corpus([tmp_path / "music"], call, out, concurrency=2, retries=1, backoff=0.01, progress=False)
    assert (summary.total, summary.ok, summary.failed, summary.retries) == (6, 4, 2, 2)
    rows = {r["file"]: r for r in lines(out)}
    assert len(rows) == 6 and rows[str(files[4])]["ok"] and rows[str(files[4])]["attempts"] == 2
    assert rows[str(files[2])]["error"] == "not_audio" and rows[str(files[5])]["error"] in TRANSIENT
    # Resume: results and the bad file are skipped; only the file that met a down server is tried again.
    assert finished_files(out) == {str(f) for f in files} - {str(files[5])}
    calls.clear()
    with out.open("a") as fh:
        fh.write('{"file": "cut off by a cra')  # a crash mid-line must not break the next run
    summary = run_corpus([tmp_path / "music"], lambda p: {"name": p.name}, out, progress=False)
    assert (summary.skipped, summary.ok, summary.failed) == (5, 1, 0)
    assert finished_files(out) == {str(f) for f in files}


@pytest.mark.server
@pytest.mark.slow
def test_fifty_files_two_workers_one_killed_mid_run(tmp_path_factory, tiny_checkpoint):
    pytest.importorskip("ts", reason="torchserve is not installed")
    psutil = pytest.importorskip("psutil")
    from twolevel.serving.torchserve import java_available, temporary_server

    if not java_available():
        pytest.skip("java is not installed")
    root = tmp_path_factory.mktemp("corpus")
    music = root / "music"
    music.mkdir()
    for i in range(49):
        write_wav(music / f"track-{i:02d}.wav", 4.0, 110 * (1 + i % 7), seed=i)
    (music / "track-bad.wav").write_bytes(b"RIFF....this is not a wav file")
    # The shipped deployment: two workers, no request batching (TorchServe drops a batch whose worker dies).
    config = ("minWorkers: 2\nmaxWorkers: 2\nbatchSize: 1\nmaxBatchDelay: 0\nresponseTimeout: 120\n"
              "handler:\n  max_seconds: 30\n  threads: 1\n")
    out = root / "predictions.jsonl"
    with temporary_server(root / "ts", tiny_checkpoint, config, threads=1, wait=240) as server:
        env = dict(os.environ, TWOLEVEL_TOKEN=server["token"], OMP_NUM_THREADS="1")
        cmd = [sys.executable, "-m", "twolevel_cli.main", "predict", "--endpoint", server["inference_address"],
               str(music), "--concurrency", "4", "--jsonl", str(out), "--json"]
        job = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        frontend = psutil.Process(int(server["pid"]))
        workers = [p for p in frontend.children(recursive=True) if "model_service_worker" in " ".join(p.cmdline())]
        assert len(workers) == 2, [p.cmdline() for p in workers]
        deadline = time.monotonic() + 300
        while not (out.is_file() and len(out.read_text().splitlines()) >= 8):
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()
            time.sleep(0.05)
        written_at_kill = len(out.read_text().splitlines())
        workers[0].send_signal(signal.SIGKILL)
        stdout, stderr = job.communicate(timeout=600)
        assert written_at_kill < 50
        # TorchServe replaced the killed worker: two live workers again, one of them new.
        deadline = time.monotonic() + 120
        while True:
            alive = [p for p in frontend.children(recursive=True) if "model_service_worker" in " ".join(p.cmdline())]
            if len(alive) == 2 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(alive) == 2 and workers[0].pid not in {p.pid for p in alive}
        # explain takes the same job options: two files, one JSON line each with the explanation.
        few = root / "few"
        few.mkdir()
        for i in (0, 1):
            (few / f"track-{i:02d}.wav").write_bytes((music / f"track-{i:02d}.wav").read_bytes())
        explained = root / "explanations.jsonl"
        proc = subprocess.run([sys.executable, "-m", "twolevel_cli.main", "explain", str(few), "--endpoint",
                               server["inference_address"], "--target", "energy", "--samples", "500",
                               "--concurrency", "2", "--jsonl", str(explained), "--json"],
                              env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows = lines(explained)
        assert len(rows) == 2 and all(r["ok"] and r["explanation"]["target"] == "energy" for r in rows), rows
        assert all(r["explanation"]["parameters"]["n_samples"] == 500 for r in rows)
    assert job.returncode == 1, stderr  # one file failed
    summary = json.loads(stdout)
    assert (summary["total"], summary["ok"], summary["failed"], summary["skipped"]) == (50, 49, 1, 0)
    rows = lines(out)
    assert len(rows) == 50 and {r["file"] for r in rows} == {str(p) for p in music.iterdir()}
    (bad,) = [r for r in rows if not r["ok"]]
    assert bad["file"].endswith("track-bad.wav") and bad["error"] in ("not_audio", "truncated")
    assert all(len(r["prediction"]["windows"]) == 1 for r in rows if r["ok"])
    # A second run resumes: everything is in OUT already, nothing is sent (the server is gone).
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    again = json.loads(rerun.stdout)
    assert (again["skipped"], again["ok"], again["failed"]) == (50, 0, 0) and len(lines(out)) == 50
