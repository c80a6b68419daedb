//! Server-sent events: `GET /api/events` streams what changes on the node (`chat`, `typing`,
//! `receipt`, `peers`, `agents`) to the web UI, so it never has to poll.
//!
//! Every module publishes through the one [`EventHub`] in [`Shared`]: a bounded
//! `tokio::sync::broadcast` channel of [`EVENT_QUEUE`] events, each serialised to JSON once.
//! A stream that falls behind gets a `resync` event (the UI then reloads what it shows)
//! instead of holding memory; at most [`MAX_EVENT_STREAMS`] streams are open at once.
//!
//! ```text
//! event: chat
//! data: {"id":"…","room":"lobby","origin":"…","nick":"ada","text":"hello",…}
//! ```

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info_span};

use crate::api::{ApiError, PeerList};
use crate::http::AppState;
use crate::node::Shared;

/// Events buffered for the slowest stream before it misses some (and is told to resync).
pub(crate) const EVENT_QUEUE: usize = 256;

/// Most `GET /api/events` streams open at once; more are refused with 503.
pub(crate) const MAX_EVENT_STREAMS: usize = 32;

/// How often an idle stream carries a comment, so proxies and browsers keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often the peer watcher compares the peer table and gossip views with what it last
/// published.
const PEER_WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// What an event is about; its name on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub(crate) enum EventKind {
    /// A mesh chat message was stored (sent here or received over gossip).
    Chat,
    /// Someone is typing in a chat room.
    Typing,
    /// A node confirmed it received one of this node's chat messages.
    Receipt,
    /// The peer table or the gossip views changed; the data is the new `GET /api/peers`.
    Peers,
    /// The agent directory changed.
    #[allow(dead_code)] // Published by the agent directory.
    Agents,
}

impl EventKind {
    /// The SSE event name.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Typing => "typing",
            Self::Receipt => "receipt",
            Self::Peers => "peers",
            Self::Agents => "agents",
        }
    }
}

/// One published event: its kind and its JSON, serialised once for every stream.
#[derive(Debug, Clone)]
pub(crate) struct ServerEvent {
    pub(crate) kind: EventKind,
    pub(crate) data: Arc<str>,
}

/// The node's event channel. Publishing never blocks and never fails: with no stream open
/// the event is simply dropped.
#[derive(Debug)]
pub(crate) struct EventHub {
    tx: broadcast::Sender<ServerEvent>,
    streams: Arc<Semaphore>,
    /// Ends every stream when the node stops, so that a graceful HTTP shutdown is not held up
    /// by browsers that keep their event streams open.
    stop: CancellationToken,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    pub(crate) fn new() -> Self {
        let (tx, _) = broadcast::channel(EVENT_QUEUE);
        Self {
            tx,
            streams: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
            stop: CancellationToken::new(),
        }
    }

    /// Publishes `data` (serialised as JSON) as a `kind` event to every open stream.
    pub(crate) fn publish<T: Serialize + ?Sized>(&self, kind: EventKind, data: &T) {
        match serde_json::to_string(data) {
            Ok(json) => {
                // An error only means that no stream is open.
                let _ = self.tx.send(ServerEvent {
                    kind,
                    data: Arc::from(json),
                });
            }
            Err(error) => debug!(%error, kind = kind.as_str(), "event not serialisable"),
        }
    }

    /// A receiver of every event published from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.tx.subscribe()
    }

    /// A slot for one more stream, if fewer than [`MAX_EVENT_STREAMS`] are open.
    fn stream_slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.streams).try_acquire_owned().ok()
    }
}

/// The routes of this module: `GET /api/events`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/events", get(events))
}

/// `GET /api/events`: the event stream. The first event is `hello` with the node id, so a
/// client knows the stream is live before anything happens.
async fn events(State(state): State<AppState>) -> Response {
    let Some(slot) = state.shared.events.stream_slot() else {
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(ApiError::new(
                "too_many_streams",
                format!("at most {MAX_EVENT_STREAMS} event streams may be open at once"),
            )),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let rx = state.shared.events.subscribe();
    let stop = state.shared.events.stop.clone();
    let hello = Event::default()
        .event("hello")
        .data(format!("{{\"node_id\":\"{}\"}}", state.shared.node_id));
    let stream = futures_util::stream::unfold(
        (Some(hello), rx, slot, stop),
        |(first, mut rx, slot, stop)| async move {
            if let Some(hello) = first {
                return Some((
                    Ok::<_, std::convert::Infallible>(hello),
                    (None, rx, slot, stop),
                ));
            }
            let received = tokio::select! {
                () = stop.cancelled() => return None,
                received = rx.recv() => received,
            };
            let event = match received {
                Ok(event) => Event::default()
                    .event(event.kind.as_str())
                    .data(event.data.as_ref()),
                Err(broadcast::error::RecvError::Lagged(missed)) => Event::default()
                    .event("resync")
                    .data(format!("{{\"missed\":{missed}}}")),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok(event), (None, rx, slot, stop)))
        },
    );
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tells reverse proxies (nginx) not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Publishes a `peers` event whenever the peer table or the gossip views change, and ends the
/// event streams when `cancel` fires (the node is stopping). The peer
/// table is owned by the node's event follower and the views by the gossip actor; comparing a
/// digest twice a second keeps both free of UI concerns.
pub(crate) fn spawn_peer_watch(
    shared: Arc<Shared>,
    tasks: &TaskTracker,
    cancel: CancellationToken,
) {
    let span = info_span!(parent: None, "dawn.node.events.peers");
    tasks.spawn(
        async move {
            let mut last = 0u64;
            let mut tick = tokio::time::interval(PEER_WATCH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => {
                        shared.events.stop.cancel();
                        return;
                    }
                    _ = tick.tick() => {}
                }
                if shared.events.tx.receiver_count() == 0 {
                    // Nobody listens; publish the current state once someone does.
                    last = 0;
                    continue;
                }
                let list = peer_list(&shared);
                let digest = peers_digest(&list);
                if digest != last {
                    last = digest;
                    shared.events.publish(EventKind::Peers, &list);
                }
            }
        }
        .instrument(span),
    );
}

/// What `GET /api/peers` answers.
pub(crate) fn peer_list(shared: &Shared) -> PeerList {
    let (active_view, passive_view) = shared.gossip.views();
    PeerList {
        peers: shared.peers(),
        active_view,
        passive_view,
    }
}

/// A digest of what the network view shows, without the times that change on every call.
fn peers_digest(list: &PeerList) -> u64 {
    let mut hasher = DefaultHasher::new();
    for peer in &list.peers {
        peer.node_id.as_bytes().hash(&mut hasher);
        peer.addresses.hash(&mut hasher);
        peer.connected.hash(&mut hasher);
        peer.direction.hash(&mut hasher);
        peer.failures.hash(&mut hasher);
        peer.view.hash(&mut hasher);
    }
    for id in list.active_view.iter().chain(&list.passive_view) {
        id.as_bytes().hash(&mut hasher);
    }
    list.active_view.len().hash(&mut hasher);
    // Never 0, which means "nothing published yet".
    hasher.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_gets_each_event_once_serialised() {
        let hub = EventHub::new();
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        hub.publish(EventKind::Typing, &serde_json::json!({ "room": "lobby" }));
        for rx in [&mut a, &mut b] {
            let event = rx.recv().await.unwrap();
            assert_eq!(event.kind, EventKind::Typing);
            assert_eq!(&*event.data, r#"{"room":"lobby"}"#);
        }
        // Without subscribers publishing is a no-op, not an error.
        drop((a, b));
        hub.publish(EventKind::Agents, &serde_json::json!({}));
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_instead_of_holding_memory() {
        let hub = EventHub::new();
        let mut slow = hub.subscribe();
        for i in 0..EVENT_QUEUE + 10 {
            hub.publish(EventKind::Chat, &i);
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
    }

    #[test]
    fn stream_slots_are_bounded_and_returned() {
        let hub = EventHub::new();
        let slots: Vec<_> = (0..MAX_EVENT_STREAMS)
            .map(|_| hub.stream_slot().unwrap())
            .collect();
        assert!(hub.stream_slot().is_none());
        drop(slots);
        assert!(hub.stream_slot().is_some());
    }

    #[test]
    fn event_names() {
        let names = [
            EventKind::Chat,
            EventKind::Typing,
            EventKind::Receipt,
            EventKind::Peers,
            EventKind::Agents,
        ]
        .map(EventKind::as_str);
        assert_eq!(names, ["chat", "typing", "receipt", "peers", "agents"]);
    }
}
