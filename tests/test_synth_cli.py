"""`flawscope synth`: the MVTec layout that fit/evaluate/segment read, and one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh

from flawscope.commands import synth as synth_command
from flawscope.data.dataset import labelled_samples, training_samples
from flawscope.data.io import read_image, read_mask
from flawscope.errors import ConfigError
from flawscope.preprocess.unet_segmenter import pair_files
from tests.conftest import tiny_config


@pytest.fixture(scope="module", autouse=True)
def _synth_registered() -> None:
    """Add ``synth`` to the app unless ``register_all`` already did."""
    from flawscope.cli import app

    if not any(c.name == "synth" for c in app.registered_commands):
        synth_command.register(app)


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: Any) -> Any:
    """Run ``flawscope ARGS`` in this process: (exit status, stdout, stderr on one line)."""
    from flawscope.cli import main

    monkeypatch.setattr(sys, "argv", ["flawscope", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, " ".join(out.split()), " ".join(err.split())


def test_synth_writes_the_mvtec_layout_that_fit_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "renders"
    code, stdout, err = _cli(
        monkeypatch, capsys, "synth", out, "--part", "box", "--n-good", 5, "--n-defective", 3,
        "--size", 64, "--defects", "dent,scratch", "--seed", 2,
    )  # fmt: skip
    assert code == 0, err
    assert "rendered 8 images (4 train/good, 1 test/good, 3 defective)" in stdout
    assert len(list((out / "train" / "good").glob("*.png"))) == 4
    assert sorted(p.name for p in (out / "test").iterdir()) == ["dent", "good", "scratch"]
    assert len(list((out / "test" / "dent").glob("*.png"))) == 2  # 3 spread over 2 types
    assert (out / "ground_truth" / "scratch" / "000_mask.png").is_file()
    samples = labelled_samples(out)
    assert [s.label for s in samples].count(1) == 3
    assert all(s.mask_path is not None for s in samples if s.label == 1)
    for s in samples:
        image = read_image(s.path)
        assert image.shape == (64, 64) and image.dtype == np.float32
        if s.mask_path is not None:
            mask = read_mask(s.mask_path)
            fg = read_mask(out / "foreground" / "test" / s.defect_type / s.path.name)
            assert mask.any() and not (mask & ~fg).any()
    pairs = pair_files(out / "train" / "good", out / "foreground" / "train" / "good")
    assert len(pairs) == 4 and all(read_mask(m).any() for _, m in pairs)
    meta = json.loads((out / "synth.json").read_text())
    assert meta["part"] == "box" and meta["renderer"] == "light" and len(meta["images"]) == 8
    assert {r["camera"] for r in meta["images"]} == {"left", "right"}
    from flawscope.inspector import Inspector

    insp = Inspector.fit(out, tiny_config())  # the folder is a training set as it is
    assert insp.fit_stats["train_images"] + insp.fit_stats["holdout_images"] == 4
    assert len(training_samples(out)) == 4


def test_synth_reads_a_mesh_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh = trimesh.creation.box((30.0, 20.0, 12.0))
    mesh.export(tmp_path / "block.stl")
    out = tmp_path / "block"
    code, stdout, err = _cli(
        monkeypatch, capsys, "synth", out, "--mesh", tmp_path / "block.stl", "--n-good", 2,
        "--n-defective", 1, "--defects", "hole", "--size", 48, "--finish", "printed",
    )  # fmt: skip
    assert code == 0, err
    meta = json.loads((out / "synth.json").read_text())
    assert meta["part"] == "block" and meta["finish"] == "printed"
    assert read_mask(out / "ground_truth" / "hole" / "000_mask.png").any()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--mesh", "MISSING"), "does not exist"),
        (("--mesh", "JUNK"), "mesh file junk.stl"),
        (("--part", "gear"), "unknown part 'gear'"),
        (("--defects", "dent,crack"), "unknown defect type 'crack'"),
        (("--renderer", "povray"), "unknown renderer 'povray'"),
        (("--part", "box", "--mesh", "JUNK"), "--mesh and --part were both given"),
        (("--size", 8), "image size 8"),
        (("--n-good", -1), "must be >= 0"),
    ],
)
def test_bad_input_is_one_line(
    args: tuple[Any, ...],
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "junk.stl").write_bytes(b"\x00not a mesh\x01" * 5)
    paths = {"MISSING": tmp_path / "nope.stl", "JUNK": tmp_path / "junk.stl"}
    args = tuple(paths.get(a, a) if isinstance(a, str) else a for a in args)
    out = tmp_path / "out"
    code, _, err = _cli(monkeypatch, capsys, "synth", out, "--n-good", 2, *args)
    assert code == 2 and err.startswith("error:") and needle in err, err
    assert "Traceback" not in err
    assert not (out / "train").exists()  # nothing written before the input is checked


def test_missing_bpy_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flawscope.data.synthetic.cad.render import make_renderer

    monkeypatch.setitem(sys.modules, "bpy", None)  # import bpy -> ImportError
    with pytest.raises(ConfigError) as exc:
        make_renderer("blender")
    message = str(exc.value)
    assert "\n" not in message and "bpy" in message
    assert "pip install 'flawscope[blender]'" in message
    code, _, err = _cli(monkeypatch, capsys, "synth", tmp_path / "o", "--renderer", "blender")
    assert code == 2 and err.startswith("error:") and "bpy" in err and "pip install" in err
    assert not (tmp_path / "o").exists()


def test_blender_renders_the_same_scene_when_bpy_is_installed() -> None:
    pytest.importorskip("bpy", exc_type=ImportError)
    from flawscope.data.synthetic.cad import render_pair, resolve_part
    from flawscope.data.synthetic.cad.render import make_renderer

    renderer = make_renderer("blender", samples=4, denoise=False)
    views, _ = render_pair(resolve_part("brick"), np.random.default_rng(0), (48, 64), renderer)
    for v in views:
        assert v.image.shape == (48, 64) and 0.0 <= v.image.min() <= v.image.max() <= 1.0
        assert v.image[v.foreground].mean() > v.image[~v.foreground].mean()  # the part is lit
