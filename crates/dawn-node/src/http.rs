//! The node's HTTP server: health, status and peers as JSON, and a small status page.

use std::fmt::Write as _;
use std::future::IntoFuture as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::api::{ApiError, BroadcastReceipt, NodeStatus, PeerInfo, PeerList, RecentDeliveries};
use crate::gossip::GossipError;
use crate::node::Shared;
use crate::peers::now_unix_ms;

/// Largest request body accepted, in bytes: bounds what a client can make the server read,
/// and so the payload of `POST /api/gossip/{topic}`.
pub(crate) const MAX_REQUEST_BODY: usize = 16 * 1024;

/// State shared by every HTTP handler. Modules that serve their own routes build a
/// `Router<AppState>` and `merge` it in [`router`].
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) shared: Arc<Shared>,
    /// Accept only loopback `Host` headers (the server is bound to loopback): a web page on
    /// another origin cannot reach the API through DNS rebinding.
    pub(crate) loopback_hosts_only: bool,
}

pub(crate) fn router(shared: Arc<Shared>, bound: SocketAddr) -> Router {
    let state = AppState {
        shared,
        loopback_hosts_only: bound.ip().is_loopback(),
    };
    Router::new()
        .route("/status", get(status_page))
        .route("/api/status", get(status))
        .route("/api/peers", get(peers))
        .route("/api/gossip/{*topic}", get(recent_gossip).post(broadcast))
        .merge(crate::admin::routes())
        .merge(crate::metrics::routes())
        .merge(crate::ui::routes())
        .merge(crate::chat::routes())
        .merge(crate::events::routes())
        .merge(crate::gateway::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serves `router` on `listener` (with `TCP_NODELAY` on every accepted socket) until
/// `cancel` fires, then finishes in-flight requests.
pub(crate) async fn serve(listener: TcpListener, router: Router, cancel: CancellationToken) {
    let span = tracing::info_span!(parent: None, "dawn.node.http");
    // Small writes go out at once: an MCP answer follows an SSE priming event in a second
    // small write, which Nagle's algorithm would hold for the client's delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .into_future()
        .instrument(span)
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "HTTP server failed");
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let mut response = (status, axum::Json(ApiError::new(code, message))).into_response();
    no_store(&mut response);
    response
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Host check, body-size check and a debug log line per request.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if state.loopback_hosts_only
        && let Some(host) = request.headers().get(header::HOST)
        && !is_loopback_host(host)
    {
        tracing::debug!(%method, %path, ?host, "refused: Host is not a loopback name");
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_request",
            "this node's API answers only to localhost, 127.0.0.1 or [::1]",
        );
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_REQUEST_BODY as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {MAX_REQUEST_BODY} bytes"),
        );
    }
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

fn is_loopback_host(host: &HeaderValue) -> bool {
    let Ok(host) = host.to_str() else {
        return false;
    };
    // Strip the port: "[::1]:7601" -> "[::1]", "localhost:7601" -> "localhost".
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such endpoint: {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let (allow, hint) = if uri.path().starts_with("/api/gossip/") {
        ("GET, HEAD, POST", "GET or POST")
    } else if uri.path().starts_with("/api/trust/") || uri.path() == "/api/policy" {
        ("GET, HEAD, PUT", "GET or PUT")
    } else {
        ("GET, HEAD", "GET")
    };
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}; use {hint}", uri.path()),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

async fn status(State(state): State<AppState>) -> Response {
    let mut response = axum::Json(state.shared.status()).into_response();
    no_store(&mut response);
    response
}

async fn peers(State(state): State<AppState>) -> Response {
    let (active_view, passive_view) = state.shared.gossip.views();
    let mut response = axum::Json(PeerList {
        peers: state.shared.peers(),
        active_view,
        passive_view,
    })
    .into_response();
    no_store(&mut response);
    response
}

/// `POST /api/gossip/{topic}`: broadcasts the body (at most [`MAX_REQUEST_BODY`] bytes,
/// `Content-Type: application/octet-stream` so that a web page cannot post without a CORS
/// preflight, which is never granted).
async fn broadcast(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let binary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("application/octet-stream"));
    if !binary {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the payload as Content-Type: application/octet-stream",
        );
    }
    match state.shared.gossip.broadcast(&topic, body).await {
        Ok(id) => {
            let mut response = (
                StatusCode::ACCEPTED,
                axum::Json(BroadcastReceipt {
                    topic,
                    message_id: id,
                }),
            )
                .into_response();
            no_store(&mut response);
            response
        }
        Err(error) => gossip_error(&error),
    }
}

/// `GET /api/gossip/{topic}`: the most recent deliveries on the topic. The first call
/// subscribes the node to the topic.
async fn recent_gossip(State(state): State<AppState>, Path(topic): Path<String>) -> Response {
    if let Err(error) = state.shared.gossip.subscribe(&topic).await {
        return gossip_error(&error);
    }
    let mut response = axum::Json(RecentDeliveries {
        deliveries: state.shared.gossip.recent(&topic),
        topic,
    })
    .into_response();
    no_store(&mut response);
    response
}

fn gossip_error(failure: &GossipError) -> Response {
    let status = match failure {
        GossipError::Topic(_) | GossipError::Broadcast(_) => StatusCode::BAD_REQUEST,
        GossipError::Subscribe(_) => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::CONFLICT => "too_many_topics",
        _ => "unavailable",
    };
    error(status, code, failure.to_string())
}

async fn status_page(State(state): State<AppState>) -> Response {
    let status = state.shared.status();
    let peers = state.shared.peers();
    let mut response = Html(render_page(&status, &peers, now_unix_ms())).into_response();
    let headers = response.headers_mut();
    // Everything is inline: no script, no external asset, nothing may frame the page.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    no_store(&mut response);
    response
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ago(then_ms: Option<u64>, now_ms: u64) -> String {
    let Some(then) = then_ms else {
        return "never".to_owned();
    };
    let secs = now_ms.saturating_sub(then) / 1000;
    match secs {
        0..=1 => "now".to_owned(),
        2..=119 => format!("{secs} s ago"),
        120..=7199 => format!("{} min ago", secs / 60),
        7200..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

fn render_page(status: &NodeStatus, peers: &[PeerInfo], now_ms: u64) -> String {
    let id = status.node_id.to_string();
    let listen = status
        .listen_addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let join_addr = status.listen_addrs.first().map_or_else(
        || "HOST:PORT".to_owned(),
        |addr| {
            if addr.ip().is_unspecified() {
                format!("THIS_HOST:{}", addr.port())
            } else {
                addr.to_string()
            }
        },
    );
    let mut rows = String::new();
    for peer in peers {
        let state = match (peer.connected, peer.direction) {
            (true, Some(direction)) => format!("connected ({})", direction.as_str()),
            (true, None) => "connected".to_owned(),
            (false, _) => "disconnected".to_owned(),
        };
        let state = match peer.view {
            Some(view) => format!("{state}, gossip {}", view.as_str()),
            None => state,
        };
        let addrs = peer
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            rows,
            "<tr><td class=\"id\">{}{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&peer.node_id.to_string()),
            if peer.bootstrap {
                " <small>bootstrap</small>"
            } else {
                ""
            },
            escape(&addrs),
            if peer.connected { "up" } else { "down" },
            escape(&state),
            escape(&ago(peer.last_seen_unix_ms, now_ms)),
            peer.failures,
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"5\">No peers yet.</td></tr>\n");
    }
    STATUS_PAGE
        .replace("{short}", &escape(&status.node_id.fmt_short()))
        .replace("{id}", &escape(&id))
        .replace("{version}", &escape(&status.version))
        .replace("{uptime}", &escape(&uptime(status.uptime_secs)))
        .replace("{listen}", &escape(&listen))
        .replace("{connected}", &status.peer_count.to_string())
        .replace("{known}", &status.known_peer_count.to_string())
        .replace(
            "{join}",
            &escape(&format!("dawn-node run --bootstrap {id}@{join_addr}")),
        )
        .replace("{rows}", &rows)
}

const STATUS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="5">
<title>Dawn node {short}</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1d2430; background: #fbfaf7; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; }
h2 { font-size: 1.1rem; margin-top: 2rem; }
code, .id { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; word-break: break-all; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }
dt { color: #5b6475; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #e3e0d8; vertical-align: top; }
th { color: #5b6475; font-weight: 600; }
.up { color: #17803d; } .down { color: #a33; }
small { color: #5b6475; }
pre { background: #f0eee8; padding: .6rem; overflow-x: auto; }
footer { margin-top: 2rem; color: #5b6475; font-size: .85rem; }
</style>
</head>
<body>
<h1>Dawn node <code>{short}</code></h1>
<dl>
<dt>Node id</dt><dd class="id">{id}</dd>
<dt>Version</dt><dd>{version}</dd>
<dt>Uptime</dt><dd>{uptime}</dd>
<dt>QUIC (UDP)</dt><dd><code>{listen}</code></dd>
<dt>Peers</dt><dd>{connected} connected, {known} known</dd>
</dl>
<h2>Peers</h2>
<table>
<thead><tr><th>Node id</th><th>Addresses</th><th>State</th><th>Last seen</th><th>Failed dials</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
<h2>Join another node to this one</h2>
<p>From another machine, or on this one with its own <code>--data-dir</code>, <code>--listen</code> and <code>--http</code>:</p>
<pre>{join}</pre>
<footer>This page refreshes every 5 seconds. JSON: <a href="/api/status">/api/status</a>, <a href="/api/peers">/api/peers</a>, <a href="/healthz">/healthz</a>.</footer>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "LOCALHOST:7601",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]:7601",
            "[::1]",
            "127.9.9.9:1",
        ] {
            assert!(is_loopback_host(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7601",
            "10.0.0.1:7601",
            "localhost.evil.example",
            "[::2]:1",
            "",
        ] {
            assert!(!is_loopback_host(&HeaderValue::from_static(bad)), "{bad}");
        }
    }

    #[test]
    fn escape_and_durations() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(ago(None, 10), "never");
        assert_eq!(ago(Some(10_000), 10_500), "now");
        assert_eq!(ago(Some(0), 30_000), "30 s ago");
        assert_eq!(ago(Some(0), 600_000), "10 min ago");
        assert_eq!(ago(Some(20_000), 10_000), "now");
        assert_eq!(uptime(59), "59s");
        assert_eq!(uptime(3_725), "1h 2m 5s");
        assert_eq!(uptime(90_061), "1d 1h 1m");
    }
}
