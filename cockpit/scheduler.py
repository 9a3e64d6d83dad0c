"""Scheduled work inside the serving process: load each source on its own interval,
and evaluate the alert rules on theirs and after every load that brought new data.
At start, after every such load and each day after midnight UTC, the weekly review's
forecasts, the Budget page's model and every page's default view, unfiltered and for
each phase, segment and period preset, then the Budget model of each study still
spending, are computed ahead (``warm_job``), so that their first viewer does not wait.

Jobs never overlap (one instance each, missed runs coalesced) and write only through
the store's writer thread, so pages keep answering from their own cursors while a load
runs, and two sources never load at the same time. The warm-up runs on a thread of its
own (``Warmup``), so that a load never waits for it. A drop folder is scanned with a
settle time: a file modified in the last seconds may still be being written and is
left for the next scan.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import duckdb
from apscheduler.schedulers.background import BackgroundScheduler

from cockpit import derive
from cockpit.config import FolderSource, Source
from cockpit.ingest.sources import load_source, register_sources
from cockpit.ingest.sql_source import SourceError
from cockpit.ingest.summary import LoadSummary
from cockpit.alerts import SmtpSettings, run_alert_cycle
from cockpit.alerts.digest import queue_digest
from cockpit.alerts.smtp import flush_outbox
from cockpit.store import Store, data_version

if TYPE_CHECKING:
    from cockpit.filters import Filters

log = logging.getLogger("cockpit.scheduler")


@dataclass(frozen=True)
class Alerting:
    """How this process sends alerts: SMTP settings (None: messages stay queued), the
    cockpit's public address for links in e-mails, and the evaluation interval."""

    settings: SmtpSettings | None
    base_url: str
    interval_seconds: int = 300
    digest_recipients: tuple[str, ...] = ()
    digest_weekday: str = "mon"
    digest_hour: int = 7


@dataclass(frozen=True)
class Plan:
    """What this process loads: its store, sources and pseudonymization key."""

    store: Store
    sources: tuple[Source, ...]
    key: bytes


_plan: Plan | None = None


def configure(store: Store, sources: Sequence[Source], key: bytes) -> Plan:
    """Set the sources this process loads (and that the Data page can load on demand),
    and record their settings in the store."""
    global _plan
    _plan = Plan(store, tuple(sources), key)
    if sources:
        store.write_sync(lambda con: register_sources(con, sources))
    return _plan


def plan() -> Plan | None:
    """The sources this process loads, or None when it loads none."""
    return _plan


def run_source(store: Store, source: Source, key: bytes, retry_quarantined: bool = False,
               settle_seconds: float | None = None) -> LoadSummary:
    """One load run of ``source`` on the writer thread (a folder waits ``settle_seconds``
    for fresh files, default its own setting). Raises what the load raises."""
    def run(con) -> LoadSummary:
        with store.memory_lifted(con):
            return load_source(con, source, key, after_load=derive.refresh,
                               retry_quarantined=retry_quarantined, settle_seconds=settle_seconds)

    return store.write_sync(run)


def alert_job(store: Store, alerting: Alerting) -> None:
    """One alert cycle (evaluate every rule, send what is due); failures are logged."""
    try:
        run_alert_cycle(store, alerting.settings, alerting.base_url)
    except Exception:  # the next cycle tries again; queued messages are kept
        log.exception("alert cycle failed")


def digest_job(store: Store, alerting: Alerting) -> None:
    """Queue the weekly review digest and send what is due; failures are logged."""
    try:
        domain = alerting.settings.domain if alerting.settings is not None else "localhost"
        queue_digest(store, list(alerting.digest_recipients), domain=domain,
                     base_url=alerting.base_url)
        if alerting.settings is not None:
            flush_outbox(store, alerting.settings)
    except Exception:  # the digest stays queued, or is queued again next week
        log.exception("weekly digest failed")


def default_views() -> list:
    """The functions of the numbers each page shows when it opens without a filter; the
    pages call them with their own defaults, which ``cockpit.cache`` fills in, so a view
    computed here is the one a page asks for."""
    from cockpit.metrics import attribution, channels, compliance, funnel, overview, segments, sites

    return [overview.snapshot, channels.channel_table, channels.weekly_by_channel, funnel.snapshot,
            sites.site_table, segments.all_segments, attribution.channel_table, attribution.coverage,
            compliance.purpose_table, compliance.weekly_withdrawals]


def filters_ahead(con: duckdb.DuckDBPyConnection, today: date) -> list[Filters]:
    """The filters whose views are computed ahead, for a viewer who may see every
    study: none; each phase; each segment; each period preset of the filter bar on
    ``today``. Few, and the costliest to compute: each spans a large part of every
    study's journeys, where a study or site filter reads only its own rows."""
    from cockpit.filters import PERIODS, UNLIMITED, Filters, period_dates
    from cockpit.metrics.dimensions import filter_options

    # the filter bar's own choices
    options = filter_options(con, Filters(scope=UNLIMITED))
    phases = sorted(o["value"] for o in options["phase"])
    segments = sorted(o["value"] for o in options["segment"])
    periods = [period_dates(name, today) for name in PERIODS]
    return ([Filters(scope=UNLIMITED)]
            + [Filters(phase=(p,), scope=UNLIMITED) for p in phases]
            + [Filters(segment=(s,), scope=UNLIMITED) for s in segments]
            + [Filters(start=start, end=end, scope=UNLIMITED) for start, end in periods])


# Budget models computed ahead, one per study still spending: about 0.7 s each (four
# starts, a held-out refit, 60 bootstrap refits), whatever the study's size
STUDIES_AHEAD = 200


def warm_job(store: Store) -> None:
    """Compute what the first viewer after a load would otherwise wait for, each cached
    per data version (and UTC day), for a viewer who may see every study: the weekly
    review's forecast of every study (``review.warm_forecasts``), then for each filter
    of ``filters_ahead`` the Budget page's model fit and each page's numbers
    (``default_views``), then the Budget model of each study still spending
    (``mix.spending_studies``, up to ``STUDIES_AHEAD``), until a newer load changes the
    data. Failures are logged; the pages then compute what they need themselves."""
    from cockpit import cache
    from cockpit.filters import UNLIMITED, Filters
    from cockpit.metrics import mix, review, segments

    try:
        con = store.reader()
        version = data_version(con)
        review.warm_forecasts(con)
        filters = filters_ahead(con, datetime.now(timezone.utc).date())
    except Exception:
        log.exception("computing the forecasts ahead failed")
        return
    for f in filters:
        if store.closed:
            return
        try:
            mix.cached_fit(con, f)  # a segment's is the unfiltered fit: the model ignores segments
            for fn in default_views():
                # the table of every segment is asked for without the segment filter
                cache.cached(store, fn, f.without("segment") if fn is segments.all_segments else f)
        except Exception:
            log.exception("computing the views of %s ahead failed", f.label() or "no filter")
    try:
        studies = mix.spending_studies(con, STUDIES_AHEAD)
    except Exception:
        log.exception("listing the studies to model ahead failed")
        return
    for study in studies:
        # a newer load makes these fits stale: the warm-up it asked for starts again
        if store.closed or data_version(con) != version:
            return
        try:
            mix.cached_fit(con, Filters(study=(study,), scope=UNLIMITED))
        except Exception:
            log.exception("computing the Budget model of %s ahead failed", study)


class Warmup:
    """Runs ``job`` (the warm-up) on a thread of its own, one run at a time. Asked for
    while a run is under way, it runs once more after that run, for the newest data;
    any number of requests meanwhile make that one run (of the store asked for last)."""

    def __init__(self, job: Callable[[Store], None] = warm_job):
        self.job = job
        self.runs = 0  # runs finished
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._next: Store | None = None  # asked for while a run is under way

    def request(self, store: Store) -> None:
        """Start a run in the background, or ask the one under way for another."""
        with self._lock:
            if not self._idle.is_set():
                self._next = store
                return
            self._idle.clear()
        threading.Thread(target=self._run, args=[store], name="cockpit-warm", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no run is under way or asked for; False when ``timeout`` ran out."""
        return self._idle.wait(timeout)

    def _run(self, store: Store) -> None:
        while True:
            try:
                self.job(store)
            except Exception:  # warm_job logs its own; another job must not stop the thread
                log.exception("the warm-up failed")
            with self._lock:
                self.runs += 1
                if self._next is None:
                    self._idle.set()
                    return
                store, self._next = self._next, None


warmup = Warmup()


def load_job(store: Store, source: Source | Path, key: bytes,
             alerting: Alerting | None = None) -> None:
    """Load what is new in ``source``, then evaluate the alert rules when it brought new
    data; failures are logged, never raised into the scheduler."""
    if isinstance(source, (str, Path)):
        source = FolderSource(name=str(source), path=Path(source))
    if isinstance(source, FolderSource) and not source.path.exists():
        return
    try:
        summary = run_source(store, source, key)
    except SourceError as exc:  # recorded as a failed run; the Data page shows it
        log.warning("scheduled load of %s failed: %s", source.name, exc)
        return
    except Exception:  # a broken load must not stop later scans
        log.exception("scheduled load of %s failed", source.name)
        return
    if summary.files_loaded or summary.files_rejected or summary.notes:
        log.info("scheduled load of %s: %s", source.name, summary.text().replace("\n", "; "))
    if summary.rows_accepted:
        if alerting is not None:  # alerts first: they are waited for, the warm-up is not
            alert_job(store, alerting)
        warmup.request(store)


def run_now(retry_quarantined: bool = False) -> list[tuple[str, LoadSummary | None, str | None]]:
    """Load every source of this process now (the Data page's button): (name, summary,
    error) per source. Asked for by a person who just dropped a file, so fresh files are
    not left for later (a file still growing is still caught: it changes during its
    load and is deferred). A load that brought rows starts the warm-up in the background.
    Raises RuntimeError when this process loads no sources."""
    current = _plan
    if current is None or not current.sources:
        raise RuntimeError("This process loads no sources (start it with 'cockpit serve').")
    outcomes = []
    for source in current.sources:
        if isinstance(source, FolderSource) and not source.path.exists():
            outcomes.append((source.name, None, f"the folder {source.path} does not exist"))
            continue
        try:
            outcomes.append((source.name, run_source(current.store, source, current.key,
                                                     retry_quarantined, settle_seconds=0), None))
        except Exception as exc:  # shown to the user, who can act on it
            outcomes.append((source.name, None, str(exc)))
    if any(summary is not None and summary.rows_accepted for _, summary, _ in outcomes):
        warmup.request(current.store)  # as after a scheduled load
    return outcomes


def start_sources(store: Store, sources: Sequence[Source], key: bytes,
                  alerting: Alerting | None = None) -> BackgroundScheduler:
    """Start the background scheduler with one load job per source, each on its interval,
    and the alert cycle on its own."""
    configure(store, sources, key)
    scheduler = BackgroundScheduler(timezone="UTC")
    # once at start, for the data already in the store; then after every load, and
    # each day just after midnight UTC, when the period presets move on
    scheduler.add_job(warmup.request, "date", args=[store], id="warm", misfire_grace_time=None)
    scheduler.add_job(warmup.request, "cron", hour=0, minute=5, args=[store], id="warm-daily",
                      max_instances=1, coalesce=True)
    for source in sources:
        scheduler.add_job(
            load_job, "interval", seconds=source.interval_seconds,
            args=[store, source, key, alerting],
            id=f"load-{source.name}", max_instances=1, coalesce=True,
        )
    if alerting is not None:
        scheduler.add_job(alert_job, "interval", seconds=alerting.interval_seconds,
                          args=[store, alerting], id="alerts", max_instances=1, coalesce=True)
        if alerting.digest_recipients:
            scheduler.add_job(digest_job, "cron", day_of_week=alerting.digest_weekday,
                              hour=alerting.digest_hour, args=[store, alerting], id="digest",
                              max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler


def start(store: Store, source: Path, key: bytes, interval_seconds: int = 60) -> BackgroundScheduler:
    """Start the background scheduler with the one drop folder ``source`` (the cockpit
    started without a configuration file)."""
    folder = FolderSource(name=str(source), path=Path(source), interval_seconds=interval_seconds)
    return start_sources(store, [folder], key)
