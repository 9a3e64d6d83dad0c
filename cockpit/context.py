"""The store the running cockpit serves from. Set once by the app factory; pages and
scheduled jobs reach the database only through it."""
from __future__ import annotations

import duckdb

from cockpit.store import Store

_store: Store | None = None


def set_store(store: Store) -> None:
    global _store
    _store = store


def store() -> Store:
    if _store is None:
        raise RuntimeError("The cockpit has no store: start it with 'cockpit serve'.")
    return _store


def reader() -> duckdb.DuckDBPyConnection:
    """The calling thread's read cursor."""
    return store().reader()
