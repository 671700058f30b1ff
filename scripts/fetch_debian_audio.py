#!/usr/bin/env python3
"""Fetch freely licensed music from Debian's archive and build the mid-level pre-training corpus.

One command, reproducible, cached:

    python scripts/fetch_debian_audio.py                 # default packages -> cache/debian-audio/
    python scripts/fetch_debian_audio.py --packages asc-music,neverball-data --max-windows 8

For each package: ``apt-get download`` (the .deb only, nothing is installed), ``dpkg -x`` into
``<cache>/root/<package>``, the package's ``/usr/share/doc/<package>/copyright`` copied to
``<cache>/licences/`` and its ``License:`` fields recorded in ``<cache>/licences.json``; then
every music file of 20 s or more is cut into 10 s windows (at most ``--max-windows`` per track)
whose spectrograms and raw descriptor targets go to ``<cache>/corpus/``
(:func:`twolevel.corpus.build_corpus`). The audio is never committed or shipped; only the
licence summary goes into the model card.

``wesnoth-*-music`` packages are refused: they are reserved as an external check.
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twolevel.corpus import AUDIO_SUFFIXES, Track, build_corpus  # noqa: E402

#: Music packages of Debian (bookworm) with free licences; sound effects are filtered by length.
DEFAULT_PACKAGES = ("hyperrogue-music", "singularity-music", "drascula-music", "asc-music", "warzone2100-music",
                    "frozen-bubble-data", "xmoto-data", "neverball-data", "supertux-data", "openclonk-data",
                    "flare-game", "freedroidrpg-data")
#: Folders that hold sound effects or voices, not music, inside those packages.
NOT_MUSIC = re.compile(r"/(sounds?|sfx|voices?|speech|effects)/", re.I)


def refuse_reserved(packages) -> None:
    bad = [p for p in packages if p.startswith("wesnoth")]
    if bad:
        sys.exit(f"fetch_debian_audio: {', '.join(bad)} reserved as an external check; not used for training")


def download(package: str, cache: Path) -> Path:
    """The package's .deb in ``<cache>/debs`` (downloaded once)."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    have = sorted(debs.glob(f"{package}_*.deb"))
    if have:
        return have[-1]
    subprocess.run(["apt-get", "download", package], cwd=debs, check=True, stdout=subprocess.DEVNULL)
    have = sorted(debs.glob(f"{package}_*.deb"))
    if not have:
        raise RuntimeError(f"apt-get download {package} left no .deb")
    return have[-1]


def extract(deb: Path, package: str, cache: Path) -> Path:
    root = cache / "root" / package
    if not (root / ".done").is_file():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        (root / ".done").write_text(deb.name)
    return root


def licence_of(root: Path, package: str, cache: Path) -> dict:
    """The copyright file's licences (``License:`` short names), and a copy of the file."""
    doc = root / "usr/share/doc" / package / "copyright"
    if not doc.is_file():  # some -data packages keep their doc under the main package's name
        found = sorted((root / "usr/share/doc").glob("*/copyright"))
        doc = found[0] if found else doc
    out = {"package": package, "copyright_file": None, "licenses": []}
    if doc.is_file():
        dest = cache / "licences" / f"{package}.copyright"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(doc, dest)
        text = doc.read_text(errors="replace")
        names = [m.strip() for m in re.findall(r"^License:\s*(.+)$", text, re.M)]
        out["copyright_file"] = str(dest.relative_to(cache))
        if not names:  # an old-style copyright file: keep the lines that name a licence
            names = [ln.strip() for ln in text.splitlines() if re.search(r"licen[cs]e|GPL|Creative Commons", ln, re.I)][:3]
        out["licenses"] = sorted(set(names))
    return out


def track_licences(copyright_text: str, files: list[Path], root: Path) -> dict[str, str]:
    """Each music file's licence from a machine-readable (DEP-5) copyright file, last match winning.

    The stanzas name source paths (``music/theme.ogg``); installed files are matched by their
    path's tail keeping a folder (``data/music/*`` names ``usr/share/games/x/music/a.ogg``). Files no stanza names get ``Files: *``'s.
    """
    import fnmatch

    stanzas = []
    for block in re.split(r"\n\s*\n", copyright_text):
        files_m = re.search(r"^Files:\s*(.+?)(?=^\S|\Z)", block, re.M | re.S)
        lic_m = re.search(r"^License:\s*(.+)$", block, re.M)
        if files_m and lic_m:
            stanzas.append((files_m.group(1).split(), lic_m.group(1).strip()))
    out = {}
    for f in files:
        rel = str(f.relative_to(root))
        licence = "unknown"
        for patterns, lic in stanzas:
            if any(_tail_match(rel, pat, fnmatch.fnmatch) for pat in patterns):
                licence = lic
        out[rel] = licence
    return out


def _tail_match(rel: str, pattern: str, fnmatch) -> bool:
    """``pattern`` (a source path glob) matches ``rel`` (an installed path) by a tail that keeps
    at least one folder: ``data/music/*`` matches ``usr/share/games/x/music/a.ogg``."""
    if pattern == "*":
        return True
    parts = pattern.strip("/").split("/")
    tails = ["/".join(parts[k:]) for k in range(max(1, len(parts) - 1))]
    return any(fnmatch(rel, "*/" + t) or fnmatch(rel, t) for t in tails)


def music_files(root: Path) -> list[Path]:
    """The package's music files, sorted, each content once (drascula-music, for one, installs
    the same 31 tracks in six language folders)."""
    files = [p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()]
    return unique_contents(sorted(p for p in files if not NOT_MUSIC.search(str(p.relative_to(root)))))


def unique_contents(files: list[Path]) -> list[Path]:
    """``files`` without those whose bytes equal an earlier one's (order kept)."""
    import hashlib

    seen, kept = set(), []
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).digest()
        if digest not in seen:
            seen.add(digest)
            kept.append(path)
    return kept


def licence_table(cache: Path) -> str:
    """Markdown: per package, the tracks and windows in the corpus and their licences."""
    licences = json.loads((cache / "licences.json").read_text())
    index = json.loads((cache / "corpus" / "index.json").read_text())
    rows = ["| package | tracks used | windows | licence of those tracks (DEP-5 copyright) |", "|---|---|---|---|"]
    for package, info in licences.items():
        root = cache / "root" / package
        used = {w["file"] for w in index["windows"] if w["package"] == package}
        windows = sum(w["package"] == package for w in index["windows"])
        per = info.get("track_licences", {})
        names = [per.get(str(Path(f).relative_to(root)), "unknown") if Path(f).is_relative_to(root) else "unknown"
                 for f in sorted(used)]
        counts = ", ".join(f"{lic} ({names.count(lic)})" for lic in sorted(set(names))) or "-"
        if "unknown" in names:
            counts += "; see the package's copyright file: " + "; ".join(info.get("licenses", [])[:2])
        rows.append(f"| {package} | {len(used)} | {windows} | {counts} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=ROOT / "cache" / "debian-audio")
    ap.add_argument("--packages", default=",".join(DEFAULT_PACKAGES), help="comma-separated package names")
    ap.add_argument("--max-windows", type=int, default=3, help="10 s windows per track at most")
    ap.add_argument("--max-tracks", type=int, default=0, help="tracks per package at most (0 = all)")
    ap.add_argument("--fetch-only", action="store_true", help="download, extract and record licences only")
    ap.add_argument("--licence-table", action="store_true",
                    help="print the licences of the corpus windows as a Markdown table (for the model card) and stop")
    args = ap.parse_args(argv)
    if args.licence_table:
        print(licence_table(args.cache))
        return 0
    packages = [p.strip() for p in args.packages.split(",") if p.strip()]
    refuse_reserved(packages)
    import os

    import torch

    torch.set_num_threads(int(os.environ.get("TWOLEVEL_THREADS", "1")))
    cache = args.cache
    licences, per_package = {}, []
    for package in packages:
        try:
            root = extract(download(package, cache), package, cache)
        except (subprocess.CalledProcessError, RuntimeError) as err:
            print(f"{package}: skipped ({err})", file=sys.stderr)
            continue
        licences[package] = licence_of(root, package, cache)
        files = music_files(root)
        if args.max_tracks:
            files = files[:args.max_tracks]
        licences[package]["tracks"] = len(files)
        doc = cache / licences[package]["copyright_file"] if licences[package]["copyright_file"] else None
        per_track = track_licences(doc.read_text(errors="replace"), files, root) if doc else {}
        licences[package]["track_licences"] = per_track
        licences[package]["track_licence_counts"] = {lic: list(per_track.values()).count(lic)
                                                     for lic in sorted(set(per_track.values()))}
        per_package.append([Track(p, package) for p in files])
        print(f"{package}: {len(files)} audio files; licences {', '.join(licences[package]['licenses']) or '?'}")
    (cache / "licences.json").write_text(json.dumps(licences, indent=1))
    # round robin over the packages, so that a corpus cut short (or --max-tracks) stays varied
    tracks = [t for group in itertools.zip_longest(*per_package) for t in group if t is not None]
    if args.fetch_only:
        return 0
    build_corpus(tracks, cache / "corpus", args.max_windows, progress=sys.stderr.isatty())
    return 0


if __name__ == "__main__":
    sys.exit(main())
