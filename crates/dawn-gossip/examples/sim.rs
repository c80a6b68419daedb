//! Measures the gossip core on the simulator and prints one line of figures.
//!
//! ```text
//! cargo run --release -p dawn-gossip --example sim -- --nodes 1000 --seed 1
//! cargo run --release -p dawn-gossip --example sim -- --nodes 1000 --seed 1 --loss 0.01 --churn 0.1
//! cargo run --release -p dawn-gossip --example sim -- --nodes 1000 --seed 1 --partition
//! ```
//!
//! Options: `--nodes N` (default 1000), `--seed S` (1), `--loss P` (0), `--churn P` (0),
//! `--partition`, `--warmup W` (3), `--measured M` (5). The scenario and the meaning of
//! every figure are described in `tests/common/mod.rs` and the crate's README.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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
            "--nodes" => {
                let nodes = value("--nodes").parse().expect("--nodes: a number");
                let seed = scenario.seed;
                scenario = common::Scenario {
                    nodes,
                    ..common::Scenario::new(nodes, seed)
                };
            }
            "--seed" => scenario.seed = value("--seed").parse().expect("--seed: a number"),
            "--loss" => scenario.loss = value("--loss").parse().expect("--loss: a probability"),
            "--churn" => scenario.churn = value("--churn").parse().expect("--churn: a fraction"),
            "--partition" => scenario.partition = true,
            "--warmup" => scenario.warmup = value("--warmup").parse().expect("--warmup: a count"),
            "--measured" => {
                scenario.measured = value("--measured").parse().expect("--measured: a count");
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
