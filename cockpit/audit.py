"""The audit trail: append-only and tamper-evident.

Every entry carries the SHA-256 of the previous entry's hash and its own fields, so an
edited or deleted row breaks the chain from that entry on (21 CFR Part 11 / ICH E6(R3):
computer-generated, time-stamped audit trails). Entries are written through the store's
single writer, one at a time, so the chain has no forks. Times are UTC.

A deleted last entry leaves no successor to break; ``verify`` catches it because the
entry ids come from a sequence that never goes back.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb

GENESIS = "0" * 64


def _digest(prev_hash: str, entry_id: int, ts: datetime, actor: str, action: str,
            target: str | None, old_value: str | None, new_value: str | None) -> str:
    body = json.dumps([prev_hash, entry_id, ts.isoformat(timespec="microseconds"), actor, action,
                       target, old_value, new_value], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def append(con: duckdb.DuckDBPyConnection, actor: str, action: str, target: str | None = None,
           old_value: object = None, new_value: object = None,
           ts: datetime | None = None) -> int:
    """Add one entry and return its id. Call it on the writer (``store.write``) or on a
    connection no other thread writes to; values that are not text are stored as JSON."""
    ts = (ts or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    old, new = _text(old_value), _text(new_value)
    entry_id = con.execute("SELECT nextval('audit_seq')").fetchone()[0]
    last = con.execute("SELECT hash FROM audit_log ORDER BY entry_id DESC LIMIT 1").fetchone()
    prev = last[0] if last else GENESIS
    digest = _digest(prev, entry_id, ts, actor, action, target, old, new)
    con.execute(
        "INSERT INTO audit_log (entry_id, ts, actor, action, target, old_value, new_value, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [entry_id, ts, actor, action, target, old, new, prev, digest])
    return entry_id


@dataclass(frozen=True)
class Verdict:
    """Result of ``verify``: ``ok`` and, when not, the first entry found broken and why."""

    ok: bool
    entries: int
    broken_entry: int | None = None
    reason: str | None = None


def verify(con: duckdb.DuckDBPyConnection) -> Verdict:
    """Walk the chain from the first entry and name the first one that does not match:
    an edited entry (its hash is not that of its fields), a deleted one (the next entry
    does not point at its predecessor), or a deleted tail (the sequence went further)."""
    rows = con.execute(
        "SELECT entry_id, ts, actor, action, target, old_value, new_value, prev_hash, hash "
        "FROM audit_log ORDER BY entry_id").fetchall()
    prev = GENESIS
    for entry_id, ts, actor, action, target, old, new, prev_hash, stored in rows:
        if prev_hash != prev:
            return Verdict(False, len(rows), entry_id,
                           "does not follow the entry before it (an entry was deleted or edited)")
        if _digest(prev_hash, entry_id, ts, actor, action, target, old, new) != stored:
            return Verdict(False, len(rows), entry_id, "its fields do not match its hash (edited)")
        prev = stored
    issued = _last_issued(con)
    last_id = rows[-1][0] if rows else 0
    if issued > last_id:
        return Verdict(False, len(rows), last_id + 1, "entries after the last one were deleted")
    return Verdict(True, len(rows))


def _last_issued(con: duckdb.DuckDBPyConnection) -> int:
    """The highest entry id the sequence has handed out (0 when none)."""
    row = con.execute(
        "SELECT start_value, increment_by, last_value FROM duckdb_sequences() "
        "WHERE sequence_name = 'audit_seq'").fetchone()
    return int(row[2]) if row and row[2] is not None else 0


def entries(con: duckdb.DuckDBPyConnection, limit: int = 200) -> list[dict]:
    """The newest entries, newest first."""
    cur = con.execute(
        "SELECT entry_id, ts, actor, action, target, old_value, new_value FROM audit_log "
        "ORDER BY entry_id DESC LIMIT ?", [limit])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]
