"""The ``flawscope`` command: demo, fit, inspect, evaluate, tune, segment, models.

Bad input never shows a traceback: library errors (:mod:`flawscope.errors`) are printed as one line
``error: <problem> -- <fix>`` and the command exits with status 2.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flawscope import __version__
from flawscope.config import InspectorConfig, PreprocessConfig, build
from flawscope.errors import ConfigError, FlawscopeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="flawscope: learn what good parts look like, then score, localise and judge new images.",
)
out_console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)
log = logging.getLogger("flawscope")
_DEFAULTS = InspectorConfig().model_dump()


def _tiled_input(tile: int | None, context: int | None) -> int | None:
    """Model input side for ``--tile`` without ``--image-size``: tile + 2 x context (px)."""
    if tile is None:
        return None
    return tile + 2 * (_DEFAULTS["preprocess"]["tile_context"] if context is None else context)


def _d(section: str, key: str) -> str:
    """`` (default: X)`` for a help text, X read from the config defaults."""
    return f" (default: {_DEFAULTS[section][key]})"


class _LevelFormatter(logging.Formatter):
    """``warning: message`` on one line (no wrapping, so a path is never split)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    log.setLevel(logging.INFO)


def _version(value: bool) -> None:
    if value:
        out_console.print(f"flawscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    _setup_logging()


def _config(config_file: Path | None, overrides: dict[str, dict[str, Any]]) -> InspectorConfig:
    """Config from an optional YAML file, with command-line values (not None) on top.

    ``model.params`` given on the command line are merged into the file's params.
    """
    base = InspectorConfig.from_yaml(config_file) if config_file else InspectorConfig()
    data = base.model_dump()
    for section, values in overrides.items():
        for key, value in values.items():
            if key == "params" and value:
                data[section][key] = {**data[section][key], **value}
            elif value is not None and key != "params":
                data[section][key] = value
    return build(InspectorConfig, data, "option")


def _size_pair(text: str | None) -> tuple[int, int] | None:
    """``"1024x1536"`` -> ``(1024, 1536)`` (height, width in pixels).

    Raises:
        ConfigError: not two positive integers joined by ``x``.
    """
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(
            f"--tile-target {text!r} is not HEIGHTxWIDTH", "write it like --tile-target 1024x1536"
        )
    return int(parts[0]), int(parts[1])


def _params(pairs: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: YAML value}``.

    Raises:
        ConfigError: an item without ``=`` or with a value that is not valid YAML.
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--param {pair!r} is not KEY=VALUE", "write it like --param coreset_ratio=0.05"
            )
        try:
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"--param {pair!r}: the value is not valid YAML ({exc})",
                "quote lists like --param 'layers=[stride16]'",
            ) from exc
    return out


@app.command()
def fit(
    train: Annotated[
        Path,
        typer.Argument(
            help="Folder of good images, or an MVTec-style folder (its train/good is used)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    model: Annotated[
        str | None,
        typer.Option(help="Detector name (see `flawscope models`)." + _d("model", "name")),
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="YAML config to start from.")
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(help="Model input side in pixels." + _d("model", "image_size"))
    ] = None,
    channels: Annotated[
        str | None,
        typer.Option(
            help="1 = grey, 3 = RGB, auto = 3 when the training images have colour."
            + _d("model", "channels")
        ),
    ] = None,
    keep_aspect: Annotated[
        bool | None,
        typer.Option(
            "--keep-aspect/--squash",
            help="Letterbox images (long side to the input size, mirrored padding) instead of "
            "squashing them to a square." + _d("model", "keep_aspect"),
        ),
    ] = None,
    exposure: Annotated[
        str | None,
        typer.Option(
            help="Intensity correction before anything else: none, or gain (scale every image "
            "to the same mean; for acquisitions at different exposures)." + _d("model", "exposure")
        ),
    ] = None,
    segment: Annotated[
        str | None,
        typer.Option(
            help="Background segmentation: none, otsu, kmeans, watershed (no training) or unet "
            "(with --segmenter)." + _d("preprocess", "segment")
        ),
    ] = None,
    foreground: Annotated[
        str | None,
        typer.Option(
            help="The part is bright or dark against the background (classical segmentation)."
            + _d("preprocess", "foreground")
        ),
    ] = None,
    segmenter: Annotated[
        Path | None,
        typer.Option(help="U-Net folder written by `flawscope segment fit` (for --segment unet)."),
    ] = None,
    background: Annotated[
        str | None,
        typer.Option(
            help="What the detector sees outside the part: mean (the part's mean intensity) or "
            "black (the thesis)." + _d("preprocess", "background")
        ),
    ] = None,
    view_pattern: Annotated[
        str | None,
        typer.Option(
            help="Regular expression whose first group in a file name is the camera view, "
            'e.g. "_(view\\d+)" (for --mean-mask).'
        ),
    ] = None,
    mean_mask: Annotated[
        bool | None,
        typer.Option(
            "--mean-mask/--own-mask",
            help="Use each view's mean training mask instead of segmenting every image (thesis "
            "5.1.1)." + _d("preprocess", "mean_mask"),
        ),
    ] = None,
    clahe: Annotated[
        bool | None,
        typer.Option(
            "--clahe/--no-clahe",
            help="CLAHE inside the foreground mask (thesis)." + _d("preprocess", "clahe"),
        ),
    ] = None,
    clahe_clip: Annotated[
        float | None, typer.Option(help="CLAHE clip limit." + _d("preprocess", "clahe_clip"))
    ] = None,
    clahe_grid: Annotated[
        int | None,
        typer.Option(help="CLAHE tiles per side." + _d("preprocess", "clahe_grid")),
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option(
            help="Overlap-tile side in pixels for high-resolution images (thesis: 256); the "
            "model input becomes tile + 2 x context unless --image-size is given."
        ),
    ] = None,
    tile_context: Annotated[
        int | None,
        typer.Option(
            help="Mirrored context around each tile (px)." + _d("preprocess", "tile_context")
        ),
    ] = None,
    tile_target: Annotated[
        str | None,
        typer.Option(
            help="HEIGHTxWIDTH every image is resized to before tiling, multiples of --tile "
            "(thesis: 1024x1536)."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="Detector hyperparameter KEY=VALUE (repeatable; VALUE read as YAML), e.g. "
            "--param coreset_ratio=0.05 --param layers=[stride16]."
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Maximum training epochs." + _d("training", "epochs"))
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Images per training step." + _d("training", "batch_size"))
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option("--lr", help="Adam learning rate." + _d("training", "learning_rate")),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(help="Early-stopping patience (epochs)." + _d("training", "patience")),
    ] = None,
    augment: Annotated[
        bool | None,
        typer.Option(
            "--augment/--no-augment",
            help="Augment training images of trainable detectors: rotation, shift, "
            "brightness/contrast (thesis)." + _d("training", "augment"),
        ),
    ] = None,
    aug_flip: Annotated[
        bool | None,
        typer.Option("--aug-flip/--no-aug-flip", help="Also flip (with --augment)."),
    ] = None,
    holdout: Annotated[
        float | None,
        typer.Option(
            help="Share of good images held out (0-1)." + _d("training", "holdout_fraction")
        ),
    ] = None,
    residual: Annotated[
        str | None,
        typer.Option(
            help="Anomaly map of the autoencoders: l2 (squared error) or ssim (1 - local SSIM)."
            + _d("scoring", "residual")
        ),
    ] = None,
    aggregation: Annotated[
        str | None,
        typer.Option(help="Image score: max, mean or topk." + _d("scoring", "aggregation")),
    ] = None,
    top_k: Annotated[
        float | None,
        typer.Option(help="Percent of pixels for topk." + _d("scoring", "top_k_percent")),
    ] = None,
    sigma: Annotated[
        float | None,
        typer.Option(help="Anomaly-map Gaussian sigma (pixels)." + _d("scoring", "sigma")),
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(
            help="Threshold rule on the good hold-out scores: max, quantile or sigma "
            "(mean + z sd)." + _d("threshold", "method")
        ),
    ] = None,
    quantile: Annotated[
        float | None,
        typer.Option(help="Quantile for --threshold quantile." + _d("threshold", "quantile")),
    ] = None,
    z: Annotated[
        float | None,
        typer.Option(help="Standard deviations for --threshold sigma." + _d("threshold", "z")),
    ] = None,
    sensitivity: Annotated[
        float | None,
        typer.Option(
            help="> 1 moves thresholds towards the median good score (more images fail), < 1 "
            "away from it." + _d("threshold", "sensitivity")
        ),
    ] = None,
    normalize: Annotated[
        bool | None,
        typer.Option(
            "--normalize/--raw-scores",
            help="Report scores rescaled so that 1.0 is the threshold of the image's group."
            + _d("threshold", "normalize"),
        ),
    ] = None,
    group_by: Annotated[
        str | None,
        typer.Option(
            help="Groups with their own threshold: none, manifest (--manifest), pattern "
            "(--group-pattern) or discover (k-means on backbone embeddings)."
            + _d("groups", "source")
        ),
    ] = None,
    group_pattern: Annotated[
        str | None,
        typer.Option(
            help="Regular expression whose first group in a file name is the group, "
            'e.g. "^(exp\\d+)_".'
        ),
    ] = None,
    groups: Annotated[
        int | None,
        typer.Option(help="Number of groups to discover (default: chosen by silhouette)."),
    ] = None,
    min_group_images: Annotated[
        int | None,
        typer.Option(
            help="Hold-out images a group needs for its own threshold (else global)."
            + _d("groups", "min_images")
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(help="CSV with columns path,group,batch,label (for --group-by manifest)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed." + _d("training", "seed"))] = None,
    accelerator: Annotated[
        str | None,
        typer.Option(help="Lightning accelerator: auto, cpu, gpu." + _d("training", "accelerator")),
    ] = None,
    devices: Annotated[
        str | None,
        typer.Option(help="Lightning devices: auto, 1, 2, ..." + _d("training", "devices")),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a model already in --out (else refused).")
    ] = False,
) -> None:
    """Learn from good images (or point clouds, with --model 3d-st) and write a model directory."""
    if model == "3d-st":
        from flawscope.commands.pointcloud import fit_pointcloud

        settings = {"config": config_file, "epochs": epochs, "seed": seed}
        fit_pointcloud(train, out, settings, overwrite=overwrite)
        return
    cfg = _config(
        config_file,
        {
            "preprocess": {
                "segment": segment,
                "foreground": foreground,
                "segmenter": str(segmenter.resolve()) if segmenter else None,
                "background": background,
                "view_pattern": view_pattern,
                "mean_mask": mean_mask,
                "clahe": clahe,
                "clahe_clip": clahe_clip,
                "clahe_grid": clahe_grid,
                "tile": tile,
                "tile_context": tile_context,
                "tile_target": _size_pair(tile_target),
            },
            "model": {
                "name": model,
                "image_size": image_size or _tiled_input(tile, tile_context),
                "channels": int(channels) if channels and channels.isdigit() else channels,
                "keep_aspect": keep_aspect,
                "exposure": exposure,
                "params": _params(param),
            },
            "training": {
                "epochs": epochs,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "patience": patience,
                "holdout_fraction": holdout,
                "augment": augment,
                "aug_flip": aug_flip,
                "seed": seed,
                "accelerator": accelerator,
                "devices": int(devices) if devices and devices.isdigit() else devices,
            },
            "scoring": {
                "residual": residual,
                "aggregation": aggregation,
                "top_k_percent": top_k,
                "sigma": sigma,
            },
            "threshold": {
                "method": threshold,
                "quantile": quantile,
                "z": z,
                "sensitivity": sensitivity,
                "normalize": normalize,
            },
            "groups": {
                "source": group_by,
                "pattern": group_pattern,
                "k": groups,
                "min_images": min_group_images,
            },
        },
    )
    _fit(train, out, cfg, overwrite, manifest)


def _fit(
    train: Path,
    out: Path,
    cfg: InspectorConfig,
    overwrite: bool = False,
    manifest: Path | None = None,
) -> Any:
    from flawscope.data.manifest import read_manifest
    from flawscope.inspector import STATE_FILE, Inspector

    if (out / STATE_FILE).exists() and not overwrite:
        raise FlawscopeError(
            f"{out} already holds a trained model",
            "choose another --out folder, or pass --overwrite to replace it",
        )
    insp = Inspector.fit(train, cfg, read_manifest(manifest) if manifest else None)
    insp.save(out)
    stats = insp.fit_stats
    peak = stats.get("peak_memory_mb")
    out_console.print(
        f"fitted [bold]{cfg.model.name}[/] on {stats['train_images']} images in "
        f"{stats['seconds']:.0f} s"
        + (f", peak memory {peak:.0f} MiB" if peak is not None else "")
        + f"; threshold {insp.threshold:.4g} ({insp.threshold_method}); model written to "
        f"[bold]{out}[/]"
    )
    th = insp.thresholds
    for g, t in th.thresholds.items():
        out_console.print(f"  group {g}: threshold {t:.4g} ({th.counts[g]} hold-out images)")
    return insp


@app.command()
def inspect(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `flawscope fit`.")],
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders to inspect.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for results.csv and maps.")
    ] = Path("flawscope-results"),
    maps: Annotated[bool, typer.Option(help="Write anomaly-map overlay PNGs.")] = True,
    batch: Annotated[
        str, typer.Option(help="Production batch (lot) of these images, for SPC.")
    ] = "",
    manifest: Annotated[
        Path | None,
        typer.Option(help="CSV with columns path,group,batch,label for these images."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="Results store: a SQLite file or a postgresql:// URL (default: results.db in "
            "--out); images this model has already inspected are served from it."
        ),
    ] = None,
    store: Annotated[
        bool, typer.Option("--store/--no-store", help="Record results in the results store.")
    ] = True,
) -> None:
    """Score images: print score and verdict per image, write results.csv and anomaly-map PNGs.

    results.csv is a log: rows are appended to an existing file in the same --out folder.

    Exits with status 1 when some inputs could not be read (after writing all the others).
    """
    from flawscope.commands.pointcloud import inspect_pointcloud, is_pointcloud_model
    from flawscope.inspector import Inspector

    if is_pointcloud_model(model_dir):
        if inspect_pointcloud(model_dir, paths, out):
            raise typer.Exit(1)
        return
    insp = Inspector.load_dir(model_dir)
    if store and db is None:
        db = str(out / "results.db")
    n_skipped = _inspect(insp, paths, out, maps, batch, manifest, db if store else None)
    if n_skipped:
        err_console.print(
            f"[red]error:[/] {n_skipped} input(s) skipped (see warnings) -- "
            "fix or remove those files and inspect them again"
        )
        raise typer.Exit(1)


def _inspect(
    insp: Any,
    paths: list[Path],
    out: Path,
    maps: bool,
    batch: str = "",
    manifest: Path | None = None,
    db: str | None = None,
) -> int:
    from contextlib import nullcontext

    from flawscope.data.dataset import collect_inputs
    from flawscope.data.manifest import apply_manifest, read_manifest
    from flawscope.inspection import Outcome, inspect_samples
    from flawscope.store import ResultStore

    if insp.config.groups.source == "manifest" and manifest is None:
        raise FlawscopeError(
            "this model keeps thresholds per manifest group, but no --manifest was given",
            "pass --manifest FILE.csv listing the group of every image",
        )
    samples = apply_manifest(
        collect_inputs(paths), read_manifest(manifest) if manifest else {}, batch
    )

    def show(o: Outcome) -> None:
        colour = "red" if o.verdict == "fail" else "green"
        notes = [f"group {o.group}"] if o.group else []
        notes += ["far from all groups"] * o.far + ["from the store"] * o.stored
        extra = f"  ({', '.join(notes)})" if notes else ""
        out_console.print(f"[{colour}]{o.verdict:4}[/] {o.score:10.4g}  {o.sample.path}{extra}")

    with ResultStore(db) if db else nullcontext() as store:
        summary = inspect_samples(insp, samples, out, maps, store, show)
    n_skipped = len(summary.skipped)
    out_console.print(
        f"{summary.n_pass + summary.n_fail} inspected: {summary.n_pass} pass, "
        f"{summary.n_fail} fail"
        + (f", {n_skipped} skipped" if n_skipped else "")
        + (f", {summary.n_stored} served from the store" if summary.n_stored else "")
        + (f", {summary.n_far} far from all groups" if summary.n_far else "")
        + f"; results in [bold]{out / 'results.csv'}[/]"
        + (f" and {store.url}" if db else "")
    )
    return n_skipped


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `flawscope fit`.")],
    dataset: Annotated[
        Path, typer.Argument(help="MVTec-style folder with test/ (and ground_truth/).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for metrics.json, results.csv, report.html.")
    ] = Path("flawscope-eval"),
) -> None:
    """Score a labelled test set: write metrics (JSON), per-image results (CSV), HTML report."""
    from flawscope.commands.pointcloud import evaluate_pointcloud, is_pointcloud_model
    from flawscope.inspector import Inspector

    if is_pointcloud_model(model_dir):
        if evaluate_pointcloud(model_dir, dataset, out)["skipped"]:
            raise typer.Exit(1)
        return
    ev = _evaluate(Inspector.load_dir(model_dir), dataset, out)
    if ev.skipped:
        raise typer.Exit(1)


@app.command()
def tune(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `flawscope fit`.")],
    validation: Annotated[
        Path,
        typer.Argument(
            help="Labelled validation set, MVTec-style (test/good and test/<defect>); not the "
            "images you evaluate on."
        ),
    ],
    beta: Annotated[
        float, typer.Option(help="Maximise F-beta: 1 = F1, 2 = recall weighs more.")
    ] = 1.0,
) -> None:
    """Set the model's threshold to the best F-beta on labelled validation images (seed 002).

    Prints precision, recall and F-beta at the old and the new threshold and rewrites the
    threshold in the model directory's inspector.json.
    """
    from flawscope.data.dataset import labelled_samples
    from flawscope.inspector import Inspector

    insp = Inspector.load_dir(model_dir)
    samples = labelled_samples(validation)
    t = insp.tune_threshold(samples, beta)
    insp.save_state(model_dir)
    out_console.print(
        f"threshold {t['previous_threshold']:.4g} -> [bold]{t['threshold']:.4g}[/]: "
        f"F{beta:g} {t['f_beta']:.3f}, precision {t['precision']:.3f}, recall "
        f"{t['recall']:.3f} on {t['n_good']} good + {t['n_defective']} defective images; "
        f"written to {model_dir}"
    )
    for group, how in t["groups"].items():
        out_console.print(f"  {group}: {how}")


def _evaluate(insp: Any, dataset: Path, out: Path) -> Any:
    from flawscope.evaluation import evaluate as run_evaluation

    ev = run_evaluation(insp, dataset, out)
    m = ev.metrics["image"]
    px = ev.metrics["pixel"]
    line = (
        f"image AUROC {m['auroc']:.3f}  AUPRC {m['auprc']:.3f}  F1 {m['f1']:.3f}  "
        f"F1-max {m['f1_max']:.3f}"
    )
    if px:
        line += f"  pixel AUROC {px['auroc']:.3f}  AUPRO {px['aupro']:.3f}"
    out_console.print(line)
    out_console.print(f"metrics: {ev.metrics_path}\nreport:  [bold]{ev.report_path}[/]")
    return ev


segment_app = typer.Typer(
    help="Background segmentation: train a U-Net on image/mask pairs, evaluate any segmenter.",
    no_args_is_help=True,
)
app.add_typer(segment_app, name="segment")


@segment_app.command("fit")
def segment_fit(
    images: Annotated[Path, typer.Argument(help="Folder of images (searched recursively).")],
    masks: Annotated[
        Path, typer.Argument(help="Folder of foreground masks named <stem>.png or <stem>_mask.png.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Segmenter folder to write.")],
    size: Annotated[int, typer.Option(help="Network input side (px), multiple of 16.")] = 512,
    channels: Annotated[int, typer.Option(help="1 = grey, 3 = RGB.")] = 1,
    epochs: Annotated[int, typer.Option(help="Maximum training epochs.")] = 50,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).")] = 8,
    batch_size: Annotated[int, typer.Option(help="Images per training step.")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
) -> None:
    """Train the thesis' U-Net (Appendix A.1) to separate the part from the background."""
    from flawscope.config import TrainingConfig
    from flawscope.preprocess.unet_segmenter import UNetSegmenter

    training = build(
        TrainingConfig,
        {"epochs": epochs, "patience": patience, "batch_size": batch_size, "seed": seed},
        "option",
    )
    t0 = time.perf_counter()
    UNetSegmenter.fit(images, masks, out, size=size, channels=channels, training=training)
    out_console.print(
        f"trained the U-Net segmenter in {time.perf_counter() - t0:.0f} s; written to "
        f"[bold]{out}[/] (use it with `flawscope fit --segment unet --segmenter {out}`)"
    )


@segment_app.command("evaluate")
def segment_evaluate(
    images: Annotated[Path, typer.Argument(help="Folder of images (searched recursively).")],
    masks: Annotated[Path, typer.Argument(help="Folder of true foreground masks.")],
    method: Annotated[
        str, typer.Option(help="otsu, kmeans, watershed or unet (with --segmenter).")
    ] = "otsu",
    segmenter: Annotated[
        Path | None, typer.Option(help="U-Net folder written by `flawscope segment fit`.")
    ] = None,
    foreground: Annotated[str, typer.Option(help="bright or dark (classical methods).")] = "bright",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write metrics JSON here.")
    ] = None,
) -> None:
    """Precision, recall, F1, IoU and ROC AUC of predicted against true foreground masks.

    The U-Net is scored on its foreground probabilities (ROC AUC; P/R/F1/IoU at 0.5), the
    classical methods on their cleaned masks.
    """
    import json

    from flawscope.data.io import read_image, read_mask
    from flawscope.preprocess.mask_metrics import mask_metrics
    from flawscope.preprocess.segment import segment
    from flawscope.preprocess.unet_segmenter import pair_files

    if method == "unet":
        if segmenter is None:
            raise ConfigError("--method unet needs --segmenter", "pass the folder of a U-Net")
        from flawscope.preprocess.unet_segmenter import UNetSegmenter

        unet = UNetSegmenter.load(segmenter)
        predict = unet.predict_proba
    else:
        build(PreprocessConfig, {"segment": method, "foreground": foreground}, "option")

        def predict(image: Any) -> Any:
            return segment(image, method, foreground)

    pairs = pair_files(images, masks)
    if not pairs:
        raise FlawscopeError(
            f"no image in {images} has a mask in {masks}",
            "name each mask like its image (<stem>.png or <stem>_mask.png)",
        )
    truth, predicted = [], []
    for image_path, mask_path in pairs:
        truth.append(read_mask(mask_path))
        predicted.append(predict(read_image(image_path)))
    metrics = {"method": method, "images": len(pairs), **mask_metrics(truth, predicted)}
    out_console.print(
        f"{method} on {len(pairs)} images: "
        + "  ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float))
    )
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2))
        out_console.print(f"metrics: {out}")


#: demo input size of the detectors that train on the CPU (the others use 256 px)
DEMO_IMAGE_SIZE = {"cae": 128}


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Working folder.")] = Path(
        "flawscope-demo"
    ),
    model: Annotated[str, typer.Option(help="Detector name (see `flawscope models`).")] = _DEFAULTS[
        "model"
    ]["name"],
    epochs: Annotated[
        int, typer.Option(help="Maximum training epochs (trained detectors only).")
    ] = 40,
    image_size: Annotated[
        int | None,
        typer.Option(
            help="Model input side in pixels [default: 256; 128 for the autoencoders, which "
            "train on the CPU within the demo's few minutes]"
        ),
    ] = None,
    n_train: Annotated[int, typer.Option(help="Good training images to generate.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed for data and training.")] = 0,
    data_kind: Annotated[
        str,
        typer.Option(
            "--data",
            help="layers: generated 3D-printed layer images (fast); renders: a LEGO-like brick "
            "rendered from its CAD model with injected defects (`flawscope synth`; about 0.5 s "
            "per image).",
        ),
    ] = "layers",
) -> None:
    """Run fit -> inspect -> evaluate -> report on generated parts (no download)."""
    from flawscope.data.synthetic import write_dataset
    from flawscope.data.synthetic.cad.dataset import write_demo_renders
    from flawscope.models import detector_class

    detector_class(model)  # an unknown name fails before anything is generated
    writers = {
        "layers": ("printed_layers", write_dataset),
        "renders": ("rendered_bricks", write_demo_renders),
    }
    if data_kind not in writers:
        raise FlawscopeError(f"unknown --data {data_kind!r}", "use layers or renders")
    folder, write = writers[data_kind]
    t0 = time.perf_counter()
    data = out / folder
    out_console.print(
        f"[bold]1/4[/] generating {n_train} good {data_kind} and test images with defects in {data}"
    )
    for own in (data, out / "inspect"):  # the demo's own outputs: start clean, nothing stale
        if own.exists():
            shutil.rmtree(own)
    write(data, n_train=n_train, seed=seed)
    cfg = build(
        InspectorConfig,
        {
            "model": {
                "name": model,
                "image_size": image_size or DEMO_IMAGE_SIZE.get(model, 256),
            },
            "training": {"epochs": epochs, "seed": seed, "patience": 6},
        },
    )
    out_console.print(f"[bold]2/4[/] fitting [bold]{model}[/] on the good images")
    insp = _fit(data, out / "model", cfg, overwrite=True)
    out_console.print("[bold]3/4[/] inspecting the test images")
    _inspect(insp, [data / "test"], out / "inspect", maps=True)
    out_console.print("[bold]4/4[/] evaluating against the known defects")
    ev = _evaluate(insp, data, out / "evaluation")
    out_console.print(
        f"demo finished in {time.perf_counter() - t0:.0f} s. Open the report: "
        f"[bold]{ev.report_path.resolve()}[/]"
    )


@app.command()
def spc(
    db: Annotated[
        str, typer.Option(help="Results store written by `flawscope inspect --db` (file or URL).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for spc.html (control charts) and spc.json.")
    ] = Path("flawscope-spc"),
    model_id: Annotated[
        str | None,
        typer.Option(help="Model whose results to chart (needed when the store has several)."),
    ] = None,
    reference: Annotated[
        list[str] | None,
        typer.Option(
            help="An in-control batch the control limits come from (repeatable; default: the "
            "first half of the batches)."
        ),
    ] = None,
    quantity: Annotated[
        str,
        typer.Option(
            help="nQI input per image: score, or anomalous_fraction (share of anomalous pixels, "
            "the thesis)."
        ),
    ] = "score",
    rule: Annotated[
        list[str] | None,
        typer.Option(
            help="Run rule (repeatable): 'beyond 3 sigma' (default), '2 of 3 beyond 2 sigma', "
            "'8 in a row on one side of the centre'."
        ),
    ] = None,
) -> None:
    """Statistical process control of production batches: nQI, control limits, out-of-control.

    Reads every inspection of one model from the results store, prints the per-batch table
    (images, fail rate, mean and max score, nQI) with the batches out of control, and writes
    the control charts to spc.html and the numbers to spc.json.
    Exits with status 3 when a batch is out of control.
    """
    from flawscope.report.spc_report import write_spc_report
    from flawscope.spc import DEFAULT_RULES, spc_analysis
    from flawscope.store import ResultStore

    with ResultStore(db) as store:
        ids = store.model_ids()
        if model_id is None and len(ids) > 1:
            raise FlawscopeError(
                f"the store holds results of {len(ids)} models ({', '.join(ids)})",
                "choose one with --model-id",
            )
        chosen = model_id or (ids[0] if ids else None)
        records = store.records(model_id=chosen) if chosen else []
    if quantity not in ("score", "anomalous_fraction"):
        raise FlawscopeError(f"unknown --quantity {quantity!r}", "use score or anomalous_fraction")
    if not records:
        raise FlawscopeError(
            f"no inspection results in {db}" + (f" for model {model_id}" if model_id else ""),
            "inspect images with `flawscope inspect MODEL IMAGES --batch NAME --db ...` first",
        )
    result = spc_analysis(records, reference, quantity, rule or DEFAULT_RULES)  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    report = write_spc_report(result, out / "spc.html", f"flawscope SPC: model {chosen}")
    (out / "spc.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    t, flags = result.table, result.flags()
    table = Table(
        title=f"{len(t)} batches of model {chosen} (reference: {', '.join(result.reference)})"
    )
    for col in (
        "batch",
        "images",
        "fail",
        "fail rate",
        "mean score",
        "max score",
        "nQI",
        "out of control",
    ):
        table.add_column(col, justify="left" if col in ("batch", "out of control") else "right")
    for b, name in enumerate(t.names):
        table.add_row(
            name,
            str(t.n[b]),
            str(t.n_fail[b]),
            f"{t.fail_rate[b]:.1%}",
            f"{t.mean_score[b]:.4g}",
            f"{t.max_score[b]:.4g}",
            f"{t.nqi[b]:.2f}",
            f"[red]{'; '.join(flags[b])}[/]" if flags[b] else "",
            style="bold" if flags[b] else None,
        )
    out_console.print(table)
    bad = result.out_of_control_batches
    out_console.print(
        (f"[red]out of control: {', '.join(bad)}[/]" if bad else "[green]all batches in control[/]")
        + f"; control charts in [bold]{report}[/]"
    )
    if bad:
        raise typer.Exit(3)


@app.command()
def models() -> None:
    """List the detector names that --model accepts."""
    from flawscope.models import available

    for name in available():
        out_console.print(name)
    out_console.print("3d-st (point clouds)")


def _register_feature_commands() -> None:
    from flawscope.commands import register_all

    register_all(app)


_register_feature_commands()


def main() -> None:
    """Entry point: run the app, turning flawscope errors into one line and exit status 2."""
    try:
        app()
    except FlawscopeError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
