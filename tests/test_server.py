"""A real TorchServe, started once for this module on free loopback ports with its own temp and log dirs.

The archive packs the tiny test checkpoint with the shipped model-config.yaml (two one-thread
workers, no request batching) with caps small enough to test (20 s of audio to explain, 2,000
samples) and the server's max_request_size is lowered to 8 MiB so that an oversize body is cheap
to send. Everything else is the shipped
twolevel/assets/config.properties. Bounded loops only; no
timed asserts (the worker-kill test bounds how long a client waits, which is its subject).
"""
from __future__ import annotations

import base64
import http.client
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
from twolevel.serving.torchserve import (java_available, management_json, server_status,  # noqa: E402
                                         start_server, stop_server, temporary_server)

pytestmark = [pytest.mark.server, pytest.mark.slow]

SR = 22_050
MAX_REQUEST = 8 * 1024 * 1024
#: The shipped twolevel/assets/model-config.yaml (workers, batching: what the worker-kill test is about)
#: with caps small enough to test: 20 s of audio to explain, 2,000 samples, 8 Griffin-Lim iterations.
TEST_HANDLER = {"max_seconds": 600, "max_explain_seconds": 20, "default_samples": 500, "min_samples": 10,
                "max_samples": 2000, "explain_batch_size": 64, "griffin_lim_iters": 8, "threads": 1}


def _test_model_config() -> str:
    import yaml

    from twolevel.resources import MODEL_CONFIG_FILE, asset_path

    shipped = yaml.safe_load(asset_path(MODEL_CONFIG_FILE).read_text())
    shipped.update({"responseTimeout": 300, "handler": {**shipped.get("handler", {}), **TEST_HANDLER}})
    return yaml.safe_dump(shipped)


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
    with temporary_server(tmp_path_factory.mktemp("torchserve"), tiny_checkpoint, _test_model_config(), threads=1,
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
    # The management API has no TCP port: a Unix socket in the run folder, which only this user enters.
    assert server["management_address"] == f"unix:{run.resolve() / 'management.sock'}"
    assert (run / "management.sock").is_socket() and run.stat().st_mode & 0o077 == 0
    assert (run / "tmp" / ".model_server.pid").is_file()
    assert (run / "key_file.json").is_file() and read_key_file(run / "key_file.json") == server["token"]
    assert (run / "logs" / "ts_log.log").is_file()
    status = server_status(run)
    assert status["running"] and status["ready"]
    listening = _listening_addresses(int(server["pid"]))
    # HTTP inference, metrics, and TorchServe's two gRPC ports: all on loopback.
    assert len(listening) >= 4, listening
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


def _wav_at(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def _mp3_first_third() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(3), SR, format="MP3")
    return buf.getvalue()[: len(buf.getvalue()) // 3]


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
        ("too_long", 413, wav_bytes(tone(25)), {"explain": True}),
        # Issue 11 case 3: 10 samples at 768 kHz gave a 500 (ZeroDivisionError); short clips a prediction.
        ("bad_sample_rate", 422, _wav_at(np.full(10, 0.5), 768_000), {}),
        ("too_short", 422, _wav_at(np.full(10, 0.5), 44_100), {}),
        ("too_short", 422, _wav_at(tone(0.3), SR), {}),
        ("truncated", 400, _mp3_first_third(), {}),
        ("unknown_target", 400, example_bytes, {"explain": True, "target": "loudness"}),
        ("bad_samples", 400, example_bytes, {"explain": True, "samples": 100_000}),
    ]


def test_each_bad_input_gets_its_4xx_and_the_next_request_succeeds(server, client, example_bytes):
    good = wav_bytes(tone(3, 330))
    for code, status, body, opts in _bad_inputs(example_bytes):
        if opts.get("explain") and code == "too_long":
            got_status, got = raw_post(server, "/explanations/twolevel", body, "audio/wav")
        elif opts.get("explain"):
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


def _worker_pids(server):
    workers = management_json(server, "/models/twolevel")[0]["workers"]
    return [w.get("pid") for w in workers if w.get("status") == "READY" and w.get("pid")]


def _wait_for_workers(server, n=2, tries=120):
    for _ in range(tries):
        pids = _worker_pids(server)
        if len(pids) >= n:
            return pids
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} workers READY after {tries / 2:.0f} s")


def test_worker_killed_mid_request_is_restarted(server, client, example_bytes):
    import psutil

    pytest.importorskip("twolevel.explain")
    pids = _wait_for_workers(server)
    assert len(pids) == 2
    result = {}

    def slow_request():
        try:
            result["value"] = client.explain(example_bytes, target="articulation", samples=2000, seed=0)
        except TwolevelError as err:
            result["error"] = err

    thread = threading.Thread(target=slow_request)
    thread.start()
    workers = [psutil.Process(pid) for pid in pids]
    for worker in workers:
        worker.cpu_percent(None)
    # Wait (bounded) until one worker is busy with the explanation, then kill that one.
    busy = None
    for _ in range(100):
        time.sleep(0.1)
        loads = [w.cpu_percent(None) for w in workers]
        if max(loads) > 20:
            busy = workers[loads.index(max(loads))]
            break
    assert busy is not None
    time.sleep(1.0)
    busy.kill()
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert "error" in result, "the killed request must fail, not hang or succeed"
    assert result["error"].code in ("server_error", "server_busy", "connection_lost")
    # The other worker answers at once; TorchServe restarts the dead one.
    got = client.predict(wav_bytes(tone(3)))
    assert got.model_version == "tiny-test"
    new_pids = _wait_for_workers(server)
    assert busy.pid not in new_pids


#: Longest a client may wait for the answer to a request sent right after a worker was killed:
#: the client's read timeout. Before the fix (batched requests) such requests were never answered.
KILL_ANSWER_BOUND_S = 60


def test_requests_sent_right_after_a_worker_dies_are_all_answered(server):
    """Issue 11 case 1: kill -9 an idle worker, send 4 predictions within milliseconds, 3 times."""
    import psutil

    clip = wav_bytes(tone(3, 550))
    client = TorchServeClient(server["inference_address"], token=server["token"], timeout=KILL_ANSWER_BOUND_S)
    outcomes = []
    for _ in range(3):
        victim = psutil.Process(_wait_for_workers(server)[0])
        victim.kill()
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(client.predict, clip) for _ in range(4)]
            for future in futures:
                try:
                    outcomes.append(future.result(timeout=2 * KILL_ANSWER_BOUND_S + 10).model_version)
                except TwolevelError as err:
                    outcomes.append(err.code)
    assert "timeout" not in outcomes, outcomes          # every request got an answer within the bound ...
    assert outcomes == ["tiny-test"] * 12, outcomes     # ... and, with the client's one retry, a prediction
    _wait_for_workers(server)


def test_management_api_cannot_scale_the_model_down_over_tcp(server, client):
    """Issue 11 case 5: with the management key, no TCP port of the server takes PUT min_worker=0."""
    key = read_key_file(server["key_file"], "management")
    answered = {}
    for _, port in _listening_addresses(int(server["pid"])):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/models/twolevel?min_worker=0&max_worker=0",
                                     headers={"Authorization": f"Bearer {key}"}, method="PUT")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                answered[port] = resp.status
        except urllib.error.HTTPError as err:
            answered[port] = err.code
        except (urllib.error.URLError, ConnectionError, OSError, http.client.HTTPException):
            answered[port] = None  # gRPC ports speak HTTP/2 only
    assert answered and all(status != 200 and status != 202 for status in answered.values()), answered
    assert len(_wait_for_workers(server)) == 2
    assert client.predict(wav_bytes(tone(2))).model_version == "tiny-test"


FLAC_PEAK_GROWTH_BOUND = 400 * 2**20


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")
def test_a_long_high_rate_flac_stays_within_the_workers_memory_bound(server, client, long_flac):
    """Issue 11 case 2: 600 s of 96 kHz stereo FLAC (218 KB) raised the worker's peak RSS by 743 MB.

    Decoding now holds one block at a time; what remains is the 22,050 Hz mono audio (50 MiB),
    its 10 s windows (50 MiB) and the model's batches. Bound: 400 MiB over the worker's RSS.
    """
    import psutil

    workers = [psutil.Process(pid) for pid in _wait_for_workers(server)]
    before = {}
    for worker in workers:
        with open(f"/proc/{worker.pid}/clear_refs", "w") as reset:
            reset.write("5")  # the peak (VmHWM) restarts from the current RSS
        before[worker.pid] = worker.memory_info().rss
    got = client.predict(long_flac)
    assert got.duration == pytest.approx(600.0)
    growth = {}
    for worker in workers:
        with open(f"/proc/{worker.pid}/status") as status:
            peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
        growth[worker.pid] = peak - before[worker.pid]
    print(f"\nworker peak RSS growth for the 600 s 96 kHz stereo FLAC: "
          f"{max(growth.values()) / 2**20:.0f} MiB (bound {FLAC_PEAK_GROWTH_BOUND / 2**20:.0f} MiB)")
    assert max(growth.values()) < FLAC_PEAK_GROWTH_BOUND, {p: g / 2**20 for p, g in growth.items()}


def test_a_refused_token_from_the_key_file_is_renewed(server, client, monkeypatch):
    """Issue 11 case 6: after renewal (or expiry) the old token is refused; a client that read its
    token from the key file renews it with the API key and goes on; `serve token` renews by hand."""
    from click.testing import CliRunner

    from twolevel_cli.main import cli

    old = read_key_file(server["key_file"])
    result = CliRunner().invoke(cli, ["serve", "token", "--run-dir", str(server["run"])])
    assert result.exit_code == 0 and "new inference token" in result.output, result.output
    new = read_key_file(server["key_file"])
    assert new != old
    with pytest.raises(TwolevelError) as err:
        TorchServeClient(server["inference_address"], token=old).predict(wav_bytes(tone(2)))
    assert err.value.code == "bad_token" and "expire" in err.value.message
    monkeypatch.delenv("TWOLEVEL_TOKEN", raising=False)
    monkeypatch.setenv("TWOLEVEL_KEY_FILE", str(server["key_file"]))
    from_file = TorchServeClient(server["inference_address"])
    assert from_file.token == new
    from_file.token = old  # as if it had expired since the client read it
    assert from_file.predict(wav_bytes(tone(2))).model_version == "tiny-test"
    assert from_file.token == read_key_file(server["key_file"]) != new
    server["token"] = client.token = from_file.token  # later tests use the current key


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


def test_prediction_is_answered_while_an_explanation_runs(tmp_path_factory, tiny_checkpoint, example_bytes):
    """With the shipped model-config.yaml (two workers), a prediction sent while an explanation
    holds one worker is answered by the other, before the explanation ends."""
    if not java_available():
        pytest.skip("java is not installed: TorchServe needs Java 11+")
    from twolevel.resources import ASSETS_PACKAGE, MODEL_CONFIG_FILE, package_file

    shipped_config = package_file(ASSETS_PACKAGE, MODEL_CONFIG_FILE).read_text()
    with temporary_server(tmp_path_factory.mktemp("two_workers"), tiny_checkpoint, shipped_config, threads=1,
                          wait=300) as info:
        client = TorchServeClient(info["inference_address"], token=info["token"], timeout=300, explain_timeout=600)
        done = {}

        def explanation():
            done["explanation"] = client.explain(example_bytes, target="articulation", samples=8000, seed=0)
            done["explanation_end"] = time.monotonic()

        thread = threading.Thread(target=explanation)
        thread.start()
        time.sleep(1.5)  # the explanation reaches a worker (decoding and segmenting take longer than this)
        answered = []
        for _ in range(3):
            got = client.predict(wav_bytes(tone(3)))
            answered.append(time.monotonic())
            assert got.model_version == "tiny-test"
        thread.join(timeout=600)
        assert not thread.is_alive()
        assert done["explanation"].parameters["n_samples"] == 8000
        assert all(t < done["explanation_end"] for t in answered), "predictions waited for the explanation"
