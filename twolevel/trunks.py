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

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace

import torch

from .checkpoint import weights_digest
from .errors import CheckpointError, OptionError
from .labels import MIDLEVEL_NAMES
from .model import A2Mid2EJoint, multiply_adds


def renormalised(model: A2Mid2EJoint, mean: float, std: float) -> A2Mid2EJoint:
    """A copy of ``model`` that reads spectrograms normalised with ``mean`` and ``std`` (the log
    spectrogram's dataset-wide mean and standard deviation) instead of its own, computing what it did.

    Normalisation is affine, ``own = a * new + b``, and the first convolution is linear, so
    ``conv(own) = a * conv(new) + b * sum(weights)``: its weights take ``a`` and the batch norm that
    follows takes the shift. Exact inside the spectrogram; the first convolution's zero padding is zero
    in the new normalisation, not the old, so the outermost frames and bands differ slightly (measured
    on the shipped examples: mid-levels within 2e-3 for a front-end mean 0.0057 and std 0.009 apart).
    Lets trunks trained on different clips join one model (:func:`merge_trunks` ``renormalise``).
    """
    out = copy.deepcopy(model).eval()
    own_mean, own_std = float(out.frontend.mean), float(out.frontend.std)
    a, b = std / own_std, (mean - own_mean) / own_std
    conv, norm = out.features[0], out.features[1]
    with torch.no_grad():
        norm.running_mean.sub_(b * conv.weight.sum(dim=(1, 2, 3)))
        conv.weight.mul_(a)
        out.frontend.mean.fill_(mean)
        out.frontend.std.fill_(std)
    return out


def merge_trunks(models: Sequence[A2Mid2EJoint], renormalise: bool = False,
                 specialists: Mapping[int, Sequence[str]] | None = None) -> A2Mid2EJoint:
    """One model whose convolution trunks are all of ``models'`` and whose mid-levels are their mean.

    Each input counts by its number of trunks (merging a 2-trunk model with a 1-trunk one gives
    3 equal trunks). The inputs must share width, dropout and label counts, and front-end normalisation
    (mean and std of the training spectrograms: one spectrogram feeds every trunk) unless
    ``renormalise``, which folds each input's own normalisation into its first layer
    (:func:`renormalised`) to read the first input's.
    ``specialists`` maps an input's index to the mid-levels it alone gives: those outputs are the mean
    of their specialists' heads, and the specialist feeds no other output, nor the placeholder emotion
    layer (the mean of the other inputs' layers). E.g. ``{3: ["minorness"]}`` for a fourth input trained
    for minorness: the other six mid-levels stay exactly the first three's.
    Returns a CPU model in eval mode; ``models`` are left unchanged.
    """
    if len(models) < 2:
        raise OptionError(f"merging needs at least 2 models, got {len(models)}", code="too_few_models")
    specialists = {int(i): list(c) for i, c in (specialists or {}).items()}
    _check_specialists(specialists, len(models))
    first = models[0]
    for m in models[1:]:
        if replace(m.config, trunks=1) != replace(first.config, trunks=1):
            raise CheckpointError(f"{_name(m)} cannot join {_name(first)}: its network differs "
                                  f"({m.config} vs {first.config})", code="cannot_merge")
        for name in ("mean", "std"):
            a, b = float(getattr(first.frontend, name)), float(getattr(m.frontend, name))
            if abs(a - b) > 1e-6 * max(1.0, abs(a)) and not renormalise:
                raise CheckpointError(f"{_name(m)} cannot join {_name(first)}: they normalise spectrograms "
                                      f"differently (front-end {name} {b:g} vs {a:g}; trained on other clips?), "
                                      "and all trunks read one spectrogram (renormalise: fold each model's "
                                      "normalisation into its first layer)", code="cannot_merge")
    mean, std = float(first.frontend.mean), float(first.frontend.std)
    if renormalise:
        models = [first] + [renormalised(m, mean, std) for m in models[1:]]
    counts = [m.config.trunks for m in models]
    total = sum(counts)
    merged = A2Mid2EJoint(replace(first.config, trunks=total), mean=mean, std=std)
    states = [{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in models]
    # each output row's share of each input: the mean over the inputs that give that output
    claimed = {name for concepts in specialists.values() for name in concepts}
    rows = torch.zeros(first.config.n_midlevel, len(models))
    for i, count in enumerate(counts):
        for r, name in enumerate(MIDLEVEL_NAMES):
            gives = name in specialists[i] if i in specialists else name not in claimed
            rows[r, i] = count if gives else 0
    rows /= rows.sum(dim=1, keepdim=True)
    layer_shares = torch.tensor([0.0 if i in specialists else c for i, c in enumerate(counts)], dtype=torch.float32)
    layer_shares /= layer_shares.sum()
    state = {}
    for key, target in merged.state_dict().items():
        values = [s[key] for s in states]
        if key.startswith("features.") and key.endswith("num_batches_tracked"):
            state[key] = max(values)
        elif key.startswith("features."):
            # conv weights (out, in / groups, k, k) and batch-norm vectors (out,): stacked by output channel
            state[key] = torch.cat(values, dim=0)
        elif key == "midlevel.weight":  # (7, channels): each head's share of each output, side by side
            state[key] = torch.cat([w * rows[:, i:i + 1] for i, w in enumerate(values)], dim=1)
        elif key == "midlevel.bias":
            state[key] = sum(v * rows[:, i] for i, v in enumerate(values))
        elif key.startswith("emotion."):  # the placeholder layer: the non-specialists' weighted mean
            state[key] = sum(v * share for v, share in zip(values, layer_shares))
        else:  # front-end buffers: equal (checked or renormalised above)
            state[key] = values[0]
        assert state[key].shape == target.shape, (key, state[key].shape, target.shape)
    merged.load_state_dict(state)
    return merged.eval()


def _check_specialists(specialists: dict[int, list[str]], n_models: int) -> None:
    for i, concepts in specialists.items():
        if not 0 <= i < n_models:
            raise OptionError(f"specialist {i + 1} is not one of the {n_models} models to merge",
                              code="bad_specialist")
        unknown = [c for c in concepts if c not in MIDLEVEL_NAMES]
        if unknown or not concepts:
            raise OptionError(f"specialist {i + 1}: give mid-levels of {', '.join(MIDLEVEL_NAMES)}, got "
                              f"{', '.join(concepts) or 'none'}", code="bad_specialist")
    if len(specialists) == n_models:
        raise OptionError("every model to merge is a specialist: at least one must give the other mid-levels "
                          "and the emotion layer", code="bad_specialist")


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
    seeds = "+".join(_seeds(meta) for meta in metas)
    version = f"a2mid2e-joint-w{merged.config.width:g}x{merged.config.trunks}-seed{seeds}-{weights_digest(merged.state_dict())}"
    shared["multiply_adds"] = multiply_adds(merged.config.width, trunks=merged.config.trunks)  # all trunks
    shared["trunks_of"] = [{"model_version": getattr(m, "model_version", "unknown"), "config": c,
                            **({"distillation": meta["distillation"]} if "distillation" in meta else {})}
                           for m, c, meta in zip(models, configs, metas)]
    return version, shared


def _seeds(meta: dict) -> str:
    """An input's training seed, or its trunks' seeds when it is itself a merged model ("9+19+49")."""
    if "trunks_of" in meta:
        return "+".join(str(t.get("config", {}).get("seed", "?")) for t in meta["trunks_of"])
    return str(meta.get("config", {}).get("seed", "?"))


def _shared(dicts: list[dict]) -> dict:
    """The items of ``dicts[0]`` that every other dict has with an equal value."""
    return {k: v for k, v in dicts[0].items() if all(d.get(k, object()) == v for d in dicts[1:])}


def _name(model: A2Mid2EJoint) -> str:
    return getattr(model, "checkpoint_path", None) or getattr(model, "model_version", "a model")
