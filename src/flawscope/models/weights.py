"""The weights file of a model directory: named tensors in ``weights.safetensors``.

Shared by every detector, so the file name, the CPU/contiguous conversion and the errors for a
missing or damaged file are the same everywhere.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from flawscope.errors import ModelDirError

WEIGHTS_FILE = "weights.safetensors"


def save_tensors(directory: Path, tensors: dict[str, Tensor]) -> Path:
    """Write ``tensors`` (detached, moved to CPU, contiguous) to ``directory/weights.safetensors``.

    Returns:
        The file written.
    """
    path = Path(directory) / WEIGHTS_FILE
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))
    return path


def read_tensors(directory: Path) -> dict[str, Tensor]:
    """All tensors of ``directory/weights.safetensors``, on the CPU.

    Raises:
        ModelDirError: the file is missing, or not a readable safetensors file.
    """
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise ModelDirError(f"{path} is missing", "re-run `flawscope fit` to create the model")
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise ModelDirError(
            f"{path} cannot be read ({str(exc)[:120]})",
            "the model directory is damaged; re-run `flawscope fit`",
        ) from exc


def model_id(directory: Path) -> str:
    """12-hex-digit SHA-256 of a model directory's weights and config files (``*.safetensors``,
    ``*.yaml``, in name order): identifies a trained model in results and exports."""
    h = hashlib.sha256()
    for name in sorted(
        p.name for p in directory.iterdir() if p.suffix in {".safetensors", ".yaml"}
    ):
        h.update((directory / name).read_bytes())
    return h.hexdigest()[:12]


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Write a model directory's JSON state file (``inspector.json``) in one step.

    The JSON goes to ``<path>.tmp`` first and replaces ``path`` atomically, so a crash never
    leaves a half-written state file behind.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)
