"""Inspector: fit on generated layers, predict, save/load round trip, incompatible directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from flawscope.config import InspectorConfig
from flawscope.data.dataset import labelled_samples
from flawscope.errors import ConfigError, DataError, ModelDirError
from flawscope.inspector import STATE_FILE, Inspector
from tests.conftest import tiny_config


def _scores(insp: Inspector, root: Path) -> np.ndarray:
    samples = labelled_samples(root)
    return np.concatenate([b.prediction.image_scores for b in insp.predict_batches(samples)])


def test_saved_model_directory_contents(tiny_model: Path) -> None:
    names = {p.name for p in tiny_model.iterdir()}
    assert {"config.yaml", "weights.safetensors", STATE_FILE} <= names
    state = json.loads((tiny_model / STATE_FILE).read_text())
    assert state["format_version"] == 1 and state["flawscope_version"]
    assert state["threshold"] == max(state["holdout_scores"])  # default rule: max of hold-out
    assert state["holdout_stats"]["count"] == 4  # 15 % of 24 good images
    assert len(state["history"]["val_loss"]) == 2
    assert len(state["model_id"]) == 12


def test_save_load_round_trip_gives_identical_scores(
    tiny_model: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    a = Inspector.load_dir(tiny_model)
    s1 = _scores(a, tiny_dataset)
    a.save(tmp_path / "copy")
    b = Inspector.load_dir(tmp_path / "copy")
    np.testing.assert_array_equal(s1, _scores(b, tiny_dataset))
    assert b.threshold == a.threshold and b.model_id == a.model_id
    assert b.config == a.config


def test_predict_shapes_and_verdicts(tiny_model: Path, tiny_dataset: Path) -> None:
    insp = Inspector.load_dir(tiny_model)
    batch = next(insp.predict_batches(labelled_samples(tiny_dataset), batch_size=5))
    p = batch.prediction
    assert p.image_scores.shape == (5,) and p.anomaly_maps.shape == (5, 32, 32)
    assert p.anomaly_maps.dtype == np.float32 and (p.anomaly_maps >= 0).all()
    assert batch.verdicts == ["fail" if s > insp.threshold else "pass" for s in p.image_scores]


def test_fit_is_deterministic_for_a_seed(tiny_dataset: Path) -> None:
    a = Inspector.fit(tiny_dataset, tiny_config(epochs=1))
    b = Inspector.fit(tiny_dataset, tiny_config(epochs=1))
    assert a.threshold == b.threshold


def test_incompatible_or_damaged_model_directories(tiny_model: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(tiny_model, old)
    state = json.loads((old / STATE_FILE).read_text())
    state["format_version"] = 0
    (old / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(ModelDirError, match="format version 0"):
        Inspector.load_dir(old)
    with pytest.raises(ModelDirError, match="does not exist"):
        Inspector.load_dir(tmp_path / "missing")
    with pytest.raises(ModelDirError, match="not a flawscope model directory"):
        Inspector.load_dir(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "weights.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelDirError, match="weights"):
        Inspector.load_dir(broken)


def test_bad_settings_fail_before_reading_data(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown model name 'nope'"):
        Inspector.fit(tmp_path, InspectorConfig.model_validate({"model": {"name": "nope"}}))
    with pytest.raises(ConfigError, match="multiple of 8"):
        cfg = InspectorConfig.model_validate({"model": {"name": "cae", "image_size": 36}})
        Inspector.fit(tmp_path, cfg)


def test_fit_needs_two_readable_images(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"corrupt")
    (tmp_path / "b.png").write_bytes(b"corrupt")
    with pytest.raises(DataError, match="only 0 of 2 training images could be read"):
        Inspector.fit(tmp_path, tiny_config())


def test_channels_auto_follows_the_training_images(tmp_path: Path, tiny_dataset: Path) -> None:
    import cv2

    rng = np.random.default_rng(0)
    colour, grey_rgb = tmp_path / "colour", tmp_path / "grey_rgb"
    colour.mkdir()
    grey_rgb.mkdir()
    for i in range(4):
        img = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
        cv2.imwrite(str(colour / f"{i}.png"), img)
        cv2.imwrite(str(grey_rgb / f"{i}.png"), np.repeat(img[:, :, :1], 3, axis=2))
    assert tiny_config().model.channels == "auto"
    fitted = Inspector.fit(colour, tiny_config(epochs=1))
    assert fitted.config.model.channels == 3
    fitted.save(tmp_path / "m")
    assert "channels: 3" in (tmp_path / "m" / "config.yaml").read_text()
    assert Inspector.load_dir(tmp_path / "m").config.model.channels == 3
    assert Inspector.fit(grey_rgb, tiny_config(epochs=1)).config.model.channels == 1
    with pytest.raises(ConfigError, match="auto"):
        Inspector(InspectorConfig())


def test_ssim_residual_option_changes_the_maps(tiny_model: Path, tiny_dataset: Path) -> None:
    l2 = Inspector.load_dir(tiny_model)
    cfg = l2.config.model_copy(deep=True)
    cfg.scoring.residual = "ssim"
    ssim = Inspector(cfg)
    ssim.detector.load(tiny_model)  # same weights, other residual
    batch = l2.read(labelled_samples(tiny_dataset)[:3]).images
    a, b = l2.detector.predict(batch), ssim.detector.predict(batch)
    np.testing.assert_allclose(a.reconstructions, b.reconstructions)
    assert b.anomaly_maps.shape == a.anomaly_maps.shape
    assert b.anomaly_maps.min() >= 0 and b.anomaly_maps.max() <= 2
    assert not np.allclose(a.anomaly_maps, b.anomaly_maps)
