"""The exception types twolevel raises on purpose.

Every error carries a short machine-readable ``code`` (used as the ``error`` field of HTTP
responses) and a message that names the problem for a person.
"""
from __future__ import annotations


class TwolevelError(Exception):
    """Base class: anything twolevel refuses on purpose."""

    code = "twolevel_error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class AudioError(TwolevelError, ValueError):
    """Input that is not usable audio.

    Codes: ``not_audio``, ``empty``, ``truncated``, ``silent``, ``non_finite``, ``too_long``,
    ``too_short``, ``too_large_decoded``, ``too_many_channels``, ``bad_sample_rate``, ``not_found``.
    """

    code = "bad_audio"


class CheckpointError(TwolevelError):
    """A model file that is missing, corrupt, or not a twolevel checkpoint."""

    code = "bad_checkpoint"


class OptionError(TwolevelError, ValueError):
    """An option outside its allowed range (unknown target, samples out of range, ...)."""

    code = "bad_option"
