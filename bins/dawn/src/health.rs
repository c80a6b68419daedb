//! The health lines of `dawn status`: gossip counters, readiness from `GET /readyz` and the
//! agent count from `GET /api/agents`. Either endpoint may be missing (an older node, or one
//! whose agents are not running); its line then says so, and the command still succeeds.

use dawn_node::NodeStatus;

use crate::{Client, MAX_RESPONSE};

/// What an optional endpoint answered.
#[derive(Debug)]
pub(crate) enum Optional {
    /// A JSON body, with a success status or one of the statuses the endpoint uses for its
    /// negative answer (`/readyz` says "not ready" with 503).
    Json(serde_json::Value),
    /// 404: the node has no such endpoint.
    Missing,
    /// Another status, or a body that is not JSON.
    Unusable(String),
}

/// GETs `path`, tolerating a missing endpoint.
///
/// # Errors
/// Only when the node does not answer at all.
pub(crate) fn get_optional(client: &Client, path: &str) -> anyhow::Result<Optional> {
    let url = format!("{}{path}", client.base);
    let mut response = client
        .agent
        .get(&url)
        .call()
        .map_err(|e| client.unreachable(&e))?;
    let status = response.status().as_u16();
    if status == 404 {
        return Ok(Optional::Missing);
    }
    let body = match response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_string()
    {
        Ok(body) => body,
        Err(error) => return Ok(Optional::Unusable(error.to_string())),
    };
    match serde_json::from_str(&body) {
        Ok(json) if status == 200 || status == 503 => Ok(Optional::Json(json)),
        Ok(_) | Err(_) => Ok(Optional::Unusable(format!("HTTP {status}"))),
    }
}

/// The `gossip` line.
pub(crate) fn gossip_line(status: &NodeStatus) -> String {
    let g = &status.gossip;
    format!(
        "{} delivered, {} broadcast, {} duplicates, {} dropped, {} misbehaviours",
        g.delivered, g.broadcasts, g.duplicates, g.send_dropped, g.misbehaviours
    )
}

/// The `ready` line from `/readyz`: `yes`, `no (reason; reason)`, or why it is unknown.
pub(crate) fn ready_line(answer: &Optional) -> String {
    match answer {
        Optional::Json(json) => match json.get("ready").and_then(serde_json::Value::as_bool) {
            Some(true) => "yes".to_owned(),
            Some(false) => {
                let reasons: Vec<&str> = json
                    .get("reasons")
                    .and_then(serde_json::Value::as_array)
                    .map(|r| r.iter().filter_map(serde_json::Value::as_str).collect())
                    .unwrap_or_default();
                if reasons.is_empty() {
                    "no".to_owned()
                } else {
                    format!("no ({})", reasons.join("; "))
                }
            }
            None => "unknown (unexpected /readyz answer)".to_owned(),
        },
        Optional::Missing => "unknown (this node has no /readyz)".to_owned(),
        Optional::Unusable(why) => format!("unknown (/readyz: {why})"),
    }
}

/// The `agents` line from `/api/agents` (`{"nodes": [{"local": bool, "agents": [...]}]}`).
pub(crate) fn agents_line(answer: &Optional) -> String {
    match answer {
        Optional::Json(json) => {
            let Some(nodes) = json.get("nodes").and_then(serde_json::Value::as_array) else {
                return match json.pointer("/error/message").and_then(|m| m.as_str()) {
                    Some(message) => format!("unavailable ({message})"),
                    None => "unknown (unexpected /api/agents answer)".to_owned(),
                };
            };
            let count = |node: &serde_json::Value| {
                node.get("agents")
                    .and_then(serde_json::Value::as_array)
                    .map_or(0, Vec::len)
            };
            let total: usize = nodes.iter().map(count).sum();
            let here: usize = nodes
                .iter()
                .filter(|n| n.get("local").and_then(serde_json::Value::as_bool) == Some(true))
                .map(count)
                .sum();
            let hosts = nodes.iter().filter(|n| count(n) > 0).count();
            let plural = if hosts == 1 { "" } else { "s" };
            format!("{total} on the mesh ({here} here), on {hosts} node{plural}")
        }
        Optional::Missing => "unknown (this node has no /api/agents)".to_owned(),
        Optional::Unusable(why) => format!("unknown (/api/agents: {why})"),
    }
}

/// The health lines, in the layout of the rest of `dawn status`.
pub(crate) fn summary(client: &Client, status: &NodeStatus) -> anyhow::Result<String> {
    let ready = get_optional(client, "/readyz")?;
    let agents = get_optional(client, "/api/agents")?;
    let rows = [
        ("gossip", gossip_line(status)),
        ("ready", ready_line(&ready)),
        ("agents", agents_line(&agents)),
    ];
    Ok(rows.iter().map(|(k, v)| format!("{k:<9} {v}\n")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readiness_lines() {
        assert_eq!(
            ready_line(&Optional::Json(json!({"ready": true, "reasons": []}))),
            "yes"
        );
        assert_eq!(
            ready_line(&Optional::Json(json!({
                "ready": false,
                "reasons": ["store is not writable", "every breaker is open"]
            }))),
            "no (store is not writable; every breaker is open)"
        );
        assert_eq!(ready_line(&Optional::Json(json!({"ready": false}))), "no");
        assert_eq!(
            ready_line(&Optional::Missing),
            "unknown (this node has no /readyz)"
        );
        assert_eq!(
            ready_line(&Optional::Json(json!([1, 2]))),
            "unknown (unexpected /readyz answer)"
        );
        assert_eq!(
            ready_line(&Optional::Unusable("HTTP 500".into())),
            "unknown (/readyz: HTTP 500)"
        );
    }

    #[test]
    fn agent_lines() {
        let directory = json!({"nodes": [
            {"node_id": "a", "local": true, "online": true, "agents": [{"agent_id": "x"}]},
            {"node_id": "b", "local": false, "online": true,
             "agents": [{"agent_id": "y"}, {"agent_id": "z"}]},
            {"node_id": "c", "local": false, "online": false, "agents": []},
        ]});
        assert_eq!(
            agents_line(&Optional::Json(directory)),
            "3 on the mesh (1 here), on 2 nodes"
        );
        assert_eq!(
            agents_line(&Optional::Json(json!({"nodes": []}))),
            "0 on the mesh (0 here), on 0 nodes"
        );
        assert_eq!(
            agents_line(&Optional::Json(json!({"nodes": [
                {"local": true, "agents": [{"agent_id": "x"}]}
            ]}))),
            "1 on the mesh (1 here), on 1 node"
        );
        assert_eq!(
            agents_line(&Optional::Json(json!({
                "error": {"code": "unavailable", "message": "agents are not running"}
            }))),
            "unavailable (agents are not running)"
        );
        assert_eq!(
            agents_line(&Optional::Missing),
            "unknown (this node has no /api/agents)"
        );
    }

    /// Against a real node: every line is filled from the real endpoints, and a path the
    /// node does not serve is reported as missing rather than failing the command.
    #[test]
    fn summary_of_a_real_node() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let loopback: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let node = runtime
            .block_on(
                dawn_node::NodeBuilder::new()
                    .data_dir(dir.path())
                    .listen(loopback)
                    .http(Some(loopback))
                    .development_mode(true)
                    .start(),
            )
            .unwrap();
        let client = Client::new(format!("http://{}", node.http_addr().unwrap()));
        let (_, status): (_, NodeStatus) = client.get("/api/status").unwrap();
        let text = summary(&client, &status).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with(&format!(
                "gossip    {} delivered, ",
                status.gossip.delivered
            )),
            "{text}"
        );
        assert!(lines[1].starts_with("ready     "), "{text}");
        assert!(!lines[1].contains("unknown"), "{text}");
        assert!(lines[2].starts_with("agents    "), "{text}");
        assert!(!lines[2].contains("unknown"), "{text}");
        assert!(matches!(
            get_optional(&client, "/no-such-endpoint").unwrap(),
            Optional::Missing
        ));
        runtime.block_on(node.shutdown()).unwrap();
        // A node that is gone is an error, not "unknown".
        assert!(get_optional(&client, "/readyz").is_err());
    }
}
