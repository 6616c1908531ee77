"""Run the main job (fit -> evaluate) on real data sets and write one JSON result per set.

Usage (from the repository root, after `make setup`):

    .venv/bin/python benchmarks/real_data.py [--sets mvtec_ad/bottle magnetic_tile printbed]
        [--data ../shared/data] [--model patchcore] [--params '{"coreset_ratio": 0.01}']
        [--image-size 256] [--channels auto] [--exposure none] [--epochs 30] [--tag NAME]
        [--residuals l2 ssim]

Each set runs in a fresh process, so the peak resident memory of its fit is its own. Each result
goes to ``benchmarks/results/<model>[_<tag>][_<residual>]_<set>.json`` (the residual map is named
when ``--residuals`` lists several; they share one fit) with the command, the data set, the
machine (CPU model, cores), the date, fit time and peak memory, inspection throughput (images per
second from decoded, resized images to scores and anomaly maps, at batch 1 and 16) and the
metrics of ``evaluate``. Models and reports go under ``--work`` (default /tmp/flawscope-bench).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, object]:
    """CPU model, core count, torch threads, GPU name if any."""
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def throughput(insp: Any, images: Any, batch: int, repeats: int = 1) -> float:
    """Images per second of ``detector.predict`` (scores and maps) on decoded ``images``."""
    insp.detector.predict(images[:batch])  # warm-up
    n, t0 = 0, time.perf_counter()
    for _ in range(repeats):
        for i in range(0, len(images) - batch + 1, batch):
            insp.detector.predict(images[i : i + batch])
            n += batch
    return round(n / (time.perf_counter() - t0), 2)


def run_set(name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Fit once, then measure and evaluate on one data set with each residual map.

    Runs in its own process. One result per entry of ``args["residuals"]``: the first uses the
    fitted inspector; the others reload its weights with that residual map and re-calibrate the
    threshold on the same good hold-out images (nothing is trained twice).
    """
    from flawscope import __version__
    from flawscope.config import InspectorConfig
    from flawscope.data.dataset import labelled_samples, split_holdout, training_samples
    from flawscope.evaluation import evaluate
    from flawscope.inspector import Inspector
    from flawscope.resources import peak_memory_mb

    data = Path(args["data"]) / name
    first, *others = args["residuals"]
    cfg = InspectorConfig.model_validate(
        {
            "model": {
                "name": args["model"],
                "image_size": args["image_size"],
                "channels": args["channels"],
                "exposure": args["exposure"],
                "params": args["params"],
            },
            "training": {
                "epochs": args["epochs"],
                "patience": args["patience"],
                "seed": args["seed"],
                "progress": False,
            },
            "scoring": {"residual": first},
        }
    )
    work = Path(args["work"]) / f"{args['label']}_{name.replace('/', '_')}"
    t0 = time.perf_counter()
    fitted = Inspector.fit(data, cfg)
    t_fit = time.perf_counter() - t0
    peak_fit = peak_memory_mb()
    fitted.save(work / "model")
    results = []
    for residual in [first, *others]:
        insp = fitted
        if residual != first:
            variant = fitted.config.model_copy(deep=True)
            variant.scoring.residual = residual
            insp = Inspector(variant)
            insp.detector.load(work / "model")
            insp.history = fitted.history
            t = variant.training
            _, hold = split_holdout(training_samples(data), t.holdout_fraction, t.seed)
            insp.calibrate(insp.read(hold))
        sample = insp.read(labelled_samples(data)[:64]).images
        speed = {f"batch_{b}": throughput(insp, sample, b) for b in (1, 16)}
        t0 = time.perf_counter()
        ev = evaluate(insp, data, work / f"evaluation_{residual}")
        t_eval = time.perf_counter() - t0
        results.append(
            {
                "command": args["command"],
                "dataset": name,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": machine(),
                "flawscope_version": __version__,
                "config": insp.config.model_dump(mode="json"),
                "epochs_run": len(insp.history.get("val_loss", [])) or None,
                "fit_seconds": round(t_fit, 1),
                "fit_stats": getattr(fitted.detector, "fit_stats", None),
                "peak_rss_mb_fit": peak_fit,
                "peak_rss_mb_total": peak_memory_mb(),
                "inspect_images_per_second": speed,
                "evaluate_seconds": round(t_eval, 1),
                "report": str(ev.report_path),
                **ev.metrics,
            }
        )
    return results


def result_name(label: str, residual: str, several: bool, dataset: str) -> str:
    """``<label>[_<residual>]_<set>.json``: the residual is named when several were run."""
    return f"{label}{'_' + residual if several else ''}_{dataset.replace('/', '_')}.json"


def summary_line(result: dict[str, Any]) -> str:
    """One printed line per result: accuracy, fit time, memory, throughput."""
    img, px = result["image"], result["pixel"] or {}
    return (
        f"image AUROC {img['auroc']:.3f} AUPRC {img['auprc']:.3f} F1-max {img['f1_max']:.3f}"
        + (f" pixel AUROC {px['auroc']:.3f} AUPRO {px['aupro']:.3f}" if px else "")
        + f" | fit {result['fit_seconds']} s, peak {result['peak_rss_mb_fit']} MB,"
        f" {result['inspect_images_per_second']} img/s"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["mvtec_ad/bottle", "magnetic_tile", "printbed"])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--model", default="patchcore")
    p.add_argument("--params", default="{}", help="JSON object of model params")
    p.add_argument("--tag", default="", help="suffix of the result names (variants of a model)")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--channels", default="auto", help="1, 3 or auto")
    p.add_argument("--exposure", default="none", help="none or gain")
    p.add_argument(
        "--residuals",
        nargs="+",
        default=["l2"],
        choices=["l2", "ssim"],
        help="residual maps of reconstruction detectors; one fit, one result each",
    )
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--work", default="/tmp/flawscope-bench")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ns = p.parse_args()
    args = {
        **vars(ns),
        "params": json.loads(ns.params),
        "channels": int(ns.channels) if ns.channels.isdigit() else ns.channels,
        "label": ns.model + (f"_{ns.tag}" if ns.tag else ""),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
    }
    out = Path(ns.results)
    out.mkdir(parents=True, exist_ok=True)
    for name in ns.sets:
        if not (Path(ns.data) / name).is_dir():
            raise SystemExit(f"{Path(ns.data) / name} does not exist; pass --data")
        with mp.get_context("spawn").Pool(1) as pool:  # fresh process: its own peak memory
            results = pool.apply(run_set, (name, args))
        for residual, result in zip(ns.residuals, results, strict=True):
            path = out / result_name(args["label"], residual, len(ns.residuals) > 1, name)
            path.write_text(json.dumps(result, indent=2) + "\n")
            print(f"{name} [{residual}]: {summary_line(result)} -> {path}", flush=True)


if __name__ == "__main__":
    main()
