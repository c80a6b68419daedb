//! How long one call of the echo agent's `echo` tool takes, six ways, in one run on two real
//! nodes on loopback (B trusts A):
//!
//! | Mode | Path |
//! |---|---|
//! | `in_process` | B calls its own echo: `B.agent_client(B:echo)`, an in-process MCP session (the baseline) |
//! | `quic` | A calls B's echo: `A.agent_client(B:echo)`, a pooled MCP session over a QUIC stream |
//! | `gateway_local` | an MCP client (rmcp's streamable HTTP client) calls `echo.echo.<A prefix>` on A's `/mcp` |
//! | `gateway_remote` | the same client calls `echo.echo.<B prefix>` on A's `/mcp`: HTTP, gateway, QUIC, B |
//! | `gateway_raw` | the same call as `gateway_remote`, as hand-written JSON-RPC over one kept-alive HTTP/1.1 connection (the server's share of `gateway_remote`, without rmcp's client) |
//! | `rest_remote` | `POST /api/agents/<B>/echo/tools/echo` on A, over one kept-alive HTTP/1.1 connection |
//!
//! ```text
//! cargo run --release -p dawn-node --example gateway_latency -- --calls 2000
//! ```
//!
//! Options: `--calls N` per mode (default 2000), `--warmup N` per mode (default 200). The
//! modes are interleaved in batches of 50 calls so that a change of load on the machine
//! touches them all alike; the ratios to `in_process` are the figures to compare across
//! machines. The goal is a `gateway_remote` p50 under 2 ms on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dawn_identity::{AgentAddr, AgentId};
use dawn_node::{BootstrapPeer, Node, NodeBuilder, TrustLevel, TrustUpdate};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

type BoxError = Box<dyn Error + Send + Sync>;

/// Calls per mode before the modes take turns.
const BATCH: usize = 50;
/// The longest one call may take before the run fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the nodes get to connect and exchange their directories.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

const MODES: [&str; 6] = [
    "in_process",
    "quic",
    "gateway_local",
    "gateway_remote",
    "gateway_raw",
    "rest_remote",
];

struct Options {
    calls: usize,
    warmup: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        calls: 2000,
        warmup: 200,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--calls" => options.calls = number("--calls")?.max(1),
            "--warmup" => options.warmup = number("--warmup")?,
            other => return Err(format!("unknown argument {other}; see the example's docs")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gateway_latency failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn builder(dir: &Path) -> NodeBuilder {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    // Calls go back to back, thousands a second from one peer: far over the default
    // per-peer request limit (500/s), which this bench does not measure.
    let mut resilience = dawn_node::ResilienceConfig::default();
    resilience.call_limit.requests_per_sec = 1_000_000;
    resilience.call_limit.request_burst = 1_000_000;
    NodeBuilder::new()
        .resilience_config(resilience)
        .data_dir(dir)
        .listen(loopback)
        .http(Some(loopback))
        .development_mode(true)
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
}

/// Waits until `check` holds, or fails naming `what`.
async fn wait_for(what: &str, mut check: impl FnMut() -> bool) -> Result<(), BoxError> {
    let started = Instant::now();
    while !check() {
        if started.elapsed() > SETUP_TIMEOUT {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// One way of making the call.
enum Caller {
    Agent(dawn_mcp::AgentClient),
    Mcp {
        client:
            rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::InitializeRequestParams>,
        tool: String,
    },
    RawMcp {
        http: HttpClient,
        session: String,
        tool: String,
        next_id: u64,
    },
    Rest {
        http: HttpClient,
        path: String,
    },
}

impl Caller {
    /// Makes one call; returns when the answer was complete if that was before the end of
    /// the HTTP response (a chunked answer ends with one more chunk).
    async fn call(&mut self, arguments: &Map<String, Value>) -> Result<Option<Instant>, BoxError> {
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
        match self {
            Self::Agent(client) => {
                let result = client
                    .call_tool("echo", Some(arguments.clone()), deadline)
                    .await?;
                if result.is_error == Some(true) {
                    return Err(format!("the tool failed: {result:?}").into());
                }
            }
            Self::Mcp { client, tool } => {
                let mut params = CallToolRequestParams::new(tool.clone());
                params.arguments = Some(arguments.clone());
                let result = tokio::time::timeout_at(deadline, client.call_tool(params))
                    .await
                    .map_err(|_| "timed out")??;
                if result.is_error == Some(true) {
                    return Err(format!("the tool failed: {result:?}").into());
                }
            }
            Self::RawMcp {
                http,
                session,
                tool,
                next_id,
            } => {
                *next_id += 1;
                let request = json!({
                    "jsonrpc": "2.0",
                    "id": *next_id,
                    "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments},
                });
                let headers = mcp_headers(Some(session));
                let answer =
                    tokio::time::timeout_at(deadline, http.post("/mcp", &headers, &request))
                        .await??;
                if answer.status != 200 || !answer.body.contains("\"result\"") {
                    return Err(format!("HTTP {}: {}", answer.status, answer.body).into());
                }
                return Ok(answer.answered);
            }
            Self::Rest { http, path } => {
                let body = Value::Object(arguments.clone());
                let answer =
                    tokio::time::timeout_at(deadline, http.post(path, &[], &body)).await??;
                if answer.status != 200 {
                    return Err(format!("HTTP {}: {}", answer.status, answer.body).into());
                }
            }
        }
        Ok(None)
    }
}

/// The headers of a Streamable HTTP request (2025-11-25, with a session once it has one).
fn mcp_headers(session: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("Accept", "application/json, text/event-stream".to_owned())];
    if let Some(session) = session {
        headers.push(("Mcp-Session-Id", session.to_owned()));
        headers.push(("MCP-Protocol-Version", "2025-11-25".to_owned()));
    }
    headers
}

/// Opens an MCP session on `/mcp` by hand: `initialize`, then `notifications/initialized`.
async fn raw_mcp_session(http: &mut HttpClient) -> Result<String, BoxError> {
    let initialize = json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "gateway_latency", "version": "0"},
        },
    });
    let answer = http.post("/mcp", &mcp_headers(None), &initialize).await?;
    let session = answer
        .header("mcp-session-id")
        .ok_or_else(|| format!("no session id: HTTP {} {}", answer.status, answer.body))?
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let answer = http
        .post("/mcp", &mcp_headers(Some(&session)), &initialized)
        .await?;
    if answer.status != 202 {
        return Err(format!("initialized: HTTP {} {}", answer.status, answer.body).into());
    }
    Ok(session)
}

/// An HTTP answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    /// When a JSON-RPC answer (`"result"` or `"error"`) had arrived.
    answered: Option<Instant>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client on one kept-alive connection (`Content-Length` and chunked
/// answers, which is what axum sends).
struct HttpClient {
    stream: BufReader<TcpStream>,
    host: SocketAddr,
}

impl HttpClient {
    async fn connect(host: SocketAddr) -> Result<Self, BoxError> {
        let stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            host,
        })
    }

    async fn post(
        &mut self,
        path: &str,
        headers: &[(&str, String)],
        body: &Value,
    ) -> Result<Answer, BoxError> {
        let body = serde_json::to_vec(body)?;
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(&body);
        self.stream.get_mut().write_all(&request).await?;
        self.answer().await
    }

    async fn line(&mut self) -> Result<String, BoxError> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err("the server closed the connection".into());
        }
        Ok(line.trim_end().to_owned())
    }

    async fn answer(&mut self) -> Result<Answer, BoxError> {
        let line = self.line().await?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP status line: {line:?}"))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let mut answer = Answer {
            status,
            headers,
            body: String::new(),
            answered: None,
        };
        let mut body = Vec::new();
        let chunked = answer
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                let size = self.line().await?;
                let size = usize::from_str_radix(size.split(';').next().unwrap_or("0"), 16)?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    break;
                }
                let start = body.len();
                body.resize(start + size + 2, 0);
                self.stream.read_exact(&mut body[start..]).await?;
                body.truncate(start + size);
                let chunk = body.get(start..).unwrap_or_default();
                let has = |needle: &[u8]| chunk.windows(needle.len()).any(|w| w == needle);
                if answer.answered.is_none() && (has(b"\"result\"") || has(b"\"error\"")) {
                    answer.answered = Some(Instant::now());
                }
            }
        } else {
            let length: usize = answer.header("content-length").map_or(Ok(0), str::parse)?;
            body.resize(length, 0);
            self.stream.read_exact(&mut body).await?;
        }
        answer.body = String::from_utf8_lossy(&body).into_owned();
        Ok(answer)
    }
}

/// Latency figures of one mode, in microseconds.
struct Summary {
    p50: f64,
    p99: f64,
    mean: f64,
    max: f64,
}

fn summarize(samples: &mut [Duration]) -> Summary {
    samples.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| {
        let rank = ((samples.len() as f64) * q).ceil() as usize;
        micros(samples[rank.clamp(1, samples.len()) - 1])
    };
    let total: Duration = samples.iter().sum();
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        mean: micros(total) / samples.len() as f64,
        max: micros(samples[samples.len() - 1]),
    }
}

async fn start_nodes(dir_a: &Path, dir_b: &Path) -> Result<(Node, Node), BoxError> {
    let b = builder(dir_b).start().await?;
    let a = builder(dir_a)
        .bootstrap([BootstrapPeer::new(b.node_id(), b.quic_addr())])
        .start()
        .await?;
    b.set_trust(a.node_id(), TrustUpdate::new(TrustLevel::Trusted))
        .await?;
    let (a_id, b_id) = (a.node_id(), b.node_id());
    let lists = |node: &Node, owner| {
        node.directory()
            .nodes
            .iter()
            .any(|n| n.node_id == owner && n.agents.iter().any(|x| x.agent_id.as_str() == "echo"))
    };
    wait_for("A's directory to list B's echo", || lists(&a, b_id)).await?;
    wait_for("B's directory to list A's echo", || lists(&b, a_id)).await?;
    Ok((a, b))
}

async fn run(options: &Options) -> Result<(), BoxError> {
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (a, b) = start_nodes(dir_a.path(), dir_b.path()).await?;
    let echo: AgentId = "echo".parse()?;
    let http = a.http_addr().ok_or("A serves no HTTP")?;
    let prefix = |node: &Node| node.node_id().to_string()[..10].to_owned();

    let in_process = b
        .agent_client(&AgentAddr::new(b.node_id(), echo.clone()))
        .await?;
    let quic = a
        .agent_client(&AgentAddr::new(b.node_id(), echo.clone()))
        .await?;
    let mcp = || async {
        ClientConfig::default()
            .serve(StreamableHttpClientTransport::from_uri(format!(
                "http://{http}/mcp"
            )))
            .await
    };
    let gateway_local = mcp().await?;
    let gateway_remote = mcp().await?;
    let tools = gateway_remote.list_all_tools().await?;
    for node in [&a, &b] {
        let name = format!("echo.echo.{}", prefix(node));
        if !tools.iter().any(|t| t.name == name) {
            return Err(format!("the gateway does not list {name}").into());
        }
    }
    let mut raw = HttpClient::connect(http).await?;
    let session = raw_mcp_session(&mut raw).await?;
    let mut callers = vec![
        Caller::Agent(in_process),
        Caller::Agent(quic),
        Caller::Mcp {
            client: gateway_local,
            tool: format!("echo.echo.{}", prefix(&a)),
        },
        Caller::Mcp {
            client: gateway_remote,
            tool: format!("echo.echo.{}", prefix(&b)),
        },
        Caller::RawMcp {
            http: raw,
            session,
            tool: format!("echo.echo.{}", prefix(&b)),
            next_id: 0,
        },
        Caller::Rest {
            http: HttpClient::connect(http).await?,
            path: format!("/api/agents/{}/echo/tools/echo", b.node_id()),
        },
    ];
    let arguments = json!({"text": "hello from the bench"})
        .as_object()
        .cloned()
        .unwrap_or_default();

    for caller in &mut callers {
        for _ in 0..options.warmup {
            caller.call(&arguments).await?;
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(options.calls); MODES.len()];
    // For chunked answers: from the answer's arrival to the end of the HTTP response.
    let mut tails: Vec<Duration> = Vec::new();
    let started = Instant::now();
    while samples[0].len() < options.calls {
        let batch = BATCH.min(options.calls - samples[0].len());
        for (caller, samples) in callers.iter_mut().zip(&mut samples) {
            for _ in 0..batch {
                let t = Instant::now();
                let answered = caller.call(&arguments).await?;
                let ended = Instant::now();
                if let Some(answered) = answered {
                    tails.push(ended - answered);
                }
                samples.push(answered.unwrap_or(ended) - t);
            }
        }
    }
    let wall = started.elapsed();

    println!(
        "gateway_latency: {} calls per mode after {} warm-up calls, interleaved in batches of \
         {BATCH}; two nodes on 127.0.0.1 in one process (2 tokio workers), {:.1} s",
        options.calls,
        options.warmup,
        wall.as_secs_f64()
    );
    let summaries: Vec<Summary> = samples.iter_mut().map(|s| summarize(s)).collect();
    let base = &summaries[0];
    for (mode, s) in MODES.iter().zip(&summaries) {
        println!(
            "{mode:<15} p50 {:>8.1} us  p99 {:>8.1} us  mean {:>8.1} us  max {:>9.1} us  \
             p50 x{:<6.1} p99 x{:.1} of in_process",
            s.p50,
            s.p99,
            s.mean,
            s.max,
            s.p50 / base.p50,
            s.p99 / base.p99,
        );
    }
    let (quic, local, remote) = (&summaries[1], &summaries[2], &summaries[3]);
    println!(
        "gateway_remote p50 / quic p50 = {:.2}; gateway_remote p50 - quic p50 = {:.1} us \
         (HTTP + gateway); quic p50 - in_process p50 = {:.1} us (QUIC + B's policy and audit)",
        remote.p50 / quic.p50,
        remote.p50 - quic.p50,
        quic.p50 - base.p50,
    );
    println!(
        "gateway_local p50 - in_process p50 = {:.1} us (HTTP + MCP client + gateway, no QUIC)",
        local.p50 - base.p50
    );
    let (raw, rest) = (&summaries[4], &summaries[5]);
    if !tails.is_empty() {
        let tail = summarize(&mut tails);
        println!(
            "gateway_raw: the chunked SSE response ends p50 {:.1} us / p99 {:.1} us after its \
             answer arrived (not counted above); a client that waits for the end pays it",
            tail.p50, tail.p99
        );
    }
    if raw.p50 > 30_000.0 {
        println!(
            "gateway_raw waits ~40 ms per call: the answer's chunk follows the SSE priming event \
             in a second small write, which Nagle's algorithm holds on the server's socket until \
             this client's delayed ACK (the node's HTTP sockets do not set TCP_NODELAY)"
        );
    } else {
        println!(
            "gateway_remote p50 - gateway_raw p50 = {:.1} us (rmcp's HTTP client); gateway_raw \
             p50 - rest_remote p50 = {:.1} us (Streamable HTTP and the gateway, over the JSON API)",
            remote.p50 - raw.p50,
            raw.p50 - rest.p50
        );
    }
    let goal = remote.p50 < 2000.0;
    println!(
        "goal: gateway_remote p50 < 2 ms on loopback: {} ({:.3} ms)",
        if goal { "met" } else { "MISSED" },
        remote.p50 / 1000.0
    );

    for caller in callers {
        if let Caller::Mcp { client, .. } = caller {
            let _ = client.cancel().await;
        }
    }
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}
