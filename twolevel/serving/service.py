"""One request's work in any twolevel model server, between parsing and the response envelope.

The TorchServe handler and the KServe-native server are shells over these steps, so both apply
the same settings (the ``handler:`` section of model-config.yaml), caps and option checks:

* :data:`SERVER_SETTINGS` and :func:`read_settings` -- the server's settings;
* :func:`load_served_model` -- the checkpoint, loaded with the server's limits and warmed up;
* :func:`explain_options` -- a request's option text -> :class:`ExplainOptions` within the caps;
* :func:`prepare_request` -- a parsed request (:func:`twolevel.serving.requests.parse_request`)
  -> decoded audio within the server's length cap, and checked explanation options;
* :func:`explain_request` -- a prepared request -> the explanation's JSON.

No server imports: ``ts`` and ``kserve`` stay in their shells.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..audio import load_audio
from ..explain.sampling import warm_up
from ..options import (DEFAULT_MAX_SECONDS, MAX_SAMPLES, REQUEST_ALIASES, ExplainOptions, check_precision_on, default,
                       options_from_request)
from ..predict import TwoLevelModel
from .requests import EXPLAIN_OPTION_KEYS, option_text as _text

#: Settings of the ``handler:`` section of model-config.yaml (the one server config), and what
#: each is when the section leaves it out: the library's own defaults, so nothing is set twice.
SERVER_SETTINGS = {
    "max_seconds": DEFAULT_MAX_SECONDS,          # longest audio for /predictions, s
    "max_explain_seconds": DEFAULT_MAX_SECONDS,  # longest audio for /explanations, s
    "default_samples": default("samples"),       # LIME perturbations when a request names none ("auto")
    "min_samples": 1,                            # the range a request may ask for
    "max_samples": MAX_SAMPLES,                  # also the cap of "auto"
    "default_target": default("target"),
    "default_ratio": default("ratio"),
    "explain_batch_size": default("batch_size"),  # perturbed spectrograms per forward pass
    "explain_precision": default("precision"),    # fp32, bf16 or fp16 (CUDA) autocast for the perturbation passes
    "griffin_lim_iters": default("griffin_lim_iters"),
    "batch_windows": 16,                         # 10 s windows per forward pass for predictions
    "threads": None,                             # torch threads ($TWOLEVEL_THREADS overrides; None: half the cores)
    "checkpoint": "",                            # file in the archive; default: the manifest's serializedFile
}


def server_defaults(cfg: dict) -> ExplainOptions:
    """The options a request starts from: the server's defaults for what it leaves out."""
    samples = cfg["default_samples"]
    samples = "auto" if str(samples).strip().lower() == "auto" else int(samples)
    return ExplainOptions(target=cfg["default_target"], samples=samples,
                          auto_cap=min(int(cfg["max_samples"]), default("auto_cap")),
                          ratio=float(cfg["default_ratio"]), batch_size=int(cfg["explain_batch_size"]),
                          precision=str(cfg["explain_precision"]),
                          griffin_lim_iters=int(cfg["griffin_lim_iters"]), resynthesis=False)


def load_served_model(checkpoint: str | os.PathLike, device: str, cfg: dict) -> TwoLevelModel:
    """The model a server serves: the checkpoint on ``device`` with the server's limits.

    On a GPU it is also run once on every batch shape of the default explanation
    (:func:`twolevel.explain.sampling.warm_up`), so that the first request pays no kernel
    selection for them (H100: 0.8 s instead of 1.0 s to 1.2 s; the rest, 0.63 s).
    """
    model = TwoLevelModel.load(checkpoint, device=device, batch_size=int(cfg["batch_windows"]),
                               max_seconds=float(cfg["max_seconds"]))
    defaults = server_defaults(cfg)
    check_precision_on(model.device.type, defaults.precision)  # explain_precision fp16 on a CPU: refused at start
    warm_up(model.network, defaults.batch_size, defaults.precision)
    return model


def explain_options(options: dict, cfg: dict) -> ExplainOptions:
    """A request's option text -> :class:`ExplainOptions`, within the server's sample caps."""
    request = {k: v for k, v in options.items() if k in EXPLAIN_OPTION_KEYS}
    return options_from_request(request, defaults=server_defaults(cfg),
                                allowed=tuple(REQUEST_ALIASES.get(k, k) for k in EXPLAIN_OPTION_KEYS),
                                limits={"samples": (int(cfg["min_samples"]), int(cfg["max_samples"]))})


def read_settings(model_config: str | os.PathLike | dict | None = None) -> dict:
    """:data:`SERVER_SETTINGS` updated with the ``handler:`` section of ``model_config`` (a
    model-config.yaml path, or its parsed dict; default: the shipped one)."""
    if not isinstance(model_config, dict):
        import yaml  # PyYAML: the serve and kserve extras

        from ..resources import MODEL_CONFIG_FILE, asset_path

        path = Path(model_config) if model_config else asset_path(MODEL_CONFIG_FILE)
        model_config = yaml.safe_load(path.read_text()) or {}
    settings = dict(SERVER_SETTINGS)
    settings.update(model_config.get("handler") or {})
    return settings


def prepare_request(req: dict, settings: dict) -> dict:
    """A :func:`~twolevel.serving.requests.parse_request` result -> with ``audio`` (decoded, within
    the server's cap for its kind) and, for an explanation, ``explain_options``. Raises
    :class:`~twolevel.errors.TwolevelError` for anything the server refuses."""
    limit = float(settings["max_explain_seconds" if req["explain"] else "max_seconds"])
    if req["explain"]:
        req["explain_options"] = explain_options(req["options"], settings)
    name = _text(req["options"].get("name") or "") or None
    req["audio"] = load_audio(req.pop("audio_bytes"), max_seconds=limit, name=name and Path(name).name)
    return req


def explain_request(model, req: dict, settings: dict) -> dict:
    """The explanation JSON (:meth:`Explanation.to_dict`) of a prepared request."""
    from ..explain import explain as explain_clip

    if "explain_options" not in req:
        req["explain_options"] = explain_options(req.get("options", {}), settings)
    options = req["explain_options"]
    return explain_clip(model, req["audio"], options).to_dict(include_audio=options.resynthesis)
