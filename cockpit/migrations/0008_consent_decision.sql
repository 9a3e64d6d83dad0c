-- Consent decisions per person and purpose, for the Compliance page: one row per person
-- and purpose with a consent event (cockpit.derive.consent_decision_sql), so that a
-- filter change reads one summary row per person instead of ordering and grouping every
-- consent event. Filled by the rebuild of the derived tables (cockpit.derive.refresh),
-- which opening the store runs right after this migration (cockpit.store.REBUILDS_DERIVED)
-- and every load run repeats.
CREATE TABLE consent_decision (
    pid           VARCHAR NOT NULL,
    purpose       VARCHAR NOT NULL,
    first_ts      TIMESTAMP NOT NULL,   -- the first decision
    first_granted BOOLEAN NOT NULL,     -- false: the first decision was a refusal
    last_ts       TIMESTAMP NOT NULL,   -- the latest event
    granted       BOOLEAN NOT NULL,     -- the current state (latest event)
    -- withdrawals that follow a grant, oldest first: the event, its time and the path
    -- of the file that brought it (NULL when there is none)
    withdrawals   STRUCT(consent_id VARCHAR, ts TIMESTAMP, source_file VARCHAR)[]
);
