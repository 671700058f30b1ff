#!/usr/bin/env python3
"""Generated tonal music for the corpus: major and minor pieces on struck, plucked and held instruments.

    cp -r cache/debian-audio/corpus cache/corpus-tonal          # the Debian corpus, kept as it is
    python scripts/render_tonal_corpus.py --out cache/tonal-corpus --tracks 40 --append-to cache/corpus-tonal
    twolevel-cli train ... --distill-corpus cache/corpus-tonal --distill-items 394

``--append-to`` cuts each track into three 10 s windows and adds them to that corpus
(:func:`twolevel.corpus.build_corpus`, package ``generated-tonal``); the tracks' descriptor targets
are computed when a training first reads them. By default they teach minorness only (``--targets``;
the corpus's ``targets_of``, :func:`twolevel.corpus.corpus_training_set`): generated accompaniments
say nothing reliable about the other six concepts, and their values would shift the rank-mapped
targets of the real windows. Session 20 (issue 13) tried this as an exploration,
with a version that clamped the melody's range to a fixed pitch: 38 of 6,865 notes (0.55 %, in 5 of
40 pieces) fell outside the key; now the melody moves by octaves and the test holds every note in it.

Why: the shipped model's minorness does not follow the mode of struck and plucked notes (marimba,
vibraphone, harp, nylon guitar; issue 13), and the Debian game music has few of them. Minorness is
learned from a descriptor (:func:`twolevel.tonality.minorness_v2`), which needs no human labels, so
any tonal audio teaches it; this script writes such audio where mode varies and timbre is chosen.

Each track (30 s, mono 22,050 Hz FLAC): a random tonic, major or minor (natural, or harmonic with a
major dominant), a random diatonic progression of the mode, an accompaniment (block chords, broken
chords or an Alberti-like figure) on one instrument, a bass line, and a melody of chord tones and
passing notes on another, at 60-150 BPM. Rendered with fluidsynth and the **TimGM6mb** soundfont
(Debian ``timgm6mb-soundfont``), on purpose not FluidR3 (the concept probes' soundfont), so that no
probe's sound is ever trained on. ``tracks.json`` records each track's key, mode, tempo and programs.
Deterministic for a given ``--seed`` up to fluidsynth's rendering (not bit for bit).

``--twins`` renders every piece a second time in the other mode (:func:`mode_twin`: the 3rd, 6th and
7th degrees a semitone up or down, nothing else), so that two windows with the same instruments, rhythm
and contour differ in mode alone; ``--struck-only`` leaves out the held instruments and the bowed bass.
Session 21 (issue 13) tried both together: ``--tracks 40 --seed 1 --twins --struck-only``. A twin's
entry in ``tracks.json`` names its piece (``twin_of``); a corpus cut from twins pairs their windows
(``twolevel.corpus.mode_twin_ids``), which ``twolevel-cli train --mode-twin-weight`` uses as a contrast.
``--synth freepats`` renders with timidity and Debian's freepats samples instead (a second sample set;
struck and plucked programs only); session 22's corpus appended ``--tracks 40 --seed 1 --twins
--struck-only`` (TimGM6mb) and ``--tracks 40 --seed 4 --twins --struck-only --synth freepats`` to the
274 Debian windows. ``--synth opl3`` (fluidsynth with Debian's ``opl3-soundfont``: FM synthesis, no
recorded samples) and ``--synth csound`` (``csound-soundfont``'s General MIDI bank) are a third and a fourth
set; session 23 appended 20 twins of each (``--seed 5`` and ``--seed 6``) to that corpus.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_probes import render, require_renderer, to_clip, write_midi  # noqa: E402  (MIDI -> synth -> sox)

SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
SECONDS = 30.0
MAJOR = [0, 2, 4, 5, 7, 9, 11]
NATURAL_MINOR = [0, 2, 3, 5, 7, 8, 10]
#: General MIDI programs of the accompaniment and the melody: struck and plucked pitched
#: instruments (the concept's weak spot) and some held ones, so that mode is not tied to timbre.
STRUCK_PLUCKED = {"piano": 0, "harpsichord": 6, "celesta": 8, "glockenspiel": 9, "music box": 10,
                  "vibraphone": 11, "marimba": 12, "xylophone": 13, "dulcimer": 15, "nylon guitar": 24,
                  "steel guitar": 25, "clean guitar": 27, "pizzicato": 45, "harp": 46, "kalimba": 108,
                  "koto": 107, "banjo": 105}
HELD = {"strings": 48, "flute": 73, "clarinet": 71, "oboe": 68, "organ": 19, "cello": 42, "choir": 52,
        "french horn": 60, "accordion": 21, "synth pad": 89}
BASS = {"acoustic bass": 32, "fingered bass": 33, "contrabass": 43, "piano": 0, "harp": 46}
#: The basses that are plucked or struck (``--struck-only``): BASS without the bowed contrabass.
STRUCK_BASS = {name: program for name, program in BASS.items() if name != "contrabass"}
#: ``--synth freepats``: timidity with Debian's freepats samples (nothing shared with TimGM6mb or the
#: probes' FluidR3), which has these struck and plucked programs (``--struck-only`` only).
FREEPATS_CONFIG = Path("/etc/timidity/freepats.cfg")
FREEPATS_STRUCK_PLUCKED = {"piano": 0, "harpsichord": 6, "celesta": 8, "glockenspiel": 9, "xylophone": 13,
                           "tubular bells": 14, "dulcimer": 15, "nylon guitar": 24, "steel guitar": 25,
                           "jazz guitar": 26, "clean guitar": 27, "pizzicato": 45, "harp": 46, "electric piano": 4}
FREEPATS_STRUCK_BASS = {"acoustic bass": 32, "fingered bass": 33, "piano": 0, "harp": 46}
#: Diatonic progressions (0-based degrees) that sound idiomatic in both modes.
PROGRESSIONS = [[0, 3, 4, 0], [0, 5, 3, 4], [0, 3, 0, 4], [0, 4, 5, 3], [0, 1, 4, 0], [0, 5, 1, 4],
                [0, 2, 3, 4], [0, 3, 6, 4], [0, 0, 3, 4], [0, 4, 0, 3]]


def pitch(tonic: int, degree: int, scale: list[int], octave: int) -> int:
    return 12 * octave + tonic + 12 * (degree // 7) + scale[degree % 7]


def chord_scale(scale: list[int], harmonic: bool, degree: int) -> list[int]:
    """The scale a chord on ``degree`` is built from: harmonic minor raises the 7th in V and vii."""
    if harmonic and degree % 7 in (4, 6):
        return scale[:6] + [11]
    return scale


def piece(rng: random.Random, struck_only: bool = False, struck: dict[str, int] | None = None,
          struck_bass: dict[str, int] | None = None) -> tuple[list, float, dict[int, int], dict]:
    """Notes ``(start_beat, dur_beats, pitch, velocity, channel)``, tempo, programs, description.

    ``struck_only``: accompaniment and melody from ``struck`` (default :data:`STRUCK_PLUCKED`), the
    bass from ``struck_bass`` (default :data:`STRUCK_BASS`), so that no held tone carries the mode."""
    struck, struck_bass = struck or STRUCK_PLUCKED, struck_bass or STRUCK_BASS
    tonic, minor = rng.randrange(12), rng.random() < 0.5
    harmonic = minor and rng.random() < 0.5
    scale = NATURAL_MINOR if minor else MAJOR
    bpm = rng.uniform(60, 150)
    beats_per_chord = rng.choice([2, 4, 4, 8])
    progression = rng.choice(PROGRESSIONS)
    pools = [struck] * 3 if struck_only else [struck, struck, HELD]
    accomp_name = rng.choice(list(rng.choice(pools)))
    melody_name = rng.choice(list(rng.choice(pools)))
    bass_name = rng.choice(list(struck_bass if struck_only else BASS))
    programs = {0: {**struck, **HELD}[accomp_name], 1: {**struck, **HELD}[melody_name],
                2: {**BASS, **struck_bass}[bass_name]}
    figure = rng.choice(["block", "broken", "alberti"])
    octave = rng.choice([3, 4])
    total = SECONDS * bpm / 60.0 + 2
    notes, t, i = [], 0.0, 0
    while t < total:
        degree = progression[i % len(progression)]
        cs = chord_scale(scale, harmonic, degree)
        tones = [pitch(tonic, degree + k, cs, octave) for k in (0, 2, 4)]
        if figure == "block":
            step = beats_per_chord if rng.random() < 0.5 else 1
            for s in range(int(beats_per_chord / step)):
                notes += [(t + s * step, step * 0.9, p, 64, 0) for p in tones]
        else:
            order = [0, 1, 2, 1] if figure == "broken" else [0, 2, 1, 2]
            for s in range(beats_per_chord * 2):
                notes.append((t + s * 0.5, 0.45, tones[order[s % 4]] + (12 if s % 8 >= 4 and rng.random() < 0.3 else 0),
                              60, 0))
        notes.append((t, beats_per_chord * 0.95, pitch(tonic, degree, cs, 2), 70, 2))
        # melody: a chord tone on each beat, a passing note of the chord's scale between some
        b = 0.0
        last = rng.choice(tones) + 12
        while b < beats_per_chord:
            length = rng.choice([0.5, 1, 1, 2])
            if rng.random() < 0.7:
                target = min((p + 12 * o for p in tones for o in (1, 2)), key=lambda q: abs(q - last) + rng.random())
            else:  # a step of the scale up or down
                steps = [pitch(tonic, d, cs, 0) for d in range(-14, 40)]
                above = [q for q in steps if q > last]
                below = [q for q in steps if q < last]
                target = (above[0] if above else last) if rng.random() < 0.5 else (below[-1] if below else last)
            # kept in the melody's range by whole octaves (clamping to a fixed pitch would leave the key)
            while target < 55:
                target += 12
            while target > 88:
                target -= 12
            last = target
            if rng.random() < 0.9:  # a few rests
                notes.append((t + b, min(length, beats_per_chord - b) * 0.9, last, 85, 1))
            b += length
        t += beats_per_chord
        i += 1
    desc = {"tonic": tonic, "mode": "minor" if minor else "major", "harmonic_minor": harmonic, "bpm": round(bpm, 1),
            "accompaniment": accomp_name, "figure": figure, "melody": melody_name, "bass": bass_name,
            "beats_per_chord": beats_per_chord, "progression": progression}
    return notes, bpm, programs, desc


#: Pitch classes above the tonic that differ between major and natural minor: 3rd, 6th, 7th.
TO_MINOR = {4: 3, 9: 8, 11: 10}
TO_MAJOR = {3: 4, 8: 9, 10: 11}


def mode_twin(notes: list, desc: dict) -> tuple[list, dict]:
    """The same piece in the other mode: major -> natural minor, or minor (natural or harmonic)
    -> major, by moving the 3rd, 6th and 7th degrees a semitone. Every diatonic chord stays the
    chord on the same degree of the other mode (I -> i, IV -> iv, vi -> VI, ...); onsets,
    lengths, velocities, instruments and the melody's contour stay as they are."""
    shift = TO_MAJOR if desc["mode"] == "minor" else TO_MINOR
    tonic = desc["tonic"]

    def moved(p: int) -> int:
        degree = (p - tonic) % 12
        return p + shift.get(degree, degree) - degree

    twin = [(start, dur, moved(p), vel, ch) for start, dur, p, vel, ch in notes]
    return twin, {**desc, "mode": "major" if desc["mode"] == "minor" else "minor", "harmonic_minor": False}


@dataclass(frozen=True)
class Synth:
    """One way from notes to audio: its synthesiser (``"fluidsynth"`` with ``soundfont``, or
    ``"timidity"`` with :data:`FREEPATS_CONFIG`), the Debian package of its sample set, its instrument
    tables for ``--struck-only``, and the corpus package and file prefix of what it renders."""

    engine: str
    samples: str
    package: str
    prefix: str
    struck: dict[str, int]
    struck_bass: dict[str, int]
    debian_package: str
    soundfont: Path | None = None  # fluidsynth only

    def require(self) -> None:
        if self.engine == "fluidsynth":
            require_renderer("render_tonal_corpus", self.soundfont, self.debian_package)
        else:
            require_renderer("render_tonal_corpus", FREEPATS_CONFIG, self.debian_package, synth="timidity")

    def render(self, notes: list, bpm: float, programs: dict[int, int], out: Path, tmp: Path) -> None:
        if self.engine == "fluidsynth":
            render(notes, bpm, programs, out, tmp, soundfont=self.soundfont, seconds=SECONDS)
            return
        mid, wav = tmp / "x.mid", tmp / "x.wav"
        write_midi(mid, notes, bpm, programs)
        subprocess.run(["timidity", "-c", str(FREEPATS_CONFIG), "-Ow", "-s", "44100", "-o", str(wav), str(mid)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        to_clip(wav, out, SECONDS)


def _soundfont(path: str, debian_package: str, package: str, prefix: str) -> Synth:
    """A General MIDI soundfont played by fluidsynth, with the full struck and plucked tables."""
    return Synth("fluidsynth", Path(path).name, package, prefix, STRUCK_PLUCKED, STRUCK_BASS, debian_package, Path(path))


#: Sample sets that share nothing with the probes' FluidR3 (so no probe's sound is ever trained on).
SYNTHS = {"timgm6mb": _soundfont(str(SOUNDFONT), "timgm6mb-soundfont", "generated-tonal", "tonal"),
          "freepats": Synth("timidity", "timidity+freepats", "generated-freepats", "freepats",
                            FREEPATS_STRUCK_PLUCKED, FREEPATS_STRUCK_BASS, debian_package="freepats"),
          # FM synthesis of an OPL3 chip: no recorded samples at all
          "opl3": _soundfont("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2", "opl3-soundfont", "generated-opl3", "opl3"),
          # Csound's General MIDI bank
          "csound": _soundfont("/usr/share/sounds/sf2/sf_GMbank.sf2", "csound-soundfont", "generated-csound", "csound")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder: audio/*.flac and tracks.json")
    ap.add_argument("--tracks", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--append-to", type=Path, default=None, help="a corpus folder to add the tracks' windows to")
    ap.add_argument("--twins", action="store_true",
                    help="render every piece twice, in its mode and then in the other (mode twins: the 3rd, "
                         "6th and 7th degrees move, nothing else); --tracks counts tracks: 40 gives 20 twins")
    ap.add_argument("--struck-only", action="store_true",
                    help="struck and plucked instruments only, the bass too (no held tone carries the mode)")
    ap.add_argument("--synth", choices=sorted(SYNTHS), default="timgm6mb",
                    help="timgm6mb: fluidsynth with the TimGM6mb soundfont; freepats: timidity with Debian's "
                         "freepats samples (needs --struck-only: the struck and plucked programs it has), a second "
                         "sample set that shares nothing with the first or with the probes' FluidR3; opl3 and "
                         "csound: fluidsynth with Debian's opl3-soundfont (FM synthesis) or csound-soundfont")
    ap.add_argument("--targets", default="minorness",
                    help="comma-separated mid-levels the appended windows teach, or 'all' (default: minorness)")
    args = ap.parse_args(argv)
    if args.twins and args.tracks % 2:
        sys.exit(f"render_tonal_corpus: --twins needs an even --tracks (a piece and its twin), got {args.tracks}")
    if args.append_to is not None and not (args.append_to / "windows.npz").is_file():
        sys.exit(f"render_tonal_corpus: {args.append_to} holds no corpus (windows.npz)")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from twolevel.labels import MIDLEVEL_NAMES

    taught = list(MIDLEVEL_NAMES) if args.targets == "all" else [n.strip() for n in args.targets.split(",")]
    if not set(taught) <= set(MIDLEVEL_NAMES):
        sys.exit(f"render_tonal_corpus: --targets {args.targets!r}: give mid-levels of "
                 f"{', '.join(MIDLEVEL_NAMES)}, or all")
    if args.synth == "freepats" and not args.struck_only:
        sys.exit("render_tonal_corpus: --synth freepats needs --struck-only (freepats lacks held programs)")
    synth = SYNTHS[args.synth]
    synth.require()
    audio = args.out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    tracks = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.tracks):
            if args.twins and n % 2:  # the previous track's piece in the other mode
                notes, desc = mode_twin(notes, desc)
                desc["twin_of"] = tracks[-1]["file"]
            else:
                notes, bpm, programs, desc = piece(rng, args.struck_only, synth.struck, synth.struck_bass)
            name = f"{synth.prefix}-{args.seed}-{n:03d}-{desc['mode']}.flac"
            synth.render(notes, bpm, programs, audio / name, Path(tmp))
            tracks.append({"file": name, **desc})
    (args.out / "tracks.json").write_text(json.dumps({"soundfont": synth.samples, "seed": args.seed,
                                                      "seconds": SECONDS, "tracks": tracks}, indent=1))
    print(f"wrote {len(tracks)} tracks to {audio}")
    if args.append_to is not None:
        from twolevel.corpus import Track, build_corpus

        build_corpus([Track((audio / t["file"]).resolve(), synth.package) for t in tracks], args.append_to, 3)
        index_path = args.append_to / "index.json"
        index = json.loads(index_path.read_text())
        index.setdefault("targets_of", {})[synth.package] = taught
        index_path.write_text(json.dumps(index, indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
