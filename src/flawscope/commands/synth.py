"""The ``flawscope synth`` command: render a CAD part as a training/test data set.

Imports inside the command are lazy, so ``flawscope --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: share of the good renders that go to test/good (the rest to train/good)
TEST_SHARE = 0.2


def split_good(n_good: int) -> tuple[int, int]:
    """``(train, test)`` counts of ``n_good`` good renders: 20 % (at least 1 of 2+) to test."""
    test = round(n_good * TEST_SHARE)
    if n_good >= 2:
        test = max(test, 1)
    return n_good - test, test


def register(app: typer.Typer) -> None:
    """Add ``synth`` to the CLI app."""

    @app.command("synth")
    def synth(
        out: Annotated[Path, typer.Argument(help="Data set folder to write (MVTec layout).")],
        mesh: Annotated[
            Path | None,
            typer.Option(help="CAD mesh of the part: STL, OBJ, PLY or OFF (z up)."),
        ] = None,
        part: Annotated[
            str | None,
            typer.Option(
                help="Built-in part instead of a mesh: brick (2x4, moulded) or box "
                "(FDM-printed). Default: brick."
            ),
        ] = None,
        units: Annotated[str, typer.Option(help="Length unit of --mesh: mm, cm, m or in.")] = "mm",
        finish: Annotated[
            str,
            typer.Option(help="Surface of --mesh: moulded (fine grain) or printed (FDM layers)."),
        ] = "moulded",
        n_good: Annotated[
            int, typer.Option(help="Good renders: 80 % to train/good, 20 % to test/good.")
        ] = 100,
        n_defective: Annotated[
            int, typer.Option(help="Defective renders (test/<defect>), spread over --defects.")
        ] = 30,
        size: Annotated[int, typer.Option(help="Image side in pixels (square images).")] = 512,
        seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same files.")] = 0,
        renderer: Annotated[
            str,
            typer.Option(
                help="light (NumPy rasteriser, any machine) or blender (Cycles via bpy: "
                "pip install 'flawscope\\[blender]')."
            ),
        ] = "light",
        defects: Annotated[
            str, typer.Option(help="Comma-separated defect types.")
        ] = "dent,bump,hole,scratch,missing",
        supersample: Annotated[
            int, typer.Option(help="Samples per pixel side for anti-aliasing and mask coverage.")
        ] = 2,
    ) -> None:
        """Render a part's CAD model like a stereo scanner: images, foreground and defect masks.

        Two cameras ~0.4 x their distance apart (about 5 cm for the brick) follow orbit arcs
        around the part on a textured holder with clutter, under a randomised spotlight (seed 003,
        section 3.5). The folder works with fit, evaluate, tune and segment fit (foreground masks
        in OUT/foreground/<split>/<class>/).
        """
        import time

        from flawscope.cli import out_console
        from flawscope.data.synthetic.cad import write_renders
        from flawscope.data.synthetic.cad.defects import check_defects
        from flawscope.data.synthetic.cad.render import make_renderer
        from flawscope.errors import ConfigError

        if mesh is not None and part is not None:
            raise ConfigError("--mesh and --part were both given", "pass only one of them")
        kinds = check_defects([d for d in defects.split(",") if d.strip()] or [""])
        if n_good < 0 or n_defective < 0:
            raise ConfigError(
                "--n-good and --n-defective must be >= 0", "pass 0 or a larger whole number"
            )
        engine = make_renderer(renderer)  # a missing bpy fails before anything is written
        n_train, n_test_good = split_good(n_good)
        t0 = time.perf_counter()
        write_renders(
            out,
            mesh if mesh is not None else (part or "brick"),
            n_train=n_train,
            n_test_good=n_test_good,
            n_test_defective=n_defective,
            defects=kinds,
            size=size,
            seed=seed,
            renderer=engine,
            supersample=supersample,
            units=units,
            finish=finish,
        )
        seconds = time.perf_counter() - t0
        total = n_good + n_defective
        per = f" ({seconds / total:.2f} s per image)" if total else ""
        out_console.print(
            f"rendered {total} images ({n_train} train/good, {n_test_good} test/good, "
            f"{n_defective} defective) with the {renderer} renderer in {seconds:.0f} s{per} to "
            f"[bold]{out}[/]; train a model with `flawscope fit {out} --out MODEL`"
        )
