"""Joint training of A2Mid2E-Joint from cached spectrograms, and k-fold cross-validation.

Each clip's un-normalised log spectrogram is computed once, with the model's own
:meth:`Frontend.log_spectrogram` over the whole clip, and cached on disk (``<cache>/spec/``);
training draws a random 10 s crop (313 frames, loop-padded when shorter) from it every time
the clip is seen, which is the paper's random-window augmentation without re-running the STFT.
Descriptor targets are cached the same way (``<cache>/desc/``).

Loss = 0.5 MSE(emotions) + 0.5 MSE(mid-levels), each over the targets an item has (items of
the mid-level data set have no emotion ratings), with each output's squared error divided by the
variance of its target over the training set (``loss_scale="variance"``, the default): the
rank-mapped descriptor targets spread about 2.4x more than ratings/10, so plain MSE let the
mid-level task dominate; scaled, the cross-validated emotion r rose from 0.711 to 0.746.
``loss_scale="raw"`` is the paper's plain MSE. Adam (lr 6e-3 by default; the paper's 5e-4
under-fitted in 80 epochs here), decoupled weight decay, batch 8, cosine learning-rate decay,
and, given validation clips, the state with the best validation Pearson r (average over the 8
emotions) is kept (with early stopping after ``patience`` epochs without gain, when asked); without them the
state after the last epoch (in cross-validation the two scored alike on average, but the
validation pick can keep an early, lucky epoch). twolevel/assets/MODEL_CARD.md has the numbers.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .audio import load_audio, window_starts
from .additivity import additivity_loss, interaction_inputs
from .augment import (augment_window, dissonance_pair, mode_pair, modulation_pair, random_percussive_envelope,
                      rhythm_pair, shift_bands)
from .checkpoint import init_from_pretrained, load_checkpoint, save_checkpoint, weights_digest
from .data import MidlevelDataset, SoundtracksDataset
from .errors import CheckpointError, OptionError
from .labels import EMOTION_NAMES, MIDLEVEL_NAMES
from .signal import N_BANDS, WINDOW_FRAMES
from .train_config import TrainConfig  # noqa: F401 -- also importable as twolevel.training.TrainConfig
from .model import A2Mid2EJoint, ModelConfig, multiply_adds
from .resources import cache_dir as default_cache_dir

#: Part of every spectrogram cache key; bump when the front end changes.
SPEC_CACHE_VERSION = 1


# --- caches -------------------------------------------------------------------------------------

def _file_key(path: Path, *settings) -> str:
    """Cache key of what ``settings`` compute from the file at ``path``: its bytes, not its name or
    time stamp, so a copied or re-extracted data set (new mtimes) still finds its cache and a
    changed file never does. Hashing 300 excerpts takes well under a second."""
    st = Path(path).stat()
    text = json.dumps(["content", _content_digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns), *settings])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


@functools.lru_cache(maxsize=4096)
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-1 of the file's bytes, read once per process for each (path, size, mtime): the spectrogram
    and the descriptor caches of one clip share it. Size and mtime only decide when to read again."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def cached_spectrograms(paths: Sequence[Path], cache_dir: Path | None = None,
                        progress: bool = False) -> list[np.ndarray]:
    """Un-normalised log spectrogram ``(frames, 149)`` float32 of each whole clip, computed once.

    The key is a digest of the file's bytes plus the front-end settings (:func:`_file_key`), so a
    changed file is recomputed and a copied one is not.
    """
    from .frontend import Frontend
    from .signal import HOP_LENGTH, N_FFT, SAMPLE_RATE

    cache = Path(cache_dir) / "spec" if cache_dir else default_cache_dir("spec")
    frontend: Frontend | None = None
    out = []
    it = _progress(paths, "spectrograms", progress)
    for p in it:
        p = Path(p)
        f = cache / f"{_file_key(p, SPEC_CACHE_VERSION, SAMPLE_RATE, N_FFT, HOP_LENGTH, N_BANDS)}.npy"
        if f.is_file():
            out.append(np.load(f))
            continue
        if frontend is None:
            frontend = Frontend().eval()
        audio = load_audio(p)
        with torch.inference_mode():
            spec = frontend.log_spectrogram(torch.from_numpy(audio.samples)[None])[0].numpy().astype(np.float32)
        _save_npy(f, spec)
        out.append(spec)
    return out


def cached_descriptors(paths: Sequence[Path], cache_dir: Path | None = None, progress: bool = False,
                       descriptors: str = "v1") -> np.ndarray:
    """Raw descriptors ``(n, 7)`` of each clip (:func:`twolevel.descriptor_sets.raw_descriptors` of
    the set ``descriptors``), computed once."""
    from .descriptor_sets import descriptor_cache_key, raw_descriptors

    cache = Path(cache_dir) / "desc" if cache_dir else default_cache_dir("desc")
    rows = []
    for p in _progress(paths, "descriptors", progress):
        p = Path(p)
        f = cache / f"{_file_key(p, 'desc', descriptor_cache_key(descriptors))}.npy"
        if f.is_file():
            rows.append(np.load(f))
            continue
        v1 = None
        if descriptors != "v1":  # another set takes its shared columns from the clip's cached v1 row
            v1_file = cache / f"{_file_key(p, 'desc', descriptor_cache_key('v1'))}.npy"
            v1 = np.load(v1_file) if v1_file.is_file() else None
        raw = raw_descriptors(load_audio(p).samples, descriptors=descriptors, v1=v1)
        _save_npy(f, raw)
        rows.append(raw)
    return np.stack(rows) if rows else np.zeros((0, len(MIDLEVEL_NAMES)))


def _progress(items, desc: str, enabled: bool):
    if not enabled:
        return items
    from .progress import each

    return each(items, desc, unit="clip")


# --- training data -------------------------------------------------------------------------------

@dataclass
class TrainingSet:
    """Items for joint training: spectrograms with emotion and/or mid-level targets (NaN = none)."""

    ids: list[str]
    specs: list[np.ndarray]
    emotions: np.ndarray  # (n, 8), NaN where an item has no ratings
    midlevels: np.ndarray  # (n, 7), NaN where an item has no mid-level targets
    categories: list[str] = field(default_factory=list)
    #: Rendered mode twins (``scripts/render_tonal_corpus.py --twins``): the id of a window in a minor
    #: key -> the id of the same window of its major twin (same notes but the mode's 3rd, 6th and 7th).
    #: Entries whose ids are not both in the set give no pair (:meth:`mode_twin_pairs`).
    mode_twins: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index) -> "TrainingSet":
        index = [int(i) for i in index]
        cats = [self.categories[i] for i in index] if self.categories else []
        return TrainingSet([self.ids[i] for i in index], [self.specs[i] for i in index],
                           self.emotions[index], self.midlevels[index], cats, dict(self.mode_twins))

    @staticmethod
    def concat(a: "TrainingSet", b: "TrainingSet") -> "TrainingSet":
        cats = (a.categories or [""] * len(a)) + (b.categories or [""] * len(b))
        return TrainingSet(a.ids + b.ids, a.specs + b.specs, np.concatenate([a.emotions, b.emotions]),
                           np.concatenate([a.midlevels, b.midlevels]), cats, {**a.mode_twins, **b.mode_twins})

    def mode_twin_pairs(self) -> dict[int, tuple[int, int]]:
        """Item index -> ``(minor, major)`` item indices of its twin pair, for both twins of every
        pair whose two windows are in the set."""
        where = {item_id: i for i, item_id in enumerate(self.ids)}
        pairs = {}
        for minor_id, major_id in self.mode_twins.items():
            if minor_id in where and major_id in where:
                pair = (where[minor_id], where[major_id])
                pairs[pair[0]] = pairs[pair[1]] = pair
        return pairs


def soundtracks_training_set(ds: SoundtracksDataset, cache_dir: Path | None = None, progress: bool = False,
                             midlevel_targets: str = "descriptors", descriptors: str = "v1") -> TrainingSet:
    """Soundtracks clips with ratings/10 and (``descriptors``) rank-mapped descriptor targets of the
    set ``descriptors`` (:data:`twolevel.descriptor_sets.DESCRIPTOR_SETS`).

    With ``midlevel_targets="none"`` the mid-level targets are left NaN (filled from annotations).
    """
    from .targets import rank_map

    if midlevel_targets not in ("descriptors", "none"):  # before the spectrograms: a typo must not cost them
        raise OptionError(f"midlevel_targets must be 'descriptors' or 'none', got {midlevel_targets!r} (the "
                          "descriptor set is the descriptors argument)", code="bad_midlevel_targets")
    specs = cached_spectrograms(ds.audio_paths, cache_dir, progress)
    if midlevel_targets == "descriptors":
        mid = rank_map(cached_descriptors(ds.audio_paths, cache_dir, progress, descriptors))
    else:
        mid = np.full((len(ds), len(MIDLEVEL_NAMES)), np.nan)
    return TrainingSet(list(ds.ids), specs, ds.ratings.copy(), mid, list(ds.categories))


def with_annotations(st: TrainingSet, ann: MidlevelDataset, cache_dir: Path | None = None,
                     progress: bool = False) -> TrainingSet:
    """Soundtracks items get the human mid-level values of their linked song; unlinked songs become
    mid-level-only items. Songs linked to Soundtracks excerpts *not* in ``st`` are left out, so
    held-out excerpts never reach training through the mid-level data set."""
    links = ann.soundtracks_ids  # song_id -> soundtracks number
    pos = {s: i for i, s in enumerate(st.ids)}
    mid = np.full_like(st.midlevels, np.nan)
    extra = []
    for row, song in enumerate(ann.ids):
        if song in links:
            if links[song] in pos:
                mid[pos[links[song]]] = ann.values[row]
            continue
        extra.append(row)
    merged = TrainingSet(list(st.ids), list(st.specs), st.emotions.copy(), mid, list(st.categories))
    if extra:
        specs = cached_spectrograms([ann.audio_paths[r] for r in extra], cache_dir, progress)
        other = TrainingSet([f"mid:{ann.ids[r]}" for r in extra], specs,
                            np.full((len(extra), len(EMOTION_NAMES)), np.nan), ann.values[extra],
                            ["midlevel"] * len(extra))
        merged = TrainingSet.concat(merged, other)
    return merged


def spectrogram_stats(specs: Sequence[np.ndarray]) -> tuple[float, float]:
    """One data-set-wide mean and standard deviation over all frames and bands."""
    n = sum(s.size for s in specs)
    total = sum(float(s.sum(dtype=np.float64)) for s in specs)
    mean = total / n
    var = sum(float(((s.astype(np.float64) - mean) ** 2).sum()) for s in specs) / n
    return mean, math.sqrt(max(var, 1e-12))


def crop(spec: torch.Tensor, start: int, frames: int = WINDOW_FRAMES) -> torch.Tensor:
    """``frames`` consecutive frames from ``start`` (loop-padded when the clip is shorter)."""
    n = spec.shape[0]
    if n < frames:
        reps = -(-frames // n)
        return spec.repeat(reps, 1)[:frames]
    return spec[start:start + frames]


# --- metrics -------------------------------------------------------------------------------------

def pearson(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson r per column (NaN where a column is constant or has < 2 finite pairs)."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    out = np.full(pred.shape[1], np.nan)
    for j in range(pred.shape[1]):
        ok = np.isfinite(pred[:, j]) & np.isfinite(true[:, j])
        if ok.sum() < 2:
            continue
        a = pred[ok, j] - pred[ok, j].mean()
        b = true[ok, j] - true[ok, j].mean()
        den = math.sqrt(float((a * a).sum() * (b * b).sum()))
        if den > 0:
            out[j] = float((a * b).sum() / den)
    return out


@torch.inference_mode()
def predict_spectrograms(model: A2Mid2EJoint, specs: Sequence[np.ndarray], batch_size: int = 32,
                         hop_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clip-level ``(mid (n, 7), emo (n, 8))``: the mean over consecutive 10 s windows, as in predict.

    ``hop_frames`` overlaps the windows instead (e.g. 62 frames, 2 s): more crops per clip, as
    training draws them (``benchmarks/prediction_crops.py`` measures whether that helps; it did not).
    """
    model.eval()
    windows, owner = [], []
    for i, s in enumerate(specs):
        t = torch.from_numpy(np.asarray(s))
        for start in window_starts(t.shape[0], WINDOW_FRAMES, hop_frames):
            windows.append(crop(t, int(start)))
            owner.append(i)
    mids = []
    for b in range(0, len(windows), batch_size):
        x = torch.stack(windows[b:b + batch_size]).to(model.device)
        x = model.frontend.normalise(x).unsqueeze(1)
        mid, _ = model.forward_spectrogram(x)
        mids.append(mid.double().cpu().numpy())
    mid_w = np.concatenate(mids) if mids else np.zeros((0, len(MIDLEVEL_NAMES)))
    owner_a = np.asarray(owner)
    mid = np.stack([mid_w[owner_a == i].mean(axis=0) for i in range(len(specs))])
    w = model.emotion.weight.detach().cpu().double().numpy()
    b = model.emotion.bias.detach().cpu().double().numpy()
    return mid, mid @ w.T + b


def score(model: A2Mid2EJoint, data: TrainingSet) -> dict:
    """Pearson r per emotion and mid-level output on ``data`` (clip level), plus the emotion average."""
    mid, emo = predict_spectrograms(model, data.specs)
    r_emo = pearson(emo, data.emotions)
    r_mid = pearson(mid, data.midlevels)
    return {"emotions": dict(zip(EMOTION_NAMES, map(float, r_emo))),
            "midlevels": dict(zip(MIDLEVEL_NAMES, map(float, r_mid))),
            "average": float(np.nanmean(r_emo)) if np.isfinite(r_emo).any() else float("nan"),
            "midlevel_average": float(np.nanmean(r_mid)) if np.isfinite(r_mid).any() else float("nan")}


# --- training ------------------------------------------------------------------------------------

#: The category of corpus windows (twolevel/corpus.py): unrated music, whose emotion targets are
#: a teacher's outputs when distilled.
CORPUS_CATEGORY = "corpus"
#: Categories of the windows twolevel/distill.py builds for teachers to label (constructed by the
#: training contrasts, mixed from two rated clips): like corpus windows, their emotions are no ratings.
CONSTRUCTED_CATEGORY = "constructed"
MIXED_CATEGORY = "mixed"
TEACHER_LABELLED = frozenset({CORPUS_CATEGORY, CONSTRUCTED_CATEGORY, MIXED_CATEGORY})
#: Below this |Spearman r| between a mid-level's targets and an emotion's ratings, the level-1
#: weight's sign is left free (the data do not say which way it goes).
LEVEL1_SIGN_MIN_R = 0.1


def rated_items(items: TrainingSet) -> np.ndarray:
    """``(len(items),)`` bool: the items whose emotion targets are ratings, not a teacher's labels
    (:data:`TEACHER_LABELLED` windows are left out; NaN entries are the caller's to mask)."""
    return np.array([c not in TEACHER_LABELLED for c in (items.categories or [""] * len(items))], dtype=bool)


def level1_sign_mask(train_set: TrainingSet, min_abs_r: float = LEVEL1_SIGN_MIN_R) -> np.ndarray:
    """Signs the emotion layer's weights keep under ``level1_signs="ratings"``, ``(8, 7)`` in {-1, 0, +1}.

    Entry ``(e, m)`` is the sign of the Spearman r between mid-level ``m``'s targets and emotion
    ``e``'s ratings over the items that have both and are not teacher-labelled windows (whose
    emotions are a teacher's outputs, not ratings); 0 (free) where ``|r| < min_abs_r``.
    """
    from scipy import stats

    rated = rated_items(train_set)
    mask = np.zeros((train_set.emotions.shape[1], train_set.midlevels.shape[1]))
    for e in range(mask.shape[0]):
        for m in range(mask.shape[1]):
            ok = rated & np.isfinite(train_set.emotions[:, e]) & np.isfinite(train_set.midlevels[:, m])
            if ok.sum() < 3:
                continue
            r = stats.spearmanr(train_set.midlevels[ok, m], train_set.emotions[ok, e])[0]
            if np.isfinite(r) and abs(r) >= min_abs_r:
                mask[e, m] = np.sign(r)
    return mask


@torch.no_grad()
def project_level1_signs(model: A2Mid2EJoint, mask: torch.Tensor) -> None:
    """Clamp each emotion-layer weight to the sign ``mask`` gives it (0 in the mask: left as it is)."""
    w = model.emotion.weight
    w.copy_(torch.where(mask > 0, w.clamp_min(0.0), torch.where(mask < 0, w.clamp_max(0.0), w)))


#: The hinge margin of the contrasts, in standard deviations of the concept's target.
MODULATION_MARGIN = 0.5
TONAL_STABILITY = MIDLEVEL_NAMES.index("tonal_stability")
RHYTHM_STABILITY = MIDLEVEL_NAMES.index("rhythm_stability")
DISSONANCE = MIDLEVEL_NAMES.index("dissonance")
MINORNESS = MIDLEVEL_NAMES.index("minorness")


def masked_mse(pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the finite targets; ``scale`` (per output) divides each column's error."""
    ok = torch.isfinite(target)
    if not bool(ok.any()):
        return pred.sum() * 0.0
    err = (pred - torch.nan_to_num(target)) ** 2
    if scale is not None:
        err = err / scale
    return err[ok].mean()


def contrast_loss(control_mid: torch.Tensor, twin_mid: torch.Tensor, concept: int,
                  midlevel_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Hinge on mid-level ``concept`` of ``(pairs, 7)`` mid-levels of constructed window pairs.

    Zero once every control scores at least MODULATION_MARGIN target sds above its twin;
    ``midlevel_scale`` holds the targets' variances (None: sd 1).
    """
    sd = float(midlevel_scale[concept]) ** 0.5 if midlevel_scale is not None else 1.0
    gap = (control_mid[:, concept] - twin_mid[:, concept]) / sd
    return torch.relu(MODULATION_MARGIN - gap).mean()


def modulation_loss(control_mid: torch.Tensor, modulated_mid: torch.Tensor,
                    midlevel_scale: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`contrast_loss` on tonal stability: the control (one key) above its modulated twin."""
    return contrast_loss(control_mid, modulated_mid, TONAL_STABILITY, midlevel_scale)


def _target_scale(targets: np.ndarray, how: str) -> torch.Tensor | None:
    """Per-output divisor of the squared error: None for raw MSE, the training-set variance otherwise
    (``how`` is :attr:`TrainConfig.loss_scale`, which the config has checked)."""
    if how == "raw":
        return None
    with np.errstate(all="ignore"):
        var = np.nanvar(targets, axis=0) if np.isfinite(targets).any() else np.ones(targets.shape[1])
    var = np.where(np.isfinite(var) & (var > 1e-8), var, 1.0)
    return torch.as_tensor(var, dtype=torch.float32)


def _set_seed(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _lr_factor(cfg: TrainConfig, epoch: int) -> float:
    if cfg.schedule == "constant":
        return 1.0
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(epoch, cfg.epochs) / max(cfg.epochs, 1)))


#: Settings that may differ when resuming (train longer, wait longer).
RESUMABLE_CHANGES = ("epochs", "patience", "emotion_layer", "emotion_layer_shrinkage")  # the layer fit: after the last epoch

EpochCallback = Callable[[dict], None]


def _check_run(train_set: TrainingSet, cfg: TrainConfig, fit_set: TrainingSet | None = None) -> None:
    """``fit_set``: the clips a least-squares emotion layer will be fitted on (None: no fit)."""
    # the options themselves were checked when the TrainConfig was made (twolevel/train_config.py)
    if len(train_set) < 2:
        raise OptionError(f"need at least 2 training clips, got {len(train_set)}")
    if cfg.mode_twin_weight and not train_set.mode_twin_pairs():
        raise OptionError("mode_twin_weight needs training windows with rendered mode twins (a corpus of "
                          "scripts/render_tonal_corpus.py --twins); these training items have none")
    if fit_set is not None:  # refused now, not after the last epoch
        require_enough_to_fit(fit_set, f"emotion_layer {cfg.emotion_layer}")


def _new_model(train_set: TrainingSet, cfg: TrainConfig, mean: float, std: float,
               level1_signs: torch.Tensor | None = None) -> A2Mid2EJoint:
    """A fresh network normalising with ``mean``/``std``, its outputs starting at the targets' means
    (and its emotion weights inside ``level1_signs``, the constraint training keeps them in)."""
    model = A2Mid2EJoint(ModelConfig(width=cfg.width, dropout=cfg.dropout), mean=mean, std=std)
    if level1_signs is not None:
        project_level1_signs(model, level1_signs)
    with torch.no_grad():
        emo_mean = np.nan_to_num(np.nanmean(train_set.emotions, axis=0), nan=0.3) if np.isfinite(
            train_set.emotions).any() else np.full(len(EMOTION_NAMES), 0.3)
        mid_mean = np.nan_to_num(np.nanmean(train_set.midlevels, axis=0), nan=0.5) if np.isfinite(
            train_set.midlevels).any() else np.full(len(MIDLEVEL_NAMES), 0.5)
        model.midlevel.bias.copy_(torch.as_tensor(mid_mean, dtype=torch.float32))
        model.emotion.bias.copy_(torch.as_tensor(emo_mean, dtype=torch.float32)
                                 - model.emotion.weight @ torch.as_tensor(mid_mean, dtype=torch.float32))
    if cfg.init_from:  # the trunk and mid-level head from a pre-trained model; the emotion layer stays fresh
        init_from_pretrained(model, cfg.init_from)
    return model


@dataclass
class _Batches:
    """The training set as tensors, and how each step draws its batch from it."""

    specs: list[torch.Tensor]       # per clip: (frames, bands) log spectrogram, un-normalised
    emotions: torch.Tensor          # (clips, 8), NaN where a clip has no rating
    midlevels: torch.Tensor         # (clips, 7), NaN where a clip has no target
    emotion_scale: torch.Tensor | None   # per-output divisor of the squared error (None: raw MSE)
    midlevel_scale: torch.Tensor | None
    level1_signs: torch.Tensor | None = None  # (8, 7) signs the emotion weights keep (None: free)
    mode_twins: dict[int, tuple[int, int]] = field(default_factory=dict)  # TrainingSet.mode_twin_pairs

    @classmethod
    def of(cls, train_set: TrainingSet, cfg: TrainConfig, device: torch.device,
           level1_signs: torch.Tensor | None = None) -> "_Batches":
        emo_scale = _target_scale(train_set.emotions, cfg.loss_scale)
        mid_scale = _target_scale(train_set.midlevels, cfg.loss_scale)
        return cls([torch.from_numpy(np.ascontiguousarray(s)) for s in train_set.specs],
                   torch.as_tensor(train_set.emotions, dtype=torch.float32),
                   torch.as_tensor(train_set.midlevels, dtype=torch.float32),
                   emo_scale.to(device) if emo_scale is not None else None,
                   mid_scale.to(device) if mid_scale is not None else None,
                   level1_signs.to(device) if level1_signs is not None else None,
                   train_set.mode_twin_pairs())

    def twin_windows(self, minor: int, major: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(minor, major)``: the two rendered twins cropped at one random start (they are aligned
        in time), ``(WINDOW_FRAMES, bands)`` each, un-augmented."""
        frames = min(self.specs[minor].shape[0], self.specs[major].shape[0])
        start = int(torch.randint(0, max(1, frames - WINDOW_FRAMES + 1), (1,), generator=gen))
        return crop(self.specs[minor], start), crop(self.specs[major], start)

    def random_window(self, i: int, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
        """A random 10 s crop of clip ``i``, shifted by up to ``cfg.freq_shift`` bands, then
        ``cfg.gain_db`` / ``cfg.time_mask`` augmented (twolevel/augment.py)."""
        frames = self.specs[i].shape[0]
        start = int(torch.randint(0, max(1, frames - WINDOW_FRAMES + 1), (1,), generator=gen))
        window = crop(self.specs[i], start)
        if cfg.freq_shift:
            window = shift_bands(window, int(torch.randint(-cfg.freq_shift, cfg.freq_shift + 1, (1,), generator=gen)))
        if cfg.gain_db or cfg.time_mask:
            window = augment_window(window, gen, cfg.gain_db, cfg.time_mask)
        return window


class _Joined:
    """The frozen model a specialist run joins (:attr:`TrainConfig.join`): its emotions with some of its
    mid-levels replaced by the run's."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        try:
            self.model = load_checkpoint(cfg.join, device=device).eval()
        except CheckpointError as err:
            raise OptionError(f"join: {err}") from err
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.replaced = torch.zeros(len(MIDLEVEL_NAMES), dtype=torch.bool, device=device)
        self.replaced[[MIDLEVEL_NAMES.index(name) for name in cfg.join_midlevels]] = True

    def emotions(self, windows: torch.Tensor, own_mid: torch.Tensor) -> torch.Tensor:
        """``(batch, 8)`` emotions of the joined model for un-normalised ``windows`` ``(batch, frames,
        149)``, its replaced mid-levels taken from ``own_mid`` ``(batch, 7)`` (the gradient's only path)."""
        with torch.no_grad():
            joined_mid = self.model.forward_spectrogram(self.model.frontend.normalise(windows).unsqueeze(1))[0]
        return self.model.emotion(torch.where(self.replaced, own_mid, joined_mid))


@dataclass
class _Run:
    """Everything one training run changes, and everything a resumed run restores."""

    model: A2Mid2EJoint
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    ema_model: A2Mid2EJoint | None = None
    epoch: int = 0                  # epochs finished
    best_r: float = -math.inf
    best_epoch: int = -1            # 0-based; -1 before the first kept state
    best_state: dict | None = None
    history: list = field(default_factory=list)
    swa_sum: dict | None = None     # running sum of the kept states over the averaged epochs
    swa_count: int = 0
    joined: _Joined | None = None   # TrainConfig.join: the frozen model whose emotion loss this run learns

    @property
    def kept(self) -> A2Mid2EJoint:
        """The weights that are validated and kept: the moving average when there is one."""
        return self.ema_model if self.ema_model is not None else self.model

    def state(self, cfg: TrainConfig, n_train: int) -> dict:
        """What :func:`_save_run` writes after every epoch."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                 "epoch": self.epoch, "best_r": self.best_r, "best_epoch": self.best_epoch,
                 "best_state": self.best_state, "history": self.history, "config": cfg.to_dict(),
                 "n_train": n_train, "swa_sum": self.swa_sum, "swa_count": self.swa_count}
        if self.ema_model is not None:
            state["ema"] = self.ema_model.state_dict()
        return state


def _same_settings(saved: dict | None, cfg: TrainConfig, ignore: Sequence[str] = ()) -> bool:
    """Whether settings saved by an earlier run equal ``cfg``, outside ``ignore``. A setting the
    earlier run's version did not have counts as its default (defaults keep the old behaviour)."""
    if saved is None:
        return False
    full = {**TrainConfig().to_dict(), **dict(saved)}
    now = cfg.to_dict()
    return {k: v for k, v in full.items() if k not in ignore} == {k: v for k, v in now.items() if k not in ignore}


def _resume_run(run: _Run, state_path: Path, cfg: TrainConfig, n_train: int) -> None:
    """Restore ``run`` from the state written after an earlier run's last epoch."""
    try:
        st = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is one message
        raise CheckpointError(f"{state_path}: cannot resume ({str(err).splitlines()[0]})") from None
    if not _same_settings(st.get("config"), cfg, ignore=RESUMABLE_CHANGES) or st.get("n_train") != n_train:
        raise CheckpointError(f"{state_path}: was written with other settings or data; "
                              "delete it or run without --resume")
    run.model.load_state_dict(st["model"])
    if run.ema_model is not None:
        run.ema_model.load_state_dict(st["ema"])
    run.optimizer.load_state_dict(st["optimizer"])
    run.generator.set_state(st["generator"])
    torch.set_rng_state(st["torch_rng"])
    run.epoch, run.best_r, run.best_epoch = st["epoch"], st["best_r"], st["best_epoch"]
    run.best_state, run.history = st["best_state"], st["history"]
    run.swa_sum, run.swa_count = st.get("swa_sum"), int(st.get("swa_count", 0))


def _save_run(run: _Run, state_path: Path, cfg: TrainConfig, n_train: int) -> None:
    """Write the resumable state atomically (a killed run never leaves half a file)."""
    Path(state_path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(state_path) + ".tmp")
    torch.save(run.state(cfg, n_train), tmp)
    os.replace(tmp, state_path)


@contextlib.contextmanager
def _frozen_batch_norm_statistics(model: torch.nn.Module):
    """Batch norm still normalises by the batch's statistics (train mode) but does not move its
    running statistics (momentum 0) inside this block."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


def _train_epoch(run: _Run, batches: _Batches, cfg: TrainConfig, device: torch.device) -> dict:
    """One pass over the training clips in random order; returns the epoch's mean losses and lr."""
    for group in run.optimizer.param_groups:
        group["lr"] = cfg.lr * _lr_factor(cfg, run.epoch)
    model = run.model
    model.train()
    n = len(batches.specs)
    order = torch.randperm(n, generator=run.generator)
    sums = np.zeros(9)
    steps = 0
    for b in range(0, n, cfg.batch_size):
        idx = order[b:b + cfg.batch_size]
        if len(idx) < 2:  # batch normalisation needs two items
            continue
        windows = [batches.random_window(i, cfg, run.generator) for i in idx.tolist()]
        n_real = len(windows)
        n_pairs = n_real // 2 if cfg.modulation_weight else 0
        n_rhythm = (n_real - n_real // 2) if cfg.rhythm_weight else 0
        pairs = [modulation_pair(batches.specs[i], run.generator, WINDOW_FRAMES) for i in idx[:n_pairs].tolist()]
        pairs += [rhythm_pair(batches.specs[i], run.generator, WINDOW_FRAMES) for i in idx[n_real - n_rhythm:].tolist()]
        # drawn after the others, so that runs without it draw exactly what they drew before
        n_clash = n_real // 2 if cfg.dissonance_weight else 0
        pairs += [dissonance_pair(batches.specs[i], run.generator, WINDOW_FRAMES) for i in idx[:n_clash].tolist()]
        if cfg.mode_weight:  # clips without a clear key give no pair
            modes = [mode_pair(batches.specs[i], run.generator, WINDOW_FRAMES) for i in idx[n_real // 2:].tolist()]
            modes = [p for p in modes if p is not None]
            if cfg.mode_envelope:  # drawn after the pairs, so that runs without it draw what they drew before
                modes = [random_percussive_envelope(p, run.generator)
                         if float(torch.rand(1, generator=run.generator)) < cfg.mode_envelope else p for p in modes]
            pairs += modes
        n_mode = len(pairs) - n_pairs - n_rhythm - n_clash
        if cfg.mode_twin_weight:  # drawn after the others, so that runs without it draw what they drew before
            in_batch = dict.fromkeys(batches.mode_twins[i] for i in idx.tolist() if i in batches.mode_twins)
            pairs += [batches.twin_windows(minor, major, run.generator) for minor, major in in_batch]
        n_twin = len(pairs) - n_pairs - n_rhythm - n_clash - n_mode
        spliced = [c for c, _ in pairs] + [t for _, t in pairs]  # controls, then their twins
        shared = cfg.modulation_batch == "shared"
        stacked = torch.stack(windows + spliced if shared else windows).to(device)  # un-normalised, real ones first
        mid, emo = model.forward_spectrogram(model.frontend.normalise(stacked).unsqueeze(1))
        if run.joined is not None:  # the emotions the joined model gives with this run's mid-levels in it
            emo = run.joined.emotions(stacked[:n_real], mid[:n_real])
        l_emo = masked_mse(emo[:n_real], batches.emotions[idx].to(device), batches.emotion_scale)
        l_mid = masked_mse(mid[:n_real], batches.midlevels[idx].to(device), batches.midlevel_scale)
        loss = cfg.emotion_weight * l_emo + cfg.midlevel_weight * l_mid
        l_mod, l_rhythm, l_clash, l_mode, l_twin = (torch.zeros(()) for _ in range(5))
        if pairs:
            if shared:
                mid_spliced = mid[n_real:]
            else:  # their own batch-norm batch, and the running statistics stay those of real windows
                with _frozen_batch_norm_statistics(model):
                    xs = model.frontend.normalise(torch.stack(spliced).to(device)).unsqueeze(1)
                    mid_spliced = model.forward_spectrogram(xs)[0]
            controls, twins = mid_spliced[:len(pairs)], mid_spliced[len(pairs):]
            if n_pairs:
                l_mod = contrast_loss(controls[:n_pairs], twins[:n_pairs], TONAL_STABILITY, batches.midlevel_scale)
                loss = loss + cfg.modulation_weight * l_mod
            if n_rhythm:
                rhythm = slice(n_pairs, n_pairs + n_rhythm)
                l_rhythm = contrast_loss(controls[rhythm], twins[rhythm], RHYTHM_STABILITY, batches.midlevel_scale)
                loss = loss + cfg.rhythm_weight * l_rhythm
            if n_clash:  # the clashing mix must score the higher dissonance
                clash = slice(n_pairs + n_rhythm, n_pairs + n_rhythm + n_clash)
                l_clash = contrast_loss(controls[clash], twins[clash], DISSONANCE, batches.midlevel_scale)
                loss = loss + cfg.dissonance_weight * l_clash
            if n_mode:  # the minor twin must score the higher minorness
                mode = slice(n_pairs + n_rhythm + n_clash, n_pairs + n_rhythm + n_clash + n_mode)
                l_mode = contrast_loss(controls[mode], twins[mode], MINORNESS, batches.midlevel_scale)
                loss = loss + cfg.mode_weight * l_mode
            if n_twin:  # the same for rendered twins: the minor one first
                rendered = slice(len(pairs) - n_twin, None)
                l_twin = contrast_loss(controls[rendered], twins[rendered], MINORNESS, batches.midlevel_scale)
                loss = loss + cfg.mode_twin_weight * l_twin
        l_add = torch.zeros(())
        if cfg.additivity_weight:  # drawn last, so that runs without it draw what they drew before
            n_add = max(1, n_real // 4)
            with _frozen_batch_norm_statistics(model):  # one batch-norm batch for all four inputs
                normalised = model.frontend.normalise(torch.stack(windows[:n_add]).to(device))
                xa = interaction_inputs(normalised, run.generator).unsqueeze(1)
                l_add = additivity_loss(model.forward_spectrogram(xa)[0], batches.midlevel_scale)
            loss = loss + cfg.additivity_weight * l_add
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        if batches.level1_signs is not None:  # projected gradient: the layer stays linear, only its signs are fixed
            project_level1_signs(model, batches.level1_signs)
        if run.ema_model is not None:
            _ema_update(run.ema_model, model, cfg.ema)
        sums += [float(loss.detach()), float(l_emo.detach()), float(l_mid.detach()), float(l_mod.detach()),
                 float(l_rhythm.detach()), float(l_clash.detach()), float(l_add.detach()), float(l_mode.detach()), float(l_twin.detach())]
        steps += 1
    mean_loss = [float(v) / max(steps, 1) for v in sums]
    rec = {"epoch": run.epoch + 1, "loss": mean_loss[0], "loss_emotion": mean_loss[1],
           "loss_midlevel": mean_loss[2], "lr": float(run.optimizer.param_groups[0]["lr"])}
    if cfg.modulation_weight:
        rec["loss_modulation"] = mean_loss[3]
    if cfg.rhythm_weight:
        rec["loss_rhythm"] = mean_loss[4]
    if cfg.dissonance_weight:
        rec["loss_dissonance"] = mean_loss[5]
    if cfg.additivity_weight:
        rec["loss_additivity"] = mean_loss[6]
    if cfg.mode_weight:
        rec["loss_mode"] = mean_loss[7]
    if cfg.mode_twin_weight:
        rec["loss_mode_twins"] = mean_loss[8]
    return rec


def _validate_epoch(run: _Run, rec: dict, val_set: TrainingSet | None) -> bool:
    """Score the kept weights on ``val_set`` into ``rec``; keep them if best. Returns whether kept.

    Without validation clips every epoch is "best", so the last epoch's state is kept.
    """
    improved = False
    if val_set is not None and len(val_set):
        s = score(run.kept, val_set)
        rec["val_r"] = float(s["average"])
        rec["val_midlevel_r"] = float(s["midlevel_average"])
        if np.isfinite(s["average"]) and s["average"] > run.best_r:
            run.best_r, run.best_epoch, improved = float(s["average"]), run.epoch, True
    else:
        run.best_epoch, improved = run.epoch, True
    if improved:
        run.best_state = _state_copy(run.kept)
    return improved


def _swa_update(run: _Run, cfg: TrainConfig) -> None:
    """Add the kept weights to the running sum when the finished epoch is one of the last ``cfg.swa_epochs``."""
    if cfg.swa_epochs <= 0 or run.epoch <= cfg.epochs - cfg.swa_epochs:  # run.epoch: epochs finished
        return
    state = _state_copy(run.kept)
    if run.swa_sum is None:
        run.swa_sum = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    else:
        for k, v in state.items():
            run.swa_sum[k] = run.swa_sum[k] + v.double() if v.is_floating_point() else v
    run.swa_count += 1


def _swa_state(run: _Run, like: dict) -> dict | None:
    """The averaged state (dtypes of ``like``), or None when nothing was averaged."""
    if not run.swa_count or run.swa_sum is None:
        return None
    return {k: (v / run.swa_count).to(like[k].dtype) if like[k].is_floating_point() else v.clone()
            for k, v in run.swa_sum.items()}


def _state_copy(model: A2Mid2EJoint) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _progress_bar(cfg: TrainConfig, start_epoch: int, enabled: bool):
    if not enabled:
        return None
    from .progress import counter

    return counter(f"train w={cfg.width:g}", cfg.epochs, "epoch", initial=start_epoch)


def _show_epoch(bar, rec: dict, run: _Run) -> None:
    if bar is None:
        return
    post = {"loss": f"{rec['loss']:.4f}", "emo": f"{rec['loss_emotion']:.4f}", "mid": f"{rec['loss_midlevel']:.4f}"}
    if "val_r" in rec:
        post["val_r"] = f"{rec['val_r']:.3f}"
        post["best"] = f"{run.best_r:.3f}@{run.best_epoch + 1}"
    bar.set_postfix(post)
    bar.update(1)


def train(train_set: TrainingSet, cfg: TrainConfig, val_set: TrainingSet | None = None,
          device: str | torch.device = "cpu", state_path: Path | None = None, resume: bool = False,
          progress: bool = False, on_epoch: EpochCallback | None = None) -> tuple[A2Mid2EJoint, dict]:
    """Train one model; returns ``(model, summary)``.

    Args:
        train_set: items to learn from.
        cfg: hyper-parameters; ``cfg.epochs`` is the maximum number of epochs.
        val_set: clips for early stopping (best average emotion r is kept). Without it the
            state after the last epoch is returned.
        state_path: where to write the resumable training state after every epoch.
        resume: continue from ``state_path`` if it exists.
        on_epoch: called with each epoch's record (epoch, losses, val r, seconds).

    ``summary`` holds the run's settings, history and timings, and ``last_state``: the weights
    after the last epoch (the same as the model's when there is no ``val_set``).
    """
    fit_set = layer_fit_set(train_set, val_set) if cfg.emotion_layer != "trained" else None
    _check_run(train_set, cfg, fit_set)
    device = torch.device(device)
    if cfg.join and val_set is not None and len(val_set):
        raise OptionError("join trains a specialist for another model, whose emotions validation cannot score: "
                          "train it on all clips (--val-fraction 0), without --folds")
    joined = _Joined(cfg, device) if cfg.join else None  # loaded before any work: a bad checkpoint stops the run now
    gen = _set_seed(cfg.seed)  # before the model: its initial weights come from this seed
    mean, std = spectrogram_stats(train_set.specs)
    signs = (torch.as_tensor(level1_sign_mask(train_set), dtype=torch.float32)
             if cfg.level1_signs == "ratings" else None)
    model = _new_model(train_set, cfg, mean, std, signs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = _Batches.of(train_set, cfg, device, signs)
    run = _Run(model, opt, gen, ema_model=copy.deepcopy(model) if cfg.ema > 0 else None, joined=joined)
    if resume and state_path is not None and Path(state_path).is_file():
        _resume_run(run, state_path, cfg, len(train_set))
    validating = val_set is not None and len(val_set) > 0
    bar = _progress_bar(cfg, run.epoch, progress)
    stale = 0 if run.best_epoch < 0 else run.epoch - 1 - run.best_epoch  # epochs since the best
    while run.epoch < cfg.epochs:
        t0 = time.time()
        rec = _train_epoch(run, batches, cfg, device)
        stale = 0 if _validate_epoch(run, rec, val_set) else stale + 1
        rec["seconds"] = float(time.time() - t0)
        run.history.append(rec)
        run.epoch += 1
        _swa_update(run, cfg)
        _show_epoch(bar, rec, run)
        if on_epoch is not None:
            on_epoch(rec)
        if state_path is not None:
            _save_run(run, state_path, cfg, len(train_set))
        if validating and cfg.patience and stale >= cfg.patience and not cfg.swa_epochs:  # averaging needs the last epochs
            break
    if bar is not None:
        bar.close()
    # A run without validation clips (--val-fraction 0) ends with the last epoch's state: keep it
    # beside the best, so cross-validation can score both ways of picking the epoch.
    last_state = _state_copy(run.kept)
    swa_state = _swa_state(run, last_state)
    if fit_set is not None:  # every state the run reports gets its own fitted layer
        signs = level1_sign_mask(fit_set) if cfg.emotion_layer == "least-squares-signs" else None
        last_state, swa_state, run.best_state = (
            None if state is None else with_fitted_layer(model, state, fit_set, signs, cfg.emotion_layer_shrinkage)
            for state in (last_state, swa_state, run.best_state))
    if swa_state is not None:
        model.load_state_dict(swa_state)
    elif run.best_state is not None:
        model.load_state_dict(run.best_state)
    model.eval()
    summary = {"config": cfg.to_dict(), "epochs_run": len(run.history), "best_epoch": run.best_epoch + 1,
               "best_val_r": run.best_r if val_set is not None else None, "normalisation": {"mean": mean, "std": std},
               "n_train": len(train_set), "n_val": len(val_set) if val_set is not None else 0,
               "seconds": float(sum(h["seconds"] for h in run.history)), "history": run.history,
               "multiply_adds": multiply_adds(cfg.width), "last_state": last_state,
               "best_state": run.best_state, "swa_epochs_averaged": run.swa_count,
               "emotion_layer_clips": len(fit_set) if fit_set is not None else 0}
    return model, summary


def layer_fit_set(train_set: TrainingSet, val_set: TrainingSet | None = None) -> TrainingSet:
    """The clips a least-squares emotion layer is fitted on: every rated clip of the run, training
    and validation, with all its ratings (teacher-labelled windows and mid-level-only items left out;
    with ``distill_rated_weight`` the training clips' targets are the blend they were trained on)."""
    items = train_set if val_set is None or not len(val_set) else TrainingSet.concat(train_set, val_set)
    keep = rated_items(items) & np.isfinite(items.emotions).all(axis=1)
    return items.subset(np.flatnonzero(keep))


def require_enough_to_fit(fit_set: TrainingSet, what: str) -> None:
    """:class:`OptionError` naming ``what`` unless ``fit_set`` has more clips than a least-squares
    emotion layer has weights per emotion (one per mid-level and a bias)."""
    n_weights = fit_set.midlevels.shape[1] + 1
    if len(fit_set) <= n_weights:
        raise OptionError(f"{what} fits {n_weights} weights per emotion on the rated clips, which needs more "
                          f"than {n_weights}; got {len(fit_set)}")


def with_fitted_layer(model: A2Mid2EJoint, state: dict, fit_set: TrainingSet, signs: np.ndarray | None = None,
                      shrinkage: float = 0.0) -> dict:
    """``state`` with its emotion layer replaced by the least-squares fit of ``fit_set``'s ratings on
    the clip-level mid-levels the network of ``state`` gives them (``signs``: bounds, as
    ``level1_sign_mask`` gives them), shrunk towards the state's own layer by ``shrinkage``
    (``TrainConfig.emotion_layer``; ``model`` is used as scratch and left holding ``state``)."""
    from .emotion_layer import least_squares_layer

    model.load_state_dict(state)
    mids, _ = predict_spectrograms(model, fit_set.specs)
    like = state["emotion.weight"]
    weight, bias = least_squares_layer(mids, fit_set.emotions, signs, prior=like.double().cpu().numpy(),
                                       shrinkage=shrinkage)
    return {**state, "emotion.weight": torch.as_tensor(weight, dtype=like.dtype, device=like.device),
            "emotion.bias": torch.as_tensor(bias, dtype=like.dtype, device=like.device)}


@torch.no_grad()
def _ema_update(ema_model: A2Mid2EJoint, model: A2Mid2EJoint, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * current, for weights and batch-norm statistics."""
    for e, m in zip(ema_model.state_dict().values(), model.state_dict().values()):
        if e.is_floating_point():
            e.mul_(decay).add_(m.detach(), alpha=1 - decay)
        else:
            e.copy_(m)


def save_trained(model: A2Mid2EJoint, path: Path, summary: dict, extra: dict | None = None,
                 model_version: str | None = None) -> Path:
    """Checkpoint with the training summary (history shortened) as metadata."""
    meta = {k: v for k, v in summary.items() if k not in ("history", "last_state", "best_state")}
    meta["final_epoch"] = summary["history"][-1] if summary.get("history") else None
    meta.update(extra or {})
    # Width, learning rate, seed and a digest of the weights: two different checkpoints never share a version.
    version = model_version or (f"a2mid2e-joint-w{model.config.width:g}-lr{summary['config']['lr']:g}"
                                f"-seed{summary['config']['seed']}-{weights_digest(model.state_dict())}")
    return save_checkpoint(model, path, model_version=version, metadata=meta)


# --- cross-validation ----------------------------------------------------------------------------

def stratified_folds(categories: Sequence[str], k: int, seed: int) -> list[np.ndarray]:
    """Indices of ``k`` folds, each category spread evenly (deterministic for a seed)."""
    if k < 2:
        raise OptionError("cross-validation needs at least 2 folds")
    if k > len(categories):
        raise OptionError(f"{k} folds need at least {k} clips, got {len(categories)}")
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for cat in sorted(set(categories)):
        idx = [i for i, c in enumerate(categories) if c == cat]
        idx = list(rng.permutation(idx))
        for j, i in enumerate(idx):
            folds[(j + offset) % k].append(int(i))
        offset += len(idx)
    return [np.array(sorted(f)) for f in folds]


def validation_split(data: TrainingSet, fraction: float, seed: int) -> tuple[TrainingSet, TrainingSet | None]:
    """``(train, validation)``: about ``fraction`` of the clips held out, each category spread evenly.

    ``fraction`` 0 keeps every clip for training (validation None: the last epoch is kept).
    The held-out part is the first of ``round(1 / fraction)`` stratified folds drawn with
    ``seed + 1000`` (so it does not follow the model's own seed). Pearson r over fewer than 3
    clips cannot pick an epoch, so a split that leaves fewer is refused.
    """
    if fraction <= 0:
        return data, None
    n_parts = max(2, round(1 / fraction))
    if len(data) < 3 * n_parts:
        raise OptionError(f"--val-fraction {fraction:g} of {len(data)} clips leaves fewer than 3 to "
                          "validate on: give more clips, or --val-fraction 0 to keep the last epoch")
    kept, held_out = _hold_out(data.categories, n_parts, seed + 1000)
    return data.subset(kept), data.subset(held_out)


def _hold_out(categories: Sequence[str], n_parts: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held_out)`` indices, both ascending: the first of ``n_parts`` stratified folds is held out."""
    parts = stratified_folds(categories, n_parts, seed)
    held = set(parts[0].tolist())
    return np.array([i for i in range(len(categories)) if i not in held], dtype=int), parts[0]


def inner_folds_for(k: int, val_fraction: float) -> int | None:
    """Inner folds per cross-validation fold so that about ``val_fraction`` of all clips validates.

    None (0 given) means :func:`cross_validate`'s default, ``k - 1``.
    """
    return max(2, round((1 - 1 / k) / val_fraction)) if val_fraction > 0 else None


def cross_validate(data: TrainingSet, cfg: TrainConfig, k: int = 5, folds_to_run: Sequence[int] | None = None,
                   device: str | torch.device = "cpu", results_path: Path | None = None, progress: bool = False,
                   extra_train: Callable[[TrainingSet], TrainingSet] | None = None,
                   log: Callable[[str], None] | None = None, inner_folds: int | None = None,
                   fold_seed: int | None = None, models_dir: Path | None = None, extra_settings: dict | None = None
                   ) -> dict:
    """k-fold CV: per fold, the test fold is held out, 1/(k-1)... of the rest validates early stopping.

    For each fold the remaining clips are split again (stratified) into ``k - 1`` parts, one of
    which is the validation set; r is reported on the test fold for the best-validation state
    and for the state after the last epoch. ``inner_folds`` (default ``k - 1``) sets the size of
    that validation part: 1/inner_folds of the non-test clips. Results are written to ``results_path`` after every
    fold, and folds already there are not run again.

    ``fold_seed`` (default ``cfg.seed``) draws the partition and the validation parts, so models
    with different ``cfg.seed`` can share one partition (members of an ensemble). ``models_dir``
    keeps each fold's best-validation weights as ``fold<f>.pt`` (a :func:`save_trained` checkpoint).
    ``extra_settings`` describes what ``extra_train`` adds (e.g. distillation teachers): it is
    written to the report and, like the config, must match for finished folds to be reused.
    """
    if cfg.join:  # its fold models would join a model that saw every clip: no test fold would be unseen
        raise OptionError("join trains a specialist for a model trained on all clips: cross-validation cannot "
                          "score it; train on all clips (--val-fraction 0), without --folds")
    cats = data.categories or [""] * len(data)
    fold_seed = cfg.seed if fold_seed is None else int(fold_seed)
    folds = stratified_folds(cats, k, fold_seed)
    inner_k = inner_folds or k - 1
    results = {"k": k, "inner_folds": inner_k, "config": cfg.to_dict(), "multiply_adds": multiply_adds(cfg.width),
               "fold_seed": fold_seed, "extra_settings": extra_settings or {},
               "folds": _finished_folds(results_path, cfg, k, inner_k, fold_seed, extra_settings or {})}
    for f in (folds_to_run if folds_to_run is not None else range(k)):
        if str(f) in results["folds"]:
            continue
        train_idx, val_idx = _inner_split(cats, folds[f], inner_k, fold_seed + 1000 + f)
        results["folds"][str(f)] = _run_fold(data, f, train_idx, val_idx, folds[f], cfg, device, progress,
                                             extra_train, log, models_dir)
        if results_path is not None:
            Path(results_path).parent.mkdir(parents=True, exist_ok=True)
            Path(results_path).write_text(json.dumps(results, indent=1))
    results["summary"] = summarise_cv(results)
    if results_path is not None:
        Path(results_path).write_text(json.dumps(results, indent=1))
    return results


def _finished_folds(results_path: Path | None, cfg: TrainConfig, k: int, inner_k: int, fold_seed: int,
                    extra_settings: dict) -> dict:
    """Folds already in ``results_path`` from a run with the same settings (none otherwise)."""
    if results_path is not None and Path(results_path).is_file():
        old = json.loads(Path(results_path).read_text())
        if (_same_settings(old.get("config"), cfg) and old.get("k") == k and old.get("inner_folds", k - 1) == inner_k
                and old.get("fold_seed", cfg.seed) == fold_seed and old.get("extra_settings", {}) == extra_settings):
            return old.get("folds", {})
    return {}


def _inner_split(cats: Sequence[str], test_idx: np.ndarray, inner_k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)`` of the clips outside ``test_idx``: 1/inner_k of them validates."""
    rest = np.array(sorted(set(range(len(cats))) - set(test_idx.tolist())))
    kept, held_out = _hold_out([cats[i] for i in rest], inner_k, seed)
    return rest[kept], rest[held_out]


def _run_fold(data: TrainingSet, f: int, train_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray,
              cfg: TrainConfig, device, progress: bool, extra_train, log, models_dir: Path | None = None) -> dict:
    """Train on ``train_idx`` (early stopping on ``val_idx``) and score on ``test_idx``: the fold's record."""
    train_set = data.subset(train_idx)
    if extra_train is not None:
        train_set = extra_train(train_set)

    def on_epoch(rec):
        if log is not None:
            log(json.dumps({"fold": f, **{k2: (round(v, 5) if isinstance(v, float) else v)
                                            for k2, v in rec.items()}}))

    model, summary = train(train_set, cfg, data.subset(val_idx), device=device, progress=progress,
                           on_epoch=on_epoch)
    test = data.subset(test_idx)
    if models_dir is not None:  # the model train() returns: the weight average with swa_epochs, else the best
        save_trained(model, Path(models_dir) / f"fold{f}.pt", summary, {"fold": f, "test_ids": test.ids})
    swa = score(model, test) if summary["swa_epochs_averaged"] else None
    if summary["best_state"] is not None:
        model.load_state_dict(summary["best_state"])
        if swa is not None and models_dir is not None:  # both kept, to compare how their explanations fit
            save_trained(model, Path(models_dir) / f"fold{f}-best.pt", summary,
                         {"fold": f, "test_ids": test.ids, "state": "best validation"})
    best = score(model, test)
    model.load_state_dict(summary["last_state"])
    last = score(model, test)
    if models_dir is not None:  # the state the shipped recipes keep (no validation: the last epoch)
        save_trained(model, Path(models_dir) / f"fold{f}-last.pt", summary,
                     {"fold": f, "test_ids": test.ids, "state": "last epoch"})
    if log is not None:
        log(json.dumps({"fold": f, "test_average": best["average"], "test_average_last": last["average"],
                        **({"test_average_swa": swa["average"]} if swa else {}),
                        "best_epoch": summary["best_epoch"]}))
    record = {"test_ids": test.ids, "n_train": len(train_set),
              "n_val": len(val_idx), "best_epoch": summary["best_epoch"],
              "epochs_run": summary["epochs_run"], "best_val_r": summary["best_val_r"],
              "test": best, "test_last": last, "seconds": summary["seconds"],
              "epoch_seconds": summary["seconds"] / max(summary["epochs_run"], 1)}
    if swa is not None:
        record["test_swa"] = swa
    return record


def _mean_sd(values: Sequence[float]) -> dict:
    """``{"mean", "sd"}`` over folds (sd with ddof 1; 0 for a single fold)."""
    vals = np.asarray(values, dtype=float)
    return {"mean": float(np.mean(vals)), "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0}


def summarise_cv(results: dict) -> dict:
    """Mean and sd over finished folds of each emotion's test r and of the average."""
    folds = list(results.get("folds", {}).values())
    out: dict = {"n_folds": len(folds)}
    if not folds:
        return out
    for name in (*EMOTION_NAMES, "average"):
        out[name] = _mean_sd([f["test"]["emotions"][name] if name != "average" else f["test"]["average"] for f in folds])
    # The state after the last epoch: what training without validation clips gives (older reports lack it).
    if all("test_last" in f for f in folds):
        out["average_last"] = _mean_sd([f["test_last"]["average"] for f in folds])
    if all("test_swa" in f for f in folds):  # the weight average (TrainConfig.swa_epochs)
        out["average_swa"] = _mean_sd([f["test_swa"]["average"] for f in folds])
        out["swa_emotions"] = {name: _mean_sd([f["test_swa"]["emotions"][name] for f in folds]) for name in EMOTION_NAMES}
    mids = np.array([f["test"]["midlevel_average"] for f in folds])
    out["midlevel_average"] = {"mean": float(np.nanmean(mids)), "sd": float(np.nanstd(mids, ddof=1)) if len(mids) > 1 else 0.0}
    out["best_epochs"] = [f["best_epoch"] for f in folds]
    out["epoch_seconds"] = float(np.mean([f["epoch_seconds"] for f in folds]))
    return out


def format_cv_table(results: dict) -> str:
    s = results.get("summary") or summarise_cv(results)
    if not s.get("n_folds"):
        return "no finished folds"
    head = "  ".join(f"{e[:5]:>11}" for e in (*EMOTION_NAMES, "average"))
    row = "  ".join(f"{s[e]['mean']:.3f}±{s[e]['sd']:.3f}" for e in (*EMOTION_NAMES, "average"))
    others = "".join(f"\n{label}: {s[key]['mean']:.3f}±{s[key]['sd']:.3f}"
                     for key, label in (("average_last", "average, last epoch"),
                                        ("average_swa", "average, weight average")) if key in s)
    return (f"width {results['config']['width']:g}, {s['n_folds']}/{results['k']} folds, "
            f"{results['multiply_adds'] / 1e9:.3f} GMAC per 10 s window\n{head}\n{row}{others}")
