//! The security writer: one task that persists audit entries and trust records in the order
//! they were made, in batches, on a blocking thread, and tells waiters when a write is
//! durable.
//!
//! Order matters for the audit log (the store only accepts the next entry of the chain), so
//! every write gets a ticket under one lock as it is queued, the queue is FIFO, and the task
//! writes a batch completely (retrying while the store fails) before it takes the next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use dawn_resilience::Status;
use dawn_store::{Sealer, Store, StoreError};
use dawn_trust::AuditEntry;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, warn};

use crate::security::persist;
use crate::security::resilience::{self, Resilience};

/// Writes waiting for the writer; past this, queueing without waiting fails.
pub(crate) const QUEUE_CAPACITY: usize = 4096;

/// Most writes in one batch (one transaction, one sync to disk).
const BATCH: usize = 256;

/// How long the writer waits before retrying a batch the store refused.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How many times a batch is retried once the queue is closed (shutdown) before it is given up.
const RETRIES_WHEN_CLOSING: u32 = 3;

/// One write.
#[derive(Debug)]
pub(crate) enum Write {
    /// An audit entry, the next of the chain.
    Audit(AuditEntry),
    /// A peer's trust record (sealed by the store).
    Trust(dawn_trust::PeerSnapshot),
    /// A peer's trust record is gone (evicted or forgotten).
    ForgetTrust(dawn_identity::NodeId),
    /// The policy set through the admin API, and the fingerprint of the configured policy it
    /// replaced (so that a changed config file wins at the next start).
    Policy {
        policy: dawn_trust::PolicyConfig,
        configured: [u8; 32],
    },
    /// Nothing: waiting for it to be durable waits for everything queued before it.
    Barrier,
}

/// The writer did not take a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum QueueError {
    /// The queue is full (only when not waiting).
    #[error("the security write queue is full")]
    Full,
    /// The node is stopping; nothing more is written.
    #[error("the node is stopping")]
    Closed,
    /// The write was queued but is not on disk yet: the store keeps failing.
    #[error("the store did not confirm the write in time")]
    NotDurable,
}

struct Inner {
    tx: Option<mpsc::Sender<(u64, Write)>>,
    next: u64,
}

/// The queue in front of the writer task.
#[derive(Debug)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    durable: watch::Receiver<u64>,
    /// One more than the last ticket the writer gave up on (0: none).
    lost_below: Arc<AtomicU64>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("open", &self.tx.is_some())
            .field("next", &self.next)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A place in the queue, reserved before the write is made so that making and queueing it
/// happen under one lock.
pub(crate) struct Slot(mpsc::OwnedPermit<(u64, Write)>);

impl Queue {
    /// Queues `write` if there is room; returns its ticket.
    pub(crate) fn try_push(&self, write: Write) -> Result<u64, QueueError> {
        let mut inner = lock(&self.inner);
        let ticket = inner.next;
        let tx = inner.tx.as_ref().ok_or(QueueError::Closed)?;
        tx.try_send((ticket, write)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Full,
            mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
        })?;
        inner.next += 1;
        Ok(ticket)
    }

    /// Waits for room in the queue.
    pub(crate) async fn reserve(&self) -> Result<Slot, QueueError> {
        let tx = lock(&self.inner).tx.clone().ok_or(QueueError::Closed)?;
        tx.reserve_owned()
            .await
            .map(Slot)
            .map_err(|_| QueueError::Closed)
    }

    /// Queues `write` in a reserved slot; returns its ticket.
    pub(crate) fn push(&self, slot: Slot, write: Write) -> u64 {
        let mut inner = lock(&self.inner);
        let ticket = inner.next;
        inner.next += 1;
        slot.0.send((ticket, write));
        ticket
    }

    /// Waits (at most `limit`) until the write with `ticket`, and every write before it, is on
    /// disk.
    pub(crate) async fn durable(&self, ticket: u64, limit: Duration) -> Result<(), QueueError> {
        let mut durable = self.durable.clone();
        let wait = durable.wait_for(|settled| *settled > ticket);
        let settled = match tokio::time::timeout(limit, wait).await {
            Ok(Ok(_)) => true,
            // The writer has stopped; whatever it settled last is final.
            Ok(Err(_)) => *self.durable.borrow() > ticket,
            Err(_) => return Err(QueueError::NotDurable),
        };
        if !settled {
            return Err(QueueError::Closed);
        }
        if ticket < self.lost_below.load(Ordering::Acquire) {
            return Err(QueueError::NotDurable);
        }
        Ok(())
    }

    /// Stops taking writes; the writer finishes what is queued and ends.
    pub(crate) fn close(&self) {
        lock(&self.inner).tx = None;
    }
}

/// Creates the queue and the writer's future (the caller spawns it).
pub(crate) fn start(
    store: Store,
    sealer: Sealer,
    resilience: Arc<Resilience>,
) -> (Queue, impl Future<Output = ()> + Send + 'static) {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let (durable_tx, durable_rx) = watch::channel(0);
    let lost_below = Arc::new(AtomicU64::new(0));
    let queue = Queue {
        inner: Mutex::new(Inner {
            tx: Some(tx),
            next: 0,
        }),
        durable: durable_rx,
        lost_below: Arc::clone(&lost_below),
    };
    let writer = Writer {
        store: Arc::new(store),
        sealer: Arc::new(sealer),
        resilience,
        durable: durable_tx,
        lost_below,
    };
    (queue, writer.run(rx))
}

struct Writer {
    store: Arc<Store>,
    sealer: Arc<Sealer>,
    resilience: Arc<Resilience>,
    durable: watch::Sender<u64>,
    lost_below: Arc<AtomicU64>,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<(u64, Write)>) {
        let Self {
            store,
            sealer,
            resilience,
            durable,
            lost_below,
        } = self;
        let mut batch: Vec<(u64, Write)> = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let last = batch.last().map_or(0, |(ticket, _)| *ticket);
            let mut writes: Vec<Write> = batch.drain(..).map(|(_, w)| w).collect();
            let mut attempts = 0u32;
            while !writes.is_empty() {
                attempts += 1;
                let (store_ref, sealer_ref) = (Arc::clone(&store), Arc::clone(&sealer));
                let result = tokio::task::spawn_blocking(move || {
                    let result = persist::write(&store_ref, &sealer_ref, &writes);
                    (writes, result)
                })
                .await;
                let (mut back, result) = match result {
                    Ok(done) => done,
                    Err(join) => {
                        error!(%join, "the security writer's thread failed; writes are lost");
                        return;
                    }
                };
                match result {
                    Ok(()) => {
                        resilience.report(
                            resilience::STORE,
                            Status::Healthy,
                            "writable",
                            Instant::now(),
                        );
                        debug!(writes = back.len(), "security writes stored");
                        writes = Vec::new();
                    }
                    Err(failure) => {
                        // What was written stays written; retry only the rest.
                        back.drain(..failure.done.min(back.len()));
                        let error = failure.error;
                        let reason = format!("a write failed: {error}");
                        resilience.report(
                            resilience::STORE,
                            Status::Unhealthy,
                            &reason,
                            Instant::now(),
                        );
                        if rx.is_closed() && attempts > RETRIES_WHEN_CLOSING {
                            error!(%error, writes = back.len(), "security writes could not be stored before shutdown and are dropped");
                            lost_below.store(last + 1, Ordering::Release);
                            writes = Vec::new();
                        } else if is_permanent(&error) {
                            // Retrying cannot help this group; the writes after it go on.
                            error!(%error, writes = failure.failed, "security writes refused by the store are dropped");
                            lost_below.store(last + 1, Ordering::Release);
                            back.drain(..failure.failed.min(back.len()));
                            writes = back;
                        } else {
                            warn!(%error, attempts, "security writes failed; retrying");
                            writes = back;
                            tokio::time::sleep(RETRY_AFTER).await;
                        }
                    }
                }
            }
            // Waiters must not wait for ever: the writes are settled, on disk or given up.
            durable.send_replace(last + 1);
        }
        debug!("security writer stopped");
    }
}

/// Failures that retrying cannot fix: entries that do not continue the stored chain, and
/// values the store refuses as invalid.
fn is_permanent(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::AuditOutOfSequence { .. }
            | StoreError::AuditBrokenLink { .. }
            | StoreError::InvalidAuditEntry(_)
            | StoreError::InvalidTrustRecord(_)
            | StoreError::InvalidKey { .. }
            | StoreError::TooLarge { .. }
            | StoreError::LimitReached { .. }
            | StoreError::InvalidJson { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::SigningKey;
    use dawn_identity::NodeId;
    use dawn_trust::{AuditChain, AuditKind, PeerSnapshot, Subject};

    fn setup() -> (Store, Queue, impl Future<Output = ()>, SigningKey) {
        let key = SigningKey::from_bytes(&[1; 32]);
        let store = Store::open_in_memory().unwrap();
        let resilience = Arc::new(Resilience::new(Default::default()).unwrap());
        let (queue, writer) = start(store.clone(), Sealer::from_signing_key(&key), resilience);
        (store, queue, writer, key)
    }

    #[tokio::test]
    async fn writes_are_stored_in_order_and_waiters_learn_when() {
        let (store, queue, writer, key) = setup();
        let task = tokio::spawn(writer);
        let mut chain = AuditChain::new();
        let mut last = 0;
        for i in 0..10 {
            let entry = chain.append(&key, i, AuditKind::NodeStarted, Subject::none(), "");
            last = queue.try_push(Write::Audit(entry)).unwrap();
        }
        queue.durable(last, Duration::from_secs(5)).await.unwrap();
        assert_eq!(store.audit().count().unwrap(), 10);
        queue.close();
        assert_eq!(queue.try_push(Write::Barrier), Err(QueueError::Closed));
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_write_the_store_refuses_is_dropped_and_the_rest_goes_on() {
        let (store, queue, writer, key) = setup();
        let peer = NodeId::from(SigningKey::from_bytes(&[2; 32]).verifying_key());
        let invalid = PeerSnapshot {
            peer,
            score: 2.0,
            updated_ms: 0,
            gain_tokens: 0.0,
            last_seen_ms: 0,
            handshake: false,
            assigned: None,
            auto_untrusted: false,
            verified: false,
            recommended_by: Vec::new(),
        };
        let mut chain = AuditChain::new();
        let entry = chain.append(&key, 1, AuditKind::NodeStarted, Subject::none(), "");
        // Both queued before the writer runs: one batch.
        let refused = queue.try_push(Write::Trust(invalid)).unwrap();
        let after = queue.try_push(Write::Audit(entry)).unwrap();
        let task = tokio::spawn(writer);
        assert_eq!(
            queue.durable(refused, Duration::from_secs(5)).await,
            Err(QueueError::NotDurable)
        );
        // Whoever waited on the batch is told it was not all stored, but the entry after
        // the refused record is on disk.
        assert_eq!(
            queue.durable(after, Duration::from_secs(5)).await,
            Err(QueueError::NotDurable)
        );
        assert_eq!(store.audit().count().unwrap(), 1);
        assert_eq!(
            store
                .trust(&Sealer::from_signing_key(&key))
                .count()
                .unwrap(),
            0
        );
        queue.close();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_refuses_without_waiting() {
        let (_store, queue, _writer, _key) = setup();
        for _ in 0..QUEUE_CAPACITY {
            queue.try_push(Write::Barrier).unwrap();
        }
        assert_eq!(queue.try_push(Write::Barrier), Err(QueueError::Full));
    }
}
