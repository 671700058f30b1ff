"""The mid-level pre-training corpus, pre-training, the trunk hand-over and the augmentations."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from twolevel.corpus import Track, build_corpus, corpus_training_set, load_corpus, track_windows
from twolevel.labels import MIDLEVEL_NAMES
from twolevel.signal import N_BANDS, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SAMPLES

ROOT = Path(__file__).resolve().parents[1]


def _tone_track(path: Path, seconds: float, silent_from: float | None = None) -> Path:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    y = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
    y += 0.2 * np.sin(2 * np.pi * 330 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    y += np.random.default_rng(int(seconds)).normal(0, 1, len(t)) * 0.01 * t  # noisier as it goes on
    if silent_from is not None:
        y[int(silent_from * SAMPLE_RATE):] = 0
    sf.write(path, y.astype(np.float32), SAMPLE_RATE)
    return path


def test_track_windows_spread_and_skip_silence():
    y = np.full(95 * SAMPLE_RATE, 0.1, dtype=np.float32)
    starts = track_windows(y, max_windows=3)
    assert len(starts) == 3
    assert starts[0] == 0 and starts[-1] == 80 * SAMPLE_RATE  # beginning and end, not the first 30 s
    y[: 50 * SAMPLE_RATE] = 0
    assert all(s >= 50 * SAMPLE_RATE for s in track_windows(y, max_windows=20))
    assert track_windows(y[: WINDOW_SAMPLES - 1], 5) == []


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    tracks = [Track(_tone_track(d / "a.wav", 31.0), "pkg-a"), Track(_tone_track(d / "b.wav", 25.0), "pkg-b"),
              Track(_tone_track(d / "sfx.wav", 3.0), "pkg-b")]
    index = build_corpus(tracks, d / "out", max_windows_per_track=2, log=None)
    return d / "out", index


def test_build_corpus_cuts_windows_and_records_sources(corpus):
    out, index = corpus
    assert len(index["windows"]) == 4  # 2 + 2; the 3 s effect is skipped
    assert any("shorter than" in why for why in index["skipped"].values())
    idx, specs, raw = load_corpus(out)
    assert specs.shape == (4, WINDOW_FRAMES, N_BANDS) and specs.dtype == np.float16
    assert raw.shape == (4, len(MIDLEVEL_NAMES)) and np.isfinite(raw).all()
    assert {w["package"] for w in idx["windows"]} == {"pkg-a", "pkg-b"}
    # built once: a second call computes nothing new
    again = build_corpus([Track(Path(w["file"]), w["package"]) for w in idx["windows"]], out, 2, log=None)
    assert len(again["windows"]) == 4


def test_corpus_training_set_is_midlevel_only_and_rank_mapped(corpus):
    out, _ = corpus
    ts = corpus_training_set(out)
    assert len(ts) == 4 and np.isnan(ts.emotions).all()
    assert ts.midlevels.min() == 0.0 and ts.midlevels.max() == 1.0
    assert len(corpus_training_set(out, packages=["pkg-a"])) == 2


def test_a_package_can_teach_only_some_midlevels(corpus, tmp_path):
    """``targets_of``: pkg-a's windows keep minorness only; every other column is rank-mapped over
    pkg-b's windows alone, as if pkg-a were not there."""
    import shutil

    from twolevel.errors import OptionError
    from twolevel.targets import rank_map

    out, _ = corpus
    copy = tmp_path / "corpus"
    shutil.copytree(out, copy)
    index = json.loads((copy / "index.json").read_text())
    index["targets_of"] = {"pkg-a": ["minorness"]}
    (copy / "index.json").write_text(json.dumps(index))
    everything, restricted = corpus_training_set(out), corpus_training_set(copy)
    a = [i for i, x in enumerate(restricted.ids) if ":pkg-a:" in x]
    b = [i for i, x in enumerate(restricted.ids) if ":pkg-b:" in x]
    minor = MIDLEVEL_NAMES.index("minorness")
    others = [c for c in range(len(MIDLEVEL_NAMES)) if c != minor]
    assert len(a) == 2 and np.isnan(restricted.midlevels[np.ix_(a, others)]).all()
    np.testing.assert_array_equal(restricted.midlevels[:, minor], everything.midlevels[:, minor])
    _, _, raw = load_corpus(copy)
    np.testing.assert_allclose(restricted.midlevels[np.ix_(b, others)], rank_map(raw[np.ix_(b, others)]))
    index["targets_of"] = {"pkg-a": ["loudness"]}
    (copy / "index.json").write_text(json.dumps(index))
    with pytest.raises(OptionError, match="loudness"):
        corpus_training_set(copy)


def test_mode_twin_ids_pair_the_windows_of_rendered_twins_at_the_same_start(tmp_path):
    """The render listing (tracks.json above the audio folder) says which track is whose twin; a window
    pairs with its twin's window at the same start, minor first; music without a listing pairs nothing."""
    from twolevel.corpus import RENDER_LISTING, mode_twin_ids

    audio = tmp_path / "render" / "audio"
    audio.mkdir(parents=True)
    (tmp_path / "render" / RENDER_LISTING).write_text(json.dumps({"tracks": [
        {"file": "t-000-major.flac", "mode": "major"},
        {"file": "t-001-minor.flac", "mode": "minor", "twin_of": "t-000-major.flac"},
        {"file": "t-002-minor.flac", "mode": "minor"},  # no twin
        {"file": "t-003-minor.flac", "mode": "minor", "twin_of": "t-002-minor.flac"}]}))  # not a mode pair
    windows = [{"file": str(audio / f), "start_s": s} for f, s in [
        ("t-000-major.flac", 0.0), ("t-000-major.flac", 10.0), ("t-001-minor.flac", 10.0),
        ("t-001-minor.flac", 20.0), ("t-002-minor.flac", 0.0), ("t-003-minor.flac", 0.0),
        ("elsewhere.ogg", 0.0)]]
    (tmp_path / "elsewhere.ogg").write_bytes(b"")
    windows[-1]["file"] = str(tmp_path / "elsewhere.ogg")
    ids = [f"w{i}" for i in range(len(windows))]
    assert mode_twin_ids(windows, ids) == {"w2": "w1"}  # minor 001@10 <- major 000@10; 001@20 has no twin window


def test_a_corpus_of_rendered_twins_pairs_them_without_the_render_listing(tmp_path):
    """build_corpus records each window's mode and twin in the index, so a corpus folder carried away
    from its audio and listing still pairs its twins; record_mode_twins does the same for an index
    built before (the listing read once)."""
    from twolevel.corpus import RENDER_LISTING, mode_twin_ids, record_mode_twins

    audio = tmp_path / "render" / "audio"
    audio.mkdir(parents=True)
    listing = tmp_path / "render" / RENDER_LISTING
    listing.write_text(json.dumps({"tracks": [{"file": "p-major.wav", "mode": "major"},
                                              {"file": "p-minor.wav", "mode": "minor", "twin_of": "p-major.wav"}]}))
    tracks = [Track(_tone_track(audio / f"p-{mode}.wav", 25.0), "generated-tonal") for mode in ("major", "minor")]
    out = tmp_path / "corpus"
    index = build_corpus(tracks, out, max_windows_per_track=2, log=None)
    assert [(Path(w["file"]).name, w.get("mode"), w.get("twin_of")) for w in index["windows"]] == [
        ("p-major.wav", "major", None), ("p-major.wav", "major", None),
        ("p-minor.wav", "minor", "p-major.wav"), ("p-minor.wav", "minor", "p-major.wav")]
    listing.rename(tmp_path / "elsewhere.json")
    items = corpus_training_set(out)
    major_0, major_10, minor_0, minor_10 = items.ids  # windows at 0 s and 10 s of each track
    assert items.mode_twins == {minor_0: major_0, minor_10: major_10}

    # an index from before: no fields; the listing back in place once
    old = json.loads((out / "index.json").read_text())
    for w in old["windows"]:
        w.pop("mode")
        w.pop("twin_of", None)
    (out / "index.json").write_text(json.dumps(old))
    ids = [f"w{i}" for i in range(4)]
    assert mode_twin_ids(old["windows"], ids) == {}
    (tmp_path / "elsewhere.json").rename(listing)
    assert record_mode_twins(out) == 2
    listing.unlink()
    assert mode_twin_ids(json.loads((out / "index.json").read_text())["windows"], ids) == {"w2": "w0", "w3": "w1"}


def test_corpus_targets_of_another_descriptor_set_replace_only_its_columns_and_are_cached(corpus, monkeypatch):
    from twolevel import corpus as corpus_module
    from twolevel import descriptor_sets
    from twolevel.corpus import corpus_descriptors
    from twolevel.tonality import minorness_v2

    out, _ = corpus
    idx, _, raw = load_corpus(out)
    assert corpus_descriptors(out, idx, raw, "v1") is raw
    v3 = corpus_descriptors(out, idx, raw, "v3")
    minor = MIDLEVEL_NAMES.index("minorness")
    assert v3.shape == raw.shape
    np.testing.assert_array_equal(np.delete(v3, minor, axis=1), np.delete(raw, minor, axis=1))
    first = idx["windows"][0]
    y, _ = sf.read(first["file"], dtype="float32")
    start = int(round(first["start_s"] * SAMPLE_RATE))
    assert v3[0, minor] == pytest.approx(minorness_v2(y[start:start + WINDOW_SAMPLES]), abs=1e-6)
    # cached: a second call decodes nothing; a corpus that grew computes only its new windows
    monkeypatch.setattr(descriptor_sets.tonality, "tonality_descriptors", lambda *a: pytest.fail("recomputed"))
    np.testing.assert_array_equal(corpus_descriptors(out, idx, raw, "v3"), v3)
    keys = np.array([f"{w['file']}@{w['start_s']}" for w in idx["windows"]])
    np.savez(out / "raw-1-v3.npz", raw=v3[:3], windows=keys[:3])
    monkeypatch.undo()
    calls = []
    real = descriptor_sets.tonality.tonality_descriptors
    monkeypatch.setattr(descriptor_sets.tonality, "tonality_descriptors", lambda *a: calls.append(1) or real(*a))
    np.testing.assert_allclose(corpus_descriptors(out, idx, raw, "v3"), v3)
    assert len(calls) == 1
    # a cache of another corpus (rebuilt with other windows) is not trusted: every row is computed again
    np.savez(out / "raw-1-v3.npz", raw=v3 + 5, windows=keys[::-1])
    calls.clear()
    np.testing.assert_allclose(corpus_descriptors(out, idx, raw, "v3"), v3)
    assert len(calls) == len(keys)
    # the training set's minorness targets follow the set
    from twolevel.targets import rank_map

    ts1, ts3 = corpus_training_set(out), corpus_training_set(out, descriptors="v3")
    np.testing.assert_allclose(ts3.midlevels, rank_map(v3))
    np.testing.assert_array_equal(np.delete(ts1.midlevels, minor, axis=1), np.delete(ts3.midlevels, minor, axis=1))
    with pytest.raises(ValueError, match="descriptors must be one of"):
        corpus_module.corpus_descriptors(out, idx, raw, "v9")


def test_corpus_targets_of_another_set_name_missing_source_audio(tmp_path):
    from twolevel.corpus import corpus_descriptors
    from twolevel.errors import OptionError

    track = _tone_track(tmp_path / "gone.wav", 21.0)
    build_corpus([Track(track, "pkg-a")], tmp_path / "out", 1, log=None)
    idx, _, raw = load_corpus(tmp_path / "out")
    track.unlink()
    with pytest.raises(OptionError, match=r"needs its source audio.*gone\.wav.*corpus_recipe"):
        corpus_descriptors(tmp_path / "out", idx, raw, "v3")
    assert not (tmp_path / "out" / "raw-1-v3.npz").exists()


def test_pretrain_hands_trunk_and_midlevel_head_over_but_not_the_emotion_layer(corpus, tmp_path):
    from twolevel.checkpoint import load_checkpoint
    from twolevel.errors import CheckpointError
    from twolevel.model import A2Mid2EJoint, ModelConfig
    from twolevel.checkpoint import init_from_pretrained
    from twolevel.pretrain import pretrain
    from twolevel.training import TrainConfig

    out, _ = corpus
    path = pretrain(out, TrainConfig(width=0.125, epochs=1, batch_size=2, seed=0), tmp_path / "pre.pt", log=None)
    pre = load_checkpoint(path, device="cpu")
    torch.manual_seed(1)
    fresh = A2Mid2EJoint(ModelConfig(width=0.125), mean=0.3, std=0.2)
    emotion_before = fresh.emotion.weight.detach().clone()
    names = init_from_pretrained(fresh, path)
    assert any(n.startswith("features.") for n in names) and "midlevel.weight" in names
    assert not any(n.startswith(("emotion.", "frontend.")) for n in names)
    assert torch.equal(fresh.midlevel.weight, pre.midlevel.weight)
    assert torch.equal(fresh.features[0].weight, pre.features[0].weight)
    assert torch.equal(fresh.emotion.weight, emotion_before)
    assert float(fresh.frontend.mean) == pytest.approx(0.3)
    with pytest.raises(CheckpointError, match="width"):
        init_from_pretrained(A2Mid2EJoint(ModelConfig(width=0.25)), path)
    # train(..., init_from=...) starts from those weights (lr 0: one epoch leaves them as they start)
    from twolevel.training import train

    model, _ = train(corpus_training_set(out), TrainConfig(width=0.125, epochs=1, batch_size=2, lr=0.0,
                                                           init_from=str(path)))
    assert torch.equal(model.features[0].weight, pre.features[0].weight)
    assert torch.equal(model.midlevel.weight, pre.midlevel.weight)


def test_gain_augmentation_is_the_spectrogram_of_the_louder_audio():
    from twolevel.augment import apply_gain, augment_window, mask_frames
    from twolevel.frontend import Frontend

    fe = Frontend().eval()
    torch.manual_seed(0)
    x = torch.randn(1, SAMPLE_RATE) * 0.1
    with torch.inference_mode():
        s, s2 = fe.log_spectrogram(x)[0], fe.log_spectrogram(x * 0.5)[0]
    assert torch.allclose(apply_gain(s, 20 * np.log10(0.5)), s2, atol=1e-4)
    m = mask_frames(s, 3, 5)
    assert float(m[3:8].abs().max()) == 0.0 and torch.equal(m[8:], s[8:]) and float(s[3:8].max()) > 0
    g = torch.Generator().manual_seed(0)
    out = augment_window(s, g, gain_db=6.0, time_mask=10)
    assert out.shape == s.shape and not torch.equal(out, s)


def _fetch_module():
    spec = importlib.util.spec_from_file_location("fetch_debian_audio", ROOT / "scripts" / "fetch_debian_audio.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fetch_script_refuses_the_reserved_packages_and_reads_licences(tmp_path):
    mod = _fetch_module()
    assert not any(p.startswith("wesnoth") for p in mod.DEFAULT_PACKAGES)
    with pytest.raises(SystemExit, match="reserved"):
        mod.refuse_reserved(["asc-music", "wesnoth-1.16-music"])
    root = tmp_path / "root"
    doc = root / "usr/share/doc/some-music"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nLicense: CC-BY-SA-3.0\n\nFiles: debian/*\nLicense: GPL-2+\n")
    (root / "usr/share/games/x/music").mkdir(parents=True)
    (root / "usr/share/games/x/sounds").mkdir(parents=True)
    for p in ("music/theme.ogg", "sounds/click.ogg"):
        (root / "usr/share/games/x" / p).write_bytes(b"")
    lic = mod.licence_of(root, "some-music", tmp_path)
    assert lic["licenses"] == ["CC-BY-SA-3.0", "GPL-2+"]
    assert (tmp_path / lic["copyright_file"]).is_file()
    assert [p.name for p in mod.music_files(root)] == ["theme.ogg"]
    json.dumps(lic)
    text = ("Files: *\nLicense: GPL-3+\n\nFiles: data/music/*\n       extra/intro.ogg\nLicense: CC-BY-SA-3.0\n\n"
            "Files: debian/*\nLicense: GPL-2+\n")
    files = [root / "usr/share/games/x/music/theme.ogg", root / "usr/share/games/x/intro.ogg",
             root / "usr/share/games/x/extra/intro.ogg"]
    assert mod.track_licences(text, files, root) == {
        "usr/share/games/x/music/theme.ogg": "CC-BY-SA-3.0",  # data/music/* by its music/ tail
        "usr/share/games/x/intro.ogg": "GPL-3+",              # a tail needs a folder: not extra/intro.ogg
        "usr/share/games/x/extra/intro.ogg": "CC-BY-SA-3.0"}


def test_fetch_script_keeps_each_music_content_once(tmp_path):
    """drascula-music installs the same tracks in six language folders: one copy reaches the corpus."""
    mod = _fetch_module()
    music = tmp_path / "usr/share/scummvm/game"
    for folder, content in (("audio", b"track one"), ("de", b"track one"), ("en", b"track one"), ("en2", b"other")):
        (music / folder).mkdir(parents=True)
        (music / folder / "track1.ogg").write_bytes(content)
    assert [str(p.relative_to(music)) for p in mod.music_files(tmp_path)] == ["audio/track1.ogg", "en2/track1.ogg"]


def test_train_cli_refuses_a_missing_pretrained_checkpoint_in_one_line(tmp_path):
    from click.testing import CliRunner

    from twolevel_cli.main import cli

    res = CliRunner().invoke(cli, ["train", str(tmp_path), "--out", str(tmp_path / "m.pt"),
                                   "--init-from", str(tmp_path / "nope.pt")])
    assert res.exit_code == 2
    assert "nope.pt: no such file" in res.output and "Traceback" not in res.output


def test_generated_tonal_pieces_stay_in_their_mode(monkeypatch):
    """scripts/render_tonal_corpus.py: a minor piece never sounds the major third above its tonic and a
    major piece never the minor third (no fluidsynth needed: the notes are checked before rendering);
    both modes, struck and held instruments, and the same pieces for the same seed."""
    import random
    import sys

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "scripts"))
    tonal = importlib.import_module("render_tonal_corpus")
    pieces = [tonal.piece(random.Random(seed)) for seed in range(40)]
    for notes, bpm, programs, desc in pieces:
        classes = {(pitch - desc["tonic"]) % 12 for _, _, pitch, _, _ in notes}
        third, other = (3, 4) if desc["mode"] == "minor" else (4, 3)
        assert third in classes and other not in classes, desc
        assert 60 <= bpm <= 150 and set(programs) == {0, 1, 2}
        assert max(start for start, *_ in notes) >= tonal.SECONDS * bpm / 60 - 8  # notes fill the 30 s
    assert {d["mode"] for *_, d in pieces} == {"minor", "major"}
    assert {d["accompaniment"] for *_, d in pieces} & set(tonal.STRUCK_PLUCKED)
    assert tonal.piece(random.Random(7))[0] == pieces[7][0]
    sys.modules.pop("render_tonal_corpus", None)


def test_mode_twins_differ_only_in_mode(monkeypatch):
    """render_tonal_corpus --twins --struck-only: a piece's twin keeps every onset, length, velocity,
    channel and instrument, moves only the 3rd, 6th and 7th degrees by a semitone into the other mode
    (and back again), and no held instrument plays."""
    import random
    import sys

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "scripts"))
    tonal = importlib.import_module("render_tonal_corpus")
    struck = set(tonal.STRUCK_PLUCKED.values()) | set(tonal.STRUCK_BASS.values())
    modes = set()
    for seed in range(30):
        notes, _, programs, desc = tonal.piece(random.Random(seed), struck_only=True)
        assert set(programs.values()) <= struck and "contrabass" not in tonal.STRUCK_BASS
        twin, twin_desc = tonal.mode_twin(notes, desc)
        assert twin_desc["mode"] != desc["mode"] and twin_desc["tonic"] == desc["tonic"]
        moved = {(p - desc["tonic"]) % 12 for (*_, p, _, _), (*_, q, _, _) in zip(notes, twin) if p != q}
        assert moved <= {3, 4, 8, 9, 10, 11} and moved
        assert all(abs(a[2] - b[2]) == (a[2] != b[2]) and a[:2] == b[:2] and a[3:] == b[3:]
                   for a, b in zip(notes, twin))
        classes = {(p - desc["tonic"]) % 12 for _, _, p, _, _ in twin}
        assert not classes & ({4, 9, 11} if twin_desc["mode"] == "minor" else {3, 8, 10}), (desc, classes)
        if desc["mode"] == "major" or not desc["harmonic_minor"]:
            assert tonal.mode_twin(twin, twin_desc)[0] == notes
        modes.add(desc["mode"])
    assert modes == {"major", "minor"}
    with pytest.raises(SystemExit, match="even --tracks"):  # before any rendering
        tonal.main(["--out", "unused", "--tracks", "3", "--twins"])
    # the second sample set draws its instruments from its own tables, and only struck ones
    freepats = tonal.SYNTHS["freepats"]
    allowed = set(freepats.struck.values()) | set(freepats.struck_bass.values())
    for seed in range(10):
        _, _, programs, _ = tonal.piece(random.Random(seed), True, freepats.struck, freepats.struck_bass)
        assert set(programs.values()) <= allowed
    with pytest.raises(SystemExit, match="needs --struck-only"):
        tonal.main(["--out", "unused", "--synth", "freepats"])
    # no sample set is the probes' FluidR3; each fluidsynth one names the Debian package of its soundfont
    from dataclasses import replace

    for name, synth in tonal.SYNTHS.items():
        assert "fluid" not in synth.samples.lower(), name
        if synth.engine == "fluidsynth":
            assert synth.soundfont is not None and synth.soundfont.name == synth.samples
            with pytest.raises(SystemExit, match=synth.debian_package):
                replace(synth, soundfont=Path("/nonexistent") / synth.samples).require()
    sys.modules.pop("render_tonal_corpus", None)
