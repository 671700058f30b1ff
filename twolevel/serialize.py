"""How results travel as JSON: arrays, audio and plain values (one module, no result classes).

The result objects (:class:`twolevel.Prediction`, :class:`twolevel.explain.Explanation`) build
their JSON form with these functions (``to_dict``) and are rebuilt from it by one decoder each
(``from_dict``), which is what :class:`twolevel.client.TorchServeClient` returns. A local result
never goes through this module on its way to the report.
"""
from __future__ import annotations

import base64
import io
import math
import zlib

import numpy as np
import soundfile as sf

from .signal import SAMPLE_RATE

ARRAY_ENCODING = "zlib+base64"


def encode_array(array: np.ndarray, dtype: str) -> dict:
    """A compact JSON form of an array: ``{"shape", "dtype", "encoding": "zlib+base64", "data"}``."""
    raw = np.ascontiguousarray(np.asarray(array).astype(dtype)).astype(np.dtype(dtype).newbyteorder("<"))
    return {"shape": list(raw.shape), "dtype": dtype, "encoding": ARRAY_ENCODING,
            "data": base64.b64encode(zlib.compress(raw.tobytes(), 6)).decode("ascii")}


def decode_array(data: dict) -> np.ndarray:
    """Inverse of :func:`encode_array`."""
    if data.get("encoding") != ARRAY_ENCODING:
        raise ValueError(f"unknown array encoding {data.get('encoding')!r}")
    raw = zlib.decompress(base64.b64decode(data["data"]))
    return np.frombuffer(raw, dtype=np.dtype(data["dtype"]).newbyteorder("<")).reshape(data["shape"]).copy()


def json_safe(value):
    """Recursively turn numpy scalars/arrays into Python types and NaN/inf into None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def none_to_nan(values) -> np.ndarray:
    """float64 array of JSON numbers, None (a NaN or inf that :func:`json_safe` wrote) back to NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def encode_audio(samples: np.ndarray, fmt: str = "flac", sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit WAV or FLAC bytes of a mono float signal."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, format=fmt.upper(), subtype="PCM_16")
    return buffer.getvalue()


def decode_audio(data: bytes) -> np.ndarray:
    """float32 samples of WAV/FLAC bytes."""
    samples, _ = sf.read(io.BytesIO(data), dtype="float32")
    return samples


def audio_to_base64(samples: np.ndarray) -> str:
    """Base64 of the FLAC encoding (how audio travels inside explanation dicts)."""
    return base64.b64encode(encode_audio(samples, "flac")).decode("ascii")


def audio_from_base64(text: str) -> np.ndarray:
    """Inverse of :func:`audio_to_base64`: float32 samples."""
    return decode_audio(base64.b64decode(text))
