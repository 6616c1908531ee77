"""Ablation in the style of seed 003's Table 1.1: segmentation, CLAHE and augmentation.

Usage (from the repository root, after `make setup`):

    .venv/bin/python benchmarks/ablation.py [--sets parts bottle] [--models cae patchcore]
        [--work /tmp/flawscope-bench/ablation] [--data ../shared/data]
        [--cae-size 128] [--cae-epochs 10] [--cae-batch 16] [--patchcore-size 256]
        [--parts-segment watershed] [--bottle-segment otsu --bottle-foreground dark]
        [--unet /tmp/flawscope-bench/parts/unet]

Data sets:

* ``parts``: synthetic grey photos of a 2 x 4 brick on a cluttered, unevenly lit dark background
  with specular highlights (:func:`flawscope.data.synthetic.parts.write_parts_dataset`, the
  thesis' hard case), written under ``--work``; defect masks, so pixel AUROC and AUPRO exist.
* ``bottle``: ``mvtec_ad/bottle`` under ``--data`` (real, RGB, dark bottle seen from above on a
  white background; this copy has no ground-truth masks, so image metrics only).

Variants, each a fresh :meth:`flawscope.inspector.Inspector.fit` on ``train/good`` (15 % held
out) and :func:`flawscope.evaluation.evaluate` on ``test/``:

* ``plain``: no preprocessing;
* ``seg``: background segmentation (parts: ``--parts-segment``, by default watershed, the best
  classical method of ``benchmarks/segmentation.py`` on this generator; bottle: Otsu with a dark
  foreground); the background is zeroed and cannot raise the score;
* ``seg+clahe``: and CLAHE inside the mask, clip 9, 9 x 9 tiles (thesis listing 3.2; on RGB the
  L* channel is equalised);
* ``seg+clahe+aug``: and augmentation of the training images (rotation +-5 degrees, shift +-5 %,
  brightness / contrast +-10 %; thesis 3.5.1), trainable detectors only (``cae``);
* with ``--unet DIR`` (a segmenter from ``flawscope segment fit`` or
  ``benchmarks/segmentation.py``) the parts set also gets ``seg (unet)`` and
  ``seg (unet) + CLAHE`` rows (no augmentation row, to keep the run short).

Detectors: ``cae`` (seed-000 autoencoder, ``--cae-size`` px, ``--cae-epochs`` epochs, batch
``--cae-batch``, early-stopping patience 8) and ``patchcore`` (``--patchcore-size`` px, default
parameters; not trained, so no augmentation row). Metrics: image AUROC, F1-max, pixel AUROC and
AUPRO (parts only). Prints a Markdown table and writes ``benchmarks/results/ablation.json``
(rewritten after every row, so an interrupted run keeps what it measured).
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
RESULT = ROOT / "benchmarks" / "results" / "ablation.json"
TRAINED = {"cae"}


def variants(segment: str, foreground: str, unet: str | None) -> list[tuple[str, dict, bool]]:
    """``(name, preprocess settings, augment)`` of every variant of one data set."""
    seg = {"segment": segment, "foreground": foreground}
    clahe = {"clahe": True, "clahe_clip": 9.0, "clahe_grid": 9}
    out: list[tuple[str, dict, bool]] = [
        ("plain", {}, False),
        (f"seg ({segment})", seg, False),
        (f"seg ({segment}) + CLAHE", {**seg, **clahe}, False),
        (f"seg ({segment}) + CLAHE + aug", {**seg, **clahe}, True),
    ]
    if unet:
        useg = {"segment": "unet", "segmenter": str(Path(unet).resolve())}
        out += [
            ("seg (unet)", useg, False),
            ("seg (unet) + CLAHE", {**useg, **clahe}, False),
        ]
    return out


def model_settings(name: str, ns: argparse.Namespace) -> tuple[dict, dict]:
    """``(model, training)`` config sections of a detector."""
    if name == "cae":
        model = {"name": "cae", "image_size": ns.cae_size, "channels": "auto"}
        training = {"epochs": ns.cae_epochs, "batch_size": ns.cae_batch, "patience": 8}
    else:
        model = {"name": name, "image_size": ns.patchcore_size, "channels": "auto"}
        training = {}
    return model, {**training, "seed": ns.seed, "progress": False}


def _f(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the rows."""
    lines = [
        "| data set | model | variant | image AUROC | F1-max | pixel AUROC | AUPRO | epochs | "
        "fit (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['variant']} | {_f(r['image_auroc'])} | "
            f"{_f(r['f1_max'])} | {_f(r['pixel_auroc'])} | {_f(r['aupro'])} | "
            f"{r['epochs_run'] or '–'} | {r['fit_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["parts", "bottle"], choices=["parts", "bottle"])
    p.add_argument("--models", nargs="+", default=["cae", "patchcore"])
    p.add_argument("--work", default="/tmp/flawscope-bench/ablation")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--cae-size", type=int, default=128)
    p.add_argument("--cae-epochs", type=int, default=10)
    p.add_argument("--cae-batch", type=int, default=16)
    p.add_argument("--patchcore-size", type=int, default=256)
    p.add_argument("--parts-n-train", type=int, default=80)
    p.add_argument("--parts-n-test-good", type=int, default=20)
    p.add_argument("--parts-n-test-per-defect", type=int, default=8)
    p.add_argument("--parts-height", type=int, default=256)
    p.add_argument("--parts-width", type=int, default=384)
    p.add_argument("--parts-seed", type=int, default=1)
    p.add_argument("--parts-segment", default="watershed")
    p.add_argument("--bottle-segment", default="otsu")
    p.add_argument("--bottle-foreground", default="dark", choices=["bright", "dark"])
    p.add_argument("--unet", default=None, help="U-Net segmenter folder: extra parts variants")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--results", default=str(RESULT))
    ns = p.parse_args()

    from flawscope import __version__
    from flawscope.config import InspectorConfig
    from flawscope.data.synthetic.parts import write_parts_dataset
    from flawscope.evaluation import evaluate
    from flawscope.inspector import Inspector

    work = Path(ns.work)
    started = time.perf_counter()
    sets: dict[str, dict[str, Any]] = {}
    if "parts" in ns.sets:
        root = work / "parts"
        size = (ns.parts_height, ns.parts_width)
        write_parts_dataset(
            root,
            ns.parts_n_train,
            ns.parts_n_test_good,
            ns.parts_n_test_per_defect,
            size,
            ns.parts_seed,
        )
        sets["parts"] = {
            "root": root,
            "variants": variants(ns.parts_segment, "bright", ns.unet),
            "description": {
                "name": "synthetic parts (flawscope.data.synthetic.parts.write_parts_dataset)",
                "synthetic": True,
                "description": "grey 2x4 brick on a cluttered, unevenly lit dark background "
                "with specular highlights; defects scratch, dent, chip, missing_stud with masks",
                "seed": ns.parts_seed,
                "size_hw": list(size),
                "train_images": ns.parts_n_train,
                "test": f"{ns.parts_n_test_good} good + {ns.parts_n_test_per_defect} per "
                "defect type (4 types)",
                "segmentation": f"{ns.parts_segment}, foreground bright",
            },
        }
    if "bottle" in ns.sets:
        root = Path(ns.data) / "mvtec_ad" / "bottle"
        if not root.is_dir():
            raise SystemExit(f"{root} does not exist; pass --data")
        sets["bottle"] = {
            "root": root,
            "variants": variants(ns.bottle_segment, ns.bottle_foreground, None),
            "description": {
                "name": "mvtec_ad/bottle",
                "synthetic": False,
                "path": str(root),
                "description": "real RGB photos, 384 px; no ground-truth masks in this copy",
                "segmentation": f"{ns.bottle_segment}, foreground {ns.bottle_foreground}",
            },
        }

    out = Path(ns.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "datasets": {k: v["description"] for k, v in sets.items()},
        "machine": machine(),
        "machine_note": "CPU shared with another long benchmark during the run: fit seconds "
        "are not speed figures",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "flawscope_version": __version__,
        "settings": {
            "cae": {
                "image_size": ns.cae_size,
                "epochs_max": ns.cae_epochs,
                "batch_size": ns.cae_batch,
                "patience": 8,
            },
            "patchcore": {"image_size": ns.patchcore_size, "params": "defaults"},
            "clahe": {"clip": 9.0, "grid": 9},
            "augment": "TrainingConfig defaults: rotate 5 deg, translate 0.05, brightness 0.1, "
            "contrast 0.1, no flips",
            "seed": ns.seed,
            "threshold": "max of the good hold-out scores (F1-max does not depend on it)",
        },
        "rows": rows,
    }
    for set_name, spec in sets.items():
        for model_name in ns.models:
            for variant, preprocess, augment in spec["variants"]:
                if augment and model_name not in TRAINED:
                    continue
                model, training = model_settings(model_name, ns)
                if augment:
                    training = {**training, "augment": True}
                cfg = InspectorConfig.model_validate(
                    {"preprocess": preprocess, "model": model, "training": training}
                )
                tag = f"{set_name}_{model_name}_{variant}".replace(" ", "").replace("+", "_")
                tag = tag.replace("(", "-").replace(")", "")
                t0 = time.perf_counter()
                insp = Inspector.fit(spec["root"], cfg)
                fit_seconds = time.perf_counter() - t0
                ev = evaluate(insp, spec["root"], work / "evaluations" / tag)
                img, px = ev.metrics["image"], ev.metrics["pixel"] or {}
                row = {
                    "dataset": set_name,
                    "model": model_name,
                    "variant": variant,
                    "preprocess": cfg.preprocess.model_dump(mode="json"),
                    "augment": augment,
                    "channels": insp.config.model.channels,
                    "image_auroc": img["auroc"],
                    "auprc": img["auprc"],
                    "f1_max": img["f1_max"],
                    "f1_at_threshold": img.get("f1"),
                    "pixel_auroc": px.get("auroc"),
                    "aupro": px.get("aupro"),
                    "per_defect_auroc": {
                        k: v.get("auroc") for k, v in ev.metrics["per_defect"].items()
                    },
                    "epochs_run": len(insp.history.get("val_loss", [])) or None,
                    "fit_seconds": round(fit_seconds, 1),
                    "evaluate_seconds": round(time.perf_counter() - t0 - fit_seconds, 1),
                }
                rows.append(row)
                result["total_seconds"] = round(time.perf_counter() - started, 1)
                result["table"] = markdown(rows)
                out.write_text(json.dumps(result, indent=2) + "\n")
                print(
                    f"{set_name} {model_name} {variant}: image AUROC {img['auroc']:.3f} "
                    f"F1-max {img['f1_max']:.3f}"
                    + (f" pixel AUROC {px['auroc']:.3f} AUPRO {px['aupro']:.3f}" if px else "")
                    + f" (fit {fit_seconds:.0f} s, {time.perf_counter() - started:.0f} s total)",
                    flush=True,
                )
    print(markdown(rows))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
