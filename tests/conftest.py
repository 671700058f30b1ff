"""Shared fixtures: paths to ../shared and the shipped examples, a tiny random model checkpoint."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# 2 shared cores: one torch thread per test process keeps BLAS and torch from fighting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Caches of the code under test go to a throwaway folder, never the user's cache or the checkout.
os.environ.setdefault("TWOLEVEL_CACHE", tempfile.mkdtemp(prefix="twolevel-test-cache-"))

import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SOUNDTRACKS = SHARED / "data" / "soundtracks-set1"
EXAMPLES = ROOT / "twolevel" / "examples"


@pytest.fixture(scope="session")
def soundtracks_dir() -> Path:
    if not (SOUNDTRACKS / "mean_ratings_set1.csv").is_file():
        pytest.skip("../shared/data/soundtracks-set1 is not available")
    return SOUNDTRACKS


@pytest.fixture(scope="session")
def example_clip() -> Path:
    return EXAMPLES / "enemy-unknown.ogg"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A compact (width 0.125) randomly initialised model, saved as a real checkpoint."""
    from twolevel.checkpoint import save_checkpoint
    from twolevel.model import A2Mid2EJoint, ModelConfig

    torch.manual_seed(0)
    model = A2Mid2EJoint(ModelConfig(width=0.125), mean=1.0, std=0.5)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(model, path, model_version="tiny-test", metadata={"purpose": "tests"})
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint):
    from twolevel.predict import TwoLevelModel

    return TwoLevelModel.load(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="session")
def members(tmp_path_factory):
    """Two ensemble members' fold models on 20 synthetic clips: ``(data, [m1, m2])``, folders of
    ``fold0.pt``/``fold1.pt`` (and ``-last``) from one epoch each, fold seed 5 (the distillation tests)."""
    from synthetic import synthetic_set
    from twolevel.training import TrainConfig, cross_validate

    base = tmp_path_factory.mktemp("members")
    data = synthetic_set(20, 0)
    for seed in (1, 2):
        cross_validate(data, TrainConfig(width=0.125, epochs=1, batch_size=3, seed=seed), k=5, folds_to_run=[0, 1],
                       inner_folds=8, fold_seed=5, models_dir=base / f"m{seed}")
    return data, [base / "m1", base / "m2"]


@pytest.fixture(scope="session")
def long_flac(tmp_path_factory) -> Path:
    """600 s of constant 96 kHz stereo FLAC (about 220 KB): decodes to 110 M samples (issue 11 case 2)."""
    import numpy as np
    import soundfile as sf

    path = tmp_path_factory.mktemp("long_flac") / "600s-96k-stereo.flac"
    rate = 96_000
    with sf.SoundFile(path, "w", rate, 2, format="FLAC") as f:
        block = np.full((rate * 10, 2), 0.25, np.float32)
        for _ in range(60):
            f.write(block)
    return path
