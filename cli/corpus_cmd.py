"""Corpus jobs from ``predict`` and ``explain``: ``--jsonl OUT --concurrency N`` over files and folders."""
from __future__ import annotations

import functools
import json
import sys

import click


def corpus_options(func):
    """``--jsonl`` and ``--concurrency``, shared by predict and explain."""

    @click.option("--jsonl", "jsonl", type=click.Path(dir_okay=False), default=None, metavar="OUT",
                  help="Corpus job: append one JSON line per file to OUT as results arrive; files already "
                       "in OUT are skipped, so running it again resumes. Folders are searched recursively.")
    @click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True,
                  help="Requests in flight for --jsonl with --endpoint (about 2 per server worker).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def run_corpus_job(files, call, out: str, kind: str, concurrency: int, as_json: bool) -> None:
    """Run the job, print the summary (stderr, or JSON on stdout), exit 1 when a file failed."""
    from twolevel.corpus_jobs import run_corpus

    summary = run_corpus(files, call, out, kind=kind, concurrency=concurrency,
                         desc="explaining" if kind == "explanation" else "predicting")
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        click.echo(str(summary), err=True)
    if summary.failed:
        sys.exit(1)
