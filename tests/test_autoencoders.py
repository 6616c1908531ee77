"""The seed-002 strided autoencoder and the seed-003 dense-bottleneck CAE (tiny settings, fast)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flawscope.config import InspectorConfig, ModelConfig, TrainingConfig
from flawscope.data.dataset import labelled_samples
from flawscope.errors import ConfigError
from flawscope.inspector import Inspector
from flawscope.models import available, detector_class
from flawscope.models.dense_cae import DenseCAE, KerasSameConvTranspose2d
from flawscope.models.strided_ae import StridedAE

#: small filters per detector so every test runs in well under a second or two on a CPU
TINY: dict[str, dict[str, Any]] = {
    "strided-ae": {"filters": [4, 8, 8]},
    "dense-cae": {"filters": [4, 4, 8, 8, 8], "dense": [8, 4, 8]},
}
NAMES = sorted(TINY)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Run these tiny networks on one thread: on a busy 2-core machine two OpenMP threads make
    each training step up to 100x slower (spin-waiting), one thread is never slower here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _detector(name: str, size: int = 32, channels: int = 1, **params: Any) -> Any:
    model = ModelConfig(
        name=name, image_size=size, channels=channels, params={**TINY[name], **params}
    )
    return detector_class(name)(model, TrainingConfig(epochs=1, progress=False))


def _config(name: str, channels: int | str = "auto") -> InspectorConfig:
    return InspectorConfig.model_validate(
        {
            "model": {"name": name, "image_size": 32, "channels": channels, "params": TINY[name]},
            "training": {"epochs": 2, "batch_size": 8, "progress": False},
            "scoring": {"sigma": 1.0},
        }
    )


def test_both_are_registered() -> None:
    assert {"strided-ae", "dense-cae"} <= set(available())
    assert detector_class("strided-ae").size_multiple == 8
    assert detector_class("dense-cae").size_multiple == 16


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_equals_input_and_lies_in_unit_range(name: str, channels: int) -> None:
    det = _detector(name, size=32, channels=channels)
    x = torch.rand(3, channels, 32, 32)
    y = det.reconstruct(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    pred = det.predict(x)
    assert pred.anomaly_maps.shape == (3, 32, 32) and pred.image_scores.shape == (3,)


def test_strided_ae_default_architecture_shapes() -> None:
    net = StridedAE(channels=1).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        z = net.encoder(x)
        y = net.decoder(z)
    assert z.shape == (2, 128, 8, 8)
    assert y.shape == x.shape
    convs = [m for m in net.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    assert all(c.stride == (2, 2) for c in convs)
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.encoder) == 3
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.decoder) == 2  # none on the last
    assert isinstance(net.decoder[-1], torch.nn.Sigmoid)


def test_dense_cae_default_architecture_shapes() -> None:
    net = DenseCAE(channels=1).eval()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        z = net.encoder(x)
        b = net.bottleneck[1](net.bottleneck[0](z))
        y = net(x)
    assert z.shape == (1, 256, 2, 2)  # four poolings: 32 / 16
    assert b.shape == (1, 25, 2, 2)  # the 25-wide dense layer, per position
    assert y.shape == x.shape
    # the seed's 31 layers: 10 + 8 convs, 4 pools, 4 transposed convs, 3 dense, dropout, output
    kinds = [type(m).__name__ for m in [*net.encoder, *net.bottleneck, *net.decoder]]
    n_layers = len([k for k in kinds if k not in ("ReLU", "Sigmoid")])
    assert n_layers == 31
    assert kinds.count("MaxPool2d") == 4 and kinds.count("KerasSameConvTranspose2d") == 4


def test_dense_bottleneck_acts_per_position() -> None:
    """Keras Dense on a 4-D tensor acts on channels only: one pixel changes one output pixel."""
    net = DenseCAE(channels=1, filters=(4, 4, 8, 8, 8), dense=(8, 4, 8)).eval()
    z = torch.rand(1, 8, 4, 4)
    z2 = z.clone()
    z2[0, :, 1, 2] += 1.0
    with torch.no_grad():
        diff = (net.bottleneck(z2) - net.bottleneck(z)).abs().sum(dim=1)[0]
    assert diff[1, 2] > 0
    diff[1, 2] = 0
    assert float(diff.max()) == 0.0


def test_keras_same_transposed_conv_is_the_adjoint_of_a_tf_same_conv() -> None:
    torch.manual_seed(0)
    up = KerasSameConvTranspose2d(3, 5, kernel_size=3, stride=2)
    x = torch.rand(2, 3, 6, 7)
    y = up(x) - up.bias.view(1, -1, 1, 1)  # the linear part
    assert y.shape == (2, 5, 12, 14)
    v = torch.rand_like(y)
    # TF "same" 3x3 stride-2 conv on an even side pads 0 before and 1 after
    conv_v = F.conv2d(F.pad(v, (0, 1, 0, 1)), up.weight, stride=2)
    assert conv_v.shape == x.shape
    torch.testing.assert_close((y * v).sum(), (x * conv_v).sum())


@pytest.mark.parametrize("name", NAMES)
def test_a_few_adam_steps_lower_the_mse(name: str) -> None:
    det = _detector(name, size=32)  # seeds torch with the training seed
    net = det.network.train()
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    phase = torch.rand(8, 1, 1, 1) * 6
    batch = 0.3 + 0.2 * torch.sin(6 * xx + phase) * torch.cos(4 * yy)  # (8, 1, 32, 32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.mse_loss(net(batch), batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.7 * losses[0]


def _scores(insp: Inspector, root: Path) -> np.ndarray:
    samples = labelled_samples(root)
    return np.concatenate([b.prediction.image_scores for b in insp.predict_batches(samples)])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", ["auto", 3])
def test_fit_save_load_round_trip(
    name: str, channels: int | str, tiny_dataset: Path, tmp_path: Path
) -> None:
    insp = Inspector.fit(tiny_dataset, _config(name, channels))
    assert insp.detector.name == name
    assert insp.config.model.channels == (1 if channels == "auto" else 3)  # the layers are grey
    assert len(insp.history["val_loss"]) == 2
    s1 = _scores(insp, tiny_dataset)
    assert s1.shape == (len(labelled_samples(tiny_dataset)),) and np.isfinite(s1).all()
    assert s1.std() > 0
    insp.save(tmp_path / "m")
    loaded = Inspector.load_dir(tmp_path / "m")
    assert loaded.config.model.name == name
    assert loaded.config.model.channels == insp.config.model.channels
    np.testing.assert_array_equal(s1, _scores(loaded, tiny_dataset))
    assert loaded.threshold == insp.threshold


@pytest.mark.parametrize(("name", "size"), [("strided-ae", 36), ("dense-cae", 40)])
def test_image_size_not_a_multiple_is_refused(name: str, size: int) -> None:
    with pytest.raises(ConfigError, match="not a multiple of"):
        _detector(name, size=size)


@pytest.mark.parametrize("name", NAMES)
def test_bad_params_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="bogus"):
        _detector(name, bogus=1)
    with pytest.raises(ConfigError, match="dropout"):
        _detector(name, dropout=1.5)
    with pytest.raises(ConfigError, match="filters"):
        _detector(name, filters=[0, 8, 8, 8, 8][: len(TINY[name]["filters"])])
