#!/usr/bin/env python3
"""Render the concept probe suite: pairs of 10 s clips that differ in one musical quality.

    python scripts/render_probes.py            # -> probes/ (OGG + probes.json)
    python scripts/render_probes.py --suite validation --out cache/probes-validation

Needs ``fluidsynth`` and ``fluid-soundfont-gm`` (Debian packages) and ``sox``; the rendered clips
are committed, so the tests and ``benchmarks/concept_probes.py`` need none of them. The MIDI is
written by a small writer here (format 0, one track). Every pair is deterministic for its index:
the instrument (General MIDI program), key and tempo vary from pair to pair, the two clips of a
pair share them and differ only in the probed quality. ``b`` is always the clip where the
quality is *higher* (more melodious, more staccato, steadier, more complex, more dissonant,
more tonally stable, more minor; for emotions see ``EMOTION_PROBES``).

``--suite validation`` draws another suite from the same builders: other keys, tempi and the
instruments in another order per pair index (the committed one is ``test``). It is for choosing
among models (seeds, trunks) without reading the committed suite, which then stays a test; it is
rendered into a cache, not committed.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "probes"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SECONDS = 10.0
N_PAIRS = 12
#: General MIDI programs: piano, e-piano, vibraphone, organ, nylon guitar, strings, choir... (0-based).
PROGRAMS = {"piano": 0, "electric piano": 4, "vibraphone": 11, "organ": 19, "nylon guitar": 24,
            "strings": 48, "trumpet": 56, "clarinet": 71, "flute": 73, "harp": 46, "marimba": 12, "cello": 42}
MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]  # natural minor
TPB = 480  # MIDI ticks per beat

Note = tuple  # (start_beat, duration_beats, pitch, velocity, channel)


# --- a minimal Standard MIDI File writer ---------------------------------------------------------

def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, notes: list, bpm: float, programs: dict[int, int]) -> None:
    """Format-0 MIDI: tempo, one program per channel, then note on/off events."""
    events = [(0, bytes([0xFF, 0x51, 0x03]) + int(60_000_000 / bpm).to_bytes(3, "big"))]
    for ch, prog in programs.items():
        events.append((0, bytes([0xC0 | ch, prog])))
    for start, dur, pitch, vel, ch in notes:
        on, off = int(round(start * TPB)), int(round((start + dur) * TPB))
        events.append((on, bytes([0x90 | ch, pitch, vel])))
        events.append((max(off, on + 1), bytes([0x80 | ch, pitch, 0])))
    # note-offs before note-ons at the same tick, so repeated pitches re-strike
    events.sort(key=lambda e: (e[0], 0 if e[1][0] & 0xF0 == 0x80 else 1))
    body, last = b"", 0
    for tick, msg in events:
        body += _vlq(tick - last) + msg
        last = tick
    body += _vlq(0) + bytes([0xFF, 0x2F, 0x00])
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, TPB) + b"MTrk" + struct.pack(">I", len(body)) + body)


def require_renderer(script: str, soundfont: Path = SOUNDFONT, package: str = "fluid-soundfont-gm",
                     synth: str = "fluidsynth") -> None:
    """Exit with a message naming ``script`` and the Debian packages to install unless ``synth``, sox
    and ``soundfont`` (the synth's samples, from ``package``) are there: what :func:`render` needs
    (``synth="timidity"`` with its configuration file: what render_tonal_corpus ``--synth freepats`` needs)."""
    for tool in (synth, "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"{script}: {tool} not found (apt-get install {synth} {package} sox)")
    if not soundfont.is_file():
        sys.exit(f"{script}: {soundfont} missing (apt-get install {package})")


def render(notes: list, bpm: float, programs: dict[int, int], out: Path, tmp: Path,
           soundfont: Path = SOUNDFONT, seconds: float = SECONDS) -> None:
    """MIDI -> fluidsynth (44.1 kHz stereo WAV) -> sox: mono 22,050 Hz, exactly ``seconds``, peak -3 dB,
    in the format of ``out``'s suffix (``-C 0``: OGG Vorbis quality 0, or FLAC compression level 0)."""
    mid, wav = tmp / "x.mid", tmp / "x.wav"
    write_midi(mid, notes, bpm, programs)
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", "44100", "-F", str(wav), str(soundfont), str(mid)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    to_clip(wav, out, seconds)


def to_clip(wav: Path, out: Path, seconds: float = SECONDS) -> None:
    """A synthesiser's WAV -> sox: mono 22,050 Hz, exactly ``seconds`` (cut or padded with silence),
    peak -3 dB, in the format of ``out``'s suffix (``-C 0``: OGG Vorbis quality 0, FLAC level 0)."""
    subprocess.run(["sox", "-V1", str(wav), "-r", "22050", "-c", "1", "-C", "0", str(out), "norm", "-3",
                    "trim", "0", f"{seconds}", "pad", "0", f"{seconds}", "trim", "0", f"{seconds}"], check=True)


# --- musical material ---------------------------------------------------------------------------

def beats(bpm: float) -> float:
    """Beats that fill the clip (plus one so that the last notes ring into the cut)."""
    return SECONDS * bpm / 60.0 + 1


def scale_pitch(tonic: int, degree: int, mode=MAJOR, octave: int = 5) -> int:
    return 12 * octave + tonic + 12 * (degree // 7) + mode[degree % 7]


def triad(tonic: int, degree: int, mode=MAJOR, octave: int = 4) -> list[int]:
    return [scale_pitch(tonic, degree + k, mode, octave) for k in (0, 2, 4)]


PROGRESSION = [0, 3, 4, 0, 5, 3, 4, 0]  # I IV V I vi IV V I (degrees, 0-based)
TUNE = [0, 1, 2, 0, 2, 3, 4, 4, 3, 2, 1, 2, 0, -1, 0, 0]  # stepwise, singable (scale degrees)


def chords(tonic, bpm, mode=MAJOR, beats_per_chord=2, dur=None, vel=70, ch=0, octave=4, prog=PROGRESSION,
           tonic_per_bar=None):
    out, n, t, i = [], beats(bpm), 0.0, 0
    while t < n:
        key = tonic_per_bar(i) if tonic_per_bar else tonic
        for p in triad(key, prog[i % len(prog)], mode, octave):
            out.append((t, dur or beats_per_chord * 0.95, p, vel, ch))
        t += beats_per_chord
        i += 1
    return out


def melody(tonic, bpm, mode=MAJOR, note_beats=0.5, dur_frac=0.95, vel=90, ch=0, degrees=TUNE, octave=5,
           tonic_per_bar=None, bar_beats=2):
    out, n, t, i = [], beats(bpm), 0.0, 0
    while t < n:
        key = tonic_per_bar(int(t // bar_beats)) if tonic_per_bar else tonic
        out.append((t, note_beats * dur_frac, scale_pitch(key, degrees[i % len(degrees)], mode, octave), vel, ch))
        t += note_beats
        i += 1
    return out


#: Suites: the prefix of each pair's random seed and the offset of its instrument in PROGRAMS order.
SUITES = {"test": ("", 0), "validation": ("validation-", 7)}


def pair_settings(concept: str, i: int, suite: str = "test") -> dict:
    prefix, offset = SUITES[suite]
    rng = random.Random(f"{prefix}{concept}-{i}")
    names = sorted(PROGRAMS)
    return {"instrument": names[(i * 5 + len(concept) + offset) % len(names)], "tonic": rng.randrange(12),
            "bpm": rng.choice([72, 84, 96, 108, 120, 132, 144]), "rng": rng}


# Each probe builder returns (notes_a, notes_b): b has more of the quality.

def probe_melodiousness(s):
    t, bpm, rng = s["tonic"], s["bpm"], s["rng"]
    acc = chords(t, bpm, vel=55, octave=3)
    tune = melody(t, bpm, note_beats=0.5)
    # same rhythm and register, pitches jumping at random over three octaves, off the scale
    jumpy = [(st, d, rng.randrange(48, 88), v, c) for st, d, _, v, c in tune]
    return acc + jumpy, acc + tune


def probe_articulation(s):
    t, bpm = s["tonic"], s["bpm"]
    legato = melody(t, bpm, note_beats=0.5, dur_frac=1.0) + chords(t, bpm, beats_per_chord=1, octave=4, vel=60)
    stacc = [(st, min(d, 0.12), p, v, c) for st, d, p, v, c in legato]
    return legato, stacc


def _onsets_steady(bpm, step=0.5):
    return [k * step for k in range(int(beats(bpm) / step))]


def probe_rhythm_stability(s):
    t, bpm, rng = s["tonic"], s["bpm"], s["rng"]
    steady = _onsets_steady(bpm)
    n = len(steady)
    # the same number of onsets at random times (no pulse)
    loose = sorted(rng.uniform(0, beats(bpm) - 0.5) for _ in range(n))
    pitches = [scale_pitch(t, TUNE[k % len(TUNE)], MAJOR, 5) for k in range(n)]
    bass = [scale_pitch(t, PROGRESSION[(k // 4) % 8], MAJOR, 3) for k in range(n)]

    def notes(times):
        return ([(x, 0.3, p, 90, 0) for x, p in zip(times, pitches)]
                + [(x, 0.3, b, 70, 0) for x, b in zip(times, bass)])
    return notes(loose), notes(steady)


def probe_rhythm_complexity(s):
    t, bpm, rng = s["tonic"], s["bpm"], s["rng"]
    n = beats(bpm)
    chord = triad(t, 0, MAJOR, 4)
    simple = [(k * 1.0, 0.4, p, 85, 0) for k in range(int(n)) for p in chord[:1]] + \
             [(k * 1.0, 0.4, scale_pitch(t, 4, MAJOR, 5), 75, 0) for k in range(int(n))]
    # three layers against each other (3 against 4 against 5 per two beats) plus syncopated accents
    complex_ = []
    for layer, (div, pitch) in enumerate([(3, chord[0]), (5, scale_pitch(t, 4, MAJOR, 5)), (7, chord[2] + 12)]):
        step = 2.0 / div
        k = 0
        while k * step < n:
            if rng.random() < 0.8:
                complex_.append((k * step, step * 0.6, pitch, 70 + 10 * (layer == 0), 0))
            k += 1
    return simple, complex_


def probe_dissonance(s):
    t, bpm = s["tonic"], s["bpm"]
    cons = chords(t, bpm, beats_per_chord=2, octave=4)
    # each triad becomes a cluster: root, minor second, tritone, major seventh
    diss = []
    for st, d, p, v, c in cons[::3]:
        for iv in (0, 1, 6, 11):
            diss.append((st, d, p + iv, v, c))
    cons4 = []
    for st, d, p, v, c in cons[::3]:
        for iv in (0, 4, 7, 12):  # the same number of voices, a major triad with octave
            cons4.append((st, d, p + iv, v, c))
    return cons4, diss


def probe_tonal_stability(s):
    t, bpm, rng = s["tonic"], s["bpm"], s["rng"]
    keys = [t] + [rng.randrange(12) for _ in range(40)]
    # a new key every bar, each far from the last (steps of a tritone or a semitone around the circle)
    wander = [t]
    for _ in range(40):
        wander.append((wander[-1] + rng.choice([1, 6, 11, 5, 7, 3])) % 12)
    del keys
    stable = chords(t, bpm, beats_per_chord=2) + melody(t, bpm, note_beats=0.5)
    moving = (chords(t, bpm, beats_per_chord=2, tonic_per_bar=lambda b: wander[b])
              + melody(t, bpm, note_beats=0.5, tonic_per_bar=lambda b: wander[b], bar_beats=2))
    return moving, stable


def probe_minorness(s):
    t, bpm = s["tonic"], s["bpm"]
    major = chords(t, bpm, MAJOR) + melody(t, bpm, MAJOR)
    minor = chords(t, bpm, MINOR) + melody(t, bpm, MINOR)
    return major, minor


MIDLEVEL_PROBES = {
    "melodiousness": probe_melodiousness,
    "articulation": probe_articulation,
    "rhythm_stability": probe_rhythm_stability,
    "rhythm_complexity": probe_rhythm_complexity,
    "dissonance": probe_dissonance,
    "tonal_stability": probe_tonal_stability,
    "minorness": probe_minorness,
}


def probe_mode(s):
    """Emotion pair: minor (a) vs major (b); happy and valence should be higher for b, sad lower."""
    t, bpm = s["tonic"], s["bpm"]
    return chords(t, bpm, MINOR, octave=3) + melody(t, bpm, MINOR), chords(t, bpm, MAJOR, octave=3) + melody(t, bpm, MAJOR)


def probe_tempo(s):
    """Emotion pair: slow (a, 60 BPM, soft, legato) vs fast (b, 160 BPM): energy should be higher for b."""
    t = s["tonic"]
    slow = chords(t, 60, beats_per_chord=2, vel=60) + melody(t, 60, note_beats=1.0, vel=70)
    fast = chords(t, 160, beats_per_chord=2, vel=60) + melody(t, 160, note_beats=0.5, vel=70)
    return slow, fast, 60, 160


#: Emotion probes: for each, the emotions expected higher in b (+1) or in a (-1).
EMOTION_PROBES = {"mode": {"happy": +1, "valence": +1, "sad": -1}, "tempo": {"energy": +1}}
N_EMOTION_PAIRS = 6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=sorted(SUITES), default="test",
                    help="which draw of pairs (default: test, the committed probes/)")
    ap.add_argument("--out", type=Path, default=None,
                    help="folder to write (default: probes/ for the test suite; required for another suite)")
    args = ap.parse_args(argv)
    if args.out is None and args.suite != "test":
        ap.error(f"--suite {args.suite} needs --out (probes/ holds the committed test suite)")
    out_dir = args.out or OUT
    require_renderer("render_probes")
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.ogg"):
        old.unlink()
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for concept, build in MIDLEVEL_PROBES.items():
            for i in range(N_PAIRS):
                s = pair_settings(concept, i, args.suite)
                a, b = build(s)
                prog = {0: PROGRAMS[s["instrument"]]}
                files = {}
                for side, notes in (("a", a), ("b", b)):
                    files[side] = f"{concept}-{i:02d}-{side}.ogg"
                    render(notes, s["bpm"], prog, out_dir / files[side], tmp)
                pairs.append({"kind": "midlevel", "concept": concept, "higher": {concept: +1}, **files,
                              "instrument": s["instrument"], "tonic": s["tonic"], "bpm": s["bpm"]})
                print(concept, i, s["instrument"], s["tonic"], s["bpm"], flush=True)
        for concept, expect in EMOTION_PROBES.items():
            for i in range(N_EMOTION_PAIRS):
                s = pair_settings(concept, i, args.suite)
                prog = {0: PROGRAMS[s["instrument"]]}
                files = {}
                if concept == "tempo":
                    a, b, bpm_a, bpm_b = probe_tempo(s)
                    bpms = {"a": bpm_a, "b": bpm_b}
                else:
                    a, b = probe_mode(s)
                    bpms = {"a": s["bpm"], "b": s["bpm"]}
                for side, notes in (("a", a), ("b", b)):
                    files[side] = f"emotion-{concept}-{i:02d}-{side}.ogg"
                    render(notes, bpms[side], prog, out_dir / files[side], tmp)
                pairs.append({"kind": "emotion", "concept": concept, "higher": expect, **files,
                              "instrument": s["instrument"], "tonic": s["tonic"], "bpm": bpms})
    index = {"seconds": SECONDS, "soundfont": SOUNDFONT.name, "suite": args.suite, "pairs": pairs}
    (out_dir / "probes.json").write_text(json.dumps(index, indent=1))
    size = sum(p.stat().st_size for p in out_dir.glob("*.ogg"))
    print(f"{len(pairs)} pairs, {size / 1e6:.1f} MB in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
