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
import urllib.error
import urllib.parse
import urllib.request
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
OPTION_CODES = {"unknown_target", "bad_samples", "bad_option", "bad_offset", "bad_ratio", "bad_seed"}
#: Where ``twolevel-cli serve start`` keeps its run folder (server.json, key_file.json, logs).
DEFAULT_RUN_DIR = "runs/serve"
DEFAULT_MODEL = "twolevel"

#: ``progress(label)`` -> a context manager that shows the wait (default: :func:`twolevel.progress.waiting`).
WaitIndicator = Callable[[str], ContextManager]


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


class TorchServeClient:
    """Calls ``/predictions`` and ``/explanations`` of a TorchServe serving the twolevel archive.

    Args:
        endpoint: the inference address, e.g. ``http://127.0.0.1:8080`` (a trailing
            ``/predictions/<model>`` names the model).
        token: inference token; default ``$TWOLEVEL_TOKEN``, else the key file (see :func:`find_key_file`).
        timeout: seconds to wait for a prediction (explanations: ``explain_timeout``).
        model: the model name registered in TorchServe.
        progress: ``progress(label)`` gives a context manager that shows the wait while an
            explanation runs; default: elapsed seconds on stderr when it is a terminal.
    """

    def __init__(self, endpoint: str, token: Optional[str] = None, timeout: float = 120.0,
                 model: str = DEFAULT_MODEL, explain_timeout: float = 3600.0,
                 progress: Optional[WaitIndicator] = None):
        endpoint = endpoint.strip()
        if "://" not in endpoint:
            endpoint = "http://" + endpoint
        parts = urllib.parse.urlsplit(endpoint)
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) >= 2 and segments[0] in ("predictions", "explanations"):
            model = segments[1]
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self.model = model
        self.timeout = timeout
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
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.endpoint + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            try:
                payload = err.read()
            except (OSError, ValueError):
                payload = b""
            return err.code, payload
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, (ConnectionResetError, BrokenPipeError)):
                hint = (f"; a {len(body) / 2**20:.1f} MiB request may be over the server's max_request_size"
                        if body and len(body) > 2**20 else "")
                raise TwolevelError(f"{self.endpoint} closed the connection before answering{hint}",
                                    code="connection_lost") from None
            if isinstance(reason, (ConnectionRefusedError, FileNotFoundError)) or "refused" in str(reason).lower():
                raise TwolevelError(f"no TorchServe answers at {self.endpoint} (connection refused); "
                                    f"start one with `twolevel-cli serve start`", code="server_down") from None
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise TwolevelError(f"{self.endpoint} did not answer within {timeout or self.timeout:.0f} s",
                                    code="timeout") from None
            raise TwolevelError(f"cannot reach {self.endpoint}: {reason}", code="server_down") from None
        except (ConnectionError, http.client.HTTPException) as err:
            raise TwolevelError(f"the connection to {self.endpoint} broke off ({type(err).__name__}: {err})",
                                code="connection_lost") from None
        except (socket.timeout, TimeoutError):
            raise TwolevelError(f"{self.endpoint} did not answer within {timeout or self.timeout:.0f} s",
                                code="timeout") from None

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
        if status in (401, 403) or "token" in message.lower():
            where = f" (read from {self.key_file})" if self.key_file else ""
            hint = ("the token was refused" + where) if self.token else \
                "no token given: pass --token, set TWOLEVEL_TOKEN, or run where key_file.json is"
            raise TwolevelError(f"{self.endpoint}: not authorized: {hint} [HTTP {status}]", code="bad_token")
        if status == 404:
            raise TwolevelError(f"{self.endpoint}: model {self.model!r} is not served here ({message})",
                                code="model_not_found")
        if status == 413:
            raise TwolevelError(f"{what}: the request is larger than the server accepts", code="too_large")
        if status in (503, 507):
            raise TwolevelError(f"{self.endpoint}: the server cannot take the request now ({message})",
                                code="server_busy")
        if status >= 500:
            raise TwolevelError(f"{self.endpoint}: server error ({message})", code="server_error")
        raise TwolevelError(f"{what}: refused by the server: {message} [HTTP {status}]", code="refused")

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
        status, payload = self._request("POST", f"/predictions/{self.model}", body, ctype)
        if status != 200:
            self._raise_for(status, payload, name)
        return self._decoded(Prediction.from_dict, payload, name)

    def explain(self, source: Union[str, os.PathLike, bytes, bytearray], target: Optional[str] = None,
                samples: Optional[int] = None, ratio: Optional[float] = None, seed: Optional[int] = None,
                offset: Optional[float] = None, include_audio: bool = False,
                progress: Optional[WaitIndicator] = None, **extra) -> Explanation:
        """The level-2 explanation of ``target`` for one file, as an :class:`~twolevel.explain.Explanation`
        (with its audio when ``include_audio``).

        ``samples`` may also be given as ``n_samples``. Options left out take the server's defaults.
        """
        if samples is None and "n_samples" in extra:
            samples = extra.pop("n_samples")
        if extra:
            raise OptionError(f"unknown option(s) for explain: {', '.join(sorted(extra))}", code="bad_option")
        data, name = self._read(source)
        fields = {"name": name, "include_audio": "true" if include_audio else "false"}
        for key, value in (("target", target), ("samples", samples), ("ratio", ratio), ("seed", seed),
                             ("offset", offset)):
            if value is not None:
                fields[key] = repr(value) if isinstance(value, float) else str(value)
        body, ctype = _multipart(fields, "data", name, data)
        show = progress or self.progress or waiting
        with show(f"explaining {name} on {self.endpoint}"):
            status, payload = self._request("POST", f"/explanations/{self.model}", body, ctype,
                                            timeout=self.explain_timeout)
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

