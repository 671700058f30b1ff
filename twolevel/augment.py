"""Emotion-keeping augmentations of one un-normalised log spectrogram crop ``(frames, 149)``.

They act on the cached ``log10(1 + magnitude)`` spectrogram, so no STFT is re-run:

- gain: the magnitude scaled by ``g`` is ``log10(1 + g (10**s - 1))`` exactly (a louder or softer
  recording of the same music);
- time mask: one block of frames set to silence (0 = ``log10(1 + 0)``), as in SpecAugment;
  the emotion of a 10 s window does not hinge on any one second of it;
- band shift (:func:`shift_bands`, ``--freq-shift``): the spectrum moved by whole bands, which is
  a shift by semitones (2 bands each) only above about 400 Hz; :func:`pitch_shift` moves it by
  semitones at every frequency.

:func:`modulation_pair` is not an augmentation but a contrast whose answer is known by
construction: a window spliced from segments of one clip, all moved to one key (``control``:
one key, since a 10-40 s film cue rarely modulates), and the same segments each moved to another
key (``modulated``). Training asks the tonal-stability output to rank the control above the
modulated window (``TrainConfig.modulation_weight``). Both windows have the same splice points,
both are pitch-shifted in every segment and share their edge bands, so neither a seam nor a
shifting artifact tells them apart; only the change of key does.

:func:`rhythm_pair` is the same kind of contrast for rhythm stability: one crop re-timed twice
with the same jumps (frames skipped) and freezes (a frame held as long). In the ``steady`` window
each jump follows its freeze at once, so the notes keep their places in time; in the ``displaced``
twin the two are a fraction of a second apart, so the notes between arrive early or late
(``TrainConfig.rhythm_weight``). Both windows lose and repeat the same amount of content at the
same number of seams; only the regularity of the timing differs.

:func:`dissonance_pair` is the contrast for dissonance: one crop mixed with a copy of itself a
clashing interval away (a minor second, tritone or major seventh: every note meets one a
semitone or a tritone from it, as in polytonal clusters) and the same crop mixed with a copy a
consonant interval away (an octave, fifth or fourth: parallel doubling). Both copies are added at
the same level with the same silent edge bands; only the interval differs
(``TrainConfig.dissonance_weight``).

:func:`mode_pair` is the contrast for minorness: the crop of a clip whose mode is clearest
(:func:`~twolevel.tonality.spectrogram_key`) and the same crop with the third and sixth degrees of
its key exchanged with their neighbours a semitone away (:func:`swap_mode`), which turns a
major key's chords and melody minor and a minor key's major. The minor one of the two must score
the higher minorness (``TrainConfig.mode_weight``). Which twin is the rebuilt one depends on the
crop's own mode, so the rebuilding is a weak cue to the answer at most (of the corpus windows
that give a pair, 65 % are minor, so there the rebuilt twin is the major one 65 % of the time).
:func:`percussive_envelope` (``TrainConfig.mode_envelope``) gives both twins one decay pattern, as if
every note were struck and died away (a marimba, a harp): the networks read mode from sustained
tones, and the same decay on both twins keeps the answer what it was.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .signal import HOP_LENGTH, SAMPLE_RATE


def shift_bands(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Move ``(frames, bands)`` up (shift > 0) or down by ``shift`` bands, repeating the edge band."""
    if shift == 0:
        return x
    if shift > 0:
        return torch.cat([x[:, :1].expand(-1, shift), x[:, :-shift]], dim=1)
    return torch.cat([x[:, -shift:], x[:, -1:].expand(-1, -shift)], dim=1)


def apply_gain(window: torch.Tensor, gain_db: float) -> torch.Tensor:
    """The log spectrogram of the same audio ``gain_db`` louder (magnitude x 10**(gain_db / 20))."""
    if gain_db == 0:
        return window
    return scale_magnitude(window, 10.0 ** (gain_db / 20.0))


def scale_magnitude(window: torch.Tensor, gain) -> torch.Tensor:
    """``log10(1 + gain * magnitude)`` of a ``log10(1 + magnitude)`` spectrogram: the same audio with its
    magnitude scaled, exactly; ``gain`` a number or a tensor that broadcasts to ``window``."""
    return torch.log10(1.0 + gain * (torch.pow(10.0, window) - 1.0).clamp_min(0.0))


#: Frames per second of the spectrogram, for envelopes given in seconds.
FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH


def percussive_envelope(window: torch.Tensor, period_s: float, decay_s: float, phase_s: float) -> torch.Tensor:
    """The log spectrogram of the same audio struck every ``period_s`` seconds (first at ``phase_s``)
    and dying away with time constant ``decay_s``: each frame's magnitude times
    ``exp(-(time since the last strike) / decay_s)`` (:func:`scale_magnitude`). ``window``:
    ``(frames, bands)``; frames before the first strike decay from the one before it."""
    if not (period_s > 0 and decay_s > 0):
        raise ValueError(f"period and decay must be > 0 seconds, got {period_s}, {decay_s}")
    t = torch.arange(window.shape[0], dtype=window.dtype, device=window.device) / FRAMES_PER_SECOND
    return scale_magnitude(window, torch.exp(-torch.remainder(t - phase_s, period_s) / decay_s)[:, None])


def random_percussive_envelope(pair: tuple[torch.Tensor, torch.Tensor], gen: torch.Generator,
                               period_s=(0.15, 0.6), decay_s=(0.04, 0.3)) -> tuple[torch.Tensor, torch.Tensor]:
    """Both windows of ``pair`` under one :func:`percussive_envelope` with period and decay drawn
    uniformly from the ranges (seconds) and a uniform phase."""
    u = torch.rand(3, generator=gen).tolist()
    period = period_s[0] + u[0] * (period_s[1] - period_s[0])
    decay = decay_s[0] + u[1] * (decay_s[1] - decay_s[0])
    return tuple(percussive_envelope(w, period, decay, u[2] * period) for w in pair)


def mask_frames(window: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """A copy with frames ``start .. start + length`` silenced."""
    out = window.clone()
    out[start:start + length] = 0.0
    return out


def augment_window(window: torch.Tensor, gen: torch.Generator, gain_db: float = 0.0, time_mask: int = 0
                   ) -> torch.Tensor:
    """A random gain in ``[-gain_db, gain_db]`` dB, then one time mask of ``0 .. time_mask`` frames."""
    if gain_db:
        db = (float(torch.rand((1,), generator=gen)) * 2 - 1) * gain_db
        window = apply_gain(window, db)
    if time_mask:
        length = int(torch.randint(0, time_mask + 1, (1,), generator=gen))
        if length:
            start = int(torch.randint(0, max(1, window.shape[0] - length + 1), (1,), generator=gen))
            window = mask_frames(window, start, length)
    return window


@functools.lru_cache(maxsize=64)
def _pitch_shift_plan(semitones: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lower, upper, weight, edge)`` per band: the shifted band is ``lower`` and ``upper`` blended
    by ``weight``; ``edge`` marks bands whose source lies outside the filterbank (edge band repeated)."""
    from .frontend import band_centre_frequencies

    log_f = np.log2(band_centre_frequencies())
    source = log_f - semitones / 12.0
    pos = np.interp(source, log_f, np.arange(len(log_f), dtype=np.float64))  # clamps at both ends
    lower = np.floor(pos).astype(np.int64)
    upper = np.minimum(lower + 1, len(log_f) - 1)
    edge = (source < log_f[0]) | (source > log_f[-1])
    return (torch.from_numpy(lower), torch.from_numpy(upper), torch.from_numpy(pos - lower).float(),
            torch.from_numpy(edge))


def pitch_shift(x: torch.Tensor, semitones: float) -> torch.Tensor:
    """``(frames, bands)`` log spectrogram with its content moved up by ``semitones`` (down if < 0).

    Each band takes the value at its centre frequency / 2**(semitones / 12), interpolated
    linearly between the bands around it; bands whose source lies outside the filterbank repeat
    the edge band. Unlike :func:`shift_bands` this is a pitch shift at every frequency: the
    filterbank is 24 bands per octave above about 400 Hz, but one STFT bin (10.8 Hz) per band
    below, where a shift by bands would make the bass inharmonic.
    """
    if semitones == 0:
        return x
    lower, upper, weight, _ = _pitch_shift_plan(float(semitones))
    return torch.lerp(x[:, lower], x[:, upper], weight.to(x.dtype))


def fill_shift_edges(shifted: torch.Tensor, original: torch.Tensor, *semitones: float) -> torch.Tensor:
    """``shifted`` (a :func:`pitch_shift` of ``original``, or ``original`` itself) with the edge
    bands that a pitch shift by any of ``semitones`` fills set as that shift sets them: to
    ``original``'s lowest band at the bottom, its highest at the top."""
    out = shifted.clone()
    for s in semitones:
        if s:
            lower, _, _, edge = _pitch_shift_plan(float(s))
            out[:, edge] = original[:, lower[edge]]
    return out


def random_crop(spec: torch.Tensor, length: int, gen: torch.Generator) -> torch.Tensor:
    """``length`` consecutive frames of ``(clip_frames, bands)`` from a random start; a clip
    shorter than that is padded by repeating its last frame."""
    start = int(torch.randint(0, max(1, spec.shape[0] - length + 1), (1,), generator=gen))
    piece = spec[start:start + length]
    if piece.shape[0] < length:
        piece = torch.cat([piece, piece[-1:].expand(length - piece.shape[0], -1)])
    return piece


def modulation_pair(spec: torch.Tensor, gen: torch.Generator, frames: int, segments: int = 4,
                    max_semitones: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``(frames, bands)`` windows spliced from ``segments`` random crops of one clip.

    Args:
        spec: the clip's un-normalised log spectrogram, ``(clip_frames, bands)``.
        gen: the random generator (crops and keys).
        frames: window length in frames (313 = 10 s).
        segments: crops per window (4: a new key every 2.5 s, as a modulation every bar or two).
        max_semitones: keys are ``1 .. max_semitones`` semitones up or down from the clip's.

    Returns:
        ``(control, modulated)``: every crop moved to one key ``k0``; and the same crops, the
        first in ``k0``, each later one in a key other than that of the crop before it
        (:func:`pitch_shift`). Each segment of both windows has the edge bands of both its
        shifts (:func:`fill_shift_edges`).
    """
    if segments < 2:
        raise ValueError("a modulation needs at least 2 segments")
    if not 1 <= max_semitones <= 11:
        raise ValueError("max_semitones must be 1..11 (12 is the same key)")
    keys_allowed = [k for k in range(-max_semitones, max_semitones + 1) if k != 0]
    bounds = [round(j * frames / segments) for j in range(segments + 1)]
    crops, keys = [], []
    for j in range(segments):
        crops.append(random_crop(spec, bounds[j + 1] - bounds[j], gen))
        choices = keys_allowed if not keys else [k for k in keys_allowed if k != keys[-1]]
        keys.append(choices[int(torch.randint(0, len(choices), (1,), generator=gen))])
    k0 = keys[0]
    control = torch.cat([fill_shift_edges(pitch_shift(c, k0), c, k) for c, k in zip(crops, keys)])
    modulated = torch.cat([fill_shift_edges(pitch_shift(c, k), c, k0) for c, k in zip(crops, keys)])
    return control, modulated


def _displacement_plan(frames: int, gen: torch.Generator, events: int, min_frames: int, max_frames: int,
                       min_gap: int, max_gap: int) -> list[tuple[int, int, int]]:
    """``events`` (position, size, gap) triples, one in each of ``events`` equal slots of the window.

    At ``position`` the source skips ``size`` frames (a jump) and ``gap`` frames later it holds one
    frame for ``size`` extra frames (a freeze), or the other way round (sign of ``size``).
    """
    slot = frames // events
    if slot < max_gap + max_frames + 2:
        raise ValueError(f"{events} displacements do not fit in {frames} frames")
    plan = []
    for j in range(events):
        size = int(torch.randint(min_frames, max_frames + 1, (1,), generator=gen))
        gap = int(torch.randint(min_gap, max_gap + 1, (1,), generator=gen))
        start = j * slot + int(torch.randint(0, slot - gap - abs(size) - 1, (1,), generator=gen))
        if int(torch.randint(0, 2, (1,), generator=gen)):
            size = -size  # freeze first, then jump: the music between them runs late instead of early
        plan.append((start, size, gap))
    return plan


def _source_frames(frames: int, plan: list[tuple[int, int, int]], displaced: bool) -> torch.Tensor:
    """The source frame of each of ``frames`` output frames under ``plan``.

    Not ``displaced``: a frame is frozen where it belongs and the jump follows as the freeze ends,
    so the source is back in step at once and every onset that sounds is in its place.
    ``displaced``: the second edit comes ``gap`` frames after the first.
    """
    edits: dict[int, list[tuple[str, int]]] = {}  # output frame -> edits in order
    for start, size, gap in plan:
        if displaced:
            first, second = ("jump", "hold") if size > 0 else ("hold", "jump")
            edits.setdefault(start, []).append((first, abs(size)))
            edits.setdefault(start + gap, []).append((second, abs(size)))
        else:
            edits.setdefault(start, []).append(("hold", abs(size)))
            edits.setdefault(start + abs(size) + 1, []).append(("jump", abs(size)))
    out, src, held = [], 0, 0
    for o in range(frames):
        for kind, size in edits.get(o, ()):
            if kind == "jump":
                src += size
            else:
                held += size
        out.append(src)
        if held:
            held -= 1
        else:
            src += 1
    return torch.tensor(out)


def rhythm_pair(spec: torch.Tensor, gen: torch.Generator, frames: int, events: int = 8, min_frames: int = 2,
                max_frames: int = 5, min_gap: int = 8, max_gap: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``(frames, bands)`` windows re-timed from one random crop of a clip.

    Both windows have the same ``events`` jumps (``min_frames .. max_frames`` source frames
    skipped, 64-160 ms at 31.3 frames/s) and as many freezes (one frame held as long): the same
    seams and as much lost and repeated content. In the ``steady`` window each jump follows its
    freeze at once, so every note that sounds stays in its place in time. In the ``displaced``
    twin the second edit comes ``min_gap .. max_gap`` frames (0.26-0.77 s) after the first, so the
    notes between them arrive early (or late): a steady pulse becomes irregular, an irregular one
    stays irregular.

    Args:
        spec: the clip's un-normalised log spectrogram, ``(clip_frames, bands)``.
        gen: the random generator (crop, positions, sizes).
        frames: window length in frames (313 = 10 s).

    Returns:
        ``(steady, displaced)``, each ``(frames, bands)``.
    """
    plan = _displacement_plan(frames, gen, events, min_frames, max_frames, min_gap, max_gap)
    steady_src, displaced_src = _source_frames(frames, plan, False), _source_frames(frames, plan, True)
    crop = random_crop(spec, int(max(steady_src.max(), displaced_src.max())) + 1, gen)
    return crop[steady_src], crop[displaced_src]


#: Intervals (semitones) of the copy in :func:`dissonance_pair`.
CLASHING_INTERVALS = (1, -1, 6, -6, 11, -11)
CONSONANT_INTERVALS = (12, -12, 7, -7, 5, -5)


def mix_magnitudes(a: torch.Tensor, b: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """The log spectrogram of two sounds played together: ``log10(1 + |A| + gain |B|)`` from their
    ``log10(1 + |.|)`` spectrograms (magnitudes add; phases ignored, as for unrelated sources)."""
    return torch.log10(1.0 + (torch.pow(10.0, a) - 1.0).clamp_min(0.0)
                       + gain * (torch.pow(10.0, b) - 1.0).clamp_min(0.0))


def dissonance_pair(spec: torch.Tensor, gen: torch.Generator, frames: int, min_db: float = -6.0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``(frames, bands)`` windows from one random crop of a clip, with a pitch-shifted copy added.

    Args:
        spec: the clip's un-normalised log spectrogram, ``(clip_frames, bands)``.
        gen: the random generator (crop, intervals, level).
        frames: window length in frames (313 = 10 s).
        min_db: the copy's level is drawn from ``min_db .. 0`` dB relative to the crop.

    Returns:
        ``(clashing, consonant)``: the crop plus its copy moved by one of
        :data:`CLASHING_INTERVALS`, and the crop plus its copy moved by one of
        :data:`CONSONANT_INTERVALS` (:func:`pitch_shift`), at the same level. Bands whose source
        lies outside the filterbank under either shift are left out of both copies.
    """
    crop = random_crop(spec, frames, gen)
    clash = CLASHING_INTERVALS[int(torch.randint(0, len(CLASHING_INTERVALS), (1,), generator=gen))]
    blend = CONSONANT_INTERVALS[int(torch.randint(0, len(CONSONANT_INTERVALS), (1,), generator=gen))]
    gain = 10.0 ** ((min_db * float(torch.rand((1,), generator=gen))) / 20.0)
    edge = _pitch_shift_plan(float(clash))[3] | _pitch_shift_plan(float(blend))[3]

    def with_copy(semitones: int) -> torch.Tensor:
        copy = pitch_shift(crop, semitones).clone()
        copy[:, edge] = 0.0  # silence: log10(1 + 0)
        return mix_magnitudes(crop, copy, gain)

    return with_copy(clash), with_copy(blend)


#: Semitones above the tonic that :func:`swap_mode` exchanges: the minor and major third, the minor
#: and major sixth (the degrees that tell natural minor from major; the seventh is left alone, as
#: harmonic minor keeps the leading tone).
MODE_DEGREES = {3: 4, 4: 3, 8: 9, 9: 8}


@functools.lru_cache(maxsize=12)
def _mode_swap_plan(tonic: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bands, sources)``: the bands :func:`swap_mode` changes, and the band each one copies."""
    from .tonality import LOWEST_CHROMA_PITCH, band_pitches

    pitch = band_pitches()
    source = pitch.copy()
    for band in np.flatnonzero(pitch >= LOWEST_CHROMA_PITCH):
        degree = int(np.round(pitch[band] - tonic)) % 12
        if degree in MODE_DEGREES:
            source[band] = pitch[band] + MODE_DEGREES[degree] - degree
    bands = np.flatnonzero(source != pitch)
    nearest = np.abs(pitch[None, :] - source[bands, None]).argmin(axis=1)
    return torch.from_numpy(bands), torch.from_numpy(nearest)


def swap_mode(x: torch.Tensor, tonic: int) -> torch.Tensor:
    """``(frames, bands)`` log spectrogram with the third and sixth degrees above ``tonic``
    (0 = C .. 11 = B) exchanged with their neighbours (:data:`MODE_DEGREES`): each band near one
    of those degrees takes the values of the band nearest the pitch a semitone away. Copied, not
    interpolated, so a note keeps its level (a blend of two bands would lower a peak a quarter
    tone wide); bands below :data:`~twolevel.tonality.LOWEST_CHROMA_PITCH`, about a semitone
    wide or more, are left as they are."""
    bands, sources = _mode_swap_plan(int(tonic) % 12)
    out = x.clone()
    out[:, bands] = x[:, sources]
    return out


def mode_pair(spec: torch.Tensor, gen: torch.Generator, frames: int, tries: int = 6
              ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Two ``(frames, bands)`` windows of one clip that differ in mode only, or None.

    Args:
        spec: the clip's un-normalised log spectrogram, ``(clip_frames, bands)``.
        gen: the random generator (crops).
        frames: window length in frames (313 = 10 s).
        tries: random crops drawn. A crop qualifies when its :func:`swap_mode` about its own tonic
            (:func:`~twolevel.tonality.spectrogram_key`) reads as the same tonic in the other mode,
            which a wrong tonic, an ambiguous key or music without pitch rarely does; of those,
            the one whose two modes are both clearest is used.

    Returns:
        ``(minor, major)``: the crop and its swap, the one in a minor key first; None when no crop
        qualifies (percussion, noise, atonal music).
    """
    from .tonality import spectrogram_key

    if tries < 1:
        raise ValueError("mode_pair needs at least one try")
    best, best_clarity = None, 0.0
    # a clip no longer than the window has one crop: all of it
    for _ in range(tries if spec.shape[0] > frames else 1):
        crop = random_crop(spec, frames, gen)
        tonic, minor, clarity = spectrogram_key(crop.numpy())
        swapped = swap_mode(crop, tonic)
        swapped_tonic, swapped_minor, swapped_clarity = spectrogram_key(swapped.numpy())
        both_clear = min(clarity, swapped_clarity)
        if swapped_tonic == tonic and swapped_minor != minor and both_clear > best_clarity:
            best, best_clarity = ((crop, swapped) if minor else (swapped, crop)), both_clear
    return best
