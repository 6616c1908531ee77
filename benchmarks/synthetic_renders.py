"""Contact sheet of CAD renders with their foreground and defect masks (one HTML page).

Usage (from the repository root, after `make setup`):

    .venv/bin/python benchmarks/synthetic_renders.py [--size 384] [--seed 0]
        [--renderer light] [--out benchmarks/results/synthetic_renders.html]

Renders, with :func:`flawscope.data.synthetic.cad.render_pair`, for the parametric ``brick`` and
``box``: two good stereo pairs and one pair per defect type; each row shows the left and right
images, the foreground mask (green outline) and the defect mask (red) over the image. For
comparison the page ends with images of the issue-5 ``parts`` generator (the stand-in "real"
domain of ``benchmarks/synthetic_mixed.py``). The page embeds the images as JPEG (quality 88,
self-contained). Look at
it with ``/work/shared/tools/screenshot.sh FILE.html OUT.png 1280,2400``.
"""

from __future__ import annotations

import argparse
import base64
import html
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "synthetic_renders.html"


def _png(array) -> str:  # noqa: ANN001 - numpy array
    """A data URL of the image as JPEG (quality 88: keeps the page a few MB)."""
    import cv2

    ok, data = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, 88])
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode()


def _overlay(image, foreground, defect):  # noqa: ANN001, ANN202
    import cv2
    import numpy as np

    grey = np.round(image * 255).astype(np.uint8)
    out = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    red = out.copy()
    red[defect] = (40, 40, 255)
    out = cv2.addWeighted(out, 0.45, red, 0.55, 0) if defect.any() else out
    contours, _ = cv2.findContours(
        foreground.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    cv2.drawContours(out, contours, -1, (60, 220, 60), 1)
    return out


def _compare(ns: argparse.Namespace, size: tuple[int, int]) -> list[str]:
    """Rows of the same scenes by the light renderer and by Blender (Cycles), with timings."""
    import numpy as np

    from flawscope.data.synthetic.cad import render_pair, resolve_part
    from flawscope.data.synthetic.cad.render import make_renderer
    from flawscope.errors import FlawscopeError

    if ns.compare_blender <= 0:
        return []
    try:
        blender = make_renderer("blender")
    except FlawscopeError as exc:
        return [f"<h2>light vs Blender</h2><p>skipped: {html.escape(str(exc))}</p>"]
    cells = [
        "<h2>light renderer (left pair) vs Blender Cycles, 50 spp, denoised (right pair), "
        "same scenes</h2>"
    ]
    light = make_renderer("light")
    part = resolve_part("brick")
    for k in range(ns.compare_blender):
        imgs, times = [], []
        for renderer in (light, blender):
            t0 = time.perf_counter()
            views, _ = render_pair(part, np.random.default_rng([ns.seed, 99, k]), size, renderer)
            times.append((time.perf_counter() - t0) / 2)
            imgs += [f'<img src="{_png(np.round(v.image * 255).astype(np.uint8))}">' for v in views]
        cells.append(
            f'<div class="row"><p>scene {k}: light {times[0]:.1f} s per image, Blender '
            f"{times[1]:.1f} s per image</p>{''.join(imgs)}</div>"
        )
    return cells


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--renderer", default="light")
    p.add_argument(
        "--compare-blender",
        type=int,
        default=1,
        help="scenes to render with both renderers side by side (needs bpy; 0 = none)",
    )
    p.add_argument("--out", default=str(RESULT))
    ns = p.parse_args()

    import numpy as np

    from flawscope.data.synthetic.cad import DEFECT_TYPES, render_pair, resolve_part
    from flawscope.data.synthetic.cad.render import make_renderer
    from flawscope.data.synthetic.parts import render_part

    renderer = make_renderer(ns.renderer)
    size = (ns.size, ns.size)
    cells: list[str] = []
    started = time.perf_counter()
    n_images = 0
    for part_name in ("brick", "box"):
        part = resolve_part(part_name)
        cells.append(f"<h2>{part_name} ({part.finish}, {part.extent:.1f} mm)</h2>")
        for k, defect in enumerate([None, None, *DEFECT_TYPES]):
            rng = np.random.default_rng([ns.seed, 7, len(part_name), k])
            views, info = render_pair(part, rng, size, renderer, defect)
            n_images += 2
            label = html.escape(
                f"{defect or 'good'} | path {info['path']} t={info['path_t']} | "
                f"brightness {info['brightness']} | baseline {info['baseline_mm']} mm"
            )
            imgs = "".join(
                f'<img src="{_png(np.round(v.image * 255).astype(np.uint8))}">' for v in views
            )
            masks = "".join(
                f'<img src="{_png(_overlay(v.image, v.foreground, v.defect))}">' for v in views
            )
            cells.append(f'<div class="row"><p>{label}</p>{imgs}{masks}</div>')
    seconds = time.perf_counter() - started
    cells += _compare(ns, size)
    rng = np.random.default_rng(ns.seed)
    real = []
    for defect in (None, "scratch", "dent"):
        image, fg, mask = render_part(rng, (256, 384), defect)
        real.append(f'<img src="{_png(_overlay(image, fg, mask))}">')
    cells.append(
        "<h2>stand-in 'real' domain: issue-5 parts generator (2D, synthetic)</h2>"
        f'<div class="row">{"".join(real)}</div>'
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>flawscope synth: CAD renders</title>
<style>body{{font-family:sans-serif;background:#222;color:#ddd;margin:12px}}
img{{width:24%;margin:0.3%;vertical-align:top}} .row p{{margin:4px 0;font-size:13px}}
h2{{margin:14px 0 4px}}</style></head><body>
<h1>CAD renders ({html.escape(renderer.name)} renderer, {ns.size} px, seed {ns.seed})</h1>
<p>Each row: left and right camera of one stereo pair, then the same two with the foreground
mask (green outline) and the defect mask (red). {n_images} images in {seconds:.0f} s
({seconds / n_images:.2f} s per image, incl. the clean render for defect masks).</p>
{"".join(cells)}</body></html>"""
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    print(f"{n_images} images in {seconds:.0f} s -> {out}")


if __name__ == "__main__":
    main()
