"""3D-ST on synthetic parts: teacher pretraining, student training, evaluation on synthetic defects.

Usage (from the repository root):

    .venv/bin/python benchmarks/pointcloud_3dst.py [--threads 1] [--work /tmp/flawscope-bench/pc]
        [--train 40] [--good 15] [--per-defect 6] [--points 16000] [--scan-size 192]
        [--overrides '{"teacher.epochs": 40}'] [--tag NAME]

Steps, all through the public entry points (:mod:`flawscope.commands.pointcloud`):

1. write two labelled synthetic sets of a LEGO-like 2x4 brick (mm):
   ``parts``: whole-part clouds in random poses (yaw, tilt <= 5 deg), ``--points`` points,
   Gaussian noise 0.02 mm; ``scans``: organised ``--scan-size``^2 height scans from above of
   the brick lying flat, random yaw (MVTec 3D-AD layout, tilted table plane included). Test
   sets: ``--good`` good clouds and ``--per-defect`` clouds of each defect (bump, dent, crack,
   hole, missing region);
2. ``fit_pointcloud`` on ``parts`` at the default size: teacher pretraining on synthetic
   scenes + student training (timed separately);
3. ``fit_pointcloud`` on ``scans`` reusing that teacher (``teacher.pretrained``);
4. ``evaluate_pointcloud`` on both: object-level AUROC, point-level AUROC, AUPRO (scans).

Writes ``benchmarks/results/pointcloud_3dst[_<tag>].json`` (command, data, machine, date,
load average, times, metrics) and the reports ``..._parts.html`` / ``..._scans.html``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.real_data import machine  # noqa: E402

NOISE_MM = 0.02


def load() -> list[float]:
    """1, 5 and 15 minute load averages (other jobs share the CPU)."""
    return [round(v, 2) for v in os.getloadavg()]


def summary(metrics: dict) -> dict:
    """The headline numbers of an evaluation."""
    obj = metrics["object"]
    return {
        "object_auroc": obj["auroc"],
        "object_auprc": obj["auprc"],
        "f1_at_threshold": obj["f1"],
        "recall_at_threshold": obj["recall"],
        "false_alarms": obj["fp"],
        "f1_max": obj["f1_max"],
        "point_auroc": metrics["point_auroc"],
        "aupro": metrics["aupro"],
        "object_auroc_by_aggregation": metrics["object_auroc_by_aggregation"],
        "per_defect_auroc": {k: v["auroc"] for k, v in metrics["per_defect"].items()},
        "n_good": obj["n_good"],
        "n_defective": obj["n_defective"],
        "evaluate_seconds": metrics["seconds"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/flawscope-bench/pc"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train", type=int, default=40)
    ap.add_argument("--good", type=int, default=15)
    ap.add_argument("--per-defect", type=int, default=6)
    ap.add_argument("--points", type=int, default=16000)
    ap.add_argument("--scan-size", type=int, default=192)
    ap.add_argument("--overrides", default="{}", help="JSON dict of 3d-st settings")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    import torch

    from flawscope.commands.pointcloud import evaluate_pointcloud, fit_pointcloud
    from flawscope.pointcloud.config import PointCloudConfig
    from flawscope.pointcloud.synthetic import write_synthetic_set

    started = time.perf_counter()
    load_start = load()
    torch.set_num_threads(args.threads)
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    common = {"shape": "brick", "n_train": args.train, "n_good": args.good,
              "n_per_defect": args.per_defect, "noise": NOISE_MM}  # fmt: skip
    t0 = time.perf_counter()
    counts = {
        "parts": write_synthetic_set(work / "parts", n_points=args.points, seed=11, **common),
        "scans": write_synthetic_set(
            work / "scans", organized=True, size=args.scan_size, seed=12, **common
        ),
    }
    data_seconds = time.perf_counter() - t0
    overrides = {"threads": args.threads, **json.loads(args.overrides)}

    fits, evals = {}, {}
    det = fit_pointcloud(work / "parts", work / "model_parts", overrides)
    fits["parts"] = det.fit_stats
    teacher_history = {k: det.history[k] for k in ("teacher_loss", "teacher_val_loss")}
    scans = {**overrides, "teacher.pretrained": str(work / "model_parts")}
    fits["scans"] = fit_pointcloud(work / "scans", work / "model_scans", scans).fit_stats
    name = "pointcloud_3dst" + (f"_{args.tag}" if args.tag else "")
    results = ROOT / "benchmarks" / "results"
    for key in ("parts", "scans"):
        evals[key] = evaluate_pointcloud(work / f"model_{key}", work / key, work / f"eval_{key}")
        shutil.copy(work / f"eval_{key}" / "report.html", results / f"{name}_{key}.html")

    record = {
        "command": shlex.join([".venv/bin/python", "benchmarks/pointcloud_3dst.py", *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": {"start": load_start, "end": load()},
        "data": {
            "part": "brick (LEGO-like 2x4, 32 x 16 x 11.3 mm, built-in parametric shape)",
            "noise_mm": NOISE_MM,
            "parts": f"whole-part clouds, {args.points} points, random yaw, tilt <= 5 deg",
            "scans": f"organised {args.scan_size}x{args.scan_size} height scans from above, brick "
            "lying flat with random yaw on a table plane tilted <= 1 deg (removed by RANSAC), "
            "MVTec 3D-AD layout",
            "counts": counts,
            "defects": "bump, dent, crack, hole, missing region; radius 4-7 % of the part "
            "diagonal; height/depth 30-50 % of the radius (hole 60-100 %)",
            "seconds_to_generate": round(data_seconds, 1),
        },
        "config": PointCloudConfig().with_overrides(overrides).model_dump(mode="json"),
        "fit": fits,
        "teacher_history": teacher_history,
        "metrics": {k: summary(v) for k, v in evals.items()},
        "reports": [f"benchmarks/results/{name}_{k}.html" for k in evals],
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    path = results / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, default=float))
    print(json.dumps({k: record[k] for k in ("metrics", "total_seconds", "load_average")},
                     indent=2, default=float))  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
