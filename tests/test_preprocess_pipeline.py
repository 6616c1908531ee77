"""The preprocessing pipeline inside the Inspector and the CLI: segmentation, CLAHE, masking."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from flawscope.config import InspectorConfig, PreprocessConfig, build
from flawscope.data.dataset import labelled_samples
from flawscope.errors import ConfigError
from flawscope.inspector import Inspector
from flawscope.preprocess.pipeline import Preprocessor
from tests.conftest import tiny_config
from tests.test_cli import assert_one_line_error, run


def _part(rng: np.random.Generator, size: int = 48, defect: bool = False) -> np.ndarray:
    """A bright disc (the part) on a dark, cluttered background; uint8 (size, size)."""
    img = rng.normal(30, 8, (size, size))
    cx, cy = size // 2 + rng.integers(-2, 3), size // 2 + rng.integers(-2, 3)
    cv2.circle(img, (int(cx), int(cy)), size // 3, 170, -1)
    img += rng.normal(0, 4, img.shape)
    if defect:
        cv2.circle(img, (int(cx) + 3, int(cy)), 3, 60, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parts")
    rng = np.random.default_rng(0)
    for folder, n, defect in [("train/good", 16, False), ("test/good", 3, False)]:
        (root / folder).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / folder / f"{i}.png"), _part(rng, defect=defect))
    (root / "test/dent").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(root / "test/dent" / f"{i}.png"), _part(rng, defect=True))
    return root


def test_preprocessor_masks_background_and_equalises_inside() -> None:
    img = _part(np.random.default_rng(1)).astype(np.float32) / 255
    out, fg = Preprocessor(PreprocessConfig(segment="otsu", clahe=True, background="black"))(img)
    assert fg is not None and fg.dtype == bool and 0.2 < fg.mean() < 0.6
    assert out.shape == img.shape and np.all(out[~fg] == 0)
    assert out[fg].std() > img[fg].std()  # CLAHE stretched the part's contrast
    filled, fg2 = Preprocessor(PreprocessConfig(segment="otsu", clahe=True))(img)  # "mean"
    np.testing.assert_array_equal(fg2, fg)
    np.testing.assert_array_equal(filled[fg], out[fg])  # the part is untouched
    assert np.allclose(filled[~fg], out[fg].mean(), atol=1e-5)  # background = part's mean
    plain = Preprocessor(PreprocessConfig())
    assert not plain.active
    same, none = plain(img)
    assert none is None and same is img


def test_fit_with_segmentation_zeroes_the_background_and_round_trips(
    parts: Path, tmp_path: Path
) -> None:
    cfg = tiny_config()
    cfg.preprocess = PreprocessConfig(segment="otsu", clahe=True)
    insp = Inspector.fit(parts, cfg)
    loaded = insp.read(labelled_samples(parts))
    pred = insp.predict(loaded)
    assert loaded.foreground is not None
    assert np.all(pred.anomaly_maps[~loaded.foreground] == 0)
    insp.save(tmp_path / "m")
    again = Inspector.load_dir(tmp_path / "m")
    assert again.config.preprocess.segment == "otsu" and again.config.preprocess.clahe
    np.testing.assert_allclose(again.predict(again.read(loaded.samples)).image_scores,
                               pred.image_scores, rtol=1e-5)  # fmt: skip


def test_preprocess_config_errors() -> None:
    with pytest.raises(ConfigError, match="segmenter"):
        build(InspectorConfig, {"preprocess": {"segment": "unet"}})
    with pytest.raises(ConfigError, match="segment"):
        build(InspectorConfig, {"preprocess": {"segment": "grabcut"}})


def test_cli_fit_with_segmentation_flags(parts: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    r = run("fit", parts, "--out", model, "--model", "cae", "--image-size", 32, "--epochs", 1,
            "--segment", "kmeans", "--clahe", "--clahe-clip", 4, "--clahe-grid", 4)  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = (model / "config.yaml").read_text()
    assert "segment: kmeans" in text and "clahe_clip: 4.0" in text and "clahe_grid: 4" in text
    assert_one_line_error(
        run("fit", parts, "--out", tmp_path / "m2", "--segment", "unet"), "segmenter"
    )


def test_tiled_fit_and_inspect_stitch_a_full_resolution_map(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    cfg = tiny_config(epochs=1)
    cfg = build(
        InspectorConfig,
        {
            **cfg.model_dump(),
            "preprocess": {"tile": 16, "tile_context": 8, "tile_target": (32, 48)},
            "model": {**cfg.model.model_dump(), "image_size": 32},
        },
    )
    insp = Inspector.fit(tiny_dataset, cfg)
    assert insp.fit_stats["detector"]["tiles"] == 6 * insp.fit_stats["train_images"]
    samples = labelled_samples(tiny_dataset)[:3]
    pred = next(insp.predict_batches(samples)).prediction
    assert pred.anomaly_maps.shape == (3, 32, 48) and pred.image_scores.shape == (3,)
    insp.save(tmp_path / "m")
    again = Inspector.load_dir(tmp_path / "m")
    np.testing.assert_allclose(
        next(again.predict_batches(samples)).prediction.image_scores, pred.image_scores, rtol=1e-5
    )
    with pytest.raises(ConfigError, match="must be 32 px"):
        build(InspectorConfig, {"preprocess": {"tile": 16, "tile_context": 8,
                                               "tile_target": (32, 48)}})  # fmt: skip
    with pytest.raises(ConfigError, match="multiples of the tile side"):
        build(InspectorConfig, {"preprocess": {"tile": 16, "tile_context": 8,
                                               "tile_target": (30, 48)}})  # fmt: skip


def test_cli_tiled_inspect_writes_full_size_overlay(tiny_dataset: Path, tmp_path: Path) -> None:
    import csv

    model = tmp_path / "m"
    r = run("fit", tiny_dataset, "--out", model, "--model", "cae", "--epochs", 1,
            "--tile", 16, "--tile-context", 8, "--tile-target", "32x48")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "image_size: 32" in (model / "config.yaml").read_text()
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), (np.random.default_rng(0).random((300, 500)) * 255).astype(np.uint8))
    r = run("inspect", model, big, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    row = next(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert cv2.imread(row["anomaly_map"]).shape == (300, 500, 3)
    assert_one_line_error(
        run("fit", tiny_dataset, "--out", tmp_path / "m2", "--tile", 16, "--tile-target", "big"),
        "HEIGHTxWIDTH",
    )


def test_cli_segment_fit_evaluate_and_use_in_fit(parts: Path, tmp_path: Path) -> None:
    import json

    imgs, masks = tmp_path / "imgs", tmp_path / "masks"
    imgs.mkdir()
    masks.mkdir()
    for i, f in enumerate(sorted((parts / "train" / "good").glob("*.png"))[:8]):
        img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(imgs / f"p{i}.png"), img)
        cv2.imwrite(str(masks / f"p{i}_mask.png"), np.where(img > 100, 255, 0).astype(np.uint8))
    unet = tmp_path / "unet"
    r = run("segment", "fit", imgs, masks, "--out", unet, "--size", 32, "--epochs", 2)
    assert r.returncode == 0, r.stderr
    assert (unet / "weights.safetensors").is_file()
    r = run("segment", "evaluate", imgs, masks, "--method", "otsu", "--out", tmp_path / "o.json")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o.json").read_text())["iou"] > 0.9
    r = run("segment", "evaluate", imgs, masks, "--method", "unet", "--segmenter", unet)
    assert r.returncode == 0, r.stderr and "roc_auc" in r.stdout
    r = run("fit", parts, "--out", tmp_path / "m", "--model", "cae", "--image-size", 32,
            "--epochs", 1, "--segment", "unet", "--segmenter", unet)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert_one_line_error(run("segment", "evaluate", imgs, tmp_path / "none"), "does not exist")
    assert_one_line_error(run("segment", "evaluate", imgs, masks, "--method", "unet"), "segmenter")


def test_mean_mask_per_view(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    root = tmp_path / "views"
    (root / "train" / "good").mkdir(parents=True)
    for i in range(6):
        for view, cx in (("v1", 14), ("v2", 34)):
            img = np.clip(rng.normal(30, 6, (48, 48)), 0, 255)
            cv2.circle(img, (cx + int(rng.integers(-1, 2)), 24), 10, 180, -1)
            cv2.imwrite(str(root / "train" / "good" / f"p{i}_{view}.png"), img.astype(np.uint8))
    cfg = tiny_config(epochs=1)
    cfg.preprocess = PreprocessConfig(segment="otsu", mean_mask=True, view_pattern=r"_(v\d)")
    insp = Inspector.fit(root, cfg)
    masks = insp.preprocessor.view_masks
    assert set(masks) == {"v1", "v2"}
    assert masks["v1"][24, 14] and not masks["v1"][24, 34] and masks["v2"][24, 34]
    probe = tmp_path / "probe_v1.png"
    cv2.imwrite(str(probe), np.full((48, 48), 30, np.uint8))  # no part visible at all
    from flawscope.data.dataset import Sample

    fg = insp.read([Sample(probe)]).foreground[0]  # the view's mask, not the image's own
    assert fg.mean() > 0.05 and fg[12, 7]
    insp.save(tmp_path / "m")
    again = Inspector.load_dir(tmp_path / "m")
    assert np.array_equal(again.preprocessor.view_masks["v2"], masks["v2"])
    with pytest.raises(ConfigError, match="view_pattern"):
        build(InspectorConfig, {"preprocess": {"segment": "otsu", "mean_mask": True}})
