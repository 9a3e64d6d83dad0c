"""Pseudonymous ids: normalisation, HMAC, and the key kept outside the database."""
import hashlib
import hmac
import os
import stat

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
