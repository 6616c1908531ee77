"""Collect benchmark JSON results into one Markdown table.

Usage (from the repository root):

    .venv/bin/python benchmarks/table.py 'cae_recon_*' 'vae_recon_*' [--out FILE.md]

Each argument is a glob under ``benchmarks/results/``. One row per result file: data set, model,
exposure correction, residual map, image AUROC, AUPRC, F1-max, pixel AUROC and AUPRO (where
masks exist), epochs run, fit time, inspection throughput at batch 1 and 16, peak fit memory.
Printed, and written to ``--out`` when given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
#: the detectors whose anomaly map is a residual (the ``map`` column); the others show "–"
RECON = {"cae", "strided-ae", "dense-cae", "vae"}
HEADER = (
    "| data set | model | exposure | map | image AUROC | AUPRC | F1-max | pixel AUROC | AUPRO | "
    "epochs | fit (s) | img/s b1 / b16 | fit peak (MiB) |"
)


def _f(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def row(result: dict[str, Any]) -> str:
    """One Markdown table row of a result written by ``real_data.py``."""
    cfg, img, px = result["config"], result["image"], result.get("pixel") or {}
    speed = result["inspect_images_per_second"]
    residual = cfg["scoring"].get("residual", "l2") if cfg["model"]["name"] in RECON else "–"
    dataset = result["dataset"].split("/data/")[-1]  # older files hold the full path
    exposure = cfg["model"].get("exposure", "none")
    return (
        f"| `{dataset}` | {cfg['model']['name']} | {exposure} | {residual} | "
        f"{_f(img['auroc'])} | {_f(img['auprc'])} | {_f(img['f1_max'])} | "
        f"{_f(px.get('auroc'))} | {_f(px.get('aupro'))} | {result.get('epochs_run') or '–'} | "
        f"{result['fit_seconds']:.0f} | {speed['batch_1']:.0f} / {speed['batch_16']:.0f} | "
        f"{result['peak_rss_mb_fit']:.0f} |"
    )


def table(patterns: list[str], results: Path = RESULTS) -> str:
    """The Markdown table of every result file matching ``patterns``, sorted by set and name.

    Raises:
        SystemExit: no file matches.
    """
    files = sorted({p for pat in patterns for p in results.glob(pat + ".json")})
    if not files:
        raise SystemExit(f"no result in {results} matches {patterns}")
    loaded = [json.loads(p.read_text()) for p in files]
    loaded.sort(key=lambda r: (r["dataset"], r["config"]["model"]["name"]))
    separator = "|" + "---|" * (HEADER.count("|") - 1)
    return "\n".join([HEADER, separator, *map(row, loaded)]) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("patterns", nargs="+", help="globs under benchmarks/results (without .json)")
    p.add_argument("--out", type=Path, help="also write the table to this file")
    ns = p.parse_args()
    text = table(ns.patterns)
    print(text, end="")
    if ns.out:
        ns.out.write_text(text)


if __name__ == "__main__":
    main()
