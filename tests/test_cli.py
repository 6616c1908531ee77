"""The `flawscope` command through its real entry point (a subprocess), error paths included."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import flawscope

EXE = Path(sys.executable).parent / "flawscope"


def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "flawscope"]
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def assert_one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Non-zero exit, no traceback, an `error:` line naming the problem."""
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    err = " ".join(r.stderr.split())  # rich may wrap long lines
    assert "error:" in err
    for n in needles:
        assert n in err, err


def test_version_and_models() -> None:
    r = run("--version")
    assert r.returncode == 0 and flawscope.__version__ in r.stdout
    r = run("models")
    assert r.returncode == 0 and "cae" in r.stdout.split()


def test_fit_inspect_evaluate_end_to_end(tiny_dataset: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    r = run(
        "fit",
        tiny_dataset,
        "--out",
        model,
        "--image-size",
        32,
        "--epochs",
        2,
        "--sigma",
        1,
        "--threshold",
        "quantile",
        "--quantile",
        0.9,
    )
    assert r.returncode == 0, r.stderr
    assert (model / "weights.safetensors").is_file() and "threshold" in r.stdout
    before = (model / "inspector.json").read_bytes()
    assert_one_line_error(run("fit", tiny_dataset, "--out", model), "already holds", "--overwrite")
    assert (model / "inspector.json").read_bytes() == before  # the trained model is kept

    out = tmp_path / "inspected"
    r = run(
        "inspect",
        model,
        tiny_dataset / "test" / "blob",
        tiny_dataset / "test" / "good",
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 6
    assert {row["verdict"] for row in rows} <= {"pass", "fail"}
    for row in rows:
        assert row["path"] in r.stdout
        ov = cv2.imread(row["anomaly_map"])
        src = cv2.imread(row["path"])
        assert ov.shape == src.shape[:2] + (3,)  # overlay at the input resolution

    ev = tmp_path / "eval"
    r = run("evaluate", model, tiny_dataset, "--out", ev)
    assert r.returncode == 0, r.stderr
    m = json.loads((ev / "metrics.json").read_text())
    assert m["n_images"] == 14 and 0.0 <= m["image"]["auroc"] <= 1.0
    assert set(m["per_defect"]) == {
        "blob",
        "missing_infill",
        "scratch",
        "stringing",
        "under_extrusion",
    }
    assert m["pixel"] is not None and 0.0 <= m["pixel"]["aupro"] <= 1.0
    assert (ev / "report.html").stat().st_size > 10_000
    assert "AUROC" in r.stdout


def test_error_paths_are_one_line(tmp_path: Path, tiny_model: Path) -> None:
    assert_one_line_error(run("fit", tmp_path / "nope", "--out", tmp_path / "m"), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        run("fit", tmp_path / "empty", "--out", tmp_path / "m"), "contains no images"
    )
    assert_one_line_error(
        run("fit", tmp_path / "empty", "--out", tmp_path / "m", "--model", "x"),
        "unknown model name 'x'",
        "cae",
    )
    assert_one_line_error(
        run("fit", tmp_path / "empty", "--out", tmp_path / "m", "--aggregation", "median"),
        "aggregation",
    )
    assert_one_line_error(run("inspect", tmp_path / "nomodel", tmp_path), "does not exist")
    assert_one_line_error(run("inspect", tiny_model, tmp_path / "missing.png"), "does not exist")
    assert_one_line_error(run("evaluate", tiny_model, tmp_path / "empty"), "no test/")


def test_inspect_skips_bad_files_keeps_results_and_exits_nonzero(
    tiny_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"ok{i}.png"), (rng.random((50, 70)) * 255).astype(np.uint8))
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    cv2.imwrite(str(folder / "tiny.png"), np.zeros((4, 4), np.uint8))
    r = run("inspect", tiny_model, folder, "--out", tmp_path / "out")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    err = " ".join(r.stderr.split())
    assert "bad.png" in err and "tiny.png" in err and "2 input(s) skipped" in err
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert sorted(Path(row["path"]).name for row in rows) == ["ok0.png", "ok1.png", "ok2.png"]


def test_keep_aspect_fit_and_inspect_a_long_strip(tiny_dataset: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    r = run("fit", tiny_dataset, "--out", model, "--image-size", 32, "--epochs", 1, "--keep-aspect")
    assert r.returncode == 0, r.stderr
    assert "keep_aspect: true" in (model / "config.yaml").read_text()
    strip = tmp_path / "strip.png"
    cv2.imwrite(str(strip), (np.random.default_rng(1).random((40, 300)) * 255).astype(np.uint8))
    r = run("inspect", model, strip, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    row = next(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert cv2.imread(row["anomaly_map"]).shape == (40, 300, 3)


def test_fit_takes_detector_params_and_exposure_and_reports_memory(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    r = run(
        "fit", tiny_dataset, "--out", model, "--model", "patchcore", "--image-size", 64,
        "--exposure", "gain", "--param", "coreset_ratio=0.5", "--param", "layers=[stride16]",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "peak memory" in " ".join(r.stdout.split())
    cfg = (model / "config.yaml").read_text()
    assert "exposure: gain" in cfg and "coreset_ratio: 0.5" in cfg and "- stride16" in cfg
    stats = json.loads((model / "inspector.json").read_text())["fit_stats"]
    assert stats["peak_memory_mb"] > 0 and stats["detector"]["bank_size"] > 0
    assert_one_line_error(
        run("fit", tiny_dataset, "--out", tmp_path / "m2", "--param", "coreset_ratio"),
        "is not KEY=VALUE",
    )
    assert_one_line_error(
        run("fit", tiny_dataset, "--out", tmp_path / "m2", "--model", "patchcore",
            "--param", "coreset=0.1"),
        "coreset",
    )  # fmt: skip
    assert_one_line_error(
        run("fit", tiny_dataset, "--out", tmp_path / "m2", "--exposure", "auto"), "exposure"
    )
    assert_one_line_error(
        run("fit", tiny_dataset, "--out", tmp_path / "m2", "--residual", "l1"), "residual"
    )


def test_incompatible_model_directory(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_model, old)
    state = json.loads((old / "inspector.json").read_text())
    state["format_version"] = 99
    (old / "inspector.json").write_text(json.dumps(state))
    assert_one_line_error(run("inspect", old, tmp_path), "format version 99", "re-train")


@pytest.mark.slow
def test_demo_runs_small(tmp_path: Path) -> None:
    r = run("demo", "--out", tmp_path / "demo", "--epochs", 1, "--image-size", 32, "--n-train", 20)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "demo" / "evaluation" / "report.html").is_file()
    assert "report" in r.stdout.lower()


def test_tune_sets_the_best_f1_threshold_and_keeps_it(
    tiny_model: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    before = json.loads((model / "inspector.json").read_text())
    r = run("tune", model, tiny_dataset, "--beta", 2)
    assert r.returncode == 0, r.stderr
    after = json.loads((model / "inspector.json").read_text())
    t = after["threshold_tuning"]
    assert after["threshold"] == t["threshold"] and t["previous_threshold"] == before["threshold"]
    assert t["beta"] == 2 and 0 <= t["f_beta"] <= 1
    assert "F2" in " ".join(r.stdout.split())
    only_good = tmp_path / "only_good"
    shutil.copytree(tiny_dataset / "test" / "good", only_good / "test" / "good")
    assert_one_line_error(run("tune", model, only_good), "only one kind")
    assert json.loads((model / "inspector.json").read_text()) == after  # nothing lost
