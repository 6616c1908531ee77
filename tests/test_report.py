"""The HTML report: sections, formatted metrics, embedded images, offline, edge cases; overlay()."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from flawscope.report import Panel, ReportData, overlay, write_report

SIZE = 32
SECTIONS = (
    "Metrics",
    "Per defect type",
    "ROC and PR curves",
    "Score distribution",
    "Most anomalous",
    "Least anomalous",
    "Training",
)
DATA_URI_RE = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
IMG_RE = re.compile(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _panel(rng: np.random.Generator, i: int, label: str, score: float, full: bool) -> Panel:
    image = rng.random((SIZE, SIZE)).astype(np.float32)
    return Panel(
        name=f"img_{i:03d}.png",
        label=label,
        score=score,
        verdict="fail" if score > 0.5 else "pass",
        image=image,
        anomaly_map=rng.random((SIZE, SIZE)).astype(np.float32) * score,
        reconstruction=image * 0.9 if full else None,
        mask=rng.random((SIZE, SIZE)) > 0.8 if full else None,
    )


def _data(rng: np.random.Generator, only_good: bool = False, **overrides) -> ReportData:
    n_good, n_def = 20, 0 if only_good else 25
    labels = np.r_[np.zeros(n_good, int), np.ones(n_def, int)]
    scores = np.r_[rng.normal(0.3, 0.1, n_good), rng.normal(0.7, 0.15, n_def)]
    fields = {
        "title": "Test report",
        "model_name": "cae",
        "dataset": "data/bottle",
        "threshold": 0.5,
        "threshold_method": "max of 30 hold-out good images",
        "metrics": {
            "auroc": 0.95123,
            "auprc": 0.97349,
            "precision": 0.8,
            "recall": 0.9,
            "f1": 0.84706,
            "f2": 0.87805,
            "f1_max": 0.91234,
            "pixel_auroc": 0.87654,
            "aupro": 0.7,
        },
        "per_defect": {
            "scratch": {"auroc": 0.9, "auprc": 0.8, "f1": 0.75, "recall": 0.7, "n_defective": 12},
            "crack": {"auroc": 0.6, "auprc": 0.5, "f1": 0.4, "recall": 0.3, "n_defective": 13},
        },
        "labels": labels,
        "scores": scores,
        "most_anomalous": [_panel(rng, i, "scratch", 0.9 - 0.1 * i, full=True) for i in range(3)],
        "least_anomalous": [_panel(rng, 10 + i, "good", 0.1 * i, full=False) for i in range(2)],
        "holdout_scores": rng.normal(0.3, 0.05, 30),
        "loss_history": {"train_loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.4]},
        "version": "9.9.9",
        "created": "2024-01-02T03:04:05",
    }
    fields.update(overrides)
    return ReportData(**fields)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_report_has_sections_metrics_and_embedded_images(tmp_path, rng):
    path = write_report(_data(rng), tmp_path / "sub" / "dir" / "report.html")
    assert path == tmp_path / "sub" / "dir" / "report.html"
    html = path.read_text(encoding="utf-8")

    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in html
    for text in ("Test report", "cae", "data/bottle", "9.9.9", "2024-01-02T03:04:05"):
        assert text in html
    assert "max of 30 hold-out good images" in html
    for value in ("0.951", "0.973", "0.800", "0.900", "0.847", "0.878", "0.912", "0.877", "0.700"):
        assert f">{value}<" in html, value
    assert ">0.500<" in html  # threshold, 3 decimals
    assert "0.95123" not in html
    for defect, count in (("scratch", 12), ("crack", 13)):
        assert f"<td>{defect}</td>" in html and f">{count}<" in html

    images = IMG_RE.findall(html)
    # ROC+PR, histogram, loss, colour scales (2), 3 panels x 4 images, 2 panels x 2 images
    assert len(images) == 1 + 1 + 1 + 2 + 3 * 4 + 2 * 2
    for payload in images:
        assert base64.b64decode(payload).startswith(b"\x89PNG\r\n\x1a\n")
    assert html.count('class="badge fail"') == 3 and html.count('class="badge pass"') == 2


def test_report_is_offline(tmp_path, rng):
    html = write_report(_data(rng), tmp_path / "r.html").read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_missing_metrics_render_as_na(tmp_path, rng):
    metrics = {
        "auroc": float("nan"),
        "auprc": None,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "f2": 0.5,
        "f1_max": 0.5,
        "pixel_auroc": None,
        "aupro": float("nan"),
    }
    per_defect = {"hole": {"auroc": float("nan"), "auprc": 1.0, "f1": 1.0, "recall": 1.0}}
    data = _data(rng, metrics=metrics, per_defect=per_defect, loss_history=None)
    html = write_report(data, tmp_path / "r.html").read_text(encoding="utf-8")
    text = DATA_URI_RE.sub("", html)  # base64 payloads may spell anything
    assert not re.search(r"\bnan\b", text, re.IGNORECASE) and "None" not in text
    assert "n/a (no masks)" in html  # pixel AUROC is None
    assert html.count(">n/a<") >= 4  # auroc, auprc, aupro, per-defect auroc, missing count
    assert "<h2>Training</h2>" not in html
    assert len(IMG_RE.findall(html)) >= 2  # curves computed from the data, AUROC in legend


def test_only_good_images_does_not_crash(tmp_path, rng):
    metrics = dict.fromkeys(("auroc", "auprc", "precision", "recall", "f1", "f2", "f1_max"))
    data = _data(rng, only_good=True, metrics=metrics, per_defect={}, holdout_scores=None)
    html = write_report(data, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "need both good and defective test images" in html
    assert "No defective test images" in html
    assert 'alt="ROC curve' not in html
    assert 'alt="Histogram of anomaly scores"' in html


def test_created_and_version_filled_when_empty(tmp_path, rng):
    html = write_report(_data(rng, created="", version=""), tmp_path / "r.html").read_text()
    assert re.search(r"<dd>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d</dd>", html)
    assert re.search(r"<dt>flawscope</dt><dd>\S+</dd>", html)


def test_overlay_shape_dtype_and_heat_direction():
    image = np.full((16, 20), 0.5, np.float32)
    cold = overlay(image, np.zeros((16, 20), np.float32), vmax=1.0)
    assert cold.dtype == np.uint8 and cold.shape == (16, 20, 3)
    # zero map: grey blended with JET's zero colour (dark blue), uniformly
    assert np.all(cold == cold[0, 0])
    r, g, b = cold[0, 0].astype(int)
    assert b > r + 40 and b > g + 40
    assert abs(r - 64) <= 2  # 0.5 * grey 128 + 0.5 * red 0

    hot = overlay(image, np.ones((16, 20), np.float32), vmax=1.0)
    r_hot, _, b_hot = hot[0, 0].astype(int)
    assert r_hot > r + 40 and b_hot < b - 40  # higher map values move toward red

    ramp = np.tile(np.linspace(0.0, 2.0, 20, dtype=np.float32), (16, 1))
    red = overlay(image, ramp, vmax=1.0)[0, :, 0].astype(int)
    assert red[-1] > red[0] and np.all(red[10:] == red[-1])  # clipped at vmax
    assert np.array_equal(overlay(image, ramp, vmax=1.0, alpha=0.0)[..., 0], np.full((16, 20), 128))


def test_overlay_accepts_rgb_and_degenerate_vmax():
    image = np.zeros((8, 8, 3), np.float32)
    image[..., 0] = 1.0
    out = overlay(image, np.zeros((8, 8)), vmax=0.0, alpha=0.25)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] >= 190  # red input channel dominates at alpha 0.25
