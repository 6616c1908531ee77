"""ONNX export (models/onnx_*.py, commands/export.py): parity with PyTorch, CLI, refusals.

Tiny models are fitted on the generated dataset of conftest.py (24 good 64 px images) and
exported once per module; every parity check compares the PyTorch Inspector with
``load_onnx_inspector`` on the same labelled test images.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from flawscope.config import InspectorConfig
from flawscope.data.dataset import labelled_samples, training_samples
from flawscope.errors import ConfigError, DataError, ModelDirError
from flawscope.inspector import Inspector
from flawscope.models.onnx_check import compare_runtimes
from flawscope.models.onnx_export import ONNX_FILE, export_model, export_onnx
from flawscope.models.onnx_runtime import OnnxDetector, load_onnx_inspector
from flawscope.models.tiled import TiledDetector

pytest.importorskip("onnxruntime")

#: absolute tolerance of scores and maps (score units); PaDiM's Mahalanobis distances (~10 to
#: 200 here) also get a relative 1e-5: their float32 sums run in another order in onnxruntime
ATOL, PADIM_RTOL = 1e-4, 1e-5

AE = {"training": {"epochs": 2, "batch_size": 8, "progress": False}, "scoring": {"sigma": 1.0}}
CONFIGS: dict[str, dict[str, Any]] = {
    "patchcore": {
        "model": {"name": "patchcore", "image_size": 64, "params": {"feature_dim": 8}},
        "training": {"progress": False},
    },
    "padim": {
        "model": {"name": "padim", "image_size": 64, "params": {"n_features": 16}},
        "training": {"progress": False},
    },
    "cae": {"model": {"name": "cae", "image_size": 32, "params": {"filters": [8, 8, 4]}}, **AE},
    # untrained (random weights): enough for parity, and no training time
    "strided-ae": {
        "model": {"name": "strided-ae", "image_size": 32, "channels": 1,
                  "params": {"filters": [4, 8, 8]}},
    },
    "dense-cae": {
        "model": {"name": "dense-cae", "image_size": 32, "channels": 1,
                  "params": {"filters": [4, 4, 8, 8, 8], "dense": [8, 4, 8]}},
        "scoring": {"residual": "ssim", "aggregation": "max"},
    },
    "tiled-cae": {
        "model": {"name": "cae", "image_size": 32, "channels": 1,
                  "params": {"filters": [8, 8, 4]}},
        "preprocess": {"tile": 16, "tile_context": 8, "tile_target": [64, 64]},
    },
}  # fmt: skip
UNTRAINED = ("strided-ae", "dense-cae", "tiled-cae")


@pytest.fixture(scope="module")
def exported(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``exported(key)``: a model directory of ``CONFIGS[key]``, fitted (unless in
    ``UNTRAINED``) and exported once."""
    cache: dict[str, Path] = {}

    def get(key: str) -> Path:
        if key not in cache:
            out = tmp_path_factory.mktemp(key)
            config = InspectorConfig.model_validate(CONFIGS[key])
            if key in UNTRAINED:
                _untrained(config, tiny_dataset).save(out)
            else:
                Inspector.fit(tiny_dataset, config).save(out)
            assert export_onnx(out) == out / ONNX_FILE
            cache[key] = out
        return cache[key]

    return get


def _untrained(config: InspectorConfig, dataset: Path) -> Inspector:
    """An Inspector with untrained weights, its threshold set from 4 good images."""
    insp = Inspector(config)
    insp.calibrate(insp.read(training_samples(dataset)[:4]))
    return insp


def _assert_same(reference: Any, onnx: Any, rtol: float = 0.0) -> None:
    assert onnx.image_scores.dtype == np.float32 and onnx.anomaly_maps.dtype == np.float32
    assert onnx.image_scores.shape == reference.image_scores.shape
    assert onnx.anomaly_maps.shape == reference.anomaly_maps.shape
    np.testing.assert_allclose(onnx.image_scores, reference.image_scores, rtol=rtol, atol=ATOL)
    np.testing.assert_allclose(onnx.anomaly_maps, reference.anomaly_maps, rtol=rtol, atol=ATOL)


@pytest.mark.parametrize("key", ["patchcore", "padim", "cae", "strided-ae", "dense-cae"])
def test_onnx_inspector_matches_pytorch(key: str, exported: Any, tiny_dataset: Path) -> None:
    model_dir = exported(key)
    torch_insp, onnx_insp = Inspector.load_dir(model_dir), load_onnx_inspector(model_dir)
    assert isinstance(onnx_insp.detector, OnnxDetector)
    assert onnx_insp.detector.name == torch_insp.detector.name == CONFIGS[key]["model"]["name"]
    loaded = torch_insp.read(labelled_samples(tiny_dataset))
    assert len(loaded) >= 10  # good and defective test images
    ours, theirs = torch_insp.predict(loaded), onnx_insp.predict(loaded)
    _assert_same(ours, theirs, PADIM_RTOL if key == "padim" else 0.0)
    assert ours.image_scores.std() > 100 * ATOL  # the scores differ between images
    assert theirs.anomaly_maps.std() > 10 * ATOL  # the maps are not flat
    if ours.reconstructions is not None:
        np.testing.assert_allclose(theirs.reconstructions, ours.reconstructions, atol=1e-5)
    assert torch_insp.verdicts(ours.image_scores) == onnx_insp.verdicts(theirs.image_scores)


def test_batch_axis_is_dynamic_and_calls_are_chunked(exported: Any) -> None:
    model_dir = exported("patchcore")
    images = torch.rand(7, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    whole = OnnxDetector(model_dir / ONNX_FILE, threads=1, batch_size=16).predict(images)
    parts = OnnxDetector(model_dir / ONNX_FILE, threads=1, batch_size=3).predict(images.numpy())
    single = OnnxDetector(model_dir / ONNX_FILE, threads=1, batch_size=1).predict(images[4:5])
    np.testing.assert_allclose(parts.image_scores, whole.image_scores, atol=ATOL)
    np.testing.assert_allclose(parts.anomaly_maps, whole.anomaly_maps, atol=ATOL)
    np.testing.assert_allclose(single.image_scores, whole.image_scores[4:5], atol=ATOL)
    reference = Inspector.load_dir(model_dir).detector.predict(images)
    _assert_same(reference, whole)  # random images: far from the bank, large scores


def test_padim_and_autoencoder_check_on_random_images(exported: Any) -> None:
    for key in ("padim", "cae"):
        diff = compare_runtimes(exported(key), n=3)
        assert diff["images"] == 3
        assert diff["max_score_diff"] <= ATOL + PADIM_RTOL * diff["max_score"]
        assert diff["max_map_diff"] <= ATOL + PADIM_RTOL * diff["max_score"]


def test_tiled_model_scores_its_tiles_on_onnxruntime(exported: Any, tiny_dataset: Path) -> None:
    model_dir = exported("tiled-cae")
    torch_insp, onnx_insp = Inspector.load_dir(model_dir), load_onnx_inspector(model_dir)
    assert isinstance(onnx_insp.detector, TiledDetector)
    assert isinstance(onnx_insp.detector.inner, OnnxDetector)
    loaded = torch_insp.read(labelled_samples(tiny_dataset)[:6])
    ours, theirs = torch_insp.predict(loaded), onnx_insp.predict(loaded)
    assert theirs.anomaly_maps.shape == (6, 64, 64)
    _assert_same(ours, theirs)


def test_external_data_file_travels_beside_the_graph(exported: Any, tmp_path: Path) -> None:
    model_dir = exported("cae")
    out = export_onnx(model_dir, tmp_path / "cae.onnx", external_data=True)
    data = tmp_path / "cae.onnx.data"
    cae = Inspector.load_dir(model_dir).detector.network
    weights = sum(t.numel() * 4 for t in cae.state_dict().values() if t.numel() * 4 > 1024)
    assert data.is_file() and data.stat().st_size >= weights  # the larger tensors are outside
    diff = compare_runtimes(model_dir, out, n=2)
    assert diff["max_score_diff"] <= ATOL and diff["max_map_diff"] <= ATOL
    export_onnx(model_dir, out)  # again, inline: the stale data file is removed, not appended
    assert not data.exists()
    OnnxDetector(out).predict(np.zeros((1, 1, 32, 32), np.float32))


def test_memory_bank_and_gaussians_are_initializers(exported: Any) -> None:
    onnx = pytest.importorskip("onnx")
    bank = Inspector.load_dir(exported("patchcore")).detector.memory_bank.numpy()
    model = onnx.load(str(exported("patchcore") / ONNX_FILE))
    arrays = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    assert any(a.shape == bank.shape and np.array_equal(a, bank) for a in arrays)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["flawscope.model"] == "patchcore" and props["flawscope.kind"] == "patchcore"
    padim = Inspector.load_dir(exported("padim")).detector
    arrays = [onnx.numpy_helper.to_array(t) for t in onnx.load(
        str(exported("padim") / ONNX_FILE)).graph.initializer]  # fmt: skip
    assert any(np.array_equal(a, padim.inv_cov.numpy()) for a in arrays if a.ndim == 3)


def test_onnx_file_of_another_model_is_refused(exported: Any) -> None:
    cae, patchcore = exported("cae"), exported("patchcore")
    with pytest.raises(ModelDirError, match="was exported from model .* not from model"):
        load_onnx_inspector(cae, patchcore / ONNX_FILE)
    other_id = Inspector.load_dir(cae).model_id
    with pytest.raises(ModelDirError, match=other_id):
        OnnxDetector(patchcore / ONNX_FILE, expected_model_id=other_id)


def test_unusable_onnx_files_are_refused(exported: Any, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    with pytest.raises(ModelDirError, match="does not exist.*flawscope export"):
        OnnxDetector(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ModelDirError, match="cannot be loaded by onnxruntime"):
        OnnxDetector(tmp_path / "junk.onnx")
    x = onnx.helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [None, 1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["images"], ["y"])], "g",
                                   [x], [onnx.helper.make_tensor_value_info(
                                       "y", onnx.TensorProto.FLOAT, [None, 1])])  # fmt: skip
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "foreign.onnx"))
    with pytest.raises(ModelDirError, match="no flawscope metadata"):
        OnnxDetector(tmp_path / "foreign.onnx")
    with pytest.raises(ModelDirError, match="does not exist.*flawscope export"):
        load_onnx_inspector(exported("padim"), tmp_path / "missing.onnx")


def test_shapes_empty_batch_and_training_refused(exported: Any) -> None:
    detector = OnnxDetector(exported("cae") / ONNX_FILE)
    with pytest.raises(DataError, match=r"\(N, 1, 32, 32\)"):
        detector.predict(torch.zeros(2, 3, 32, 32))
    empty = detector.predict(np.zeros((0, 1, 32, 32), np.float32))
    assert empty.image_scores.shape == (0,) and empty.anomaly_maps.shape == (0, 32, 32)
    pc = OnnxDetector(exported("patchcore") / ONNX_FILE).predict(torch.zeros(0, 1, 64, 64))
    assert pc.image_scores.dtype == np.float32 and pc.anomaly_maps.shape == (0, 64, 64)
    with pytest.raises(ConfigError, match="cannot be trained"):
        detector.fit(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ConfigError):
        detector.save(Path("x"))


def test_refusals_of_the_export_api(exported: Any, tmp_path: Path, tiny_dataset: Path) -> None:
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        export_model(exported("cae"), "tflite")
    with pytest.raises(ConfigError, match="does not end in .onnx"):
        export_onnx(exported("cae"), tmp_path / "model.bin")
    no_weights = tmp_path / "no_weights"
    shutil.copytree(exported("cae"), no_weights)
    (no_weights / "weights.safetensors").unlink()
    with pytest.raises(ModelDirError, match="weights.safetensors is missing"):
        export_onnx(no_weights)
    vae = InspectorConfig.model_validate(
        {"model": {"name": "vae", "image_size": 16, "channels": 1, "params": {"filters": [4]}}}
    )
    _untrained(vae, tiny_dataset).save(tmp_path / "vae")  # enough to be refused
    with pytest.raises(ConfigError, match="vae model cannot be exported to ONNX"):
        export_onnx(tmp_path / "vae")


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: Any) -> Any:
    """Run ``flawscope ARGS`` in this process; returns (exit status, stdout, stderr on one line)."""
    from flawscope.cli import main

    monkeypatch.setattr(sys, "argv", ["flawscope", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, " ".join(out.split()), " ".join(err.split())


def test_cli_export_writes_the_file(
    exported: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    model_dir = tmp_path / "cae"
    shutil.copytree(exported("cae"), model_dir)
    (model_dir / ONNX_FILE).unlink()
    code, out, err = _cli(monkeypatch, capsys, "export", model_dir, "--format", "onnx")
    assert code == 0, err
    assert (model_dir / ONNX_FILE).is_file() and f"wrote {model_dir / ONNX_FILE}" in out
    assert "max |score difference|" in out
    custom = tmp_path / "custom.onnx"
    code, out, _ = _cli(monkeypatch, capsys, "export", model_dir, "-o", custom, "--no-check")
    assert code == 0 and custom.is_file() and "difference" not in out
    assert OnnxDetector(custom).model_id == Inspector.load_dir(model_dir).model_id


def test_cli_export_errors_are_one_line(
    exported: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    cases = [
        (("export", exported("cae"), "--format", "tflite"), "unknown export format 'tflite'"),
        (("export", tmp_path / "nope"), "does not exist"),
        (("export", exported("cae"), "--out", tmp_path / "a.txt"), "does not end in .onnx"),
        (("export", exported("cae"), "--out", tmp_path / "no" / "a.onnx"), "does not exist"),
    ]
    for args, needle in cases:
        code, _, err = _cli(monkeypatch, capsys, *args)
        assert code == 2 and err.startswith("error:") and needle in err, err
        assert "Traceback" not in err
