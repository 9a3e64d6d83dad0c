"""Subject access (GDPR Art. 15): everything the store holds on one person.

The rows are found the same way erasure finds them (``cockpit.erasure.select_person``),
so what an access request shows is what an erasure would remove. Each request is
itself recorded: a ``subject_request`` row (kind ``access``) and an audit entry
(action ``subject_access``), both naming the person by ``subject_hash(pid)`` only.
"""
from __future__ import annotations

import os
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import duckdb

from cockpit import audit
from cockpit.erasure import ErasureError, ledger_entry, open_exclusive, select_person
from cockpit.privacy import subject_hash


# Tables in the order a reader expects them: the person, their facts, what is derived.
DISPLAY_ORDER = ("person", "visitor_link", "touchpoint", "funnel_event", "consent_event", "journey",
                 "journey_path", "consent_decision", "quarantine")


class SubjectAccessError(RuntimeError):
    """The request cannot be answered (store missing or in use)."""


def iso(value: object) -> object:
    """A value as JSON takes it: timestamps (stored naive UTC) in ISO 8601 with ``Z``,
    dates in ISO, decimals as floats."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _rows(con: duckdb.DuckDBPyConnection, table: str, clause: str, params: list) -> list[dict]:
    cur = con.execute(f'SELECT * FROM "{table}" WHERE {clause} ORDER BY ALL', params)
    columns = [d[0] for d in cur.description]
    return [{c: iso(v) for c, v in zip(columns, row)} for row in cur.fetchall()]


def current_consent(con: duckdb.DuckDBPyConnection, pid: str) -> dict[str, dict]:
    """The person's current consent per purpose: the latest event of each purpose
    (consent is an append-only history), with when and through which channel."""
    rows = con.execute(
        # at equal times a withdrawal wins, as in the journey (cockpit.derive)
        "SELECT purpose, arg_max(granted, (ts, NOT granted)), max(ts), "
        "arg_max(channel_id, (ts, NOT granted)), arg_max(notice_version, (ts, NOT granted)) "
        "FROM consent_event WHERE pid = ? GROUP BY purpose ORDER BY purpose", [pid]).fetchall()
    return {purpose: {"granted": bool(granted), "since": iso(ts), "channel_id": channel,
                      "notice_version": notice}
            for purpose, granted, ts, channel, notice in rows}


def collect(con: duckdb.DuckDBPyConnection, pid: str) -> dict:
    """What the store holds on ``pid`` (reads only): row counts and rows per table,
    the current consent per purpose, the erasure ledger entry and the earlier requests
    of the person."""
    where = select_person(con, pid, with_resolutions=False).where
    order = [t for t in DISPLAY_ORDER if t in where] + [t for t in where if t not in DISPLAY_ORDER]
    rows = {table: _rows(con, table, *where[table]) for table in order}
    subject = subject_hash(pid)
    ledger = ledger_entry(con, pid)
    requests = _rows(con, "subject_request", "subject = ?", [subject])
    return {
        "pid": pid,
        "subject": subject,
        "found": any(rows.values()),
        "counts": {table: len(found) for table, found in rows.items()},
        "rows": rows,
        "consent": current_consent(con, pid),
        "in_erasure_ledger": ledger is not None,
        "erasure": ({"requested_at": iso(ledger[0]), "completed_at": iso(ledger[1])}
                    if ledger else None),
        "requests": requests,
    }


def record_access(con: duckdb.DuckDBPyConnection, pid: str, handled_by: str,
                  received_at: datetime | None = None) -> dict:
    """Answer an access request on ``con`` (the serving process's writer, or a
    connection of its own): ``collect``, then record the subject request (kind
    ``access``, received at ``received_at`` or now, completed now) and the audit entry
    (action ``subject_access``, target the subject hash, new_value the row counts) in
    one transaction. Returns the ``collect`` result with ``request_id``,
    ``received_at`` and ``completed_at`` of this request."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    received = received_at or now
    if received.tzinfo is not None:
        received = received.astimezone(timezone.utc).replace(tzinfo=None)
    con.execute("BEGIN TRANSACTION")
    try:
        result = collect(con, pid)
        request_id = con.execute(
            "INSERT INTO subject_request (kind, subject, received_at, completed_at, handled_by) "
            "VALUES ('access', ?, ?, ?, ?) RETURNING request_id",
            [result["subject"], received, now, handled_by]).fetchone()[0]
        audit.append(con, handled_by, "subject_access", target=result["subject"],
                     new_value={"request_id": request_id,
                                "rows": {t: n for t, n in result["counts"].items() if n}}, ts=now)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    result.update(request_id=int(request_id), received_at=iso(received), completed_at=iso(now))
    result["requests"] = result["requests"] + [{
        "request_id": int(request_id), "kind": "access", "subject": result["subject"],
        "received_at": iso(received), "completed_at": iso(now), "handled_by": handled_by}]
    return result


def subject_access(db_path: str | os.PathLike, pid: str, handled_by: str,
                   received_at: datetime | None = None) -> dict:
    """``record_access`` on the store file at ``db_path``. Raises SubjectAccessError
    when the file is missing or another process has it open."""
    try:
        con = open_exclusive(Path(db_path))
    except ErasureError as exc:
        raise SubjectAccessError(str(exc)) from exc
    try:
        return record_access(con, pid, handled_by, received_at)
    finally:
        con.close()


def summary_lines(result: dict) -> list[str]:
    """A readable summary of a ``collect`` / ``record_access`` result."""
    lines = [f"Person {result['pid']} (subject {result['subject'][:16]}...)"]
    if result["in_erasure_ledger"]:
        lines.append(f"In the erasure ledger: yes (erased {result['erasure']['completed_at']})")
    else:
        lines.append("In the erasure ledger: no")
    total = sum(result["counts"].values())
    lines.append(f"Rows held: {total}" + ("" if total else " (no data of this person)"))
    for table, n in result["counts"].items():
        lines.append(f"  {table:<16} {n:>6}")
    if result["consent"]:
        lines.append("Current consent:")
        for purpose, c in result["consent"].items():
            state = "granted" if c["granted"] else "withdrawn"
            lines.append(f"  {purpose:<16} {state} since {c['since']}")
    else:
        lines.append("Current consent: none recorded")
    person = result["rows"].get("person") or []
    for p in person:
        lines.append(f"First seen {p['first_seen']}, birth year {p['birth_year']}, segment {p['segment_id']}")
    journeys = result["rows"].get("journey") or []
    for j in journeys:
        lines.append(f"Study {j['study_id']}: lead {j['lead_ts']} via {j['channel_id']}"
                     + (f", site {j['site_id']}" if j.get("site_id") else ""))
    if "request_id" in result:
        lines.append(f"Recorded as access request {result['request_id']} (received "
                     f"{result['received_at']}, completed {result['completed_at']}).")
    return lines
