"""Shared fixtures: a tiny generated dataset and a tiny fitted model (session-scoped, fast)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from flawscope.config import InspectorConfig
from tests.postgres_server import PostgresServer, PostgresUnavailableError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """Path of a real data set in ../shared/data, skipping the test when it is absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} is absent (a fresh clone has no ../shared/data)")
    return path


def tiny_config(**training: object) -> InspectorConfig:
    """A CAE small and quick enough for unit tests (32 px input, 2 epochs, no progress bar)."""
    return InspectorConfig.model_validate(
        {
            "model": {"name": "cae", "image_size": 32, "params": {"filters": [8, 8, 4]}},
            "training": {"epochs": 2, "batch_size": 8, "progress": False, **training},
            "scoring": {"sigma": 1.0},
        }
    )


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MVTec-layout generated 3D-printed layers: 24 train, 4 test good, 2 per defect, 64 px."""
    from flawscope.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("layers")
    return write_dataset(root, n_train=24, n_test_good=4, n_test_per_defect=2, size=64, seed=3)


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CAE fitted on ``tiny_dataset`` and saved; returns the model directory."""
    from flawscope.inspector import Inspector

    out = tmp_path_factory.mktemp("model")
    Inspector.fit(tiny_dataset, tiny_config()).save(out)
    return out


_db_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session; skips its tests when it cannot start."""
    try:
        server = PostgresServer(timeout=20)
    except PostgresUnavailableError as exc:
        pytest.skip(f"PostgreSQL test server unavailable: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file in tmp_path, or a fresh database on the test server."""
    if request.param == "sqlite":
        return str(tmp_path / "db" / "results.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"t{os.getpid()}_{next(_db_names)}")
