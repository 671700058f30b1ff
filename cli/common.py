"""Shared pieces of the CLI: error reporting, JSON output, thread settings."""
from __future__ import annotations

import functools
import json
import os
import sys

import click

from twolevel.errors import TwolevelError


def set_threads(default: int | None = None) -> None:
    """Give torch ``$TWOLEVEL_THREADS`` threads, else ``default``, else half the cores (at least one).

    Decoding, BLAS and the other processes of a small shared machine need the rest: on 2 shared
    cores, 2 torch threads made an explanation 3x slower than 1 (Griffin-Lim 15x), because the
    threads kept waiting for each other.
    """
    import torch

    n = int(os.environ.get("TWOLEVEL_THREADS") or default or max(1, (os.cpu_count() or 2) // 2))
    torch.set_num_threads(max(1, n))


def friendly_errors(func):
    """Turn twolevel's deliberate errors into a one-line message and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except TwolevelError as err:
            raise click.ClickException(f"{err.message} [{err.code}]") from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


model_option = click.option(
    "--model", "model_path", type=click.Path(dir_okay=False), default=None,
    help="Checkpoint to use (default: the shipped archives/twolevel-default.pt, or $TWOLEVEL_MODEL).",
)
device_option = click.option(
    "--device", default=None, help="torch device, e.g. cpu or cuda (default: CUDA when available, else CPU).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of tables.")
endpoint_option = click.option(
    "--endpoint", default=None, metavar="URL",
    help="Call a running TorchServe (e.g. http://127.0.0.1:8080) instead of running the model here.",
)
token_option = click.option(
    "--token", default=None, envvar="TWOLEVEL_TOKEN",
    help="Inference token for --endpoint (default: $TWOLEVEL_TOKEN, else TorchServe's key_file.json).",
)
