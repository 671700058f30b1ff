"""An unlabelled audio corpus for the mid-level task: 10 s windows with descriptor targets.

The descriptor targets (:mod:`twolevel.targets`) need no human labels, so they can be computed
on any music. :func:`build_corpus` cuts decoded tracks into 10 s windows, computes each window's
log spectrogram with the model's own front end and its 7 raw descriptors, and stores them in one
folder (``windows.npz`` + ``index.json``), computed once and reused. :func:`corpus_training_set`
turns that folder into mid-level-only :class:`~twolevel.training.TrainingSet` items (emotions NaN)
for pre-training or co-training. Where the audio comes from (freely licensed Debian packages) is
the job of ``scripts/fetch_debian_audio.py``; nothing here downloads.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .labels import EMOTION_NAMES, MIDLEVEL_NAMES
from .signal import N_BANDS, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SAMPLES

#: Audio file suffixes the corpus reads (libsndfile decodes all of them).
AUDIO_SUFFIXES = (".ogg", ".oga", ".opus", ".flac", ".wav", ".mp3")
#: Tracks shorter than this are sound effects, not music, in seconds.
MIN_TRACK_SECONDS = 20.0
#: Windows whose RMS is below this (about -45 dBFS) are silence or a fade.
MIN_WINDOW_RMS = 0.005
#: Part of the corpus cache: bump when windows, spectrograms or descriptors change.
CORPUS_VERSION = 1


@dataclass(frozen=True)
class Track:
    """One audio file of the corpus and the package (licence unit) it came from."""

    path: Path
    package: str


def track_windows(samples: np.ndarray, max_windows: int, hop_seconds: float = 10.0) -> list[int]:
    """Start samples of up to ``max_windows`` 10 s windows spread evenly over a track.

    Windows start every ``hop_seconds`` (non-overlapping at 10 s); when there are more than
    ``max_windows`` of them, an evenly spaced subset is kept, so a long track contributes its
    beginning, middle and end rather than only its first minutes. Silent windows are dropped.
    """
    hop = int(hop_seconds * SAMPLE_RATE)
    starts = list(range(0, max(0, len(samples) - WINDOW_SAMPLES) + 1, hop))
    starts = [s for s in starts if float(np.sqrt(np.mean(samples[s:s + WINDOW_SAMPLES] ** 2))) >= MIN_WINDOW_RMS]
    if len(starts) > max_windows:
        pick = np.linspace(0, len(starts) - 1, max_windows).round().astype(int)
        starts = [starts[i] for i in pick]
    return starts


def build_corpus(tracks: Sequence[Track], out_dir: Path, max_windows_per_track: int = 12,
                 progress: bool = False, log=print) -> dict:
    """Cut ``tracks`` into 10 s windows; store spectrograms and raw descriptors in ``out_dir``.

    Per window: the un-normalised log spectrogram ``(313, 149)`` (float16) and the 7 raw
    descriptors. Tracks already in ``out_dir/index.json`` are not computed again (the work is
    resumable: the folder is rewritten every 200 windows). Returns the index.
    """
    import torch

    from .audio import AudioError, load_audio
    from .frontend import Frontend
    from .targets import DESCRIPTOR_VERSION, raw_descriptors

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.json"
    index = {"version": CORPUS_VERSION, "descriptor_version": DESCRIPTOR_VERSION, "windows": [], "skipped": {}}
    specs: list[np.ndarray] = []
    raws: list[np.ndarray] = []
    if index_path.is_file() and (out_dir / "windows.npz").is_file():
        old = json.loads(index_path.read_text())
        if old.get("version") == CORPUS_VERSION and old.get("descriptor_version") == DESCRIPTOR_VERSION:
            index = old
            with np.load(out_dir / "windows.npz") as z:
                specs, raws = list(z["specs"]), list(z["raw"])
    done = {w["file"] for w in index["windows"]} | set(index["skipped"])
    frontend = Frontend().eval()
    listings = _RenderListings()
    todo = [t for t in tracks if str(t.path) not in done]
    it = todo
    if progress:
        from .progress import each

        it = each(todo, "corpus", unit="track", leave=True)
    written = len(specs)
    for t in it:
        try:
            audio = load_audio(t.path, max_seconds=3600.0)
        except AudioError as err:
            index["skipped"][str(t.path)] = str(err)
            continue
        if audio.duration < MIN_TRACK_SECONDS:
            index["skipped"][str(t.path)] = f"shorter than {MIN_TRACK_SECONDS:g} s"
            continue
        y = audio.samples
        for start in track_windows(y, max_windows_per_track):
            seg = y[start:start + WINDOW_SAMPLES]
            with torch.inference_mode():
                spec = frontend.log_spectrogram(torch.from_numpy(np.ascontiguousarray(seg))[None])[0].numpy()
            specs.append(spec[:WINDOW_FRAMES].astype(np.float16))
            raws.append(raw_descriptors(seg))
            index["windows"].append({"package": t.package, "file": str(t.path),
                                     "start_s": round(start / SAMPLE_RATE, 3), **listings.twin_fields(t.path)})
        if len(specs) - written >= 200:  # resumable without rewriting the whole folder per track
            _write(out_dir, index, specs, raws)
            written = len(specs)
    _write(out_dir, index, specs, raws)
    if log is not None:
        log(f"corpus {out_dir}: {len(index['windows'])} windows from "
            f"{len({w['file'] for w in index['windows']})} tracks ({len(index['skipped'])} files skipped)")
    return index


def _write(out_dir: Path, index: dict, specs: list, raws: list) -> None:
    tmp = out_dir / "windows.tmp.npz"
    np.savez(tmp, specs=np.stack(specs) if specs else np.zeros((0, WINDOW_FRAMES, N_BANDS), np.float16),
             raw=np.stack(raws) if raws else np.zeros((0, len(MIDLEVEL_NAMES))))
    tmp.replace(out_dir / "windows.npz")
    (out_dir / "index.json").write_text(json.dumps(index, indent=0))


def load_corpus(corpus_dir: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """``(index, specs (n, 313, 149) float16, raw descriptors (n, 7))`` of a built corpus."""
    from .errors import OptionError

    corpus_dir = Path(corpus_dir)
    if not (corpus_dir / "windows.npz").is_file():
        raise OptionError(f"{corpus_dir}: no windows.npz; build it with scripts/fetch_debian_audio.py")
    index = json.loads((corpus_dir / "index.json").read_text())
    with np.load(corpus_dir / "windows.npz") as z:
        return index, z["specs"], z["raw"]


def corpus_descriptors(corpus_dir: Path, index: dict, raw_v1: np.ndarray, descriptors: str = "v1",
                       progress: bool = False) -> np.ndarray:
    """Raw descriptors ``(n_windows, 7)`` of the set ``descriptors`` (:mod:`twolevel.descriptor_sets`).

    v1 is what :func:`build_corpus` stored (``raw_v1``). Another set takes its shared columns from
    ``raw_v1`` and computes the rest from each window's audio (each track decoded once), cached in
    ``corpus_dir/raw-<set key>.npz`` with the window each row belongs to: rows of windows the index
    still lists first are reused (:func:`build_corpus` only appends), the rest are computed.
    """
    from .descriptor_sets import TONALITY_COLUMNS, check_descriptor_set, descriptor_cache_key, raw_descriptors

    check_descriptor_set(descriptors)
    if not TONALITY_COLUMNS[descriptors]:
        return raw_v1
    from .audio import load_audio
    from .errors import AudioError, OptionError

    windows = index["windows"]
    keys = [f"{w['file']}@{w['start_s']}" for w in windows]
    cache = Path(corpus_dir) / f"raw-{descriptor_cache_key(descriptors)}.npz"
    done = np.zeros((0, len(MIDLEVEL_NAMES)))
    if cache.is_file():
        with np.load(cache) as z:
            if list(z["windows"]) == keys[:len(z["windows"])]:  # else the corpus was rebuilt: start again
                done = z["raw"]
    rows = list(done)
    todo = range(len(done), len(windows))
    by_file: dict[str, list[int]] = {}
    for i in todo:
        by_file.setdefault(windows[i]["file"], []).append(i)
    computed: dict[int, np.ndarray] = {}
    files = list(by_file.items())
    if progress and files:
        from .progress import each

        files = each(files, f"corpus descriptors {descriptors}", unit="track", leave=True)
    for file, ids in files:
        try:
            samples = load_audio(file, max_seconds=3600.0).samples
        except (AudioError, OSError) as err:  # the corpus keeps spectrograms, not audio: the source must still be there
            raise OptionError(f"descriptor set {descriptors} of corpus {corpus_dir} needs its source audio, which "
                              f"cannot be read: {err} (fetch it again with scripts/corpus_recipe.sh)") from err
        for i in ids:
            start = int(round(windows[i]["start_s"] * SAMPLE_RATE))
            computed[i] = raw_descriptors(samples[start:start + WINDOW_SAMPLES], descriptors=descriptors,
                                          v1=raw_v1[i])
    rows += [computed[i] for i in todo]
    out = np.array(rows, dtype=np.float64).reshape(len(windows), len(MIDLEVEL_NAMES))
    if todo:
        tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")  # two trainings may fill it at once
        np.savez(tmp, raw=out, windows=np.array(keys))
        tmp.replace(cache)
    return out


def corpus_training_set(corpus_dir: Path, packages: Iterable[str] | None = None, descriptors: str = "v1",
                        progress: bool = False):
    """Mid-level-only training items of a corpus: targets rank-mapped over the corpus itself.

    Rank-mapping over the corpus (not over Soundtracks) keeps every target spread 0..1 within
    the data it is learned from, as the Soundtracks targets are within theirs. ``descriptors``: the
    descriptor set of the targets (:func:`corpus_descriptors`), which should be the set the rated
    clips are trained on.

    A corpus may restrict what a package's windows teach: ``index["targets_of"]`` maps a package to
    the mid-levels its windows keep (e.g. generated music, ``{"generated-tonal": ["minorness"]}``,
    ``scripts/render_tonal_corpus.py``). Their other targets are NaN (the loss skips them), and each
    column is rank-mapped over the windows that keep it, so such windows move no other target.
    """
    from .training import CORPUS_CATEGORY, TrainingSet

    index, specs, raw = load_corpus(corpus_dir)
    raw = corpus_descriptors(corpus_dir, index, raw, descriptors, progress)
    keep = [i for i, w in enumerate(index["windows"]) if packages is None or w["package"] in set(packages)]
    ok = [i for i in keep if np.isfinite(raw[i]).all()]
    mid = _rank_mapped_targets(raw[ok], [index["windows"][i]["package"] for i in ok], index.get("targets_of", {}))
    ids = [f"corpus:{index['windows'][i]['package']}:{Path(index['windows'][i]['file']).name}@"
           f"{index['windows'][i]['start_s']:g}" for i in ok]
    return TrainingSet(ids, [np.asarray(specs[i], dtype=np.float32) for i in ok],
                       np.full((len(ok), len(EMOTION_NAMES)), np.nan), mid, [CORPUS_CATEGORY] * len(ok),
                       mode_twin_ids([index["windows"][i] for i in ok], ids))


#: The listing scripts/render_tonal_corpus.py writes beside its audio folder: each rendered track's
#: key and mode, and for a twin (``--twins``) the file it is the twin of.
RENDER_LISTING = "tracks.json"


#: What a window of a rendered track keeps of its listing entry in the corpus index, so that the
#: corpus pairs its twins without the listing (a corpus carried to another machine without its audio).
TWIN_FIELDS = ("mode", "twin_of")


def _twin_fields(entry: dict) -> dict:
    """The :data:`TWIN_FIELDS` a listing or index entry has."""
    return {k: entry[k] for k in TWIN_FIELDS if k in entry}


class _RenderListings:
    """Render listings (:data:`RENDER_LISTING`), each read once: an audio file's entry, ``{}`` if none."""

    def __init__(self) -> None:
        self._by_folder: dict[Path, dict[str, dict]] = {}

    def twin_fields(self, audio_path: Path) -> dict:
        """The :data:`TWIN_FIELDS` that ``audio_path``'s listing entry has."""
        folder = Path(audio_path).parent
        if folder not in self._by_folder:
            listing = folder.parent / RENDER_LISTING
            tracks = json.loads(listing.read_text()).get("tracks", []) if listing.is_file() else []
            self._by_folder[folder] = {t["file"]: t for t in tracks if "file" in t}
        return _twin_fields(self._by_folder[folder].get(Path(audio_path).name, {}))


def mode_twin_ids(windows: Sequence[dict], ids: Sequence[str]) -> dict[str, str]:
    """Minor window id -> the id of its major twin's window at the same start.

    ``windows`` are corpus index entries (``file``, ``start_s``) and ``ids`` their item ids. A window's
    ``mode`` and ``twin_of`` come from its index entry (:func:`build_corpus` records them, and
    :func:`record_mode_twins` for a corpus built before), else from the render listing
    (:data:`RENDER_LISTING`, one folder above the audio's folder): a track with ``twin_of`` and its
    twin, one ``"minor"`` and one ``"major"``. Windows of music without either, or of a twin whose
    other window was dropped, give no entry.
    """
    listings = _RenderListings()

    def twin_fields(w: dict) -> dict:
        return _twin_fields(w) if "mode" in w else listings.twin_fields(Path(w["file"]))

    where = {(str(Path(w["file"])), float(w["start_s"])): i for i, w in enumerate(windows)}
    twins = {}
    for w, item_id in zip(windows, ids):
        track = twin_fields(w)
        if "twin_of" not in track:
            continue
        other = where.get((str(Path(w["file"]).parent / track["twin_of"]), float(w["start_s"])))
        if other is None or {track.get("mode"), twin_fields(windows[other]).get("mode")} != {"minor", "major"}:
            continue
        minor, major = (item_id, ids[other]) if track["mode"] == "minor" else (ids[other], item_id)
        twins[minor] = major
    return twins


def record_mode_twins(corpus_dir: Path) -> int:
    """Copy the render listing's ``mode`` and ``twin_of`` into the index entries of a corpus built
    before :func:`build_corpus` recorded them; returns how many twin pairs of windows it holds. Needs the
    listings, once; afterwards the corpus folder alone pairs its twins."""
    corpus_dir = Path(corpus_dir)
    index = json.loads((corpus_dir / "index.json").read_text())
    listings = _RenderListings()
    for w in index["windows"]:
        if "mode" not in w:
            w.update(listings.twin_fields(Path(w["file"])))
    (corpus_dir / "index.json").write_text(json.dumps(index, indent=0))
    return sum("twin_of" in w for w in index["windows"])


def _rank_mapped_targets(raw: np.ndarray, packages: list[str], targets_of: dict[str, list[str]]) -> np.ndarray:
    """``(n, 7)`` targets: each column rank-mapped over the windows whose package keeps it (all
    packages keep every column unless ``targets_of`` lists theirs); NaN where a package does not."""
    from .errors import OptionError
    from .targets import rank_map

    unknown = {name for names in targets_of.values() for name in names} - set(MIDLEVEL_NAMES)
    if unknown:
        raise OptionError(f"corpus targets_of names unknown mid-levels {sorted(unknown)}; known: {MIDLEVEL_NAMES}")
    mid = np.full((len(raw), len(MIDLEVEL_NAMES)), np.nan)
    for col, name in enumerate(MIDLEVEL_NAMES):
        rows = [i for i, pkg in enumerate(packages) if pkg not in targets_of or name in targets_of[pkg]]
        if rows:
            mid[rows, col] = rank_map(raw[rows, col:col + 1])[:, 0]
    return mid
