//! Message and byte counters.

use std::ops::AddAssign;

/// A number of messages and their total size in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Traffic {
    /// How many messages.
    pub messages: u64,
    /// Their total [`wire_size`](crate::Protocol::wire_size) in bytes.
    pub bytes: u64,
}

impl Traffic {
    /// Counts one message of `bytes` bytes.
    pub(crate) const fn add(&mut self, bytes: u64) {
        self.messages += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

impl AddAssign for Traffic {
    fn add_assign(&mut self, other: Self) {
        self.messages += other.messages;
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// What happened to the messages of one node, or of the whole simulation.
///
/// Per node, `sent` and every `dropped_*` counter count the messages that node *sent*, and
/// `delivered` counts the messages it *received*; summed over all nodes they give the totals.
/// At any time `sent = delivered + dropped() + in flight`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Counters {
    /// Messages handed to the network (every transmit the protocol produced).
    pub sent: Traffic,
    /// Messages delivered to a running protocol instance.
    pub delivered: Traffic,
    /// Messages lost to the configured loss rate.
    pub dropped_loss: Traffic,
    /// Messages between nodes on different sides of a partition, when sent or on arrival.
    pub dropped_partition: Traffic,
    /// Messages to a node that was down when they were sent or when they arrived, or that
    /// crashed (and perhaps restarted) while they were in flight.
    pub dropped_down: Traffic,
    /// Messages to a node id the simulation does not know.
    pub dropped_unknown: Traffic,
    /// Calls to [`handle_timeout`](crate::Protocol::handle_timeout).
    pub timeouts: u64,
}

impl Counters {
    /// Every dropped message, whatever the reason.
    #[must_use]
    pub fn dropped(&self) -> Traffic {
        let mut total = self.dropped_loss;
        total += self.dropped_partition;
        total += self.dropped_down;
        total += self.dropped_unknown;
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_sums_every_reason() {
        let mut c = Counters::default();
        c.dropped_loss.add(10);
        c.dropped_partition.add(20);
        c.dropped_down.add(30);
        c.dropped_unknown.add(40);
        c.sent.add(1000);
        assert_eq!(
            c.dropped(),
            Traffic {
                messages: 4,
                bytes: 100
            }
        );
    }
}
