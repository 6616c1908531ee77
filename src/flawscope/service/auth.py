"""The optional API token: ``Authorization: Bearer TOKEN`` on every request but a few public ones.

Public (no token needed): ``/health``, the operator web page (``/``, ``/static/...``,
``/favicon.ico``) and the API documentation (``/docs``, its assets, ``/openapi.json``): a
browser cannot add a header when it opens a page, and none of these carries inspection data.
The web page asks for the token and sends it with its API calls.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC_PATHS = frozenset({"/", "/health", "/docs", "/openapi.json", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/", "/docs/")
ENV_VAR = "FLAWSCOPE_TOKEN"


def is_public(path: str) -> bool:
    """True for the paths that need no token."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class TokenMiddleware:
    """ASGI middleware answering 401 (JSON error) to requests without the right bearer token.

    Args:
        app: the wrapped ASGI app.
        token: the token clients must send (compared in constant time); must not be empty.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("TokenMiddleware needs a non-empty token")
        self.app = app
        self._token = token.encode()

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    given.strip(), self._token
                )
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]) or self._authorised(scope):
            await self.app(scope, receive, send)
            return
        has_header = any(name == b"authorization" for name, _ in scope.get("headers", []))
        problem = "wrong API token" if has_header else "this server needs an API token"
        body = json.dumps(
            {
                "error": f"{problem} -- send the header 'Authorization: Bearer TOKEN' "
                f"with the token the server was started with (--token or {ENV_VAR})",
                "status": 401,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="flawscope"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
