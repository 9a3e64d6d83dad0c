-- Whether the earlier web touchpoints of a linked visitor have been given the visitor's
-- person. A pre-screener links visitors; the load run, once its files are in, attaches
-- the anonymous touchpoints of every visitor not yet attached in one pass over the
-- touchpoints (cockpit.ingest.people.attach_linked_visits), instead of one pass per
-- file. A run cut off before that step leaves the links unattached, and the next run
-- attaches them. Links made before this migration were attached by their own file.
ALTER TABLE visitor_link ADD COLUMN attached BOOLEAN DEFAULT TRUE;
