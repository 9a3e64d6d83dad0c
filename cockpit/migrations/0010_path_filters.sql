-- What the Attribution page filters a path by, copied from the journey onto its path:
-- the site, the segment, the lead's time and whether the person was randomized. A filter
-- change then reads the paths alone instead of joining them to every journey.
-- Filled by the rebuild of the derived tables (cockpit.derive.refresh), which opening the
-- store runs right after this migration (cockpit.store.REBUILDS_DERIVED) and every load
-- run repeats.
ALTER TABLE journey_path ADD COLUMN site_id VARCHAR;
ALTER TABLE journey_path ADD COLUMN segment_id VARCHAR;
ALTER TABLE journey_path ADD COLUMN lead_ts TIMESTAMP;
ALTER TABLE journey_path ADD COLUMN randomized BOOLEAN;
