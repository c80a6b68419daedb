//! Connection limits: in total, and inbound per IP address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts live and handshaking connections against the configured limits.
#[derive(Debug)]
pub(crate) struct Limits {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

/// One connection's place under the limits, given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    limits: Arc<Limits>,
    ip: Option<IpAddr>,
}

impl Limits {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a connection this node dials, if under the total limit.
    pub(crate) fn outbound(self: &Arc<Self>) -> Option<Permit> {
        let mut counts = self.counts();
        if counts.total >= self.max_total {
            return None;
        }
        counts.total += 1;
        Some(Permit {
            limits: Arc::clone(self),
            ip: None,
        })
    }

    /// A place for a connection from `ip`, if under both limits.
    pub(crate) fn inbound(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        // An IPv4 peer reaching a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut counts = self.counts();
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if counts.total >= self.max_total || from_ip >= self.max_per_ip {
            return None;
        }
        counts.total += 1;
        counts.per_ip.insert(ip, from_ip + 1);
        Some(Permit {
            limits: Arc::clone(self),
            ip: Some(ip),
        })
    }

    #[cfg(test)]
    fn total(&self) -> usize {
        self.counts().total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(n) = counts.per_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_and_release() {
        let limits = Arc::new(Limits::new(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limits.inbound(a).unwrap();
        let second = limits.inbound(mapped).unwrap();
        assert!(
            limits.inbound(a).is_none(),
            "per-ip limit counts mapped addresses"
        );
        let third = limits.inbound(b).unwrap();
        assert!(limits.outbound().is_none(), "total limit");
        assert!(limits.inbound("10.0.0.3".parse().unwrap()).is_none());
        drop(first);
        assert_eq!(limits.total(), 2);
        let again = limits.inbound(a).unwrap();
        drop((second, third, again));
        assert_eq!(limits.total(), 0);
        assert!(limits.counts().per_ip.is_empty());
        let out = limits.outbound().unwrap();
        assert_eq!(limits.total(), 1);
        drop(out);
    }
}
