"""Lists of studies, phases, sites, segments and channels for the filter bar."""
from __future__ import annotations

import duckdb

PHASE_ORDER = ["I", "I/II", "II", "II/III", "III", "IV"]


def filter_options(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict]]:
    """Dropdown options per filter dimension: ``[{"label": ..., "value": ...}]``."""
    def rows(sql: str) -> list[dict]:
        return [{"label": label, "value": value} for value, label in con.execute(sql).fetchall()]

    phases = [p for (p,) in con.execute("SELECT DISTINCT phase FROM study").fetchall()]
    phases.sort(key=lambda p: (PHASE_ORDER.index(p) if p in PHASE_ORDER else 99, p))
    return {
        "study": rows("SELECT study_id, study_id || ' · ' || name FROM study ORDER BY study_id"),
        "phase": [{"label": f"Phase {p}", "value": p} for p in phases],
        "site": rows("SELECT site_id, site_id || ' · ' || name FROM site ORDER BY site_id"),
        "segment": rows("SELECT segment_id, name FROM segment ORDER BY min_age"),
        "channel": rows(
            "SELECT channel_id, name FROM channel "
            "UNION ALL SELECT 'unattributed', 'Unattributed (no consented touch)' "
            "ORDER BY 1"
        ),
    }
