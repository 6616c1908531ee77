"""Reading the real data sets in ../shared/data (skipped when absent, e.g. on a fresh clone)."""

from __future__ import annotations

import numpy as np

from flawscope.data.dataset import labelled_samples, load_images, training_samples
from tests.conftest import shared_data


def test_magnetic_tile_layout_masks_and_mixed_sizes() -> None:
    root = shared_data("magnetic_tile")
    train = training_samples(root)
    test = labelled_samples(root)
    assert len(train) == 802
    defects = {s.defect_type for s in test}
    assert defects == {"good", "blowhole", "break", "crack", "fray", "uneven"}
    assert all(s.mask_path is not None for s in test if s.label == 1)
    batch = load_images(train[:20], size=64, channels=1, min_side=16)
    assert batch.images.shape == (20, 1, 64, 64) and not batch.skipped
    assert len(set(batch.sizes)) > 1  # the set mixes image sizes; all were resized


def test_bottle_rgb_and_printbed_without_masks() -> None:
    bottle = shared_data("mvtec_ad/bottle")
    b = load_images(training_samples(bottle)[:4], size=32, channels=3, min_side=16)
    assert b.images.shape == (4, 3, 32, 32)
    assert not np.allclose(b.images[:, 0], b.images[:, 2])  # real colour, not grey
    printbed = labelled_samples(shared_data("printbed"))
    assert {s.defect_type for s in printbed} == {"good", "defect"}
    assert all(s.mask_path is None for s in printbed)
