"""Rows computed in Python (parsed JSON lines, pseudonymous ids, setup items, parse
issues) handed to SQL. A few rows go in as list parameters, which costs far less than
registering a pandas frame; many rows go in as a registered frame, which scales."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import duckdb
import pandas as pd

from .context import FRAME
from .sqltext import ident

SMALL_ROWS = 2000  # below this, list parameters are faster than a pandas frame

Columns = dict[str, tuple[str, Sequence]]  # name -> (SQL type, values)


@contextmanager
def python_rows(con: duckdb.DuckDBPyConnection, columns: Columns) -> Iterator[str]:
    """Make ``columns`` (all of the same length) readable in SQL within the block:
    yields a table expression to use after FROM, with each column of its SQL type.
    Blocks do not nest (they share one name)."""
    length = len(next(iter(columns.values()))[1])
    if length <= SMALL_ROWS:
        select = ", ".join(f"unnest(?::{sql_type}[]) AS {ident(name)}"
                           for name, (sql_type, _) in columns.items())
        con.execute(f"CREATE TEMP TABLE {FRAME} AS SELECT {select}",
                    [list(values) for _, values in columns.values()])
        try:
            yield FRAME
        finally:
            try:
                con.execute(f"DROP TABLE IF EXISTS {FRAME}")
            except duckdb.Error:  # a failed transaction: its rollback drops the table
                pass
        return
    frame = pd.DataFrame({name: pd.Series(values, dtype="int64" if sql_type == "BIGINT" else object)
                          for name, (sql_type, values) in columns.items()})
    con.register(FRAME, frame)
    try:
        casts = ", ".join(f"CAST({ident(name)} AS {sql_type}) AS {ident(name)}"
                          for name, (sql_type, _) in columns.items())
        yield f"(SELECT {casts} FROM {FRAME})"
    finally:
        con.unregister(FRAME)
