//! Using one database from many threads and from two handles at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Barrier;
use std::thread;

use common::{at, db_path, node};
use dawn_store::Store;

#[test]
fn clones_of_a_store_serialise_writes_from_many_threads() {
    const THREADS: u64 = 8;
    const ROUNDS: u64 = 100;
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    store.peers().upsert(&node(0), &[], at(0)).unwrap();

    let barrier = Barrier::new(usize::try_from(THREADS).unwrap());
    thread::scope(|s| {
        for t in 0..THREADS {
            let store = store.clone();
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for r in 0..ROUNDS {
                    store.peers().record_failure(&node(0), at(r)).unwrap();
                    let own = node(1 + t * ROUNDS + r);
                    store
                        .peers()
                        .upsert(&own, &["192.0.2.1:9".parse().unwrap()], at(r))
                        .unwrap();
                    assert!(store.peers().get(&own).unwrap().is_some());
                    if r % 10 == 0 {
                        store.peers().list(50).unwrap();
                    }
                }
            });
        }
    });

    let shared = store.peers().get(&node(0)).unwrap().unwrap();
    assert_eq!(u64::from(shared.failures), THREADS * ROUNDS);
    assert_eq!(store.peers().count().unwrap(), 1 + THREADS * ROUNDS);
}

#[test]
fn two_handles_on_one_file_wait_for_each_other() {
    let (_dir, path) = db_path();
    let a = Store::open(&path).unwrap();
    let b = Store::open(&path).unwrap();
    a.peers().upsert(&node(0), &[], at(0)).unwrap();

    thread::scope(|s| {
        for (offset, store) in [(1_000, &a), (2_000, &b)] {
            s.spawn(move || {
                for i in 0..200 {
                    store.peers().record_failure(&node(0), at(i)).unwrap();
                    let batch = vec![(node(offset + i), vec![])];
                    store.peers().upsert_many(&batch, at(i)).unwrap();
                }
            });
        }
    });

    assert_eq!(a.peers().get(&node(0)).unwrap().unwrap().failures, 400);
    assert_eq!(b.peers().count().unwrap(), 401);
}
