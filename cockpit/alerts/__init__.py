"""Alerts: rules managers define (``rules``), their evaluation and state machine
(``evaluate``), the e-mails (``notify``) and their delivery through an outbox in the
store (``smtp``).

``run_alert_cycle`` is what the scheduler calls, on an interval and after every load:
evaluate every rule once through the store's writer, then send what is queued.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime

from cockpit.alerts.evaluate import Outcome, evaluate_all
from cockpit.alerts.smtp import FlushResult, SmtpSettings, flush_outbox

log = logging.getLogger("cockpit.alerts")

_CYCLE_LOCK = threading.Lock()
WRITER_THREAD = "cockpit-writer"  # the name cockpit.store.Store gives its writer thread


@dataclass(frozen=True)
class CycleResult:
    """One alert cycle: each rule's outcome, and what the flush sent (None when no
    SMTP server is configured: messages stay queued until one is)."""

    outcomes: list[Outcome]
    flush: FlushResult | None


def run_alert_cycle(store, settings: SmtpSettings | None, base_url: str, now: datetime | None = None,
                    as_of: date | None = None) -> CycleResult:
    """Evaluate all enabled rules once (as of ``as_of``, default: the last complete day
    with data; at ``now``, default: the current UTC time), then flush the outbox.

    Cycles never overlap: a cycle started while another runs (the interval job and a
    load finishing together) waits for it, then evaluates on the newer data."""
    if threading.current_thread().name == WRITER_THREAD:
        # the cycle queues its writes on the writer and waits for them: from inside a
        # write it would wait for itself forever
        raise RuntimeError("run_alert_cycle must not run inside a store write; call it after the "
                           "load's write has returned")
    now = now or datetime.utcnow()
    with _CYCLE_LOCK:
        domain = settings.domain if settings is not None else "localhost"
        outcomes = evaluate_all(store, now=now, as_of=as_of, base_url=base_url, domain=domain)
        if settings is None:
            queued = sum(1 for o in outcomes if o.message_id)
            if queued:
                log.warning("%d alert e-mail(s) queued, none sent: no [smtp] settings", queued)
            return CycleResult(outcomes, None)
        return CycleResult(outcomes, flush_outbox(store, settings, now=now))


__all__ = ["run_alert_cycle", "CycleResult", "SmtpSettings"]
