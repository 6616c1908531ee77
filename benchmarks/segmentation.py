"""Background segmentation on synthetic parts: the thesis' U-Net against Otsu, k-means, watershed.

Usage (from the repository root, after `make setup`):

    .venv/bin/python benchmarks/segmentation.py [--work /tmp/flawscope-bench/parts]
        [--n-train 60] [--n-test-good 8] [--n-test-per-defect 8] [--height 256] [--width 384]
        [--seed 0] [--unet-size 128] [--epochs 20] [--patience 5] [--batch-size 8]

Data: :func:`flawscope.data.synthetic.parts.write_parts_dataset` (synthetic grey photos of a
2 x 4 brick on a cluttered, unevenly lit dark background with specular highlights, the hard case
of seed 003, with exact foreground masks) is written under ``--work``. The U-Net
(:class:`flawscope.preprocess.unet_segmenter.UNetSegmenter`, thesis Listing A.1) learns from the
training images and their foreground masks (``train/good`` + ``foreground/train/good``; 15 %
held out for early stopping). Every method is scored on the test images (good and defective
parts) against their exact masks with :func:`flawscope.preprocess.mask_metrics.mask_metrics`:
pooled pixel precision, recall, F1 (Dice), IoU, the mean and the worst per-image IoU, and ROC AUC.

* U-Net: precision ... IoU on
  :meth:`~flawscope.preprocess.unet_segmenter.UNetSegmenter.predict_mask` (the mask the
  inspector uses: probability > 0.5, cleaned, resized back), ROC AUC on
  :meth:`~flawscope.preprocess.unet_segmenter.UNetSegmenter.predict_proba` (a ranking score).
* Otsu, k-means, watershed (``foreground="bright"``): their cleaned bool masks; the ROC AUC of a
  bool mask is the balanced accuracy ``(TPR + TNR) / 2``.

Prints a Markdown table and writes ``benchmarks/results/segmentation_parts.json`` (command, data
set, machine, date, settings, table).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from real_data import machine  # benchmarks/ is on sys.path when a script here runs

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "segmentation_parts.json"
METHODS = ("unet", "otsu", "kmeans", "watershed")
COLUMNS = ("precision", "recall", "f1", "iou", "mean_iou", "min_iou", "roc_auc")


def markdown(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the result rows."""
    head = "| method | " + " | ".join(COLUMNS) + " | s / image |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for r in rows:
        cells = " | ".join(f"{r[c]:.3f}" for c in COLUMNS)
        lines.append(f"| {r['method']} | {cells} | {r['seconds_per_image']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default="/tmp/flawscope-bench/parts")
    p.add_argument("--n-train", type=int, default=60)
    p.add_argument("--n-test-good", type=int, default=8)
    p.add_argument("--n-test-per-defect", type=int, default=8)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unet-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--results", default=str(RESULT))
    ns = p.parse_args()

    import numpy as np

    from flawscope import __version__
    from flawscope.config import TrainingConfig
    from flawscope.data.io import read_image, read_mask
    from flawscope.data.synthetic.parts import FOREGROUND_DIR, write_parts_dataset
    from flawscope.preprocess.mask_metrics import mask_metrics
    from flawscope.preprocess.segment import segment
    from flawscope.preprocess.unet_segmenter import UNetSegmenter, pair_files

    work = Path(ns.work)
    data = work / "data"
    size = (ns.height, ns.width)
    t0 = time.perf_counter()
    write_parts_dataset(data, ns.n_train, ns.n_test_good, ns.n_test_per_defect, size, ns.seed)
    print(
        f"wrote the synthetic parts set to {data} in {time.perf_counter() - t0:.0f} s", flush=True
    )

    training = TrainingConfig(
        epochs=ns.epochs,
        patience=ns.patience,
        batch_size=ns.batch_size,
        seed=ns.seed,
        progress=False,
    )
    t0 = time.perf_counter()
    unet = UNetSegmenter.fit(
        data / "train" / "good",
        data / FOREGROUND_DIR / "train" / "good",
        work / "unet",
        size=ns.unet_size,
        channels=1,
        training=training,
    )
    fit_seconds = time.perf_counter() - t0
    epochs_run = len(unet.history.get("val_loss", []))
    print(f"trained the U-Net in {fit_seconds:.0f} s ({epochs_run} epochs)", flush=True)

    pairs = pair_files(data / "test", data / FOREGROUND_DIR / "test")
    images = [read_image(i) for i, _ in pairs]
    truth = [read_mask(m) for _, m in pairs]
    rows: list[dict[str, Any]] = []
    unet.predict_proba(images[0])  # warm-up: the first forward pass sets up the kernels
    for method in METHODS:
        t0 = time.perf_counter()
        if method == "unet":
            masks = [unet.predict_mask(im) for im in images]
            ranking = [unet.predict_proba(im) for im in images]
        else:
            masks = [segment(im, method, "bright") for im in images]
            ranking = masks
        seconds = (time.perf_counter() - t0) / len(images)
        scores = mask_metrics(truth, masks)
        scores["roc_auc"] = mask_metrics(truth, ranking)["roc_auc"]
        per_image = [mask_metrics([t], [m])["iou"] for t, m in zip(truth, masks, strict=True)]
        rows.append(
            {
                "method": method,
                **{k: scores[k] for k in COLUMNS if k in scores},
                "min_iou": float(np.nanmin(per_image)),
                "seconds_per_image": seconds,
            }
        )
    table = markdown(rows)
    print(table)

    out = Path(ns.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "dataset": {
            "name": "synthetic parts (flawscope.data.synthetic.parts.write_parts_dataset)",
            "synthetic": True,
            "description": "grey 2x4 brick on a cluttered, unevenly lit dark background with "
            "specular highlights (the hard segmentation case of seed 003); exact foreground "
            "masks",
            "seed": ns.seed,
            "size_hw": list(size),
            "train_images": ns.n_train,
            "test_images": len(pairs),
            "test": f"{ns.n_test_good} good + {ns.n_test_per_defect} per defect type",
        },
        "machine": machine(),
        "machine_note": "CPU shared with another long benchmark during the run: the seconds "
        "are not speed figures",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "flawscope_version": __version__,
        "settings": {
            "unet": {
                "size": ns.unet_size,
                "channels": 1,
                "filters": list(unet.filters),
                "epochs_max": ns.epochs,
                "epochs_run": epochs_run,
                "patience": ns.patience,
                "batch_size": ns.batch_size,
                "learning_rate": training.learning_rate,
                "holdout_fraction": training.holdout_fraction,
                "pairs": unet.info.get("pairs"),
                "fit_seconds": round(fit_seconds, 1),
                "val_loss": unet.history.get("val_loss"),
            },
            "classical": {"foreground": "bright", "post_processing": "clean_mask"},
            "metrics": "flawscope.preprocess.mask_metrics.mask_metrics, pooled over the test "
            "images at full resolution; unet: P/R/F1/IoU on predict_mask, roc_auc on "
            "predict_proba; classical: roc_auc of the bool mask = balanced accuracy; min_iou = "
            "worst per-image IoU",
        },
        "rows": rows,
        "table": table,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
