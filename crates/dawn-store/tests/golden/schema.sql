-- user_version = 1
-- application_id = 1147238254

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
