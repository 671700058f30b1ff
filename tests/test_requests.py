"""Request parsing checks every option before any work (issue 11 case 4), and a fuzz of it.

No server: :func:`twolevel.serving.requests.parse_request` is what every model server calls first.
"""
from __future__ import annotations

import base64
import json

import pytest

from twolevel.errors import OptionError, TwolevelError
from twolevel.serving.requests import parse_request
from twolevel.serving.responses import error_body

AUDIO = b"RIFF" + b"\0" * 40
B64 = base64.b64encode(AUDIO).decode()
JSON_HEADERS = {"body": {"content-type": "application/json"}}


def refused(row, headers=None) -> TwolevelError:
    with pytest.raises(TwolevelError) as err:
        parse_request(row, headers or {})
    status, body = error_body(err.value)
    assert 400 <= status < 500 and body["message"]
    return err.value


def test_unknown_option_names_are_refused_naming_the_option():
    for row, headers in (
        ({"body": json.dumps({"data": B64, "frob": 1})}, JSON_HEADERS),
        ({"body": AUDIO}, {"X-Twolevel-Frob": "1"}),
        ({"data": AUDIO, "frob": "1"}, {}),
        ({"body": json.dumps({"instances": [{"data": B64, "frob": 1}]})}, JSON_HEADERS),
        ({"body": json.dumps({"inputs": [{"name": "audio", "data": [B64]}], "parameters": {"frob": 1}})}, JSON_HEADERS),
    ):
        err = refused(row, headers)
        assert isinstance(err, OptionError) and err.code == "unknown_option" and "'frob'" in err.message
        assert "target" in err.message  # and says which options there are


def test_known_options_still_come_from_every_source():
    req = parse_request({"body": AUDIO}, {"X-Twolevel-Include-Audio": "true", "X-Twolevel-Seed": "3"})
    assert req["options"] == {"include_audio": "true", "seed": "3"}
    req = parse_request({"data": AUDIO, "target": "energy", "name": "a.wav"}, {})
    assert req["options"] == {"target": "energy", "name": "a.wav"} and req["audio_bytes"] == AUDIO


def test_two_audio_files_in_one_request_are_refused():
    err = refused({"data": AUDIO, "other": AUDIO + b"x"})
    assert err.code == "multiple_audio" and "'data'" in err.message and "'other'" in err.message
    err = refused({"body": json.dumps({"inputs": [{"name": "a", "data": [B64]}, {"name": "b", "data": [B64]}]})},
                  JSON_HEADERS)
    assert err.code == "unknown_option"


def test_huge_json_integers_and_json_messages():
    err = refused({"body": '{"data": "%s", "seed": %s}' % (B64, "9" * 5000)}, JSON_HEADERS)
    assert err.code == "malformed_json" and "4,300 digits" in err.message
    err = refused({"body": b'{"data": "%s", "seed": %s}' % (B64.encode(), b"9" * 5000)}, JSON_HEADERS)
    assert err.code == "malformed_json"
    err = refused({"body": '{"data": "abc'}, JSON_HEADERS)
    assert "at at" not in err.message and "position 9" in err.message


def test_seed_and_huge_numbers_are_refused_before_any_work():
    """Issue 11 case 4: seed >= 2**64 failed in Griffin-Lim after the whole LIME run."""
    pytest.importorskip("ts")
    from twolevel.serving.service import SERVER_SETTINGS, explain_options

    for options, code in (({"seed": str(2**64)}, "bad_seed"), ({"seed": 2**64}, "bad_seed"),
                          ({"ratio": 10**400}, "bad_ratio"), ({"samples": "9" * 4000}, "bad_samples")):
        with pytest.raises(OptionError) as err:
            explain_options(options, SERVER_SETTINGS)
        assert err.value.code == code and len(err.value.message) < 200, err.value.message
    assert explain_options({"seed": str(2**32 - 1)}, SERVER_SETTINGS).seed == 2**32 - 1
