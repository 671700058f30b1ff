"""Audio input: decode, check, downmix, resample and cut into 10 s windows.

Functions take and return plain numpy arrays (float32, mono, samples on the last axis),
in the style of librosa. Everything that is not usable audio raises :class:`AudioError`
with a ``code`` and a message that names the problem; nothing else escapes.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError
from .options import DEFAULT_MAX_SECONDS
from .signal import SAMPLE_RATE, WINDOW_SAMPLES

AudioSource = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

#: Peak amplitude under which a signal counts as silence (-100 dBFS).
SILENCE_PEAK = 1e-5
#: Sample rates outside this range are treated as unreadable, in Hz.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000


@dataclass(frozen=True)
class Audio:
    """Decoded mono audio at the model's sample rate.

    Attributes:
        samples: float32 array, shape ``(n_samples,)``, at ``sample_rate`` Hz, in [-1, 1] nominally.
        sample_rate: Hz (always :data:`twolevel.signal.SAMPLE_RATE` after :func:`load_audio`).
        source_sample_rate: the rate of the decoded file, in Hz.
        name: file name or ``"<bytes>"`` / ``"<array>"``, for messages and reports.
    """

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int
    name: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


def _clean(text: str) -> str:
    """libsndfile's message without the Python object repr it starts with."""
    return text.split(": ", 1)[-1].strip() if text.startswith("Error opening") else text.strip()


def _truncation_evidence(log: str) -> str:
    """What libsndfile's parse log says about a cut-off file, or ``""`` when nothing."""
    for line in log.splitlines():
        if line.startswith("data") and "should be" in line:
            return "the header promises more audio data than the file holds"
        if "ended unexpectedly" in line:
            return "the stream ends before its end marker"
    return ""


#: Leading bytes of the containers we read: a file that starts like one of these but cannot be
#: opened is damaged or cut off, not "something else".
AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM")


def _looks_like_audio(head: bytes) -> bool:
    return head.startswith(AUDIO_MAGIC) or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _open(handle, name: str) -> sf.SoundFile:
    """Open with soundfile, telling a damaged audio file from something that is not audio."""
    try:
        return sf.SoundFile(handle)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as err:
        if isinstance(handle, io.BytesIO):
            head = handle.getvalue()[:4]
        else:
            with open(handle, "rb") as raw:
                head = raw.read(4)
        if _looks_like_audio(head):
            raise AudioError(
                f"{name}: the audio file is damaged or truncated ({_clean(str(err))})", code="truncated"
            ) from None
        raise AudioError(
            f"{name}: not an audio file (no WAV, FLAC, OGG or MP3 format recognised)", code="not_audio"
        ) from None


def _decode(data: bytes | str, name: str, max_seconds: float) -> tuple[np.ndarray, int]:
    """Decode a file (path or bytes) with soundfile; returns ``(frames, channels)`` float32 and rate."""
    handle = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    with _open(handle, name) as f:
        rate, declared = f.samplerate, f.frames
        # MP3 headers carry an estimate of the length, not an exact count.
        exact_length = f.format not in ("MP3", "MPEG")
        if not (MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
            raise AudioError(
                f"{name}: unreadable sample rate {rate} Hz (expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz)",
                code="bad_sample_rate",
            )
        # Some streams report no frame count (or a huge one) until decoded.
        if 0 < declared < 2**62 and declared / rate > max_seconds:
            raise AudioError(
                f"{name}: {declared / rate:.1f} s of audio is longer than the maximum of {max_seconds:.0f} s",
                code="too_long",
            )
        try:
            frames = f.read(frames=int(max_seconds * rate) + 1, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as err:
            raise AudioError(f"{name}: the file is damaged or truncated ({_clean(str(err))})", code="truncated") from None
        truncation = _truncation_evidence(f.extra_info)
    if len(frames) > max_seconds * rate:
        raise AudioError(
            f"{name}: audio is longer than the maximum of {max_seconds:.0f} s", code="too_long"
        )
    if truncation:
        raise AudioError(f"{name}: truncated file ({truncation})", code="truncated")
    if len(frames) == 0 and declared > 0:
        raise AudioError(f"{name}: truncated file: no audio could be decoded", code="truncated")
    if exact_length and 0 < declared < 2**62 and len(frames) < declared:
        raise AudioError(
            f"{name}: truncated file: header promises {declared} samples, only {len(frames)} could be read",
            code="truncated",
        )
    return frames, rate


def check_samples(samples: np.ndarray, name: str = "<array>") -> None:
    """Raise :class:`AudioError` for empty, non-finite or silent samples (any shape)."""
    if samples.size == 0:
        raise AudioError(f"{name}: contains no audio samples", code="empty")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: contains NaN or infinite samples", code="non_finite")
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise AudioError(f"{name}: is all silence (peak below -100 dBFS)", code="silent")


def to_mono(frames: np.ndarray) -> np.ndarray:
    """Average channels: ``(n_samples, n_channels)`` or ``(n_samples,)`` -> ``(n_samples,)``."""
    return frames.mean(axis=1) if frames.ndim == 2 else frames


def resample(samples: np.ndarray, source_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float32 signal with soxr (high quality); a no-op at equal rates."""
    if source_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32)


def load_audio(
    source: AudioSource,
    sample_rate: int | None = None,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    name: str | None = None,
) -> Audio:
    """Decode audio from a path, bytes, or an array and bring it to the model's format.

    Args:
        source: a path to a WAV/FLAC/OGG/MP3 file, the bytes of such a file, or a numpy array
            of samples (``(n,)`` or ``(n, channels)``, float) taken at ``sample_rate``.
        sample_rate: required for arrays, in Hz; ignored for files.
        max_seconds: longer input raises ``AudioError(code="too_long")``.
        name: how the input is named in error messages.

    Returns:
        :class:`Audio`, mono float32 at 22,050 Hz.
    """
    if isinstance(source, np.ndarray):
        name = name or "<array>"
        if sample_rate is None or not (MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE):
            raise AudioError(f"{name}: unreadable sample rate {sample_rate!r}", code="bad_sample_rate")
        frames = np.asarray(source, dtype=np.float32)
        if frames.ndim == 2 and frames.shape[0] < frames.shape[1] and frames.shape[0] <= 8:
            frames = frames.T  # (channels, n) -> (n, channels)
        rate = int(sample_rate)
        if frames.shape[0] > max_seconds * rate:
            raise AudioError(f"{name}: audio is longer than the maximum of {max_seconds:.0f} s", code="too_long")
    elif isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "<bytes>"
        data = bytes(source)
        if not data:
            raise AudioError(f"{name}: empty input (0 bytes)", code="empty")
        frames, rate = _decode(data, name, max_seconds)
    else:
        path = Path(source)
        name = name or path.name
        if not path.is_file():
            raise AudioError(f"{path}: no such file", code="not_found")
        if path.stat().st_size == 0:
            raise AudioError(f"{name}: empty file (0 bytes)", code="empty")
        frames, rate = _decode(str(path), name, max_seconds)
    check_samples(frames, name)
    mono = to_mono(frames)
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise AudioError(f"{name}: is silent once downmixed to mono (channels cancel out)", code="silent")
    mono = resample(mono, rate)
    return Audio(samples=mono, sample_rate=SAMPLE_RATE, source_sample_rate=rate, name=name)


def loop_pad(samples: np.ndarray, length: int) -> np.ndarray:
    """Repeat a signal until it is ``length`` samples long (the paper's padding for short clips)."""
    if len(samples) >= length:
        return samples[:length]
    reps = -(-length // len(samples))
    return np.tile(samples, reps)[:length]


def window_starts(n_samples: int, window: int = WINDOW_SAMPLES) -> np.ndarray:
    """Start sample of each analysis window for a signal of ``n_samples``.

    Consecutive, non-overlapping windows; when the signal does not divide evenly, the last
    window is aligned to the end of the signal (overlapping its neighbour) rather than
    loop-padded, so no window contains an artificial seam. Signals shorter than one window
    get one window starting at 0 (loop-padded by :func:`split_windows`).
    """
    if n_samples <= window:
        return np.zeros(1, dtype=np.int64)
    starts = list(range(0, n_samples - window + 1, window))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return np.asarray(starts, dtype=np.int64)


def split_windows(samples: np.ndarray, window: int = WINDOW_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Cut a mono signal into 10 s windows.

    Returns:
        ``(windows, starts)``: float32 ``(n_windows, window)`` and start times in samples.
    """
    starts = window_starts(len(samples), window)
    if len(samples) < window:
        return loop_pad(samples, window)[None, :].astype(np.float32), starts
    windows = np.stack([samples[s : s + window] for s in starts]).astype(np.float32)
    return windows, starts
