"""Swagger UI at ``/docs`` without a CDN: its JavaScript and CSS are served by the app itself.

FastAPI's default docs page loads Swagger UI from a CDN, which a factory network often cannot
reach. The ``swagger-ui-py`` package ships the Swagger UI 5 distribution (which reads the OpenAPI
3.1 schema FastAPI writes); its files are mounted at ``/docs/assets`` and FastAPI's page template
points there. The schema stays at ``/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def swagger_dir() -> Path | None:
    """The folder of the Swagger UI files shipped by ``swagger-ui-py``, or None if missing."""
    try:
        import swagger_ui
    except ImportError:
        return None
    folder = Path(swagger_ui.__file__).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def add_docs(app: FastAPI, title: str) -> bool:
    """Serve Swagger UI at ``/docs`` from local files; False (no ``/docs``) when they are missing.

    Create ``app`` with ``docs_url=None`` and ``redoc_url=None`` so FastAPI's CDN pages are off.
    """
    folder = swagger_dir()
    if folder is None:
        return False
    app.mount(ASSETS, StaticFiles(directory=folder), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    return True
