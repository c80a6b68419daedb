-- Schema version 1: the peer table.
--
-- Marks the file as Dawn's ("Dawn" in ASCII), so that a store never mistakes another
-- application's SQLite database for its own.
PRAGMA application_id = 1147238254;

-- Nodes this node knows how to reach. Times are Unix milliseconds.
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
