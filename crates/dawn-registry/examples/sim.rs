//! Measures the registry on the simulator and prints one line of figures.
//!
//! ```text
//! cargo run --release -p dawn-registry --example sim -- --nodes 1000 --seed 1
//! cargo run --release -p dawn-registry --example sim -- --nodes 1000 --seed 1 --loss 0.01
//! ```
//!
//! Options: `--nodes N` (default 1000), `--seed S` (1), `--loss P` (0), `--split F` (0.5, the
//! fraction of nodes on one side of the partition), `--fanout F` and `--leaf L` (the
//! reconciliation parameters, default 16 and 16). The scenario and the meaning of every
//! figure are described in `tests/common/mod.rs` and the crate's README.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut scenario = common::Scenario::new(1000, 1);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match arg.as_str() {
            "--nodes" => scenario.nodes = value("--nodes").parse().expect("--nodes: a number"),
            "--seed" => scenario.seed = value("--seed").parse().expect("--seed: a number"),
            "--loss" => scenario.loss = value("--loss").parse().expect("--loss: a probability"),
            "--split" => scenario.split = value("--split").parse().expect("--split: a fraction"),
            "--fanout" => {
                scenario.config.reconcile_fanout =
                    value("--fanout").parse().expect("--fanout: 2..=64");
            }
            "--leaf" => {
                scenario.config.reconcile_leaf = value("--leaf").parse().expect("--leaf: 1..=256");
            }
            other => {
                eprintln!("unknown argument {other}; see the example's documentation");
                return ExitCode::FAILURE;
            }
        }
    }
    let started = Instant::now();
    let report = common::run(&scenario);
    println!(
        "{} wall={:.1}s",
        report.line(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
