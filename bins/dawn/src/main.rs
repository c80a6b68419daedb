//! `dawn`: asks a running Dawn node about itself and its peers and gossips through it, over its
//! HTTP API; `dawn simulate` runs many real nodes in one process and times broadcasts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use dawn_node::{
    ApiError, BroadcastReceipt, Config, Delivery, NodeStatus, PeerInfo, PeerList, RecentDeliveries,
    SimulationOptions, default_config_path,
};
use serde::de::DeserializeOwned;

mod agents;
mod audit;
mod backup;
mod mcp_bridge;
mod trust;

mod health;

/// Largest response read from the node, in bytes.
const MAX_RESPONSE: u64 = 8 * 1024 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "dawn",
    version,
    about = "Ask a running Dawn node about itself and its peers, gossip through it, or simulate a mesh"
)]
struct Cli {
    /// The node's HTTP API, as http://HOST:PORT. Default: DAWN_NODE, else the config file's
    /// http.listen, else http://127.0.0.1:7601.
    #[arg(long, global = true, env = "DAWN_NODE", value_name = "URL")]
    node: Option<String>,
    /// Config file to take the node's HTTP address from. Default: DAWN_CONFIG, else
    /// ~/.config/dawn/config.toml if it exists.
    #[arg(long, global = true, env = "DAWN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the node's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the node's id.
    Id,
    /// Show the node's id, version, uptime, addresses and peers, and its health: gossip
    /// counters, readiness (GET /readyz) and agents (GET /api/agents).
    Status,
    /// List the peers the node knows, connected ones first.
    Peers,
    /// Broadcast a message on a gossip topic; prints its id.
    Broadcast {
        /// The topic (1 to 255 visible ASCII characters).
        topic: String,
        /// The message (UTF-8 text, at most 16 KiB).
        message: String,
    },
    /// Show the node's recent deliveries on a gossip topic (the first call subscribes the node
    /// to it).
    Deliveries {
        /// The topic.
        topic: String,
    },
    /// List the agents of the whole mesh, grouped by node.
    Agents,
    /// Call a tool of any agent on the mesh and print its text result.
    Call {
        /// The agent's address, `<node_id>:<agent_id>`.
        address: String,
        /// The tool's name.
        tool: String,
        /// The arguments, a JSON object.
        #[arg(default_value = "{}")]
        arguments: String,
    },
    /// Bridge an MCP client's stdio to the node's MCP gateway (`/mcp`): configure desktop
    /// MCP clients to launch `dawn mcp` as a server.
    Mcp,
    /// Verify or export the node's audit log (reads the database; the node may be stopped).
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// List the peers' trust levels and scores, or assign a peer a level (admin API).
    Trust(trust::TrustArgs),
    /// Copy the node's database to FILE (works while the node runs).
    Backup(backup::BackupArgs),
    /// Put a backup back as the node's database (refused while the node runs).
    Restore(backup::RestoreArgs),
    /// Start N real nodes on 127.0.0.1 in this process, join them through node 0, broadcast
    /// from several of them, and print who received each message and how fast.
    Simulate {
        /// How many nodes to start.
        #[arg(long, default_value_t = 20)]
        nodes: usize,
        /// Seed that chooses the broadcasting nodes (random if absent).
        #[arg(long)]
        seed: Option<u64>,
        /// How many messages to broadcast.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
        messages: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dawn: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    if let Command::Simulate {
        nodes,
        seed,
        messages,
    } = cli.command
    {
        return simulate(nodes, seed, messages);
    }
    match &cli.command {
        Command::Audit { command } => return audit::run(command, cli.config.as_deref(), cli.json),
        Command::Backup(args) => return backup::run_backup(args, cli.config.as_deref()),
        Command::Restore(args) => return backup::run_restore(args, cli.config.as_deref()),
        _ => {}
    }
    let base = node_url(cli)?;
    if let Command::Mcp = cli.command {
        return mcp_bridge::run(&base, std::io::stdin(), Box::new(std::io::stdout()));
    }
    let client = Client::new(base);
    match cli.command {
        Command::Id => {
            let status: NodeStatus = client.get("/api/status")?.1;
            if cli.json {
                println!("{}", serde_json::json!({ "node_id": status.node_id }));
            } else {
                println!("{}", status.node_id);
            }
        }
        Command::Status => {
            let (raw, status): (_, NodeStatus) = client.get("/api/status")?;
            if cli.json {
                print_json(&raw)?;
            } else {
                print!("{}", format_status(&status));
                print!("{}", health::summary(&client, &status)?);
            }
        }
        Command::Simulate { .. }
        | Command::Audit { .. }
        | Command::Backup(_)
        | Command::Restore(_)
        | Command::Mcp => {}
        Command::Agents => agents::list(&client, cli.json)?,
        Command::Call {
            ref address,
            ref tool,
            ref arguments,
        } => agents::call(&client, address, tool, arguments, cli.json)?,
        Command::Trust(ref args) => trust::run(&client, args, cli.config.as_deref(), cli.json)?,
        Command::Broadcast {
            ref topic,
            ref message,
        } => {
            let path = format!("/api/gossip/{}", encode_path(topic));
            let (raw, receipt): (_, BroadcastReceipt) = client.post(&path, message.as_bytes())?;
            if cli.json {
                print_json(&raw)?;
            } else {
                println!("{}", receipt.message_id);
            }
        }
        Command::Deliveries { ref topic } => {
            let path = format!("/api/gossip/{}", encode_path(topic));
            let (raw, recent): (_, RecentDeliveries) = client.get(&path)?;
            if cli.json {
                print_json(&raw)?;
            } else {
                print!("{}", format_deliveries(&recent.deliveries, now_unix_ms()));
            }
        }
        Command::Peers => {
            let (raw, list): (_, PeerList) = client.get("/api/peers")?;
            if cli.json {
                print_json(&raw)?;
            } else {
                print!("{}", format_peers(&list.peers, now_unix_ms()));
            }
        }
    }
    Ok(())
}

/// Runs `dawn simulate`; fails if a broadcast missed a node.
/// Logs (stderr) only when `RUST_LOG` asks for them.
fn simulate(nodes: usize, seed: Option<u64>, messages: u16) -> anyhow::Result<()> {
    if let Some(filter) = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()) {
        let filter = tracing_subscriber::EnvFilter::try_new(&filter)
            .map_err(|e| anyhow::anyhow!("RUST_LOG: {filter:?} is not a log filter ({e})"))?;
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut options = SimulationOptions::new(nodes);
    options.seed = seed;
    options.messages = usize::from(messages);
    let report = runtime.block_on(dawn_node::simulate(options))?;
    print!("{report}");
    if !report.complete() {
        bail!("not every node received every message");
    }
    Ok(())
}

/// Percent-encodes a topic for a URL path, keeping `/` and unreserved characters.
fn encode_path(topic: &str) -> String {
    let mut out = String::with_capacity(topic.len());
    for b in topic.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn format_deliveries(deliveries: &[Delivery], now: u64) -> String {
    if deliveries.is_empty() {
        return "no deliveries\n".to_owned();
    }
    let mut out = String::new();
    for d in deliveries {
        out.push_str(&format!(
            "{}  {}  {} hops  {}\n",
            ago(Some(d.received_unix_ms), now),
            d.origin.fmt_short(),
            d.hops,
            String::from_utf8_lossy(&d.payload).escape_debug()
        ));
    }
    out
}

fn print_json(raw: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(raw)?);
    Ok(())
}

/// Where the node's API is: `--node`/`DAWN_NODE`, else the config file, else the default.
fn node_url(cli: &Cli) -> anyhow::Result<String> {
    if let Some(url) = &cli.node {
        return parse_node_url(url);
    }
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => match default_config_path().filter(|p| p.exists()) {
            Some(path) => Config::load(&path)?,
            None => Config::default(),
        },
    };
    config.apply_env(std::env::vars_os())?;
    Ok(format!("http://{}", dialable(config.http.listen)))
}

/// A listen address to connect to: an unspecified IP means this host's loopback.
fn dialable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Accepts `http://HOST:PORT` (a trailing `/` is fine) or `HOST:PORT`.
fn parse_node_url(text: &str) -> anyhow::Result<String> {
    let trimmed = text.trim();
    let rest = match trimmed.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => bail!(
            "--node {text:?}: only http:// is supported (the node API is plain HTTP on loopback), not {scheme}://"
        ),
        None => trimmed,
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let valid = match authority.rsplit_once(':') {
        Some((host, port)) => {
            let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'))
            {
                v6.parse::<Ipv6Addr>().is_ok()
            } else {
                !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            };
            host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    };
    if !valid {
        bail!("--node {text:?}: expected http://HOST:PORT, e.g. http://127.0.0.1:7601");
    }
    Ok(format!("http://{authority}"))
}

struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(base: String) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // The node is on this machine: never go through a proxy from the environment.
            .proxy(None)
            .timeout_connect(Some(Duration::from_secs(3)))
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Self { base, agent }
    }

    /// GETs `path` and decodes it, returning the raw JSON too.
    fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<(serde_json::Value, T)> {
        let url = format!("{}{path}", self.base);
        let response = self.agent.get(&url).call();
        self.decode(&url, response)
    }

    /// POSTs `body` as `application/octet-stream` to `path` and decodes the answer.
    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &[u8],
    ) -> anyhow::Result<(serde_json::Value, T)> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .post(&url)
            .header("Content-Type", "application/octet-stream")
            .send(body);
        self.decode(&url, response)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<(serde_json::Value, T)> {
        let mut response = response.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_string()
            .with_context(|| format!("reading the answer of {url}"))?;
        if !status.is_success() {
            if let Ok(error) = serde_json::from_str::<ApiError>(&body) {
                bail!(
                    "{url}: {} ({}, {status})",
                    error.error.message,
                    error.error.code
                );
            }
            bail!("{url} answered {status}; is a Dawn node listening there?");
        }
        let raw: serde_json::Value = serde_json::from_str(&body).with_context(|| {
            format!("{url} did not answer JSON; is a Dawn node listening there?")
        })?;
        let typed = serde_json::from_value(raw.clone()).with_context(|| {
            format!("{url} answered JSON this version of dawn does not understand")
        })?;
        Ok((raw, typed))
    }

    fn unreachable(&self, error: &ureq::Error) -> anyhow::Error {
        let why = match error {
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                "connection refused".to_owned()
            }
            ureq::Error::ConnectionFailed => "connection failed".to_owned(),
            ureq::Error::Timeout(_) => "timed out".to_owned(),
            ureq::Error::HostNotFound => "host not found".to_owned(),
            other => other.to_string(),
        };
        anyhow::anyhow!(
            "no Dawn node is answering at {} ({why}). Start one with `dawn-node run`, or point \
             dawn at it with --node URL or DAWN_NODE",
            self.base
        )
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn format_status(status: &NodeStatus) -> String {
    let list = |addrs: &[SocketAddr]| {
        if addrs.is_empty() {
            "-".to_owned()
        } else {
            addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let rows = [
        ("node id", status.node_id.to_string()),
        ("version", status.version.clone()),
        ("uptime", duration(status.uptime_secs)),
        ("quic", list(&status.listen_addrs)),
        (
            "http",
            status
                .http_addr
                .map_or_else(|| "-".to_owned(), |a| a.to_string()),
        ),
        (
            "peers",
            format!(
                "{} connected, {} known",
                status.peer_count, status.known_peer_count
            ),
        ),
    ];
    rows.iter().map(|(k, v)| format!("{k:<9} {v}\n")).collect()
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

fn ago(then: Option<u64>, now: u64) -> String {
    match then {
        None => "never".to_owned(),
        Some(then) => {
            let secs = now.saturating_sub(then) / 1000;
            if secs < 2 {
                "now".to_owned()
            } else {
                format!("{} ago", duration(secs))
            }
        }
    }
}

fn format_peers(peers: &[PeerInfo], now: u64) -> String {
    if peers.is_empty() {
        return "no peers\n".to_owned();
    }
    let header = [
        "NODE ID",
        "STATE",
        "VIEW",
        "DIRECTION",
        "ADDRESSES",
        "LAST SEEN",
        "FAILURES",
    ];
    let rows: Vec<[String; 7]> = peers
        .iter()
        .map(|p| {
            let addrs = if p.addresses.is_empty() {
                "-".to_owned()
            } else {
                p.addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            [
                format!(
                    "{}{}",
                    p.node_id,
                    if p.bootstrap { " (bootstrap)" } else { "" }
                ),
                if p.connected {
                    "connected"
                } else {
                    "disconnected"
                }
                .to_owned(),
                p.view.map_or("-", |v| v.as_str()).to_owned(),
                p.direction.map_or("-", |d| d.as_str()).to_owned(),
                addrs,
                ago(p.last_seen_unix_ms, now),
                p.failures.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls() {
        assert_eq!(
            parse_node_url("http://127.0.0.1:7601/").unwrap(),
            "http://127.0.0.1:7601"
        );
        assert_eq!(parse_node_url("localhost:9").unwrap(), "http://localhost:9");
        assert_eq!(
            parse_node_url("http://[::1]:7601").unwrap(),
            "http://[::1]:7601"
        );
        for bad in [
            "https://127.0.0.1:7601",
            "127.0.0.1",
            "http://127.0.0.1:0",
            "http://a b:1",
            "http://[zz]:1",
            "ftp://x:1",
            "http://h:1/api",
        ] {
            assert!(parse_node_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            dialable("0.0.0.0:7601".parse().unwrap()),
            "127.0.0.1:7601".parse().unwrap()
        );
        assert_eq!(
            dialable("[::]:7601".parse().unwrap()),
            "[::1]:7601".parse().unwrap()
        );
    }

    #[test]
    fn tables() {
        let id = "pfqi2ljchfqlw4yvf7jbfiulsxpsiwm3mjpzuybrm5shrfahkuzq";
        let status: NodeStatus = serde_json::from_value(serde_json::json!({
            "node_id": id, "version": "0.1.0", "uptime_secs": 3725,
            "listen_addrs": ["127.0.0.1:7600"], "http_addr": "127.0.0.1:7601",
            "peer_count": 1, "known_peer_count": 2, "some_future_field": true
        }))
        .unwrap();
        let text = format_status(&status);
        assert!(text.contains(&format!("node id   {id}\n")), "{text}");
        assert!(text.contains("uptime    1h 2m 5s\n"), "{text}");
        assert!(text.contains("peers     1 connected, 2 known\n"), "{text}");

        let list: PeerList = serde_json::from_value(serde_json::json!({ "peers": [
            { "node_id": id, "addresses": ["127.0.0.1:7600"], "connected": true,
              "direction": "outbound", "first_seen_unix_ms": 1, "last_seen_unix_ms": 10_000,
              "failures": 0, "bootstrap": true, "view": "active" },
        ]}))
        .unwrap();
        let text = format_peers(&list.peers, 70_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("NODE ID"));
        assert!(
            lines[1].contains(
                "(bootstrap)  connected  active  outbound   127.0.0.1:7600  1m 0s ago  0"
            ),
            "{text}"
        );
        assert_eq!(format_peers(&[], 0), "no peers\n");
    }
}
