"""Property-based fuzz (hypothesis) of the two doors of the server: the request parser (with the
option checks behind it) and the audio decoder. No input may give a 5xx or an exception that is
not twolevel's own (issue 11).

Example counts are small so the suite stays fast; ``HYPOTHESIS_PROFILE=long`` runs 20x more.
"""
from __future__ import annotations

import base64
import io
import json
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from twolevel.audio import MIN_SECONDS, load_audio  # noqa: E402
from twolevel.errors import AudioError, TwolevelError  # noqa: E402
from twolevel.signal import SAMPLE_RATE  # noqa: E402
from twolevel.serving.requests import OPTION_KEYS, parse_request  # noqa: E402
from twolevel.serving.responses import error_body  # noqa: E402

settings.register_profile("quick", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=1200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

# --- the request parser -------------------------------------------------------------------

NAMES = st.sampled_from([*OPTION_KEYS, "data", "audio", "file", "body", "frob", "instances", "inputs",
                         "parameters", "b64", ""]) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-10**30, max_value=10**30)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
           | st.sampled_from(["energy", "articulation", "1e999", "-0", "nan", "18446744073709551616", "true"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=4),
                    max_leaves=12)
B64 = st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())


def _json_bodies():
    plain = st.fixed_dictionaries({"data": B64}, optional={k: JSON for k in OPTION_KEYS}) | st.dictionaries(NAMES, JSON)
    v1 = st.fixed_dictionaries({"instances": st.lists(plain | B64 | JSON, max_size=2)},
                               optional={"parameters": JSON})
    v2 = st.fixed_dictionaries({"inputs": st.lists(st.fixed_dictionaries({"name": NAMES, "data": st.lists(B64 | JSON, max_size=2)}),
                                                   max_size=3)}, optional={"parameters": JSON})
    return (plain | v1 | v2).map(json.dumps)


BODIES = (_json_bodies() | st.binary(max_size=80) | st.text(max_size=80)
          | _json_bodies().map(lambda s: s[: len(s) // 2])  # cut-off JSON
          | st.integers(min_value=10**4000, max_value=10**4200).map(lambda n: '{"data": "", "seed": %d}' % n))
HEADERS = st.dictionaries(st.sampled_from(["X-Twolevel-" + k.replace("_", "-").title() for k in OPTION_KEYS]
                                          + ["X-Twolevel-Frob", "explain", "content-type"]) | st.text(max_size=10),
                          st.text(max_size=20), max_size=4)


def _shipped_server_settings() -> dict:
    from twolevel.serving.service import read_settings

    return read_settings()  # the shipped model-config.yaml over the library's defaults


def _check_options(options: dict) -> None:
    """The option stage behind the parser: ExplainOptions within the shipped server's caps."""
    from twolevel.serving.service import explain_options

    explain_options(options, _shipped_server_settings())


@given(body=BODIES, extra=st.dictionaries(NAMES, st.binary(max_size=8) | st.text(max_size=8), max_size=3),
       headers=HEADERS, json_type=st.booleans())
@example(body='{"data": "UklGRg==", "seed": %s}' % ("9" * 5000), extra={}, headers={}, json_type=True)
@example(body='{"data": "UklGRg==", "frob": 1}', extra={}, headers={}, json_type=True)
@example(body=b"RIFF", extra={}, headers={"X-Twolevel-Seed": str(2**64), "explain": "True"}, json_type=False)
def test_the_parser_answers_every_request_with_a_result_or_a_4xx(body, extra, headers, json_type):
    pytest.importorskip("ts")
    row = {**extra, "body": body}
    all_headers = {**headers, **({"body": {"content-type": "application/json"}} if json_type else {})}
    try:
        request = parse_request(row, all_headers)
        _check_options(request["options"])
    except TwolevelError as err:
        status, answer = error_body(err)
        assert 400 <= status < 500, answer
        assert answer["message"] and "Traceback" not in answer["message"]


# --- the audio decoder --------------------------------------------------------------------

FORMATS = st.sampled_from([("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", None), ("OGG", None), ("MP3", None)])


@st.composite
def damaged_files(draw) -> bytes:
    """A real encoded file, then cut, overwritten or both."""
    import soundfile as sf

    fmt, subtype = draw(FORMATS)
    rate = draw(st.sampled_from([8_000, 22_050, 44_100, 48_000]))
    channels = draw(st.integers(1, 2))
    n = draw(st.integers(1, rate))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    signal = (0.3 * rng.standard_normal((n, channels))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, signal, rate, format=fmt, subtype=subtype)
    data = bytearray(buf.getvalue())
    for _ in range(draw(st.integers(0, 4))):  # overwrite a few bytes, often in the header
        pos = draw(st.integers(0, min(len(data) - 1, draw(st.sampled_from([64, len(data) - 1])))))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=int(os.environ.get("TWOLEVEL_FUZZ_AUDIO", "80")))
@given(data=damaged_files() | st.binary(max_size=200) | st.binary(max_size=16).map(lambda b: b"RIFF" + b))
def test_the_decoder_raises_only_audio_errors(data):
    try:
        audio = load_audio(data, max_seconds=5.0)
    except AudioError as err:
        assert err.code and err.message
        return
    assert audio.sample_rate == SAMPLE_RATE and audio.samples.dtype == np.float32
    assert np.isfinite(audio.samples).all() and audio.duration >= MIN_SECONDS - 0.01


@given(samples=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=300),
       rate=st.integers(-10, 10**6) | st.none(), channels=st.integers(1, 12))
def test_the_decoder_takes_any_array_or_refuses_it(samples, rate, channels):
    array = np.asarray(samples, np.float32)
    if channels > 1:
        array = np.resize(array, (len(array) // channels * channels,)).reshape(-1, channels)
    try:
        audio = load_audio(array, sample_rate=rate)
    except AudioError:
        return
    assert np.isfinite(audio.samples).all() and len(audio.samples) > 0
