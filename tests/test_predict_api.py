"""The embedding API: one model, predictions from a path, bytes or an array."""
from __future__ import annotations

import numpy as np
import pytest

from twolevel import AudioError, Prediction, TwoLevelModel, load_audio


def test_path_bytes_and_array_agree(tiny_model, example_clip):
    from_path = tiny_model.predict(example_clip)
    from_bytes = tiny_model.predict(example_clip.read_bytes())
    audio = load_audio(example_clip)
    from_array = tiny_model.predict(audio.samples, sample_rate=audio.sample_rate)
    assert isinstance(from_path, Prediction)
    for other in (from_bytes, from_array):
        np.testing.assert_allclose(other.emotion_vector, from_path.emotion_vector, atol=1e-6)
    assert from_bytes.name == "<bytes>" and from_path.name == example_clip.name


def test_predict_many_batches_like_single(tiny_model, example_clip):
    audio = load_audio(example_clip)
    short = load_audio(audio.samples[: 22_050 * 4], sample_rate=22_050, name="short")
    many = tiny_model.predict_many([audio, short])
    assert [len(p.windows) for p in many] == [2, 1]
    np.testing.assert_allclose(many[1].midlevel_vector, tiny_model.predict_audio(short).midlevel_vector, atol=1e-5)
    assert tiny_model.predict_many([]) == []


def test_max_seconds_is_enforced(tiny_checkpoint, example_clip):
    model = TwoLevelModel.load(tiny_checkpoint, device="cpu", max_seconds=5)
    with pytest.raises(AudioError) as err:
        model.predict(example_clip)
    assert err.value.code == "too_long"


def test_to_dict_is_json_ready(tiny_model, example_clip):
    import json

    data = json.loads(json.dumps(tiny_model.predict(example_clip).to_dict()))
    assert set(data) == {"name", "duration", "model_version", "emotions", "midlevels", "effects", "windows"}
    assert data["windows"][0]["start"] == 0.0 and data["windows"][1]["end"] == pytest.approx(15.0)
