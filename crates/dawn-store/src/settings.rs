//! The settings repository: small named values kept across restarts.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;
use crate::store::Store;

/// The longest setting name, in bytes.
pub const MAX_SETTING_KEY_LEN: usize = 128;

/// The largest setting value, in bytes (1 MiB).
pub const MAX_SETTING_VALUE_LEN: usize = 1024 * 1024;

/// The most settings the store keeps.
pub const MAX_SETTINGS: u64 = 1024;

/// Reads and writes the `settings` table. Get one from [`Store::settings`].
///
/// Names are 1 to [`MAX_SETTING_KEY_LEN`] characters from `A-Z a-z 0-9 . _ / -` (for example
/// `node/policy`); values are bytes or JSON, at most [`MAX_SETTING_VALUE_LEN`] bytes; at most
/// [`MAX_SETTINGS`] are kept. Values are stored **in the clear**: seal anything secret with a
/// [`Sealer`](crate::Sealer) under [`SealPurpose::Settings`](crate::SealPurpose::Settings)
/// before putting it.
///
/// ```
/// let store = dawn_store::Store::open_in_memory()?;
/// store.settings().put_json("node/policy", &serde_json::json!({"default": "deny"}))?;
/// let policy: Option<serde_json::Value> = store.settings().get_json("node/policy")?;
/// assert_eq!(policy.unwrap()["default"], "deny");
/// # Ok::<(), dawn_store::StoreError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SettingsRepo<'a> {
    store: &'a Store,
}

impl<'a> SettingsRepo<'a> {
    pub(crate) const fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Sets `key` to `value`, replacing any earlier value.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`], [`StoreError::TooLarge`], [`StoreError::LimitReached`] when
    /// adding a new setting beyond [`MAX_SETTINGS`], or an SQLite failure.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        if value.len() > MAX_SETTING_VALUE_LEN {
            return Err(StoreError::TooLarge {
                what: "setting value",
                len: value.len(),
                max: MAX_SETTING_VALUE_LEN,
            });
        }
        let mut conn = self.store.lock();
        let err = self.store.err("storing a setting");
        let tx = conn.transaction().map_err(&err)?;
        let (count, exists): (i64, bool) = tx
            .prepare_cached(
                "SELECT (SELECT count(*) FROM settings), \
                 EXISTS (SELECT 1 FROM settings WHERE key = ?1)",
            )
            .map_err(&err)?
            .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(&err)?;
        if !exists && u64::try_from(count).unwrap_or(u64::MAX) >= MAX_SETTINGS {
            return Err(StoreError::LimitReached {
                what: "settings",
                max: MAX_SETTINGS,
            });
        }
        tx.prepare_cached(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .map_err(&err)?
        .execute(params![key, value])
        .map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// The value of `key`, if set.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] or an SQLite failure.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let conn = self.store.lock();
        let err = self.store.err("reading a setting");
        conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")
            .map_err(&err)?
            .query_row([key], |row| row.get(0))
            .optional()
            .map_err(&err)
    }

    /// Sets `key` to `value` serialised as JSON.
    ///
    /// # Errors
    /// [`StoreError::InvalidJson`] if `value` does not serialise; otherwise as
    /// [`put`](Self::put).
    pub fn put_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::InvalidJson {
            key: key.to_owned(),
            detail: e.to_string(),
        })?;
        self.put(key, &bytes)
    }

    /// The value of `key` read as JSON into a `T`, if set.
    ///
    /// # Errors
    /// [`StoreError::InvalidJson`] if the stored value is not JSON of that shape; otherwise
    /// as [`get`](Self::get).
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.get(key)?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| StoreError::InvalidJson {
                    key: key.to_owned(),
                    detail: e.to_string(),
                })
            })
            .transpose()
    }

    /// Removes `key`. Returns whether it was set.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] or an SQLite failure.
    pub fn delete(&self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let conn = self.store.lock();
        let err = self.store.err("deleting a setting");
        let removed = conn
            .prepare_cached("DELETE FROM settings WHERE key = ?1")
            .map_err(&err)?
            .execute([key])
            .map_err(&err)?;
        Ok(removed > 0)
    }

    /// Every setting's name, in byte order (at most [`MAX_SETTINGS`]).
    ///
    /// # Errors
    /// An SQLite failure.
    pub fn keys(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err("listing settings");
        let mut stmt = conn
            .prepare_cached("SELECT key FROM settings ORDER BY key LIMIT ?1")
            .map_err(&err)?;
        let keys = stmt
            .query_map([i64::try_from(MAX_SETTINGS).unwrap_or(i64::MAX)], |row| {
                row.get(0)
            })
            .map_err(&err)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(&err)?;
        Ok(keys)
    }
}

fn check_key(key: &str) -> Result<(), StoreError> {
    let reason = if key.is_empty() {
        Some("empty")
    } else if key.len() > MAX_SETTING_KEY_LEN {
        Some("longer than 128 bytes")
    } else if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
    {
        Some("only A-Z a-z 0-9 . _ / - are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidKey {
            what: "setting name",
            reason,
        }),
        None => Ok(()),
    }
}
