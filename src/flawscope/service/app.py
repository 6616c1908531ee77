"""The HTTP API and operator web page of ``flawscope serve`` (FastAPI).

Endpoints (JSON unless noted; every error is ``{"error": "<problem> -- <fix>", "status": code}``):

- ``POST /inspect``: one image (multipart field ``file``, or the raw bytes with an ``image/*``
  content type; optional ``batch`` and ``group`` as query or form fields) -> its verdict, score,
  threshold, ..., and ``anomaly_map_url``. The result is in the store before the answer is sent.
- ``GET /results``: this model's results, newest first, paged (``limit``, ``offset``) and
  filtered (``batch``, ``verdict``, ``since``, ``until``) -> ``{items, total, limit, offset}``.
- ``GET /results/{id}``, ``GET /results/{id}/anomaly_map.png`` (PNG): one result, its overlay.
- ``GET /batches``: per batch: count, fails, fail rate, mean score, first and last time.
- ``GET /spc``: statistical process control of the batches (409 with fewer than 3 batches).
- ``GET /spc/chart.png?statistic=mean_score|fail_rate|nqi`` (PNG): a control chart.
- ``GET /health``: model id and name, flawscope version, store URL (password masked), uptime.
- ``GET /``: the operator web page; ``GET /docs``: Swagger UI (served locally, no CDN);
  ``GET /openapi.json``: the OpenAPI schema.

With a token (``--token`` / ``FLAWSCOPE_TOKEN``), every endpoint except ``/health``, the web page
and the docs needs ``Authorization: Bearer TOKEN`` (see :mod:`flawscope.service.auth`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

from flawscope import __version__
from flawscope.errors import ConfigError
from flawscope.inspector import Inspector
from flawscope.service.auth import ENV_VAR, TokenMiddleware
from flawscope.service.core import InspectionService, Limits, batch_json, record_json
from flawscope.service.docs import add_docs
from flawscope.service.errors import ServiceError, install_error_handlers
from flawscope.service.uploads import read_upload
from flawscope.store import ResultStore

log = logging.getLogger("flawscope")

STATIC = Path(__file__).parent / "static"
DEFAULT_DATA = Path("flawscope-serve")
TITLE = "flawscope inspection service"


@dataclass(frozen=True)
class ServiceConfig:
    """Settings of ``flawscope serve``.

    Attributes:
        model_dir: the model directory written by ``flawscope fit``.
        data: folder for uploads, overlays, results.csv and (by default) results.db.
        db: results store (file path or URL); None = ``<data>/results.db``.
        token: API token; None = ``FLAWSCOPE_TOKEN`` from the environment, or no token.
        max_upload_mb: largest image file accepted, MiB (> 0).
        max_pixels: largest image accepted, width x height pixels (> 0).
    """

    model_dir: Path
    data: Path = DEFAULT_DATA
    db: str | None = None
    token: str | None = None
    max_upload_mb: float = 20.0
    max_pixels: int = 50_000_000

    def resolved_token(self) -> str | None:
        """The token in force: ``token``, else ``$FLAWSCOPE_TOKEN``; None when neither is set."""
        token = self.token if self.token is not None else os.environ.get(ENV_VAR)
        return (token.strip() or None) if token else None

    def limits(self) -> Limits:
        """The request limits.

        Raises:
            ConfigError: ``max_upload_mb`` or ``max_pixels`` not > 0.
        """
        if not self.max_upload_mb > 0:
            raise ConfigError(
                f"--max-upload-mb must be > 0, got {self.max_upload_mb}", "e.g. --max-upload-mb 20"
            )
        if not self.max_pixels > 0:
            raise ConfigError(
                f"--max-pixels must be > 0, got {self.max_pixels}", "e.g. --max-pixels 50e6"
            )
        return Limits(int(self.max_upload_mb * 2**20), int(self.max_pixels))


async def service(request: Request) -> InspectionService:
    """The app's :class:`InspectionService` (a FastAPI dependency; async: no worker thread)."""
    return request.app.state.service


Svc = Annotated[InspectionService, Depends(service)]
api = APIRouter(dependencies=[Depends(HTTPBearer(auto_error=False))])  # documents the token
public = APIRouter()
_PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "batch": {"type": "string"},
                        "group": {"type": "string"},
                    },
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@api.post("/inspect", openapi_extra=_UPLOAD_BODY, tags=["inspection"], summary="Inspect one image")
async def inspect(
    request: Request,
    svc: Svc,
    batch: Annotated[str | None, Query(description="Production batch (lot) name.")] = None,
    group: Annotated[str | None, Query(description="Group (view) of the image.")] = None,
    filename: Annotated[
        str | None, Query(description="File name of a raw-body upload (for its saved name).")
    ] = None,
) -> dict[str, Any]:
    """Inspect one image: verdict (pass/fail), score vs threshold, overlay URL.

    Errors: 400 empty body, 413 file above --max-upload-mb or image above --max-pixels, 415 not
    an image (or an unsupported content type), 422 missing field 'file' or undecodable image.
    """
    upload = await read_upload(request, svc.limits.max_upload_bytes, filename or "")
    form_batch, form_group = upload.fields.get("batch"), upload.fields.get("group")
    return await run_in_threadpool(
        svc.inspect,
        upload,
        form_batch if form_batch is not None else (batch or ""),
        form_group if form_group is not None else (group or ""),
    )


@api.get("/results", tags=["results"], summary="List results (paged, filtered)")
def results(
    svc: Svc,
    limit: Annotated[int, Query(ge=0, le=1000, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, description="Results to skip (newest first).")] = 0,
    batch: Annotated[str | None, Query(description="Only this batch.")] = None,
    verdict: Annotated[Literal["pass", "fail"] | None, Query()] = None,
    since: Annotated[
        datetime | None, Query(description="ISO 8601 time, inclusive (naive = UTC).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="ISO 8601 time, exclusive (naive = UTC).")
    ] = None,
) -> dict[str, Any]:
    """This model's results, newest first: ``{items, total, limit, offset}``."""
    records, total = svc.store.query(
        svc.model_id, batch, verdict, since, until, limit=limit, offset=offset
    )
    return {
        "items": [record_json(r) for r in records],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@api.get("/results/{record_id}", tags=["results"], summary="One result")
def result(svc: Svc, record_id: int) -> dict[str, Any]:
    """One stored result."""
    rec = svc.store.get(record_id)
    if rec is None:
        raise ServiceError(404, f"no result with id {record_id}", "list them with /results")
    return record_json(rec)


@api.get(
    "/results/{record_id}/anomaly_map.png",
    response_class=FileResponse,
    responses=_PNG,
    tags=["results"],
    summary="Anomaly-map overlay (PNG)",
)
def anomaly_map(svc: Svc, record_id: int) -> FileResponse:
    """The anomaly-map overlay (PNG) of a stored result."""
    return FileResponse(svc.anomaly_map(record_id), media_type="image/png")


@api.get("/batches", tags=["results"], summary="Per-batch counts, fail rate, mean score")
def batches(svc: Svc) -> dict[str, Any]:
    """Per batch of this model: count, fails, fail rate, mean score, first and last time."""
    return {
        "model_id": svc.model_id,
        "batches": [batch_json(b) for b in svc.store.batch_summaries(svc.model_id)],
    }


@api.get("/spc", tags=["spc"], summary="Statistical process control of the batches")
def spc(
    svc: Svc,
    reference: Annotated[
        list[str] | None,
        Query(description="In-control batch for the limits (repeatable; default: first half)."),
    ] = None,
    quantity: Literal["score", "anomalous_fraction"] = "score",
) -> dict[str, Any]:
    """SPC of this model's batches: per-batch table, control limits, out-of-control batches.

    409 when fewer than 3 batches have results.
    """
    return {"model_id": svc.model_id, **svc.spc(reference, quantity).to_dict()}


@api.get(
    "/spc/chart.png",
    response_class=Response,
    responses=_PNG,
    tags=["spc"],
    summary="Control chart (PNG)",
)
def spc_chart(svc: Svc, statistic: str = "mean_score") -> Response:
    """A control chart (PNG, 1000 x 440 px) of mean_score, fail_rate or nqi per batch."""
    png = svc.chart_png(statistic)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@public.get("/health", tags=["service"], summary="Model, version, store, uptime (no token)")
async def health(svc: Svc, request: Request) -> dict[str, Any]:
    """Model id and name, version, store URL (password masked), uptime; needs no token.

    Runs on the event loop (no I/O), so it answers even while every worker thread waits for
    the inspection lock.
    """
    return {**svc.health(), "auth_required": bool(request.app.state.token_required)}


def create_app(config: ServiceConfig, inspector: Inspector | None = None) -> FastAPI:
    """The service app for a model; the model and the store are opened here, before serving.

    Args:
        config: the settings.
        inspector: an already loaded model (else loaded from ``config.model_dir``).

    Raises:
        ModelDirError: the model directory cannot be loaded.
        StoreError: the results store cannot be opened.
        ConfigError: a limit is not > 0.
    """
    limits = config.limits()
    insp = inspector if inspector is not None else Inspector.load_dir(config.model_dir)
    data = Path(config.data)
    data.mkdir(parents=True, exist_ok=True)
    store = ResultStore(config.db if config.db else data / "results.db")
    svc = InspectionService(insp, store, data, limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        title=TITLE,
        version=__version__,
        description="Inspect images with a fitted flawscope model; results, batches and SPC.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = svc
    token = config.resolved_token()
    app.state.token_required = token is not None
    install_error_handlers(app)
    app.include_router(api)
    app.include_router(public)
    add_docs(app, TITLE)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    if token is not None:
        app.add_middleware(TokenMiddleware, token=token)
    return app
