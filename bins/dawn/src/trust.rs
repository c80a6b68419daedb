//! `dawn trust`: list the peers' trust standing, or assign a peer a level, through the node's
//! admin API.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use dawn_node::{
    AdminToken, Config, NodeId, PeerTrust, TrustLevel, TrustList, default_config_path,
};
use serde::de::DeserializeOwned;

use crate::Client;

/// `dawn trust [NODE_ID LEVEL]`.
#[derive(Debug, Args)]
pub(crate) struct TrustArgs {
    /// The peer. Without it, every peer's level and score is listed.
    #[arg(value_name = "NODE_ID", requires = "level")]
    node_id: Option<NodeId>,
    /// trusted, bootstrap or untrusted; unknown removes the assignment.
    #[arg(value_name = "LEVEL")]
    level: Option<TrustLevel>,
    /// Also forgive the peer: its score goes back to the baseline.
    #[arg(long)]
    reset: bool,
    /// File whose first line is the admin token. Default: DAWN_ADMIN_TOKEN, else the config
    /// file's admin.token_file. Needed when the node has an admin token.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
}

/// The admin token to send, if any: `--admin-token-file`, `DAWN_ADMIN_TOKEN`, then the config
/// file's `admin.token_file`.
fn admin_token(args: &TrustArgs, config: Option<&Path>) -> anyhow::Result<Option<AdminToken>> {
    if let Some(path) = &args.admin_token_file {
        return Ok(Some(AdminToken::read_file(path)?));
    }
    if let Ok(token) = std::env::var("DAWN_ADMIN_TOKEN") {
        return Ok(Some(AdminToken::new(token).context("DAWN_ADMIN_TOKEN")?));
    }
    let file = match config {
        Some(path) => Some(Config::load(path)?),
        None => match default_config_path().filter(|p| p.exists()) {
            Some(path) => Some(Config::load(&path)?),
            None => None,
        },
    };
    match file.and_then(|c| c.admin.token_file) {
        Some(path) => Ok(Some(AdminToken::read_file(&path)?)),
        None => Ok(None),
    }
}

pub(crate) fn run(
    client: &Client,
    args: &TrustArgs,
    config: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let token = admin_token(args, config)?;
    match (&args.node_id, args.level) {
        (Some(peer), Some(level)) => {
            if level == TrustLevel::Verified {
                bail!(
                    "verified is earned by behaviour and cannot be assigned; use trusted, \
                     bootstrap, untrusted, or unknown to remove an assignment"
                );
            }
            let body = serde_json::json!({ "level": level, "reset": args.reset }).to_string();
            let (raw, trust): (_, PeerTrust) = send(
                client,
                "PUT",
                &format!("/api/trust/{peer}"),
                Some(&body),
                token.as_ref(),
            )?;
            if json {
                crate::print_json(&raw)?;
            } else {
                println!(
                    "{} is now {} (score {:.3})",
                    trust.node_id, trust.level, trust.score
                );
            }
        }
        _ => {
            let (raw, list): (_, TrustList) =
                send(client, "GET", "/api/trust", None, token.as_ref())?;
            if json {
                crate::print_json(&raw)?;
            } else {
                print!("{}", format_list(&list));
            }
        }
    }
    Ok(())
}

/// Sends an admin request, with the token if there is one.
fn send<T: DeserializeOwned>(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&AdminToken>,
) -> anyhow::Result<(serde_json::Value, T)> {
    let url = format!("{}{path}", client.base);
    let authorization = token.map(|t| format!("Bearer {}", t.expose()));
    let response = if method == "PUT" {
        let mut request = client
            .agent
            .put(&url)
            .header("Content-Type", "application/json");
        if let Some(value) = &authorization {
            request = request.header("Authorization", value);
        }
        request.send(body.unwrap_or_default())
    } else {
        let mut request = client.agent.get(&url);
        if let Some(value) = &authorization {
            request = request.header("Authorization", value);
        }
        request.call()
    };
    client.decode(&url, response)
}

fn format_list(list: &TrustList) -> String {
    if list.peers.is_empty() {
        return "no peers\n".to_owned();
    }
    let mut out = format!(
        "{:<52}  {:<9}  {:>5}  {:<9}  {:<9}  {}\n",
        "NODE ID", "LEVEL", "SCORE", "ASSIGNED", "BREAKER", "CONNECTED"
    );
    for peer in &list.peers {
        out.push_str(&format!(
            "{:<52}  {:<9}  {:>5.3}  {:<9}  {:<9}  {}\n",
            peer.node_id.to_string(),
            peer.level.as_str(),
            peer.score,
            peer.assigned.map_or("-", |a| a.as_str()),
            peer.breaker.as_str(),
            if peer.connected { "yes" } else { "no" },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_a_table() {
        let id = "pfqi2ljchfqlw4yvf7jbfiulsxpsiwm3mjpzuybrm5shrfahkuzq";
        let list: TrustList = serde_json::from_value(serde_json::json!({
            "peers": [{ "node_id": id, "level": "trusted", "score": 0.5, "assigned": "trusted",
                        "connected": true, "breaker": "closed" }],
            "gossip_frames_dropped": 0
        }))
        .unwrap();
        let text = format_list(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NODE ID"));
        assert!(
            lines[1].starts_with(&format!(
                "{id}  trusted    0.500  trusted    closed     yes"
            )),
            "{text}"
        );
        let empty: TrustList =
            serde_json::from_value(serde_json::json!({ "peers": [], "gossip_frames_dropped": 0 }))
                .unwrap();
        assert_eq!(format_list(&empty), "no peers\n");
    }
}
