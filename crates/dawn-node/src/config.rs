//! Node configuration: a TOML file, `DAWN_*` environment overrides and validation.
//!
//! Precedence, lowest first: built-in defaults, the file, the environment, then whatever the
//! caller sets afterwards (the `dawn-node` binary applies its command-line flags last). Every
//! value is validated when it is read, and an error names the key or variable it came from.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use dawn_identity::{NodeId, NodeIdError};
use serde::Deserialize;

use crate::mdns::MdnsService;

/// Default QUIC listen address (UDP): every interface, port 7600.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 7600);

/// Default HTTP API address: loopback only, port 7601.
pub const DEFAULT_HTTP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7601);

/// Largest config file read, in bytes. A node's configuration is a few hundred bytes.
pub const MAX_CONFIG_LEN: u64 = 256 * 1024;

/// Most bootstrap peers accepted from one source.
pub const MAX_BOOTSTRAP_PEERS: usize = 256;

/// Longest `log.level` filter accepted, in bytes.
const MAX_LOG_FILTER_LEN: usize = 1024;

/// Longest host name in a bootstrap address (RFC 1035).
const MAX_HOST_LEN: usize = 253;

/// The `DAWN_*` environment variables that override configuration keys, with their keys.
///
/// `DAWN_PASSPHRASE` (the key passphrase itself), `DAWN_CONFIG` (the config file to load) and
/// `DAWN_NODE` (the node the `dawn` CLI talks to) are read by the binaries, not by [`Config`].
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("DAWN_DATA_DIR", "node.data_dir"),
    ("DAWN_LISTEN", "node.listen"),
    ("DAWN_BOOTSTRAP", "node.bootstrap"),
    ("DAWN_HTTP", "http.listen"),
    ("DAWN_PASSPHRASE_FILE", "identity.passphrase_file"),
    ("DAWN_DEVELOPMENT", "identity.development"),
    ("DAWN_LOG", "log.level"),
    ("DAWN_LOG_FORMAT", "log.format"),
    ("DAWN_OTLP_ENDPOINT", "telemetry.otlp_endpoint"),
    ("DAWN_DISCOVERY_MDNS", "discovery.mdns"),
    ("DAWN_DISCOVERY_SERVICE", "discovery.service"),
];

/// A configuration value, file or variable could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is larger than [`MAX_CONFIG_LEN`].
    #[error("config file {} is larger than {MAX_CONFIG_LEN} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The text is not TOML, has a key Dawn does not know, or a value of the wrong type.
    #[error("config file {origin}: {message}")]
    Parse {
        /// The file, or `<string>` for text given directly.
        origin: String,
        /// The parser's message, with line, column and the offending line.
        message: String,
    },
    /// A value is of the right type but not acceptable.
    #[error("{key}: {message}")]
    Invalid {
        /// The key (`node.listen`) or environment variable (`DAWN_LISTEN`) it came from.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A node's whole configuration.
///
/// `Config::default()` is the embedded default: data under the user's data directory, QUIC on
/// [`DEFAULT_LISTEN`], HTTP on [`DEFAULT_HTTP`], no bootstrap peers, LAN discovery over mDNS
/// on, logs at `info` as text.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Config {
    /// `[node]`: storage, QUIC address and bootstrap peers.
    pub node: NodeConfig,
    /// `[identity]`: how the node key is protected on disk.
    pub identity: IdentityConfig,
    /// `[http]`: the HTTP API.
    pub http: HttpConfig,
    /// `[log]`: log filter and format.
    pub log: LogConfig,
    /// `[telemetry]`: trace export.
    pub telemetry: TelemetryConfig,
    /// `[trust]`: the trust scoring model (score thresholds, gains, penalties' decay).
    pub trust: dawn_trust::TrustConfig,
    /// `[policy]`: what peers of each trust level may do, with deny and allow rules.
    pub policy: dawn_trust::Policy,
    /// `[resilience]`: dial retries, inbound rate limits, circuit breakers, health.
    pub resilience: dawn_resilience::ResilienceConfig,
    /// `[admin]`: who may use the admin API.
    pub admin: crate::security::AdminConfig,
    /// `[discovery]`: finding peers on the local network.
    pub discovery: DiscoveryConfig,
}

/// The `[node]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeConfig {
    /// Where the identity key and the database live; `None` means [`default_data_dir`].
    pub data_dir: Option<PathBuf>,
    /// QUIC listen address (UDP).
    pub listen: SocketAddr,
    /// Peers to connect to at start and keep connected.
    pub bootstrap: Vec<BootstrapPeer>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: None,
            listen: DEFAULT_LISTEN,
            bootstrap: Vec::new(),
        }
    }
}

/// The `[identity]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct IdentityConfig {
    /// A file whose first line is the passphrase that encrypts the node key.
    pub passphrase_file: Option<PathBuf>,
    /// Keep the node key unencrypted on purpose (development), without the loud warning.
    pub development: bool,
}

/// The `[http]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Address of the HTTP API and status page.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_HTTP,
        }
    }
}

/// The `[log]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// A `tracing` filter: a level (`info`) or directives (`info,dawn_node=debug`).
    pub level: String,
    /// Human-readable text or one JSON object per line.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// The `[discovery]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryConfig {
    /// Advertise the node and dial the Dawn nodes found on the local network over mDNS.
    /// Default `true`. A node whose QUIC address is loopback never runs it.
    pub mdns: bool,
    /// The DNS-SD service type advertised and browsed; nodes only find nodes of the same
    /// type. Default [`DEFAULT_MDNS_SERVICE`](crate::DEFAULT_MDNS_SERVICE).
    pub service: MdnsService,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            mdns: true,
            service: MdnsService::default(),
        }
    }
}

/// The `[telemetry]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// Where to send spans over OTLP/HTTP (protobuf), e.g.
    /// `http://127.0.0.1:4318/v1/traces`; `None` (the default) exports nothing. Used only by
    /// a `dawn-node` built with the `otlp` feature.
    pub otlp_endpoint: Option<String>,
}

/// Longest `telemetry.otlp_endpoint` accepted, in bytes.
pub const MAX_OTLP_ENDPOINT_LEN: usize = 2048;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "{other:?} is not a log format (expected \"text\" or \"json\")"
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// The platform's default data directory for a node: `dirs::data_dir()/dawn`
/// (`~/.local/share/dawn` on Linux), or `None` when the platform has none (no home directory).
#[must_use]
pub fn default_data_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|dir| dir.join("dawn"))
}

/// The default config file: `dirs::config_dir()/dawn/config.toml` (`~/.config/dawn/config.toml`
/// on Linux), or `None` when the platform has none.
#[must_use]
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("dawn").join("config.toml"))
}

impl Config {
    /// Parses a config file's text. Relative paths in it are taken relative to `base_dir`
    /// (the file's directory), or to the working directory when `base_dir` is `None`.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for bad TOML, unknown keys and wrong types (the message names the
    /// key and line); [`ConfigError::Invalid`] for values that do not validate, naming the key.
    pub fn from_toml_str(text: &str, base_dir: Option<&Path>) -> Result<Self, ConfigError> {
        Self::parse(text, "<string>", base_dir)
    }

    /// Reads and parses a config file (at most [`MAX_CONFIG_LEN`] bytes). Relative paths in it
    /// are taken relative to the file's directory.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::TooLarge`] if the file cannot be read, otherwise
    /// as [`Config::from_toml_str`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut text = String::new();
        file.take(MAX_CONFIG_LEN + 1)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        if text.len() as u64 > MAX_CONFIG_LEN {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        Self::parse(&text, &path.display().to_string(), path.parent())
    }

    fn parse(text: &str, origin: &str, base_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let mut config = Self::default();
        let resolve = |path: PathBuf| match base_dir {
            Some(base) if path.is_relative() => base.join(path),
            _ => path,
        };
        if let Some(node) = raw.node {
            if let Some(dir) = node.data_dir {
                config.node.data_dir = Some(resolve(non_empty_path("node.data_dir", dir)?));
            }
            if let Some(listen) = node.listen {
                config.node.listen = parse_socket_addr("node.listen", &listen)?;
            }
            if let Some(peers) = node.bootstrap {
                config.node.bootstrap = parse_bootstrap_list("node.bootstrap", &peers)?;
            }
        }
        if let Some(identity) = raw.identity {
            if let Some(file) = identity.passphrase_file {
                config.identity.passphrase_file =
                    Some(resolve(non_empty_path("identity.passphrase_file", file)?));
            }
            if let Some(development) = identity.development {
                config.identity.development = development;
            }
        }
        if let Some(http) = raw.http
            && let Some(listen) = http.listen
        {
            config.http.listen = parse_socket_addr("http.listen", &listen)?;
        }
        if let Some(log) = raw.log {
            if let Some(level) = log.level {
                config.log.level = parse_log_filter("log.level", &level)?;
            }
            if let Some(format) = log.format {
                config.log.format = format
                    .parse()
                    .map_err(|m| ConfigError::invalid("log.format", m))?;
            }
        }
        if let Some(telemetry) = raw.telemetry
            && let Some(endpoint) = telemetry.otlp_endpoint
        {
            config.telemetry.otlp_endpoint =
                parse_otlp_endpoint("telemetry.otlp_endpoint", &endpoint)?;
        }
        if let Some(discovery) = raw.discovery {
            if let Some(mdns) = discovery.mdns {
                config.discovery.mdns = mdns;
            }
            if let Some(service) = discovery.service {
                config.discovery.service = parse_mdns_service("discovery.service", &service)?;
            }
        }
        let security = crate::security::RawSecurity {
            trust: raw.trust,
            policy: raw.policy,
            resilience: raw.resilience,
            admin: raw.admin,
        };
        crate::security::apply_sections(&mut config, security, resolve)?;
        Ok(config)
    }

    /// Applies the `DAWN_*` overrides in [`ENV_OVERRIDES`] found in `vars` (pass
    /// `std::env::vars_os()`); other variables are ignored. Paths are taken as given.
    ///
    /// `DAWN_BOOTSTRAP` is a comma- or space-separated list of `NODE_ID@HOST:PORT`;
    /// `DAWN_DEVELOPMENT` and `DAWN_DISCOVERY_MDNS` are `true`/`false`/`1`/`0`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable if a value is not valid UTF-8 or does not
    /// validate.
    pub fn apply_env<I>(&mut self, vars: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (OsString, OsString)>,
    {
        for (name, value) in vars {
            let Some(name) = name.to_str() else { continue };
            if !ENV_OVERRIDES.iter().any(|(var, _)| *var == name) {
                continue;
            }
            let value = value.into_string().map_err(|_| {
                ConfigError::invalid(name, "the value is not valid UTF-8".to_owned())
            })?;
            match name {
                "DAWN_DATA_DIR" => {
                    self.node.data_dir = Some(non_empty_path(name, PathBuf::from(value))?);
                }
                "DAWN_LISTEN" => self.node.listen = parse_socket_addr(name, &value)?,
                "DAWN_BOOTSTRAP" => {
                    let items: Vec<String> = value
                        .split([',', ' ', '\t', '\n'])
                        .filter(|item| !item.is_empty())
                        .map(str::to_owned)
                        .collect();
                    self.node.bootstrap = parse_bootstrap_list(name, &items)?;
                }
                "DAWN_HTTP" => self.http.listen = parse_socket_addr(name, &value)?,
                "DAWN_PASSPHRASE_FILE" => {
                    self.identity.passphrase_file =
                        Some(non_empty_path(name, PathBuf::from(value))?);
                }
                "DAWN_DEVELOPMENT" => self.identity.development = parse_bool(name, &value)?,
                "DAWN_LOG" => self.log.level = parse_log_filter(name, &value)?,
                "DAWN_LOG_FORMAT" => {
                    self.log.format = value.parse().map_err(|m| ConfigError::invalid(name, m))?;
                }
                "DAWN_OTLP_ENDPOINT" => {
                    self.telemetry.otlp_endpoint = parse_otlp_endpoint(name, &value)?;
                }
                "DAWN_DISCOVERY_MDNS" => self.discovery.mdns = parse_bool(name, &value)?,
                "DAWN_DISCOVERY_SERVICE" => {
                    self.discovery.service = parse_mdns_service(name, &value)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The data directory: `node.data_dir`, or [`default_data_dir`] when unset.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for `node.data_dir` when it is unset and the platform has no
    /// default data directory.
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        match &self.node.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => default_data_dir().ok_or_else(|| {
                ConfigError::invalid(
                    "node.data_dir",
                    "not set, and this system has no default data directory; set node.data_dir, \
                     DAWN_DATA_DIR or --data-dir",
                )
            }),
        }
    }

    /// The commented default config file that `dawn-node init` writes.
    ///
    /// Every `# key = value` line in it shows a default: uncommenting any of them changes
    /// nothing, and the text as written parses to `Config::default()`.
    #[must_use]
    pub fn default_toml() -> String {
        let data_dir = match default_data_dir() {
            Some(dir) => format!(
                "# data_dir = {}",
                toml::Value::String(dir.display().to_string())
            ),
            None => "# Example: data_dir = \"/var/lib/dawn\"".to_owned(),
        };
        DEFAULT_TOML_TEMPLATE
            .replace("{data_dir}", &data_dir)
            .replace("{listen}", &DEFAULT_LISTEN.to_string())
            .replace("{http}", &DEFAULT_HTTP.to_string())
            .replace("{mdns_service}", crate::mdns::DEFAULT_MDNS_SERVICE)
    }
}

const DEFAULT_TOML_TEMPLATE: &str = r##"# Dawn node configuration.
#
# Every key is optional. A line "# key = value" shows the default; remove the "# " to change it.
# Environment variables (named beside each key) override this file, and dawn-node's
# command-line flags override both. Relative paths are relative to this file's directory.

[node]
# Where the node keeps its identity key (node.key) and database (dawn.db).
# Env: DAWN_DATA_DIR. Default: the user's data directory + "/dawn".
{data_dir}

# QUIC address to listen on (UDP). Env: DAWN_LISTEN.
# listen = "{listen}"

# Peers to connect to at start and keep connected, as "NODE_ID@HOST:PORT".
# Env: DAWN_BOOTSTRAP (comma-separated).
# bootstrap = []

[identity]
# The node key is encrypted with a passphrase (Argon2id + AEAD) taken from, in order:
# the DAWN_PASSPHRASE variable, this file (first line), or a prompt when started on a terminal.
# With none of them the key is stored unencrypted (development mode) and the log says so loudly.
# Env: DAWN_PASSPHRASE_FILE.
# Example: passphrase_file = "/etc/dawn/passphrase"

# Store the key unencrypted on purpose (development only): no passphrase, a quieter warning.
# Env: DAWN_DEVELOPMENT.
# development = false

[http]
# HTTP API and status page. Keep it on loopback: it is not authenticated. Env: DAWN_HTTP.
# listen = "{http}"

[log]
# A level (error, warn, info, debug, trace) or tracing directives ("info,dawn_node=debug").
# Env: DAWN_LOG (RUST_LOG is used when neither this key nor DAWN_LOG is set).
# level = "info"

# "text" or "json" (one object per line). Env: DAWN_LOG_FORMAT.
# format = "text"

[telemetry]
# Export spans over OTLP/HTTP (protobuf) to this collector URL, e.g. a local OpenTelemetry
# Collector. Only plain http:// is supported; empty turns export off. Needs a dawn-node built
# with the "otlp" feature. Env: DAWN_OTLP_ENDPOINT.
# Example: otlp_endpoint = "http://127.0.0.1:4318/v1/traces"

[discovery]
# Advertise this node on the local network over mDNS (DNS-SD) and connect to the Dawn nodes
# found there. Peers still prove their node id in the QUIC handshake. Not used when the QUIC
# address is loopback. Env: DAWN_DISCOVERY_MDNS.
# mdns = true

# The DNS-SD service type; only nodes of the same type find each other.
# Env: DAWN_DISCOVERY_SERVICE.
# service = "{mdns_service}"

[trust]
# How each peer's trust score in [0, 1] moves: it starts at the baseline, rises slowly with good
# behaviour, falls sharply on misbehaviour (an invalid signature halves it) and decays back to
# the baseline. A peer whose score falls below untrusted_below is refused and disconnected; one
# that completed a handshake and reaches verified_at is verified. See docs/security.md.
# baseline = 0.5
# half_life_secs = 86400
# untrusted_below = 0.2
# untrusted_exit = 0.25
# verified_at = 0.6
# verified_exit = 0.55

[policy]
# What peers may do on this node. Permissions: connect, read_agents, call_tools,
# write_registry, admin. By default untrusted peers may do nothing; unknown peers may connect
# and read_agents; verified and bootstrap peers may also write_registry; trusted peers may also
# call_tools; nobody is admin. Deny rules beat allow rules, which beat the level defaults.
# Change it at run time with PUT /api/policy. Examples:
#   [policy.levels]
#   verified = ["connect", "read_agents", "write_registry", "call_tools"]
#   [[policy.deny]]
#   name = "nobody runs shell commands"
#   permissions = ["call_tools"]
#   agents = ["shell"]
#   [[policy.allow]]
#   name = "the ops laptop"
#   peers = ["NODE_ID"]
#   permissions = ["call_tools"]

[resilience.retry]
# Dials back off with full jitter: the n-th retry waits a random time up to
# min(cap_ms, base_ms * 2^n).
# base_ms = 250
# cap_ms = 30000

[resilience.retry_budget]
# Node-wide cap on retries, so that retries cannot multiply an outage.
# retry_percent = 20
# min_retries_per_sec = 10
# max_tokens = 100

[resilience.rate_limit]
# Each peer's inbound gossip traffic; frames beyond it are dropped, and a peer whose frames
# keep being dropped is penalised for flooding.
# messages_per_sec = 1000
# message_burst = 500
# bytes_per_sec = 4194304
# byte_burst = 8388608

[resilience.call_limit]
# Each peer's requests to this node's agents (opens, listings, calls, reads). Requests over
# the limit are refused with "rate_limit.exceeded" and the wait; a peer that keeps flooding
# is penalised, then cut off like a gossip flooder.
# requests_per_sec = 500
# request_burst = 200

[resilience.breaker]
# A peer's circuit breaker opens after this many failed dials in a row, stays open for
# open_ms (doubling on every trip, up to max_open_ms), then lets one trial dial through.
# consecutive_failures = 5
# open_ms = 5000
# max_open_ms = 300000

[admin]
# The admin API (/api/trust, /api/policy, /api/audit) answers only while http.listen is a
# loopback address, unless an admin token is set: then every admin request must carry
# "Authorization: Bearer <token>", on any address. The file's first line is the token
# (16 to 256 visible ASCII characters).
# Example: token_file = "/etc/dawn/admin-token"
"##;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: Option<RawNode>,
    identity: Option<RawIdentity>,
    http: Option<RawHttp>,
    log: Option<RawLog>,
    telemetry: Option<RawTelemetry>,
    trust: Option<dawn_trust::TrustConfig>,
    policy: Option<dawn_trust::PolicyConfig>,
    resilience: Option<dawn_resilience::ResilienceConfig>,
    admin: Option<crate::security::RawAdmin>,
    discovery: Option<RawDiscovery>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    bootstrap: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    passphrase_file: Option<PathBuf>,
    development: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    otlp_endpoint: Option<String>,
}

/// An OTLP collector URL: `http://HOST[:PORT][/PATH]`, bounded, printable; empty means none.
fn parse_otlp_endpoint(key: &str, value: &str) -> Result<Option<String>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_OTLP_ENDPOINT_LEN {
        return Err(ConfigError::invalid(
            key,
            format!("the URL is longer than {MAX_OTLP_ENDPOINT_LEN} bytes"),
        ));
    }
    let Some(rest) = value.strip_prefix("http://") else {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{value:?} is not an http:// URL (OTLP export is plain HTTP, e.g. \
                 http://127.0.0.1:4318/v1/traces; put a local collector in front of a TLS one)"
            ),
        ));
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::invalid(
            key,
            format!("{value:?} is not a URL (expected http://HOST:PORT/PATH)"),
        ));
    }
    Ok(Some(value.to_owned()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    mdns: Option<bool>,
    service: Option<String>,
}

fn non_empty_path(key: &str, path: PathBuf) -> Result<PathBuf, ConfigError> {
    if path.as_os_str().is_empty() {
        Err(ConfigError::invalid(key, "the path is empty"))
    } else {
        Ok(path)
    }
}

fn parse_socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!("{value:?} is not a socket address (expected IP:PORT, e.g. 127.0.0.1:7600)"),
        )
    })
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        other => Err(ConfigError::invalid(
            key,
            format!("{other:?} is not a boolean (expected true, false, 1 or 0)"),
        )),
    }
}

fn parse_mdns_service(key: &str, value: &str) -> Result<MdnsService, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|e: crate::mdns::MdnsServiceError| ConfigError::invalid(key, e.to_string()))
}

fn parse_log_filter(key: &str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ConfigError::invalid(key, "the log filter is empty"));
    }
    if value.len() > MAX_LOG_FILTER_LEN {
        return Err(ConfigError::invalid(
            key,
            format!("the log filter is longer than {MAX_LOG_FILTER_LEN} bytes"),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(ConfigError::invalid(
            key,
            format!("the log filter contains the control character {c:?}"),
        ));
    }
    Ok(value.to_owned())
}

fn parse_bootstrap_list(key: &str, items: &[String]) -> Result<Vec<BootstrapPeer>, ConfigError> {
    if items.len() > MAX_BOOTSTRAP_PEERS {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{} peers given, at most {MAX_BOOTSTRAP_PEERS} are accepted",
                items.len()
            ),
        ));
    }
    let mut peers: Vec<BootstrapPeer> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let peer: BootstrapPeer = item.parse().map_err(|e| {
            ConfigError::invalid(format!("{key}[{index}]"), format!("{item:?}: {e}"))
        })?;
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }
    Ok(peers)
}

/// A bootstrap peer could not be parsed from `NODE_ID@HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapPeerError {
    /// There is no `@` between the node id and the address.
    #[error("expected NODE_ID@HOST:PORT")]
    MissingAt,
    /// The part before `@` is not a node id.
    #[error("bad node id: {0}")]
    NodeId(#[from] NodeIdError),
    /// The address has no `:PORT`.
    #[error("the address has no port (expected HOST:PORT)")]
    MissingPort,
    /// The port is not a number from 1 to 65535.
    #[error("{0:?} is not a port (1-65535)")]
    Port(String),
    /// The host is neither an IP address nor a valid host name.
    #[error("{0:?} is not an IP address or host name (IPv6 goes in brackets: [::1]:7600)")]
    Host(String),
}

/// A peer to connect to at start: its [`NodeId`] and where to reach it.
///
/// Text form `NODE_ID@HOST:PORT`, where `HOST` is an IPv4 address, a bracketed IPv6 address
/// or a host name (resolved at each dial).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BootstrapPeer {
    node_id: NodeId,
    host: String,
    port: u16,
}

impl BootstrapPeer {
    /// A bootstrap peer at a socket address.
    #[must_use]
    pub fn new(node_id: NodeId, addr: SocketAddr) -> Self {
        Self {
            node_id,
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// The peer's identity; the connection is refused if the peer cannot prove it.
    #[must_use]
    pub const fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The host: an IP address (IPv6 without brackets) or a host name.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The UDP port.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// The socket address, if the host is an IP address (no resolution needed).
    #[must_use]
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for BootstrapPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.node_id, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.node_id, self.host, self.port)
        }
    }
}

impl FromStr for BootstrapPeer {
    type Err = BootstrapPeerError;

    fn from_str(s: &str) -> Result<Self, BootstrapPeerError> {
        let (id, addr) = s
            .trim()
            .split_once('@')
            .ok_or(BootstrapPeerError::MissingAt)?;
        let node_id: NodeId = id.parse()?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or(BootstrapPeerError::MissingPort)?;
        let port = match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(BootstrapPeerError::Port(port.to_owned())),
        };
        let host = parse_host(host)?;
        Ok(Self {
            node_id,
            host,
            port,
        })
    }
}

fn parse_host(host: &str) -> Result<String, BootstrapPeerError> {
    let bad = || BootstrapPeerError::Host(host.to_owned());
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(bad)?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| bad());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip.to_string());
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.is_empty() || host.len() > MAX_HOST_LEN || !host.split('.').all(label_ok) {
        return Err(bad());
    }
    Ok(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::SigningKey;

    fn id(seed: u8) -> NodeId {
        SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn invalid_key(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::from_toml_str("", None).unwrap(), Config::default());
        let config = Config::default();
        assert_eq!(config.node.listen, DEFAULT_LISTEN);
        assert_eq!(config.http.listen, DEFAULT_HTTP);
        assert!(config.http.listen.ip().is_loopback());
        assert!(config.node.bootstrap.is_empty());
        assert_eq!(config.log.level, "info");
    }

    #[test]
    fn commented_default_parses_to_the_default() {
        let text = Config::default_toml();
        assert_eq!(
            Config::from_toml_str(&text, None).unwrap(),
            Config::default()
        );

        // Uncommenting every "# key = value" line must not change anything either.
        let mut uncommented = 0;
        let text: String = text
            .lines()
            .map(|line| {
                let rest = line.strip_prefix("# ").unwrap_or("");
                let is_default = rest.split_once(" = ").is_some_and(|(key, _)| {
                    key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                });
                if is_default {
                    uncommented += 1;
                    format!("{rest}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        assert!(
            uncommented >= 7,
            "only {uncommented} default lines in the template"
        );
        let parsed = Config::from_toml_str(&text, None).unwrap();
        assert_eq!(parsed.data_dir().ok(), Config::default().data_dir().ok());
        let mut parsed = parsed;
        parsed.node.data_dir = None;
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn full_file_parses() {
        let peer = format!("{}@127.0.0.1:7600", id(1));
        let text = format!(
            r#"
            [node]
            data_dir = "state"
            listen = "127.0.0.1:9000"
            bootstrap = ["{peer}", "{peer}", "{}@[::1]:7601", "{}@seed.example.org:7602"]
            [identity]
            passphrase_file = "/etc/dawn/pass"
            development = true
            [http]
            listen = "127.0.0.1:9001"
            [log]
            level = "debug,dawn_node=trace"
            format = "json"
            "#,
            id(2),
            id(3)
        );
        let config = Config::from_toml_str(&text, Some(Path::new("/etc/dawn"))).unwrap();
        assert_eq!(config.node.data_dir, Some(PathBuf::from("/etc/dawn/state")));
        assert_eq!(config.node.listen, "127.0.0.1:9000".parse().unwrap());
        // The duplicate is dropped.
        assert_eq!(config.node.bootstrap.len(), 3);
        assert_eq!(config.node.bootstrap[0].to_string(), peer);
        assert_eq!(
            config.node.bootstrap[1].socket_addr(),
            Some("[::1]:7601".parse().unwrap())
        );
        assert_eq!(config.node.bootstrap[2].host(), "seed.example.org");
        assert_eq!(config.node.bootstrap[2].socket_addr(), None);
        assert_eq!(
            config.identity.passphrase_file,
            Some(PathBuf::from("/etc/dawn/pass"))
        );
        assert!(config.identity.development);
        assert_eq!(config.http.listen.port(), 9001);
        assert_eq!(config.log.level, "debug,dawn_node=trace");
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = Config::from_toml_str("[node]\nlisten = \"abc\"\n", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node.listen: \"abc\" is not a socket address (expected IP:PORT, e.g. 127.0.0.1:7600)"
        );
        let cases = [
            ("[http]\nlisten = \"localhost\"", "http.listen"),
            ("[node]\ndata_dir = \"\"", "node.data_dir"),
            ("[node]\nbootstrap = [\"nope\"]", "node.bootstrap[0]"),
            ("[log]\nformat = \"xml\"", "log.format"),
            ("[log]\nlevel = \"\"", "log.level"),
            (
                "[identity]\npassphrase_file = \"\"",
                "identity.passphrase_file",
            ),
        ];
        for (text, key) in cases {
            let err = Config::from_toml_str(text, None).unwrap_err();
            assert_eq!(invalid_key(err), key, "{text}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_rejected_by_name() {
        let err = Config::from_toml_str("[node]\nlisten_addr = \"1.2.3.4:5\"\n", None).unwrap_err();
        let ConfigError::Parse { message, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(message.contains("unknown field `listen_addr`"), "{message}");
        assert!(message.contains("line 2"), "{message}");

        let err = Config::from_toml_str("[nodes]\n", None).unwrap_err();
        assert!(err.to_string().contains("unknown field `nodes`"), "{err}");

        let err = Config::from_toml_str("[node]\nlisten = 7600\n", None).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("listen = 7600"), "{err}");

        let err = Config::from_toml_str("[node\n", None).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    }

    #[test]
    fn env_overrides_the_file_and_names_the_variable() {
        let mut config = Config::from_toml_str("[node]\nlisten = \"127.0.0.1:1\"\n", None).unwrap();
        let peer_a = format!("{}@127.0.0.1:7600", id(1));
        let peer_b = format!("{}@127.0.0.1:7601", id(2));
        config
            .apply_env(env(&[
                ("DAWN_LISTEN", "127.0.0.1:2"),
                ("DAWN_HTTP", "[::1]:3"),
                ("DAWN_DATA_DIR", "/tmp/dawn-x"),
                ("DAWN_BOOTSTRAP", &format!("{peer_a}, {peer_b}")),
                ("DAWN_LOG", "debug"),
                ("DAWN_LOG_FORMAT", "json"),
                ("DAWN_DEVELOPMENT", "1"),
                ("DAWN_PASSPHRASE_FILE", "pass.txt"),
                ("DAWN_UNRELATED", "ignored"),
                ("HOME", "/root"),
            ]))
            .unwrap();
        assert_eq!(config.node.listen.port(), 2);
        assert_eq!(config.http.listen, "[::1]:3".parse().unwrap());
        assert_eq!(config.data_dir().unwrap(), PathBuf::from("/tmp/dawn-x"));
        assert_eq!(config.node.bootstrap.len(), 2);
        assert_eq!(config.node.bootstrap[1].to_string(), peer_b);
        assert_eq!(config.log.level, "debug");
        assert_eq!(config.log.format, LogFormat::Json);
        assert!(config.identity.development);
        assert_eq!(
            config.identity.passphrase_file,
            Some(PathBuf::from("pass.txt"))
        );

        let err = Config::default()
            .apply_env(env(&[("DAWN_LISTEN", "abc")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "DAWN_LISTEN: \"abc\" is not a socket address (expected IP:PORT, e.g. 127.0.0.1:7600)"
        );
        for (var, value, key) in [
            ("DAWN_BOOTSTRAP", "x@y", "DAWN_BOOTSTRAP[0]"),
            ("DAWN_DEVELOPMENT", "maybe", "DAWN_DEVELOPMENT"),
            ("DAWN_LOG_FORMAT", "yaml", "DAWN_LOG_FORMAT"),
            ("DAWN_HTTP", "7601", "DAWN_HTTP"),
        ] {
            let err = Config::default()
                .apply_env(env(&[(var, value)]))
                .unwrap_err();
            assert_eq!(invalid_key(err), key);
        }
        // An empty DAWN_BOOTSTRAP clears the list.
        config.apply_env(env(&[("DAWN_BOOTSTRAP", "")])).unwrap();
        assert!(config.node.bootstrap.is_empty());
    }

    #[test]
    fn discovery_is_on_by_default_and_can_be_turned_off() {
        let config = Config::default();
        assert!(config.discovery.mdns);
        assert_eq!(config.discovery.service.as_str(), "_dawn._udp.local.");

        let text = "[discovery]\nmdns = false\nservice = \"_dawn-lab._udp.local.\"\n";
        let config = Config::from_toml_str(text, None).unwrap();
        assert!(!config.discovery.mdns);
        assert_eq!(config.discovery.service.as_str(), "_dawn-lab._udp.local.");

        let mut config = Config::default();
        config
            .apply_env(env(&[
                ("DAWN_DISCOVERY_MDNS", "false"),
                ("DAWN_DISCOVERY_SERVICE", "_mesh2._udp.local."),
            ]))
            .unwrap();
        assert!(!config.discovery.mdns);
        assert_eq!(config.discovery.service.as_str(), "_mesh2._udp.local.");
        config
            .apply_env(env(&[("DAWN_DISCOVERY_MDNS", "1")]))
            .unwrap();
        assert!(config.discovery.mdns);
    }

    #[test]
    fn bad_discovery_values_name_their_key() {
        let err = Config::from_toml_str("[discovery]\nservice = \"_dawn._tcp.local.\"\n", None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "discovery.service: \"_dawn._tcp.local.\" is not a service type of the form \
             _NAME._udp.local."
        );
        let err = Config::from_toml_str("[discovery]\nservice = \"_-x._udp.local.\"\n", None)
            .unwrap_err();
        assert_eq!(invalid_key(err), "discovery.service");
        let err = Config::from_toml_str("[discovery]\nmdns = \"yes\"\n", None).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("mdns"), "{err}");
        let err = Config::from_toml_str("[discovery]\nmulticast = true\n", None).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `multicast`"),
            "{err}"
        );
        for (var, value) in [
            ("DAWN_DISCOVERY_MDNS", "maybe"),
            ("DAWN_DISCOVERY_SERVICE", "dawn"),
        ] {
            let err = Config::default()
                .apply_env(env(&[(var, value)]))
                .unwrap_err();
            assert_eq!(invalid_key(err), var);
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_env_is_an_error() {
        use std::os::unix::ffi::OsStringExt;
        let err = Config::default()
            .apply_env([(
                OsString::from("DAWN_DATA_DIR"),
                OsString::from_vec(vec![0xff, 0xfe]),
            )])
            .unwrap_err();
        assert_eq!(invalid_key(err), "DAWN_DATA_DIR");
    }

    #[test]
    fn load_reads_files_and_bounds_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[node]\ndata_dir = \"data\"\n").unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.data_dir().unwrap(), dir.path().join("data"));

        let missing = Config::load(&dir.path().join("missing.toml")).unwrap_err();
        assert!(matches!(missing, ConfigError::Read { .. }));

        let big = "# padding\n".repeat(30_000);
        std::fs::write(&path, big).unwrap();
        assert!(matches!(
            Config::load(&path).unwrap_err(),
            ConfigError::TooLarge { .. }
        ));

        std::fs::write(&path, "[node]\nlisten = 1\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("config file {}", path.display())),
            "{err}"
        );
    }

    #[test]
    fn bootstrap_peer_text_form() {
        let node = id(4);
        let peer: BootstrapPeer = format!("{node}@127.0.0.1:7600").parse().unwrap();
        assert_eq!(peer.node_id(), node);
        assert_eq!(peer.socket_addr(), Some("127.0.0.1:7600".parse().unwrap()));
        let v6: BootstrapPeer = format!("{node}@[::1]:7600").parse().unwrap();
        assert_eq!(v6.to_string(), format!("{node}@[::1]:7600"));
        assert_eq!(v6, BootstrapPeer::new(node, "[::1]:7600".parse().unwrap()));
        let named: BootstrapPeer = format!("{node}@Seed-1.Example.org:1").parse().unwrap();
        assert_eq!(named.host(), "seed-1.example.org");

        let bad = [
            ("127.0.0.1:7600".to_owned(), BootstrapPeerError::MissingAt),
            (format!("{node}@127.0.0.1"), BootstrapPeerError::MissingPort),
            (
                format!("{node}@127.0.0.1:0"),
                BootstrapPeerError::Port("0".into()),
            ),
            (
                format!("{node}@127.0.0.1:99999"),
                BootstrapPeerError::Port("99999".into()),
            ),
            (
                format!("{node}@::1:7600"),
                BootstrapPeerError::Host("::1".into()),
            ),
            (
                format!("{node}@[zz]:7600"),
                BootstrapPeerError::Host("[zz]".into()),
            ),
            (
                format!("{node}@:7600"),
                BootstrapPeerError::Host(String::new()),
            ),
            (
                format!("{node}@a..b:7600"),
                BootstrapPeerError::Host("a..b".into()),
            ),
            (
                format!("{node}@bad_host:7600"),
                BootstrapPeerError::Host("bad_host".into()),
            ),
        ];
        for (text, expected) in bad {
            assert_eq!(text.parse::<BootstrapPeer>(), Err(expected), "{text}");
        }
        assert!(matches!(
            "abc@127.0.0.1:1".parse::<BootstrapPeer>(),
            Err(BootstrapPeerError::NodeId(_))
        ));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn node_id() -> impl Strategy<Value = NodeId> {
            any::<[u8; 32]>().prop_map(|seed| SigningKey::from_bytes(&seed).verifying_key().into())
        }

        fn socket_addr() -> impl Strategy<Value = SocketAddr> {
            let ip = prop_oneof![
                any::<[u8; 4]>().prop_map(IpAddr::from),
                any::<[u8; 16]>().prop_map(IpAddr::from),
            ];
            (ip, 1..=u16::MAX).prop_map(|(ip, port)| SocketAddr::new(ip, port))
        }

        proptest! {
            #[test]
            fn bootstrap_peer_text_round_trips(id in node_id(), addr in socket_addr()) {
                let peer = BootstrapPeer::new(id, addr);
                let parsed: BootstrapPeer = peer.to_string().parse().unwrap();
                prop_assert_eq!(parsed.socket_addr(), Some(addr));
                prop_assert_eq!(parsed, peer);
            }

            #[test]
            fn bootstrap_host_names_round_trip(
                id in node_id(),
                host in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z]([a-z0-9-]{0,10}[a-z0-9])?){0,3}",
                port in 1..=u16::MAX,
            ) {
                let text = format!("{id}@{host}:{port}");
                let peer: BootstrapPeer = text.parse().unwrap();
                prop_assert_eq!(peer.to_string(), text);
            }

            #[test]
            fn arbitrary_input_is_an_error_not_a_panic(text in "\\PC{0,200}") {
                let _ = text.parse::<BootstrapPeer>();
                let _ = Config::from_toml_str(&text, None);
                let mut config = Config::default();
                for (var, _) in ENV_OVERRIDES {
                    let _ = config.apply_env([(OsString::from(var), OsString::from(&text))]);
                }
            }

            #[test]
            fn listen_values_either_parse_or_name_the_key(text in "[0-9a-f:.\\[\\]]{0,40}") {
                let toml = format!("[node]\nlisten = {:?}\n", text);
                match Config::from_toml_str(&toml, None) {
                    Ok(config) => prop_assert_eq!(Some(config.node.listen), text.parse().ok()),
                    Err(ConfigError::Invalid { key, .. }) => prop_assert_eq!(key, "node.listen"),
                    Err(other) => prop_assert!(false, "unexpected error {other}"),
                }
            }
        }
    }
}
