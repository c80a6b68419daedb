-- Schema version 2: the audit log.
--
-- One row per entry of the node's hash-chained, signed audit log (dawn-trust's AuditEntry).
-- `entry` holds the exact signed encoding; the other columns repeat fields of it so they can
-- be indexed, and are checked against it whenever a row is read. Rows are only ever appended:
-- the triggers below refuse UPDATE and DELETE, and the chain makes any change found out
-- by verification even if the triggers are removed.
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

CREATE INDEX audit_log_by_peer ON audit_log (peer, seq) WHERE peer IS NOT NULL;
CREATE INDEX audit_log_by_time ON audit_log (timestamp_ms);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
