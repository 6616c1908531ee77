"""``flawscope pointcloud synth / scenes`` through Typer (registered on a fresh app)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from typer.testing import CliRunner

from flawscope.commands.pointcloud import register
from flawscope.pointcloud.dataset import labelled_files, read_labelled, training_files
from flawscope.pointcloud.io import read_cloud


def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def root() -> None:
        """Test app."""

    register(a)
    return a


def test_synth_writes_a_labelled_set(tmp_path: Path) -> None:
    args = ["pointcloud", "synth", str(tmp_path / "set"), "--train", "3", "--good", "1",
            "--per-defect", "1", "--points", "300", "--shape", "torus"]  # fmt: skip
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    assert len(training_files(tmp_path / "set")) == 3
    items = labelled_files(tmp_path / "set")
    assert len(items) == 6 and {i.defect_type for i in items} >= {"good", "crack", "missing"}
    crack = read_labelled(next(i for i in items if i.defect_type == "crack"))
    assert crack.labels.any() and not crack.labels.all()


def test_synth_organised_and_scenes(tmp_path: Path) -> None:
    args = ["pointcloud", "synth", str(tmp_path / "scans"), "--organized", "--train", "2",
            "--good", "0", "--per-defect", "1", "--size", "32"]  # fmt: skip
    assert CliRunner().invoke(app(), args).exit_code == 0
    assert (tmp_path / "scans" / "test" / "hole" / "gt" / "000.png").is_file()
    args = ["pointcloud", "scenes", str(tmp_path / "scenes"), "--count", "2", "--points", "250"]
    assert CliRunner().invoke(app(), args).exit_code == 0
    clouds = sorted((tmp_path / "scenes").glob("*.ply"))
    assert len(clouds) == 2 and read_cloud(clouds[0]).points.shape == (250, 3)
    assert not np.array_equal(read_cloud(clouds[0]).points, read_cloud(clouds[1]).points)
