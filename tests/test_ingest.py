"""Loaders (cockpit.ingest) against a real DuckDB file, with small export files written
by each test. Expected pseudonymous ids are computed here with hmac/hashlib rather
than with cockpit.privacy, so that a change of the pseudonymization shows up."""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from cockpit.ingest import load_folder, runner
from cockpit.privacy import subject_hash
from cockpit.store import StoreError, open_db

KEY = b"test-key-not-secret"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

SETUP = {
    "studies": [
        {"study_id": "ST-101", "name": "Derm study", "phase": "II", "therapeutic_area": "Dermatology",
         "target_randomized": 120, "start_date": "2025-06-01", "planned_end": "2027-05-31",
         "value_per_randomized": 15000, "currency": "EUR"},
        {"study_id": "ST-202", "name": "Cardio study", "phase": "III", "therapeutic_area": "Cardiology",
         "target_randomized": 300, "start_date": "2025-09-01", "planned_end": "2028-01-31",
         "value_per_randomized": 20000},
    ],
    "sites": [
        {"site_id": "S-01", "study_id": "ST-101", "name": "Berlin", "country": "DE",
         "planned_activation": "2025-06-15", "activation_date": "2025-07-01"},
        {"site_id": "S-02", "study_id": "ST-101", "name": "Munich", "country": "DE",
         "planned_activation": "2025-07-01", "activation_date": None},
        {"site_id": "S-03", "study_id": "ST-202", "name": "Vienna", "country": "AT"},
    ],
    "channels": [
        {"channel_id": "facebook", "name": "Facebook", "kind": "paid_social", "online": True,
         "utm_sources": ["facebook", "fb"]},
        {"channel_id": "linkedin", "name": "LinkedIn", "kind": "paid_social", "online": True,
         "utm_sources": ["linkedin", "li"]},
        {"channel_id": "youtube", "name": "YouTube", "kind": "paid_social", "online": True,
         "utm_sources": ["youtube", "yt"]},
        {"channel_id": "paper_brochure", "name": "Brochures", "kind": "paper", "online": False},
        {"channel_id": "hcp_referral", "name": "HCP referral", "kind": "hcp_referral", "online": False},
        {"channel_id": "screening_event", "name": "Screening events", "kind": "screening_event",
         "online": False},
    ],
    "segments": [
        {"segment_id": "young_adults", "name": "18-34", "min_age": 18, "max_age": 34},
        {"segment_id": "adults", "name": "35-64", "min_age": 35, "max_age": 64},
        {"segment_id": "seniors", "name": "65+", "min_age": 65, "max_age": 120},
    ],
    "campaigns": [
        {"campaign_id": "C-FB-101-01", "study_id": "ST-101", "channel_id": "facebook",
         "name": "ST101 | Awareness | FB", "start_date": "2025-07-01", "end_date": None,
         "creatives": [
             {"creative_id": "CR-0001", "name": "ST101 video 15s", "variant": "video",
              "experiment_id": "EXP-1", "is_control": False, "planned_share": 0.5},
             {"creative_id": "CR-0002", "name": "ST101 text", "variant": "text",
              "experiment_id": "EXP-1", "is_control": True, "planned_share": 0.5}]},
        {"campaign_id": "C-YT-101-01", "study_id": "ST-101", "channel_id": "youtube",
         "name": "ST101 | Video | YT",
         "creatives": [{"creative_id": "CR-0101", "name": "YT bumper", "variant": "video"}]},
        {"campaign_id": "C-LI-202-01", "study_id": "ST-202", "channel_id": "linkedin",
         "name": "ST202 | Leads | LI",
         "creatives": [{"creative_id": "CR-0201", "name": "LI carousel", "variant": "carousel"}]},
        {"campaign_id": "C-PB-101-01", "study_id": "ST-101", "channel_id": "paper_brochure",
         "name": "ST101 brochures", "creatives": []},
    ],
    "qr_codes": [
        {"code": "QR-7F3A21", "channel_id": "paper_brochure", "campaign_id": "C-PB-101-01",
         "site_id": "S-01"},
    ],
}

META_HEADER = "Day,Campaign name,Ad name,Platform,Amount spent (EUR),Impressions,Link clicks\n"
COSTS_HEADER = "cost_id,date,channel,campaign_id,study_id,site_id,amount,currency,description\n"
PRESCREENER_HEADER = ("response_id,started_at,completed_at,study_id,site_id,email,phone,birth_year,"
                      "eligible,ineligible_reason,visitor_id,utm_source,utm_campaign,utm_content,"
                      "qr_code,referral_id,signup_id\n")
PIPELINE_HEADER = "record_id,study_id,site_id,email,phone,status,status_at,reason\n"

# Contacts used in the files below, and what must never be found in the store.
ANNA_EMAIL = " Anna.Berg@Example.COM "
BERT_PHONE = "0151 2345 678"
HCP_NUMBER = "lanr-123456789"
SECRETS = ("@", "example", "anna", "berg", "paula", "quentin", "1512345678", "2345 678", "lanr",
           "123456789")


# ---------------------------------------------------------------- helpers


def expected_pid(kind: str, normalised: str) -> str:
    """HMAC-SHA256(key, 'person:<kind>:<normalised contact>'), first 128 bits in hex."""
    return hmac.new(KEY, f"person:{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()[:32]


ANNA = expected_pid("email", "anna.berg@example.com")
BERT = expected_pid("phone", "+491512345678")
PAULA = expected_pid("email", "paula@example.org")
QUENTIN = expected_pid("email", "quentin@example.org")


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def jsonl(*objects: dict) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


@pytest.fixture(autouse=True)
def _default_calling_code(monkeypatch):
    monkeypatch.delenv("COCKPIT_DEFAULT_CALLING_CODE", raising=False)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """A migrated, empty store, copied for each test (migrating every time is slow)."""
    path = tmp_path_factory.mktemp("template") / "store.duckdb"
    open_db(path).close()
    return path


@pytest.fixture
def con(tmp_path, empty_store):
    path = tmp_path / "store.duckdb"
    shutil.copyfile(empty_store, path)
    connection = open_db(path)
    yield connection
    connection.close()


@pytest.fixture
def raw(tmp_path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    write(folder, "setup_2026-01.json", json.dumps(SETUP))
    return folder


def load(con, folder: Path, **kwargs):
    return load_folder(con, folder, KEY, now=NOW, **kwargs)


def rows(con, sql: str, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def quarantine(con, file: str | None = None) -> list[tuple]:
    where = " WHERE file = ?" if file else ""
    return rows(con, f"SELECT file, row_number, field, reason FROM quarantine{where} "
                     "ORDER BY quarantine_id", [file] if file else [])


_TABLES = ("study", "site", "channel", "campaign", "creative", "segment", "qr_code", "ad_daily",
           "offline_cost", "person", "visitor_link", "touchpoint", "funnel_event", "consent_event",
           "quarantine", "source_file")
_VOLATILE = {"quarantine": "quarantine_id, run_id, created_at", "source_file": "run_id, loaded_at"}


def snapshot(con) -> dict[str, list]:
    """Every row of every loaded table (minus run bookkeeping), order-free."""
    out = {}
    for table in _TABLES:
        exclude = f" EXCLUDE ({_VOLATILE[table]})" if table in _VOLATILE else ""
        out[table] = sorted(rows(con, f"SELECT *{exclude} FROM {table}"), key=repr)
    return out


# ---------------------------------------------------------------- export files

def meta_rows(*lines: str) -> str:
    return META_HEADER + "".join(line + "\n" for line in lines)


def prescreener_file() -> str:
    return PRESCREENER_HEADER + "".join(line + "\n" for line in (
        # 1 eligible, from a Facebook ad
        f"R-1,2026-01-03T10:00:00Z,2026-01-03T10:05:00Z,ST-101,S-01,{ANNA_EMAIL},,1995,yes,,v-1,"
        "fb,C-FB-101-01,CR-0001,,,",
        # 2 ineligible, phone only, from a brochure; times with an offset
        f"R-2,2026-01-04T11:00:00+01:00,2026-01-04T10:03:00Z,ST-101,S-02,,{BERT_PHONE},1950,no,"
        "age,v-2,,,,QR-7F3A21,,",
        # 3 abandoned, no contact at all
        "R-3,2026-01-05T09:00:00Z,,ST-101,S-01,,,1980,,,v-3,,,,,,",
        # 4 unknown channel
        "R-4,2026-01-05T09:00:00Z,,ST-101,S-01,carl@example.org,,1980,,,v-4,tiktok,,,,,",
        # 5 unknown QR code
        "R-5,2026-01-05T09:00:00Z,,ST-101,S-01,dora@example.org,,1980,,,v-5,,,,QR-000000,,",
        # 6 duplicate response id
        "R-1,2026-01-06T09:00:00Z,,ST-101,S-01,eve@example.org,,1980,,,,,,,,,",
        # 7 completed before started
        "R-7,2026-01-06T09:00:00Z,2026-01-06T08:00:00Z,ST-101,S-01,fay@example.org,,1980,yes,,,,,,,,",
        # 8 started in the future
        "R-8,2026-03-02T09:00:00Z,,ST-101,S-01,gus@example.org,,1980,,,,,,,,,",
        # 9 site of another study
        "R-9,2026-01-06T09:00:00Z,,ST-101,S-03,hal@example.org,,1980,,,,,,,,,",
        # 10 eligible value not allowed
        "R-10,2026-01-06T09:00:00Z,2026-01-06T09:10:00Z,ST-101,S-01,ida@example.org,,1980,maybe,,,,,,,,",
    ))


def web_events_file() -> tuple[str, int]:
    """Web events; returns the text and the column of the JSON error in line 3."""
    broken = '{"event_id": "we-3", "ts": "2026-01-03T09:00:00Z" "visitor_id": "v-9"}'
    text = (jsonl(
        {"event_id": "we-1", "ts": "2026-01-03T09:00:00Z", "visitor_id": "v-1", "event": "ad_click",
         "study_id": "ST-101", "utm": {"source": "fb", "medium": "paid_social",
                                       "campaign": "C-FB-101-01", "content": "CR-0001"}},
        {"event_id": "we-2", "ts": "2026-01-03T09:01:00Z", "visitor_id": "v-1", "event": "page_view",
         "study_id": "ST-101"})
        + broken + "\n"
        + jsonl(
        {"event_id": "we-4", "ts": "2026-01-03T09:02:00Z", "visitor_id": "v-7", "event": "page_view",
         "study_id": "ST-101", "utm": {"source": "tiktok"}},
        {"event_id": "we-5", "ts": "2026-03-02T00:00:00Z", "visitor_id": "v-7", "event": "page_view",
         "study_id": "ST-101", "utm": {"source": "fb"}},
        {"event_id": "we-6", "ts": "2026-01-03T09:03:00Z", "visitor_id": "v-7", "event": "scroll",
         "study_id": "ST-101", "utm": {"source": "fb"}},
        {"event_id": "we-7", "ts": "2026-01-03T09:04:00Z", "visitor_id": "v-7", "event": "ad_click",
         "study_id": "ST-101", "utm": {"source": "fb", "campaign": "C-FB-101-01", "content": "CR-0101"}},
        {"event_id": "we-8", "ts": "2026-01-03T09:05:00", "visitor_id": "v-8", "event": "page_view",
         "study_id": "ST-101", "utm": {"source": "YT"}},
        {"event_id": "we-1", "ts": "2026-01-03T09:06:00Z", "visitor_id": "v-8", "event": "page_view",
         "study_id": "ST-101", "utm": {"source": "yt"}},
    ))
    return text, broken.index('"visitor_id"') + 1


def referrals_file() -> str:
    return ("referral_id,referred_at,study_id,site_id,hcp_id,patient_email,patient_phone,birth_year\n"
            f"REF-1,2026-01-10T08:00:00Z,ST-101,S-01,{HCP_NUMBER},Paula@example.org,,1970\n"
            "REF-2,2026-01-10T09:00:00Z,ST-101,S-01,lanr-99,,,1970\n"
            "REF-3,2026-01-10T09:00:00Z,ST-999,S-01,lanr-99,xavier@example.org,,1970\n")


def signups_file() -> str:
    return ("signup_id,signed_up_at,event_name,study_id,site_id,email,phone,birth_year\n"
            "SG-1,2026-01-12T15:00:00Z,Health day Berlin,ST-101,S-01,quentin@example.org,,2001\n"
            "SG-2,2026-01-12T15:05:00Z,Health day Berlin,ST-101,S-01,yann@example.org,,19x0\n")


def pipeline_file() -> str:
    return PIPELINE_HEADER + (
        f"P-1,ST-101,S-01,{ANNA_EMAIL},,contacted,2026-01-05T10:00:00Z,\n"
        f"P-2,ST-101,S-02,,{BERT_PHONE},withdrew,2026-01-06T10:00:00Z,lost_interest\n"
        "P-3,ST-101,S-01,paula@example.org,,lost,2026-01-06T10:00:00Z,\n"
        "P-4,ST-101,S-01,paula@example.org,,declined,2026-01-06T10:00:00Z,Moved to Spain\n"
        "P-5,ST-101,,paula@example.org,,declined,2026-01-06T10:00:00Z,\n")


def consent_file() -> str:
    return jsonl(
        {"consent_id": "cs-1", "ts": "2026-01-03T10:00:00Z", "email": ANNA_EMAIL, "phone": None,
         "purpose": "tracking", "action": "granted", "channel": "facebook", "notice_version": "2025-03"},
        {"consent_id": "cs-2", "ts": "2026-01-04T10:00:00Z", "email": "", "phone": BERT_PHONE,
         "purpose": "contact_research", "action": "withdrawn", "channel": "fb", "notice_version": "2025-03"},
        {"consent_id": "cs-3", "ts": "2026-01-04T10:00:00Z", "email": "paula@example.org",
         "action": "granted", "channel": "facebook", "notice_version": "2025-03"},
        {"consent_id": "cs-4", "ts": "2026-01-04T10:00:00Z", "email": "paula@example.org",
         "purpose": "tracking", "action": "maybe", "channel": "facebook", "notice_version": "2025-03"},
        {"consent_id": "cs-5", "ts": "2026-01-04T10:00:00Z", "email": "paula@example.org",
         "purpose": "tracking", "action": "granted", "channel": "tv", "notice_version": "2025-03"},
    )


# ---------------------------------------------------------------- setup


def test_setup_loads_dimensions(con, raw):
    summary = load(con, raw)
    assert (summary.files_loaded, summary.rows_read, summary.rows_quarantined) == (1, 23, 0)
    assert rows(con, "SELECT study_id, phase, target_randomized, value_per_randomized, currency, "
                     "start_date::VARCHAR FROM study ORDER BY 1") == [
        ("ST-101", "II", 120, 15000.0, "EUR", "2025-06-01"),
        ("ST-202", "III", 300, 20000.0, "EUR", "2025-09-01")]
    assert rows(con, "SELECT site_id, study_id, activation_date FROM site ORDER BY 1")[1] == \
        ("S-02", "ST-101", None)
    assert rows(con, "SELECT creative_id, campaign_id, is_control, planned_share FROM creative "
                     "ORDER BY 1")[:2] == [("CR-0001", "C-FB-101-01", False, 0.5),
                                           ("CR-0002", "C-FB-101-01", True, 0.5)]
    assert rows(con, "SELECT channel_id FROM channel_utm_source WHERE utm_source = 'fb'") == \
        [("facebook",)]
    assert rows(con, "SELECT * FROM qr_code") == [("QR-7F3A21", "paper_brochure", "C-PB-101-01", "S-01")]


def test_setup_refused_items_and_later_setup_replaces(con, raw):
    later = {
        "studies": [dict(SETUP["studies"][0], target_randomized=150)],
        "sites": [{"site_id": "S-09", "study_id": "ST-999", "name": "Nowhere", "country": "DE"}],
        "channels": [{"channel_id": "tv", "name": "TV", "kind": "television", "online": False},
                     dict(SETUP["channels"][0], utm_sources=["facebook", "meta"])],
        "segments": [{"segment_id": "kids", "name": "Kids", "min_age": "0", "max_age": 17}],
    }
    write(raw, "setup_2026-02.json", json.dumps(later))
    load(con, raw)
    assert rows(con, "SELECT target_randomized FROM study WHERE study_id = 'ST-101'") == [(150,)]
    assert quarantine(con) == [
        ("setup_2026-02.json", 1, "channels[1].kind",
         "kind 'television' is not one of paid_social, hcp_referral, community, newsletter, "
         "paper, screening_event"),
        ("setup_2026-02.json", 1, "segments[1].min_age", 'min_age is not an integer ("0")'),
        ("setup_2026-02.json", 1, "sites[1].study_id", "unknown study 'ST-999'"),
    ]
    assert rows(con, "SELECT utm_source FROM channel_utm_source WHERE channel_id = 'facebook' "
                     "ORDER BY 1") == [("facebook",), ("meta",)]


def test_setup_invalid_json_rejected_as_a_whole(con, raw):
    write(raw, "setup_2026-02.json", '{"studies": [')
    summary = load(con, raw)
    assert (summary.files_loaded, summary.files_rejected) == (1, 1)
    assert quarantine(con) == [("setup_2026-02.json", 0, None,
                                "setup is not valid JSON: Expecting value at line 1 column 14")]
    assert rows(con, "SELECT status FROM source_file WHERE path = 'setup_2026-02.json'") == \
        [("rejected",)]


# ---------------------------------------------------------------- ad exports


def test_meta_ads_rows_land(con, raw):
    write(raw, "meta_ads_2026-01.csv", meta_rows(
        "2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,12.50,1000,20",
        "2026-01-01,ST101 | Awareness | FB,ST101 text,instagram,0,10,0",
        "2026-01-02,ST101 | Awareness | FB,,facebook,3,30,3"))
    summary = load(con, raw)
    assert rows(con, "SELECT day::VARCHAR, campaign_id, creative_id, spend, impressions, clicks, "
                     "source_file FROM ad_daily ORDER BY 1, 3") == [
        ("2026-01-01", "C-FB-101-01", "CR-0001", 12.5, 1000, 20, "meta_ads_2026-01.csv"),
        ("2026-01-01", "C-FB-101-01", "CR-0002", 0.0, 10, 0, "meta_ads_2026-01.csv"),
        ("2026-01-02", "C-FB-101-01", "", 3.0, 30, 3, "meta_ads_2026-01.csv")]
    result = summary.files[-1]
    assert (result.path, result.kind, result.status, result.read, result.accepted) == \
        ("meta_ads_2026-01.csv", "meta_ads", "loaded", 3, 3)


def test_google_ads_title_lines_separators_and_total_row(con, raw):
    write(raw, "google_ads_2026-01.csv",
          'Ad performance report\n"January 1, 2026 - January 31, 2026"\n'
          "Day,Campaign,Ad,Currency code,Cost,Impr.,Clicks\n"
          '2026-01-05,ST101 | Video | YT,YT bumper,EUR,"1,234.56","12,345",100\n'
          "2026-01-06,ST101 | Video | YT,YT bumper,EUR,7.10,900,9\n"
          "2026-01-07,ST101 | Video | YT,YT bumper,USD,1.00,10,1\n"
          'Total,,,,"1,242.66","13,255",110\n')
    summary = load(con, raw)
    assert rows(con, "SELECT day::VARCHAR, creative_id, spend, impressions, clicks FROM ad_daily "
                     "ORDER BY 1") == [("2026-01-05", "CR-0101", 1234.56, 12345, 100),
                                       ("2026-01-06", "CR-0101", 7.1, 900, 9)]
    assert quarantine(con) == [("google_ads_2026-01.csv", 3, "Currency code",
                                "currency 'USD' is not EUR (spend must be in EUR)")]
    result = summary.files[-1]
    assert (result.read, result.accepted, result.quarantined, result.ignored) == (4, 2, 1, 1)


def test_linkedin_ads_us_dates(con, raw):
    write(raw, "linkedin_ads_2026-01.csv",
          "Start Date (in UTC),Campaign Name,Creative Name,Total Spent,Impressions,Clicks\n"
          "01/31/2026,ST202 | Leads | LI,LI carousel,55.5,2000,40\n"
          "2026-01-30,ST202 | Leads | LI,LI carousel,1,20,1\n")
    load(con, raw)
    assert rows(con, "SELECT day::VARCHAR, campaign_id, creative_id, spend FROM ad_daily") == [
        ("2026-01-31", "C-LI-202-01", "CR-0201", 55.5)]
    assert quarantine(con) == [("linkedin_ads_2026-01.csv", 2, "Start Date (in UTC)",
                                "day is not a date ('2026-01-30', expected MM/DD/YYYY)")]


def test_ad_rows_refused_with_exact_reasons(con, raw):
    write(raw, "meta_ads_2026-02.csv", meta_rows(
        "2026-02-01,ST101 | Awareness | FB,ST101 video 15s,facebook,-12.50,1000,20",
        "2026-02-01,ST101 | Awareness | FB,ST101 text,facebook,1.00,12a,2",
        "2027-01-03,ST101 | Awareness | FB,ST101 text,facebook,1.00,10,2",
        "2026-02-02,ST999 | Unknown,ST101 text,facebook,1.00,10,2",
        "2026-02-02,ST101 | Awareness | FB,No such ad,facebook,1.00,10,2",
        "2026-02-03,ST101 | Awareness | FB,ST101 text,facebook,1.00,10,20",
        "2026-02-04,ST101 | Awareness | FB,ST101 text,facebook,,10,2",
        "2026-02-05,ST101 | Awareness | FB,ST101 text,tiktok,1.00,10,2",
        "2026-02-06,ST101 | Awareness | FB,ST101 text,facebook,1.00,10,2",
        "2026-02-06,ST101 | Awareness | FB,ST101 text,facebook,1.50,10,2",
        "02/07/2026,ST101 | Awareness | FB,ST101 text,facebook,1,10,2",
        "2026-02-08,ST101 | Awareness | FB,ST101 text,facebook,abc,10,2",
        "2026-02-09,ST101 | Awareness | FB,ST101 text,facebook,1,10,2.5"))
    summary = load(con, raw)
    file = "meta_ads_2026-02.csv"
    assert quarantine(con) == [
        (file, 1, "Amount spent (EUR)", "spend is negative (-12.50)"),
        (file, 2, "Impressions", "impressions is not an integer ('12a')"),
        (file, 3, "Day", "date 2027-01-03 is in the future"),
        (file, 4, "Campaign name", "unknown campaign 'ST999 | Unknown'"),
        (file, 5, "Ad name", "unknown ad 'No such ad' in campaign 'ST101 | Awareness | FB'"),
        (file, 6, "Link clicks", "clicks (20) exceed impressions (10)"),
        (file, 7, "Amount spent (EUR)", "missing field 'Amount spent (EUR)'"),
        (file, 8, "Platform", "platform 'tiktok' is not one of facebook, instagram"),
        (file, 10, "Day", "duplicate row for day 2026-02-06, campaign 'ST101 | Awareness | FB', "
                          "ad 'ST101 text' in this file"),
        (file, 11, "Day", "day is not a date ('02/07/2026', expected YYYY-MM-DD)"),
        (file, 12, "Amount spent (EUR)", "spend is not a number ('abc')"),
        (file, 13, "Link clicks", "clicks is not an integer ('2.5')"),
    ]
    assert rows(con, "SELECT day::VARCHAR, spend FROM ad_daily") == [("2026-02-06", 1.0)]
    assert (summary.files[-1].read, summary.files[-1].accepted, summary.files[-1].quarantined) == \
        (13, 1, 12)
    first = json.loads(rows(con, "SELECT raw FROM quarantine WHERE row_number = 1")[0][0])
    assert first["Amount spent (EUR)"] == "-12.50" and first["Day"] == "2026-02-01"


def test_same_file_twice_renamed_copy_and_late_correction(con, raw):
    content = meta_rows("2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,12.50,1000,20",
                        "2026-01-02,ST101 | Awareness | FB,ST101 video 15s,facebook,8.00,800,8")
    write(raw, "meta_ads_2026-01.csv", content)
    assert load(con, raw).files_loaded == 2
    before = snapshot(con)

    again = load(con, raw)
    assert (again.files_loaded, again.files_skipped) == (0, 2)
    write(raw, "sub/meta_ads_2026-01_copy.csv", content)
    renamed = load(con, raw)
    assert (renamed.files_loaded, renamed.files_skipped) == (0, 3)
    assert snapshot(con) == before

    # The same rows in other bytes load, and change no row.
    write(raw, "meta_ads_2026-01_again.csv", content + "\n")
    load(con, raw)
    assert rows(con, "SELECT DISTINCT source_file FROM ad_daily") == [("meta_ads_2026-01.csv",)]

    write(raw, "meta_ads_2026-01_corrected.csv",
          meta_rows("2026-01-02,ST101 | Awareness | FB,ST101 video 15s,facebook,9.25,820,9"))
    load(con, raw)
    assert rows(con, "SELECT day::VARCHAR, spend, impressions, clicks, source_file FROM ad_daily "
                     "ORDER BY 1") == [
        ("2026-01-01", 12.5, 1000, 20, "meta_ads_2026-01.csv"),
        ("2026-01-02", 9.25, 820, 9, "meta_ads_2026-01_corrected.csv")]


# ---------------------------------------------------------------- whole files


def test_missing_required_column_rejects_the_file_only(con, raw):
    write(raw, "meta_ads_2026-03.csv", "Day,Campaign name,Ad name,Platform,Amount spent (EUR),Impre")
    write(raw, "meta_ads_2026-04.csv",
          meta_rows("2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,12.50,1000,20"))
    summary = load(con, raw)
    assert (summary.files_loaded, summary.files_rejected) == (2, 1)
    assert quarantine(con) == [("meta_ads_2026-03.csv", 0, None,
                                "header is missing required columns: 'Impressions', 'Link clicks'")]
    assert rows(con, "SELECT count(*) FROM ad_daily") == [(1,)]


def test_truncated_csv_keeps_good_rows(con, raw):
    write(raw, "meta_ads_2026-05.csv", meta_rows(
        "2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,12.50,1000,20",
        "2026-01-02,ST101 | Awareness | FB,ST101 video 15s,facebook,1,10,1,extra",
        "2026-01-03,ST101 | Awareness | FB,ST101 video 15s,facebook,2,20,2") + "2026-01-04,ST101 | Aw")
    summary = load(con, raw)
    file = "meta_ads_2026-05.csv"
    assert quarantine(con) == [
        (file, 2, None, "row has 8 fields, expected 7"),
        (file, 4, None, "row has 2 fields, expected 7 (the file may be truncated)"),
    ]
    assert rows(con, "SELECT day::VARCHAR FROM ad_daily ORDER BY 1") == [("2026-01-01",), ("2026-01-03",)]
    assert (summary.files[-1].read, summary.files[-1].accepted) == (4, 2)
    # Fields of a broken row cannot be told apart, so nothing of it is kept.
    assert rows(con, "SELECT raw FROM quarantine") == [(None,), (None,)]


def test_row_numbers_stay_exact_across_blank_lines_and_quoted_newlines(con, raw):
    write(raw, "meta_ads_2026-06.csv", meta_rows(
        "2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,1,10,1",
        "",
        '2026-01-02,ST101 | Awareness | FB,"ST101\nvideo",facebook,1,10,1',
        "2026-01-03,ST101 | Awareness | FB,ST101 video 15s,facebook,-1,10,1"))
    load(con, raw)
    assert [(r[1], r[3]) for r in quarantine(con)] == [
        (2, "unknown ad 'ST101\nvideo' in campaign 'ST101 | Awareness | FB'"),
        (3, "spend is negative (-1)")]


def test_wrong_encoding_rejects_the_file_not_the_run(con, raw):
    latin1 = (COSTS_HEADER + "OC-1,2026-01-10,paper_brochure,C-PB-101-01,ST-101,S-01,450.00,EUR,"
              "Druck Broschüren\n").encode("latin-1")
    write(raw, "offline_costs_2026-01.csv", latin1)
    write(raw, "offline_costs_2026-02.csv",
          COSTS_HEADER + "OC-2,2026-02-10,paper_brochure,C-PB-101-01,,,120,EUR,Distribution\n")
    summary = load(con, raw)
    assert (summary.files_loaded, summary.files_rejected) == (2, 1)
    offset = latin1.index(b"\xfc")
    assert quarantine(con) == [("offline_costs_2026-01.csv", 0, None,
                                f"file is not UTF-8 (byte 0xfc at offset {offset} is not valid UTF-8)")]
    assert rows(con, "SELECT status FROM source_file WHERE kind = 'offline_costs' ORDER BY path") == \
        [("rejected",), ("loaded",)]
    assert rows(con, "SELECT cost_id, day::VARCHAR, channel_id, study_id, amount FROM offline_cost") == [
        ("OC-2", "2026-02-10", "paper_brochure", "ST-101", 120.0)]
    assert load(con, raw).files_skipped == 3  # the same bytes are not tried again


# ---------------------------------------------------------------- offline costs


def test_offline_costs(con, raw):
    write(raw, "offline_costs_2026-01.csv", COSTS_HEADER
          + "OC-1,2026-01-10,paper_brochure,C-PB-101-01,ST-101,S-01,450.00,EUR,Print run\n"
          + "OC-2,2026-01-11,tv,,ST-101,,100,EUR,Spot\n"
          + "OC-3,2026-01-12,hcp_referral,,ST-101,S-03,5,EUR,Fees\n"
          + "OC-4,2026-01-12,hcp_referral,,ST-101,,-5,EUR,Fees\n"
          + "OC-5,2026-01-12,hcp_referral,,ST-101,,5,USD,Fees\n")
    load(con, raw)
    file = "offline_costs_2026-01.csv"
    assert quarantine(con) == [
        (file, 2, "channel", "unknown channel 'tv' in channel"),
        (file, 3, "site_id", "site 'S-03' belongs to study 'ST-202', not 'ST-101'"),
        (file, 4, "amount", "amount is negative (-5)"),
        (file, 5, "currency", "currency 'USD' is not EUR (amounts must be in EUR)"),
    ]
    assert rows(con, "SELECT cost_id, day::VARCHAR, channel_id, campaign_id, study_id, site_id, amount, "
                     "description, source_file FROM offline_cost") == [
        ("OC-1", "2026-01-10", "paper_brochure", "C-PB-101-01", "ST-101", "S-01", 450.0, "Print run",
         file)]


# ---------------------------------------------------------------- web events and QR scans


def test_web_events(con, raw):
    text, column = web_events_file()
    write(raw, "web_events_2026-01.jsonl", text)
    summary = load(con, raw)
    file = "web_events_2026-01.jsonl"
    assert quarantine(con) == [
        (file, 3, None, f"malformed JSON: Expecting ',' delimiter at column {column}"),
        (file, 4, "utm.source", "unknown channel 'tiktok' in utm.source"),
        (file, 5, "ts", "timestamp 2026-03-02T00:00:00Z is in the future"),
        (file, 6, "event", "event 'scroll' is not one of ad_click, page_view"),
        (file, 7, "utm.content", "creative 'CR-0101' belongs to campaign 'C-YT-101-01', not 'C-FB-101-01'"),
        (file, 9, "event_id", "duplicate event_id 'we-1' in this file"),
    ]
    assert rows(con, "SELECT touch_id, pid, visitor_id, ts::VARCHAR, kind, channel_id, campaign_id, "
                     "creative_id, study_id FROM touchpoint ORDER BY 1") == [
        ("web:we-1", None, "v-1", "2026-01-03 09:00:00", "ad_click", "facebook", "C-FB-101-01",
         "CR-0001", "ST-101"),
        ("web:we-8", None, "v-8", "2026-01-03 09:05:00", "page_view", "youtube", None, None, "ST-101")]
    result = summary.files[-1]
    assert (result.read, result.accepted, result.quarantined, result.ignored) == (9, 2, 6, 1)


def test_touchpoints_get_their_person_when_the_visitor_submits_later(con, raw):
    text, _ = web_events_file()
    write(raw, "web_events_2026-01.jsonl", text)
    load(con, raw)
    assert rows(con, "SELECT pid FROM touchpoint WHERE touch_id = 'web:we-1'") == [(None,)]
    write(raw, "prescreener_2026-01.csv", prescreener_file())
    load(con, raw)
    assert rows(con, "SELECT pid FROM touchpoint WHERE touch_id = 'web:we-1'") == [(ANNA,)]
    assert rows(con, "SELECT pid FROM touchpoint WHERE touch_id = 'web:we-8'") == [(None,)]


def test_a_run_attaches_the_visits_of_the_visitors_it_linked_once_its_files_are_in(con, raw):
    # web events and the pre-screener in one run: the web events load first (kind order),
    # anonymous; the pre-screener links their visitor; the run's last step attaches them
    text, _ = web_events_file()
    write(raw, "web_events_2026-01.jsonl", text)
    write(raw, "prescreener_2026-01.csv", prescreener_file())
    load(con, raw)
    assert rows(con, "SELECT pid FROM touchpoint WHERE touch_id = 'web:we-1'") == [(ANNA,)]
    assert rows(con, "SELECT count(*) FROM visitor_link WHERE NOT attached") == [(0,)]


def test_a_run_cut_off_before_attaching_leaves_it_to_the_next_run(con, raw):
    text, _ = web_events_file()
    write(raw, "web_events_2026-01.jsonl", text)
    load(con, raw)
    write(raw, "prescreener_2026-01.csv", prescreener_file())
    load(con, raw)
    # the state a run killed after its last file's commit leaves: linked, not attached
    con.execute("UPDATE touchpoint SET pid = NULL WHERE touch_id = 'web:we-1'")
    con.execute("UPDATE visitor_link SET attached = FALSE")
    summary = load(con, raw)  # nothing new to load
    assert summary.files_loaded == 0
    assert rows(con, "SELECT pid FROM touchpoint WHERE touch_id = 'web:we-1'") == [(ANNA,)]
    assert rows(con, "SELECT count(*) FROM visitor_link WHERE NOT attached") == [(0,)]


def test_qr_scans(con, raw):
    write(raw, "qr_scans_2026-01.csv", "scan_id,scanned_at,code,visitor_id\n"
          "QS-1,2026-01-04T08:00:00Z,QR-7F3A21,v-2\n"
          "QS-2,2026-01-04T08:00:00Z,QR-BAD,v-2\n"
          "QS-3,,QR-7F3A21,v-2\n"
          "QS-4,yesterday,QR-7F3A21,\n")
    load(con, raw)
    file = "qr_scans_2026-01.csv"
    assert quarantine(con) == [
        (file, 2, "code", "unknown QR code 'QR-BAD'"),
        (file, 3, "scanned_at", "missing field 'scanned_at'"),
        (file, 4, "scanned_at", "scanned_at is not a timestamp ('yesterday')"),
    ]
    assert rows(con, "SELECT touch_id, kind, channel_id, campaign_id, site_id, study_id, visitor_id "
                     "FROM touchpoint") == [
        ("qr:QS-1", "qr_scan", "paper_brochure", "C-PB-101-01", "S-01", "ST-101", "v-2")]


# ---------------------------------------------------------------- persons


def test_prescreener_person_funnel_links_and_touchpoints(con, raw):
    write(raw, "prescreener_2026-01.csv", prescreener_file())
    load(con, raw)
    assert rows(con, "SELECT pid, birth_year, segment_id, first_seen::VARCHAR FROM person ORDER BY 2") == [
        (BERT, 1950, "seniors", "2026-01-04 10:00:00"),
        (ANNA, 1995, "young_adults", "2026-01-03 10:00:00")]
    assert rows(con, "SELECT visitor_id, pid, linked_at::VARCHAR FROM visitor_link ORDER BY 1") == [
        ("v-1", ANNA, "2026-01-03 10:00:00"), ("v-2", BERT, "2026-01-04 10:00:00")]
    assert rows(con, "SELECT event_id, pid, study_id, site_id, stage, ts::VARCHAR, reason "
                     "FROM funnel_event ORDER BY 1") == [
        ("pre:R-1:lead", ANNA, "ST-101", "S-01", "lead", "2026-01-03 10:00:00", None),
        ("pre:R-1:outcome", ANNA, "ST-101", "S-01", "prescreen_eligible", "2026-01-03 10:05:00", None),
        ("pre:R-1:started", ANNA, "ST-101", "S-01", "prescreen_started", "2026-01-03 10:00:00", None),
        ("pre:R-2:lead", BERT, "ST-101", "S-02", "lead", "2026-01-04 10:00:00", None),
        ("pre:R-2:outcome", BERT, "ST-101", "S-02", "prescreen_ineligible", "2026-01-04 10:03:00", "age"),
        ("pre:R-2:started", BERT, "ST-101", "S-02", "prescreen_started", "2026-01-04 10:00:00", None)]
    assert rows(con, "SELECT touch_id, pid, visitor_id, kind, channel_id, campaign_id, creative_id, "
                     "site_id FROM touchpoint ORDER BY 1") == [
        ("pre:R-1:form", ANNA, "v-1", "form", "facebook", "C-FB-101-01", "CR-0001", "S-01"),
        ("pre:R-2:form", BERT, "v-2", "form", "paper_brochure", "C-PB-101-01", None, "S-02")]


def test_prescreener_refusals(con, raw):
    write(raw, "prescreener_2026-01.csv", prescreener_file())
    load(con, raw)
    file = "prescreener_2026-01.csv"
    assert quarantine(con) == [
        (file, 3, "email", "no usable e-mail or phone"),
        (file, 4, "utm_source", "unknown channel 'tiktok' in utm_source"),
        (file, 5, "qr_code", "unknown QR code 'QR-000000'"),
        (file, 6, "response_id", "duplicate response_id 'R-1' in this file"),
        (file, 7, "completed_at",
         "completed_at 2026-01-06T08:00:00Z is before started_at 2026-01-06T09:00:00Z"),
        (file, 8, "started_at", "timestamp 2026-03-02T09:00:00Z is in the future"),
        (file, 9, "site_id", "site 'S-03' belongs to study 'ST-202', not 'ST-101'"),
        (file, 10, "eligible", "eligible 'maybe' is not one of yes, no or empty"),
    ]


def test_prescreener_correction_replaces_the_outcome(con, raw):
    write(raw, "prescreener_2026-01.csv", prescreener_file())
    load(con, raw)
    write(raw, "prescreener_2026-01_fix.csv", PRESCREENER_HEADER
          + f"R-1,2026-01-03T10:00:00Z,2026-01-03T10:07:00Z,ST-101,S-01,{ANNA_EMAIL},,1994,no,"
            "medication,v-1,,,,,,\n"
          + f"R-2,2026-01-04T11:00:00+01:00,,ST-101,S-02,,{BERT_PHONE},1950,,,v-2,,,,,,\n")
    load(con, raw)
    assert rows(con, "SELECT event_id, stage, ts::VARCHAR, reason FROM funnel_event "
                     "WHERE event_id LIKE '%outcome' ORDER BY 1") == [
        ("pre:R-1:outcome", "prescreen_ineligible", "2026-01-03 10:07:00", "medication")]
    assert rows(con, "SELECT touch_id FROM touchpoint ORDER BY 1") == []
    assert rows(con, "SELECT birth_year FROM person WHERE pid = ?", [ANNA]) == [(1994,)]
    assert rows(con, "SELECT count(*) FROM funnel_event") == [(5,)]


def test_hcp_referrals(con, raw):
    write(raw, "hcp_referrals_2026-01.csv", referrals_file())
    load(con, raw)
    hcp = hmac.new(KEY, b"hcp:LANR-123456789", hashlib.sha256).hexdigest()[:32]
    assert rows(con, "SELECT pid, birth_year, segment_id FROM person") == [(PAULA, 1970, "adults")]
    assert rows(con, "SELECT event_id, pid, stage, ts::VARCHAR FROM funnel_event") == [
        ("ref:REF-1:lead", PAULA, "lead", "2026-01-10 08:00:00")]
    assert rows(con, "SELECT touch_id, pid, kind, channel_id, hcp_pid, site_id FROM touchpoint") == [
        ("ref:REF-1", PAULA, "referral", "hcp_referral", hcp, "S-01")]
    file = "hcp_referrals_2026-01.csv"
    assert quarantine(con) == [(file, 2, "patient_email", "no usable e-mail or phone"),
                               (file, 3, "study_id", "unknown study 'ST-999'")]


def test_screening_event_signups(con, raw):
    write(raw, "screening_events_2026-01.csv", signups_file())
    load(con, raw)
    assert rows(con, "SELECT pid, birth_year, segment_id FROM person") == [(QUENTIN, 2001, "young_adults")]
    assert rows(con, "SELECT touch_id, kind, channel_id FROM touchpoint") == [
        ("sig:SG-1", "event_signup", "screening_event")]
    assert rows(con, "SELECT event_id, stage FROM funnel_event") == [("sig:SG-1:lead", "lead")]
    assert quarantine(con) == [("screening_events_2026-01.csv", 2, "birth_year",
                                "birth_year is not an integer ('19x0')")]


def test_site_pipeline_and_late_correction(con, raw):
    write(raw, "site_pipeline_2026-01.csv", pipeline_file())
    load(con, raw)
    assert rows(con, "SELECT event_id, pid, site_id, stage, ts::VARCHAR, reason FROM funnel_event "
                     "ORDER BY 1") == [
        ("pipe:P-1", ANNA, "S-01", "contacted", "2026-01-05 10:00:00", None),
        ("pipe:P-2", BERT, "S-02", "withdrawn", "2026-01-06 10:00:00", "lost_interest")]
    file = "site_pipeline_2026-01.csv"
    assert quarantine(con) == [
        (file, 3, "status", "status 'lost' is not one of contacted, not_reachable, consented, declined, "
                            "screened, screen_failed, randomized, withdrew"),
        (file, 4, "reason", "reason 'Moved to Spain' is not a code (letters, digits and _ only)"),
        (file, 5, "site_id", "missing field 'site_id'"),
    ]
    write(raw, "site_pipeline_2026-02.csv", PIPELINE_HEADER
          + f"P-1,ST-101,S-01,{ANNA_EMAIL},,not_reachable,2026-01-07T10:00:00Z,no_answer\n")
    load(con, raw)
    assert rows(con, "SELECT stage, ts::VARCHAR, reason, source_file FROM funnel_event "
                     "WHERE event_id = 'pipe:P-1'") == [
        ("not_reachable", "2026-01-07 10:00:00", "no_answer", "site_pipeline_2026-02.csv")]
    assert rows(con, "SELECT count(*) FROM funnel_event") == [(2,)]


def test_consent_events(con, raw):
    write(raw, "consent_2026-01.jsonl", consent_file())
    load(con, raw)
    assert rows(con, "SELECT consent_id, pid, purpose, granted, ts::VARCHAR, channel_id, notice_version "
                     "FROM consent_event ORDER BY 1") == [
        ("cs-1", ANNA, "tracking", True, "2026-01-03 10:00:00", "facebook", "2025-03"),
        ("cs-2", BERT, "contact_research", False, "2026-01-04 10:00:00", "facebook", "2025-03")]
    file = "consent_2026-01.jsonl"
    assert quarantine(con) == [
        (file, 3, "purpose", "missing field 'purpose'"),
        (file, 4, "action", "action 'maybe' is not one of granted, withdrawn"),
        (file, 5, "channel", "unknown channel 'tv' in channel"),
    ]


def test_json_lines_with_byte_order_mark_crlf_and_blank_lines(con, raw):
    lines = consent_file().splitlines()
    text = "\ufeff" + "\r\n".join([lines[0], "", lines[1], "   ", '{"consent_id": [1]}']) + "\r\n"
    write(raw, "consent_2026-01.jsonl", text)
    summary = load(con, raw)
    assert rows(con, "SELECT consent_id FROM consent_event ORDER BY 1") == [("cs-1",), ("cs-2",)]
    assert quarantine(con) == [("consent_2026-01.jsonl", 5, "consent_id",
                                "consent_id is not a single value")]
    assert (summary.files[-1].read, summary.files[-1].accepted) == (3, 2)


def test_json_lines_values_and_shapes(con, raw):
    base = {"ts": "2026-01-03T09:00:00Z", "visitor_id": "v-1", "event": "page_view", "study_id": "ST-101"}
    lines = [
        json.dumps({**base, "event_id": 17, "utm": {"source": "fb"}}),        # a number as text
        json.dumps({**base, "event_id": "{odd}", "utm": {"source": "fb"}}),   # a string like an object
        json.dumps({**base, "event_id": "we-3", "utm": "fb"}),                # a parent that is no object
        json.dumps({**base, "event_id": "we-4", "utm": {"source": ["fb"]}}),  # a field that is a list
        "[1, 2]",
        "{}",                                                                  # no UTM source: not data
        json.dumps({**base, "event_id": "we-7"})[:-1] + ', "utm": {"source": "fb",}}',  # DuckDB takes it
        json.dumps({**base, "event_id": "we-8", "utm": None}),                # no UTM source: not data
    ]
    write(raw, "web_events_2026-01.jsonl", "\n".join(lines) + "\n")
    summary = load(con, raw)
    file = "web_events_2026-01.jsonl"
    assert quarantine(con) == [(file, 3, "utm", "utm is not an object"),
                               (file, 4, "utm.source", "utm.source is not a single value"),
                               (file, 5, None, "line is not a JSON object")]
    assert rows(con, "SELECT touch_id FROM touchpoint ORDER BY 1") == [
        ("web:17",), ("web:we-7",), ("web:{odd}",)]
    result = summary.files[-1]
    assert (result.read, result.accepted, result.quarantined, result.ignored) == (8, 3, 3, 2)


def test_line_count_counts_lines_as_duckdb_reads_them():
    from cockpit.ingest.staging import line_count

    assert [line_count(t) for t in ("", "\n", "a", "a\nb", "a\nb\n", "a\r\nb\r\n", "a\rb\r", "a\n\nb")] == \
        [0, 1, 1, 2, 2, 2, 2, 3]


def test_csv_with_carriage_returns_as_line_ends(con, raw):
    text = meta_rows("2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,12.50,1000,20",
                     "2026-01-02,ST101 | Awareness | FB,ST101 video 15s,facebook,-1,10,1",
                     "2026-01-03,ST101 | Awareness | FB,ST101 video 15s,facebook,2,20,2").replace("\n", "\r")
    write(raw, "meta_ads_2026-01.csv", text.encode("utf-8"))
    summary = load(con, raw)
    assert quarantine(con) == [("meta_ads_2026-01.csv", 2, "Amount spent (EUR)", "spend is negative (-1)")]
    assert (summary.files[-1].read, summary.files[-1].accepted) == (3, 2)


# ---------------------------------------------------------------- privacy


def test_contacts_that_need_unicode_folding_get_their_pid_in_python(con, raw):
    # Most contacts are pseudonymized in SQL; these take the Python path, and a person
    # spelled both ways is one person.
    write(raw, "site_pipeline_2026-01.csv", PIPELINE_HEADER
          + f"P-1,ST-101,S-01,{ANNA_EMAIL},,contacted,2026-01-05T10:00:00Z,\n"
          + "P-2,ST-101,S-01,ａｎｎａ.berg@example.com,,consented,2026-01-06T10:00:00Z,\n"
          + "P-3,ST-101,S-01,mailto:Anna.Berg@example.com,,screened,2026-01-07T10:00:00Z,\n"
          + "P-4,ST-101,S-01,,٠١٥١ ٢٣٤٥ ٦٧٨,contacted,2026-01-05T10:00:00Z,\n"
          + f"P-5,ST-101,S-01,,{BERT_PHONE},contacted,2026-01-05T10:00:00Z,\n")
    load(con, raw)
    assert rows(con, "SELECT event_id, pid FROM funnel_event ORDER BY 1") == [
        ("pipe:P-1", ANNA), ("pipe:P-2", ANNA), ("pipe:P-3", ANNA),
        # Arabic-Indic digits are digits to Python: kept as they are, after a '+'
        ("pipe:P-4", expected_pid("phone", "+٠١٥١٢٣٤٥٦٧٨")), ("pipe:P-5", BERT)]




def all_exports(raw: Path) -> None:
    write(raw, "prescreener_2026-01.csv", prescreener_file())
    write(raw, "hcp_referrals_2026-01.csv", referrals_file())
    write(raw, "screening_events_2026-01.csv", signups_file())
    write(raw, "site_pipeline_2026-01.csv", pipeline_file())
    write(raw, "consent_2026-01.jsonl", consent_file())
    write(raw, "consent_2026-02.jsonl", '{"consent_id": "cs-9", "email": "paula@example.org", oops\n')


def test_no_contact_reaches_any_table(con, raw):
    all_exports(raw)
    summary = load(con, raw)
    assert summary.rows_quarantined > 10 and summary.rows_accepted > 10
    columns = rows(con, "SELECT table_name, list(column_name) FROM information_schema.columns "
                        "WHERE data_type = 'VARCHAR' AND table_schema = 'main' GROUP BY ALL")
    assert sum(len(names) for _, names in columns) > 50
    pattern = "|".join(SECRETS)
    for table, names in columns:
        for column in names:
            found = rows(con, f'SELECT list(DISTINCT "{column}") FROM "{table}" '
                              f'WHERE regexp_matches(lower("{column}"), ?)', [pattern])[0][0]
            assert not found, f"{table}.{column} holds {found}"


def test_erasure_ledger_keeps_an_erased_person_out(con, raw):
    con.execute("INSERT INTO erasure_ledger VALUES (?, TIMESTAMP '2026-02-01', "
                "TIMESTAMP '2026-02-01', 'dpo')", [subject_hash(ANNA)])
    all_exports(raw)
    summary = load(con, raw)
    # Anna: pre-screener R-1, pipeline P-1 and consent cs-1.
    assert summary.rows_erased == 3
    for table in ("person", "visitor_link", "touchpoint", "funnel_event", "consent_event"):
        assert rows(con, f"SELECT count(*) FROM {table} WHERE pid = ?", [ANNA]) == [(0,)], table
    assert rows(con, "SELECT count(*) FROM person WHERE pid = ?", [BERT]) == [(1,)]


# ---------------------------------------------------------------- runs, progress, failures


def test_run_record_progress_and_after_load(con, raw):
    write(raw, "meta_ads_2026-01.csv",
          meta_rows("2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,12.50,1000,20",
                    "2026-01-02,ST101 | Awareness | FB,ST101 video 15s,facebook,-1,1000,20"))
    write(raw, "ground_truth.json", "{}")
    write(raw, "README", "not an export")
    lines, seen = [], []

    def after_load(connection):
        seen.append(connection.execute("SELECT count(*) FROM ad_daily").fetchone()[0])
        connection.execute("INSERT INTO audit_log (ts, actor, action, prev_hash, hash) "
                           "VALUES (TIMESTAMP '2026-03-01', 'loader', 'rebuild', '', 'h')")

    summary = load(con, raw, progress=lines.append, after_load=after_load)
    assert lines == ["[1/2] setup_2026-01.json: 23 rows (23 accepted, 0 quarantined)",
                     "[2/2] meta_ads_2026-01.csv: 2 rows (1 accepted, 1 quarantined)"]
    assert seen == [1] and rows(con, "SELECT count(*) FROM audit_log") == [(1,)]
    assert rows(con, "SELECT run_id, status, files_seen, files_loaded, rows_read, rows_accepted, "
                     "rows_quarantined, finished_at IS NOT NULL FROM load_run") == [
        (summary.run_id, "ok", 2, 2, 25, 24, 1, True)]
    assert summary.text().splitlines()[:2] == [
        f"Load run {summary.run_id} ok: 2 files seen, 2 loaded, 0 already loaded, 0 rejected",
        "Rows: 25 read, 24 accepted, 1 quarantined"]
    assert rows(con, "SELECT path, kind, status, rows_read, rows_accepted, rows_quarantined "
                     "FROM source_file ORDER BY path") == [
        ("meta_ads_2026-01.csv", "meta_ads", "loaded", 2, 1, 1),
        ("setup_2026-01.json", "setup", "loaded", 23, 23, 0)]

    lines.clear()
    load(con, raw, progress=lines.append, after_load=after_load)
    assert seen == [1]  # nothing new loaded: no rebuild
    assert lines[1] == "[2/2] meta_ads_2026-01.csv: already loaded, skipped"


def test_store_failure_leaves_nothing_of_the_file(con, raw, monkeypatch):
    write(raw, "meta_ads_2026-01.csv",
          meta_rows("2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,-12.50,1000,20",
                    "2026-01-02,ST101 | Awareness | FB,ST101 video 15s,facebook,8.00,800,8"))
    spec = runner.TABLE_SPECS["meta_ads"]

    def write_then_fail(ctx):
        spec.write(ctx)  # rows are in the table inside the transaction ...
        raise duckdb.IOException("No space left on device")  # ... when the disk fills up

    monkeypatch.setitem(runner.TABLE_SPECS, "meta_ads", dataclasses.replace(spec, write=write_then_fail))
    with pytest.raises(StoreError, match="No space left on device"):
        load(con, raw)
    assert rows(con, "SELECT count(*) FROM ad_daily") == [(0,)]
    assert quarantine(con, "meta_ads_2026-01.csv") == []
    assert rows(con, "SELECT kind FROM source_file") == [("setup",)]
    assert rows(con, "SELECT status, message LIKE '%No space left%' FROM load_run") == [("failed", True)]

    monkeypatch.setitem(runner.TABLE_SPECS, "meta_ads", spec)
    summary = load(con, raw)
    assert (summary.files_loaded, summary.files_skipped) == (1, 1)
    assert rows(con, "SELECT count(*) FROM ad_daily") == [(1,)]


def test_a_run_cut_off_by_a_killed_process_is_marked_failed(con, raw):
    con.execute("INSERT INTO load_run (started_at, status, source) "
                "VALUES (TIMESTAMP '2026-02-01', 'running', 'data/raw')")
    write(raw, "web_events_2026-02.jsonl", "\n")
    summary = load(con, raw)
    assert rows(con, "SELECT status, message FROM load_run ORDER BY run_id") == [
        ("failed", "interrupted: the process ended during the run"),
        ("ok", "2 loaded, 0 already loaded, 0 rejected, 0 deferred; 0 rows of erased persons skipped")]
    assert summary.files[-1].read == 0


# ---------------------------------------------------------------- identity stitching


def test_one_person_through_three_channels_is_one_person_with_three_touchpoints(con, raw):
    # Anna clicks a Facebook ad (an anonymous cookie), scans a brochure's QR code with the
    # same phone browser, is referred by her physician, and then fills in the
    # pre-screener (cookie and e-mail): three channels, one person.
    write(raw, "web_events_2026-01.jsonl", jsonl(
        {"event_id": "we-1", "ts": "2026-01-02T09:00:00Z", "visitor_id": "v-anna", "event": "ad_click",
         "study_id": "ST-101", "utm": {"source": "fb", "campaign": "C-FB-101-01", "content": "CR-0001"}}))
    write(raw, "qr_scans_2026-01.csv",
          "scan_id,scanned_at,code,visitor_id\nQS-1,2026-01-03T08:00:00Z,QR-7F3A21,v-anna\n")
    write(raw, "hcp_referrals_2026-01.csv",
          "referral_id,referred_at,study_id,site_id,hcp_id,patient_email,patient_phone,birth_year\n"
          f"REF-1,2026-01-04T08:00:00Z,ST-101,S-01,{HCP_NUMBER},anna.berg@example.com,,1995\n")
    write(raw, "prescreener_2026-01.csv", PRESCREENER_HEADER
          + f"R-1,2026-01-05T10:00:00Z,2026-01-05T10:05:00Z,ST-101,S-01,{ANNA_EMAIL},,1995,yes,,"
            "v-anna,,,,,REF-1,\n")
    load(con, raw)
    hcp = hmac.new(KEY, b"hcp:LANR-123456789", hashlib.sha256).hexdigest()[:32]
    assert rows(con, "SELECT pid FROM person") == [(ANNA,)]
    assert rows(con, "SELECT visitor_id, pid FROM visitor_link") == [("v-anna", ANNA)]
    assert rows(con, "SELECT touch_id, pid, kind, channel_id, campaign_id, site_id, hcp_pid "
                     "FROM touchpoint ORDER BY ts") == [
        ("web:we-1", ANNA, "ad_click", "facebook", "C-FB-101-01", None, None),
        ("qr:QS-1", ANNA, "qr_scan", "paper_brochure", "C-PB-101-01", "S-01", None),
        ("ref:REF-1", ANNA, "referral", "hcp_referral", None, "S-01", hcp)]
    from cockpit import derive

    derive.refresh(con)
    assert rows(con, "SELECT pid, study_id, lead_ts::VARCHAR FROM journey") == [
        (ANNA, "ST-101", "2026-01-04 08:00:00")]

    # a web event of her cookie exported later joins her at once
    write(raw, "web_events_2026-02.jsonl", jsonl(
        {"event_id": "we-2", "ts": "2026-01-06T09:00:00Z", "visitor_id": "v-anna", "event": "page_view",
         "study_id": "ST-101", "utm": {"source": "li"}}))
    load(con, raw)
    assert rows(con, "SELECT pid, channel_id FROM touchpoint WHERE touch_id = 'web:we-2'") == [
        (ANNA, "linkedin")]
