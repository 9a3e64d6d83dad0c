"""The Compliance page's callbacks on the demo store, run as the server runs them (inside
a request, with a signed-in user and their scope), against the numbers of
``cockpit.metrics.compliance`` computed independently."""
from __future__ import annotations

import csv
import io
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dash
import flask
import pytest

from cockpit import audit, context
from cockpit.access import Principal
from cockpit.filters import Filters, Scope
from cockpit.metrics import compliance
from cockpit.store import Store

ADMIN = Principal("dpo", "admin")


@pytest.fixture
def page(cockpit_app):
    import pages.compliance as module

    return module


@pytest.fixture
def store(cockpit_app, demo_db, tmp_path):
    """The app serving a private copy of the demo store (the shared one is never written
    to) with two access requests and two erasures added (the demo has none); the
    previous store is put back after."""
    target = tmp_path / "compliance.duckdb"
    shutil.copy(demo_db, target)
    if Path(str(demo_db) + ".wal").exists():
        shutil.copy(str(demo_db) + ".wal", str(target) + ".wal")
    private = Store(target)
    now = datetime.now(timezone.utc).replace(tzinfo=None)

    def add(con):
        con.executemany("INSERT INTO subject_request (request_id, kind, subject, received_at, completed_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [(90001, "access", "x-late", now - timedelta(days=45), None),
                         (90002, "access", "x-done", now - timedelta(days=20), now - timedelta(days=18))])
        con.execute("INSERT INTO erasure_ledger VALUES ('x-e1', ?, ?, 'dpo'), ('x-e2', ?, NULL, 'dpo')",
                    [now - timedelta(days=10), now - timedelta(days=6), now - timedelta(days=2)])

    private.write_sync(add)
    previous = context._store
    context.set_store(private)
    yield private
    context.set_store(previous)
    private.close()


def run_as(app, principal: Principal, fn, *args, scope: Scope | None = None):
    with app.server.test_request_context("/_dash-update-component", method="POST"):
        flask.g.principal = principal
        flask.g.scope = scope if scope is not None else principal.scope
        return fn(*args)


def by_id(page, out: list) -> dict:
    """The refresh outputs by component id (cards, note, chart, then grid rows / columns)."""
    ids = [cid for cid, _, _, _ in page.CARDS] + ["co-requests-note", "co-weekly-chart"]
    ids += [f"{tid}.{prop}" for tid in page.TABLES for prop in ("rowData", "columnDefs")]
    return dict(zip(ids, out))


def test_the_page_is_registered_for_admin_and_leadership(page):
    entry = dash.page_registry["pages.compliance"]
    assert (entry["path"], entry["name"], entry["order"]) == ("/compliance", "Compliance", 85)
    assert tuple(entry["roles"]) == ("admin", "leadership")


def test_cards_and_tables_match_the_metrics(page, cockpit_app, store):
    out = by_id(page, run_as(cockpit_app, ADMIN, page.refresh, ""))
    con = store.reader()
    f = Filters(scope=Scope())
    s = compliance.summary(con, f)
    # the demo's tracking history has refusals and withdrawals; research contact has neither
    assert s["refusal_rate_tracking"] > 0 and s["withdrawals"] > 0
    assert out["co-consent-research"] == f"{s['consent_rate_research']:.1f}%"
    assert out["co-consent-tracking"] == f"{s['consent_rate_tracking']:.1f}%"
    assert out["co-refusal-tracking"] == f"{s['refusal_rate_tracking']:.1f}%"
    assert out["co-withdrawals"] == f"{s['withdrawals']:,}"
    assert out["co-apply"] == page.fmt_hours(s["median_hours_to_apply"])
    # erasures of 4 days (the other still open); access: 1 of 2 over 30 days
    assert out["co-erasure"] == "4.0 days"
    assert out["co-access-late"] == "1 of 2"
    assert out["co-requests-note"].startswith("Erasures requested in the period: 2 (1 completed, 1 open)")

    purposes = compliance.purpose_table(con, f)
    assert [r["decided"] for r in out["co-purposes.rowData"]] == purposes["decided"].tolist()
    assert [r["withdrawals"] for r in out["co-purposes.rowData"]] == purposes["withdrawals"].tolist()
    weeks = compliance.weekly_withdrawals(con, f)
    assert sum(r["withdrawals"] for r in out["co-weekly.rowData"]) == weeks["withdrawals"].sum() == s["withdrawals"]
    chart = out["co-weekly-chart"]["data"]
    assert sum(chart[0]["y"]) + sum(chart[1]["y"]) == s["withdrawals"]

    access = out["co-access.rowData"]
    assert [(r["request_id"], r["status"], r["over_30_days"]) for r in access] == [
        ("90001", "open", True), ("90002", "completed", False)]
    assert 44.9 < access[0]["age_days"] < 45.1 and access[1]["age_days"] == 2.0
    erasures = out["co-erasures.rowData"]
    assert [(r["status"], r["days_to_complete"]) for r in erasures] == [("open", None), ("completed", 4.0)]
    # the red rows of the request grids, and the hover texts of the columns
    grid = page._table("co-access").children[1]
    assert grid.getRowStyle["styleConditions"][0]["condition"] == "params.data.over_30_days"
    tips = {c["field"]: c.get("headerTooltip") for c in out["co-purposes.columnDefs"]}
    assert tips["consent_rate_pct"] == compliance.DEFINITIONS["consent_rate_pct"]


def test_a_filter_hides_the_requests_and_narrows_the_persons(page, cockpit_app, store):
    con = store.reader()
    study = con.execute("SELECT min(study_id) FROM study").fetchone()[0]
    out = by_id(page, run_as(cockpit_app, ADMIN, page.refresh, f"?study={study}"))
    assert out["co-requests-note"] == compliance.HIDDEN_NOTE
    assert out["co-access.rowData"] == [] and out["co-erasures.rowData"] == []
    assert (out["co-erasure"], out["co-access-late"]) == ("not shown", "not shown")
    mine = compliance.purpose_table(con, Filters.make(study=study))
    everyone = compliance.purpose_table(con, Filters())
    assert [r["decided"] for r in out["co-purposes.rowData"]] == mine["decided"].tolist()
    assert mine["decided"].sum() < everyone["decided"].sum()
    # a viewer confined to one study sees the same persons, and no requests, without a filter
    confined = by_id(page, run_as(cockpit_app, ADMIN, page.refresh, "", scope=Scope(studies=(study,))))
    assert [r["decided"] for r in confined["co-purposes.rowData"]] == mine["decided"].tolist()
    assert confined["co-requests-note"] == compliance.HIDDEN_NOTE


def test_an_invalid_filter_changes_nothing(page, cockpit_app):
    out = run_as(cockpit_app, ADMIN, page.refresh, "?start=not-a-date")
    assert all(v is dash.no_update for v in out)


def test_exports_hold_the_rows_shown(page, cockpit_app, store):
    con = store.reader()
    sent = run_as(cockpit_app, ADMIN, page.download_purposes, 1, "")
    assert sent["filename"] == "compliance_consent_all.csv"
    rows = list(csv.DictReader(io.StringIO(sent["content"])))
    table = compliance.purpose_table(con, Filters())
    assert [r["purpose"] for r in rows] == table["purpose"].tolist()
    assert [int(r["decided"]) for r in rows] == table["decided"].tolist()
    assert list(rows[0]) == compliance.PURPOSE_COLUMNS

    sent = run_as(cockpit_app, ADMIN, page.download_access, 1, "")
    rows = list(csv.DictReader(io.StringIO(sent["content"])))
    assert [(r["request_id"], r["over_30_days"]) for r in rows] == [("90001", "True"), ("90002", "False")]

    weeks = run_as(cockpit_app, ADMIN, page.download_weekly, 1, "?start=2026-10-01")
    assert weeks["filename"] == "compliance_withdrawals_2026-10-01_to_today.csv"
    expected = compliance.weekly_withdrawals(con, Filters.make(start="2026-10-01"))
    assert [int(r["withdrawals"]) for r in csv.DictReader(io.StringIO(weeks["content"]))] == \
        expected["withdrawals"].tolist()

    # with a study filter the request exports are empty, not the unfiltered list
    hidden = run_as(cockpit_app, ADMIN, page.download_erasures, 1, "?study=ST-101")
    assert list(csv.DictReader(io.StringIO(hidden["content"]))) == []
    # every export is in the audit log (newest first), named by table and filter, by the user
    assert {e["actor"] for e in audit.entries(con, limit=4)} == {"dpo"}
    names = [e["target"] for e in audit.entries(con) if e["action"] == "export"][:4]
    assert names[::-1] == ["compliance_consent_all.csv", "compliance_access_requests_all.csv",
                     "compliance_withdrawals_2026-10-01_to_today.csv", "compliance_erasures_study-ST-101.csv"]


def test_formatting(page):
    assert page.fmt_hours(30.0) == "30.0 h"
    assert page.fmt_hours(72.0) == "3.0 days"
    assert page.fmt_hours(None) == "—"
    assert page.fmt_pct(87.44) == "87.4%"


def test_compliance_page_in_the_browser_for_leadership(dash_duo, cockpit_app, cockpit_users, demo_store):
    """Leadership opens the page from the navbar, reads the tracking consent rate the
    metrics compute, and downloads the consent table de-identified (their default)."""
    from browser import click, read_download, start_signed_in, text_of

    with cockpit_app.server.test_request_context():
        flask.g.scope = Scope()
        expected = compliance.purpose_table(demo_store.reader(), Filters())
    tracking = expected.set_index("purpose").loc["tracking"]
    start_signed_in(dash_duo, cockpit_app, cockpit_users["leadership"], start="/compliance")
    shown = text_of(dash_duo, "co-consent-tracking", not_in=("", "…", "–"))
    assert shown == f"{tracking['consent_rate_pct']:.1f}%"
    click(dash_duo, "#co-purposes-export")
    rows = read_download(dash_duo, "compliance_consent_all_deidentified.csv")
    assert [r["purpose"] for r in rows] == expected["purpose"].tolist()
    newest = audit.entries(demo_store.reader(), limit=5)
    export_entry = next(e for e in newest if e["action"] == "export")
    assert (export_entry["actor"], export_entry["target"]) == (
        cockpit_users["leadership"][0], "compliance_consent_all_deidentified.csv")
    assert audit.verify(demo_store.reader()).ok
