"""Page numbers computed once per filter and data version.

What the pages show changes only when a load run changes the data
(``store.data_version``), or, for numbers counted up to today, with the day. So a
page's numbers for a filter are kept in a small LRU under (function, arguments, data
version, UTC day) and read from there on the next request with the same filter: going
back to a view, or the default view that the scheduler computes ahead after each load
(``cockpit.scheduler.warm_job``). Only functions of the store's data go through it;
alert states and the audit log change between loads and are read fresh.

Each store keeps its own results. The arguments include the ``Filters``, whose scope
(the viewer's studies and sites) is part of its equality, so viewers of different
scopes never share a result. A result is handed out as a deep copy: a caller that
changes the frame it got changes nobody else's.
"""
from __future__ import annotations

import copy
import inspect
import threading
import weakref
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

import duckdb

from cockpit.store import Store, data_version

T = TypeVar("T")
SIZE = 256  # results: 0.01-1 MB each at the large scale (Overview the largest); the oldest go
# first. The warm-up alone keeps about 130 (each page's view unfiltered, by phase, segment and
# period preset).


class LRU:
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int):
        self.size = size
        self.hits = 0  # keys found by ``get``
        self.misses = 0  # keys not found by ``get``
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, default=None):
        with self._lock:
            if key in self._items:
                self.hits += 1
                self._items.move_to_end(key)
                return self._items[key]
            self.misses += 1
        return default

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def keys(self) -> list:
        """The keys kept, oldest first."""
        with self._lock:
            return list(self._items)

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_RESULTS: "weakref.WeakKeyDictionary[Store, LRU]" = weakref.WeakKeyDictionary()
_RESULTS_LOCK = threading.Lock()
_MISSING = object()


def results(store: Store) -> LRU:
    """The cached results of ``store`` (each store its own: a process serves one, tests
    open many)."""
    with _RESULTS_LOCK:
        if store not in _RESULTS:
            _RESULTS[store] = LRU(SIZE)
        return _RESULTS[store]


def _key(fn: Callable, con: duckdb.DuckDBPyConnection, args: tuple, kwargs: dict) -> tuple | None:
    """The cache key of ``fn(con, *args, **kwargs)``: the function, its arguments with
    their defaults filled in (so positional and keyword calls meet), the data version and
    the UTC day; None when an argument cannot be a key (a list, say)."""
    bound = inspect.signature(fn).bind(con, *args, **kwargs)
    bound.apply_defaults()
    arguments = tuple(bound.arguments.items())[1:]  # the connection is not part of it
    try:
        hash(arguments)
    except TypeError:
        return None
    today = datetime.now(timezone.utc).date()
    return (fn.__module__, fn.__qualname__, arguments, data_version(con), today)


def cached(store: Store, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(store.reader(), *args, **kwargs)``, computed once per arguments and data
    version of the store."""
    con = store.reader()
    key = _key(fn, con, args, kwargs)
    if key is None:
        return fn(con, *args, **kwargs)
    kept = results(store)
    value = kept.get(key, _MISSING)
    if value is _MISSING:
        value = fn(con, *args, **kwargs)
        kept.put(key, value)
    return copy.deepcopy(value)


def is_cached(store: Store, fn: Callable, *args: Any, **kwargs: Any) -> bool:
    """Whether ``cached`` would answer this call from the cache."""
    key = _key(fn, store.reader(), args, kwargs)
    return key is not None and key in results(store)
