"""Data set loaders: Soundtracks Set 1 (emotion ratings) and the mid-level annotations.

Both read the files exactly as their authors published them and raise :class:`DataError`
(a :class:`~twolevel.errors.TwolevelError`) with the file, line and problem for anything that
does not fit: a missing file, a missing or unknown column, a bad row, an id without audio.

Soundtracks Set 1 (Eerola & Vuoskoski 2011), folder layout::

    mean_ratings_set1.csv   UTF-8 with byte-order mark, CRLF line ends, columns
                            number, valence, energy, tension, anger, fear, happy, sad, tender, TARGET
    audio/NNN.mp3           one excerpt per row, NNN = the 3-digit number

Ratings are on a 1..9 scale; the model learns and predicts them divided by 10 (paper-facts.md).

Mid-level annotations (Aljanaki & Soleymani 2018), folder layout (docs/midlevel-targets.md)::

    annotations.csv         song_id + one column per feature, 1..10 scale (published names,
                            e.g. ``melody`` for melodiousness; see MIDLEVEL_COLUMN_ALIASES)
    metadata.csv            ';'-separated: song id; Source; ID at file source; Artist; ...
    audio/<song_id>.mp3

Annotations are scaled by 1/10 like the emotion ratings, so both layers use the same 0..1 scale.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import TwolevelError
from .labels import EMOTION_NAMES, MIDLEVEL_NAMES

RATINGS_FILE = "mean_ratings_set1.csv"
AUDIO_DIR = "audio"
#: Soundtracks ratings scale (1 = minimal, 9 = maximal); targets are rating / RATING_DIVISOR.
RATING_MIN, RATING_MAX, RATING_DIVISOR = 1.0, 9.0, 10.0
#: Mid-level annotation scale and divisor.
MIDLEVEL_MIN, MIDLEVEL_MAX, MIDLEVEL_DIVISOR = 1.0, 10.0, 10.0

#: Published column name (lower case, spaces/dashes as underscores) -> our mid-level name.
#: Every one of our names maps to itself; anything else is refused as unknown.
MIDLEVEL_COLUMN_ALIASES: dict[str, str] = {
    "melody": "melodiousness",
    "melodiousness": "melodiousness",
    "articulation": "articulation",
    "rhythm_stability": "rhythm_stability",
    "rhythmic_stability": "rhythm_stability",
    "rhythm_complexity": "rhythm_complexity",
    "rhythmic_complexity": "rhythm_complexity",
    "dissonance": "dissonance",
    "tonal_stability": "tonal_stability",
    "minorness": "minorness",
}
ANNOTATIONS_FILE = "annotations.csv"
METADATA_FILE = "metadata.csv"


class DataError(TwolevelError):
    """A data set file that is missing or does not have the published format.

    Codes: ``not_found``, ``bad_header``, ``bad_row``, ``missing_audio``, ``empty``.
    """

    code = "bad_dataset"


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: no such file", code="not_found")
    try:
        # utf-8-sig strips the byte-order mark; newline="" keeps CRLF for the csv module.
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})", code="bad_row") from None


def _rows(path: Path, delimiter: str = ",") -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line number, cells)`` of each non-blank row."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip() for c in cells]
        else:
            rows.append((reader.line_num, [c.strip() for c in cells]))
    if header is None:
        raise DataError(f"{path}: empty file (no header)", code="empty")
    return header, rows


def _number(text: str, path: Path, line: int, column: str, lo: float, hi: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}, line {line}: {column} = {text!r} is not a number", code="bad_row") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise DataError(f"{path}, line {line}: {column} = {text} is outside {lo:g}..{hi:g}", code="bad_row")
    return value


@dataclass(frozen=True)
class SoundtracksDataset:
    """Soundtracks excerpts with their emotion ratings.

    Attributes:
        root: the data set folder.
        ids: 3-digit excerpt numbers as in the CSV (``"001"``), in file order.
        ratings: float64 ``(n, 8)`` in :data:`EMOTION_NAMES` order, scaled to 0..1 (rating / 10).
        categories: the TARGET column (the emotion each excerpt was chosen for), ``""`` if absent.
        audio_paths: ``audio/NNN.mp3`` of each excerpt.
    """

    root: Path
    ids: list[str]
    ratings: np.ndarray
    categories: list[str]
    audio_paths: list[Path]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index) -> "SoundtracksDataset":
        index = list(np.asarray(index, dtype=int))
        return SoundtracksDataset(self.root, [self.ids[i] for i in index], self.ratings[index],
                                  [self.categories[i] for i in index], [self.audio_paths[i] for i in index])


def load_soundtracks(root: str | Path, require_audio: bool = True) -> SoundtracksDataset:
    """Read ``mean_ratings_set1.csv`` and locate ``audio/NNN.mp3`` for each row.

    Any subset of the 360 excerpts is fine. Raises :class:`DataError` for a missing ratings
    file, a missing emotion column, a malformed id, a rating that is not a number in 1..9, a
    duplicated id, and (``require_audio``) ids whose audio file is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such data set folder", code="not_found")
    path = root / RATINGS_FILE
    header, rows = _rows(path)
    lower = [h.lower() for h in header]
    if "number" not in lower:
        raise DataError(f"{path}: no 'number' column in the header ({', '.join(header)})", code="bad_header")
    missing = [e for e in EMOTION_NAMES if e not in lower]
    if missing:
        raise DataError(f"{path}: missing emotion column(s) {', '.join(missing)} in the header", code="bad_header")
    col = {name: lower.index(name) for name in ("number", *EMOTION_NAMES)}
    target_col = lower.index("target") if "target" in lower else None
    ids: list[str] = []
    ratings: list[list[float]] = []
    categories: list[str] = []
    seen: dict[str, int] = {}
    for line, cells in rows:
        if len(cells) < len(header):
            raise DataError(f"{path}, line {line}: {len(cells)} fields, expected {len(header)}", code="bad_row")
        raw = cells[col["number"]]
        if not raw.isdigit():
            raise DataError(f"{path}, line {line}: excerpt number {raw!r} is not a number", code="bad_row")
        ident = f"{int(raw):03d}"
        if ident in seen:
            raise DataError(f"{path}, line {line}: excerpt {ident} already listed on line {seen[ident]}", code="bad_row")
        seen[ident] = line
        ratings.append([_number(cells[col[e]], path, line, e, RATING_MIN, RATING_MAX) for e in EMOTION_NAMES])
        ids.append(ident)
        categories.append(cells[target_col] if target_col is not None else "")
    if not ids:
        raise DataError(f"{path}: no rows after the header", code="empty")
    audio_paths = [root / AUDIO_DIR / f"{i}.mp3" for i in ids]
    if require_audio:
        absent = [i for i, p in zip(ids, audio_paths) if not p.is_file()]
        if absent:
            shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
            raise DataError(f"{root / AUDIO_DIR}: no audio for excerpt(s) {shown} (expected NNN.mp3)",
                            code="missing_audio")
    return SoundtracksDataset(root, ids, np.asarray(ratings, dtype=np.float64) / RATING_DIVISOR, categories, audio_paths)


@dataclass(frozen=True)
class MidlevelDataset:
    """Human mid-level annotations.

    Attributes:
        root: folder holding ``annotations.csv``.
        ids: ``song_id`` of each annotated song (as text), in file order.
        values: float64 ``(n, 7)`` in :data:`MIDLEVEL_NAMES` order, scaled to 0..1 (value / 10).
        audio_paths: ``<audio_dir>/<song_id>.mp3``.
        column_map: published column name -> our feature name, as read.
        soundtracks_ids: ``song_id`` -> 3-digit Soundtracks number, for rows of metadata.csv
            whose Source is soundtracks (empty when there is no metadata.csv).
    """

    root: Path
    ids: list[str]
    values: np.ndarray
    audio_paths: list[Path]
    column_map: dict[str, str]
    soundtracks_ids: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def by_soundtracks_id(self) -> dict[str, int]:
        """3-digit Soundtracks number -> row index, for annotated Soundtracks excerpts."""
        index = {s: i for i, s in enumerate(self.ids)}
        return {st: index[s] for s, st in self.soundtracks_ids.items() if s in index}


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def map_midlevel_columns(header: list[str], path: Path | str = ANNOTATIONS_FILE) -> tuple[int, dict[int, str]]:
    """Index of ``song_id`` and ``{column index: our feature name}``; DataError on unknown/missing."""
    keys = [_key(h) for h in header]
    if "song_id" not in keys:
        raise DataError(f"{path}: no 'song_id' column in the header ({', '.join(header)})", code="bad_header")
    mapping: dict[int, str] = {}
    for i, k in enumerate(keys):
        if k == "song_id":
            continue
        if k not in MIDLEVEL_COLUMN_ALIASES:
            raise DataError(
                f"{path}: unknown column {header[i]!r}; known mid-level columns: "
                f"{', '.join(sorted(MIDLEVEL_COLUMN_ALIASES))}", code="bad_header")
        name = MIDLEVEL_COLUMN_ALIASES[k]
        if name in mapping.values():
            raise DataError(f"{path}: two columns map to {name} (second: {header[i]!r})", code="bad_header")
        mapping[i] = name
    missing = [m for m in MIDLEVEL_NAMES if m not in mapping.values()]
    if missing:
        raise DataError(f"{path}: missing mid-level column(s) {', '.join(missing)}", code="bad_header")
    return keys.index("song_id"), mapping


def _read_metadata(path: Path) -> dict[str, str]:
    """``song id`` -> 3-digit Soundtracks number for rows whose Source is soundtracks."""
    header, rows = _rows(path, delimiter=";")
    keys = [_key(h) for h in header]
    need = {"song_id": "song id", "source": "Source", "id_at_file_source": "ID at file source"}
    absent = [shown for k, shown in need.items() if k not in keys]
    if absent:
        raise DataError(f"{path}: missing column(s) {', '.join(absent)} (is it ';'-separated?)", code="bad_header")
    c_song, c_src, c_ext = (keys.index(k) for k in need)
    out: dict[str, str] = {}
    for line, cells in rows:
        if len(cells) <= max(c_song, c_src, c_ext):
            raise DataError(f"{path}, line {line}: {len(cells)} fields, expected {len(header)}", code="bad_row")
        if cells[c_src].strip().lower() != "soundtracks":
            continue
        ext = cells[c_ext].strip()
        digits = "".join(ch for ch in Path(ext).stem if ch.isdigit())
        if not digits:
            raise DataError(f"{path}, line {line}: soundtracks ID at file source {ext!r} has no number", code="bad_row")
        out[cells[c_song].strip()] = f"{int(digits):03d}"
    return out


def load_midlevel_annotations(annotations: str | Path, audio_dir: str | Path | None = None,
                              require_audio: bool = True) -> MidlevelDataset:
    """Read the mid-level data set's ``annotations.csv`` (and ``metadata.csv`` beside it if present).

    Args:
        annotations: path of ``annotations.csv``.
        audio_dir: folder of ``<song_id>.mp3`` files (default: ``audio/`` beside the CSV).
        require_audio: raise for annotated songs without an audio file.
    """
    path = Path(annotations)
    header, rows = _rows(path)
    c_id, mapping = map_midlevel_columns(header, path)
    order = [MIDLEVEL_NAMES.index(n) for n in mapping.values()]
    ids: list[str] = []
    values: list[list[float]] = []
    seen: set[str] = set()
    for line, cells in rows:
        if len(cells) < len(header):
            raise DataError(f"{path}, line {line}: {len(cells)} fields, expected {len(header)}", code="bad_row")
        song = cells[c_id]
        if not song:
            raise DataError(f"{path}, line {line}: empty song_id", code="bad_row")
        if song in seen:
            raise DataError(f"{path}, line {line}: song_id {song} is listed twice", code="bad_row")
        seen.add(song)
        row = [0.0] * len(MIDLEVEL_NAMES)
        for (ci, name), oi in zip(mapping.items(), order):
            row[oi] = _number(cells[ci], path, line, header[ci], MIDLEVEL_MIN, MIDLEVEL_MAX) / MIDLEVEL_DIVISOR
        ids.append(song)
        values.append(row)
    if not ids:
        raise DataError(f"{path}: no rows after the header", code="empty")
    audio = Path(audio_dir) if audio_dir is not None else path.parent / AUDIO_DIR
    if require_audio and not audio.is_dir():
        raise DataError(f"{audio}: no such audio folder for the mid-level data set", code="not_found")
    paths = [audio / f"{s}.mp3" for s in ids]
    if require_audio:
        absent = [s for s, p in zip(ids, paths) if not p.is_file()]
        if absent:
            shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
            raise DataError(f"{audio}: no audio for song_id(s) {shown}", code="missing_audio")
    meta = path.parent / METADATA_FILE
    links = _read_metadata(meta) if meta.is_file() else {}
    colmap = {header[ci]: name for ci, name in mapping.items()}
    return MidlevelDataset(path.parent, ids, np.asarray(values, dtype=np.float64), paths, colmap, links)
