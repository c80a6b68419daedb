//! The mesh chat room: people on different nodes talk through gossip.
//!
//! A room `R` (1 to 32 characters of `a-z`, `0-9`, `-`; [`DEFAULT_ROOM`] is joined at start)
//! is the gossip topic `dawn/chat/R`. Every payload is a small versioned JSON object, so it
//! also reads well in `GET /api/gossip/dawn/chat/R`:
//!
//! ```text
//! {"v":1,"type":"message","nick":"ada","text":"hello"}
//! {"v":1,"type":"typing","nick":"ada"}
//! {"v":1,"type":"receipt","ids":["<64 hex digits>", …]}
//! ```
//!
//! Who sent a message is never taken from the payload: it is the gossip origin, the node that
//! signed the envelope, and a message's id is the envelope's [`MessageId`]. The nick is only
//! what that node's user chose to be called. A node that receives a message answers with a
//! receipt (batched for [`RECEIPT_DELAY`]), so the sender's UI can show where it arrived.
//!
//! # Bounds
//!
//! - At most [`MAX_ROOMS`] rooms per node and [`CHAT_HISTORY`] messages per room (oldest
//!   dropped), kept in memory and written to `chat/<room>.json` in the data directory at most
//!   every two seconds, so history survives a restart.
//! - Text is at most [`MAX_TEXT_BYTES`] bytes, a nick at most [`MAX_NICK_CHARS`] characters,
//!   neither with control characters (text may hold newlines and tabs); a payload larger than
//!   [`MAX_PAYLOAD_LEN`] is dropped unread.
//! - This node sends at most 5 messages a second (bursts of 20) and one typing indicator per
//!   room every 1.5 s; every origin may send 20 chat payloads a second (bursts of 60), the rest
//!   is dropped.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dawn_gossip::{MESSAGE_ID_LEN, MessageId};
use dawn_identity::NodeId;
use dawn_resilience::{Rate, RateLimitConfig, RateLimited, RateLimiter, TakeError, TokenBucket};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info_span, warn};

use crate::api::ApiError;
use crate::events::EventKind;
use crate::gossip::{Delivery, GossipError, Subscription};
use crate::http::AppState;
use crate::node::Shared;
use crate::peers::now_unix_ms;

/// The room every node joins at start.
pub const DEFAULT_ROOM: &str = "lobby";

/// Gossip topics of chat rooms start with this.
pub const CHAT_TOPIC_PREFIX: &str = "dawn/chat/";

/// Most rooms a node is in.
pub const MAX_ROOMS: usize = 16;

/// Messages kept per room, newest last.
pub const CHAT_HISTORY: usize = 200;

/// Longest room name.
pub const MAX_ROOM_LEN: usize = 32;

/// Longest nick, in characters.
pub const MAX_NICK_CHARS: usize = 32;

/// Longest message text, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 4000;

/// Largest chat payload read from gossip.
pub const MAX_PAYLOAD_LEN: usize = 12 * 1024;

/// The chat payload version this node writes and reads.
const WIRE_VERSION: u8 = 1;

/// How long received message ids wait to be confirmed together.
const RECEIPT_DELAY: Duration = Duration::from_millis(250);

/// Most message ids in one receipt.
const MAX_RECEIPT_IDS: usize = 32;

/// Most receipts waiting per room; older ones are dropped.
const MAX_PENDING_RECEIPTS: usize = 4 * MAX_RECEIPT_IDS;

/// Most nodes recorded as having received one message.
const MAX_DELIVERED_TO: usize = 64;

/// Least time between two typing indicators of this node in one room.
const TYPING_INTERVAL: Duration = Duration::from_millis(1500);

/// How often changed rooms are written to the data directory.
const PERSIST_INTERVAL: Duration = Duration::from_secs(2);

/// Largest room file read at start.
const MAX_ROOM_FILE: u64 = 4 << 20;

/// Messages this node may send per second, and in a burst.
const LOCAL_RATE: u64 = 5;
const LOCAL_BURST: u64 = 20;

/// Chat payloads one origin may send per second, and in a burst; origins tracked.
const INBOUND_RATE: u64 = 20;
const INBOUND_BURST: u64 = 60;
const INBOUND_TRACKED: usize = 1024;

/// Default `limit` of `GET /api/chat/{room}`.
const DEFAULT_LIMIT: usize = 100;

/// A chat operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ChatError {
    /// The room name is not 1 to 32 characters of `a-z`, `0-9` and `-`.
    #[error("a room name is 1 to {MAX_ROOM_LEN} characters of a-z, 0-9 and '-'")]
    InvalidRoom,
    /// The nick is empty, too long or holds control characters.
    #[error("a nick is 1 to {MAX_NICK_CHARS} characters without control characters")]
    InvalidNick,
    /// The text is empty, too long or holds control characters other than newline and tab.
    #[error("a message is 1 to {MAX_TEXT_BYTES} bytes of text without control characters")]
    InvalidText,
    /// The request body is not the JSON object expected.
    #[error("the body is not valid: {0}")]
    Body(String),
    /// The request body is not declared as `application/json`.
    #[error("send the body as Content-Type: application/json")]
    MediaType,
    /// The node is in [`MAX_ROOMS`] rooms already.
    #[error("this node is in the maximum of {MAX_ROOMS} rooms already")]
    TooManyRooms,
    /// This node sent too many messages; the wait is given.
    #[error("too many messages; retry in {} ms", retry_after.as_millis())]
    RateLimited {
        /// How long until a message would be accepted.
        retry_after: Duration,
    },
    /// The chat has not started yet, or the node is stopping.
    #[error("the chat is not running")]
    NotRunning,
    /// Gossip refused the subscription or the broadcast.
    #[error(transparent)]
    Gossip(#[from] GossipError),
}

/// A chat payload from gossip could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WireError {
    /// Larger than [`MAX_PAYLOAD_LEN`].
    #[error("payload of {0} bytes is over the limit of {MAX_PAYLOAD_LEN}")]
    TooLarge(usize),
    /// Not a chat payload.
    #[error("malformed chat payload: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A version this node does not read.
    #[error("unknown chat payload version {0}")]
    Version(u8),
    /// A field is out of bounds.
    #[error(transparent)]
    Field(#[from] ChatError),
}

/// A message in a chat room, as `GET /api/chat/{room}` and the `chat` event show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatMessage {
    /// The id of the gossip message that carried it (64 hex digits in JSON).
    #[serde(with = "crate::gossip::message_id_serde")]
    pub id: MessageId,
    /// The room.
    pub room: String,
    /// The node that signed and sent it.
    pub origin: NodeId,
    /// What the sender calls themselves (chosen by them, not verified).
    pub nick: String,
    /// The text.
    pub text: String,
    /// When the origin sent it (milliseconds since the Unix epoch, the origin's clock, signed).
    pub sent_unix_ms: u64,
    /// When this node stored it (milliseconds since the Unix epoch).
    pub received_unix_ms: u64,
    /// For this node's own messages: the nodes that confirmed receiving it.
    #[serde(default)]
    pub delivered_to: Vec<NodeId>,
}

/// `GET /api/chat/{room}`: the newest messages, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatHistory {
    /// The room.
    pub room: String,
    /// At most the `limit` asked for (default 100, at most [`CHAT_HISTORY`]).
    pub messages: Vec<ChatMessage>,
}

/// One room in `GET /api/chat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatRoomInfo {
    /// The room.
    pub room: String,
    /// Messages held.
    pub messages: usize,
    /// When the newest one was stored (milliseconds since the Unix epoch).
    pub last_unix_ms: Option<u64>,
}

/// `GET /api/chat`: the rooms this node is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatRooms {
    /// By name.
    pub rooms: Vec<ChatRoomInfo>,
}

/// A chat payload on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Wire {
    v: u8,
    #[serde(flatten)]
    body: WireBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum WireBody {
    Message { nick: String, text: String },
    Typing { nick: String },
    Receipt { ids: Vec<String> },
}

impl Wire {
    fn new(body: WireBody) -> Self {
        Self {
            v: WIRE_VERSION,
            body,
        }
    }

    fn encode(&self) -> Bytes {
        // Serialising these plain structs cannot fail; an empty payload would be dropped by
        // every receiver.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads and validates a payload.
    fn decode(payload: &[u8]) -> Result<Self, WireError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(WireError::TooLarge(payload.len()));
        }
        let wire: Self = serde_json::from_slice(payload)?;
        if wire.v != WIRE_VERSION {
            return Err(WireError::Version(wire.v));
        }
        match &wire.body {
            WireBody::Message { nick, text } => {
                check_nick(nick)?;
                check_text(text)?;
            }
            WireBody::Typing { nick } => check_nick(nick)?,
            WireBody::Receipt { ids } => {
                if ids.len() > MAX_RECEIPT_IDS || ids.iter().any(|id| parse_id(id).is_none()) {
                    return Err(WireError::Field(ChatError::Body(
                        "a receipt names at most 32 message ids of 64 hex digits".to_owned(),
                    )));
                }
            }
        }
        Ok(wire)
    }
}

/// Checks a room name: 1 to [`MAX_ROOM_LEN`] characters of `a-z`, `0-9`, `-`.
pub(crate) fn check_room(room: &str) -> Result<(), ChatError> {
    let valid = !room.is_empty()
        && room.len() <= MAX_ROOM_LEN
        && room
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ChatError::InvalidRoom)
    }
}

fn check_nick(nick: &str) -> Result<(), ChatError> {
    let chars = nick.chars().count();
    let valid = (1..=MAX_NICK_CHARS).contains(&chars)
        && nick.trim() == nick
        && !nick.chars().any(char::is_control);
    if valid {
        Ok(())
    } else {
        Err(ChatError::InvalidNick)
    }
}

fn check_text(text: &str) -> Result<(), ChatError> {
    let valid = !text.trim().is_empty()
        && text.len() <= MAX_TEXT_BYTES
        && !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t');
    if valid {
        Ok(())
    } else {
        Err(ChatError::InvalidText)
    }
}

/// Parses 64 lowercase hex digits.
fn parse_id(text: &str) -> Option<MessageId> {
    if text.len() != MESSAGE_ID_LEN * 2 {
        return None;
    }
    let mut bytes = [0u8; MESSAGE_ID_LEN];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let (hi, lo) = (pair.first().copied()?, pair.get(1).copied()?);
        *byte = digit(hi)? << 4 | digit(lo)?;
    }
    Some(MessageId::from_bytes(bytes))
}

fn topic(room: &str) -> String {
    format!("{CHAT_TOPIC_PREFIX}{room}")
}

/// One room's state.
#[derive(Debug, Default)]
struct RoomState {
    history: VecDeque<ChatMessage>,
    /// Received message ids not yet confirmed to their senders.
    receipts_due: Vec<MessageId>,
    last_typing: Option<Instant>,
    /// Changed since it was last written.
    dirty: bool,
    /// A gossip subscription feeds it (or is being made).
    joined: bool,
}

impl RoomState {
    /// Stores a message unless its id is already held; returns whether it was new.
    fn store(&mut self, message: ChatMessage) -> bool {
        if self.history.iter().any(|m| m.id == message.id) {
            return false;
        }
        if self.history.len() >= CHAT_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(message);
        self.dirty = true;
        true
    }
}

#[derive(Debug)]
struct ChatState {
    rooms: BTreeMap<String, RoomState>,
    /// `None` only if the constant limits were invalid: then nothing is sent (fail closed).
    local: Option<TokenBucket>,
    inbound: Option<RateLimiter<NodeId>>,
}

/// What the chat's tasks need, set once at start.
#[derive(Debug)]
struct Runtime {
    tasks: TaskTracker,
    cancel: CancellationToken,
    dir: PathBuf,
}

/// The node's chat rooms, in [`Shared`].
#[derive(Debug)]
pub(crate) struct ChatHub {
    state: Mutex<ChatState>,
    runtime: OnceLock<Runtime>,
}

impl Default for ChatHub {
    fn default() -> Self {
        Self::new()
    }
}

impl ChatHub {
    pub(crate) fn new() -> Self {
        let inbound = RateLimiter::new(RateLimitConfig {
            messages_per_sec: INBOUND_RATE,
            message_burst: INBOUND_BURST,
            bytes_per_sec: (MAX_PAYLOAD_LEN as u64) * INBOUND_RATE,
            byte_burst: (MAX_PAYLOAD_LEN as u64) * INBOUND_BURST,
            max_keys: INBOUND_TRACKED,
        });
        Self {
            state: Mutex::new(ChatState {
                rooms: BTreeMap::new(),
                local: TokenBucket::new(Rate::per_second(LOCAL_RATE), LOCAL_BURST).ok(),
                inbound: inbound.ok(),
            }),
            runtime: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ChatState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest `limit` messages of `room`, oldest first.
    pub(crate) fn history(&self, room: &str, limit: usize) -> Vec<ChatMessage> {
        let state = self.lock();
        state.rooms.get(room).map_or_else(Vec::new, |r| {
            let skip = r.history.len().saturating_sub(limit);
            r.history.iter().skip(skip).cloned().collect()
        })
    }

    /// The rooms this node is in.
    pub(crate) fn rooms(&self) -> ChatRooms {
        let state = self.lock();
        ChatRooms {
            rooms: state
                .rooms
                .iter()
                .filter(|(_, r)| r.joined)
                .map(|(name, r)| ChatRoomInfo {
                    room: name.clone(),
                    messages: r.history.len(),
                    last_unix_ms: r.history.back().map(|m| m.received_unix_ms),
                })
                .collect(),
        }
    }

    /// Joins `room` (subscribes to its topic) unless already in it.
    pub(crate) async fn join(&self, shared: &Arc<Shared>, room: &str) -> Result<(), ChatError> {
        check_room(room)?;
        let Some(runtime) = self.runtime.get() else {
            return Err(ChatError::NotRunning);
        };
        {
            let mut state = self.lock();
            let joined = state.rooms.values().filter(|r| r.joined).count();
            let entry = state.rooms.get(room).map(|r| r.joined);
            match entry {
                Some(true) => return Ok(()),
                None if state.rooms.len() >= MAX_ROOMS => return Err(ChatError::TooManyRooms),
                _ if joined >= MAX_ROOMS => return Err(ChatError::TooManyRooms),
                _ => state.rooms.entry(room.to_owned()).or_default().joined = true,
            }
        }
        match shared.gossip.subscribe(&topic(room)).await {
            Ok(subscription) => {
                let span = info_span!(parent: None, "dawn.node.chat.room", room);
                runtime.tasks.spawn(
                    run_room(
                        Arc::clone(shared),
                        room.to_owned(),
                        subscription,
                        runtime.cancel.clone(),
                    )
                    .instrument(span),
                );
                Ok(())
            }
            Err(error) => {
                let mut state = self.lock();
                if let Some(r) = state.rooms.get_mut(room) {
                    r.joined = false;
                    if r.history.is_empty() {
                        state.rooms.remove(room);
                    }
                }
                Err(error.into())
            }
        }
    }

    /// Sends a message to `room` as this node, stores it and publishes it to the UI.
    pub(crate) async fn send(
        &self,
        shared: &Arc<Shared>,
        room: &str,
        nick: &str,
        text: &str,
    ) -> Result<ChatMessage, ChatError> {
        check_room(room)?;
        check_nick(nick)?;
        check_text(text)?;
        self.join(shared, room).await?;
        {
            let mut state = self.lock();
            let Some(bucket) = state.local.as_mut() else {
                return Err(ChatError::NotRunning);
            };
            match bucket.try_take(Instant::now(), 1) {
                Ok(()) => {}
                Err(TakeError::Empty { retry_after }) => {
                    return Err(ChatError::RateLimited { retry_after });
                }
                Err(_) => return Err(ChatError::NotRunning),
            }
        }
        let payload = Wire::new(WireBody::Message {
            nick: nick.to_owned(),
            text: text.to_owned(),
        })
        .encode();
        let id = shared.gossip.broadcast(&topic(room), payload).await?;
        let now = now_unix_ms();
        let message = ChatMessage {
            id,
            room: room.to_owned(),
            origin: shared.node_id,
            nick: nick.to_owned(),
            text: text.to_owned(),
            sent_unix_ms: now,
            received_unix_ms: now,
            delivered_to: Vec::new(),
        };
        self.lock()
            .rooms
            .entry(room.to_owned())
            .or_default()
            .store(message.clone());
        shared.events.publish(EventKind::Chat, &message);
        Ok(message)
    }

    /// Tells `room` that this node's user is typing; at most once per [`TYPING_INTERVAL`]
    /// per room. Returns whether an indicator was sent.
    pub(crate) async fn typing(
        &self,
        shared: &Arc<Shared>,
        room: &str,
        nick: &str,
    ) -> Result<bool, ChatError> {
        check_room(room)?;
        check_nick(nick)?;
        self.join(shared, room).await?;
        {
            let mut state = self.lock();
            let now = Instant::now();
            let r = state.rooms.entry(room.to_owned()).or_default();
            if r.last_typing
                .is_some_and(|at| now.duration_since(at) < TYPING_INTERVAL)
            {
                return Ok(false);
            }
            r.last_typing = Some(now);
        }
        let payload = Wire::new(WireBody::Typing {
            nick: nick.to_owned(),
        })
        .encode();
        shared.gossip.broadcast(&topic(room), payload).await?;
        Ok(true)
    }

    /// Handles a delivery on `room`'s topic. Returns whether a receipt is now due.
    fn on_delivery(&self, shared: &Shared, room: &str, delivery: &Delivery) -> bool {
        {
            let mut state = self.lock();
            let Some(limiter) = state.inbound.as_mut() else {
                return false;
            };
            let len = u64::try_from(delivery.payload.len()).unwrap_or(u64::MAX);
            if let Err(RateLimited::Exceeded { .. } | RateLimited::TooLarge { .. }) =
                limiter.check(Instant::now(), delivery.origin, len)
            {
                debug!(origin = %delivery.origin.fmt_short(), "chat payload over the rate limit; dropped");
                return false;
            }
        }
        let wire = match Wire::decode(&delivery.payload) {
            Ok(wire) => wire,
            Err(error) => {
                debug!(origin = %delivery.origin.fmt_short(), %error, "chat payload dropped");
                return false;
            }
        };
        match wire.body {
            WireBody::Message { nick, text } => {
                let message = ChatMessage {
                    id: delivery.message_id,
                    room: room.to_owned(),
                    origin: delivery.origin,
                    nick,
                    text,
                    sent_unix_ms: delivery.timestamp_ms,
                    received_unix_ms: delivery.received_unix_ms,
                    delivered_to: Vec::new(),
                };
                let new = {
                    let mut state = self.lock();
                    let r = state.rooms.entry(room.to_owned()).or_default();
                    let new = r.store(message.clone());
                    if new {
                        if r.receipts_due.len() >= MAX_PENDING_RECEIPTS {
                            r.receipts_due.remove(0);
                        }
                        r.receipts_due.push(message.id);
                    }
                    new
                };
                if new {
                    shared.events.publish(EventKind::Chat, &message);
                }
                new
            }
            WireBody::Typing { nick } => {
                shared.events.publish(
                    EventKind::Typing,
                    &serde_json::json!({
                        "room": room,
                        "origin": delivery.origin,
                        "nick": nick,
                    }),
                );
                false
            }
            WireBody::Receipt { ids } => {
                let mut confirmed = Vec::new();
                {
                    let mut state = self.lock();
                    let Some(r) = state.rooms.get_mut(room) else {
                        return false;
                    };
                    for id in ids.iter().filter_map(|id| parse_id(id)) {
                        let Some(message) = r
                            .history
                            .iter_mut()
                            .find(|m| m.id == id && m.origin == shared.node_id)
                        else {
                            continue;
                        };
                        if message.delivered_to.len() < MAX_DELIVERED_TO
                            && !message.delivered_to.contains(&delivery.origin)
                        {
                            message.delivered_to.push(delivery.origin);
                            confirmed.push(id);
                        }
                    }
                    if !confirmed.is_empty() {
                        r.dirty = true;
                    }
                }
                for id in confirmed {
                    shared.events.publish(
                        EventKind::Receipt,
                        &serde_json::json!({
                            "room": room,
                            "id": id.to_string(),
                            "by": delivery.origin,
                        }),
                    );
                }
                false
            }
        }
    }

    /// Takes the ids due for a receipt in `room`, at most [`MAX_RECEIPT_IDS`].
    fn take_receipts(&self, room: &str) -> Vec<MessageId> {
        let mut state = self.lock();
        let Some(r) = state.rooms.get_mut(room) else {
            return Vec::new();
        };
        let n = r.receipts_due.len().min(MAX_RECEIPT_IDS);
        r.receipts_due.drain(..n).collect()
    }

    /// Merges history read from disk into `room` (messages already held are kept once).
    fn restore(&self, room: &str, messages: Vec<ChatMessage>) {
        let mut state = self.lock();
        if !state.rooms.contains_key(room) && state.rooms.len() >= MAX_ROOMS {
            return;
        }
        let r = state.rooms.entry(room.to_owned()).or_default();
        let held = std::mem::take(&mut r.history);
        for message in messages.into_iter().chain(held) {
            r.store(message);
        }
        r.dirty = false;
    }

    /// Copies of the rooms changed since they were last written, marked clean.
    fn take_dirty(&self) -> Vec<(String, Vec<ChatMessage>)> {
        let mut state = self.lock();
        state
            .rooms
            .iter_mut()
            .filter_map(|(name, r)| {
                std::mem::take(&mut r.dirty)
                    .then(|| (name.clone(), r.history.iter().cloned().collect()))
            })
            .collect()
    }
}

/// Starts the chat: restores the rooms saved in `data_dir`, joins them and
/// [`DEFAULT_ROOM`], and writes changed rooms back every two seconds and at shutdown.
pub(crate) fn start(
    shared: &Arc<Shared>,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
    data_dir: &FsPath,
) {
    let runtime = Runtime {
        tasks: tasks.clone(),
        cancel: cancel.clone(),
        dir: data_dir.join("chat"),
    };
    let dir = runtime.dir.clone();
    if shared.chat.runtime.set(runtime).is_err() {
        warn!("the chat was started twice");
        return;
    }
    let shared = Arc::clone(shared);
    let cancel = cancel.clone();
    tasks.spawn(
        async move {
            let load_dir = dir.clone();
            let saved = tokio::task::spawn_blocking(move || load_rooms(&load_dir))
                .await
                .unwrap_or_default();
            let mut rooms = vec![DEFAULT_ROOM.to_owned()];
            for (room, messages) in saved {
                shared.chat.restore(&room, messages);
                if !rooms.contains(&room) {
                    rooms.push(room);
                }
            }
            for room in rooms {
                if let Err(error) = shared.chat.join(&shared, &room).await {
                    warn!(room, %error, "cannot join the chat room");
                }
            }
            loop {
                let stopping = tokio::select! {
                    () = cancel.cancelled() => true,
                    () = tokio::time::sleep(PERSIST_INTERVAL) => false,
                };
                let dirty = shared.chat.take_dirty();
                if !dirty.is_empty() {
                    let dir = dir.clone();
                    let written = tokio::task::spawn_blocking(move || save_rooms(&dir, &dirty));
                    if let Err(error) = written.await {
                        warn!(%error, "chat history writer failed");
                    }
                }
                if stopping {
                    return;
                }
            }
        }
        .instrument(info_span!(parent: None, "dawn.node.chat")),
    );
}

/// Follows one room's topic: stores and publishes what arrives, and confirms messages.
async fn run_room(
    shared: Arc<Shared>,
    room: String,
    mut subscription: Subscription,
    cancel: CancellationToken,
) {
    let mut receipt_due: Option<tokio::time::Instant> = None;
    loop {
        let flush = async {
            match receipt_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            delivery = subscription.recv() => {
                let Some(delivery) = delivery else { return };
                if shared.chat.on_delivery(&shared, &room, &delivery) && receipt_due.is_none() {
                    receipt_due = Some(tokio::time::Instant::now() + RECEIPT_DELAY);
                }
            }
            () = flush => {
                let ids = shared.chat.take_receipts(&room);
                receipt_due = None;
                if ids.is_empty() {
                    continue;
                }
                let payload = Wire::new(WireBody::Receipt {
                    ids: ids.iter().map(ToString::to_string).collect(),
                })
                .encode();
                if let Err(error) = shared.gossip.broadcast(&topic(&room), payload).await {
                    debug!(%error, "receipt not sent");
                }
                if !shared.chat.lock().rooms.get(&room).is_none_or(|r| r.receipts_due.is_empty()) {
                    receipt_due = Some(tokio::time::Instant::now() + RECEIPT_DELAY);
                }
            }
        }
    }
}

/// A room file: `chat/<room>.json`.
#[derive(Debug, Serialize, Deserialize)]
struct RoomFile {
    v: u8,
    room: String,
    messages: Vec<ChatMessage>,
}

/// Reads the saved rooms, skipping (and logging) anything invalid.
fn load_rooms(dir: &FsPath) -> Vec<(String, Vec<ChatMessage>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
        .filter(|room| check_room(room).is_ok())
        .collect();
    names.sort();
    names.truncate(MAX_ROOMS);
    let mut rooms = Vec::new();
    for room in names {
        let path = dir.join(format!("{room}.json"));
        match read_room(&path, &room) {
            Ok(messages) => rooms.push((room, messages)),
            Err(error) => warn!(path = %path.display(), %error, "chat history not restored"),
        }
    }
    rooms
}

fn read_room(path: &FsPath, room: &str) -> Result<Vec<ChatMessage>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_ROOM_FILE {
        return Err(format!("{len} bytes is over the limit of {MAX_ROOM_FILE}"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let file: RoomFile = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if file.v != WIRE_VERSION || file.room != room {
        return Err("not a room file of this version".to_owned());
    }
    let valid = |m: &ChatMessage| {
        m.room == room
            && check_nick(&m.nick).is_ok()
            && check_text(&m.text).is_ok()
            && m.delivered_to.len() <= MAX_DELIVERED_TO
    };
    let mut messages: Vec<ChatMessage> = file.messages.into_iter().filter(valid).collect();
    let skip = messages.len().saturating_sub(CHAT_HISTORY);
    messages.drain(..skip);
    Ok(messages)
}

/// Writes each room to a temporary file and renames it over the old one.
fn save_rooms(dir: &FsPath, rooms: &[(String, Vec<ChatMessage>)]) {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    if let Err(error) = builder.create(dir) {
        warn!(dir = %dir.display(), %error, "cannot create the chat directory");
        return;
    }
    for (room, messages) in rooms {
        let file = RoomFile {
            v: WIRE_VERSION,
            room: room.clone(),
            messages: messages.clone(),
        };
        let path = dir.join(format!("{room}.json"));
        let tmp = dir.join(format!("{room}.json.tmp"));
        let result = serde_json::to_vec(&file)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(error) = result {
            warn!(path = %path.display(), %error, "cannot save the chat history");
        }
    }
}

/// The routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/chat", get(list_rooms))
        .route("/api/chat/{room}", get(history).post(send))
        .route("/api/chat/{room}/typing", post(typing))
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn chat_error(error: &ChatError) -> Response {
    let (status, code) = match error {
        ChatError::InvalidRoom => (StatusCode::BAD_REQUEST, "invalid_room"),
        ChatError::InvalidNick => (StatusCode::BAD_REQUEST, "invalid_nick"),
        ChatError::InvalidText => (StatusCode::BAD_REQUEST, "invalid_text"),
        ChatError::Body(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        ChatError::MediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ChatError::TooManyRooms => (StatusCode::CONFLICT, "too_many_rooms"),
        ChatError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        ChatError::Gossip(GossipError::Broadcast(_) | GossipError::Topic(_)) => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
        ChatError::Gossip(GossipError::Subscribe(_)) => (StatusCode::CONFLICT, "too_many_topics"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let mut response =
        no_store((status, axum::Json(ApiError::new(code, error.to_string()))).into_response());
    if let ChatError::RateLimited { retry_after } = error {
        let secs = retry_after.as_secs().saturating_add(1);
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// Reads a JSON body. Only `Content-Type: application/json` is accepted: a page on another
/// origin cannot send that without a CORS preflight, which is never granted.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ChatError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ChatError::MediaType);
    }
    // An object only: serde would also read a struct from an array of its fields.
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ChatError::Body(e.to_string()))?;
    if !value.is_object() {
        return Err(ChatError::Body("expected a JSON object".to_owned()));
    }
    serde_json::from_value(value).map_err(|e| ChatError::Body(e.to_string()))
}

/// The `limit` query parameter, default [`DEFAULT_LIMIT`], at most [`CHAT_HISTORY`].
fn parse_limit(query: Option<&str>) -> Result<usize, ChatError> {
    let mut limit = DEFAULT_LIMIT;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        if let Some(value) = pair.strip_prefix("limit=") {
            limit = value
                .parse::<usize>()
                .map_err(|_| ChatError::Body("limit must be a whole number".to_owned()))?;
        }
    }
    Ok(limit.min(CHAT_HISTORY))
}

async fn list_rooms(State(state): State<AppState>) -> Response {
    no_store(axum::Json(state.shared.chat.rooms()).into_response())
}

/// `GET /api/chat/{room}?limit=N`. Joins the room if this node is not in it yet.
async fn history(
    State(state): State<AppState>,
    Path(room): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let limit = match parse_limit(query.as_deref()) {
        Ok(limit) => limit,
        Err(error) => return chat_error(&error),
    };
    if let Err(error) = state.shared.chat.join(&state.shared, &room).await {
        return chat_error(&error);
    }
    no_store(
        axum::Json(ChatHistory {
            messages: state.shared.chat.history(&room, limit),
            room,
        })
        .into_response(),
    )
}

#[derive(Debug, Deserialize)]
struct SendBody {
    text: String,
    #[serde(default)]
    nick: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct TypingBody {
    #[serde(default)]
    nick: Option<String>,
}

/// A nick for a request that names none: `node-` and the short node id.
fn default_nick(shared: &Shared) -> String {
    format!("node-{}", shared.node_id.fmt_short())
}

/// `POST /api/chat/{room}` with `{"text": "...", "nick": "..."}`: 201 and the message.
async fn send(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: SendBody = match json_body(&headers, &body) {
        Ok(body) => body,
        Err(error) => return chat_error(&error),
    };
    let nick = body.nick.unwrap_or_else(|| default_nick(&state.shared));
    match state
        .shared
        .chat
        .send(&state.shared, &room, nick.trim(), &body.text)
        .await
    {
        Ok(message) => no_store((StatusCode::CREATED, axum::Json(message)).into_response()),
        Err(error) => chat_error(&error),
    }
}

/// `POST /api/chat/{room}/typing` with `{"nick": "..."}` (or `{}`): 202 and whether an
/// indicator was sent (one per room every 1.5 s).
async fn typing(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // An empty body is `{}`; still refused without the JSON content type, as every POST here.
    let raw: &[u8] = if body.is_empty() { b"{}" } else { &body };
    let body: TypingBody = match json_body(&headers, raw) {
        Ok(body) => body,
        Err(error) => return chat_error(&error),
    };
    let nick = body.nick.unwrap_or_else(|| default_nick(&state.shared));
    match state
        .shared
        .chat
        .typing(&state.shared, &room, nick.trim())
        .await
    {
        Ok(sent) => no_store(
            (
                StatusCode::ACCEPTED,
                axum::Json(serde_json::json!({ "room": room, "sent": sent })),
            )
                .into_response(),
        ),
        Err(error) => chat_error(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(id: u8, text: &str) -> ChatMessage {
        ChatMessage {
            id: MessageId::from_bytes([id; MESSAGE_ID_LEN]),
            room: "lobby".to_owned(),
            origin: NodeId::from(dawn_crypto::SigningKey::from_bytes(&[7; 32]).verifying_key()),
            nick: "ada".to_owned(),
            text: text.to_owned(),
            sent_unix_ms: 1,
            received_unix_ms: 2,
            delivered_to: Vec::new(),
        }
    }

    #[test]
    fn room_names() {
        for ok in ["lobby", "a", "dev-ops-2", &"x".repeat(32)] {
            assert!(check_room(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Lobby", "a b", "a/b", "é", "a_b", &"x".repeat(33), ".."] {
            assert!(check_room(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nicks_and_texts() {
        assert!(check_nick("Ada Lovelace").is_ok());
        assert!(check_nick(&"é".repeat(32)).is_ok());
        for bad in ["", " ada", "ada ", "a\nb", "a\u{7}", &"é".repeat(33)] {
            assert!(check_nick(bad).is_err(), "{bad:?}");
        }
        assert!(check_text("hello\n\tworld").is_ok());
        assert!(check_text(&"a".repeat(MAX_TEXT_BYTES)).is_ok());
        for bad in [
            "",
            "   \n",
            "a\u{0}b",
            "\u{1b}[31m",
            &"a".repeat(MAX_TEXT_BYTES + 1),
        ] {
            assert!(check_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wire_encoding_is_stable() {
        let cases = [
            (
                WireBody::Message {
                    nick: "ada".into(),
                    text: "hi \"there\"".into(),
                },
                r#"{"v":1,"type":"message","nick":"ada","text":"hi \"there\""}"#,
            ),
            (
                WireBody::Typing { nick: "ada".into() },
                r#"{"v":1,"type":"typing","nick":"ada"}"#,
            ),
            (
                WireBody::Receipt {
                    ids: vec!["ab".repeat(32)],
                },
                r#"{"v":1,"type":"receipt","ids":["abababababababababababababababababababababababababababababababab"]}"#,
            ),
        ];
        for (body, golden) in cases {
            let wire = Wire::new(body);
            assert_eq!(std::str::from_utf8(&wire.encode()).unwrap(), golden);
            assert_eq!(Wire::decode(golden.as_bytes()).unwrap(), wire);
        }
    }

    #[test]
    fn bad_payloads_are_refused() {
        let long = format!(
            r#"{{"v":1,"type":"message","nick":"ada","text":"{}"}}"#,
            "a".repeat(MAX_PAYLOAD_LEN)
        );
        assert!(matches!(
            Wire::decode(long.as_bytes()),
            Err(WireError::TooLarge(_))
        ));
        for (bad, why) in [
            ("", "empty"),
            ("null", "not an object"),
            (r#"{"v":1,"type":"shout","nick":"a"}"#, "unknown type"),
            (r#"{"v":2,"type":"typing","nick":"a"}"#, "version"),
            (r#"{"type":"typing","nick":"a"}"#, "no version"),
            (r#"{"v":1,"type":"typing","nick":""}"#, "empty nick"),
            (r#"{"v":1,"type":"message","nick":"a","text":" "}"#, "blank"),
            (
                r#"{"v":1,"type":"message","nick":"a","text":"\u0007"}"#,
                "bell",
            ),
            (r#"{"v":1,"type":"receipt","ids":["zz"]}"#, "bad id"),
            (r#"{"v":1,"type":"receipt","ids":["AB"]}"#, "bad id"),
        ] {
            assert!(Wire::decode(bad.as_bytes()).is_err(), "{why}");
        }
        let many: Vec<String> = (0..=MAX_RECEIPT_IDS).map(|_| "0".repeat(64)).collect();
        let receipt = serde_json::json!({"v": 1, "type": "receipt", "ids": many}).to_string();
        assert!(Wire::decode(receipt.as_bytes()).is_err());
    }

    #[test]
    fn ids_parse_strictly() {
        let id = MessageId::from_bytes([0xab; MESSAGE_ID_LEN]);
        assert_eq!(parse_id(&id.to_string()), Some(id));
        assert_eq!(parse_id(&"AB".repeat(32)), None);
        assert_eq!(parse_id(&"ab".repeat(31)), None);
        assert_eq!(parse_id(&"g0".repeat(32)), None);
    }

    #[test]
    fn history_is_bounded_and_deduplicated() {
        let mut room = RoomState::default();
        assert!(room.store(message(0, "first")));
        assert!(!room.store(message(0, "again")));
        for i in 1..=u8::try_from(CHAT_HISTORY).unwrap() {
            room.store(message(i, "more"));
        }
        assert_eq!(room.history.len(), CHAT_HISTORY);
        assert_eq!(room.history.front().unwrap().id, message(1, "").id);
    }

    #[test]
    fn limits_are_valid_and_the_hub_answers() {
        let hub = ChatHub::new();
        let state = hub.lock();
        assert!(state.local.is_some());
        assert!(state.inbound.is_some());
        drop(state);
        assert!(hub.history("lobby", 10).is_empty());
        assert!(hub.rooms().rooms.is_empty());
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some("limit=5")).unwrap(), 5);
        assert_eq!(parse_limit(Some("x=1&limit=999")).unwrap(), CHAT_HISTORY);
        assert!(parse_limit(Some("limit=-1")).is_err());
    }

    #[test]
    fn rooms_are_saved_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let chat = dir.path().join("chat");
        let messages: Vec<ChatMessage> = (0..3).map(|i| message(i, "saved")).collect();
        save_rooms(&chat, &[("lobby".to_owned(), messages.clone())]);
        // Junk beside it is skipped, not fatal.
        std::fs::write(chat.join("Bad Name.json"), b"{}").unwrap();
        std::fs::write(chat.join("broken.json"), b"{not json").unwrap();
        let loaded = load_rooms(&chat);
        assert_eq!(loaded, vec![("lobby".to_owned(), messages.clone())]);

        let hub = ChatHub::new();
        hub.restore("lobby", messages.clone());
        hub.restore("lobby", messages);
        assert_eq!(hub.history("lobby", 100).len(), 3);
        assert_eq!(
            hub.history("lobby", 2).first().unwrap().id,
            message(1, "").id
        );
        assert!(hub.take_dirty().is_empty());
    }

    proptest! {
        #[test]
        fn messages_round_trip(nick in "[a-zA-Z0-9 éü]{1,32}", text in "\\PC{1,200}") {
            let nick = nick.trim().to_owned();
            prop_assume!(!nick.is_empty() && check_text(&text).is_ok());
            let wire = Wire::new(WireBody::Message { nick, text });
            prop_assert_eq!(Wire::decode(&wire.encode()).unwrap(), wire);
        }

        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Wire::decode(&bytes);
        }
    }
}
