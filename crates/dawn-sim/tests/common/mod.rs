//! A scriptable test protocol: sends what it is told, records what it receives, optionally
//! echoes, and runs a one-shot or periodic timer.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dawn_sim::{NodeId, Protocol};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    pub seq: u64,
    pub size: usize,
    pub reply: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Got {
    pub from: NodeId,
    pub seq: u64,
    pub reply: bool,
    pub at: Instant,
}

#[derive(Debug, Default)]
pub struct Probe {
    outbox: VecDeque<(NodeId, Ping)>,
    events: VecDeque<Got>,
    pub received: Vec<Got>,
    pub timer: Option<Instant>,
    pub period: Option<Duration>,
    pub fired: Vec<Instant>,
    pub echo: bool,
    /// A label that survives in the instance, to tell restarted instances apart.
    pub label: u64,
}

impl Probe {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn echoing() -> Self {
        Self {
            echo: true,
            ..Self::default()
        }
    }

    pub fn labelled(label: u64) -> Self {
        Self {
            label,
            ..Self::default()
        }
    }

    pub fn periodic(first: Instant, period: Duration) -> Self {
        Self {
            timer: Some(first),
            period: Some(period),
            ..Self::default()
        }
    }

    pub fn send(&mut self, to: NodeId, seq: u64, size: usize) {
        self.outbox.push_back((
            to,
            Ping {
                seq,
                size,
                reply: false,
            },
        ));
    }
}

impl Protocol for Probe {
    type Message = Ping;
    type Event = Got;

    fn handle_message(&mut self, now: Instant, from: NodeId, message: Ping) {
        let got = Got {
            from,
            seq: message.seq,
            reply: message.reply,
            at: now,
        };
        self.received.push(got);
        self.events.push_back(got);
        if self.echo && !message.reply {
            self.outbox.push_back((
                from,
                Ping {
                    reply: true,
                    ..message
                },
            ));
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.fired.push(now);
        self.timer = self.period.map(|period| now + period);
    }

    fn poll_transmit(&mut self) -> Option<(NodeId, Ping)> {
        self.outbox.pop_front()
    }

    fn poll_event(&mut self) -> Option<Got> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    fn wire_size(message: &Ping) -> usize {
        message.size
    }
}

/// `sent == delivered + dropped + in flight`, in total and summed over nodes.
pub fn assert_conservation<P: Protocol>(sim: &dawn_sim::Sim<P>) {
    let stats = sim.stats();
    assert_eq!(
        stats.sent.messages,
        stats.delivered.messages + stats.dropped().messages + sim.in_flight() as u64,
        "{stats:?}"
    );
    let mut sent = 0;
    let mut delivered = 0;
    let mut dropped = 0;
    for id in sim.node_ids() {
        let node = sim.node_stats(id).unwrap();
        sent += node.sent.bytes;
        delivered += node.delivered.bytes;
        dropped += node.dropped().bytes;
    }
    assert_eq!(sent, stats.sent.bytes);
    assert_eq!(delivered, stats.delivered.bytes);
    assert_eq!(dropped, stats.dropped().bytes);
}
