//! The registry on the simulator: 1,000 nodes register and remove agents while the network
//! partitions and heals, and every node converges to the same, correct directory within 5 s
//! of simulated time after the heal.
//!
//! Figures for other sizes and seeds come from `examples/sim.rs` (see the README).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use common::{Scenario, run};

#[test]
fn thousand_nodes_converge_within_five_seconds_of_the_heal() {
    let started = std::time::Instant::now();
    let report = run(&Scenario::new(1000, 1));
    println!(
        "{} wall={:.1}s",
        report.line(),
        started.elapsed().as_secs_f64()
    );
    assert!(report.correct, "directories differ or are wrong");
    let converged = report.converged_after_heal.expect("never converged");
    assert!(
        converged < Duration::from_secs(5),
        "converged after {converged:?}"
    );
    assert_eq!(report.owners, 1000);
    assert_eq!(report.misbehaviours, 0);
    assert_eq!(report.changed_owners, 1000);
    // Each node lacked the other half's updates: it received about those, and the digests
    // to find them (one update is some 250 bytes), not the whole directory again.
    let per_update = (report.reconcile_bytes + report.update_bytes) / report.lacked_updates;
    assert!(per_update < 1000, "{per_update} bytes per lacked update");
}
