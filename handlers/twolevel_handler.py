"""TorchServe handler for twolevel: request -> :mod:`twolevel` -> JSON.

A thin shell: decoding, checks, the model and the explanations all live in ``twolevel``; this
file only reads requests, calls it, and turns its deliberate errors into per-request HTTP
statuses. TorchServe loads it as the archive's ``--handler``; the worker's Python environment
must have ``twolevel`` installed (``pip install -e .``).

Routes (TorchServe 0.12 frontend, verified against its InferenceRequestHandler):

* ``POST /predictions/{model}`` and KServe ``/v1/models/{model}:predict``,
  ``/v2/models/{model}/infer`` reach the worker with the request header ``explain: False``.
* ``POST /explanations/{model}``, ``/v1/models/{model}:explain`` and
  ``/v2/models/{model}/explain`` reach it with ``explain: True``. BaseHandler only looks at the
  first request of a batch (``_is_explain``); requests of both kinds can share a batch, so this
  handler reads the header of every request.
* Query parameters are forwarded to the worker only on ``/invocations`` and the legacy
  ``/{model}/predict`` routes (the frontend drops them on the routes above); there an
  ``explain=true`` parameter selects the explain path.

Input: parsed by :func:`twolevel.serving.requests.parse_request`: the audio file as the raw body,
a multipart file field, or base64 in JSON (plain, KServe v1 or v2); options (``target``,
``samples``, ``ratio``, ``seed``, ``offset`` (start of the explained 10 s window, s),
``include_audio``, and ``name``, the file name to report) from JSON fields, multipart/query
fields, or ``X-Twolevel-<option>`` headers, in that order of precedence (JSON first).

Output: the JSON of :meth:`twolevel.Prediction.to_dict` or :meth:`twolevel.explain.Explanation.to_dict`
(by :mod:`twolevel.serving.responses`: wrapped in ``{"predictions": [...]}`` / ``{"explanations": [...]}`` for KServe v1 and in an
``outputs`` list for v2). A refused request gets ``{"error": CODE, "message": TEXT}`` with a
4xx status set for that request alone; the rest of its batch is answered normally.
"""
from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus
from pathlib import Path

import torch
from ts.torch_handler.base_handler import BaseHandler

from twolevel.model import pick_device
from twolevel.options import default_threads
from twolevel.predict import TwoLevelModel
from twolevel.serving.requests import parse_request
from twolevel.serving.responses import error_body, wrap_result
from twolevel.serving.service import SERVER_SETTINGS, explain_request, load_served_model, prepare_request, read_settings

logger = logging.getLogger(__name__)

class TwolevelHandler(BaseHandler):
    """TorchServe handler: predictions in batches, explanations one by one, errors per request."""

    def __init__(self):
        super().__init__()
        self.model: TwoLevelModel | None = None
        self.config = dict(SERVER_SETTINGS)

    # -- lifecycle ------------------------------------------------------------------------
    def initialize(self, context):
        """Load the checkpoint from the model dir; read ``handler:`` from model-config.yaml."""
        self.context = context
        self.manifest = context.manifest or {}
        self.config = read_settings(getattr(context, "model_yaml_config", None) or {})
        torch.set_num_threads(default_threads(self.config.get("threads")))
        props = context.system_properties
        model_dir = Path(props.get("model_dir") or ".")
        name = self.config.get("checkpoint") or (self.manifest.get("model") or {}).get("serializedFile")
        if name:
            path = model_dir / name
        else:
            found = sorted(model_dir.glob("*.pt"))
            if not found:
                raise RuntimeError(f"no checkpoint (*.pt) in {model_dir}")
            path = found[0]
        gpu = props.get("gpu_id")
        # TorchServe names a GPU whenever the host has one; a CPU-only torch build still runs on the CPU.
        self.device = pick_device(f"cuda:{gpu}" if gpu is not None and torch.cuda.is_available() else "cpu")
        device = str(self.device)
        self.model = load_served_model(path, device, self.config)
        self.initialized = True
        logger.info("twolevel model %s loaded from %s on %s (%d threads)", self.model.model_version, path,
                    device, torch.get_num_threads())

    # -- helpers --------------------------------------------------------------------------
    def _headers(self, idx: int) -> dict:
        try:
            return self.context.get_all_request_header(idx) or {}
        except (AttributeError, IndexError, TypeError):
            return {}

    def _is_explain_request(self, idx: int) -> bool:
        try:
            return self.context.get_request_header(idx, "explain") == "True"
        except (AttributeError, IndexError, TypeError):
            return False

    def _fail(self, idx: int, err: BaseException) -> bytes:
        status, body = error_body(err)
        if status >= 500:
            logger.error("request %d failed", idx, exc_info=err)
        else:
            logger.info("request %d refused: %s: %s", idx, body["error"], body["message"])
        # The reason phrase is the standard one (ASCII, no user text); the message is in the JSON body.
        self._respond(idx, status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error")
        return json.dumps(body).encode("utf-8")

    def _respond(self, idx: int, status: int = 200, phrase: str = "OK") -> None:
        if self.context is None or getattr(self.context, "request_processor", None) is None:
            return
        self.context.set_response_status(status, phrase, idx=idx)
        self.context.set_response_content_type(idx, "application/json")

    # -- TorchServe stages ----------------------------------------------------------------
    def preprocess(self, data):
        """Per request: decoded :class:`~twolevel.Audio` and options, or the error refusing it."""
        out = []
        for idx, row in enumerate(data):
            try:
                req = parse_request(row, self._headers(idx))
                req["explain"] = req["explain"] or self._is_explain_request(idx)
                out.append(prepare_request(req, self.config))
            except Exception as err:  # noqa: BLE001 -- every failure is answered per request
                out.append(err)
        return out

    def inference(self, data, *args, **kwargs):
        """Predictions for parsed requests (windows of all clips in one forward batch)."""
        results: list = [None] * len(data)
        ok = [i for i, r in enumerate(data) if isinstance(r, dict)]
        for i, r in enumerate(data):
            if not isinstance(r, dict):
                results[i] = r
        if not ok:
            return results
        try:
            preds = self.model.predict_many([data[i]["audio"] for i in ok])
            for i, p in zip(ok, preds):
                results[i] = p.to_dict()
        except Exception:  # noqa: BLE001 -- isolate the clip that broke the batch
            logger.warning("batched prediction failed; retrying clip by clip", exc_info=True)
            for i in ok:
                try:
                    results[i] = self.model.predict_audio(data[i]["audio"]).to_dict()
                except Exception as err:  # noqa: BLE001
                    results[i] = err
        return results

    def explain_handle(self, data_preprocess, raw_data):
        """Explanations for parsed requests (each one explained, whatever its header says).

        ``data_preprocess`` is :meth:`preprocess`'s list; returns one result (dict) or error per item.
        """
        results = []
        for req in data_preprocess:
            if not isinstance(req, dict):
                results.append(req)
                continue
            try:
                results.append(explain_request(self.model, req, self.config))
            except Exception as err:  # noqa: BLE001 -- answered per request
                results.append(err)
        return results

    def postprocess(self, data):
        return data

    def handle(self, data, context):
        """Route each request of the batch: predictions batched together, explanations one by one."""
        start = time.time()
        self.context = context
        parsed = self.preprocess(data)
        outputs: list = [None] * len(parsed)
        predict_idx = [i for i, r in enumerate(parsed) if not (isinstance(r, dict) and r["explain"])]
        explain_idx = [i for i, r in enumerate(parsed) if isinstance(r, dict) and r["explain"]]
        if predict_idx:
            for i, res in zip(predict_idx, self.inference([parsed[i] for i in predict_idx])):
                outputs[i] = (res, "prediction")
        if explain_idx:
            for i, res in zip(explain_idx, self.explain_handle([parsed[i] for i in explain_idx], data)):
                outputs[i] = (res, "explanation")
        answers = []
        for idx, (res, kind) in enumerate(outputs):
            if isinstance(res, BaseException):
                answers.append(self._fail(idx, res))
            else:
                self._respond(idx, 200)
                body = wrap_result(res, kind, parsed[idx].get("protocol"),
                                   getattr(self.context, "model_name", "twolevel"))
                answers.append(json.dumps(body, separators=(",", ":")).encode("utf-8"))
        metrics = getattr(context, "metrics", None)
        if metrics is not None:
            metrics.add_time("HandlerTime", round((time.time() - start) * 1000, 2), None, "ms")
        return answers
