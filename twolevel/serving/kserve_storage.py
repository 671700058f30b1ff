"""The model storage layout of KServe's TorchServe runtime, for an InferenceService's ``storageUri``.

KServe's ``kserve-torchserve`` ClusterServingRuntime starts::

    torchserve --start --model-store=/mnt/models/model-store --ts-config=/mnt/models/config/config.properties

with the storage (PVC, S3, GCS ...) mounted at ``/mnt/models``. :func:`write_kserve_storage`
writes that tree::

    DIR/config/config.properties     KServe's ports (8085 inference+management, 8082 metrics),
                                     model_snapshot naming the model, token auth off (see below)
    DIR/model-store/twolevel.mar     the same archive ``twolevel-cli package`` builds

Decisions, each with its reason:

* ``enable_envvars_config=false``. KServe labels every PyTorch InferenceService with a
  ``serviceEnvelope`` (``kserve`` or ``kservev2``) and the runtime passes it as
  ``TS_SERVICE_ENVELOPE``. TorchServe's envelopes keep only the first request of a batch and drop
  v2 ``parameters`` (the explanation options); the twolevel handler reads KServe v1 and v2
  bodies itself (:mod:`twolevel.serving.requests`), so the layout tells TorchServe to ignore
  environment overrides, the envelope with them.
* ``disable_token_authorization=true``. Inside a KServe pod, TorchServe sits behind KServe's
  own front (the ingress / auth proxy and the ``kserve_wrapper`` in the torchserve-kfs image),
  which cannot read TorchServe's per-start key file; authentication belongs to KServe there
  (e.g. the ``serving.kserve.io/enable-auth`` annotation or a mesh policy).
* Addresses bind ``0.0.0.0`` as the pod needs; a local run must rewrite them (the tests do).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..client import DEFAULT_MODEL
from ..resources import MODEL_CONFIG_FILE, SERVER_CONFIG_FILE, asset_path
from .torchserve import build_archive

#: Where KServe mounts the storage in the predictor container.
MOUNT = "/mnt/models"
#: KServe's TorchServe ports: inference and management share 8085; 8080 belongs to the kserve wrapper.
KSERVE_PROPERTIES = {
    "inference_address": "http://0.0.0.0:8085",
    "management_address": "http://0.0.0.0:8085",
    "metrics_address": "http://0.0.0.0:8082",
    "grpc_inference_port": "7070",
    "grpc_management_port": "7071",
    "enable_envvars_config": "false",
    "disable_token_authorization": "true",
    "install_py_dep_per_model": "false",
    "enable_metrics_api": "true",
    "metrics_mode": "prometheus",
    "model_store": f"{MOUNT}/model-store",
}
#: Settings of the shipped config.properties that carry over (request/response sizes, timeouts, threads).
CARRIED_OVER = ("max_request_size", "max_response_size", "default_response_timeout", "number_of_netty_threads",
                "netty_client_threads", "job_queue_size", "enable_model_api", "use_native_io", "vmargs")
#: model-config.yaml keys -> TorchServe model_snapshot keys.
SNAPSHOT_KEYS = {"minWorkers": "minWorkers", "maxWorkers": "maxWorkers", "batchSize": "batchSize",
                 "maxBatchDelay": "maxBatchDelay", "responseTimeout": "responseTimeout"}


def read_properties(path: str | os.PathLike) -> dict[str, str]:
    """``key=value`` lines of a Java properties file (comments and blank lines skipped)."""
    items = {}
    for line in Path(path).read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and "=" in stripped:
            key, value = stripped.split("=", 1)
            items[key.strip()] = value.strip()
    return items


def write_properties(path: str | os.PathLike, props: dict, header: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {line}" for line in header.splitlines()] + [f"{k}={v}" for k, v in props.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def model_snapshot(name: str, mar: str, version: str, model_config: str | os.PathLike) -> str:
    """TorchServe's ``model_snapshot`` JSON: which archive to load, with the workers and batching
    of ``model_config`` (model-config.yaml)."""
    import yaml

    cfg = yaml.safe_load(Path(model_config).read_text()) or {}
    entry = {"defaultVersion": True, "marName": mar, "minWorkers": 1, "maxWorkers": 1, "batchSize": 1,
             "maxBatchDelay": 50, "responseTimeout": 1800}
    entry.update({snap: cfg[key] for key, snap in SNAPSHOT_KEYS.items() if key in cfg})
    return json.dumps({"name": "startup.cfg", "modelCount": 1, "models": {name: {version: entry}}},
                      separators=(",", ":"))


def write_kserve_storage(out_dir: str | os.PathLike, checkpoint: str | os.PathLike,
                         model_config: str | os.PathLike | None = None, name: str = DEFAULT_MODEL) -> dict:
    """Write KServe's TorchServe layout under ``out_dir``; returns ``{"config", "mar", "version"}`` paths."""
    from ..checkpoint import read_checkpoint

    out = Path(out_dir)
    model_config = Path(model_config) if model_config else asset_path(MODEL_CONFIG_FILE)
    mar = build_archive(checkpoint, out / "model-store", model_config, name)
    version = "".join(c if c.isalnum() or c in ".-_" else "-"
                      for c in str(read_checkpoint(checkpoint).get("model_version") or "1.0"))
    shipped = read_properties(asset_path(SERVER_CONFIG_FILE))
    props = dict(KSERVE_PROPERTIES)
    props.update({k: shipped[k] for k in CARRIED_OVER if k in shipped})
    props["model_snapshot"] = model_snapshot(name, mar.name, version, model_config)
    config = write_properties(out / "config" / "config.properties", props,
                              header="KServe TorchServe runtime config for twolevel (twolevel-cli package --kserve).\n"
                                     "Mounted at /mnt/models/config/config.properties; see twolevel/serving/kserve_storage.py.")
    return {"config": config, "mar": mar, "version": version}
