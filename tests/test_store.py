"""The store: migrations on empty and older files, clear errors, the one writer."""
import subprocess
import sys
import threading

import pytest

from cockpit import store as store_mod
from cockpit.store import Store, StoreError, open_db, resolve_db_path, schema_version

LATEST = max(v for v, _, _ in store_mod.migrations())


def test_empty_file_gets_the_whole_schema(tmp_path):
    con = open_db(tmp_path / "new.duckdb")
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"study", "site", "channel", "campaign", "creative", "segment", "ad_daily", "offline_cost",
            "touchpoint", "funnel_event", "consent_event", "load_run", "quarantine", "audit_log",
            "journey", "erasure_ledger"} <= tables
    assert schema_version(con) == LATEST


def test_reopening_applies_nothing_and_keeps_data(tmp_path):
    path = tmp_path / "db.duckdb"
    con = open_db(path)
    con.execute("INSERT INTO segment VALUES ('s', 'S', 18, 30)")
    con.close()
    con = open_db(path)
    assert store_mod.migrate(con) == []
    assert con.execute("SELECT count(*) FROM segment").fetchone()[0] == 1


def test_older_schema_is_upgraded_in_place(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    con = open_db(path)
    con.execute("INSERT INTO segment VALUES ('s', 'S', 18, 30)")
    con.close()
    shipped = store_mod.migrations()
    newer = shipped + [(LATEST + 1, f"{LATEST + 1:04d}_note.sql",
                        "ALTER TABLE segment ADD COLUMN note VARCHAR DEFAULT 'n/a';")]
    monkeypatch.setattr(store_mod, "migrations", lambda: newer)
    con = open_db(path)
    assert schema_version(con) == LATEST + 1
    assert con.execute("SELECT segment_id, note FROM segment").fetchall() == [("s", "n/a")]


def test_a_failing_migration_leaves_the_old_schema(tmp_path, monkeypatch):
    path = tmp_path / "db.duckdb"
    open_db(path).close()
    bad = store_mod.migrations() + [(LATEST + 1, "x.sql", "CREATE TABLE ok_part (a INT); SELEKT broken;")]
    monkeypatch.setattr(store_mod, "migrations", lambda: bad)
    with pytest.raises(StoreError, match="Cannot migrate"):
        open_db(path)
    monkeypatch.undo()
    con = open_db(path)
    assert schema_version(con) == LATEST
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name='ok_part'").fetchone()[0] == 0


def test_locked_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "locked.duckdb"
    open_db(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="in use by another process"):
            open_db(path)
    finally:
        holder.kill()
        holder.wait()


def test_not_a_database_gives_a_clear_error(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("these are not database pages\n" * 100)
    with pytest.raises(StoreError, match="Cannot open the store"):
        open_db(path)


def test_db_path_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("COCKPIT_DB", raising=False)
    assert str(resolve_db_path(None)) == "data/cockpit.duckdb"
    monkeypatch.setenv("COCKPIT_DB", str(tmp_path / "x.duckdb"))
    assert resolve_db_path(None) == tmp_path / "x.duckdb"
    assert str(resolve_db_path("given.duckdb")) == "given.duckdb"


def test_readers_see_the_last_commit_while_the_writer_works(tmp_path):
    with Store(tmp_path / "s.duckdb") as store:
        store.write_sync(lambda c: c.execute("INSERT INTO segment VALUES ('a', 'A', 18, 30)"))
        started, release = threading.Event(), threading.Event()

        def long_write(c):
            c.execute("BEGIN TRANSACTION")
            c.execute("INSERT INTO segment VALUES ('b', 'B', 31, 40)")
            started.set()
            release.wait(10)
            c.execute("COMMIT")
            return "done"

        pending = store.write(long_write)
        assert started.wait(10)
        # a reader in another thread answers at once, from the committed snapshot
        seen = []
        t = threading.Thread(target=lambda: seen.append(
            store.reader().execute("SELECT count(*) FROM segment").fetchone()[0]))
        t.start()
        t.join(5)
        assert seen == [1]
        release.set()
        assert pending.result(10) == "done"
        assert store.reader().execute("SELECT count(*) FROM segment").fetchone()[0] == 2


def test_writer_errors_reach_the_caller(tmp_path):
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(Exception, match="nosuchtable"):
            store.write_sync(lambda c: c.execute("SELECT * FROM nosuchtable"))
        # and the writer keeps working afterwards
        assert store.write_sync(lambda c: c.execute("SELECT 42").fetchone()[0]) == 42


def test_data_version_moves_only_when_a_load_changes_data(tmp_path):
    from cockpit.ingest import load_folder
    from cockpit.store import data_version

    con = open_db(tmp_path / "v.duckdb")
    drop = tmp_path / "drop"
    drop.mkdir()
    load_folder(con, drop, b"k")
    assert data_version(con) == 0
    (drop / "setup_a.json").write_text('{"studies": [], "sites": [], "channels": [], "segments": [],'
                                       ' "campaigns": [], "qr_codes": []}')
    summary = load_folder(con, drop, b"k")
    assert data_version(con) == summary.run_id
    load_folder(con, drop, b"k")  # nothing new
    assert data_version(con) == summary.run_id


def _memory_limit(con) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def test_serving_memory_is_bounded_and_a_load_run_lifts_the_bound(tmp_path):
    from cockpit import scheduler
    from cockpit.config import FolderSource

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "note.txt").write_text("not an export")
    seen = []
    with Store(tmp_path / "s.duckdb", memory_limit="256MB") as store:
        assert _memory_limit(store.reader()) == "244.1 MiB"  # DuckDB shows 256 MB in MiB
        original = scheduler.load_source

        def watching(con, *args, **kwargs):
            seen.append(_memory_limit(con))
            return original(con, *args, **kwargs)

        scheduler.load_source = watching
        try:
            scheduler.run_source(store, FolderSource(name="drop", path=raw), b"k")
        finally:
            scheduler.load_source = original
        assert _memory_limit(store.reader()) == "244.1 MiB"
    # during the run: DuckDB's default, 80% of the machine's memory, far above the bound
    assert len(seen) == 1 and not seen[0].startswith("244")
    with pytest.raises(StoreError, match="memory_limit 'lots'"):
        Store(tmp_path / "t.duckdb", memory_limit="lots")


def test_closing_waits_for_a_query_still_running(tmp_path):
    # a page request or the scheduler's warm-up may still be reading when the server stops
    import threading

    from cockpit.store import Store

    store = Store(tmp_path / "busy.duckdb")
    started, answer = threading.Event(), []

    def read():
        cur = store.reader()
        started.set()
        answer.append(cur.execute("SELECT count(*) FROM range(300000000) t(i) WHERE i % 7 = 3").fetchone()[0])

    reader = threading.Thread(target=read)
    reader.start()
    started.wait()
    store.close()
    reader.join()
    assert answer == [42857143]
    reopened = Store(tmp_path / "busy.duckdb")  # the file was released
    reopened.close()
