-- Withdrawal of the consent to be contacted for research, on the derived journey.
-- consent_withdrawn_ts: when the person's current 'contact_research' consent was withdrawn
-- (the first withdrawal after their latest grant); NULL while the consent stands or was
-- never given. The journey keeps only the stages reached before that moment.
-- The column is filled by the journey rebuild (cockpit.derive.refresh), which opening the
-- store runs right after this migration (cockpit.store.REBUILDS_DERIVED) and every load run repeats.
ALTER TABLE journey ADD COLUMN consent_withdrawn_ts TIMESTAMP;
