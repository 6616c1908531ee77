"""PatchCore and PaDiM through the Inspector: fit, save, load, identical scores (tiny stand-in
backbone, so no pretrained weights are needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flawscope.config import InspectorConfig
from flawscope.data.dataset import labelled_samples
from flawscope.inspector import Inspector
from flawscope.models import features
from tests.test_patchcore import tiny_factory


@pytest.mark.parametrize(
    ("name", "params"), [("patchcore", {"feature_dim": 8}), ("padim", {"n_features": 6})]
)
def test_inspector_fit_save_load(
    name: str,
    params: dict[str, int],
    tiny_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(features, "make_extractor", tiny_factory)
    config = InspectorConfig.model_validate(
        {
            "model": {"name": name, "image_size": 32, "params": params},
            "training": {"batch_size": 8, "progress": False, "accelerator": "cpu"},
        }
    )
    insp = Inspector.fit(tiny_dataset, config)
    insp.save(tmp_path / "model")
    again = Inspector.load_dir(tmp_path / "model")
    assert again.config.model.params == params
    samples = labelled_samples(tiny_dataset)[:6]
    a = next(insp.predict_batches(samples)).prediction
    b = next(again.predict_batches(samples)).prediction
    np.testing.assert_array_equal(a.image_scores, b.image_scores)
    np.testing.assert_array_equal(a.anomaly_maps, b.anomaly_maps)
    assert a.anomaly_maps.shape == (6, 32, 32) and (a.image_scores >= 0).all()
