//! The gossip driver: one actor task owns the sans-IO [`Gossip`] core and moves its messages
//! over the QUIC transport.
//!
//! # On the wire
//!
//! Gossip travels on raw transport streams named [`GOSSIP_PROTOCOL`]: the sender of a message
//! opens **one long-lived stream per peer** and writes length-prefixed frames to it, so a
//! message costs its body plus 7 bytes (4 of frame length, 1 tag, 2 of kind), not a stream
//! per message. Each direction has its own stream; the receiving side only reads. A frame is
//! one of:
//!
//! - `0x00 kind:u16be body`: a gossip message, decoded with the core's strict codec;
//! - `0x01 count:u8 (node_id:[32] n:u8 (family:u8 ip:[4|16] port:u16be){n}){count}`: address
//!   hints.
//!
//! # Addresses
//!
//! HyParView's membership messages name peers by [`NodeId`] only, but a node can only dial a
//! peer it has an address for. Before a message that names peers (`ForwardJoin`, `Shuffle`,
//! `ShuffleReply`), the sender writes an address-hint frame on the same ordered stream with
//! the addresses it holds for each named peer (its own listen addresses for itself). The
//! receiver validates them (at most [`MAX_HINT_PEERS`] peers and [`MAX_HINT_ADDRS`] addresses
//! each; no port 0, unspecified or multicast address) and records them in an in-memory address
//! book of at most [`MAX_LEARNED_PEERS`] peers (least recently hinted evicted first) *before*
//! the message reaches the core, so a transmit the core then addresses to one of those peers
//! finds an address to dial. Hinted addresses are hearsay: they reach the peer table and the
//! store only once a dial to them succeeds (the connection records the peer at the address it
//! answered on), so a peer sending made-up hints can neither evict remembered peers nor make
//! the node write to its database. The gossip message formats themselves stay unchanged.
//!
//! # Bounds
//!
//! - **Outbound:** each peer has a queue of at most [`SEND_QUEUE_FRAMES`] frames and
//!   [`SEND_QUEUE_BYTES`] bytes. A message that does not fit is **dropped** (and counted):
//!   Plumtree's lazy announcements, grafts and anti-entropy recover lost broadcasts, and a
//!   slow peer only ever costs that much memory. A peer whose stream or dial fails has its
//!   queue dropped; if it is no longer connected the core is told ([`Gossip::peer_down`]).
//! - **Inbound:** a peer may have two gossip streams open at once (one, plus an old one while
//!   a connection is replaced); more are stopped. A frame declaring more than the transport's
//!   frame limit ends its stream; a frame's payload is only read once the inbound budget of
//!   [`INBOUND_BYTES`] (all peers together, held until the actor has handled the frame) has
//!   room for it, so a flood waits in QUIC flow control rather than in memory.
//! - Subscribers get a bounded channel each ([`SUBSCRIBER_QUEUE`]); one that falls behind
//!   misses deliveries rather than holding memory.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use dawn_crypto::SigningKey;
use dawn_gossip::{
    BroadcastError, Config as GossipConfig, ConfigError as GossipConfigError, Event, Gossip,
    GossipMessage, MessageId, MisbehaviourKind, SubscribeError, Topic, TopicError, Transmit,
};
use dawn_identity::NodeId;
use dawn_transport::{IncomingStream, RecvStream, Transport, TransportEvent, write_frame};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info_span, trace, warn};

use crate::node::Shared;
use crate::peers::now_unix_ms;

/// The transport protocol name of gossip streams.
pub const GOSSIP_PROTOCOL: &str = "dawn/gossip/1";

/// Most frames queued for one peer.
pub const SEND_QUEUE_FRAMES: usize = 256;

/// Most bytes queued for one peer.
pub const SEND_QUEUE_BYTES: usize = 4 << 20;

/// Most bytes of received frames waiting for the gossip actor, all peers together.
pub const INBOUND_BYTES: usize = 16 << 20;

/// Most peers named in one address-hint frame.
pub const MAX_HINT_PEERS: usize = 40;

/// Most addresses per peer in an address-hint frame.
pub const MAX_HINT_ADDRS: usize = 4;

/// Deliveries buffered per subscriber before it starts missing some.
pub const SUBSCRIBER_QUEUE: usize = 1024;

/// Most peers in the address book of hinted addresses.
pub const MAX_LEARNED_PEERS: usize = 1024;

/// Recent deliveries kept for `GET /api/gossip/{topic}`, all topics together.
pub const RECENT_DELIVERIES: usize = 64;

/// Frame tag of a gossip message.
/// Inbound frames the driver handles before it lets other tasks run.
const INBOUND_BATCH: u32 = 16;

const TAG_MESSAGE: u8 = 0x00;
/// Frame tag of address hints.
const TAG_HINTS: u8 = 0x01;

/// How long a sender waits for a dial before giving up on the peer.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Most peers with a send queue at once; past this, the idlest is dropped.
const MAX_SENDERS: usize = 512;

/// Pending application commands.
const COMMAND_QUEUE: usize = 64;

/// How long leaving waits for the goodbyes to be written before shutdown goes on.
const LEAVE_FLUSH: Duration = Duration::from_millis(250);

/// After the peers acknowledged the goodbyes, how long they get to read them before the
/// connections close (a close discards what a peer has received but not yet read).
const LEAVE_GRACE: Duration = Duration::from_millis(30);

/// A gossip operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GossipError {
    /// The topic name is invalid.
    #[error("invalid topic: {0}")]
    Topic(#[from] TopicError),
    /// The topic cannot be subscribed to.
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    /// The message cannot be broadcast.
    #[error(transparent)]
    Broadcast(#[from] BroadcastError),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    Stopped,
}

/// A broadcast message delivered to this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Delivery {
    /// The topic.
    pub topic: String,
    /// The node that signed and broadcast it.
    pub origin: NodeId,
    /// Its id (64 hex digits in JSON).
    #[serde(with = "message_id_serde")]
    pub message_id: MessageId,
    /// The payload.
    #[serde(with = "payload_serde")]
    pub payload: Bytes,
    /// Links it travelled from the origin.
    pub hops: u16,
    /// When the origin signed it (milliseconds since the Unix epoch, the origin's clock).
    pub timestamp_ms: u64,
    /// When it arrived here (milliseconds since the Unix epoch).
    pub received_unix_ms: u64,
}

/// Message ids appear in JSON as 64 lowercase hex digits.
pub(crate) mod message_id_serde {
    use dawn_gossip::{MESSAGE_ID_LEN, MessageId};
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(id: &MessageId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MessageId, D::Error> {
        let text = String::deserialize(d)?;
        let mut bytes = [0u8; MESSAGE_ID_LEN];
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if text.len() != MESSAGE_ID_LEN * 2 || !text.bytes().all(lower_hex) {
            return Err(D::Error::custom("a message id is 64 lowercase hex digits"));
        }
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(D::Error::custom)?;
            *byte = u8::from_str_radix(pair, 16).map_err(D::Error::custom)?;
        }
        Ok(MessageId::from_bytes(bytes))
    }
}

/// Payloads appear in JSON as UTF-8 text (lossy).
mod payload_serde {
    use bytes::Bytes;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(payload: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(payload))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        Ok(Bytes::from(String::deserialize(d)?))
    }
}

/// Deliveries on one topic, from [`Node::subscribe`](crate::Node::subscribe).
///
/// Bounded: a subscriber that falls more than [`SUBSCRIBER_QUEUE`] deliveries behind misses
/// the oldest ones ([`Subscription::missed`] counts them).
#[derive(Debug)]
pub struct Subscription {
    topic: Topic,
    rx: broadcast::Receiver<Delivery>,
    missed: u64,
}

impl Subscription {
    /// The next delivery, or `None` once the node has stopped.
    pub async fn recv(&mut self) -> Option<Delivery> {
        loop {
            match self.rx.recv().await {
                Ok(delivery) => return Some(delivery),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.missed = self.missed.saturating_add(n);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The topic.
    #[must_use]
    pub fn topic(&self) -> &str {
        self.topic.as_str()
    }

    /// Deliveries missed because this subscriber fell behind.
    #[must_use]
    pub const fn missed(&self) -> u64 {
        self.missed
    }
}

/// Counters of the gossip driver, in `GET /api/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GossipStats {
    /// Messages delivered to this node.
    pub delivered: u64,
    /// Messages this node broadcast.
    pub broadcasts: u64,
    /// Frames received from peers.
    pub frames_received: u64,
    /// Frames written to peers.
    pub frames_sent: u64,
    /// Frames dropped because a peer's send queue was full.
    pub send_dropped: u64,
    /// Misbehaviour seen from peers (malformed frames, bad signatures, replays, floods).
    pub misbehaviours: u64,
    /// Peer addresses learned from address hints.
    pub addresses_learned: u64,
    /// Neighbours lost without a goodbye (their connection or keepalives failed), as the
    /// gossip core counts them.
    #[serde(default)]
    pub neighbor_failures: u64,
    /// Bytes of gossip frames received from peers (frame bodies, without the length prefix
    /// and QUIC overhead).
    #[serde(default)]
    pub bytes_received: u64,
    /// Bytes of gossip frames written to peers (frame bodies, as `bytes_received`).
    #[serde(default)]
    pub bytes_sent: u64,
    /// Payload-carrying messages received that were already known, as the gossip core
    /// counts them.
    #[serde(default)]
    pub duplicates: u64,
    /// Messages dropped by the gossip core's inbound rate limit.
    #[serde(default)]
    pub rate_limited: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    broadcasts: AtomicU64,
    frames_received: AtomicU64,
    frames_sent: AtomicU64,
    send_dropped: AtomicU64,
    misbehaviours: AtomicU64,
    addresses_learned: AtomicU64,
    neighbor_failures: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    duplicates: AtomicU64,
    rate_limited: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn add(counter: &AtomicU64, bytes: usize) {
    counter.fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Which HyParView view a peer is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum View {
    /// A neighbour: broadcasts travel over the link.
    Active,
    /// A candidate to replace a failed neighbour.
    Passive,
}

impl View {
    /// `"active"` or `"passive"`, as in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Passive => "passive",
        }
    }
}

/// Addresses learned from hints, bounded, least recently hinted evicted first.
#[derive(Debug, Default)]
struct AddressBook {
    peers: HashMap<NodeId, (u64, Vec<SocketAddr>)>,
    next: u64,
}

impl AddressBook {
    /// Records `addrs` for `id`; returns whether any was new.
    fn learn(&mut self, id: NodeId, addrs: &[SocketAddr]) -> bool {
        self.next = self.next.wrapping_add(1);
        let stamp = self.next;
        if !self.peers.contains_key(&id)
            && self.peers.len() >= MAX_LEARNED_PEERS
            && let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(id, _)| *id)
        {
            self.peers.remove(&oldest);
        }
        let (at, known) = self.peers.entry(id).or_default();
        *at = stamp;
        let mut new = false;
        for addr in addrs.iter().rev() {
            if !known.contains(addr) {
                known.insert(0, *addr);
                new = true;
            }
        }
        known.truncate(MAX_HINT_ADDRS);
        new
    }

    fn get(&self, id: &NodeId) -> &[SocketAddr] {
        self.peers
            .get(id)
            .map_or(&[], |(_, addrs)| addrs.as_slice())
    }
}

#[derive(Debug, Default)]
struct Views {
    active: Vec<NodeId>,
    passive: Vec<NodeId>,
}

/// What the HTTP API and the [`Node`](crate::Node) read of the gossip actor.
#[derive(Debug)]
pub(crate) struct GossipShared {
    commands: mpsc::Sender<Command>,
    views: Mutex<Views>,
    recent: Mutex<VecDeque<Delivery>>,
    book: Mutex<AddressBook>,
    counters: Counters,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GossipShared {
    pub(crate) fn new() -> (Self, mpsc::Receiver<Command>) {
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let shared = Self {
            commands,
            views: Mutex::new(Views::default()),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_DELIVERIES)),
            book: Mutex::new(AddressBook::default()),
            counters: Counters::default(),
        };
        (shared, rx)
    }

    /// The view `peer` is in, if any.
    pub(crate) fn view_of(&self, peer: &NodeId) -> Option<View> {
        let views = lock(&self.views);
        if views.active.contains(peer) {
            Some(View::Active)
        } else if views.passive.contains(peer) {
            Some(View::Passive)
        } else {
            None
        }
    }

    /// Where to dial `peer`: the peer table's addresses, then hinted ones.
    fn dial_addrs(&self, table: &[SocketAddr], peer: &NodeId) -> Vec<SocketAddr> {
        let mut addrs = table.to_vec();
        for addr in lock(&self.book).get(peer) {
            if !addrs.contains(addr) {
                addrs.push(*addr);
            }
        }
        addrs
    }

    /// The active and passive views.
    pub(crate) fn views(&self) -> (Vec<NodeId>, Vec<NodeId>) {
        let views = lock(&self.views);
        (views.active.clone(), views.passive.clone())
    }

    pub(crate) fn stats(&self) -> GossipStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GossipStats {
            delivered: get(&c.delivered),
            broadcasts: get(&c.broadcasts),
            frames_received: get(&c.frames_received),
            frames_sent: get(&c.frames_sent),
            send_dropped: get(&c.send_dropped),
            misbehaviours: get(&c.misbehaviours),
            addresses_learned: get(&c.addresses_learned),
            neighbor_failures: get(&c.neighbor_failures),
            bytes_received: get(&c.bytes_received),
            bytes_sent: get(&c.bytes_sent),
            duplicates: get(&c.duplicates),
            rate_limited: get(&c.rate_limited),
        }
    }

    /// Recent deliveries on `topic`, oldest first.
    pub(crate) fn recent(&self, topic: &str) -> Vec<Delivery> {
        lock(&self.recent)
            .iter()
            .filter(|d| d.topic == topic)
            .cloned()
            .collect()
    }

    pub(crate) async fn subscribe(&self, topic: &str) -> Result<Subscription, GossipError> {
        let topic = Topic::new(topic)?;
        let (reply, rx) = oneshot::channel();
        self.command(Command::Subscribe {
            topic: topic.clone(),
            reply,
        })
        .await?;
        let rx = rx.await.map_err(|_| GossipError::Stopped)??;
        Ok(Subscription {
            topic,
            rx,
            missed: 0,
        })
    }

    pub(crate) async fn broadcast(
        &self,
        topic: &str,
        payload: Bytes,
    ) -> Result<MessageId, GossipError> {
        let topic = Topic::new(topic)?;
        let (reply, rx) = oneshot::channel();
        self.command(Command::Broadcast {
            topic,
            payload,
            reply,
        })
        .await?;
        rx.await.map_err(|_| GossipError::Stopped)?
    }

    /// Leaves the overlay before shutdown: neighbours are told not to keep this node as a
    /// passive peer. Best effort, bounded by [`LEAVE_FLUSH`] (plus a little).
    pub(crate) async fn leave(&self) {
        let (reply, rx) = oneshot::channel();
        if self.command(Command::Leave { reply }).await.is_ok() {
            let _ = tokio::time::timeout(LEAVE_FLUSH * 2, rx).await;
        }
    }

    async fn command(&self, command: Command) -> Result<(), GossipError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| GossipError::Stopped)
    }
}

/// An application request for the actor.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe {
        topic: Topic,
        reply: oneshot::Sender<Result<broadcast::Receiver<Delivery>, GossipError>>,
    },
    Broadcast {
        topic: Topic,
        payload: Bytes,
        reply: oneshot::Sender<Result<MessageId, GossipError>>,
    },
    /// Say goodbye to every neighbour; answered once the goodbyes are written (or after
    /// [`LEAVE_FLUSH`]).
    Leave { reply: oneshot::Sender<()> },
}

/// A frame read from a peer, holding its share of the inbound byte budget.
#[derive(Debug)]
struct Inbound {
    from: NodeId,
    frame: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// A sender task stopped.
#[derive(Debug)]
struct SendFailed {
    peer: NodeId,
    generation: u64,
}

#[derive(Debug)]
struct PeerSender {
    tx: mpsc::Sender<(Bytes, OwnedSemaphorePermit)>,
    budget: Arc<Semaphore>,
    generation: u64,
    last_used: Instant,
}

/// Everything the actor needs from the node.
pub(crate) struct GossipContext {
    pub(crate) key: SigningKey,
    pub(crate) config: GossipConfig,
    pub(crate) transport: Transport,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) events: broadcast::Receiver<TransportEvent>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) inbound: GossipInbound,
    pub(crate) join: Vec<NodeId>,
}

/// Frames read from peers' gossip streams, waiting for the actor.
pub(crate) struct GossipInbound(mpsc::Receiver<Inbound>);

/// Registers the gossip stream handler. Called right after the transport is bound, before
/// anything can connect, so that no peer's stream is refused as an unknown protocol; frames
/// wait in the returned queue until [`start`] runs the actor.
pub(crate) fn listen(transport: &Transport, cancel: CancellationToken) -> GossipInbound {
    let (inbound_tx, inbound_rx) = mpsc::channel(SEND_QUEUE_FRAMES * 4);
    let budget = Arc::new(Semaphore::new(INBOUND_BYTES));
    let max_frame = transport.config().max_frame_len;
    let open = Arc::new(Mutex::new(HashMap::new()));
    let registered = transport.register_stream_handler(GOSSIP_PROTOCOL, move |stream| {
        read_stream(
            stream,
            inbound_tx.clone(),
            Arc::clone(&budget),
            Arc::clone(&open),
            max_frame,
            cancel.clone(),
        )
    });
    if let Err(error) = registered {
        warn!(%error, "gossip stream handler already registered");
    }
    GossipInbound(inbound_rx)
}

/// Registers the gossip stream handler and starts the actor.
///
/// # Errors
/// [`GossipConfigError`] if the configuration is invalid.
pub(crate) fn start(context: GossipContext) -> Result<(), GossipConfigError> {
    let mut seed = [0u8; 8];
    if dawn_crypto::fill_random(&mut seed).is_err() {
        warn!("no randomness for the gossip seed; using the clock");
        seed = now_unix_ms().to_le_bytes();
    }
    let now = Instant::now();
    let gossip = Gossip::new(
        context.key,
        context.config,
        u64::from_le_bytes(seed),
        now,
        now_unix_ms(),
    )?;
    let max_frame = context.transport.config().max_frame_len;
    let (failed_tx, failed_rx) = mpsc::unbounded_channel();
    let actor = Actor {
        gossip,
        transport: context.transport,
        shared: context.shared,
        cancel: context.cancel,
        tasks: context.tasks.clone(),
        senders: HashMap::new(),
        next_generation: 0,
        failed_tx,
        topics: HashMap::new(),
        max_frame,
    };
    context.tasks.spawn(
        actor
            .run(
                context.events,
                context.commands,
                context.inbound.0,
                failed_rx,
                context.join,
            )
            .instrument(info_span!(parent: None, "dawn.node.gossip")),
    );
    Ok(())
}

/// Inbound gossip streams open per peer; more are refused. A peer needs one (and briefly two
/// while a connection is replaced).
const MAX_INBOUND_STREAMS_PER_PEER: usize = 2;

/// Counts a peer's open inbound gossip streams; the slot is released on drop.
struct StreamSlot {
    open: Arc<Mutex<HashMap<NodeId, usize>>>,
    peer: NodeId,
}

impl StreamSlot {
    fn take(open: &Arc<Mutex<HashMap<NodeId, usize>>>, peer: NodeId) -> Option<Self> {
        let mut map = lock(open);
        let count = map.entry(peer).or_default();
        if *count >= MAX_INBOUND_STREAMS_PER_PEER {
            return None;
        }
        *count += 1;
        Some(Self {
            open: Arc::clone(open),
            peer,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.open);
        if let Some(count) = map.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

/// Why an inbound frame could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The declared length is over the limit.
    #[error(transparent)]
    Frame(#[from] dawn_wire::FrameError),
    /// The stream failed or ended inside a frame.
    #[error("{0}")]
    Stream(String),
    /// The node is stopping.
    #[error("stopping")]
    Stopped,
}

/// Reads one frame: the header first, then the payload only once the inbound budget has room
/// for it, so a flood of large frames waits instead of being buffered.
async fn read_budgeted(
    recv: &mut RecvStream,
    budget: &Arc<Semaphore>,
    max_frame: usize,
) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, ReadError> {
    let mut header = [0u8; dawn_wire::FRAME_HEADER_LEN];
    let mut filled = 0;
    while filled < header.len() {
        let rest = header.get_mut(filled..).unwrap_or_default();
        match recv.read(rest).await {
            Ok(Some(n)) => filled += n,
            Ok(None) if filled == 0 => return Ok(None),
            Ok(None) => return Err(ReadError::Stream("stream ended inside a frame".into())),
            Err(error) => return Err(ReadError::Stream(error.to_string())),
        }
    }
    let len = dawn_wire::decode_frame_header(header, max_frame)?;
    let cost = u32::try_from(len.max(1)).unwrap_or(u32::MAX);
    let permit = Arc::clone(budget)
        .acquire_many_owned(cost)
        .await
        .map_err(|_| ReadError::Stopped)?;
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload)
        .await
        .map_err(|error| ReadError::Stream(error.to_string()))?;
    Ok(Some((Bytes::from(payload), permit)))
}

/// Reads frames from one inbound gossip stream into the actor's queue.
async fn read_stream(
    stream: IncomingStream,
    inbound: mpsc::Sender<Inbound>,
    budget: Arc<Semaphore>,
    open: Arc<Mutex<HashMap<NodeId, usize>>>,
    max_frame: usize,
    cancel: CancellationToken,
) {
    let from = stream.peer();
    let (_send, mut recv) = stream.into_parts();
    let Some(_slot) = StreamSlot::take(&open, from) else {
        debug!(peer = %from.fmt_short(), "too many gossip streams from one peer; refused");
        let _ = recv.stop(dawn_transport::StreamCode::Unavailable.varint());
        return;
    };
    loop {
        let frame = tokio::select! {
            () = cancel.cancelled() => return,
            frame = read_budgeted(&mut recv, &budget, max_frame) => frame,
        };
        let (frame, permit) = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error) => {
                debug!(peer = %from.fmt_short(), %error, "gossip stream ended");
                return;
            }
        };
        let inbound_frame = Inbound {
            from,
            frame,
            _permit: permit,
        };
        if inbound.send(inbound_frame).await.is_err() {
            return;
        }
    }
}

/// Writes one peer's queued frames to a stream of its own, dialling the peer if needed.
async fn send_loop(
    transport: Transport,
    shared: Arc<Shared>,
    peer: NodeId,
    mut rx: mpsc::Receiver<(Bytes, OwnedSemaphorePermit)>,
    max_frame: usize,
    cancel: CancellationToken,
) {
    let connection = match transport.connection(&peer) {
        Some(connection) => connection,
        None => {
            let known = shared.table().addresses(&peer);
            let addrs = shared.gossip.dial_addrs(&known, &peer);
            if addrs.is_empty() {
                debug!("no address to dial");
                return;
            }
            // Not to a peer the trust policy refuses, nor while its circuit breaker is open.
            if let Err(blocked) = shared.security.dial_allowed(&peer) {
                debug!(?blocked, "not dialling the peer");
                return;
            }
            let dial = tokio::time::timeout(DIAL_TIMEOUT, transport.connect(peer, &addrs));
            let result = tokio::select! {
                () = cancel.cancelled() => return,
                result = dial => result,
            };
            shared
                .security
                .record_outcome(&peer, matches!(result, Ok(Ok(_))));
            match result {
                Ok(Ok(connection)) => connection,
                Ok(Err(error)) => {
                    debug!(%error, "dial failed");
                    return;
                }
                Err(_) => {
                    debug!("dial timed out");
                    return;
                }
            }
        }
    };
    let opened = tokio::select! {
        () = cancel.cancelled() => return,
        opened = connection.open_stream(GOSSIP_PROTOCOL) => opened,
    };
    let mut send = match opened {
        Ok((send, _recv)) => send,
        Err(error) => {
            debug!(%error, "cannot open a gossip stream");
            return;
        }
    };
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => None,
            next = rx.recv() => next,
        };
        let Some((frame, _permit)) = next else {
            // The queue was closed (the peer left the table, or the node is leaving): finish
            // the stream and give the peer a moment to acknowledge what was written.
            if send.finish().is_ok() && !cancel.is_cancelled() {
                let _ = tokio::time::timeout(LEAVE_FLUSH, send.stopped()).await;
            }
            return;
        };
        if let Err(error) = write_frame(&mut send, &frame, max_frame).await {
            debug!(%error, "gossip stream write failed");
            return;
        }
        bump(&shared.gossip.counters.frames_sent);
        add(&shared.gossip.counters.bytes_sent, frame.len());
    }
}

struct Actor {
    gossip: Gossip,
    transport: Transport,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    senders: HashMap<NodeId, PeerSender>,
    next_generation: u64,
    failed_tx: mpsc::UnboundedSender<SendFailed>,
    topics: HashMap<Topic, broadcast::Sender<Delivery>>,
    max_frame: usize,
}

impl Actor {
    async fn run(
        mut self,
        mut events: broadcast::Receiver<TransportEvent>,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut failed: mpsc::UnboundedReceiver<SendFailed>,
        join: Vec<NodeId>,
    ) {
        let now = Instant::now();
        for connection in self.transport.connections() {
            self.gossip.peer_up(now, connection.peer());
        }
        if !join.is_empty() {
            self.gossip.join(now, &join);
        }
        self.drain().await;
        let mut handled: u32 = 0;
        loop {
            let deadline = self.gossip.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.cancel.cancelled() => break,
                () = sleep => self.gossip.handle_timeout(Instant::now()),
                Some(command) = commands.recv() => match command {
                    Command::Leave { reply } => {
                        self.leave(&mut failed).await;
                        let _ = reply.send(());
                    }
                    command => self.command(command),
                },
                Some(frame) = inbound.recv() => {
                    self.inbound(frame).await;
                    // Each frame may cost a signature check: let other tasks (an honest
                    // peer's call on the same worker) run between short batches, rather than
                    // after the runtime's budget of 128.
                    handled = handled.wrapping_add(1);
                    if handled.is_multiple_of(INBOUND_BATCH) {
                        tokio::task::yield_now().await;
                    }
                }
                Some(stop) = failed.recv() => self.send_failed(stop),
                event = events.recv() => match event {
                    Ok(TransportEvent::Connected(connection)) => {
                        self.gossip.peer_up(Instant::now(), connection.peer());
                    }
                    Ok(TransportEvent::Disconnected { peer, .. }) => {
                        // Frames the peer sent before the close (a goodbye) come first.
                        while let Ok(frame) = inbound.try_recv() {
                            self.inbound(frame).await;
                        }
                        self.peer_gone(peer);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let now = Instant::now();
                        for connection in self.transport.connections() {
                            self.gossip.peer_up(now, connection.peer());
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
            self.drain().await;
        }
        debug!("gossip stopped");
    }

    /// Sends the goodbyes, closes every send queue and waits (at most [`LEAVE_FLUSH`]) until
    /// each stream is finished and its data acknowledged by the peer, so the goodbye arrives
    /// before the connection closes.
    async fn leave(&mut self, failed: &mut mpsc::UnboundedReceiver<SendFailed>) {
        self.gossip.leave(Instant::now());
        self.drain().await;
        let mut waiting: Vec<u64> = self.senders.drain().map(|(_, s)| s.generation).collect();
        if waiting.is_empty() {
            return;
        }
        let deadline = tokio::time::Instant::now() + LEAVE_FLUSH;
        while !waiting.is_empty() {
            match tokio::time::timeout_at(deadline, failed.recv()).await {
                Ok(Some(stop)) => waiting.retain(|g| *g != stop.generation),
                _ => break,
            }
        }
        tokio::time::sleep(LEAVE_GRACE).await;
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Leave { reply } => {
                self.gossip.leave(now);
                let _ = reply.send(());
            }
            Command::Subscribe { topic, reply } => {
                let result = self.gossip.subscribe(now, topic.clone()).map(|_| {
                    self.topics
                        .entry(topic)
                        .or_insert_with(|| broadcast::channel(SUBSCRIBER_QUEUE).0)
                        .subscribe()
                });
                let _ = reply.send(result.map_err(GossipError::from));
            }
            Command::Broadcast {
                topic,
                payload,
                reply,
            } => {
                let result = self.gossip.broadcast(now, &topic, payload);
                if result.is_ok() {
                    bump(&self.shared.gossip.counters.broadcasts);
                }
                let _ = reply.send(result.map_err(GossipError::from));
            }
        }
    }

    async fn inbound(&mut self, inbound: Inbound) {
        bump(&self.shared.gossip.counters.frames_received);
        add(
            &self.shared.gossip.counters.bytes_received,
            inbound.frame.len(),
        );
        // Each peer's messages/s and bytes/s limits; a persistent flood costs trust.
        if !self.shared.security.admit_gossip(
            &inbound.from,
            inbound.frame.len(),
            crate::metrics::MessageKind::Gossip,
        ) {
            return;
        }
        let from = inbound.from;
        let frame = &inbound.frame;
        match frame.first() {
            Some(&TAG_MESSAGE) => {
                let (Some(&hi), Some(&lo)) = (frame.get(1), frame.get(2)) else {
                    self.malformed(from, "short message frame");
                    return;
                };
                let message = dawn_wire::Message::Protocol {
                    kind: u16::from_be_bytes([hi, lo]),
                    payload: frame.slice(3..),
                };
                if let Err(error) = self.gossip.handle_wire(Instant::now(), from, &message) {
                    debug!(peer = %from.fmt_short(), %error, "undecodable gossip message");
                }
            }
            Some(&TAG_HINTS) => match decode_hints(frame.get(1..).unwrap_or_default()) {
                Ok(hints) => self.learn(hints),
                Err(reason) => self.malformed(from, reason),
            },
            _ => self.malformed(from, "unknown frame tag"),
        }
    }

    fn malformed(&mut self, from: NodeId, reason: &str) {
        bump(&self.shared.gossip.counters.misbehaviours);
        warn!(peer = %from.fmt_short(), reason, "malformed gossip frame");
        self.shared.security.malformed(&from);
    }

    /// Records hinted addresses in the address book.
    fn learn(&mut self, hints: Vec<(NodeId, Vec<SocketAddr>)>) {
        let mut book = lock(&self.shared.gossip.book);
        for (id, addrs) in hints {
            if id != self.shared.node_id && book.learn(id, &addrs) {
                bump(&self.shared.gossip.counters.addresses_learned);
            }
        }
    }

    fn send_failed(&mut self, stop: SendFailed) {
        let current = self
            .senders
            .get(&stop.peer)
            .is_some_and(|s| s.generation == stop.generation);
        if current {
            self.senders.remove(&stop.peer);
            if self.transport.connection(&stop.peer).is_none() {
                self.gossip.peer_down(Instant::now(), stop.peer);
            }
        }
    }

    fn peer_gone(&mut self, peer: NodeId) {
        if self.transport.connection(&peer).is_none() {
            self.senders.remove(&peer);
            self.gossip.peer_down(Instant::now(), peer);
        }
    }

    /// Sends every transmit and handles every event the core has queued.
    async fn drain(&mut self) {
        while let Some(transmit) = self.gossip.poll_transmit() {
            self.transmit(transmit);
        }
        while let Some(event) = self.gossip.poll_event() {
            self.event(event).await;
        }
        let core = self.gossip.stats();
        let counters = &self.shared.gossip.counters;
        counters
            .neighbor_failures
            .store(core.neighbor_failures, Ordering::Relaxed);
        counters
            .duplicates
            .store(core.duplicates, Ordering::Relaxed);
        counters
            .rate_limited
            .store(core.rate_limited, Ordering::Relaxed);
        let mut views = lock(&self.shared.gossip.views);
        views.active = self.gossip.active_view();
        views.passive = self.gossip.passive_view().to_vec();
    }

    fn transmit(&mut self, transmit: Transmit) {
        let Transmit { to, message } = transmit;
        let body = match message.encode_body() {
            Ok(body) => body,
            Err(error) => {
                warn!(%error, "cannot encode a gossip message");
                return;
            }
        };
        let named = named_peers(&message);
        let hints = if named.is_empty() {
            None
        } else {
            let own = self.shared.listen_addrs.clone();
            let me = self.shared.node_id;
            let table = self.shared.table();
            let hints: Vec<(NodeId, Vec<SocketAddr>)> = named
                .into_iter()
                .filter(|id| *id != to)
                .map(|id| {
                    let addrs = if id == me {
                        own.clone()
                    } else {
                        self.shared.gossip.dial_addrs(&table.addresses(&id), &id)
                    };
                    (id, valid_addrs(&addrs))
                })
                .filter(|(_, addrs)| !addrs.is_empty())
                .take(MAX_HINT_PEERS)
                .collect();
            drop(table);
            (!hints.is_empty()).then(|| encode_hints(&hints))
        };
        let mut frame = BytesMut::with_capacity(3 + body.len());
        frame.put_u8(TAG_MESSAGE);
        frame.put_u16(message.kind());
        frame.put_slice(&body);
        let frame = frame.freeze();
        if frame.len() > self.max_frame {
            warn!(
                len = frame.len(),
                "gossip message larger than a frame; dropped"
            );
            return;
        }
        if let Some(hints) = hints {
            self.enqueue(to, hints);
        }
        self.enqueue(to, frame);
    }

    /// Queues `frame` for `to`, starting its sender if it has none; drops it if the queue is
    /// full.
    fn enqueue(&mut self, to: NodeId, frame: Bytes) {
        if !self.senders.contains_key(&to) {
            self.spawn_sender(to);
        }
        let Some(sender) = self.senders.get_mut(&to) else {
            return;
        };
        sender.last_used = Instant::now();
        let cost = u32::try_from(frame.len().max(1)).unwrap_or(u32::MAX);
        let permit = match Arc::clone(&sender.budget).try_acquire_many_owned(cost) {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                self.dropped(to);
                return;
            }
        };
        match sender.tx.try_send((frame, permit)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.dropped(to),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // The sender stopped; its failure report follows and resets the peer.
                self.dropped(to);
            }
        }
    }

    fn dropped(&self, to: NodeId) {
        bump(&self.shared.gossip.counters.send_dropped);
        trace!(peer = %to.fmt_short(), "send queue full; gossip frame dropped");
    }

    fn spawn_sender(&mut self, to: NodeId) {
        if self.senders.len() >= MAX_SENDERS
            && let Some(idlest) = self
                .senders
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id)
        {
            self.senders.remove(&idlest);
        }
        let (tx, rx) = mpsc::channel(SEND_QUEUE_FRAMES);
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let failed = self.failed_tx.clone();
        let transport = self.transport.clone();
        let shared = Arc::clone(&self.shared);
        let cancel = self.cancel.clone();
        let max_frame = self.max_frame;
        let span = info_span!(parent: None, "dawn.node.gossip.send", peer = %to.fmt_short());
        self.tasks.spawn(
            async move {
                send_loop(transport, shared, to, rx, max_frame, cancel).await;
                let _ = failed.send(SendFailed {
                    peer: to,
                    generation,
                });
            }
            .instrument(span),
        );
        self.senders.insert(
            to,
            PeerSender {
                tx,
                budget: Arc::new(Semaphore::new(SEND_QUEUE_BYTES)),
                generation,
                last_used: Instant::now(),
            },
        );
    }

    async fn event(&mut self, event: Event) {
        match event {
            Event::Delivered {
                topic,
                origin,
                message_id,
                payload,
                hops,
                timestamp_ms,
            } => {
                bump(&self.shared.gossip.counters.delivered);
                let delivery = Delivery {
                    topic: topic.as_str().to_owned(),
                    origin,
                    message_id,
                    payload,
                    hops,
                    timestamp_ms,
                    received_unix_ms: now_unix_ms(),
                };
                {
                    let mut recent = lock(&self.shared.gossip.recent);
                    if recent.len() >= RECENT_DELIVERIES {
                        recent.pop_front();
                    }
                    recent.push_back(delivery.clone());
                }
                if let Some(tx) = self.topics.get(&topic) {
                    let _ = tx.send(delivery);
                }
            }
            Event::NeighborUp(peer) => debug!(peer = %peer.fmt_short(), "neighbour up"),
            Event::NeighborDown(peer) => debug!(peer = %peer.fmt_short(), "neighbour down"),
            Event::Misbehaviour { peer, kind } => {
                bump(&self.shared.gossip.counters.misbehaviours);
                // A trust penalty; a peer that falls to Untrusted is disconnected.
                self.shared.security.misbehaviour(&peer, kind);
                let kind = misbehaviour_name(kind);
                warn!(peer = %peer.fmt_short(), kind, "gossip misbehaviour");
            }
            _ => {}
        }
    }
}

fn misbehaviour_name(kind: MisbehaviourKind) -> &'static str {
    match kind {
        MisbehaviourKind::Malformed => "malformed",
        MisbehaviourKind::InvalidSignature => "invalid_signature",
        MisbehaviourKind::Replay => "replay",
        MisbehaviourKind::Stale => "stale",
        MisbehaviourKind::Future => "future",
        MisbehaviourKind::Flooding => "flooding",
        _ => "other",
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The peers a membership message names, whose addresses its receiver may need.
fn named_peers(message: &GossipMessage) -> Vec<NodeId> {
    match message {
        GossipMessage::ForwardJoin { joiner, .. } => vec![*joiner],
        GossipMessage::Shuffle { origin, nodes, .. } => {
            let mut ids = Vec::with_capacity(nodes.len() + 1);
            ids.push(*origin);
            ids.extend(nodes.iter().filter(|n| *n != origin).copied());
            ids
        }
        GossipMessage::ShuffleReply { nodes } => nodes.clone(),
        _ => Vec::new(),
    }
}

/// Whether an address may be dialled: a real port, not unspecified, not multicast.
fn dialable(addr: &SocketAddr) -> bool {
    addr.port() != 0 && !addr.ip().is_unspecified() && !addr.ip().is_multicast()
}

fn valid_addrs(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    addrs
        .iter()
        .copied()
        .filter(dialable)
        .take(MAX_HINT_ADDRS)
        .collect()
}

/// Encodes an address-hint frame (tag included). At most [`MAX_HINT_PEERS`] peers and
/// [`MAX_HINT_ADDRS`] addresses each are written.
fn encode_hints(hints: &[(NodeId, Vec<SocketAddr>)]) -> Bytes {
    let hints = hints
        .get(..hints.len().min(MAX_HINT_PEERS))
        .unwrap_or_default();
    let mut out = BytesMut::with_capacity(2 + hints.len() * 60);
    out.put_u8(TAG_HINTS);
    out.put_u8(u8::try_from(hints.len()).unwrap_or(u8::MAX));
    for (id, addrs) in hints {
        let addrs = addrs
            .get(..addrs.len().min(MAX_HINT_ADDRS))
            .unwrap_or_default();
        out.put_slice(id.as_bytes());
        out.put_u8(u8::try_from(addrs.len()).unwrap_or(u8::MAX));
        for addr in addrs {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    out.put_u8(4);
                    out.put_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    out.put_u8(6);
                    out.put_slice(&ip.octets());
                }
            }
            out.put_u16(addr.port());
        }
    }
    out.freeze()
}

/// Decodes the body of an address-hint frame (after the tag), strictly: counts within the
/// limits, valid node ids, dialable addresses, no trailing bytes.
fn decode_hints(mut input: &[u8]) -> Result<Vec<(NodeId, Vec<SocketAddr>)>, &'static str> {
    fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], &'static str> {
        if input.len() < n {
            return Err("truncated address hints");
        }
        let (head, rest) = input.split_at(n);
        *input = rest;
        Ok(head)
    }
    fn byte(input: &mut &[u8]) -> Result<u8, &'static str> {
        take(input, 1).map(|b| b.first().copied().unwrap_or_default())
    }
    let count = usize::from(byte(&mut input)?);
    if count == 0 || count > MAX_HINT_PEERS {
        return Err("address hint count out of range");
    }
    let mut hints = Vec::with_capacity(count);
    for _ in 0..count {
        let id: [u8; 32] = take(&mut input, 32)?
            .try_into()
            .map_err(|_| "truncated address hints")?;
        let id = NodeId::from_bytes(&id).map_err(|_| "invalid node id in address hints")?;
        let n = usize::from(byte(&mut input)?);
        if n == 0 || n > MAX_HINT_ADDRS {
            return Err("address count out of range");
        }
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let ip = match byte(&mut input)? {
                4 => {
                    let o: [u8; 4] = take(&mut input, 4)?
                        .try_into()
                        .map_err(|_| "truncated address hints")?;
                    IpAddr::V4(Ipv4Addr::from(o))
                }
                6 => {
                    let o: [u8; 16] = take(&mut input, 16)?
                        .try_into()
                        .map_err(|_| "truncated address hints")?;
                    IpAddr::V6(Ipv6Addr::from(o))
                }
                _ => return Err("unknown address family"),
            };
            let port = take(&mut input, 2)?;
            let port = u16::from_be_bytes([
                port.first().copied().unwrap_or_default(),
                port.get(1).copied().unwrap_or_default(),
            ]);
            let addr = SocketAddr::new(ip, port);
            if !dialable(&addr) {
                return Err("undialable address in hints");
            }
            addrs.push(addr);
        }
        hints.push((id, addrs));
    }
    if !input.is_empty() {
        return Err("trailing bytes after address hints");
    }
    Ok(hints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(seed: u8) -> NodeId {
        SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
    }

    #[test]
    fn hints_round_trip() {
        let hints = vec![
            (node(1), vec!["127.0.0.1:4000".parse().unwrap()]),
            (
                node(2),
                vec!["[::1]:5000".parse().unwrap(), "10.0.0.2:7".parse().unwrap()],
            ),
        ];
        let frame = encode_hints(&hints);
        assert_eq!(frame.first(), Some(&TAG_HINTS));
        assert_eq!(decode_hints(&frame[1..]).unwrap(), hints);
    }

    #[test]
    fn bad_hints_are_refused() {
        let good = encode_hints(&[(node(1), vec!["127.0.0.1:4000".parse().unwrap()])]);
        let body = &good[1..];
        // Every truncation fails.
        for len in 0..body.len() {
            assert!(decode_hints(&body[..len]).is_err(), "len {len}");
        }
        // Trailing bytes.
        let mut long = body.to_vec();
        long.push(0);
        assert_eq!(
            decode_hints(&long),
            Err("trailing bytes after address hints")
        );
        // Undialable addresses.
        for addr in ["0.0.0.0:1", "127.0.0.1:0", "224.0.0.1:9"] {
            let mut raw = body.to_vec();
            let a: SocketAddr = addr.parse().unwrap();
            let IpAddr::V4(ip) = a.ip() else { panic!() };
            raw[35..39].copy_from_slice(&ip.octets());
            raw[39..41].copy_from_slice(&a.port().to_be_bytes());
            assert_eq!(
                decode_hints(&raw),
                Err("undialable address in hints"),
                "{addr}"
            );
        }
        // Counts out of range.
        assert!(decode_hints(&[0]).is_err());
        assert!(decode_hints(&[u8::try_from(MAX_HINT_PEERS + 1).unwrap()]).is_err());
        let mut many = body.to_vec();
        many[33] = u8::try_from(MAX_HINT_ADDRS + 1).unwrap();
        assert_eq!(decode_hints(&many), Err("address count out of range"));
        // Unknown family.
        let mut family = body.to_vec();
        family[34] = 5;
        assert_eq!(decode_hints(&family), Err("unknown address family"));
    }

    #[test]
    fn the_address_book_is_bounded_and_forgets_the_least_recent() {
        let mut book = AddressBook::default();
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let id = |i: usize| -> NodeId {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SigningKey::from_bytes(&seed).verifying_key().into()
        };
        let first = id(0);
        assert!(book.learn(first, &[addr(1)]));
        assert!(!book.learn(first, &[addr(1)]), "nothing new");
        for i in 1..MAX_LEARNED_PEERS {
            assert!(book.learn(id(i), &[addr(2)]));
        }
        // Hinting the first again makes it the most recent; the next new peer evicts id(1).
        assert!(!book.learn(first, &[addr(1)]));
        assert!(book.learn(id(MAX_LEARNED_PEERS), &[addr(3)]));
        assert_eq!(book.peers.len(), MAX_LEARNED_PEERS);
        assert_eq!(book.get(&first), [addr(1)]);
        assert!(book.get(&id(1)).is_empty());
        // At most MAX_HINT_ADDRS per peer, newest first.
        let many: Vec<SocketAddr> = (10..20).map(addr).collect();
        book.learn(first, &many);
        assert_eq!(book.get(&first).len(), MAX_HINT_ADDRS);
        assert_eq!(book.get(&first)[0], addr(10));
    }

    #[tokio::test]
    async fn a_slow_peer_costs_a_bounded_queue_and_the_excess_is_dropped() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let transport = Transport::bind(
            key.clone(),
            loopback,
            dawn_transport::TransportConfig::default(),
        )
        .unwrap();
        let me = transport.node_id();
        let (gossip_shared, _commands) = GossipShared::new();
        let security = crate::security::Security::for_tests(key.clone()).await;
        let shared = Arc::new(Shared::new(me, vec![loopback], gossip_shared, security));
        let now = Instant::now();
        let (failed_tx, _failed_rx) = mpsc::unbounded_channel();
        let mut actor = Actor {
            gossip: Gossip::new(key, GossipConfig::new(), 1, now, 0).unwrap(),
            transport: transport.clone(),
            shared: Arc::clone(&shared),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            senders: HashMap::new(),
            next_generation: 0,
            failed_tx,
            topics: HashMap::new(),
            max_frame: transport.config().max_frame_len,
        };
        // A peer whose writer never drains its queue.
        let slow = node(3);
        let (tx, mut rx) = mpsc::channel(SEND_QUEUE_FRAMES);
        actor.senders.insert(
            slow,
            PeerSender {
                tx,
                budget: Arc::new(Semaphore::new(SEND_QUEUE_BYTES)),
                generation: 1,
                last_used: now,
            },
        );
        let dropped = || shared.gossip.stats().send_dropped;

        // By count: SEND_QUEUE_FRAMES small frames fit, the rest are dropped.
        for _ in 0..SEND_QUEUE_FRAMES + 10 {
            actor.enqueue(slow, Bytes::from_static(b"x"));
        }
        assert_eq!(dropped(), 10);

        // By bytes: drain, then 1 MiB frames fit only while the 4 MiB budget lasts.
        let mut held = Vec::new();
        while let Ok(item) = rx.try_recv() {
            held.push(item);
        }
        drop(held);
        let big = Bytes::from(vec![0u8; 1 << 20]);
        for _ in 0..6 {
            actor.enqueue(slow, big.clone());
        }
        assert_eq!(dropped(), 12, "4 of 6 MiB-sized frames fit");
        // Writing a frame returns its bytes to the budget.
        let (_, permit) = rx.try_recv().unwrap();
        drop(permit);
        actor.enqueue(slow, big.clone());
        assert_eq!(dropped(), 12);
        transport.close("done").await;
    }

    #[test]
    fn message_ids_are_64_lowercase_hex_digits_in_json() {
        #[derive(Debug, Serialize, Deserialize)]
        struct Wrap(#[serde(with = "message_id_serde")] MessageId);
        let id = MessageId::from_bytes(core::array::from_fn(|i| i as u8 * 7));
        let json = serde_json::to_string(&Wrap(id)).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(json.len(), 66);
        assert_eq!(serde_json::from_str::<Wrap>(&json).unwrap().0, id);
        for bad in [
            "\"\"".to_owned(),
            format!("\"{}\"", &id.to_string()[1..]),
            format!("\"{}\"", id.to_string().to_uppercase()),
            format!("\"{}g\"", &id.to_string()[1..]),
            format!("\"{id}0\""),
        ] {
            assert!(serde_json::from_str::<Wrap>(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_membership_messages_name_peers() {
        let (a, b) = (node(1), node(2));
        assert_eq!(
            named_peers(&GossipMessage::ForwardJoin { joiner: a, ttl: 3 }),
            [a]
        );
        assert_eq!(
            named_peers(&GossipMessage::Shuffle {
                origin: a,
                ttl: 2,
                nodes: vec![a, b]
            }),
            [a, b]
        );
        assert!(named_peers(&GossipMessage::KeepAlive).is_empty());
    }

    proptest! {
        #[test]
        fn hints_round_trip_any(
            peers in proptest::collection::vec(
                (1u8..=255, proptest::collection::vec((1u32.., 1u16..), 1..=MAX_HINT_ADDRS)),
                1..=8,
            )
        ) {
            let hints: Vec<(NodeId, Vec<SocketAddr>)> = peers
                .into_iter()
                .map(|(seed, addrs)| {
                    let addrs = addrs
                        .into_iter()
                        .map(|(ip, port)| {
                            let ip = Ipv4Addr::from((ip & 0xdfff_ffff).max(1));
                            SocketAddr::new(IpAddr::V4(ip), port)
                        })
                        .collect();
                    (node(seed), addrs)
                })
                .collect();
            let frame = encode_hints(&hints);
            prop_assert_eq!(decode_hints(&frame[1..]).unwrap(), hints);
        }

        #[test]
        fn mutated_hints_decode_strictly_or_not_at_all(index in 0usize..200, value in any::<u8>()) {
            let valid = encode_hints(&[
                (node(1), vec!["127.0.0.1:4000".parse().unwrap(), "[::1]:9".parse().unwrap()]),
                (node(2), vec!["10.1.2.3:7600".parse().unwrap()]),
            ]);
            let mut bytes = valid[1..].to_vec();
            let index = index % bytes.len();
            bytes[index] = value;
            if let Ok(hints) = decode_hints(&bytes) {
                let frame = encode_hints(&hints);
                prop_assert_eq!(&frame[1..], &bytes[..]);
            }
        }

        #[test]
        fn any_bytes_decode_strictly_or_not_at_all(
            bytes in proptest::collection::vec(any::<u8>(), 0..256)
        ) {
            // Never panics; whatever decodes encodes back to the same bytes (one encoding).
            if let Ok(hints) = decode_hints(&bytes) {
                let frame = encode_hints(&hints);
                prop_assert_eq!(&frame[1..], &bytes[..]);
            }
        }
    }
}
