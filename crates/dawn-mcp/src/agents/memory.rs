//! The `memory` agent: a persistent key-value store of notes, as tools and resources.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ListResourcesResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// The longest memory key, in bytes.
pub const MAX_KEY_LEN: usize = 128;
/// The longest memory value, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// The most entries one `search` returns.
pub const MAX_SEARCH_RESULTS: usize = 50;
/// The most entries `resources/list` shows.
pub const MAX_LISTED_KEYS: usize = 1000;
/// The longest search query, in bytes.
pub const MAX_QUERY_LEN: usize = 256;

/// The URI scheme of memory entries as resources: `memory://<key>`.
pub const MEMORY_URI_PREFIX: &str = "memory://";

/// A memory operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The key breaks the [`MemoryKey`] rules.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The value is longer than [`MAX_VALUE_LEN`].
    #[error("the value is {0} bytes; at most {MAX_VALUE_LEN} are allowed")]
    ValueTooLong(usize),
    /// The store is full.
    #[error("the memory is full: {0}")]
    Full(String),
    /// The backend failed (the database is busy, the disk is full...).
    #[error("memory backend: {0}")]
    Backend(String),
}

/// A memory key: 1 to [`MAX_KEY_LEN`] bytes of `A-Z a-z 0-9 . _ - /`, not starting with
/// `/` or `.`, so that `memory://<key>` is a plain URI and a key is safe as a path segment
/// or a SQL parameter alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemoryKey(String);

impl MemoryKey {
    /// Checks `key` against the rules.
    ///
    /// # Errors
    /// [`MemoryError::InvalidKey`] naming the rule broken.
    pub fn new(key: &str) -> Result<Self, MemoryError> {
        if key.is_empty() {
            return Err(MemoryError::InvalidKey("a key cannot be empty".into()));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(MemoryError::InvalidKey(format!(
                "a key is at most {MAX_KEY_LEN} bytes, got {}",
                key.len()
            )));
        }
        if let Some(bad) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
        {
            return Err(MemoryError::InvalidKey(format!(
                "a key uses only A-Z, a-z, 0-9, '.', '_', '-' and '/', found {bad:?}"
            )));
        }
        if key.starts_with(['/', '.']) {
            return Err(MemoryError::InvalidKey(
                "a key cannot start with '/' or '.'".into(),
            ));
        }
        Ok(Self(key.to_owned()))
    }

    /// The key.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's resource URI, `memory://<key>`.
    #[must_use]
    pub fn uri(&self) -> String {
        format!("{MEMORY_URI_PREFIX}{}", self.0)
    }
}

impl fmt::Display for MemoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEntry {
    /// Its key.
    pub key: MemoryKey,
    /// Its value.
    pub value: String,
}

/// Where the `memory` agent keeps its entries.
///
/// Synchronous and fallible; the agent calls it on tokio's blocking pool, so an
/// implementation may block on a database (the node implements it over SQLite). Keys are
/// validated and values bounded ([`MAX_VALUE_LEN`]) before the backend sees them; the
/// backend bounds the total it keeps and answers [`MemoryError::Full`] beyond it.
pub trait MemoryBackend: Send + Sync + 'static {
    /// Stores `value` under `key`, replacing any previous value.
    ///
    /// # Errors
    /// [`MemoryError`].
    fn put(&self, key: &MemoryKey, value: &str) -> Result<(), MemoryError>;

    /// The value under `key`.
    ///
    /// # Errors
    /// [`MemoryError`].
    fn get(&self, key: &MemoryKey) -> Result<Option<String>, MemoryError>;

    /// Removes `key`; whether it was there.
    ///
    /// # Errors
    /// [`MemoryError`].
    fn delete(&self, key: &MemoryKey) -> Result<bool, MemoryError>;

    /// At most `limit` entries whose key or value contains `query`, ignoring ASCII case, in
    /// key order. An empty query matches everything.
    ///
    /// # Errors
    /// [`MemoryError`].
    fn search(&self, query: &str, limit: usize) -> Result<Vec<MemoryEntry>, MemoryError>;

    /// At most `limit` keys, in order.
    ///
    /// # Errors
    /// [`MemoryError`].
    fn keys(&self, limit: usize) -> Result<Vec<MemoryKey>, MemoryError>;
}

/// A [`MemoryBackend`] in memory, for tests and nodes without a database.
#[derive(Debug)]
pub struct InMemoryBackend {
    entries: Mutex<BTreeMap<MemoryKey, String>>,
    max_entries: usize,
}

impl InMemoryBackend {
    /// An empty store holding at most `max_entries` entries.
    #[must_use]
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(BTreeMap::new()),
            max_entries,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<MemoryKey, String>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for InMemoryBackend {
    /// At most 10,000 entries.
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl MemoryBackend for InMemoryBackend {
    fn put(&self, key: &MemoryKey, value: &str) -> Result<(), MemoryError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(MemoryError::ValueTooLong(value.len()));
        }
        let mut entries = self.entries();
        if !entries.contains_key(key) && entries.len() >= self.max_entries {
            return Err(MemoryError::Full(format!(
                "{} entries already",
                self.max_entries
            )));
        }
        entries.insert(key.clone(), value.to_owned());
        Ok(())
    }

    fn get(&self, key: &MemoryKey) -> Result<Option<String>, MemoryError> {
        Ok(self.entries().get(key).cloned())
    }

    fn delete(&self, key: &MemoryKey) -> Result<bool, MemoryError> {
        Ok(self.entries().remove(key).is_some())
    }

    fn search(&self, query: &str, limit: usize) -> Result<Vec<MemoryEntry>, MemoryError> {
        let query = query.to_ascii_lowercase();
        Ok(self
            .entries()
            .iter()
            .filter(|(key, value)| {
                key.as_str().to_ascii_lowercase().contains(&query)
                    || value.to_ascii_lowercase().contains(&query)
            })
            .take(limit)
            .map(|(key, value)| MemoryEntry {
                key: key.clone(),
                value: value.clone(),
            })
            .collect())
    }

    fn keys(&self, limit: usize) -> Result<Vec<MemoryKey>, MemoryError> {
        Ok(self.entries().keys().take(limit).cloned().collect())
    }
}

/// Arguments of `put`.
#[derive(Debug, Deserialize, JsonSchema)]
struct PutArgs {
    /// The key: letters, digits, '.', '_', '-' and '/', at most 128 bytes.
    key: String,
    /// The text to remember (at most 64 KiB).
    value: String,
}

/// Arguments of `get` and `delete`.
#[derive(Debug, Deserialize, JsonSchema)]
struct KeyArgs {
    /// The key.
    key: String,
}

/// Arguments of `search`.
#[derive(Debug, Deserialize, JsonSchema)]
struct SearchArgs {
    /// Text to look for in keys and values, ignoring case; empty lists everything.
    query: String,
    /// The most entries to return (default and maximum 50).
    limit: Option<u32>,
}

/// The built-in `memory` agent: notes that outlive a conversation.
///
/// Tools `put {key, value}`, `get {key}`, `search {query, limit?}` and `delete {key}`;
/// every entry is also a resource `memory://<key>` (listed up to [`MAX_LISTED_KEYS`],
/// read as `text/plain`). Storage is a [`MemoryBackend`]; bad keys and over-long values
/// are tool errors the caller can read.
#[derive(Clone)]
pub struct MemoryAgent {
    backend: Arc<dyn MemoryBackend>,
    tool_router: ToolRouter<Self>,
}

impl fmt::Debug for MemoryAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryAgent { .. }")
    }
}

/// Runs a backend call on the blocking pool.
async fn blocking<T: Send + 'static>(
    backend: &Arc<dyn MemoryBackend>,
    call: impl FnOnce(&dyn MemoryBackend) -> Result<T, MemoryError> + Send + 'static,
) -> Result<T, MemoryError> {
    let backend = Arc::clone(backend);
    tokio::task::spawn_blocking(move || call(backend.as_ref()))
        .await
        .map_err(|error| MemoryError::Backend(format!("backend task failed: {error}")))?
}

fn tool_error(error: &MemoryError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(error.to_string())])
}

fn text(message: String) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(message)])
}

#[tool_router]
impl MemoryAgent {
    /// The agent over `backend`.
    #[must_use]
    pub fn new(backend: Arc<dyn MemoryBackend>) -> Self {
        Self {
            backend,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Remember a text under a key, replacing what was there.")]
    async fn put(&self, Parameters(args): Parameters<PutArgs>) -> CallToolResult {
        let key = match MemoryKey::new(&args.key) {
            Ok(key) => key,
            Err(error) => return tool_error(&error),
        };
        if args.value.len() > MAX_VALUE_LEN {
            return tool_error(&MemoryError::ValueTooLong(args.value.len()));
        }
        let len = args.value.len();
        let stored = key.clone();
        match blocking(&self.backend, move |b| b.put(&stored, &args.value)).await {
            Ok(()) => text(format!("stored {key} ({len} bytes)")),
            Err(error) => tool_error(&error),
        }
    }

    #[tool(description = "Recall the text stored under a key.")]
    async fn get(&self, Parameters(args): Parameters<KeyArgs>) -> CallToolResult {
        let key = match MemoryKey::new(&args.key) {
            Ok(key) => key,
            Err(error) => return tool_error(&error),
        };
        let wanted = key.clone();
        match blocking(&self.backend, move |b| b.get(&wanted)).await {
            Ok(Some(value)) => text(value),
            Ok(None) => CallToolResult::error(vec![ContentBlock::text(format!(
                "nothing is stored under {key}"
            ))]),
            Err(error) => tool_error(&error),
        }
    }

    #[tool(description = "Find stored notes whose key or text contains the query (ignoring case).")]
    async fn search(&self, Parameters(args): Parameters<SearchArgs>) -> CallToolResult {
        if args.query.len() > MAX_QUERY_LEN {
            return CallToolResult::error(vec![ContentBlock::text(format!(
                "a query is at most {MAX_QUERY_LEN} bytes"
            ))]);
        }
        let limit = args
            .limit
            .map_or(MAX_SEARCH_RESULTS, |limit| {
                usize::try_from(limit).unwrap_or(MAX_SEARCH_RESULTS)
            })
            .min(MAX_SEARCH_RESULTS);
        let query = args.query;
        match blocking(&self.backend, move |b| b.search(&query, limit)).await {
            Ok(entries) => {
                let lines: Vec<String> = entries
                    .iter()
                    .map(|entry| {
                        format!(
                            "{}: {}",
                            entry.key,
                            crate::text::truncate(&entry.value, 200)
                        )
                    })
                    .collect();
                let summary = if lines.is_empty() {
                    "no matching notes".to_owned()
                } else {
                    lines.join("\n")
                };
                let structured: Vec<_> = entries
                    .iter()
                    .map(|entry| json!({ "key": entry.key.as_str(), "value": entry.value }))
                    .collect();
                let mut result = text(summary);
                result.structured_content = Some(json!({ "entries": structured }));
                result
            }
            Err(error) => tool_error(&error),
        }
    }

    #[tool(description = "Forget the text stored under a key.")]
    async fn delete(&self, Parameters(args): Parameters<KeyArgs>) -> CallToolResult {
        let key = match MemoryKey::new(&args.key) {
            Ok(key) => key,
            Err(error) => return tool_error(&error),
        };
        let gone = key.clone();
        match blocking(&self.backend, move |b| b.delete(&gone)).await {
            Ok(true) => text(format!("deleted {key}")),
            Ok(false) => text(format!("nothing was stored under {key}")),
            Err(error) => tool_error(&error),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for MemoryAgent {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new("memory", env!("CARGO_PKG_VERSION"))
                .with_title("Memory")
                .with_description("Notes that outlive a conversation: put, get, search, delete."),
        )
        .with_instructions(
            "Store notes with `put`, recall them with `get` or `search`. Every note is also \
             the resource memory://<key>.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let keys = blocking(&self.backend, |b| b.keys(MAX_LISTED_KEYS))
            .await
            .map_err(|error| ErrorData::internal_error(error.to_string(), None))?;
        Ok(ListResourcesResult::with_all_items(
            keys.iter()
                .map(|key| Resource::new(key.uri(), key.as_str()).with_mime_type("text/plain"))
                .collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let key = uri
            .strip_prefix(MEMORY_URI_PREFIX)
            .ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!("not a memory URI: {}", crate::text::truncate(&uri, 128)),
                    None,
                )
            })
            .and_then(|key| {
                MemoryKey::new(key)
                    .map_err(|error| ErrorData::resource_not_found(error.to_string(), None))
            })?;
        let wanted = key.clone();
        match blocking(&self.backend, move |b| b.get(&wanted)).await {
            Ok(Some(value)) => {
                Ok(ReadResourceResult::new(vec![ResourceContents::text(value, uri)]).into())
            }
            Ok(None) => Err(ErrorData::resource_not_found(
                format!("nothing is stored under {key}"),
                None,
            )),
            Err(error) => Err(ErrorData::internal_error(error.to_string(), None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_rules() {
        assert!(MemoryKey::new("notes/2026-05-01.md").is_ok());
        assert!(MemoryKey::new("").is_err());
        assert!(MemoryKey::new("/etc").is_err());
        assert!(MemoryKey::new("..").is_err());
        assert!(MemoryKey::new("a b").is_err());
        assert!(MemoryKey::new("ключ").is_err());
        assert!(MemoryKey::new(&"k".repeat(MAX_KEY_LEN)).is_ok());
        assert!(MemoryKey::new(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        assert_eq!(MemoryKey::new("a").unwrap().uri(), "memory://a");
    }

    #[test]
    fn in_memory_backend_bounds_entries_and_values() {
        let backend = InMemoryBackend::new(2);
        let a = MemoryKey::new("a").unwrap();
        let b = MemoryKey::new("b").unwrap();
        let c = MemoryKey::new("c").unwrap();
        backend.put(&a, "alpha").unwrap();
        backend.put(&b, "Beta").unwrap();
        assert!(matches!(backend.put(&c, "x"), Err(MemoryError::Full(_))));
        backend.put(&a, "replaced").unwrap();
        assert_eq!(backend.get(&a).unwrap().as_deref(), Some("replaced"));
        assert!(matches!(
            backend.put(&a, &"x".repeat(MAX_VALUE_LEN + 1)),
            Err(MemoryError::ValueTooLong(_))
        ));
        assert_eq!(backend.search("BETA", 10).unwrap().len(), 1);
        assert_eq!(backend.search("", 1).unwrap().len(), 1);
        assert!(backend.delete(&a).unwrap());
        assert!(!backend.delete(&a).unwrap());
        assert_eq!(backend.keys(10).unwrap(), vec![b]);
    }
}
