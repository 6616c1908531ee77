"""U-Net segmentation trained on real, synthetic and mixed data (seed 003, table 4.1).

Usage (from the repository root, after `make setup`):

    .venv/bin/python benchmarks/synthetic_mixed.py [--work /tmp/flawscope-bench/synth-mixed]
        [--n-real 40] [--n-real-few 8] [--n-synth 150] [--n-test-good 8]
        [--n-test-per-defect 6] [--seed 0] [--unet-size 96] [--presentations 600]
        [--patience 6] [--batch-size 8]

The thesis trained its U-Net on 168 real images, on 640 Blender renders and on both (808), and
tested all three on 48 held-out real images (precision, recall, F1, ROC AUC of the masks):
synthetic only 0.734 / 0.433 / 0.55 / 0.69, real 0.968 / 0.999 / 0.98 / 0.97, mixed
0.991 / 0.991 / 0.99 / 0.99. This script repeats the experiment with the same ratio of real to
synthetic images (1 : 3.75), and adds the case synthetic data is meant for: few real images
(``--n-real-few``, the first 8 of the real training images) alone and mixed with the renders.

**Stand-in "real" domain.** There are no real photos with foreground masks in /work/shared/data,
so "real" here is the issue-5 ``parts`` generator
(:func:`flawscope.data.synthetic.parts.write_parts_dataset`): *synthetic*, procedural 2-D
photographic-style images of a grey 2 x 4 brick seen from above on a cluttered, unevenly lit dark
background (256 x 384 px). The "synthetic" domain is the CAD renders of
:mod:`flawscope.data.synthetic.cad` (light renderer, the parametric 2 x 4 brick, 256 x 384 px)
with the camera matched to the stand-in's viewpoint (nearly overhead, long side horizontal, the
part filling ~80 % of the height), as the thesis recommends. So this measures how well the CAD
renders transfer to a *different* image generator, not to real photos.

Training: :meth:`flawscope.preprocess.unet_segmenter.UNetSegmenter.fit` (thesis listing A.1,
15 % held out for early stopping); every model sees about the same number of training images
(``--presentations``: epochs = presentations / training images), so the comparison is of data,
not of compute. Test: the stand-in's test split (good and defective parts) against its exact
foreground masks, :func:`flawscope.preprocess.mask_metrics.mask_metrics` (precision / recall /
F1 / IoU on ``predict_mask``, ROC AUC on ``predict_proba``).

Prints a Markdown table and writes ``benchmarks/results/synthetic_mixed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from real_data import machine  # benchmarks/ is on sys.path when a script here runs

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "synthetic_mixed.json"
COLUMNS = ("precision", "recall", "f1", "iou", "roc_auc")
#: the thesis' table 4.1 (training data -> precision, recall, F1, AUC on real test images)
THESIS = {
    "real": {"precision": 0.968, "recall": 0.999, "f1": 0.98, "roc_auc": 0.97},
    "synthetic": {"precision": 0.734, "recall": 0.433, "f1": 0.55, "roc_auc": 0.69},
    "mixed": {"precision": 0.991, "recall": 0.991, "f1": 0.99, "roc_auc": 0.99},
}


def _link_tree(src: Path, dst: Path) -> None:
    """Mirror the PNG files of ``src`` under ``dst`` as symbolic links (keeps relative paths)."""
    for f in src.rglob("*.png"):
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.symlink(f.resolve(), target)


def markdown(rows: list[dict[str, Any]]) -> str:
    """Table of the rows, with the thesis' numbers beside ours."""
    head = "| training data | images | " + " | ".join(COLUMNS) + " | thesis P / R / F1 / AUC |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for r in rows:
        t = THESIS.get(r["train"])
        keys = ("precision", "recall", "f1", "roc_auc")
        thesis = " / ".join(f"{t[k]:.3f}" for k in keys) if t else "-"
        cells = " | ".join(f"{r[c]:.3f}" for c in COLUMNS)
        lines.append(f"| {r['train']} | {r['images']} | {cells} | {thesis} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default="/tmp/flawscope-bench/synth-mixed")
    p.add_argument("--n-real", type=int, default=40)
    p.add_argument("--n-real-few", type=int, default=8, help="0: skip the few-real rows")
    p.add_argument("--n-synth", type=int, default=150)
    p.add_argument("--n-test-good", type=int, default=8)
    p.add_argument("--n-test-per-defect", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unet-size", type=int, default=96)
    p.add_argument("--presentations", type=int, default=600)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--results", default=str(RESULT))
    ns = p.parse_args()

    from flawscope import __version__
    from flawscope.config import TrainingConfig
    from flawscope.data.io import read_image, read_mask
    from flawscope.data.synthetic.cad import RigSettings, write_renders
    from flawscope.data.synthetic.parts import FOREGROUND_DIR, write_parts_dataset
    from flawscope.preprocess.mask_metrics import mask_metrics
    from flawscope.preprocess.unet_segmenter import UNetSegmenter, pair_files

    started = time.perf_counter()
    load_before = os.getloadavg()
    work = Path(ns.work)
    size = (256, 384)
    real = work / "real"
    t0 = time.perf_counter()
    write_parts_dataset(
        real, ns.n_real, ns.n_test_good, ns.n_test_per_defect, size, ns.seed
    )  # the stand-in "real" domain: train/good for training, test/ for every evaluation
    real_seconds = time.perf_counter() - t0
    synth = work / "synthetic"
    rig = RigSettings(
        distance=(5.5, 7.0), fill=(0.8, 0.95), paths=("top",), heading_deg=(-105.0, -75.0)
    )
    t0 = time.perf_counter()
    write_renders(
        synth, "brick", n_train=ns.n_synth, n_test_good=0, n_test_defective=0, size=size,
        seed=ns.seed, rig=rig,
    )  # fmt: skip
    synth_seconds = time.perf_counter() - t0
    print(
        f"wrote {ns.n_real} stand-in 'real' images in {real_seconds:.0f} s and {ns.n_synth} CAD "
        f"renders in {synth_seconds:.0f} s ({synth_seconds / max(ns.n_synth, 1):.2f} s each)",
        flush=True,
    )
    sources = {
        "real": [(real / "train" / "good", real / FOREGROUND_DIR / "train" / "good")],
        "synthetic": [(synth / "train" / "good", synth / FOREGROUND_DIR / "train" / "good")],
    }
    sources["mixed"] = sources["real"] + sources["synthetic"]
    if 0 < ns.n_real_few < ns.n_real:
        few = work / "real_few"
        stems = sorted(p.name for p in (real / "train" / "good").glob("*.png"))[: ns.n_real_few]
        for sub in ("train/good", f"{FOREGROUND_DIR}/train/good"):
            (few / sub).mkdir(parents=True, exist_ok=True)
            for stem in stems:
                if not (few / sub / stem).exists():
                    os.symlink((real / sub / stem).resolve(), few / sub / stem)
        sources["real_few"] = [(few / "train" / "good", few / FOREGROUND_DIR / "train" / "good")]
        sources["mixed_few"] = sources["real_few"] + sources["synthetic"]

    pairs = pair_files(real / "test", real / FOREGROUND_DIR / "test")
    images = [read_image(i) for i, _ in pairs]
    truth = [read_mask(m) for _, m in pairs]
    rows: list[dict[str, Any]] = []
    for name in sources:
        folder = work / "train_sets" / name
        for k, (img_dir, mask_dir) in enumerate(sources[name]):
            _link_tree(img_dir, folder / "images" / str(k))
            _link_tree(mask_dir, folder / "masks" / str(k))
        n_images = len(pair_files(folder / "images", folder / "masks"))
        epochs = max(2, round(ns.presentations / (n_images * 0.85)))
        training = TrainingConfig(
            epochs=epochs,
            patience=ns.patience,
            batch_size=ns.batch_size,
            seed=ns.seed,
            progress=False,
        )
        t0 = time.perf_counter()
        unet = UNetSegmenter.fit(
            folder / "images",
            folder / "masks",
            work / "unet" / name,
            size=ns.unet_size,
            channels=1,
            training=training,
        )
        fit_seconds = time.perf_counter() - t0
        masks = [unet.predict_mask(im) for im in images]
        ranking = [unet.predict_proba(im) for im in images]
        scores = mask_metrics(truth, masks)
        scores["roc_auc"] = mask_metrics(truth, ranking)["roc_auc"]
        row = {
            "train": name,
            "images": n_images,
            **{k: float(scores[k]) for k in COLUMNS},
            "epochs_max": epochs,
            "epochs_run": len(unet.history.get("val_loss", [])),
            "fit_seconds": round(fit_seconds, 1),
        }
        rows.append(row)
        print(
            f"{name}: {n_images} images, {row['epochs_run']}/{epochs} epochs, {fit_seconds:.0f} s, "
            + ", ".join(f"{k} {row[k]:.3f}" for k in COLUMNS),
            flush=True,
        )
    table = markdown(rows)
    print(table)

    out = Path(ns.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "experiment": "seed 003 table 4.1: U-Net trained on real / synthetic / mixed images, "
        "tested on held-out real images",
        "real_domain": {
            "what": "STAND-IN, not real photos: no real images with foreground masks exist in "
            "/work/shared/data, so 'real' is the issue-5 2-D parts generator "
            "(flawscope.data.synthetic.parts.write_parts_dataset), itself synthetic",
            "train_images": ns.n_real,
            "test_images": len(pairs),
            "test": f"{ns.n_test_good} good + {ns.n_test_per_defect} per defect type "
            "(scratch, dent, chip, missing_stud)",
            "size_hw": list(size),
        },
        "synthetic_domain": {
            "what": "CAD renders (flawscope.data.synthetic.cad.write_renders, light renderer, "
            "parametric 2x4 brick, stereo pairs); camera matched to the stand-in's view: path "
            "'top', heading -105..-75 degrees, fill 0.8-0.95",
            "train_images": ns.n_synth,
            "size_hw": list(size),
            "render_seconds": round(synth_seconds, 1),
        },
        "ratio_real_to_synthetic": f"1 : {ns.n_synth / max(ns.n_real, 1):.2f} (thesis 168 : 640)",
        "rows_note": "real_few / mixed_few: the first --n-real-few real training images alone and "
        "with the renders. Every model sees about --presentations training images (epochs = "
        "presentations / 85 % of its images), so a mixed model sees its real images less often "
        "than the real-only model does",
        "seed": ns.seed,
        "machine": machine(),
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "machine_note": "2 CPU cores shared with other engineers' jobs; seconds are indicative",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "flawscope_version": __version__,
        "settings": {
            "unet_size": ns.unet_size,
            "channels": 1,
            "presentations": ns.presentations,
            "patience": ns.patience,
            "batch_size": ns.batch_size,
            "holdout_fraction": 0.15,
            "metrics": "mask_metrics pooled over the test images at full resolution; P/R/F1/IoU "
            "on predict_mask (probability > 0.5, cleaned), roc_auc on predict_proba",
        },
        "thesis_table_4_1": THESIS,
        "rows": rows,
        "table": table,
        "seconds_total": round(time.perf_counter() - started, 1),
    }
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"-> {out} ({result['seconds_total']:.0f} s)")


if __name__ == "__main__":
    main()
