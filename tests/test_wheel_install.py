"""The package as a user installs it: build the wheel, pip-install it into a fresh venv outside the
checkout, and use it from a folder that is not the checkout.

One venv for every check (it costs about 100-120 s and 1.3 GB here, most of it unpacking torch, which
pip takes from the machine's local torch wheel; the rest comes from the pip configuration and
cache a user would have). The venv gets the wheel with the ``serve`` extra, then: the shipped
model predicts and explains an example clip, ``twolevel-cli package`` packs the shipped model
into a .mar, and the handler inside that .mar loads and answers a request as a TorchServe worker
would. The interpreter runs with a clean environment (no PYTHONPATH, a fresh cache home), so
nothing from the checkout can leak in.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _source_copy(dest: Path) -> Path:
    """The files a clean clone would have (tracked and untracked-not-ignored), copied to ``dest``.

    Building from a copy keeps setuptools' build/ and egg-info out of the checkout and keeps
    stale build/ leftovers out of the wheel.
    """
    try:
        listing = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT,
                                 capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is needed to list the checkout's files")
    for name in filter(None, listing):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "TWOLEVEL_MODEL", "TWOLEVEL_CACHE", "PYTHONSTARTUP")}
    env.update({"XDG_CACHE_HOME": str(home / "xdg-cache"), "MPLCONFIGDIR": str(home / "mpl"),
                "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "TWOLEVEL_THREADS": "1"})
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, work dir, env) with the freshly built wheel installed with the serve extra."""
    base = tmp_path_factory.mktemp("wheel-install")
    assert ROOT not in base.parents
    src = _source_copy(base / "src")
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(src)], check=True, cwd=base)
    wheel = next(wheels.glob("twolevel-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # torch==2.13.0 is pinned in the wheel's requirements, so pip takes the machine's local wheel.
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check",
                           f"{wheel}[serve]"], capture_output=True, text=True, cwd=base)
    assert proc.returncode == 0, proc.stderr[-3000:]
    work = base / "work"
    work.mkdir()
    return venv, work, _clean_env(base)


def _python(installed, code: str, timeout: float = 600) -> dict:
    venv, work, env = installed
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", textwrap.dedent(code)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_wheel_holds_the_model_and_configs_as_package_data(installed):
    got = _python(installed, """
        import json, twolevel
        from importlib import metadata
        from twolevel.checkpoint import default_model_path
        from twolevel.resources import asset_path, handler_path
        names = ["twolevel-default.pt", "MODEL_CARD.md", "config.properties", "model-config.yaml"]
        print(json.dumps({"package": twolevel.__file__, "model": str(default_model_path()),
                          "assets": [str(asset_path(n)) for n in names], "handler": str(handler_path()),
                          "requires": metadata.requires("twolevel")}))
    """)
    venv = installed[0]
    for path in [got["package"], got["model"], got["handler"], *got["assets"]]:
        assert Path(path).is_file() and venv in Path(path).parents, path
    base = [r for r in got["requires"] if "extra ==" not in r]
    assert any(r.startswith("torch==2.13.0") for r in base)
    # The embeddable library does not drag in the server, the test oracle or the training extras.
    for name in ("torchserve", "torch-model-archiver", "statsmodels", "librosa", "kserve", "lime", "pytest"):
        assert not any(r.lower().startswith(name) for r in base), (name, base)


def test_predict_and_explain_from_the_installed_package(installed):
    got = _python(installed, """
        import json, sys
        from twolevel import TwoLevelModel, example_path
        from twolevel.explain import explain
        model = TwoLevelModel.load(device="cpu")
        pred = model.predict(example_path("enemy-unknown.ogg"))
        exp = explain(model, model.load_audio(example_path("nebula.ogg")), target="energy", n_samples=600,
                      batch_size=100, resynthesis=False, progress=None)
        loaded = sorted({m.split(".")[0] for m in sys.modules} & {"ts", "yaml", "statsmodels", "librosa",
                                                                    "kserve", "model_archiver", "psutil"})
        print(json.dumps({"prediction": pred.to_dict(), "explanation": exp.to_dict(include_audio=False),
                          "loaded": loaded}))
    """)
    from twolevel import TwoLevelModel, example_path

    expected = TwoLevelModel.load(device="cpu").predict(example_path("enemy-unknown.ogg")).to_dict()
    pred = got["prediction"]
    assert pred["model_version"] == expected["model_version"] != "tiny-test"
    for group in ("emotions", "midlevels"):
        for k, v in expected[group].items():
            assert pred[group][k] == pytest.approx(v, rel=1e-4, abs=1e-5)
    assert got["explanation"]["target"] == "energy" and got["explanation"]["parameters"]["n_samples"] == 600
    assert got["loaded"] == [], "the library imported server or test-only packages"


def test_package_and_handler_load_from_the_installed_package(installed):
    venv, work, env = installed
    store = work / "store"
    proc = subprocess.run([str(venv / "bin" / "twolevel-cli"), "package", "--out", str(store)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    mar = store / "twolevel.mar"
    assert mar.is_file()
    got = _python(installed, f"""
        import importlib, json, sys, zipfile
        from pathlib import Path
        import yaml
        from ts.context import Context, RequestProcessor
        from twolevel import example_path
        model_dir = Path("unpacked")
        zipfile.ZipFile({str(mar)!r}).extractall(model_dir)
        manifest = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())
        config = yaml.safe_load((model_dir / manifest["model"]["configFile"]).read_text())
        # As a TorchServe worker does: the model dir on sys.path, the handler imported by module name.
        sys.path.insert(0, str(model_dir.resolve()))
        module = importlib.import_module(Path(manifest["model"]["handler"]).stem)
        ctx = Context("twolevel", str(model_dir.resolve()), manifest, 1, None, "0.12.0", model_yaml_config=config)
        ctx.request_processor = [RequestProcessor({{"explain": "False", "body": {{"content-type": "audio/ogg"}}}})]
        handler = module.TwolevelHandler()
        handler.initialize(ctx)
        out = handler.handle([{{"body": example_path("awakening.ogg").read_bytes()}}], ctx)
        print(json.dumps({{"files": sorted(p.name for p in model_dir.iterdir()), "handler": module.__file__,
                          "status": ctx.get_response_status(0)[0], "body": json.loads(out[0])}}))
    """)
    assert {"twolevel_handler.py", "twolevel-default.pt", "model-config.yaml", "MAR-INF"} <= set(got["files"])
    assert Path(got["handler"]).parent.name == "unpacked"
    assert got["status"] == 200
    assert set(got["body"]["emotions"]) >= {"energy", "tension"} and got["body"]["duration"] > 10
