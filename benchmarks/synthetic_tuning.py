"""Rendered defects as a labelled validation set for threshold tuning (no real defects needed).

Usage (from the repository root, after `make setup`):

    .venv/bin/python benchmarks/synthetic_tuning.py [--work /tmp/flawscope-bench/synth-tuning]
        [--n-train 80] [--n-val-good 10] [--n-val-per-defect 5] [--n-test-good 20]
        [--n-test-per-defect 8] [--size 256] [--seed 0]

A plant often has good parts only: the detector learns from them and its threshold comes from
good hold-out images (the highest hold-out score, ``threshold.method = max``), which tends to
sit too high. With a CAD model, defects can be rendered: this script renders three disjoint sets
of the parametric 2 x 4 brick at a fixed inspection station (light renderer; the same holder,
fixtures, lamp and nearly overhead stereo camera for every image, the part placed by hand:
rotated +-15 degrees, shifted +-4 %):

1. ``train``: good parts only -> ``Inspector.fit`` (PatchCore, the default detector);
2. ``val``: good + rendered defective parts -> ``Inspector.tune_threshold(labelled_samples(val),
   beta=1)`` picks the threshold with the best F1 there;
3. ``test``: good + defective parts, never used for fitting or tuning ->
   :func:`flawscope.evaluation.evaluate` before and after tuning.

All three sets are synthetic (different seeds, so different poses, lights, defects). The F1 on
the test set before and after tuning is written to ``benchmarks/results/synthetic_tuning.json``.
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
RESULT = ROOT / "benchmarks" / "results" / "synthetic_tuning.json"
KEYS = ("f1", "precision", "recall", "auroc", "f1_max", "tp", "fp", "tn", "fn")


def _image(ev: Any) -> dict[str, Any]:
    return {k: ev.metrics["image"][k] for k in KEYS} | {"threshold": ev.metrics["threshold"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default="/tmp/flawscope-bench/synth-tuning")
    p.add_argument("--n-train", type=int, default=80)
    p.add_argument("--n-val-good", type=int, default=10)
    p.add_argument("--n-val-per-defect", type=int, default=5)
    p.add_argument("--n-test-good", type=int, default=20)
    p.add_argument("--n-test-per-defect", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", default=str(RESULT))
    ns = p.parse_args()

    from flawscope import __version__
    from flawscope.config import InspectorConfig
    from flawscope.data.dataset import labelled_samples
    from flawscope.data.synthetic.cad import DEFECT_TYPES, station_rig, write_renders
    from flawscope.evaluation import evaluate
    from flawscope.inspector import Inspector

    started = time.perf_counter()
    load_before = os.getloadavg()
    work = Path(ns.work)
    station = station_rig(ns.seed)
    sets = {
        "train": (ns.n_train, 0, 0, ns.seed),
        "val": (0, ns.n_val_good, ns.n_val_per_defect, ns.seed + 1),
        "test": (0, ns.n_test_good, ns.n_test_per_defect, ns.seed + 2),
    }
    render_seconds = {}
    for name, (n_train, n_good, n_per, seed) in sets.items():
        t0 = time.perf_counter()
        write_renders(
            work / name,
            "brick",
            n_train=n_train,
            n_test_good=n_good,
            n_test_defective={d: n_per for d in DEFECT_TYPES},
            size=ns.size,
            seed=seed,
            rig=station,
        )
        render_seconds[name] = round(time.perf_counter() - t0, 1)
        print(f"rendered {name} in {render_seconds[name]:.0f} s", flush=True)

    cfg = InspectorConfig.model_validate(
        {"model": {"name": "patchcore", "image_size": ns.size}, "training": {"seed": ns.seed}}
    )
    t0 = time.perf_counter()
    insp = Inspector.fit(work / "train", cfg)
    fit_seconds = time.perf_counter() - t0
    before = evaluate(insp, work / "test", work / "eval_before")
    tuning = insp.tune_threshold(labelled_samples(work / "val"), beta=1.0)
    after = evaluate(insp, work / "test", work / "eval_after")
    rows = {"before": _image(before), "after": _image(after)}
    print(
        f"threshold {rows['before']['threshold']:.4g} (max of good hold-out) -> "
        f"{rows['after']['threshold']:.4g} (best F1 on the rendered validation set)\n"
        f"test F1 {rows['before']['f1']:.3f} -> {rows['after']['f1']:.3f}  (precision "
        f"{rows['before']['precision']:.3f} -> {rows['after']['precision']:.3f}, recall "
        f"{rows['before']['recall']:.3f} -> {rows['after']['recall']:.3f}); AUROC "
        f"{rows['after']['auroc']:.3f}, best possible F1 {rows['after']['f1_max']:.3f}",
        flush=True,
    )
    out = Path(ns.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "question": "can rendered defective parts replace real defects for threshold tuning?",
        "data": {
            "what": "all synthetic: CAD renders of the parametric 2x4 brick "
            "(flawscope.data.synthetic.cad.write_renders, light renderer) at a fixed inspection "
            "station (flawscope.data.synthetic.cad.station_rig(seed): fixed holder, 3 fixtures, "
            "lamp and stereo camera, overhead); per image only the part's pose (+-15 deg, "
            "+-4 %), texture, exposure (+-5 %) and noise vary",
            "size": ns.size,
            "defects": list(DEFECT_TYPES),
            "sets": {
                name: {"train_good": a, "good": b, "per_defect": c, "seed": s}
                for name, (a, b, c, s) in sets.items()
            },
            "render_seconds": render_seconds,
        },
        "model": cfg.model_dump(mode="json"),
        "fit_seconds": round(fit_seconds, 1),
        "tuning": tuning,
        "test_before_tuning": rows["before"],
        "test_after_tuning": rows["after"],
        "per_defect_after": {
            k: {m: v[m] for m in ("auroc", "recall")}
            for k, v in after.metrics["per_defect"].items()
        },
        "machine": machine(),
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "flawscope_version": __version__,
        "seconds_total": round(time.perf_counter() - started, 1),
    }
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"-> {out} ({result['seconds_total']:.0f} s)")


if __name__ == "__main__":
    main()
