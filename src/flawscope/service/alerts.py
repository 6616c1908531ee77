"""Actions on a failed inspection: a JSON webhook, pausing a 3D printer through OctoPrint.

Every action is an :class:`Alert`: ``send(outcome)`` delivers it or raises :class:`AlertError`
(one line: problem and fix). :func:`notify` is what the folder watcher calls for every recorded
result: it sends the alerts of a ``fail`` only, and turns any failure into a one-line warning,
so an unreachable alert server never stops the watcher nor loses a result (the result is
committed to the store before :func:`notify` is called).

HTTP is plain ``urllib`` (environment proxies are honoured), each request with a short timeout
and a couple of retries with doubling back-off on connection errors, timeouts and HTTP 408 / 429 /
5xx; other HTTP errors are not retried.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from flawscope.errors import ConfigError, FlawscopeError

if TYPE_CHECKING:  # only for hints: importing the inspection stack (torch) takes seconds
    from flawscope.inspection import Outcome

log = logging.getLogger("flawscope")

TIMEOUT_S = 5.0
"""Default timeout of one HTTP request (seconds)."""

RETRIES = 2
"""Default number of retries after a failed attempt (so up to 3 attempts)."""

BACKOFF_S = 0.5
"""Default wait before the first retry (seconds); doubled before each further retry."""

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class AlertError(FlawscopeError):
    """An alert could not be delivered (server unreachable, refused, or answered an error)."""


class Alert(Protocol):
    """An action taken on a failed inspection.

    Attributes:
        name: short description for messages, e.g. ``"webhook https://host/path"``.
    """

    name: str

    def send(self, outcome: Outcome) -> None:
        """Deliver the alert for ``outcome``.

        Raises:
            AlertError: it could not be delivered.
        """
        ...


def check_url(url: str, option: str) -> str:
    """``url`` without a trailing ``/`` when it is an ``http(s)://host...`` URL.

    Raises:
        ConfigError: another scheme or no host; the message names ``option``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{option} {url!r} is not an http:// or https:// URL",
            f"write it like {option} http://host:port/path",
        )
    return url.rstrip("/")


def post_json(
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    timeout_s: float = TIMEOUT_S,
    retries: int = RETRIES,
    backoff_s: float = BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """POST ``body`` as JSON to ``url``, retrying transient failures.

    Args:
        url: an ``http(s)://`` URL.
        body: JSON-serialisable mapping.
        headers: extra request headers (``Content-Type: application/json`` is always set).
        timeout_s: timeout of each attempt (seconds).
        retries: retries after a failed attempt on connection errors, timeouts and HTTP 408,
            429 and 5xx.
        backoff_s: wait before the first retry (seconds), doubled before each next one.
        sleep: the wait function (tests pass a fake).

    Returns:
        The HTTP status of the successful (2xx) answer.

    Raises:
        urllib.error.HTTPError: the last answer was an HTTP error (status in ``.code``).
        OSError: the last attempt could not connect or timed out (``urllib.error.URLError``,
            ``TimeoutError``).
    """
    data = json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    for attempt in range(retries + 1):
        request = urllib.request.Request(url, data=data, headers=all_headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code not in _RETRY_STATUS or attempt == retries:
                raise
        except OSError:  # URLError, refused, reset, timed out (TimeoutError)
            if attempt == retries:
                raise
        sleep(backoff_s * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _reason(exc: BaseException) -> str:
    """A short one-line reason of a failed request."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}".strip()
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def result_payload(outcome: Outcome, model_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The JSON body describing one result.

    Keys: ``event`` (``"flawscope.result"``), ``verdict``, ``score`` and ``threshold`` (anomaly
    score units; 1.0 = threshold when the model normalises scores), ``path``, ``group``,
    ``batch``, ``model_id``, ``time`` (ISO 8601 UTC, when the alert was made), ``anomaly_map``
    (overlay PNG path or null), ``far`` (far from every discovered group).
    """
    when = now or datetime.now(timezone.utc)
    return {
        "event": "flawscope.result",
        "verdict": outcome.verdict,
        "score": outcome.score,
        "threshold": outcome.threshold,
        "path": str(outcome.sample.path),
        "group": outcome.group,
        "batch": outcome.sample.batch,
        "model_id": model_id,
        "time": when.isoformat(timespec="seconds"),
        "anomaly_map": str(outcome.anomaly_map) if outcome.anomaly_map else None,
        "far": outcome.far,
    }


class Webhook:
    """POST a JSON description of the result (:func:`result_payload`) to a URL.

    Any 2xx answer is success.

    Args:
        url: ``http(s)://`` URL.
        model_id: the model's id, sent in the body.
        timeout_s, retries, backoff_s: see :func:`post_json` (seconds).

    Raises:
        ConfigError: ``url`` is not an http(s) URL.
    """

    def __init__(
        self,
        url: str,
        model_id: str = "",
        timeout_s: float = TIMEOUT_S,
        retries: int = RETRIES,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        self.url = check_url(url, "--webhook")
        self.model_id = model_id
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.name = f"webhook {self.url}"

    def send(self, outcome: Outcome) -> None:
        """POST the result.

        Raises:
            AlertError: unreachable, timed out, or a non-2xx answer after the retries.
        """
        try:
            post_json(
                self.url,
                result_payload(outcome, self.model_id),
                timeout_s=self.timeout_s,
                retries=self.retries,
                backoff_s=self.backoff_s,
            )
        except OSError as exc:  # HTTPError and URLError are OSErrors
            raise AlertError(
                f"webhook {self.url} failed after {self.retries + 1} attempts ({_reason(exc)})",
                "check that the receiver is running and the --webhook URL is right",
            ) from exc


class OctoPrintPause:
    """Pause the running print job of an OctoPrint server.

    Sends OctoPrint's job command ``POST {url}/api/job`` with JSON
    ``{"command": "pause", "action": "pause"}`` and header ``X-Api-Key``; OctoPrint answers
    204 when paused (already paused stays paused) and 409 when no job is printing.

    Args:
        url: the OctoPrint base URL, e.g. ``http://octopi.local``.
        api_key: an OctoPrint API key (Settings > Application Keys, or the global API key).
        timeout_s, retries, backoff_s: see :func:`post_json` (seconds).

    Raises:
        ConfigError: ``url`` is not an http(s) URL or ``api_key`` is empty.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        timeout_s: float = TIMEOUT_S,
        retries: int = RETRIES,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        self.url = check_url(url, "--octoprint-url")
        if not api_key.strip():
            raise ConfigError(
                "--octoprint-key is empty", "pass an API key from OctoPrint's Settings > API"
            )
        self.api_key = api_key.strip()
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.name = f"OctoPrint pause {self.url}"

    def send(self, outcome: Outcome) -> None:
        """Pause the job.

        Raises:
            AlertError: unreachable, wrong key (401/403), no job printing (409), or another
                error answer.
        """
        try:
            post_json(
                f"{self.url}/api/job",
                {"command": "pause", "action": "pause"},
                {"X-Api-Key": self.api_key},
                self.timeout_s,
                self.retries,
                self.backoff_s,
            )
        except urllib.error.HTTPError as exc:
            if exc.code == 409:
                fix = "the printer is not printing (or not connected); nothing was paused"
            elif exc.code in (401, 403):
                fix = "check --octoprint-key (OctoPrint: Settings > Application Keys)"
            else:
                fix = "check --octoprint-url and OctoPrint's log"
            raise AlertError(
                f"OctoPrint at {self.url} did not pause the job ({_reason(exc)})", fix
            ) from exc
        except OSError as exc:
            raise AlertError(
                f"OctoPrint at {self.url} is unreachable after {self.retries + 1} attempts "
                f"({_reason(exc)})",
                "check that OctoPrint is running and --octoprint-url is right",
            ) from exc


def notify(alerts: Iterable[Alert], outcome: Outcome) -> int:
    """Send every alert for a ``fail`` (nothing for a pass); never raises.

    A failed alert is logged as a one-line warning on the ``flawscope`` logger.

    Returns:
        The number of alerts that could not be delivered.
    """
    if outcome.verdict != "fail":
        return 0
    failed = 0
    for alert in alerts:
        try:
            alert.send(outcome)
        except Exception as exc:  # an alert must never stop the watcher
            failed += 1
            text = str(exc) if isinstance(exc, FlawscopeError) else f"{type(exc).__name__}: {exc}"
            log.warning("alert for %s not sent: %s", outcome.sample.path, " ".join(text.split()))
    return failed
