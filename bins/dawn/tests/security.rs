//! `dawn audit`, `dawn trust`, `dawn backup` and `dawn restore` against real nodes on
//! loopback and their data directories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use dawn_node::{AuditEntry, Node, NodeBuilder, NodeId, TrustLevel, TrustUpdate};

const BIN: &str = env!("CARGO_BIN_EXE_dawn");

fn dawn(home: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DAWN_") {
            command.env_remove(&name);
        }
    }
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn start(dir: &Path) -> Node {
    let loopback = "127.0.0.1:0".parse().unwrap();
    NodeBuilder::new()
        .data_dir(dir)
        .listen(loopback)
        .http(Some(loopback))
        .development_mode(true)
        .start()
        .await
        .unwrap()
}

/// A made-up peer: one of three valid node ids (the CLI does not depend on dawn-crypto to
/// make keys).
fn peer(seed: u8) -> NodeId {
    let ids = [
        "pfqi2ljchfqlw4yvf7jbfiulsxpsiwm3mjpzuybrm5shrfahkuzq",
        "qe4xodvipulv6vvdkrtmgtd6ztfy3curwtxdpis56yhvxd6jwoka",
        "rkeohxlubhyzl7ks3mwtzos5olfgocn7dwkbeg7toseadnapn5oa",
    ];
    ids[usize::from(seed) % ids.len()].parse().unwrap()
}

#[test]
fn audit_verify_passes_then_fails_after_a_row_is_edited() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let node = start(dir.path()).await;
        for seed in 0..3 {
            node.set_trust(peer(seed), TrustUpdate::new(TrustLevel::Trusted))
                .await
                .unwrap();
        }
        node.shutdown().await.unwrap();
    });
    let data_dir = dir.path().to_str().unwrap();

    let ok = dawn(home.path(), &["audit", "verify", "--data-dir", data_dir]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let out = text(&ok.stdout);
    assert!(out.contains("verified: 8 entries, next seq 8"), "{out}");

    let json = dawn(
        home.path(),
        &["--json", "audit", "verify", "--data-dir", data_dir],
    );
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["entries"], 8);

    let export = home.path().join("audit.jsonl");
    let exported = dawn(
        home.path(),
        &[
            "audit",
            "export",
            "--data-dir",
            data_dir,
            "--out",
            export.to_str().unwrap(),
        ],
    );
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let lines = std::fs::read_to_string(&export).unwrap();
    let entries: Vec<AuditEntry> = lines
        .lines()
        .map(|l| AuditEntry::from_json_line(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 8);
    assert_eq!(entries[7].seq(), 7);

    // One byte of entry 5, edited in SQLite behind the store's back.
    let db = rusqlite::Connection::open(dir.path().join(dawn_node::DB_FILE_NAME)).unwrap();
    let mut entry: Vec<u8> = db
        .query_row("SELECT entry FROM audit_log WHERE seq = 5", [], |r| {
            r.get(0)
        })
        .unwrap();
    let at = entry.len() - 64 - 32 - 2;
    entry[at] ^= 0x20;
    db.execute_batch("DROP TRIGGER audit_log_no_update")
        .unwrap();
    db.execute("UPDATE audit_log SET entry = ?1 WHERE seq = 5", [&entry])
        .unwrap();
    drop(db);

    let bad = dawn(home.path(), &["audit", "verify", "--data-dir", data_dir]);
    assert_eq!(bad.status.code(), Some(1));
    let err = text(&bad.stderr);
    assert!(
        err.contains("audit entry 5 (position 5) was tampered with"),
        "{err}"
    );

    // A directory that is not a node's is a clear error too.
    let empty = tempfile::tempdir().unwrap();
    let none = dawn(
        home.path(),
        &[
            "audit",
            "verify",
            "--data-dir",
            empty.path().to_str().unwrap(),
        ],
    );
    assert_eq!(none.status.code(), Some(1));
    assert!(
        text(&none.stderr).contains("no node key"),
        "{}",
        text(&none.stderr)
    );
}

#[test]
fn trust_lists_and_assigns_through_the_admin_api() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let node = rt.block_on(start(dir.path()));
    let url = format!("http://{}", node.http_addr().unwrap());
    let target = peer(1).to_string();

    let set = dawn(
        home.path(),
        &["--node", &url, "trust", &target, "untrusted"],
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    assert!(
        text(&set.stdout).starts_with(&format!("{target} is now untrusted (score ")),
        "{}",
        text(&set.stdout)
    );
    assert_eq!(node.trust(&peer(1)).level, TrustLevel::Untrusted);

    let list = dawn(home.path(), &["--node", &url, "trust"]);
    let out = text(&list.stdout);
    assert!(out.starts_with("NODE ID"), "{out}");
    assert!(out.contains(&format!("{target}  untrusted")), "{out}");

    let verified = dawn(home.path(), &["--node", &url, "trust", &target, "verified"]);
    assert_eq!(verified.status.code(), Some(1));
    assert!(text(&verified.stderr).contains("cannot be assigned"));
    let bad = dawn(home.path(), &["--node", &url, "trust", &target, "friend"]);
    assert_eq!(bad.status.code(), Some(2), "clap refuses an unknown level");

    rt.block_on(node.shutdown()).unwrap();
}

#[test]
fn backup_while_running_and_restore_once_stopped() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spare = tempfile::tempdir().unwrap();
    let file = spare.path().join("node.backup");
    let (data_dir, file_arg) = (dir.path().to_str().unwrap(), file.to_str().unwrap());
    let rt = runtime();
    let node = rt.block_on(async {
        let node = start(dir.path()).await;
        node.set_trust(peer(0), TrustUpdate::new(TrustLevel::Trusted))
            .await
            .unwrap();
        node
    });

    let done = dawn(home.path(), &["backup", file_arg, "--data-dir", data_dir]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(file.is_file());
    let again = dawn(home.path(), &["backup", file_arg, "--data-dir", data_dir]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing file is never replaced"
    );

    rt.block_on(async {
        node.set_trust(peer(0), TrustUpdate::new(TrustLevel::Untrusted))
            .await
            .unwrap();
    });
    let refused = dawn(home.path(), &["restore", file_arg, "--data-dir", data_dir]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("a dawn-node is running"),
        "{}",
        text(&refused.stderr)
    );
    rt.block_on(node.shutdown()).unwrap();

    let restored = dawn(home.path(), &["restore", file_arg, "--data-dir", data_dir]);
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    assert!(
        text(&restored.stdout).contains("verified: 3 entries"),
        "{}",
        text(&restored.stdout)
    );
    let level = rt.block_on(async {
        let node = start(dir.path()).await;
        let level = node.trust(&peer(0)).level;
        node.shutdown().await.unwrap();
        level
    });
    assert_eq!(level, TrustLevel::Trusted);
}
