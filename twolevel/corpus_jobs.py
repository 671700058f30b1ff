"""Corpus jobs: one request per audio file to a model server, results streamed to JSON Lines.

A catalogue of thousands of tracks goes to a fleet of servers with a few requests in flight; each
result is appended to the output as one JSON line the moment it arrives, so a job that stops
(interrupt, crash, lost machine) loses nothing: run it again and it skips every file already in
the output.

Line format (one object per file; consumers take the last line per ``file``)::

    {"file": "music/a.mp3", "ok": true, "prediction": {...}}          # or "explanation"
    {"file": "music/b.mp3", "ok": false, "error": "not_audio", "message": "...", "attempts": 1}

Errors of the server or the connection (:data:`TRANSIENT`: a killed worker, a restart, a timeout)
are retried with backoff; errors of the file (not audio, too long, ...) are final and written at
once. On resume, files with a final line are skipped; files whose last line is a transient error
are tried again.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from .errors import TwolevelError

#: File types a corpus job picks up in a folder (recursively).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3")
#: Error codes worth another try: the server or the connection, not the file.
TRANSIENT = frozenset({"server_down", "connection_lost", "timeout", "server_busy", "server_error", "bad_response"})


def audio_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, and the audio files under each folder (recursively, sorted)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_SUFFIXES)
        else:
            found.append(p)
    return found


def finished_files(out: str | os.PathLike) -> set[str]:
    """``file`` of every line in ``out`` that needs no retry (a result, or a final error).

    A line cut off by a crash is not JSON and is ignored (that file is done again).
    """
    done: set[str] = set()
    retry: set[str] = set()
    path = Path(out)
    if not path.is_file():
        return done
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                row = json.loads(line)
                name = str(row["file"])
            except (ValueError, KeyError, TypeError):
                continue
            if row.get("ok") or row.get("error") not in TRANSIENT:
                done.add(name)
                retry.discard(name)
            else:
                retry.add(name)
                done.discard(name)
    return done


@dataclass
class CorpusSummary:
    """What a corpus job did: counts, time, where the results are, and the files that failed."""

    out: str
    total: int
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    seconds: float = 0.0
    failures: list = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.ok + self.failed

    def to_dict(self) -> dict:
        data = asdict(self)
        data["files_per_second"] = round(self.done / self.seconds, 3) if self.seconds > 0 else None
        return data

    def __str__(self) -> str:
        rate = f", {self.done / self.seconds:.2f} files/s" if self.seconds > 0 and self.done else ""
        text = (f"{self.total} file(s): {self.ok} ok, {self.failed} failed, {self.skipped} already in {self.out}; "
                f"{self.seconds:.1f} s{rate}, {self.retries} retried request(s)")
        for fail in self.failures[:10]:
            text += f"\n  {fail['file']}: {fail['error']}: {fail['message']}"
        if len(self.failures) > 10:
            text += f"\n  ... and {len(self.failures) - 10} more (see {self.out})"
        return text


def _as_dict(result) -> dict:
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


def _attempt(call: Callable, path: Path, kind: str, retries: int, backoff: float, stop: threading.Event) -> dict:
    """One file's line: the result, or its error after up to ``retries`` extra tries of a transient one."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return {"file": str(path), "ok": True, kind: _as_dict(call(path)), "attempts": attempt}
        except TwolevelError as err:
            if err.code in TRANSIENT and attempt <= retries and not stop.is_set():
                stop.wait(backoff * 2 ** (attempt - 1))
                continue
            return {"file": str(path), "ok": False, "error": err.code, "message": err.message, "attempts": attempt}
        except Exception as err:  # noqa: BLE001 -- one file must never stop the job
            return {"file": str(path), "ok": False, "error": "internal_error",
                    "message": f"{type(err).__name__}: {err}", "attempts": attempt}


def run_corpus(files: Iterable[str | os.PathLike], call: Callable, out: str | os.PathLike, kind: str = "prediction",
               concurrency: int = 4, retries: int = 4, backoff: float = 1.0, progress: Optional[bool] = None,
               desc: str = "files") -> CorpusSummary:
    """Send every file to ``call`` (e.g. a client's ``predict``), ``concurrency`` at a time.

    Args:
        files: audio files and folders (see :func:`audio_files`).
        call: ``path -> result`` (a dict or an object with ``to_dict``); raises
            :class:`TwolevelError` for a refused file or a server problem.
        out: the JSON Lines file, appended to; files already finished there are skipped.
        kind: the key of the result in each line (``"prediction"`` or ``"explanation"``).
        concurrency: requests in flight (one thread each).
        retries: extra tries of a transient error, waiting ``backoff`` s, then twice as long ...
        progress: a tqdm bar on stderr with rate and ETA; default: when stderr is a terminal.

    Returns the :class:`CorpusSummary`. Interrupted (Ctrl-C), it stops sending, keeps what was
    written, and re-raises.
    """
    from .progress import counter

    if concurrency < 1:
        raise TwolevelError(f"concurrency must be at least 1, not {concurrency}", code="bad_option")
    paths = audio_files(files)
    out = Path(out)
    done = finished_files(out)
    todo = [p for p in paths if str(p) not in done]
    summary = CorpusSummary(out=str(out), total=len(paths), skipped=len(paths) - len(todo))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_file() and out.stat().st_size and not out.read_bytes().endswith(b"\n"):
        with out.open("ab") as fh:  # a line cut off by a crash: start on a fresh line
            fh.write(b"\n")
    show = sys.stderr.isatty() if progress is None else progress
    bar = counter(desc, len(paths), "file", initial=summary.skipped, enabled=show, dynamic_ncols=True,
                  smoothing=0.1)
    stop = threading.Event()
    start = time.monotonic()
    pending = iter(todo)
    try:
        with out.open("a", encoding="utf-8") as fh, ThreadPoolExecutor(max_workers=concurrency) as pool:
            running = set()

            def refill():
                while len(running) < concurrency:
                    path = next(pending, None)
                    if path is None:
                        return
                    running.add(pool.submit(_attempt, call, path, kind, retries, backoff, stop))

            refill()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    running.discard(future)
                    line = future.result()
                    fh.write(json.dumps(line, separators=(",", ":")) + "\n")
                    fh.flush()
                    summary.retries += line["attempts"] - 1
                    if line["ok"]:
                        summary.ok += 1
                    else:
                        summary.failed += 1
                        summary.failures.append({k: line[k] for k in ("file", "error", "message")})
                    bar.update(1)
                    bar.set_postfix(failed=summary.failed, refresh=False)
                refill()
    except KeyboardInterrupt:
        stop.set()  # waiting retries give up; requests in flight finish, nothing new starts
        raise
    finally:
        bar.close()
        summary.seconds = round(time.monotonic() - start, 3)
    return summary
