"""/predictions throughput through a real TorchServe vs the in-process model, on the same clips.

One run measures, on the same sixteen 10 s clips and with the same torch thread count:

* in process: ``TwoLevelModel.predict_many`` on the decoded clips in batches of 8 (decode included),
* the server at concurrency 1 (one request at a time) and 8 (eight client threads), deployed as
  shipped (``twolevel/assets/model-config.yaml``: two workers, no request batching),

and reports clips/s, the ratios server / in-process (goal: >= 0.8 at concurrency 8) and the
p50 / p99 request latencies. The model is the shipped checkpoint when there is one, else a
randomly initialised paper-width model (the same cost per window).

Run: ``pytest benchmarks/bench_serve.py --benchmark-only -s`` (needs Java).
``TWOLEVEL_BENCH_THREADS`` sets the torch threads of both sides (default 1).
"""
from __future__ import annotations

import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("ts", reason="torchserve is not installed")
sf = pytest.importorskip("soundfile")

from twolevel.client import TorchServeClient  # noqa: E402
from twolevel.serving.torchserve import java_available, temporary_server  # noqa: E402

SR = 22_050
N_CLIPS = 16
THREADS = int(os.environ.get("TWOLEVEL_BENCH_THREADS", "1"))
RESULTS: dict[str, float] = {}
MODEL_CONFIG = f"""\
minWorkers: 2
maxWorkers: 2
batchSize: 1
maxBatchDelay: 0
responseTimeout: 600
startupTimeout: 180
handler:
  batch_windows: 16
  threads: {THREADS}
"""


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    out = []
    t = np.arange(10 * SR) / SR
    for i in range(N_CLIPS):
        x = 0.3 * np.sin(2 * np.pi * (110 * (1 + i % 7)) * t) * (1 + 0.5 * np.sin(2 * np.pi * (1 + i % 3) * t))
        x = (x + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
        buf = io.BytesIO()
        sf.write(buf, x, SR, format="WAV", subtype="PCM_16")
        out.append(buf.getvalue())
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from twolevel.checkpoint import default_model_path, save_checkpoint
    from twolevel.model import A2Mid2EJoint, ModelConfig

    shipped = default_model_path()
    if shipped.is_file():
        return shipped
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bench_ckpt") / "paper-width.pt"
    save_checkpoint(A2Mid2EJoint(ModelConfig(width=1.0)), path, model_version="bench-random")
    return path


@pytest.fixture(scope="module")
def local_model(checkpoint):
    import torch

    from twolevel.predict import TwoLevelModel

    torch.set_num_threads(THREADS)
    return TwoLevelModel.load(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint):
    if not java_available():
        pytest.skip("java is not installed: TorchServe needs Java 11+")
    with temporary_server(tmp_path_factory.mktemp("bench_serve"), checkpoint, MODEL_CONFIG, threads=THREADS,
                          wait=300) as info:
        yield info


def test_in_process(benchmark, local_model, clips):
    def run():
        audios = [local_model.load_audio(c) for c in clips]
        for i in range(0, len(audios), 8):
            local_model.predict_many(audios[i : i + 8])

    run()  # warm-up
    benchmark.pedantic(run, rounds=3, iterations=1)
    RESULTS["in_process"] = N_CLIPS / benchmark.stats.stats.min
    benchmark.extra_info.update({"clips_per_second": RESULTS["in_process"], "threads": THREADS})
    print(f"\nin process: {RESULTS['in_process']:.2f} clips/s ({THREADS} thread(s))")


@pytest.mark.parametrize("concurrency", [1, 8])
def test_server_throughput(benchmark, server, clips, local_model, concurrency):
    client = TorchServeClient(server["inference_address"], token=server["token"], timeout=600)
    latencies: list[float] = []

    def one(clip):
        t0 = time.perf_counter()
        result = client.predict(clip)
        latencies.append(time.perf_counter() - t0)
        return result

    def run():
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(one, clips))

    first = run()  # warm-up, and a check that the server computes what the model computes
    expected = local_model.predict(clips[0]).to_dict()
    assert first[0].midlevels["articulation"] == pytest.approx(expected["midlevels"]["articulation"], rel=1e-4, abs=1e-5)
    latencies.clear()
    benchmark.pedantic(run, rounds=3, iterations=1)
    per_second = N_CLIPS / benchmark.stats.stats.min
    RESULTS[f"server_c{concurrency}"] = per_second
    info = {"clips_per_second": per_second, "concurrency": concurrency, "threads": THREADS,
            "latency_p50_s": percentile(latencies, 50), "latency_p99_s": percentile(latencies, 99)}
    base = RESULTS.get("in_process")
    if base:
        info["ratio_vs_in_process"] = per_second / base
    benchmark.extra_info.update(info)
    print(f"\nserver, concurrency {concurrency}: {per_second:.2f} clips/s"
          + (f" = {per_second / base:.2f} x in process" if base else "")
          + f"; latency p50 {info['latency_p50_s'] * 1e3:.0f} ms, p99 {info['latency_p99_s'] * 1e3:.0f} ms")
