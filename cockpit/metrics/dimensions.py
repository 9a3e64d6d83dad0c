"""Lists of studies, phases, sites, segments and channels for the filter bar."""
from __future__ import annotations

import duckdb

from cockpit.filters import DIMENSIONS, Filters

PHASE_ORDER = ["I", "I/II", "II", "II/III", "III", "IV"]


def filter_options(con: duckdb.DuckDBPyConnection, f: Filters | None = None) -> dict[str, list[dict]]:
    """Dropdown options per filter dimension: ``[{"label": ..., "value": ...}]``. Studies,
    phases and sites are those the viewer's scope (``f.scope``) lets them see, so the
    list of a site user names no other site."""
    f = f or Filters()

    def rows(sql: str, params: list | None = None) -> list[dict]:
        return [{"label": label, "value": value}
                for value, label in con.execute(sql, params or []).fetchall()]

    # the viewer's scope only: the options do not narrow with the filter's own choices
    study_where, study_params = f.without(*DIMENSIONS).where({"study": "st.study_id", "site": "si.site_id"})
    visible_sites = ("SELECT si.site_id, si.site_id || ' · ' || si.name, si.study_id FROM site si "
                     "JOIN study st USING (study_id) WHERE " + study_where)
    studies = con.execute(
        "SELECT DISTINCT st.study_id, st.study_id || ' · ' || st.name, st.phase FROM study st "
        "LEFT JOIN site si USING (study_id) WHERE " + study_where + " ORDER BY 1", study_params).fetchall()
    phases = sorted({phase for (_, _, phase) in studies},
                    key=lambda p: (PHASE_ORDER.index(p) if p in PHASE_ORDER else 99, p))
    return {
        "study": [{"label": label, "value": value} for value, label, _ in studies],
        "phase": [{"label": f"Phase {p}", "value": p} for p in phases],
        "site": rows(f"SELECT site_id, label FROM ({visible_sites}) v(site_id, label, study_id) "
                     "ORDER BY site_id", study_params),
        "segment": rows("SELECT segment_id, name FROM segment ORDER BY min_age"),
        "channel": rows(
            "SELECT channel_id, name FROM channel "
            "UNION ALL SELECT 'unattributed', 'Unattributed (no consented touch)' "
            "ORDER BY 1"
        ),
    }
