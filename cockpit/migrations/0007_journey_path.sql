-- Touchpoint paths of the journey, for the Attribution page: one row per person and
-- study with a usable touch (cockpit.derive.journey_path_sql), so that a filter change
-- reads the paths instead of walking every touchpoint. Each conversion mode has its own
-- pair of columns: the channels of the path, oldest first (consecutive touches of one
-- channel are one step), and the age of each step in whole days before the path's end.
-- A mode's columns are NULL when the person has no usable touch up to that end.
-- Filled by the rebuild of the derived tables (cockpit.derive.refresh), which opening
-- the store runs right after this migration (cockpit.store.REBUILDS_DERIVED) and every
-- load run repeats.
CREATE TABLE journey_path (
    pid                 VARCHAR NOT NULL,
    study_id            VARCHAR NOT NULL,
    lead_channels       VARCHAR[],                 -- path up to the lead
    lead_ages           INTEGER[],
    randomized_channels VARCHAR[],                 -- path up to randomization (or up to now)
    randomized_ages     INTEGER[]
);
