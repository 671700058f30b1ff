"""``package`` and ``serve start|stop|status``: the model archive and a TorchServe on loopback.

A shell over :mod:`twolevel.serving.torchserve`, which builds the archive and manages the server
process (run folders, ports, readiness); this file only turns options into calls and prints.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from twolevel.client import DEFAULT_MODEL, key_expiry, renew_key, run_dir as default_run_dir
from twolevel.errors import TwolevelError
from twolevel.serving.torchserve import build_archive, server_status, start_server, stop_server

from .common import friendly_errors


@click.command()
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint to pack (default: the shipped model, or $TWOLEVEL_MODEL).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="model_store", show_default=True,
              help="Model store folder for the .mar.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="model-config.yaml to pack (default: the shipped model-config.yaml).")
@click.option("--name", default=DEFAULT_MODEL, show_default=True, help="Model name in TorchServe.")
@click.option("--kserve", "kserve_dir", type=click.Path(file_okay=False), default=None,
              help="Instead of --out: write KServe's TorchServe storage layout here "
                   "(config/config.properties, model-store/NAME.mar) for an InferenceService's storageUri.")
@friendly_errors
def package(model_path, out_dir, config_path, name, kserve_dir):
    """Build the TorchServe model archive (.mar): handler, checkpoint and model-config.yaml.

    The archive loads in a worker whose Python environment has twolevel installed.

    \b
    Examples:
      twolevel-cli package                          model_store/twolevel.mar
      twolevel-cli package --kserve storage/        KServe layout; copy storage/ to the storageUri
                                                    of deploy/kserve-torchserve.yaml
    """
    from twolevel.checkpoint import default_model_path

    path = Path(model_path) if model_path else default_model_path()
    if kserve_dir:
        from twolevel.serving.kserve_storage import write_kserve_storage

        written = write_kserve_storage(kserve_dir, path, config_path, name)
        click.echo(f"KServe storage layout in {kserve_dir}  (model {path}, version {written['version']})")
        click.echo(f"  {written['config']}\n  {written['mar']}")
        click.echo("  copy the folder to the InferenceService's storageUri (see deploy/kserve-torchserve.yaml)")
        return
    mar = build_archive(path, out_dir, config_path, name)
    click.echo(f"model archive: {mar}  (model {path})")


run_option = click.option("--run-dir", "run", type=click.Path(file_okay=False), default=None,
                          help="Folder for this server's config, temp files, logs and key file "
                               "(default: $TWOLEVEL_RUN_DIR or runs/serve).")


@click.group()
def serve():
    """Run TorchServe with the twolevel archive on this machine (127.0.0.1 only).

    \b
      twolevel-cli package                      build model_store/twolevel.mar
      twolevel-cli serve start                  start, wait until the model is ready
      twolevel-cli predict --endpoint http://127.0.0.1:PORT song.mp3
      twolevel-cli serve stop
    """


@serve.command()
@run_option
@click.option("--model-store", type=click.Path(file_okay=False), default="model_store", show_default=True)
@click.option("--archive", "mar", default=f"{DEFAULT_MODEL}.mar", show_default=True, help="The .mar in the model store.")
@click.option("--port", type=int, default=0, help="Inference port (default: a free one).")
@click.option("--management-port", type=int, default=0,
              help="Serve the management API on this loopback port (default: a Unix socket in the run folder, "
                   "reachable by this user only).")
@click.option("--metrics-port", type=int, default=0, help="Metrics port (default: a free one).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="config.properties to start from (default: the shipped config.properties).")
@click.option("--threads", type=int, default=None, help="torch threads in the worker (default: model-config.yaml).")
@click.option("--wait", type=float, default=300.0, show_default=True, help="Seconds to wait for the model.")
@friendly_errors
def start(run, model_store, mar, port, management_port, metrics_port, config, threads, wait):
    """Start TorchServe in the background and wait until the model answers."""
    info = start_server(run, model_store, mar, port, management_port, metrics_port, config, threads, wait)
    click.echo(f"TorchServe is ready (pid {info['pid']})")
    click.echo(f"  inference:  {info['inference_address']}   e.g. twolevel-cli predict --endpoint "
               f"{info['inference_address']} song.mp3")
    click.echo(f"  management: {info['management_address']}   metrics: {info['metrics_address']}/metrics")
    found = Path(info["run_dir"]) == default_run_dir().resolve()
    click.echo(f"  inference token: in {info['key_file']} (\"inference\" -> \"key\"); "
               + ("the CLI finds it there" if found else
                  f"the CLI finds it with TWOLEVEL_RUN_DIR={info['run_dir']} (or pass --token)"))
    click.echo(f"  logs: {info['log_dir']}")
    click.echo(f"  stop with: twolevel-cli serve stop{' --run-dir ' + run if run else ''}")


@serve.command()
@run_option
@friendly_errors
def stop(run):
    """Stop the TorchServe started from this run folder (and only that one)."""
    if stop_server(run):
        click.echo("TorchServe stopped")
    else:
        click.echo("no TorchServe running from this run folder")


@serve.command()
@run_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
def status(run, as_json):
    """Show whether the TorchServe of this run folder runs, where, and its workers."""
    info = server_status(run)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    elif not info["running"]:
        click.echo(f"not running (run folder {info['run_dir']})")
    else:
        click.echo(f"running (pid {info['pid']}), model {'ready' if info['ready'] else 'NOT ready'}: {info['workers']}")
        click.echo(f"  inference:  {info['inference_address']}")
        click.echo(f"  management: {info['management_address']}   metrics: {info['metrics_address']}/metrics")
        click.echo(f"  inference token: in {info['key_file']}")
        click.echo(f"  logs: {info['log_dir']}")
    if not info["running"]:
        sys.exit(3)


@serve.command()
@run_option
@click.option("--kind", type=click.Choice(["inference", "management"]), default="inference", show_default=True,
              help="Which key to renew.")
@click.option("--show", is_flag=True, help="Also print the new key (it is secret: mind where the output goes).")
@friendly_errors
def token(run, kind, show):
    """Renew the server's inference (or management) token before or after it expires.

    TorchServe's keys expire after token_expiration_min (config.properties; 24 h here). The key
    file's API key, which does not expire, asks the running server for a new one; TorchServe
    rewrites key_file.json, where the CLI finds it. Clients on this machine that read the key
    file also renew by themselves when their token is refused.
    """
    info = server_status(run)
    if not info["running"]:
        raise TwolevelError(f"no TorchServe running from {info['run_dir']}", code="server_down")
    new = renew_key(info["key_file"], kind, info["management_address"])
    click.echo(f"new {kind} token in {info['key_file']} (\"{kind}\" -> \"key\"), "
               f"valid until {key_expiry(info['key_file'], kind) or '?'}")
    if show:
        click.echo(new)
