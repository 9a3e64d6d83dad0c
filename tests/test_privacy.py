"""Pseudonymous ids: normalisation, HMAC, and the key kept outside the database."""
import hashlib
import hmac
import os
import stat
from datetime import datetime, timezone

from cockpit import privacy


def expected_pid(key: bytes, text: str) -> str:
    return hmac.new(key, f"person:{text}".encode(), hashlib.sha256).hexdigest()[:32]


def test_same_email_in_three_spellings_is_one_person():
    key = b"k"
    ids = {privacy.person_id(key, email=e) for e in
           ("Anna.Berg@Example.org", "  anna.berg@example.org", "ANNA.BERG@EXAMPLE.ORG ")}
    assert ids == {expected_pid(key, "email:anna.berg@example.org")}


def test_phone_formats_normalise_to_e164():
    assert privacy.normalize_phone("+49 151 2345-6789") == "+4915123456789"
    assert privacy.normalize_phone("0049 (151) 23456789") == "+4915123456789"
    assert privacy.normalize_phone("0151 23456789", calling_code="49") == "+4915123456789"
    assert privacy.normalize_phone("12") is None
    assert privacy.normalize_phone("call me") is None


def test_email_wins_over_phone_and_phone_is_the_fallback():
    key = b"k"
    assert privacy.person_id(key, "a@example.com", "+4915123456789") == expected_pid(key, "email:a@example.com")
    assert privacy.person_id(key, None, "+49 151 23456789") == expected_pid(key, "phone:+4915123456789")
    assert privacy.person_id(key, "not-an-email", None) is None


def test_other_key_other_pid():
    assert privacy.person_id(b"k1", "a@example.com") != privacy.person_id(b"k2", "a@example.com")


def test_key_file_is_created_once_with_mode_0600(tmp_path, monkeypatch):
    monkeypatch.delenv("COCKPIT_SECRET_KEY", raising=False)
    monkeypatch.delenv("COCKPIT_KEY_FILE", raising=False)
    db = tmp_path / "c.duckdb"
    first = privacy.load_key(db)
    path = tmp_path / "c.duckdb.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) == 32 and privacy.load_key(db) == first


def test_key_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COCKPIT_SECRET_KEY", "hex:00ff")
    assert privacy.load_key(tmp_path / "x") == b"\x00\xff"
    monkeypatch.setenv("COCKPIT_SECRET_KEY", "plain secret")
    assert privacy.load_key(tmp_path / "x") == b"plain secret"
    assert not (tmp_path / "x.key").exists()


# ---------------------------------------------------------------- one address, many spellings

CANONICAL = "anna.berg@example.org"


def test_email_spellings_normalise_to_one_address():
    spellings = [
        "Anna.Berg@Example.org",                  # case
        "\t anna.berg@example.org \n",            # surrounding whitespace
        "mailto:anna.berg@example.org",           # a link copied from a web page
        "MAILTO:Anna.Berg@example.org?subject=Study",
        "<anna.berg@example.org>",                # angle brackets
        "Anna Berg <Anna.Berg@Example.ORG>",      # with a display name
        "ａｎｎａ．ｂｅｒｇ＠ｅｘａｍｐｌｅ．ｏｒｇ",  # full-width forms (NFKC)
        "anna.berg@example.org\u200b",            # a zero-width space pasted along
        "\u00a0anna.berg@example.org",            # a non-breaking space
        "anna.berg@example.org.",                 # trailing dot of the domain
    ]
    assert {privacy.normalize_email(s) for s in spellings} == {CANONICAL}
    key = b"k"
    assert {privacy.person_id(key, email=s) for s in spellings} == {expected_pid(key, "email:" + CANONICAL)}


def test_dots_and_plus_tags_are_different_mailboxes():
    key = b"k"
    ids = {privacy.person_id(key, email=e) for e in
           ("anna.berg@example.org", "annaberg@example.org", "anna.berg+studies@example.org")}
    assert len(ids) == 3
    assert privacy.normalize_email("Anna.Berg+Studies@Example.org") == "anna.berg+studies@example.org"


def test_internationalised_domain_in_either_form_is_one_address():
    assert privacy.normalize_email("jörg@Müller.de") == "jörg@xn--mller-kva.de"
    assert privacy.normalize_email("jörg@xn--mller-kva.de") == "jörg@xn--mller-kva.de"


def test_not_an_address_gives_no_pid():
    for value in ("", "   ", None, "mailto:", "<>", "anna.berg", "anna@localhost"):
        assert privacy.normalize_email(value) is None, value
    assert privacy.person_id(b"k", "mailto:", None) is None


def test_subject_hash_in_sql_equals_subject_hash():
    import duckdb

    con = duckdb.connect()
    pids = ["0123456789abcdef0123456789abcdef", "p1", expected_pid(b"k", "email:" + CANONICAL)]
    got = [con.execute(f"SELECT {privacy.subject_hash_sql('?')}", [p]).fetchone()[0] for p in pids]
    assert got == [privacy.subject_hash(p) for p in pids]
    # worked out by hand: SHA-256 of the text 'subject:p1'
    assert got[1] == hashlib.sha256(b"subject:p1").hexdigest()


def test_existing_key_never_creates_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("COCKPIT_SECRET_KEY", raising=False)
    monkeypatch.delenv("COCKPIT_KEY_FILE", raising=False)
    db = tmp_path / "c.duckdb"
    try:
        privacy.existing_key(db)
        raise AssertionError("a missing key must be refused")
    except privacy.KeyFileError as exc:
        assert "c.duckdb.key" in str(exc)
    assert not (tmp_path / "c.duckdb.key").exists()
    created = privacy.load_key(db)
    assert privacy.existing_key(db) == created


def test_same_email_through_three_channels_is_one_person(tmp_path):
    """A pre-screener form, an HCP referral and a consent export spell Anna's address
    three ways; the store holds one person with the leads of both studies' channels."""
    import json

    from cockpit import derive
    from cockpit.ingest import load_folder
    from cockpit.store import open_db
    from test_ingest import SETUP

    key = b"three-channel-key"
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "setup_2026-01.json").write_text(json.dumps(SETUP), encoding="utf-8")
    (raw / "prescreener_2026-01.csv").write_text(
        "response_id,started_at,completed_at,study_id,site_id,email,phone,birth_year,eligible,"
        "ineligible_reason,visitor_id,utm_source,utm_campaign,utm_content,qr_code,referral_id,signup_id\n"
        "R-1,2026-01-03T10:00:00Z,2026-01-03T10:05:00Z,ST-101,S-01, Anna.Berg@Example.ORG ,,1990,yes,,"
        "v-1,fb,C-FB-101-01,CR-0001,,,\n", encoding="utf-8")
    (raw / "hcp_referrals_2026-01.csv").write_text(
        "referral_id,referred_at,study_id,site_id,hcp_id,patient_email,patient_phone,birth_year\n"
        "F-1,2026-01-10T08:00:00Z,ST-202,S-03,LANR-1,<anna.berg@example.org.>,,1990\n", encoding="utf-8")
    (raw / "consent_2026-01.jsonl").write_text(json.dumps(
        {"consent_id": "cs-1", "ts": "2026-01-03T09:59:00Z", "email": "mailto:ＡＮＮＡ.BERG@example.org",
         "phone": "", "purpose": "tracking", "action": "granted", "channel": "facebook",
         "notice_version": "2025-03"}) + "\n", encoding="utf-8")
    con = open_db(tmp_path / "store.duckdb")
    try:
        summary = load_folder(con, raw, key, after_load=derive.refresh,
                              now=datetime(2026, 2, 1, tzinfo=timezone.utc))
        accepted = {f.kind: f.accepted for f in summary.files if f.kind != "setup"}
        assert accepted == {"prescreener": 1, "hcp_referrals": 1, "consent": 1}
        assert summary.rows_quarantined == 0
        pid = expected_pid(key, "email:" + CANONICAL)
        assert con.execute("SELECT pid FROM person").fetchall() == [(pid,)]
        assert con.execute("SELECT DISTINCT pid FROM funnel_event").fetchall() == [(pid,)]
        assert con.execute("SELECT pid FROM consent_event").fetchall() == [(pid,)]
        assert con.execute("SELECT study_id, channel_id FROM journey ORDER BY study_id").fetchall() == [
            ("ST-101", "facebook"), ("ST-202", "hcp_referral")]
    finally:
        con.close()


# ---------------------------------------------------------------- the same ids computed in SQL

def _sql_ids(key: bytes, rows: list[tuple], calling_code: str | None = None) -> list[tuple]:
    """(pid, hcp_pid, needs Python) of each (email, phone, hcp number) row, by privacy.person_ids_sql."""
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE c AS SELECT unnest(?::VARCHAR[]) AS e, unnest(?::VARCHAR[]) AS p, "
                "unnest(?::VARCHAR[]) AS h, unnest(range(?)) AS n",
                [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], len(rows)])
    select = privacy.person_ids_sql("c", "n", "e", "p", "h", calling_code)
    got = con.execute(f"SELECT pid, hcp_pid, _python FROM ({select}) ORDER BY _rid",
                      privacy.hmac_parameters(key)).fetchall()
    con.close()
    return got


def test_hmac_in_sql_equals_python_bit_for_bit_for_short_and_long_keys():
    import duckdb

    con = duckdb.connect()
    for key in (b"", b"k", b"x" * 64, b"a much longer key than the block of sha-256 " * 3):
        for value in ("email:anna.berg@example.org", "phone:+4915123456789", "", "jörg@xn--mller-kva.de"):
            sql = privacy.pseudonym_sql("$value")
            got = con.execute(f"SELECT {sql}", {**privacy.hmac_parameters(key), "value": value}).fetchone()[0]
            assert got == privacy.pseudonym(key, value), (key, value)
            assert got == hmac.new(key, f"person:{value}".encode(), hashlib.sha256).hexdigest()[:32]
    # worked out by hand with hmac: the key b"k" over "hcp:LANR-1"
    hcp = con.execute(f"SELECT {privacy.pseudonym_sql(chr(39) + 'LANR-1' + chr(39), 'hcp')}",
                      privacy.hmac_parameters(b"k")).fetchone()[0]
    assert hcp == hmac.new(b"k", b"hcp:LANR-1", hashlib.sha256).hexdigest()[:32]


def test_person_ids_in_sql_equal_person_id_and_hcp_id(monkeypatch):
    monkeypatch.delenv("COCKPIT_DEFAULT_CALLING_CODE", raising=False)
    key = b"sql-key"
    rows = [
        ("Anna.Berg@Example.ORG", None, None),          # case: SQL
        ("anna.berg@example.org.", "", ""),              # trailing dot of the domain: SQL
        ("a@b@example.org", None, "lanr-123456789"),     # the last '@' splits: SQL
        ("@example.org", None, "lanr 1"),                # empty local part; a space inside
        ("anna", "0151 2345 678", None),                 # not an address: the phone, national
        (None, "0049 (151) 2345-678", "LANR-1"),         # 00 prefix, separators
        ("", "+49 151 23456789", None),
        (None, "12", None),                              # too short: no pid
        (None, "+1234567890123456", None),               # too long: no pid
        ("x@localhost", "12-34", None),                  # neither usable: no pid
        ("mailto:anna.berg@example.org", None, None),    # mailto: left to Python
        ("Anna Berg <anna.berg@example.org>", None, None),  # brackets: Python
        ("ａｎｎａ.berg@example.org", None, None),          # full-width: Python (NFKC)
        ("jörg@müller.de", None, None),                  # IDN: Python
        (None, "٠١٥١٢٣٤٥٦٧٨", "ß-1"),                    # Arabic-Indic digits, ß: Python
        (None, None, " LANR-1"),                         # surrounding space: Python strips
        ("x@localhost", "call me", None),                # letters in the phone: Python
    ]
    got = _sql_ids(key, rows)
    python = [r[2] for r in got]
    assert python == [False] * 10 + [True] * 7
    for (email, phone, hcp), (pid, hcp_pid, needs) in zip(rows, got):
        if not needs:
            assert pid == privacy.person_id(key, email, phone), (email, phone)
            assert hcp_pid == (privacy.hcp_id(key, hcp) if hcp else None), hcp
    assert got[0][0] == got[1][0] == expected_pid(key, "email:anna.berg@example.org")
    assert got[4][0] == expected_pid(key, "phone:+491512345678")
    assert [r[0] for r in got[7:10]] == [None, None, None]
    # the default calling code is read as normalize_phone reads it
    monkeypatch.setenv("COCKPIT_DEFAULT_CALLING_CODE", "43")
    assert _sql_ids(key, [(None, "0664 1234567", None)])[0][0] == expected_pid(key, "phone:+436641234567")
