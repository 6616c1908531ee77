"""Load test of ``flawscope serve``: concurrent clients posting images to a real uvicorn server.

Starts ``python -m flawscope serve`` as a subprocess on a free loopback port (with ``--model`` or a
small PatchCore fitted here on generated images), then runs ``--clients`` threads, each posting
``--requests`` images to ``POST /inspect`` with its own HTTP connection (httpx). Every request
picks, with a fixed seed, one of ``--distinct`` generated images (so most contents are sent
several times) and one of ``--batches`` batch names.

Reported: latency p50 / p90 / p99 / max (client side, whole request), split into requests that
were scored and requests served from the results store; throughput (accepted requests per
second of wall time); and the proof that no result was lost:

- the store has one row per (content, model, batch), so its row count must equal the number of
  distinct (content hash, batch) pairs among the accepted requests (counted both through
  ``GET /results`` and by opening the SQLite file after the server stopped);
- every content is scored exactly once: the answers with ``stored: false`` must equal the number
  of distinct contents accepted;
- ``results.csv`` gets one row per accepted request.

Writes ``benchmarks/results/load_test.json`` (command, machine, date, settings, numbers). The run
is bounded: clients stop sending after ``--max-seconds`` and every request has a timeout.

    .venv/bin/python benchmarks/load_test.py --clients 8 --requests 200
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_data import machine  # noqa: E402

from flawscope.store import ResultStore  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "load_test.json"


@dataclass
class Answer:
    """One request as the client saw it."""

    status: int
    seconds: float
    content_hash: str = ""
    batch: str = ""
    stored: bool = False
    error: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def image_png(seed: int, size: int, defect: bool = False) -> bytes:
    """A grey-noise 'part' (PNG bytes); ``defect`` paints a bright square."""
    rng = np.random.default_rng(seed)
    img = rng.normal(128, 10, (size, size, 3)).clip(0, 255).astype(np.uint8)
    if defect:
        a = size // 3
        img[a : a + size // 5, a : a + size // 5] = 250
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def fit_model(folder: Path, size: int) -> Path:
    """A small PatchCore fitted on 24 generated good images (a few seconds)."""
    from flawscope.config import InspectorConfig
    from flawscope.inspector import Inspector

    good = folder / "good"
    good.mkdir(parents=True)
    for i in range(24):
        (good / f"{i:02d}.png").write_bytes(image_png(10_000 + i, size))
    config = InspectorConfig.model_validate(
        {
            "model": {"name": "patchcore", "image_size": size, "params": {"feature_dim": 8}},
            "training": {"progress": False},
        }
    )
    return Inspector.fit(good, config).save(folder / "model")


def start_server(model: Path, data: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "flawscope", "serve", str(model), "--data", str(data)]
    cmd += ["--port", str(port), "--host", "127.0.0.1"]
    log = (data.parent / "server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=data.parent)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(data.parent / 'server.log').read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not answer /health within 90 s")


def client(
    url: str,
    plan: list[tuple[int, str]],
    images: list[bytes],
    answers: list[Answer],
    stop_at: float,
) -> None:
    """Post the planned (image index, batch) requests one after another."""
    with httpx.Client(base_url=url, timeout=60) as http:
        for index, batch in plan:
            if time.monotonic() > stop_at:
                return
            t0 = time.perf_counter()
            try:
                r = http.post(
                    "/inspect",
                    files={"file": (f"img{index}.png", images[index], "image/png")},
                    data={"batch": batch},
                )
                dt = time.perf_counter() - t0
                if r.status_code == 200:
                    body = r.json()
                    answers.append(Answer(200, dt, body["content_hash"], batch, body["stored"]))
                else:
                    answers.append(Answer(r.status_code, dt, error=r.text[:200]))
            except httpx.HTTPError as exc:
                answers.append(Answer(0, time.perf_counter() - t0, error=repr(exc)[:200]))


def _python() -> str:
    """The interpreter as the command line names it (relative to the repository when inside)."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(ROOT))
    except ValueError:
        return exe.name


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    arr = np.asarray(values) * 1000
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p90_ms": round(float(np.percentile(arr, 90)), 1),
        "p99_ms": round(float(np.percentile(arr, 99)), 1),
        "max_ms": round(float(arr.max()), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, help="model directory (default: fit a small PatchCore)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--requests", type=int, default=200, help="requests per client (default 200)")
    p.add_argument("--distinct", type=int, default=400, help="distinct images (default 400)")
    p.add_argument("--batches", type=int, default=4, help="batch names (default 4)")
    p.add_argument("--size", type=int, default=128, help="image side, px (default 128)")
    p.add_argument("--max-seconds", type=float, default=150, help="stop sending after this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flawscope-load-"))
    t_fit = time.perf_counter()
    model = args.model or fit_model(work / "fit", args.size)
    fit_s = round(time.perf_counter() - t_fit, 1) if args.model is None else None
    images = [image_png(i, args.size, defect=i % 10 == 0) for i in range(args.distinct)]
    rng = np.random.default_rng(args.seed)
    plans = [
        [
            (int(rng.integers(args.distinct)), f"LOAD-{int(rng.integers(args.batches)) + 1}")
            for _ in range(args.requests)
        ]
        for _ in range(args.clients)
    ]
    data = work / "data"
    data.mkdir()
    port = free_port()
    server = start_server(model, data, port)
    url = f"http://127.0.0.1:{port}"
    answers: list[Answer] = []
    try:
        httpx.post(  # warm-up (first prediction loads lazily); not counted, its own batch
            f"{url}/inspect",
            files={"file": ("warm.png", image_png(99_999, args.size), "image/png")},
            data={"batch": "WARMUP"},
            timeout=60,
        )
        stop_at = time.monotonic() + args.max_seconds
        threads = [
            threading.Thread(target=client, args=(url, plan, images, answers, stop_at))
            for plan in plans
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        served_total = httpx.get(f"{url}/results", params={"limit": 0}, timeout=30).json()["total"]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    ok = [a for a in answers if a.status == 200]
    pairs = {(a.content_hash, a.batch) for a in ok}
    contents = {a.content_hash for a in ok}
    scored = [a for a in ok if not a.stored]
    with ResultStore(data / "results.db") as store:
        rows = len([r for r in store.records() if r.batch != "WARMUP"])
    csv_rows = len((data / "results.csv").read_text().strip().splitlines()) - 1 - 1  # header, warm
    checks = {
        "store_rows": rows,
        "store_rows_via_api": served_total - 1,  # minus the warm-up row
        "distinct_content_batch_pairs_accepted": len(pairs),
        "scored_answers": len(scored),
        "distinct_contents_accepted": len(contents),
        "csv_rows": csv_rows,
        "accepted": len(ok),
    }
    checks["no_result_lost"] = (
        rows == len(pairs) == served_total - 1
        and len(scored) == len(contents)
        and csv_rows == len(ok)
    )
    result = {
        "command": " ".join(shlex.quote(a) for a in [_python(), *sys.argv]),
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "clients": args.clients,
            "requests_per_client": args.requests,
            "distinct_images": args.distinct,
            "batches": args.batches,
            "image_px": args.size,
            "image_bytes_mean": int(np.mean([len(b) for b in images])),
            "model": "given" if args.model else f"patchcore {args.size} px, feature_dim 8",
            "fit_seconds": fit_s,
            "server": "uvicorn, 1 process, inspections serialised by one lock",
            "client_and_server_share_the_cpu": True,
            "max_seconds": args.max_seconds,
        },
        "requests_sent": len(answers),
        "requests_accepted": len(ok),
        "errors": {str(s): sum(a.status == s for a in answers) for s in {a.status for a in answers}}
        if len(ok) != len(answers)
        else {},
        "wall_seconds": round(wall, 2),
        "throughput_rps": round(len(ok) / wall, 1) if wall else None,
        "latency_all": percentiles([a.seconds for a in ok]),
        "latency_scored": percentiles([a.seconds for a in scored]),
        "latency_from_store": percentiles([a.seconds for a in ok if a.stored]),
        "checks": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if not checks["no_result_lost"]:
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
