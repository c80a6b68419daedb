//! The peer repository: nodes this node knows how to reach.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::SystemTime;

use dawn_identity::NodeId;
use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Row, params};
use tracing::debug;

use crate::error::StoreError;
use crate::store::Store;
use crate::time::{from_millis, to_millis};

/// The most addresses the store keeps for one peer.
pub const MAX_PEER_ADDRS: usize = 16;

/// Longest stored address list text: the longest socket address, `[v6%scope]:port`, is 58
/// characters, plus a separator.
const MAX_ADDRS_TEXT: usize = MAX_PEER_ADDRS * 59;

const TABLE: &str = "peers";
const COLUMNS: &str = "id, addrs, first_seen, last_seen, failures, last_failure";

/// A peer as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerRecord {
    /// The peer's identity.
    pub id: NodeId,
    /// Where to dial it, in the order given to [`PeerRepo::upsert`]; may be empty (a peer
    /// reached only through a relay). At most [`MAX_PEER_ADDRS`].
    pub addrs: Vec<SocketAddr>,
    /// When the store first recorded the peer.
    pub first_seen: SystemTime,
    /// The last successful contact ([`PeerRepo::record_success`]); `None` if never.
    pub last_seen: Option<SystemTime>,
    /// Failed contacts since the last success.
    pub failures: u32,
    /// The last failed contact ([`PeerRepo::record_failure`]); `None` if never.
    pub last_failure: Option<SystemTime>,
}

/// Reads and writes the `peers` table. Get one from [`Store::peers`].
///
/// Times are passed in by the caller (the store never reads the clock) and kept to the
/// millisecond. Each method is one statement or one transaction, atomic on its own.
#[derive(Debug, Clone, Copy)]
pub struct PeerRepo<'a> {
    store: &'a Store,
}

impl<'a> PeerRepo<'a> {
    pub(crate) const fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Records that `id` can be reached at `addrs`, learned at `now`.
    ///
    /// A new peer gets `first_seen = now`, no successes and no failures. For a known peer
    /// only the address list changes: it is *replaced* by `addrs` (merge with
    /// [`get`](Self::get) first to keep old ones); times and failure counts stay.
    ///
    /// Addresses are stored canonically: IPv4-mapped IPv6 addresses become IPv4, the IPv6
    /// flow label is dropped (the scope id is kept), and duplicates are removed keeping the
    /// first.
    ///
    /// # Errors
    /// [`StoreError::TooManyAddresses`] for more than [`MAX_PEER_ADDRS`] addresses,
    /// [`StoreError::InvalidAddress`] for an undialable one (port 0, unspecified, multicast or
    /// broadcast IP), [`StoreError::TimeOutOfRange`], or an SQLite failure. Nothing is written
    /// on error.
    pub fn upsert(
        &self,
        id: &NodeId,
        addrs: &[SocketAddr],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let addrs = encode_addrs(addrs)?;
        let now = to_millis(now)?;
        let conn = self.store.lock();
        let err = self.store.err("upserting a peer");
        conn.prepare_cached(UPSERT)
            .map_err(&err)?
            .execute(params![id.as_bytes(), addrs, now])
            .map_err(&err)?;
        Ok(())
    }

    /// [`upsert`](Self::upsert) for many peers in one transaction: all are written or none.
    /// Much faster than one call per peer (see the README).
    ///
    /// # Errors
    /// As [`upsert`](Self::upsert); every entry is validated before anything is written.
    pub fn upsert_many(
        &self,
        peers: &[(NodeId, Vec<SocketAddr>)],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let rows = peers
            .iter()
            .map(|(id, addrs)| Ok((id, encode_addrs(addrs)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let now = to_millis(now)?;
        let mut conn = self.store.lock();
        let err = self.store.err("upserting peers");
        let tx = conn.transaction().map_err(&err)?;
        {
            let mut stmt = tx.prepare_cached(UPSERT).map_err(&err)?;
            for (id, addrs) in &rows {
                stmt.execute(params![id.as_bytes(), addrs, now])
                    .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    /// Records a successful contact with `id` at `now`: `last_seen` becomes `now` (it never
    /// moves backwards if results arrive out of order) and the failure count resets to 0.
    ///
    /// Returns whether the peer is known; an unknown peer is not added.
    ///
    /// # Errors
    /// [`StoreError::TimeOutOfRange`] or an SQLite failure.
    pub fn record_success(&self, id: &NodeId, now: SystemTime) -> Result<bool, StoreError> {
        let now = to_millis(now)?;
        let conn = self.store.lock();
        let err = self.store.err("recording a peer success");
        let changed = conn
            .prepare_cached(
                "UPDATE peers SET last_seen = max(coalesce(last_seen, ?2), ?2), failures = 0 \
                 WHERE id = ?1",
            )
            .map_err(&err)?
            .execute(params![id.as_bytes(), now])
            .map_err(&err)?;
        Ok(changed > 0)
    }

    /// Records a failed contact with `id` at `now`: the failure count goes up by one
    /// (saturating) and `last_failure` becomes `now` (never moving backwards).
    ///
    /// Returns the new failure count, or `None` if the peer is unknown (it is not added).
    ///
    /// # Errors
    /// [`StoreError::TimeOutOfRange`] or an SQLite failure.
    pub fn record_failure(&self, id: &NodeId, now: SystemTime) -> Result<Option<u32>, StoreError> {
        let now = to_millis(now)?;
        let conn = self.store.lock();
        let err = self.store.err("recording a peer failure");
        let failures: Option<i64> = conn
            .prepare_cached(
                "UPDATE peers SET failures = min(failures + 1, 4294967295), \
                 last_failure = max(coalesce(last_failure, ?2), ?2) \
                 WHERE id = ?1 RETURNING failures",
            )
            .map_err(&err)?
            .query_row(params![id.as_bytes(), now], |row| row.get(0))
            .optional()
            .map_err(&err)?;
        failures
            .map(|n| {
                u32::try_from(n).map_err(|_| StoreError::InvalidRow {
                    table: TABLE,
                    detail: format!("peer {}: failure count {n} out of range", id.fmt_short()),
                })
            })
            .transpose()
    }

    /// The stored record of `id`, if any.
    ///
    /// # Errors
    /// [`StoreError::InvalidRow`] if the stored row is damaged, or an SQLite failure.
    pub fn get(&self, id: &NodeId) -> Result<Option<PeerRecord>, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err("reading a peer");
        let mut stmt = conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM peers WHERE id = ?1"))
            .map_err(&err)?;
        stmt.query_row([id.as_bytes()], decode_row)
            .optional()
            .map_err(&err)?
            .transpose()
    }

    /// Up to `limit` peers, best dialling candidates first: most recent success first, then
    /// peers never reached, in order of fewest failures, ties broken by id.
    ///
    /// # Errors
    /// [`StoreError::InvalidRow`] if any returned row is damaged, or an SQLite failure.
    pub fn list(&self, limit: usize) -> Result<Vec<PeerRecord>, StoreError> {
        self.query(
            "listing peers",
            &format!(
                "SELECT {COLUMNS} FROM peers \
                 ORDER BY last_seen IS NULL, last_seen DESC, failures, id LIMIT ?1"
            ),
            params![sql_limit(limit)],
            limit,
        )
    }

    /// Up to `limit` peers in id order, starting after `after` (from the start if `None`):
    /// pass the last id of one page to get the next. Stable under concurrent updates.
    ///
    /// # Errors
    /// [`StoreError::InvalidRow`] if any returned row is damaged, or an SQLite failure.
    pub fn list_by_id(
        &self,
        after: Option<&NodeId>,
        limit: usize,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        // Every id is 32 bytes, so an empty blob sorts before all of them.
        let after: &[u8] = after.map_or(&[], |id| id.as_bytes());
        self.query(
            "listing peers by id",
            &format!("SELECT {COLUMNS} FROM peers WHERE id > ?1 ORDER BY id LIMIT ?2"),
            params![after, sql_limit(limit)],
            limit,
        )
    }

    /// How many peers are stored.
    ///
    /// # Errors
    /// An SQLite failure.
    pub fn count(&self) -> Result<u64, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err("counting peers");
        let n: i64 = conn
            .prepare_cached("SELECT count(*) FROM peers")
            .map_err(&err)?
            .query_row([], |row| row.get(0))
            .map_err(&err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Forgets `id`. Returns whether it was stored.
    ///
    /// # Errors
    /// An SQLite failure.
    pub fn remove(&self, id: &NodeId) -> Result<bool, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err("removing a peer");
        let removed = conn
            .prepare_cached("DELETE FROM peers WHERE id = ?1")
            .map_err(&err)?
            .execute([id.as_bytes()])
            .map_err(&err)?;
        Ok(removed > 0)
    }

    /// Forgets every peer not seen since `not_seen_since` that has at least `min_failures`
    /// failures. "Seen" is the last success, or for a peer never reached the time it was
    /// first recorded. `min_failures = 0` prunes by age alone. Returns how many were removed.
    ///
    /// # Errors
    /// [`StoreError::TimeOutOfRange`] or an SQLite failure.
    pub fn prune(
        &self,
        not_seen_since: SystemTime,
        min_failures: u32,
    ) -> Result<usize, StoreError> {
        let cutoff = to_millis(not_seen_since)?;
        let conn = self.store.lock();
        let err = self.store.err("pruning peers");
        let removed = conn
            .prepare_cached(
                "DELETE FROM peers \
                 WHERE coalesce(last_seen, first_seen) < ?1 AND failures >= ?2",
            )
            .map_err(&err)?
            .execute(params![cutoff, min_failures])
            .map_err(&err)?;
        debug!(removed, "pruned peers");
        Ok(removed)
    }

    fn query(
        &self,
        op: &'static str,
        sql: &str,
        params: impl rusqlite::Params,
        limit: usize,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err(op);
        let mut stmt = conn.prepare_cached(sql).map_err(&err)?;
        let rows = stmt.query_map(params, decode_row).map_err(&err)?;
        let mut peers = Vec::with_capacity(limit.min(1024));
        for row in rows {
            peers.push(row.map_err(&err)??);
        }
        Ok(peers)
    }
}

const UPSERT: &str = "INSERT INTO peers (id, addrs, first_seen) VALUES (?1, ?2, ?3) \
                      ON CONFLICT (id) DO UPDATE SET addrs = excluded.addrs";

/// SQLite's LIMIT is an i64; anything larger means "no limit" anyway.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Reads one row of [`COLUMNS`]. The outer error is SQLite's, the inner one a damaged row.
fn decode_row(row: &Row<'_>) -> rusqlite::Result<Result<PeerRecord, StoreError>> {
    let record = decode_values(
        row.get_ref(0)?,
        row.get_ref(1)?,
        row.get_ref(2)?,
        row.get_ref(3)?,
        row.get_ref(4)?,
        row.get_ref(5)?,
    );
    Ok(record.map_err(|detail| StoreError::InvalidRow {
        table: TABLE,
        detail,
    }))
}

fn decode_values(
    id: ValueRef<'_>,
    addrs: ValueRef<'_>,
    first_seen: ValueRef<'_>,
    last_seen: ValueRef<'_>,
    failures: ValueRef<'_>,
    last_failure: ValueRef<'_>,
) -> Result<PeerRecord, String> {
    let ValueRef::Blob(id_bytes) = id else {
        return Err(format!("id is {}, not a blob", id.data_type()));
    };
    let id_array: [u8; 32] = id_bytes
        .try_into()
        .map_err(|_| format!("id {} is {} bytes, not 32", hex(id_bytes), id_bytes.len()))?;
    let id = NodeId::from_bytes(&id_array)
        .map_err(|e| format!("id {} is not a node id: {e}", hex(id_bytes)))?;
    let context = |what: &str| format!("peer {}: {what}", id.fmt_short());

    let ValueRef::Text(addrs) = addrs else {
        return Err(context("addrs is not text"));
    };
    let addrs = std::str::from_utf8(addrs)
        .map_err(|_| context("addrs is not UTF-8"))
        .and_then(|text| decode_addrs(text).map_err(|e| context(&e)))?;
    let time = |value: ValueRef<'_>, name: &str| match value {
        ValueRef::Integer(ms) => from_millis(ms)
            .map(Some)
            .ok_or_else(|| context(&format!("{name} {ms} is before 1970"))),
        ValueRef::Null => Ok(None),
        _ => Err(context(&format!("{name} is not an integer"))),
    };
    let first_seen =
        time(first_seen, "first_seen")?.ok_or_else(|| context("first_seen is null"))?;
    let last_seen = time(last_seen, "last_seen")?;
    let last_failure = time(last_failure, "last_failure")?;
    let failures = match failures {
        ValueRef::Integer(n) => {
            u32::try_from(n).map_err(|_| context(&format!("failure count {n} out of range")))?
        }
        _ => return Err(context("failures is not an integer")),
    };
    Ok(PeerRecord {
        id,
        addrs,
        first_seen,
        last_seen,
        failures,
        last_failure,
    })
}

/// Validates, canonicalises and joins addresses for the `addrs` column.
fn encode_addrs(addrs: &[SocketAddr]) -> Result<String, StoreError> {
    if addrs.len() > MAX_PEER_ADDRS {
        return Err(StoreError::TooManyAddresses {
            count: addrs.len(),
            max: MAX_PEER_ADDRS,
        });
    }
    let mut seen = Vec::with_capacity(addrs.len());
    let mut text = String::new();
    for &addr in addrs {
        let addr = canonical(addr)?;
        if seen.contains(&addr) {
            continue;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(text, "{addr}");
        seen.push(addr);
    }
    Ok(text)
}

/// Parses the `addrs` column; every address must be one [`encode_addrs`] could have written.
fn decode_addrs(text: &str) -> Result<Vec<SocketAddr>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if text.len() > MAX_ADDRS_TEXT {
        return Err(format!("address list is {} bytes long", text.len()));
    }
    let mut addrs = Vec::new();
    for part in text.split(' ') {
        if addrs.len() == MAX_PEER_ADDRS {
            return Err(format!("more than {MAX_PEER_ADDRS} addresses"));
        }
        let addr: SocketAddr = part
            .parse()
            .map_err(|_| format!("malformed address {part:?}"))?;
        match canonical(addr) {
            Ok(canonical) if canonical == addr && !addrs.contains(&addr) => addrs.push(addr),
            Ok(_) => return Err(format!("address {part:?} is not in canonical form")),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(addrs)
}

/// The stored form of `addr`, or why it is not worth storing.
fn canonical(addr: SocketAddr) -> Result<SocketAddr, StoreError> {
    let addr = match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
            None => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id())),
        },
        v4 @ SocketAddr::V4(_) => v4,
    };
    let reason = match addr.ip() {
        _ if addr.port() == 0 => Some("port 0"),
        ip if ip.is_unspecified() => Some("unspecified IP address"),
        ip if ip.is_multicast() => Some("multicast IP address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast IP address"),
        _ => None,
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidAddress { addr, reason }),
        None => Ok(addr),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn addresses_are_canonicalised_and_deduplicated() {
        let addrs: Vec<SocketAddr> = vec![
            "[::ffff:10.0.0.1]:4433".parse().unwrap(),
            "10.0.0.1:4433".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 7, 99, 3)),
        ];
        let text = encode_addrs(&addrs).unwrap();
        assert_eq!(text, "10.0.0.1:4433 [fe80::1%3]:7");
        assert_eq!(
            decode_addrs(&text).unwrap(),
            vec![
                "10.0.0.1:4433".parse::<SocketAddr>().unwrap(),
                SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 7, 0, 3)),
            ]
        );
        assert_eq!(encode_addrs(&[]).unwrap(), "");
        assert_eq!(decode_addrs("").unwrap(), vec![]);
    }

    #[test]
    fn undialable_addresses_are_rejected() {
        for (addr, reason) in [
            ("1.2.3.4:0", "port 0"),
            ("0.0.0.0:1", "unspecified IP address"),
            ("[::]:1", "unspecified IP address"),
            ("224.0.0.251:5353", "multicast IP address"),
            ("[ff02::fb]:5353", "multicast IP address"),
            ("255.255.255.255:9", "broadcast IP address"),
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            match encode_addrs(&[addr]) {
                Err(StoreError::InvalidAddress { reason: r, .. }) => assert_eq!(r, reason),
                other => panic!("{addr}: {other:?}"),
            }
        }
        let many = vec!["1.2.3.4:5".parse().unwrap(); MAX_PEER_ADDRS + 1];
        assert!(matches!(
            encode_addrs(&many),
            Err(StoreError::TooManyAddresses { count: 17, max: 16 })
        ));
    }

    #[test]
    fn damaged_address_text_is_rejected() {
        for bad in [
            "nonsense",
            "1.2.3.4:5  1.2.3.4:6",
            " 1.2.3.4:5",
            "1.2.3.4:0",
            "[::ffff:1.2.3.4]:5",
            "1.2.3.4:5 1.2.3.4:5",
            "1.2.3.4:99999",
        ] {
            assert!(decode_addrs(bad).is_err(), "{bad:?} accepted");
        }
        let too_many = vec!["1.2.3.4:5"; MAX_PEER_ADDRS + 1].join(" ");
        assert!(decode_addrs(&too_many).is_err());
        assert!(decode_addrs(&"1".repeat(MAX_ADDRS_TEXT + 1)).is_err());
    }

    #[test]
    fn longest_address_fits_the_text_bound() {
        let longest = SocketAddr::V6(SocketAddrV6::new(
            "fe80:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            65535,
            0,
            u32::MAX,
        ));
        let all: Vec<SocketAddr> = (0..MAX_PEER_ADDRS)
            .map(|i| {
                let mut a = longest;
                a.set_port(65535 - u16::try_from(i).unwrap());
                a
            })
            .collect();
        let text = encode_addrs(&all).unwrap();
        assert!(text.len() <= MAX_ADDRS_TEXT, "{}", text.len());
        assert_eq!(decode_addrs(&text).unwrap(), all);
    }

    fn any_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
            (any::<[u8; 16]>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
                |(ip, port, flow, scope)| SocketAddr::V6(SocketAddrV6::new(
                    ip.into(),
                    port,
                    flow,
                    scope
                ))
            ),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(addrs in proptest::collection::vec(any_addr(), 0..=MAX_PEER_ADDRS)) {
            match encode_addrs(&addrs) {
                Ok(text) => {
                    let decoded = decode_addrs(&text).unwrap();
                    let expected: Vec<SocketAddr> = addrs.iter().fold(Vec::new(), |mut acc, a| {
                        let c = canonical(*a).unwrap();
                        if !acc.contains(&c) { acc.push(c); }
                        acc
                    });
                    prop_assert_eq!(decoded, expected);
                }
                Err(StoreError::InvalidAddress { addr, .. }) => {
                    prop_assert!(canonical(addr).is_err());
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }

        #[test]
        fn decode_never_panics(text in "\\PC{0,200}") {
            let _ = decode_addrs(&text);
        }
    }
}
