"""The TorchServe handler without a server: a real ts.context.Context, requests as TorchServe passes them.

TorchServe's MockContext cannot mark a request as an explanation (its request headers are fixed),
so these tests build ``ts.context.Context`` with one ``RequestProcessor`` per request, whose
headers carry ``explain: True`` exactly as the frontend sets them for ``/explanations``.
"""
from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("ts", reason="torchserve is not installed")
sf = pytest.importorskip("soundfile")

from ts.context import Context, RequestProcessor  # noqa: E402

from twolevel_handlers.twolevel_handler import TwolevelHandler  # noqa: E402

SR = 22_050


def wav_bytes(samples: np.ndarray, subtype: str = "PCM_16", rate: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


@pytest.fixture(scope="module")
def clips():
    t = np.arange(3 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    good = wav_bytes(tone)
    nan = tone.copy()
    nan[100] = np.nan
    return {
        "good": good,
        "good2": wav_bytes(np.roll(tone, 5000) * 0.5),
        "truncated": good[: len(good) // 2],
        "not_audio": b"this is not an audio file at all",
        "empty": b"",
        "non_finite": wav_bytes(nan, subtype="FLOAT"),
        "silent": wav_bytes(np.zeros(SR, dtype=np.float32)),
        "long": wav_bytes(np.tile(tone, 3)),  # 9 s, over the 8 s cap set below
    }


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_checkpoint):
    d = tmp_path_factory.mktemp("model_dir")
    shutil.copy(tiny_checkpoint, d / "tiny.pt")
    return d


HANDLER_CONFIG = {"max_seconds": 8, "max_explain_seconds": 8, "default_samples": 400, "min_samples": 10,
                  "max_samples": 2000, "explain_batch_size": 64, "griffin_lim_iters": 4, "threads": 1}


def make_context(model_dir, n_requests: int, explain=(), extra_headers=None) -> Context:
    ctx = Context("twolevel", str(model_dir), {"model": {"modelName": "twolevel", "serializedFile": "tiny.pt"}},
                  8, None, "0.12.0", model_yaml_config={"batchSize": 8, "handler": HANDLER_CONFIG})
    procs = []
    for i in range(n_requests):
        headers = {"explain": "True" if i in explain else "False", "body": {"content-type": "audio/wav"}}
        headers.update((extra_headers or {}).get(i, {}))
        procs.append(RequestProcessor(headers))
    ctx.request_processor = procs
    return ctx


@pytest.fixture(scope="module")
def handler(model_dir):
    h = TwolevelHandler()
    h.initialize(make_context(model_dir, 1))
    return h


def run(handler, model_dir, rows, explain=(), extra_headers=None):
    ctx = make_context(model_dir, len(rows), explain, extra_headers)
    out = handler.handle(rows, ctx)
    assert isinstance(out, list) and len(out) == len(rows)
    statuses = [ctx.get_response_status(i)[0] for i in range(len(rows))]
    bodies = [json.loads(o) for o in out]
    for i in range(len(rows)):
        assert ctx.get_response_content_type(i) == "application/json"
    return statuses, bodies


def test_initialize_reads_the_handler_section(handler, tiny_model):
    assert handler.initialized
    assert handler.config["max_samples"] == 2000 and handler.config["max_seconds"] == 8
    assert handler.model.model_version == tiny_model.model_version == "tiny-test"


def test_predictions_equal_the_in_process_model(handler, model_dir, clips, tiny_model):
    rows = [{"body": clips["good"]}, {"data": clips["good2"], "name": "second.wav"},
            {"body": {"data": base64.b64encode(clips["good"]).decode()}}]
    statuses, bodies = run(handler, model_dir, rows)
    assert statuses == [200, 200, 200]
    expected = tiny_model.predict(clips["good"]).to_dict()
    expected2 = tiny_model.predict(clips["good2"], name="second.wav").to_dict()
    assert bodies[1]["name"] == "second.wav"
    for body, exp in ((bodies[0], expected), (bodies[1], expected2), (bodies[2], expected)):
        assert body.keys() == exp.keys()
        assert body["model_version"] == "tiny-test"
        assert body["duration"] == pytest.approx(exp["duration"])
        for group in ("emotions", "midlevels"):
            for k, v in exp[group].items():
                assert body[group][k] == pytest.approx(v, rel=1e-5, abs=1e-6)
        assert len(body["windows"]) == len(exp["windows"])


@pytest.mark.parametrize("kind, status", [("not_audio", 415), ("empty", 400), ("truncated", 400),
                                          ("non_finite", 422), ("silent", 422), ("long", 413)])
def test_one_bad_request_fails_alone(handler, model_dir, clips, kind, status):
    rows = [{"body": clips["good"]}, {"body": clips[kind]}, {"body": clips["good2"]}]
    statuses, bodies = run(handler, model_dir, rows)
    assert statuses == [200, status, 200]
    assert bodies[1]["error"] == ("too_long" if kind == "long" else kind)
    assert bodies[1]["message"] and "Traceback" not in bodies[1]["message"]
    assert set(bodies[1]) == {"error", "message"}
    assert "emotions" in bodies[0] and "emotions" in bodies[2]


def test_malformed_json_and_missing_audio(handler, model_dir, clips):
    rows = [{"body": b'{"data": '}, {"body": {"target": "articulation"}}, {"body": {"data": "###not base64###"}},
            {"body": clips["good"]}]
    headers = {0: {"body": {"content-type": "application/json"}}}
    statuses, bodies = run(handler, model_dir, rows, extra_headers=headers)
    assert statuses == [400, 400, 400, 200]
    assert [b.get("error") for b in bodies[:3]] == ["malformed_json", "missing_audio", "bad_base64"]


def test_internal_error_is_json_500_without_traceback(handler, model_dir, clips, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(handler.model, "predict_many", boom)
    monkeypatch.setattr(handler.model, "predict_audio", boom)
    statuses, bodies = run(handler, model_dir, [{"body": clips["good"]}])
    assert statuses == [500]
    assert bodies[0]["error"] == "internal_error" and "secret" not in bodies[0]["message"]


def test_kserve_envelopes(handler, model_dir, clips, tiny_model):
    b64 = base64.b64encode(clips["good"]).decode()
    rows = [{"body": {"instances": [{"data": b64}]}},
            {"body": {"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": [b64]}]}}]
    statuses, bodies = run(handler, model_dir, rows)
    assert statuses == [200, 200]
    expected = tiny_model.predict(clips["good"]).to_dict()
    v1 = bodies[0]["predictions"][0]
    v2 = json.loads(bodies[1]["outputs"][0]["data"][0])
    assert bodies[1]["model_name"] == "twolevel" and bodies[1]["outputs"][0]["name"] == "prediction"
    for got in (v1, v2):
        assert got["midlevels"]["articulation"] == pytest.approx(expected["midlevels"]["articulation"], rel=1e-5, abs=1e-6)


# --- explanations ---------------------------------------------------------------------------

explain_mod = pytest.importorskip("twolevel.explain", reason="twolevel.explain has not landed yet")


def test_explain_branch_through_handle(handler, model_dir, clips, tiny_model):
    """A mixed batch: request 0 is a prediction, request 1 an explanation (header explain: True)."""
    rows = [{"body": clips["good"]}, {"data": clips["good"], "target": "articulation", "samples": "300", "seed": "3",
                                      "design": "independent"}]
    statuses, bodies = run(handler, model_dir, rows, explain={1})
    assert statuses == [200, 200]
    assert "emotions" in bodies[0] and "windows" in bodies[0]
    exp = explain_mod.explain(tiny_model, tiny_model.load_audio(clips["good"]), target="articulation",
                              n_samples=300, seed=3, design="independent", batch_size=64, resynthesis=False,
                              griffin_lim_iters=4)
    expected = json.loads(json.dumps(exp.to_dict(include_audio=False)))
    got = bodies[1]
    assert got["target"] == "articulation"
    assert got["parameters"]["n_samples"] == 300 and got["parameters"]["seed"] == 3
    assert got["parameters"]["design"] == "independent"
    assert got["selections"][0]["positive"] == expected["selections"][0]["positive"]
    for k, v in expected["predictions"]["midlevels"].items():
        assert got["predictions"]["midlevels"][k] == pytest.approx(v, rel=1e-5, abs=1e-6)


def test_explain_handle_directly_with_audio(handler, model_dir, clips):
    ctx = make_context(model_dir, 1, explain={0})
    handler.context = ctx
    rows = [{"body": {"data": base64.b64encode(clips["good"]).decode(), "target": "energy", "samples": 300,
                      "include_audio": True}}]
    parsed = handler.preprocess(rows)
    assert isinstance(parsed[0], dict) and parsed[0]["explain"] is True
    out = handler.explain_handle(parsed, rows)
    assert len(out) == 1 and isinstance(out[0], dict), out
    assert out[0]["target"] == "energy"
    assert out[0].get("audio"), "include_audio must put base64 FLAC under 'audio'"
    first = next(iter(out[0]["audio"].values()))
    assert base64.b64decode(first)[:4] == b"fLaC"


@pytest.mark.parametrize("options, code", [
    ({"target": "nonsense"}, "unknown_target"),
    ({"samples": "999999"}, "bad_samples"),
    ({"samples": "many"}, "bad_samples"),
    ({"samples": "11"}, "bad_samples"),  # inside the server's range, below what the segments need
    ({"ratio": "-1"}, "bad_ratio"),
    ({"design": "sobol"}, "bad_design"),
    ({"include_audio": "perhaps"}, "bad_option"),
])
def test_explain_bad_options_fail_alone(handler, model_dir, clips, options, code):
    rows = [{"data": clips["good"], **options}, {"body": clips["good"]}]
    statuses, bodies = run(handler, model_dir, rows, explain={0})
    assert statuses == [400, 200]
    assert bodies[0]["error"] == code, bodies[0]
    assert "emotions" in bodies[1]
