"""The ``flawscope export`` command: write a model directory's detector as an ONNX file.

Imports inside the command are lazy, so ``flawscope --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``export`` to the CLI app."""

    @app.command("export")
    def export(
        model_dir: Annotated[
            Path, typer.Argument(help="Model directory written by `flawscope fit`.")
        ],
        fmt: Annotated[
            str, typer.Option("--format", "-f", help="Export format (only onnx).")
        ] = "onnx",
        out: Annotated[
            Path | None,
            typer.Option(
                "--out",
                "-o",
                help="File to write (default: MODEL_DIR/model.onnx, which "
                "load_onnx_inspector(MODEL_DIR) picks up).",
            ),
        ] = None,
        check: Annotated[
            bool,
            typer.Option(
                "--check/--no-check",
                help="Score 4 random images with PyTorch and onnxruntime and print the largest "
                "differences.",
            ),
        ] = True,
    ) -> None:
        """Export a model for onnxruntime: the network, the scoring math and its constants."""
        from flawscope.cli import out_console
        from flawscope.models.onnx_check import compare_runtimes
        from flawscope.models.onnx_export import export_model

        path = export_model(model_dir, fmt, out)
        data = path.with_name(path.name + ".data")
        size = path.stat().st_size + (data.stat().st_size if data.is_file() else 0)
        extra = f" + {data.name}" if data.is_file() else ""
        out_console.print(f"wrote [bold]{path}[/]{extra} ({size / 1e6:.1f} MB)")
        if check:
            diff = compare_runtimes(model_dir, path)
            out_console.print(
                f"check on {diff['images']} random images: max |score difference| "
                f"{diff['max_score_diff']:.3g} (scores up to {diff['max_score']:.3g}), "
                f"max |map difference| {diff['max_map_diff']:.3g}"
            )
