-- The coded reason of each exit on the journey, for the Funnel page's drop-off table: the
-- reason of the person's first event of that exit (of those that have one) before any
-- withdrawal of the consent to be contacted, as cockpit.derive writes the exit's time.
-- With them the drop-off reads the journey instead of joining every funnel event.
-- Filled by the rebuild of the derived tables (cockpit.derive.refresh), which opening the
-- store runs right after this migration (cockpit.store.REBUILDS_DERIVED) and every load
-- run repeats.
ALTER TABLE journey ADD COLUMN ineligible_reason VARCHAR;
ALTER TABLE journey ADD COLUMN not_reachable_reason VARCHAR;
ALTER TABLE journey ADD COLUMN declined_reason VARCHAR;
ALTER TABLE journey ADD COLUMN screen_failed_reason VARCHAR;
ALTER TABLE journey ADD COLUMN withdrawn_reason VARCHAR;
