//! The agent data repository: namespaced key-value rows kept by agents hosted on the node.

use std::fmt;
use std::time::SystemTime;

use dawn_identity::AgentId;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::sealer::{SealPurpose, Sealer};
use crate::store::Store;
use crate::time::{from_millis, to_millis};

/// The longest key, in bytes of UTF-8.
pub const MAX_AGENT_KEY_LEN: usize = 256;

/// The largest value, in bytes (64 KiB).
pub const MAX_AGENT_VALUE_LEN: usize = 64 * 1024;

/// The most keys one agent may keep.
pub const MAX_AGENT_KEYS: u64 = 10_000;

/// The most bytes one agent may keep: its keys plus its stored values (a sealed value counts
/// 29 bytes more than its plaintext). 16 MiB.
pub const MAX_AGENT_BYTES: u64 = 16 * 1024 * 1024;

/// The most records one [`AgentDataRepo::list`] or [`AgentDataRepo::search`] returns.
pub const MAX_AGENT_LIST: usize = 100;

/// The longest search text, in bytes.
pub const MAX_AGENT_SEARCH_LEN: usize = 256;

const TABLE: &str = "agent_data";

/// One agent's value, as read back.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentRecord {
    /// The key.
    pub key: String,
    /// The value (opened if it was sealed). Wiped from memory when dropped.
    pub value: Zeroizing<Vec<u8>>,
    /// Whether the value is stored sealed.
    pub sensitive: bool,
    /// When it was last written (to the millisecond).
    pub updated_at: SystemTime,
}

impl fmt::Debug for AgentRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("AgentRecord");
        s.field("key", &self.key);
        if self.sensitive {
            s.field(
                "value",
                &format_args!("<{} bytes, redacted>", self.value.len()),
            );
        } else {
            s.field("value", &self.value.as_slice());
        }
        s.field("sensitive", &self.sensitive)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// How much of its quota an agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AgentUsage {
    /// Keys stored, at most [`MAX_AGENT_KEYS`].
    pub keys: u64,
    /// Bytes of keys and stored values, at most [`MAX_AGENT_BYTES`].
    pub bytes: u64,
}

/// Reads and writes the `agent_data` table. Get one from [`Store::agent_data`].
///
/// Every agent has its own namespace of keys. A value written with `sensitive = true` is
/// sealed by the [`Sealer`] under [`SealPurpose::AgentData`], bound to its agent and key;
/// other values are stored in the clear and can be found by [`search`](Self::search).
///
/// # Limits
///
/// | What | Limit |
/// |---|---|
/// | key | 1 to [`MAX_AGENT_KEY_LEN`] (256) bytes of UTF-8, no control characters |
/// | value | at most [`MAX_AGENT_VALUE_LEN`] (64 KiB) |
/// | keys per agent | [`MAX_AGENT_KEYS`] (10,000) |
/// | bytes per agent (keys + stored values) | [`MAX_AGENT_BYTES`] (16 MiB) |
/// | records per list or search | [`MAX_AGENT_LIST`] (100) |
/// | search text | 1 to [`MAX_AGENT_SEARCH_LEN`] (256) bytes |
///
/// So one call returns at most about 6.4 MiB, and a search scans at most one agent's 16 MiB.
/// Each agent's usage is kept in a side table updated in the same transaction as every write,
/// so checking a quota costs one row lookup.
#[derive(Debug, Clone, Copy)]
pub struct AgentDataRepo<'a> {
    store: &'a Store,
    sealer: &'a Sealer,
}

impl<'a> AgentDataRepo<'a> {
    pub(crate) const fn new(store: &'a Store, sealer: &'a Sealer) -> Self {
        Self { store, sealer }
    }

    /// Sets `agent`'s `key` to `value`, replacing any earlier value (and its sensitivity).
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`], [`StoreError::TooLarge`], [`StoreError::LimitReached`] if
    /// the agent's key count or byte quota would be exceeded, [`StoreError::TimeOutOfRange`],
    /// [`StoreError::Randomness`], or an SQLite failure. Nothing is written on error.
    pub fn put(
        &self,
        agent: &AgentId,
        key: &str,
        value: &[u8],
        sensitive: bool,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        check_key(key)?;
        if value.len() > MAX_AGENT_VALUE_LEN {
            return Err(StoreError::TooLarge {
                what: "agent value",
                len: value.len(),
                max: MAX_AGENT_VALUE_LEN,
            });
        }
        let now = to_millis(now)?;
        let stored = if sensitive {
            self.sealer
                .seal(SealPurpose::AgentData, TABLE, &row_key(agent, key), value)?
        } else {
            value.to_vec()
        };
        let mut conn = self.store.lock();
        let err = self.store.err("storing agent data");
        let tx = conn.transaction().map_err(&err)?;
        let old: Option<i64> = tx
            .prepare_cached("SELECT length(value) FROM agent_data WHERE agent = ?1 AND key = ?2")
            .map_err(&err)?
            .query_row(params![agent.as_str(), key], |row| row.get(0))
            .optional()
            .map_err(&err)?;
        let usage = read_usage(&tx, agent).map_err(&err)?;
        let cost = |value_len: u64| key.len() as u64 + value_len;
        let old_cost = old.map_or(0, |len| cost(u64::try_from(len).unwrap_or(0)));
        let new_usage = AgentUsage {
            keys: usage.keys + u64::from(old.is_none()),
            bytes: (usage.bytes.saturating_sub(old_cost)).saturating_add(cost(stored.len() as u64)),
        };
        if new_usage.keys > MAX_AGENT_KEYS {
            return Err(StoreError::LimitReached {
                what: "an agent's keys",
                max: MAX_AGENT_KEYS,
            });
        }
        if new_usage.bytes > MAX_AGENT_BYTES && new_usage.bytes > usage.bytes {
            return Err(StoreError::LimitReached {
                what: "an agent's stored bytes",
                max: MAX_AGENT_BYTES,
            });
        }
        tx.prepare_cached(
            "INSERT INTO agent_data (agent, key, value, sensitive, updated_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (agent, key) DO UPDATE SET value = excluded.value, \
             sensitive = excluded.sensitive, updated_ms = excluded.updated_ms",
        )
        .map_err(&err)?
        .execute(params![agent.as_str(), key, stored, sensitive, now])
        .map_err(&err)?;
        write_usage(&tx, agent, new_usage).map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// `agent`'s value for `key`, if any.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`], [`StoreError::Decrypt`] if a sealed value does not open,
    /// [`StoreError::InvalidRow`] if the row is damaged, or an SQLite failure.
    pub fn get(&self, agent: &AgentId, key: &str) -> Result<Option<AgentRecord>, StoreError> {
        check_key(key)?;
        let rows = self.query(
            "reading agent data",
            "SELECT key, value, sensitive, updated_ms FROM agent_data \
             WHERE agent = ?1 AND key = ?2",
            params![agent.as_str(), key],
        )?;
        rows.into_iter()
            .next()
            .map(|raw| self.open(agent, raw))
            .transpose()
    }

    /// Removes `agent`'s `key`. Returns whether it was there.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] or an SQLite failure.
    pub fn delete(&self, agent: &AgentId, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let mut conn = self.store.lock();
        let err = self.store.err("deleting agent data");
        let tx = conn.transaction().map_err(&err)?;
        let removed: Option<i64> = tx
            .prepare_cached(
                "DELETE FROM agent_data WHERE agent = ?1 AND key = ?2 RETURNING length(value)",
            )
            .map_err(&err)?
            .query_row(params![agent.as_str(), key], |row| row.get(0))
            .optional()
            .map_err(&err)?;
        let Some(len) = removed else {
            return Ok(false);
        };
        let usage = read_usage(&tx, agent).map_err(&err)?;
        let freed = key.len() as u64 + u64::try_from(len).unwrap_or(0);
        let usage = AgentUsage {
            keys: usage.keys.saturating_sub(1),
            bytes: usage.bytes.saturating_sub(freed),
        };
        write_usage(&tx, agent, usage).map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(true)
    }

    /// Removes everything `agent` stored. Returns how many keys it had.
    ///
    /// # Errors
    /// An SQLite failure.
    pub fn clear(&self, agent: &AgentId) -> Result<u64, StoreError> {
        let mut conn = self.store.lock();
        let err = self.store.err("clearing agent data");
        let tx = conn.transaction().map_err(&err)?;
        let removed = tx
            .prepare_cached("DELETE FROM agent_data WHERE agent = ?1")
            .map_err(&err)?
            .execute([agent.as_str()])
            .map_err(&err)?;
        tx.prepare_cached("DELETE FROM agent_usage WHERE agent = ?1")
            .map_err(&err)?
            .execute([agent.as_str()])
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(removed as u64)
    }

    /// Up to `limit` (at most [`MAX_AGENT_LIST`]) of `agent`'s records whose key starts with
    /// `prefix` (`""` for all), in key byte order, starting after key `after` if given: pass
    /// the last key of one page to get the next.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] for a prefix longer than [`MAX_AGENT_KEY_LEN`], or as
    /// [`get`](Self::get) for the first record that fails.
    pub fn list(
        &self,
        agent: &AgentId,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        if prefix.len() > MAX_AGENT_KEY_LEN {
            return Err(StoreError::InvalidKey {
                what: "agent data prefix",
                reason: "longer than 256 bytes",
            });
        }
        let limit = sql_limit(limit.min(MAX_AGENT_LIST));
        // Keys with the prefix sort at or after it and before its successor: the prefix with
        // its last byte incremented (UTF-8 never holds 0xff, so this cannot overflow). The
        // successor may not be UTF-8, so it is bound as a blob and cast to text, which SQLite
        // compares byte by byte.
        let upper = prefix.as_bytes().split_last().map(|(last, init)| {
            let mut upper = init.to_vec();
            upper.push(last.saturating_add(1));
            upper
        });
        let after = after.unwrap_or("");
        let rows = self.query(
            "listing agent data",
            "SELECT key, value, sensitive, updated_ms FROM agent_data \
             WHERE agent = ?1 AND key >= ?2 AND key > ?3 \
             AND (?4 IS NULL OR key < CAST(?4 AS TEXT)) \
             ORDER BY key LIMIT ?5",
            params![agent.as_str(), prefix, after, upper, limit],
        )?;
        rows.into_iter().map(|raw| self.open(agent, raw)).collect()
    }

    /// Up to `limit` (at most [`MAX_AGENT_LIST`]) of `agent`'s records whose key contains
    /// `text`, or whose value does if it is not sensitive (sealed values are never searched),
    /// in key byte order. The match is on bytes, case-sensitive.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] for empty text or text longer than
    /// [`MAX_AGENT_SEARCH_LEN`], or as [`get`](Self::get) for the first record that fails.
    pub fn search(
        &self,
        agent: &AgentId,
        text: &str,
        limit: usize,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        if text.is_empty() || text.len() > MAX_AGENT_SEARCH_LEN {
            return Err(StoreError::InvalidKey {
                what: "agent data search text",
                reason: "must be 1 to 256 bytes",
            });
        }
        let rows = self.query(
            "searching agent data",
            "SELECT key, value, sensitive, updated_ms FROM agent_data \
             WHERE agent = ?1 AND (instr(key, ?2) > 0 \
             OR (sensitive = 0 AND instr(value, CAST(?2 AS BLOB)) > 0)) \
             ORDER BY key LIMIT ?3",
            params![agent.as_str(), text, sql_limit(limit.min(MAX_AGENT_LIST))],
        )?;
        rows.into_iter().map(|raw| self.open(agent, raw)).collect()
    }

    /// How much of its quota `agent` uses.
    ///
    /// # Errors
    /// An SQLite failure.
    pub fn usage(&self, agent: &AgentId) -> Result<AgentUsage, StoreError> {
        let conn = self.store.lock();
        read_usage(&conn, agent).map_err(self.store.err("reading agent usage"))
    }

    fn query(
        &self,
        op: &'static str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<RawRecord>, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err(op);
        let mut stmt = conn.prepare_cached(sql).map_err(&err)?;
        let rows = stmt
            .query_map(params, raw_record)
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        Ok(rows)
    }

    fn open(&self, agent: &AgentId, raw: RawRecord) -> Result<AgentRecord, StoreError> {
        let invalid = |detail: String| StoreError::InvalidRow {
            table: TABLE,
            detail: format!("agent {agent}: {detail}"),
        };
        let RawRecord {
            key,
            value,
            sensitive,
            updated_ms,
        } = raw;
        let key = key.ok_or_else(|| invalid("a key is not text".to_owned()))?;
        let value = value.ok_or_else(|| invalid(format!("value of {key:?} is not a blob")))?;
        let sensitive = match sensitive {
            Some(0) => false,
            Some(1) => true,
            _ => return Err(invalid(format!("sensitive flag of {key:?} is not 0 or 1"))),
        };
        let updated_at = updated_ms
            .and_then(from_millis)
            .ok_or_else(|| invalid(format!("updated_ms of {key:?} is not a time")))?;
        let value = if sensitive {
            self.sealer
                .open(SealPurpose::AgentData, TABLE, &row_key(agent, &key), &value)
                .map_err(|e| match e {
                    StoreError::Decrypt { table, .. } => StoreError::Decrypt {
                        table,
                        key: format!("{agent} {key:?}"),
                    },
                    other => other,
                })?
        } else {
            Zeroizing::new(value)
        };
        Ok(AgentRecord {
            key,
            value,
            sensitive,
            updated_at,
        })
    }
}

/// A row as read, before checking and opening.
struct RawRecord {
    key: Option<String>,
    value: Option<Vec<u8>>,
    sensitive: Option<i64>,
    updated_ms: Option<i64>,
}

fn raw_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    let key = match row.get_ref(0)? {
        ValueRef::Text(text) => std::str::from_utf8(text).ok().map(str::to_owned),
        _ => None,
    };
    let value = match row.get_ref(1)? {
        ValueRef::Blob(bytes) => Some(bytes.to_vec()),
        _ => None,
    };
    let int = |value: ValueRef<'_>| match value {
        ValueRef::Integer(n) => Some(n),
        _ => None,
    };
    Ok(RawRecord {
        key,
        value,
        sensitive: int(row.get_ref(2)?),
        updated_ms: int(row.get_ref(3)?),
    })
}

/// What a sealed value is bound to: the agent id (at most 64 bytes, so its length fits one
/// byte) and the key.
fn row_key(agent: &AgentId, key: &str) -> Vec<u8> {
    let agent = agent.as_str().as_bytes();
    let mut out = Vec::with_capacity(1 + agent.len() + key.len());
    out.push(u8::try_from(agent.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(agent);
    out.extend_from_slice(key.as_bytes());
    out
}

fn read_usage(conn: &Connection, agent: &AgentId) -> rusqlite::Result<AgentUsage> {
    let usage: Option<(i64, i64)> = conn
        .prepare_cached("SELECT keys, bytes FROM agent_usage WHERE agent = ?1")?
        .query_row([agent.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(
        usage.map_or_else(AgentUsage::default, |(keys, bytes)| AgentUsage {
            keys: u64::try_from(keys).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
        }),
    )
}

fn write_usage(conn: &Connection, agent: &AgentId, usage: AgentUsage) -> rusqlite::Result<()> {
    if usage.keys == 0 {
        conn.prepare_cached("DELETE FROM agent_usage WHERE agent = ?1")?
            .execute([agent.as_str()])?;
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO agent_usage (agent, keys, bytes) VALUES (?1, ?2, ?3) \
         ON CONFLICT (agent) DO UPDATE SET keys = excluded.keys, bytes = excluded.bytes",
    )?
    .execute(params![
        agent.as_str(),
        i64::try_from(usage.keys).unwrap_or(i64::MAX),
        i64::try_from(usage.bytes).unwrap_or(i64::MAX)
    ])?;
    Ok(())
}

fn check_key(key: &str) -> Result<(), StoreError> {
    let reason = if key.is_empty() {
        Some("empty")
    } else if key.len() > MAX_AGENT_KEY_LEN {
        Some("longer than 256 bytes")
    } else if key.chars().any(char::is_control) {
        Some("holds a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidKey {
            what: "agent data key",
            reason,
        }),
        None => Ok(()),
    }
}

/// SQLite's LIMIT is an i64; anything larger means "no limit" anyway.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
