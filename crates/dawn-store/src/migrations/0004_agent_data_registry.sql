-- Schema version 4: agents' data and the registry snapshot.

-- Key-value rows that agents hosted on the node keep (the built-in memory agent, for
-- example). Sensitive values are sealed (AES-256-GCM under the node key's
-- "dawn/store/v1/agent-data" key, bound to the agent and key); the others are in the clear.
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

-- Each agent's total use of agent_data, kept by the store beside every write so that quotas
-- cost nothing to check: the number of keys and the bytes of keys and stored values.
CREATE TABLE agent_usage (
    agent TEXT    NOT NULL PRIMARY KEY,
    keys  INTEGER NOT NULL CHECK (keys >= 0),
    bytes INTEGER NOT NULL CHECK (bytes >= 0)
) STRICT, WITHOUT ROWID;

-- The agent registry's latest snapshot: one blob that the registry encodes and versions
-- itself, at most 64 MiB.
CREATE TABLE registry_snapshot (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    data BLOB    NOT NULL CHECK (length(data) <= 67108864)
) STRICT;
