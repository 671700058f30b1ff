"""Audio input: every format decodes, every bad input names its problem."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from twolevel.audio import (DEFAULT_MAX_DECODED_SAMPLES, MIN_SECONDS, load_audio, loop_pad, split_windows,
                            window_starts)
from twolevel.errors import AudioError
from twolevel.signal import SAMPLE_RATE, WINDOW_SAMPLES
from twolevel.mp3header import declared_samples


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


def test_window_starts_with_a_hop_overlap_and_end_at_the_signal_end():
    # 25.5 s in frames-like units: windows of 10 every 4, the last one aligned to the end
    assert window_starts(255, window=100, hop=40).tolist() == [0, 40, 80, 120, 155]
    assert window_starts(260, window=100, hop=40).tolist() == [0, 40, 80, 120, 160]
    assert window_starts(90, window=100, hop=40).tolist() == [0]
    assert window_starts(255, window=100, hop=None).tolist() == window_starts(255, window=100).tolist()
    with pytest.raises(ValueError, match="hop"):
        window_starts(255, window=100, hop=0)


# --- limits checked before decoding, blockwise decoding, minimum duration (issue 11) ---

def test_a_file_that_resamples_to_nothing_is_too_short_not_a_crash():
    # Issue 11 case 3: 10 samples at 768 kHz raised ZeroDivisionError; now refused by rate...
    with pytest.raises(AudioError) as err:
        load_audio(encode(np.full(10, 0.5), 768_000, "WAV"))
    assert err.value.code == "bad_sample_rate"
    # ... and anything under the documented minimum duration gets its own code.
    for samples, rate in ((10, 384_000), (10, 44_100), (int(MIN_SECONDS * 44_100) - 1, 44_100)):
        with pytest.raises(AudioError, match="shorter than the minimum") as err:
            load_audio(encode(np.full(samples, 0.5), rate, "WAV"))
        assert err.value.code == "too_short"
    with pytest.raises(AudioError) as err:
        load_audio(np.full(100, 0.5, np.float32), sample_rate=44_100)
    assert err.value.code == "too_short"
    assert load_audio(encode(tone(MIN_SECONDS), 44_100, "WAV")).duration == pytest.approx(MIN_SECONDS, abs=1e-3)


def _flac_promising(rate: int, channels: int, frames: int) -> bytes:
    """One second of FLAC whose STREAMINFO promises ``frames`` frames (36-bit field at byte 21)."""
    data = bytearray(encode(np.full((rate, channels), 0.25), rate, "FLAC"))
    packed = int.from_bytes(data[18:26], "big")
    packed = (packed & ~(2**36 - 1)) | frames
    data[18:26] = packed.to_bytes(8, "big")
    return bytes(data)


def test_decoded_size_and_channel_limits_are_checked_before_decoding():
    # 8 channels x 384 kHz x 60 s = 184 M samples: refused from the header, although only one
    # second is present (a check after decoding would call it truncated instead).
    with pytest.raises(AudioError, match="samples to decode") as err:
        load_audio(_flac_promising(384_000, 8, 384_000 * 60))
    assert err.value.code == "too_large_decoded"
    with pytest.raises(AudioError, match="channels") as err:
        load_audio(encode(np.full((44_100, 9), 0.25), 44_100, "WAV"))
    assert err.value.code == "too_many_channels"
    with pytest.raises(AudioError) as err:
        load_audio(tone(2.0, 48_000, channels=2), sample_rate=48_000, max_decoded_samples=48_000 * 3)
    assert err.value.code == "too_large_decoded"
    # 10 minutes of 96 kHz stereo is the default budget: accepted.
    assert DEFAULT_MAX_DECODED_SAMPLES == 600 * 96_000 * 2


def test_blockwise_decoding_matches_whole_file_decoding():
    """Downmix and resample block by block give what doing it on the whole signal gives."""
    import soxr

    rng = np.random.default_rng(0)
    x = (0.2 * rng.standard_normal((3 * 44_100 + 17, 2))).astype(np.float32)
    got = load_audio(encode(x, 44_100, "WAV", "FLOAT")).samples
    whole = soxr.resample(x.mean(axis=1), 44_100, SAMPLE_RATE, quality="HQ")
    assert len(got) == len(whole)
    np.testing.assert_allclose(got, whole, atol=1e-5)


def test_truncated_mp3_is_refused_where_its_header_says_how_long_it_is():
    data = encode(tone(3.0, 44_100), 44_100, "MP3")
    # libsndfile's encoder (LAME) writes a Xing/Info header with the frame count.
    declared = declared_samples(lambda offset, size: data[offset:offset + size])
    assert declared is not None and declared[1] == 44_100
    assert declared[0] / 44_100 == pytest.approx(3.0, abs=0.1)
    assert load_audio(data).duration == pytest.approx(3.0, abs=0.08)
    with pytest.raises(AudioError, match="truncated MP3") as err:
        load_audio(data[: len(data) // 3])  # issue 11: the first third was accepted as a 0.66 s clip
    assert err.value.code == "truncated"


def test_published_cbr_mp3_without_a_length_header_still_decodes(soundtracks_dir):
    """Such files cannot be checked for truncation (documented); they must still be accepted."""
    path = soundtracks_dir / "original" / "001.mp3"
    data = path.read_bytes()
    assert declared_samples(lambda offset, size: data[offset:offset + size]) is None
    assert load_audio(path).duration > 14.0


MEMORY_SCRIPT = """
import json, sys
import psutil
from twolevel.audio import load_audio
before = psutil.Process().memory_info().rss
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
audio = load_audio(sys.argv[1])
peak = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({"growth": peak - before, "result": audio.samples.nbytes, "duration": audio.duration}))
"""

#: Peak RSS growth allowed for decoding a 600 s 96 kHz stereo FLAC. The 22,050 Hz mono result is
#: 50 MiB; whole-file decoding needed 908 MiB (float32 at 96 kHz stereo, then its downmix).
FLAC_PEAK_GROWTH_BOUND = 160 * 2**20


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")
def test_decoding_a_long_high_rate_file_stays_near_the_result_size(long_flac):
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(long_flac)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["duration"] == pytest.approx(600.0)
    print(f"\ndecoder peak RSS growth: {got['growth'] / 2**20:.0f} MiB (result {got['result'] / 2**20:.0f} MiB)")
    assert got["growth"] < FLAC_PEAK_GROWTH_BOUND, got
