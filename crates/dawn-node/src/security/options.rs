//! What the node's security is configured with: the `[trust]`, `[policy]`, `[resilience]` and
//! `[admin]` sections of the config file, and the admin token.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use dawn_resilience::{ConfigError as ResilienceConfigError, ResilienceConfig};
use dawn_trust::{Policy, PolicyConfig, PolicyError, TrustConfig, TrustConfigError};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::{Config, ConfigError};

/// Shortest admin token accepted, in bytes.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Longest admin token accepted, in bytes.
pub const MAX_ADMIN_TOKEN_LEN: usize = 256;

/// Largest admin token file read, in bytes.
const MAX_TOKEN_FILE_LEN: u64 = 4096;

/// The `[admin]` section: who may use the admin API (`/api/trust`, `/api/policy`,
/// `/api/audit`).
///
/// Without a token the admin API answers only while the HTTP server is bound to a loopback
/// address (and, as the whole API, only to loopback `Host` names). With a token, every admin
/// request must carry `Authorization: Bearer <token>`, on any address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AdminConfig {
    /// A file whose first line is the admin token (16 to 256 visible ASCII characters).
    pub token_file: Option<PathBuf>,
}

/// The raw `[admin]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    token_file: Option<PathBuf>,
}

/// The security sections of a config file, as parsed (still unvalidated).
#[derive(Debug, Default)]
pub(crate) struct RawSecurity {
    pub(crate) trust: Option<TrustConfig>,
    pub(crate) policy: Option<PolicyConfig>,
    pub(crate) resilience: Option<ResilienceConfig>,
    pub(crate) admin: Option<RawAdmin>,
}

/// Validates the security sections into `config`, naming the key at fault.
pub(crate) fn apply_sections(
    config: &mut Config,
    raw: RawSecurity,
    resolve: impl Fn(PathBuf) -> PathBuf,
) -> Result<(), ConfigError> {
    if let Some(trust) = raw.trust {
        trust.validate().map_err(trust_error)?;
        config.trust = trust;
    }
    if let Some(policy) = raw.policy {
        config.policy = Policy::from_config(policy).map_err(|e| policy_error(&e))?;
    }
    if let Some(resilience) = raw.resilience {
        resilience.validate().map_err(|e| resilience_error(&e))?;
        config.resilience = resilience;
    }
    if let Some(admin) = raw.admin
        && let Some(file) = admin.token_file
    {
        if file.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "admin.token_file".to_owned(),
                message: "the path is empty".to_owned(),
            });
        }
        config.admin.token_file = Some(resolve(file));
    }
    Ok(())
}

fn trust_error(error: TrustConfigError) -> ConfigError {
    let key = match &error {
        TrustConfigError::OutOfRange { field, .. } | TrustConfigError::ThresholdOrder { field } => {
            format!("trust.{field}")
        }
        _ => "trust".to_owned(),
    };
    let message = error.to_string();
    let message = message
        .strip_prefix("trust config: ")
        .unwrap_or(&message)
        .to_owned();
    ConfigError::Invalid { key, message }
}

/// The policy key of an error: `policy.deny[0]` for an error in a rule, `policy.levels` for the
/// level defaults, else `policy`.
fn policy_error(error: &PolicyError) -> ConfigError {
    let key = match error {
        PolicyError::EmptyList { rule, .. }
        | PolicyError::ListTooLong { rule, .. }
        | PolicyError::BadToolName { rule, .. }
        | PolicyError::NameTooLong { rule, .. }
        | PolicyError::ScopeNeverMatches { rule, .. }
        | PolicyError::AllowsUntrusted { rule } => format!("policy.{rule}"),
        PolicyError::TooManyRules { list, .. } => format!("policy.{}", list.as_str()),
        PolicyError::UntrustedDefault => "policy.levels.untrusted".to_owned(),
        _ => "policy".to_owned(),
    };
    ConfigError::Invalid {
        key,
        message: error.to_string(),
    }
}

fn resilience_error(error: &ResilienceConfigError) -> ConfigError {
    let key = match error {
        ResilienceConfigError::Zero(name) | ResilienceConfigError::TooLarge { name, .. } => {
            format!("resilience.{name}")
        }
        _ => "resilience".to_owned(),
    };
    ConfigError::Invalid {
        key,
        message: error.to_string(),
    }
}

/// The secret that admin requests carry as `Authorization: Bearer <token>`.
///
/// 16 to 256 visible ASCII characters (no spaces). Compared in constant time; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(Zeroizing<String>);

/// An admin token is not acceptable, or its file cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminTokenError {
    /// The token is shorter than [`MIN_ADMIN_TOKEN_LEN`] or longer than
    /// [`MAX_ADMIN_TOKEN_LEN`] bytes.
    #[error(
        "an admin token is {MIN_ADMIN_TOKEN_LEN} to {MAX_ADMIN_TOKEN_LEN} characters, got {len}"
    )]
    Length {
        /// Its length in bytes.
        len: usize,
    },
    /// The token has a character that is not visible ASCII.
    #[error("an admin token may contain only visible ASCII characters (no spaces)")]
    Characters,
    /// The token file could not be read, or is larger than 4 KiB.
    #[error("admin token file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl AdminToken {
    /// Checks and wraps a token.
    ///
    /// # Errors
    /// [`AdminTokenError::Length`] or [`AdminTokenError::Characters`].
    pub fn new(token: impl Into<String>) -> Result<Self, AdminTokenError> {
        let token = Zeroizing::new(token.into());
        if !(MIN_ADMIN_TOKEN_LEN..=MAX_ADMIN_TOKEN_LEN).contains(&token.len()) {
            return Err(AdminTokenError::Length { len: token.len() });
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminTokenError::Characters);
        }
        Ok(Self(token))
    }

    /// Reads a token from the first line of `path` (at most 4 KiB; the line ending is not part
    /// of it).
    ///
    /// # Errors
    /// [`AdminTokenError::File`] if the file cannot be read, otherwise as
    /// [`AdminToken::new`].
    pub fn read_file(path: &Path) -> Result<Self, AdminTokenError> {
        let io = |source| AdminTokenError::File {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_TOKEN_FILE_LEN + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_TOKEN_FILE_LEN {
            return Err(io(std::io::Error::other("the file is larger than 4 KiB")));
        }
        let line = text.lines().next().unwrap_or_default();
        Self::new(line.trim_end_matches('\r'))
    }

    /// The token, to put in an `Authorization: Bearer` header.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time that does not depend on the contents.
    pub(crate) fn matches(&self, presented: &[u8]) -> bool {
        dawn_crypto::ct_eq(self.0.as_bytes(), presented)
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// Everything [`NodeBuilder`](crate::NodeBuilder) hands the security module.
#[derive(Debug, Clone, Default)]
pub(crate) struct SecurityOptions {
    pub(crate) trust: TrustConfig,
    pub(crate) policy: Policy,
    pub(crate) resilience: ResilienceConfig,
    pub(crate) admin_token: Option<AdminToken>,
    pub(crate) admin_token_file: Option<PathBuf>,
}

impl SecurityOptions {
    /// The options a config file gives.
    pub(crate) fn from_config(config: &Config) -> Self {
        Self {
            trust: config.trust.clone(),
            policy: config.policy.clone(),
            resilience: config.resilience.clone(),
            admin_token: None,
            admin_token_file: config.admin.token_file.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_never_printed() {
        let token = AdminToken::new("0123456789abcdef").unwrap();
        assert!(token.matches(b"0123456789abcdef"));
        assert!(!token.matches(b"0123456789abcdeF"));
        assert!(!token.matches(b"0123456789abcdef0"));
        assert_eq!(format!("{token:?}"), "AdminToken(..)");
        assert!(matches!(
            AdminToken::new("short"),
            Err(AdminTokenError::Length { len: 5 })
        ));
        assert!(matches!(
            AdminToken::new("x".repeat(257)),
            Err(AdminTokenError::Length { len: 257 })
        ));
        assert!(matches!(
            AdminToken::new("0123456789 abcdef"),
            Err(AdminTokenError::Characters)
        ));
    }

    fn invalid_key(text: &str) -> String {
        match Config::from_toml_str(text, None) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn bad_security_values_name_their_key() {
        let cases = [
            ("[trust]\nbaseline = 2.0", "trust.baseline"),
            ("[trust]\nverified_at = 0.3", "trust.verified_at"),
            (
                "[[policy.allow]]\npermissions = [\"connect\"]\nagents = [\"weather\"]",
                "policy.allow[0]",
            ),
            (
                "[[policy.deny]]\npermissions = [\"call_tools\"]\ntools = [\"a b\"]",
                "policy.deny[0]",
            ),
            (
                "[policy.levels]\nuntrusted = [\"connect\"]",
                "policy.levels.untrusted",
            ),
            (
                "[resilience.retry]\nbase_ms = 0",
                "resilience.retry.base_ms",
            ),
            (
                "[resilience.rate_limit]\nbyte_burst = 0",
                "resilience.rate_limit.byte_burst",
            ),
            ("[admin]\ntoken_file = \"\"", "admin.token_file"),
        ];
        for (text, key) in cases {
            assert_eq!(invalid_key(text), key, "{text}");
        }
        for text in [
            "[trust]\nbasline = 0.5",
            "[policy]\nallow = 3",
            "[[policy.allow]]\npermisions = [\"connect\"]",
            "[resilience.breaker]\nopen = 5",
            "[admin]\ntoken = \"secret\"",
        ] {
            assert!(
                matches!(
                    Config::from_toml_str(text, None),
                    Err(ConfigError::Parse { .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn security_sections_parse_and_relative_token_files_resolve() {
        let text = r#"
            [trust]
            untrusted_below = 0.1
            [[policy.deny]]
            name = "no shell"
            permissions = ["call_tools"]
            agents = ["shell"]
            [resilience.rate_limit]
            messages_per_sec = 50
            [admin]
            token_file = "admin-token"
        "#;
        let config = Config::from_toml_str(text, Some(Path::new("/etc/dawn"))).unwrap();
        assert!((config.trust.untrusted_below - 0.1).abs() < f64::EPSILON);
        assert_eq!(config.policy.config().deny.len(), 1);
        assert_eq!(config.resilience.rate_limit.messages_per_sec, 50);
        assert_eq!(
            config.admin.token_file,
            Some(PathBuf::from("/etc/dawn/admin-token"))
        );
        let options = SecurityOptions::from_config(&config);
        assert_eq!(options.policy.fingerprint(), config.policy.fingerprint());
        assert_ne!(options.policy, Policy::default());
    }

    #[test]
    fn token_files_take_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef\r\nsecond line\n").unwrap();
        assert_eq!(
            AdminToken::read_file(&path).unwrap().expose(),
            "0123456789abcdef"
        );
        std::fs::write(&path, "x".repeat(5000)).unwrap();
        assert!(matches!(
            AdminToken::read_file(&path),
            Err(AdminTokenError::File { .. })
        ));
        assert!(matches!(
            AdminToken::read_file(&dir.path().join("missing")),
            Err(AdminTokenError::File { .. })
        ));
    }
}
