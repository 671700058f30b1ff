"""Packaging without building anything: every import is declared, package data is where the code
looks, caches go to the user cache (or $TWOLEVEL_CACHE), never into the package."""
from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

from twolevel import resources

ROOT = Path(__file__).resolve().parents[1]
OWN = {"twolevel", "twolevel_cli", "twolevel_handlers"}


def _requirements() -> dict[str, set[str]]:
    """{"base": names, extra: names} from setup.cfg, names normalised as in PEP 503."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")

    def names(text: str) -> set[str]:
        out = set()
        for line in text.splitlines():
            line = line.split("#")[0].strip()
            if line:
                out.add(_norm(re.split(r"[<>=!~;\[ ]", line)[0]))
        return out

    reqs = {"base": names(cfg["options"]["install_requires"])}
    for extra, text in cfg["options.extras_require"].items():
        reqs[extra] = names(text)
    return reqs


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules(folder: Path) -> dict[str, set[str]]:
    """Top-level names of the absolute imports in every .py under ``folder`` -> files importing them."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                found.setdefault(mod.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_requirement():
    declared = set().union(*_requirements().values())
    dists = metadata.packages_distributions()
    missing = []
    for folder in ("twolevel", "cli", "handlers"):
        for mod, files in _imported_modules(ROOT / folder).items():
            if mod in OWN or mod in sys.stdlib_module_names:
                continue
            owners = {_norm(d) for d in dists.get(mod, [])}
            if not owners:
                pytest.skip(f"{mod} is not installed here: run with every extra installed (make test)")
            if not owners & declared:
                missing.append(f"{mod} ({', '.join(sorted(owners))}) imported by {', '.join(sorted(files))}")
    assert not missing, "undeclared imports:\n" + "\n".join(missing)


def test_base_install_is_the_embeddable_library():
    reqs = _requirements()
    assert "torch" in reqs["base"] and {"jinja2", "nnaudio", "soxr", "tqdm"} <= reqs["base"]
    # Serving, the test oracle and training-only packages stay out of what a backend embeds.
    assert not reqs["base"] & {"torchserve", "torch-model-archiver", "pyyaml", "psutil", "statsmodels",
                               "librosa", "lime", "pytest", "kserve"}
    assert {"torchserve", "torch-model-archiver", "pyyaml", "psutil"} <= reqs["serve"]
    assert {"statsmodels", "pytest", "pytest-benchmark", "lime"} <= reqs["dev"]
    assert "librosa" in reqs["train"] and "kserve" in reqs["kserve"]


def test_package_data_is_found_with_importlib_resources():
    from twolevel.checkpoint import default_model_path

    for name in (resources.DEFAULT_MODEL_FILE, resources.MODEL_CARD_FILE, resources.SERVER_CONFIG_FILE,
                 resources.MODEL_CONFIG_FILE):
        path = resources.asset_path(name)
        assert path.is_file() and path.parent == ROOT / "twolevel" / "assets"
    assert default_model_path() == resources.asset_path(resources.DEFAULT_MODEL_FILE)
    assert resources.handler_path().read_text().count("class TwolevelHandler") == 1
    assert not (ROOT / "archives").exists()
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = cfg["options.package_data"]["twolevel.assets"]
    for suffix in ("*.pt", "*.md", "*.properties", "*.yaml"):
        assert suffix in patterns


def test_missing_package_data_is_one_clear_error():
    from twolevel.errors import TwolevelError

    with pytest.raises(TwolevelError, match="no-such-file.bin is missing from the installed package"):
        resources.asset_path("no-such-file.bin")


def test_cache_goes_to_twolevel_cache_or_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TWOLEVEL_CACHE", str(tmp_path / "c"))
    assert resources.cache_dir("spec") == tmp_path / "c" / "spec"
    monkeypatch.delenv("TWOLEVEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert resources.cache_dir("desc") == tmp_path / "xdg" / "twolevel" / "desc"
    package = Path(resources.__file__).resolve().parent
    assert package not in resources.cache_dir().parents and ROOT not in resources.cache_dir().parents
