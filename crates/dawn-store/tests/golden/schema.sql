-- user_version = 4
-- application_id = 1147238254

-- index audit_log_by_peer
CREATE INDEX audit_log_by_peer ON audit_log (peer, seq) WHERE peer IS NOT NULL;

-- index audit_log_by_time
CREATE INDEX audit_log_by_time ON audit_log (timestamp_ms);

-- table agent_data
CREATE TABLE agent_data (
    -- The AgentId: 1 to 64 characters from [a-z0-9._-].
    agent      TEXT    NOT NULL CHECK (length(agent) BETWEEN 1 AND 64),
    -- The key: 1 to 256 bytes of UTF-8 without control characters.
    key        TEXT    NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 256),
    -- The value (64 KiB at most), sealed if `sensitive` (29 more bytes).
    value      BLOB    NOT NULL CHECK (length(value) <= 65565),
    -- 1 if the value is sealed, else 0.
    sensitive  INTEGER NOT NULL CHECK (sensitive IN (0, 1)),
    -- When the value was last written, Unix milliseconds.
    updated_ms INTEGER NOT NULL CHECK (updated_ms >= 0),
    PRIMARY KEY (agent, key)
) STRICT, WITHOUT ROWID;

-- table agent_usage
CREATE TABLE agent_usage (
    agent TEXT    NOT NULL PRIMARY KEY,
    keys  INTEGER NOT NULL CHECK (keys >= 0),
    bytes INTEGER NOT NULL CHECK (bytes >= 0)
) STRICT, WITHOUT ROWID;

-- table audit_log
CREATE TABLE audit_log (
    -- The entry's sequence number: 0 for the first, then one more for each (no gaps).
    seq          INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 0),
    -- The entry's timestamp, Unix milliseconds.
    timestamp_ms INTEGER NOT NULL CHECK (timestamp_ms >= 0),
    -- The entry's kind code (AuditKind::code).
    kind         INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 65535),
    -- The subject's peer (a NodeId), NULL if the entry names none.
    peer         BLOB    CHECK (peer IS NULL OR length(peer) = 32),
    -- The signed encoding, at most MAX_AUDIT_ENTRY_LEN (1374) bytes.
    entry        BLOB    NOT NULL CHECK (length(entry) BETWEEN 1 AND 1374)
) STRICT;

-- table peers
CREATE TABLE peers (
    -- The peer's NodeId: its 32-byte Ed25519 public key.
    id           BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 32),
    -- Dialable socket addresses in Rust's text form, separated by single spaces.
    addrs        TEXT    NOT NULL,
    -- When the store first recorded the peer.
    first_seen   INTEGER NOT NULL CHECK (first_seen >= 0),
    -- The last successful contact, NULL if never.
    last_seen    INTEGER CHECK (last_seen >= 0),
    -- Failed contacts since the last success.
    failures     INTEGER NOT NULL DEFAULT 0 CHECK (failures BETWEEN 0 AND 4294967295),
    -- The last failed contact, NULL if never.
    last_failure INTEGER CHECK (last_failure >= 0)
) STRICT, WITHOUT ROWID;

-- table registry_snapshot
CREATE TABLE registry_snapshot (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    data BLOB    NOT NULL CHECK (length(data) <= 67108864)
) STRICT;

-- table settings
CREATE TABLE settings (
    -- The setting's name: 1 to 128 characters from [A-Za-z0-9._/-].
    key   TEXT NOT NULL PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 128),
    -- The value, at most 1 MiB.
    value BLOB NOT NULL CHECK (length(value) <= 1048576)
) STRICT, WITHOUT ROWID;

-- table trust_records
CREATE TABLE trust_records (
    -- The peer's NodeId.
    peer   BLOB NOT NULL PRIMARY KEY CHECK (length(peer) = 32),
    -- The sealed snapshot: 29 bytes of overhead plus at most MAX_SNAPSHOT_LEN (4096).
    record BLOB NOT NULL CHECK (length(record) BETWEEN 29 AND 4125)
) STRICT, WITHOUT ROWID;

-- trigger audit_log_no_delete
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- trigger audit_log_no_update
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
