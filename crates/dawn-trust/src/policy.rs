//! The permission policy: who may do what, and why.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use dawn_identity::{AgentId, NodeId};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::level::TrustLevel;
use crate::permission::{Permission, PermissionSet};

/// The most rules in each of a policy's `deny` and `allow` lists.
pub const MAX_POLICY_RULES: usize = 1024;

/// The most entries in one list of a rule (`peers`, `levels`, `agents`, `tools`).
pub const MAX_RULE_LIST_LEN: usize = 1024;

/// The longest tool name, in bytes.
pub const MAX_TOOL_NAME_LEN: usize = 128;

/// The longest rule name, in bytes.
pub const MAX_RULE_NAME_LEN: usize = 128;

/// Domain separation for [`Policy::fingerprint`].
const FINGERPRINT_DOMAIN: &[u8] = b"dawn/policy/v1";

/// The built-in permissions of each level (see [`Policy`]).
const DEFAULT_LEVELS: [PermissionSet; 5] = [
    // untrusted
    PermissionSet::EMPTY,
    // unknown
    PermissionSet::of(&[Permission::Connect, Permission::ReadAgents]),
    // verified
    PermissionSet::of(&[
        Permission::Connect,
        Permission::ReadAgents,
        Permission::WriteRegistry,
    ]),
    // trusted
    PermissionSet::of(&[
        Permission::Connect,
        Permission::ReadAgents,
        Permission::WriteRegistry,
        Permission::CallTools,
    ]),
    // bootstrap
    PermissionSet::of(&[
        Permission::Connect,
        Permission::ReadAgents,
        Permission::WriteRegistry,
    ]),
];

/// What each level may do by default, as configured: a level left out keeps the built-in
/// default (see [`Policy`]).
///
/// ```toml
/// [levels]
/// verified = ["connect", "read_agents", "write_registry", "call_tools"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelDefaults {
    /// Must be empty or absent: Untrusted peers are refused everything.
    #[serde(default)]
    pub untrusted: Option<PermissionSet>,
    /// Permissions of Unknown peers.
    #[serde(default)]
    pub unknown: Option<PermissionSet>,
    /// Permissions of Verified peers.
    #[serde(default)]
    pub verified: Option<PermissionSet>,
    /// Permissions of Trusted peers.
    #[serde(default)]
    pub trusted: Option<PermissionSet>,
    /// Permissions of Bootstrap peers.
    #[serde(default)]
    pub bootstrap: Option<PermissionSet>,
}

impl LevelDefaults {
    fn get(&self, level: TrustLevel) -> Option<PermissionSet> {
        match level {
            TrustLevel::Untrusted => self.untrusted,
            TrustLevel::Unknown => self.unknown,
            TrustLevel::Verified => self.verified,
            TrustLevel::Trusted => self.trusted,
            TrustLevel::Bootstrap => self.bootstrap,
        }
    }

    /// Sets the permissions of `level`.
    pub fn set(&mut self, level: TrustLevel, permissions: PermissionSet) {
        let slot = match level {
            TrustLevel::Untrusted => &mut self.untrusted,
            TrustLevel::Unknown => &mut self.unknown,
            TrustLevel::Verified => &mut self.verified,
            TrustLevel::Trusted => &mut self.trusted,
            TrustLevel::Bootstrap => &mut self.bootstrap,
        };
        *slot = Some(permissions);
    }
}

/// One allow or deny rule, as configured. Every field that is present restricts the rule;
/// a field left out matches anything. A rule matches a request when all its present fields
/// do.
///
/// ```toml
/// [[deny]]
/// name = "nobody runs shell commands"
/// permissions = ["call_tools"]
/// agents = ["shell"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A name to explain decisions with (at most 128 bytes).
    #[serde(default)]
    pub name: Option<String>,
    /// The rule applies to these peers only.
    #[serde(default)]
    pub peers: Option<Vec<NodeId>>,
    /// The rule applies to peers at these levels only.
    #[serde(default)]
    pub levels: Option<Vec<TrustLevel>>,
    /// The permissions the rule allows or denies (required, not empty).
    pub permissions: PermissionSet,
    /// The rule applies to requests about these agents only (`read_agents`, `call_tools`).
    #[serde(default)]
    pub agents: Option<Vec<AgentId>>,
    /// The rule applies to calls of these tools only (`call_tools`), on any agent unless
    /// `agents` says otherwise.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
}

impl RuleConfig {
    /// A rule for `permissions` that matches every peer, agent and tool; narrow it by setting
    /// the other fields.
    #[must_use]
    pub fn new(permissions: impl IntoIterator<Item = Permission>) -> Self {
        Self {
            name: None,
            peers: None,
            levels: None,
            permissions: permissions.into_iter().collect(),
            agents: None,
            tools: None,
        }
    }
}

/// A policy as configured: the serde form of [`Policy`], TOML-friendly.
///
/// ```toml
/// [levels]
/// unknown = ["connect", "read_agents"]
///
/// [[deny]]
/// permissions = ["call_tools"]
/// agents = ["shell"]
///
/// [[allow]]
/// peers = ["<node id>"]
/// permissions = ["call_tools"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Per-level defaults replacing the built-in ones.
    #[serde(default)]
    pub levels: LevelDefaults,
    /// Deny rules, checked first.
    #[serde(default)]
    pub deny: Vec<RuleConfig>,
    /// Allow rules, checked after the deny rules.
    #[serde(default)]
    pub allow: Vec<RuleConfig>,
}

/// Which list a rule is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleList {
    /// The `deny` list.
    Deny,
    /// The `allow` list.
    Allow,
}

impl RuleList {
    /// The list's name in the configuration.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Allow => "allow",
        }
    }
}

/// A rule's place in the policy: its list and its 0-based index there. Displays as
/// `deny[0]`, `allow[3]`: in TOML, `allow[3]` is the fourth `[[allow]]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RuleRef {
    /// The list.
    pub list: RuleList,
    /// The index in the list, from 0.
    pub index: usize,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.list.as_str(), self.index)
    }
}

/// A policy was refused; each variant names the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A list that is present is empty (it would match nothing, certainly a mistake).
    #[error(
        "{rule}: `{field}` is empty; leave it out to match anything, or list at least one entry"
    )]
    EmptyList {
        /// The rule.
        rule: RuleRef,
        /// The field.
        field: &'static str,
    },
    /// A list is longer than [`MAX_RULE_LIST_LEN`].
    #[error("{rule}: `{field}` lists {count} entries; the most is {MAX_RULE_LIST_LEN}")]
    ListTooLong {
        /// The rule.
        rule: RuleRef,
        /// The field.
        field: &'static str,
        /// How many entries it has.
        count: usize,
    },
    /// A `deny` or `allow` list has more than [`MAX_POLICY_RULES`] rules.
    #[error("`{list}` has {count} rules; the most is {MAX_POLICY_RULES}", list = .list.as_str())]
    TooManyRules {
        /// The list.
        list: RuleList,
        /// How many rules it has.
        count: usize,
    },
    /// A tool name is empty, too long, or has whitespace or control characters.
    #[error("{rule}: `tools` entry {index} ({name:?}) is not a valid tool name: {reason}")]
    BadToolName {
        /// The rule.
        rule: RuleRef,
        /// The entry's index in `tools`.
        index: usize,
        /// The name (cut to 128 bytes).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A rule's `name` is longer than [`MAX_RULE_NAME_LEN`] bytes.
    #[error("{rule}: `name` is {len} bytes; the most is {MAX_RULE_NAME_LEN}")]
    NameTooLong {
        /// The rule.
        rule: RuleRef,
        /// Its length.
        len: usize,
    },
    /// A rule is scoped to agents or tools but names a permission whose requests never carry
    /// one, so it could never match that permission.
    #[error(
        "{rule}: `{field}` limits the rule to requests that name {what}, but `{permission}` \
         requests never do; move `{permission}` to a rule without `{field}`",
        what = if *.field == "tools" { "a tool" } else { "an agent" }
    )]
    ScopeNeverMatches {
        /// The rule.
        rule: RuleRef,
        /// `agents` or `tools`.
        field: &'static str,
        /// The permission that cannot match.
        permission: Permission,
    },
    /// `levels.untrusted` grants permissions; Untrusted peers are refused everything.
    #[error("levels.untrusted: untrusted peers cannot be granted permissions; leave it out")]
    UntrustedDefault,
    /// An allow rule names the Untrusted level; Untrusted peers are refused everything.
    #[error("{rule}: `levels` includes `untrusted`, but untrusted peers are refused everything")]
    AllowsUntrusted {
        /// The rule.
        rule: RuleRef,
    },
    /// The policy could not be encoded for its fingerprint.
    #[error("policy cannot be encoded: {0}")]
    Encode(String),
}

/// A compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    name: Option<Arc<str>>,
    peers: Option<BTreeSet<NodeId>>,
    levels: Option<u8>,
    permissions: PermissionSet,
    agents: Option<BTreeSet<AgentId>>,
    tools: Option<BTreeSet<String>>,
}

impl Rule {
    fn compile(rule: RuleRef, config: &RuleConfig) -> Result<Self, PolicyError> {
        fn check_len<T>(rule: RuleRef, field: &'static str, list: &[T]) -> Result<(), PolicyError> {
            if list.is_empty() {
                return Err(PolicyError::EmptyList { rule, field });
            }
            if list.len() > MAX_RULE_LIST_LEN {
                return Err(PolicyError::ListTooLong {
                    rule,
                    field,
                    count: list.len(),
                });
            }
            Ok(())
        }
        if let Some(name) = &config.name
            && name.len() > MAX_RULE_NAME_LEN
        {
            return Err(PolicyError::NameTooLong {
                rule,
                len: name.len(),
            });
        }
        if config.permissions.is_empty() {
            return Err(PolicyError::EmptyList {
                rule,
                field: "permissions",
            });
        }
        if let Some(peers) = &config.peers {
            check_len(rule, "peers", peers)?;
        }
        if let Some(levels) = &config.levels {
            check_len(rule, "levels", levels)?;
            if rule.list == RuleList::Allow && levels.contains(&TrustLevel::Untrusted) {
                return Err(PolicyError::AllowsUntrusted { rule });
            }
        }
        for (field, present, fits) in [
            (
                "agents",
                config.agents.is_some(),
                Permission::takes_agent as fn(_) -> _,
            ),
            ("tools", config.tools.is_some(), Permission::takes_tool),
        ] {
            if present && let Some(permission) = config.permissions.iter().find(|p| !fits(*p)) {
                return Err(PolicyError::ScopeNeverMatches {
                    rule,
                    field,
                    permission,
                });
            }
        }
        if let Some(agents) = &config.agents {
            check_len(rule, "agents", agents)?;
        }
        if let Some(tools) = &config.tools {
            check_len(rule, "tools", tools)?;
            for (index, name) in tools.iter().enumerate() {
                if let Err(reason) = check_tool_name(name) {
                    return Err(PolicyError::BadToolName {
                        rule,
                        index,
                        name: truncate(name, MAX_TOOL_NAME_LEN).to_owned(),
                        reason,
                    });
                }
            }
        }
        Ok(Self {
            name: config.name.as_deref().map(Arc::from),
            peers: config.peers.as_ref().map(|p| p.iter().copied().collect()),
            levels: config
                .levels
                .as_ref()
                .map(|l| l.iter().fold(0, |bits, level| bits | level.bit())),
            permissions: config.permissions,
            agents: config.agents.as_ref().map(|a| a.iter().cloned().collect()),
            tools: config.tools.as_ref().map(|t| t.iter().cloned().collect()),
        })
    }

    fn matches(&self, request: &Request<'_>) -> bool {
        self.permissions.contains(request.permission)
            && self
                .levels
                .is_none_or(|bits| bits & request.level.bit() != 0)
            && self
                .peers
                .as_ref()
                .is_none_or(|peers| peers.contains(request.peer))
            && self
                .agents
                .as_ref()
                .is_none_or(|agents| request.agent.is_some_and(|a| agents.contains(a)))
            && self
                .tools
                .as_ref()
                .is_none_or(|tools| request.tool.is_some_and(|t| tools.contains(t)))
    }
}

/// Checks a tool name: 1 to [`MAX_TOOL_NAME_LEN`] bytes, no whitespace, no control
/// characters.
pub(crate) fn check_tool_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_TOOL_NAME_LEN {
        return Err("it is longer than 128 bytes");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters");
    }
    Ok(())
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// A request to check against the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The peer asking.
    pub peer: &'a NodeId,
    /// Its current level (from the [`TrustTable`](crate::TrustTable)).
    pub level: TrustLevel,
    /// What it asks to do.
    pub permission: Permission,
    /// The agent concerned, for `read_agents` and `call_tools`.
    pub agent: Option<&'a AgentId>,
    /// The tool concerned, for `call_tools`.
    pub tool: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// A request about no agent or tool.
    #[must_use]
    pub const fn new(peer: &'a NodeId, level: TrustLevel, permission: Permission) -> Self {
        Self {
            peer,
            level,
            permission,
            agent: None,
            tool: None,
        }
    }

    /// The request, about `agent`.
    #[must_use]
    pub const fn with_agent(self, agent: &'a AgentId) -> Self {
        Self {
            agent: Some(agent),
            ..self
        }
    }

    /// The request, about `tool`.
    #[must_use]
    pub const fn with_tool(self, tool: &'a str) -> Self {
        Self {
            tool: Some(tool),
            ..self
        }
    }
}

/// Which step of the policy decided a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecisionReason {
    /// The peer is Untrusted, which no rule can override.
    Untrusted,
    /// A rule matched: a deny rule (denied) or an allow rule (allowed).
    Rule {
        /// Which rule.
        rule: RuleRef,
        /// Its name, if it has one.
        name: Option<Arc<str>>,
    },
    /// No rule matched; the level's default decided.
    LevelDefault {
        /// The peer's level.
        level: TrustLevel,
    },
}

/// The policy's answer to a [`Request`], with the reason, for the audit log and for the error
/// the user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// What decided it.
    pub reason: DecisionReason,
}

impl Decision {
    /// A sentence explaining the decision about `request`, e.g. `peer abcdefghij may not
    /// call_tools on shell/exec: denied by deny[0] ("nobody runs shell commands")`.
    #[must_use]
    pub fn explain(&self, request: &Request<'_>) -> String {
        let mut text = format!(
            "peer {} {} {}",
            request.peer.fmt_short(),
            if self.allowed { "may" } else { "may not" },
            request.permission
        );
        match (request.agent, request.tool) {
            (Some(agent), Some(tool)) => text.push_str(&format!(" on {agent}/{tool}")),
            (Some(agent), None) => text.push_str(&format!(" on {agent}")),
            (None, Some(tool)) => text.push_str(&format!(" on tool {tool}")),
            (None, None) => {}
        }
        text.push_str(": ");
        text.push_str(&self.to_string());
        text
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        match &self.reason {
            DecisionReason::Untrusted => write!(f, "{verdict}: the peer is untrusted"),
            DecisionReason::Rule { rule, name } => {
                write!(f, "{verdict} by {rule}")?;
                if let Some(name) = name {
                    write!(f, " ({name:?})")?;
                }
                Ok(())
            }
            DecisionReason::LevelDefault { level } if self.allowed => {
                write!(f, "allowed by default for {level} peers")
            }
            DecisionReason::LevelDefault { level } => {
                write!(f, "denied: not granted to {level} peers by default")
            }
        }
    }
}

/// The permission policy: a pure function from a [`Request`] to a [`Decision`].
///
/// # Precedence
///
/// 1. An **Untrusted** peer is denied everything ([`DecisionReason::Untrusted`]); no rule can
///    grant it anything (the configuration refuses to try).
/// 2. The first matching **deny** rule denies.
/// 3. Otherwise the first matching **allow** rule allows.
/// 4. Otherwise the **level default** decides.
///
/// So a deny rule beats an allow rule, and an allow rule (a grant to one peer, say) beats the
/// level default. Rules match by every field they set: `peers`, `levels`, `permissions`,
/// `agents`, `tools`.
///
/// # Default policy
///
/// No rules, and these level defaults:
///
/// | Level | Connect | ReadAgents | WriteRegistry | CallTools | Admin |
/// |---|---|---|---|---|---|
/// | Untrusted | – | – | – | – | – |
/// | Unknown | yes | yes | – | – | – |
/// | Verified | yes | yes | yes | – | – |
/// | Trusted | yes | yes | yes | yes | – |
/// | Bootstrap | yes | yes | yes | – | – |
///
/// Unknown peers may connect and read the directory but not call tools until the operator
/// trusts them or the policy grants it; nobody is an admin unless a rule says so.
///
/// # Configuration
///
/// `Policy` deserializes from a [`PolicyConfig`] (e.g. a TOML table), validating it; errors
/// name the bad entry. To change the policy at run time, build a new one and swap it in:
/// decisions are pure, so there is nothing to migrate; [`fingerprint`](Self::fingerprint)
/// identifies a policy in the audit log.
///
/// ```
/// use dawn_crypto::SigningKey;
/// use dawn_identity::NodeId;
/// use dawn_trust::{Permission, Policy, Request, TrustLevel};
///
/// let peer = NodeId::from(SigningKey::from_bytes(&[1; 32]).verifying_key());
/// let policy = Policy::default();
/// let read = Request::new(&peer, TrustLevel::Unknown, Permission::ReadAgents);
/// assert!(policy.decide(&read).allowed);
/// let call = Request::new(&peer, TrustLevel::Unknown, Permission::CallTools);
/// let decision = policy.decide(&call);
/// assert!(!decision.allowed);
/// assert_eq!(decision.to_string(), "denied: not granted to unknown peers by default");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicyConfig", into = "PolicyConfig")]
pub struct Policy {
    config: PolicyConfig,
    compiled: Compiled,
}

/// The policy in the form decisions use.
#[derive(Debug, Clone)]
struct Compiled {
    levels: [PermissionSet; 5],
    deny: Vec<Rule>,
    allow: Vec<Rule>,
    fingerprint: [u8; 32],
}

/// Two compiled forms of equal configurations are equal; comparing the configurations is
/// enough.
impl PartialEq for Compiled {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for Compiled {}

impl Policy {
    /// Validates and compiles a configured policy.
    ///
    /// # Errors
    /// [`PolicyError`] naming the first bad entry.
    pub fn from_config(config: PolicyConfig) -> Result<Self, PolicyError> {
        if config.levels.untrusted.is_some_and(|set| !set.is_empty()) {
            return Err(PolicyError::UntrustedDefault);
        }
        let mut levels = DEFAULT_LEVELS;
        for level in TrustLevel::ALL {
            if let (Some(set), Some(slot)) =
                (config.levels.get(level), levels.get_mut(level as usize))
            {
                *slot = set;
            }
        }
        let compile = |list: RuleList, rules: &[RuleConfig]| {
            if rules.len() > MAX_POLICY_RULES {
                return Err(PolicyError::TooManyRules {
                    list,
                    count: rules.len(),
                });
            }
            rules
                .iter()
                .enumerate()
                .map(|(index, rule)| Rule::compile(RuleRef { list, index }, rule))
                .collect::<Result<Vec<_>, _>>()
        };
        let deny = compile(RuleList::Deny, &config.deny)?;
        let allow = compile(RuleList::Allow, &config.allow)?;
        let encoded =
            dawn_wire::encode_payload(&config).map_err(|e| PolicyError::Encode(e.to_string()))?;
        let fingerprint = Sha256::new()
            .chain_update(FINGERPRINT_DOMAIN)
            .chain_update(&encoded)
            .finalize()
            .into();
        Ok(Self {
            config,
            compiled: Compiled {
                levels,
                deny,
                allow,
                fingerprint,
            },
        })
    }

    /// The configuration this policy was built from.
    #[must_use]
    pub const fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Decides a request; see the precedence above.
    #[must_use]
    pub fn decide(&self, request: &Request<'_>) -> Decision {
        if request.level == TrustLevel::Untrusted {
            return Decision {
                allowed: false,
                reason: DecisionReason::Untrusted,
            };
        }
        for (list, rules, allowed) in [
            (RuleList::Deny, &self.compiled.deny, false),
            (RuleList::Allow, &self.compiled.allow, true),
        ] {
            if let Some((index, rule)) = rules.iter().enumerate().find(|(_, r)| r.matches(request))
            {
                return Decision {
                    allowed,
                    reason: DecisionReason::Rule {
                        rule: RuleRef { list, index },
                        name: rule.name.clone(),
                    },
                };
            }
        }
        Decision {
            allowed: self
                .level_default(request.level)
                .contains(request.permission),
            reason: DecisionReason::LevelDefault {
                level: request.level,
            },
        }
    }

    /// What peers at `level` may do when no rule matches.
    #[must_use]
    pub fn level_default(&self, level: TrustLevel) -> PermissionSet {
        self.compiled
            .levels
            .get(level as usize)
            .copied()
            .unwrap_or(PermissionSet::EMPTY)
    }

    /// SHA-256 over `"dawn/policy/v1"` and the strict-postcard encoding of the configuration:
    /// names this exact policy in audit entries (`PolicyChanged`).
    #[must_use]
    pub const fn fingerprint(&self) -> &[u8; 32] {
        &self.compiled.fingerprint
    }
}

impl Default for Policy {
    /// The safe default policy described above.
    fn default() -> Self {
        Self {
            config: PolicyConfig::default(),
            compiled: Compiled {
                levels: DEFAULT_LEVELS,
                deny: Vec::new(),
                allow: Vec::new(),
                fingerprint: Sha256::new()
                    .chain_update(FINGERPRINT_DOMAIN)
                    .chain_update(DEFAULT_CONFIG_ENCODING)
                    .finalize()
                    .into(),
            },
        }
    }
}

/// The strict-postcard encoding of `PolicyConfig::default()`: five absent level options and
/// two empty lists. A unit test checks it against the encoder.
const DEFAULT_CONFIG_ENCODING: &[u8] = &[0, 0, 0, 0, 0, 0, 0];

impl TryFrom<PolicyConfig> for Policy {
    type Error = PolicyError;

    fn try_from(config: PolicyConfig) -> Result<Self, PolicyError> {
        Self::from_config(config)
    }
}

impl From<Policy> for PolicyConfig {
    fn from(policy: Policy) -> Self {
        policy.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::SigningKey;

    fn node(seed: u8) -> NodeId {
        SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
    }

    #[test]
    fn default_matches_compiled_default() {
        let compiled = Policy::from_config(PolicyConfig::default()).unwrap();
        assert_eq!(
            dawn_wire::encode_payload(&PolicyConfig::default()).unwrap(),
            DEFAULT_CONFIG_ENCODING
        );
        assert_eq!(compiled.fingerprint(), Policy::default().fingerprint());
        for level in TrustLevel::ALL {
            assert_eq!(
                compiled.level_default(level),
                Policy::default().level_default(level)
            );
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn tool_names() {
        assert!(check_tool_name("get_forecast").is_ok());
        assert!(check_tool_name("ns/tool.v2").is_ok());
        assert!(check_tool_name("").is_err());
        assert!(check_tool_name("a b").is_err());
        assert!(check_tool_name("a\u{7}").is_err());
        assert!(check_tool_name(&"x".repeat(129)).is_err());
    }

    #[test]
    fn explain_reads_well() {
        let peer = node(1);
        let agent: AgentId = "shell".parse().unwrap();
        let mut rule = RuleConfig::new([Permission::CallTools]);
        rule.name = Some("nobody runs shell commands".into());
        rule.agents = Some(vec![agent.clone()]);
        let policy = Policy::from_config(PolicyConfig {
            deny: vec![rule],
            ..PolicyConfig::default()
        })
        .unwrap();
        let request = Request::new(&peer, TrustLevel::Trusted, Permission::CallTools)
            .with_agent(&agent)
            .with_tool("exec");
        let decision = policy.decide(&request);
        assert_eq!(
            decision.explain(&request),
            format!(
                "peer {} may not call_tools on shell/exec: denied by deny[0] (\"nobody runs \
                 shell commands\")",
                peer.fmt_short()
            )
        );
    }
}
