"""Data set loaders on small fixtures written in the published formats (BOM, CRLF, ';' metadata)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twolevel.data import DataError, load_midlevel_annotations, load_soundtracks
from twolevel.errors import TwolevelError
from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES

HEADER = "number,valence,energy,tension,anger,fear,happy,sad,tender,TARGET"
ROWS = [
    "001,4.83,6.83,3.17,1.00,1.00,7.33,1.00,1.00,HAPPY",
    "002,4.83,6.17,3.83,1.00,1.00,7.17,1.17,1.83,HAPPY",
    "049,5.17,2.00,2.33,1.00,1.00,1.50,5.33,4.67,SAD",
]


def write_soundtracks(root: Path, rows=ROWS, header=HEADER, audio=True, bom=True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = "\r\n".join([header, *rows]) + "\r\n"
    (root / "mean_ratings_set1.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    if audio:
        (root / "audio").mkdir(exist_ok=True)
        for r in rows:
            number = r.split(",")[0]
            if number.isdigit():
                (root / "audio" / f"{int(number):03d}.mp3").write_bytes(b"ID3")
    return root


def test_soundtracks_published_format(tmp_path):
    ds = load_soundtracks(write_soundtracks(tmp_path / "st"))
    assert ds.ids == ["001", "002", "049"]
    assert ds.ratings.shape == (3, 8)
    assert ds.ratings[0, EMOTION_NAMES.index("happy")] == pytest.approx(0.733)
    assert ds.ratings[2, EMOTION_NAMES.index("sad")] == pytest.approx(0.533)
    assert ds.categories == ["HAPPY", "HAPPY", "SAD"]
    assert ds.audio_paths[2].name == "049.mp3"
    sub = ds.subset([2, 0])
    assert sub.ids == ["049", "001"] and np.allclose(sub.ratings[1], ds.ratings[0])


def test_soundtracks_without_bom_and_column_order(tmp_path):
    header = "number,TARGET,tender,sad,happy,fear,anger,tension,energy,valence"
    rows = ["7,SAD,1,2,3,4,5,6,7,8"]
    ds = load_soundtracks(write_soundtracks(tmp_path / "st", rows, header, bom=False))
    assert ds.ids == ["007"]
    assert ds.ratings[0].tolist() == pytest.approx([0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])


@pytest.mark.parametrize("rows, header, match", [
    (["001,4,5,6,x,1,1,1,1,HAPPY"], HEADER, "anger = 'x' is not a number"),
    (["001,4,5,6,10,1,1,1,1,HAPPY"], HEADER, "outside 1..9"),
    (["001,4,5,6,1,1,1,1"], HEADER, "fields, expected 10"),
    (["abc,4,5,6,1,1,1,1,1,HAPPY"], HEADER, "not a number"),
    (ROWS[:1] * 2, HEADER, "already listed on line 2"),
    (ROWS, HEADER.replace("tender", "calm"), "missing emotion column"),
    (ROWS, HEADER.replace("number", "id"), "no 'number' column"),
    ([], HEADER, "no rows"),
])
def test_soundtracks_bad_rows_are_named(tmp_path, rows, header, match):
    root = write_soundtracks(tmp_path / "st", rows, header)
    with pytest.raises(DataError, match=match) as info:
        load_soundtracks(root)
    assert isinstance(info.value, TwolevelError) and "mean_ratings_set1.csv" in str(info.value)


def test_soundtracks_missing_file_and_audio(tmp_path):
    with pytest.raises(DataError, match="no such data set folder"):
        load_soundtracks(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="mean_ratings_set1.csv: no such file"):
        load_soundtracks(tmp_path / "empty")
    root = write_soundtracks(tmp_path / "st")
    (root / "audio" / "002.mp3").unlink()
    with pytest.raises(DataError, match="no audio for excerpt.s. 002") as info:
        load_soundtracks(root)
    assert info.value.code == "missing_audio"
    assert len(load_soundtracks(root, require_audio=False)) == 3


def test_real_soundtracks_set(soundtracks_dir):
    ds = load_soundtracks(soundtracks_dir)
    assert len(ds) == 300
    assert not any(int(i) % 6 == 0 for i in ds.ids)
    assert 0.1 - 1e-9 <= ds.ratings.min() and ds.ratings.max() <= 0.9 + 1e-9


# --- mid-level annotations ------------------------------------------------------------------------

ANN_HEADER = "song_id,melody,articulation,rhythm_complexity,rhythm_stability,dissonance,tonal_stability,minorness"


def write_midlevel(root: Path, header=ANN_HEADER, rows=None, metadata=True, audio=True, meta_sep=";") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = rows or ["1,7,3,4,5,2,8,1", "2,2,9,6,3,7,2,9", "3,5,5,5,5,5,5,5"]
    (root / "annotations.csv").write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode())
    if metadata:
        meta = [meta_sep.join(["song id", "Source", "ID at file source", "Artist"]),
                meta_sep.join(["1", "allmusic", "A123", "someone"]),
                meta_sep.join(["2", "soundtracks", "031", "Eerola"]),
                meta_sep.join(["3", "jamendo", "77", "other"])]
        (root / "metadata.csv").write_bytes(("\r\n".join(meta) + "\r\n").encode())
    if audio:
        (root / "audio").mkdir(exist_ok=True)
        for r in rows:
            (root / "audio" / f"{r.split(',')[0]}.mp3").write_bytes(b"ID3")
    return root / "annotations.csv"


def test_midlevel_published_format_with_explicit_mapping(tmp_path):
    ds = load_midlevel_annotations(write_midlevel(tmp_path / "ml"))
    assert ds.ids == ["1", "2", "3"]
    assert ds.column_map["melody"] == "melodiousness"
    row = dict(zip(MIDLEVEL_NAMES, ds.values[0]))
    assert row == pytest.approx({"melodiousness": 0.7, "articulation": 0.3, "rhythm_complexity": 0.4,
                                 "rhythm_stability": 0.5, "dissonance": 0.2, "tonal_stability": 0.8,
                                 "minorness": 0.1})
    assert ds.soundtracks_ids == {"2": "031"}
    assert ds.by_soundtracks_id() == {"031": 1}


def test_midlevel_separate_audio_folder(tmp_path):
    ann = write_midlevel(tmp_path / "ml", audio=False)
    audio = tmp_path / "mp3s"
    audio.mkdir()
    for s in "123":
        (audio / f"{s}.mp3").write_bytes(b"ID3")
    ds = load_midlevel_annotations(ann, audio)
    assert ds.audio_paths[0] == audio / "1.mp3"


@pytest.mark.parametrize("header, match", [
    (ANN_HEADER.replace("melody", "tunefulness"), "unknown column 'tunefulness'"),
    (ANN_HEADER.replace(",minorness", ""), "missing mid-level column.s. minorness"),
    (ANN_HEADER.replace("song_id", "id"), "no 'song_id' column"),
    (ANN_HEADER.replace("articulation", "melodiousness"), "two columns map to melodiousness"),
])
def test_midlevel_bad_columns(tmp_path, header, match):
    rows = [",".join(["1"] + ["5"] * (header.count(",")))]
    ann = write_midlevel(tmp_path / "ml", header=header, rows=rows)
    with pytest.raises(DataError, match=match):
        load_midlevel_annotations(ann)


def test_midlevel_bad_rows_and_files(tmp_path):
    with pytest.raises(DataError, match="annotations.csv: no such file"):
        load_midlevel_annotations(tmp_path / "annotations.csv")
    ann = write_midlevel(tmp_path / "a", rows=["1,7,3,4,5,2,8,11"])
    with pytest.raises(DataError, match="line 2: minorness = 11 is outside 1..10"):
        load_midlevel_annotations(ann)
    ann = write_midlevel(tmp_path / "b")
    (ann.parent / "audio" / "3.mp3").unlink()
    with pytest.raises(DataError, match="no audio for song_id.s. 3"):
        load_midlevel_annotations(ann)
    ann = write_midlevel(tmp_path / "c", meta_sep=",")
    with pytest.raises(DataError, match="is it ';'-separated"):
        load_midlevel_annotations(ann)
