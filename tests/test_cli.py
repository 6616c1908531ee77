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
    for values in m["per_defect"].values():  # masks exist: pixel metrics per defect type too
        assert 0.0 <= values["pixel_auroc"] <= 1.0 and 0.0 < values["defect_pixel_share"] < 1.0
    assert (ev / "report.html").stat().st_size > 10_000
    assert "Pixel AUROC</th>" in (ev / "report.html").read_text()
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
    # a validation set without defects never yields a threshold that flags its good images
    r = run("tune", model, only_good)
    assert r.returncode == 0, r.stderr
    assert "no defective images" in r.stdout
    good_only = json.loads((model / "inspector.json").read_text())
    assert good_only["threshold"] >= after["threshold"]
    r = run("inspect", model, only_good, "--out", tmp_path / "res", "--no-maps")
    assert r.returncode == 0 and " 0 fail" in r.stdout, r.stdout


def test_fit_with_pattern_groups_then_inspect_into_a_store(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    """Groups from a file-name pattern at fit; inspect with --batch and --db, then again."""
    import sqlite3

    model, out, db = tmp_path / "model", tmp_path / "res", tmp_path / "results.db"
    r = run(
        "fit", tiny_dataset, "--out", model, "--model", "patchcore", "--image-size", 64,
        "--param", "feature_dim=8", "--group-by", "pattern", "--group-pattern", r"(\d)\.png$",
        "--min-group-images", 1, "--threshold", "sigma", "--z", 2, "--normalize",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "group " in r.stdout
    state = json.loads((model / "inspector.json").read_text())
    assert state["thresholds"]["thresholds"] and "mean + 2 sd" in state["threshold_method"]
    good = tiny_dataset / "test" / "good"
    args = ("inspect", model, good, "--out", out, "--batch", "lot7", "--db", db, "--no-maps")
    first = run(*args)
    assert first.returncode == 0, first.stderr
    again = run(*args)
    assert "served from the store" in again.stdout, again.stdout
    with sqlite3.connect(db) as con:
        rows = con.execute("select batch, threshold, group_key from inspections").fetchall()
    assert len(rows) == len(list(good.iterdir()))
    assert {b for b, _, _ in rows} == {"lot7"} and {t for _, t, _ in rows} == {1.0}  # normalised
    assert_one_line_error(run("inspect", model, good, "--db", "ftp://x/y"), "ftp")
    # by default the store is results.db in --out; --no-store writes none
    assert run("inspect", model, good, "--out", tmp_path / "d", "--no-maps").returncode == 0
    assert (tmp_path / "d" / "results.db").is_file()
    assert run("inspect", model, good, "--out", tmp_path / "e", "--no-store").returncode == 0
    assert not (tmp_path / "e" / "results.db").exists()


def test_spc_reads_the_store_and_flags_the_bad_batch(tmp_path: Path) -> None:
    from flawscope.store import InspectionRecord, ResultStore

    db = tmp_path / "r.db"
    rng = np.random.default_rng(0)
    with ResultStore(db) as store:
        for b in range(8):
            for i in range(20):
                score = 3.0 if b == 6 and i < 8 else float(rng.normal(1, 0.1))
                store.add(
                    InspectionRecord(
                        path=f"b{b}/{i}.png", content_hash=f"{b}-{i}", model_id="m1",
                        score=score, threshold=1.5, verdict="fail" if score > 1.5 else "pass",
                        batch=f"B{b + 1}",
                    )
                )  # fmt: skip
    r = run("spc", "--db", db, "--out", tmp_path / "spc")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "out of control: B7" in " ".join(r.stdout.split())
    assert (tmp_path / "spc" / "spc.html").stat().st_size > 10_000
    assert json.loads((tmp_path / "spc" / "spc.json").read_text())
    assert_one_line_error(run("spc", "--db", db, "--rule", "sometimes"), "unknown SPC rule")
    assert_one_line_error(run("spc", "--db", db, "--reference", "B99"), "B99")
    assert_one_line_error(run("spc", "--db", tmp_path / "empty.db"), "no inspection results")


def test_point_clouds_fit_inspect_evaluate_through_the_main_commands(tmp_path: Path) -> None:
    """`fit --model 3d-st`, then `inspect` / `evaluate` recognise the point-cloud model."""
    import yaml

    data, model = tmp_path / "set", tmp_path / "model"
    r = run("pointcloud", "synth", data, "--train", 4, "--good", 1, "--per-defect", 1,
            "--points", 400, "--shape", "box")  # fmt: skip
    assert r.returncode == 0, r.stderr
    tiny = {
        "network": {"k": 6, "dim": 16, "blocks": 2, "decoder_points": 16, "decoder_hidden": 32},
        "teacher": {"scenes": 2, "val_scenes": 1, "scene_points": 400, "objects": 3, "samples": 4},
        "student": {"epochs": 1},
        "threads": 1,
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    r = run("fit", data, "--model", "3d-st", "--out", model, "--config", tmp_path / "tiny.yaml",
            "--epochs", 1)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "3d-st" in r.stdout
    r = run("inspect", model, data / "test", "--out", tmp_path / "res")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "res" / "results.csv").is_file() and list((tmp_path / "res").rglob("*.ply"))
    r = run("evaluate", model, data, "--out", tmp_path / "ev")
    assert r.returncode == 0, r.stderr
    assert "object AUROC" in r.stdout and (tmp_path / "ev" / "metrics.json").is_file()


def test_demo_refuses_an_unknown_data_kind() -> None:
    assert_one_line_error(run("demo", "--data", "photos"), "unknown --data")


def test_error_lines_keep_square_brackets(tmp_path: Path) -> None:
    """Rich markup is not applied to error text: '[blender]' reaches the user."""
    import importlib.util

    if importlib.util.find_spec("bpy") is not None:
        pytest.skip("bpy is installed, so the blender renderer does not fail")
    assert_one_line_error(
        run("synth", tmp_path / "x", "--renderer", "blender"), "flawscope[blender]"
    )
