"""Run the main job (fit -> evaluate) on real data sets and write one JSON result per set.

Usage (from the repository root, after `make setup`):

    .venv/bin/python benchmarks/real_data.py [--sets mvtec_ad/bottle magnetic_tile printbed]
        [--data ../shared/data] [--model cae] [--image-size 256] [--epochs 30]

Each result goes to ``benchmarks/results/<model>_<set>.json`` with the command, the data set, the
machine (CPU model, cores), the date, fit/evaluate wall times and the metrics of ``evaluate``.
Models and reports are written under ``--work`` (default /tmp/flawscope-bench), not committed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from flawscope import __version__
from flawscope.config import InspectorConfig
from flawscope.evaluation import evaluate
from flawscope.inspector import Inspector

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, object]:
    """CPU model, core count, torch threads, GPU name if any."""
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


def run_set(name: str, args: argparse.Namespace) -> dict[str, object]:
    data = Path(args.data) / name
    if not data.is_dir():
        raise SystemExit(f"{data} does not exist; pass --data pointing at the shared data folder")
    cfg = InspectorConfig.model_validate(
        {
            "model": {"name": args.model, "image_size": args.image_size},
            "training": {"epochs": args.epochs, "patience": args.patience, "seed": args.seed},
        }
    )
    work = Path(args.work) / f"{args.model}_{name.replace('/', '_')}"
    t0 = time.perf_counter()
    insp = Inspector.fit(data, cfg)
    insp.save(work / "model")
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = evaluate(insp, data, work / "evaluation")
    t_eval = time.perf_counter() - t0
    return {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "dataset": name,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "flawscope_version": __version__,
        "config": cfg.model_dump(mode="json"),
        "epochs_run": len(insp.history.get("val_loss", [])),
        "fit_seconds": round(t_fit, 1),
        "evaluate_seconds": round(t_eval, 1),
        "evaluate_seconds_per_image": round(t_eval / max(1, ev.metrics["n_images"]), 4),
        "report": str(ev.report_path),
        **ev.metrics,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["mvtec_ad/bottle", "magnetic_tile", "printbed"])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--model", default="cae")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--work", default="/tmp/flawscope-bench")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args()
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.sets:
        result = run_set(name, args)
        path = out / f"{args.model}_{name.replace('/', '_')}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        img = result["image"]
        print(
            f"{name}: image AUROC {img['auroc']:.3f}, F1 {img['f1']:.3f}, "
            f"fit {result['fit_seconds']} s -> {path}",
            flush=True,
        )


if __name__ == "__main__":
    main()
