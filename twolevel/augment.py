"""Emotion-keeping augmentations of one un-normalised log spectrogram crop ``(frames, 149)``.

They act on the cached ``log10(1 + magnitude)`` spectrogram, so no STFT is re-run:

- gain: the magnitude scaled by ``g`` is ``log10(1 + g (10**s - 1))`` exactly (a louder or softer
  recording of the same music);
- time mask: one block of frames set to silence (0 = ``log10(1 + 0)``), as in SpecAugment;
  the emotion of a 10 s window does not hinge on any one second of it.

- pitch shift (:func:`shift_bands`): the spectrum moved along the log-frequency axis.

:func:`modulation_pair` is not an augmentation but a contrast whose answer is known by
construction: a window spliced from segments of one clip (``control``: one key, since a 10-40 s
film cue rarely modulates) and the same segments each moved to another key (``modulated``).
Training asks the tonal-stability output to rank the control above the modulated window
(``TrainConfig.modulation_weight``). Both windows have the same splice points, so a seam alone
cannot tell them apart; only the change of key can.
"""
from __future__ import annotations

import torch

#: Filterbank bands per semitone (24 bands per octave, twolevel/signal.py). Below about 370 Hz the
#: filterbank merges bands, so a shift there is coarser than a semitone; the melody and harmony
#: above it move by exact semitones.
BANDS_PER_SEMITONE = 2


def shift_bands(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Move ``(frames, bands)`` up (shift > 0) or down by ``shift`` bands, repeating the edge band."""
    if shift == 0:
        return x
    if shift > 0:
        return torch.cat([x[:, :1].expand(-1, shift), x[:, :-shift]], dim=1)
    return torch.cat([x[:, -shift:], x[:, -1:].expand(-1, -shift)], dim=1)


def fill_edge(x: torch.Tensor, shift: int) -> torch.Tensor:
    """``x`` with the edge bands that :func:`shift_bands` would fill (the lowest ``shift`` bands
    for shift > 0, the highest ``-shift`` for shift < 0) filled the same way, and the rest unmoved."""
    if shift == 0:
        return x
    out = x.clone()
    if shift > 0:
        out[:, :shift] = x[:, :1]
    else:
        out[:, shift:] = x[:, -1:]
    return out


def apply_gain(window: torch.Tensor, gain_db: float) -> torch.Tensor:
    """The log spectrogram of the same audio ``gain_db`` louder (magnitude x 10**(gain_db / 20))."""
    if gain_db == 0:
        return window
    g = 10.0 ** (gain_db / 20.0)
    return torch.log10(1.0 + g * (torch.pow(10.0, window) - 1.0).clamp_min(0.0))


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


def modulation_pair(spec: torch.Tensor, gen: torch.Generator, frames: int, segments: int = 4,
                    max_semitones: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``(frames, bands)`` windows spliced from ``segments`` random crops of one clip.

    Args:
        spec: the clip's un-normalised log spectrogram, ``(clip_frames, bands)``.
        gen: the random generator (crops and keys).
        frames: window length in frames (313 = 10 s).
        segments: crops per window (4: a new key every 2.5 s, as a modulation every bar or two).
        max_semitones: each segment after the first moves to a key ``1 .. max_semitones``
            semitones up or down from the first, never the key of the segment before it.

    Returns:
        ``(control, modulated)``: the crops spliced in one key, and the same crops, the first
        kept and each later one shifted by its key offset (:func:`shift_bands`). Each control
        segment has its twin's edge bands (:func:`fill_edge`), so no edge artifact tells them apart.
    """
    if segments < 2:
        raise ValueError("a modulation needs at least 2 segments")
    if not 1 <= max_semitones <= 11:
        raise ValueError("max_semitones must be 1..11 (12 is the same key)")
    bounds = [round(j * frames / segments) for j in range(segments + 1)]
    clip_frames = spec.shape[0]
    crops, keys, key = [], [0], 0
    for j in range(segments):
        length = bounds[j + 1] - bounds[j]
        start = int(torch.randint(0, max(1, clip_frames - length + 1), (1,), generator=gen))
        piece = spec[start:start + length]
        if piece.shape[0] < length:  # a clip shorter than a segment: repeat its last frame
            piece = torch.cat([piece, piece[-1:].expand(length - piece.shape[0], -1)])
        crops.append(piece)
        if j:
            choices = [k for k in range(-max_semitones, max_semitones + 1) if k not in (0, key)]
            key = choices[int(torch.randint(0, len(choices), (1,), generator=gen))]
            keys.append(key)
    # The control's segments get the same edge bands as their shifted twins (fill_edge), so the
    # only difference left is where the interior's harmonics sit: a key.
    control = torch.cat([fill_edge(c, k * BANDS_PER_SEMITONE) for c, k in zip(crops, keys)])
    modulated = torch.cat([shift_bands(c, k * BANDS_PER_SEMITONE) for c, k in zip(crops, keys)])
    return control, modulated
