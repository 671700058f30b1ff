"""One request suite for every KServe-facing server (TorchServe on KServe's layout, the KServe-native
server): the v1 and v2 predict and explain routes with the same payloads, and refusals as 4xx JSON.

Each check compares the server's answer with the same library call made in the test process.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

MODEL = "twolevel"
#: The handler: section both servers run the suite with (small caps, one thread, few Griffin-Lim iterations).
HANDLER_SECTION = """\
handler:
  max_seconds: 30
  max_explain_seconds: 30
  default_samples: 500
  max_samples: 2000
  explain_batch_size: 64
  griffin_lim_iters: 8
  threads: 1
"""
EXPLAIN = {"target": "energy", "samples": 700, "seed": 3}


def post(base: str, path: str, payload, headers: dict | None = None, content_type: str = "application/json",
         timeout: float = 300) -> tuple[int, dict | bytes]:
    """POST ``payload`` (a dict as JSON, or bytes as they are); (status, decoded JSON or raw bytes)."""
    body = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    req = urllib.request.Request(base + path, data=body, method="POST",
                                 headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def v1_body(audio: bytes, **options) -> dict:
    return {"instances": [{"data": base64.b64encode(audio).decode(), **options}]}


def v2_body(audio: bytes, **parameters) -> dict:
    body = {"id": "suite-1", "inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1],
                                         "data": [base64.b64encode(audio).decode()]}]}
    if parameters:
        body["parameters"] = parameters
    return body


def v2_result(body: dict) -> dict:
    assert body["model_name"] == MODEL and len(body["outputs"]) == 1, body
    out = body["outputs"][0]
    assert out["datatype"] == "BYTES" and out["shape"] == [1]
    return json.loads(out["data"][0])


def assert_same_prediction(got: dict, expected: dict) -> None:
    assert got["model_version"] == expected["model_version"]
    assert got["duration"] == pytest.approx(expected["duration"])
    for group in ("emotions", "midlevels"):
        for k, v in expected[group].items():
            assert got[group][k] == pytest.approx(v, rel=1e-4, abs=1e-5), (group, k)


def assert_same_explanation(got: dict, expected: dict) -> None:
    assert got["target"] == expected["target"] == EXPLAIN["target"]
    assert got["parameters"]["n_samples"] == EXPLAIN["samples"]
    assert [s["positive"] for s in got["selections"]] == [s["positive"] for s in expected["selections"]]
    assert [s["negative"] for s in got["selections"]] == [s["negative"] for s in expected["selections"]]


def expected_results(model, audio: bytes) -> tuple[dict, dict]:
    """The in-process prediction and explanation the servers must reproduce, as JSON."""
    from twolevel.explain import explain

    pred = model.predict(audio).to_dict()
    exp = explain(model, model.load_audio(audio), target=EXPLAIN["target"], n_samples=EXPLAIN["samples"],
                  seed=EXPLAIN["seed"], batch_size=64, resynthesis=False)
    return json.loads(json.dumps(pred)), json.loads(json.dumps(exp.to_dict(include_audio=False)))


def run_suite(base: str, audio: bytes, expected: tuple[dict, dict], headers: dict | None = None) -> None:
    """v1/v2 predict and explain, then refusals; every answer JSON with the right status."""
    pred, exp = expected
    status, body = post(base, f"/v1/models/{MODEL}:predict", v1_body(audio), headers)
    assert status == 200, body
    assert_same_prediction(body["predictions"][0], pred)

    status, body = post(base, f"/v1/models/{MODEL}:explain", v1_body(audio, **EXPLAIN), headers)
    assert status == 200, body
    assert_same_explanation(body["explanations"][0], exp)

    status, body = post(base, f"/v2/models/{MODEL}/infer", v2_body(audio), headers)
    assert status == 200, body
    assert_same_prediction(v2_result(body), pred)

    status, body = post(base, f"/v2/models/{MODEL}/explain", v2_body(audio, **EXPLAIN), headers)
    assert status == 200, body
    assert_same_explanation(v2_result(body), exp)

    # Refusals: 4xx with the library's error code, as JSON.
    status, body = post(base, f"/v1/models/{MODEL}:predict", v1_body(b"not an audio file at all"), headers)
    assert status == 415 and body["error"] == "not_audio", (status, body)
    status, body = post(base, f"/v1/models/{MODEL}:explain", v1_body(audio, target="happiness"), headers)
    assert status == 400 and body["error"] == "unknown_target", (status, body)
    status, body = post(base, f"/v2/models/{MODEL}/infer",
                        {"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}]}, headers)
    assert status == 400 and body["error"] == "bad_base64", (status, body)
    status, body = post(base, f"/v1/models/{MODEL}:predict", b'{"instances": [', headers)
    assert 400 <= status < 500 and isinstance(body, dict) and "error" in body, (status, body)


@contextlib.contextmanager
def server_process(cmd: list, cwd, env: dict, log, ready_url: str, is_ready, wait: float = 240):
    """Run a server command in its own process group until ``is_ready(json at ready_url)``; stop it on exit."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + wait
        while True:
            assert proc.poll() is None, Path(log).read_text()[-3000:]
            try:
                with urllib.request.urlopen(ready_url, timeout=5) as resp:
                    if is_ready(json.loads(resp.read())):
                        break
            except (OSError, ValueError, KeyError, IndexError):
                pass
            assert time.monotonic() < deadline, f"{cmd[:4]} not ready after {wait:.0f} s"
            time.sleep(0.5)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
