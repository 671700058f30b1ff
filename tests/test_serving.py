"""twolevel.serving without a server: request parsing, responses, and no server imports."""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from twolevel.errors import OptionError, TwolevelError
from twolevel.serving.requests import parse_request
from twolevel.serving.responses import error_body, wrap_result


def test_import_twolevel_and_serving_loads_no_server():
    code = ("import sys, twolevel, twolevel.serving.requests, twolevel.serving.responses, "
            "twolevel.serving.torchserve; "
            "print(sorted(m for m in ('ts', 'psutil', 'model_archiver') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_parse_request_option_sources():
    req = parse_request({"data": b"abc", "target": "energy", "samples": "300"},
                        {"explain": "True", "X-Twolevel-Seed": "7", "X-Twolevel-Target": "sad"})
    assert req["explain"] is True and req["audio_bytes"] == b"abc"
    assert req["options"] == {"target": "energy", "samples": "300", "seed": "7"}
    req = parse_request({"body": {"data": base64.b64encode(b"xyz").decode(), "target": "tension", "explain": True}}, {})
    assert req["explain"] is True and req["audio_bytes"] == b"xyz" and req["options"]["target"] == "tension"
    req = parse_request({"body": {"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1],
                                              "data": [base64.b64encode(b"q").decode()]}],
                                  "parameters": {"samples": 50}}}, {})
    assert req["protocol"] == "v2" and req["audio_bytes"] == b"q" and req["options"]["samples"] == 50


def test_parse_request_kserve_v1_and_json_sent_as_bytes():
    b64 = base64.b64encode(b"wav").decode()
    req = parse_request({"body": {"instances": [{"b64": b64, "seed": 3}], "parameters": {"target": "sad"}}}, {})
    assert (req["protocol"], req["audio_bytes"], req["options"]) == ("v1", b"wav", {"seed": 3, "target": "sad"})
    raw = json.dumps({"data": b64, "include_audio": "yes"}).encode()
    req = parse_request({"body": raw}, {"body": {"content-type": "application/json"}})
    assert req["audio_bytes"] == b"wav" and req["options"] == {"include_audio": "yes"} and req["explain"] is False


@pytest.mark.parametrize("row, headers, code", [
    ({"body": "{not json"}, {}, "malformed_json"),
    ({"body": b"\xff{", }, {"body": {"content-type": "application/json"}}, "malformed_json"),
    ({"body": {"instances": [{"data": "AA=="}, {"data": "AA=="}]}}, {}, "bad_request"),
    ({"body": {"inputs": [{"name": "target", "data": ["sad"]}]}}, {}, "missing_audio"),
    ({"body": {"data": "not base64!"}}, {}, "bad_base64"),
    ({"body": {"target": "sad"}}, {}, "missing_audio"),
    ({"body": [1, 2]}, {}, "bad_request"),
    ({"target": "sad"}, {}, "missing_audio"),
])
def test_parse_request_refusals_name_the_problem(row, headers, code):
    with pytest.raises(TwolevelError) as err:
        parse_request(row, headers)
    assert err.value.code == code and "\n" not in err.value.message


def test_explain_option_must_be_a_yes_or_no():
    with pytest.raises(OptionError, match="explain must be true or false, not 'maybe'"):
        parse_request({"body": b"x", "explain": "maybe"}, {})


def test_responses_status_codes_and_envelopes():
    assert error_body(TwolevelError("too long", code="too_long")) == (413, {"error": "too_long", "message": "too long"})
    status, body = error_body(RuntimeError("secret internals"))
    assert status == 500 and body["error"] == "internal_error" and "secret" not in body["message"]
    result = {"emotions": {"sad": 0.5}}
    assert wrap_result(result, "prediction", None) is result
    assert wrap_result(result, "explanation", "v1") == {"explanations": [result]}
    v2 = wrap_result(result, "prediction", "v2", "m")
    assert v2["model_name"] == "m" and json.loads(v2["outputs"][0]["data"][0]) == result


def test_server_precision_setting_sets_the_explanations_default():
    from twolevel.serving.service import SERVER_SETTINGS, server_defaults

    assert server_defaults(dict(SERVER_SETTINGS)).precision == "fp32"
    assert server_defaults({**SERVER_SETTINGS, "explain_precision": "bf16"}).precision == "bf16"
    with pytest.raises(OptionError, match="precision"):
        server_defaults({**SERVER_SETTINGS, "explain_precision": "fp8"})


def test_a_cpu_server_refuses_fp16_when_it_loads_the_model():
    from twolevel.checkpoint import default_model_path
    from twolevel.serving.service import SERVER_SETTINGS, load_served_model, server_defaults

    settings = {**SERVER_SETTINGS, "explain_precision": "fp16"}
    assert server_defaults(settings).precision == "fp16"  # a valid setting: it is the device that refuses it
    with pytest.raises(OptionError, match="CUDA only") as err:
        load_served_model(default_model_path(), "cpu", settings)
    assert err.value.code == "bad_precision"
