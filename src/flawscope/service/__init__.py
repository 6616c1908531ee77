"""Running a fitted model in production: the inspection service and the folder watcher.

``flawscope serve MODEL_DIR`` runs :func:`flawscope.service.app.create_app` under uvicorn: an HTTP
API and an operator web page. Its modules: ``app`` (routes), ``core`` (uploads to verdicts, no
HTTP), ``uploads`` (request bodies, image checks, saving), ``auth`` (the optional bearer token),
``errors`` (one-line JSON errors), ``docs`` (Swagger UI served without a CDN), ``charts``
(control-chart PNGs) and ``static/`` (the web page).

``flawscope watch`` inspects new images in a folder (``watch``) and sends alerts (``alerts``).
"""
