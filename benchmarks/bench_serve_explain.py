"""Do /predictions wait for a running explanation? One worker vs two, on a real TorchServe.

For each model-config (``workers`` 1 or 2, ``batchSize`` 8, one torch thread per worker), one
run sends an explanation of an example clip (``TWOLEVEL_BENCH_EXPLAIN_SAMPLES``, default 5,000
samples, the shipped model) and, while it runs, a 10 s prediction every second. It reports the
predictions' p50 / p99 latency, how many were answered before the explanation ended, the
explanation's wall time, and the same predictions' latency on an idle server (the baseline, same
run). With one worker every prediction waits for the explanation (issue 10: p99 2.8 s -> 30 s).

Run: ``pytest benchmarks/bench_serve_explain.py --benchmark-only -s`` (needs Java).
"""
from __future__ import annotations

import io
import os
import threading
import time

import numpy as np
import pytest

pytest.importorskip("ts", reason="torchserve is not installed")
sf = pytest.importorskip("soundfile")

from twolevel import example_path  # noqa: E402
from twolevel.client import TorchServeClient  # noqa: E402
from twolevel.serving.torchserve import java_available, temporary_server  # noqa: E402

SR = 22_050
SAMPLES = int(os.environ.get("TWOLEVEL_BENCH_EXPLAIN_SAMPLES", "5000"))
N_PREDICTIONS = 8


def model_config(workers: int) -> str:
    return f"""\
minWorkers: {workers}
maxWorkers: {workers}
batchSize: 8
maxBatchDelay: 50
responseTimeout: 1800
startupTimeout: 300
handler:
  max_samples: 50000
  threads: 1
"""


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


@pytest.fixture(scope="module")
def clip_bytes():
    rng = np.random.default_rng(0)
    t = np.arange(10 * SR) / SR
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.mark.parametrize("workers", [1, 2])
def test_predictions_during_an_explanation(benchmark, tmp_path_factory, clip_bytes, workers):
    if not java_available():
        pytest.skip("java is not installed: TorchServe needs Java 11+")
    from twolevel.checkpoint import default_model_path

    with temporary_server(tmp_path_factory.mktemp(f"serve_w{workers}"), default_model_path(), model_config(workers),
                          threads=1, wait=400) as server:
        client = TorchServeClient(server["inference_address"], token=server["token"], timeout=1800,
                                  explain_timeout=1800)
        idle = []
        for _ in range(4):
            t0 = time.perf_counter()
            client.predict(clip_bytes)
            idle.append(time.perf_counter() - t0)
        done: dict[str, float] = {}

        def explain():
            t0 = time.perf_counter()
            client.explain(example_path("nebula.ogg"), target="articulation", samples=SAMPLES, include_audio=False)
            done["explain_end"] = time.perf_counter()
            done["explain_s"] = done["explain_end"] - t0

        busy: list[tuple[float, float]] = []  # (latency, end)

        def run():
            thread = threading.Thread(target=explain)
            thread.start()
            time.sleep(2.0)  # the explanation has reached a worker
            for _ in range(N_PREDICTIONS):
                if "explain_end" in done:
                    break
                t0 = time.perf_counter()
                client.predict(clip_bytes)
                busy.append((time.perf_counter() - t0, time.perf_counter()))
                time.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)))
            thread.join()

        benchmark.pedantic(run, rounds=1, iterations=1)
    latencies = [lat for lat, _ in busy]
    before = sum(end < done["explain_end"] for _, end in busy)
    info = {"workers": workers, "explain_samples": SAMPLES, "explain_s": done["explain_s"],
            "idle_p50_s": percentile(idle, 50), "busy_p50_s": percentile(latencies, 50),
            "busy_p99_s": percentile(latencies, 99), "predictions": len(busy),
            "answered_before_explanation_ended": before}
    benchmark.extra_info.update(info)
    print(f"\n[{workers} worker(s)] explanation of {SAMPLES} samples {done['explain_s']:.1f} s; predictions idle "
          f"p50 {info['idle_p50_s']:.2f} s, during it p50 {info['busy_p50_s']:.2f} s p99 {info['busy_p99_s']:.2f} s; "
          f"{before}/{len(busy)} answered before the explanation ended")
