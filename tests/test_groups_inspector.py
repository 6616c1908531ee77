"""Groups in the Inspector (pattern, manifest, discovered), and inspection runs with a store."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from flawscope.config import InspectorConfig
from flawscope.data.dataset import collect_inputs
from flawscope.data.manifest import apply_manifest, read_manifest
from flawscope.errors import ConfigError
from flawscope.inspection import inspect_samples
from flawscope.inspector import Inspector
from flawscope.store import ResultStore


def _view(kind: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A smooth 'A' view (gradient) or a textured 'B' view (noise), 8-bit grey."""
    y, x = np.mgrid[0:size, 0:size] / size
    if kind == "A":
        img = 0.3 + 0.3 * x + rng.normal(0, 0.01, (size, size))
    else:
        img = 0.6 + rng.normal(0, 0.12, (size, size))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def two_views(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 good training images, 20 of view A (A_i.png) and 20 of view B (B_i.png)."""
    root = tmp_path_factory.mktemp("views")
    rng = np.random.default_rng(0)
    (root / "train").mkdir()
    for kind in "AB":
        for i in range(20):
            cv2.imwrite(str(root / "train" / f"{kind}_{i:02d}.png"), _view(kind, rng))
    (root / "new").mkdir()
    for i in range(3):
        cv2.imwrite(str(root / "new" / f"A_new{i}.png"), _view("A", rng))
        cv2.imwrite(str(root / "new" / f"B_new{i}.png"), _view("B", rng))
    return root


def _config(**groups: object) -> InspectorConfig:
    return InspectorConfig.model_validate(
        {
            "model": {"name": "patchcore", "image_size": 64, "params": {"feature_dim": 16}},
            "training": {"holdout_fraction": 0.3, "progress": False},
            "groups": {"min_images": 2, **groups},
        }
    )


def test_pattern_groups_get_their_own_thresholds(two_views: Path, tmp_path: Path) -> None:
    insp = Inspector.fit(two_views / "train", _config(source="pattern", pattern=r"^([AB])_"))
    th = insp.thresholds
    assert set(th.thresholds) == {"A", "B"}
    hold = np.asarray(insp.holdout_scores)
    keys = np.asarray(insp.holdout_groups)
    for g in "AB":  # default rule: the max of the group's good hold-out scores
        assert th.thresholds[g] == pytest.approx(float(hold[keys == g].max()))
    assert th.thresholds["A"] < th.thresholds["B"]  # the smooth view is judged more strictly
    insp.save(tmp_path / "m")
    loaded = Inspector.load_dir(tmp_path / "m")
    assert loaded.thresholds == th
    samples = collect_inputs([two_views / "new"])
    (batch,) = list(loaded.predict_batches(samples))
    assert batch.groups == [s.path.name[0] for s in batch.loaded.samples]
    np.testing.assert_array_equal(batch.thresholds, th.for_groups(batch.groups))
    assert batch.verdicts == th.verdicts(batch.prediction.image_scores, batch.groups)
    assert "per group (2 groups)" in loaded.threshold_method


def test_discovered_groups_separate_the_views(two_views: Path, tmp_path: Path) -> None:
    insp = Inspector.fit(two_views / "train", _config(source="discover"))
    assert insp.group_model is not None and insp.group_model.k == 2
    samples = collect_inputs([two_views / "new"])
    (batch,) = list(insp.predict_batches(samples))
    views = [s.path.name[0] for s in batch.loaded.samples]
    assert adjusted_rand_score(views, batch.groups) == 1.0
    assert not batch.far.any()
    insp.save(tmp_path / "m")
    (again,) = list(Inspector.load_dir(tmp_path / "m").predict_batches(samples))
    assert again.groups == batch.groups
    # an image unlike every training view is flagged far from all groups
    checker = (np.indices((64, 64)).sum(axis=0) // 8 % 2 * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "odd.png"), checker)
    (odd,) = list(insp.predict_batches(collect_inputs([tmp_path / "odd.png"])))
    assert odd.far.tolist() == [True]


def test_manifest_groups_need_a_manifest(two_views: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no manifest"):
        Inspector.fit(two_views / "train", _config(source="manifest"))
    rows = ["path,group,batch,label"] + [
        f"{p.name},{'even' if int(p.stem[2:]) % 2 == 0 else 'odd'},,"
        for p in sorted((two_views / "train").glob("*.png"))
    ]
    (two_views / "train" / "manifest.csv").write_text("\n".join(rows) + "\n")
    manifest = read_manifest(two_views / "train" / "manifest.csv")
    insp = Inspector.fit(two_views / "train", _config(source="manifest"), manifest)
    assert set(insp.thresholds.counts) <= {"even", "odd"} and insp.thresholds.counts


def test_inspection_is_served_from_the_store_the_second_time(
    two_views: Path, tmp_path: Path
) -> None:
    insp = Inspector.fit(two_views / "train", _config())
    insp.save(tmp_path / "m")
    samples = apply_manifest(collect_inputs([two_views / "new"]), {}, batch="lot1")
    db = tmp_path / "results.db"
    with ResultStore(db) as store:
        first = inspect_samples(insp, samples, tmp_path / "out", maps=True, store=store)
        assert first.n_stored == 0 and first.n_pass + first.n_fail == 6
        records = store.records(model_id=insp.model_id)
        assert len(records) == 6 and all(r.batch == "lot1" for r in records)
        assert all(
            0 <= r.anomalous_fraction <= 1 and Path(r.anomaly_map).is_file() for r in records
        )
        second = inspect_samples(insp, samples, tmp_path / "out", maps=True, store=store)
        assert second.n_stored == 6 and (second.n_pass, second.n_fail) == (
            first.n_pass,
            first.n_fail,
        )
        assert len(store.records()) == 6  # nothing recorded twice
        # the same images in another batch are served too, and recorded for that batch
        lot2 = apply_manifest(collect_inputs([two_views / "new"]), {}, batch="lot2")
        third = inspect_samples(insp, lot2, tmp_path / "out", maps=False, store=store)
        assert third.n_stored == 6 and store.batches() == ["lot1", "lot2"]
    lines = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(lines) == 1 + 18 and lines[0].split(",")[5:7] == ["group", "batch"]
