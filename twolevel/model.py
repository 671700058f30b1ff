"""The A2Mid2E-Joint network: spectrogram -> VGG-style CNN -> 7 mid-levels -> linear -> 8 emotions.

Architecture as in Chowdhury et al. (ISMIR 2019) and paper-facts.md. ``width`` scales every
convolution's channel count (1.0 = the paper), for compact variants that make explanations
cheaper (each LIME sample is one forward pass).
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .frontend import Frontend
from .labels import EMOTION_NAMES, MIDLEVEL_NAMES
from .runtime import tune_allocator
from .signal import N_BANDS, WINDOW_FRAMES

#: (out_channels, kernel, stride, padding) of the nine convolutions at width 1.0, and where
#: a 2x2 max-pool + dropout follows.
PAPER_CONVS = (
    (64, 5, 2, 2),
    (64, 3, 1, 1),
    "pool",
    (128, 3, 1, 1),
    (128, 3, 1, 1),
    "pool",
    (256, 3, 1, 1),
    (256, 3, 1, 1),
    (384, 3, 1, 1),
    (512, 3, 1, 1),
    (256, 1, 1, 0),
)


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters saved with every checkpoint."""

    width: float = 1.0
    dropout: float = 0.3
    n_midlevel: int = len(MIDLEVEL_NAMES)
    n_emotion: int = len(EMOTION_NAMES)
    #: Independent convolution stacks side by side on the same spectrogram (grouped convolutions:
    #: each trunk sees only its own channels); the mid-level head averages their outputs. 1 = the
    #: paper's network. Built by :func:`twolevel.trunks.merge_trunks` from separately trained models.
    trunks: int = 1

    def __post_init__(self):
        if not (isinstance(self.trunks, int) and self.trunks >= 1):
            raise ValueError(f"trunks must be an integer >= 1, got {self.trunks!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def scaled_channels(channels: int, width: float) -> int:
    """Channel count at a width multiplier, at least 8 and a multiple of 4."""
    return max(8, int(round(channels * width / 4)) * 4)


class A2Mid2EJoint(nn.Module):
    """Audio -> (mid-levels, emotions).

    Entries:
        ``forward(audio)``: ``(batch, samples)`` float at 22,050 Hz -> ``(mid (batch, 7), emo (batch, 8))``.
        ``forward_spectrogram(spec)``: normalised ``(batch, 1, frames, 149)`` -> same outputs.
        The explainer uses the second, so that perturbations act on the spectrogram.

    Speed: in eval mode without autograd (``torch.inference_mode()`` or ``no_grad``), the
    convolutions run as a cached copy with each batch norm folded into its convolution's weights
    and bias, dropout left out, in ``channels_last`` layout, and several trunks run either as one
    grouped stack or one after another as plain convolutions, whichever measured faster for the
    device and precision (see :func:`trunks_one_after_another`): 1.5x to 3x fewer seconds per
    sample on CPU than the module as trained, equal outputs to float rounding. Constructing the
    model also tunes the C allocator once per process (:func:`twolevel.runtime.tune_allocator`).
    """

    def __init__(self, config: ModelConfig | None = None, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        tune_allocator()
        self.config = config or ModelConfig()
        self.frontend = Frontend(mean=mean, std=std)
        trunks = self.config.trunks
        layers: list[nn.Module] = []
        in_ch = 1
        for spec in PAPER_CONVS:
            if spec == "pool":
                layers += [nn.MaxPool2d(2), nn.Dropout(self.config.dropout)]
                continue
            out, k, s, p = spec
            out = scaled_channels(out, self.config.width) * trunks
            # The first convolution reads the one input channel for every trunk; the others are
            # grouped, so trunk t's channels only ever see trunk t's channels.
            groups = 1 if in_ch == 1 else trunks
            layers += [nn.Conv2d(in_ch, out, k, s, p, bias=False, groups=groups), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True)]
            in_ch = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.midlevel = nn.Linear(in_ch, self.config.n_midlevel)
        #: The explainable layer: emotions = W @ mid + b.
        self.emotion = nn.Linear(self.config.n_midlevel, self.config.n_emotion)

    def forward_spectrogram(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # channels_last: the convolutions run ~1.5x faster on CPU (oneDNN's native layout, also
        # cuDNN's for tensor cores); for one input channel this is a stride change, not a copy.
        spec = spec.contiguous(memory_format=torch.channels_last)
        if self.training or torch.is_grad_enabled():
            h = self.features(spec)
        else:
            h = self.inference_features(trunks_one_after_another(spec.device))(spec)
        h = self.pool(h).flatten(1)
        mid = self.midlevel(h)
        return mid, self.emotion(mid)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self.frontend(audio)[:, :, :WINDOW_FRAMES]
        return self.forward_spectrogram(spec)

    @property
    def device(self) -> torch.device:
        return self.emotion.weight.device

    def inference_features(self, one_after_another: bool = True) -> nn.Module:
        """The convolution stack for inference: batch norms folded in, no dropout, channels_last.

        ``one_after_another``: for a multi-trunk model, the trunks cut into one plain stack each and
        run in turn; else one grouped stack (same outputs to float rounding; no effect for one trunk).
        :meth:`forward_spectrogram` picks with :func:`trunks_one_after_another`.
        Built on first use and rebuilt whenever a weight or statistic of :attr:`features` changes
        (training steps, ``load_state_dict``, ``.to(device)``), so it never serves stale weights.
        Call in eval mode: :meth:`forward_spectrogram` uses it outside training and autograd.
        """
        split = one_after_another and self.config.trunks > 1
        tensors = list(itertools.chain(self.features.parameters(), self.features.buffers()))
        try:
            key = tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)
        except RuntimeError:  # weights made inside inference_mode have no version counter: no cache
            key = None
        cached = self.__dict__.get("_inference_cache")
        if key is None or cached is None or cached[0] != key:
            # Kept outside the module registry: not a submodule, not in state_dict or parameters().
            cached = self.__dict__["_inference_cache"] = (key, {})
        stacks = cached[1]
        if split not in stacks:
            with torch.no_grad():
                stack = _fold_batchnorm(self.features)
                if split:
                    stack = _trunks_one_after_another(stack, self.config.trunks)
                stacks[split] = stack.to(memory_format=torch.channels_last).eval()
        return stacks[split]


def trunks_one_after_another(device: torch.device) -> bool:
    """Whether a multi-trunk model's inference stack runs on ``device``, under the autocast state
    in force now, faster as one plain stack per trunk (True) than as one grouped stack (False).

    Measured with the shipped 3-trunk model (``benchmarks/bench_trunks.py`` on this project's CPU,
    ``benchmarks/gpu_trunks.py`` on a lent H200), seconds one after another / grouped:
    CPU fp32 0.95-0.98 (split), CPU bf16 autocast 1.18-1.40 (grouped), CUDA fp32 1.07-1.20 at
    batch 1,024-16,384 (grouped), CUDA bf16 autocast 0.85-0.94 (split). CUDA fp16 autocast follows
    bf16 (split) without a measurement of its own.
    """
    return torch.is_autocast_enabled(device.type) == (device.type == "cuda")


def _fold_batchnorm(features: nn.Sequential) -> nn.Sequential:
    """Eval-mode copy of a conv/BN/ReLU/pool/dropout stack: each BN folded into the convolution
    before it (``w' = w * g / sqrt(var + eps)``, ``b' = beta - mean * g / sqrt(var + eps)``), dropout
    dropped, and a ReLU directly before a max-pool moved after it (max commutes with the monotone
    ReLU, so the outputs are identical, and the ReLU touches a quarter of the values). Saves one
    full pass over every activation per layer (a fifth of the CPU time)."""
    layers, modules = [], [m for m in features if not isinstance(m, nn.Dropout)]
    i = 0
    while i < len(modules):
        module = modules[i]
        following = modules[i + 1] if i + 1 < len(modules) else None
        if isinstance(module, nn.Conv2d) and isinstance(following, nn.BatchNorm2d):
            layers.append(fuse_conv_bn_eval(module, following))  # needs both in eval mode
            i += 2
            continue
        if isinstance(module, nn.ReLU) and isinstance(following, nn.MaxPool2d):
            layers += [following, module]
            i += 2
            continue
        layers.append(module)
        i += 1
    for layer in layers:
        for param in layer.parameters():
            param.requires_grad_(False)
    return nn.Sequential(*layers)


class _TrunksOneAfterAnother(nn.Module):
    """Runs each trunk's plain convolution stack on the input in turn and concatenates their final
    maps by channel: the same outputs as the grouped stack it was cut from."""

    def __init__(self, stacks: list[nn.Sequential]):
        super().__init__()
        self.stacks = nn.ModuleList(stacks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([stack(x) for stack in self.stacks], dim=1)


def _trunks_one_after_another(stack: nn.Sequential, trunks: int) -> nn.Module:
    """A folded stack of ``trunks`` side-by-side trunks (first convolution shared by its input,
    the rest grouped) cut into one plain stack per trunk. Why: faster where
    :func:`trunks_one_after_another` says so (on the CPU in fp32, the default), and one trunk at a
    time keeps each activation block at a single trunk's size (a 50,000-sample explanation on the
    CPU peaks at 0.85 GB instead of 1.5 GB)."""
    per_trunk = []
    for t in range(trunks):
        layers = []
        for layer in stack:
            if isinstance(layer, nn.Conv2d):
                out = layer.out_channels // trunks
                in_ch = layer.in_channels if layer.groups == 1 else layer.in_channels // trunks
                conv = nn.Conv2d(in_ch, out, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                                 bias=layer.bias is not None, device=layer.weight.device, dtype=layer.weight.dtype)
                conv.weight.copy_(layer.weight[t * out:(t + 1) * out])
                if layer.bias is not None:
                    conv.bias.copy_(layer.bias[t * out:(t + 1) * out])
                conv.requires_grad_(False)
                layers.append(conv)
            else:  # max-pool, ReLU: no weights
                layers.append(layer)
        per_trunk.append(nn.Sequential(*layers))
    return _TrunksOneAfterAnother(per_trunk)


def multiply_adds(width: float = 1.0, frames: int = WINDOW_FRAMES, bands: int = N_BANDS, trunks: int = 1) -> int:
    """Multiply-adds of one forward pass of the CNN on a ``frames x bands`` window (front end
    excluded); ``trunks`` side-by-side stacks (``ModelConfig.trunks``) cost ``trunks`` times one."""
    total, in_ch, t, f = 0, 1, frames, bands
    for spec in PAPER_CONVS:
        if spec == "pool":
            t, f = t // 2, f // 2
            continue
        out, k, s, p = spec
        out = scaled_channels(out, width)
        t, f = (t + 2 * p - k) // s + 1, (f + 2 * p - k) // s + 1
        total += t * f * out * in_ch * k * k
        in_ch = out
    return trunks * (total + in_ch * len(MIDLEVEL_NAMES)) + len(MIDLEVEL_NAMES) * len(EMOTION_NAMES)


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` if given (``"cpu"``, ``"cuda"``, ``"cuda:1"``), else CUDA when available, else CPU."""
    if requested:
        dev = torch.device(requested)
        if dev.type == "cuda" and not torch.cuda.is_available():
            from .errors import OptionError

            raise OptionError(f"device {requested!r} was asked for but CUDA is not available here")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
