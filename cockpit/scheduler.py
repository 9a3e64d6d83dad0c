"""Scheduled work inside the serving process: watch the drop folder and load new files.

Jobs never overlap (one instance, missed runs coalesced) and write only through the
store's writer thread, so pages keep answering from their own cursors while a load runs.
"""
from __future__ import annotations

import logging
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from cockpit import derive
from cockpit.ingest import load_folder
from cockpit.store import Store

log = logging.getLogger("cockpit.scheduler")


def load_job(store: Store, source: Path, key: bytes) -> None:
    """Load every new file of ``source``; failures are logged, never raised into the scheduler."""
    if not source.exists():
        return
    try:
        summary = store.write_sync(
            lambda con: load_folder(con, source, key, after_load=derive.refresh)
        )
    except Exception:  # a broken load must not stop later scans
        log.exception("scheduled load of %s failed", source)
        return
    if summary.files_loaded or summary.files_rejected:
        log.info("scheduled load: %s", summary.text().replace("\n", "; "))


def start(store: Store, source: Path, key: bytes, interval_seconds: int = 60) -> BackgroundScheduler:
    """Start the background scheduler with the drop-folder loader."""
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        load_job, "interval", seconds=interval_seconds, args=[store, source, key],
        id="load-drop-folder", max_instances=1, coalesce=True,
    )
    scheduler.start()
    return scheduler
