"""Results and refusals -> what a twolevel model server answers (status, JSON body, KServe envelope).

Shared by every model server, like :mod:`twolevel.serving.requests`. Standard library only.
"""
from __future__ import annotations

import json

from ..errors import TwolevelError

#: HTTP status for each error code (anything else: 400).
STATUS = {
    "not_audio": 415,
    "empty": 400,
    "truncated": 400,
    "silent": 422,
    "non_finite": 422,
    "bad_sample_rate": 422,
    "too_long": 413,
    "too_large_decoded": 413,
    "too_short": 422,
    "too_many_channels": 422,
    "missing_audio": 400,
    "malformed_json": 400,
    "bad_base64": 400,
    "bad_request": 400,
    "unknown_target": 400,
    "bad_samples": 400,
    "bad_option": 400,
    "internal_error": 500,
}


def error_body(err: BaseException) -> tuple[int, dict]:
    """HTTP status and JSON body for a refused request (no internals for unexpected errors)."""
    if isinstance(err, TwolevelError):
        code = err.code
        return STATUS.get(code, 400), {"error": code, "message": err.message}
    return 500, {"error": "internal_error", "message": f"internal error ({type(err).__name__}); see the model log"}


def wrap_result(result: dict, kind: str, protocol: str | None, model_name: str = "twolevel") -> dict:
    """``result`` (``kind`` ``"prediction"`` or ``"explanation"``) in the envelope of ``protocol``.

    KServe v1: ``{"predictions": [result]}`` / ``{"explanations": [result]}``; KServe v2: one
    BYTES output holding the JSON text; otherwise ``result`` itself.
    """
    if protocol == "v1":
        return {"predictions" if kind == "prediction" else "explanations": [result]}
    if protocol == "v2":
        return {"model_name": model_name,
                "outputs": [{"name": kind, "datatype": "BYTES", "shape": [1],
                             "parameters": {"content_type": "application/json"},
                             "data": [json.dumps(result, separators=(",", ":"))]}]}
    return result
