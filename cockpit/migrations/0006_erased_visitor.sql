-- Web visitor (cookie) ids of erased persons, as SHA-256 of 'visitor:' || visitor_id:
-- web-event and QR-scan exports carry visitor ids rather than contacts, so a later load
-- of an old export recognises the erased person's visits by these, never by the id itself.
CREATE TABLE erased_visitor (
    subject   VARCHAR PRIMARY KEY,
    erased_at TIMESTAMP NOT NULL
);
