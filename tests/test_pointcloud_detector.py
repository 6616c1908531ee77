"""PointCloudDetector and the command entry points: tiny fit -> save/load -> inspect / evaluate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from flawscope.commands.pointcloud import (
    evaluate_pointcloud,
    fit_pointcloud,
    inspect_pointcloud,
    is_pointcloud_model,
)
from flawscope.errors import ConfigError, DataError, FlawscopeError, ModelDirError
from flawscope.pointcloud.config import PointCloudConfig
from flawscope.pointcloud.detector import PointCloudDetector
from flawscope.pointcloud.io import read_cloud, write_ply
from flawscope.pointcloud.synthetic import write_synthetic_set

#: a 3d-st small enough for unit tests (seconds, one thread)
TINY = {
    "network": {"k": 6, "dim": 16, "blocks": 2, "decoder_points": 16, "decoder_hidden": 32},
    "teacher": {"scenes": 2, "val_scenes": 1, "scene_points": 400, "objects": 3, "samples": 4},
    "epochs": 1,
    "threads": 1,
    "seed": 0,
}


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pc")
    kw = {"n_train": 4, "n_good": 2, "n_per_defect": 1, "kinds": ("bump", "missing"), "seed": 1}
    write_synthetic_set(root / "parts", n_points=400, **kw)
    write_synthetic_set(root / "scans", organized=True, size=40, **kw)
    return {"parts": root / "parts", "scans": root / "scans", "root": root}


@pytest.fixture(scope="module")
def model(sets: dict[str, Path]) -> Path:
    out = sets["root"] / "model"
    fit_pointcloud(sets["parts"], out, TINY)
    return out


def test_fit_writes_a_model_directory(model: Path) -> None:
    assert {p.name for p in model.iterdir()} >= {
        "config.yaml",
        "weights.safetensors",
        "inspector.json",
    }
    state = json.loads((model / "inspector.json").read_text())
    assert state["kind"] == "pointcloud" and state["model"] == "3d-st"
    assert len(state["model_id"]) == 12 and state["threshold"] > 0
    assert state["threshold"] == pytest.approx(max(state["holdout_scores"]))
    assert len(state["history"]["teacher_loss"]) == 1 and len(state["history"]["student_loss"]) == 1
    assert is_pointcloud_model(model)
    assert not is_pointcloud_model(model.parent)


def test_save_load_gives_identical_scores(
    model: Path, sets: dict[str, Path], tmp_path: Path
) -> None:
    det = PointCloudDetector.load_dir(model)
    cloud = read_cloud(sets["parts"] / "test" / "bump" / "000.ply")
    first = det.predict_cloud(cloud)
    det.save(tmp_path / "copy")
    again = PointCloudDetector.load_dir(tmp_path / "copy").predict_cloud(cloud)
    np.testing.assert_array_equal(first.point_scores, again.point_scores)
    assert first.score == again.score and first.point_scores.shape == (len(cloud),)
    assert (first.point_scores >= 0).all() and first.point_scores.std() > 0


def test_subsampled_clouds_score_every_point(model: Path, sets: dict[str, Path]) -> None:
    det = PointCloudDetector.load_dir(model)
    det.config.data.max_points = 100
    cloud = read_cloud(sets["parts"] / "test" / "good" / "000.ply")
    result = det.predict_cloud(cloud)
    assert result.point_scores.shape == (len(cloud),)
    assert len(np.unique(result.point_scores)) <= 100


def test_inspect_writes_scores_heatmaps_and_renders(
    model: Path, sets: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply")
    paths = [sets["parts"] / "test", bad, tmp_path / "missing.ply"]
    skipped = inspect_pointcloud(model, paths, tmp_path / "out")
    assert skipped == 2
    out = tmp_path / "out"
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4 and {r["verdict"] for r in rows} <= {"pass", "fail"}
    names = sorted(p.stem for p in (out / "heatmaps").glob("*.ply"))
    assert names == sorted(p.stem for p in (out / "points").glob("*.npy"))
    assert len(names) == 4 and "bump_000" in names  # stems repeat across folders
    scores = np.load(out / "points" / "bump_000.npy")
    assert scores.shape == (len(read_cloud(out / "heatmaps" / "bump_000.ply")),)
    row = next(r for r in rows if r["path"].endswith("bump/000.ply"))
    assert Path(row["anomaly_map"]).is_file() and row["anomaly_map"].endswith(".png")
    # a second run appends to the log
    inspect_pointcloud(model, [sets["parts"] / "test" / "good"], out)
    assert len(list(csv.DictReader((out / "results.csv").open()))) == 6


def test_organised_fit_inspect_evaluate(model: Path, sets: dict[str, Path], tmp_path: Path) -> None:
    scan_model = tmp_path / "scan_model"
    det = fit_pointcloud(sets["scans"], scan_model, {**TINY, "teacher.pretrained": str(model)})
    assert det.fit_stats["teacher_pretrained"] == str(model)
    teacher = PointCloudDetector.load_dir(model).teacher.state_dict()
    for k, v in det.teacher.state_dict().items():
        assert (v == teacher[k]).all()
    out = tmp_path / "inspect"
    assert inspect_pointcloud(scan_model, [sets["scans"] / "test" / "bump"], out) == 0
    amap = np.load(out / "maps" / "000.npy")
    assert amap.shape == (40, 40) and amap.max() > 0 and (amap == 0).any()  # table removed
    assert (out / "renders" / "000_map.png").is_file()
    metrics = evaluate_pointcloud(scan_model, sets["scans"], tmp_path / "eval")
    assert 0 <= metrics["aupro"] <= 1 and 0 <= metrics["point_auroc"] <= 1
    assert metrics["object"]["n_good"] == 2 and metrics["object"]["n_defective"] == 2
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["object"]["auroc"] == metrics["object"]["auroc"]
    html = (tmp_path / "eval" / "report.html").read_text()
    assert "Most anomalous clouds" in html and html.count("data:image/png;base64,") >= 8
    assert "http://" not in html and "https://" not in html


def test_evaluate_unorganised_has_no_aupro(
    model: Path, sets: dict[str, Path], tmp_path: Path
) -> None:
    metrics = evaluate_pointcloud(model, sets["parts"], tmp_path)
    assert metrics["aupro"] is None and metrics["point_auroc"] is not None
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert {r["label"] for r in rows} == {"good", "defective"}


# ------------------------------------------------------------------------------ bad input


def test_fit_bad_inputs(sets: dict[str, Path], tmp_path: Path, model: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        fit_pointcloud(tmp_path / "nowhere", tmp_path / "m", TINY)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no point-cloud files"):
        fit_pointcloud(tmp_path / "empty", tmp_path / "m", TINY)
    one = tmp_path / "one"
    write_ply(one / "a.ply", np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(DataError, match="at least 2"):
        fit_pointcloud(one, tmp_path / "m", TINY)
    with pytest.raises(FlawscopeError, match="already holds"):
        fit_pointcloud(sets["parts"], model, TINY)
    with pytest.raises(ConfigError, match="unknown 3d-st option"):
        fit_pointcloud(sets["parts"], tmp_path / "m", {"epoch": 3})
    with pytest.raises(ConfigError, match="teacher.samples"):
        fit_pointcloud(sets["parts"], tmp_path / "m", {"teacher.samples": 1})


def test_model_dir_errors(tmp_path: Path, model: Path) -> None:
    with pytest.raises(ModelDirError, match="does not exist"):
        PointCloudDetector.load_dir(tmp_path / "none")
    image_model = tmp_path / "image"
    image_model.mkdir()
    (image_model / "inspector.json").write_text(json.dumps({"format_version": 1}))
    with pytest.raises(ModelDirError, match="image model"):
        PointCloudDetector.load_dir(image_model)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.yaml", "inspector.json"):
        (broken / name).write_bytes((model / name).read_bytes())
    (broken / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelDirError, match="damaged") as exc:
        PointCloudDetector.load_dir(broken)
    assert "\n" not in str(exc.value)


def test_config_overrides_and_yaml(tmp_path: Path) -> None:
    cfg = PointCloudConfig().with_overrides(
        {"epochs": 3, "network.k": 12, "scoring": {"aggregation": "max"}, "students": None}
    )
    assert cfg.teacher.epochs == 3 and cfg.student.epochs == 3 and cfg.network.k == 12
    assert cfg.scoring.aggregation == "max" and cfg.student.students == 1
    cfg.to_yaml(tmp_path / "c.yaml")
    assert PointCloudConfig.from_yaml(tmp_path / "c.yaml") == cfg
    with pytest.raises(ConfigError, match="dim"):
        PointCloudConfig().with_overrides({"dim": 30})
    (tmp_path / "bad.yaml").write_text("network: {k: [")
    with pytest.raises(ConfigError, match="YAML"):
        PointCloudConfig.from_yaml(tmp_path / "bad.yaml")
