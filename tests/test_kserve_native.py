"""The KServe-native model server (`twolevel-cli kserve`, a kserve.Model over the library): started
on loopback with a bearer token, then the same request suite as TorchServe on KServe's layout."""
from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("kserve", reason="the kserve extra is not installed")

from kserve_suite import HANDLER_SECTION, MODEL, expected_results, post, run_suite, server_process, v1_body  # noqa: E402
from twolevel.serving.torchserve import free_port  # noqa: E402

pytestmark = [pytest.mark.server, pytest.mark.slow]

TOKEN = "kserve-test-token"
TEST_MODEL_CONFIG = HANDLER_SECTION


@pytest.fixture(scope="module")
def kserve_native(tmp_path_factory, tiny_checkpoint):
    root = tmp_path_factory.mktemp("kserve-native")
    config = root / "model-config.yaml"
    config.write_text(TEST_MODEL_CONFIG)
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", TWOLEVEL_THREADS="1", TWOLEVEL_TOKEN=TOKEN)
    cmd = [sys.executable, "-m", "twolevel_cli.main", "kserve", "--host", "127.0.0.1", "--port", str(port),
           "--model", str(tiny_checkpoint), "--config", str(config), "--device", "cpu"]
    base = f"http://127.0.0.1:{port}"
    with server_process(cmd, root, env, root / "server.log", f"{base}/v2/health/ready",
                        lambda answer: answer.get("ready"), wait=180) as proc:
        yield {"base": base, "pid": proc.pid, "port": port}


def test_same_suite_as_torchserve(kserve_native, tiny_model, example_clip):
    audio = Path(example_clip).read_bytes()
    run_suite(kserve_native["base"], audio, expected_results(tiny_model, audio),
              headers={"Authorization": f"Bearer {TOKEN}"})


def test_model_routes_need_the_bearer_token_and_probes_do_not(kserve_native, example_clip):
    audio = Path(example_clip).read_bytes()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, body = post(kserve_native["base"], f"/v1/models/{MODEL}:predict", v1_body(audio), headers)
        assert status == 401 and body["error"] == "bad_token", (headers, status, body)
    with urllib.request.urlopen(f"{kserve_native['base']}/v2/health/live", timeout=10) as resp:
        assert resp.status == 200


def test_raw_and_multipart_bodies_like_torchserves(kserve_native, tiny_model, example_clip):
    from twolevel.client import _multipart

    audio = Path(example_clip).read_bytes()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    expected = tiny_model.predict(audio, name="song.ogg").to_dict()
    status, raw = post(kserve_native["base"], f"/v1/models/{MODEL}:predict", audio, auth, content_type="audio/ogg")
    assert status == 200 and raw["emotions"] == pytest.approx(expected["emotions"], rel=1e-4)
    body, ctype = _multipart({"name": "song.ogg"}, "data", "song.ogg", audio)
    status, got = post(kserve_native["base"], f"/v1/models/{MODEL}:predict", body, auth, content_type=ctype)
    assert status == 200 and got["name"] == "song.ogg", got
    assert got["midlevels"] == pytest.approx(expected["midlevels"], rel=1e-4)


def test_listens_on_loopback_only(kserve_native):
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process(kserve_native["pid"])
    listening = [c.laddr for c in (proc.net_connections if hasattr(proc, "net_connections") else proc.connections)(
        kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
    assert kserve_native["port"] in {addr.port for addr in listening}
