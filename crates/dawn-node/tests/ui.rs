//! The web UI and its backends on real nodes: assets with the right types, CSP and caching;
//! the mesh chat room between two nodes over gossip; the event stream; bad input refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Response, bootstrap_to, builder, eventually, get, request, start};
use dawn_node::{ChatHistory, ChatMessage, Node};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Sends one request with a body and reads the whole response.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Response {
    let headers = format!(
        "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n{body}"
    );
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Response {
    send(addr, "POST", path, "application/json", &body.to_string()).await
}

async fn history(addr: SocketAddr, room: &str) -> ChatHistory {
    let response = get(addr, &format!("/api/chat/{room}")).await;
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).unwrap()
}

/// Two nodes that are gossip neighbours of each other.
async fn pair(dir_a: &std::path::Path, dir_b: &std::path::Path) -> (Node, Node) {
    let a = start(dir_a).await;
    let b = builder(dir_b)
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "gossip neighbours", || {
        a.gossip_views().0.contains(&b.node_id()) && b.gossip_views().0.contains(&a.node_id())
    })
    .await;
    (a, b)
}

/// Polls an async check every 20 ms until it holds.
async fn until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_served_with_types_csp_and_etags() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let http = node.http_addr().unwrap();

    let page = get(http, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert!(
        page.body
            .contains("<script type=\"module\" src=\"/assets/app.js\"></script>")
    );
    assert!(!page.body.contains("<script>"), "inline script");

    for (path, kind) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/theme.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
        ("/manifest.webmanifest", "application/manifest+json"),
    ] {
        let asset = get(http, path).await;
        assert_eq!(asset.status, 200, "{path}");
        assert_eq!(asset.header("content-type"), Some(kind), "{path}");
        assert!(asset.header("content-security-policy").is_some(), "{path}");
        assert!(!asset.body.is_empty(), "{path}");
        // A browser holding the asset revalidates and gets 304 without a body.
        let etag = asset.header("etag").unwrap().to_owned();
        let again = request(http, "GET", path, &format!("If-None-Match: {etag}\r\n")).await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty(), "{path}");
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        let stale = request(http, "GET", path, "If-None-Match: \"stale\"\r\n").await;
        assert_eq!(stale.status, 200, "{path}");
    }
    assert_ne!(
        get(http, "/assets/app.js").await.header("etag"),
        get(http, "/assets/app.css").await.header("etag")
    );

    // The status page moved to /status; unknown assets are JSON 404s.
    let status = get(http, "/status").await;
    assert_eq!(status.status, 200);
    assert!(status.body.contains(&node.node_id().to_string()));
    let missing = get(http, "/assets/nope.js").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("content-type"), Some("application/json"));

    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_messages_cross_two_real_nodes_with_receipts() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = pair(dir_a.path(), dir_b.path()).await;
    let (http_a, http_b) = (a.http_addr().unwrap(), b.http_addr().unwrap());
    // Both nodes are in the lobby from the start.
    until(Duration::from_secs(5), "lobby joined", || async {
        let rooms = get(http_b, "/api/chat").await.json();
        rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["room"] == "lobby")
    })
    .await;

    let sent = post_json(
        http_a,
        "/api/chat/lobby",
        &serde_json::json!({ "text": "hello from a\nsecond line", "nick": "ada" }),
    )
    .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let sent: ChatMessage = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(sent.origin, a.node_id());
    assert_eq!(sent.nick, "ada");
    assert_eq!(sent.room, "lobby");
    assert_eq!(history(http_a, "lobby").await.messages, vec![sent.clone()]);

    // B stores it under the same id, with the signed origin.
    until(Duration::from_secs(10), "the message on b", || async {
        !history(http_b, "lobby").await.messages.is_empty()
    })
    .await;
    let received = history(http_b, "lobby").await.messages;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].id, sent.id);
    assert_eq!(received[0].origin, a.node_id());
    assert_eq!(received[0].text, "hello from a\nsecond line");
    assert_eq!(received[0].nick, "ada");

    // B's receipt reaches A.
    until(Duration::from_secs(10), "the receipt on a", || async {
        history(http_a, "lobby").await.messages[0].delivered_to == vec![b.node_id()]
    })
    .await;

    // A room joined on both sides carries messages too; ?limit bounds the answer.
    history(http_b, "dev-ops").await;
    history(http_a, "dev-ops").await;
    for i in 0..3 {
        let response = post_json(
            http_a,
            "/api/chat/dev-ops",
            &serde_json::json!({ "text": format!("deploy {i}") }),
        )
        .await;
        assert_eq!(response.status, 201, "{}", response.body);
    }
    until(Duration::from_secs(10), "three messages on b", || async {
        history(http_b, "dev-ops").await.messages.len() == 3
    })
    .await;
    let last = get(http_b, "/api/chat/dev-ops?limit=1").await.json();
    assert_eq!(last["messages"].as_array().unwrap().len(), 1);
    assert_eq!(last["messages"][0]["text"], "deploy 2");
    // A missing nick is the node's short id.
    assert_eq!(
        last["messages"][0]["nick"],
        format!("node-{}", a.node_id().fmt_short())
    );

    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

/// Reads an SSE stream until `needles` have all appeared (in any order), or panics.
async fn read_events(stream: &mut tokio::net::TcpStream, seen: &mut String, needles: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !needles.iter().all(|n| seen.contains(n)) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "events {needles:?} not seen in:\n{seen}");
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) => panic!("event stream closed:\n{seen}"),
            Ok(Ok(n)) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Ok(Err(error)) => panic!("{error}"),
            Err(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_carries_chat_typing_receipts_and_peers() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = pair(dir_a.path(), dir_b.path()).await;
    let (http_a, http_b) = (a.http_addr().unwrap(), b.http_addr().unwrap());
    history(http_b, "lobby").await;

    let mut events_b = tokio::net::TcpStream::connect(http_b).await.unwrap();
    events_b
        .write_all(format!("GET /api/events HTTP/1.1\r\nHost: {http_b}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen_b = String::new();
    read_events(
        &mut events_b,
        &mut seen_b,
        &["text/event-stream", "event: hello", "event: peers"],
    )
    .await;
    assert!(seen_b.contains(&format!("{{\"node_id\":\"{}\"}}", b.node_id())));

    let mut events_a = tokio::net::TcpStream::connect(http_a).await.unwrap();
    events_a
        .write_all(format!("GET /api/events HTTP/1.1\r\nHost: {http_a}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen_a = String::new();
    read_events(&mut events_a, &mut seen_a, &["event: hello"]).await;

    let typing = post_json(
        http_a,
        "/api/chat/lobby/typing",
        &serde_json::json!({ "nick": "ada" }),
    )
    .await;
    assert_eq!(typing.status, 202, "{}", typing.body);
    assert_eq!(typing.json()["sent"], true);
    // A second indicator right away is swallowed, not an error.
    let again = post_json(
        http_a,
        "/api/chat/lobby/typing",
        &serde_json::json!({ "nick": "ada" }),
    )
    .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["sent"], false);

    let sent = post_json(
        http_a,
        "/api/chat/lobby",
        &serde_json::json!({ "text": "live!", "nick": "ada" }),
    )
    .await;
    let id = sent.json()["id"].as_str().unwrap().to_owned();
    read_events(
        &mut events_b,
        &mut seen_b,
        &[
            "event: typing",
            "\"nick\":\"ada\"",
            "event: chat",
            "\"text\":\"live!\"",
        ],
    )
    .await;
    // A sees its own message and then B's receipt for it.
    read_events(
        &mut events_a,
        &mut seen_a,
        &[
            "event: chat",
            "event: receipt",
            &format!("\"by\":\"{}\"", b.node_id()),
            &format!("\"id\":\"{id}\""),
        ],
    )
    .await;

    // Open event streams end when the node stops; they do not hold up its shutdown (which
    // would otherwise wait out the 5 s grace period for in-flight HTTP requests).
    for node in [b, a] {
        let started = Instant::now();
        node.shutdown().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "shutdown took {:?} with an event stream open",
            started.elapsed()
        );
    }
    for stream in [&mut events_a, &mut events_b] {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest))
            .await
            .expect("the event stream did not end")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_refuses_bad_input_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let http = node.http_addr().unwrap();
    let code = |response: &Response| {
        response.json()["error"]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let hello = serde_json::json!({ "text": "hi", "nick": "ada" });

    for room in ["Lobby", "a_b", "%2e%2e", &"x".repeat(33)] {
        let response = post_json(http, &format!("/api/chat/{room}"), &hello).await;
        assert_eq!(response.status, 400, "{room}");
        assert_eq!(code(&response), "invalid_room", "{room}");
        assert_eq!(get(http, &format!("/api/chat/{room}")).await.status, 400);
    }
    for (body, expected) in [
        (
            serde_json::json!({ "text": "", "nick": "ada" }),
            "invalid_text",
        ),
        (
            serde_json::json!({ "text": "  \n ", "nick": "ada" }),
            "invalid_text",
        ),
        (
            serde_json::json!({ "text": "a\u{1b}[2J", "nick": "ada" }),
            "invalid_text",
        ),
        (
            serde_json::json!({ "text": "x".repeat(4001), "nick": "ada" }),
            "invalid_text",
        ),
        (
            serde_json::json!({ "text": "hi", "nick": "" }),
            "invalid_nick",
        ),
        (
            serde_json::json!({ "text": "hi", "nick": "a\nb" }),
            "invalid_nick",
        ),
        (
            serde_json::json!({ "text": "hi", "nick": "n".repeat(33) }),
            "invalid_nick",
        ),
        (serde_json::json!({ "nick": "ada" }), "bad_request"),
        (serde_json::json!(["hi"]), "bad_request"),
    ] {
        let response = post_json(http, "/api/chat/lobby", &body).await;
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(code(&response), expected, "{body}");
    }
    // Without the JSON content type (what a cross-site form could send): refused.
    let form = send(
        http,
        "POST",
        "/api/chat/lobby",
        "text/plain",
        &hello.to_string(),
    )
    .await;
    assert_eq!(form.status, 415);
    assert_eq!(code(&form), "unsupported_media_type");
    let typing = send(http, "POST", "/api/chat/lobby/typing", "text/plain", "").await;
    assert_eq!(typing.status, 415);
    let broken = send(http, "POST", "/api/chat/lobby", "application/json", "{").await;
    assert_eq!(broken.status, 400);
    assert_eq!(get(http, "/api/chat/lobby?limit=lots").await.status, 400);
    assert!(history(http, "lobby").await.messages.is_empty());

    // A burst past the local rate limit gets 429 with Retry-After.
    let mut limited = None;
    for i in 0..40 {
        let body = serde_json::json!({ "text": format!("flood {i}"), "nick": "ada" });
        let response = post_json(http, "/api/chat/lobby", &body).await;
        if response.status == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status, 201, "{}", response.body);
    }
    let limited = limited.expect("no 429 after 40 messages");
    assert_eq!(code(&limited), "rate_limited");
    assert!(limited.header("retry-after").is_some());

    // At most MAX_ROOMS rooms.
    let mut refused = None;
    for i in 0..=dawn_node::MAX_ROOMS {
        let response = get(http, &format!("/api/chat/room-{i}")).await;
        if response.status != 200 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("no refusal past MAX_ROOMS");
    assert_eq!(refused.status, 409);
    assert_eq!(code(&refused), "too_many_rooms");

    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let http = node.http_addr().unwrap();
    let sent = post_json(
        http,
        "/api/chat/lobby",
        &serde_json::json!({ "text": "remember me", "nick": "ada" }),
    )
    .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    node.shutdown().await.unwrap();
    assert!(dir.path().join("chat/lobby.json").is_file());

    let node = start(dir.path()).await;
    let http = node.http_addr().unwrap();
    until(Duration::from_secs(5), "restored history", || async {
        history(http, "lobby")
            .await
            .messages
            .iter()
            .any(|m| m.text == "remember me" && m.origin == node.node_id())
    })
    .await;
    node.shutdown().await.unwrap();
}
