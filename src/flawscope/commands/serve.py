"""The `flawscope serve` command: the inspection service (HTTP API + operator web page)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from flawscope.errors import FlawscopeError

log = logging.getLogger("flawscope")

_LOOPBACK = ("127.", "localhost", "::1")


def register(app: typer.Typer) -> None:
    """Add `serve` to the CLI app."""

    @app.command()
    def serve(
        model_dir: Annotated[Path, typer.Argument(help="Model directory written by `fit`.")],
        db: Annotated[
            str | None,
            typer.Option(
                help="Results store: a SQLite file path or a postgresql:// URL "
                "(default: DATA/results.db)."
            ),
        ] = None,
        host: Annotated[
            str, typer.Option(help="Address to listen on (0.0.0.0 for every network).")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port to listen on.", min=1, max=65535)] = 8000,
        data: Annotated[
            Path,
            typer.Option(
                help="Folder for the uploaded images, anomaly-map overlays and results.csv."
            ),
        ] = Path("flawscope-serve"),
        token: Annotated[
            str | None,
            typer.Option(
                envvar="FLAWSCOPE_TOKEN",
                show_envvar=True,
                help="API token: every endpoint but /health, the web page and /docs then needs "
                "'Authorization: Bearer TOKEN'.",
            ),
        ] = None,
        max_upload_mb: Annotated[
            float, typer.Option(help="Largest image file accepted, in MiB (413 above).")
        ] = 20.0,
        max_pixels: Annotated[
            float,
            typer.Option(
                help="Largest image accepted, width x height pixels (413 above; guards against "
                "decompression bombs). Pillow's own limit of about 89e6 applies on top."
            ),
        ] = 50e6,
        runtime: Annotated[
            str,
            typer.Option(
                help="Inference engine: torch, or onnx (onnxruntime on the model's model.onnx, "
                "written by `flawscope export`)."
            ),
        ] = "torch",
    ) -> None:
        """Serve a model over HTTP: POST /inspect, results, batches, SPC and a web page at /.

        Every result is committed to the results store before the answer is sent. API
        documentation (works offline) at /docs. Stop with Ctrl+C.
        """
        import uvicorn

        from flawscope.service.app import ServiceConfig, create_app

        config = ServiceConfig(
            model_dir=model_dir,
            data=data,
            db=db,
            token=token,
            max_upload_mb=max_upload_mb,
            max_pixels=int(max_pixels),
        )
        if runtime not in ("torch", "onnx"):
            raise FlawscopeError(f"unknown --runtime {runtime!r}", "use torch or onnx")
        inspector = None
        if runtime == "onnx":
            from flawscope.models.onnx_runtime import load_onnx_inspector

            inspector = load_onnx_inspector(model_dir)
        web = create_app(config, inspector)
        svc = web.state.service
        if config.resolved_token() is None and not host.startswith(_LOOPBACK):
            log.warning(
                "serving on %s without an API token: anyone on the network can inspect and read "
                "results (set --token or FLAWSCOPE_TOKEN)",
                host,
            )
        shown = f"[{host}]" if ":" in host else host
        log.info(
            "model %s (%s) at http://%s:%d/ (API docs /docs); data in %s, results in %s",
            svc.model_id,
            svc.inspector.config.model.name,
            shown,
            port,
            data.resolve(),
            svc.store.url,
        )
        uvicorn.run(web, host=host, port=port, log_level="info", access_log=False)
