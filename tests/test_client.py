"""The HTTP client against a scripted local HTTP server: timeouts, one retry, clear one-line errors."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from twolevel.client import TorchServeClient, parse_endpoint
from twolevel.errors import OptionError, TwolevelError

PREDICTION: dict = {}  # a real Prediction.to_dict(), filled by the ``prediction`` fixture
WORKER_DIED = (507, {"code": 507, "type": "InternalServerException", "message": "Worker died."})
AUTH_FAILED = (400, {"code": 400, "type": "InvalidKeyException",
                     "message": "Token Authorization failed. Token either incorrect, expired, or not provided correctly"})


class Scripted(ThreadingHTTPServer):
    """Answers each POST with the next scripted step: ``(status, json)``, ``"drop"`` or ``"hang"``."""

    daemon_threads = True

    def __init__(self, steps):
        self.steps = list(steps)
        self.seen = 0
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: Scripted = self.server
        step = server.steps[min(server.seen, len(server.steps) - 1)]
        server.seen += 1
        if step == "drop":
            self.connection.close()  # the connection ends without a response
            return
        if step == "hang":
            server.release.wait(10)
            return
        status, body = step
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module", autouse=True)
def prediction(tiny_model, example_clip):
    PREDICTION.update(tiny_model.predict(example_clip).to_dict())
    return PREDICTION


@pytest.fixture
def scripted():
    servers = []

    def make(*steps):
        server = Scripted(steps)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        client = TorchServeClient(f"http://127.0.0.1:{server.server_address[1]}", token="t", timeout=2)
        client.retry_pause = 0.01
        return server, client

    yield make
    for server in servers:
        server.release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("first", ["drop", WORKER_DIED, (500, {"code": 500, "message": "Worker died."})])
def test_prediction_is_sent_once_more_after_a_dropped_connection_or_a_dead_worker(scripted, first):
    server, client = scripted(first, (200, PREDICTION))
    assert client.predict(b"RIFF....").name == PREDICTION["name"]
    assert server.seen == 2


def test_only_one_retry_and_never_for_explanations(scripted):
    server, client = scripted(WORKER_DIED, WORKER_DIED, (200, PREDICTION))
    with pytest.raises(TwolevelError) as err:
        client.predict(b"RIFF....")
    assert err.value.code == "server_busy" and server.seen == 2
    server, client = scripted("drop", (200, PREDICTION))
    with pytest.raises(TwolevelError) as err:
        client.explain(b"RIFF....")
    assert err.value.code == "connection_lost" and server.seen == 1


def test_a_server_that_never_answers_gives_a_timeout_not_a_hang(scripted):
    server, client = scripted("hang")
    with pytest.raises(TwolevelError, match="did not answer within 2 s") as err:
        client.predict(b"RIFF....")
    assert err.value.code == "timeout" and server.seen == 1


def test_torchserve_shapes_become_one_clear_line(scripted):
    _, client = scripted((413, None))
    with pytest.raises(TwolevelError, match="larger than this server accepts") as err:
        client.predict(b"RIFF....")
    assert err.value.code == "too_large"
    _, client = scripted(AUTH_FAILED)
    with pytest.raises(TwolevelError, match="was refused") as err:
        client.predict(b"RIFF....")
    assert err.value.code == "bad_token" and "\n" not in err.value.message


def test_expired_token_from_a_key_file_is_named(scripted, tmp_path, monkeypatch):
    key_file = tmp_path / "key_file.json"
    key_file.write_text(json.dumps({"inference": {"key": "old", "expiration time": "2001-01-01T00:00:00.000Z"},
                                    "management": {"key": "m", "expiration time": "2001-01-01T00:00:00.000Z"},
                                    "API": {"key": "a"}}))
    monkeypatch.setenv("TWOLEVEL_KEY_FILE", str(key_file))
    monkeypatch.delenv("TWOLEVEL_TOKEN", raising=False)
    server, _ = scripted(AUTH_FAILED)
    client = TorchServeClient(f"http://127.0.0.1:{server.server_address[1]}", timeout=2)
    assert client.token == "old"
    # No server.json next to the key file: renewal is impossible, so the message says what to do.
    with pytest.raises(TwolevelError, match="expired at 2001-01-01") as err:
        client.predict(b"RIFF....")
    assert err.value.code == "token_expired" and "serve token" in err.value.message


@pytest.mark.parametrize("endpoint, words", [
    ("not a url", "is not a URL"),
    ("http://127.0.0.1:99999", "port must be a number from 1 to 65535"),
    ("ftp://127.0.0.1:8080", "is not http or https"),
    ("http://:8080", "is not a URL"),
])
def test_bad_endpoints_are_named_before_any_connection(endpoint, words):
    with pytest.raises(OptionError, match=words) as err:
        TorchServeClient(endpoint, token="t")
    assert err.value.code == "bad_endpoint"


def test_endpoint_forms():
    assert parse_endpoint("127.0.0.1:8080") == ("http", "127.0.0.1", 8080, "")
    assert parse_endpoint("https://example.org/predictions/m")[:3] == ("https", "example.org", 443)
    assert TorchServeClient("http://localhost:8080/predictions/other", token="t").model == "other"


def test_nothing_listening_is_connection_refused():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = TorchServeClient(f"http://127.0.0.1:{port}", token="t", connect_timeout=2)
    with pytest.raises(TwolevelError, match="connection refused") as err:
        client.predict(b"RIFF....")
    assert err.value.code == "server_down"
