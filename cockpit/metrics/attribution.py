"""Touchpoint paths per person, aggregated in DuckDB, and the attribution table of the
Attribution page.

A person's path (per study) is the channels of their usable touches, oldest first:

- usable as in ``derive``: a tracking touch (ad click, page view, QR scan, UTM form)
  counts only while the person's current tracking consent is granted; a referral or an
  event sign-up always counts. Touches of the study or of no particular study.
- from ``LOOKBACK_DAYS`` before the lead up to the conversion: the lead itself (mode
  ``lead``) or the randomization (mode ``randomized``; persons not randomized keep every
  touch up to now, or up to the moment they withdrew the consent to be contacted for
  research, ``journey.consent_withdrawn_ts``: they stop being counted from then on).
- consecutive touches of one channel (an ad click and the form it led to) are one step,
  dated by the latest of them.

Mode ``lead``: every person in the journey table became a lead (the store knows persons
only from their first form, referral or sign-up), so every path converts and there are
no nulls. Mode ``randomized``: the leads of the period are the persons; those randomized
convert, the others (also those still in process) are nulls.

The filter applies to the persons: study, phase, site and segment of their journey, the
lead date in the date range, and a channel filter keeps persons whose path touches one
of the chosen channels. A path does not depend on the filter otherwise, so the paths are
walked once per load into ``journey_path`` (``derive.journey_path_sql``) and a filter
change reads them from there. Only path -> counts rows leave the database.
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from cockpit.analytics import attribution as attr
from cockpit.filters import Filters

MODES = {"lead": "up to the lead", "randomized": "up to randomization"}
SEP = " > "
PERSON_COLUMNS = {"study": "j.study_id", "site": "j.site_id", "segment": "j.segment_id"}
PATH_COLUMNS = {"study": "p.study_id", "site": "p.site_id", "segment": "p.segment_id"}
TABLE_MODELS = ("first_touch", "last_touch", "linear", "position_based", "time_decay", "markov")
TABLE_COLUMNS = ["channel_id", "channel", "persons_on_path", *TABLE_MODELS, "removal_effect_pct"]


def _mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _person_paths_sql(f: Filters, mode: str) -> tuple[str, list]:
    """One row per person and study of the filter with a usable touch: converted flag,
    step channels, ages of the steps in whole days before the conversion
    (``journey_path``, which carries the journey's site, segment, lead time and
    randomization, so the paths are filtered without joining the journey). A person
    with no usable touch up to the mode's end has NULL channels."""
    where, params = f.without("channel").where(PATH_COLUMNS, date_column="p.lead_ts")
    # mode is checked by _mode: journey_path has a pair of columns per mode (derive.PATH_ENDS)
    converted = "TRUE" if mode == "lead" else "p.randomized"
    sql = f"""
    SELECT p.pid, {converted} AS converted,
           p.{mode}_channels AS channels, p.{mode}_ages AS ages
    FROM journey_path p
    WHERE {where}
    """
    return sql, params


def _channel_condition(f: Filters) -> tuple[str, list]:
    if not f.channel:
        return "TRUE", []
    return f"list_has_any(channels, [{', '.join('?' for _ in f.channel)}])", list(f.channel)


def path_counts(con: duckdb.DuckDBPyConnection, f: Filters, mode: str = "lead") -> pd.DataFrame:
    """Distinct paths with their persons: columns ``path`` (channels joined by ' > '),
    ``steps``, ``conversions``, ``nulls``; most frequent first. Persons without a usable
    touch are left out (see ``coverage``)."""
    sql, params = _person_paths_sql(f, _mode(mode))
    cond, extra = _channel_condition(f)
    out = con.execute(
        f"""SELECT array_to_string(channels, '{SEP}') AS path, len(channels) AS steps,
                   count(*) FILTER (WHERE converted) AS conversions,
                   count(*) FILTER (WHERE NOT converted) AS nulls
            FROM ({sql}) WHERE channels IS NOT NULL AND {cond}
            GROUP BY channels
            ORDER BY conversions + nulls DESC, path""",
        params + extra,
    ).df()
    return out.astype({"steps": "int64", "conversions": "int64", "nulls": "int64"})


def conversion_ages(con: duckdb.DuckDBPyConnection, f: Filters, mode: str = "lead") -> pd.DataFrame:
    """Converting persons grouped by path and the ages of its steps (whole days before
    the conversion): columns ``path``, ``ages`` (list), ``conversions``. Single-step
    paths get age 0 (their one step earns everything whatever its age)."""
    sql, params = _person_paths_sql(f, _mode(mode))
    cond, extra = _channel_condition(f)
    out = con.execute(
        f"""SELECT array_to_string(channels, '{SEP}') AS path,
                   CASE WHEN len(channels) = 1 THEN [0] ELSE ages END AS ages,
                   count(*) AS conversions
            FROM ({sql}) WHERE channels IS NOT NULL AND converted AND {cond}
            GROUP BY ALL ORDER BY conversions DESC, path, ages""",
        params + extra,
    ).df()
    out["ages"] = [list(map(int, a)) for a in out["ages"]]
    return out.astype({"conversions": "int64"})


def coverage(con: duckdb.DuckDBPyConnection, f: Filters, mode: str = "lead") -> dict:
    """Persons of the filter, how many converted, and how many had no usable touch (they
    cannot be attributed: no consented tracking and no referral or sign-up)."""
    mode = _mode(mode)
    where, params = f.without("channel").where(PERSON_COLUMNS, date_column="j.lead_ts")
    paths, path_params = _person_paths_sql(f, mode)
    converted = "TRUE" if mode == "lead" else "j.randomized_ts IS NOT NULL"
    # the persons from the journey, those with a path from the paths: no join of the two
    row = con.execute(
        f"""SELECT j.persons, j.converted, p.touched, p.touched_conversions, p.multi_step
            FROM (SELECT count(*) AS persons, count(*) FILTER (WHERE {converted}) AS converted
                  FROM journey j WHERE {where}) j,
                 (SELECT count(*) FILTER (WHERE channels IS NOT NULL) AS touched,
                         count(*) FILTER (WHERE channels IS NOT NULL AND converted) AS touched_conversions,
                         count(*) FILTER (WHERE len(channels) > 1) AS multi_step
                  FROM ({paths})) p""",
        params + path_params,
    ).fetchone()
    persons, converted, touched, touched_conv, multi = (int(v or 0) for v in row)
    return {"persons": persons, "conversions": converted, "without_touch": persons - touched,
            "without_touch_conversions": converted - touched_conv, "multi_step": multi}


def _attribute(counts: pd.DataFrame, ages: pd.DataFrame, half_life_days: float) -> attr.Attribution:
    paths = [tuple(p.split(SEP)) for p in counts["path"]]
    result = attr.attribute(paths, counts["conversions"], counts["nulls"],
                            models=[m for m in TABLE_MODELS if m != "time_decay"])
    decay = attr.time_decay([tuple(p.split(SEP)) for p in ages["path"]],
                            ages["conversions"].to_numpy(float), half_life_days, ages["ages"].tolist())
    models = dict(result.models)
    models["time_decay"] = {c: decay.get(c, 0.0) for c in result.channels}
    return attr.Attribution({m: models[m] for m in TABLE_MODELS}, result.removal_effects,
                            result.conversion_probability, result.total_conversions,
                            result.total_nulls, result.channels)


def attribution(con: duckdb.DuckDBPyConnection, f: Filters, mode: str = "lead",
                half_life_days: float = attr.DEFAULT_HALF_LIFE_DAYS) -> attr.Attribution | None:
    """Every model over the persons' paths; time decay uses the steps' ages in days.
    None when no person of the filter has a path."""
    counts = path_counts(con, f, mode)
    if counts.empty:
        return None
    return _attribute(counts, conversion_ages(con, f, mode), half_life_days)


def channel_table(con: duckdb.DuckDBPyConnection, f: Filters, mode: str = "lead",
                  half_life_days: float = attr.DEFAULT_HALF_LIFE_DAYS) -> pd.DataFrame:
    """One row per channel on any path: persons whose path touches it, the conversions
    each model credits to it (2 decimals) and its Markov removal effect in percent.
    Rows by Markov credit, largest first."""
    counts = path_counts(con, f, mode)
    if counts.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    result = _attribute(counts, conversion_ages(con, f, mode), half_life_days)
    on_path = {c: 0 for c in result.channels}
    for path, persons in zip(counts["path"], counts["conversions"] + counts["nulls"]):
        for c in set(path.split(SEP)):
            on_path[c] += int(persons)
    names = dict(con.execute("SELECT channel_id, name FROM channel").fetchall())
    rows = [{
        "channel_id": c, "channel": names.get(c, c), "persons_on_path": on_path[c],
        **{m: round(result.models[m][c], 2) for m in TABLE_MODELS},
        "removal_effect_pct": round(100.0 * result.removal_effects[c], 1),
    } for c in result.channels]
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return table.sort_values(["markov", "channel_id"], ascending=[False, True], kind="stable") \
        .reset_index(drop=True)


def model_sums(table: pd.DataFrame) -> dict[str, float]:
    """Credited conversions per model over the table's rows (each equals the conversions)."""
    return {m: float(np.round(table[m].sum(), 6)) for m in TABLE_MODELS if m in table}
