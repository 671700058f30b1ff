"""Several separately trained networks as one: their convolution stacks side by side, mid-levels averaged.

``merge_trunks([a, b])`` returns one :class:`~twolevel.model.A2Mid2EJoint` with
``ModelConfig.trunks = 2`` whose mid-level output is exactly the mean of ``a``'s and ``b``'s
(the convolutions are grouped, so each trunk only sees its own channels; the mid-level head is the
weighted mean of the heads). It is still *one* model with 7 mid-levels and one linear 7 -> 8
emotion layer, so level-1 explanations stay exact and LIME explains the averaged mid-levels. Its
cost per window is the sum of its trunks' (``multiply_adds(width, trunks=K)``).

The emotion layer of the merged model is the mean of the inputs' layers; that is a placeholder
(their mid-levels differ, so their layers do not average well): fit the layer on the merged
mid-levels with :func:`twolevel.training.with_fitted_layer` (``twolevel-cli merge --fit-layer``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from .checkpoint import weights_digest
from .errors import CheckpointError, OptionError
from .model import A2Mid2EJoint, multiply_adds


def merge_trunks(models: Sequence[A2Mid2EJoint]) -> A2Mid2EJoint:
    """One model whose convolution trunks are all of ``models``' and whose mid-levels are their mean.

    Each input counts by its number of trunks (merging a 2-trunk model with a 1-trunk one gives
    3 equal trunks). The inputs must share width, dropout, label counts and front-end normalisation
    (mean and std of the training spectrograms): one spectrogram feeds every trunk.
    Returns a CPU model in eval mode; ``models`` are left unchanged.
    """
    if len(models) < 2:
        raise OptionError(f"merging needs at least 2 models, got {len(models)}", code="too_few_models")
    first = models[0]
    for m in models[1:]:
        if replace(m.config, trunks=1) != replace(first.config, trunks=1):
            raise CheckpointError(f"{_name(m)} cannot join {_name(first)}: its network differs "
                                  f"({m.config} vs {first.config})", code="cannot_merge")
        for name in ("mean", "std"):
            a, b = float(getattr(first.frontend, name)), float(getattr(m.frontend, name))
            if abs(a - b) > 1e-6 * max(1.0, abs(a)):
                raise CheckpointError(f"{_name(m)} cannot join {_name(first)}: they normalise spectrograms "
                                      f"differently (front-end {name} {b:g} vs {a:g}; trained on other clips?), "
                                      "and all trunks read one spectrogram", code="cannot_merge")
    counts = [m.config.trunks for m in models]
    total = sum(counts)
    merged = A2Mid2EJoint(replace(first.config, trunks=total), mean=float(first.frontend.mean),
                          std=float(first.frontend.std))
    states = [{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in models]
    shares = [c / total for c in counts]
    state = {}
    for key, target in merged.state_dict().items():
        values = [s[key] for s in states]
        if key.startswith("features.") and key.endswith("num_batches_tracked"):
            state[key] = max(values)
        elif key.startswith("features."):
            # conv weights (out, in / groups, k, k) and batch-norm vectors (out,): stacked by output channel
            state[key] = torch.cat(values, dim=0)
        elif key == "midlevel.weight":  # (7, channels): each head's share of the mean, side by side
            state[key] = torch.cat([w * share for w, share in zip(values, shares)], dim=1)
        elif key.startswith(("midlevel.", "emotion.")):  # biases and the placeholder emotion layer: weighted means
            state[key] = sum(v * share for v, share in zip(values, shares))
        else:  # front-end buffers: equal (checked above)
            state[key] = values[0]
        assert state[key].shape == target.shape, (key, state[key].shape, target.shape)
    merged.load_state_dict(state)
    return merged.eval()


def merged_description(models: Sequence[A2Mid2EJoint], merged: A2Mid2EJoint) -> tuple[str, dict]:
    """``(model_version, metadata)`` for the checkpoint of ``merged`` (made from ``models``).

    The version names width, trunks, the inputs' seeds and a digest of the merged weights, e.g.
    ``a2mid2e-joint-w0.125x2-seed9+19-46f46c7f``. The metadata holds what all inputs' metadata
    share (the data trained on, the distillation, the test clips of cross-validation fold models,
    ...; under ``config`` the training settings they share, so readers of ``metadata["config"]``,
    such as the descriptor set, still find them), and each input's version and full training
    configuration (and, for a distilled one, its teachers and corpus) under ``trunks_of``.
    """
    metas = [dict(getattr(m, "metadata", {}) or {}) for m in models]
    configs = [dict(meta.get("config", {})) for meta in metas]
    shared = _shared([{k: v for k, v in meta.items() if k != "config"} for meta in metas])
    shared["config"] = _shared(configs)
    seeds = "+".join(str(c.get("seed", "?")) for c in configs)
    version = f"a2mid2e-joint-w{merged.config.width:g}x{merged.config.trunks}-seed{seeds}-{weights_digest(merged.state_dict())}"
    shared["multiply_adds"] = multiply_adds(merged.config.width, trunks=merged.config.trunks)  # all trunks
    shared["trunks_of"] = [{"model_version": getattr(m, "model_version", "unknown"), "config": c,
                            **({"distillation": meta["distillation"]} if "distillation" in meta else {})}
                           for m, c, meta in zip(models, configs, metas)]
    return version, shared


def _shared(dicts: list[dict]) -> dict:
    """The items of ``dicts[0]`` that every other dict has with an equal value."""
    return {k: v for k, v in dicts[0].items() if all(d.get(k, object()) == v for d in dicts[1:])}


def _name(model: A2Mid2EJoint) -> str:
    return getattr(model, "checkpoint_path", None) or getattr(model, "model_version", "a model")
