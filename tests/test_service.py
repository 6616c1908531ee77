"""The inspection service (flawscope serve): endpoints, limits, token, docs, web page files.

One tiny PatchCore model (64 px, fitted on 20 generated noise images in a few seconds) serves
every test; each test gets its own data folder and results store.
"""

from __future__ import annotations

import io
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flawscope.config import InspectorConfig
from flawscope.inspector import Inspector
from flawscope.service.app import STATIC, ServiceConfig, create_app
from flawscope.store import ResultStore, file_hash

with warnings.catch_warnings():  # newer starlette asks for httpx2 instead of httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SIZE = 64


def png_bytes(seed: int, defect: bool = False, size: int = SIZE) -> bytes:
    """A grey-noise 'good part' as PNG bytes; ``defect`` paints a bright square on it."""
    rng = np.random.default_rng(seed)
    img = rng.normal(128, 10, (size, size, 3)).clip(0, 255).astype(np.uint8)
    if defect:
        img[size // 3 : size // 3 + size // 4, size // 3 : size // 3 + size // 4] = 250
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def fit_tiny_model(folder: Path) -> Path:
    """Fit and save a 64 px PatchCore on 20 generated good images; returns the model folder."""
    good = folder / "good"
    good.mkdir(parents=True)
    for i in range(20):
        (good / f"{i:02d}.png").write_bytes(png_bytes(1000 + i))
    config = InspectorConfig.model_validate(
        {
            "model": {"name": "patchcore", "image_size": SIZE, "params": {"feature_dim": 8}},
            "training": {"progress": False},
        }
    )
    return Inspector.fit(good, config).save(folder / "model")


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk claiming ``width`` x ``height`` pixels, then IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_tiny_model(tmp_path_factory.mktemp("service-model"))


@pytest.fixture(scope="module")
def inspector(model_dir: Path) -> Inspector:
    return Inspector.load_dir(model_dir)


def make_client(
    inspector: Inspector, model_dir: Path, data: Path, **settings: object
) -> TestClient:
    """A TestClient of a fresh app on ``data`` (the model loaded once per module)."""
    config = ServiceConfig(model_dir=model_dir, data=data, **settings)  # type: ignore[arg-type]
    return TestClient(create_app(config, inspector))


@pytest.fixture
def client(
    inspector: Inspector, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.delenv("FLAWSCOPE_TOKEN", raising=False)
    with make_client(inspector, model_dir, tmp_path / "data") as c:
        yield c


def post(client: TestClient, data: bytes, name: str = "part.png", **form: str):  # noqa: ANN201
    return client.post("/inspect", files={"file": (name, data, "image/png")}, data=form)


def assert_error(response, status: int, *words: str) -> dict:  # noqa: ANN001
    """The response is a one-line JSON error with that status, mentioning ``words``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status
    assert "\n" not in body["error"] and " -- " in body["error"]
    for word in words:
        assert word in body["error"], body["error"]
    return body


# ------------------------------------------------------------------------------------ inspect


def test_inspect_answers_after_the_store_has_the_row(
    client: TestClient, tmp_path: Path, inspector: Inspector
) -> None:
    data = png_bytes(1, defect=True)
    r = post(client, data, "camera 1/lot-7 part.png", batch="LOT-7")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "fail"
    assert body["score"] > body["threshold"] == pytest.approx(inspector.threshold)
    assert body["batch"] == "LOT-7" and body["group"] == "" and body["far"] is False
    assert body["model_id"] == inspector.model_id and body["stored"] is False
    assert 0 < body["anomalous_fraction"] <= 1
    assert datetime.fromisoformat(body["time"]).tzinfo is not None
    assert body["anomaly_map_url"] == f"/results/{body['id']}/anomaly_map.png"
    # committed before the answer: a second connection to the database sees it
    with ResultStore(tmp_path / "data" / "results.db") as store:
        rec = store.find(body["content_hash"], inspector.model_id, "LOT-7")
    assert rec is not None and rec.id == body["id"] and rec.verdict == "fail"
    # the upload is kept under a content-hash name with its extension; results.csv has the row
    saved = tmp_path / "data" / "uploads" / inspector.model_id / body["name"]
    assert body["name"] == f"lot-7_part-{body['content_hash'][:16]}.png"
    assert saved.read_bytes() == data and file_hash(saved) == body["content_hash"]
    csv_text = (tmp_path / "data" / "results.csv").read_text()
    assert body["name"] in csv_text and "LOT-7" in csv_text


def test_good_image_passes(client: TestClient) -> None:
    body = post(client, png_bytes(1001), batch="A").json()  # a training image
    assert body["verdict"] == "pass" and body["score"] <= body["threshold"]


def test_same_bytes_again_is_served_from_the_store(client: TestClient, tmp_path: Path) -> None:
    data = png_bytes(2)
    first = post(client, data, batch="A").json()
    again = post(client, data, "other-name.png", batch="A").json()
    assert again["stored"] is True and first["stored"] is False
    assert again["id"] == first["id"] and again["score"] == first["score"]
    assert again["anomaly_map_url"] == first["anomaly_map_url"]
    # same content in another batch: not scored again, but recorded in that batch too
    other = post(client, data, batch="B").json()
    assert other["stored"] is True and other["id"] != first["id"] and other["batch"] == "B"
    assert other["score"] == first["score"]
    with ResultStore(tmp_path / "data" / "results.db") as store:
        assert len(store.records()) == 2
    assert len((tmp_path / "data" / "results.csv").read_text().strip().splitlines()) == 1 + 3


def test_raw_body_upload_with_query_batch_and_group(client: TestClient) -> None:
    r = client.post(
        "/inspect?batch=L9&group=top&filename=raw.png",
        content=png_bytes(3),
        headers={"content-type": "image/png"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["batch"], body["group"], body["filename"]) == ("L9", "top", "raw.png")
    assert body["name"].startswith("raw-") and body["name"].endswith(".png")


def test_form_fields_win_over_query(client: TestClient) -> None:
    r = client.post(
        "/inspect?batch=from-query",
        files={"file": ("a.png", png_bytes(4), "image/png")},
        data={"batch": "from-form"},
    )
    assert r.json()["batch"] == "from-form"


def test_jpeg_keeps_its_extension(client: TestClient) -> None:
    buf = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(5))).convert("RGB").save(buf, format="JPEG")
    body = post(client, buf.getvalue(), "shot.JPEG").json()
    assert body["name"].endswith(".jpeg") and body["verdict"] in ("pass", "fail")


def test_anomaly_map_is_a_png(client: TestClient) -> None:
    body = post(client, png_bytes(6, defect=True), batch="A").json()
    r = client.get(body["anomaly_map_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "PNG" and img.size == (SIZE, SIZE)
    assert_error(client.get("/results/9999/anomaly_map.png"), 404, "9999")
    assert client.get(f"/results/{body['id']}").json()["verdict"] == "fail"
    assert_error(client.get("/results/9999"), 404, "no result")


def test_concurrent_uploads_are_all_recorded(client: TestClient, tmp_path: Path) -> None:
    answers: list[int] = []

    def worker(k: int) -> None:
        for i in range(3):
            answers.append(post(client, png_bytes(100 + 10 * k + i), batch=f"C{k}").status_code)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 12
    assert client.get("/results?limit=0").json()["total"] == 12


# ------------------------------------------------------------------------------------ queries


def test_results_paging_and_filters(client: TestClient) -> None:
    for i in range(5):
        post(client, png_bytes(200 + i, defect=i == 4), batch="P" if i < 3 else "Q")
    page = client.get("/results", params={"limit": 2}).json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["limit"] == 2
    ids = [it["id"] for it in page["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    rest = client.get("/results", params={"limit": 10, "offset": 2}).json()
    assert len(rest["items"]) == 3 and not set(ids) & {it["id"] for it in rest["items"]}
    assert client.get("/results", params={"batch": "Q"}).json()["total"] == 2
    fails = client.get("/results", params={"verdict": "fail"}).json()
    assert fails["total"] == 1 and fails["items"][0]["batch"] == "Q"
    now = datetime.now(timezone.utc)
    later = (now + timedelta(hours=1)).isoformat()
    earlier = (now - timedelta(hours=1)).isoformat()
    assert client.get("/results", params={"since": later}).json()["total"] == 0
    assert client.get("/results", params={"until": earlier}).json()["total"] == 0
    assert client.get("/results", params={"since": earlier, "until": later}).json()["total"] == 5
    assert_error(client.get("/results", params={"verdict": "maybe"}), 422, "verdict")
    assert_error(client.get("/results", params={"limit": -1}), 422, "limit")
    assert_error(client.get("/results", params={"since": "yesterday"}), 422, "since")


def test_batches(client: TestClient) -> None:
    for i in range(3):
        post(client, png_bytes(300 + i), batch="B1")
    post(client, png_bytes(310, defect=True), batch="B2")
    rows = client.get("/batches").json()["batches"]
    assert [b["batch"] for b in rows] == ["B1", "B2"]
    assert (rows[0]["count"], rows[0]["fails"], rows[0]["fail_rate"]) == (3, 0, 0.0)
    assert (rows[1]["count"], rows[1]["fails"], rows[1]["fail_rate"]) == (1, 1, 1.0)
    assert rows[1]["mean_score"] > rows[0]["mean_score"]


def test_spc_needs_three_batches(client: TestClient) -> None:
    for k, b in enumerate(("S1", "S2")):
        post(client, png_bytes(390 + k), batch=b)
    post(client, png_bytes(399))  # no batch: never charted
    body = assert_error(client.get("/spc"), 409, "3 batches")
    assert body["batches"] == 2 and body["needed"] == 3
    assert_error(client.get("/spc/chart.png"), 409, "3 batches")
    for k, b in enumerate(("S3", "S4")):
        post(client, png_bytes(400 + k, defect=b == "S4"), batch=b)
    spc = client.get("/spc")
    assert spc.status_code == 200, spc.text
    result = spc.json()
    assert [b["name"] for b in result["batches"]] == ["S1", "S2", "S3", "S4"]
    assert set(result["charts"]) == {"mean_score", "fail_rate", "nqi"}
    chart = client.get("/spc/chart.png", params={"statistic": "fail_rate"})
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(chart.content)).size == (1000, 440)
    assert client.get("/spc/chart.png", params={"statistic": "fail_rate"}).content == chart.content
    assert_error(client.get("/spc/chart.png", params={"statistic": "median"}), 422, "median")
    assert_error(client.get("/spc", params={"reference": "nope"}), 422, "nope")


def test_health(client: TestClient, inspector: Inspector, tmp_path: Path) -> None:
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model_id"] == inspector.model_id
    assert h["model_name"] == "patchcore" and h["version"]
    assert h["store"].startswith("sqlite:///") and h["store"].endswith("results.db")
    assert h["uptime_s"] >= 0 and h["auth_required"] is False


def test_health_masks_the_store_password(
    inspector: Inspector, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FakeStore:
        url = "postgresql+psycopg://line:***@db:5432/results"

        def close(self) -> None:
            pass

    monkeypatch.setattr("flawscope.service.app.ResultStore", lambda db: FakeStore())
    config = ServiceConfig(model_dir, tmp_path, db="postgresql://line:secret@db/results")
    h = TestClient(create_app(config, inspector)).get("/health").json()
    assert "secret" not in str(h) and h["store"] == FakeStore.url


# ------------------------------------------------------------------------------------ bad input


def test_empty_body(client: TestClient) -> None:
    assert_error(client.post("/inspect", content=b"", headers={"content-type": "image/png"}), 400)
    assert_error(post(client, b""), 400, "empty")


def test_not_an_image(client: TestClient) -> None:
    assert_error(post(client, b"hello, not a picture", "notes.png"), 415, "not an image")
    raw = client.post("/inspect", content=b"%PDF-1.4", headers={"content-type": "image/png"})
    assert_error(raw, 415)
    text = client.post("/inspect", content=b"hi", headers={"content-type": "text/plain"})
    assert_error(text, 415, "content type")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    assert_error(post(client, buf.getvalue(), "a.gif"), 415, "GIF")


def test_missing_file_field(client: TestClient) -> None:
    r = client.post("/inspect", files={"image": ("a.png", png_bytes(7), "image/png")})
    assert_error(r, 422, "'file'")
    assert_error(client.post("/inspect", data={"batch": "x"}), 415)  # urlencoded, no file


def test_truncated_image_is_refused_and_not_kept(
    client: TestClient, tmp_path: Path, inspector: Inspector
) -> None:
    assert_error(post(client, png_bytes(8)[:120], "cut.png"), 422, "cannot be inspected")
    assert list((tmp_path / "data" / "uploads" / inspector.model_id).iterdir()) == []
    assert client.get("/results").json()["total"] == 0


def test_too_large_upload(
    inspector: Inspector, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLAWSCOPE_TOKEN", raising=False)
    data = png_bytes(9, size=128)  # ~50 KB of noise
    assert len(data) > 20_000
    with make_client(inspector, model_dir, tmp_path, max_upload_mb=0.01) as small:
        assert_error(post(small, data), 413, "max-upload-mb")
        raw = small.post("/inspect", content=data, headers={"content-type": "image/png"})
        assert_error(raw, 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
            for i in range(0, len(data), 4096):
                yield data[i : i + 4096]

        streamed = small.post("/inspect", content=chunks(), headers={"content-type": "image/png"})
        assert_error(streamed, 413)
        assert small.get("/results").json()["total"] == 0


def test_decompression_bomb(client: TestClient) -> None:
    assert_error(post(client, png_header(100_000, 100_000), "bomb.png"), 413, "pixels")
    # above --max-pixels (50e6) but below Pillow's own limit: our check refuses it
    assert_error(post(client, png_header(8000, 8000), "big.png"), 413, "8000x8000")


def test_bad_batch_name(client: TestClient) -> None:
    assert_error(post(client, png_bytes(10), batch="x" * 300), 422, "batch")
    assert_error(post(client, png_bytes(10), batch="a\x07b"), 422, "control")


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_error(client.get("/nowhere"), 404, "/nowhere", "/docs")
    assert_error(client.get("/inspect"), 405, "GET")


# ------------------------------------------------------------------------------------ token


def test_token(
    inspector: Inspector, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAWSCOPE_TOKEN", "s3cret")  # the environment variable is used
    with make_client(inspector, model_dir, tmp_path) as c:
        missing = assert_error(post(c, png_bytes(11)), 401, "needs an API token")
        assert missing["status"] == 401
        assert c.post("/inspect").headers["www-authenticate"].startswith("Bearer")
        wrong = c.get("/results", headers={"Authorization": "Bearer nope"})
        assert_error(wrong, 401, "wrong API token")
        assert_error(c.get("/results", headers={"Authorization": "Basic s3cret"}), 401)
        for path in ("/batches", "/spc", "/spc/chart.png", "/results/1/anomaly_map.png"):
            assert c.get(path).status_code == 401, path
        good = {"Authorization": "Bearer s3cret"}
        r = c.post("/inspect", files={"file": ("a.png", png_bytes(11), "image/png")}, headers=good)
        assert r.status_code == 200, r.text
        assert c.get(r.json()["anomaly_map_url"], headers=good).status_code == 200
        # public: health, the web page and its files, the docs
        assert c.get("/health").json()["auth_required"] is True
        for path in ("/", "/static/app.js", "/static/style.css", "/docs", "/openapi.json"):
            assert c.get(path).status_code == 200, path
    # --token wins over the environment
    with make_client(inspector, model_dir, tmp_path / "b", token="other") as c:
        assert c.get("/results", headers={"Authorization": "Bearer other"}).status_code == 200


# ------------------------------------------------------------------------------------ docs, page


def test_docs_work_offline(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "cdn." not in page.text and "https://" not in page.text
    js = client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/inspect", "/results", "/batches", "/spc", "/spc/chart.png", "/health"} <= set(
        schema["paths"]
    )
    assert "multipart/form-data" in schema["paths"]["/inspect"]["post"]["requestBody"]["content"]
    assert client.get("/redoc").status_code == 404  # its page would load a CDN script


def test_web_page_is_self_contained(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="file-input"' in page.text and "/static/app.js" in page.text
    names = sorted(p.name for p in STATIC.iterdir())
    assert names == ["app.js", "favicon.svg", "index.html", "style.css"]
    for path in STATIC.iterdir():
        body = client.get(f"/static/{path.name}")
        assert body.status_code == 200, path.name
        text = path.read_text()
        assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "https://" not in text, f"{path.name} loads something from the network"
    assert client.get("/favicon.ico").status_code == 200


# ------------------------------------------------------------------------------------ command


def test_serve_command_is_registered() -> None:
    from typer.testing import CliRunner

    from flawscope.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--db", "--host", "--port", "--data", "--token", "--max-upload-mb"):
        assert option in result.output


def test_serve_bad_model_dir_is_one_line_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flawscope.cli import app
    from flawscope.errors import ModelDirError

    result = CliRunner().invoke(app, ["serve", str(tmp_path / "missing")])
    assert isinstance(result.exception, ModelDirError)
    assert "does not exist" in str(result.exception)


def test_bad_limits_are_config_errors(tmp_path: Path, inspector: Inspector) -> None:
    from flawscope.errors import ConfigError

    with pytest.raises(ConfigError, match="max-upload-mb"):
        create_app(ServiceConfig(tmp_path, tmp_path, max_upload_mb=0), inspector)
    with pytest.raises(ConfigError, match="max-pixels"):
        create_app(ServiceConfig(tmp_path, tmp_path, max_pixels=0), inspector)


def test_the_service_runs_on_onnxruntime_with_the_same_results(
    model_dir: Path, inspector: Inspector, tmp_path: Path
) -> None:
    """`serve --runtime onnx`: the exported model answers like the PyTorch one (1e-4)."""
    from flawscope.models.onnx_export import export_onnx
    from flawscope.models.onnx_runtime import load_onnx_inspector

    export_onnx(model_dir)
    onnx_client = make_client(load_onnx_inspector(model_dir), model_dir, tmp_path / "onnx")
    torch_client = make_client(inspector, model_dir, tmp_path / "torch")
    for seed, defect in ((1, False), (2, True)):
        image = png_bytes(seed, defect)
        a, b = post(torch_client, image).json(), post(onnx_client, image).json()
        assert a["verdict"] == b["verdict"] and abs(a["score"] - b["score"]) < 1e-4
