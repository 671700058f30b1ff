"""``twolevel-cli``: emotions, their mid-level reasons, and where in the sound those reasons live."""
from __future__ import annotations

import click

from twolevel import __version__

from .predict_cmd import demo, effects_cmd, predict


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="twolevel-cli")
def cli():
    """Two-level explanations of music emotion recognition.

    \b
    Level 1: which mid-level features (melodiousness, articulation, ...) drive each emotion.
    Level 2: which parts of the spectrogram drive each mid-level feature, and how they sound.

    \b
    Start here:
      twolevel-cli predict song.mp3              emotions + mid-levels as a table
      twolevel-cli predict --effects out/ *.mp3  plus one effects plot per file
      twolevel-cli effects                       the model's mid -> emotion weights
      twolevel-cli explain song.mp3 --target articulation --out out/
    """


cli.add_command(predict)
cli.add_command(effects_cmd)
cli.add_command(demo)

# Commands owned by their own modules; each registers if importable.
for _module, _names in (
    ("explain_cmd", ("explain",)),
    ("train_cmd", ("train", "evaluate", "merge")),
    ("serve_cmd", ("package", "serve")),
    ("kserve_cmd", ("kserve",)),
):
    try:
        _mod = __import__(f"twolevel_cli.{_module}", fromlist=list(_names))
    except ModuleNotFoundError as _err:
        if _err.name != f"twolevel_cli.{_module}":
            raise
        continue
    for _name in _names:
        cli.add_command(getattr(_mod, _name))


if __name__ == "__main__":  # pragma: no cover
    cli()
