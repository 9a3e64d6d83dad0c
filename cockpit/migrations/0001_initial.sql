-- Initial schema of the recruitment store.
-- Dimensions come from the trial setup export; facts from channel and site exports.
-- No column holds a raw e-mail, phone, name or free text of a person: persons are
-- known only by their pseudonymous id (pid, HMAC-SHA256 of a normalised contact).

-- ---------------------------------------------------------------- dimensions
CREATE TABLE study (
    study_id             VARCHAR PRIMARY KEY,
    name                 VARCHAR NOT NULL,
    phase                VARCHAR NOT NULL,          -- 'I', 'II', 'III', 'IV'
    therapeutic_area     VARCHAR,
    target_randomized    INTEGER NOT NULL,
    start_date           DATE NOT NULL,
    planned_end          DATE NOT NULL,
    value_per_randomized DOUBLE NOT NULL,          -- value of one randomized patient, for ROI
    currency             VARCHAR NOT NULL DEFAULT 'EUR'
);

CREATE TABLE site (
    site_id             VARCHAR PRIMARY KEY,
    study_id            VARCHAR NOT NULL,
    name                VARCHAR NOT NULL,
    country             VARCHAR NOT NULL,
    planned_activation  DATE,
    activation_date     DATE                      -- NULL while not yet active
);

CREATE TABLE channel (
    channel_id VARCHAR PRIMARY KEY,
    name       VARCHAR NOT NULL,
    kind       VARCHAR NOT NULL,                   -- paid_social, hcp_referral, community, newsletter, paper, screening_event
    online     BOOLEAN NOT NULL
);

CREATE TABLE campaign (
    campaign_id VARCHAR PRIMARY KEY,
    study_id    VARCHAR NOT NULL,
    channel_id  VARCHAR NOT NULL,
    name        VARCHAR NOT NULL,                  -- name as the ad platform spells it
    start_date  DATE,
    end_date    DATE
);

CREATE TABLE creative (
    creative_id   VARCHAR PRIMARY KEY,
    campaign_id   VARCHAR NOT NULL,
    name          VARCHAR NOT NULL,                -- ad / creative name as the platform spells it
    variant       VARCHAR NOT NULL,                -- e.g. 'text', 'video', 'infographic'
    experiment_id VARCHAR,                         -- creatives compared in one A/B test
    is_control    BOOLEAN NOT NULL DEFAULT FALSE,
    planned_share DOUBLE                           -- planned traffic share within the experiment
);

-- UTM source values that mean a channel (fb -> facebook), from the setup's utm_sources.
CREATE TABLE channel_utm_source (
    utm_source VARCHAR PRIMARY KEY,                -- lower-case
    channel_id VARCHAR NOT NULL
);

CREATE TABLE segment (
    segment_id  VARCHAR PRIMARY KEY,
    name        VARCHAR NOT NULL,
    min_age     INTEGER NOT NULL,
    max_age     INTEGER NOT NULL
);

CREATE TABLE qr_code (
    code        VARCHAR PRIMARY KEY,
    channel_id  VARCHAR NOT NULL,
    campaign_id VARCHAR,
    site_id     VARCHAR
);

-- ---------------------------------------------------------------- facts
-- Daily delivery of paid campaigns (one row per day, campaign and creative;
-- creative_id is '' when the platform reports at campaign level).
CREATE TABLE ad_daily (
    day         DATE NOT NULL,
    campaign_id VARCHAR NOT NULL,
    creative_id VARCHAR NOT NULL DEFAULT '',
    spend       DOUBLE NOT NULL,
    impressions BIGINT NOT NULL,
    clicks      BIGINT NOT NULL,
    source_file VARCHAR NOT NULL,
    PRIMARY KEY (day, campaign_id, creative_id)
);

-- Costs of channels that do not report spend themselves (print runs, event fees,
-- referral programme fees), costed on the day they were incurred.
CREATE TABLE offline_cost (
    cost_id     VARCHAR PRIMARY KEY,
    day         DATE NOT NULL,
    channel_id  VARCHAR NOT NULL,
    campaign_id VARCHAR,
    study_id    VARCHAR,
    site_id     VARCHAR,
    amount      DOUBLE NOT NULL,
    description VARCHAR,                           -- the cost item, never about a person
    source_file VARCHAR NOT NULL
);

-- A pseudonymous person. segment is derived from the age band at first lead.
CREATE TABLE person (
    pid         VARCHAR PRIMARY KEY,
    birth_year  INTEGER,
    segment_id  VARCHAR,
    first_seen  TIMESTAMP NOT NULL
);

-- Links of an anonymous web visitor (cookie id) to a person, learnt when a form is submitted.
CREATE TABLE visitor_link (
    visitor_id VARCHAR PRIMARY KEY,
    pid        VARCHAR NOT NULL,
    linked_at  TIMESTAMP NOT NULL
);

-- A contact with a channel: ad click, page view with UTM, QR scan, HCP referral,
-- screening-event sign-up, pre-screener submission.
CREATE TABLE touchpoint (
    touch_id    VARCHAR PRIMARY KEY,
    pid         VARCHAR,                           -- NULL until the visitor is linked to a person
    visitor_id  VARCHAR,
    ts          TIMESTAMP NOT NULL,
    kind        VARCHAR NOT NULL,                  -- ad_click, page_view, qr_scan, referral, event_signup, form
    channel_id  VARCHAR NOT NULL,
    campaign_id VARCHAR,
    creative_id VARCHAR,
    study_id    VARCHAR,
    site_id     VARCHAR,
    hcp_pid     VARCHAR,                           -- pseudonymous referring HCP
    source_file VARCHAR NOT NULL
);

-- Stage events of a person in a study's funnel, from pre-screener and site pipeline.
-- stage in: lead, prescreen_started, prescreen_eligible, prescreen_ineligible,
-- contacted, not_reachable, consented, declined, screened, screen_failed,
-- randomized, withdrawn.
CREATE TABLE funnel_event (
    event_id    VARCHAR PRIMARY KEY,
    pid         VARCHAR NOT NULL,
    study_id    VARCHAR NOT NULL,
    site_id     VARCHAR,
    stage       VARCHAR NOT NULL,
    ts          TIMESTAMP NOT NULL,
    reason      VARCHAR,                           -- coded reason of an exit, never free text
    source_file VARCHAR NOT NULL
);

-- Append-only consent history; the current state per person and purpose is the latest event.
CREATE TABLE consent_event (
    consent_id     VARCHAR PRIMARY KEY,
    pid            VARCHAR NOT NULL,
    purpose        VARCHAR NOT NULL,               -- tracking, contact_research
    granted        BOOLEAN NOT NULL,
    ts             TIMESTAMP NOT NULL,
    channel_id     VARCHAR,
    notice_version VARCHAR,
    source_file    VARCHAR NOT NULL
);

-- ---------------------------------------------------------------- derived
-- One row per person and study: the journey through the funnel, with the channel the
-- lead is attributed to (last consented touch at or before the lead). Rebuilt by the
-- loader after each run from the facts above; every funnel KPI reads it.
CREATE TABLE journey (
    pid                 VARCHAR NOT NULL,
    study_id            VARCHAR NOT NULL,
    site_id             VARCHAR,
    segment_id          VARCHAR,
    channel_id          VARCHAR NOT NULL,          -- 'unattributed' without a consented touch
    campaign_id         VARCHAR,
    creative_id         VARCHAR,
    lead_ts             TIMESTAMP NOT NULL,
    prescreen_started_ts  TIMESTAMP,
    eligible_ts         TIMESTAMP,
    ineligible_ts       TIMESTAMP,
    contacted_ts        TIMESTAMP,
    not_reachable_ts    TIMESTAMP,
    consented_ts        TIMESTAMP,
    declined_ts         TIMESTAMP,
    screened_ts         TIMESTAMP,
    screen_failed_ts    TIMESTAMP,
    randomized_ts       TIMESTAMP,
    withdrawn_ts        TIMESTAMP,
    PRIMARY KEY (pid, study_id)
);

-- ---------------------------------------------------------------- operations
CREATE SEQUENCE load_run_seq START 1;
CREATE TABLE load_run (
    run_id            INTEGER PRIMARY KEY DEFAULT nextval('load_run_seq'),
    started_at        TIMESTAMP NOT NULL,
    finished_at       TIMESTAMP,
    status            VARCHAR NOT NULL,           -- running, ok, failed
    source            VARCHAR NOT NULL,           -- folder or URL scanned
    files_seen        INTEGER NOT NULL DEFAULT 0,
    files_loaded      INTEGER NOT NULL DEFAULT 0,
    files_skipped     INTEGER NOT NULL DEFAULT 0,  -- already loaded (same bytes)
    files_rejected    INTEGER NOT NULL DEFAULT 0,  -- quarantined as a whole
    files_deferred    INTEGER NOT NULL DEFAULT 0,  -- unreadable now or changing; retried next run
    rows_read         BIGINT NOT NULL DEFAULT 0,
    rows_accepted     BIGINT NOT NULL DEFAULT 0,
    rows_quarantined  BIGINT NOT NULL DEFAULT 0,
    rows_erased       BIGINT NOT NULL DEFAULT 0,   -- rows of erased persons, not loaded
    rows_ignored      BIGINT NOT NULL DEFAULT 0,   -- not data (summary lines, events without UTM)
    message           VARCHAR
);

-- Every file ever loaded, by content hash: the same bytes are never loaded twice.
CREATE TABLE source_file (
    sha256           VARCHAR PRIMARY KEY,
    path             VARCHAR NOT NULL,
    kind             VARCHAR NOT NULL,
    size_bytes       BIGINT NOT NULL,
    run_id           INTEGER NOT NULL,
    loaded_at        TIMESTAMP NOT NULL,
    rows_read        BIGINT NOT NULL,
    rows_accepted    BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    status           VARCHAR NOT NULL             -- loaded, rejected (whole file quarantined)
);

-- Rows (or whole files, row_number 0) refused by validation, with the reason.
-- raw holds the row with contact fields removed, so quarantine never keeps identifiers.
CREATE SEQUENCE quarantine_seq START 1;
CREATE TABLE quarantine (
    quarantine_id INTEGER PRIMARY KEY DEFAULT nextval('quarantine_seq'),
    run_id        INTEGER NOT NULL,
    file          VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,
    row_number    INTEGER NOT NULL,               -- 1-based data row; 0 for the whole file
    field         VARCHAR,
    reason        VARCHAR NOT NULL,
    raw           VARCHAR,
    created_at    TIMESTAMP NOT NULL
);

-- Append-only, tamper-evident: each entry carries the hash of the previous one.
CREATE SEQUENCE audit_seq START 1;
CREATE TABLE audit_log (
    entry_id   INTEGER PRIMARY KEY DEFAULT nextval('audit_seq'),
    ts         TIMESTAMP NOT NULL,                -- UTC
    actor      VARCHAR NOT NULL,
    action     VARCHAR NOT NULL,
    target     VARCHAR,
    old_value  VARCHAR,
    new_value  VARCHAR,
    prev_hash  VARCHAR NOT NULL,
    hash       VARCHAR NOT NULL
);

-- Persons whose data was erased: later loads of old exports must not bring them back.
CREATE TABLE erasure_ledger (
    pid          VARCHAR PRIMARY KEY,
    requested_at TIMESTAMP NOT NULL,
    completed_at TIMESTAMP,
    requested_by VARCHAR NOT NULL
);

-- All spend in one shape: paid delivery from the ad platforms and offline costs.
-- Offline costs may carry a site; platform spend never does.
CREATE VIEW spend_daily AS
SELECT a.day, c.study_id, c.channel_id, a.campaign_id, nullif(a.creative_id, '') AS creative_id,
       NULL::VARCHAR AS site_id, a.spend, a.impressions, a.clicks, 'platform' AS source
FROM ad_daily a JOIN campaign c USING (campaign_id)
UNION ALL
SELECT o.day, o.study_id, o.channel_id, o.campaign_id, NULL::VARCHAR AS creative_id,
       o.site_id, o.amount AS spend, 0 AS impressions, 0 AS clicks, 'offline' AS source
FROM offline_cost o;
