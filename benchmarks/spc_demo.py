"""SPC demonstration on real images: production batches, a results store, control charts.

The good test images of a data set (never trained on) are dealt into production batches in a
seeded random order; one batch (``--bad-batch``) has a share (``--bad-share``) of its images
replaced by defective test images. Every batch is inspected into a SQLite results store (as
``flawscope inspect MODEL IMAGES --batch NAME --db results.db`` does), then the SPC analysis
runs on the store (as ``flawscope spc --db results.db`` does) with the first half of the batches
as the in-control reference.

    .venv/bin/python benchmarks/spc_demo.py --set magnetic_tile

writes ``benchmarks/results/spc_<set>.json`` and the report ``benchmarks/results/spc_<set>.html``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_data import machine  # noqa: E402

from flawscope.config import InspectorConfig  # noqa: E402
from flawscope.data.dataset import labelled_samples  # noqa: E402
from flawscope.inspection import inspect_samples  # noqa: E402
from flawscope.inspector import Inspector  # noqa: E402
from flawscope.report.spc_report import write_spc_report  # noqa: E402
from flawscope.spc import spc_analysis  # noqa: E402
from flawscope.store import ResultStore  # noqa: E402

PATTERNS = {"magnetic_tile": r"^(exp\d+)_"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", default="magnetic_tile")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--model", default="patchcore")
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--bad-batch", type=int, default=7, help="1-based index of the bad batch")
    p.add_argument("--bad-share", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default="/tmp/flawscope-spc-demo")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args()

    root = Path(args.data) / args.set
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    groups = {"source": "pattern", "pattern": PATTERNS[args.set]} if args.set in PATTERNS else {}
    cfg = InspectorConfig.model_validate(
        {"model": {"name": args.model}, "training": {"progress": False}, "groups": groups}
    )
    t0 = time.perf_counter()
    insp = Inspector.fit(root, cfg)
    insp.save(work / "model")
    fit_s = time.perf_counter() - t0

    rng = np.random.default_rng(args.seed)
    test = labelled_samples(root)
    good = [test[i] for i in rng.permutation(len(test)) if test[i].label == 0]
    defective = [test[i] for i in rng.permutation(len(test)) if test[i].label == 1]
    per_batch = len(good) // args.batches
    n_bad = round(args.bad_share * per_batch)
    batches = []
    for b in range(args.batches):
        name = f"B{b + 1:02d}"
        images = good[b * per_batch : (b + 1) * per_batch]
        if b + 1 == args.bad_batch:
            images = images[: per_batch - n_bad] + defective[:n_bad]
        batches.append([replace(s, batch=name) for s in images])

    t0 = time.perf_counter()
    with ResultStore(work / "results.db") as store:
        for samples in batches:
            inspect_samples(insp, samples, work / "inspect", maps=False, store=store)
        records = store.records(model_id=insp.model_id)
    inspect_s = time.perf_counter() - t0
    result = spc_analysis(records)
    out = Path(args.results)
    report = write_spc_report(
        result,
        out / f"spc_{args.set}.html",
        f"flawscope SPC demo: {args.set}, batch B{args.bad_batch:02d} with "
        f"{n_bad}/{per_batch} defective images",
    )
    bad_name = f"B{args.bad_batch:02d}"
    summary = {
        "benchmark": "spc_demo",
        "command": "python " + " ".join(sys.argv),
        "dataset": args.set,
        "model": args.model,
        "groups": groups or None,
        "batches": args.batches,
        "images_per_batch": per_batch,
        "bad_batch": bad_name,
        "defective_in_bad_batch": n_bad,
        "fit_seconds": round(fit_s, 1),
        "inspect_seconds": round(inspect_s, 1),
        "out_of_control_batches": result.out_of_control_batches,
        "bad_batch_flagged": bad_name in result.out_of_control_batches,
        "false_alarms": [b for b in result.out_of_control_batches if b != bad_name],
        "spc": result.to_dict(),
        "report": str(report.relative_to(ROOT)),
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out / f"spc_{args.set}.json").write_text(json.dumps(summary, indent=2) + "\n")
    t = result.table
    for b, name in enumerate(t.names):
        print(
            f"{name}  n={t.n[b]:3d}  fail {t.fail_rate[b]:6.1%}  mean {t.mean_score[b]:.4g}  "
            f"nQI {t.nqi[b]:.2f}  {'; '.join(result.flags()[b])}"
        )
    print(f"out of control: {result.out_of_control_batches}; report {report}")


if __name__ == "__main__":
    main()
