"""Shared fixtures: a tiny hand-built store whose numbers are worked out by hand, and
the small demo generated and loaded through the real loaders into a real DuckDB file."""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from cockpit import derive
from cockpit.store import open_db

TINY_SQL = """
INSERT INTO study VALUES
  ('A', 'Atopic study', 'II',  'Dermatology', 10, '2026-01-01', '2026-12-31', 10000, 'EUR'),
  ('B', 'Bone study',   'III', 'Rheumatology', 20, '2026-01-01', '2027-06-30', 12000, 'EUR');
INSERT INTO site VALUES
  ('A1', 'A', 'Berlin',  'DE', '2026-01-10', '2026-01-15'),
  ('A2', 'A', 'Hamburg', 'DE', '2026-01-10', '2026-01-15'),
  ('B1', 'B', 'Lyon',    'FR', '2026-01-10', '2026-01-20');
INSERT INTO channel VALUES
  ('facebook', 'Facebook', 'paid_social', TRUE),
  ('hcp_referral', 'HCP referral', 'hcp_referral', FALSE);
INSERT INTO segment VALUES ('adults', 'Adults 18-64', 18, 64), ('seniors', 'Seniors 65+', 65, 120);
INSERT INTO campaign VALUES
  ('CA', 'A', 'facebook', 'A | FB', '2026-03-01', NULL),
  ('CB', 'B', 'facebook', 'B | FB', '2026-03-01', NULL),
  ('HA', 'A', 'hcp_referral', 'A | HCP', '2026-01-01', NULL);
INSERT INTO ad_daily VALUES
  ('2026-03-02', 'CA', '', 100, 1000, 50, 'f'),
  ('2026-03-09', 'CA', '', 200, 2000, 60, 'f'),
  ('2026-03-02', 'CB', '', 50, 500, 10, 'f');
INSERT INTO offline_cost VALUES ('oc1', '2026-03-05', 'hcp_referral', 'HA', 'A', NULL, 30, 'liaison', 'f');
INSERT INTO person VALUES
  ('p1', 1980, 'adults', '2026-03-02'), ('p2', 1970, 'adults', '2026-03-04'),
  ('p3', 1990, 'adults', '2026-03-09'), ('p4', 1950, 'seniors', '2026-03-05'),
  ('p5', 1960, 'adults', '2026-02-10');
INSERT INTO touchpoint VALUES
  ('t1', 'p1', 'v1', '2026-03-02 10:00', 'ad_click', 'facebook', 'CA', NULL, 'A', NULL, NULL, 'f'),
  ('t2', 'p2', NULL, '2026-03-04 09:00', 'referral', 'hcp_referral', 'HA', NULL, 'A', 'A2', 'h1', 'f'),
  ('t3', 'p3', 'v3', '2026-03-09 08:00', 'ad_click', 'facebook', 'CA', NULL, 'A', NULL, NULL, 'f'),
  ('t4', 'p4', 'v4', '2026-03-05 07:00', 'ad_click', 'facebook', 'CB', NULL, 'B', NULL, NULL, 'f'),
  ('t5', 'p5', NULL, '2026-02-10 09:00', 'referral', 'hcp_referral', 'HA', NULL, 'A', 'A1', 'h1', 'f'),
  -- after the lead: must not steal the attribution of p1
  ('t6', 'p1', 'v1', '2026-03-04 10:00', 'ad_click', 'facebook', 'CA', NULL, 'A', NULL, NULL, 'f');
INSERT INTO consent_event VALUES
  ('c1', 'p1', 'tracking', TRUE,  '2026-03-02 09:59', NULL, 'v1', 'f'),
  ('c3a', 'p3', 'tracking', TRUE,  '2026-03-09 07:00', NULL, 'v1', 'f'),
  ('c3b', 'p3', 'tracking', FALSE, '2026-03-11 07:00', NULL, 'v1', 'f'),
  ('c4', 'p4', 'tracking', TRUE,  '2026-03-05 06:00', NULL, 'v1', 'f');
INSERT INTO funnel_event VALUES
  ('e1', 'p1', 'A', 'A1', 'lead',               '2026-03-03 12:00', NULL, 'f'),
  ('e2', 'p1', 'A', 'A1', 'prescreen_eligible', '2026-03-03 12:10', NULL, 'f'),
  ('e3', 'p1', 'A', 'A1', 'consented',          '2026-03-10 10:00', NULL, 'f'),
  ('e4', 'p1', 'A', 'A1', 'randomized',         '2026-03-20 10:00', NULL, 'f'),
  ('e5', 'p2', 'A', 'A2', 'lead',               '2026-03-04 09:00', NULL, 'f'),
  ('e6', 'p2', 'A', 'A2', 'prescreen_eligible', '2026-03-05 09:00', NULL, 'f'),
  ('e7', 'p3', 'A', 'A1', 'lead',               '2026-03-10 09:00', NULL, 'f'),
  ('e8', 'p3', 'A', 'A1', 'prescreen_ineligible', '2026-03-10 09:05', 'age', 'f'),
  ('e9', 'p4', 'B', 'B1', 'lead',               '2026-03-05 08:00', NULL, 'f'),
  ('e10', 'p4', 'B', 'B1', 'prescreen_eligible', '2026-03-06 08:00', NULL, 'f'),
  ('e11', 'p4', 'B', 'B1', 'consented',         '2026-03-15 08:00', NULL, 'f'),
  ('e12', 'p4', 'B', 'B1', 'randomized',        '2026-03-25 08:00', NULL, 'f'),
  ('e13', 'p5', 'A', 'A1', 'lead',              '2026-02-10 09:00', NULL, 'f'),
  ('e14', 'p5', 'A', 'A1', 'prescreen_eligible', '2026-02-11 09:00', NULL, 'f'),
  ('e15', 'p5', 'A', 'A1', 'consented',         '2026-02-20 09:00', NULL, 'f'),
  ('e16', 'p5', 'A', 'A1', 'randomized',        '2026-03-05 09:00', NULL, 'f');
INSERT INTO load_run (started_at, finished_at, status, source) VALUES
  ('2026-03-26 06:00', '2026-03-26 06:01', 'ok', 'tiny');
"""


@pytest.fixture
def tiny_con(tmp_path: Path):
    """A store with five persons in two studies; the expected numbers are in the tests."""
    con = open_db(tmp_path / "tiny.duckdb")
    con.execute(TINY_SQL)
    derive.refresh(con)
    yield con
    con.close()


def tiny_store_file(path: Path) -> Path:
    """The tiny store (TINY_SQL, journey derived) written to ``path`` and closed."""
    con = open_db(path)
    con.execute(TINY_SQL)
    derive.refresh(con)
    con.close()
    return path


@pytest.fixture
def tiny_db(tmp_path: Path) -> Path:
    """Five persons p1..p5 (TINY_SQL) in a closed store file."""
    return tiny_store_file(tmp_path / "tiny.duckdb")


DEMO_SEED = 7
DEMO_END = date(2026, 11, 15)


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory) -> Path:
    """The small demo's raw exports, generated once per test session."""
    from cockpit.demo import generate

    out = tmp_path_factory.mktemp("demo-raw")
    generate(out, seed=DEMO_SEED, scale="small", end=DEMO_END)
    return out


@pytest.fixture(scope="session")
def demo_key() -> bytes:
    return b"test-key-for-the-demo-store"


@pytest.fixture(scope="session")
def demo_db(demo_raw: Path, demo_key: bytes, tmp_path_factory) -> Path:
    """A DuckDB file holding the small demo, loaded through the real loaders."""
    from cockpit.ingest import load_folder

    path = tmp_path_factory.mktemp("demo-db") / "demo.duckdb"
    con = open_db(path)
    load_folder(con, demo_raw, demo_key, after_load=derive.refresh)
    con.close()
    return path


@pytest.fixture(scope="session")
def demo_store(demo_db: Path):
    """The serving-side handle on the demo store (reader cursors, one writer)."""
    from cockpit.store import Store

    store = Store(demo_db)
    yield store
    store.close()


@pytest.fixture(scope="session")
def cockpit_app(demo_store):
    """The Dash app on the demo store (one per process: Dash registers pages globally)."""
    os.environ.setdefault("COCKPIT_SECRET_KEY", "test-key-for-the-demo-store")
    from app import create_app

    return create_app(demo_store)


# ---------------------------------------------------------------- users and sign-in
@pytest.fixture(scope="session")
def demo_scope(demo_store) -> dict:
    """Two studies of the demo and one site of each, to give users own and foreign data."""
    con = demo_store.reader()
    studies = [s for (s,) in con.execute("SELECT study_id FROM study ORDER BY study_id").fetchall()]
    site = {s: con.execute("SELECT min(site_id) FROM site WHERE study_id = ? AND site_id IN "
                           "(SELECT site_id FROM journey)", [s]).fetchone()[0] for s in studies}
    return {"own_study": studies[0], "foreign_study": studies[1],
            "own_site": site[studies[0]], "foreign_site": site[studies[1]],
            "foreign_site_same_study": con.execute(
                "SELECT max(site_id) FROM site WHERE study_id = ? AND site_id IN (SELECT site_id FROM journey)",
                [studies[0]]).fetchone()[0]}


@pytest.fixture(scope="session")
def cockpit_users(demo_store, demo_scope) -> dict[str, tuple[str, str]]:
    """One user per role on the demo store (manager: first study; site user: one site of
    it) and a manager with no assignment: role -> (username, password)."""
    from cockpit.auth import passwords, users

    made = {}
    plan = {
        "admin": ("admin", {}),
        "leadership": ("leadership", {}),
        "manager": ("manager", {"studies": [demo_scope["own_study"]]}),
        "site": ("site", {"sites": [demo_scope["own_site"]]}),
        "unassigned": ("manager", {}),
    }
    for name, (role, assigned) in plan.items():
        password = passwords.generate_password()
        username = f"test-{name}"
        demo_store.write_sync(lambda con: users.add_user(con, username, password, role, **assigned))
        made[name] = (username, password)
    return made


def sign_in(app, credentials: tuple[str, str]):
    """A Flask test client signed in through the real sign-in form."""
    import re

    client = app.server.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"username": credentials[0], "password": credentials[1],
                                         "csrf_token": token, "next": "/"})
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    return client


def add_admin(store, username: str = "own-store-admin") -> tuple[str, str]:
    """An admin user on ``store`` (for tests that serve a store of their own)."""
    from cockpit.auth import passwords, users

    password = passwords.generate_password()
    store.write_sync(lambda con: users.add_user(con, username, password, "admin"))
    return username, password
