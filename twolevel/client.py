"""HTTP client for a TorchServe that serves twolevel (HTTP from the standard library, no server imports).

It returns the library's own result objects, decoded from the server's JSON by their one decoder
each (:meth:`twolevel.Prediction.from_dict`, :meth:`twolevel.explain.Explanation.from_dict`):

>>> from twolevel.client import TorchServeClient
>>> client = TorchServeClient("http://127.0.0.1:8080")      # token: $TWOLEVEL_TOKEN or key_file.json
>>> client.predict("song.mp3").emotions["energy"]
>>> client.explain("song.mp3", target="articulation", samples=500).selection.positive

Errors are :class:`~twolevel.errors.TwolevelError` with a ``code``: ``server_down``,
``bad_token`` (no or wrong token), ``model_not_found``, ``too_large``, ``server_busy``,
``server_error``, ``bad_response``, or the server's own code for a refused request; refused
audio comes back as :class:`~twolevel.errors.AudioError` (so a CLI can report it per file) and
refused options as :class:`~twolevel.errors.OptionError`.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Callable, ContextManager, Optional, Union

from .errors import AudioError, OptionError, TwolevelError
from .explain.explanation import Explanation
from .predict import Prediction
from .progress import waiting

#: Error codes the server uses for unusable audio (mapped back to :class:`AudioError`).
AUDIO_CODES = {"not_audio", "empty", "truncated", "silent", "non_finite", "too_long", "too_short",
               "too_large_decoded", "too_many_channels", "bad_sample_rate", "not_found", "missing_audio",
               "bad_base64"}
#: Error codes for options out of range (mapped back to :class:`OptionError`).
OPTION_CODES = {"unknown_target", "unknown_option", "bad_samples", "bad_option", "bad_offset", "bad_ratio", "bad_seed", "bad_design"}
#: Where ``twolevel-cli serve start`` keeps its run folder (server.json, key_file.json, logs).
DEFAULT_RUN_DIR = "runs/serve"
DEFAULT_MODEL = "twolevel"

#: ``progress(label)`` -> a context manager that shows the wait (default: :func:`twolevel.progress.waiting`).
WaitIndicator = Callable[[str], ContextManager]
#: Seconds to wait for a TCP connection: a server that is up accepts in milliseconds.
CONNECT_TIMEOUT = 10.0
#: Seconds between a dropped /predictions request and its one retry.
RETRY_PAUSE = 0.5


def run_dir() -> Path:
    """The serve run folder: ``$TWOLEVEL_RUN_DIR`` or ``runs/serve`` under the current directory."""
    return Path(os.environ.get("TWOLEVEL_RUN_DIR") or DEFAULT_RUN_DIR)


def read_key_file(path: Union[str, os.PathLike], kind: str = "inference") -> Optional[str]:
    """The ``inference`` (or ``management``) key from TorchServe's key_file.json, or None."""
    try:
        data = json.loads(Path(path).read_text())
        return str(data[kind]["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _same_server(a: str, b: str) -> bool:
    pa, pb = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
    local = {"127.0.0.1", "localhost", "::1"}
    host_a, host_b = pa.hostname or "", pb.hostname or ""
    same_host = host_a == host_b or (host_a in local and host_b in local)
    return same_host and (pa.port or 80) == (pb.port or 80)


def find_key_file(endpoint: str) -> Optional[Path]:
    """key_file.json of the server at ``endpoint``: ``$TWOLEVEL_KEY_FILE``, the file recorded by
    ``twolevel-cli serve start`` (``runs/serve/server.json``), else ``./key_file.json``."""
    env = os.environ.get("TWOLEVEL_KEY_FILE")
    if env:
        return Path(env)
    state = run_dir() / "server.json"
    try:
        info = json.loads(state.read_text())
        if _same_server(info.get("inference_address", ""), endpoint) and info.get("key_file"):
            return Path(info["key_file"])
    except (OSError, ValueError, AttributeError):
        pass
    local = Path("key_file.json")
    return local if local.is_file() else None


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix domain socket (TorchServe's ``management_address=unix:/path``)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def management_request(address: str, path: str, token: Optional[str], method: str = "GET",
                       timeout: float = 10.0) -> tuple[int, bytes]:
    """``(status, body)`` of one call to a management API at ``http(s)://host:port`` or ``unix:/path``.

    Raises ``OSError`` (including timeouts) when the address cannot be reached.
    """
    if address.startswith("unix:"):
        connection: http.client.HTTPConnection = _UnixHTTPConnection(address[5:], timeout)
    else:
        parts = urllib.parse.urlsplit(address)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except http.client.HTTPException as err:
        raise OSError(f"management API at {address}: {err}") from None
    finally:
        connection.close()


def key_expiry(path: Union[str, os.PathLike], kind: str = "inference") -> Optional[str]:
    """The ``expiration time`` TorchServe wrote for the ``kind`` key (ISO 8601, UTC), or None."""
    try:
        return str(json.loads(Path(path).read_text())[kind]["expiration time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def renew_key(key_file: Union[str, os.PathLike], kind: str = "inference",
              management_address: Optional[str] = None) -> str:
    """Ask TorchServe for a new ``kind`` key with the (non-expiring) API key of ``key_file``.

    TorchServe rewrites the key file; returns the new key. The management address is read from
    the ``server.json`` that ``twolevel-cli serve start`` wrote next to the key file unless given.
    Raises :class:`TwolevelError` (``renew_failed``) when that is not possible.
    """
    key_file = Path(key_file)
    api_key = read_key_file(key_file, "API")
    if management_address is None:
        try:
            management_address = json.loads((key_file.parent / "server.json").read_text())["management_address"]
        except (OSError, ValueError, KeyError, TypeError):
            management_address = None
    if not api_key or not management_address:
        raise TwolevelError(f"cannot renew the {kind} token: {key_file} has no API key or no server.json "
                            f"with the management address next to it", code="renew_failed")
    try:
        status, payload = management_request(management_address, f"/token?type={kind}", api_key)
    except OSError as err:
        raise TwolevelError(f"cannot renew the {kind} token: management API not answering ({err})",
                            code="renew_failed") from None
    new = read_key_file(key_file, kind)
    if status != 200 or not new:
        raise TwolevelError(f"cannot renew the {kind} token: TorchServe answered HTTP {status}", code="renew_failed")
    return new


def _expired(stamp: Optional[str]) -> bool:
    """Whether an ISO 8601 UTC time such as ``2026-11-27T05:38:15.784130503Z`` has passed."""
    if not stamp:
        return False
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(stamp.rstrip("Z")[:26]).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return False
    return when <= dt.datetime.now(dt.timezone.utc)


def _multipart(fields: dict, file_field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "twolevel-" + uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n".encode())
    safe = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{safe}\"\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def parse_endpoint(endpoint: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path)`` of an inference address such as ``http://127.0.0.1:8080``.

    A missing scheme means ``http://``; a missing port 80 (443 for https). Anything else raises
    :class:`~twolevel.errors.OptionError` (``bad_endpoint``) naming what is wrong.
    """
    text = str(endpoint).strip()
    example = "expected http://HOST:PORT, e.g. http://127.0.0.1:8080"
    parts = urllib.parse.urlsplit(text if "://" in text else "http://" + text)
    if parts.scheme not in ("http", "https"):
        raise OptionError(f"endpoint {text!r}: scheme {parts.scheme!r} is not http or https ({example})",
                          code="bad_endpoint")
    host = parts.hostname or ""
    if not host or any(c.isspace() for c in text) or not all(c.isalnum() or c in ".-_:%" for c in host):
        raise OptionError(f"endpoint {text!r} is not a URL ({example})", code="bad_endpoint")
    try:
        port = parts.port
    except ValueError:
        raise OptionError(f"endpoint {text!r}: the port must be a number from 1 to 65535 ({example})",
                          code="bad_endpoint") from None
    if port == 0:
        raise OptionError(f"endpoint {text!r}: the port must be a number from 1 to 65535 ({example})",
                          code="bad_endpoint")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), parts.path


def _json_or_empty(payload: bytes) -> dict:
    try:
        data = json.loads(payload.decode("utf-8")) if payload else {}
    except (UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _worker_died(status: int, payload: bytes) -> bool:
    """TorchServe's answer to the request a worker was given when it died."""
    return status == 507 or (status == 500 and "worker died" in str(_json_or_empty(payload).get("message", "")).lower())


def _is_auth_failure(status: int, data: dict) -> bool:
    """TorchServe 0.12 refuses tokens with 400 and its own JSON (``InvalidKeyException``); proxies use 401/403."""
    return status in (401, 403) or (status == 400 and (data.get("type") == "InvalidKeyException"
                                                      or "token" in str(data.get("message", "")).lower()))


class TorchServeClient:
    """Calls ``/predictions`` and ``/explanations`` of a TorchServe serving the twolevel archive.

    Args:
        endpoint: the inference address, e.g. ``http://127.0.0.1:8080`` (a trailing
            ``/predictions/<model>`` names the model).
        token: inference token; default ``$TWOLEVEL_TOKEN``, else the key file (see :func:`find_key_file`).
        timeout: seconds to wait for the answer to a prediction, once connected (explanations:
            ``explain_timeout``).
        model: the model name registered in TorchServe.
        progress: ``progress(label)`` gives a context manager that shows the wait while an
            explanation runs; default: elapsed seconds on stderr when it is a terminal.
        connect_timeout: seconds to wait for the TCP connection.
        retries: how many times a prediction is sent again after a dropped connection or a
            507 "Worker died" (predictions are idempotent; explanations are never resent).
    """

    def __init__(self, endpoint: str, token: Optional[str] = None, timeout: float = 120.0,
                 model: str = DEFAULT_MODEL, explain_timeout: float = 3600.0,
                 progress: Optional[WaitIndicator] = None, connect_timeout: float = CONNECT_TIMEOUT,
                 retries: int = 1):
        self.scheme, self.host, self.port, path = parse_endpoint(endpoint)
        segments = [s for s in path.split("/") if s]
        if len(segments) >= 2 and segments[0] in ("predictions", "explanations"):
            model = segments[1]
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.endpoint = f"{self.scheme}://{netloc}:{self.port}"
        self.model = model
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.retry_pause = RETRY_PAUSE
        self.explain_timeout = explain_timeout
        self.progress = progress
        self.key_file: Optional[Path] = None
        if token is None:
            token = os.environ.get("TWOLEVEL_TOKEN") or None
        if token is None:
            self.key_file = find_key_file(self.endpoint)
            if self.key_file is not None:
                token = read_key_file(self.key_file)
        self.token = token

    # -- HTTP ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Optional[bytes] = None, content_type: Optional[str] = None,
                 timeout: Optional[float] = None) -> tuple[int, bytes]:
        """One HTTP exchange: ``(status, body)``; a server that cannot be reached or does not answer
        within ``connect_timeout`` / ``timeout`` seconds raises :class:`TwolevelError`."""
        read_timeout = timeout or self.timeout
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        connection = (http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection)(
            self.host, self.port, timeout=self.connect_timeout)
        try:
            try:
                connection.connect()
            except socket.gaierror as err:
                raise TwolevelError(f"cannot resolve the host of {self.endpoint} ({err.strerror or err})",
                                    code="server_down") from None
            except (socket.timeout, TimeoutError):
                raise TwolevelError(f"{self.endpoint} did not accept a connection within {self.connect_timeout:g} s",
                                    code="timeout") from None
            except OSError as err:
                reason = "connection refused" if isinstance(err, ConnectionRefusedError) else (err.strerror or str(err))
                raise TwolevelError(f"no TorchServe answers at {self.endpoint} ({reason}); "
                                    f"start one with `twolevel-cli serve start`", code="server_down") from None
            connection.sock.settimeout(read_timeout)
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (socket.timeout, TimeoutError):
            raise TwolevelError(f"{self.endpoint} did not answer within {read_timeout:g} s", code="timeout") from None
        except (ConnectionError, http.client.HTTPException, OSError) as err:
            hint = (f"; a {len(body) / 2**20:.1f} MiB request may be over the server's max_request_size"
                    if body and len(body) > 2**20 else "")
            raise TwolevelError(f"{self.endpoint} closed the connection before answering "
                                f"({type(err).__name__}){hint}", code="connection_lost") from None
        finally:
            connection.close()

    def _request_retrying(self, method: str, path: str, body: Optional[bytes] = None,
                          content_type: Optional[str] = None) -> tuple[int, bytes]:
        """:meth:`_request` for idempotent calls: sent once more after a dropped connection or a
        "Worker died" answer (507, or 500 while TorchServe has not yet seen the exit status): the
        second try goes to another worker or waits in the queue for the restarted one."""
        for attempt in range(self.retries + 1):
            try:
                status, payload = self._request(method, path, body, content_type)
            except TwolevelError as err:
                if err.code != "connection_lost" or attempt == self.retries:
                    raise
                time.sleep(self.retry_pause)
                continue
            if not _worker_died(status, payload) or attempt == self.retries:
                return status, payload
            time.sleep(self.retry_pause)
        raise AssertionError("unreachable")

    def _raise_for(self, status: int, payload: bytes, what: str) -> None:
        try:
            data = json.loads(payload.decode("utf-8")) if payload else {}
        except (UnicodeDecodeError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        message = str(data.get("message") or payload[:300].decode("utf-8", "replace").strip() or f"HTTP {status}")
        code = data.get("error")
        if code and isinstance(code, str) and 400 <= status < 500:
            text = f"{what}: {message}" if what else message
            if code in AUDIO_CODES:
                raise AudioError(message, code=code)
            if code in OPTION_CODES or code.startswith(("bad_", "unknown_")):
                raise OptionError(text, code=code)
            raise TwolevelError(text, code=code)
        if _is_auth_failure(status, data):
            raise self._auth_error(status)
        if status == 404:
            raise TwolevelError(f"{self.endpoint}: model {self.model!r} is not served here ({message})",
                                code="model_not_found")
        if status == 413:
            # TorchServe answers an oversize body with an empty 413.
            raise TwolevelError(f"{what}: the request is larger than this server accepts (its max_request_size)",
                                code="too_large")
        if status in (503, 507):
            raise TwolevelError(f"{self.endpoint}: the server cannot take the request now ({message})",
                                code="server_busy")
        if status >= 500:
            raise TwolevelError(f"{self.endpoint}: server error ({message})", code="server_error")
        raise TwolevelError(f"{what}: refused by the server: {message} [HTTP {status}]", code="refused")

    def _auth_error(self, status: int) -> TwolevelError:
        """One line for a refused token: none given, expired (with when and what to do), or wrong."""
        if not self.token:
            return TwolevelError(f"{self.endpoint}: not authorized: no token given: pass --token, set TWOLEVEL_TOKEN, "
                                 f"or run where key_file.json is [HTTP {status}]", code="bad_token")
        expiry = key_expiry(self.key_file) if self.key_file else None
        if _expired(expiry):
            return TwolevelError(f"{self.endpoint}: the inference token expired at {expiry} (read from {self.key_file}); "
                                 f"renew it with `twolevel-cli serve token` where the server runs", code="token_expired")
        where = f" (read from {self.key_file})" if self.key_file else ""
        return TwolevelError(f"{self.endpoint}: not authorized: the token{where} was refused: wrong, or expired "
                             f"(TorchServe's tokens expire; `twolevel-cli serve token` renews one) [HTTP {status}]",
                             code="bad_token")

    def _renewing(self, send: Callable[[], tuple[int, bytes]]) -> tuple[int, bytes]:
        """``send()``, and once more with a renewed token when TorchServe refuses a token that came
        from a key file whose API key can renew it (the server's own machine)."""
        status, payload = send()
        if self.key_file is None or not self.token or not _is_auth_failure(status, _json_or_empty(payload)):
            return status, payload
        try:
            self.token = renew_key(self.key_file, "inference")
        except TwolevelError:
            return status, payload
        return send()

    def _decode(self, payload: bytes, what: str) -> dict:
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise TwolevelError(f"{what}: the server answered with something that is not JSON", code="bad_response") from None
        if not isinstance(data, dict):
            raise TwolevelError(f"{what}: unexpected answer from the server", code="bad_response")
        return data

    @staticmethod
    def _read(source: Union[str, os.PathLike, bytes, bytearray]) -> tuple[bytes, str]:
        if isinstance(source, (bytes, bytearray, memoryview)):
            return bytes(source), "<bytes>"
        path = Path(source)
        if not path.is_file():
            raise AudioError(f"{path}: no such file", code="not_found")
        return path.read_bytes(), path.name

    # -- API ----------------------------------------------------------------------------------
    def ping(self) -> dict:
        """``GET /ping``: TorchServe's health answer, e.g. ``{"status": "Healthy"}``."""
        status, payload = self._request("GET", "/ping", timeout=min(self.timeout, 10.0))
        if status != 200:
            self._raise_for(status, payload, "ping")
        return self._decode(payload, "ping")

    def predict(self, source: Union[str, os.PathLike, bytes, bytearray]) -> Prediction:
        """Emotions, mid-levels, effects and windows of one file, as a :class:`~twolevel.Prediction`."""
        data, name = self._read(source)
        body, ctype = _multipart({"name": name}, "data", name, data)
        status, payload = self._renewing(lambda: self._request_retrying("POST", f"/predictions/{self.model}", body, ctype))
        if status != 200:
            self._raise_for(status, payload, name)
        return self._decoded(Prediction.from_dict, payload, name)

    def explain(self, source: Union[str, os.PathLike, bytes, bytearray], target: Optional[str] = None,
                samples: Union[int, str, None] = None, ratio: Optional[float] = None, seed: Optional[int] = None,
                offset: Optional[float] = None, include_audio: bool = False,
                progress: Optional[WaitIndicator] = None, design: Optional[str] = None, **extra) -> Explanation:
        """The level-2 explanation of ``target`` for one file, as an :class:`~twolevel.explain.Explanation`
        (with its audio when ``include_audio``).

        ``samples`` may also be given as ``n_samples``; ``design`` is how perturbations are drawn
        (``"antithetic"`` or ``"independent"``). Options left out take the server's defaults.
        """
        if samples is None and "n_samples" in extra:
            samples = extra.pop("n_samples")
        if extra:
            raise OptionError(f"unknown option(s) for explain: {', '.join(sorted(extra))}", code="bad_option")
        data, name = self._read(source)
        fields = {"name": name, "include_audio": "true" if include_audio else "false"}
        for key, value in (("target", target), ("samples", samples), ("ratio", ratio), ("seed", seed),
                           ("design", design), ("offset", offset)):
            if value is not None:
                fields[key] = repr(value) if isinstance(value, float) else str(value)
        body, ctype = _multipart(fields, "data", name, data)
        show = progress or self.progress or waiting
        with show(f"explaining {name} on {self.endpoint}"):
            status, payload = self._renewing(lambda: self._request("POST", f"/explanations/{self.model}", body, ctype,
                                                                   timeout=self.explain_timeout))
        if status != 200:
            self._raise_for(status, payload, name)
        return self._decoded(Explanation.from_dict, payload, name)

    def _decoded(self, decoder, payload: bytes, what: str):
        """The result object ``decoder`` builds from the JSON answer; a malformed one is ``bad_response``."""
        data = self._decode(payload, what)
        try:
            return decoder(data)
        except (KeyError, TypeError, ValueError) as err:
            raise TwolevelError(f"{what}: the server's answer is not a twolevel result ({type(err).__name__}: {err})",
                                code="bad_response") from None

