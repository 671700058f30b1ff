"""twolevel: two-level explanations of music emotion recognition.

Audio -> nnAudio spectrogram -> A2Mid2E-Joint CNN -> 7 mid-level features -> linear -> 8 emotions;
level 1 explains emotions by mid-levels (effects), level 2 explains mid-levels by spectrogram
segments (LIME), and the segments can be resynthesised to audio.
"""
from .audio import Audio, load_audio
from .checkpoint import default_model_path, load_checkpoint, save_checkpoint
from .effects import Effects
from .errors import AudioError, CheckpointError, OptionError, TwolevelError
from .labels import EMOTION_NAMES, MIDLEVEL_NAMES
from .model import A2Mid2EJoint, ModelConfig
from .options import ExplainOptions
from .predict import Prediction, TwoLevelModel, WindowPrediction

__version__ = "0.1.0"

__all__ = [
    "A2Mid2EJoint", "Audio", "AudioError", "CheckpointError", "EMOTION_NAMES", "Effects", "ExplainOptions",
    "MIDLEVEL_NAMES", "ModelConfig", "OptionError", "Prediction", "TwoLevelModel",
    "TwolevelError", "WindowPrediction", "default_model_path", "load_audio", "load_checkpoint",
    "save_checkpoint", "__version__",
]


def example_path(name: str = "enemy-unknown.ogg"):
    """Path of a shipped example clip (see ``twolevel/examples/ATTRIBUTION.md``)."""
    from .resources import package_file

    try:
        return package_file("twolevel.examples", name)
    except TwolevelError:
        raise FileNotFoundError(f"no example clip {name!r}; shipped: enemy-unknown.ogg, awakening.ogg, nebula.ogg") from None
