"""``kserve``: the KServe-native model server (``pip install 'twolevel[kserve]'``)."""
from __future__ import annotations

from pathlib import Path

import click

from twolevel.client import DEFAULT_MODEL

from .common import device_option, friendly_errors, model_option


@click.command()
@model_option
@device_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (in a KServe pod: 0.0.0.0, as deploy/kserve-native.yaml sets).")
@click.option("--port", type=int, default=8080, show_default=True, help="HTTP port (KServe's default 8080).")
@click.option("--token", default=None, envvar="TWOLEVEL_TOKEN",
              help="Require 'Authorization: Bearer TOKEN' on the model routes (default: $TWOLEVEL_TOKEN; none: open).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="model-config.yaml whose handler: section sets caps and defaults (default: the shipped one).")
@click.option("--name", default=DEFAULT_MODEL, show_default=True, help="Model name in the routes.")
@friendly_errors
def kserve(model_path, device, host, port, token, config_path, name):
    """Serve the model with KServe's ModelServer: v1 and v2 predict and explain.

    \b
      twolevel-cli kserve --port 8080 --token s3cret
      curl -H 'Authorization: Bearer s3cret' -H 'Content-Type: application/json' \\
        -d '{"instances": [{"data": "<base64 audio>"}]}' http://127.0.0.1:8080/v1/models/twolevel:predict

    Routes: /v1/models/NAME:predict, :explain; /v2/models/NAME/infer, /v2/models/NAME/explain;
    probes /v2/health/live, /v2/health/ready. Same payloads and answers as TorchServe's handler.
    """
    try:
        from twolevel.serving.kserve_server import serve
    except ModuleNotFoundError as err:
        raise click.ClickException(f"the KServe server needs the kserve extra: pip install 'twolevel[kserve]' "
                                   f"({err.name} is missing)") from None
    serve(Path(model_path) if model_path else None, host, port, token, config_path, name, device)
