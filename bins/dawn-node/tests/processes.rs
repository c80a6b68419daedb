//! Real `dawn-node` processes on loopback: readiness line, peering through `--bootstrap`,
//! reconnect after a restart, clean exit on SIGTERM, and the errors an operator sees.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_dawn-node");

/// A `dawn-node` command with a clean environment: no `DAWN_*` variables from the caller and
/// a config directory of its own, so the user's files are never read.
fn command(home: &Path) -> Command {
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
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    command
}

/// A running node process; killed when dropped, so a failing test leaves nothing behind.
struct NodeProcess {
    child: Child,
    node_id: String,
    quic: SocketAddr,
    http: SocketAddr,
    stderr: PathBuf,
}

impl NodeProcess {
    fn spawn(home: &Path, name: &str, data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn_with(command(home), home, name, data_dir, extra)
    }

    fn spawn_with(
        mut command: Command,
        home: &Path,
        name: &str,
        data_dir: &Path,
        extra: &[&str],
    ) -> Self {
        let stderr = home.join(format!("{name}.stderr"));
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&stderr)
            .unwrap();
        let mut child = command
            .arg("run")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("dawn-node ready ") {
                    let _ = tx.send(line);
                }
            }
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "{name} never printed its ready line; stderr:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        let field = |key: &str| {
            line.split(' ')
                .find_map(|part| part.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
                .to_owned()
        };
        Self {
            node_id: field("node_id"),
            quic: field("quic").parse().unwrap(),
            http: field("http").parse().unwrap(),
            child,
            stderr,
        }
    }

    fn bootstrap_arg(&self) -> String {
        format!("{}@{}", self.node_id, self.quic)
    }

    fn peers(&self) -> serde_json::Value {
        get_json(self.http, "/api/peers")
    }

    /// Whether this node lists `other` as connected.
    fn lists(&self, other: &str) -> bool {
        self.peers()["peers"].as_array().is_some_and(|peers| {
            peers
                .iter()
                .any(|p| p["node_id"] == other && p["connected"] == true)
        })
    }

    /// Sends SIGTERM and waits for the exit.
    fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit 20 s after SIGTERM; stderr:\n{}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare HTTP/1.1 GET to the node's loopback API.
fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap()
}

fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_processes_peer_reconnect_after_a_restart_and_exit_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (home.path().join("a"), home.path().join("b"));
    let a = NodeProcess::spawn(home.path(), "a", &dir_a, &["--listen", "127.0.0.1:0"]);
    assert_ne!(a.quic.port(), 0, "the bound port is printed");
    assert_ne!(a.http.port(), 0);
    let b = NodeProcess::spawn(
        home.path(),
        "b",
        &dir_b,
        &["--listen", "127.0.0.1:0", "--bootstrap", &a.bootstrap_arg()],
    );
    let took = eventually(Duration::from_secs(10), "A and B list each other", || {
        a.lists(&b.node_id) && b.lists(&a.node_id)
    });
    eprintln!("peered in {took:?}");
    let status = get_json(a.http, "/api/status");
    assert_eq!(status["node_id"], a.node_id);
    assert_eq!(status["peer_count"], 1);

    // Restart A on the same port and data directory: same identity, and B gets it back.
    let (a_id, a_quic) = (a.node_id.clone(), a.quic);
    let exit = a.terminate();
    assert!(exit.success(), "A exited with {exit}");
    eventually(Duration::from_secs(10), "B sees A go", || !b.lists(&a_id));
    let quic = a_quic.to_string();
    let a = NodeProcess::spawn(home.path(), "a", &dir_a, &["--listen", &quic]);
    assert_eq!(a.node_id, a_id, "the identity survives a restart");
    let took = eventually(Duration::from_secs(20), "A and B reconnect", || {
        a.lists(&b.node_id) && b.lists(&a.node_id)
    });
    eprintln!("reconnected in {took:?}");

    let started = Instant::now();
    let exit_b = b.terminate();
    let exit_a = a.terminate();
    assert!(exit_b.success(), "B exited with {exit_b}");
    assert!(exit_a.success(), "A exited with {exit_a}");
    eprintln!("both stopped in {:?}", started.elapsed());
}

#[test]
fn init_writes_a_config_that_run_accepts_and_never_overwrites() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("etc/dawn.toml");
    let out = command(home.path())
        .args(["init", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("# listen = \"0.0.0.0:7600\""));

    std::fs::write(&config, "# mine\n").unwrap();
    let out = command(home.path())
        .args(["init", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# mine\n");

    let out = command(home.path())
        .args(["init", "--force", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&config).unwrap(), written);

    // The written file runs as it is, found through DAWN_CONFIG.
    let mut with_config = command(home.path());
    with_config.env("DAWN_CONFIG", &config);
    let data = home.path().join("data-c");
    let running = NodeProcess::spawn_with(
        with_config,
        home.path(),
        "c",
        &data,
        &["--listen", "127.0.0.1:0"],
    );
    assert!(running.terminate().success());
}

#[test]
fn operator_errors_name_the_problem_and_exit_1() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("bad.toml");
    std::fs::write(&config, "[node]\nlisten = \"abc\"\n").unwrap();
    let out = command(home.path())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("node.listen: \"abc\" is not a socket address"),
        "{stderr}"
    );

    std::fs::write(&config, "[node]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let out = command(home.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown field `lisen`"), "{stderr}");

    let out = command(home.path())
        .env("DAWN_HTTP", "nope")
        .args(["--data-dir"])
        .arg(home.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DAWN_HTTP: \"nope\" is not a socket address"),
        "{stderr}"
    );
}

#[test]
fn an_encrypted_key_without_its_passphrase_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("node");
    let pass = home.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let node = NodeProcess::spawn(
        home.path(),
        "enc",
        &data,
        &[
            "--listen",
            "127.0.0.1:0",
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    let id = node.node_id.clone();
    assert!(node.terminate().success());

    // No passphrase and stdin is not a terminal: refuse, never make a new identity.
    let out = command(home.path())
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is encrypted and no passphrase was given"),
        "{stderr}"
    );

    // DAWN_PASSPHRASE opens it: same identity.
    let mut with_passphrase = command(home.path());
    with_passphrase.env("DAWN_PASSPHRASE", "correct horse battery staple");
    let node = NodeProcess::spawn_with(
        with_passphrase,
        home.path(),
        "enc",
        &data,
        &["--listen", "127.0.0.1:0"],
    );
    assert_eq!(node.node_id, id);
    assert!(node.terminate().success());
}

/// One HTTP/1.1 request with a JSON body to a node's loopback API: status and JSON answer.
fn send_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = body.to_string();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or_default())
}

/// The request ids (`dawn.req_id=...`) on the log lines that contain `marker`.
fn request_ids(log: &str, marker: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(marker))
        .filter_map(|line| {
            let rest = &line[line.find("dawn.req_id=")? + "dawn.req_id=".len()..];
            let id: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!id.is_empty()).then_some(id)
        })
        .collect()
}

#[test]
fn a_cross_node_call_carries_one_request_id_through_both_nodes_logs() {
    let home = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (home.path().join("a"), home.path().join("b"));
    let a = NodeProcess::spawn(home.path(), "a", &dir_a, &["--listen", "127.0.0.1:0"]);
    let b = NodeProcess::spawn(
        home.path(),
        "b",
        &dir_b,
        &["--listen", "127.0.0.1:0", "--bootstrap", &a.bootstrap_arg()],
    );
    // B lets A call its tools, then A waits until it knows B's agents.
    let (status, body) = send_json(
        b.http,
        "PUT",
        &format!("/api/trust/{}", a.node_id),
        &serde_json::json!({"level": "trusted"}),
    );
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !get_json(a.http, "/api/agents")["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|node| node["node_id"] == b.node_id.as_str())
    {
        assert!(Instant::now() < deadline, "A never learned B's agents");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (status, body) = send_json(
        a.http,
        "POST",
        &format!("/api/agents/{}/echo/tools/echo", b.node_id),
        &serde_json::json!({"text": "follow me"}),
    );
    assert_eq!(status, 200, "{body}");
    let sent = request_ids(
        &std::fs::read_to_string(&a.stderr).unwrap(),
        "agent tool call sent",
    );
    assert_eq!(sent.len(), 1, "A's log: {sent:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let received = request_ids(
            &std::fs::read_to_string(&b.stderr).unwrap(),
            "agent tool call received",
        );
        if received.contains(&sent[0]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never logged request {} (it logged {received:?})",
            sent[0]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(b.terminate().success());
    assert!(a.terminate().success());
}
