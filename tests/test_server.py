"""A real TorchServe, started once for this module on free loopback ports with its own temp and log dirs.

The archive packs the tiny test checkpoint with a test model-config.yaml (one thread, caps small
enough to test: 20 s of audio, 2,000 samples) and the server's max_request_size is lowered to
8 MiB so that an oversize body is cheap to send. Everything else is the project's
archives/config.properties. Bounded loops only; no timed asserts.
"""
from __future__ import annotations

import base64
import io
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ts", reason="torchserve is not installed")
sf = pytest.importorskip("soundfile")

from twolevel.client import TorchServeClient, read_key_file  # noqa: E402
from twolevel.errors import AudioError, OptionError, TwolevelError  # noqa: E402
from twolevel.serving.torchserve import (java_available, server_status, start_server,  # noqa: E402
                                         stop_server, temporary_server)

pytestmark = [pytest.mark.server, pytest.mark.slow]

SR = 22_050
MAX_REQUEST = 8 * 1024 * 1024
TEST_MODEL_CONFIG = """\
minWorkers: 1
maxWorkers: 1
batchSize: 8
maxBatchDelay: 50
responseTimeout: 300
startupTimeout: 180
handler:
  max_seconds: 20
  max_explain_seconds: 20
  default_samples: 500
  min_samples: 10
  max_samples: 2000
  explain_batch_size: 64
  griffin_lim_iters: 8
  threads: 1
"""


def wav_bytes(samples: np.ndarray, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, SR, format="WAV", subtype=subtype)
    return buf.getvalue()


def tone(seconds: float, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(len(t))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint):
    if not java_available():
        pytest.skip("java is not installed: TorchServe's frontend needs Java 11+ (set JAVA_HOME or put java on PATH)")
    with temporary_server(tmp_path_factory.mktemp("torchserve"), tiny_checkpoint, TEST_MODEL_CONFIG, threads=1,
                          wait=240, extra_properties={"max_request_size": MAX_REQUEST}) as info:
        yield info


@pytest.fixture(scope="module")
def client(server):
    return TorchServeClient(server["inference_address"], token=server["token"], timeout=120, explain_timeout=300)


@pytest.fixture(scope="module")
def example_bytes(example_clip):
    return Path(example_clip).read_bytes()


def raw_post(server, path, body, content_type="audio/wav", token=True):
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {server['token']}"
    req = urllib.request.Request(server["inference_address"] + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_server_runs_in_its_own_dirs_on_loopback(server):
    run = Path(server["run"])
    assert server["inference_address"].startswith("http://127.0.0.1:")
    assert server["management_address"].startswith("http://127.0.0.1:")
    assert (run / "tmp" / ".model_server.pid").is_file()
    assert (run / "key_file.json").is_file() and read_key_file(run / "key_file.json") == server["token"]
    assert (run / "logs" / "ts_log.log").is_file()
    status = server_status(run)
    assert status["running"] and status["ready"]
    listening = _listening_addresses(int(server["pid"]))
    # HTTP inference, management, metrics, and TorchServe's two gRPC ports: all on loopback.
    assert len(listening) >= 5, listening
    assert all(host == "127.0.0.1" for host, _ in listening), listening


def _listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(host, port) of every TCP socket in LISTEN state owned by ``pid``, read from /proc."""
    import os

    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state != "0A" or inode not in inodes:  # 0A = LISTEN
                    continue
                addr_hex, port_hex = local.split(":")
                if len(addr_hex) == 8:
                    host = ".".join(str(int(addr_hex[i:i + 2], 16)) for i in (6, 4, 2, 0))
                elif addr_hex == "0000000000000000FFFF0000" + "0100007F":
                    host = "127.0.0.1"  # IPv4-mapped loopback
                else:
                    host = addr_hex
                found.append((host, int(port_hex, 16)))
    return found


def test_predict_happy_path(client, example_clip, example_bytes, tiny_model):
    got = client.predict(example_clip).to_dict()
    expected = tiny_model.predict(example_bytes, name=Path(example_clip).name).to_dict()
    assert got["name"] == expected["name"] == "enemy-unknown.ogg"
    assert got["model_version"] == "tiny-test"
    assert got["duration"] == pytest.approx(expected["duration"])
    assert len(got["windows"]) == len(expected["windows"])
    for group in ("emotions", "midlevels"):
        for k, v in expected[group].items():
            assert got[group][k] == pytest.approx(v, rel=1e-4, abs=1e-5)


def test_explain_happy_path(client, example_clip, example_bytes, tiny_model):
    explain_mod = pytest.importorskip("twolevel.explain")
    got = client.explain(example_clip, target="articulation", samples=500, seed=1, include_audio=True)
    got = got.to_dict(include_audio=True)
    assert got["target"] == "articulation" and got["parameters"]["n_samples"] == 500
    assert got["audio"] and all(base64.b64decode(v)[:4] == b"fLaC" for v in got["audio"].values())
    exp = explain_mod.explain(tiny_model, tiny_model.load_audio(example_bytes), target="articulation", n_samples=500,
                              seed=1, batch_size=64, resynthesis=False)
    expected = json.loads(json.dumps(exp.to_dict(include_audio=False)))
    assert got["selections"][0]["positive"] == expected["selections"][0]["positive"]
    assert got["selections"][0]["negative"] == expected["selections"][0]["negative"]


def test_kserve_routes_reach_the_same_code(server, client, example_bytes):
    pytest.importorskip("twolevel.explain")
    b64 = base64.b64encode(example_bytes).decode()
    v1 = json.dumps({"instances": [{"data": b64, "target": "energy", "samples": 500, "seed": 2}]}).encode()
    status, body = raw_post(server, "/v1/models/twolevel:explain", v1, "application/json")
    assert status == 200, body[:300]
    via_v1 = json.loads(body)["explanations"][0]
    v2 = json.dumps({"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": [b64]}],
                     "parameters": {"target": "energy", "samples": 500, "seed": 2}}).encode()
    status, body = raw_post(server, "/v2/models/twolevel/explain", v2, "application/json")
    assert status == 200, body[:300]
    via_v2 = json.loads(json.loads(body)["outputs"][0]["data"][0])
    direct = client.explain(example_bytes, target="energy", samples=500, seed=2).to_dict()
    for other in (via_v1, via_v2):
        assert other["target"] == "energy"
        assert [s["positive"] for s in other["selections"]] == [s["positive"] for s in direct["selections"]]
    status, body = raw_post(server, "/v1/models/twolevel:predict", v1, "application/json")
    assert status == 200 and "emotions" in json.loads(body)["predictions"][0]


def test_16_concurrent_predictions(client, tiny_model):
    clips = [wav_bytes(tone(4 + i % 4, 220 * (1 + i % 5), seed=i)) for i in range(16)]
    expected = [tiny_model.predict(c).to_dict() for c in clips]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = [p.to_dict() for p in pool.map(client.predict, clips)]
    assert len(results) == 16
    for got, exp in zip(results, expected):
        assert got["duration"] == pytest.approx(exp["duration"])
        for k, v in exp["midlevels"].items():
            assert got["midlevels"][k] == pytest.approx(v, rel=1e-4, abs=1e-5)
        for k, v in exp["emotions"].items():
            assert got["emotions"][k] == pytest.approx(v, rel=1e-4, abs=1e-5)


def test_no_token_or_wrong_token_is_refused(server, example_bytes):
    status, body = raw_post(server, "/predictions/twolevel", example_bytes, "audio/ogg", token=False)
    assert status in (400, 401, 403)
    assert "token" in body.decode().lower() and "emotions" not in body.decode()
    bad = TorchServeClient(server["inference_address"], token="not-the-token")
    with pytest.raises(TwolevelError) as err:
        bad.predict(example_bytes)
    assert err.value.code == "bad_token"


def _bad_inputs(example_bytes):
    good = wav_bytes(tone(3))
    nan = tone(3)
    nan[10] = np.nan
    return [
        ("not_audio", 415, b"definitely not audio", {}),
        ("empty", 400, b"", {}),
        ("truncated", 400, good[: len(good) // 2], {}),
        ("non_finite", 422, wav_bytes(nan, "FLOAT"), {}),
        ("silent", 422, wav_bytes(np.zeros(SR, dtype=np.float32)), {}),
        ("too_long", 413, wav_bytes(tone(25)), {}),
        ("unknown_target", 400, example_bytes, {"explain": True, "target": "loudness"}),
        ("bad_samples", 400, example_bytes, {"explain": True, "samples": 100_000}),
    ]


def test_each_bad_input_gets_its_4xx_and_the_next_request_succeeds(server, client, example_bytes):
    good = wav_bytes(tone(3, 330))
    for code, status, body, opts in _bad_inputs(example_bytes):
        if opts.get("explain"):
            payload = json.dumps({"data": base64.b64encode(body).decode(),
                                  **{k: v for k, v in opts.items() if k != "explain"}}).encode()
            got_status, got = raw_post(server, "/explanations/twolevel", payload, "application/json")
        else:
            got_status, got = raw_post(server, "/predictions/twolevel", body, "audio/wav")
        assert got_status == status, (code, got[:300])
        answer = json.loads(got)
        assert answer["error"] == code and answer["message"] and "Traceback" not in answer["message"]
        ok_status, ok = raw_post(server, "/predictions/twolevel", good, "audio/wav")
        assert ok_status == 200 and "emotions" in json.loads(ok)
    # malformed JSON
    got_status, got = raw_post(server, "/explanations/twolevel", b'{"data": "abc", ', "application/json")
    assert got_status == 400 and json.loads(got)["error"] == "malformed_json"
    # The client maps refused audio back to AudioError (reported per file by the CLI) ...
    with pytest.raises(AudioError) as err:
        client.predict(b"definitely not audio")
    assert err.value.code == "not_audio"
    # ... and refused options to OptionError.
    with pytest.raises(OptionError) as err:
        client.explain(example_bytes, target="loudness", samples=500)
    assert err.value.code == "unknown_target"
    assert client.predict(good).model_version == "tiny-test"


def test_oversize_body_is_refused(server, client):
    big = b"\0" * (MAX_REQUEST + 1024)
    try:
        status, _ = raw_post(server, "/predictions/twolevel", big, "application/octet-stream")
    except (ConnectionError, urllib.error.URLError):
        status = None  # the server may close the connection while the body is still being sent
    assert status in (413, None)
    with pytest.raises(TwolevelError) as err:
        client.predict(big)
    assert err.value.code in ("too_large", "connection_lost")
    assert client.predict(wav_bytes(tone(2))).model_version == "tiny-test"


def _worker_pid(server):
    key = read_key_file(server["key_file"], "management")
    req = urllib.request.Request(f"{server['management_address']}/models/twolevel",
                                 headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        workers = json.loads(resp.read())[0]["workers"]
    return [w.get("pid") for w in workers if w.get("status") == "READY" and w.get("pid")]


def test_worker_killed_mid_request_is_restarted(server, client, example_bytes):
    import psutil

    pytest.importorskip("twolevel.explain")
    pids = _worker_pid(server)
    assert len(pids) == 1
    result = {}

    def slow_request():
        try:
            result["value"] = client.explain(example_bytes, target="articulation", samples=2000, seed=0)
        except TwolevelError as err:
            result["error"] = err

    thread = threading.Thread(target=slow_request)
    thread.start()
    worker = psutil.Process(pids[0])
    # Wait (bounded) until the worker is busy with the explanation, then kill it.
    for _ in range(100):
        if worker.cpu_percent(interval=0.1) > 20:
            break
    time.sleep(1.0)
    worker.kill()
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert "error" in result, "the killed request must fail, not hang or succeed"
    assert result["error"].code in ("server_error", "server_busy", "connection_lost")
    # The next request is queued until TorchServe has restarted the worker, then answered.
    got = client.predict(wav_bytes(tone(3)))
    assert got.model_version == "tiny-test"
    new_pids = []
    for _ in range(60):
        new_pids = _worker_pid(server)
        if new_pids:
            break
        time.sleep(1.0)
    assert new_pids and new_pids[0] != pids[0]


def test_cli_endpoint_gives_the_local_outputs(server, tiny_checkpoint, example_clip, tmp_path, monkeypatch):
    """``predict --endpoint`` and ``explain --endpoint`` against the same commands run locally."""
    pytest.importorskip("twolevel.explain")
    from click.testing import CliRunner

    from twolevel_cli.main import cli

    monkeypatch.setenv("TWOLEVEL_TOKEN", server["token"])
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    runner = CliRunner()
    remote = runner.invoke(cli, ["predict", "--json", "--endpoint", server["inference_address"], str(example_clip), str(bad)])
    local = runner.invoke(cli, ["predict", "--json", "--model", str(tiny_checkpoint), str(example_clip), str(bad)])
    assert remote.exit_code == 0 and local.exit_code == 0, remote.output + local.output
    r, l = json.loads(remote.stdout), json.loads(local.stdout)
    assert [e["error"] for e in r["errors"]] == [e["error"] for e in l["errors"]] == ["not_audio"]
    assert r["predictions"][0]["name"] == l["predictions"][0]["name"]
    for k, v in l["predictions"][0]["emotions"].items():
        assert r["predictions"][0]["emotions"][k] == pytest.approx(v, rel=1e-4, abs=1e-5)

    args = [str(example_clip), "--target", "tension", "--samples", "500", "--seed", "4", "--iterations", "8"]
    remote = runner.invoke(cli, ["explain", *args, "--endpoint", server["inference_address"], "--out", str(tmp_path / "remote")])
    local = runner.invoke(cli, ["explain", *args, "--model", str(tiny_checkpoint), "--out", str(tmp_path / "local")])
    assert remote.exit_code == 0 and local.exit_code == 0, remote.output + local.output
    for side in ("remote", "local"):
        assert (tmp_path / side / "report.html").is_file()
    r = json.loads((tmp_path / "remote" / "explanation.json").read_text())
    l = json.loads((tmp_path / "local" / "explanation.json").read_text())
    assert r["name"] == l["name"] == Path(example_clip).name
    assert r["target"] == l["target"] == "tension"
    assert [s["positive"] for s in r["selections"]] == [s["positive"] for s in l["selections"]]
    assert [s["negative"] for s in r["selections"]] == [s["negative"] for s in l["selections"]]
    assert sorted(r["files"]["audio"]) == sorted(l["files"]["audio"])

    # Without --samples, a remote explanation takes the server's default (500 here), not the
    # local default of 50,000 that the server's cap would refuse.
    default = runner.invoke(cli, ["explain", str(example_clip), "--target", "tension", "--iterations", "8",
                                  "--endpoint", server["inference_address"], "--out", str(tmp_path / "default")])
    assert default.exit_code == 0, default.output
    assert json.loads((tmp_path / "default" / "explanation.json").read_text())["parameters"]["n_samples"] == 500


def test_second_start_in_the_same_run_folder_is_refused_and_status_reports(server):
    from click.testing import CliRunner

    from twolevel_cli.main import cli

    with pytest.raises(TwolevelError) as err:
        start_server(server["run"], Path(server["model_store"]), wait=5)
    assert err.value.code == "already_running"
    result = CliRunner().invoke(cli, ["serve", "status", "--run-dir", str(server["run"])])
    assert result.exit_code == 0 and "model ready" in result.output and server["inference_address"] in result.output


def test_metrics_are_prometheus(server):
    with urllib.request.urlopen(f"{server['metrics_address']}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert "# TYPE" in text and "ts_inference_requests_total" in text


def test_server_stops_cleanly(server):
    import psutil

    run = Path(server["run"])
    pid = server["pid"]
    children = [p.pid for p in psutil.Process(pid).children(recursive=True)]
    assert stop_server(run) is True
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    for child in children:
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert not (run / "tmp" / ".model_server.pid").exists()
    assert not (run / "key_file.json").exists()
    assert server_status(run)["running"] is False
    with pytest.raises(TwolevelError) as err:
        TorchServeClient(server["inference_address"], token=server["token"]).ping()
    assert err.value.code == "server_down"
    assert stop_server(run) is False  # stopping twice is harmless
