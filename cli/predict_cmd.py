"""``predict``, ``effects`` and ``demo``: level 1 (emotion <- mid-level) from the command line."""
from __future__ import annotations

from pathlib import Path

import click

from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES

from .common import (device_option, echo_json, endpoint_client, endpoint_option, friendly_errors, json_option,
                     model_option, set_threads, timeout_option, token_option)
from .corpus_cmd import corpus_options, run_corpus_job

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3"}


def _bar(value: float, width: int = 20) -> str:
    filled = int(round(max(0.0, min(1.0, value)) * width))
    return "#" * filled + "." * (width - filled)


def format_prediction_table(result) -> str:
    """Human-readable table of one :class:`~twolevel.Prediction`."""
    lines = [f"{result.name}  ({result.duration:.1f} s, {len(result.windows)} window(s), "
             f"model {result.model_version})"]
    lines.append("  emotions                     mid-level features")
    emo, mid = list(EMOTION_NAMES), list(MIDLEVEL_NAMES)
    for i in range(max(len(emo), len(mid))):
        left = f"{emo[i]:<9}{result.emotions[emo[i]]:6.3f} {_bar(result.emotions[emo[i]], 10)}" if i < len(emo) else ""
        right = f"{mid[i]:<18}{result.midlevels[mid[i]]:6.3f} {_bar(result.midlevels[mid[i]], 10)}" if i < len(mid) else ""
        lines.append(f"  {left:<29}{right}")
    top = max(EMOTION_NAMES, key=lambda e: result.emotions[e])
    reasons = result.effects.top_midlevels(top, k=2)
    lines.append(f"  strongest emotion: {top}, mostly through "
                 + " and ".join(f"{m} ({v:+.3f})" for m, v in reasons))
    return "\n".join(lines)


def _expand(files: tuple[str, ...]) -> list[Path]:
    paths: list[Path] = []
    for f in files:
        p = Path(f)
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.suffix.lower() in AUDIO_SUFFIXES)
        else:
            paths.append(p)
    return paths


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@model_option
@device_option
@json_option
@click.option("--effects", "effects_dir", type=click.Path(file_okay=False), default=None,
              help="Write one effects plot (PNG) per file into this folder.")
@endpoint_option
@token_option
@timeout_option
@corpus_options
@friendly_errors
def predict(files, model_path, device, as_json, effects_dir, endpoint, token, timeout, jsonl, concurrency):
    """Predict 8 emotions and 7 mid-level features for each audio FILE (or folder).

    Accepts WAV, FLAC, OGG and MP3. Clips longer than 10 s are cut into 10 s windows; the
    clip's values are the mean over windows (per-window values are in --json). Values are on
    the model's 0..1 scale (listener ratings 1..9 divided by 10).

    \b
    Examples:
      twolevel-cli predict song.mp3
      twolevel-cli predict --json --effects plots/ music/
      twolevel-cli predict --endpoint http://127.0.0.1:8080 song.mp3
      twolevel-cli predict --endpoint http://127.0.0.1:8080 music/ --concurrency 8 --jsonl out.jsonl
    """
    from twolevel.plots import effects_plot

    paths = _expand(files)
    results, failures = [], []
    if endpoint:
        client = endpoint_client(endpoint, token, timeout)
        run = client.predict
    else:
        set_threads()
        from twolevel.predict import TwoLevelModel

        model = TwoLevelModel.load(model_path, device=device)
        run = model.predict
    if jsonl:
        return run_corpus_job(files, run, jsonl, "prediction", concurrency if endpoint else 1, as_json)
    from twolevel.errors import AudioError

    for path in paths:
        try:
            result = run(path)
        except AudioError as err:  # one bad file must not stop the others
            failures.append({"file": str(path), "error": err.code, "message": err.message})
            if not as_json:
                click.echo(f"{path}: skipped: {err.message}", err=True)
            continue
        record = {**result.to_dict(), "file": str(path)}
        if effects_dir:
            png = effects_plot(result.effects, Path(effects_dir) / f"{path.stem}.effects.png", title=path.name)
            record["effects_plot"] = str(png)
        results.append(record)
        if not as_json:
            click.echo(format_prediction_table(result))
            if effects_dir:
                click.echo(f"  effects plot: {record['effects_plot']}")
            click.echo()
    if as_json:
        echo_json({"predictions": results, "errors": failures})
    if failures and not results:
        raise SystemExit(2)


@click.command(name="effects")
@model_option
@device_option
@json_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out",
              show_default=True, help="Folder for the pictures.")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of audio files: add the distribution of effects over them.")
@friendly_errors
def effects_cmd(model_path, device, as_json, out_dir, corpus):
    """Show the model's global mid-level -> emotion weights (the explainable layer).

    Writes weights.png (a heatmap: how much one unit of each mid-level feature moves each
    emotion) and, with --corpus, corpus-effects.png (the spread of weight x value over the
    clips) and prints the same numbers as JSON with --json.
    """
    set_threads()
    import numpy as np

    from twolevel.effects import corpus_effects
    from twolevel.plots import corpus_effects_plot, weights_heatmap
    from twolevel.predict import TwoLevelModel

    model = TwoLevelModel.load(model_path, device=device)
    out = Path(out_dir)
    weight, bias = model.emotion_weight, model.emotion_bias
    data = {
        "model_version": model.model_version,
        "weights": {m: {e: float(weight[i, j]) for i, e in enumerate(EMOTION_NAMES)} for j, m in enumerate(MIDLEVEL_NAMES)},
        "bias": {e: float(bias[i]) for i, e in enumerate(EMOTION_NAMES)},
        "weights_plot": str(weights_heatmap(weight, bias, out / "weights.png")),
    }
    if corpus:
        paths = _expand((corpus,))
        mids, used = [], []
        from twolevel.errors import AudioError

        from twolevel.progress import each

        for p in each(paths, "clips"):
            try:
                mids.append(model.predict(p).midlevel_vector)
                used.append(str(p))
            except AudioError as err:
                click.echo(f"\n{p}: skipped: {err.message}", err=True)
        if not mids:
            raise click.ClickException(f"no readable audio files in {corpus}")
        summary = corpus_effects(weight, np.stack(mids))
        data["corpus"] = {
            "n": len(used),
            "files": used,
            **{stat: {e: {m: float(summary[stat][i, j]) for j, m in enumerate(MIDLEVEL_NAMES)}
                      for i, e in enumerate(EMOTION_NAMES)} for stat in ("mean", "std", "min", "max")},
            "plot": str(corpus_effects_plot(summary["effects"], out / "corpus-effects.png")),
        }
    if as_json:
        echo_json(data)
        return
    click.echo(f"model {model.model_version}: emotion = sum(weight x mid-level) + bias")
    click.echo(f"{'':<18}" + "".join(f"{e[:7]:>8}" for e in EMOTION_NAMES))
    for j, m in enumerate(MIDLEVEL_NAMES):
        click.echo(f"{m:<18}" + "".join(f"{weight[i, j]:8.2f}" for i in range(len(EMOTION_NAMES))))
    click.echo(f"{'bias':<18}" + "".join(f"{b:8.2f}" for b in bias))
    click.echo(f"\nweights heatmap: {data['weights_plot']}")
    if corpus:
        click.echo(f"corpus effects over {data['corpus']['n']} clips: {data['corpus']['plot']}")


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out", show_default=True)
@model_option
@friendly_errors
def demo(out_dir, model_path):
    """Run the main job on the shipped model and a shipped example clip."""
    set_threads()
    from twolevel import example_path
    from twolevel.checkpoint import default_model_path
    from twolevel.plots import effects_plot, weights_heatmap
    from twolevel.predict import TwoLevelModel

    path = Path(model_path) if model_path else default_model_path()
    if path.is_file() or model_path:
        model = TwoLevelModel.load(path)
        click.echo(f"model: {path} (version {model.model_version})")
    else:
        import torch

        from twolevel.model import A2Mid2EJoint, ModelConfig

        torch.manual_seed(0)
        model = TwoLevelModel(A2Mid2EJoint(ModelConfig(width=0.25)).eval())
        click.echo(f"WARNING: no trained model at {path}; running an UNTRAINED width-0.25 model "
                   "to show the pipeline. Its numbers mean nothing.", err=True)
    out = Path(out_dir)
    for name in ("enemy-unknown.ogg", "awakening.ogg", "nebula.ogg"):
        result = model.predict(example_path(name))
        click.echo(format_prediction_table(result))
        click.echo(f"  effects plot: {effects_plot(result.effects, out / (Path(name).stem + '.effects.png'), title=name)}\n")
    click.echo(f"weights heatmap: {weights_heatmap(model.emotion_weight, model.emotion_bias, out / 'weights.png')}")
