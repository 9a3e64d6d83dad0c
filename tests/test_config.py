"""The configuration file: every problem named by its key, secrets refused in the file,
the key file, and `cockpit load/serve --config` end to end."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cockpit.config import (ConfigError, FolderSource, SqlSource, load_config, parse_config,
                            pseudonymization_key, smtp_credentials)

ROOT = Path(__file__).resolve().parents[1]
ENV = {"COCKPIT_CRM_URL": "sqlite:////tmp/none.sqlite"}


def problems(text: str, environ=None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("/srv/cockpit"), "test.toml", environ if environ is not None else ENV)
    return caught.value.problems


def test_the_example_file_is_valid_and_documents_every_section():
    config = load_config(ROOT / "cockpit.example.toml", environ=ENV)
    drop, crm = config.sources
    assert isinstance(drop, FolderSource) and drop.path == ROOT / "data" / "raw"
    assert (drop.interval_seconds, drop.stale_after_hours, drop.settle_seconds) == (60, 48.0, 2.0)
    assert isinstance(crm, SqlSource) and (crm.kind, crm.watermark, crm.stale_after_hours) == \
        ("site_pipeline", "updated_at", 24.0)
    assert crm.columns["status_at"] == "status_changed_at"
    assert crm.url(ENV) == ENV["COCKPIT_CRM_URL"] and crm.location == "sql:site_crm"
    assert config.smtp == {"host": "smtp.example.org", "port": 587, "security": "starttls",
                           "sender": "cockpit@example.org", "timeout": 30.0}
    assert config.alerts == {"interval_seconds": 900, "base_url": "https://cockpit.example.org",
                             "digest_recipients": ["recruitment-leads@example.org"],
                             "digest_weekday": "mon", "digest_hour": 7}
    assert config.key_file == Path("/etc/cockpit/pseudonymization.key")
    assert config.privacy == {"small_cell_threshold": 11}
    assert config.server == {"https": True, "idle_minutes": 30, "memory_limit": "1GB"}


def test_defaults_and_relative_paths():
    config = parse_config('[sources.drop]\ntype = "folder"\npath = "raw"\n', Path("/srv/cockpit"))
    assert config.sources == (FolderSource(name="drop", path=Path("/srv/cockpit/raw")),)
    assert (config.smtp, config.alerts, config.key_file) == ({}, {}, None)


def test_unknown_keys_are_named_with_their_section():
    assert problems('colour = "blue"\n[smtp]\nhost = "h"\nsender = "a@b.c"\nhots = "x"\n') == [
        "(top level): unknown key 'colour' (known: alerts, privacy, pseudonymization, server, smtp, sources)",
        "smtp: unknown key 'hots' (known: host, port, security, sender, timeout)"]


def test_wrong_types_and_ranges_are_named():
    text = ('[sources.drop]\ntype = "folder"\npath = 7\ninterval_seconds = "60"\n'
            'stale_after_hours = -1\nsettle_seconds = true\n'
            '[smtp]\nhost = "h"\nsender = "nobody"\nport = 70000\nsecurity = "tls"\ntimeout = 0\n'
            '[alerts]\ninterval_seconds = 1.5\nbase_url = "ftp://x"\n')
    assert problems(text) == [
        "sources.drop.path: must be text, not an integer (7)",
        "sources.drop.interval_seconds: must be an integer, not text ('60')",
        "sources.drop.stale_after_hours: must be greater than 0, not -1",
        "sources.drop.settle_seconds: must be a number, not a boolean (True)",
        "smtp.port: must be a port (1-65535), not 70000",
        "smtp.security: must be one of none, starttls, ssl, not 'tls'",
        "smtp.sender: 'nobody' is not an e-mail address",
        "smtp.timeout: must be greater than 0, not 0",
        "alerts.interval_seconds: must be an integer, not a number (1.5)",
        "alerts.base_url: 'ftp://x' is not an http(s) URL",
    ]


def test_weekly_digest_settings_are_checked():
    text = ('[alerts]\ndigest_recipients = ["lead@example.org", "nobody"]\n'
            'digest_weekday = "monday"\ndigest_hour = 24\n')
    assert problems(text) == [
        "alerts.digest_recipients: not an e-mail address: nobody",
        "alerts.digest_weekday: 'monday' is not one of mon, tue, wed, thu, fri, sat, sun",
        "alerts.digest_hour: 24 is not an hour 0-23",
    ]
    assert problems('[alerts]\ndigest_recipients = "lead@example.org"\n') == [
        "alerts.digest_recipients: must be a list of e-mail addresses"]


def test_missing_required_keys_are_named():
    assert problems('[sources.crm]\ntype = "sql"\nurl_env = "COCKPIT_CRM_URL"\n'
                    '[sources.box]\npath = "x"\n[smtp]\nport = 25\n') == [
        "sources.crm: missing required key 'table'",
        "sources.crm: missing required key 'kind'",
        "sources.crm: missing required key 'watermark'",
        "sources.box: missing required key 'type' (folder or sql)",
        "smtp: missing required key 'host'",
        "smtp: missing required key 'sender'",
    ]


def test_secrets_written_in_the_file_are_refused():
    text = ('[sources.crm]\ntype = "sql"\nurl = "postgresql://u:pw@db/crm"\n'
            'url_env = "postgresql://u:pw@db/crm"\ntable = "t"\nkind = "site_pipeline"\n'
            'watermark = "updated_at"\n'
            '[smtp]\nhost = "h"\nsender = "a@b.c"\nuser = "me"\npassword = "pw"\n'
            '[pseudonymization]\nkey = "abc"\n')
    found = problems(text)
    assert found[0].startswith("sources.crm.url: a database URL or credential is a secret")
    assert found[1].startswith("sources.crm.url_env: holds a URL; it must name the environment variable")
    assert found[2:4] == [
        "smtp.user: credentials are not read from the file: set COCKPIT_SMTP_USER in the environment",
        "smtp.password: credentials are not read from the file: set COCKPIT_SMTP_PASSWORD in the environment"]
    assert found[4].startswith("pseudonymization.key: the key is a secret and is not read from the file: "
                               "set COCKPIT_SECRET_KEY")
    assert len(found) == 5


def test_sql_source_checks_kind_columns_and_environment():
    text = ('[sources.crm]\ntype = "sql"\nurl_env = "CRM_URL"\ntable = "t"\nkind = "site_pipeline"\n'
            'watermark = "updated_at"\n[sources.crm.columns]\nrecord_id = "id"\ncolour = "c"\n'
            'status = 3\n[sources.ads]\ntype = "sql"\nurl_env = "CRM_URL"\ntable = "t"\n'
            'kind = "meta_ads"\nwatermark = "w"\n')
    found = problems(text, environ={})
    assert found == [
        "sources.crm.columns: 'colour' is not a column of site_pipeline exports (known: record_id, "
        "study_id, site_id, email, phone, status, status_at, reason)",
        "sources.crm.columns.status: must name a column of the table, not an integer (3)",
        "sources.crm.url_env: the environment variable CRM_URL is not set",
        "sources.ads.kind: must be one of site_pipeline, prescreener, hcp_referrals, screening_events, "
        "consent, qr_scans, web_events, offline_costs, not 'meta_ads'",
        "sources.ads.url_env: the environment variable CRM_URL is not set",
    ]


def test_bad_names_duplicate_folders_and_bad_toml():
    found = problems('[sources."my source"]\ntype = "folder"\npath = "raw"\n'
                     '[sources.b]\ntype = "folder"\npath = "./raw"\n')
    assert found == ["sources.my source: a source name may hold only letters, digits, _ and - (at most 64)",
                     "sources.b.path: the folder is already the source my source"]
    assert problems('[sources\n')[0].startswith("not valid TOML: ")
    assert "line 2" in problems('[smtp]\nhost = \n')[0]


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "missing.toml")


def test_pseudonymization_key_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("COCKPIT_SECRET_KEY", raising=False)
    monkeypatch.delenv("COCKPIT_KEY_FILE", raising=False)
    key_file = tmp_path / "secret" / "pseudo.key"
    config = parse_config(f'[pseudonymization]\nkey_file = "{key_file}"\n', tmp_path)
    with pytest.raises(ConfigError, match="does not exist. Create it once"):
        pseudonymization_key(config, tmp_path / "db.duckdb")
    key_file.parent.mkdir()
    key_file.write_text("00ff" * 8)
    assert pseudonymization_key(config, tmp_path / "db.duckdb") == bytes.fromhex("00ff" * 8)
    key_file.write_text("not hex")
    with pytest.raises(ConfigError, match="cannot be read as a hex key"):
        pseudonymization_key(config, tmp_path / "db.duckdb")
    monkeypatch.setenv("COCKPIT_SECRET_KEY", "from-env")
    assert pseudonymization_key(config, tmp_path / "db.duckdb") == b"from-env"
    monkeypatch.delenv("COCKPIT_SECRET_KEY")
    made = pseudonymization_key(None, tmp_path / "db.duckdb")  # the default key file beside the store
    assert (tmp_path / "db.duckdb.key").read_text() == made.hex()


def test_smtp_credentials_come_from_the_environment_only():
    assert smtp_credentials({"COCKPIT_SMTP_USER": "u", "COCKPIT_SMTP_PASSWORD": "p"}) == ("u", "p")
    assert smtp_credentials({}) == (None, None)


# ---------------------------------------------------------------- the command line

def cockpit(*args, env):
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def test_load_and_serve_refuse_an_invalid_configuration(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[sources.crm]\ntype = "sql"\nurl_env = "NOT_SET_ANYWHERE"\ntable = "t"\n'
                   'kind = "site_pipeline"\nwatermark = "w"\npassword = "x"\n')
    env = {k: v for k, v in os.environ.items() if k != "NOT_SET_ANYWHERE"}
    for command in ("load", "serve"):
        result = cockpit(command, "--db", str(tmp_path / "x.duckdb"), "--config", str(bad), env=env)
        assert result.returncode == 2, result.stderr
        assert f"The configuration {bad} is not valid" in result.stderr
        assert "sources.crm.password: a database URL or credential is a secret" in result.stderr
        assert "sources.crm.url_env: the environment variable NOT_SET_ANYWHERE is not set" in result.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_load_with_a_configuration_reads_folder_and_sql_sources(tmp_path):
    from test_ingest import SETUP

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "setup_2026-01.json").write_text(json.dumps(SETUP))
    crm = tmp_path / "crm.sqlite"
    with sqlite3.connect(crm) as db:
        db.execute("CREATE TABLE pipeline (id TEXT, study TEXT, site TEXT, email TEXT, phone TEXT, "
                   "status TEXT, status_at TEXT, reason TEXT, modified INTEGER)")
        db.executemany("INSERT INTO pipeline VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            ("P-1", "ST-101", "S-01", "a@example.org", None, "contacted", "2026-01-05T10:00:00Z", None, 1),
            ("P-2", "ST-101", "S-01", "b@example.org", None, "lost", "2026-01-05T10:00:00Z", None, 2)])
    key_file = tmp_path / "keys" / "pseudo.key"
    key_file.parent.mkdir()
    key_file.write_text("ab" * 32)
    config = tmp_path / "cockpit.toml"
    config.write_text(
        '[sources.drop]\ntype = "folder"\npath = "raw"\nstale_after_hours = 12\n'
        '[sources.crm]\ntype = "sql"\nurl_env = "TEST_CRM_URL"\ntable = "pipeline"\n'
        'kind = "site_pipeline"\nwatermark = "modified"\n[sources.crm.columns]\nrecord_id = "id"\n'
        'study_id = "study"\nsite_id = "site"\n'
        f'[pseudonymization]\nkey_file = "{key_file}"\n')
    env = {k: v for k, v in os.environ.items() if k != "COCKPIT_SECRET_KEY"}
    env["TEST_CRM_URL"] = f"sqlite:///{crm}"
    db = tmp_path / "c.duckdb"
    result = cockpit("load", "--db", str(db), "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "Source drop:" in result.stderr and "Source crm:" in result.stderr
    assert "[batch 1] sql:crm rows 1-2: 2 rows (1 accepted, 1 quarantined)" in result.stderr
    assert "rows/s" in result.stderr and "rows/s." in result.stdout
    assert "crm: Load run 2 ok: 1 batches seen" in result.stdout
    assert not (tmp_path / "c.duckdb.key").exists()  # the configured key file was used
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT name, type, stale_after_hours FROM source_setting ORDER BY name").fetchall() \
        == [("crm", "sql", 48.0), ("drop", "folder", 12.0)]
    assert con.execute("SELECT count(*) FROM funnel_event").fetchone()[0] == 1
    con.close()
    # the URL's variable unset: the configuration is refused before anything is loaded
    del env["TEST_CRM_URL"]
    result = cockpit("load", "--db", str(db), "--config", str(config), env=env)
    assert result.returncode == 2 and "TEST_CRM_URL is not set" in result.stderr


def test_serve_schedules_each_configured_source_on_its_interval(tmp_path):
    from cockpit import scheduler
    from cockpit.store import Store

    config = parse_config('[sources.drop]\ntype = "folder"\npath = "raw"\ninterval_seconds = 30\n'
                          '[sources.crm]\ntype = "sql"\nurl_env = "CRM_URL"\ntable = "t"\n'
                          'kind = "consent"\nwatermark = "w"\nstale_after_hours = 6\n',
                          tmp_path, environ={"CRM_URL": "sqlite://"})
    before = scheduler.plan()
    with Store(tmp_path / "s.duckdb") as store:
        jobs = scheduler.start_sources(store, config.sources, b"k")
        try:
            # beside the warm-up at start (cockpit.scheduler.warm_job), which may have
            # run already, and the daily one
            loads = [job for job in jobs.get_jobs() if not job.id.startswith("warm")]
            assert str(jobs.get_job("warm-daily").trigger) == "cron[hour='0', minute='5']"
            assert {job.id: job.trigger.interval.total_seconds() for job in loads} == {
                "load-drop": 30, "load-crm": 300}
            assert all(job.max_instances == 1 and job.coalesce for job in loads)
            assert scheduler.plan().sources == config.sources
            assert store.reader().execute(
                "SELECT name, type, stale_after_hours, interval_seconds FROM source_setting "
                "ORDER BY name").fetchall() == [("crm", "sql", 6.0, 300), ("drop", "folder", 48.0, 30)]
        finally:
            jobs.shutdown(wait=False)
            scheduler._plan = before


def test_privacy_and_server_values_are_checked():
    assert problems("[privacy]\nsmall_cell_threshold = 1\n[server]\nhttps = \"yes\"\n"
                    "memory_limit = \"lots\"\n") == [
        "privacy.small_cell_threshold: must be at least 2, not 1",
        "server.https: must be a boolean, not text ('yes')",
        "server.memory_limit: expected a size such as '1GB' or '512MB'"]
