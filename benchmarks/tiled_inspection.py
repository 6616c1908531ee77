"""Full-resolution inspection with overlap tiles: time and peak memory per image size.

Usage (from the repository root, after `make setup`):

    .venv/bin/python benchmarks/tiled_inspection.py [--work /tmp/flawscope-bench/tiled]

Fits PatchCore with overlap tiling (256 px tiles, 32 px mirrored context -> 320 px detector
input, every image resized to 1024 x 1536 as in the thesis) on generated printed-layer images,
then runs ``flawscope inspect`` in a fresh process on one defective image at 4000 x 3000 and at
8000 x 6000 px and records each process's wall time and peak resident memory
(``RUSAGE_CHILDREN``). Writes ``benchmarks/results/tiled_inspection.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).parent / "flawscope"


def run_child(args: list[str]) -> tuple[float, float, str]:
    """Run the CLI in a fresh process: (wall seconds, that process's peak RSS in MiB, stdout).

    ``os.wait4`` returns the resource usage of exactly that child (``RUSAGE_CHILDREN`` would
    give the largest of all children so far).
    """
    out_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"flawscope-child-{os.getpid()}.txt"
    t0 = time.perf_counter()
    with (
        out_file.open("w") as out,
        subprocess.Popen([str(EXE), *args], stdout=out, stderr=subprocess.STDOUT) as proc,
    ):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    text = out_file.read_text()
    out_file.unlink()
    if proc.returncode != 0:
        raise SystemExit(f"flawscope {' '.join(args)} failed:\n{text}")
    return wall, usage.ru_maxrss / 1024, text


def main() -> None:
    from flawscope.data.synthetic.printed_layers import render_layer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/flawscope-bench/tiled"))
    p.add_argument("--n-train", type=int, default=16)
    p.add_argument(
        "--reuse-model", action="store_true", help="inspect with the model already in --work"
    )
    ns = p.parse_args()
    work: Path = ns.work
    train = work / "train"
    train.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(ns.n_train):
        img, _ = render_layer(rng, 768)
        cv2.imwrite(str(train / f"{i:03d}.png"), np.round(img * 255).astype(np.uint8))
    layer, mask = render_layer(np.random.default_rng(99), 1536, defect="scratch")
    sizes = {"4000x3000": (4000, 3000), "8000x6000": (8000, 6000)}
    files = {}
    for name, (w, h) in sizes.items():
        big = cv2.resize(
            np.round(layer * 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC
        )
        files[name] = work / f"layer_{name}.png"
        cv2.imwrite(str(files[name]), big)
    model = work / "model"
    fit_args = ["fit", str(train), "--out", str(model), "--overwrite", "--tile", "256",
                "--tile-context", "32", "--tile-target", "1024x1536"]  # fmt: skip
    if ns.reuse_model and (model / "inspector.json").is_file():
        fit_wall = fit_peak = float("nan")  # not measured in this run
    else:
        fit_wall, fit_peak, _ = run_child(fit_args)
    rows = []
    for name, path in files.items():
        wall, peak, out = run_child(["inspect", str(model), str(path), "--out", str(work / name)])
        rows.append(
            {
                "image": name,
                "inspect_seconds": round(wall, 1),
                "peak_rss_mb": round(peak, 1),
                "output": out.strip().splitlines()[-1],
            }
        )
        print(f"{name}: {wall:.1f} s, peak {peak:.0f} MiB (process, imports included)", flush=True)
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "dataset": f"generated printed layers: {ns.n_train} good at 768 px for fit; one scratch "
        "layer rendered at 1536 px and enlarged to each size for inspection",
        "machine": {"cores": os.cpu_count()},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "model": "patchcore",
            "tile": 256,
            "tile_context": 32,
            "tile_target": [1024, 1536],
        },  # fmt: skip
        "fit_seconds": None if fit_wall != fit_wall else round(fit_wall, 1),
        "fit_peak_rss_mb": None if fit_peak != fit_peak else round(fit_peak, 1),
        "inspect": rows,
    }
    out = ROOT / "benchmarks" / "results" / "tiled_inspection.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"fit {fit_wall:.1f} s, peak {fit_peak:.0f} MiB -> {out}")


if __name__ == "__main__":
    main()
