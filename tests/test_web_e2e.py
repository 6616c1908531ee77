"""The operator web page in a real headless Chromium against a real uvicorn server.

Playwright drives Debian's ``/usr/bin/chromium`` (no browser is downloaded); the server runs the
app under uvicorn in a thread, on a free loopback port. Skipped when Chromium or Playwright is
missing.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flawscope.inspector import Inspector
from flawscope.service.app import ServiceConfig, create_app
from flawscope.store import ResultStore
from tests.test_service import fit_tiny_model, png_bytes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The app under uvicorn in a daemon thread on 127.0.0.1:<free port>."""

    def __init__(self, config: ServiceConfig, inspector: Inspector) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(config, inspector)
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> Inspector:
    return Inspector.load_dir(fit_tiny_model(tmp_path_factory.mktemp("e2e-model")))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except sync_api.Error as exc:
            pytest.skip(f"Chromium does not start under Playwright: {exc}")
        yield b
        b.close()


def start(inspector: Inspector, data: Path, **settings: object) -> Server:
    config = ServiceConfig(Path("unused"), data, **settings)  # type: ignore[arg-type]
    return Server(config, inspector)


def test_upload_through_the_page_shows_the_verdict(
    inspector: Inspector, browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLAWSCOPE_TOKEN", raising=False)
    server = start(inspector, tmp_path / "data")
    good, bad = tmp_path / "good part.png", tmp_path / "scratched.png"
    good.write_bytes(png_bytes(1003))
    bad.write_bytes(png_bytes(77, defect=True))
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("#conn-dot.ok")
        assert page.inner_text("#model-id") == inspector.model_id
        page.fill("#batch-input", "LOT-E2E")
        page.set_input_files("#file-input", [str(good), str(bad)])
        page.wait_for_function(
            "document.querySelectorAll('.card[data-verdict=pass], .card[data-verdict=fail]')"
            ".length === 2",
            timeout=20_000,
        )
        cards = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#cards .card')].map("
            "c => [c.querySelector('.card-name').textContent,"
            " c.querySelector('.verdict').textContent]))"
        )
        assert cards == {"good part.png": "PASS", "scratched.png": "FAIL"}
        # the overlay next to the input was loaded
        page.wait_for_function(
            "[...document.querySelectorAll('.card .img-map')].every(i => i.naturalWidth > 0)"
        )
        assert page.inner_text("#last-verdict-text") in ("PASS", "FAIL")
        # the results table and the batch summary refresh from the server
        page.wait_for_function("document.querySelectorAll('#results-body tr.current').length === 2")
        assert page.inner_text("#stat-count") == "2" and page.inner_text("#stat-fail") == "1"
        assert "3 batches" in page.inner_text("#chart-message")
    finally:
        page.close()
        server.stop()
    with ResultStore(tmp_path / "data" / "results.db") as store:
        recs = store.records(model_id=inspector.model_id)
    assert sorted(r.verdict for r in recs) == ["fail", "pass"]
    assert {r.batch for r in recs} == {"LOT-E2E"}


def test_page_asks_for_the_token_and_sends_it(
    inspector: Inspector, browser, tmp_path: Path
) -> None:
    server = start(inspector, tmp_path / "data", token="floor-42")
    image = tmp_path / "part.png"
    image.write_bytes(png_bytes(1004))
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("#token-banner:not([hidden])")
        page.fill("#token-input", "floor-42")
        page.click("#token-form button[type=submit]")
        page.set_input_files("#file-input", str(image))
        page.wait_for_selector(".card[data-verdict=pass], .card[data-verdict=fail]")
        assert page.evaluate("localStorage.getItem('flawscope.token')") == "floor-42"
    finally:
        page.close()
        server.stop()
