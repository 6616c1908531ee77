"""Alerts on fails: webhook and OctoPrint pause, checked against a local stub HTTP server."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flawscope.data.dataset import Sample
from flawscope.errors import ConfigError
from flawscope.inspection import Outcome
from flawscope.service.alerts import AlertError, OctoPrintPause, Webhook, notify


class StubServer:
    """An HTTP server on a free loopback port that records every request.

    Attributes:
        url: ``http://127.0.0.1:PORT``.
        calls: one dict per request: ``method``, ``path``, ``headers`` (lower-case names),
            ``json`` (the decoded body, or None).
        statuses: statuses to answer, in order; when used up, 204 (no body).
        delay_s: seconds to wait before answering (for timeouts).
    """

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.calls.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "json": json.loads(body) if body else None,
                    }
                )
                time.sleep(stub.delay_s)
                status = stub.statuses.pop(0) if stub.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:  # keep the test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def outcome(verdict: str = "fail", name: str = "part7.png") -> Outcome:
    return Outcome(
        Sample(Path("/line/3") / name, batch="lot-42"),
        score=3.5 if verdict == "fail" else 0.4,
        threshold=2.5,
        verdict=verdict,
        group="view1",
        anomaly_map=Path("/out/anomaly_maps/3") / name,
    )


def test_webhook_posts_the_result_as_json() -> None:
    with StubServer() as stub:
        Webhook(stub.url + "/hooks/qa", model_id="abc123").send(outcome())
    assert len(stub.calls) == 1
    call = stub.calls[0]
    assert call["method"] == "POST" and call["path"] == "/hooks/qa"
    assert call["headers"]["content-type"] == "application/json"
    body = call["json"]
    assert body["verdict"] == "fail" and body["score"] == 3.5 and body["threshold"] == 2.5
    assert body["path"] == "/line/3/part7.png" and body["group"] == "view1"
    assert body["batch"] == "lot-42" and body["model_id"] == "abc123"
    assert body["anomaly_map"] == "/out/anomaly_maps/3/part7.png"
    assert body["time"].endswith("+00:00")  # ISO 8601, UTC


def test_octoprint_pause_is_the_documented_job_command() -> None:
    with StubServer() as stub:
        OctoPrintPause(stub.url + "/", " SECRETKEY ").send(outcome())
    assert len(stub.calls) == 1
    call = stub.calls[0]
    assert call["method"] == "POST" and call["path"] == "/api/job"
    assert call["headers"]["x-api-key"] == "SECRETKEY"
    assert call["headers"]["content-type"] == "application/json"
    assert call["json"] == {"command": "pause", "action": "pause"}


def test_transient_errors_are_retried_then_succeed() -> None:
    with StubServer([503, 502]) as stub:
        Webhook(stub.url, retries=2, backoff_s=0.01).send(outcome())
    assert len(stub.calls) == 3


def test_retries_are_bounded() -> None:
    with StubServer([500, 500, 500, 500]) as stub, pytest.raises(AlertError, match="HTTP 500"):
        Webhook(stub.url, retries=1, backoff_s=0.01).send(outcome())
    assert len(stub.calls) == 2


def test_octoprint_refusals_are_not_retried_and_say_why() -> None:
    with StubServer([409]) as stub, pytest.raises(AlertError) as err:
        OctoPrintPause(stub.url, "k", backoff_s=0.01).send(outcome())
    assert len(stub.calls) == 1
    message = str(err.value)
    assert "\n" not in message and "HTTP 409" in message and "not printing" in message
    with StubServer([403]) as stub, pytest.raises(AlertError, match="--octoprint-key"):
        OctoPrintPause(stub.url, "wrong", backoff_s=0.01).send(outcome())


def test_unreachable_and_slow_servers_raise_one_line_errors() -> None:
    url = closed_port_url()
    with pytest.raises(AlertError) as err:
        Webhook(url, retries=1, backoff_s=0.01).send(outcome())
    assert "\n" not in str(err.value) and url in str(err.value) and "2 attempts" in str(err.value)
    with pytest.raises(AlertError, match="unreachable"):
        OctoPrintPause(url, "k", retries=0).send(outcome())
    with StubServer(delay_s=1.0) as stub:
        t0 = time.monotonic()
        with pytest.raises(AlertError, match="timed out"):
            Webhook(stub.url, timeout_s=0.2, retries=0).send(outcome())
        assert time.monotonic() - t0 < 0.9


def test_notify_alerts_fails_only_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        name = "broken"

        def send(self, o: Outcome) -> None:
            raise RuntimeError("boom")

    with StubServer() as stub:
        hook = Webhook(stub.url, model_id="m")
        assert notify([hook], outcome("pass")) == 0
        assert stub.calls == []
        down = Webhook(closed_port_url(), retries=0)
        with caplog.at_level(logging.WARNING, logger="flawscope"):
            assert notify([down, Broken(), hook], outcome("fail")) == 2
    assert len(stub.calls) == 1  # the working alert was still sent
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert "part7.png" in warnings[0] and "unreachable" not in warnings[0]
    assert "webhook" in warnings[0] and "RuntimeError: boom" in warnings[1]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Webhook("ftp://host/hook"),
        lambda: Webhook("localhost:8080/hook"),
        lambda: OctoPrintPause("octopi.local", "k"),
        lambda: OctoPrintPause("http://octopi.local", "  "),
    ],
)
def test_bad_alert_settings_are_config_errors(make: Any) -> None:
    with pytest.raises(ConfigError) as err:
        make()
    assert " -- " in str(err.value) and "\n" not in str(err.value)
