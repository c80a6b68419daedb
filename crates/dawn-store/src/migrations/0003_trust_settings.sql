-- Schema version 3: trust records and node settings.

-- Each peer's trust record: dawn-trust's PeerSnapshot encoding, sealed (AES-256-GCM under the
-- node key's "dawn/store/v1/trust" key, bound to this table and the peer id). Only the peer
-- id is in the clear.
CREATE TABLE trust_records (
    -- The peer's NodeId.
    peer   BLOB NOT NULL PRIMARY KEY CHECK (length(peer) = 32),
    -- The sealed snapshot: 29 bytes of overhead plus at most MAX_SNAPSHOT_LEN (4096).
    record BLOB NOT NULL CHECK (length(record) BETWEEN 29 AND 4125)
) STRICT, WITHOUT ROWID;

-- Small named values the node keeps across restarts (the runtime policy, for example), in
-- the clear.
CREATE TABLE settings (
    -- The setting's name: 1 to 128 characters from [A-Za-z0-9._/-].
    key   TEXT NOT NULL PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 128),
    -- The value, at most 1 MiB.
    value BLOB NOT NULL CHECK (length(value) <= 1048576)
) STRICT, WITHOUT ROWID;
