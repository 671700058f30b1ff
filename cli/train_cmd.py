"""``train``, ``evaluate`` and ``merge``: learn A2Mid2E-Joint from Soundtracks ratings, judge a model on
them, and run several trained models as one."""
from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from pathlib import Path

import click

from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES
from twolevel.train_config import (DESCRIPTOR_SETS, EMOTION_LAYERS, LEVEL1_SIGN_CHOICES, LOSS_SCALES, MODULATION_BATCHES, RULES,
                                   SCHEDULES, field_default)

from .common import click_type, device_option, echo_json, friendly_errors, json_option, model_option, set_threads


def _hyper(flag: str, **kwargs):
    """``--FLAG`` for the TrainConfig field of the same name: its default, type and allowed range
    come from twolevel.train_config (``kwargs``: the help text)."""
    name = flag.lstrip("-").replace("-", "_")
    return click.option(flag, name, default=field_default(name), show_default=True, type=click_type(RULES[name]),
                        **kwargs)


def _parse_folds(text: str | None, k: int) -> list[int] | None:
    if not text:
        return None
    from twolevel.errors import OptionError

    try:
        folds = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise OptionError(f"--only-folds {text!r}: give fold numbers like 0,1") from None
    bad = [f for f in folds if not 0 <= f < k]
    if bad:
        raise OptionError(f"--only-folds: fold(s) {bad} outside 0..{k - 1}")
    return folds


def _existing_or_empty(ctx, param, value: str) -> str:
    """A checkpoint path made absolute ("" when not given); a missing file is one clear error."""
    if not value:
        return ""
    if not Path(value).is_file():
        raise click.BadParameter(f"{value}: no such file", ctx=ctx, param=param)
    return str(Path(value).resolve())


@click.command()
@click.argument("dataset_dir", type=click.Path())
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="Checkpoint to write (with --folds: the cross-validation report, .json).")
# -- hyper-parameters: the fields of twolevel.train_config.TrainConfig, under the same names, with its
#    defaults and choices (TrainConfig checks the values) --
@click.option("--seed", default=field_default("seed"), show_default=True, help="Random seed (initialisation, crops, folds).")
@_hyper("--epochs",
        help="Epochs (the maximum when validating).")
@_hyper("--width",
        help="Channel multiplier of the CNN (1.0 = the paper's network).")
@_hyper("--batch-size")
@_hyper("--lr",
        help="Adam learning rate (the paper used 5e-4, which under-fits in 80 epochs; 6e-3 cross-validated "
             "best here, see twolevel/assets/MODEL_CARD.md).")
@_hyper("--weight-decay",
        help="Decoupled weight decay.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=field_default("schedule"), show_default=True,
              help="Learning-rate schedule over --epochs.")
@click.option("--loss-scale", type=click.Choice(LOSS_SCALES), default=field_default("loss_scale"), show_default=True,
              help="variance: each output's squared error is divided by its target's variance over the "
                   "training clips, so neither task dominates by the spread of its targets; raw: plain "
                   "0.5 MSE(emotions) + 0.5 MSE(mid-levels) as in the paper.")
@_hyper("--ema",
        help="Keep an exponential moving average of the weights with this decay per step (0 = off).")
@_hyper("--swa-epochs",
        help="Average the weights over the last this many epochs and keep the average (stochastic weight "
             "averaging; 0 = off: keep the best-validation epoch). With --folds the report scores the "
             "best-validation, last and averaged states of each fold.")
@_hyper("--freq-shift",
        help="Augmentation: shift each training crop by up to this many bands (24 per octave above about 400 Hz; "
             "one STFT bin per band below, so this is not a pitch shift in the bass).")
@_hyper("--gain-db",
        help="Augmentation: scale each training crop's loudness by a random gain within +- this many dB.")
@_hyper("--time-mask",
        help="Augmentation: silence one random block of up to this many frames (31.3 per s) of each crop.")
@_hyper("--modulation-weight",
        help="Teach tonal stability by contrast (0 = off): a window spliced from 4 crops of one clip must "
             "score higher than the same crops moved through other keys (twolevel/augment.py, "
             "modulation_pair); this is the weight of that hinge loss. Costs 1.5x the forward passes.")
@_hyper("--rhythm-weight",
        help="Teach rhythm stability by contrast (0 = off): a crop re-timed with 8 jumps and 8 freezes "
             "that leave every note in its place must score higher than the same crop with each freeze "
             "0.26-0.77 s after its jump, which displaces the notes between (twolevel/augment.py, "
             "rhythm_pair); this is the weight of that hinge loss. Costs 1.5x the forward passes.")
@_hyper("--dissonance-weight",
        help="Teach dissonance by contrast (0 = off): a crop mixed with its own copy a minor second, tritone "
             "or major seventh away must score higher than the crop mixed with its copy an octave, fifth or "
             "fourth away, at the same level (twolevel/augment.py, dissonance_pair); this is the weight of "
             "that hinge loss. Costs 1.5x the forward passes.")
@_hyper("--mode-weight",
        help="Teach minorness by contrast (0 = off): a crop and the same crop with the third and sixth of "
             "its key exchanged with their neighbours a semitone away (major <-> minor); the minor one must "
             "score the higher minorness (twolevel/augment.py, mode_pair); this is the weight of that hinge "
             "loss. Crops whose key is unclear give no pair. Costs up to 1.5x the forward passes.")
@_hyper("--mode-envelope",
        help="With --mode-weight: the share of its pairs whose two windows both get one random decay, as if "
             "every note were struck every 0.15-0.6 s and died away in 0.04-0.3 s (twolevel/augment.py, "
             "percussive_envelope), so that minorness is learnt from marimba- or harp-like notes too; the "
             "networks read mode from sustained tones (model card). 0 = none.")
@_hyper("--mode-twin-weight",
        help="Teach minorness by contrast on rendered twins (0 = off): every training window of a piece "
             "rendered in both modes (a --distill-corpus with scripts/render_tonal_corpus.py --twins music) "
             "gives a pair whose minor twin must score the higher minorness; this is the weight of that "
             "hinge loss. Unlike --mode-weight the pairs are real audio, struck notes included.")
@_hyper("--additivity-weight",
        help="Make the network answer hidden regions additively (0 = off), so that level-2 explanations "
             "fit it better: for a quarter of each batch's windows, two random sets of patches are hidden "
             "alone and together, and the squared interaction on the mid-levels is penalised with this "
             "weight (twolevel/additivity.py). Costs one more forward pass per real window (1.13x per epoch "
             "with the three contrasts on).")
@click.option("--level1-signs", type=click.Choice(LEVEL1_SIGN_CHOICES), default=field_default("level1_signs"), show_default=True,
              help="free: the emotion layer's weights take any sign (the paper). ratings: each keeps the sign "
                   "of the Spearman r between its mid-level's targets and its emotion's ratings on the training "
                   "clips (where |r| >= 0.1), e.g. more minorness never raises valence. In the one model "
                   "tried, the network then reversed what rhythm stability measures (model card).")
@click.option("--emotion-layer", type=click.Choice(EMOTION_LAYERS), default=field_default("emotion_layer"), show_default=True,
              help="trained: the emotion layer as training left it. least-squares: after the last epoch, refit it "
                   "by least squares of the ratings on the clip-level mid-levels of every rated clip of the run "
                   "(+0.010 to +0.015 r in cross-validation, model card); the network is untouched and the layer "
                   "stays linear. least-squares-signs: the same with each weight on the side of zero that "
                   "--level1-signs ratings would give it, so no weight contradicts the ratings.")
@_hyper("--emotion-layer-shrinkage",
        help="With a least-squares --emotion-layer: pull the fit towards the trained layer, minimising the mean "
             "squared error plus this weight times the squared distance of the weights from the trained ones "
             "(0 = the plain fit). Keeps most of the gain with fewer weights against the ratings (model card).")
@click.option("--modulation-batch", type=click.Choice(MODULATION_BATCHES), default=field_default("modulation_batch"), show_default=True,
              help="With a contrast (--modulation-weight, --rhythm-weight, --dissonance-weight, --mode-weight, --mode-twin-weight): the constructed windows pass on their own without moving batch norm's running "
                   "statistics, which inference uses (separate), or join the real windows' batch (shared). Both cost "
                   "0.02-0.03 emotion r in cross-validation at weight 0.5 (see the model card).")
@click.option("--init-from", default="", type=click.Path(dir_okay=False), callback=_existing_or_empty,
              help="Start the trunk and mid-level head from this pre-trained checkpoint "
                   "(scripts/pretrain_corpus.py); the emotion layer always starts fresh.")
@click.option("--join", default="", type=click.Path(dir_okay=False), callback=_existing_or_empty, metavar="MODEL.pt",
              help="Train a specialist for MODEL.pt: the emotion loss is taken on MODEL.pt's emotion layer with the "
                   "--join-midlevel outputs replaced by this run's, so they learn to work beside MODEL.pt's other "
                   "mid-levels (MODEL.pt frozen). Then: twolevel-cli merge MODEL.pt THIS.pt --renormalise "
                   "--specialist 2=NAME. Needs --val-fraction 0 and no --folds.")
@click.option("--join-midlevel", "join_midlevels", multiple=True, default=(), type=click.Choice(MIDLEVEL_NAMES),
              metavar="NAME",
              help="With --join: a mid-level this run gives the joined model (repeat for more).")
@click.option("--descriptors", type=click.Choice(DESCRIPTOR_SETS), default=field_default("descriptors"), show_default=True,
              help="Descriptor set the mid-level targets come from: v1 (docs/midlevel-targets.md, the shipped "
                   "model's), v2 (tonal stability, minorness and rhythm stability from twolevel/tonality.py) or v3 "
                   "(minorness alone from there). With --distill-corpus the corpus windows get the same set.")
@_hyper("--dropout",
        help="Dropout after each pooling block.")
@_hyper("--emotion-weight",
        help="Weight of the emotion loss (the paper's 0.5).")
@_hyper("--midlevel-weight",
        help="Weight of the mid-level loss (the paper's 0.5): lower lets the 7 mid-levels serve the emotions "
             "more and their descriptor targets less.")
@_hyper("--patience",
        help="Early stopping: stop after this many epochs without a better validation r (0 = off). Off by "
             "default, so that cross-validation's last-epoch score is that of a model trained as the shipped "
             "one (no validation clips, every epoch); with it on, a fold can stop mid-schedule.")
# -- what to run: one model (with or without validation clips) or cross-validation --
@click.option("--val-fraction", default=0.1, show_default=True, type=click.FloatRange(0, 0.5, max_open=True),
              help="Hold out this share of the clips (stratified) and keep the epoch with the best validation r "
                   "(the paper's 10 %, as the shipped model); 0 trains on all clips and keeps the last epoch. "
                   "With --folds: the share of all clips that validates inside each fold (0 there means a "
                   "quarter of the non-test clips, as in the model card's earlier runs).")
@click.option("--folds", default=0, show_default=True,
              help="Run K-fold cross-validation instead of training one model (writes a JSON report to --out).")
@click.option("--only-folds", default=None, metavar="LIST", help="With --folds: run only these folds, e.g. 0,1.")
@click.option("--fold-seed", default=None, type=int,
              help="With --folds: seed of the partition and its validation parts (default: --seed). Runs that "
                   "share it and differ in --seed are members of one ensemble, tested on the same clips.")
@click.option("--save-fold-models", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="With --folds: keep each fold's best-validation model as DIR/fold<F>.pt (distillation "
                   "teachers) and its last epoch's as DIR/fold<F>-last.pt (benchmarks/ensemble_cv.py scores "
                   "ensembles of either).")
@click.option("--resume", is_flag=True, help="Continue from <out>.last (or skip finished folds with --folds).")
# -- data --
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Spectrogram and descriptor cache (default: $TWOLEVEL_CACHE, else the user cache folder, ~/.cache/twolevel on Linux).")
@click.option("--midlevel-annotations", type=click.Path(dir_okay=False), default=None,
              help="annotations.csv of the human mid-level data set: learn the mid-level layer from it "
                   "instead of from signal descriptors.")
@click.option("--midlevel-audio", type=click.Path(file_okay=False), default=None,
              help="Audio folder of that data set (default: audio/ beside annotations.csv).")
@click.option("--distill-from", "distill_from", multiple=True, type=click.Path(exists=True), metavar="PATH",
              help="Distillation teacher (repeat for an ensemble): unrated corpus windows get the teachers' mean "
                   "emotion outputs as targets and join the training clips. With --folds: folders of fold models "
                   "(--save-fold-models, same --fold-seed), so no teacher saw a fold's test clips; without: "
                   "checkpoints trained on all clips.")
@click.option("--distill-midlevels-from", "distill_midlevels_from", multiple=True, type=click.Path(exists=True),
              metavar="PATH",
              help="With --distill-from: a two-level model whose mid-level outputs the corpus windows learn "
                   "instead of their descriptor targets (repeat for an ensemble: the mean of its outputs; "
                   "folders of fold models with --folds, as for --distill-from).")
@click.option("--distill-constructed", "distill_constructed", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="PAIRS",
              help="With --distill-midlevels-from: also this many pairs of windows built from the corpus windows "
                   "as the contrasts build theirs (a modulation, a re-timing, a clashing or consonant copy, in "
                   "turn), labelled by the same teachers, so the student learns the ensemble's answer on them "
                   "for all 7 mid-levels.")
@click.option("--distill-mixes", "distill_mixes", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="With --distill-from: also N 10 s mixes of two rated training clips (the second 0-6 dB "
                   "softer), labelled by the teachers for their emotions only: unrated audio from the rated "
                   "clips' own domain, drawn anew for each training set (so never from a fold's test clips).")
@click.option("--distill-corpus", type=click.Path(file_okay=False), default=None,
              help="With --distill-from: the built corpus whose windows the teachers label "
                   "(scripts/fetch_debian_audio.py; e.g. cache/debian-audio/corpus).")
@click.option("--distill-items", type=click.IntRange(min=1), default=None,
              help="With --distill-from: this many corpus windows (a fixed random subset drawn with --seed; "
                   "default: all).")
@click.option("--distill-rated-weight", type=click.FloatRange(0, 1), default=0.0, show_default=True, metavar="W",
              help="With --distill-from: the rated clips' emotion targets become (1 - W) x the ratings + W x the "
                   "teachers' mean output on those clips (knowledge distillation on the rated clips too; "
                   "0 = the ratings alone).")
# -- where it runs and what it reports --
@device_option
@click.option("--log", "log_path", type=click.Path(dir_okay=False), default=None,
              help="Append one JSON line per epoch to this file.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def train(dataset_dir, out_path, val_fraction, folds, only_folds, fold_seed, save_fold_models, resume, cache_dir,
          midlevel_annotations, midlevel_audio, distill_from, distill_midlevels_from, distill_constructed, distill_mixes,
          distill_corpus, distill_items, distill_rated_weight, device,
          log_path, quiet, **hyper):
    """Train A2Mid2E-Joint on the Soundtracks ratings in DATASET_DIR.

    DATASET_DIR holds mean_ratings_set1.csv and audio/NNN.mp3. The mid-level layer learns from
    signal descriptors (docs/midlevel-targets.md) unless --midlevel-annotations is given.
    Each clip's spectrogram and descriptors are computed once and cached; training crops random
    10 s windows from them. Loss 0.5 MSE(emotions) + 0.5 MSE(mid-levels), each output's error
    scaled by its target's variance (--loss-scale), AdamW, cosine schedule.

    \b
    Examples:
      twolevel-cli train ../shared/data/soundtracks-set1 --out model.pt
      twolevel-cli train DATA --folds 5 --width 0.125 --out runs/cv-w0.125.json
      twolevel-cli train DATA --out model.pt --resume          # continue from model.pt.last
      twolevel-cli train DATA --val-fraction 0 --distill-from t0.pt --distill-from t1.pt
          --distill-corpus cache/debian-audio/corpus --descriptors v3 --additivity-weight 5
          --out student.pt                            # one command: a distilled student
      twolevel-cli train DATA ... --emotion-layer least-squares --emotion-layer-shrinkage 0.004
                                                      # then its emotion layer fitted to the clips

    The shipped model is such a distilled student with a fitted emotion layer:
    scripts/shipped_recipe.sh trains it from scratch (twolevel/assets/MODEL_CARD.md, "Training").
    """
    from twolevel.model import pick_device
    from twolevel.training import TrainConfig

    set_threads(default=2)  # training: two torch threads unless TWOLEVEL_THREADS says otherwise
    cfg = TrainConfig(**hyper)
    dev = pick_device(device)
    progress = not quiet
    _check_fold_and_distill_options(folds, fold_seed, save_fold_models, distill_from, distill_corpus, distill_items,
                                    distill_midlevels_from, distill_constructed, distill_rated_weight, distill_mixes)
    if cfg.join and (folds or val_fraction):  # refused before any data is read (training refuses it too)
        from twolevel.errors import OptionError

        raise OptionError("--join trains a specialist for a model trained on all clips: give --val-fraction 0 "
                          "and no --folds (neither validation nor cross-validation can score it)")
    if cfg.mode_twin_weight and not distill_corpus:  # the only windows with rendered twins
        from twolevel.errors import OptionError

        raise OptionError("--mode-twin-weight needs --distill-corpus DIR cut from rendered mode twins "
                          "(scripts/render_tonal_corpus.py --twins)")
    data = _TrainingData(dataset_dir, cache_dir, midlevel_annotations, midlevel_audio, progress, cfg.descriptors)
    if distill_from:
        data.add_distillation(distill_from, distill_corpus, distill_items, cfg.seed, dev, distill_midlevels_from,
                              distill_constructed, distill_rated_weight, distill_mixes)
    with _epoch_log(log_path) as log:
        if folds:
            _cross_validate(data, cfg, folds, only_folds, val_fraction, dev, Path(out_path), progress, log,
                            fold_seed, save_fold_models)
        else:
            _train_one(data, cfg, val_fraction, dev, Path(out_path), resume, progress, log)


def _check_fold_and_distill_options(folds, fold_seed, save_fold_models, distill_from, distill_corpus,
                                    distill_items, distill_midlevels_from=(), distill_constructed=0,
                                    distill_rated_weight=0.0, distill_mixes=0) -> None:
    """Refuse option combinations that cannot work, before any data is read."""
    from twolevel.errors import OptionError

    if (fold_seed is not None or save_fold_models) and not folds:
        raise OptionError("--fold-seed and --save-fold-models need --folds K")
    if (distill_corpus or distill_items or distill_midlevels_from or distill_rated_weight or distill_mixes) \
            and not distill_from:
        raise OptionError("--distill-corpus, --distill-items, --distill-midlevels-from, --distill-rated-weight and "
                          "--distill-mixes need --distill-from")
    if distill_constructed and not distill_midlevels_from:
        raise OptionError("--distill-constructed needs --distill-midlevels-from: the built windows have no "
                          "descriptor targets, so their mid-level targets come from those teachers")
    if not distill_from:
        return
    if not distill_corpus:
        raise OptionError("--distill-from needs --distill-corpus DIR: the unrated windows the teachers label")
    folders = [Path(p).is_dir() for p in (*distill_from, *distill_midlevels_from)]
    if folds and not all(folders):
        raise OptionError("with --folds, --distill-from and --distill-midlevels-from take folders of fold models "
                          "(--save-fold-models), so that no teacher saw a fold's test clips")
    if not folds and any(folders):
        raise OptionError("without --folds, --distill-from and --distill-midlevels-from take checkpoint files "
                          "trained on all clips")


class _TrainingData:
    """The clips to learn from and where their mid-level targets come from."""

    def __init__(self, dataset_dir, cache_dir, midlevel_annotations, midlevel_audio, progress: bool,
                 descriptors: str = "v1"):
        from twolevel.data import load_midlevel_annotations, load_soundtracks
        from twolevel.training import soundtracks_training_set, with_annotations

        cache = Path(cache_dir) if cache_dir else None
        self.name = str(Path(dataset_dir).name)
        soundtracks = load_soundtracks(dataset_dir)
        self.n_clips = len(soundtracks)
        ann = load_midlevel_annotations(midlevel_annotations, midlevel_audio) if midlevel_annotations else None
        self.clips = soundtracks_training_set(soundtracks, cache, progress, "none" if ann is not None else "descriptors",
                                              descriptors)
        #: Adds the annotated mid-level excerpts to a training part (None: descriptor targets only).
        self.extra = (lambda s: with_annotations(s, ann, cache, progress)) if ann is not None else None
        self.descriptors, self.progress = descriptors, progress
        self.distillation: dict | None = None  # set by add_distillation
        self.targets = ("human annotations" if ann is not None
                        else f"signal descriptors {descriptors} (docs/midlevel-targets.md)")

    def add_distillation(self, teachers, corpus_dir, n_items, seed: int, device, midlevel_teachers=(),
                         constructed_pairs: int = 0, rated_weight: float = 0.0, mixes: int = 0) -> None:
        """Training parts also get corpus windows labelled by ``teachers`` (and their mid-levels by
        ``midlevel_teachers`` where given; twolevel/distill.py)."""
        from twolevel.corpus import corpus_training_set
        from twolevel.distill import distilling, unrated_items_used

        # the corpus windows' mid-level targets come from the same descriptor set as the clips'
        corpus = corpus_training_set(Path(corpus_dir), descriptors=self.descriptors, progress=self.progress)
        grow = distilling(teachers, corpus, n_items, seed, device, midlevel_teachers, constructed_pairs,
                          rated_weight=rated_weight, mixes=mixes)
        before = self.extra
        self.extra = grow if before is None else (lambda s: grow(before(s)))
        self.distillation = {"teachers": [str(t) for t in teachers], "corpus": str(corpus_dir),
                             "items": unrated_items_used(n_items, len(corpus)),  # added, not asked for
                             **({"midlevel_teachers": [str(t) for t in midlevel_teachers]} if midlevel_teachers else {}),
                             **({"constructed_pairs": constructed_pairs} if constructed_pairs else {}),
                             **({"rated_weight": rated_weight} if rated_weight else {}),
                             **({"mixes": mixes} if mixes else {})}


@contextlib.contextmanager
def _epoch_log(path):
    """Yields ``log(line)``, appending each line to ``path`` at once (a no-op without a path)."""
    log_file = open(path, "a") if path else None

    def log(line: str) -> None:
        if log_file is not None:
            log_file.write(line + "\n")
            log_file.flush()

    try:
        yield log
    finally:
        if log_file is not None:
            log_file.close()


def _cross_validate(data: _TrainingData, cfg, folds: int, only_folds, val_fraction: float, dev, out_path: Path,
                    progress: bool, log, fold_seed: int | None = None, models_dir: str | None = None) -> None:
    from twolevel.training import cross_validate, format_cv_table, inner_folds_for

    results = cross_validate(data.clips, cfg, folds, _parse_folds(only_folds, folds), dev, out_path, progress,
                             data.extra, log, inner_folds=inner_folds_for(folds, val_fraction), fold_seed=fold_seed,
                             models_dir=Path(models_dir) if models_dir else None,
                             extra_settings={"distillation": data.distillation} if data.distillation else None)
    click.echo(format_cv_table(results))
    click.echo(f"cross-validation report: {out_path}")


def _train_one(data: _TrainingData, cfg, val_fraction: float, dev, out_path: Path, resume: bool, progress: bool,
               log) -> None:
    from twolevel.model import multiply_adds
    from twolevel.training import save_trained, train as run_training, validation_split

    train_set, val = validation_split(data.clips, val_fraction, cfg.seed)
    if data.extra is not None:
        train_set = data.extra(train_set)
    started = time.time()

    def on_epoch(rec):
        log(json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in rec.items()}))

    model, summary = run_training(train_set, cfg, val, dev, Path(str(out_path) + ".last"), resume, progress, on_epoch)
    meta = {"dataset": data.name, "n_clips": data.n_clips, "midlevel_targets": data.targets,
            **({"distillation": data.distillation} if data.distillation else {}),
            "trained_seconds": time.time() - started, "device": str(dev)}
    path = save_trained(model, out_path, summary, meta)
    click.echo(f"wrote {path} (width {cfg.width:g}, {multiply_adds(cfg.width) / 1e9:.3f} GMAC per 10 s window, "
               f"{summary['epochs_run']} epochs, {summary['seconds']:.0f} s; mid-level targets: {data.targets})")
    if val is not None:
        click.echo(f"best validation r {summary['best_val_r']:.3f} at epoch {summary['best_epoch']}")


def _clean(x: float):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), 4)


@click.command()
@click.argument("dataset_dir", type=click.Path())
@model_option
@device_option
@json_option
@click.option("--midlevel/--no-midlevel", default=False,
              help="Also report mid-level r against descriptor targets (computed and cached; table output only).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Descriptor cache for --midlevel.")
@click.option("--midlevel-annotations", type=click.Path(dir_okay=False), default=None,
              help="annotations.csv (+ metadata.csv beside it) of the human mid-level data set: also report "
                   "mid-level r on the excerpts it annotates (table output only).")
@friendly_errors
def evaluate(dataset_dir, model_path, device, as_json, midlevel, cache_dir, midlevel_annotations):
    """Pearson r between a model's predictions and the ratings in DATASET_DIR.

    DATASET_DIR has the layout of Soundtracks Set 1 (mean_ratings_set1.csv, audio/NNN.mp3),
    any subset of excerpts. Each clip is predicted as `predict` does (mean over 10 s windows)
    and compared with rating / 10. --json prints {"emotions": {name: r}, "average": r, "n": clips}.
    """
    import numpy as np

    from twolevel.data import DataError, load_soundtracks
    from twolevel.predict import TwoLevelModel
    from twolevel.training import pearson

    set_threads(default=2)  # training: two torch threads unless TWOLEVEL_THREADS says otherwise
    ds = load_soundtracks(dataset_dir)
    if len(ds) < 3:
        raise DataError(f"{dataset_dir}: Pearson r needs at least 3 excerpts, got {len(ds)}", code="empty")
    model = TwoLevelModel.load(model_path, device=device)
    emo = np.zeros((len(ds), len(EMOTION_NAMES)))
    mid = np.zeros((len(ds), len(MIDLEVEL_NAMES)))
    # A bar on stderr for people at a terminal; nothing for pipes, logs and --json consumers.
    from twolevel.progress import each

    for i, path in enumerate(each(ds.audio_paths, f"predicting {len(ds)} excerpts", enabled=sys.stderr.isatty())):
        p = model.predict(path)
        emo[i] = p.emotion_vector
        mid[i] = p.midlevel_vector
    r = pearson(emo, ds.ratings)
    finite = r[np.isfinite(r)]
    average = float(finite.mean()) if len(finite) else float("nan")
    if as_json:
        echo_json({"emotions": {e: _clean(v) for e, v in zip(EMOTION_NAMES, r)}, "average": _clean(average),
                   "n": len(ds)})
        return
    click.echo(f"{len(ds)} excerpts, model {model.model_version}")
    for e, v in zip(EMOTION_NAMES, r):
        click.echo(f"  {e:<18}r = {v:6.3f}")
    click.echo(f"  {'average':<18}r = {average:6.3f}")
    if midlevel_annotations:
        from twolevel.data import load_midlevel_annotations

        ann = load_midlevel_annotations(midlevel_annotations, require_audio=False)
        rows = ann.by_soundtracks_id()
        have = [i for i, ident in enumerate(ds.ids) if ident in rows]
        if len(have) < 3:
            click.echo(f"  mid-level: only {len(have)} of these excerpts are annotated in {midlevel_annotations}")
        else:
            rm = pearson(mid[have], ann.values[[rows[ds.ids[i]] for i in have]])
            click.echo(f"  mid-level r against the human annotations ({len(have)} excerpts):")
            for m, v in zip(MIDLEVEL_NAMES, rm):
                click.echo(f"  {m:<18}r = {v:6.3f}")
    if midlevel:
        from twolevel.targets import rank_map
        from twolevel.training import cached_descriptors

        targets = rank_map(cached_descriptors(ds.audio_paths, Path(cache_dir) if cache_dir else None))
        rm = pearson(mid, targets)
        click.echo("  mid-level r against descriptor targets (rank over these excerpts):")
        for m, v in zip(MIDLEVEL_NAMES, rm):
            click.echo(f"  {m:<18}r = {v:6.3f}")


def _specialists(specs: tuple[str, ...]) -> dict[int, list[str]]:
    """``("2=minorness", ...)`` -> ``{1: ["minorness"]}`` (0-based model index -> mid-levels)."""
    from twolevel.errors import OptionError

    out: dict[int, list[str]] = {}
    for spec in specs:
        number, _, concepts = spec.partition("=")
        if not number.strip().isdigit() or not concepts.strip():
            raise OptionError(f"--specialist {spec!r}: write N=MIDLEVEL[,MIDLEVEL], e.g. 2=minorness",
                              code="bad_specialist")
        out.setdefault(int(number) - 1, []).extend(c.strip() for c in concepts.split(",") if c.strip())
    return out


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Checkpoint to write (.pt).")
@click.option("--fit-layer", "dataset_dir", type=click.Path(), default=None, metavar="DATASET_DIR",
              help="Fit the emotion layer by least squares on the averaged mid-levels of this folder's rated "
                   "clips (Soundtracks layout; the shipped model: all 300 clips). Without it the layer is the "
                   "mean of the inputs' layers, which rarely fits the averaged mid-levels.")
@click.option("--shrinkage", "emotion_layer_shrinkage", default=field_default("emotion_layer_shrinkage"),
              show_default=True, type=click_type(RULES["emotion_layer_shrinkage"]),
              help="With --fit-layer: pull the fit towards the mean of the inputs' layers (specialists' left out; 0: plain "
                   "least squares).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Spectrogram cache for --fit-layer.")
@click.option("--renormalise", is_flag=True,
              help="Let models trained on other clips join: fold each model's front-end normalisation into its "
                   "first layer so that all read the first model's (exact but for the first convolution's zero "
                   "padding: mid-levels within ~2e-3 in session 23's measurement).")
@click.option("--specialist", "specialist_specs", multiple=True, metavar="N=MIDLEVEL[,MIDLEVEL]",
              help="Model N (1-based, in the order given) alone gives these mid-levels and feeds no other output "
                   "nor the emotion layer's starting point; the other mid-levels stay exactly the other models'. "
                   "Repeatable. E.g. --specialist 2=minorness.")
@json_option
@friendly_errors
def merge(models, out_path, dataset_dir, emotion_layer_shrinkage, cache_dir, renormalise, specialist_specs, as_json):
    """Run several trained models side by side as one: their mid-levels averaged, one emotion layer.

    \b
    Each MODEL's convolution stack becomes one trunk of the new network (grouped convolutions on
    the same spectrogram); the mid-level head averages the trunks, and one linear 7 -> 8 layer
    follows, so level-1 explanations stay exact. It costs the sum of its trunks per 10 s window.
    The models must share width and front-end normalisation (trained on the same clips), unless
    --renormalise. --specialist N=MIDLEVEL makes model N the only source of that mid-level.

    \b
    Example (the shipped model):
      twolevel-cli merge runs/student-s9.pt runs/student-s19.pt \\
          --fit-layer ../shared/data/soundtracks-set1 --out runs/trunks.pt
    \b
    A minorness specialist beside the shipped model (session 23, model card):
      twolevel-cli merge twolevel/assets/twolevel-default.pt runs/s22/mt-s19.pt --renormalise \\
          --specialist 2=minorness --fit-layer ../shared/data/soundtracks-set1 --shrinkage 0.004 \\
          --out runs/g4.pt
    """
    from twolevel.checkpoint import load_checkpoint, save_checkpoint
    from twolevel.data import load_soundtracks
    from twolevel.errors import OptionError
    from twolevel.model import multiply_adds
    from twolevel.training import layer_fit_set, require_enough_to_fit, soundtracks_training_set, with_fitted_layer
    from twolevel.trunks import merge_trunks, merged_description

    set_threads(default=2)
    out = Path(out_path)
    if any(out.resolve() == Path(m).resolve() for m in models):
        raise OptionError(f"--out {out_path} is one of the models to merge: write the merged model elsewhere")
    if emotion_layer_shrinkage and not dataset_dir:
        raise OptionError("--shrinkage shapes the fit of --fit-layer: give --fit-layer DATASET_DIR too")
    specialists = _specialists(specialist_specs)
    inputs = [load_checkpoint(m, device="cpu") for m in models]
    merged = merge_trunks(inputs, renormalise=renormalise, specialists=specialists)
    layer = {"emotion_layer": "mean of the trunks' layers"}
    if dataset_dir:
        data = soundtracks_training_set(load_soundtracks(dataset_dir), Path(cache_dir) if cache_dir else None,
                                        progress=sys.stderr.isatty(), midlevel_targets="none")
        fit_set = layer_fit_set(data)
        require_enough_to_fit(fit_set, f"{dataset_dir}: the emotion layer")
        merged.load_state_dict(with_fitted_layer(merged, merged.state_dict(), fit_set, None, emotion_layer_shrinkage))
        layer = {"emotion_layer": "least-squares", "emotion_layer_shrinkage": emotion_layer_shrinkage,
                 "emotion_layer_clips": len(fit_set), "emotion_layer_dataset": str(dataset_dir)}
    version, meta = merged_description(inputs, merged)  # after the fit: the version's digest covers the layer
    meta.update(layer)
    if specialists:  # how the head was built, for whoever reads the checkpoint later
        meta["specialists"] = {str(models[i]): concepts for i, concepts in specialists.items()}
    if renormalise:
        meta["renormalised_to"] = {"mean": float(merged.frontend.mean), "std": float(merged.frontend.std)}
    save_checkpoint(merged, out, model_version=version, metadata=meta)
    gmac = multiply_adds(merged.config.width, trunks=merged.config.trunks) / 1e9
    if as_json:
        echo_json({"path": str(out), "model_version": version, "trunks": merged.config.trunks,
                   "gmac_per_window": round(gmac, 4), "emotion_layer": meta["emotion_layer"],
                   "emotion_layer_clips": meta.get("emotion_layer_clips", 0)})
        return
    click.echo(f"wrote {out} ({version}: {merged.config.trunks} trunks of width {merged.config.width:g}, "
               f"{gmac:.3f} GMAC per 10 s window; emotion layer: {meta['emotion_layer']}"
               + (f" on {meta['emotion_layer_clips']} clips)" if dataset_dir else ")"))
