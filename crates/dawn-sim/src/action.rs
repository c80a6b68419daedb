//! Actions a scenario schedules for later.

use std::fmt;
use std::time::Instant;

use dawn_identity::NodeId;

/// Application input for one node, run at a scheduled time: see [`Action::Input`].
pub type InputFn<P> = Box<dyn FnOnce(&mut P, Instant)>;

/// Builds a restarted node's instance from its id and the time: see [`Action::RestartWith`].
pub type RestartFn<P> = Box<dyn FnOnce(NodeId, Instant) -> P>;

/// Something to do to the simulation at a given time; see [`Sim::schedule`](crate::Sim::schedule).
#[non_exhaustive]
pub enum Action<P> {
    /// Crash the node ([`Sim::crash`](crate::Sim::crash)).
    Crash(NodeId),
    /// Restart the node with this instance ([`Sim::restart`](crate::Sim::restart)).
    Restart(NodeId, P),
    /// Restart the node with the instance the closure builds, given the node and the time.
    RestartWith(NodeId, RestartFn<P>),
    /// Split the network ([`Sim::partition`](crate::Sim::partition)).
    Partition(Vec<Vec<NodeId>>),
    /// End every partition ([`Sim::heal`](crate::Sim::heal)).
    Heal,
    /// Change the loss rate ([`Sim::set_loss`](crate::Sim::set_loss)).
    SetLoss(f64),
    /// Give a node application input, as [`Sim::with_node`](crate::Sim::with_node) does.
    /// Skipped if the node is down at that time.
    Input(NodeId, InputFn<P>),
}

impl<P> Action<P> {
    /// [`Action::Input`] without spelling out the box.
    #[must_use]
    pub fn input(node: NodeId, input: impl FnOnce(&mut P, Instant) + 'static) -> Self {
        Self::Input(node, Box::new(input))
    }

    /// [`Action::RestartWith`] without spelling out the box.
    #[must_use]
    pub fn restart_with(node: NodeId, build: impl FnOnce(NodeId, Instant) -> P + 'static) -> Self {
        Self::RestartWith(node, Box::new(build))
    }
}

impl<P> fmt::Debug for Action<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Crash(node) => f.debug_tuple("Crash").field(node).finish(),
            Self::Restart(node, _) => f.debug_tuple("Restart").field(node).finish(),
            Self::RestartWith(node, _) => f.debug_tuple("RestartWith").field(node).finish(),
            Self::Partition(groups) => f.debug_tuple("Partition").field(groups).finish(),
            Self::Heal => f.write_str("Heal"),
            Self::SetLoss(loss) => f.debug_tuple("SetLoss").field(loss).finish(),
            Self::Input(node, _) => f.debug_tuple("Input").field(node).finish(),
        }
    }
}

/// One node's part in a churn plan returned by
/// [`Sim::schedule_churn`](crate::Sim::schedule_churn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChurnEvent {
    /// The node that crashes.
    pub node: NodeId,
    /// When it crashes.
    pub crash_at: Instant,
    /// When it restarts (if it is down then), or `None` if it leaves for good.
    pub restart_at: Option<Instant>,
}
