-- Sources beyond the drop folder: SQL tables read incrementally, the settings the Data
-- page judges freshness by, and quarantine entries that a later load has resolved.
-- A source is known by its location, the value load_run.source holds: the absolute
-- path of a drop folder, or 'sql:<name>' for a SQL source (never its URL, which may
-- hold a password).

-- Sources named in the configuration file, with the window after which a source
-- without new data is flagged stale. Sources loaded without a configuration file
-- (cockpit load --source DIR) are not listed here and get the default window.
CREATE TABLE source_setting (
    location          VARCHAR PRIMARY KEY,
    name              VARCHAR NOT NULL,
    type              VARCHAR NOT NULL,           -- folder, sql
    stale_after_hours DOUBLE NOT NULL,
    interval_seconds  INTEGER,
    updated_at        TIMESTAMP NOT NULL
);

-- How far a SQL source has been read: the highest watermark value loaded, and the
-- hashes of the rows loaded at exactly that value (the next run reads from that value
-- again, so a row committed later with the same value is not missed, and drops the
-- rows it already has). Advanced in the same transaction as the rows it covers.
CREATE TABLE source_watermark (
    source       VARCHAR PRIMARY KEY,             -- 'sql:<name>'
    table_name   VARCHAR NOT NULL,
    column_name  VARCHAR NOT NULL,
    value_type   VARCHAR NOT NULL,                -- int, float, decimal, datetime, date, str
    value        VARCHAR NOT NULL,
    boundary     VARCHAR NOT NULL,                -- JSON list of row hashes at exactly ``value``
    run_id       INTEGER NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);

-- Quarantine entries closed by a later load: the file was read again (a fixed file
-- dropped under the same name, or a retry after the setup was fixed), or the SQL row
-- with the same id was read again. Rows still refused then have new entries.
CREATE TABLE quarantine_resolution (
    quarantine_id INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL,
    resolved_at   TIMESTAMP NOT NULL
);
