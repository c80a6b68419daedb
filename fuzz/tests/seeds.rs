//! Replays every committed seed and a deterministic stream of random and mutated inputs
//! through every fuzz target, on stable Rust.

use std::path::Path;

use dawn_fuzz::TARGETS;

/// Inputs per target beyond the seeds; small enough for every test run.
const RANDOM_INPUTS: usize = 2_000;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn seeds(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn every_target_has_seeds_and_a_binary() {
    for target in TARGETS {
        assert!(
            !seeds(target.name).is_empty(),
            "{} has no seeds",
            target.name
        );
        let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz_targets")
            .join(format!("{}.rs", target.name));
        assert!(bin.exists(), "{} has no fuzz_targets file", target.name);
    }
}

#[test]
fn seeds_random_and_mutated_inputs_hold_every_property() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for target in TARGETS {
        let seeds = seeds(target.name);
        for (i, seed) in seeds.iter().enumerate() {
            (target.check)(seed).unwrap_or_else(|e| panic!("{} seed {i}: {e}", target.name));
        }
        for round in 0..RANDOM_INPUTS {
            let input = if round % 2 == 0 {
                let len = (rng.next() % 512) as usize;
                (0..len).map(|_| rng.next() as u8).collect::<Vec<_>>()
            } else {
                // Mutate a seed: flip, insert or truncate.
                let mut input = seeds[round % seeds.len()].clone();
                for _ in 0..=(rng.next() % 4) {
                    match rng.next() % 3 {
                        0 if !input.is_empty() => {
                            let at = (rng.next() as usize) % input.len();
                            input[at] ^= 1 << (rng.next() % 8);
                        }
                        1 => {
                            let at = (rng.next() as usize) % (input.len() + 1);
                            input.insert(at, rng.next() as u8);
                        }
                        _ => {
                            let keep = (rng.next() as usize) % (input.len() + 1);
                            input.truncate(keep);
                        }
                    }
                }
                input
            };
            (target.check)(&input)
                .unwrap_or_else(|e| panic!("{} input {input:02x?}: {e}", target.name));
        }
    }
}
