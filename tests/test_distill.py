"""Distillation: per-fold teachers label unrated items; the student's training set grows."""
import numpy as np
import pytest

from twolevel.distill import distilling, fold_teachers, teacher_emotions, with_rated_blend
from twolevel.training import predict_spectrograms

from synthetic import synthetic_set as synthetic


def _fold0_training_part(data, dirs):
    """The clips fold 0's teachers trained on (a student of fold 0 trains on them), and fold 0's test ids."""
    from twolevel.checkpoint import read_checkpoint

    test0 = set(read_checkpoint(dirs[0] / "fold0.pt")["metadata"]["test_ids"])
    return data.subset([i for i, x in enumerate(data.ids) if x not in test0]), test0


def test_fold_teachers_never_saw_the_students_test_clips(members):
    data, dirs = members
    from twolevel.checkpoint import read_checkpoint

    test1 = read_checkpoint(dirs[0] / "fold1.pt")["metadata"]["test_ids"]
    train = [i for i in data.ids if i not in test1]
    teachers = fold_teachers(dirs, train)
    assert len(teachers) == 2 and all(t.metadata["fold"] == 1 for t in teachers)
    with pytest.raises(LookupError, match="no fold model"):
        fold_teachers(dirs, data.ids)  # every fold model's test clips are inside: none qualifies


def test_distilling_adds_unrated_items_labelled_by_the_teachers_mean(members):
    data, dirs = members
    unrated = synthetic(6, 9, prefix="corpus:", rated=False)
    train, _ = _fold0_training_part(data, dirs)
    grown = distilling(dirs, unrated, n_items=4, seed=3)(train)
    assert len(grown) == len(train) + 4 and grown.ids[:len(train)] == train.ids
    added = grown.subset(range(len(train), len(grown)))
    assert all(i.startswith("corpus:") for i in added.ids)
    teachers = fold_teachers(dirs, train.ids)
    expect = np.mean([predict_spectrograms(t, added.specs)[1] for t in teachers], axis=0)
    assert np.allclose(added.emotions, expect) and np.isfinite(added.emotions).all()
    assert np.allclose(added.emotions, teacher_emotions(teachers, added.specs))
    # the rated clips keep their human ratings; the added items keep their mid-level targets
    assert np.array_equal(grown.emotions[:len(train)], train.emotions)
    picked = [unrated.ids.index(i) for i in added.ids]
    assert np.array_equal(added.midlevels, unrated.midlevels[picked])


def test_checkpoint_teachers_are_used_as_they_are_and_mixes_are_refused(members):
    data, dirs = members
    from twolevel.checkpoint import load_checkpoint
    from twolevel.errors import OptionError

    unrated = synthetic(3, 4, prefix="corpus:", rated=False)
    model_file = dirs[0] / "fold0.pt"
    grown = distilling([model_file], unrated)(data)  # one model trained "on all clips": no fold lookup
    expect = predict_spectrograms(load_checkpoint(model_file, device="cpu"), unrated.specs)[1]
    assert len(grown) == len(data) + 3 and np.allclose(grown.emotions[len(data):], expect)
    with pytest.raises(OptionError, match="not a mix"):
        distilling([dirs[0], model_file], unrated)
    with pytest.raises(OptionError, match="at least one teacher"):
        distilling([], unrated)


def test_midlevel_teachers_replace_the_descriptor_targets_with_their_mean(members):
    data, dirs = members
    from twolevel.checkpoint import load_checkpoint
    from twolevel.distill import teacher_midlevels

    unrated = synthetic(3, 4, prefix="corpus:", rated=False)
    emotion_teacher, mid_a, mid_b = dirs[0] / "fold0.pt", dirs[0] / "fold1.pt", dirs[1] / "fold1.pt"
    grown = distilling([emotion_teacher], unrated, midlevel_teachers=[mid_a, mid_b])(data)
    added = grown.subset(range(len(data), len(grown)))
    models = [load_checkpoint(p, device="cpu") for p in (mid_a, mid_b)]
    expect = np.mean([predict_spectrograms(m, unrated.specs)[0] for m in models], axis=0)
    assert added.midlevels.shape == (3, 7) and np.allclose(added.midlevels, expect)
    assert np.allclose(added.midlevels, teacher_midlevels(models, unrated.specs))
    assert not np.allclose(added.midlevels, unrated.midlevels)  # the descriptor targets are gone
    # the emotions still come from the emotion teacher alone; the rated clips keep their targets
    emotions = predict_spectrograms(load_checkpoint(emotion_teacher, device="cpu"), unrated.specs)[1]
    assert np.allclose(added.emotions, emotions)
    assert np.array_equal(grown.midlevels[:len(data)], data.midlevels, equal_nan=True)


def test_cli_refuses_midlevel_teachers_without_emotion_teachers_or_of_the_wrong_kind(tmp_path, members):
    from click.testing import CliRunner
    from twolevel_cli.main import cli

    _, dirs = members
    base = ["train", str(tmp_path), "--out", str(tmp_path / "m.pt")]
    result = CliRunner().invoke(cli, base + ["--distill-midlevels-from", str(dirs[0] / "fold0.pt")])
    assert result.exit_code != 0 and "need --distill-from" in result.output
    result = CliRunner().invoke(cli, base + ["--distill-from", str(dirs[0] / "fold0.pt"), "--distill-corpus",
                                             str(tmp_path), "--distill-midlevels-from", str(dirs[0])])
    assert result.exit_code != 0 and "take checkpoint files" in result.output
    result = CliRunner().invoke(cli, base + ["--distill-from", str(dirs[0] / "fold0.pt"), "--distill-corpus",
                                             str(tmp_path), "--distill-constructed", "10"])
    assert result.exit_code != 0 and "--distill-constructed needs --distill-midlevels-from" in result.output


def test_constructed_windows_are_the_contrasts_pairs_labelled_by_the_midlevel_teachers(members):
    data, dirs = members
    from twolevel.checkpoint import load_checkpoint
    from twolevel.distill import CONSTRUCTIONS, constructed_windows
    from twolevel.errors import OptionError

    unrated = synthetic(4, 6, prefix="corpus:", rated=False)
    built = constructed_windows(unrated, 5, seed=2)
    assert len(built) == 10 and all(s.shape == (313, unrated.specs[0].shape[1]) for s in built.specs)
    kinds = [i.split(":")[1] for i in built.ids[::2]]
    assert kinds == [CONSTRUCTIONS[k % 3] for k in range(5)]
    assert np.isnan(built.emotions).all() and np.isnan(built.midlevels).all()
    assert all(not np.array_equal(a, b) for a, b in zip(built.specs[::2], built.specs[1::2]))  # a pair differs
    again = constructed_windows(unrated, 5, seed=2)
    assert again.ids == built.ids and all(np.array_equal(a, b) for a, b in zip(again.specs, built.specs))

    teacher = dirs[0] / "fold0.pt"
    grown = distilling([teacher], unrated, midlevel_teachers=[teacher], constructed_pairs=5, seed=2)(data)
    assert len(grown) == len(data) + 4 + 10
    added = grown.subset(range(len(data) + 4, len(grown)))
    assert added.ids == built.ids
    mids, emotions = predict_spectrograms(load_checkpoint(teacher, device="cpu"), built.specs)
    assert np.allclose(added.midlevels, mids) and np.allclose(added.emotions, emotions)
    with pytest.raises(OptionError, match="need mid-level teachers"):
        distilling([teacher], unrated, constructed_pairs=5)


def test_rated_blend_moves_only_rated_targets_towards_the_teachers():
    rated = synthetic(4, 1)
    rated.emotions[1] = np.nan  # an item without ratings (an annotated mid-level excerpt) stays unrated
    teacher = np.full((4, 8), 0.5)
    blended = with_rated_blend(rated, teacher, 0.25)
    keep = [0, 2, 3]
    assert np.allclose(blended.emotions[keep], 0.75 * rated.emotions[keep] + 0.125)
    assert np.isnan(blended.emotions[1]).all()
    assert np.array_equal(blended.midlevels, rated.midlevels, equal_nan=True) and blended.ids == rated.ids
    assert np.array_equal(with_rated_blend(rated, teacher, 0.0).emotions, rated.emotions, equal_nan=True)
    with pytest.raises(ValueError, match="outside"):
        with_rated_blend(rated, teacher, 1.5)


def test_distilling_with_rated_weight_blends_the_rated_clips_with_the_fold_teachers(members):
    data, dirs = members
    from twolevel.errors import OptionError

    unrated = synthetic(3, 4, prefix="corpus:", rated=False)
    train, _ = _fold0_training_part(data, dirs)
    plain = distilling(dirs, unrated)(train)
    grown = distilling(dirs, unrated, rated_weight=0.5)(train)
    teachers = fold_teachers(dirs, train.ids)
    expect = 0.5 * train.emotions + 0.5 * teacher_emotions(teachers, train.specs)
    assert np.allclose(grown.emotions[:len(train)], expect)
    assert not np.allclose(grown.emotions[:len(train)], train.emotions)
    assert np.allclose(grown.emotions[len(train):], plain.emotions[len(train):])  # the corpus windows: unchanged
    with pytest.raises(OptionError, match="within"):
        distilling(dirs, unrated, rated_weight=2.0)


def test_cli_refuses_a_rated_weight_without_teachers_or_outside_0_1(tmp_path):
    from click.testing import CliRunner
    from twolevel_cli.main import cli

    base = ["train", str(tmp_path), "--out", str(tmp_path / "m.pt")]
    result = CliRunner().invoke(cli, base + ["--distill-rated-weight", "0.5"])
    assert result.exit_code != 0 and "need --distill-from" in result.output
    result = CliRunner().invoke(cli, base + ["--distill-rated-weight", "1.5"])
    assert result.exit_code == 2 and "--distill-rated-weight" in result.output


def test_mixed_windows_play_two_different_clips_together_at_0_to_6_db():
    from twolevel.distill import mixed_windows
    from twolevel.signal import WINDOW_FRAMES
    from twolevel.training import TrainingSet

    # constant spectrograms, so any crop of clip i is the level c_i and the mix has a closed form
    levels = np.array([0.2, 0.5, 0.9, 1.3])
    items = TrainingSet([f"c{i}" for i in range(4)], [np.full((400, 149), c, np.float32) for c in levels],
                        np.full((4, 8), 0.5), np.full((4, 7), 0.5))
    mixed = mixed_windows(items, 12, seed=3)
    assert len(mixed) == 12 and mixed.categories == ["mixed"] * 12
    assert np.isnan(mixed.emotions).all() and np.isnan(mixed.midlevels).all()  # the teachers label them
    for k, (item_id, spec) in enumerate(zip(mixed.ids, mixed.specs)):
        a, b = item_id.removeprefix("mixed:").removesuffix(f":{k}").split("+")
        assert a != b and spec.shape == (WINDOW_FRAMES, 149)
        ca, cb = levels[int(a[1:])], levels[int(b[1:])]
        softest, loudest = (np.log10(10 ** ca + g * (10 ** cb - 1)) for g in (10 ** (-6 / 20), 1.0))
        assert np.allclose(spec, spec[0, 0]) and softest - 1e-5 <= spec[0, 0] <= loudest + 1e-5
    again = mixed_windows(items, 12, seed=3)
    assert again.ids == mixed.ids and all(np.array_equal(x, y) for x, y in zip(again.specs, mixed.specs))


def test_distilling_with_mixes_labels_mixes_of_the_rated_training_clips_only(members):
    data, dirs = members

    unrated = synthetic(3, 4, prefix="corpus:", rated=False)
    train, test0 = _fold0_training_part(data, dirs)
    grown = distilling(dirs, unrated, mixes=5, seed=2)(train)
    assert len(grown) == len(train) + 3 + 5
    mixed = grown.subset(range(len(train) + 3, len(grown)))
    sources = {s for i in mixed.ids for s in i.split(":")[1].split("+")}
    assert all(i.startswith("mixed:") for i in mixed.ids) and sources <= set(train.ids) and not sources & test0
    teachers = fold_teachers(dirs, train.ids)
    assert np.allclose(mixed.emotions, teacher_emotions(teachers, mixed.specs))
    assert np.isnan(mixed.midlevels).all()  # no descriptor targets for a mix


def test_cli_refuses_mixes_without_teachers(tmp_path):
    from click.testing import CliRunner
    from twolevel_cli.main import cli

    result = CliRunner().invoke(cli, ["train", str(tmp_path), "--out", str(tmp_path / "m.pt"), "--distill-mixes", "4"])
    assert result.exit_code != 0 and "need --distill-from" in result.output
