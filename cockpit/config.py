"""The configuration file: sources and their schedules, SMTP and alert settings, and
where the pseudonymization key lives (TOML, read with ``tomllib``; documented in
``cockpit.example.toml``).

The whole file is checked when the cockpit starts, and every problem is reported at
once with the key it concerns: an unknown key, a value of the wrong type or out of
range, a missing required key, or a secret written in the file. Secrets never come
from the file: database URLs from the environment variable a SQL source names with
``url_env``, SMTP credentials from ``COCKPIT_SMTP_USER`` / ``COCKPIT_SMTP_PASSWORD``,
the pseudonymization key from ``COCKPIT_SECRET_KEY`` or a key file outside the repo.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from cockpit.store import memory_limit_problem

ENV_SECRET_KEY = "COCKPIT_SECRET_KEY"
ENV_SMTP_USER = "COCKPIT_SMTP_USER"
ENV_SMTP_PASSWORD = "COCKPIT_SMTP_PASSWORD"

DEFAULT_STALE_AFTER_HOURS = 48.0
DEFAULT_FOLDER_INTERVAL = 60
DEFAULT_SQL_INTERVAL = 300
DEFAULT_SETTLE_SECONDS = 2.0  # scheduled scans: a file younger than this may still be written
MIN_INTERVAL = 5

SMTP_SECURITY = ("none", "starttls", "ssl")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Keys that would put a secret in the file, and where the secret belongs instead.
_SQL_SECRETS = ("url", "dsn", "uri", "connection_string", "password", "user", "username")
_SMTP_SECRETS = {"user": ENV_SMTP_USER, "username": ENV_SMTP_USER, "login": ENV_SMTP_USER,
                 "password": ENV_SMTP_PASSWORD, "pass": ENV_SMTP_PASSWORD}
_KEY_SECRETS = ("key", "secret", "secret_key", "hmac_key")


class ConfigError(ValueError):
    """The configuration file is not valid; ``problems`` name each key and what is wrong."""

    def __init__(self, origin: str, problems: list[str]):
        self.origin = origin
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"The configuration {origin} is not valid:\n{lines}")


@dataclass(frozen=True)
class FolderSource:
    """A drop folder scanned for export files."""

    name: str
    path: Path
    interval_seconds: int = DEFAULT_FOLDER_INTERVAL
    stale_after_hours: float = DEFAULT_STALE_AFTER_HOURS
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    type: str = field(default="folder", init=False)

    @property
    def location(self) -> str:
        """The source as load runs name it (see cockpit.ingest.runner.folder_location)."""
        return str(self.path.resolve())


@dataclass(frozen=True)
class SqlSource:
    """A table read through SQLAlchemy, incrementally by its watermark column."""

    name: str
    url_env: str
    table: str
    kind: str
    watermark: str
    columns: Mapping[str, str] = field(default_factory=dict)
    schema: str | None = None
    interval_seconds: int = DEFAULT_SQL_INTERVAL
    stale_after_hours: float = DEFAULT_STALE_AFTER_HOURS
    batch_rows: int = 50_000
    type: str = field(default="sql", init=False)

    @property
    def location(self) -> str:
        return f"sql:{self.name}"

    def url(self, environ: Mapping[str, str] | None = None) -> str:
        """The URL, from the environment variable ``url_env``."""
        value = (os.environ if environ is None else environ).get(self.url_env, "")
        if not value:
            raise ConfigError(f"source {self.name}",
                              [f"sources.{self.name}.url_env: the environment variable "
                               f"{self.url_env} is not set"])
        return value

    def reader(self, environ: Mapping[str, str] | None = None):
        """What cockpit.ingest.sql_source reads (the URL resolved)."""
        from cockpit.ingest.sql_source import SqlTable

        return SqlTable(name=self.name, url=self.url(environ), table=self.table, kind=self.kind,
                        watermark=self.watermark, columns=dict(self.columns), schema=self.schema,
                        batch_rows=self.batch_rows)


Source = FolderSource | SqlSource


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``smtp`` and ``alerts`` are the sections as plain
    dicts (empty when absent), for the alerting code."""

    origin: str
    sources: tuple[Source, ...] = ()
    smtp: dict[str, Any] = field(default_factory=dict)
    alerts: dict[str, Any] = field(default_factory=dict)
    key_file: Path | None = None
    privacy: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)


# ---------------------------------------------------------------- reading

def load_config(path: str | os.PathLike, environ: Mapping[str, str] | None = None,
                check_env: bool = True) -> Config:
    """Read and validate the configuration file at ``path``. Relative paths in it are
    taken from the file's folder. With ``check_env``, the environment variables it
    names must be set. Raises ConfigError listing every problem."""
    path = Path(path)
    origin = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(origin, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(origin, [f"the file is not UTF-8 ({exc.reason} at byte {exc.start})"]) from exc
    return parse_config(text, path.resolve().parent, origin, environ, check_env)


def parse_config(text: str, base: Path, origin: str = "<text>",
                 environ: Mapping[str, str] | None = None, check_env: bool = True) -> Config:
    """Validate TOML ``text`` (relative paths from ``base``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(origin, [f"not valid TOML: {exc}"]) from exc
    env = os.environ if environ is None else environ
    check = _Checker()
    check.keys("", data, {"sources", "smtp", "alerts", "pseudonymization", "privacy", "server"})
    sources = _sources(check, data.get("sources"), base, env if check_env else None)
    smtp = _smtp(check, data.get("smtp"))
    alerts = _alerts(check, data.get("alerts"))
    key_file = _pseudonymization(check, data.get("pseudonymization"), base)
    privacy = _privacy(check, data.get("privacy"))
    server = _server(check, data.get("server"))
    if check.problems:
        raise ConfigError(origin, check.problems)
    return Config(origin=origin, sources=tuple(sources), smtp=smtp, alerts=alerts, key_file=key_file,
                  privacy=privacy, server=server)


# ---------------------------------------------------------------- checks

def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _shown(value: Any) -> str:
    return f"{_type_name(value)} ({value!r})" if not isinstance(value, (dict, list)) else _type_name(value)


class _Checker:
    """Collects problems, each prefixed with the dotted key it concerns."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}" if where else what)

    def table(self, where: str, value: Any) -> dict | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(where, f"must be a table, not {_shown(value)}")
            return None
        return value

    def keys(self, where: str, table: dict, allowed: set[str], required: tuple[str, ...] = (),
             secrets: Mapping[str, str] | None = None) -> None:
        secrets = secrets or {}
        for key in table:
            if key in secrets:
                self.problem(_join(where, key), secrets[key])
            elif key not in allowed:
                self.problem(where or "(top level)",
                             f"unknown key '{key}' (known: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in table:
                self.problem(where or "(top level)", f"missing required key '{key}'")

    def value(self, where: str, table: dict, key: str, kind: str, default: Any = None,
              test: Callable[[Any], str | None] | None = None) -> Any:
        """The value of ``key`` if it is of ``kind`` (text, integer, number, boolean, table) and
        passes ``test`` (which returns what is wrong, or None); else ``default``."""
        if key not in table:
            return default
        value = table[key]
        ok = {"text": isinstance(value, str),
              "integer": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool),
              "boolean": isinstance(value, bool),
              "table": isinstance(value, dict)}[kind]
        if not ok:
            article = "an" if kind == "integer" else "a"
            expected = "text" if kind == "text" else f"{article} {kind}"
            self.problem(_join(where, key), f"must be {expected}, not {_shown(value)}")
            return default
        wrong = test(value) if test else None
        if wrong:
            self.problem(_join(where, key), wrong)
            return default
        return float(value) if kind == "number" else value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _at_least(limit: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= limit else f"must be at least {limit:g}, not {v!r}"


def _positive(v: Any) -> str | None:
    return None if v > 0 else f"must be greater than 0, not {v!r}"


def _not_empty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}, not {v!r}"


# ---------------------------------------------------------------- sections

def _sources(check: _Checker, value: Any, base: Path, env: Mapping[str, str] | None) -> list[Source]:
    table = check.table("sources", value)
    if table is None:
        return []
    found: list[Source] = []
    folders: dict[Path, str] = {}
    for name, body in table.items():
        where = f"sources.{name}"
        if not _NAME.match(name):
            check.problem(where, "a source name may hold only letters, digits, _ and - (at most 64)")
        body = check.table(where, body)
        if body is None:
            continue
        kind = check.value(where, body, "type", "text", test=_one_of(("folder", "sql")))
        if "type" not in body:
            check.problem(where, "missing required key 'type' (folder or sql)")
        if kind == "folder":
            source = _folder(check, where, name, body, base)
            if source is not None:
                if source.path in folders:
                    check.problem(_join(where, "path"),
                                  f"the folder is already the source {folders[source.path]}")
                folders[source.path] = name
                found.append(source)
        elif kind == "sql":
            source = _sql(check, where, name, body, env)
            if source is not None:
                found.append(source)
    return found


def _common(check: _Checker, where: str, body: dict, interval: int) -> dict[str, Any]:
    return {
        "interval_seconds": check.value(where, body, "interval_seconds", "integer", interval,
                                        _at_least(MIN_INTERVAL)),
        "stale_after_hours": check.value(where, body, "stale_after_hours", "number",
                                         DEFAULT_STALE_AFTER_HOURS, _positive),
    }


def _folder(check: _Checker, where: str, name: str, body: dict, base: Path) -> FolderSource | None:
    check.keys(where, body, {"type", "path", "interval_seconds", "stale_after_hours", "settle_seconds"},
               required=("path",))
    path = check.value(where, body, "path", "text", test=_not_empty)
    common = _common(check, where, body, DEFAULT_FOLDER_INTERVAL)
    settle = check.value(where, body, "settle_seconds", "number", DEFAULT_SETTLE_SECONDS, _at_least(0))
    if path is None:
        return None
    return FolderSource(name=name, path=(base / Path(path).expanduser()).resolve(),
                        settle_seconds=settle, **common)


def _sql(check: _Checker, where: str, name: str, body: dict,
         env: Mapping[str, str] | None) -> SqlSource | None:
    from cockpit.ingest.sql_source import SQL_KINDS, fields_of

    secret = ("a database URL or credential is a secret and is not read from the file: put the "
              "URL in an environment variable and name that variable with url_env")
    check.keys(where, body, {"type", "url_env", "table", "schema", "kind", "watermark", "columns",
                             "interval_seconds", "stale_after_hours", "batch_rows"},
               required=("url_env", "table", "kind", "watermark"),
               secrets={key: secret for key in _SQL_SECRETS})
    url_env = check.value(where, body, "url_env", "text", test=_env_name)
    table = check.value(where, body, "table", "text", test=_not_empty)
    schema = check.value(where, body, "schema", "text", test=_not_empty)
    kind = check.value(where, body, "kind", "text", test=_one_of(SQL_KINDS))
    mark = check.value(where, body, "watermark", "text", test=_not_empty)
    columns = check.value(where, body, "columns", "table", {})
    common = _common(check, where, body, DEFAULT_SQL_INTERVAL)
    batch_rows = check.value(where, body, "batch_rows", "integer", 50_000, _at_least(1))
    if kind is not None and columns:
        _columns(check, _join(where, "columns"), columns, fields_of(kind), kind)
    if url_env is not None and env is not None and not env.get(url_env):
        check.problem(_join(where, "url_env"), f"the environment variable {url_env} is not set")
    if None in (url_env, table, kind, mark):
        return None
    return SqlSource(name=name, url_env=url_env, table=table, kind=kind, watermark=mark,
                     columns=dict(columns), schema=schema, batch_rows=batch_rows, **common)


def _env_name(value: str) -> str | None:
    if "://" in value:
        return ("holds a URL; it must name the environment variable that holds the URL "
                "(a URL may carry a password, which does not belong in the file)")
    return None if _ENV_NAME.match(value) else f"{value!r} is not an environment variable name"


def _columns(check: _Checker, where: str, columns: dict, fields, kind: str) -> None:
    known = {f.source for f in fields} | {f.name for f in fields}
    for key, value in columns.items():
        if key not in known:
            check.problem(where, f"'{key}' is not a column of {kind} exports (known: "
                                 f"{', '.join(f.source for f in fields)})")
        elif not isinstance(value, str) or not value.strip():
            check.problem(_join(where, key), f"must name a column of the table, not {_shown(value)}")


def _smtp(check: _Checker, value: Any) -> dict[str, Any]:
    body = check.table("smtp", value)
    if body is None:
        return {}
    secrets = {key: f"credentials are not read from the file: set {env} in the environment"
               for key, env in _SMTP_SECRETS.items()}
    check.keys("smtp", body, {"host", "port", "security", "sender", "timeout"},
               required=("host", "sender"), secrets=secrets)
    # Only the keys the file gives: defaults (the port follows the security) belong to
    # the code that sends the mail.
    out = {
        "host": check.value("smtp", body, "host", "text", test=_not_empty),
        "port": check.value("smtp", body, "port", "integer",
                            test=lambda v: None if 1 <= v <= 65535 else f"must be a port (1-65535), not {v}"),
        "security": check.value("smtp", body, "security", "text", test=_one_of(SMTP_SECURITY)),
        "sender": check.value("smtp", body, "sender", "text",
                              test=lambda v: None if "@" in v else f"{v!r} is not an e-mail address"),
        "timeout": check.value("smtp", body, "timeout", "number", test=_positive),
    }
    return {k: v for k, v in out.items() if v is not None}


def smtp_credentials(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """SMTP user and password, from the environment only."""
    env = os.environ if environ is None else environ
    return env.get(ENV_SMTP_USER) or None, env.get(ENV_SMTP_PASSWORD) or None


def _alerts(check: _Checker, value: Any) -> dict[str, Any]:
    body = check.table("alerts", value)
    if body is None:
        return {}
    check.keys("alerts", body, {"interval_seconds", "base_url", "digest_recipients",
                                "digest_weekday", "digest_hour"})
    out = {
        "interval_seconds": check.value("alerts", body, "interval_seconds", "integer", None,
                                        _at_least(MIN_INTERVAL)),
        "base_url": check.value("alerts", body, "base_url", "text", None,
                                lambda v: None if re.match(r"^https?://[^\s/]+", v)
                                else f"{v!r} is not an http(s) URL"),
        "digest_recipients": _digest_recipients(check, body.get("digest_recipients")),
        "digest_weekday": check.value("alerts", body, "digest_weekday", "text", None,
                                      lambda v: None if v in WEEKDAYS
                                      else f"{v!r} is not one of {', '.join(WEEKDAYS)}"),
        "digest_hour": check.value("alerts", body, "digest_hour", "integer", None,
                                   lambda v: None if 0 <= v <= 23 else f"{v} is not an hour 0-23"),
    }
    return {k: v for k, v in out.items() if v is not None}


def _privacy(check: _Checker, value: Any) -> dict[str, Any]:
    body = check.table("privacy", value)
    if body is None:
        return {}
    check.keys("privacy", body, {"small_cell_threshold"})
    threshold = check.value("privacy", body, "small_cell_threshold", "integer", None, _at_least(2))
    return {} if threshold is None else {"small_cell_threshold": threshold}


def _server(check: _Checker, value: Any) -> dict[str, Any]:
    body = check.table("server", value)
    if body is None:
        return {}
    check.keys("server", body, {"https", "idle_minutes", "memory_limit"})
    out = {
        "https": check.value("server", body, "https", "boolean", None),
        "idle_minutes": check.value("server", body, "idle_minutes", "integer", None, _at_least(1)),
        "memory_limit": check.value("server", body, "memory_limit", "text", None, memory_limit_problem),
    }
    return {k: v for k, v in out.items() if v is not None}


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _digest_recipients(check: _Checker, value: Any) -> list[str] | None:
    """The weekly digest's addresses (staff, not patients), each checked for form."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        check.problem("alerts.digest_recipients", "must be a list of e-mail addresses")
        return None
    bad = [v for v in value if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", v)]
    if bad:
        check.problem("alerts.digest_recipients", f"not an e-mail address: {', '.join(bad)}")
        return None
    return value


def _pseudonymization(check: _Checker, value: Any, base: Path) -> Path | None:
    body = check.table("pseudonymization", value)
    if body is None:
        return None
    secret = (f"the key is a secret and is not read from the file: set {ENV_SECRET_KEY} in the "
              "environment, or name a key file outside the repository with key_file")
    check.keys("pseudonymization", body, {"key_file"}, secrets={k: secret for k in _KEY_SECRETS})
    path = check.value("pseudonymization", body, "key_file", "text", test=_not_empty)
    return (base / Path(path).expanduser()).resolve() if path else None


# ---------------------------------------------------------------- the key

def pseudonymization_key(config: Config | None, db_path: str | os.PathLike) -> bytes:
    """The pseudonymization key: ``$COCKPIT_SECRET_KEY`` first; else the configured key
    file, which must exist (a typo must not quietly start a new key, under which nobody
    would be recognised again); else the default key file beside the store."""
    from cockpit.privacy import load_key

    if os.environ.get(ENV_SECRET_KEY) or config is None or config.key_file is None:
        return load_key(db_path)
    path = config.key_file
    try:
        text = path.read_text(encoding="ascii").strip()
        return bytes.fromhex(text)
    except FileNotFoundError:
        raise ConfigError(config.origin, [
            f"pseudonymization.key_file: {path} does not exist. Create it once, outside the "
            f"repository: python -c 'import secrets; print(secrets.token_hex(32))' > {path} "
            f"&& chmod 600 {path}"]) from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(config.origin, [
            f"pseudonymization.key_file: {path} cannot be read as a hex key: {exc}"]) from exc


# ---------------------------------------------------------------- the running process

_current: Config | None = None


def set_current(config: Config | None) -> None:
    """Remember the configuration the serving process started with."""
    global _current
    _current = config


def current() -> Config | None:
    """The configuration the serving process started with (None without a file)."""
    return _current
