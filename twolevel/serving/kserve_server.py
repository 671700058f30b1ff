"""A KServe-native model server for twolevel: a ``kserve.Model`` over the same library calls as the
TorchServe handler (``pip install 'twolevel[kserve]'``; ``twolevel-cli kserve`` starts it).

Routes (KServe ModelServer 0.21, plus one):

* ``POST /v1/models/twolevel:predict`` and ``:explain`` -- KServe v1 JSON, plain ``{"data": B64}``
  JSON, the raw audio file, or a multipart file field (the TorchServe client's format);
* ``POST /v2/models/twolevel/infer`` -- the open inference protocol (one BYTES input with the
  base64 audio; options as ``parameters`` or inputs named like the option; ``"explain": true``
  selects the explanation);
* ``POST /v2/models/twolevel/explain`` -- added here: KServe's v2 has no explain route, TorchServe's
  has, so both servers answer the same v2 explain payload;
* ``GET /v2/health/live``, ``/v2/health/ready``, ``/v1/models/twolevel`` -- probes (never behind auth).

Answers are the JSON the TorchServe handler sends (same envelopes, :mod:`twolevel.serving.responses`);
a refused request gets ``{"error": CODE, "message": TEXT}`` with its 4xx status, a failure a 500
without internals. With a token (``--token`` / ``$TWOLEVEL_TOKEN``) the model routes require
``Authorization: Bearer <token>``, the header KServe's authenticated InferenceServices expect.
Settings, caps and option checks are those of :mod:`twolevel.serving.service`.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import uuid

import sys

# kserve parses sys.argv when first imported (argparse with abbreviations: a caller's --config
# would be read as its --configure_logging): let it see no arguments of ours.
_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve.model_server  # noqa: F401 -- the module that parses
    from fastapi import Request
    from kserve import Model
    from kserve.protocol.infer_type import InferRequest
finally:
    sys.argv = _argv

from ..client import DEFAULT_MODEL
from ..errors import TwolevelError
from ..model import pick_device
from ..options import default_threads
from ..predict import TwoLevelModel
from .requests import multipart_fields, parse_request
from .responses import error_body, wrap_result
from .service import explain_request, load_served_model, prepare_request, read_settings

logger = logging.getLogger(__name__)

#: Routes anyone may call (Kubernetes probes, metrics); everything else needs the token when one is set.
OPEN_PATHS = ("/", "/metrics", "/v2/health/live", "/v2/health/ready", "/v2")


class TwolevelKServeModel(Model):
    """``kserve.Model``: predictions and explanations of one twolevel checkpoint.

    Args:
        name: the model name in the routes.
        checkpoint: the model file (default: the shipped model).
        settings: the server's settings (:func:`twolevel.serving.service.read_settings`).
        device: torch device (default: CUDA when available).
    """

    def __init__(self, name: str = DEFAULT_MODEL, checkpoint=None, settings: dict | None = None, device=None):
        super().__init__(name)
        self.checkpoint = checkpoint
        self.settings = settings if settings is not None else read_settings()
        self.device = device
        self.model: TwoLevelModel | None = None

    def load(self) -> bool:
        import torch

        torch.set_num_threads(default_threads(self.settings.get("threads")))
        self.model = load_served_model(self.checkpoint, str(pick_device(self.device)), self.settings)
        self.ready = True
        logger.info("twolevel model %s loaded (%d torch threads)", self.model.model_version, torch.get_num_threads())
        return self.ready

    # -- one request ------------------------------------------------------------------------
    @staticmethod
    def _row(payload, headers: dict) -> dict:
        """KServe's decoded payload -> the request row :func:`parse_request` reads."""
        if isinstance(payload, InferRequest):  # /v2/.../infer, already parsed by KServe
            inputs = [{"name": i.name, "datatype": i.datatype, "shape": i.shape, "data": i.data}
                      for i in payload.inputs]
            parameters = {k: getattr(v, "value", v) for k, v in (payload.parameters or {}).items()}
            return {"body": {"inputs": inputs, "parameters": parameters}}
        if isinstance(payload, (bytes, bytearray)):  # a body that is not JSON
            content_type = str(headers.get("content-type") or "")
            if content_type.lower().startswith("multipart/form-data"):
                return multipart_fields(bytes(payload), content_type)
            return {"body": bytes(payload)}
        if isinstance(payload, dict):
            return {"body": payload}
        raise TwolevelError("a JSON body must be an object with a 'data' field", code="bad_request")

    def answer(self, payload, headers: dict | None, explain: bool) -> dict:
        """The response JSON for one request (blocking: runs in a worker thread)."""
        headers = {str(k).lower(): v for k, v in (headers or {}).items()}
        req = parse_request(self._row(payload, headers), headers)
        req["explain"] = req["explain"] or explain
        if isinstance(payload, InferRequest):
            req["protocol"] = "v2"
        prepare_request(req, self.settings)
        if req["explain"]:
            kind, result = "explanation", explain_request(self.model, req, self.settings)
        else:
            kind, result = "prediction", self.model.predict_audio(req["audio"]).to_dict()
        body = wrap_result(result, kind, req["protocol"], self.name)
        if req["protocol"] == "v2":  # the open inference protocol answers with the request's id
            body["id"] = getattr(payload, "id", None) or str(uuid.uuid4())
        return body

    async def predict(self, payload, headers=None, response_headers=None):
        return await asyncio.get_running_loop().run_in_executor(None, self.answer, payload, headers, False)

    async def explain(self, payload, headers=None):
        return await asyncio.get_running_loop().run_in_executor(None, self.answer, payload, headers, True)


# --- the HTTP server ------------------------------------------------------------------------

def _json_response(status: int, body: dict):
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content=body)


async def _twolevel_error(_request, err):
    status, body = error_body(err)
    return _json_response(status, body)


async def _invalid_input(_request, err):
    return _json_response(400, {"error": "bad_request", "message": str(err).splitlines()[0][:300]})


async def _internal_error(_request, err):
    logger.error("request failed", exc_info=err)
    status, body = error_body(err)
    return _json_response(status, body)


class BearerTokenAuth:
    """ASGI middleware: model routes need ``Authorization: Bearer <token>``; probes stay open."""

    def __init__(self, app, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = json.dumps({"error": "bad_token", "message": "missing or wrong bearer token"}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def build_server(model: TwolevelKServeModel, host: str = "127.0.0.1", port: int = 8080, token: str | None = None):
    """The uvicorn server for ``model`` (loaded): KServe's REST app with twolevel's error handlers,
    the v2 explain route and, with ``token``, bearer-token auth. Serve with ``asyncio.run(s.serve())``."""
    import kserve.model_server as kserve_app
    from kserve import ModelServer
    from kserve.errors import InvalidInput
    from kserve.model import InferenceVerb
    from kserve.protocol.rest.server import RESTServer

    server = ModelServer(http_port=port, enable_grpc=False, workers=1)
    server.register_model(model)
    rest = RESTServer(f"{kserve_app.__name__}:app", server.dataplane, server.model_repository_extension, port)
    rest.config.host = host  # KServe binds 0.0.0.0 (a pod); a local server stays where it is told
    rest.create_application()
    app = kserve_app.app

    async def v2_explain(model_name: str, request: Request):
        found = await server.dataplane.get_model(model_name)
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw.strip() else {}
        except ValueError as err:
            raise TwolevelError(f"malformed JSON body ({err})", code="malformed_json") from None
        result, _ = await found(payload, headers=dict(request.headers), verb=InferenceVerb.EXPLAIN)
        return _json_response(200, result)

    app.add_api_route("/v2/models/{model_name}/explain", v2_explain, methods=["POST"])
    app.add_exception_handler(TwolevelError, _twolevel_error)
    app.add_exception_handler(InvalidInput, _invalid_input)
    app.add_exception_handler(Exception, _internal_error)
    if token:
        app.add_middleware(BearerTokenAuth, token=token)
    return rest._server


def serve(checkpoint=None, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          model_config=None, name: str = DEFAULT_MODEL, device=None) -> None:
    """Load the model and serve it until interrupted."""
    model = TwolevelKServeModel(name, checkpoint, read_settings(model_config), device)
    model.load()
    asyncio.run(build_server(model, host, port, token).serve())
