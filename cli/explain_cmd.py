"""``explain``: level 2 from the command line: which spectrogram segments drive an output, as a report."""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import click

from twolevel.labels import EMOTION_NAMES, MIDLEVEL_NAMES
from twolevel.options import PRECISIONS, SAMPLING_DESIGNS
from twolevel.signal import WINDOW_SECONDS

from .common import (device_option, echo_json, endpoint_client, endpoint_option, explain_option, friendly_errors,
                     json_option, model_option, set_threads, timeout_option, token_option)
from .corpus_cmd import corpus_options, run_corpus_job

#: Most seeds --repeats runs (each is a full explanation).
MAX_REPEATS = 20


def _summary(exp, report: Path) -> dict:
    """The short machine-readable result printed by ``--json`` (the full record is explanation.json)."""
    from twolevel.serialize import json_safe

    fits = {s.output: exp.output_fit(s.output) for s in exp.selections}
    return json_safe({
        "report": str(report),
        "json": str(report.parent / "explanation.json"),
        "name": exp.name,
        "target": exp.target,
        "n_segments": exp.n_segments,
        "selections": [{"output": s.output, "role": s.role, "effect": s.effect, "positive": s.positive,
                        "negative": s.negative, "empty": s.empty} for s in exp.selections],
        "empty_selections": exp.empty_selections,
        "r2": {out: fit["r2"] for out, fit in fits.items()},
        "intercept": {out: fit["intercept"] for out, fit in fits.items()},
        "faithfulness": {s.output: s.faithfulness for s in exp.selections},
        "predictions": {"midlevels": exp.midlevels, "emotions": exp.emotions},
        "repeats": exp.repeats,
        "timings": exp.timings,
        "n_samples": exp.parameters["n_samples"],
        "adaptive": exp.parameters.get("adaptive"),
    })


def _auto_note(parameters: dict) -> str:
    """``, auto: 4 rounds, converged`` for a ``samples="auto"`` explanation."""
    adaptive = parameters.get("adaptive")
    if not adaptive:
        return ""
    state = "converged" if adaptive["converged"] and adaptive["n_samples"] < adaptive["cap"] else "cap reached"
    return f", auto: {len(adaptive['rounds'])} rounds, {state}"


def _print_human(exp, report: Path) -> None:
    click.echo(f"{exp.name}: explaining {exp.target} on {exp.offset:.1f}-{exp.offset + WINDOW_SECONDS:.1f} s "
               f"({exp.parameters['n_samples']:,} samples{_auto_note(exp.parameters)}, {exp.n_segments} segments)")
    for sel in exp.selections:
        r2 = exp.output_fit(sel.output)["r2"]
        via = f" (effect on {exp.target}: {sel.effect:+.3f})" if sel.role == "via_midlevel" else ""
        value = exp.midlevels.get(sel.output, exp.emotions.get(sel.output))
        what = ("empty selection: no segment passed the threshold" if sel.empty else
                f"{len(sel.positive)} positive, {len(sel.negative)} negative segments")
        check = sel.faithfulness.get("positive", {})
        faith = (f"; deletion check {'passed' if check['passed'] else 'FAILED'}" if "passed" in check else "")
        r2_text = f"{r2:.3f}" if math.isfinite(r2) else "n/a"
        click.echo(f"  {sel.output:<18} = {value:.3f}{via}: {what} (surrogate R^2 {r2_text}{faith})")
    if exp.repeats:
        rep = exp.repeats
        for out, v in rep["outputs"].items():
            click.echo(f"  repeats ({rep['runs']} seeds) {out}: Jaccard signed {v['signed']:.3f}, "
                       f"positive {v['positive']:.3f}, negative {v['negative']:.3f}")
    click.echo(f"report: {report}")


@click.command()
@click.argument("file", type=click.Path())
@explain_option("--target", "target", metavar="NAME",
                help="Mid-level feature or emotion to explain: " + ", ".join(MIDLEVEL_NAMES + EMOTION_NAMES) + ".")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out", show_default=True,
              help="Folder for report.html, its pictures and audio, and explanation.json.")
@explain_option("--samples", "samples", default=None, show_default=False,
                help="Perturbation samples, at least 2 x (segments + 1), or 'auto': rounds of 1,563, 3,125, "
                     "... samples until every traced output's selection agrees with the round before "
                     "(Jaccard >= 0.9), at most 50,000 (the paper's count). Default: auto locally; with "
                     "--endpoint, the server's default (auto; its cap bounds a request).")
@explain_option("--auto-cap", "auto_cap",
                help="Most samples --samples auto draws, here (a server applies its own cap). 12,500 gives a "
                     "quick look: Jaccard ~0.88 to a 50,000-sample run.")
@explain_option("--ratio", "ratio")
@explain_option("--seed", "seed")
@explain_option("--design", "design", type=click.Choice(SAMPLING_DESIGNS), default=None,
                show_default=False, help="How perturbations are drawn: antithetic (the default: each random sample "
                "followed by its complement, stabler selections for the same samples) or independent (LIME's "
                "sampling). With --endpoint, the server's default.")
@explain_option("--batch-size", "batch_size")
@explain_option("--precision", "precision", type=click.Choice(PRECISIONS),
                help="Arithmetic of the perturbation passes, here (a server uses its explain_precision setting): "
                     "fp32; bf16 (autocast: about 2x faster on CPUs with AVX-512 BF16 or AMX, about 1.1x on GPUs, "
                     "slower on CPUs without; selections within Jaccard ~0.97 of fp32's); or fp16 (autocast, "
                     "CUDA only: about 1.2x on GPUs, selections within Jaccard ~0.99).")
@device_option
@explain_option("--offset", "offset")
@click.option("--repeats", type=click.IntRange(1, MAX_REPEATS), default=1, show_default=True,
              help="Run with K seeds (SEED..SEED+K-1) and report the Jaccard overlap of the selected segments.")
@click.option("--format", "audio_format", type=click.Choice(["wav", "flac"]), default="wav", show_default=True,
              help="Audio file format of the resyntheses.")
@explain_option("--iterations", "griffin_lim_iters")
@json_option
@model_option
@endpoint_option
@token_option
@timeout_option
@corpus_options
@friendly_errors
def explain(file, target, out_dir, samples, auto_cap, ratio, seed, design, batch_size, precision, device, offset, repeats, audio_format,
            griffin_lim_iters, as_json, model_path, endpoint, token, timeout, jsonl, concurrency):
    """Explain TARGET on FILE down to the spectrogram, and make the explanation audible.

    Cuts the 10 s window at --offset, segments its spectrogram (Felzenszwalb), switches segments
    on and off in --samples random combinations (antithetic pairs unless --design independent), fits LIME's weighted linear surrogate with
    p-values, and keeps the segments with p / |weight| < --ratio. For an emotion, the three
    mid-levels with the largest effects on it are traced too. Writes report.html (open it in a
    browser), PNGs, audio (enhanced, positive-only and negative-only resyntheses) and
    explanation.json into --out.

    \b
    Examples:
      twolevel-cli explain song.mp3 --target articulation --out out/
      twolevel-cli explain song.mp3 --target energy --samples 5000 --repeats 3 --out out/
      twolevel-cli explain song.mp3 --endpoint http://127.0.0.1:8080 --target tension --out out/
      twolevel-cli explain music/ --endpoint http://127.0.0.1:8080 --target energy --samples 2000 \
        --concurrency 4 --jsonl explanations.jsonl       (a corpus: one JSON line per file, resumable)
    """
    # What the caller asked for; None = the default (a server's own, with --endpoint).
    asked = {"target": target, "samples": samples, "ratio": ratio, "design": design, "offset": offset}
    if jsonl or Path(file).is_dir():
        from twolevel.errors import OptionError

        if not (jsonl and endpoint):
            raise OptionError("a folder is a corpus job: give --endpoint URL and --jsonl OUT", code="bad_option")
        client = endpoint_client(endpoint, token, timeout)
        client.progress = lambda _label: contextlib.nullcontext()  # one bar for the job, no ticker per request
        return run_corpus_job([file], lambda p: client.explain(p, seed=seed, **asked), jsonl, "explanation",
                              concurrency, as_json)
    from twolevel.explain import repeats_summary
    from twolevel.report import write_report

    seeds = [seed + k for k in range(repeats)]
    if endpoint:
        runs = _remote_runs(file, seeds, asked, endpoint_client(endpoint, token, timeout))
    else:
        local = {"batch_size": batch_size, "griffin_lim_iters": griffin_lim_iters, "auto_cap": auto_cap,
                 "precision": precision}
        runs = _local_runs(file, seeds, {**asked, **local}, model_path, device)
    exp = runs[0]
    if repeats > 1:
        exp.repeats = repeats_summary(runs)
    report = write_report(exp, Path(out_dir), audio_format=audio_format)
    if as_json:
        echo_json(_summary(exp, report))
    else:
        _print_human(exp, report)


def _remote_runs(file, seeds: list[int], asked: dict, client) -> list:
    """One :class:`~twolevel.explain.Explanation` per seed from the server; audio with the first only."""
    return [client.explain(file, seed=s, include_audio=(k == 0), **asked) for k, s in enumerate(seeds)]


def _local_runs(file, seeds: list[int], asked: dict, model_path, device) -> list:
    """One :class:`~twolevel.explain.Explanation` per seed on this machine; resynthesis for the first
    only. ``asked``: option name -> value, None for the default."""
    set_threads()
    from twolevel.explain import explain as run_explain
    from twolevel.options import ExplainOptions
    from twolevel.predict import TwoLevelModel
    from twolevel.progress import sample_bar

    options = ExplainOptions(**{name: value for name, value in asked.items() if value is not None})
    model = TwoLevelModel.load(model_path, device=device)
    audio = model.load_audio(file)
    runs = []
    for k, s in enumerate(seeds):
        with sample_bar(f"{options.target} (seed {s})") as progress:
            runs.append(run_explain(model, audio, options.replace(seed=s, resynthesis=(k == 0)), progress=progress))
    return runs
