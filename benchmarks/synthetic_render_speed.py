"""Seconds per rendered image of the light renderer and of Blender (Cycles), at 512 x 512 px.

Usage (from the repository root, after `make setup`; Blender needs `pip install
'flawscope[blender]'`, else its row says why it was skipped):

    .venv/bin/python benchmarks/synthetic_render_speed.py [--size 512] [--pairs 3]
        [--blender-pairs 1] [--samples 50]

Renders ``--pairs`` good stereo pairs of the parametric 2 x 4 brick (plus one dent pair for the
cost of a defect mask, which renders the clean scene's G-buffer too) with
:func:`flawscope.data.synthetic.cad.render_pair`, then ``--blender-pairs`` pairs of the same
scenes with Cycles (CPU, ``--samples`` per pixel, OpenImageDenoise, 4 bounces). Reports seconds
per image (the time of :func:`render_pair` over its two images: scene building, G-buffers,
shadow map, shading, masks, sensor effects). Writes
``benchmarks/results/synthetic_render_speed.json`` with the machine and its load average (the 2
CPU cores are shared with other engineers' jobs: the numbers are indicative).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from real_data import machine  # benchmarks/ is on sys.path when a script here runs

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "synthetic_render_speed.json"


def _time_pairs(renderer: Any, size: int, pairs: int, defect: str | None) -> list[float]:
    """Seconds per image of ``pairs`` stereo pairs (scene seeds 0 .. pairs - 1)."""
    import numpy as np

    from flawscope.data.synthetic.cad import render_pair, resolve_part

    part = resolve_part("brick")
    out = []
    for k in range(pairs):
        t0 = time.perf_counter()
        render_pair(part, np.random.default_rng([k, 42]), (size, size), renderer, defect)
        out.append((time.perf_counter() - t0) / 2)
    return out


def _summary(seconds: list[float]) -> dict[str, float]:
    return {
        "images": 2 * len(seconds),
        "seconds_per_image_median": round(statistics.median(seconds), 2),
        "seconds_per_image_min": round(min(seconds), 2),
        "seconds_per_image_max": round(max(seconds), 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--blender-pairs", type=int, default=1)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--results", default=str(RESULT))
    ns = p.parse_args()

    from flawscope import __version__
    from flawscope.data.synthetic.cad.render import make_renderer
    from flawscope.errors import FlawscopeError

    load_before = os.getloadavg()
    rows: dict[str, Any] = {}
    light = make_renderer("light")
    rows["light_good"] = _summary(_time_pairs(light, ns.size, ns.pairs, None))
    rows["light_dent"] = _summary(_time_pairs(light, ns.size, 1, "dent"))
    print(f"light: {rows['light_good']}, with a dent mask: {rows['light_dent']}", flush=True)
    try:
        blender = make_renderer("blender", samples=ns.samples)
    except FlawscopeError as exc:
        rows["blender_good"] = {"skipped": str(exc)}
    else:
        import bpy  # type: ignore[import-not-found]

        summary = _summary(_time_pairs(blender, ns.size, ns.blender_pairs, None))
        rows["blender_good"] = summary | {
            "bpy": bpy.app.version_string,
            "samples_per_pixel": ns.samples,
            "denoiser": "OpenImageDenoise",
            "max_bounces": blender.bounces,
            "threads": blender.threads,
        }
    print(f"blender: {rows['blender_good']}", flush=True)
    out = Path(ns.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    light_s = rows["light_good"]["seconds_per_image_median"]
    blender_s = rows["blender_good"].get("seconds_per_image_median")
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "what": "seconds per image of flawscope.data.synthetic.cad.render_pair (a stereo pair "
        "of the parametric 2x4 brick, its foreground masks, sensor effects) at "
        f"{ns.size}x{ns.size} px",
        "light_settings": {"supersample": 2, "shadow_map": "1024^2, 13-tap PCF", "threads": 1},
        "rows": rows,
        "blender_over_light": round(blender_s / light_s, 1) if blender_s else None,
        "machine": machine(),
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "machine_note": "2 CPU cores shared with other engineers' jobs; the light renderer uses "
        "one core (NumPy), Cycles all cores",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "flawscope_version": __version__,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
