"""CSV export of the tables the pages show.

The exported rows are the same DataFrame the table shows. Text cells that a
spreadsheet would run as a formula (starting with = + - @, tab or carriage return)
are prefixed with a quote (OWASP CSV injection guidance); numbers stay numbers, so
a negative amount is still a number.
"""
from __future__ import annotations

import numbers

import pandas as pd

from cockpit.filters import Filters

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """The cell as exported: text that could start a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text cell neutralised; numeric columns untouched."""
    out = frame.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].map(lambda v: v if isinstance(v, numbers.Number) else neutralise(v))
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def to_csv(frame: pd.DataFrame) -> str:
    """CSV text of the frame, safe to open in a spreadsheet."""
    return safe_frame(frame).to_csv(index=False)


def filename(table: str, f: Filters) -> str:
    """``<table>_<filter>.csv``: the filter in the name, so a saved file says what it holds."""
    return f"{table}_{f.slug()}.csv"
