"""Pre-training the trunk and mid-level head on an unlabelled corpus's descriptor targets.

:func:`pretrain` trains A2Mid2E-Joint on mid-level-only items (:mod:`twolevel.corpus`: 10 s
windows of freely licensed music with rank-mapped descriptor targets; emotions are NaN, so the
emotion loss is zero and the 7 -> 8 layer does not learn). :func:`twolevel.checkpoint.init_from_pretrained`
then copies the convolutional trunk and the mid-level head into a fresh model before joint
training on Soundtracks (``TrainConfig.init_from``); the emotion layer always starts fresh, so the
explainable 7 -> 8 layer is learned from the emotion ratings only.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path


def pretrain(corpus_dir: str | Path, cfg, out: str | Path, progress: bool = False, on_epoch=None,
             log=print) -> Path:
    """Train on the corpus's descriptor targets only (no validation: the last epoch is kept); save to ``out``.

    ``cfg`` is a :class:`~twolevel.training.TrainConfig` (its ``epochs``, ``lr``, ``width``, ...).
    """
    from .corpus import corpus_training_set
    from .training import save_trained, train

    data = corpus_training_set(Path(corpus_dir))
    if log is not None:
        log(f"pre-training on {len(data)} corpus windows, {cfg.epochs} epochs, width {cfg.width:g}")
    model, summary = train(data, replace(cfg, init_from=""), None, progress=progress, on_epoch=on_epoch)
    return save_trained(model, Path(out), summary, {"pretrained_on": str(corpus_dir), "n_windows": len(data),
                                                    "midlevel_targets": "corpus descriptors"},
                        model_version=f"pretrained-w{cfg.width:g}-e{cfg.epochs}-seed{cfg.seed}")
