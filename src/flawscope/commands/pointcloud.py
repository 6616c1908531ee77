"""Point-cloud (3D-ST) entry points for ``flawscope fit / inspect / evaluate``, and the
``flawscope pointcloud`` commands (synthetic data).

The CLI calls :func:`fit_pointcloud` for ``flawscope fit TRAIN --model 3d-st``, checks
:func:`is_pointcloud_model` on a model directory and then calls :func:`inspect_pointcloud` /
:func:`evaluate_pointcloud`. Imports are lazy, so ``flawscope --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from flawscope.pointcloud.detector import PointCloudDetector

log = logging.getLogger("flawscope")


def _console() -> Any:
    from flawscope.cli import out_console

    return out_console


def fit_pointcloud(
    train: Path, out: Path, overrides: dict[str, Any], *, overwrite: bool = False
) -> PointCloudDetector:
    """``flawscope fit TRAIN --model 3d-st --out OUT``: fit and save a 3D-ST model.

    Args:
        train: folder of good point clouds, or an MVTec 3D-AD category (``train/good/xyz``).
        out: model directory to write (``config.yaml``, ``weights.safetensors``,
            ``inspector.json``).
        overrides: settings of :class:`~flawscope.pointcloud.config.PointCloudConfig`:
            dotted (``"teacher.epochs"``), nested or plain names (``"epochs"`` sets teacher
            and student epochs); ``"config"``: a YAML file to start from; None values ignored.
        overwrite: replace a model already in ``out``.

    Returns:
        The fitted detector (also saved).

    Raises:
        FlawscopeError: ``out`` already holds a model and ``overwrite`` is False.
        DataError / ConfigError / ModelDirError: as :meth:`PointCloudDetector.fit`.
    """
    from flawscope.errors import FlawscopeError
    from flawscope.pointcloud.config import PointCloudConfig
    from flawscope.pointcloud.detector import STATE_FILE, PointCloudDetector

    out = Path(out)
    if (out / STATE_FILE).exists() and not overwrite:
        raise FlawscopeError(
            f"{out} already holds a trained model",
            "choose another --out folder, or pass --overwrite to replace it",
        )
    overrides = dict(overrides or {})
    config_file = overrides.pop("config", None)
    base = PointCloudConfig.from_yaml(Path(config_file)) if config_file else PointCloudConfig()
    cfg = base.with_overrides(overrides)
    det = PointCloudDetector.fit(train, cfg)
    det.save(out)
    s = det.fit_stats
    teacher = (
        f"teacher from {cfg.teacher.pretrained}"
        if cfg.teacher.pretrained
        else f"teacher {s['teacher_seconds']:.0f} s"
    )
    _console().print(
        f"fitted [bold]3d-st[/] on {s['train_clouds']} good clouds in {s['seconds']:.0f} s "
        f"({teacher}, students {s['student_seconds']:.0f} s); threshold {det.threshold:.4g} "
        f"({det.threshold_method}); model written to [bold]{out}[/]"
    )
    return det


def is_pointcloud_model(model_dir: Path) -> bool:
    """True when ``model_dir`` holds a 3D-ST point-cloud model (never raises)."""
    from flawscope.pointcloud.detector import is_model_dir

    return is_model_dir(model_dir)


def inspect_pointcloud(model_dir: Path, paths: list[Path], out: Path) -> int:
    """``flawscope inspect MODEL_DIR CLOUDS... --out OUT`` for a 3D-ST model.

    Prints ``verdict score path`` per cloud and writes under ``out``:

    * ``results.csv``: one row per cloud (appended to an existing log; columns of
      :mod:`flawscope.results`, ``anomaly_map`` = the render PNG);
    * ``points/<name>.npy``: ``(N,)`` float32 per-point scores, aligned with the points of
    * ``heatmaps/<name>.ply``: the scored points (background plane removed) coloured by score,
      with an ``anomaly_score`` property;
    * ``renders/<name>.png``: a 3D render coloured by score, captioned with score and verdict;
    * organised scans also ``maps/<name>.npy`` (``(H, W)`` float32, 0 without a point) and
      ``renders/<name>_map.png``.

    ``<name>`` is the file stem, prefixed by parent folders where stems repeat.

    Returns:
        The number of inputs skipped (missing or unreadable; each warned about).

    Raises:
        ModelDirError: ``model_dir`` is not a readable 3D-ST model directory.
    """
    import numpy as np

    from flawscope.errors import FlawscopeError
    from flawscope.pointcloud.dataset import input_files, unique_names
    from flawscope.pointcloud.detector import PointCloudDetector
    from flawscope.pointcloud.heatmap import (
        caption,
        enlarge,
        map_overlay,
        render_scores,
        write_heatmap_ply,
        write_png,
    )
    from flawscope.results import ResultsCSV

    det = PointCloudDetector.load_dir(model_dir)
    console = _console()
    out = Path(out)
    files, missing = input_files(paths)
    for m in missing:
        log.warning("skipped %s: it does not exist", m)
    skipped = len(missing)
    low, high = det.colour_range
    n_pass = n_fail = 0
    with ResultsCSV(out / "results.csv", append=True) as csv:
        for path, name in zip(files, unique_names(files), strict=True):
            try:
                result = det.predict_cloud(det.read(path), preprocess=False)
            except FlawscopeError as exc:
                log.warning("skipped %s: %s", path, exc)
                skipped += 1
                continue
            cloud, scores = result.cloud, result.point_scores
            (out / "points").mkdir(parents=True, exist_ok=True)
            np.save(out / "points" / f"{name}.npy", scores.astype(np.float32))
            write_heatmap_ply(out / "heatmaps" / f"{name}.ply", cloud.points, scores, low, high)
            colour = (198, 40, 40) if result.verdict == "fail" else (46, 125, 50)
            text = f"{name}  score {result.score:.4g}  {result.verdict}"
            render = write_png(
                out / "renders" / f"{name}.png",
                caption(render_scores(cloud, scores, low, high), text, colour),
            )
            if cloud.organized:
                (out / "maps").mkdir(parents=True, exist_ok=True)
                np.save(out / "maps" / f"{name}.npy", cloud.to_map(scores))
                write_png(
                    out / "renders" / f"{name}_map.png",
                    caption(enlarge(map_overlay(cloud, scores, low, high)), text, colour),
                )
            csv.write(
                path=str(path),
                score=f"{result.score:.6g}",
                threshold=f"{det.threshold:.6g}",
                verdict=result.verdict,
                model_id=det.model_id,
                anomaly_map=str(render),
            )
            n_pass += result.verdict == "pass"
            n_fail += result.verdict == "fail"
            style = "red" if result.verdict == "fail" else "green"
            console.print(f"[{style}]{result.verdict:4}[/] {result.score:10.4g}  {path}")
    console.print(
        f"{n_pass + n_fail} inspected: {n_pass} pass, {n_fail} fail"
        + (f", {skipped} skipped" if skipped else "")
        + f"; results in [bold]{out / 'results.csv'}[/]"
    )
    return skipped


def evaluate_pointcloud(model_dir: Path, dataset: Path, out: Path) -> dict[str, Any]:
    """Score a labelled point-cloud set and write ``metrics.json``, ``results.csv``,
    ``report.html`` under ``out``.

    Args:
        model_dir: a 3D-ST model directory.
        dataset: ``test/good`` and ``test/<defect>`` clouds with ground truth (MVTec 3D-AD
            ``gt/*.png`` masks or ``ground_truth/<defect>/<stem>.npy`` point labels; see
            :mod:`flawscope.pointcloud.dataset`).
        out: output folder (created).

    Returns:
        The metrics (:func:`flawscope.pointcloud.evaluation.evaluate`), plus ``model_id``,
        ``dataset`` and ``skipped`` paths; the same as ``metrics.json``.

    Raises:
        ModelDirError: not a 3D-ST model directory.
        DataError: no ``test/`` folder, no cloud, or none could be scored.
    """
    from flawscope.pointcloud.dataset import labelled_files
    from flawscope.pointcloud.detector import PointCloudDetector
    from flawscope.pointcloud.evaluation import evaluate
    from flawscope.pointcloud.report import ReportData, extreme_panels, write_report
    from flawscope.results import ResultsCSV

    det = PointCloudDetector.load_dir(model_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ev = evaluate(det, labelled_files(dataset))
    metrics = {
        **ev.metrics,
        "model_id": det.model_id,
        "dataset": str(dataset),
        "seconds": round(time.perf_counter() - t0, 2),
        "skipped": [p for p, _ in ev.skipped],
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    with ResultsCSV(out / "results.csv") as csv:
        for item in ev.items:
            csv.write(
                path=item.path,
                score=f"{item.result.score:.6g}",
                threshold=f"{det.threshold:.6g}",
                verdict=item.result.verdict,
                label="good" if item.label == 0 else "defective",
                defect_type=item.defect_type,
                model_id=det.model_id,
            )
    most, least = extreme_panels(ev, det.colour_range)
    write_report(
        ReportData(
            title=f"3D-ST evaluation: {Path(dataset).name}",
            dataset=str(dataset),
            model=f"3d-st ({det.model_id})",
            threshold=det.threshold,
            threshold_method=det.threshold_method,
            colours=det.colour_range,
            metrics=ev.metrics,
            labels=ev.labels,
            scores=ev.scores,
            holdout_scores=det.holdout_scores,
            history=det.history,
            most=most,
            least=least,
            facts=_fit_facts(det),
        ),
        out / "report.html",
    )
    obj = ev.metrics["object"]
    _console().print(
        f"{len(ev.items)} clouds: object AUROC {obj['auroc']:.3f}, point AUROC "
        f"{_fmt(ev.metrics['point_auroc'])}, AUPRO {_fmt(ev.metrics['aupro'])}; "
        f"report in [bold]{out / 'report.html'}[/]"
    )
    return metrics


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _fit_facts(det: PointCloudDetector) -> list[tuple[str, str]]:
    s, n = det.fit_stats, det.config.network
    facts = [
        ("Network", f"k = {n.k}, d = {n.dim}, {n.blocks} residual blocks, decoder m = "
                    f"{n.decoder_points}"),
        ("Students", f"{det.config.student.students}, {det.config.student.epochs} epochs max"),
    ]  # fmt: skip
    if s:
        teacher = (
            f"teacher reused from {s['teacher_pretrained']}"
            if s.get("teacher_pretrained")
            else f"teacher {s.get('teacher_seconds', 0):.0f} s"
        )
        facts.append(
            (
                "Fit",
                f"{s.get('seconds', 0):.0f} s ({teacher}, students "
                f"{s.get('student_seconds', 0):.0f} s) on {s.get('train_clouds')} good clouds of "
                f"~{s.get('mean_points', 0):.0f} points, {s.get('threads')} torch thread(s)",
            )
        )
    return facts


def register(app: typer.Typer) -> None:
    """Add ``flawscope pointcloud synth`` and ``flawscope pointcloud scenes`` to ``app``."""
    group = typer.Typer(help="Point-cloud (3D-ST) helpers: synthetic data sets and scenes.")
    app.add_typer(group, name="pointcloud")

    @group.command("synth")
    def synth(
        out: Annotated[Path, typer.Argument(help="Folder to write the labelled set to.")],
        shape: Annotated[str, typer.Option(help="Built-in part (brick, box, torus...).")] = "brick",
        organized: Annotated[
            bool,
            typer.Option(
                "--organized/--unorganized",
                help="MVTec 3D-AD-style scans from above (xyz tiff + gt PNG) or whole-part PLY.",
            ),
        ] = False,
        train: Annotated[int, typer.Option(help="Good training clouds.")] = 40,
        good: Annotated[int, typer.Option(help="Good test clouds.")] = 10,
        per_defect: Annotated[int, typer.Option(help="Test clouds per defect kind.")] = 4,
        points: Annotated[int, typer.Option(help="Points per unorganised cloud.")] = 16000,
        size: Annotated[int, typer.Option(help="Scan side in pixels (organised).")] = 128,
        noise: Annotated[float, typer.Option(help="Sensor noise, shape units (mm).")] = 0.0,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    ) -> None:
        """Write good and defective clouds (bumps, dents, cracks, holes, missing regions)."""
        from flawscope.pointcloud.synthetic import write_synthetic_set

        counts = write_synthetic_set(
            out, shape, organized, train, good, per_defect, n_points=points, size=size,
            noise=noise, seed=seed,
        )  # fmt: skip
        _console().print(
            f"wrote {sum(counts.values())} clouds to [bold]{out}[/]: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
        )

    @group.command("scenes")
    def scenes(
        out: Annotated[Path, typer.Argument(help="Folder for the scene PLY files.")],
        count: Annotated[int, typer.Option(help="Number of scenes.")] = 10,
        points: Annotated[int, typer.Option(help="Points per scene.")] = 16000,
        objects: Annotated[int, typer.Option(help="Meshes per scene.")] = 10,
        modelnet: Annotated[
            Path | None, typer.Option(help="ModelNet10 folder (default: built-in shapes).")
        ] = None,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    ) -> None:
        """Write teacher-pretraining scenes as PLY, to look at what the teacher learns from."""
        from flawscope.pointcloud.io import write_ply
        from flawscope.pointcloud.scenes import scene_clouds

        clouds = scene_clouds(count, points, objects, seed, modelnet)
        for c in clouds:
            write_ply(Path(out) / f"{c.name}.ply", c.points)
        _console().print(f"wrote {len(clouds)} scenes of {points} points to [bold]{out}[/]")
