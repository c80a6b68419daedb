//! The callee side: serving agents over streams, with the preamble, the access policy,
//! limits, deadlines and cancellation, against a real rmcp client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{FnPolicy, args, host_with, id, node, open, soon, text};
use dawn_mcp::{
    Action, Agent, AgentHost, AllowAll, CallError, Caller, ClientOptions, Denied, EchoAgent,
    HostConfig, McpVersion, OpenAgent, OpenReply, RefuseCode, ServeError, codes,
};
use dawn_resilience::HasErrorCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

fn options(version: McpVersion) -> ClientOptions {
    let mut options = ClientOptions::default();
    options.version = version;
    options
}

#[tokio::test]
async fn both_protocol_versions_call_a_tool_over_a_stream() {
    let (host, _) = host_with(Arc::new(AllowAll), HostConfig::default());
    for version in [McpVersion::V2025_11_25, McpVersion::V2026_07_28] {
        let (client, _served) = open(&host, Caller::Peer(node(9)), "echo", &options(version)).await;
        let client = client.unwrap();
        let info = client.server_info().unwrap();
        assert_eq!(
            info.protocol_version,
            version.protocol_version(),
            "{version:?}"
        );
        let tools = client.list_tools(soon()).await.unwrap();
        let mut names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
        names.sort();
        assert_eq!(names, ["chat", "echo"]);
        let result = client
            .call_tool("echo", args(json!({ "text": "över the mesh" })), soon())
            .await
            .unwrap();
        assert_eq!(text(&result), "över the mesh");
        let reply = client
            .call_tool("chat", args(json!({ "message": "help" })), soon())
            .await
            .unwrap();
        assert!(
            text(&reply).contains("echo {text}"),
            "{version:?}: {}",
            text(&reply)
        );
    }
}

#[tokio::test]
async fn an_unknown_agent_is_refused_in_the_preamble() {
    let (host, _) = host_with(Arc::new(AllowAll), HostConfig::default());
    let (client, served) = open(&host, Caller::Local, "nobody", &ClientOptions::default()).await;
    let error = client.unwrap_err();
    assert!(
        matches!(&error, CallError::UnknownAgent(agent) if agent.as_str() == "nobody"),
        "{error}"
    );
    assert_eq!(error.code().http_status(), 404);
    assert!(matches!(
        served.await.unwrap(),
        Err(ServeError::Refused {
            code: RefuseCode::UnknownAgent,
            ..
        })
    ));
}

#[tokio::test]
async fn a_denied_open_is_refused_with_the_policy_reason() {
    let policy = FnPolicy::new(
        |caller: &Caller, _: &dawn_identity::AgentId, _: Action<'_>| match caller {
            Caller::Local => Ok(()),
            Caller::Peer(_) => Err(Denied::new("not trusted")),
        },
    );
    let (host, _) = host_with(policy.clone(), HostConfig::default());
    let (client, _) = open(
        &host,
        Caller::Peer(node(4)),
        "echo",
        &ClientOptions::default(),
    )
    .await;
    let error = client.unwrap_err();
    let CallError::Denied { message } = &error else {
        panic!("expected a denial, got {error}");
    };
    assert_eq!(
        message,
        &format!(
            "permission denied: peer {} may not open agent echo: not trusted",
            node(4).fmt_short()
        )
    );
    assert_eq!(error.code().as_str(), "auth.denied");
    assert!(
        open(&host, Caller::Local, "echo", &ClientOptions::default())
            .await
            .0
            .is_ok()
    );
}

#[tokio::test]
async fn a_denied_tool_call_gets_a_clear_mcp_error_and_never_reaches_the_agent() {
    let policy = FnPolicy::new(
        |_: &Caller, _: &dawn_identity::AgentId, action: Action<'_>| match action {
            Action::CallTool("sleep") => Err(Denied::without_reason()),
            _ => Ok(()),
        },
    );
    let (host, probe) = host_with(policy.clone(), HostConfig::default());
    let caller = Caller::Peer(node(5));
    let (client, _) = open(&host, caller, "slow", &ClientOptions::default()).await;
    let client = client.unwrap();
    // Listing is allowed, calling is not.
    assert_eq!(client.list_tools(soon()).await.unwrap().len(), 1);
    let error = client
        .call_tool("sleep", args(json!({ "ms": 1 })), soon())
        .await
        .unwrap_err();
    let expected = format!(
        "permission denied: peer {} may not call tool sleep of agent slow",
        node(5).fmt_short()
    );
    assert!(
        matches!(&error, CallError::Denied { message } if *message == expected),
        "{error}"
    );
    assert_eq!(error.to_mcp_error().code, codes::DENIED);
    assert_eq!(error.code().http_status(), 403);
    assert_eq!(probe.started(), 0);
    let checks = policy.checks();
    assert!(
        checks.iter().any(|c| c.ends_with("slow Open")),
        "{checks:?}"
    );
    assert!(
        checks.iter().any(|c| c.ends_with("slow List")),
        "{checks:?}"
    );
    assert!(
        checks
            .iter()
            .any(|c| c.ends_with("slow CallTool(\"sleep\")")),
        "{checks:?}"
    );
}

#[tokio::test]
async fn the_policy_is_consulted_on_every_call_so_revocation_is_immediate() {
    let allowed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let switch = Arc::clone(&allowed);
    let policy = FnPolicy::new(
        move |_: &Caller, _: &dawn_identity::AgentId, _: Action<'_>| {
            if switch.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(())
            } else {
                Err(Denied::new("revoked"))
            }
        },
    );
    let (host, _) = host_with(policy, HostConfig::default());
    let (client, _) = open(
        &host,
        Caller::Peer(node(6)),
        "echo",
        &ClientOptions::default(),
    )
    .await;
    let client = client.unwrap();
    let hi = args(json!({ "text": "hi" }));
    assert!(client.call_tool("echo", hi.clone(), soon()).await.is_ok());
    allowed.store(false, std::sync::atomic::Ordering::SeqCst);
    let error = client.call_tool("echo", hi, soon()).await.unwrap_err();
    assert!(
        matches!(&error, CallError::Denied { message } if message.ends_with(": revoked")),
        "{error}"
    );
}

#[tokio::test]
async fn a_rate_limited_caller_gets_a_429_with_the_wait_at_open_and_per_call() {
    // The policy lets three requests of each caller through, then says "over the limit".
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let policy = FnPolicy::new(
        move |_: &Caller, _: &dawn_identity::AgentId, _: Action<'_>| {
            if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
                Ok(())
            } else {
                Err(Denied::rate_limited(Duration::from_micros(2_500)))
            }
        },
    );
    let (host, probe) = host_with(policy, HostConfig::default());
    let (client, _) = open(
        &host,
        Caller::Peer(node(9)),
        "slow",
        &ClientOptions::default(),
    )
    .await;
    let client = client.unwrap();
    // Open and list pass; the first call passes, the second is over the limit.
    assert_eq!(client.list_tools(soon()).await.unwrap().len(), 1);
    let ms = args(json!({ "ms": 1 }));
    assert!(client.call_tool("sleep", ms.clone(), soon()).await.is_ok());
    let error = client.call_tool("sleep", ms, soon()).await.unwrap_err();
    let CallError::RateLimited {
        message,
        retry_after,
    } = &error
    else {
        panic!("expected a rate-limit error, got {error}");
    };
    assert!(message.starts_with("rate limited: peer "), "{message}");
    assert!(message.ends_with("retry in 2 ms"), "{message}");
    // Rounded up to whole milliseconds, never early.
    assert_eq!(*retry_after, Some(Duration::from_millis(3)));
    assert_eq!(error.to_mcp_error().code, codes::RATE_LIMITED);
    assert_eq!(error.code().as_str(), "rate_limit.exceeded");
    assert_eq!(error.code().http_status(), 429);
    assert_eq!(error.retry_after(), Some(Duration::from_millis(3)));
    assert_eq!(probe.started(), 1, "the refused call reached the agent");
    // A new session is refused in the preamble with its own code.
    let (refused, _) = open(
        &host,
        Caller::Peer(node(9)),
        "slow",
        &ClientOptions::default(),
    )
    .await;
    let error = refused.err().unwrap();
    assert!(
        matches!(
            &error,
            CallError::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.code().http_status(), 429);
}

#[tokio::test]
async fn sessions_are_limited_per_caller_and_freed_when_closed() {
    let mut config = HostConfig::default();
    config.max_sessions_per_caller = 1;
    let (host, _) = host_with(Arc::new(AllowAll), config);
    let peer = Caller::Peer(node(7));
    let (first, first_served) = open(&host, peer, "echo", &ClientOptions::default()).await;
    let first = first.unwrap();
    let (second, _) = open(&host, peer, "echo", &ClientOptions::default()).await;
    let error = second.unwrap_err();
    assert!(
        matches!(
            error,
            CallError::Refused {
                code: RefuseCode::Busy,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.code().http_status(), 503);
    // Another caller is not affected.
    assert!(
        open(&host, Caller::Local, "echo", &ClientOptions::default())
            .await
            .0
            .is_ok()
    );
    assert!(host.session_count() >= 1);
    drop(first);
    first_served.await.unwrap().unwrap();
    let (third, _) = open(&host, peer, "echo", &ClientOptions::default()).await;
    assert!(third.is_ok());
}

#[tokio::test]
async fn removing_an_agent_ends_its_sessions_and_refuses_new_ones() {
    let (host, _) = host_with(Arc::new(AllowAll), HostConfig::default());
    let (client, served) = open(&host, Caller::Local, "echo", &ClientOptions::default()).await;
    let client = client.unwrap();
    assert!(host.remove(&id("echo")).is_some());
    served.await.unwrap().unwrap();
    let error = client
        .call_tool("echo", args(json!({ "text": "x" })), soon())
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Closed), "{error}");
    assert!(matches!(
        open(&host, Caller::Local, "echo", &ClientOptions::default())
            .await
            .0,
        Err(CallError::UnknownAgent(_))
    ));
    assert_eq!(host.list(), [id("slow")]);
    host.add(id("echo"), Agent::shared(EchoAgent::new()))
        .unwrap();
    assert!(matches!(
        host.add(id("echo"), Agent::shared(EchoAgent::new())),
        Err(dawn_mcp::AddAgentError::Duplicate(_))
    ));
}

#[tokio::test]
async fn shutdown_refuses_new_sessions() {
    let (host, _) = host_with(Arc::new(AllowAll), HostConfig::default());
    host.shutdown();
    let error = open(&host, Caller::Local, "echo", &ClientOptions::default())
        .await
        .0
        .unwrap_err();
    assert!(
        matches!(
            error,
            CallError::Refused {
                code: RefuseCode::ShuttingDown,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn garbage_and_unknown_versions_get_a_refusal_frame() {
    let (host, _) = host_with(Arc::new(AllowAll), HostConfig::default());
    // A preamble of version 9.
    let (mut caller, host_end) = tokio::io::duplex(4096);
    let served = tokio::spawn({
        let host = host.clone();
        async move {
            let (read, write) = tokio::io::split(host_end);
            host.serve_stream(Caller::Local, read, write).await
        }
    });
    let mut frame = OpenAgent::new(id("echo")).to_frame().unwrap();
    frame[7] = 9;
    caller.write_all(&frame).await.unwrap();
    let mut reply = Vec::new();
    caller.read_to_end(&mut reply).await.unwrap();
    assert!(matches!(
        OpenReply::from_message(&reply[4..]).unwrap(),
        OpenReply::Refused {
            code: RefuseCode::UnsupportedVersion,
            ..
        }
    ));
    assert!(matches!(
        served.await.unwrap(),
        Err(ServeError::Preamble(_))
    ));

    // A frame header announcing 1 GiB.
    let (mut caller, host_end) = tokio::io::duplex(4096);
    let served = tokio::spawn({
        let host = host.clone();
        async move {
            let (read, write) = tokio::io::split(host_end);
            host.serve_stream(Caller::Local, read, write).await
        }
    });
    caller.write_all(&[0x40, 0, 0, 0]).await.unwrap();
    let mut reply = Vec::new();
    caller.read_to_end(&mut reply).await.unwrap();
    assert!(matches!(
        OpenReply::from_message(&reply[4..]).unwrap(),
        OpenReply::Refused {
            code: RefuseCode::Malformed,
            ..
        }
    ));
    assert!(served.await.unwrap().is_err());
}

#[tokio::test]
async fn a_silent_caller_is_dropped_after_the_handshake_timeout() {
    let mut config = HostConfig::default();
    config.handshake_timeout = Duration::from_millis(50);
    let (host, _) = host_with(Arc::new(AllowAll), config);
    let (_caller, host_end) = tokio::io::duplex(4096);
    let (read, write) = tokio::io::split(host_end);
    let started = Instant::now();
    let result = host.serve_stream(Caller::Local, read, write).await;
    assert!(matches!(
        result,
        Err(ServeError::Preamble(dawn_mcp::PreambleError::TimedOut(_)))
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn the_client_deadline_cancels_the_call_at_the_agent() {
    let (host, probe) = host_with(Arc::new(AllowAll), HostConfig::default());
    let (client, _) = open(&host, Caller::Local, "slow", &ClientOptions::default()).await;
    let client = client.unwrap();
    let started = Instant::now();
    let error = client
        .call_tool(
            "sleep",
            args(json!({ "ms": 30_000 })),
            Instant::now() + Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::TimedOut), "{error}");
    assert_eq!(error.code().http_status(), 504);
    assert!(started.elapsed() < Duration::from_secs(2));
    // notifications/cancelled reached the agent and its handler was dropped.
    probe.wait_for(|p| p.dropped() == 1).await;
    assert_eq!(probe.finished(), 0);
    // The session is still usable.
    let ok = client
        .call_tool("sleep", args(json!({ "ms": 1 })), soon())
        .await
        .unwrap();
    assert_eq!(text(&ok), "slept 1 ms");
}

#[tokio::test]
async fn dropping_a_call_future_cancels_the_call() {
    let (host, probe) = host_with(Arc::new(AllowAll), HostConfig::default());
    let (client, _) = open(&host, Caller::Local, "slow", &ClientOptions::default()).await;
    let client = client.unwrap();
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .call_tool("sleep", args(json!({ "ms": 30_000 })), soon())
                .await
        }
    });
    probe.wait_for(|p| p.started() == 1).await;
    call.abort();
    probe.wait_for(|p| p.dropped() == 1).await;
    assert_eq!(probe.finished(), 0);
}

#[tokio::test]
async fn the_host_bounds_how_long_a_request_runs() {
    let mut config = HostConfig::default();
    config.request_timeout = Duration::from_millis(100);
    let (host, probe) = host_with(Arc::new(AllowAll), config);
    let (client, _) = open(&host, Caller::Local, "slow", &ClientOptions::default()).await;
    let error = client
        .unwrap()
        .call_tool("sleep", args(json!({ "ms": 30_000 })), soon())
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::TimedOut), "{error}");
    probe.wait_for(|p| p.dropped() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_session_does_not_block_another() {
    let (host, probe) = host_with(Arc::new(AllowAll), HostConfig::default());
    let (slow, _) = open(
        &host,
        Caller::Peer(node(1)),
        "slow",
        &ClientOptions::default(),
    )
    .await;
    let slow = slow.unwrap();
    let pending = tokio::spawn(async move {
        slow.call_tool("sleep", args(json!({ "ms": 2_000 })), soon())
            .await
    });
    probe.wait_for(|p| p.started() == 1).await;
    let (quick, _) = open(
        &host,
        Caller::Peer(node(2)),
        "echo",
        &ClientOptions::default(),
    )
    .await;
    let quick = quick.unwrap();
    let started = Instant::now();
    let result = quick
        .call_tool("echo", args(json!({ "text": "quick" })), soon())
        .await
        .unwrap();
    assert_eq!(text(&result), "quick");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        probe.finished(),
        0,
        "the quick call waited for the slow one"
    );
    pending.abort();
}

#[tokio::test]
async fn concurrent_calls_share_one_session() {
    let (host, probe) = host_with(Arc::new(AllowAll), HostConfig::default());
    let client = host
        .connect(Caller::Local, &id("slow"), soon())
        .await
        .unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call_tool("sleep", args(json!({ "ms": 400 })), soon())
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(probe.finished(), 8);
    // One after another they would take 3.2 s.
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "calls ran one after another"
    );
}

#[tokio::test]
async fn describe_summarises_an_agent_without_the_network_or_the_policy() {
    let policy = FnPolicy::new(|_: &Caller, _: &dawn_identity::AgentId, _: Action<'_>| {
        Err(Denied::without_reason())
    });
    let (host, _) = host_with(policy.clone(), HostConfig::default());
    let info = host.describe(&id("echo"), soon()).await.unwrap();
    assert_eq!(info.agent_id, id("echo"));
    assert_eq!(info.name, "Echo");
    assert!(info.description.contains("help"), "{}", info.description);
    assert!(info.has_tool("echo") && info.has_tool("chat"));
    assert!(info.resources.is_empty() && info.prompts.is_empty());
    assert!(policy.checks().is_empty());
    assert!(matches!(
        host.describe(&id("nobody"), soon()).await,
        Err(CallError::UnknownAgent(_))
    ));
    assert_eq!(host.describe_all(soon()).await.len(), 2);
}

#[tokio::test]
async fn per_session_agents_get_a_fresh_handler_each_time() {
    let built = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&built);
    let host = AgentHost::new(Arc::new(AllowAll), HostConfig::default());
    host.add(
        id("echo"),
        Agent::per_session(move || {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            EchoAgent::new()
        }),
    )
    .unwrap();
    let _a = host
        .connect(Caller::Local, &id("echo"), soon())
        .await
        .unwrap();
    let _b = host
        .connect(Caller::Local, &id("echo"), soon())
        .await
        .unwrap();
    assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oversized_messages_are_dropped_not_buffered() {
    let mut config = HostConfig::default();
    config.max_message_len = 4096;
    let (host, _) = host_with(Arc::new(AllowAll), config);
    let client = host
        .connect(Caller::Local, &id("echo"), soon())
        .await
        .unwrap();
    let ok = client
        .call_tool("echo", args(json!({ "text": "first" })), soon())
        .await
        .unwrap();
    assert_eq!(text(&ok), "first");
    let big = "x".repeat(10_000);
    let error = client
        .call_tool(
            "echo",
            args(json!({ "text": big })),
            Instant::now() + Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::TimedOut), "{error}");
    // The session survives the dropped line.
    let ok = client
        .call_tool("echo", args(json!({ "text": "small" })), soon())
        .await
        .unwrap();
    assert_eq!(text(&ok), "small");
}

#[tokio::test]
async fn an_idle_session_outlives_the_handshake_timeout() {
    let mut config = HostConfig::default();
    config.handshake_timeout = Duration::from_millis(50);
    let (host, _) = host_with(Arc::new(AllowAll), config);
    for version in [McpVersion::V2025_11_25, McpVersion::V2026_07_28] {
        let (client, _) = open(&host, Caller::Local, "echo", &options(version)).await;
        let client = client.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ok = client
            .call_tool("echo", args(json!({ "text": "still here" })), soon())
            .await;
        assert_eq!(text(&ok.unwrap()), "still here", "{version:?}");
    }
}
