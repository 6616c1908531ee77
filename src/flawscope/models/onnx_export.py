"""Export a model directory's detector to an ONNX file (``flawscope export DIR --format onnx``).

:func:`export_onnx` loads the model directory, builds the detector's traceable module
(:func:`flawscope.models.onnx_graphs.graph_for`) and exports it with PyTorch's
``torch.export``-based ONNX exporter (``torch.onnx.export(..., dynamo=True)``, the default since
PyTorch 2.9; it needs the ``onnxscript`` package, pure Python, no network). The batch axis is
dynamic; everything else (channels, input size, grid, bank) is fixed. The legacy TorchScript
exporter (``dynamo=False``) is deprecated and cannot export PatchCore's channel pooling
(``adaptive_avg_pool1d``) once the batch axis is dynamic.

Written to ``DIR/model.onnx`` by default. Constants are initializers inside the file; when they
exceed :data:`EXTERNAL_DATA_BYTES` (ONNX files are protobufs, limited to 2 GiB) they go to
``<file>.data`` next to it, which must travel with the file. A default PatchCore bank
(50,000 x 128 float32 = 26 MB) or PaDiM's inverse covariances (32 x 32 x 100 x 100 float32 =
41 MB) stay far below that.

The file's ``metadata_props`` (read back by :class:`flawscope.models.onnx_runtime.OnnxDetector`)
record ``flawscope.model_id`` (the model directory's id, checked when an Inspector uses the
file), the detector name, the post-processing kind, the scoring settings and the input shape.
"""

from __future__ import annotations

import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flawscope import __version__
from flawscope.errors import ConfigError, DataError
from flawscope.models.onnx_graphs import INPUT_NAME, GraphSpec, graph_for

#: the default file name inside the model directory
ONNX_FILE = "model.onnx"
#: export formats that :func:`export_model` knows
FORMATS = ("onnx",)
#: initializers above this many bytes go to an external ``<file>.data`` (protobuf limit: 2 GiB)
EXTERNAL_DATA_BYTES = 1_500_000_000
#: ONNX opset of the exported graphs (onnxruntime >= 1.16 runs it)
OPSET = 18
#: version of the metadata layout below (bumped when it changes incompatibly)
META_VERSION = "1"
#: example batch traced by the exporter (2, not 0 or 1, so the batch axis stays symbolic)
_EXAMPLE_BATCH = 2


def export_model(
    model_dir: Path | str, fmt: str = "onnx", out_path: Path | str | None = None
) -> Path:
    """Export ``model_dir`` in format ``fmt`` (only ``"onnx"``): see :func:`export_onnx`.

    Raises:
        ConfigError: unknown format; as :func:`export_onnx` otherwise.
    """
    if fmt.lower() not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    return export_onnx(model_dir, out_path)


def export_onnx(
    model_dir: Path | str,
    out_path: Path | str | None = None,
    *,
    external_data: bool | None = None,
) -> Path:
    """Write the detector of ``model_dir`` as an ONNX graph; returns the file written.

    Input ``images`` ``(N, C, S, S)`` float32 in [0, 1] (the model input, N dynamic); outputs by
    family as :mod:`flawscope.models.onnx_graphs` lists. A tiled model exports its tile
    detector (the stitching stays in Python).

    Args:
        model_dir: a model directory written by ``flawscope fit``.
        out_path: the ``.onnx`` file to write; None = ``model_dir/model.onnx``. Replaced if it
            exists (written to a temporary file first).
        external_data: keep the initializers in ``<out>.data`` next to the file; None = only
            when they exceed :data:`EXTERNAL_DATA_BYTES`.

    Raises:
        ModelDirError: ``model_dir`` is missing, not a model directory or has no weights.
        ConfigError: the detector has no ONNX export (vae), or ``out_path`` is not ``*.onnx``.
        DataError: the folder of ``out_path`` does not exist.
    """
    import onnx

    from flawscope.inspector import Inspector
    from flawscope.models.tiled import TiledDetector

    directory = Path(model_dir)
    out = directory / ONNX_FILE if out_path is None else Path(out_path)
    if out.suffix != ".onnx":
        raise ConfigError(f"output file {out} does not end in .onnx", "name it like model.onnx")
    insp = Inspector.load_dir(directory)  # ModelDirError: missing dir, files or weights
    if not out.parent.is_dir():
        raise DataError(f"folder {out.parent} does not exist", "create it or choose another --out")
    detector = insp.detector
    tiled = isinstance(detector, TiledDetector)
    spec = graph_for(detector.inner if tiled else detector)
    proto = _trace(spec)
    meta = {
        "model_id": insp.model_id,
        "model": _registered_name(detector),
        "kind": spec.kind,
        "format_version": META_VERSION,
        "flawscope_version": __version__,
        "input": json.dumps(
            {"name": INPUT_NAME, "channels": spec.channels, "size": spec.image_size}
        ),
        "outputs": json.dumps(list(spec.outputs)),
        "scoring": insp.config.scoring.model_dump_json(),
        "tiled": json.dumps(tiled),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"flawscope.{key}", str(value)
    proto.producer_name, proto.producer_version = "flawscope", __version__
    big = sum(_nbytes(t) for t in proto.graph.initializer) > EXTERNAL_DATA_BYTES
    external = big if external_data is None else external_data
    data_file = out.with_name(out.name + ".data")
    tmp = out.with_name(out.name + ".tmp")
    if data_file.exists():  # ours from an earlier export; onnx would append to it
        data_file.unlink()
    onnx.save_model(
        proto,
        str(tmp),
        save_as_external_data=external,
        all_tensors_to_one_file=True,
        location=data_file.name,
        size_threshold=1024,
    )
    tmp.replace(out)
    return out


def _registered_name(detector: Any) -> str:
    """The registered name of a (possibly tiled) detector."""
    return str(getattr(detector, "name", type(detector).__name__))


def _trace(spec: GraphSpec) -> Any:
    """Export ``spec.module`` to an in-memory ``onnx.ModelProto`` (batch axis dynamic)."""
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(
        _EXAMPLE_BATCH, spec.channels, spec.image_size, spec.image_size, generator=gen
    )
    batch = torch.export.Dim("batch", min=1, max=2**20)
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            spec.module,
            (example,),
            None,
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=list(spec.outputs),
            dynamic_shapes=({0: batch},),
            opset_version=OPSET,
            external_data=False,
            optimize=True,
            verbose=False,
        )
    return program.model_proto


def _nbytes(tensor: Any) -> int:
    """Bytes of one ``onnx.TensorProto`` initializer (raw or typed data)."""
    import onnx

    if tensor.HasField("raw_data") or tensor.raw_data:
        return len(tensor.raw_data)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    return int(np.prod(tensor.dims, dtype=np.int64)) * np.dtype(dtype).itemsize


@contextmanager
def _quiet():  # noqa: ANN202
    """Silence the exporter's progress lines, deprecation warnings and optional-package notes."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
