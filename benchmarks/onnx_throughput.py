"""PatchCore on PyTorch vs. its ONNX export on onnxruntime: throughput and score differences.

Usage (from the repository root, after `make setup`):

    .venv/bin/python benchmarks/onnx_throughput.py [--set mvtec_ad/bottle] [--threads 2]
        [--rounds 3] [--data ../shared/data] [--work /tmp/flawscope-bench/onnx]

Fits PatchCore with default settings at 256 px on the set's good training images (the first of
``--set``, ``mvtec_ad/bottle``, ``magnetic_tile`` that exists; skipped when none does), exports
it with ``flawscope.models.onnx_export.export_onnx`` and scores the set's labelled test images,
decoded and resized once, with both paths: ``detector.predict`` from model-input images to
scores and smoothed anomaly maps, at batch 1 and batch 16. PyTorch runs with
``torch.set_num_threads(threads)``, onnxruntime with ``intra_op_num_threads = threads`` and one
inter-op thread. The two paths alternate for ``--rounds`` rounds and the best round of each is
reported (the machine may be shared; the load average before and after is recorded). Also
records the largest absolute differences of the scores and maps over all test images, and, for
scale, the largest error of the PyTorch path's own float32 patch distances against float64 ones
(the ``||q||^2 - 2 q.b + ||b||^2`` expansion that both paths use loses about 1e-3 when the
squared feature norms are ~3e3). Writes ``benchmarks/results/onnx_throughput.json``.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks.real_data when run as a script


def images_per_second(detector: Any, images: Any, batch: int) -> float:
    """Images per second of ``detector.predict`` over ``images`` in batches of ``batch``."""
    detector.predict(images[:batch])  # warm-up (onnxruntime allocates on its first run)
    n, t0 = 0, time.perf_counter()
    for i in range(0, len(images) - batch + 1, batch):
        detector.predict(images[i : i + batch])
        n += batch
    return n / (time.perf_counter() - t0)


def float32_distance_error(detector: Any, images: Any) -> float:
    """Largest error of the PyTorch path's own nearest-neighbour distances (float32) against
    exact float64 distances, on ``images``: the scale below which the two paths cannot agree.
    """
    import torch

    from flawscope.models.coreset import nearest_neighbours
    from flawscope.models.features import to_patches

    stages = next(detector.stages(images))
    patches = to_patches(detector.patch_features(stages))
    bank = detector.memory_bank
    fast, _ = nearest_neighbours(patches, bank, 1)
    exact = torch.cdist(patches.double(), bank.double()).min(dim=1).values
    return float((fast[:, 0].double() - exact).abs().max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--set", default=None, help="data set under --data (default: first found)")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--work", type=Path, default=Path("/tmp/flawscope-bench/onnx"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/onnx_throughput.json")
    args = p.parse_args()

    import onnxruntime
    import torch

    from benchmarks.real_data import machine
    from flawscope import __version__
    from flawscope.config import InspectorConfig
    from flawscope.data.dataset import labelled_samples
    from flawscope.inspector import Inspector
    from flawscope.models.features import CPU_MICRO_BATCH
    from flawscope.models.onnx_check import differences
    from flawscope.models.onnx_export import OPSET, export_onnx
    from flawscope.models.onnx_runtime import DEFAULT_BATCH, load_onnx_inspector

    candidates = [args.set] if args.set else ["mvtec_ad/bottle", "magnetic_tile"]
    found = [args.data / s for s in candidates if (args.data / s).is_dir()]
    if not found:
        print(f"skipped: none of {candidates} under {args.data}")
        return
    root = found[0]
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    config = InspectorConfig.model_validate(
        {"model": {"name": "patchcore", "image_size": 256}, "training": {"progress": False}}
    )
    model_dir = args.work / root.name
    t0 = time.perf_counter()
    Inspector.fit(root, config).save(model_dir)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    onnx_file = export_onnx(model_dir)
    export_seconds = time.perf_counter() - t0

    torch_insp = Inspector.load_dir(model_dir)
    onnx_insp = load_onnx_inspector(model_dir, threads=args.threads)
    loaded = torch_insp.read(labelled_samples(root))
    images = loaded.images
    diff = differences(torch_insp.predict(loaded), onnx_insp.predict(loaded))

    rates: dict[str, dict[str, list[float]]] = {"torch": {}, "onnxruntime": {}}
    for batch in (1, 16):
        for _ in range(args.rounds):  # alternate, so a burst of load hits both paths alike
            for name, insp in (("torch", torch_insp), ("onnxruntime", onnx_insp)):
                rate = images_per_second(insp.detector, images, batch)
                rates[name].setdefault(f"batch_{batch}", []).append(round(rate, 2))
    best = {name: {b: max(v) for b, v in r.items()} for name, r in rates.items()}
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "dataset": str(root),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "flawscope_version": __version__,
        "onnxruntime": onnxruntime.__version__,
        "opset": OPSET,
        "threads": {
            "torch_intra_op": torch.get_num_threads(),
            "torch_inter_op": torch.get_num_interop_threads(),
            "onnxruntime_intra_op": args.threads,
            "onnxruntime_inter_op": 1,
            "onnxruntime_images_per_call": DEFAULT_BATCH,
            "torch_images_per_backbone_pass": CPU_MICRO_BATCH,
        },
        "config": config.model_dump(mode="json"),
        "fit_seconds": round(fit_seconds, 2),
        "bank_size": len(torch_insp.detector.memory_bank),
        "export_seconds": round(export_seconds, 2),
        "onnx_file_mb": round(onnx_file.stat().st_size / 1e6, 2),
        "n_test_images": len(images),
        "images_per_second": best,
        "images_per_second_rounds": rates,
        "onnx_speedup": {
            b: round(best["onnxruntime"][b] / best["torch"][b], 2) for b in best["torch"]
        },
        "differences": diff,
        "torch_float32_distance_error": float32_distance_error(torch_insp.detector, images[:16]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("images_per_second", "differences")}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
