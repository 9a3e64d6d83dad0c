"""Page numbers cached per filter and data version (cockpit.cache), on the tiny store."""
from __future__ import annotations

import pandas as pd
import pytest

from cockpit import cache
from cockpit.filters import Filters, Scope
from cockpit.store import Store

CALLS: list[tuple] = []


def leads(con, f: Filters, by: str = "study") -> pd.DataFrame:
    CALLS.append((f, by))
    where, params = f.where({"study": "study_id", "site": "site_id"})
    return con.execute(f"SELECT {by}_id AS key, count(*) AS leads FROM journey WHERE {where} "
                       f"GROUP BY ALL ORDER BY ALL", params).df()


@pytest.fixture
def store(tiny_db):
    CALLS.clear()
    with Store(tiny_db) as store:
        yield store


def new_load(store: Store) -> None:
    store.reader().execute("INSERT INTO load_run (started_at, finished_at, status, source, files_loaded) "
                "VALUES ('2026-03-27 06:00', '2026-03-27 06:01', 'ok', 'tiny', 1)")


def test_a_view_is_computed_once_per_data_version(store):
    first = cache.cached(store, leads, Filters())
    assert first.to_dict("list") == {"key": ["A", "B"], "leads": [4, 1]}
    # the same call, and the same with the default spelled out: no new computation
    assert cache.cached(store, leads, Filters()).equals(first)
    assert cache.cached(store, leads, Filters(), by="study").equals(first)
    assert len(CALLS) == 1
    # another argument or filter is another view
    assert cache.cached(store, leads, Filters(), "site")["leads"].sum() == 5
    assert cache.cached(store, leads, Filters.make(study="B"))["leads"].tolist() == [1]
    assert len(CALLS) == 3
    # a load run that changed data: computed afresh, with the new rows
    store.reader().execute("DELETE FROM journey WHERE study_id = 'B'")
    assert cache.cached(store, leads, Filters()).equals(first)  # same data version: kept
    new_load(store)
    assert cache.cached(store, leads, Filters()).to_dict("list") == {"key": ["A"], "leads": [4]}
    assert len(CALLS) == 4


def test_viewers_of_different_scopes_never_share_a_result(store):
    everything = cache.cached(store, leads, Filters(scope=Scope()))
    site_a1 = cache.cached(store, leads, Filters(scope=Scope(sites=("A1",))))
    assert everything["leads"].tolist() == [4, 1]
    assert site_a1.to_dict("list") == {"key": ["A"], "leads": [3]}  # p1 p3 p5 at A1
    assert len(CALLS) == 2


def test_a_caller_changing_its_copy_changes_nobody_elses(store):
    mine = cache.cached(store, leads, Filters())
    mine.loc[0, "leads"] = 999
    mine["extra"] = 1
    theirs = cache.cached(store, leads, Filters())
    assert theirs.to_dict("list") == {"key": ["A", "B"], "leads": [4, 1]}
    assert len(CALLS) == 1


def test_arguments_that_cannot_be_a_key_are_computed_every_time(store):
    def total(con, studies: list) -> int:
        CALLS.append(tuple(studies))
        return len(studies)

    assert cache.cached(store, total, ["A"]) == 1 and cache.cached(store, total, ["A"]) == 1
    assert len(CALLS) == 2 and not cache.is_cached(store, total, ["A"])


def test_each_store_keeps_its_own_results(store, tmp_path):
    from conftest import tiny_store_file

    cache.cached(store, leads, Filters())
    with Store(tiny_store_file(tmp_path / "other.duckdb")) as other:
        other.reader().execute("DELETE FROM journey WHERE study_id = 'B'")
        # the same data version and filter, but another store
        assert cache.cached(other, leads, Filters())["leads"].tolist() == [4]
    assert len(CALLS) == 2


def test_the_lru_keeps_the_latest_entries():
    lru = cache.LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3)
    assert "b" not in lru and lru.get("a") == 1 and lru.get("c") == 3
    assert lru.get("b", "gone") == "gone"
