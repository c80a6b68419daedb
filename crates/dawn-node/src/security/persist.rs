//! How the security state is kept in the store: audit entries in the audit repository, trust
//! records (sealed with a key derived from the node key) in the trust repository, and a
//! policy set through the admin API in the settings.

use dawn_store::{Sealer, Store, StoreError};
use dawn_trust::{AuditEntry, ChainHead, PeerSnapshot, Policy, PolicyConfig};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::security::writer::Write;

/// The settings key of a policy set through the admin API.
const POLICY_SETTING: &str = "node/policy";

/// A policy set through the admin API, as kept in the settings.
#[derive(Debug, Serialize, Deserialize)]
struct StoredPolicy {
    /// The policy.
    policy: PolicyConfig,
    /// The fingerprint (hex) of the configured policy it replaced.
    configured: String,
}

/// What the store holds for the security state at start.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// Where the audit chain continues.
    pub(crate) head: ChainHead,
    /// The trust records.
    pub(crate) trust: Vec<PeerSnapshot>,
    /// A policy set through the admin API, and the fingerprint of the configured policy it
    /// replaced.
    pub(crate) policy: Option<(Policy, [u8; 32])>,
}

/// Reads the audit head, the trust records and a runtime policy.
///
/// A damaged last audit entry or a trust record that does not open is an error: starting
/// without them would fork the chain or forget whom the operator refused.
pub(crate) fn load(store: &Store, sealer: &Sealer) -> Result<Loaded, StoreError> {
    let head = store.audit().head()?;
    let trust = store.trust(sealer).all()?;
    let policy = match store.settings().get_json::<StoredPolicy>(POLICY_SETTING) {
        Ok(Some(stored)) => match (
            Policy::from_config(stored.policy),
            parse_fingerprint(&stored.configured),
        ) {
            (Ok(policy), Some(configured)) => Some((policy, configured)),
            (Err(error), _) => {
                warn!(%error, "the stored runtime policy is invalid; using the configured one");
                None
            }
            (_, None) => {
                warn!(
                    "the stored runtime policy has no valid fingerprint; using the configured one"
                );
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            warn!(%error, "the stored runtime policy cannot be read; using the configured one");
            None
        }
    };
    Ok(Loaded {
        head,
        trust,
        policy,
    })
}

fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// A [`write`] stopped at a failure.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Writes stored before the failure; they stay stored.
    pub(crate) done: usize,
    /// The writes of the group that failed (all or nothing of it was stored: nothing).
    pub(crate) failed: usize,
    /// Why.
    pub(crate) error: StoreError,
}

/// Writes `writes` in order: consecutive audit entries in one transaction, consecutive trust
/// records in another. Stops at the first group that fails.
pub(crate) fn write(store: &Store, sealer: &Sealer, writes: &[Write]) -> Result<(), Failure> {
    let mut done = 0;
    let mut rest = writes;
    while let Some(first) = rest.first() {
        let run = rest
            .iter()
            .take_while(|w| same_kind(w, first))
            .count()
            .max(1);
        let (group, tail) = rest.split_at(run.min(rest.len()));
        write_group(store, sealer, group).map_err(|error| Failure {
            done,
            failed: group.len(),
            error,
        })?;
        done += group.len();
        rest = tail;
    }
    Ok(())
}

fn same_kind(a: &Write, b: &Write) -> bool {
    matches!(
        (a, b),
        (Write::Audit(_), Write::Audit(_)) | (Write::Trust(_), Write::Trust(_))
    )
}

fn write_group(store: &Store, sealer: &Sealer, group: &[Write]) -> Result<(), StoreError> {
    match group.first() {
        Some(Write::Audit(_)) => {
            let entries: Vec<AuditEntry> = group
                .iter()
                .filter_map(|w| match w {
                    Write::Audit(entry) => Some(entry.clone()),
                    _ => None,
                })
                .collect();
            store.audit().append_batch(&entries)
        }
        Some(Write::Trust(_)) => {
            let snapshots: Vec<PeerSnapshot> = group
                .iter()
                .filter_map(|w| match w {
                    Write::Trust(snapshot) => Some(snapshot.clone()),
                    _ => None,
                })
                .collect();
            store.trust(sealer).put_many(&snapshots)
        }
        Some(Write::ForgetTrust(peer)) => store.trust(sealer).delete(peer).map(|_| ()),
        Some(Write::Policy { policy, configured }) => store.settings().put_json(
            POLICY_SETTING,
            &StoredPolicy {
                policy: policy.clone(),
                configured: crate::gossip::hex(configured),
            },
        ),
        Some(Write::Barrier) | None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_fingerprint_round_trips(bytes in proptest::prelude::any::<[u8; 32]>()) {
            proptest::prop_assert_eq!(
                parse_fingerprint(&crate::gossip::hex(&bytes)),
                Some(bytes)
            );
        }
    }

    #[test]
    fn fingerprints_round_trip_and_bad_ones_are_refused() {
        let fingerprint = *Policy::default().fingerprint();
        let text = crate::gossip::hex(&fingerprint);
        assert_eq!(parse_fingerprint(&text), Some(fingerprint));
        assert_eq!(parse_fingerprint(&text[1..]), None);
        assert_eq!(parse_fingerprint(&"zz".repeat(32)), None);
    }
}
