"""Save and load model checkpoints.

A checkpoint is a plain dict loadable with ``torch.load(weights_only=True)``:
``format``, ``format_version``, ``model_version``, ``config`` (ModelConfig), ``state_dict``
(normalisation statistics included as buffers), ``labels`` and free-form ``metadata``.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from .errors import CheckpointError
from .labels import EMOTION_NAMES, MIDLEVEL_NAMES
from .model import A2Mid2EJoint, ModelConfig, pick_device
from .resources import DEFAULT_MODEL_FILE, asset_path

FORMAT = "twolevel-checkpoint"
FORMAT_VERSION = 1


def default_model_path() -> Path:
    """Path of the default model: ``$TWOLEVEL_MODEL`` if set, else the shipped package data
    ``twolevel/assets/twolevel-default.pt`` (found with importlib.resources, in a wheel too)."""
    env = os.environ.get("TWOLEVEL_MODEL")
    if env:
        return Path(env)
    # Not checked here: callers test .is_file(), and loading a missing file is a CheckpointError.
    return asset_path(DEFAULT_MODEL_FILE, must_exist=False)


def weights_digest(state_dict: dict) -> str:
    """First 8 hex digits of a SHA-256 over the tensors in key order: tells two checkpoints apart."""
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(key.encode())
        digest.update(state_dict[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:8]


def save_checkpoint(model: A2Mid2EJoint, path: str | os.PathLike, model_version: str = "untrained",
                    metadata: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically (a temp file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_version": model_version,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "labels": {"midlevel": list(MIDLEVEL_NAMES), "emotion": list(EMOTION_NAMES)},
        "metadata": metadata or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate the checkpoint dict (on CPU); :class:`CheckpointError` if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({str(err).splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a twolevel checkpoint (no '{FORMAT}' marker)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {payload['format_version']} is newer than this twolevel "
            f"understands ({FORMAT_VERSION}); upgrade twolevel"
        )
    labels = payload.get("labels", {})
    if tuple(labels.get("midlevel", ())) != MIDLEVEL_NAMES or tuple(labels.get("emotion", ())) != EMOTION_NAMES:
        raise CheckpointError(f"{path}: label names or order differ from this version of twolevel")
    return payload


def load_checkpoint(path: str | os.PathLike | None = None, device: str | torch.device | None = None) -> A2Mid2EJoint:
    """Build the model from a checkpoint, in eval mode on ``device`` (CUDA when available).

    The returned model has ``model_version`` and ``metadata`` attributes from the file.
    """
    path = Path(path) if path is not None else default_model_path()
    payload = read_checkpoint(path)
    try:
        model = A2Mid2EJoint(ModelConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (TypeError, KeyError, RuntimeError, ValueError) as err:  # ValueError: a config out of range
        raise CheckpointError(f"{path}: weights do not fit the A2Mid2E-Joint model ({str(err).splitlines()[0]})") from None
    model.model_version = str(payload.get("model_version", "unknown"))
    model.metadata = dict(payload.get("metadata", {}))
    model.checkpoint_path = str(path)
    dev = device if isinstance(device, torch.device) else pick_device(device)
    return model.to(dev).eval()


#: Parameter prefixes copied from a pre-trained model: the trunk and the mid-level head.
PRETRAINED_PARTS = ("features.", "midlevel.")


def init_from_pretrained(model: A2Mid2EJoint, path: str | os.PathLike) -> list[str]:
    """Load the trunk and mid-level head of the checkpoint at ``path`` into ``model``; returns their names.

    The widths must match; the front end (the training set's own normalisation) and the emotion
    layer of ``model`` are kept.
    """
    source = load_checkpoint(path, device="cpu")
    if source.config.width != model.config.width:
        raise CheckpointError(f"{path}: pre-trained at width {source.config.width:g}, "
                              f"this model has width {model.config.width:g}")
    if source.config.trunks != model.config.trunks:
        raise CheckpointError(f"{path}: has {source.config.trunks} trunks (twolevel-cli merge), "
                              f"this model {model.config.trunks}")
    state = {k: v for k, v in source.state_dict().items() if k.startswith(PRETRAINED_PARTS)}
    model.load_state_dict(state, strict=False)  # the front end and the emotion layer are not in ``state``
    return sorted(state)
