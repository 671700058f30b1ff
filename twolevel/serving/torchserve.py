"""The TorchServe model archive and TorchServe processes on loopback, for the CLI, tests and embedders.

Each server lives in a run folder (default ``runs/serve``): its config.properties (the
shipped ``twolevel/assets/config.properties`` with the ports filled in), its own temp dir (TorchServe's pid file
and unpacked archives), its logs, TorchServe's key_file.json and ``server.json`` (pid, addresses,
key file), which :func:`stop_server`, :func:`server_status` and
:class:`twolevel.client.TorchServeClient` read. Two servers with different run folders never share
a pid file or a port.

TorchServe is started as a separate process (``python -m ts...``); this module never imports
``ts``, so ``import twolevel`` works without the server installed.

>>> from twolevel.serving.torchserve import temporary_server
>>> with temporary_server("runs/tmp", "model.pt", model_config_yaml_text) as info:
...     TorchServeClient(info["inference_address"]).predict("song.mp3")
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .. import __version__
from ..client import DEFAULT_MODEL, management_request, read_key_file, renew_key, run_dir as default_run_dir
from ..errors import TwolevelError
from ..resources import MODEL_CONFIG_FILE, SERVER_CONFIG_FILE, asset_path, handler_path

__all__ = ["build_archive", "java_available", "model_ready", "server_status", "start_server",
           "stop_server", "temporary_server"]

TS_NAMESPACE = "org.pytorch.serve.ModelServer"


# --- the model archive ---------------------------------------------------------------------

def build_archive(checkpoint: str | os.PathLike, out_dir: str | os.PathLike = "model_store",
                  config: str | os.PathLike | None = None, name: str = DEFAULT_MODEL,
                  version: str | None = None) -> Path:
    """Build ``<out_dir>/<name>.mar`` (handler, checkpoint, model-config.yaml); returns its path."""
    from ..checkpoint import read_checkpoint

    checkpoint = Path(checkpoint)
    payload = read_checkpoint(checkpoint)  # CheckpointError for anything that is not a twolevel model
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = Path(config) if config else asset_path(MODEL_CONFIG_FILE)
    handler = handler_path()
    model_version = version or str(payload.get("model_version") or __version__)
    # torch-model-archiver wants a version without spaces.
    model_version = "".join(c if c.isalnum() or c in ".-_" else "-" for c in model_version) or __version__
    cmd = [sys.executable, "-m", "model_archiver.model_packaging", "--model-name", name, "--version", model_version,
           "--serialized-file", str(checkpoint), "--handler", str(handler), "--config-file", str(config),
           "--export-path", str(out), "--force"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    mar = out / f"{name}.mar"
    if proc.returncode != 0 or not mar.is_file():
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise TwolevelError(f"torch-model-archiver failed: {detail[0]}", code="package_failed")
    return mar


# --- serve --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def java_available() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").is_file():
        return True
    return shutil.which("java") is not None


def _read_properties(path: Path) -> list[tuple[str, str]]:
    items = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, value = stripped.split("=", 1)
        items.append((key.strip(), value.strip()))
    return items


def management_json(info: dict, path: str, method: str = "GET"):
    """JSON answer of the management API of the server described by ``info`` (its server.json).

    A management key that TorchServe refuses (it expires like the inference key) is renewed once
    with the key file's API key. Raises :class:`TwolevelError` (``management_error``) otherwise.
    """
    key = read_key_file(info["key_file"], "management")
    address = info["management_address"]
    for attempt in (0, 1):
        try:
            status, payload = management_request(address, path, key, method)
        except OSError as err:
            raise TwolevelError(f"management API not answering ({err})", code="management_error") from None
        if status == 400 and attempt == 0 and b"InvalidKeyException" in payload:
            key = renew_key(info["key_file"], "management", address)
            continue
        break
    if status != 200:
        raise TwolevelError(f"management API: HTTP {status}", code="management_error")
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise TwolevelError("management API: the answer is not JSON", code="management_error") from None


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE and TS_NAMESPACE in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def model_ready(info: dict, name: str = DEFAULT_MODEL) -> tuple[bool, str]:
    """(ready, description) of the model's workers, from the management API."""
    try:
        desc = management_json(info, f"/models/{name}")
    except TwolevelError as err:
        return False, err.message
    workers = desc[0].get("workers", []) if isinstance(desc, list) and desc else []
    states = [w.get("status", "?") for w in workers]
    ready = bool(states) and all(s == "READY" for s in states)
    return ready, f"{len(states)} worker(s): {', '.join(states) or 'none yet'}"


def _log_tail(log_dir: Path, lines: int = 15) -> str:
    out = []
    for name in ("model_log.log", "ts_log.log", "console.log"):
        path = log_dir / name
        if path.is_file():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path} ---\n" + "\n".join(tail))
    return "\n".join(out)


def start_server(run: str | os.PathLike | None = None, model_store: str | os.PathLike = "model_store",
                 mar: str = f"{DEFAULT_MODEL}.mar", port: int = 0, management_port: int = 0, metrics_port: int = 0,
                 config: str | os.PathLike | None = None, threads: int | None = None, wait: float = 300.0,
                 extra_properties: dict | None = None, model_name: str = DEFAULT_MODEL) -> dict:
    """Start TorchServe in its own run folder and wait until the model's workers are ready.

    Returns the server info written to ``<run>/server.json``. Raises :class:`TwolevelError`
    (``no_java``, ``already_running``, ``no_archive``, ``start_failed``) otherwise.
    """
    if not java_available():
        raise TwolevelError("TorchServe needs Java 11+ (`java` not on PATH and no JAVA_HOME)", code="no_java")
    run = Path(run) if run is not None else default_run_dir()
    run = run.resolve()
    _refuse_if_running(run)
    store = Path(model_store).resolve()
    if not (store / mar).is_file():
        raise TwolevelError(f"no model archive {store / mar}; build it with `twolevel-cli package`", code="no_archive")
    tmp, logs = run / "tmp", run / "logs"
    for d in (tmp, logs):
        d.mkdir(parents=True, exist_ok=True)
    run.chmod(0o700)  # key file and management socket: this user only
    (run / "key_file.json").unlink(missing_ok=True)
    base = Path(config) if config else asset_path(SERVER_CONFIG_FILE)
    props = _server_properties(run, base, store, mar, model_name, port, management_port, metrics_port,
                               extra_properties)
    run_config = run / "config.properties"
    run_config.write_text(f"# written by twolevel-cli serve start from {base}\n"
                          + "".join(f"{k}={v}\n" for k, v in props.items()))
    pid = _launch(run, store, run_config, tmp, logs, _server_env(tmp, logs, threads))
    info = {
        "pid": pid, "run_dir": str(run), "tmpdir": str(tmp), "log_dir": str(logs),
        "inference_address": props["inference_address"], "management_address": props["management_address"],
        "metrics_address": props["metrics_address"], "key_file": str(run / "key_file.json"),
        "model_store": str(store), "model": model_name, "archive": mar, "config": str(run_config),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (run / "server.json").write_text(json.dumps(info, indent=2))
    return _wait_until_ready(info, model_name, wait)


def _refuse_if_running(run: Path) -> None:
    """Raise ``already_running`` if the server recorded in ``run/server.json`` is still alive."""
    state = run / "server.json"
    if state.is_file():
        old = json.loads(state.read_text())
        if old.get("pid") and _pid_alive(int(old["pid"])):
            raise TwolevelError(f"a TorchServe from {run} is already running (pid {old['pid']}, "
                                f"{old.get('inference_address')}); stop it with `twolevel-cli serve stop`",
                                code="already_running")


def _server_properties(run: Path, base: Path, store: Path, mar: str, model_name: str, port: int,
                       management_port: int, metrics_port: int, extra_properties: dict | None) -> dict:
    """The run's ``config.properties``: ``base`` with loopback addresses, free ports and the model."""
    ports = [p or free_port() for p in (port, metrics_port)]
    # The management API can scale the model to zero workers (TorchServe 0.12 has no switch that
    # forbids PUT /models/{name}): by default it listens on a Unix socket in the run folder, so
    # it has no TCP port and only this user (who can stop the server anyway) reaches it.
    socket_path = run / "management.sock"
    if management_port or len(str(socket_path)) > 100:  # sun_path holds 108 bytes
        management_address = f"http://127.0.0.1:{management_port or free_port()}"
    else:
        socket_path.unlink(missing_ok=True)
        management_address = f"unix:{socket_path}"
    # TorchServe 0.12 always opens its two gRPC ports too (no switch turns them off): give them
    # free ports of their own so that two servers never collide, and keep them on loopback.
    grpc_ports = [free_port(), free_port()]
    props = dict(_read_properties(base))
    props.update({
        "inference_address": f"http://127.0.0.1:{ports[0]}",
        "management_address": management_address,
        "metrics_address": f"http://127.0.0.1:{ports[1]}",
        "grpc_inference_address": "127.0.0.1",
        "grpc_management_address": "127.0.0.1",
        "grpc_inference_port": str(grpc_ports[0]),
        "grpc_management_port": str(grpc_ports[1]),
        "model_store": str(store),
        "load_models": f"{model_name}={mar}",
    })
    props.update({k: str(v) for k, v in (extra_properties or {}).items()})
    return props


def _server_env(tmp: Path, logs: Path, threads: int | None) -> dict:
    """The server's environment: its own TMPDIR and log folder, thread counts, no inherited config."""
    env = dict(os.environ)
    n_threads = str(threads or env.get("TWOLEVEL_THREADS") or 1)
    env.update({
        "TMPDIR": str(tmp), "TEMP": str(tmp), "TMP": str(tmp),
        "LOG_LOCATION": str(logs), "METRICS_LOCATION": str(logs),
        "OMP_NUM_THREADS": n_threads, "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    })
    env.pop("TS_CONFIG_FILE", None)
    if threads:
        env["TWOLEVEL_THREADS"] = n_threads
    return env


def _launch(run: Path, store: Path, run_config: Path, tmp: Path, logs: Path, env: dict) -> int:
    """Run ``torchserve --start`` (it forks the Java frontend and returns); the server's pid."""
    cmd = [sys.executable, "-c", "import sys; from ts.model_server import start; sys.exit(start())",
           "--start", "--ncs", "--model-store", str(store), "--ts-config", str(run_config)]
    with open(logs / "console.log", "ab") as console:
        proc = subprocess.run(cmd, cwd=run, env=env, stdout=console, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=60)
    pid_file = tmp / ".model_server.pid"
    pid = int(pid_file.read_text().strip()) if pid_file.is_file() else None
    if proc.returncode != 0 or pid is None:
        raise TwolevelError(f"torchserve --start failed (exit {proc.returncode}); logs in {logs}\n{_log_tail(logs)}",
                            code="start_failed")
    return pid


def _wait_until_ready(info: dict, model_name: str, wait: float) -> dict:
    """Poll until the model's workers are ready (``info`` plus the token); stop the server after ``wait`` s."""
    logs = Path(info["log_dir"])
    deadline = time.monotonic() + wait
    detail = "not started"
    while time.monotonic() < deadline:
        if not _pid_alive(info["pid"]):
            raise TwolevelError(f"TorchServe exited during startup; logs in {logs}\n{_log_tail(logs)}",
                                code="start_failed")
        if Path(info["key_file"]).is_file():
            ready, detail = model_ready(info, model_name)
            if ready:
                info["token"] = read_key_file(info["key_file"])  # not written to server.json
                return info
        time.sleep(1.0)
    stop_server(info["run_dir"])
    raise TwolevelError(f"model {model_name} not ready after {wait:.0f} s ({detail}); server stopped; "
                        f"logs in {logs}\n{_log_tail(logs)}", code="start_failed")


def stop_server(run: str | os.PathLike | None = None, timeout: float = 60.0) -> bool:
    """Stop the TorchServe started from ``run`` (only that one); returns whether one was running."""
    import psutil

    run = (Path(run) if run is not None else default_run_dir()).resolve()
    state = run / "server.json"
    if not state.is_file():
        return False
    info = json.loads(state.read_text())
    pid = info.get("pid")
    was_running = False
    if pid and _pid_alive(int(pid)):
        was_running = True
        proc = psutil.Process(int(pid))
        children = proc.children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        # Workers normally exit with the frontend; make sure none of this server's is left.
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            try:
                child.kill()
            except psutil.Error:
                pass
    for leftover in (Path(info.get("tmpdir", run / "tmp")) / ".model_server.pid", run / "key_file.json", state):
        leftover.unlink(missing_ok=True)
    return was_running


@contextlib.contextmanager
def temporary_server(root: str | os.PathLike, checkpoint: str | os.PathLike, model_config: str,
                     threads: int = 1, wait: float = 240, extra_properties: dict | None = None):
    """Package ``checkpoint`` with the ``model_config`` YAML text, serve it from ``root``, stop it on exit.

    For tests, benchmarks and embedders that need a real TorchServe for a while. Yields the
    :func:`start_server` info, with ``run`` (the run folder) added.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    config = root / "model-config.yaml"
    config.write_text(model_config)
    store = root / "model_store"
    build_archive(checkpoint, store, config)
    run = root / "run"
    info = start_server(run, store, threads=threads, wait=wait, extra_properties=extra_properties)
    info["run"] = run
    try:
        yield info
    finally:
        stop_server(run)


def server_status(run: str | os.PathLike | None = None) -> dict:
    """What ``serve status`` prints: running?, addresses, key file, workers."""
    run = (Path(run) if run is not None else default_run_dir()).resolve()
    state = run / "server.json"
    if not state.is_file():
        return {"running": False, "run_dir": str(run)}
    info = json.loads(state.read_text())
    info["running"] = bool(info.get("pid")) and _pid_alive(int(info["pid"]))
    if info["running"]:
        info["ready"], info["workers"] = model_ready(info, info.get("model", DEFAULT_MODEL))
    return info
