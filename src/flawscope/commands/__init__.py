"""CLI commands that live beside their feature (each module's ``register(app)`` adds one command).

Imports inside the commands are lazy, so ``flawscope --help`` stays fast.
"""

from __future__ import annotations

import typer


def register_all(app: typer.Typer) -> None:
    """Add the ``serve``, ``watch``, ``export``, ``synth`` and ``pointcloud`` commands."""
    from flawscope.commands import export, pointcloud, serve, synth, watch

    for module in (serve, watch, export, synth, pointcloud):
        module.register(app)
