"""Loader throughput per export kind, against DuckDB's own reader of the same files.

    python benchmarks/load.py [--scale small|medium|large] [--raw DIR] [--db FILE]

Generates the demo exports at the chosen scale (or reads them from --raw), loads them
through the real loaders into a fresh DuckDB file, timing each file, and reads the same
files of each kind with DuckDB's read_csv / read_json into a table. Prints rows per
second of both and their ratio (loader / DuckDB); and, as the bound a load into a store
cannot practically pass, DuckDB's read of the same files written into tables of a database file
and committed. It measures and prints; it does not pass or fail.

The loader does far more than parse: it validates every row, pseudonymizes contacts
(HMAC in SQL, Python only for contacts that need Unicode folding), writes quarantine
and inserts or upserts into keyed tables, one transaction per file. DuckDB's reader
only parses (every column as text for CSV, as the loader stages them; JSON with its
own type detection) into an in-memory table.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from cockpit import derive  # noqa: E402
from cockpit.ingest import discover, load_folder  # noqa: E402
from cockpit.ingest.summary import FileResult  # noqa: E402
from cockpit.store import open_db  # noqa: E402

KEY = b"benchmark-key"
# DuckDB reading the files of a kind as the loader does: CSV values as text; the
# Google Ads report has two title lines and a Total line.
CSV_OPTIONS = "header = true, all_varchar = true"
GOOGLE_OPTIONS = "header = true, all_varchar = true, skip = 2"


def generate(scale: str, out: Path) -> None:
    from cockpit.demo import generate as make

    started = time.perf_counter()
    make(out, seed=7, scale=scale, end=date(2026, 11, 15))
    print(f"generated the {scale} demo in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def loader_times(raw: Path, db: Path) -> tuple[dict[str, float], dict[str, int], float]:
    """Seconds and rows read per kind through the loaders, and the rebuild time. One
    line per file goes to standard error (a large load takes a while)."""
    seconds: dict[str, float] = defaultdict(float)
    rows: dict[str, int] = defaultdict(int)
    last = [time.perf_counter()]
    rebuild = [0.0]

    def on_file(_number: int, _total: int, result: FileResult) -> None:
        now = time.perf_counter()
        seconds[result.kind] += now - last[0]
        rows[result.kind] += result.read
        print(f"[{_number}/{_total}] {result.path}: {result.read:,} rows in {now - last[0]:.1f} s",
              file=sys.stderr, flush=True)
        last[0] = now

    def after_load(con) -> None:
        started = time.perf_counter()
        derive.refresh(con)
        rebuild[0] = time.perf_counter() - started

    con = open_db(db)
    last[0] = time.perf_counter()
    load_folder(con, raw, KEY, on_file=on_file, after_load=after_load)
    con.close()
    return seconds, rows, rebuild[0]


def duckdb_time(kind: str, files: list[Path]) -> tuple[float, int]:
    """Seconds DuckDB takes to read each file into a table in memory (one file at a
    time, as the loader reads them; the best of two rounds), and the rows it read."""
    best, count = float("inf"), 0
    for _ in range(2):
        con = duckdb.connect()
        spent, count = 0.0, 0
        for path in files:
            started = time.perf_counter()
            con.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM {_reader(kind, path)}")
            spent += time.perf_counter() - started
            count += con.execute("SELECT count(*) FROM t").fetchone()[0]
        con.close()
        best = min(best, spent)
    return best, count


def duckdb_store_time(kind: str, files: list[Path], folder: Path) -> float:
    """Seconds DuckDB takes to read each file into a new table of a database file and
    commit it: its own reader and writer, without a key, checks or quarantine, the
    fastest a load into a store can be."""
    db = folder / f"{kind}.duckdb"
    con = duckdb.connect(str(db))
    spent = 0.0
    for number, path in enumerate(files):
        started = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE TABLE t{number} AS SELECT * FROM {_reader(kind, path)}")
        con.execute("COMMIT")
        spent += time.perf_counter() - started
    con.close()
    db.unlink()
    return spent


def _reader(kind: str, path: Path) -> str:
    name = "'" + str(path).replace("'", "''") + "'"
    if kind in ("web_events", "consent"):
        return f"read_json({name}, format = 'newline_delimited')"
    return f"read_csv({name}, {GOOGLE_OPTIONS if kind == 'google_ads' else CSV_OPTIONS})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=("small", "medium", "large"), default="small")
    parser.add_argument("--raw", type=Path, help="exports already generated (default: generate them)")
    parser.add_argument("--db", type=Path, help="keep the loaded store in this new file "
                        "(for benchmarks/pages.py --db); default: a temporary file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        raw = args.raw or Path(tmp) / "raw"
        if args.raw is None:
            generate(args.scale, raw)
        if args.db is not None and args.db.exists():
            parser.error(f"{args.db} exists; the load is measured into a new store")
        seconds, rows, rebuild = loader_times(raw, args.db or Path(tmp) / "bench.duckdb")
        by_kind: dict[str, list[Path]] = defaultdict(list)
        for found in discover(raw):
            by_kind[found.kind].append(found.path)
        what = f"exports in {args.raw}" if args.raw else f"scale {args.scale}"
        print(f"\nLoader vs DuckDB's own reader, {what} "
              f"(derived tables rebuilt after the load: {rebuild:.1f} s)\n")
        header = (f"{'kind':<18}{'files':>6}{'rows':>12}{'loader rows/s':>15}{'duckdb rows/s':>15}"
                  f"{'ratio':>7}{'into store':>12}{'ratio':>7}")
        print(header)
        print("-" * len(header))
        total_rows = total_loader = total_duck = total_store = 0.0
        for kind, files in by_kind.items():
            if kind == "setup":
                continue  # one JSON document, not rows
            duck_seconds, duck_rows = duckdb_time(kind, files)
            store_seconds = duckdb_store_time(kind, files, Path(tmp))
            loader_rate = rows[kind] / seconds[kind] if seconds[kind] else 0.0
            duck_rate = duck_rows / duck_seconds if duck_seconds else 0.0
            store_rate = duck_rows / store_seconds if store_seconds else 0.0
            print(f"{kind:<18}{len(files):>6}{rows[kind]:>12,}{loader_rate:>15,.0f}{duck_rate:>15,.0f}"
                  f"{_ratio(loader_rate, duck_rate):>7.2f}{store_rate:>12,.0f}"
                  f"{_ratio(store_rate, duck_rate):>7.2f}")
            total_rows += rows[kind]
            total_loader += seconds[kind]
            total_duck += duck_seconds
            total_store += store_seconds
        print("-" * len(header))
        all_loader, all_duck, all_store = (total_rows / total_loader, total_rows / total_duck,
                                           total_rows / total_store)
        print(f"{'all':<18}{'':>6}{int(total_rows):>12,}{all_loader:>15,.0f}{all_duck:>15,.0f}"
              f"{all_loader / all_duck:>7.2f}{all_store:>12,.0f}{all_store / all_duck:>7.2f}")
        print("\nratio: loader / DuckDB's read into memory. into store: DuckDB's read written to a "
              "table of a database file and committed (no key, no checks), rows/s and its ratio to "
              "the read into memory: a practical bound for any load into a store.")


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0

if __name__ == "__main__":
    main()
