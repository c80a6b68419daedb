//! LAN discovery: the node advertises itself over mDNS (DNS-SD) and dials the Dawn nodes it
//! finds on the local network.
//!
//! # What is advertised
//!
//! One service instance of type [`DEFAULT_MDNS_SERVICE`] (`_dawn._udp.local.`, configurable)
//! named after the node's short id, on the node's QUIC port, with two TXT keys:
//!
//! - `id`: the full [`NodeId`] (52 characters);
//! - `v`: the highest protocol version the node speaks ([`dawn_wire::PROTOCOL_VERSION`]).
//!
//! The addresses are those of the interfaces the QUIC socket can answer on: every interface
//! of its family for an unspecified address (`0.0.0.0` is IPv4 only, `[::]` both), only the
//! bound one otherwise. Loopback interfaces are never used, and a node bound to a loopback
//! address runs no discovery at all (nothing it could advertise is reachable from the LAN).
//!
//! # What is believed
//!
//! Nothing an advertisement says is trusted: a LAN peer is dialled over QUIC at the advertised
//! addresses, stating the advertised `NodeId`, and the TLS handshake refuses a peer that cannot
//! prove that key. Only a successful connection reaches the peer table, the store and gossip
//! (through the transport's connection event, exactly like an inbound peer), so an
//! advertisement can neither make the node write to its database nor evict a known peer.
//!
//! Advertisements are validated before they are kept ([`MdnsAdvertError`] says why one was not):
//! a missing or malformed `id` or `v`, port 0, the node's own id, or no usable address (only
//! unicast addresses outside loopback, of a family the QUIC socket can reach; IPv6 link-local
//! ones only with their interface) make it ignored and counted in [`MdnsStats::ignored`].
//!
//! # Bounds
//!
//! - At most [`MAX_DISCOVERED_PEERS`] peers are tracked; further ones are ignored (counted in
//!   [`MdnsStats::over_limit`]) until a tracked one says goodbye.
//! - At most [`MDNS_DIALS_PER_SECOND`] dials start per second, at most
//!   [`MDNS_CONCURRENT_DIALS`] run at once, each bounded by [`MDNS_DIAL_TIMEOUT`].
//! - A peer whose dial fails is retried with exponential backoff from 1 s to 60 s; one that is
//!   connected is not dialled. Of two nodes that find each other, the one with the lower id
//!   dials first and the other waits [`MDNS_DIAL_DEFER`], so they rarely dial each other at once.
//! - At most [`MDNS_MAX_ADDRS`] addresses are kept per peer.
//!
//! On shutdown the service is unregistered, which sends mDNS goodbye packets so that other
//! nodes forget this one at once instead of when the record expires.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dawn_identity::{NODE_ID_TEXT_LEN, NodeId, NodeIdError};
use dawn_transport::Transport;
use mdns_sd::{
    DaemonEvent, IfKind, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo,
    TxtProperties,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info, info_span, warn};

/// The DNS-SD service type Dawn nodes advertise and browse by default.
pub const DEFAULT_MDNS_SERVICE: &str = "_dawn._udp.local.";

/// Most peers found over mDNS that are tracked (and redialled) at once.
pub const MAX_DISCOVERED_PEERS: usize = 64;

/// Most dials that discovery starts per second.
pub const MDNS_DIALS_PER_SECOND: u32 = 4;

/// Most dials from discovery running at once.
pub const MDNS_CONCURRENT_DIALS: usize = 4;

/// Most addresses kept per discovered peer.
pub const MDNS_MAX_ADDRS: usize = 8;

/// How long one dial to a discovered peer may take.
pub const MDNS_DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the node with the higher id waits before dialling a newly found peer, leaving the
/// first dial to the other side.
pub const MDNS_DIAL_DEFER: Duration = Duration::from_secs(2);

/// The TXT key of the full node id.
const TXT_ID: &str = "id";

/// The TXT key of the protocol version.
const TXT_VERSION: &str = "v";

/// Longest service name between `_` and `._udp.local.` (RFC 6763, section 7.2).
const MAX_SERVICE_NAME_LEN: usize = 15;

/// The DNS-SD suffix of every Dawn service type: QUIC runs over UDP, on the local link.
const SERVICE_SUFFIX: &str = "._udp.local.";

/// First retry delay after a failed dial.
const REDIAL_MIN: Duration = Duration::from_secs(1);

/// Longest retry delay.
const REDIAL_MAX: Duration = Duration::from_secs(60);

/// How often the discovery task looks for peers due a dial when nothing else happens.
const TICK: Duration = Duration::from_millis(250);

/// How long to wait before browsing again after the browse channel closed.
const REBROWSE_DELAY: Duration = Duration::from_secs(1);

/// How long stopping waits for each step (goodbye, daemon exit).
const STOP_STEP_TIMEOUT: Duration = Duration::from_secs(1);

/// The daemon repeats a goodbye once, this long after the first (mdns-sd sends it after
/// 120 ms); stopping waits for it so that a peer that missed the first still gets one.
const GOODBYE_REPEAT: Duration = Duration::from_millis(150);

/// A DNS-SD service type for Dawn nodes: `_NAME._udp.local.`, where `NAME` is 1 to 15 letters,
/// digits and inner single hyphens with at least one letter (RFC 6763, section 7.2).
///
/// Nodes only find others advertising the same type, so a separate type keeps separate meshes
/// apart on one LAN. Kept in lower case.
///
/// ```
/// use dawn_node::MdnsService;
///
/// let service: MdnsService = "_dawn-lab._udp.local.".parse()?;
/// assert_eq!(service.as_str(), "_dawn-lab._udp.local.");
/// assert_eq!(MdnsService::default().as_str(), dawn_node::DEFAULT_MDNS_SERVICE);
/// assert!("_dawn._tcp.local.".parse::<MdnsService>().is_err());
/// # Ok::<(), dawn_node::MdnsServiceError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MdnsService(String);

impl MdnsService {
    /// The service type, e.g. `_dawn._udp.local.`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for MdnsService {
    fn default() -> Self {
        Self(DEFAULT_MDNS_SERVICE.to_owned())
    }
}

impl fmt::Display for MdnsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MdnsService {
    type Err = MdnsServiceError;

    fn from_str(s: &str) -> Result<Self, MdnsServiceError> {
        // Errors quote at most this much of the input.
        let shown = |text: &str| text.chars().take(64).collect::<String>();
        let form = || MdnsServiceError::Form(shown(s));
        let name = s
            .strip_prefix('_')
            .and_then(|rest| rest.strip_suffix(SERVICE_SUFFIX))
            .ok_or_else(form)?;
        let bytes = name.as_bytes();
        let valid = !name.is_empty()
            && name.len() <= MAX_SERVICE_NAME_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes.iter().any(u8::is_ascii_alphabetic)
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.contains("--");
        if !valid {
            return Err(MdnsServiceError::Name(shown(name)));
        }
        Ok(Self(format!(
            "_{}{SERVICE_SUFFIX}",
            name.to_ascii_lowercase()
        )))
    }
}

/// A text is not a Dawn mDNS service type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MdnsServiceError {
    /// It is not of the form `_NAME._udp.local.`.
    #[error("{0:?} is not a service type of the form _NAME._udp.local.")]
    Form(String),
    /// The `NAME` part breaks the DNS-SD rules.
    #[error(
        "service name {0:?}: expected 1 to {MAX_SERVICE_NAME_LEN} letters, digits and single \
         inner hyphens, with at least one letter"
    )]
    Name(String),
}

/// Why a discovered advertisement was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MdnsAdvertError {
    /// It is of another service type than the one browsed.
    #[error("service type {0:?} was not browsed for")]
    ServiceType(String),
    /// The TXT record has no `id` with a value.
    #[error("no node id in the TXT record")]
    MissingId,
    /// The `id` value is not a node id.
    #[error("bad node id in the TXT record: {0}")]
    BadId(#[from] NodeIdError),
    /// The TXT record has no `v` with a value.
    #[error("no protocol version in the TXT record")]
    MissingVersion,
    /// The `v` value is not a protocol version (a number from 1 to 65535).
    #[error("bad protocol version {0:?} in the TXT record")]
    BadVersion(String),
    /// A TXT value is not UTF-8.
    #[error("the TXT value of {0:?} is not UTF-8")]
    NotUtf8(&'static str),
    /// The advertised port is 0.
    #[error("the advertised port is 0")]
    PortZero,
    /// It is this node's own advertisement.
    #[error("this node's own advertisement")]
    Own,
    /// None of the advertised addresses can be dialled from this node.
    #[error("no usable address")]
    NoAddress,
}

/// Counters of LAN discovery, from [`Node::mdns_stats`](crate::Node::mdns_stats).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MdnsStats {
    /// Peers tracked now (at most [`MAX_DISCOVERED_PEERS`]).
    pub tracked: usize,
    /// Valid advertisements of other nodes received (new peers and updates).
    pub resolved: u64,
    /// Advertisements ignored as malformed or unusable (see [`MdnsAdvertError`]); the node's own
    /// advertisement is not counted.
    pub ignored: u64,
    /// New peers ignored because [`MAX_DISCOVERED_PEERS`] were already tracked.
    pub over_limit: u64,
    /// Peers that said goodbye (or whose record expired).
    pub removed: u64,
    /// Dials started.
    pub dials: u64,
    /// Dials that failed or timed out (including peers that could not prove the advertised
    /// id).
    pub dial_failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    tracked: AtomicU64,
    resolved: AtomicU64,
    ignored: AtomicU64,
    over_limit: AtomicU64,
    removed: AtomicU64,
    dials: AtomicU64,
    dial_failures: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> MdnsStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MdnsStats {
            tracked: usize::try_from(get(&self.tracked)).unwrap_or(usize::MAX),
            resolved: get(&self.resolved),
            ignored: get(&self.ignored),
            over_limit: get(&self.over_limit),
            removed: get(&self.removed),
            dials: get(&self.dials),
            dial_failures: get(&self.dial_failures),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A validated advertisement of another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advert {
    pub(crate) fullname: String,
    pub(crate) node_id: NodeId,
    pub(crate) version: u16,
    pub(crate) addrs: Vec<SocketAddr>,
}

/// Reads the `id` and `v` TXT values through `lookup` (a key's value: `None` if the key is
/// absent, `Some(None)` if it has no `=`).
fn parse_txt<'a>(
    lookup: impl Fn(&str) -> Option<Option<&'a [u8]>>,
) -> Result<(NodeId, u16), MdnsAdvertError> {
    let text = |key: &'static str, missing: MdnsAdvertError| -> Result<&'a str, MdnsAdvertError> {
        let value = lookup(key).flatten().ok_or(missing)?;
        std::str::from_utf8(value).map_err(|_| MdnsAdvertError::NotUtf8(key))
    };
    let id = text(TXT_ID, MdnsAdvertError::MissingId)?;
    if id.len() != NODE_ID_TEXT_LEN {
        // Checked before parsing so a long value is never copied.
        return Err(MdnsAdvertError::BadId(NodeIdError::Length(
            id.chars().count(),
        )));
    }
    let node_id: NodeId = id.parse()?;
    let version = text(TXT_VERSION, MdnsAdvertError::MissingVersion)?;
    let bad_version = || MdnsAdvertError::BadVersion(version.chars().take(8).collect());
    if version.is_empty() || version.len() > 5 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_version());
    }
    match version.parse::<u16>() {
        Ok(v) if v != 0 => Ok((node_id, v)),
        _ => Err(bad_version()),
    }
}

/// Whether `ip` is a unicast address that another host on the LAN can be dialled at.
fn unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let first = v4.octets()[0];
            // 0/8 (this network), 127/8 (loopback), 224/4 (multicast), 240/4 (reserved and
            // broadcast).
            first != 0 && first != 127 && first < 224
        }
        IpAddr::V6(v6) => {
            !v6.is_unspecified()
                && !v6.is_loopback()
                && !v6.is_multicast()
                && v6.to_ipv4_mapped().is_none()
        }
    }
}

fn is_link_local_v6(ip: &Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
}

/// The addresses of `ips` (with their interface index, for IPv6 link-local scope) that this
/// node can dial at `port` from its QUIC socket bound to `local`: unicast, non-loopback, of a
/// family the socket reaches, IPv4 first, at most [`MDNS_MAX_ADDRS`].
fn dialable_addrs(
    ips: impl IntoIterator<Item = (IpAddr, u32)>,
    port: u16,
    local: SocketAddr,
) -> Vec<SocketAddr> {
    let (v4_ok, v6_ok) = match local.ip() {
        IpAddr::V4(_) => (true, false),
        IpAddr::V6(ip) if ip.is_unspecified() => (true, true),
        IpAddr::V6(_) => (false, true),
    };
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for (ip, scope) in ips {
        if !unicast(ip) {
            continue;
        }
        let addr = match ip {
            IpAddr::V4(v4) if v4_ok => SocketAddr::new(IpAddr::V4(v4), port),
            IpAddr::V6(v6) if v6_ok => {
                let scope = if is_link_local_v6(&v6) {
                    if scope == 0 {
                        continue;
                    }
                    scope
                } else {
                    0
                };
                SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope))
            }
            _ => continue,
        };
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    addrs.sort_by_key(|a| (a.is_ipv6(), *a));
    addrs.truncate(MDNS_MAX_ADDRS);
    addrs
}

/// Validates a resolved service against the browsed type, this node's id and its socket.
fn advert_from(
    resolved: &ResolvedService,
    service: &MdnsService,
    own: NodeId,
    local: SocketAddr,
) -> Result<Advert, MdnsAdvertError> {
    if !resolved.ty_domain.eq_ignore_ascii_case(service.as_str()) {
        return Err(MdnsAdvertError::ServiceType(
            resolved.ty_domain.chars().take(64).collect(),
        ));
    }
    let txt: &TxtProperties = resolved.get_properties();
    let (node_id, version) = parse_txt(|key| txt.get_property_val(key))?;
    if node_id == own {
        return Err(MdnsAdvertError::Own);
    }
    if resolved.port == 0 {
        return Err(MdnsAdvertError::PortZero);
    }
    let ips = resolved.addresses.iter().map(|scoped| match scoped {
        ScopedIp::V6(v6) => (IpAddr::V6(*v6.addr()), v6.scope_id().index),
        other => (other.to_ip_addr(), 0),
    });
    let addrs = dialable_addrs(ips, resolved.port, local);
    if addrs.is_empty() {
        return Err(MdnsAdvertError::NoAddress);
    }
    Ok(Advert {
        fullname: resolved.fullname.clone(),
        node_id,
        version,
        addrs,
    })
}

/// What [`Tracker::discovered`] did with an advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracked {
    /// A new peer.
    New,
    /// A known peer's addresses were updated.
    Updated,
    /// Ignored: the table is full.
    Full,
}

#[derive(Debug)]
struct Entry {
    fullname: String,
    addrs: Vec<SocketAddr>,
    next_dial: Instant,
    failures: u32,
    dialling: bool,
}

/// The peers found over mDNS and when each is due a dial: bounded, rate-limited, no I/O.
#[derive(Debug)]
struct Tracker {
    own: NodeId,
    peers: HashMap<NodeId, Entry>,
    capacity: usize,
    dial_interval: Duration,
    next_dial_slot: Instant,
}

impl Tracker {
    fn new(own: NodeId, now: Instant) -> Self {
        Self {
            own,
            peers: HashMap::new(),
            capacity: MAX_DISCOVERED_PEERS,
            dial_interval: Duration::from_secs(1) / MDNS_DIALS_PER_SECOND.max(1),
            next_dial_slot: now,
        }
    }

    fn len(&self) -> usize {
        self.peers.len()
    }

    fn discovered(&mut self, now: Instant, advert: Advert) -> Tracked {
        if let Some(entry) = self.peers.get_mut(&advert.node_id) {
            entry.fullname = advert.fullname;
            if entry.addrs != advert.addrs {
                // New addresses are worth a try at once (the rate limit still applies).
                entry.addrs = advert.addrs;
                entry.failures = 0;
                entry.next_dial = entry.next_dial.min(now);
            }
            return Tracked::Updated;
        }
        if self.peers.len() >= self.capacity {
            return Tracked::Full;
        }
        // The lower id dials first; the other waits a little before dialling too.
        let next_dial = if self.own < advert.node_id {
            now
        } else {
            now + MDNS_DIAL_DEFER
        };
        self.peers.insert(
            advert.node_id,
            Entry {
                fullname: advert.fullname,
                addrs: advert.addrs,
                next_dial,
                failures: 0,
                dialling: false,
            },
        );
        Tracked::New
    }

    /// Forgets the peer advertised as `fullname`, if tracked.
    fn removed(&mut self, fullname: &str) -> Option<NodeId> {
        let id = self
            .peers
            .iter()
            .find(|(_, e)| e.fullname.eq_ignore_ascii_case(fullname))
            .map(|(id, _)| *id)?;
        self.peers.remove(&id);
        Some(id)
    }

    /// The next peer due a dial, if the rate limit allows one now: not connected, not being
    /// dialled, its backoff over. The one due longest goes first.
    fn next_due(
        &mut self,
        now: Instant,
        connected: impl Fn(&NodeId) -> bool,
    ) -> Option<(NodeId, Vec<SocketAddr>)> {
        if now < self.next_dial_slot {
            return None;
        }
        let (id, entry) = self
            .peers
            .iter_mut()
            .filter(|(id, e)| !e.dialling && e.next_dial <= now && !connected(id))
            .min_by_key(|(_, e)| e.next_dial)?;
        entry.dialling = true;
        self.next_dial_slot = now + self.dial_interval;
        Some((*id, entry.addrs.clone()))
    }

    /// A dial to `id` ended.
    fn dial_done(&mut self, now: Instant, id: &NodeId, ok: bool) {
        let Some(entry) = self.peers.get_mut(id) else {
            return;
        };
        entry.dialling = false;
        if ok {
            entry.failures = 0;
            entry.next_dial = now;
        } else {
            entry.failures = entry.failures.saturating_add(1);
            let exponent = entry.failures.saturating_sub(1).min(16);
            let delay = REDIAL_MIN.saturating_mul(1 << exponent).min(REDIAL_MAX);
            entry.next_dial = now + delay;
        }
    }
}

/// Everything discovery needs from the node.
pub(crate) struct MdnsContext {
    pub(crate) node_id: NodeId,
    /// The bound QUIC address.
    pub(crate) local: SocketAddr,
    pub(crate) service: MdnsService,
    pub(crate) transport: Transport,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

/// Stops the daemon thread when dropped, so an abandoned node leaves no thread behind.
struct DaemonGuard(ServiceDaemon);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        // Already shut down after a clean stop; then this is refused, which is fine.
        let _ = self.0.shutdown();
    }
}

/// A running discovery task.
pub(crate) struct Discovery {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    counters: Arc<Counters>,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

impl Discovery {
    pub(crate) fn stats(&self) -> MdnsStats {
        self.counters.snapshot()
    }

    /// Unregisters the service (goodbye packets), stops browsing and the daemon. Bounded by a
    /// few seconds.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if tokio::time::timeout(STOP_STEP_TIMEOUT * 3, self.task)
            .await
            .is_err()
        {
            warn!("mDNS discovery did not stop in time");
        }
    }
}

/// Starts advertising and browsing. `None` when discovery cannot run here: a loopback QUIC
/// address (logged at info) or no mDNS daemon (logged as a warning); the node runs on without.
pub(crate) fn start(context: MdnsContext) -> Option<Discovery> {
    let local = context.local;
    if local.ip().is_loopback() {
        info!(
            quic = %local,
            "mDNS discovery is off: the QUIC address is loopback, unreachable from the LAN"
        );
        return None;
    }
    match setup(&context) {
        Ok((daemon, fullname)) => {
            let stop = context.cancel.child_token();
            let counters = Arc::new(Counters::default());
            let run = Run {
                daemon,
                fullname,
                service: context.service,
                own: context.node_id,
                local,
                transport: context.transport,
                stop: stop.clone(),
                counters: Arc::clone(&counters),
            };
            let task = context.tasks.spawn(
                run.run()
                    .instrument(info_span!(parent: None, "dawn.node.mdns")),
            );
            Some(Discovery {
                stop,
                task,
                counters,
            })
        }
        Err(error) => {
            warn!(%error, "mDNS discovery could not start; the node runs without it");
            None
        }
    }
}

/// Creates the daemon, chooses its interfaces and registers the node's service.
fn setup(context: &MdnsContext) -> Result<(DaemonGuard, String), mdns_sd::Error> {
    let local = context.local;
    // On any error below the guard stops the daemon thread again.
    let guard = DaemonGuard(ServiceDaemon::new()?);
    let daemon = &guard.0;
    // Selections apply in order, the last match winning.
    if local.ip().is_unspecified() {
        daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
        if local.is_ipv4() {
            daemon.disable_interface(IfKind::IPv6)?;
        }
    } else {
        daemon.disable_interface(IfKind::All)?;
        daemon.enable_interface(IfKind::Addr(local.ip()))?;
    }
    let id = context.node_id;
    let instance = id.fmt_short();
    let host = format!("dawn-{instance}.local.");
    let id_text = id.to_string();
    let version = dawn_wire::PROTOCOL_VERSION.to_string();
    let properties = [(TXT_ID, id_text.as_str()), (TXT_VERSION, version.as_str())];
    let info = if local.ip().is_unspecified() {
        let mut info = ServiceInfo::new(
            context.service.as_str(),
            &instance,
            &host,
            (),
            local.port(),
            &properties[..],
        )?
        .enable_addr_auto();
        let family = if local.is_ipv4() {
            IfKind::IPv4
        } else {
            IfKind::All
        };
        info.set_interfaces(vec![family]);
        info
    } else {
        ServiceInfo::new(
            context.service.as_str(),
            &instance,
            &host,
            local.ip(),
            local.port(),
            &properties[..],
        )?
    };
    let fullname = info.get_fullname().to_owned();
    daemon.register(info)?;
    info!(
        service = context.service.as_str(),
        instance = %instance,
        port = local.port(),
        "mDNS discovery started"
    );
    Ok((guard, fullname))
}

/// What woke the discovery task.
enum Step {
    Stop,
    Browse(Option<ServiceEvent>),
    Monitor(Option<DaemonEvent>),
    /// A dial ended (`None` if its task was aborted).
    Dialled(Option<(NodeId, bool)>),
    Tick,
}

/// The discovery task's state.
struct Run {
    daemon: DaemonGuard,
    fullname: String,
    service: MdnsService,
    own: NodeId,
    local: SocketAddr,
    transport: Transport,
    stop: CancellationToken,
    counters: Arc<Counters>,
}

impl Run {
    async fn run(self) {
        let mut tracker = Tracker::new(self.own, Instant::now());
        let mut dials: JoinSet<(NodeId, bool)> = JoinSet::new();
        let mut browse = self.browse();
        let mut monitor = self.daemon.0.monitor().ok();
        loop {
            let now = Instant::now();
            while dials.len() < MDNS_CONCURRENT_DIALS {
                let transport = &self.transport;
                let Some((peer, addrs)) =
                    tracker.next_due(now, |id| transport.connection(id).is_some())
                else {
                    break;
                };
                bump(&self.counters.dials);
                debug!(peer = %peer.fmt_short(), ?addrs, "dialling a peer found over mDNS");
                let transport = self.transport.clone();
                dials.spawn(async move {
                    let dial =
                        tokio::time::timeout(MDNS_DIAL_TIMEOUT, transport.connect(peer, &addrs));
                    let ok = match dial.await {
                        Ok(Ok(_connection)) => true,
                        Ok(Err(error)) => {
                            debug!(peer = %peer.fmt_short(), %error, "dial from mDNS failed");
                            false
                        }
                        Err(_) => {
                            debug!(peer = %peer.fmt_short(), "dial from mDNS timed out");
                            false
                        }
                    };
                    (peer, ok)
                });
            }
            let step = {
                let browse_event = async {
                    match &browse {
                        Some(receiver) => receiver.recv_async().await.ok(),
                        None => std::future::pending().await,
                    }
                };
                let monitor_event = async {
                    match &monitor {
                        Some(receiver) => receiver.recv_async().await.ok(),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = self.stop.cancelled() => Step::Stop,
                    event = browse_event => Step::Browse(event),
                    event = monitor_event => Step::Monitor(event),
                    Some(done) = dials.join_next() => Step::Dialled(done.ok()),
                    () = tokio::time::sleep(TICK) => Step::Tick,
                }
            };
            match step {
                Step::Stop => break,
                Step::Browse(Some(event)) => self.on_event(&mut tracker, event),
                Step::Browse(None) => {
                    debug!("the mDNS browse ended; browsing again");
                    tokio::select! {
                        () = self.stop.cancelled() => break,
                        () = tokio::time::sleep(REBROWSE_DELAY) => {}
                    }
                    browse = self.browse();
                }
                Step::Monitor(Some(event)) => on_daemon_event(event),
                Step::Monitor(None) => monitor = None,
                Step::Dialled(Some((peer, ok))) => {
                    if !ok {
                        bump(&self.counters.dial_failures);
                    }
                    tracker.dial_done(Instant::now(), &peer, ok);
                }
                Step::Dialled(None) | Step::Tick => {}
            }
            self.counters.tracked.store(
                u64::try_from(tracker.len()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        dials.abort_all();
        self.goodbye().await;
    }

    fn browse(&self) -> Option<mdns_sd::Receiver<ServiceEvent>> {
        match self.daemon.0.browse(self.service.as_str()) {
            Ok(receiver) => Some(receiver),
            Err(error) => {
                warn!(%error, "cannot browse for mDNS services");
                None
            }
        }
    }

    fn on_event(&self, tracker: &mut Tracker, event: ServiceEvent) {
        match event {
            ServiceEvent::ServiceResolved(resolved) => {
                match advert_from(&resolved, &self.service, self.own, self.local) {
                    Ok(advert) => {
                        bump(&self.counters.resolved);
                        let peer = advert.node_id;
                        let version = advert.version;
                        match tracker.discovered(Instant::now(), advert) {
                            Tracked::New => info!(
                                peer = %peer.fmt_short(),
                                version,
                                "found a peer over mDNS"
                            ),
                            Tracked::Updated => {}
                            Tracked::Full => {
                                bump(&self.counters.over_limit);
                                debug!(
                                    peer = %peer.fmt_short(),
                                    "mDNS peer ignored: {MAX_DISCOVERED_PEERS} already tracked"
                                );
                            }
                        }
                    }
                    Err(MdnsAdvertError::Own) => {}
                    Err(error) => {
                        bump(&self.counters.ignored);
                        debug!(
                            name = %resolved.fullname.chars().take(80).collect::<String>(),
                            %error,
                            "mDNS advertisement ignored"
                        );
                    }
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                if let Some(peer) = tracker.removed(&fullname) {
                    bump(&self.counters.removed);
                    debug!(peer = %peer.fmt_short(), "mDNS peer said goodbye");
                }
            }
            _ => {}
        }
    }

    /// Unregisters the service, which sends goodbye packets, then stops the daemon.
    async fn goodbye(self) {
        let daemon = &self.daemon.0;
        let _ = daemon.stop_browse(self.service.as_str());
        match daemon.unregister(&self.fullname) {
            Ok(reply) => {
                if tokio::time::timeout(STOP_STEP_TIMEOUT, reply.recv_async())
                    .await
                    .is_ok()
                {
                    tokio::time::sleep(GOODBYE_REPEAT).await;
                }
            }
            Err(error) => debug!(%error, "cannot unregister the mDNS service"),
        }
        match daemon.shutdown() {
            Ok(reply) => {
                let _ = tokio::time::timeout(STOP_STEP_TIMEOUT, reply.recv_async()).await;
            }
            Err(error) => debug!(%error, "cannot stop the mDNS daemon"),
        }
        debug!("mDNS discovery stopped");
    }
}

fn on_daemon_event(event: DaemonEvent) {
    match event {
        DaemonEvent::Error(error) => debug!(%error, "mDNS daemon error"),
        DaemonEvent::NameChange(change) => info!(
            from = %change.original,
            to = %change.new_name,
            "mDNS name conflict resolved by renaming"
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::SigningKey;
    use std::net::Ipv4Addr;

    fn id(seed: u8) -> NodeId {
        SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
    }

    fn txt<'a>(
        pairs: &'a [(&'a str, Option<&'a [u8]>)],
    ) -> impl Fn(&str) -> Option<Option<&'a [u8]>> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| *v)
        }
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> (IpAddr, u32) {
        (IpAddr::V4(Ipv4Addr::new(a, b, c, d)), 0)
    }

    fn any_v4() -> SocketAddr {
        "0.0.0.0:7600".parse().unwrap()
    }

    fn advert(node: NodeId, port: u16) -> Advert {
        Advert {
            fullname: format!("{}.{DEFAULT_MDNS_SERVICE}", node.fmt_short()),
            node_id: node,
            version: 1,
            addrs: vec![SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                port,
            )],
        }
    }

    #[test]
    fn service_types_are_validated() {
        assert_eq!(MdnsService::default().as_str(), "_dawn._udp.local.");
        for good in [
            "_dawn._udp.local.",
            "_a._udp.local.",
            "_dawn-lab-2._udp.local.",
            "_abcdefghijklmno._udp.local.",
        ] {
            let service: MdnsService = good.parse().unwrap();
            assert_eq!(service.as_str(), good);
            assert_eq!(service.to_string(), good);
        }
        assert_eq!(
            "_Dawn._udp.local.".parse::<MdnsService>().unwrap().as_str(),
            "_dawn._udp.local."
        );
        for (bad, form) in [
            ("dawn", true),
            ("_dawn._tcp.local.", true),
            ("_dawn._udp.local", true),
            ("dawn._udp.local.", true),
            ("", true),
            ("__udp.local.", true),
            ("_._udp.local.", false),
            ("_abcdefghijklmnop._udp.local.", false),
            ("_123._udp.local.", false),
            ("_-dawn._udp.local.", false),
            ("_dawn-._udp.local.", false),
            ("_da--wn._udp.local.", false),
            ("_da.wn._udp.local.", false),
            ("_da wn._udp.local.", false),
            ("_dåwn._udp.local.", false),
        ] {
            let err = bad.parse::<MdnsService>().unwrap_err();
            assert_eq!(
                matches!(err, MdnsServiceError::Form(_)),
                form,
                "{bad}: {err}"
            );
        }
        // Errors quote a bounded part of the input.
        let long = format!("_{}._udp.local.", "a".repeat(10_000));
        let err = long.parse::<MdnsService>().unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn txt_records_parse_to_id_and_version() {
        let node = id(1);
        let text = node.to_string();
        let pairs = [("id", Some(text.as_bytes())), ("v", Some(&b"1"[..]))];
        assert_eq!(parse_txt(txt(&pairs)), Ok((node, 1)));
        let pairs = [("v", Some(&b"65535"[..])), ("id", Some(text.as_bytes()))];
        assert_eq!(parse_txt(txt(&pairs)), Ok((node, u16::MAX)));
        // Upper-case ids are the same id.
        let upper = text.to_ascii_uppercase();
        let pairs = [("id", Some(upper.as_bytes())), ("v", Some(&b"2"[..]))];
        assert_eq!(parse_txt(txt(&pairs)), Ok((node, 2)));
    }

    #[test]
    fn malformed_txt_records_are_refused() {
        let text = id(1).to_string();
        let id_ok = Some(text.as_bytes());
        let v_ok = Some(&b"1"[..]);
        let short = &text.as_bytes()[..51];
        let long = format!("{text}a");
        let mut bad_char = text.clone().into_bytes();
        bad_char[0] = b'!';
        type Pairs<'a> = Vec<(&'a str, Option<&'a [u8]>)>;
        let cases: Vec<(Pairs<'_>, MdnsAdvertError)> = vec![
            (vec![], MdnsAdvertError::MissingId),
            (vec![("v", v_ok)], MdnsAdvertError::MissingId),
            (vec![("id", None), ("v", v_ok)], MdnsAdvertError::MissingId),
            (vec![("id", id_ok)], MdnsAdvertError::MissingVersion),
            (
                vec![("id", id_ok), ("v", None)],
                MdnsAdvertError::MissingVersion,
            ),
            (
                vec![("id", Some(&[0xff, 0xfe][..])), ("v", v_ok)],
                MdnsAdvertError::NotUtf8("id"),
            ),
            (
                vec![("id", id_ok), ("v", Some(&[0xff][..]))],
                MdnsAdvertError::NotUtf8("v"),
            ),
            (
                vec![("id", Some(short)), ("v", v_ok)],
                MdnsAdvertError::BadId(NodeIdError::Length(51)),
            ),
            (
                vec![("id", Some(long.as_bytes())), ("v", v_ok)],
                MdnsAdvertError::BadId(NodeIdError::Length(53)),
            ),
            (
                vec![("id", id_ok), ("v", Some(&b"0"[..]))],
                MdnsAdvertError::BadVersion("0".into()),
            ),
            (
                vec![("id", id_ok), ("v", Some(&b""[..]))],
                MdnsAdvertError::BadVersion(String::new()),
            ),
            (
                vec![("id", id_ok), ("v", Some(&b"65536"[..]))],
                MdnsAdvertError::BadVersion("65536".into()),
            ),
            (
                vec![("id", id_ok), ("v", Some(&b"-1"[..]))],
                MdnsAdvertError::BadVersion("-1".into()),
            ),
            (
                vec![("id", id_ok), ("v", Some(&b"1.0"[..]))],
                MdnsAdvertError::BadVersion("1.0".into()),
            ),
            (
                vec![("id", id_ok), ("v", Some(&b"123456789012"[..]))],
                MdnsAdvertError::BadVersion("12345678".into()),
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(parse_txt(txt(&pairs)), Err(expected), "{pairs:?}");
        }
        let pairs = [("id", Some(&bad_char[..])), ("v", v_ok)];
        assert!(matches!(
            parse_txt(txt(&pairs)),
            Err(MdnsAdvertError::BadId(_))
        ));
    }

    #[test]
    fn only_sane_unicast_addresses_are_dialled() {
        let port = 7600;
        let ips = [
            v4(10, 0, 0, 1),
            v4(192, 168, 1, 20),
            v4(169, 254, 3, 4),
            v4(127, 0, 0, 1),
            v4(0, 0, 0, 0),
            v4(0, 1, 2, 3),
            v4(224, 0, 0, 251),
            v4(239, 255, 255, 250),
            v4(240, 0, 0, 1),
            v4(255, 255, 255, 255),
            ("::1".parse().unwrap(), 0),
            ("::".parse().unwrap(), 0),
            ("ff02::fb".parse().unwrap(), 2),
            ("::ffff:10.0.0.9".parse().unwrap(), 0),
            ("fe80::1".parse().unwrap(), 0),
            ("fe80::2".parse().unwrap(), 3),
            ("2001:db8::5".parse().unwrap(), 0),
            v4(10, 0, 0, 1),
        ];
        let addrs = |local: &str| dialable_addrs(ips, port, local.parse().unwrap());
        let v4_only: Vec<SocketAddr> = ["10.0.0.1:7600", "169.254.3.4:7600", "192.168.1.20:7600"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(addrs("0.0.0.0:7600"), v4_only);
        assert_eq!(addrs("192.168.1.5:7600"), v4_only);
        let v6_only: Vec<SocketAddr> = ["[2001:db8::5]:7600", "[fe80::2%3]:7600"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(addrs("[2001:db8::1]:7600"), v6_only);
        let both = addrs("[::]:7600");
        assert_eq!(both.len(), 5);
        assert!(both[..3].iter().all(SocketAddr::is_ipv4), "IPv4 first");
        let SocketAddr::V6(link_local) = both[4] else {
            panic!("{both:?}")
        };
        assert_eq!(link_local.scope_id(), 3);

        let many = (1..=50).map(|i| v4(10, 0, 1, i));
        assert_eq!(dialable_addrs(many, port, any_v4()).len(), MDNS_MAX_ADDRS);
    }

    #[test]
    fn the_tracker_is_bounded_and_forgets_on_goodbye() {
        let now = Instant::now();
        let mut tracker = Tracker::new(id(0), now);
        for seed in 1..=u8::try_from(MAX_DISCOVERED_PEERS).unwrap() {
            assert_eq!(tracker.discovered(now, advert(id(seed), 1)), Tracked::New);
        }
        assert_eq!(tracker.len(), MAX_DISCOVERED_PEERS);
        assert_eq!(tracker.discovered(now, advert(id(200), 1)), Tracked::Full);
        assert_eq!(tracker.discovered(now, advert(id(1), 2)), Tracked::Updated);
        assert_eq!(tracker.len(), MAX_DISCOVERED_PEERS);

        let gone = advert(id(1), 2).fullname;
        assert_eq!(tracker.removed(&gone.to_ascii_uppercase()), Some(id(1)));
        assert_eq!(tracker.removed(&gone), None);
        assert_eq!(tracker.removed("nobody._dawn._udp.local."), None);
        assert_eq!(tracker.discovered(now, advert(id(200), 1)), Tracked::New);
    }

    #[test]
    fn dials_are_rate_limited_backed_off_and_skip_connected_peers() {
        let start = Instant::now();
        let own = id(0);
        let mut tracker = Tracker::new(own, start);
        let mut peers: Vec<NodeId> = (1..=6).map(id).collect();
        peers.retain(|p| *p > own);
        assert!(peers.len() >= 3, "need peers with a higher id than ours");
        for peer in &peers {
            tracker.discovered(start, advert(*peer, 1));
        }
        let never = |_: &NodeId| false;

        // One dial per slot of 1/MDNS_DIALS_PER_SECOND.
        let slot = Duration::from_secs(1) / MDNS_DIALS_PER_SECOND;
        let (first, _) = tracker.next_due(start, never).unwrap();
        assert!(tracker.next_due(start, never).is_none(), "rate limited");
        assert!(tracker.next_due(start + slot / 2, never).is_none());
        let (second, addrs) = tracker.next_due(start + slot, never).unwrap();
        assert_ne!(first, second, "a peer being dialled is not dialled again");
        assert_eq!(addrs, advert(second, 1).addrs);

        // A failure backs off exponentially; a success makes the peer due once disconnected.
        let t = start + slot * 2;
        tracker.dial_done(t, &first, false);
        tracker.dial_done(t, &second, true);
        let connected = |p: &NodeId| *p != first && *p != second;
        assert_eq!(tracker.next_due(t, connected).map(|d| d.0), Some(second));
        let t = t + slot;
        tracker.dial_done(t, &second, false);
        let only_first = |p: &NodeId| *p != first;
        assert!(tracker.next_due(t + REDIAL_MIN / 2, only_first).is_none());
        assert_eq!(
            tracker.next_due(t + REDIAL_MIN, only_first).map(|d| d.0),
            Some(first)
        );
        let t = t + REDIAL_MIN;
        tracker.dial_done(t, &first, false);
        assert!(
            tracker
                .next_due(t + REDIAL_MIN + slot, only_first)
                .is_none(),
            "the second failure waits twice as long"
        );
        assert!(tracker.next_due(t + REDIAL_MIN * 2, only_first).is_some());
        // Connected peers are never dialled.
        let all = |_: &NodeId| true;
        assert!(tracker.next_due(t + REDIAL_MAX * 2, all).is_none());
    }

    #[test]
    fn the_higher_id_defers_its_first_dial() {
        let now = Instant::now();
        let (low, high) = if id(1) < id(2) {
            (id(1), id(2))
        } else {
            (id(2), id(1))
        };
        let never = |_: &NodeId| false;
        let mut on_high = Tracker::new(high, now);
        on_high.discovered(now, advert(low, 1));
        assert!(on_high.next_due(now, never).is_none());
        assert!(on_high.next_due(now + MDNS_DIAL_DEFER, never).is_some());
        let mut on_low = Tracker::new(low, now);
        on_low.discovered(now, advert(high, 1));
        assert!(on_low.next_due(now, never).is_some());
    }

    #[test]
    fn backoff_is_capped() {
        let now = Instant::now();
        let mut tracker = Tracker::new(id(0), now);
        let peer = id(9);
        tracker.discovered(now, advert(peer, 1));
        for _ in 0..100 {
            tracker.dial_done(now, &peer, false);
        }
        let entry = tracker.peers.get(&peer).unwrap();
        assert_eq!(entry.next_dial, now + REDIAL_MAX);
        assert_eq!(entry.failures, 100);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_txt_values_never_panic(
                id_value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
                v_value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12)),
            ) {
                let pairs = [("id", id_value.as_deref()), ("v", v_value.as_deref())];
                if let Ok((node, version)) = parse_txt(txt(&pairs)) {
                    prop_assert!(version >= 1);
                    let text = node.to_string();
                    prop_assert!(text.eq_ignore_ascii_case(
                        std::str::from_utf8(id_value.as_deref().unwrap_or_default()).unwrap()
                    ));
                }
            }

            #[test]
            fn dialable_addresses_are_unicast_and_bounded(
                raw in proptest::collection::vec((any::<[u8; 16]>(), any::<bool>(), any::<u32>()), 0..40),
                port in 1..=u16::MAX,
            ) {
                let ips = raw.iter().map(|(bytes, v6, scope)| {
                    let ip = if *v6 {
                        IpAddr::from(*bytes)
                    } else {
                        IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])
                    };
                    (ip, *scope)
                });
                let addrs = dialable_addrs(ips, port, "[::]:1".parse().unwrap());
                prop_assert!(addrs.len() <= MDNS_MAX_ADDRS);
                for addr in addrs {
                    prop_assert!(unicast(addr.ip()));
                    prop_assert_eq!(addr.port(), port);
                    prop_assert!(!addr.ip().is_loopback() && !addr.ip().is_multicast());
                }
            }

            #[test]
            fn service_types_parse_or_refuse(text in "\\PC{0,40}") {
                if let Ok(service) = text.parse::<MdnsService>() {
                    prop_assert!(service.as_str().ends_with("._udp.local."));
                    prop_assert_eq!(service.as_str().parse::<MdnsService>().unwrap(), service);
                }
            }
        }
    }
}
