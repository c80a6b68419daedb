//! `dawn agents` and `dawn call`: the mesh directory and tool calls through a node's JSON API.

use std::fmt::Write as _;

use anyhow::{Context as _, bail};
use dawn_node::{AgentAddr, Directory};
use serde_json::Value;

use crate::{Client, print_json};

/// `dawn agents`: every node's agents, this node first, online nodes before offline ones.
pub(crate) fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let (raw, directory): (_, Directory) = client.get("/api/agents")?;
    if json {
        return print_json(&raw);
    }
    print!("{}", format_directory(&directory));
    Ok(())
}

/// The directory as a table: one block per node, one line per agent.
pub(crate) fn format_directory(directory: &Directory) -> String {
    let mut out = String::new();
    if directory.nodes.is_empty() {
        out.push_str("no agents known yet\n");
        return out;
    }
    for node in &directory.nodes {
        let state = match (node.local, node.online) {
            (true, _) => "this node",
            (false, true) => "online",
            (false, false) => "offline",
        };
        let _ = writeln!(out, "{} ({state})", node.node_id);
        for agent in &node.agents {
            let _ = writeln!(
                out,
                "  {:<12} {:<20} tools: {}",
                agent.agent_id.as_str(),
                agent.name,
                if agent.tools.is_empty() {
                    "-".to_owned()
                } else {
                    agent.tools.join(", ")
                }
            );
        }
    }
    out
}

/// `dawn call <node_id>:<agent_id> <tool> '<json args>'`: prints the tool's text content
/// (or the whole result with `--json`); fails when the tool reports an error.
pub(crate) fn call(
    client: &Client,
    address: &str,
    tool: &str,
    arguments: &str,
    json: bool,
) -> anyhow::Result<()> {
    let addr: AgentAddr = address
        .parse()
        .with_context(|| format!("{address:?} is not an agent address <node_id>:<agent_id>"))?;
    let args: Value = serde_json::from_str(arguments)
        .with_context(|| format!("the arguments {arguments:?} are not JSON"))?;
    if !args.is_object() {
        bail!("the arguments must be a JSON object, like '{{\"text\": \"hi\"}}'");
    }
    let path = format!(
        "/api/agents/{}/{}/tools/{}",
        addr.node(),
        addr.agent().as_str(),
        crate::encode_path(tool)
    );
    let (raw, _): (_, Value) = client.post(&path, args.to_string().as_bytes())?;
    if json {
        return print_json(&raw);
    }
    let result = &raw["result"];
    let text = text_of(result);
    if text.is_empty() {
        println!("{}", serde_json::to_string_pretty(result)?);
    } else {
        println!("{text}");
    }
    if result["isError"].as_bool() == Some(true) {
        bail!("the tool reported an error");
    }
    Ok(())
}

/// The text items of an MCP tool result, one per line.
fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_content_is_joined_and_other_content_ignored() {
        let result = serde_json::json!({
            "content": [
                {"type": "text", "text": "one"},
                {"type": "image", "data": "...", "mimeType": "image/png"},
                {"type": "text", "text": "two"}
            ]
        });
        assert_eq!(text_of(&result), "one\ntwo");
        assert_eq!(text_of(&serde_json::json!({})), "");
    }

    #[test]
    fn an_empty_directory_says_so() {
        assert_eq!(
            format_directory(&Directory::default()),
            "no agents known yet\n"
        );
    }
}
