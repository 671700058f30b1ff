"""Distillation: an ensemble of trained models labels unrated audio with emotions, and the compact
two-level student learns from those labels beside the human ratings.

The student is an ordinary :class:`~twolevel.model.A2Mid2EJoint` (one CNN, 7 mid-levels, one
linear layer), so level-1 explanations stay exact; only its training set grows. Rated clips keep
their human ratings (or, with ``rated_weight``, a blend of them with the teachers' outputs); each
unrated item (a corpus window) gets the mean of the teachers' emotion outputs as its emotion target
and keeps its own descriptor targets for the mid-levels.

In cross-validation the teachers of a fold must not have seen that fold's test clips: members
trained with ``cross_validate(..., fold_seed=S, models_dir=DIR)`` keep one model per fold
(``DIR/fold<F>.pt``, whose metadata lists its test clips), and :func:`fold_teachers` picks the
fold whose test clips are disjoint from the student's training clips.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .model import A2Mid2EJoint
from .training import CONSTRUCTED_CATEGORY, MIXED_CATEGORY, TrainingSet, predict_spectrograms


def teacher_emotions(teachers: Sequence[A2Mid2EJoint], specs: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the teachers' clip-level emotion outputs, ``(len(specs), 8)`` float64 (each item is
    scored as ``predict`` scores a clip: the mean over its consecutive 10 s windows)."""
    if not teachers:
        raise ValueError("no teachers")
    return np.mean([predict_spectrograms(t, specs)[1] for t in teachers], axis=0)


def teacher_midlevels(teachers: Sequence[A2Mid2EJoint], specs: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the teachers' clip-level mid-level outputs, ``(len(specs), 7)`` float64 (scored as
    :func:`teacher_emotions` scores emotions). The teachers' outputs share one scale: all of them
    were fitted to the same descriptor targets."""
    if not teachers:
        raise ValueError("no teachers")
    return np.mean([predict_spectrograms(t, specs)[0] for t in teachers], axis=0)


def pseudo_labelled(items: TrainingSet, teachers: Sequence[A2Mid2EJoint],
                    midlevel_teachers: Sequence[A2Mid2EJoint] = ()) -> TrainingSet:
    """``items`` with their emotion targets set to the teachers' mean output, and their mid-level
    targets set to ``midlevel_teachers``' mean output where given (kept otherwise)."""
    mids = teacher_midlevels(midlevel_teachers, items.specs) if midlevel_teachers else items.midlevels.copy()
    return TrainingSet(list(items.ids), list(items.specs), teacher_emotions(teachers, items.specs),
                       mids, list(items.categories), dict(items.mode_twins))


def _without_targets(ids: list[str], specs: list[np.ndarray], like: TrainingSet, category: str) -> TrainingSet:
    """Built windows as training items with no targets (NaN, as many columns as ``like`` has), for
    teachers to label."""
    n = len(ids)
    return TrainingSet(ids, specs, np.full((n, like.emotions.shape[1]), np.nan),
                       np.full((n, like.midlevels.shape[1]), np.nan), [category] * n)


#: The training contrasts' constructions (twolevel/augment.py), in the order
#: :func:`constructed_windows` takes them.
CONSTRUCTIONS = ("modulation", "rhythm", "dissonance")


def constructed_windows(items: TrainingSet, n_pairs: int, seed: int = 0) -> TrainingSet:
    """``n_pairs`` pairs of 10 s windows built from random ``items`` as the training contrasts build
    theirs (:func:`~twolevel.augment.modulation_pair`, :func:`~twolevel.augment.rhythm_pair`,
    :func:`~twolevel.augment.dissonance_pair`, in turn), with no targets (NaN): teachers label them.

    Returns:
        ``2 * n_pairs`` items, each an un-normalised log spectrogram ``(313, bands)`` float32, ids
        ``"constructed:<kind>:<source id>:<k>:a|b"``.
    """
    import torch

    from .augment import dissonance_pair, modulation_pair, rhythm_pair
    from .signal import WINDOW_FRAMES

    build = {"modulation": modulation_pair, "rhythm": rhythm_pair, "dissonance": dissonance_pair}
    if not len(items):
        raise ValueError("no items to build windows from")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    ids, specs = [], []
    for k in range(n_pairs):
        kind = CONSTRUCTIONS[k % len(CONSTRUCTIONS)]
        source = int(rng.integers(len(items)))
        spec = torch.from_numpy(np.asarray(items.specs[source], dtype=np.float32))
        for side, window in zip("ab", build[kind](spec, gen, WINDOW_FRAMES)):
            ids.append(f"constructed:{kind}:{items.ids[source]}:{k}:{side}")
            specs.append(window.numpy().astype(np.float32))
    return _without_targets(ids, specs, items, CONSTRUCTED_CATEGORY)


def mixed_windows(items: TrainingSet, n: int, seed: int = 0, min_db: float = -6.0) -> TrainingSet:
    """``n`` 10 s windows, each a random crop of one of ``items`` played together with a random crop
    of another (:func:`~twolevel.augment.mix_magnitudes`, the second at ``min_db`` .. 0 dB), with no
    targets (NaN): teachers label their emotions; they have no descriptor targets.

    Mixes of the rated training clips are unrated audio from the rated clips' own domain (film
    music), where the corpus windows are game music: the teachers' answers there are what the
    student should learn from them.

    Returns:
        ``n`` items, each an un-normalised log spectrogram ``(313, bands)`` float32, ids
        ``"mixed:<id a>+<id b>:<k>"``.
    """
    import torch

    from .augment import mix_magnitudes, random_crop
    from .signal import WINDOW_FRAMES

    if len(items) < 2:
        raise ValueError("mixing needs at least 2 items")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    ids, specs = [], []
    for k in range(n):
        a, b = (int(i) for i in rng.choice(len(items), 2, replace=False))
        crop_a, crop_b = (random_crop(torch.from_numpy(np.asarray(items.specs[i], dtype=np.float32)), WINDOW_FRAMES, gen)
                          for i in (a, b))
        gain = 10.0 ** ((min_db * float(rng.random())) / 20.0)
        ids.append(f"mixed:{items.ids[a]}+{items.ids[b]}:{k}")
        specs.append(mix_magnitudes(crop_a, crop_b, gain).numpy().astype(np.float32))
    return _without_targets(ids, specs, items, MIXED_CATEGORY)


def fold_teachers(member_dirs: Sequence[Path], train_ids: Sequence[str], device="cpu") -> list[A2Mid2EJoint]:
    """Each member's model of the fold whose test clips share none with ``train_ids``.

    Raises:
        LookupError: a member has no such fold model (it was trained on another partition).
    """
    from .checkpoint import load_checkpoint

    train = set(train_ids)
    teachers = []
    for member in member_dirs:
        found = None
        for path in sorted(Path(member).glob("fold[0-9].pt")) + sorted(Path(member).glob("fold[0-9][0-9].pt")):
            model = load_checkpoint(path, device=device)  # one read: the model carries its metadata
            test = set(model.metadata.get("test_ids", []))
            if test and not test & train:
                found = model
                break
        if found is None:
            raise LookupError(f"{member}: no fold model whose test clips are outside this training set")
        teachers.append(found)
    return teachers


def with_rated_blend(rated: TrainingSet, teacher_outputs: np.ndarray, weight: float) -> TrainingSet:
    """``rated`` with each rated item's emotion targets moved towards the teachers' outputs:
    ``(1 - weight) * ratings + weight * teacher_outputs`` (``teacher_outputs``: ``(len(rated), 8)``,
    rating units). Items without ratings (NaN) stay unrated; the mid-level targets are kept."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"rated weight {weight} is outside [0, 1]")
    blended = np.where(np.isnan(rated.emotions), rated.emotions,
                       (1.0 - weight) * rated.emotions + weight * teacher_outputs)
    return TrainingSet(list(rated.ids), list(rated.specs), blended, rated.midlevels.copy(), list(rated.categories))


def unrated_items_used(n_items: int | None, n_available: int) -> int:
    """How many of ``n_available`` unrated items :func:`distilling` adds for ``n_items``: all of
    them when ``n_items`` is None or asks for more than there are."""
    return n_available if n_items is None else min(n_items, n_available)


def distilling(teachers: Sequence[Path], unrated: TrainingSet, n_items: int | None = None, seed: int = 0,
               device="cpu", midlevel_teachers: Sequence[Path] = (), constructed_pairs: int = 0,
               rated_weight: float = 0.0, mixes: int = 0) -> Callable[[TrainingSet], TrainingSet]:
    """An ``extra_train`` hook (:func:`~twolevel.training.cross_validate`, or one training run):
    adds ``n_items`` of ``unrated`` (all by default; a fixed random subset drawn with ``seed``
    otherwise), labelled by the teachers, to the training clips.

    ``teachers`` are either folders of fold models (cross-validation: each fold is taught by the
    models that never saw its test clips, :func:`fold_teachers`) or checkpoint files (one model
    trained on all clips: the teachers are used as they are). ``midlevel_teachers`` (the same kinds)
    replace the windows' descriptor targets by their mean mid-level outputs: an ensemble of
    two-level models distilled into one (none: the descriptor targets stay). ``constructed_pairs``
    adds that many pairs of windows built from those items as the training contrasts build them
    (:func:`constructed_windows`), labelled by the same teachers: the ensemble's answer on the kind
    of audio the contrasts show, for all 7 mid-levels at once (needs ``midlevel_teachers``).
    ``rated_weight`` > 0 also moves the rated clips' emotion targets that far towards the
    teachers' mean output on them (:func:`with_rated_blend`; 0 keeps the human ratings as they are).
    ``mixes`` adds that many mixes of two of the training clips (:func:`mixed_windows`, drawn anew
    from each training set, so a fold's mixes hold none of its test clips), labelled by the teachers
    for their emotions only.
    """
    from .checkpoint import load_checkpoint
    from .errors import OptionError

    paths = [Path(t) for t in teachers]
    mid_paths = [Path(t) for t in midlevel_teachers]
    if not paths:
        raise OptionError("distillation needs at least one teacher")
    folders = [p.is_dir() for p in paths + mid_paths]
    if any(folders) and not all(folders):
        raise OptionError("teachers must be all folders of fold models or all checkpoint files, not a mix")
    if not 0.0 <= rated_weight <= 1.0:
        raise OptionError(f"the rated clips' teacher weight must be within [0, 1], not {rated_weight}")
    if unrated_items_used(n_items, len(unrated)) < len(unrated):
        chosen = np.sort(np.random.default_rng(seed).choice(len(unrated), n_items, replace=False))
        unrated = unrated.subset(chosen)
    if constructed_pairs:
        if not mid_paths:
            raise OptionError("constructed windows need mid-level teachers: they have no descriptor targets")
        unrated = TrainingSet.concat(unrated, constructed_windows(unrated, constructed_pairs, seed))

    def teachers_for(group: list[Path], train_ids) -> list[A2Mid2EJoint]:
        """``group``'s models for a training set: the right fold's, or the checkpoints as they are."""
        if all(folders):
            return fold_teachers(group, train_ids, device)
        return [load_checkpoint(p, device=device) for p in group]

    def extra(train_set: TrainingSet) -> TrainingSet:
        emotion_teachers = teachers_for(paths, train_set.ids)
        if rated_weight:
            train_set = with_rated_blend(train_set, teacher_emotions(emotion_teachers, train_set.specs), rated_weight)
        grown = TrainingSet.concat(train_set, pseudo_labelled(unrated, emotion_teachers,
                                                              teachers_for(mid_paths, train_set.ids)))
        if mixes:
            rated = train_set.subset(np.flatnonzero(np.isfinite(train_set.emotions).all(axis=1)))
            mixed = mixed_windows(rated, mixes, seed)
            grown = TrainingSet.concat(grown, pseudo_labelled(mixed, emotion_teachers))
        return grown

    return extra
