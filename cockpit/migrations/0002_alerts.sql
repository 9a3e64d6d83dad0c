-- Alerts: rules managers define, the current state of each, every evaluation with the
-- value seen, what people did (acknowledge, silence, edit), and the e-mail outbox.
-- Recipients are staff addresses, never patients'.

CREATE SEQUENCE alert_rule_seq START 1;
CREATE TABLE alert_rule (
    rule_id       INTEGER PRIMARY KEY DEFAULT nextval('alert_rule_seq'),
    name          VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,                 -- threshold, change, drift, pace, stale
    kpi           VARCHAR,                          -- key of cockpit.metrics.daily.KPIS; NULL for pace and stale
    params        VARCHAR NOT NULL,                 -- JSON object of the kind's parameters (cockpit.alerts.rules)
    scope         VARCHAR NOT NULL DEFAULT '',      -- Filters as a URL query: ?study=ST-102&channel=facebook
    recipients    VARCHAR NOT NULL,                 -- comma-separated staff e-mail addresses
    pending_hours DOUBLE NOT NULL,                  -- the condition must hold this long before firing
    repeat_hours  DOUBLE NOT NULL,                  -- reminder interval while firing and not acknowledged
    clear_hours   DOUBLE NOT NULL,                  -- the condition must be gone this long before resolving
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMP NOT NULL,               -- UTC
    created_by    VARCHAR NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    updated_by    VARCHAR NOT NULL
);

-- One row per rule: where its state machine stands (normal -> pending -> firing -> resolved).
CREATE TABLE alert_state (
    rule_id           INTEGER PRIMARY KEY,
    state             VARCHAR NOT NULL,             -- normal, pending, firing, resolved
    state_since       TIMESTAMP NOT NULL,
    clear_since       TIMESTAMP,                    -- firing, condition gone since (resolves after clear_hours)
    last_value        DOUBLE,
    last_reference    DOUBLE,
    last_evaluated_at TIMESTAMP,
    last_as_of        DATE,
    last_notified_at  TIMESTAMP,                    -- last firing/reminder message of this firing episode
    acknowledged_at   TIMESTAMP,                    -- cleared when the alert resolves
    acknowledged_by   VARCHAR,
    silenced_until    TIMESTAMP,
    silenced_by       VARCHAR
);

-- Every evaluation, with the value seen and what it compared with.
CREATE SEQUENCE alert_evaluation_seq START 1;
CREATE TABLE alert_evaluation (
    eval_id      BIGINT PRIMARY KEY DEFAULT nextval('alert_evaluation_seq'),
    rule_id      INTEGER NOT NULL,
    evaluated_at TIMESTAMP NOT NULL,                -- UTC
    as_of        DATE NOT NULL,                     -- last day of data the value is computed on
    value        DOUBLE,                            -- the value seen; NULL when there was no data
    reference    DOUBLE,                            -- threshold, control limit, minimum pace or maximum age
    baseline     DOUBLE,                            -- normal level (change and drift rules)
    condition    BOOLEAN,                           -- NULL when there was nothing to judge
    state_before VARCHAR NOT NULL,
    state_after  VARCHAR NOT NULL,
    notification VARCHAR,                           -- firing, reminder, resolved; NULL when no message
    message_id   VARCHAR,
    summary      VARCHAR NOT NULL,                  -- what was seen, in one sentence
    note         VARCHAR                            -- why no message (silenced, acknowledged, ...)
);

-- What people did with a rule: created, edited, acknowledged, silenced, unsilenced.
CREATE SEQUENCE alert_action_seq START 1;
CREATE TABLE alert_action (
    action_id INTEGER PRIMARY KEY DEFAULT nextval('alert_action_seq'),
    rule_id   INTEGER NOT NULL,
    ts        TIMESTAMP NOT NULL,                   -- UTC
    actor     VARCHAR NOT NULL,
    action    VARCHAR NOT NULL,
    detail    VARCHAR
);

-- Messages are queued here in the same transaction as the state change that causes
-- them, and marked sent only after the SMTP server accepted them.
CREATE TABLE alert_outbox (
    message_id      VARCHAR PRIMARY KEY,            -- the Message-ID header, <...@domain>
    rule_id         INTEGER NOT NULL,
    eval_id         BIGINT NOT NULL,
    kind            VARCHAR NOT NULL,               -- firing, reminder, resolved
    created_at      TIMESTAMP NOT NULL,             -- UTC; also the Date header
    recipients      VARCHAR NOT NULL,               -- comma-separated
    subject         VARCHAR NOT NULL,
    body_text       VARCHAR NOT NULL,
    body_html       VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,               -- queued, sent, rejected (refused for good by the server)
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TIMESTAMP,
    last_error      VARCHAR,
    sent_at         TIMESTAMP
);
