-- Consent decisions per person and purpose, for the Compliance page
-- (cockpit.derive.consent_decision_sql): a filter change reads summary rows instead of
-- ordering and grouping every consent event. A person's decision is repeated on one row
-- per journey of theirs, with the journey's study, site, segment and channel (what the
-- page filters by; NULL for a person with no journey), in study and site order, so that
-- a filtered view reads its own rows only. ``shared`` marks the persons with more than
-- one journey: the page counts their rows once per person.
-- Filled by the rebuild of the derived tables (cockpit.derive.refresh), which opening the
-- store runs right after this migration (cockpit.store.REBUILDS_DERIVED) and every load
-- run repeats.
CREATE TABLE consent_decision (
    pid           VARCHAR NOT NULL,
    purpose       VARCHAR NOT NULL,
    study_id      VARCHAR,              -- the journey's; NULL: the person has no journey
    site_id       VARCHAR,
    segment_id    VARCHAR,
    channel_id    VARCHAR,
    shared        BOOLEAN NOT NULL,     -- the person has more than one journey
    first_ts      TIMESTAMP NOT NULL,   -- the first decision
    first_granted BOOLEAN NOT NULL,     -- false: the first decision was a refusal
    last_ts       TIMESTAMP NOT NULL,   -- the latest event
    granted       BOOLEAN NOT NULL,     -- the current state (latest event)
    -- withdrawals that follow a grant, oldest first: the event, its time and the path
    -- of the file that brought it (NULL when there is none)
    withdrawals   STRUCT(consent_id VARCHAR, ts TIMESTAMP, source_file VARCHAR)[]
);
