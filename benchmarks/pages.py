"""Page speed: the server time of the callbacks a filter change triggers, per page, and
the bare DuckDB queries behind them; and the serving process's peak memory.

    python benchmarks/pages.py [--scale small|medium|large] [--db FILE [--in-place]] [--rounds N]
                               [--pages NAME ...] [--during-warmup]

The cockpit is served by waitress on a local port, as `cockpit serve` does (with what
it computes ahead at start, the weekly review's forecasts, done first), and driven
over HTTP the way the browser drives it: sign in, fetch each page's layout through Dash's
page router, then for a set of filters post every callback that listens to the URL's
filter to `/_dash-update-component`, with the other inputs at the values the layout
gives them. Time per filter change is the sum of those callbacks' round trips on the
loopback interface (a browser runs them side by side; the sum is the server's work).

While a callback runs, every query it sends to DuckDB is recorded (SQL and parameters).
Afterwards each is run again on its own, fetching all rows: the "bare queries" time.
The ratio callback / bare queries is the overhead of everything that is not DuckDB:
pandas, statistics, Plotly figures, JSON, HTTP. It measures and prints; it does not pass
or fail.

With ``--during-warmup``, one more pass runs while the warm-up after a load is under way
in the background, every cache empty at its start: what a viewer meets right after a
load, while the scheduler's thread competes for the two cores.
"""
from __future__ import annotations

import argparse
import gc
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import requests  # noqa: E402

from cockpit.filters import quarter_start  # noqa: E402
from cockpit.store import Store  # noqa: E402

USER = ("bench-admin", "benchmark-password-1")
# What every request reads whatever the page: the viewer (cockpit.auth) and, for each
# cached call, the data version (cockpit.store.data_version)
_REQUEST_QUERIES = ("FROM app_user", "FROM load_run")
ROUTER_OUTPUT = ".._pages_content.children..._pages_store.data.."


# ---------------------------------------------------------------- recording queries
class _Recorded:
    """A reader cursor that notes each query's SQL and parameters before running it."""

    def __init__(self, cursor, log: list):
        self._cursor, self._log = cursor, log

    def execute(self, sql, parameters=None, *args, **kwargs):
        self._log.append((sql, parameters))
        if parameters is None:
            return self._cursor.execute(sql, *args, **kwargs)
        return self._cursor.execute(sql, parameters, *args, **kwargs)

    def sql(self, sql, *args, **kwargs):
        self._log.append((sql, kwargs.get("params")))
        return self._cursor.sql(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


class RecordingStore(Store):
    """The store, with the page queries of the request being measured noted down."""

    def __init__(self, path):
        super().__init__(path)
        self.log: list = []
        self.recording = False

    def reader(self):
        cursor = super().reader()
        return _Recorded(cursor, self.log) if self.recording else cursor


# ---------------------------------------------------------------- the served app
def serve(store: Store) -> tuple[str, object]:
    import waitress

    from app import create_app

    app = create_app(store)
    server = waitress.create_server(app.server, host="127.0.0.1", port=0, threads=4, ident="cockpit")
    threading.Thread(target=server.run, daemon=True).start()
    return f"http://127.0.0.1:{server.effective_port}", app


def signed_in(base: str) -> requests.Session:
    session = requests.Session()
    page = session.get(base + "/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = session.post(base + "/login", data={"username": USER[0], "password": USER[1],
                                                 "csrf_token": token, "next": "/"}, allow_redirects=False)
    if answer.status_code != 303:
        raise SystemExit(f"sign-in failed: {answer.status_code}")
    return session


def _props(tree, found: dict) -> None:
    """Component id -> props, over a layout as Dash serialises it."""
    if isinstance(tree, list):
        for item in tree:
            _props(item, found)
    elif isinstance(tree, dict) and "props" in tree:
        props = tree["props"]
        if isinstance(props.get("id"), str):
            found[props["id"]] = props
        for value in props.values():
            if isinstance(value, (list, dict)):
                _props(value, found)


def page_layout(session, base: str, path: str) -> dict:
    body = {"output": ROUTER_OUTPUT,
            "outputs": [{"id": "_pages_content", "property": "children"},
                        {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": path},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "changedPropIds": ["_pages_location.pathname"], "state": []}
    answer = session.post(base + "/_dash-update-component", json=body)
    answer.raise_for_status()
    found: dict = {}
    _props(answer.json()["response"]["_pages_content"]["children"], found)
    return found


def _output_ids(key: str) -> list[str]:
    specs = key[2:-2].split("...") if key.startswith("..") else [key]
    return [s.rsplit(".", 1)[0] for s in specs]


def filter_callbacks(dependencies: list[dict], ids: set[str]) -> list[dict]:
    """Server callbacks of the page that run when the filter in the URL changes."""
    chosen = []
    for cb in dependencies:
        if cb.get("clientside_function"):
            continue
        listens = any(i["id"] == "url" and i["property"] == "search" for i in cb["inputs"])
        if listens and any(o in ids for o in _output_ids(cb["output"])):
            chosen.append(cb)
    return chosen


def payload(cb: dict, props: dict, search: str, path: str) -> dict | None:
    def value(dep):
        if dep["id"] == "url":
            return {"search": search, "pathname": path}.get(dep["property"])
        return props.get(dep["id"], {}).get(dep["property"])

    if any(isinstance(d["id"], dict) or d["id"].startswith("{") for d in cb["inputs"] + cb["state"]):
        return None
    key = cb["output"]
    outputs = [{"id": i, "property": p} for i, p in
               (s.rsplit(".", 1) for s in (key[2:-2].split("...") if key.startswith("..") else [key]))]
    return {"output": key, "outputs": outputs if key.startswith("..") else outputs[0],
            "inputs": [{**d, "value": value(d)} for d in cb["inputs"]],
            "state": [{**d, "value": value(d)} for d in cb["state"]],
            "changedPropIds": ["url.search"]}


def filter_variants(con) -> list[str]:
    """Filters a user would pick: none, a study, a study and channel, a site, a segment,
    a phase, a quarter (the latest, from its first day on: the filter bar's "This
    quarter" when the data are current), a study over that quarter, and six weeks
    picked by hand (no preset gives them)."""
    studies = [s for (s,) in con.execute("SELECT study_id FROM study ORDER BY study_id").fetchall()]
    site = con.execute("SELECT site_id FROM journey GROUP BY site_id ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    channel = con.execute("SELECT channel_id FROM journey GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    segment = con.execute("SELECT segment_id FROM segment ORDER BY segment_id LIMIT 1").fetchone()[0]
    phase = con.execute("SELECT phase FROM study ORDER BY phase DESC LIMIT 1").fetchone()[0]
    last = con.execute("SELECT max(lead_ts)::DATE FROM journey").fetchone()[0]
    start = quarter_start(last)
    weeks = (last - timedelta(days=90), last - timedelta(days=49))
    return ["", f"?study={studies[0]}", f"?channel={channel}&study={studies[-1]}", f"?site={site}",
            f"?segment={segment}", f"?phase={phase}", f"?start={start}",
            f"?start={start}&study={studies[len(studies) // 2]}",
            f"?start={weeks[0]}&end={weeks[1]}"]


def bare_seconds(store: Store, queries: list) -> float:
    cur = store.con.cursor()
    cur.execute("SET TimeZone = 'UTC'")
    started = time.perf_counter()
    for sql, params in queries:
        (cur.execute(sql, params) if params is not None else cur.execute(sql)).fetchall()
    took = time.perf_counter() - started
    cur.close()
    return took


def measure(store: RecordingStore, base: str, rounds: int, only: set[str] | None = None,
            during_warmup: bool = False) -> tuple[list[dict], int]:
    """Per page: the figures of ``rounds`` passes over the filters. Each pass starts as a
    server does after a load, every cache empty; the warm-up (``warm_job``) runs first,
    or, ``during_warmup``, in the background while the pass runs."""
    import dash

    from cockpit import cache
    from cockpit.auth import users
    from cockpit.metrics import mix, review
    from cockpit.scheduler import warm_job

    def add_bench_user(con) -> None:
        try:
            users.add_user(con, USER[0], USER[1], "admin")
        except users.UserError:  # a store measured in place before has it already
            users.set_password(con, USER[0], USER[1])

    store.write_sync(add_bench_user)
    session = signed_in(base)
    dependencies = session.get(base + "/_dash-dependencies").json()
    variants = filter_variants(store.reader())
    pages = [p for p in sorted(dash.page_registry.values(), key=lambda p: p.get("order") or 0)
             if not only or p["name"] in only]
    plans = {}
    for page in pages:
        props = page_layout(session, base, page["path"])
        callbacks = filter_callbacks(dependencies, set(props))
        plans[page["name"]] = (page, props, callbacks)
    served, bare, ratios, from_cache = ({name: [] for name in plans} for _ in range(4))
    for number in range(rounds):
        # each round meets the caches as a server does after a load: the views and models
        # computed ahead (warm_job), every other one computed on its first request
        cache.results(store).clear()
        mix.clear_cache()
        review.clear_cache()
        round_started = time.perf_counter()
        warming = threading.Thread(target=warm_job, args=[store], daemon=True)
        warming.start()
        if not during_warmup:
            warming.join()
            print(f"round {number + 1}: computed ahead in {time.perf_counter() - round_started:.1f} s",
                  file=sys.stderr, flush=True)
        for name, (page, props, callbacks) in plans.items():
            for search in variants:
                total, queries = 0.0, []
                kept = cache.results(store)
                hits, misses = kept.hits, kept.misses
                for cb in callbacks:
                    body = payload(cb, props, search, page["path"])
                    if body is None:
                        continue
                    store.log.clear()
                    store.recording = True
                    started = time.perf_counter()
                    answer = session.post(base + "/_dash-update-component", json=body)
                    total += time.perf_counter() - started
                    store.recording = False
                    if answer.status_code not in (200, 204):
                        raise SystemExit(f"{page['path']} {cb['output'][:60]}: HTTP {answer.status_code}")
                    queries.extend(store.log)
                queries_time = bare_seconds(store, queries)
                print(f"  {name} {search or '(no filter)'}: {total * 1000:.0f} ms, "
                      f"bare {queries_time * 1000:.0f} ms", file=sys.stderr, flush=True)
                served[name].append(total)
                bare[name].append(queries_time)
                # answered from the cache: no query but those of every request, nothing to
                # compare with (a page that also reads other things, as Alerts its rules, is not)
                if (kept.hits > hits and kept.misses == misses
                        and all(any(q in sql for q in _REQUEST_QUERIES) for sql, _ in queries)):
                    from_cache[name].append(1)

                else:
                    ratios[name].append(total / queries_time if queries_time > 0 else float("nan"))
        if during_warmup:
            print(f"round {number + 1} took {time.perf_counter() - round_started:.1f} s with the warm-up "
                  f"{'still running' if warming.is_alive() else 'done before its end'}",
                  file=sys.stderr, flush=True)
            warming.join()
    results = []
    for name, (page, props, callbacks) in plans.items():
        bodies = [b for b in (payload(cb, props, "", page["path"]) for cb in callbacks) if b]
        kept_ratios = [r for r in ratios[name] if r == r]
        results.append({"page": name, "callbacks": len(bodies), "changes": len(served[name]),
                        "from_cache": len(from_cache[name]),
                        "p50": _pct(served[name], 50), "p95": _pct(served[name], 95),
                        "bare_p50": _pct(bare[name], 50), "bare_p95": _pct(bare[name], 95),
                        "ratio": statistics.median(kept_ratios) if kept_ratios else float("nan")})
    return results, len(variants)


def print_table(results: list[dict]) -> None:
    print(f"{'page':<12} {'callbacks':>9} {'p50 ms':>8} {'p95 ms':>8} {'bare p50':>9} "
          f"{'bare p95':>9} {'callback/bare':>13} {'cached':>7}")
    for r in results:
        print(f"{r['page']:<12} {r['callbacks']:>9} {r['p50'] * 1000:>8.0f} {r['p95'] * 1000:>8.0f} "
              f"{r['bare_p50'] * 1000:>9.0f} {r['bare_p95'] * 1000:>9.0f} {r['ratio']:>13.2f} "
              f"{r['from_cache']:>3}/{r['changes']:<3}")


def _pct(values: list[float], q: int) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[index]


def prepare(args, work: Path) -> Path:
    db = work / "pages.duckdb"
    if args.db and args.in_place:
        return args.db
    if args.db:
        shutil.copy(args.db, db)
        return db
    from load import KEY, generate

    from cockpit import derive
    from cockpit.ingest import load_folder
    from cockpit.store import open_db

    raw = work / "raw"
    generate(args.scale, raw)
    started = time.perf_counter()
    con = open_db(db)
    load_folder(con, raw, KEY, after_load=derive.refresh)
    con.close()
    print(f"loaded the {args.scale} demo in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=("small", "medium", "large"), default="small")
    parser.add_argument("--db", type=Path, help="a loaded store to measure (copied first)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the filter set")
    parser.add_argument("--pages", nargs="+", metavar="NAME", help="only these pages (by name)")
    parser.add_argument("--during-warmup", action="store_true",
                        help="then one more pass while the warm-up after a load runs in the background")
    parser.add_argument("--in-place", action="store_true",
                        help="measure the --db store itself instead of a copy (a large store "
                             "may not fit twice on the disk); the benchmark user is added to it")
    args = parser.parse_args()
    os.environ.setdefault("COCKPIT_SECRET_KEY", "benchmark-key")
    with tempfile.TemporaryDirectory() as tmp:
        db = prepare(args, Path(tmp))
        store = RecordingStore(db)
        base, _app = serve(store)
        # what `cockpit serve` computes ahead when it starts and after each load
        from cockpit.scheduler import warm_job
        started = time.perf_counter()
        warm_job(store)
        print(f"computed ahead at start (forecasts, views and Budget models unfiltered and by phase, "
              f"segment and period preset, the Budget model of each study still spending): "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        results, variants = measure(store, base, args.rounds, set(args.pages or ()))
        during = measure(store, base, 1, set(args.pages or ()), during_warmup=True)[0] \
            if args.during_warmup else None
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        gc.collect()  # a full pass, as the collector makes now and then while serving
        gc_ms = (time.perf_counter() - started) * 1000
        print(f"\n{args.db or args.scale}: {variants} filters x {args.rounds} rounds per page; "
              f"{os.cpu_count()} cores")
        print_table(results)
        print("cached: filter changes answered from the page cache (views computed ahead after each "
              "load: unfiltered, each phase, segment and period preset); callback/bare is the median over "
              "the others")
        if during is not None:
            print(f"\nwhile the warm-up after a load runs: {variants} filters x 1 round per page, "
                  f"every cache empty at its start")
            print_table(during)
        print(f"peak resident memory of the serving process: {peak_mb:.0f} MB")
        print(f"a full garbage collection pass in the serving process: {gc_ms:.0f} ms "
              f"({len(gc.get_objects()):,} objects tracked, {gc.get_freeze_count():,} kept out of its passes)")
        store.close()


if __name__ == "__main__":
    main()
