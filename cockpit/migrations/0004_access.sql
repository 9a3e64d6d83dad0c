-- Users and what they may see; requests of data subjects; the erasure ledger keyed by a
-- hash of the pid, so that the erased person's pid itself is nowhere in the file.

-- A person who signs in to the cockpit (staff, never a patient).
CREATE TABLE app_user (
    username      VARCHAR PRIMARY KEY,
    password_hash VARCHAR NOT NULL,               -- scrypt, see cockpit.auth.passwords
    role          VARCHAR NOT NULL,               -- admin, leadership, manager, site
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL,             -- UTC
    updated_at    TIMESTAMP NOT NULL
);

-- Studies a manager is assigned to; sites a site user is assigned to. Default-deny:
-- a manager or site user without rows here sees nothing.
CREATE TABLE user_study (
    username VARCHAR NOT NULL,
    study_id VARCHAR NOT NULL,
    PRIMARY KEY (username, study_id)
);
CREATE TABLE user_site (
    username VARCHAR NOT NULL,
    site_id  VARCHAR NOT NULL,
    PRIMARY KEY (username, site_id)
);

-- Requests of data subjects (GDPR Art. 15 access, Art. 17 erasure): when received and
-- when completed. subject is cockpit.privacy.subject_hash(pid), never the pid.
CREATE SEQUENCE subject_request_seq START 1;
CREATE TABLE subject_request (
    request_id   INTEGER PRIMARY KEY DEFAULT nextval('subject_request_seq'),
    kind         VARCHAR NOT NULL,                -- access, erasure
    subject      VARCHAR NOT NULL,
    received_at  TIMESTAMP NOT NULL,              -- UTC
    completed_at TIMESTAMP,
    handled_by   VARCHAR
);

DROP TABLE erasure_ledger;
CREATE TABLE erasure_ledger (
    subject      VARCHAR PRIMARY KEY,             -- cockpit.privacy.subject_hash(pid)
    requested_at TIMESTAMP NOT NULL,
    completed_at TIMESTAMP,
    requested_by VARCHAR NOT NULL
);
