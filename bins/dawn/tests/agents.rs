//! `dawn agents`, `dawn call` and the `dawn mcp` stdio bridge against a real node running in
//! this process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dawn_node::{Node, NodeBuilder};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_dawn");

fn command(home: &Path) -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DAWN_") {
            command.env_remove(&name);
        }
    }
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"));
    command
}

fn run(home: &Path, args: &[&str]) -> Output {
    command(home).args(args).output().unwrap()
}

struct Single {
    runtime: tokio::runtime::Runtime,
    node: Option<Node>,
    _dir: tempfile::TempDir,
}

impl Single {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let loopback = "127.0.0.1:0".parse().unwrap();
        let node = runtime.block_on(async {
            NodeBuilder::new()
                .data_dir(dir.path())
                .listen(loopback)
                .http(Some(loopback))
                .development_mode(true)
                .start()
                .await
                .unwrap()
        });
        let started = Instant::now();
        while node.directory().nodes.first().map_or(0, |n| n.agents.len()) < 4 {
            assert!(started.elapsed() < Duration::from_secs(10), "no agents");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            runtime,
            node: Some(node),
            _dir: dir,
        }
    }

    fn node(&self) -> &Node {
        self.node.as_ref().unwrap()
    }

    fn url(&self) -> String {
        format!("http://{}", self.node().http_addr().unwrap())
    }
}

impl Drop for Single {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let _ = self.runtime.block_on(node.shutdown());
        }
    }
}

#[test]
fn agents_lists_the_directory_and_call_runs_a_tool() {
    let single = Single::start();
    let home = tempfile::tempdir().unwrap();
    let url = single.url();
    let output = run(home.path(), &["--node", &url, "agents"]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("(this node)"), "{text}");
    for agent in ["echo", "memory", "directory", "guide"] {
        assert!(text.contains(agent), "{agent} missing: {text}");
    }

    let address = format!("{}:echo", single.node().node_id());
    let output = run(
        home.path(),
        &[
            "--node",
            &url,
            "call",
            &address,
            "echo",
            r#"{"text":"from the shell"}"#,
        ],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .contains("from the shell")
    );

    // Bad input: a clear error and a failing exit status, never a panic.
    let output = run(home.path(), &["--node", &url, "call", "nonsense", "echo"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("not an agent address"), "{stderr}");
    let output = run(
        home.path(),
        &["--node", &url, "call", &address, "echo", "[1,2]"],
    );
    assert!(!output.status.success());
    let output = run(
        home.path(),
        &[
            "--node",
            &url,
            "call",
            &format!("{}:nobody", single.node().node_id()),
            "echo",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("nobody"), "{stderr}");
}

/// Reads stdout lines until one answers request `id`.
fn answer(lines: &mut impl Iterator<Item = std::io::Result<String>>, id: i64) -> Value {
    for line in lines {
        let message: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if message["id"] == json!(id) {
            return message;
        }
    }
    panic!("the bridge ended before answering request {id}");
}

#[test]
fn mcp_bridges_stdio_to_the_gateway() {
    let single = Single::start();
    let home = tempfile::tempdir().unwrap();
    let mut child = command(home.path())
        .args(["--node", &single.url(), "mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = |message: Value| {
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    };

    send(json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bridge-test", "version": "1"}
        }
    }));
    let init = answer(&mut lines, 1);
    assert!(init["result"]["protocolVersion"].is_string(), "{init}");
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}));
    let tools = answer(&mut lines, 2);
    let prefix = &single.node().node_id().to_string()[..10];
    let name = format!("echo.echo.{prefix}");
    assert!(
        tools["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|tool| tool["name"] == json!(name)),
        "{tools}"
    );
    send(json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": name, "arguments": {"text": "through stdio"}}
    }));
    let called = answer(&mut lines, 3);
    assert!(called.to_string().contains("through stdio"), "{called}");
    // Garbage on stdin gets a JSON-RPC parse error, and the bridge keeps going.
    send(json!("not a request"));
    writeln!(stdin, "{{not json").unwrap();
    stdin.flush().unwrap();
    let parse_error: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(parse_error.to_string().contains("error"), "{parse_error}");

    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
}

#[test]
fn mcp_reports_an_unreachable_gateway_per_request() {
    let home = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut child = command(home.path())
        .args(["--node", &url, "mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
    )
    .unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let reply: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(reply["id"], json!(7));
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{reply}"
    );
}
