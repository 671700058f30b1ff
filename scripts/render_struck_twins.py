#!/usr/bin/env python3
"""Render a probe suite of struck mode twins: generated pieces that differ in mode only.

    python scripts/render_struck_twins.py --out cache/probes-struck-twins          # 24 twins
    python benchmarks/concept_probes.py MODEL --probes cache/probes-struck-twins

Why: the concept probes hold two pairs on mallets (marimba, vibraphone), and almost every model
measured gets them wrong (issue 13). Twelve pairs per concept cannot tell a model that reads mode in
struck notes a little from one that does not. This suite asks the same question 24 times: each twin
is a piece of ``render_tonal_corpus.piece`` on struck and plucked instruments only (the bass too),
10 s, and the same piece moved into the other mode (``mode_twin``: the 3rd, 6th and 7th degrees a
semitone, nothing else). Each twin gives two pairs in the probes' format (``twolevel/probes.py``):

* ``minorness`` (mid-level): major clip ``a``, minor clip ``b``, minorness higher in ``b``;
* ``mode`` (emotion): minor clip ``a``, major clip ``b``, happy and valence higher in ``b``, sad lower.

Rendered with FluidR3 (the probes' soundfont), so it is for evaluation only and never joins a training
corpus (the corpus's generated music uses TimGM6mb). Not committed: render it into a cache (about
2 MB, half a minute). Session 21 measured it (model card, issue 13): the v3 minorness target orders
21 of 24 twins, the shipped model 16.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_probes import EMOTION_PROBES, SECONDS, SOUNDFONT, render, require_renderer  # noqa: E402
from render_tonal_corpus import mode_twin, piece  # noqa: E402


def twin_pairs(twin: int, files: dict[str, str], desc: dict) -> list[dict]:
    """The two probe pairs of one twin (``files``: mode -> clip file): minorness and mode."""
    about = {"instrument": f"{desc['accompaniment']} / {desc['melody']} / {desc['bass']}", "tonic": desc["tonic"],
             "bpm": desc["bpm"], "twin": twin}
    return [{"kind": "midlevel", "concept": "minorness", "higher": {"minorness": +1},
             "a": files["major"], "b": files["minor"], **about},
            {"kind": "emotion", "concept": "mode", "higher": dict(EMOTION_PROBES["mode"]),
             "a": files["minor"], "b": files["major"], **about}]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder to write: the clips and probes.json")
    ap.add_argument("--twins", type=int, default=24, help="how many twins (default 24)")
    ap.add_argument("--seed", type=int, default=2, help="the pieces' seed (default 2: the suite measured)")
    args = ap.parse_args(argv)
    if args.twins < 1:
        ap.error("--twins must be at least 1")
    require_renderer("render_struck_twins")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.twins):
            notes, bpm, programs, desc = piece(rng, struck_only=True)
            twin, twin_desc = mode_twin(notes, desc)
            files = {}
            for these, about in ((notes, desc), (twin, twin_desc)):
                files[about["mode"]] = f"twin-{k:02d}-{about['mode']}.ogg"
                render(these, bpm, programs, args.out / files[about["mode"]], Path(tmp))
            pairs += twin_pairs(k, files, desc)
    index = {"seconds": SECONDS, "soundfont": SOUNDFONT.name, "suite": f"struck-twins-seed{args.seed}",
             "pairs": pairs}
    (args.out / "probes.json").write_text(json.dumps(index, indent=1))
    print(f"{args.twins} twins ({len(pairs)} pairs) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
