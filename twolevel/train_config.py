"""Hyper-parameters of a training run: :class:`TrainConfig`, its choices and their checks.

The one place for training options and their defaults: ``twolevel-cli train`` takes its defaults
and choices from here, and :class:`TrainConfig` checks every value when it is made, before any
data is read. It imports nothing of the training code (``training.py``, the data sets, the
augmentations), so the CLI can build its ``--help`` from it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .descriptor_sets import DESCRIPTOR_SETS
from .errors import OptionError
from .labels import MIDLEVEL_NAMES
from .options import OptionRule

SCHEDULES = ("cosine", "constant")
LOSS_SCALES = ("variance", "raw")
#: Where the contrast windows pass (see :attr:`TrainConfig.modulation_batch`).
MODULATION_BATCHES = ("separate", "shared")
LEVEL1_SIGN_CHOICES = ("free", "ratings")
#: How the mid -> emotion layer is set at the end of a run (see :attr:`TrainConfig.emotion_layer`).
EMOTION_LAYERS = ("trained", "least-squares", "least-squares-signs")


def _number(kind: type, low: float | None = None, high: float | None = None, hint: str = "", **open_ends) -> OptionRule:
    return OptionRule(kind, "bad_train_option", "", low=low, high=high, hint=hint, **open_ends)


def _choice(choices: tuple[str, ...]) -> OptionRule:
    return OptionRule(str, "bad_train_option", "", choices=tuple(choices))


#: The checked fields -> their rule (:class:`~twolevel.options.OptionRule`, as for explanation
#: options): the CLI builds its types from these, and :class:`TrainConfig` checks itself with them.
RULES = {
    "width": _number(float, 0, 4, low_open=True), "epochs": _number(int, 1),
    "batch_size": _number(int, 2, hint="batch normalisation needs 2 windows per batch"),
    "lr": _number(float, 0), "weight_decay": _number(float, 0), "patience": _number(int, 0),
    "emotion_weight": _number(float, 0), "midlevel_weight": _number(float, 0),
    "dropout": _number(float, 0, 1, high_open=True), "ema": _number(float, 0, 1, high_open=True),
    "freq_shift": _number(int, 0, 24), "gain_db": _number(float, 0, 24), "time_mask": _number(int, 0, 156),
    "swa_epochs": _number(int, 0), "modulation_weight": _number(float, 0, 10),
    "rhythm_weight": _number(float, 0, 10), "dissonance_weight": _number(float, 0, 10),
    "mode_weight": _number(float, 0, 10), "mode_envelope": _number(float, 0, 1),
    "mode_twin_weight": _number(float, 0, 10),
    "additivity_weight": _number(float, 0, 100),
    "schedule": _choice(SCHEDULES), "loss_scale": _choice(LOSS_SCALES), "modulation_batch": _choice(MODULATION_BATCHES),
    "level1_signs": _choice(LEVEL1_SIGN_CHOICES), "emotion_layer": _choice(EMOTION_LAYERS),
    "emotion_layer_shrinkage": _number(float, 0),
    "descriptors": _choice(DESCRIPTOR_SETS),
}


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (saved in the checkpoint metadata)."""

    width: float = 0.125
    epochs: int = 80
    batch_size: int = 8
    lr: float = 6e-3
    weight_decay: float = 1e-4
    #: Learning-rate schedule over ``epochs``: "cosine" (down to 5 % of ``lr``) or "constant".
    schedule: str = "cosine"
    #: Early stopping: stop after this many epochs without a better validation r (0 = off, every
    #: epoch runs). Off by default: the shipped recipes keep the last epoch of a run without
    #: validation, so cross-validation must run every epoch for its last-epoch score to be theirs.
    patience: int = 0
    seed: int = 0
    emotion_weight: float = 0.5
    midlevel_weight: float = 0.5
    dropout: float = 0.3
    #: "raw": MSE on the targets as they are; "variance": each output's squared error divided by
    #: that target's variance over the training set, so 0.5/0.5 weighs the two tasks equally
    #: (rank-mapped descriptor targets spread ~2.4x more than ratings/10 and would dominate).
    loss_scale: str = "variance"
    #: Decay of an exponential moving average of the weights (0 = off); the average is what is
    #: validated and kept.
    ema: float = 0.0
    #: Random shift of each training crop by up to this many filterbank bands (0 = off; 2 bands
    #: are a semitone above about 400 Hz only, twolevel/augment.py).
    freq_shift: int = 0
    #: Random gain of each training crop, up to +- this many dB (0 = off; twolevel/augment.py).
    gain_db: float = 0.0
    #: One random block of up to this many frames of each training crop set to silence (0 = off).
    time_mask: int = 0
    #: Checkpoint whose trunk and mid-level head start the model (twolevel/pretrain.py); "" = random.
    init_from: str = ""
    #: Descriptor set the mid-level targets come from (twolevel.descriptor_sets.DESCRIPTOR_SETS).
    descriptors: str = "v1"
    #: Average the kept weights (and batch-norm statistics) over the last this many epochs
    #: (stochastic weight averaging; 0 = off). The average is the model returned; the
    #: best-validation state is still reported.
    swa_epochs: int = 0
    #: Weight of the modulation contrast (twolevel/augment.py, modulation_pair; 0 = off): for half
    #: of each batch's clips, the tonal-stability output of a window spliced in one key must exceed
    #: that of the same splice moved through other keys by MODULATION_MARGIN target sds (hinge).
    modulation_weight: float = 0.0
    #: "separate": the spliced windows pass on their own, and batch norm's running statistics (what
    #: inference uses) are the real windows' only; "shared": they join the real windows' batch-norm
    #: batch and its running statistics. Both cost emotion r in cross-validation (MODEL_CARD.md).
    modulation_batch: str = "separate"
    #: Weight of the rhythm contrast (twolevel/augment.py, rhythm_pair; 0 = off): for the other half
    #: of each batch's clips, the rhythm-stability output of a re-timed window whose notes stay in
    #: place must exceed that of its twin whose notes are displaced by MODULATION_MARGIN target sds.
    #: Its windows pass as ``modulation_batch`` says.
    rhythm_weight: float = 0.0
    #: Weight of the dissonance contrast (twolevel/augment.py, dissonance_pair; 0 = off): for half of
    #: each batch's clips, the dissonance output of a crop mixed with its copy a clashing interval
    #: away must exceed that of the crop mixed with its copy a consonant interval away by
    #: MODULATION_MARGIN target sds. Its windows pass as ``modulation_batch`` says.
    dissonance_weight: float = 0.0
    #: Weight of the mode contrast (twolevel/augment.py, mode_pair; 0 = off): for the other half of
    #: each batch's clips, a crop and the same crop with the third and sixth of its key exchanged
    #: with their neighbours (major <-> minor); the minorness output of the minor one must exceed the
    #: major one's by MODULATION_MARGIN target sds. Clips with no clear key give no pair. Its
    #: windows pass as ``modulation_batch`` says.
    mode_weight: float = 0.0
    #: With the mode contrast: the share of its pairs whose two windows both get one random
    #: percussive envelope (twolevel/augment.py, random_percussive_envelope: struck every 0.15-0.6 s,
    #: decaying in 0.04-0.3 s), so that minorness is learnt from decaying notes too (0 = none).
    mode_envelope: float = 0.0
    #: Weight of the rendered-twin mode contrast (0 = off): for every training window that has a
    #: rendered mode twin (``TrainingSet.mode_twins``: a corpus of ``scripts/render_tonal_corpus.py
    #: --twins``), the minorness output of the minor twin must exceed the major twin's by
    #: MODULATION_MARGIN target sds (hinge); both cropped at the same start. Real audio, not an edit
    #: of the spectrogram as the mode contrast's. Its windows pass as ``modulation_batch`` says.
    mode_twin_weight: float = 0.0
    #: Weight of the additivity penalty (twolevel/additivity.py; 0 = off): for a quarter of each
    #: batch's windows, the squared interaction of two random sets of hidden patches on the
    #: mid-level outputs, in target sds squared, so that level-2 surrogates fit the network better.
    #: Its inputs pass as the contrasts' do with ``modulation_batch="separate"``.
    additivity_weight: float = 0.0
    #: "free": the emotion layer's weights take any sign. "ratings": each weight keeps the sign of
    #: the Spearman r between its mid-level's targets and its emotion's ratings over the rated
    #: training clips, where |r| >= LEVEL1_SIGN_MIN_R (:func:`level1_sign_mask`), so no weight
    #: contradicts its targets' association with the ratings (a suppressor weight on correlated
    #: mid-levels can: the shipped model's valence <- minorness weight is positive). The outputs'
    #: meaning can still drift where a target is weak (MODEL_CARD.md, sign-consistent weights).
    level1_signs: str = "free"
    #: "trained": the emotion layer as gradient descent left it. "least-squares": after the last
    #: epoch, the layer is refitted (twolevel/emotion_layer.py) on the clip-level mid-levels of every
    #: rated clip the run was given (training and validation clips: validation has chosen its epoch
    #: by then), in every state the run reports. "least-squares-signs": that fit with each weight kept
    #: on the side of zero that :func:`~twolevel.training.level1_sign_mask` gives it over the same
    #: clips. The network and its mid-levels are untouched.
    emotion_layer: str = "trained"
    #: With a least-squares ``emotion_layer``: the fit minimises the mean squared error over its clips
    #: plus this weight times the squared distance of its weights from the trained layer's (a ridge
    #: towards what training found; the bias is free). 0 = the plain fit.
    emotion_layer_shrinkage: float = 0.0
    #: Checkpoint of a trained model this run's trunk is to join as a specialist (``twolevel-cli merge
    #: JOINED THIS --renormalise --specialist 2=NAME``); "" = none. The emotion loss is then taken on the
    #: joined model's emotion layer applied to the joined model's own mid-levels with those named in
    #: :attr:`join_midlevels` replaced by this run's, so the new outputs are learnt to work beside the
    #: other mid-levels they will sit with (session 24: specialists trained alone cost sad there). The
    #: joined model is frozen: no gradient, its batch-norm statistics untouched. This run's own emotion
    #: layer gets no gradient and is not used by the merge.
    join: str = ""
    #: With :attr:`join`: the mid-levels this run gives the joined model, e.g. ``("minorness",)``.
    join_midlevels: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """The settings as JSON keeps them (tuples as lists), so that a saved run's settings compare equal."""
        return {**asdict(self), "join_midlevels": list(self.join_midlevels)}

    def __post_init__(self) -> None:
        for name, rule in RULES.items():
            rule.check(name, getattr(self, name))
        if self.mode_envelope and not self.mode_weight:
            raise OptionError("mode_envelope shapes the mode contrast's pairs: give mode_weight > 0 too")
        self.join_midlevels = tuple(self.join_midlevels)
        if bool(self.join) != bool(self.join_midlevels):
            raise OptionError("join and join_midlevels go together: the model to join and the mid-levels this run "
                              "gives it")
        unknown = [name for name in self.join_midlevels if name not in MIDLEVEL_NAMES]
        if unknown:
            raise OptionError(f"join_midlevels: unknown mid-levels {unknown}; known: {list(MIDLEVEL_NAMES)}")
        if self.emotion_layer_shrinkage and self.emotion_layer == "trained":
            raise OptionError("emotion_layer_shrinkage applies to a fitted layer: give emotion_layer "
                              "least-squares or least-squares-signs")


def field_default(name: str):
    """The default of one :class:`TrainConfig` field (what the CLI shows)."""
    return next(f.default for f in fields(TrainConfig) if f.name == name)
