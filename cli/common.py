"""Shared pieces of the CLI: error reporting, JSON output, thread settings."""
from __future__ import annotations

import functools
import json
import sys

import click

from twolevel.errors import TwolevelError
from twolevel.options import OptionRule, default_threads
from twolevel.options import default as option_default
from twolevel.options import rule as option_rule


def set_threads(default: int | None = None) -> None:
    """Give torch ``$TWOLEVEL_THREADS`` threads, else ``default``, else the cores idle now
    (:func:`twolevel.options.default_threads`)."""
    import torch

    torch.set_num_threads(default_threads(default))


class IntOrWord(click.ParamType):
    """A whole number within the rule's bounds, or one of its words (``--samples auto``)."""

    name = "integer"

    def __init__(self, rule: OptionRule):
        self.rule = rule
        self.name = "|".join(("N",) + rule.words)

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool) or value in self.rule.words:
            return value
        text = str(value).strip()
        if text.lower() in self.rule.words:
            return text.lower()
        try:
            number = int(text.replace(",", "").replace("_", ""))
        except ValueError:
            words = " or ".join(repr(w) for w in self.rule.words)
            self.fail(f"{text!r} is neither a whole number nor {words}", param, ctx)
        return click.IntRange(min=self.rule.low, max=self.rule.high).convert(number, param, ctx)


def click_type(rule: OptionRule):
    """The Click type of an option with ``rule`` (an explanation or training option): its bounds
    checked by Click, as ``--help`` shows them."""
    if rule.kind is int and rule.words:
        return IntOrWord(rule)
    if rule.kind is int:
        return click.IntRange(min=rule.low, max=rule.high)
    if rule.kind is float:
        return click.FloatRange(min=rule.low, max=rule.high, min_open=rule.low_open, max_open=rule.high_open)
    return click.BOOL if rule.kind is bool else click.STRING


def explain_option(flag: str, name: str, **kwargs):
    """``--FLAG`` for option ``name`` of :class:`~twolevel.options.ExplainOptions`: type, range,
    default and help all come from there (``kwargs`` override, e.g. ``default=None``)."""
    rule = option_rule(name)
    settings = {"type": click_type(rule), "default": option_default(name), "show_default": True, "help": rule.help}
    settings.update(kwargs)
    return click.option(flag, name, **settings)


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
    help="Checkpoint to use (default: the shipped model, or $TWOLEVEL_MODEL).",
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

timeout_option = click.option(
    "--timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
    help="With --endpoint: seconds to wait for each answer once connected (default: 120 for a prediction, "
         "3600 for an explanation); connecting waits at most 10 s. A prediction whose connection drops or "
         "whose worker dies is sent once more.",
)


def endpoint_client(endpoint: str, token: str | None, timeout: float | None):
    """The :class:`~twolevel.client.TorchServeClient` for ``--endpoint``/``--token``/``--timeout``."""
    from twolevel.client import TorchServeClient

    limits = {"timeout": timeout, "explain_timeout": timeout} if timeout else {}
    return TorchServeClient(endpoint, token=token, **limits)
