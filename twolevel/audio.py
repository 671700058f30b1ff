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
from .mp3header import declared_samples
from .signal import SAMPLE_RATE, WINDOW_SAMPLES

AudioSource = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

#: Shortest input accepted, in seconds: a shorter clip, loop-padded to a 10 s window, is more
#: repetition than music (and a few samples at a high rate resample to nothing at all).
MIN_SECONDS = 0.5
#: Peak amplitude under which a signal counts as silence (-100 dBFS).
SILENCE_PEAK = 1e-5
#: Sample rates outside this range are refused before decoding, in Hz (DXD's 352.8 kHz is the
#: highest rate of real releases).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000
#: Most channels accepted (7.1 surround).
MAX_CHANNELS = 8
#: Most samples (frames x channels) decoded from one file by default: 10 minutes of 96 kHz stereo.
#: Memory does not grow with it (files are read in blocks), decoding time does.
DEFAULT_MAX_DECODED_SAMPLES = 600 * 96_000 * 2
#: Samples (frames x channels) read per block: 1 MiB of float32.
BLOCK_SAMPLES = 2**18


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


def _refuse_format(name: str, rate: int, channels: int) -> None:
    """Refuse sample rates and channel counts outside the limits (before any decoding)."""
    if not (MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        raise AudioError(
            f"{name}: unreadable sample rate {rate} Hz (expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz)",
            code="bad_sample_rate",
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{name}: {channels} channels (at most {MAX_CHANNELS} are accepted)",
                         code="too_many_channels")


def _refuse_size(name: str, frames: int, rate: int, channels: int, max_seconds: float, max_decoded: int) -> None:
    """Refuse input longer than ``max_seconds`` or larger than ``max_decoded`` samples once decoded."""
    if frames > max_seconds * rate:
        raise AudioError(f"{name}: {frames / rate:.1f} s of audio is longer than the maximum of {max_seconds:.0f} s",
                         code="too_long")
    if frames * channels > max_decoded:
        raise AudioError(
            f"{name}: {frames / rate:.0f} s at {rate} Hz x {channels} channel(s) is {frames * channels / 1e6:.1f} M "
            f"samples to decode, more than the limit of {max_decoded / 1e6:.1f} M (10 minutes of 96 kHz stereo by "
            f"default); send a shorter clip or a lower sample rate", code="too_large_decoded")


def _refuse_too_short(name: str, frames: int, rate: int) -> None:
    if frames < MIN_SECONDS * rate:
        raise AudioError(f"{name}: {frames} sample(s) at {rate} Hz ({frames / rate:.3g} s) is shorter than the "
                         f"minimum of {MIN_SECONDS:g} s", code="too_short")


class _MonoResampler:
    """Downmixes blocks of frames to mono and resamples them to :data:`SAMPLE_RATE` as they arrive.

    Keeps only the 22,050 Hz mono result and what the checks need (finite?, peaks), so decoding
    a long many-channel file at a high rate holds one block of it at a time.
    """

    def __init__(self, rate: int):
        self.stream = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32",
                                                                             quality="HQ")
        self.pieces: list[np.ndarray] = []
        self.finite = True
        self.peak = 0.0       # over every channel
        self.mono_peak = 0.0  # after the downmix

    def add(self, frames: np.ndarray) -> None:
        """One block, float32 ``(n, channels)``; the block's buffer may be reused afterwards."""
        if not self.finite:
            return  # refused anyway: nothing more to keep
        if not np.isfinite(frames).all():
            self.finite = False
            self.pieces = []
            return
        self.peak = max(self.peak, float(np.abs(frames).max()))
        mono = frames[:, 0].copy() if frames.shape[1] == 1 else frames.mean(axis=1, dtype=np.float32)
        self.mono_peak = max(self.mono_peak, float(np.abs(mono).max()))
        self.pieces.append(self.stream.resample_chunk(mono) if self.stream is not None else mono)

    def finish(self) -> np.ndarray:
        if self.stream is not None:
            self.pieces.append(self.stream.resample_chunk(np.zeros(0, np.float32), last=True))
        samples = np.concatenate(self.pieces) if self.pieces else np.zeros(0, np.float32)
        self.pieces = []
        return samples.astype(np.float32, copy=False)


def _head_reader(handle):
    """``read(offset, size)`` over a path or a BytesIO, for :func:`declared_samples`."""
    def read(offset: int, size: int) -> bytes:
        if isinstance(handle, io.BytesIO):
            return handle.getbuffer()[offset:offset + size].tobytes()
        with open(handle, "rb") as raw:
            raw.seek(offset)
            return raw.read(size)
    return read


#: Samples an MP3 may decode short of its header's count before it counts as cut off: the
#: encoder's delay and padding (decoders drop them) plus a few frames of slack.
MP3_SLACK_SAMPLES = 4 * 1152


def _decode(data: bytes | str, name: str, max_seconds: float, max_decoded: int) -> tuple[np.ndarray, int]:
    """Decode a file (path or bytes) in blocks; returns mono float32 at :data:`SAMPLE_RATE` and the file's rate.

    Everything that can be refused from the header (rate, channels, length, decoded size) is
    refused before the first sample is decoded; the rest (truncation, non-finite, silence, too
    short) once the file is read.
    """
    handle = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    with _open(handle, name) as f:
        rate, channels, declared = f.samplerate, f.channels, f.frames
        # MP3 headers carry an estimate of the length (from the file size), not an exact count.
        is_mp3 = f.format in ("MP3", "MPEG")
        known = 0 < declared < 2**62  # some streams report no frame count (or a huge one) until decoded
        _refuse_format(name, rate, channels)
        if known:
            _refuse_size(name, declared, rate, channels, max_seconds, max_decoded)
        mp3_declared = declared_samples(_head_reader(handle)) if is_mp3 else None
        mixer = _MonoResampler(rate)
        block = np.empty((max(1, BLOCK_SAMPLES // channels), channels), dtype=np.float32)
        n_read = 0
        try:
            while True:
                got = f.read(out=block)
                if len(got) == 0:
                    break
                n_read += len(got)
                _refuse_size(name, n_read, rate, channels, max_seconds, max_decoded)
                mixer.add(got)
        except AudioError:
            raise
        except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as err:
            raise AudioError(f"{name}: the file is damaged or truncated ({_clean(str(err))})", code="truncated") from None
        truncation = _truncation_evidence(f.extra_info)
    if truncation:
        raise AudioError(f"{name}: truncated file ({truncation})", code="truncated")
    if n_read == 0:
        if declared > 0:
            raise AudioError(f"{name}: truncated file: no audio could be decoded", code="truncated")
        raise AudioError(f"{name}: contains no audio samples", code="empty")
    if not is_mp3 and known and n_read < declared:
        raise AudioError(
            f"{name}: truncated file: header promises {declared} samples, only {n_read} could be read",
            code="truncated",
        )
    if mp3_declared is not None and mp3_declared[1] == rate and n_read + MP3_SLACK_SAMPLES < mp3_declared[0]:
        raise AudioError(f"{name}: truncated MP3: its header declares {mp3_declared[0] / rate:.2f} s, only "
                         f"{n_read / rate:.2f} s could be decoded", code="truncated")
    if not mixer.finite:
        raise AudioError(f"{name}: contains NaN or infinite samples", code="non_finite")
    if mixer.peak < SILENCE_PEAK:
        raise AudioError(f"{name}: is all silence (peak below -100 dBFS)", code="silent")
    if mixer.mono_peak < SILENCE_PEAK:
        raise AudioError(f"{name}: is silent once downmixed to mono (channels cancel out)", code="silent")
    _refuse_too_short(name, n_read, rate)
    return mixer.finish(), rate


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
    max_decoded_samples: int = DEFAULT_MAX_DECODED_SAMPLES,
) -> Audio:
    """Decode audio from a path, bytes, or an array and bring it to the model's format.

    Files are read in blocks of :data:`BLOCK_SAMPLES`, downmixed and resampled as they are read,
    so memory stays near the 22,050 Hz mono result whatever the file's rate and channels.

    Args:
        source: a path to a WAV/FLAC/OGG/MP3 file, the bytes of such a file, or a numpy array
            of samples (``(n,)`` or ``(n, channels)``, float) taken at ``sample_rate``.
        sample_rate: required for arrays, in Hz; ignored for files.
        max_seconds: longer input raises ``AudioError(code="too_long")``.
        name: how the input is named in error messages.
        max_decoded_samples: most samples (frames x channels) decoded from one file; more raises
            ``AudioError(code="too_large_decoded")`` before decoding.

    Returns:
        :class:`Audio`, mono float32 at 22,050 Hz, at least :data:`MIN_SECONDS` long.

    Raises:
        AudioError: with ``code`` ``not_found``, ``empty``, ``not_audio``, ``truncated``,
            ``bad_sample_rate`` (outside :data:`MIN_SAMPLE_RATE`..:data:`MAX_SAMPLE_RATE`),
            ``too_many_channels`` (over :data:`MAX_CHANNELS`), ``too_long``, ``too_large_decoded``,
            ``non_finite``, ``silent`` or ``too_short`` (under :data:`MIN_SECONDS`). Truncated MP3s
            are recognised when their Xing/Info or VBRI header states the length (see
            :mod:`twolevel.mp3header`); a plain CBR MP3 without one cannot be told from a short file.
    """
    if isinstance(source, np.ndarray):
        name = name or "<array>"
        if sample_rate is None or not (MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE):
            raise AudioError(f"{name}: unreadable sample rate {sample_rate!r}", code="bad_sample_rate")
        frames = np.asarray(source, dtype=np.float32)
        if frames.ndim == 2 and frames.shape[0] < frames.shape[1] and frames.shape[0] <= MAX_CHANNELS:
            frames = frames.T  # (channels, n) -> (n, channels)
        rate = int(sample_rate)
        channels = frames.shape[1] if frames.ndim == 2 else 1
        _refuse_format(name, rate, channels)
        _refuse_size(name, frames.shape[0], rate, channels, max_seconds, max_decoded_samples)
        check_samples(frames, name)
        mono = to_mono(frames)
        if float(np.max(np.abs(mono))) < SILENCE_PEAK:
            raise AudioError(f"{name}: is silent once downmixed to mono (channels cancel out)", code="silent")
        _refuse_too_short(name, frames.shape[0], rate)
        mono = resample(mono, rate)
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            name = name or "<bytes>"
            data: bytes | str = bytes(source)
            if not data:
                raise AudioError(f"{name}: empty input (0 bytes)", code="empty")
        else:
            path = Path(source)
            name = name or path.name
            if not path.is_file():
                raise AudioError(f"{path}: no such file", code="not_found")
            if path.stat().st_size == 0:
                raise AudioError(f"{name}: empty file (0 bytes)", code="empty")
            data = str(path)
        mono, rate = _decode(data, name, max_seconds, max_decoded_samples)
    if len(mono) == 0:  # cannot happen above MIN_SECONDS; kept so nothing downstream divides by zero
        raise AudioError(f"{name}: no audio is left after resampling to {SAMPLE_RATE} Hz", code="too_short")
    return Audio(samples=mono, sample_rate=SAMPLE_RATE, source_sample_rate=rate, name=name)


def loop_pad(samples: np.ndarray, length: int) -> np.ndarray:
    """Repeat a signal until it is ``length`` samples long (the paper's padding for short clips)."""
    if len(samples) >= length:
        return samples[:length]
    reps = -(-length // len(samples))
    return np.tile(samples, reps)[:length]


def window_starts(n_samples: int, window: int = WINDOW_SAMPLES, hop: int | None = None) -> np.ndarray:
    """Start sample of each analysis window for a signal of ``n_samples``.

    Consecutive, non-overlapping windows by default (``hop=None``: a hop of one window); a
    smaller ``hop`` (samples, or frames when ``n_samples`` and ``window`` are frames) gives
    overlapping windows. When the signal does not divide evenly, the last window is aligned to
    the end of the signal (overlapping its neighbour) rather than loop-padded, so no window
    contains an artificial seam. Signals shorter than one window get one window starting at 0
    (loop-padded by :func:`split_windows`).
    """
    hop = window if hop is None else int(hop)
    if hop < 1:
        raise ValueError(f"window hop must be at least 1, got {hop}")
    if n_samples <= window:
        return np.zeros(1, dtype=np.int64)
    starts = list(range(0, n_samples - window + 1, hop))
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
