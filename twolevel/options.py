"""The options of a level-2 explanation: every default and allowed range in one place.

:class:`ExplainOptions` is frozen and checks itself when built, so an instance is always valid:
the library (:func:`twolevel.explain.explain`), the TorchServe handler and the CLI all start
from it. A mistake raises :class:`~twolevel.errors.OptionError` naming the option, the allowed
range and the value given, with the option's own ``code`` (``bad_samples``, ``bad_ratio``, ...).

>>> ExplainOptions()                              # the paper's settings
>>> ExplainOptions(samples=5000, target="energy")
>>> options_from_request({"samples": "500", "seed": "3"}, defaults=server_defaults)

Each field carries its rule as metadata (:class:`OptionRule`): the type, the bounds, the error
code and a one-line help text, which the CLI turns into Click types and ``--help``. To add an
option, add a field with :func:`option`; to accept a word beside numbers (e.g. ``"auto"``), list
it in the rule's ``words``.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from .errors import OptionError
from .labels import MIDLEVEL_NAMES, TARGET_NAMES

#: Upper bound on samples: the surrogate's design matrix is samples x segments float64.
MAX_SAMPLES = 200_000
#: Lower bound per coefficient (segments + intercept): every weight and its p-value must be
#: estimable with residual degrees of freedom to spare (checked once the segments are known).
SAMPLES_PER_COEFFICIENT = 2
MAX_BATCH_SIZE = 8192
MAX_GRIFFIN_LIM_ITERS = 5000
MAX_FAITHFULNESS_DRAWS = 1000
#: Largest seed: 2**32 - 1, a range every random generator the explanation seeds accepts.
MAX_SEED = 2**32 - 1
#: How perturbations can be drawn (:func:`twolevel.explain.sampling.sample_switches`); the first is the default.
SAMPLING_DESIGNS = ("antithetic", "independent")
#: Arithmetic of the perturbation passes (:attr:`ExplainOptions.precision`).
#: fp16 runs on CUDA only (:func:`check_precision_on`): CPUs without fp16 arithmetic emulate it, slowly.
PRECISIONS = ("fp32", "bf16", "fp16")
#: Longest audio accepted by default, in seconds (10 minutes).
DEFAULT_MAX_SECONDS = 600.0

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class OptionRule:
    """How one option is checked and parsed.

    Attributes:
        kind: ``int``, ``float``, ``bool`` or ``str``.
        code: the error code of a mistake in this option.
        help: one line for ``--help`` and error messages.
        low, high: bounds (None: unbounded), inclusive unless ``low_open`` / ``high_open`` says
            that bound itself is refused.
        choices: the allowed values of a ``str`` option.
        words: literal strings accepted as they are beside the numbers (e.g. ``("auto",)``).
        hint: appended to the error message (e.g. how many samples a window needs).
    """

    kind: type
    code: str
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    words: tuple[str, ...] = ()
    hint: str = ""

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``a whole number from 1 to 8,192``."""
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "one of " + ", ".join(self.choices or ())
        what = "a whole number" if self.kind is int else "a number"
        fmt = (lambda v: f"{v:,}") if self.kind is int else (lambda v: f"{v:g}")
        low = None if self.low is None else f"{'above' if self.low_open else 'at least'} {fmt(self.low)}"
        high = None if self.high is None else f"{'below' if self.high_open else 'at most'} {fmt(self.high)}"
        if low and high:
            closed = not (self.low_open or self.high_open)
            what += f" from {fmt(self.low)} to {fmt(self.high)}" if closed else f" {low} and {high}"
        elif low or high:
            bound, is_open = (low, self.low_open) if low else (high, self.high_open)
            what += f" {bound}" if is_open else f" of {bound}"  # "above 0", "of at least 1"
        else:
            what = "a finite number" if self.kind is float else what
        if self.words:
            what += " or " + " or ".join(repr(w) for w in self.words)
        return what

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`OptionError` unless ``value`` is allowed for option ``name``."""
        if isinstance(value, str) and value in self.words:
            return
        if not self._fits(value):
            hint = f" ({self.hint})" if self.hint else ""
            raise OptionError(f"{name} must be {self.allowed()}{hint}, got {_shown(value)}", code=self.code)

    def _fits(self, value: Any) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, str) and (self.choices is None or value in self.choices)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if self.kind is int else numbers.Real):
            return False
        if not isinstance(value, numbers.Integral) and not math.isfinite(float(value)):
            return False  # (ints are finite; float() of a huge one would overflow)
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or value < self.high or (not self.high_open and value == self.high)

    def parse(self, name: str, value: Any) -> Any:
        """A request's text (or an already typed value) -> the option's type, checked."""
        if isinstance(value, (bytes, bytearray)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise OptionError(f"{name} must be UTF-8 text", code=self.code) from None
        if isinstance(value, str):
            text = value.strip()
            if text in self.words:
                return text
            try:
                if self.kind is bool:
                    if text.lower() not in TRUE_WORDS | FALSE_WORDS:
                        raise ValueError
                    value = text.lower() in TRUE_WORDS
                elif self.kind is int:
                    value = int(text)
                elif self.kind is float:
                    value = float(text)
                else:
                    value = text
            except ValueError:
                raise OptionError(f"{name} must be {self.allowed()}, got {_shown(text)}", code=self.code) from None
        elif self.kind is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:  # an integer beyond float's range (JSON allows it)
                raise OptionError(f"{name} must be {self.allowed()}, got {_shown(value)}", code=self.code) from None
        self.check(name, value)
        return value


def _shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` for a message, shortened: a request may send 4,000 digits."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 12]}... ({len(text)} characters)"


def option(default: Any, rule: OptionRule):
    """A dataclass field with its :class:`OptionRule` as metadata."""
    return field(default=default, metadata={"rule": rule})


@dataclass(frozen=True)
class ExplainOptions:
    """Everything that shapes one level-2 explanation (defaults: the paper's settings).

    Attributes:
        target: the output explained (a mid-level or emotion name).
        samples: random on/off combinations of the segments (LIME perturbations), or ``"auto"``:
            rounds of ``auto_cap / 32``, ``/ 16``, ... samples until every traced output's selection
            agrees with the previous round's (see :mod:`twolevel.explain.adaptive`).
        auto_cap: the most samples ``"auto"`` draws (the paper's 50,000).
        design: how the perturbations are drawn: ``"antithetic"`` (pairs of a random sample and
            its complement, which keeps the segments' pairwise interactions out of the weights) or
            ``"independent"`` (LIME's own sampling); see :func:`twolevel.explain.sampling.sample_switches`.
        ratio: keep a segment when its p-value / |weight| is below this.
        seed: seeds the samples, the deletion check's random draws and Griffin-Lim's phase.
        batch_size: perturbed spectrograms per forward pass.
        hide_value: value of a hidden segment in the normalised input space.
        offset: start of the explained 10 s window in the clip, s.
        resynthesis: build the audio of the explanations.
        griffin_lim_iters: Griffin-Lim iterations per resynthesis.
        top_midlevels: for an emotion target, how many mid-levels (largest |effect|) are traced.
        faithfulness_draws: random segment sets the deletion check compares against.
        precision: arithmetic of the perturbation passes and the deletion check: ``"fp32"``,
            ``"bf16"`` or ``"fp16"`` (``torch.autocast``; the front end, surrogate and resynthesis stay
            fp32); fp16 on CUDA only (:func:`check_precision_on`).
    """

    target: str = option("articulation", OptionRule(
        str, "unknown_target", "Mid-level feature or emotion to explain.", choices=TARGET_NAMES))
    samples: int | str = option("auto", OptionRule(
        int, "bad_samples", "Perturbation samples, at least 2 x (segments + 1), or 'auto': rounds of "
        "1,563, 3,125, ... until every traced selection agrees with the round before (Jaccard >= 0.9), "
        "at most --auto-cap (the paper's 50,000).",
        low=1, high=MAX_SAMPLES, words=("auto",), hint="at least 2 x (segments + 1), about 600 for 10 s"))
    auto_cap: int = option(50_000, OptionRule(
        int, "bad_samples", "Most samples 'auto' draws (the paper's 50,000).", low=1, high=MAX_SAMPLES))
    design: str = option(SAMPLING_DESIGNS[0], OptionRule(
        str, "bad_design", "How perturbations are drawn: antithetic (each random sample followed by its complement: "
        "stabler selections for the same samples) or independent (LIME's sampling).",
        choices=SAMPLING_DESIGNS))
    ratio: float = option(1e-6, OptionRule(
        float, "bad_ratio", "Keep segments with p / |weight| < RATIO (the paper's 1e-6).", low=0.0, low_open=True))
    # At most 2**32 - 1: every generator seeded from it takes that range (torch's stops at 2**64 - 1,
    # which failed in Griffin-Lim after the whole LIME run).
    seed: int = option(0, OptionRule(int, "bad_seed", "Random seed (samples, deletion check, Griffin-Lim).", low=0,
                                     high=MAX_SEED))
    batch_size: int = option(256, OptionRule(
        int, "bad_batch_size", "Perturbed spectrograms per forward pass.", low=1, high=MAX_BATCH_SIZE))
    hide_value: float = option(0.0, OptionRule(
        float, "bad_hide_value", "Value of hidden segments in the normalised input (the paper's 0)."))
    offset: float = option(0.0, OptionRule(float, "bad_offset", "Start (s) of the 10 s window explained.", low=0.0))
    resynthesis: bool = option(True, OptionRule(bool, "bad_option", "Resynthesise the explanations as audio."))
    griffin_lim_iters: int = option(64, OptionRule(
        int, "bad_iterations", "Griffin-Lim iterations.", low=1, high=MAX_GRIFFIN_LIM_ITERS))
    top_midlevels: int = option(3, OptionRule(
        int, "bad_top_midlevels", "Mid-levels traced for an emotion target.", low=1, high=len(MIDLEVEL_NAMES)))
    faithfulness_draws: int = option(16, OptionRule(
        int, "bad_option", "Random segment sets the deletion check compares with.", low=1, high=MAX_FAITHFULNESS_DRAWS))
    precision: str = option(PRECISIONS[0], OptionRule(
        str, "bad_precision", "Arithmetic of the perturbation passes: fp32, bf16 (autocast; about 2x faster "
        "on CPUs with AVX-512 BF16 or AMX, about 1.1x on GPUs, slower on CPUs without; selections within Jaccard ~0.97 "
        "of fp32's) or fp16 (autocast, CUDA only; about 1.2x on GPUs, selections within Jaccard ~0.99).",
        choices=PRECISIONS))

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["rule"].kind is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))  # 1 and 1.0 are the same ratio
            f.metadata["rule"].check(f.name, getattr(self, f.name))

    @property
    def target_kind(self) -> str:
        """``"midlevel"`` or ``"emotion"``."""
        return "midlevel" if self.target in MIDLEVEL_NAMES else "emotion"

    def replace(self, **changes) -> "ExplainOptions":
        """A copy with ``changes`` (checked like a new instance)."""
        unknown = set(changes) - set(OPTION_NAMES)
        if unknown:
            raise OptionError(f"unknown option(s): {', '.join(sorted(unknown))}; known: {', '.join(OPTION_NAMES)}",
                              code="bad_option")
        return replace(self, **changes)


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ExplainOptions))
#: Request keys that name an option differently (the server's ``include_audio`` asks for resynthesis).
REQUEST_ALIASES = {"include_audio": "resynthesis", "n_samples": "samples"}


def precision_runs_on(device_type: str, precision: str) -> bool:
    """Whether ``precision`` (one of :data:`PRECISIONS`) is offered on a device of ``device_type``
    (``"cpu"``, ``"cuda"``): fp16 on CUDA only, because CPUs without fp16 arithmetic emulate it and
    would take longer than fp32."""
    return precision != "fp16" or device_type == "cuda"


def precisions_on(device_type: str) -> tuple[str, ...]:
    """The :data:`PRECISIONS` offered on a device of ``device_type``, in their order."""
    return tuple(p for p in PRECISIONS if precision_runs_on(device_type, p))


def check_precision_on(device_type: str, precision: str) -> None:
    """Raise :class:`OptionError` (``bad_precision``) when ``precision`` cannot run on a device of
    ``device_type`` (:func:`precision_runs_on`), before any work."""
    if not precision_runs_on(device_type, precision):
        raise OptionError(f"precision 'fp16' runs on CUDA only, and the model is on {device_type}: "
                          "use fp32, or bf16 (fast on CPUs with AVX-512 BF16 or AMX)", code="bad_precision")


def rule(name: str) -> OptionRule:
    """The :class:`OptionRule` of option ``name``."""
    return next(f.metadata["rule"] for f in fields(ExplainOptions) if f.name == name)


def default(name: str) -> Any:
    """The default value of option ``name``."""
    return next(f.default for f in fields(ExplainOptions) if f.name == name)


def options_from_request(values: Mapping[str, Any], defaults: ExplainOptions | None = None,
                         allowed: tuple[str, ...] | None = None,
                         limits: Mapping[str, tuple[float, float]] | None = None) -> ExplainOptions:
    """Options from a mapping of request values (text, bytes or typed), over ``defaults``.

    Args:
        values: option name (or a :data:`REQUEST_ALIASES` key) -> value as sent.
        defaults: what unnamed options take (default: :class:`ExplainOptions`'s own).
        allowed: the option names a caller may set (default: all); any other key is refused.
        limits: option name -> ``(low, high)``, narrower bounds for values sent (a server's caps).

    Raises:
        OptionError: ``bad_option`` for an unknown key (all of them named), else the option's code.
    """
    allowed = OPTION_NAMES if allowed is None else allowed
    names = {key: REQUEST_ALIASES.get(key, key) for key in values}
    unknown = sorted(key for key, name in names.items() if name not in allowed)
    if unknown:
        known = sorted(allowed + tuple(k for k, v in REQUEST_ALIASES.items() if v in allowed))
        raise OptionError(f"unknown option(s): {', '.join(unknown)}; known: {', '.join(known)}", code="bad_option")
    rules = {name: rule(name) for name in names.values()}
    for name, (low, high) in (limits or {}).items():
        if name in rules:
            rules[name] = replace(rules[name], low=low, high=high, hint=f"on this server; {rules[name].hint}".rstrip("; "))
    parsed = {name: rules[name].parse(key, values[key]) for key, name in names.items()}
    return (defaults or ExplainOptions()).replace(**parsed)


def default_threads(fallback: int | None = None) -> int:
    """torch threads: ``$TWOLEVEL_THREADS``, else ``fallback``, else the cores that are idle now.

    Idle cores are the core count less the 1-minute load average, rounded, at least one (half the
    cores where the load cannot be read). Measured on 2 shared cores: idle, 2 threads explained
    50,000 samples in 51 s against 96 s for 1; busy with other jobs, 2 threads made an explanation
    3x slower than 1 (Griffin-Lim 15x), because the threads kept waiting for each other.
    """
    chosen = os.environ.get("TWOLEVEL_THREADS") or fallback
    return max(1, int(chosen)) if chosen else idle_cores()


def idle_cores() -> int:
    """``cpu_count - load average (1 min)``, rounded, from 1 to ``cpu_count``; half the cores if the
    load cannot be read."""
    cores = os.cpu_count() or 2
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return max(1, cores // 2)
    return max(1, min(cores, int(cores - load + 0.5)))
