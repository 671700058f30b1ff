"""The signal the A2Mid2E-Joint model hears: sample rate, STFT, analysis window, filterbank.

One place for the numbers that fix the model's input (paper-facts.md); the label names and the
order of the model's outputs are in :mod:`twolevel.labels`.
"""
from __future__ import annotations

#: Sample rate the model hears, in Hz.
SAMPLE_RATE = 22_050
#: STFT frame length and hop, in samples (hop 704 = 31.3 frames/s).
N_FFT = 2048
HOP_LENGTH = 704
#: One analysis window: 10 s of audio, 313 spectrogram frames.
WINDOW_SECONDS = 10.0
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)  # 220,500
WINDOW_FRAMES = 313
#: Log-frequency filterbank: 24 bands per octave from 20 Hz to 16 kHz -> 149 bands.
BANDS_PER_OCTAVE = 24
FMIN_HZ = 20.0
FMAX_HZ = 16_000.0
N_BANDS = 149
