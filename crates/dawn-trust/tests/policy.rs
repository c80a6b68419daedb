//! The permission policy: the default, precedence, scoping, validation and the TOML form.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use dawn_crypto::SigningKey;
use dawn_identity::{AgentId, NodeId};
use dawn_trust::{
    DecisionReason, Permission, PermissionSet, Policy, PolicyConfig, PolicyError, Request,
    RuleConfig, RuleList, TrustLevel,
};
use serde::Deserialize;

const EXAMPLE: &str = include_str!("data/policy.toml");

fn node(seed: u8) -> NodeId {
    SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
}

fn agent(name: &str) -> AgentId {
    name.parse().unwrap()
}

/// Peer, level, permission, agent, tool, whether allowed, the decision's text.
type Case<'a> = (
    &'a NodeId,
    TrustLevel,
    Permission,
    Option<&'a AgentId>,
    Option<&'a str>,
    bool,
    &'a str,
);

fn rule_index(reason: &DecisionReason) -> Option<(RuleList, usize)> {
    match reason {
        DecisionReason::Rule { rule, .. } => Some((rule.list, rule.index)),
        _ => None,
    }
}

#[test]
fn default_policy_lets_unknown_peers_connect_and_read_but_not_call_tools() {
    let policy = Policy::default();
    let peer = node(1);
    let ask = |level, permission| policy.decide(&Request::new(&peer, level, permission));
    for (permission, allowed) in [
        (Permission::Connect, true),
        (Permission::ReadAgents, true),
        (Permission::CallTools, false),
        (Permission::WriteRegistry, false),
        (Permission::Admin, false),
    ] {
        let decision = ask(TrustLevel::Unknown, permission);
        assert_eq!(decision.allowed, allowed, "{permission}");
        assert_eq!(
            decision.reason,
            DecisionReason::LevelDefault {
                level: TrustLevel::Unknown
            }
        );
    }
    // Tools only for Trusted peers; admin for nobody; everything refused to Untrusted.
    assert!(!ask(TrustLevel::Verified, Permission::CallTools).allowed);
    assert!(ask(TrustLevel::Verified, Permission::WriteRegistry).allowed);
    assert!(ask(TrustLevel::Trusted, Permission::CallTools).allowed);
    assert!(!ask(TrustLevel::Bootstrap, Permission::CallTools).allowed);
    for level in TrustLevel::ALL {
        assert!(!ask(level, Permission::Admin).allowed, "{level}");
    }
    for permission in Permission::ALL {
        let decision = ask(TrustLevel::Untrusted, permission);
        assert!(!decision.allowed);
        assert_eq!(decision.reason, DecisionReason::Untrusted);
    }
}

#[test]
fn deny_beats_allow_and_allow_beats_the_level_default() {
    let peer = node(1);
    let other = node(2);
    let mut grant = RuleConfig::new([Permission::CallTools, Permission::Admin]);
    grant.peers = Some(vec![peer]);
    let mut deny = RuleConfig::new([Permission::CallTools]);
    deny.peers = Some(vec![peer]);
    deny.agents = Some(vec![agent("shell")]);
    let policy = Policy::from_config(PolicyConfig {
        deny: vec![deny],
        allow: vec![grant],
        ..PolicyConfig::default()
    })
    .unwrap();

    // The per-peer grant beats the Unknown default...
    let weather = agent("weather");
    let call = Request::new(&peer, TrustLevel::Unknown, Permission::CallTools).with_agent(&weather);
    let decision = policy.decide(&call);
    assert!(decision.allowed);
    assert_eq!(rule_index(&decision.reason), Some((RuleList::Allow, 0)));
    assert!(
        policy
            .decide(&Request::new(&peer, TrustLevel::Unknown, Permission::Admin))
            .allowed
    );
    // ...the deny rule beats the grant...
    let shell = agent("shell");
    let decision = policy.decide(&call.with_agent(&shell));
    assert!(!decision.allowed);
    assert_eq!(rule_index(&decision.reason), Some((RuleList::Deny, 0)));
    // ...and other peers keep the default.
    let decision = policy.decide(&Request::new(
        &other,
        TrustLevel::Unknown,
        Permission::CallTools,
    ));
    assert!(!decision.allowed);
    assert_eq!(
        decision.reason,
        DecisionReason::LevelDefault {
            level: TrustLevel::Unknown
        }
    );
    // Untrusted beats every rule.
    let decision = policy.decide(&Request::new(
        &peer,
        TrustLevel::Untrusted,
        Permission::CallTools,
    ));
    assert_eq!(decision.reason, DecisionReason::Untrusted);
}

#[test]
fn a_deny_rule_can_take_away_a_level_default() {
    let mut deny = RuleConfig::new([Permission::ReadAgents]);
    deny.levels = Some(vec![TrustLevel::Unknown]);
    deny.agents = Some(vec![agent("payroll")]);
    let policy = Policy::from_config(PolicyConfig {
        deny: vec![deny],
        ..PolicyConfig::default()
    })
    .unwrap();
    let peer = node(1);
    let payroll = agent("payroll");
    let weather = agent("weather");
    let read = Request::new(&peer, TrustLevel::Unknown, Permission::ReadAgents);
    assert!(!policy.decide(&read.with_agent(&payroll)).allowed);
    assert!(policy.decide(&read.with_agent(&weather)).allowed);
    // A request that names no agent is not about payroll.
    assert!(policy.decide(&read).allowed);
    // Verified peers are not concerned by the rule.
    let verified = Request::new(&peer, TrustLevel::Verified, Permission::ReadAgents);
    assert!(policy.decide(&verified.with_agent(&payroll)).allowed);
}

#[test]
fn the_example_policy_parses_from_toml_and_decides_as_documented() {
    let policy: Policy = toml::from_str(EXAMPLE).unwrap();
    let (ops, lab, stranger) = (node(1), node(2), node(3));
    let (weather, shell) = (agent("weather"), agent("shell"));
    let decide = |peer, level, permission, agent: Option<&AgentId>, tool: Option<&str>| {
        let mut request = Request::new(peer, level, permission);
        request.agent = agent;
        request.tool = tool;
        policy.decide(&request)
    };
    use Permission::*;
    use TrustLevel::*;
    let cases: &[Case<'_>] = &[
        (
            &stranger,
            Unknown,
            Connect,
            None,
            None,
            true,
            "allowed by default for unknown peers",
        ),
        (
            &stranger,
            Unknown,
            CallTools,
            Some(&weather),
            Some("forecast"),
            false,
            "denied: not granted to unknown peers by default",
        ),
        (
            &stranger,
            Verified,
            CallTools,
            Some(&weather),
            Some("forecast"),
            true,
            "allowed by allow[0] (\"verified peers may ask for the weather\")",
        ),
        (
            &stranger,
            Verified,
            CallTools,
            Some(&weather),
            Some("delete_all"),
            false,
            "denied: not granted to verified peers by default",
        ),
        (
            &stranger,
            Trusted,
            CallTools,
            Some(&shell),
            Some("exec"),
            false,
            "denied by deny[0] (\"nobody runs shell commands\")",
        ),
        (
            &ops,
            Unknown,
            Admin,
            None,
            None,
            true,
            "allowed by allow[1] (\"the ops laptop\")",
        ),
        (
            &ops,
            Verified,
            CallTools,
            Some(&shell),
            Some("exec"),
            false,
            "denied by deny[0] (\"nobody runs shell commands\")",
        ),
        (
            &lab,
            Trusted,
            WriteRegistry,
            None,
            None,
            false,
            "denied by deny[1] (\"the lab may not publish agents\")",
        ),
        (
            &lab,
            Trusted,
            CallTools,
            Some(&weather),
            Some("anything"),
            true,
            "allowed by default for trusted peers",
        ),
        (
            &ops,
            Untrusted,
            Connect,
            None,
            None,
            false,
            "denied: the peer is untrusted",
        ),
    ];
    for (i, (peer, level, permission, agent, tool, allowed, why)) in cases.iter().enumerate() {
        let decision = decide(peer, *level, *permission, *agent, *tool);
        assert_eq!(decision.allowed, *allowed, "case {i}: {decision}");
        assert_eq!(decision.to_string(), *why, "case {i}");
    }
    // The policy serializes back to an equal one.
    let text = toml::to_string(&policy).unwrap();
    let again: Policy = toml::from_str(&text).unwrap();
    assert_eq!(again, policy);
    assert_eq!(again.fingerprint(), policy.fingerprint());
    assert_ne!(policy.fingerprint(), Policy::default().fingerprint());
}

#[test]
fn the_policy_embeds_in_a_node_config() {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NodeConfig {
        #[serde(default)]
        policy: Policy,
    }
    let text = r#"
        [policy.levels]
        verified = ["connect", "read_agents", "write_registry", "call_tools"]

        [[policy.deny]]
        permissions = ["call_tools"]
        tools = ["delete_everything"]
    "#;
    let config: NodeConfig = toml::from_str(text).unwrap();
    let peer = node(1);
    let call = Request::new(&peer, TrustLevel::Verified, Permission::CallTools);
    assert!(config.policy.decide(&call.with_tool("forecast")).allowed);
    assert!(
        !config
            .policy
            .decide(&call.with_tool("delete_everything"))
            .allowed
    );
    let empty: NodeConfig = toml::from_str("").unwrap();
    assert_eq!(empty.policy, Policy::default());
}

/// The error message for `text`, which must fail to load.
fn toml_error(text: &str) -> String {
    toml::from_str::<Policy>(text).unwrap_err().to_string()
}

#[test]
fn toml_errors_name_the_bad_entry() {
    // A misspelt key.
    let err = toml_error("[[allow]]\nlevels = [\"verified\"]\npermisions = [\"call_tools\"]\n");
    assert!(err.contains("permisions"), "{err}");
    // An unknown level, permission or top-level table.
    let err = toml_error("[levels]\ntrustd = [\"connect\"]\n");
    assert!(err.contains("trustd"), "{err}");
    let err = toml_error("[[deny]]\npermissions = [\"call-tools\"]\n");
    assert!(err.contains("call-tools"), "{err}");
    let err = toml_error("[[denied]]\npermissions = [\"connect\"]\n");
    assert!(err.contains("denied"), "{err}");
    // A missing required field.
    let err = toml_error("[[deny]]\nagents = [\"shell\"]\n");
    assert!(err.contains("permissions"), "{err}");
    // A bad node id or agent id.
    let err = toml_error("[[allow]]\npeers = [\"not-a-node\"]\npermissions = [\"admin\"]\n");
    assert!(err.contains("node id"), "{err}");
    let err = toml_error("[[deny]]\nagents = [\"Shell\"]\npermissions = [\"call_tools\"]\n");
    assert!(err.contains("lowercase"), "{err}");
    // Validation after parsing names the rule and the field.
    let err = toml_error(
        "[[allow]]\npermissions = [\"connect\"]\n\n[[allow]]\nlevels = []\npermissions = [\"connect\"]\n",
    );
    assert!(
        err.contains("allow[1]") && err.contains("`levels` is empty"),
        "{err}"
    );
    let err = toml_error("[[allow]]\nlevels = [\"untrusted\"]\npermissions = [\"connect\"]\n");
    assert!(
        err.contains("allow[0]") && err.contains("untrusted"),
        "{err}"
    );
    let err = toml_error("[levels]\nuntrusted = [\"connect\"]\n");
    assert!(err.contains("levels.untrusted"), "{err}");
    let err = toml_error("[[deny]]\npermissions = [\"connect\"]\nagents = [\"shell\"]\n");
    assert!(
        err.contains("deny[0]") && err.contains("`connect`"),
        "{err}"
    );
    let err = toml_error("[[deny]]\npermissions = [\"call_tools\"]\ntools = [\"two words\"]\n");
    assert!(
        err.contains("deny[0]") && err.contains("\"two words\""),
        "{err}"
    );
    let err = toml_error("[[deny]]\npermissions = []\n");
    assert!(err.contains("`permissions` is empty"), "{err}");
}

#[test]
fn validation_errors_are_typed() {
    let config = |deny: Vec<RuleConfig>| PolicyConfig {
        deny,
        ..PolicyConfig::default()
    };
    let mut long_name = RuleConfig::new([Permission::Connect]);
    long_name.name = Some("n".repeat(129));
    assert!(matches!(
        Policy::from_config(config(vec![long_name])),
        Err(PolicyError::NameTooLong { len: 129, .. })
    ));
    let mut tools_for_read = RuleConfig::new([Permission::ReadAgents]);
    tools_for_read.tools = Some(vec!["x".into()]);
    assert!(matches!(
        Policy::from_config(config(vec![tools_for_read])),
        Err(PolicyError::ScopeNeverMatches {
            field: "tools",
            permission: Permission::ReadAgents,
            ..
        })
    ));
    let too_many = vec![RuleConfig::new([Permission::Connect]); dawn_trust::MAX_POLICY_RULES + 1];
    assert!(matches!(
        Policy::from_config(config(too_many)),
        Err(PolicyError::TooManyRules {
            list: RuleList::Deny,
            ..
        })
    ));
    let mut many_peers = RuleConfig::new([Permission::Connect]);
    many_peers.peers = Some(vec![node(1); dawn_trust::MAX_RULE_LIST_LEN + 1]);
    assert!(matches!(
        Policy::from_config(config(vec![many_peers])),
        Err(PolicyError::ListTooLong { field: "peers", .. })
    ));
}

#[test]
fn a_replaced_policy_decides_differently_with_no_state_carried_over() {
    let peer = node(1);
    let call = Request::new(&peer, TrustLevel::Verified, Permission::CallTools);
    let before = Policy::default();
    assert!(!before.decide(&call).allowed);
    let mut levels = PolicyConfig::default();
    levels.levels.set(
        TrustLevel::Verified,
        PermissionSet::of(&[Permission::Connect, Permission::CallTools]),
    );
    let after = Policy::from_config(levels).unwrap();
    assert!(after.decide(&call).allowed);
    assert!(
        !after
            .decide(&Request::new(
                &peer,
                TrustLevel::Verified,
                Permission::WriteRegistry
            ))
            .allowed
    );
    assert_ne!(before.fingerprint(), after.fingerprint());
}
