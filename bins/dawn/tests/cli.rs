//! The `dawn` binary against real nodes running in this process, and against nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dawn_node::{BootstrapPeer, Node, NodeBuilder};

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
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "dawn failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Two peered nodes on loopback, on a runtime of their own.
struct Pair {
    runtime: tokio::runtime::Runtime,
    a: Option<Node>,
    b: Option<Node>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Pair {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let loopback = "127.0.0.1:0".parse().unwrap();
        let (a, b) = runtime.block_on(async {
            let a = NodeBuilder::new()
                .data_dir(dirs.0.path())
                .listen(loopback)
                .http(Some(loopback))
                .development_mode(true)
                .start()
                .await
                .unwrap();
            let b = NodeBuilder::new()
                .data_dir(dirs.1.path())
                .listen(loopback)
                .http(Some(loopback))
                .development_mode(true)
                .bootstrap([BootstrapPeer::new(a.node_id(), a.quic_addr())])
                .start()
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while a.status().peer_count == 0 || b.status().peer_count == 0 {
                assert!(Instant::now() < deadline, "no peering");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (a, b)
        });
        Self {
            runtime,
            a: Some(a),
            b: Some(b),
            _dirs: dirs,
        }
    }

    fn a(&self) -> &Node {
        self.a.as_ref().unwrap()
    }

    fn b(&self) -> &Node {
        self.b.as_ref().unwrap()
    }

    fn url(&self) -> String {
        format!("http://{}", self.a().http_addr().unwrap())
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let (a, b) = (self.a.take(), self.b.take());
        self.runtime.block_on(async {
            for node in [b, a].into_iter().flatten() {
                let _ = node.shutdown().await;
            }
        });
    }
}

#[test]
fn id_status_and_peers_as_tables_and_json() {
    let home = tempfile::tempdir().unwrap();
    let pair = Pair::start();
    let url = pair.url();
    let (a, b) = (
        pair.a().node_id().to_string(),
        pair.b().node_id().to_string(),
    );

    let id = stdout(&dawn(home.path(), &["--node", &url, "id"]));
    assert_eq!(id, format!("{a}\n"));

    let status = stdout(&dawn(home.path(), &["status", "--node", &url]));
    assert!(status.contains(&format!("node id   {a}\n")), "{status}");
    assert!(
        status.contains(&format!("quic      {}\n", pair.a().quic_addr())),
        "{status}"
    );
    assert!(
        status.contains("peers     1 connected, 1 known\n"),
        "{status}"
    );

    let peers = stdout(&dawn(home.path(), &["peers", "--node", &url]));
    let lines: Vec<&str> = peers.lines().collect();
    assert_eq!(lines.len(), 2, "{peers}");
    assert!(lines[0].starts_with("NODE ID"), "{peers}");
    assert!(lines[1].starts_with(&b), "{peers}");
    // The VIEW column between them depends on how far the gossip join has got.
    assert!(lines[1].contains("  connected  "), "{peers}");
    assert!(lines[1].contains("  inbound  "), "{peers}");
    assert!(
        lines[1].contains(&pair.b().quic_addr().to_string()),
        "{peers}"
    );

    let json: serde_json::Value = serde_json::from_str(&stdout(&dawn(
        home.path(),
        &["peers", "--json", "--node", &url],
    )))
    .unwrap();
    assert_eq!(json["peers"][0]["node_id"], b);
    assert_eq!(json["peers"][0]["direction"], "inbound");
    let json: serde_json::Value = serde_json::from_str(&stdout(&dawn(
        home.path(),
        &["status", "--json", "--node", &url],
    )))
    .unwrap();
    assert_eq!(json["node_id"], a);
    let json: serde_json::Value = serde_json::from_str(&stdout(&dawn(
        home.path(),
        &["id", "--json", "--node", &url],
    )))
    .unwrap();
    assert_eq!(json, serde_json::json!({ "node_id": a }));
}

#[test]
fn the_node_address_comes_from_dawn_node_or_the_config_file() {
    let home = tempfile::tempdir().unwrap();
    let pair = Pair::start();
    let a = pair.a().node_id().to_string();
    let http = pair.a().http_addr().unwrap();

    let mut command = Command::new(BIN);
    command
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("DAWN_NODE", format!("http://{http}/"))
        .arg("id");
    assert_eq!(stdout(&command.output().unwrap()), format!("{a}\n"));

    let config = home.path().join("node.toml");
    std::fs::write(&config, format!("[http]\nlisten = \"{http}\"\n")).unwrap();
    let out = dawn(home.path(), &["--config", config.to_str().unwrap(), "id"]);
    assert_eq!(stdout(&out), format!("{a}\n"));

    // The default config file is read when present.
    let default = home.path().join("config/dawn/config.toml");
    std::fs::create_dir_all(default.parent().unwrap()).unwrap();
    std::fs::write(
        &default,
        format!("[http]\nlisten = \"0.0.0.0:{}\"\n", http.port()),
    )
    .unwrap();
    assert_eq!(stdout(&dawn(home.path(), &["id"])), format!("{a}\n"));
}

#[test]
fn no_node_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = dawn(home.path(), &["status", "--node", &url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("no Dawn node is answering at {url}")),
        "{stderr}"
    );
    assert!(stderr.contains("dawn-node run"), "{stderr}");

    let out = dawn(home.path(), &["status", "--node", "https://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only http://"));

    let bad = home.path().join("bad.toml");
    std::fs::write(&bad, "[http]\nlisten = \"x\"\n").unwrap();
    let out = dawn(home.path(), &["--config", bad.to_str().unwrap(), "id"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("http.listen: \"x\" is not a socket address"),
        "{stderr}"
    );
}

#[test]
fn broadcast_and_deliveries_through_two_nodes() {
    let home = tempfile::tempdir().unwrap();
    let pair = Pair::start();
    let url_a = pair.url();
    let url_b = format!("http://{}", pair.b().http_addr().unwrap());
    let topic = "cli/test?topic#1%";

    // The first look subscribes b.
    let none = stdout(&dawn(home.path(), &["--node", &url_b, "deliveries", topic]));
    assert_eq!(none, "no deliveries\n");

    // Wait until a and b are gossip neighbours, then broadcast from a.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pair.a().gossip_views().0.contains(&pair.b().node_id()) {
        assert!(Instant::now() < deadline, "no gossip link");
        std::thread::sleep(Duration::from_millis(10));
    }
    let id = stdout(&dawn(
        home.path(),
        &["--node", &url_a, "broadcast", topic, "hello \"b\""],
    ));
    assert_eq!(id.trim().len(), 64, "{id}");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let json: serde_json::Value = serde_json::from_str(&stdout(&dawn(
            home.path(),
            &["--node", &url_b, "--json", "deliveries", topic],
        )))
        .unwrap();
        if let Some(first) = json["deliveries"].get(0) {
            assert_eq!(first["message_id"], id.trim());
            assert_eq!(first["payload"], "hello \"b\"");
            assert_eq!(first["topic"], topic);
            break;
        }
        assert!(Instant::now() < deadline, "no delivery");
        std::thread::sleep(Duration::from_millis(20));
    }
    let table = stdout(&dawn(home.path(), &["--node", &url_b, "deliveries", topic]));
    assert!(table.contains("1 hops  hello \\\"b\\\""), "{table}");

    // A bad topic is the node's typed error, exit 1.
    let bad = dawn(home.path(), &["--node", &url_a, "broadcast", "é", "x"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid topic"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
