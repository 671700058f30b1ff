"""Audio input: every format decodes, every bad input names its problem."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from twolevel.audio import load_audio, loop_pad, split_windows, window_starts
from twolevel.errors import AudioError
from twolevel.signal import SAMPLE_RATE, WINDOW_SAMPLES


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def tone(seconds=1.0, rate=44_100, freq=440.0, channels=1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_every_format_decodes_from_bytes_and_path(fmt, tmp_path):
    data = encode(tone(2.0, 44_100, channels=2), 44_100, fmt)
    audio = load_audio(data)
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.source_sample_rate == 44_100
    assert audio.samples.ndim == 1 and audio.samples.dtype == np.float32
    # MP3 encoders add a little padding; the others are exact.
    assert audio.duration == pytest.approx(2.0, abs=0.08 if fmt == "MP3" else 1e-3)
    path = tmp_path / f"clip.{fmt.lower()}"
    path.write_bytes(data)
    assert load_audio(path).name == path.name


@pytest.mark.parametrize("number", ["001", "031", "091"])
def test_published_mp3s_decode(soundtracks_dir, number):
    audio = load_audio(soundtracks_dir / "original" / f"{number}.mp3")
    assert audio.source_sample_rate == 44_100
    assert 14.0 < audio.duration < 20.0
    assert np.abs(audio.samples).max() > 0.05


def test_stereo_is_averaged_to_mono():
    left = tone(1.0, SAMPLE_RATE)
    stereo = np.stack([left, -left], axis=1)  # cancels to silence when averaged
    with pytest.raises(AudioError, match="downmixed") as err:
        load_audio(stereo, sample_rate=SAMPLE_RATE)
    assert err.value.code == "silent"
    both = np.stack([left, left], axis=1)
    np.testing.assert_allclose(load_audio(both, sample_rate=SAMPLE_RATE).samples, left, atol=1e-6)


def test_array_input_channels_first_is_accepted():
    stereo = np.stack([tone(1.0, 48_000)] * 2)  # (2, n)
    audio = load_audio(stereo, sample_rate=48_000)
    assert audio.duration == pytest.approx(1.0, abs=1e-3)


def _truncated_wav() -> bytes:
    data = encode(tone(1.0), 44_100, "WAV")
    return data[: len(data) // 2]


BAD_INPUTS = {
    "not_audio": (lambda: b"this is a text file, not audio\n" * 20, "not an audio file"),
    "empty": (lambda: b"", "empty"),
    "truncated": (_truncated_wav, "truncated"),
    "silent": (lambda: encode(np.zeros(44_100, np.float32), 44_100, "WAV"), "silence"),
    "non_finite": (lambda: encode(np.array([0.1, np.nan, 0.2] * 1000, np.float32), 44_100, "WAV", "FLOAT"), "NaN"),
    "too_long": (lambda: encode(tone(3.0), 44_100, "WAV"), "longer than the maximum"),
}


@pytest.mark.parametrize("code", sorted(BAD_INPUTS))
def test_bad_input_gives_its_message(code):
    make, words = BAD_INPUTS[code]
    with pytest.raises(AudioError) as err:
        load_audio(make(), max_seconds=2.0)
    assert err.value.code == code
    assert words in str(err.value)
    assert isinstance(err.value, ValueError)  # one documented type, a ValueError for callers


def test_infinite_and_empty_arrays_and_bad_rates():
    with pytest.raises(AudioError, match="NaN or infinite") as err:
        load_audio(np.array([0.1, np.inf] * 100, np.float32), sample_rate=22_050)
    assert err.value.code == "non_finite"
    with pytest.raises(AudioError) as err:
        load_audio(np.zeros(0, np.float32), sample_rate=22_050)
    assert err.value.code == "empty"
    for rate in (None, 0, -5, 10**9):
        with pytest.raises(AudioError, match="sample rate") as err:
            load_audio(tone(0.5), sample_rate=rate)
        assert err.value.code == "bad_sample_rate"


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file") as err:
        load_audio(tmp_path / "nope.wav")
    assert err.value.code == "not_found"


def test_truncated_ogg_and_flac():
    for fmt in ("OGG", "FLAC"):
        data = encode(tone(1.0), 44_100, fmt)
        with pytest.raises(AudioError) as err:
            load_audio(data[: len(data) // 2])
        assert err.value.code == "truncated", fmt


def test_windows_short_clip_is_loop_padded():
    x = np.arange(1000, dtype=np.float32)
    windows, starts = split_windows(x)
    assert windows.shape == (1, WINDOW_SAMPLES)
    assert starts.tolist() == [0]
    np.testing.assert_array_equal(windows[0, 1000:2000], x)
    np.testing.assert_array_equal(loop_pad(x, 2500)[2000:], x[:500])


def test_windows_long_clip_consecutive_with_last_aligned_to_end():
    n = int(25.5 * SAMPLE_RATE)
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    windows, starts = split_windows(x)
    assert starts.tolist() == [0, WINDOW_SAMPLES, n - WINDOW_SAMPLES]
    assert windows.shape == (3, WINDOW_SAMPLES)
    np.testing.assert_array_equal(windows[2], x[-WINDOW_SAMPLES:])
    assert window_starts(2 * WINDOW_SAMPLES).tolist() == [0, WINDOW_SAMPLES]
