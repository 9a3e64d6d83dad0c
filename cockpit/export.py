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


# ---------------------------------------------------------------- de-identified export
DEFAULT_SMALL_CELL = 11
SUPPRESSED = "suppressed"
# Numbers that are not about persons and are not derived from person counts: they stay
# even in a row whose counts are suppressed.
INDEPENDENT_COLUMNS = frozenset({
    "spend", "impressions", "clicks", "ctr_pct", "budget", "value_per_randomized",
    "target_randomized", "year", "week", "month",
})


def _is_count(series: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series)


def deidentify(frame: pd.DataFrame, threshold: int = DEFAULT_SMALL_CELL) -> pd.DataFrame:
    """The frame with small cells suppressed, for sharing outside the study team.

    Method (small-cell suppression as in the CMS cell size policy and HIPAA's
    "minimum necessary"): every count column (integer dtype) is a count of persons or
    events. A count from 1 to ``threshold - 1`` is suppressed (primary suppression; zero
    reveals no one and stays). So that a suppressed cell cannot be derived back from the
    column total shown elsewhere, a column with exactly one suppressed cell also loses
    its smallest other non-zero cell (complementary suppression). In a row with any
    suppressed count, every other number that is not independent of the counts (rates,
    costs per lead, medians) is suppressed too, since it could be divided back into the
    count. Suppressed cells read ``suppressed``.
    """
    if threshold < 2:
        raise ValueError("the small-cell threshold must be at least 2")
    out = frame.copy()
    counts = [c for c in out.columns if _is_count(out[c]) and c not in INDEPENDENT_COLUMNS]
    hidden = pd.DataFrame(False, index=out.index, columns=out.columns)
    for col in counts:
        values = out[col]
        small = values.between(1, threshold - 1)
        hidden[col] = small
        if small.sum() == 1 and len(values) > 1:
            others = values[~small & (values > 0)]
            if not others.empty:
                hidden.loc[others.idxmin(), col] = True
    affected = hidden[counts].any(axis=1) if counts else pd.Series(False, index=out.index)
    for col in out.columns:
        if col in counts or col in INDEPENDENT_COLUMNS:
            continue
        if pd.api.types.is_numeric_dtype(out[col]) and not pd.api.types.is_bool_dtype(out[col]):
            hidden[col] = affected
    for col in out.columns:
        if hidden[col].any():
            out[col] = out[col].astype(object).where(~hidden[col], SUPPRESSED)
    return out


def send(frame: pd.DataFrame, table: str, f: Filters | None = None,
         deidentified: bool | None = None) -> dict:
    """The download of ``frame`` for the signed-in user: de-identified when they asked
    for it (the switch in the filter bar) and recorded in the audit log (who, which
    table, which filter, how many rows)."""
    from cockpit import access, audit, context, settings

    if deidentified is None:
        deidentified = settings.deidentified_exports()
    name = filename(table, f) if f is not None else f"{table}.csv"
    if deidentified:
        frame = deidentify(frame, settings.small_cell_threshold())
        name = name[:-4] + "_deidentified.csv"
    detail = {"rows": int(len(frame)), "filter": f.label() if f is not None else "",
              "deidentified": bool(deidentified)}
    actor = access.actor()
    context.store().write_sync(lambda con: audit.append(con, actor, "export", name, new_value=detail))
    from dash import dcc

    return dcc.send_string(to_csv(frame), name)
