"""Paged and filtered store queries (ResultStore.get / query / batch_summaries).

Run on SQLite and on a throwaway PostgreSQL server (those cases are skipped when it cannot start).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from flawscope.errors import ConfigError
from flawscope.store import InspectionRecord, ResultStore

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(store_url: str) -> Iterator[ResultStore]:
    """A store filled with 10 records: model m1 in batches A (6, 2 fails) and B (3), m2 in A (1).

    Record i is at T0 + i minutes; scores are 0.1 * (i + 1).
    """
    url = store_url
    layout = ["A"] * 6 + ["B"] * 3
    with ResultStore(url) as st:
        for i, batch in enumerate(layout):
            st.add(
                InspectionRecord(
                    path=f"/img/{i}.png",
                    content_hash=f"h{i}",
                    model_id="m1",
                    score=0.1 * (i + 1),
                    threshold=0.45,
                    verdict="fail" if i in (4, 5) else "pass",
                    batch=batch,
                    time=T0 + timedelta(minutes=i),
                )
            )
        st.add(
            InspectionRecord(
                path="/img/x.png",
                content_hash="hx",
                model_id="m2",
                score=5.0,
                threshold=1.0,
                verdict="fail",
                batch="A",
                time=T0 + timedelta(minutes=30),
            )
        )
        yield st


def test_query_pages_newest_first(store: ResultStore) -> None:
    first, total = store.query(model_id="m1", limit=4)
    assert total == 9
    assert [r.content_hash for r in first] == ["h8", "h7", "h6", "h5"]
    second, total2 = store.query(model_id="m1", limit=4, offset=4)
    assert total2 == 9
    assert [r.content_hash for r in second] == ["h4", "h3", "h2", "h1"]
    last, _ = store.query(model_id="m1", limit=4, offset=8)
    assert [r.content_hash for r in last] == ["h0"]
    beyond, total3 = store.query(model_id="m1", limit=4, offset=50)
    assert beyond == [] and total3 == 9


def test_query_limit_zero_gives_only_the_total(store: ResultStore) -> None:
    records, total = store.query(limit=0)
    assert records == [] and total == 10


def test_query_filters(store: ResultStore) -> None:
    recs, total = store.query(model_id="m1", batch="B")
    assert total == 3 and {r.batch for r in recs} == {"B"}
    recs, total = store.query(model_id="m1", verdict="fail")
    assert total == 2 and sorted(r.content_hash for r in recs) == ["h4", "h5"]
    recs, total = store.query(verdict="fail")  # all models
    assert total == 3
    recs, total = store.query(model_id="m1", batch="A", verdict="pass")
    assert total == 4
    recs, total = store.query(model_id="m1", batch="nope")
    assert (recs, total) == ([], 0)


def test_query_time_window_since_inclusive_until_exclusive(store: ResultStore) -> None:
    since, until = T0 + timedelta(minutes=2), T0 + timedelta(minutes=5)
    recs, total = store.query(model_id="m1", since=since, until=until)
    assert total == 3
    assert sorted(r.content_hash for r in recs) == ["h2", "h3", "h4"]
    # a naive time is UTC; another zone is converted
    naive = datetime(2024, 5, 1, 8, 7)
    assert store.query(model_id="m1", since=naive)[1] == 2
    cest = (T0 + timedelta(minutes=7)).astimezone(timezone(timedelta(hours=2)))
    assert store.query(model_id="m1", since=cest)[1] == 2


def test_query_rejects_bad_arguments(store: ResultStore) -> None:
    with pytest.raises(ConfigError, match="limit and offset"):
        store.query(limit=-1)
    with pytest.raises(ConfigError, match="limit and offset"):
        store.query(offset=-3)
    with pytest.raises(ConfigError, match="unknown verdict"):
        store.query(verdict="ok")


def test_get_by_id(store: ResultStore) -> None:
    newest = store.query(model_id="m1", limit=1)[0][0]
    assert newest.id is not None
    got = store.get(newest.id)
    assert got is not None and got.content_hash == "h8" and got.time is not None
    assert store.get(10_000) is None


def test_batch_summaries(store: ResultStore) -> None:
    rows = store.batch_summaries("m1")
    assert [r.batch for r in rows] == ["A", "B"]
    a, b = rows
    assert (a.count, a.fails) == (6, 2)
    assert a.fail_rate == pytest.approx(2 / 6)
    assert a.mean_score == pytest.approx(sum(0.1 * (i + 1) for i in range(6)) / 6)
    assert a.first == T0 and a.last == T0 + timedelta(minutes=5)
    assert a.first.tzinfo is not None
    assert (b.count, b.fails, b.fail_rate) == (3, 0, 0.0)
    assert b.mean_score == pytest.approx((0.7 + 0.8 + 0.9) / 3)
    every = {r.batch: r.count for r in store.batch_summaries()}
    assert every == {"A": 7, "B": 3}
    assert store.batch_summaries("unknown-model") == []
