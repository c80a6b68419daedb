//! The interface between the simulator and a sans-IO protocol core.

use std::time::Instant;

use dawn_identity::NodeId;

/// A sans-IO protocol instance the simulator can drive.
///
/// The simulator calls one of the `handle_*` methods (or the closure given to
/// [`Sim::with_node`](crate::Sim::with_node)), then drains [`poll_transmit`](Self::poll_transmit)
/// and [`poll_event`](Self::poll_event) until they return `None`, then reads
/// [`poll_timeout`](Self::poll_timeout). An implementation must not read the wall clock or any
/// randomness it was not seeded with, and must not let its behaviour depend on the iteration
/// order of a randomly seeded `HashMap`: runs are compared bit for bit.
pub trait Protocol {
    /// A datagram between two instances.
    type Message: Clone;
    /// Something the protocol reports to its application (a delivery, a membership change).
    type Event;

    /// A message from `from` arrived at time `now`.
    fn handle_message(&mut self, now: Instant, from: NodeId, message: Self::Message);

    /// The deadline last returned by [`poll_timeout`](Self::poll_timeout) has passed; `now` is
    /// that deadline (the simulator calls exactly on time).
    fn handle_timeout(&mut self, now: Instant);

    /// The next datagram to send and its destination; drained after every input.
    #[must_use]
    fn poll_transmit(&mut self) -> Option<(NodeId, Self::Message)>;

    /// The next application event; drained after every input. The simulator records it with
    /// the node and the time (see [`Sim::drain_events`](crate::Sim::drain_events)).
    #[must_use]
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if at all; read
    /// after every input. A deadline in the past fires at the current time.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;

    /// The encoded size of `message` in bytes, for bandwidth modelling and byte counters.
    #[must_use]
    fn wire_size(message: &Self::Message) -> usize;
}
