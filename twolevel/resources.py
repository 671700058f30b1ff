"""Where twolevel's own files are: shipped package data (read-only) and the user cache (writable).

Package data is read with :mod:`importlib.resources`, so it is found the same way in a checkout,
an editable install and a wheel installed into site-packages. Nothing is ever written next to it:
caches go to :func:`cache_dir` (``$TWOLEVEL_CACHE``, else the platform's user cache folder).
"""
from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from pathlib import Path

from .errors import TwolevelError

#: Package holding the shipped model, its card and the TorchServe configuration.
ASSETS_PACKAGE = "twolevel.assets"
#: The shipped checkpoint, model card, TorchServe server config and per-model config.
DEFAULT_MODEL_FILE = "twolevel-default.pt"
MODEL_CARD_FILE = "MODEL_CARD.md"
SERVER_CONFIG_FILE = "config.properties"
MODEL_CONFIG_FILE = "model-config.yaml"
#: The TorchServe handler, shipped as module ``twolevel_handlers.twolevel_handler``.
HANDLER_PACKAGE, HANDLER_FILE = "twolevel_handlers", "twolevel_handler.py"


def package_file(package: str, name: str, must_exist: bool = True) -> Path:
    """A real filesystem path of package data ``name`` (extracted to the cache if zipped).

    With ``must_exist=False`` a missing file's would-be path comes back instead of an error.
    """
    try:
        entry = resources.files(package) / name
    except ModuleNotFoundError:
        raise TwolevelError(f"package {package} is not installed", code="not_found") from None
    if not must_exist and isinstance(entry, Path) and not entry.exists():
        return entry
    if not entry.is_file():
        raise TwolevelError(f"{name} is missing from the installed package {package}; reinstall twolevel",
                            code="not_found")
    if isinstance(entry, Path):  # the usual case: a plain directory in site-packages or a checkout
        return entry
    # Zip imports and the like: torch.load and torch-model-archiver need a real file.
    target = cache_dir("package-data", package) / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with resources.as_file(entry) as tmp:
            shutil.copyfile(tmp, target)
    return target


def asset_path(name: str, must_exist: bool = True) -> Path:
    """Path of a file shipped in :mod:`twolevel.assets` (e.g. :data:`MODEL_CONFIG_FILE`)."""
    return package_file(ASSETS_PACKAGE, name, must_exist)


def handler_path() -> Path:
    """Path of the TorchServe handler source that ``twolevel-cli package`` packs into the .mar."""
    return package_file(HANDLER_PACKAGE, HANDLER_FILE)


def user_cache_root() -> Path:
    """The platform's per-user cache folder (XDG on Linux, ~/Library/Caches, %LOCALAPPDATA%)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "twolevel" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "twolevel"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "twolevel"


def cache_dir(*parts: str) -> Path:
    """twolevel's cache folder (``$TWOLEVEL_CACHE``, else :func:`user_cache_root`), joined with ``parts``.

    Not created here: writers create what they write.
    """
    env = os.environ.get("TWOLEVEL_CACHE")
    return (Path(env).expanduser() if env else user_cache_root()).joinpath(*parts)
