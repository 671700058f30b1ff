"""Training from cached spectrograms, resume, cross-validation folds, and the train/evaluate CLI."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from twolevel.checkpoint import load_checkpoint
from twolevel.data import MidlevelDataset
from twolevel.errors import CheckpointError, OptionError
from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES
from twolevel.signal import N_BANDS, WINDOW_FRAMES

from synthetic import synthetic_set, write_soundtracks_layout
from twolevel.training import (TrainConfig, _target_scale, crop, cross_validate, format_cv_table, masked_mse, pearson,
                               predict_spectrograms, save_trained, spectrogram_stats, stratified_folds, train, validation_split, with_annotations)


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(width=0.125, epochs=2, batch_size=3, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def weights(model) -> list[torch.Tensor]:
    return [v.detach().clone() for v in model.state_dict().values()]


def test_cache_keys_follow_the_files_bytes_not_their_names_or_times(tmp_path):
    import os
    import shutil

    from twolevel.training import _file_key

    a = tmp_path / "a.mp3"
    a.write_bytes(b"x" * 3_000_000)
    copy = tmp_path / "copied" / "b.mp3"
    copy.parent.mkdir()
    shutil.copy(a, copy)
    os.utime(copy, (1, 1))  # a re-extracted data set: other name, other time stamp
    assert _file_key(a, 1, "spec") == _file_key(copy, 1, "spec")
    assert _file_key(a, 1, "spec") != _file_key(a, 2, "spec")  # other settings, other entry
    copy.write_bytes(b"x" * 2_999_999 + b"y")  # same size, one byte changed
    assert _file_key(a, 1, "spec") != _file_key(copy, 1, "spec")


def test_crop_loop_pads_short_clips():
    short = torch.arange(100, dtype=torch.float32)[:, None].repeat(1, 3)
    out = crop(short, 0)
    assert out.shape == (WINDOW_FRAMES, 3)
    assert out[100, 0] == 0 and out[312, 0] == 12
    long = torch.arange(500, dtype=torch.float32)[:, None]
    assert crop(long, 150)[0, 0] == 150 and crop(long, 150).shape[0] == WINDOW_FRAMES


def test_clip_predictions_average_the_windows_the_hop_gives(tiny_model):
    network = tiny_model.network
    rng = np.random.default_rng(0)
    spec = rng.standard_normal((500, N_BANDS)).astype(np.float32)
    one_window = spec[:WINDOW_FRAMES]
    by_window = [predict_spectrograms(network, [spec[s:s + WINDOW_FRAMES]])[0][0] for s in (0, 100, 187)]
    mid, emo = predict_spectrograms(network, [spec, one_window], hop_frames=100)
    assert mid.shape == (2, len(MIDLEVEL_NAMES)) and emo.shape == (2, len(EMOTION_NAMES))
    np.testing.assert_allclose(mid[0], np.mean(by_window, axis=0), atol=1e-5)  # windows at 0, 100 and the end
    np.testing.assert_allclose(mid[1], predict_spectrograms(network, [one_window])[0][0], atol=1e-6)
    consecutive = predict_spectrograms(network, [spec])[0][0]  # windows at 0 and the end
    np.testing.assert_allclose(consecutive, np.mean([by_window[0], by_window[2]], axis=0), atol=1e-5)


def test_pearson_and_masked_loss():
    rng = np.random.default_rng(0)
    a, b = rng.random((20, 3)), rng.random((20, 3))
    expect = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(3)]
    assert pearson(a, b) == pytest.approx(expect)
    assert np.isnan(pearson(np.ones((5, 1)), b[:5, :1])[0])
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[1.0, float("nan")], [4.0, float("nan")]])
    assert float(masked_mse(pred, target)) == pytest.approx(0.5)
    assert float(masked_mse(pred, torch.full_like(pred, float("nan")))) == 0.0


def test_variance_scaled_loss_weighs_each_output_by_its_spread():
    targets = np.array([[0.0, 0.5], [1.0, 0.5], [2.0, np.nan]])
    scale = _target_scale(targets, "variance")
    # column 0 has variance 2/3; column 1 is constant, so it keeps a divisor of 1 instead of dividing by 0
    assert scale.tolist() == pytest.approx([2 / 3, 1.0])
    assert _target_scale(targets, "raw") is None
    pred = torch.tensor([[1.0, 0.5], [1.0, 1.5]])
    target = torch.tensor([[0.0, 0.5], [1.0, 0.5]])
    assert float(masked_mse(pred, target, scale)) == pytest.approx((1 / (2 / 3) + 1.0) / 4)


def test_shift_bands_moves_the_spectrum_and_repeats_the_edge():
    from twolevel.augment import shift_bands

    x = torch.arange(5, dtype=torch.float32)[None].repeat(2, 1)  # 2 frames x 5 bands: 0 1 2 3 4
    assert shift_bands(x, 2)[0].tolist() == [0, 0, 0, 1, 2]
    assert shift_bands(x, -1)[0].tolist() == [1, 2, 3, 4, 4]
    assert torch.equal(shift_bands(x, 0), x)


def test_ema_and_augmentation_train_deterministically_and_resume(tmp_path):
    data = synthetic_set()
    cfg = dict(epochs=2, ema=0.5, freq_shift=3, loss_scale="variance")
    plain, _ = train(data, tiny_cfg(epochs=2))
    full, summary = train(data, tiny_cfg(**cfg), val_set=data.subset([0, 1]))
    again, _ = train(data, tiny_cfg(**cfg), val_set=data.subset([0, 1]))
    assert summary["config"]["ema"] == 0.5 and summary["config"]["loss_scale"] == "variance"
    assert all(torch.equal(a, b) for a, b in zip(weights(full), weights(again)))
    assert not all(torch.equal(a, b) for a, b in zip(weights(full), weights(plain)))
    state = tmp_path / "ema.last"
    train(data, tiny_cfg(**{**cfg, "epochs": 1}), val_set=data.subset([0, 1]), state_path=state)
    resumed, _ = train(data, tiny_cfg(**cfg), val_set=data.subset([0, 1]), state_path=state, resume=True)
    for a, b in zip(weights(full), weights(resumed)):
        assert torch.allclose(a, b, atol=1e-6)


def test_weight_average_is_the_mean_of_the_last_epochs_states(tmp_path):
    data = synthetic_set()
    cfg = dict(schedule="constant", patience=1)  # early stopping would end before the averaged epochs
    two, _ = train(data, tiny_cfg(epochs=2, **cfg))
    averaged, summary = train(data, tiny_cfg(epochs=3, swa_epochs=2, **cfg), val_set=data.subset([0, 1]))
    assert summary["swa_epochs_averaged"] == 2 and summary["epochs_run"] == 3
    after2, after3 = two.state_dict(), summary["last_state"]
    for name, value in averaged.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, (after2[name] + after3[name]) / 2, atol=1e-6), name
    # cross-validation scores the average beside the best-validation and last states
    res = cross_validate(synthetic_set(n=20), tiny_cfg(epochs=2, swa_epochs=1), k=5, folds_to_run=[0], inner_folds=8,
                         models_dir=tmp_path / "m")
    fold = res["folds"]["0"]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["fold0-best.pt", "fold0-last.pt", "fold0.pt"]
    assert fold["test_swa"]["average"] == pytest.approx(fold["test_last"]["average"])  # 1 epoch averaged = last
    assert "average_swa" in res["summary"] and "weight average" in format_cv_table(res)


def test_cross_validation_partitions_clips_and_resumes(tmp_path):
    data = synthetic_set(n=20)
    out = tmp_path / "cv.json"
    res = cross_validate(data, tiny_cfg(epochs=1), k=5, folds_to_run=[0, 1], results_path=out, inner_folds=8)
    assert sorted(res["folds"]) == ["0", "1"] and res["inner_folds"] == 8
    for fold in res["folds"].values():
        assert len(fold["test_ids"]) == 4 and fold["n_val"] == 2 and fold["n_train"] == 14
        assert set(fold["test"]["emotions"]) == set(EMOTION_NAMES)
        assert set(fold["test_last"]["emotions"]) == set(EMOTION_NAMES)
    assert not set(res["folds"]["0"]["test_ids"]) & set(res["folds"]["1"]["test_ids"])
    assert res["summary"]["n_folds"] == 2 and "mean" in res["summary"]["average"]
    # one epoch: the best-validation state is the last one, so both scores agree
    assert res["summary"]["average_last"]["mean"] == pytest.approx(res["summary"]["average"]["mean"])
    saved = json.loads(out.read_text())
    assert saved["folds"]["0"]["test_ids"] == res["folds"]["0"]["test_ids"]
    # finished folds are kept, not re-run; the rest of the folds complete the partition
    res2 = cross_validate(data, tiny_cfg(epochs=1), k=5, results_path=out, inner_folds=8)
    assert res2["folds"]["0"] == res["folds"]["0"]
    assert sorted(i for f in res2["folds"].values() for i in f["test_ids"]) == sorted(data.ids)
    # another validation size is another experiment: nothing is reused
    res3 = cross_validate(data, tiny_cfg(epochs=1), k=5, folds_to_run=[0], results_path=out)
    assert res3["inner_folds"] == 4 and res3["folds"]["0"]["n_val"] == 4


def test_ensemble_members_share_a_partition_and_keep_their_fold_models(tmp_path):
    from twolevel.checkpoint import load_checkpoint, read_checkpoint

    data = synthetic_set(n=20)
    runs = {seed: cross_validate(data, tiny_cfg(epochs=1, seed=seed), k=5, folds_to_run=[0, 1], inner_folds=8,
                                 fold_seed=7, models_dir=tmp_path / f"m{seed}") for seed in (3, 4)}
    own = cross_validate(data, tiny_cfg(epochs=1, seed=7), k=5, folds_to_run=[0], inner_folds=8)
    for f in ("0", "1"):  # same test clips for both members: the partition follows fold_seed, not seed
        assert runs[3]["folds"][f]["test_ids"] == runs[4]["folds"][f]["test_ids"]
    assert own["folds"]["0"]["test_ids"] == runs[3]["folds"]["0"]["test_ids"] and runs[3]["fold_seed"] == 7
    # different seeds: different members
    assert runs[3]["folds"]["0"]["test"]["average"] != runs[4]["folds"]["0"]["test"]["average"]
    saved = tmp_path / "m3" / "fold1.pt"
    assert read_checkpoint(saved)["metadata"]["test_ids"] == runs[3]["folds"]["1"]["test_ids"]
    assert load_checkpoint(saved, device="cpu").config.width == 0.125
    assert sorted(p.name for p in (tmp_path / "m4").iterdir()) == ["fold0-last.pt", "fold0.pt", "fold1-last.pt", "fold1.pt"]
    # fold<F>-last.pt is the last epoch's state: it scores what the report calls the last epoch
    from twolevel.training import score

    last = load_checkpoint(tmp_path / "m4" / "fold1-last.pt", device="cpu")
    test = data.subset([data.ids.index(i) for i in runs[4]["folds"]["1"]["test_ids"]])
    assert last.metadata["state"] == "last epoch"
    assert score(last, test)["average"] == pytest.approx(runs[4]["folds"]["1"]["test_last"]["average"], abs=1e-6)


def test_stratified_folds_partition():
    cats = ["a"] * 10 + ["b"] * 5 + ["c"] * 5
    folds = stratified_folds(cats, 5, seed=1)
    joined = np.concatenate(folds)
    assert sorted(joined.tolist()) == list(range(20))
    assert all(len(f) == 4 for f in folds)
    assert all(sum(cats[i] == "a" for i in f) == 2 for f in folds)
    assert [f.tolist() for f in folds] == [f.tolist() for f in stratified_folds(cats, 5, seed=1)]


def test_validation_split_holds_out_a_stratified_share_and_refuses_too_few():
    data = synthetic_set(n=40)
    train_part, val = validation_split(data, 0.1, seed=0)
    assert len(val) == 4 and len(train_part) == 36
    assert sorted(train_part.ids + val.ids) == data.ids
    assert sorted(val.categories) == ["A", "A", "B", "B"]
    assert validation_split(data, 0.0, seed=0) == (data, None)
    from twolevel.errors import OptionError

    with pytest.raises(OptionError, match="leaves fewer than 3"):
        validation_split(synthetic_set(n=6), 0.1, seed=0)


def test_pitch_shift_moves_content_by_semitones_at_every_frequency():
    from twolevel.augment import pitch_shift, shift_bands
    from twolevel.frontend import band_centre_frequencies

    centre = band_centre_frequencies()
    for band, semitones in ((100, 1), (100, -3), (20, 5), (5, 2)):
        x = torch.zeros(3, N_BANDS)
        x[:, band] = 1.0
        y = pitch_shift(x, semitones)[0].numpy()
        moved = np.exp((y * np.log(centre)).sum() / y.sum())  # where the impulse went (log-frequency centroid)
        assert 12 * np.log2(moved / centre[band]) == pytest.approx(semitones, abs=0.35)
    x = torch.rand(4, N_BANDS)
    assert torch.equal(pitch_shift(x, 0), x)
    # Up there the bands are 24 per octave (to the nearest STFT bin): 2 bands per semitone, nearly
    # unblended; down in the bass (one STFT bin per band) a shift by bands is no pitch shift at all.
    assert float((pitch_shift(x, 2)[:, 80:] - shift_bands(x, 4)[:, 80:]).abs().max()) < 0.15
    assert float((pitch_shift(x, 2)[:, 10:30] - shift_bands(x, 4)[:, 10:30]).abs().max()) > 0.3


def test_modulation_pair_moves_the_same_crops_to_one_key_or_to_a_new_key_per_segment():
    from twolevel.augment import modulation_pair, pitch_shift

    harmonics = torch.zeros(N_BANDS)
    harmonics[[40, 64, 78, 88, 102, 112]] = 1.0  # one steady chord: every crop of this clip is the same
    spec = harmonics.repeat(500, 1)
    inner = slice(12, N_BANDS - 12)

    def key_of(segment):
        found = [k for k in range(-5, 6) if k and torch.allclose(segment[:, inner], pitch_shift(spec[:len(segment)], k)[:, inner])]
        assert len(found) == 1
        return found[0]

    g = torch.Generator().manual_seed(5)
    for _ in range(10):
        control, modulated = modulation_pair(spec, g, frames=313, segments=4, max_semitones=5)
        assert control.shape == modulated.shape == (313, N_BANDS)
        bounds = list(zip((0, 78, 156, 235), (78, 156, 235, 313)))
        control_keys = [key_of(control[a:b]) for a, b in bounds]
        keys = [key_of(modulated[a:b]) for a, b in bounds]
        assert len(set(control_keys)) == 1 and keys[0] == control_keys[0]  # the control stays in one key
        assert all(x != y for x, y in zip(keys, keys[1:]))  # the modulated twin changes key at every splice
        edges = torch.ones(N_BANDS, dtype=torch.bool)
        edges[inner] = False
        assert torch.equal(control[:, edges], modulated[:, edges])  # no edge band tells them apart
    with pytest.raises(ValueError, match="12 is the same key"):
        modulation_pair(spec, g, frames=313, max_semitones=12)


def test_separate_modulation_batches_leave_the_running_statistics_to_real_windows():
    from twolevel.training import _frozen_batch_norm_statistics

    data = synthetic_set()
    model, _ = train(data, tiny_cfg(epochs=1, batch_size=4, modulation_weight=0.5, modulation_batch="separate"))
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    model.train()
    before = norm.running_mean.clone()
    with _frozen_batch_norm_statistics(model):
        model.forward_spectrogram(torch.randn(4, 1, WINDOW_FRAMES, N_BANDS) * 5 + 3)
    assert torch.equal(norm.running_mean, before) and norm.momentum == 0.1
    model.forward_spectrogram(torch.randn(4, 1, WINDOW_FRAMES, N_BANDS) * 5 + 3)
    assert not torch.equal(norm.running_mean, before)
    with pytest.raises(OptionError, match="modulation_batch"):
        train(data, tiny_cfg(epochs=1, modulation_weight=0.5, modulation_batch="joint"))


def test_modulation_loss_is_a_hinge_on_tonal_stability_in_target_sds():
    from twolevel.training import MODULATION_MARGIN, TONAL_STABILITY, modulation_loss

    control = torch.zeros(2, len(MIDLEVEL_NAMES), requires_grad=True)
    modulated = torch.zeros(2, len(MIDLEVEL_NAMES))
    assert float(modulation_loss(control, modulated).detach()) == pytest.approx(MODULATION_MARGIN)
    modulation_loss(control, modulated).backward()
    assert float(control.grad[0, TONAL_STABILITY]) < 0 and float(control.grad[:, :TONAL_STABILITY].abs().sum()) == 0
    far = torch.zeros(2, len(MIDLEVEL_NAMES))
    far[:, TONAL_STABILITY] = 0.3  # 0.3 / sd 0.2 = 1.5 sds above: past the margin
    scale = torch.ones(len(MIDLEVEL_NAMES))
    scale[TONAL_STABILITY] = 0.04
    assert float(modulation_loss(far, modulated, scale)) == 0.0
    assert float(modulation_loss(far * 0.2, modulated, scale)) == pytest.approx(MODULATION_MARGIN - 0.3)


def test_training_with_the_modulation_contrast_logs_its_loss_and_resumes(tmp_path):
    data = synthetic_set()
    _, summary = train(data, tiny_cfg(epochs=2, batch_size=4, modulation_weight=0.5))
    losses = [h["loss_modulation"] for h in summary["history"]]
    assert len(losses) == 2 and all(0 <= v < 5 for v in losses)
    _, plain = train(data, tiny_cfg(epochs=1, batch_size=4))
    assert "loss_modulation" not in plain["history"][0]
    state = tmp_path / "m.pt.last"
    train(data, tiny_cfg(epochs=1, batch_size=4), state_path=state)
    with pytest.raises(CheckpointError, match="other settings"):
        train(data, tiny_cfg(epochs=2, batch_size=4, modulation_weight=0.5), state_path=state, resume=True)


def test_rhythm_pair_displaces_notes_only_in_the_twin_with_the_same_seams():
    from twolevel.augment import rhythm_pair

    period = 8  # an eighth note at 117 BPM, 31.3 frames per s
    frame_no = torch.arange(2000, dtype=torch.float32)
    spec = torch.zeros(2000, N_BANDS)
    spec[:, 0] = frame_no  # band 0 says which source frame this is
    spec[:, 60] = (frame_no % period == 0).float()  # a click on a steady grid

    def onsets(window):
        clicks = window[:, 60] > 0
        return torch.nonzero(clicks[1:] & ~clicks[:-1]).flatten() + 1

    g = torch.Generator().manual_seed(3)
    for _ in range(10):
        steady, displaced = rhythm_pair(spec, g, frames=313)
        assert steady.shape == displaced.shape == (313, N_BANDS)
        src_s, src_d = steady[:, 0].long(), displaced[:, 0].long()
        assert src_s[0] == src_d[0] and src_s[-1] == src_d[-1]  # the same crop, back in step at the end
        phase = int(src_s[0]) % period
        on_s, on_d = onsets(steady), onsets(displaced)
        # steady: every click that sounds is in its place (a freeze may swallow one, never move it)
        assert all((int(t) + phase) % period == 0 for t in on_s)
        # displaced: several clicks arrive early or late
        assert sum((int(t) + phase) % period != 0 for t in on_d) >= 3
        # the same seams: as many held frames, and as many skipped source frames
        held = [int((s[1:] == s[:-1]).sum()) for s in (src_s, src_d)]
        jumps = [int((s[1:] - s[:-1]).clamp(min=1).sub(1).sum()) for s in (src_s, src_d)]
        assert held[0] == held[1] > 0 and jumps[0] == jumps[1] == held[0]


def test_rhythm_loss_is_the_contrast_hinge_on_rhythm_stability_and_training_logs_it():
    from twolevel.training import MODULATION_MARGIN, RHYTHM_STABILITY, contrast_loss

    control = torch.zeros(3, len(MIDLEVEL_NAMES), requires_grad=True)
    twin = torch.zeros(3, len(MIDLEVEL_NAMES))
    loss = contrast_loss(control, twin, RHYTHM_STABILITY)
    assert float(loss.detach()) == pytest.approx(MODULATION_MARGIN)
    loss.backward()
    others = [j for j in range(len(MIDLEVEL_NAMES)) if j != RHYTHM_STABILITY]
    assert float(control.grad[0, RHYTHM_STABILITY]) < 0 and float(control.grad[:, others].abs().sum()) == 0

    data = synthetic_set()
    _, both = train(data, tiny_cfg(epochs=2, batch_size=4, modulation_weight=0.5, rhythm_weight=0.5))
    assert all(0 <= h["loss_rhythm"] < 5 and 0 <= h["loss_modulation"] < 5 for h in both["history"])
    _, rhythm = train(data, tiny_cfg(epochs=1, batch_size=4, rhythm_weight=0.5))
    assert "loss_rhythm" in rhythm["history"][0] and "loss_modulation" not in rhythm["history"][0]


def test_dissonance_pair_adds_one_copy_at_a_clashing_or_a_consonant_interval():
    from twolevel.augment import CLASHING_INTERVALS, CONSONANT_INTERVALS, dissonance_pair
    from twolevel.frontend import band_centre_frequencies

    log_f = np.log2(band_centre_frequencies())
    tone = 100  # a band well above 400 Hz, where bands are quarter tones
    spec = torch.zeros(313, N_BANDS)
    spec[:, tone] = 1.0  # one steady tone; a window as long as the clip, so the crop is all of it
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(20):
        clashing, consonant = dissonance_pair(spec, g, frames=313)
        assert clashing.shape == consonant.shape == (313, N_BANDS)
        for mix, allowed in ((clashing, CLASHING_INTERVALS), (consonant, CONSONANT_INTERVALS)):
            assert bool((mix >= spec - 1e-6).all())  # a copy is added, nothing is taken away
            assert float(mix[:, tone].min()) == pytest.approx(1.0, abs=1e-6)  # the crop's own tone, untouched
            added = mix[0].clone()
            added[tone] = 0
            copy_at = int(added.argmax())  # where the copy's tone went, in semitones from the original
            semitones = round(12 * float(log_f[copy_at] - log_f[tone]))
            assert semitones in allowed
            seen.add((allowed is CLASHING_INTERVALS, semitones))
    assert len(seen) >= 6  # intervals vary
    # the same level and the same silent edge bands in both copies: on a spectrum that is flat
    # across bands, where a pitch shift changes nothing, both mixes are the same
    flat = torch.rand(313, 1).expand(313, N_BANDS).contiguous()
    for _ in range(5):
        clashing, consonant = dissonance_pair(flat, g, frames=313)
        assert torch.allclose(clashing, consonant, atol=1e-5) and bool((clashing > flat + 1e-3).any())


def test_dissonance_contrast_trains_and_is_logged_without_changing_runs_that_leave_it_off():
    from twolevel.checkpoint import weights_digest

    data = synthetic_set()
    _, clash = train(data, tiny_cfg(epochs=2, batch_size=4, dissonance_weight=0.5, rhythm_weight=0.5))
    assert all(0 <= h["loss_dissonance"] < 5 and 0 <= h["loss_rhythm"] < 5 for h in clash["history"])
    off_a, summary = train(data, tiny_cfg(epochs=1, batch_size=4, rhythm_weight=0.5))
    off_b, _ = train(data, tiny_cfg(epochs=1, batch_size=4, rhythm_weight=0.5, dissonance_weight=0.0))
    assert "loss_dissonance" not in summary["history"][0]
    assert weights_digest(off_a.state_dict()) == weights_digest(off_b.state_dict())


def test_runs_saved_before_a_setting_existed_resume_when_it_is_at_its_default(tmp_path):
    from twolevel.training import _same_settings

    older = tiny_cfg().to_dict()
    del older["modulation_weight"]  # written by a version without this setting
    assert _same_settings(older, tiny_cfg())
    assert not _same_settings(older, tiny_cfg(modulation_weight=0.5))
    assert _same_settings(older, tiny_cfg(epochs=9), ignore=("epochs",))
    assert not _same_settings(None, tiny_cfg())
    data = synthetic_set()
    state = tmp_path / "m.pt.last"
    train(data, tiny_cfg(epochs=1), state_path=state)
    st = torch.load(state, weights_only=True)
    del st["config"]["modulation_weight"]
    torch.save(st, state)
    _, summary = train(data, tiny_cfg(epochs=2), state_path=state, resume=True)
    assert [h["epoch"] for h in summary["history"]] == [1, 2]


def test_train_writes_loadable_checkpoint_with_statistics(tmp_path):
    data = synthetic_set()
    model, summary = train(data, tiny_cfg(), val_set=data.subset([0, 1, 2]))
    assert summary["epochs_run"] == 2 and len(summary["history"]) == 2
    assert all(np.isfinite(h["loss"]) and "val_r" in h for h in summary["history"])
    path = save_trained(model, tmp_path / "m.pt", summary, {"midlevel_targets": "test"})
    loaded = load_checkpoint(path, device="cpu")
    mean, std = spectrogram_stats(data.specs)
    assert float(loaded.frontend.mean) == pytest.approx(mean, rel=1e-5)
    assert float(loaded.frontend.std) == pytest.approx(std, rel=1e-5)
    assert loaded.metadata["midlevel_targets"] == "test"
    assert loaded.config.width == 0.125


def test_training_is_deterministic_and_resumes_exactly(tmp_path):
    data = synthetic_set()
    full, _ = train(data, tiny_cfg(epochs=2))
    again, _ = train(data, tiny_cfg(epochs=2))
    for a, b in zip(weights(full), weights(again)):
        assert torch.equal(a, b)
    state = tmp_path / "m.pt.last"
    train(data, tiny_cfg(epochs=1), state_path=state)
    assert state.is_file()
    resumed, summary = train(data, tiny_cfg(epochs=2), state_path=state, resume=True)
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    for a, b in zip(weights(full), weights(resumed)):
        assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(CheckpointError, match="other settings"):
        train(data, tiny_cfg(epochs=3, lr=3e-3), state_path=state, resume=True)


def test_early_stopping_is_off_unless_asked(monkeypatch):
    # a validation r that never improves: with patience 2 the run stops after 2 epochs; by default
    # (patience 0) every epoch runs, as the shipped recipes' runs without validation do
    import twolevel.training as training

    monkeypatch.setattr(training, "_validate_epoch", lambda run, rec, val_set: False)
    data = synthetic_set()
    assert TrainConfig().patience == 0
    _, stopped = train(data, tiny_cfg(epochs=4, patience=2), val_set=data.subset([0, 1]))
    _, full = train(data, tiny_cfg(epochs=4), val_set=data.subset([0, 1]))
    assert stopped["epochs_run"] == 2 and full["epochs_run"] == 4


def test_items_without_emotions_train_the_midlevel_layer_only():
    data = synthetic_set()
    data.emotions[3:] = np.nan
    data.midlevels[:2] = np.nan
    model, summary = train(data, tiny_cfg(epochs=1))
    assert np.isfinite(summary["history"][0]["loss"])


def test_with_annotations_links_and_excludes_held_out():
    data = synthetic_set(4)  # ids 000..003
    ann = MidlevelDataset(Path("."), ["s1", "s2", "s3"], np.full((3, 7), 0.4), [Path("s1.mp3"), Path("s2.mp3"),
                          Path("s3.mp3")], {}, {"s1": "001", "s2": "150"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("twolevel.training.cached_spectrograms",
                   lambda paths, *a, **k: [np.zeros((320, N_BANDS), np.float32) for _ in paths])
        merged = with_annotations(data, ann)
    # s1 -> excerpt 001 (in the set), s2 -> 150 (held out: dropped), s3 unlinked -> mid-only item
    assert merged.ids == ["000", "001", "002", "003", "mid:s3"]
    assert np.allclose(merged.midlevels[1], 0.4) and np.isnan(merged.midlevels[0]).all()
    assert np.isnan(merged.emotions[4]).all() and np.allclose(merged.midlevels[4], 0.4)


# --- CLI, end to end on clips written in the published layout -----------------------------------

@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    pytest.importorskip("librosa")
    from twolevel_cli.main import cli

    base = tmp_path_factory.mktemp("train")
    data = write_soundtracks_layout(base / "data")
    out = base / "model.pt"
    args = ["train", str(data), "--out", str(out), "--width", "0.125", "--epochs", "1", "--batch-size", "3",
            "--cache-dir", str(base / "cache"), "--log", str(base / "log.jsonl"), "--quiet", "--device", "cpu",
            "--val-fraction", "0"]
    result = CliRunner().invoke(cli, args)
    return cli, base, data, out, args, result


def test_cli_train_writes_checkpoint_and_caches(cli_run):
    cli, base, data, out, args, result = cli_run
    assert result.exit_code == 0, result.output
    assert out.is_file() and Path(str(out) + ".last").is_file()
    model = load_checkpoint(out, device="cpu")
    assert "descriptors" in model.metadata["midlevel_targets"]
    from twolevel.checkpoint import weights_digest

    # The version names width, learning rate, seed and the weights themselves.
    cfg = model.metadata["config"]
    assert model.model_version == (f"a2mid2e-joint-w{cfg['width']:g}-lr{cfg['lr']:g}-seed{cfg['seed']}-"
                                   f"{weights_digest(model.state_dict())}")
    assert len(list((base / "cache" / "spec").glob("*.npy"))) == 6
    assert len(list((base / "cache" / "desc").glob("*.npy"))) == 6
    lines = [json.loads(x) for x in (base / "log.jsonl").read_text().splitlines()]
    assert lines[0]["epoch"] == 1
    # resume: one more epoch from <out>.last, the caches are reused (no new files)
    again = CliRunner().invoke(cli, [*args[:7], "2", *args[8:], "--resume"])
    assert again.exit_code == 0, again.output
    lines = [json.loads(x) for x in (base / "log.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert len(list((base / "cache" / "spec").glob("*.npy"))) == 6


def test_cli_train_refuses_a_validation_share_too_small_to_pick_an_epoch(cli_run, tmp_path):
    cli, base, data, out, args, result = cli_run
    res = CliRunner().invoke(cli, ["train", str(data), "--out", str(tmp_path / "m.pt"), "--epochs", "1",
                                   "--cache-dir", str(base / "cache"), "--quiet", "--device", "cpu"])
    assert res.exit_code != 0 and not (tmp_path / "m.pt").exists()
    assert "--val-fraction 0.1 of 6 clips leaves fewer than 3" in res.output and "Traceback" not in res.output


def test_cli_train_fold_options_need_folds(cli_run, tmp_path):
    cli, base, data, out, args, result = cli_run
    res = CliRunner().invoke(cli, ["train", str(data), "--out", str(tmp_path / "m.pt"), "--fold-seed", "3",
                                   "--cache-dir", str(base / "cache"), "--quiet", "--device", "cpu"])
    assert res.exit_code != 0 and "need --folds" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("extra, message", [
    (["--distill-corpus", "."], "need --distill-from"),
    (["--distill-from", "MODEL"], "needs --distill-corpus"),
    (["--distill-from", "MODEL", "--distill-corpus", ".", "--folds", "5"], "folders of fold models"),
    (["--distill-from", ".", "--distill-corpus", "."], "checkpoint files trained on all clips"),
    (["--mode-twin-weight", "0.3"], "--mode-twin-weight needs --distill-corpus"),
])
def test_cli_train_refuses_distillation_that_would_leak_or_cannot_run(cli_run, tmp_path, extra, message):
    cli, base, data, out, args, result = cli_run
    extra = [str(out) if x == "MODEL" else x for x in extra]
    res = CliRunner().invoke(cli, ["train", str(data), "--out", str(tmp_path / "m.pt"), *extra,
                                   "--cache-dir", str(base / "cache"), "--quiet", "--device", "cpu"])
    assert res.exit_code != 0 and message in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "m.pt").exists()


def test_cli_evaluate_json_has_exactly_the_keys(cli_run):
    cli, base, data, out, args, result = cli_run
    assert result.exit_code == 0, result.output
    res = CliRunner().invoke(cli, ["evaluate", str(data), "--model", str(out), "--json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert set(payload) == {"emotions", "average", "n"}
    assert list(payload["emotions"]) == list(EMOTION_NAMES)
    assert payload["n"] == 6
    table = CliRunner().invoke(cli, ["evaluate", str(data), "--model", str(out), "--device", "cpu"])
    assert table.exit_code == 0 and "average" in table.output


def test_cli_evaluate_names_ids_without_audio(cli_run, tmp_path):
    cli, base, data, out, args, result = cli_run
    import shutil

    copy = tmp_path / "subset"
    shutil.copytree(data, copy)
    (copy / "audio" / "004.mp3").unlink()
    res = CliRunner().invoke(cli, ["evaluate", str(copy), "--model", str(out), "--json"])
    assert res.exit_code != 0
    assert "no audio for excerpt(s) 004" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "nothing"), "--model", str(out)])
    assert res.exit_code != 0 and "no such data set folder" in res.output


def test_cli_evaluate_reports_midlevel_r(cli_run, tmp_path):
    cli, base, data, out, args, result = cli_run
    ann = tmp_path / "annotations.csv"
    header = "song_id,melody,articulation,rhythm_complexity,rhythm_stability,dissonance,tonal_stability,minorness"
    rng = np.random.default_rng(5)
    rows = [",".join([str(100 + k)] + [str(int(v)) for v in rng.integers(1, 11, 7)]) for k in range(6)]
    ann.write_text("\r\n".join([header, *rows]) + "\r\n")
    meta = ["song id;Source;ID at file source;Artist"] + [f"{100 + k};soundtracks;{k + 1:03d};x" for k in range(6)]
    (tmp_path / "metadata.csv").write_text("\r\n".join(meta) + "\r\n")
    res = CliRunner().invoke(cli, ["evaluate", str(data), "--model", str(out), "--device", "cpu",
                                   "--midlevel-annotations", str(ann), "--midlevel",
                                   "--cache-dir", str(base / "cache")])
    assert res.exit_code == 0, res.output
    assert "against the human annotations (6 excerpts)" in res.output
    assert "against descriptor targets" in res.output
    assert all(m in res.output for m in MIDLEVEL_NAMES)


def test_distillation_corpus_targets_come_from_the_clips_descriptor_set(monkeypatch):
    """--descriptors v3 --distill-corpus: the corpus windows' mid-level targets use v3 as the clips do."""
    import twolevel.corpus
    import twolevel.distill
    from cli.train_cmd import _TrainingData

    asked = {}
    monkeypatch.setattr(twolevel.corpus, "corpus_training_set",
                        lambda d, packages=None, descriptors="v1", progress=False:
                        asked.update(d=d, set=descriptors) or [None] * 8)  # a corpus of 8 windows
    monkeypatch.setattr(twolevel.distill, "distilling",
                        lambda teachers, items, n, seed, device, mids=(), pairs=0, **_: (lambda s: s))
    data = object.__new__(_TrainingData)  # the clips are not needed for this
    data.descriptors, data.progress, data.extra = "v3", False, None
    data.add_distillation(["teacher.pt"], "corpus-dir", 10, 0, "cpu")
    assert asked == {"d": Path("corpus-dir"), "set": "v3"}
    # 10 asked of a corpus of 8: the metadata records the 8 windows the student actually saw
    assert data.distillation == {"teachers": ["teacher.pt"], "corpus": "corpus-dir", "items": 8}
    data.extra = None
    data.add_distillation(["teacher.pt"], "corpus-dir", 5, 0, "cpu")
    assert data.distillation["items"] == 5


def test_level1_sign_mask_follows_the_ratings_of_rated_clips_only():
    from twolevel.training import TrainingSet, level1_sign_mask

    rng = np.random.default_rng(0)
    n = 40
    mid = rng.uniform(0, 1, (n, len(MIDLEVEL_NAMES)))
    emo = rng.uniform(0.1, 0.9, (n, len(EMOTION_NAMES)))
    emo[:, 0] = 0.2 + 0.5 * mid[:, 6]            # valence up with minorness (as the test wants it)
    emo[:, 6] = 0.8 - 0.5 * mid[:, 1]            # sad down with articulation
    emo[:, 1] = mid[:, 2] + 1e-3 * rng.normal(size=n)
    items = TrainingSet([str(i) for i in range(n)], [np.zeros((1, N_BANDS))] * n, emo, mid, ["A"] * n)
    mask = level1_sign_mask(items)
    assert mask.shape == (len(EMOTION_NAMES), len(MIDLEVEL_NAMES)) and set(np.unique(mask)) <= {-1.0, 0.0, 1.0}
    assert mask[0, 6] == 1 and mask[6, 1] == -1 and mask[1, 2] == 1
    r = np.array([[stats_spearman(mid[:, m], emo[:, e]) for m in range(7)] for e in range(8)])
    np.testing.assert_array_equal(mask, np.where(np.abs(r) >= 0.1, np.sign(r), 0))
    # corpus windows (teacher-labelled when distilled) do not vote, even when they disagree
    corpus = TrainingSet([f"c{i}" for i in range(n)], [np.zeros((1, N_BANDS))] * n, 1 - emo, mid, ["corpus"] * n)
    np.testing.assert_array_equal(level1_sign_mask(TrainingSet.concat(items, corpus)), mask)


def stats_spearman(x, y) -> float:
    from scipy import stats

    return float(stats.spearmanr(x, y)[0])


def test_training_with_level1_signs_keeps_every_constrained_weight_on_its_side():
    from twolevel.errors import OptionError
    from twolevel.training import level1_sign_mask

    data = synthetic_set(n=8)
    mask = level1_sign_mask(data)
    assert (mask != 0).sum() >= 10  # 8 random clips: most pairs pass |r| >= 0.1
    model, summary = train(data, tiny_cfg(epochs=2, level1_signs="ratings"))
    w = model.emotion.weight.detach().numpy()
    assert (w[mask > 0] >= 0).all() and (w[mask < 0] <= 0).all()
    free, _ = train(data, tiny_cfg(epochs=2))
    wf = free.emotion.weight.detach().numpy()
    assert ((wf[mask > 0] < 0).any() or (wf[mask < 0] > 0).any())  # without it some weight is on the wrong side
    assert summary["config"]["level1_signs"] == "ratings"
    with pytest.raises(OptionError, match="level1_signs must be one of free, ratings, got 'both'"):
        train(data, tiny_cfg(level1_signs="both"))


@pytest.mark.parametrize("change, message", [
    ({"schedule": "linear"}, "schedule must be one of cosine, constant, got 'linear'"),
    ({"loss_scale": "zscore"}, "loss_scale must be one of variance, raw, got 'zscore'"),
    ({"descriptors": "v9"}, "descriptors must be one of v1, v2, v3, got 'v9'"),
    ({"batch_size": 1}, "batch_size must be a whole number of at least 2 (batch normalisation needs 2 windows "
                        "per batch), got 1"),
    ({"width": 0.0}, "width must be a number above 0 and at most 4, got 0.0"),
    ({"dropout": 1.0}, "dropout must be a number at least 0 and below 1, got 1.0"),
    ({"dropout": -0.1}, "dropout must be a number at least 0 and below 1, got -0.1"),
    ({"epochs": "80"}, "epochs must be a whole number of at least 1, got '80'"),
    ({"epochs": 80.5}, "epochs must be a whole number of at least 1, got 80.5"),
    ({"epochs": True}, "epochs must be a whole number of at least 1, got True"),
    ({"lr": "fast"}, "lr must be a number of at least 0, got 'fast'"),
])
def test_train_config_refuses_bad_values_when_made(change, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        TrainConfig(**change)


def test_cli_train_options_take_train_config_defaults():
    from dataclasses import fields

    from twolevel.train_config import TrainConfig as Config
    from twolevel_cli.main import cli

    params = {p.name: p for p in cli.commands["train"].params}
    for field in fields(Config):
        assert field.name in params, f"TrainConfig.{field.name} has no --{field.name.replace('_', '-')}"
        assert params[field.name].default == field.default, field.name
    result = CliRunner().invoke(cli, ["train", "x", "--out", "y.pt", "--schedule", "linear"])
    assert result.exit_code == 2 and "cosine" in result.output
    # the ranges come from TrainConfig's rules, open ends included: dropout 1 is refused, 0.99 is not
    result = CliRunner().invoke(cli, ["train", "x", "--out", "y.pt", "--dropout", "1"])
    assert result.exit_code == 2 and "0<=x<1" in result.output
    result = CliRunner().invoke(cli, ["train", "x", "--out", "y.pt", "--width", "0"])
    assert result.exit_code == 2 and "0<x<=4" in result.output


def test_swap_mode_moves_the_third_and_sixth_of_the_key_by_a_semitone_and_nothing_else():
    from synthetic import chord_spectrogram
    from twolevel.augment import swap_mode
    from twolevel.tonality import LOWEST_CHROMA_PITCH, band_pitches, spectrogram_chroma

    major = torch.from_numpy(chord_spectrogram(2, minor=False, seed=1))  # D major: D, F#, A
    swapped = swap_mode(major, tonic=2)
    before = spectrogram_chroma(major.numpy())
    chroma, before = spectrogram_chroma(swapped.numpy()) / before.max(), before / before.max()
    assert before[6] > 0.6 and before[5] < 0.1
    assert chroma[5] > 0.6 and chroma[6] < 0.1  # F# (degree 4) went to F (degree 3)
    assert chroma[[2, 9]] == pytest.approx(before[[2, 9]], abs=0.02)  # D and A stay
    pitch = band_pitches()
    degree = np.round(pitch - 2) % 12
    kept = (pitch < LOWEST_CHROMA_PITCH) | ~np.isin(degree, [3, 4, 8, 9])
    assert torch.equal(swapped[:, kept], major[:, kept])  # the other bands are untouched
    back = spectrogram_chroma(swap_mode(swapped, 2).numpy()) / spectrogram_chroma(major.numpy()).max()
    assert back == pytest.approx(before, abs=0.2)  # and back, give or take the nearest band


def test_mode_pair_puts_the_minor_twin_first_and_skips_clips_without_a_key():
    from synthetic import chord_spectrogram
    from twolevel.augment import mode_pair
    from twolevel.tonality import spectrogram_key

    g = torch.Generator().manual_seed(0)
    for tonic, minor in ((0, False), (9, True), (4, False)):
        clip = torch.from_numpy(chord_spectrogram(tonic, minor, frames=500, seed=tonic))
        minor_twin, major_twin = mode_pair(clip, g, frames=313)
        assert minor_twin.shape == major_twin.shape == (313, N_BANDS)
        assert spectrogram_key(minor_twin.numpy())[:2] == (tonic, True)
        assert spectrogram_key(major_twin.numpy())[:2] == (tonic, False)
        original = minor_twin if minor else major_twin  # one of the two is a crop of the clip as it is
        assert any(torch.equal(original, clip[s:s + 313]) for s in range(500 - 313 + 1))
    flat = torch.rand(400, 1, generator=g).expand(400, N_BANDS).contiguous()  # no pitch at all
    assert mode_pair(flat, g, frames=313) is None
    with pytest.raises(ValueError, match="at least one try"):
        mode_pair(flat, g, frames=313, tries=0)


def test_mode_contrast_trains_and_is_logged_without_changing_runs_that_leave_it_off():
    from synthetic import tonal_set
    from twolevel.checkpoint import weights_digest

    data = tonal_set()
    _, mode = train(data, tiny_cfg(epochs=2, batch_size=4, mode_weight=0.5))
    assert all(0 < h["loss_mode"] < 5 for h in mode["history"])  # pairs were made, and scored
    off_a, summary = train(data, tiny_cfg(epochs=1, batch_size=4, dissonance_weight=0.5))
    off_b, _ = train(data, tiny_cfg(epochs=1, batch_size=4, dissonance_weight=0.5, mode_weight=0.0))
    assert "loss_mode" not in summary["history"][0]
    assert weights_digest(off_a.state_dict()) == weights_digest(off_b.state_dict())


def test_percussive_envelope_strikes_and_decays_exactly_and_both_twins_share_it():
    from twolevel.augment import FRAMES_PER_SECOND, percussive_envelope, random_percussive_envelope

    g = torch.Generator().manual_seed(3)
    window = 0.1 + torch.rand(313, N_BANDS, generator=g, dtype=torch.float64) * 2  # float64: ratios of small magnitudes
    out = percussive_envelope(window, period_s=0.5, decay_s=0.1, phase_s=0.0)
    magnitude_in, magnitude_out = torch.pow(10.0, window) - 1, torch.pow(10.0, out) - 1
    t = torch.arange(313, dtype=torch.float64) / FRAMES_PER_SECOND
    expected = torch.exp(-torch.remainder(t, 0.5) / 0.1)
    assert torch.allclose(magnitude_out / magnitude_in, expected[:, None].expand(-1, N_BANDS), rtol=1e-3)
    assert torch.allclose(out[0], window[0], atol=1e-9)  # struck at 0: untouched
    assert (out <= window + 1e-6).all()
    a, b = random_percussive_envelope((window, window * 0.5), g)
    ratio_a = (torch.pow(10.0, a) - 1) / (torch.pow(10.0, window) - 1)
    ratio_b = (torch.pow(10.0, b) - 1) / (torch.pow(10.0, window * 0.5) - 1)
    assert torch.allclose(ratio_a, ratio_b, rtol=1e-3, atol=1e-5)  # one envelope for both twins
    assert ratio_a.min() < 0.5  # and it decays
    with pytest.raises(ValueError, match="must be > 0 seconds"):
        percussive_envelope(window, 0.0, 0.1, 0.0)


def test_mode_envelope_trains_needs_the_contrast_and_leaves_runs_without_it_alone():
    from synthetic import tonal_set
    from twolevel.checkpoint import weights_digest
    from twolevel.errors import OptionError

    data = tonal_set()
    _, run = train(data, tiny_cfg(epochs=1, batch_size=4, mode_weight=0.5, mode_envelope=1.0))
    assert 0 < run["history"][0]["loss_mode"] < 5
    plain, _ = train(data, tiny_cfg(epochs=1, batch_size=4, mode_weight=0.5))
    with_envelope, _ = train(data, tiny_cfg(epochs=1, batch_size=4, mode_weight=0.5, mode_envelope=1.0))
    assert weights_digest(plain.state_dict()) != weights_digest(with_envelope.state_dict())
    with pytest.raises(OptionError, match="give mode_weight > 0 too"):
        tiny_cfg(mode_envelope=0.5)


def test_mode_twin_contrast_pairs_rendered_twins_trains_and_leaves_runs_without_it_alone():
    from synthetic import tonal_set
    from twolevel.checkpoint import weights_digest
    from twolevel.training import TrainingSet

    data = tonal_set(8)  # keys alternate major / minor: 001 is minor, 000 major, ...
    twins = {data.ids[1]: data.ids[0], data.ids[3]: data.ids[2], "absent": data.ids[4]}
    paired = TrainingSet(data.ids, data.specs, data.emotions, data.midlevels, data.categories, twins)
    assert paired.mode_twin_pairs() == {1: (1, 0), 0: (1, 0), 3: (3, 2), 2: (3, 2)}  # "absent" gives none
    # subset and concat keep the twins by id: the pair survives a reordering
    moved = TrainingSet.concat(data.subset([5]), paired.subset([3, 2, 0]))
    assert moved.mode_twin_pairs() == {2: (1, 2), 1: (1, 2)}
    _, run = train(paired, tiny_cfg(epochs=2, batch_size=4, mode_twin_weight=0.5))
    assert all(0 <= h["loss_mode_twins"] < 5 for h in run["history"])
    assert any(h["loss_mode_twins"] > 0 for h in run["history"])  # pairs were made, and scored
    plain, summary = train(paired, tiny_cfg(epochs=1, batch_size=4))
    plain_again, _ = train(data, tiny_cfg(epochs=1, batch_size=4, mode_twin_weight=0.0))
    assert "loss_mode_twins" not in summary["history"][0]
    assert weights_digest(plain.state_dict()) == weights_digest(plain_again.state_dict())
    with pytest.raises(OptionError, match="rendered mode twins"):
        train(data, tiny_cfg(epochs=1, batch_size=4, mode_twin_weight=0.5))


@pytest.mark.parametrize("emotion_layer, shrinkage", [("least-squares", 0.0), ("least-squares-signs", 0.0),
                                                       ("least-squares", 0.01)])
def test_a_least_squares_emotion_layer_is_fitted_after_the_last_epoch(emotion_layer, shrinkage):
    from twolevel.emotion_layer import least_squares_layer
    from twolevel.training import CORPUS_CATEGORY, TrainingSet, level1_sign_mask

    rated = synthetic_set(n=14)
    corpus = synthetic_set(n=4, seed=5, prefix="c")
    corpus.categories = [CORPUS_CATEGORY] * 4  # teacher-labelled windows: not in the fit
    val = synthetic_set(n=6, seed=7, prefix="v")
    trained, trained_summary = train(TrainingSet.concat(rated, corpus), tiny_cfg(), val)
    model, summary = train(TrainingSet.concat(rated, corpus),
                           tiny_cfg(emotion_layer=emotion_layer, emotion_layer_shrinkage=shrinkage), val)
    fit_set = TrainingSet.concat(rated, val)  # training and validation clips, no corpus windows
    assert summary["emotion_layer_clips"] == 20 and trained_summary["emotion_layer_clips"] == 0
    # the network is the one trained with the trained layer, only the layer differs
    for name, value in trained.state_dict().items():
        if not name.startswith("emotion."):
            assert torch.equal(value, model.state_dict()[name]), name
    mids, _ = predict_spectrograms(model, fit_set.specs)
    signs = level1_sign_mask(fit_set) if emotion_layer == "least-squares-signs" else None
    # the kept state is the best-validation one: its trained layer is what the fit shrinks towards
    prior = trained_summary["best_state"]["emotion.weight"].double().numpy()
    weight, bias = least_squares_layer(mids, fit_set.emotions, signs, prior=prior, shrinkage=shrinkage)
    np.testing.assert_allclose(model.emotion.weight.detach().numpy(), weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.emotion.bias.detach().numpy(), bias, rtol=1e-5, atol=1e-6)
    assert not np.allclose(weight, trained.emotion.weight.detach().numpy(), atol=1e-3)
    if signs is not None:
        assert (weight[signs > 0] >= -1e-9).all() and (weight[signs < 0] <= 1e-9).all()
    # every state the run reports has its own fitted layer
    for key in ("last_state", "best_state"):
        assert not torch.equal(summary[key]["emotion.weight"], trained_summary[key]["emotion.weight"]), key


def test_the_emotion_layer_choice_is_checked_and_does_not_block_resuming(tmp_path):
    from twolevel.errors import OptionError

    with pytest.raises(OptionError, match="emotion_layer must be one of trained, least-squares, "
                                          "least-squares-signs, got 'ridge'"):
        tiny_cfg(emotion_layer="ridge")
    with pytest.raises(OptionError, match="emotion_layer_shrinkage applies to a fitted layer"):
        tiny_cfg(emotion_layer_shrinkage=0.1)
    from twolevel_cli.main import cli

    result = CliRunner().invoke(cli, ["train", "x", "--out", "y.pt", "--emotion-layer-shrinkage", "-1"])
    assert result.exit_code == 2 and "--emotion-layer-shrinkage" in result.output
    with pytest.raises(OptionError, match="emotion_layer least-squares fits 8 weights per emotion on the rated "
                                          "clips, which needs more than 8; got 6"):
        train(synthetic_set(n=6), tiny_cfg(emotion_layer="least-squares"))  # before any epoch
    data = synthetic_set(n=10)
    state = tmp_path / "run.last"
    train(data, tiny_cfg(epochs=1), state_path=state)
    model, summary = train(data, tiny_cfg(epochs=2, emotion_layer="least-squares"), state_path=state, resume=True)
    assert summary["epochs_run"] == 2 and summary["emotion_layer_clips"] == 10


def test_an_unknown_midlevel_target_kind_is_refused_before_any_spectrogram(tmp_path, monkeypatch):
    """A descriptor set name passed as the kind ("v3") used to give NaN targets without a word."""
    import twolevel.training as training
    from twolevel.data import load_soundtracks
    from twolevel.errors import OptionError

    monkeypatch.setattr(training, "cached_spectrograms", lambda *a: pytest.fail("spectrograms computed"))
    dataset = load_soundtracks(write_soundtracks_layout(tmp_path / "data", n=3))
    with pytest.raises(OptionError, match="'descriptors' or 'none', got 'v3'") as err:
        training.soundtracks_training_set(dataset, midlevel_targets="v3")
    assert err.value.code == "bad_midlevel_targets"


def test_a_specialist_learns_the_emotions_of_the_model_it_joins_which_stays_frozen(tmp_path):
    """TrainConfig.join: the emotion loss is the joined model's layer on its own mid-levels with the
    specialist's minorness in place of its own; the gradient reaches the run through that minorness only,
    never the joined model, and the run's own emotion layer is left as initialised."""
    from twolevel.training import _Joined

    data = synthetic_set()
    host, summary = train(data, tiny_cfg(epochs=1, seed=5))
    host_path = save_trained(host, tmp_path / "host.pt", summary)
    cfg = tiny_cfg(join=str(host_path), join_midlevels=("minorness",))
    joined = _Joined(cfg, torch.device("cpu"))
    windows = torch.rand(3, WINDOW_FRAMES, N_BANDS)
    own = torch.rand(3, len(MIDLEVEL_NAMES), requires_grad=True)
    emo = joined.emotions(windows, own)
    emo.sum().backward()
    minorness = MIDLEVEL_NAMES.index("minorness")
    others = [i for i in range(len(MIDLEVEL_NAMES)) if i != minorness]
    assert own.grad[:, minorness].abs().sum() > 0 and own.grad[:, others].abs().sum() == 0
    assert all(p.grad is None for p in joined.model.parameters())
    with torch.no_grad():
        host_mid = host.eval().forward_spectrogram(host.frontend.normalise(windows).unsqueeze(1))[0]
        host_mid[:, minorness] = own[:, minorness]
        assert torch.allclose(emo, host.emotion(host_mid), atol=1e-5)

    one, _ = train(data, tiny_cfg(epochs=1, join=str(host_path), join_midlevels=("minorness",)))
    two, _ = train(data, tiny_cfg(epochs=2, join=str(host_path), join_midlevels=("minorness",)))
    plain, _ = train(data, tiny_cfg(epochs=2))
    assert not torch.equal(one.features[0].weight, two.features[0].weight)  # the trunk trains...
    assert torch.equal(one.emotion.weight, two.emotion.weight)               # ...its own emotion layer does not
    assert not torch.equal(two.features[0].weight, plain.features[0].weight)  # another loss than a plain run's


def test_join_is_refused_where_nothing_could_score_it(tmp_path):
    from twolevel_cli.main import cli

    data = synthetic_set(n=20)
    host, summary = train(synthetic_set(), tiny_cfg(epochs=1))
    host_path = save_trained(host, tmp_path / "host.pt", summary)
    cfg = tiny_cfg(join=str(host_path), join_midlevels=("minorness",))
    with pytest.raises(OptionError, match="--val-fraction 0"):
        train(data, cfg, val_set=data.subset([0, 1]))
    with pytest.raises(OptionError, match="cross-validation cannot score it"):
        cross_validate(data, cfg, k=5, folds_to_run=[0])
    with pytest.raises(OptionError, match="join: "):
        train(data, tiny_cfg(join=str(tmp_path / "missing.pt"), join_midlevels=("minorness",)))
    with pytest.raises(OptionError, match="go together"):
        TrainConfig(join=str(host_path))
    dataset = write_soundtracks_layout(tmp_path / "ds", n=4)
    result = CliRunner().invoke(cli, ["train", str(dataset), "--out", str(tmp_path / "s.pt"), "--join", str(host_path),
                                      "--join-midlevel", "minorness"])
    assert result.exit_code != 0 and "--val-fraction 0" in result.output
    result = CliRunner().invoke(cli, ["train", str(dataset), "--out", str(tmp_path / "s.pt"), "--join", str(host_path),
                                      "--join-midlevel", "minor"])
    assert result.exit_code == 2 and "minorness" in result.output
    assert not (tmp_path / "s.pt").exists()
