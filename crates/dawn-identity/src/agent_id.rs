//! `AgentId`: the name of an MCP agent on a node.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest [`AgentId`], in characters (which are all ASCII, so also in bytes).
pub const AGENT_ID_MAX_LEN: usize = 64;

/// An [`AgentId`] could not be parsed. Each variant names exactly what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentIdError {
    /// The text is empty.
    #[error("an agent id cannot be empty")]
    Empty,
    /// The text is longer than [`AGENT_ID_MAX_LEN`] characters.
    #[error("an agent id is at most {AGENT_ID_MAX_LEN} characters, got {len}")]
    TooLong {
        /// The number of characters given.
        len: usize,
    },
    /// A character outside `a-z`, `0-9`, `-`, `_` and `.`.
    #[error(
        "an agent id may contain only a-z, 0-9, '-', '_' and '.': found {ch:?} at position \
         {position}{hint}",
        hint = bad_char_hint(*ch)
    )]
    BadChar {
        /// The offending character.
        ch: char,
        /// Its position, counted in characters from 0.
        position: usize,
    },
    /// The first character is `-`, `_` or `.`; an agent id starts with a letter or a digit.
    #[error("an agent id must start with a-z or 0-9, not {ch:?}")]
    BadFirstChar {
        /// The offending first character.
        ch: char,
    },
}

fn bad_char_hint(ch: char) -> &'static str {
    if ch.is_ascii_uppercase() {
        " (agent ids are lowercase)"
    } else if ch == ':' {
        " (':' separates a node id from an agent id)"
    } else {
        ""
    }
}

/// Whether `c` may appear in an [`AgentId`].
const fn is_agent_char(c: char) -> bool {
    matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.')
}

/// Checks `s` against the [`AgentId`] rules.
fn validate(s: &str) -> Result<(), AgentIdError> {
    if s.is_empty() {
        return Err(AgentIdError::Empty);
    }
    // Every valid character is one byte, so a short byte length settles the question quickly;
    // anything longer is counted in characters so the error reports what the user typed.
    if s.len() > AGENT_ID_MAX_LEN {
        let len = s.chars().count();
        if len > AGENT_ID_MAX_LEN {
            return Err(AgentIdError::TooLong { len });
        }
    }
    for (position, ch) in s.chars().enumerate() {
        if !is_agent_char(ch) {
            return Err(AgentIdError::BadChar { ch, position });
        }
        if position == 0 && !ch.is_ascii_alphanumeric() {
            return Err(AgentIdError::BadFirstChar { ch });
        }
    }
    Ok(())
}

/// The name of an MCP agent on a node, unique within that node.
///
/// # Rules
///
/// 1 to [`AGENT_ID_MAX_LEN`] (64) characters from `a-z`, `0-9`, `-`, `_` and `.`, starting with
/// a letter or a digit. There is exactly one spelling per agent: uppercase is refused rather
/// than folded. The rules keep an agent id safe to use as it is in an [`AgentAddr`] (no `:`),
/// in a URL path segment, a file name (never `.` or `..`, never a leading `-`), a log line or a
/// metric label.
///
/// An `AgentId` is valid by construction: parse it with [`str::parse`], [`TryFrom<String>`] or
/// [`TryFrom<&str>`]. serde encodes it as a string and validates it when decoding.
///
/// ```
/// use dawn_identity::{AgentId, AgentIdError};
///
/// let id: AgentId = "weather-2.eu_west".parse()?;
/// assert_eq!(id.as_str(), "weather-2.eu_west");
/// assert_eq!(
///     "Weather".parse::<AgentId>(),
///     Err(AgentIdError::BadChar { ch: 'W', position: 0 })
/// );
/// # Ok::<(), AgentIdError>(())
/// ```
///
/// [`AgentAddr`]: crate::AgentAddr
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(String);

impl AgentId {
    /// The agent id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The agent id as an owned `String`.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for AgentId {
    type Err = AgentIdError;

    fn from_str(s: &str) -> Result<Self, AgentIdError> {
        validate(s)?;
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for AgentId {
    type Error = AgentIdError;

    fn try_from(s: String) -> Result<Self, AgentIdError> {
        validate(&s)?;
        Ok(Self(s))
    }
}

impl TryFrom<&str> for AgentId {
    type Error = AgentIdError;

    fn try_from(s: &str) -> Result<Self, AgentIdError> {
        s.parse()
    }
}

impl From<AgentId> for String {
    fn from(id: AgentId) -> Self {
        id.0
    }
}

impl AsRef<str> for AgentId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets a map keyed by `AgentId` be queried with a `&str`.
impl Borrow<str> for AgentId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for AgentId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for AgentId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({})", self.0)
    }
}

impl Serialize for AgentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(AgentIdVisitor)
    }
}

/// Validates before allocating when the format lends a `&str`, and reuses the allocation when
/// it hands over a `String`.
struct AgentIdVisitor;

impl Visitor<'_> for AgentIdVisitor {
    type Value = AgentId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an agent id: 1 to {AGENT_ID_MAX_LEN} characters of a-z, 0-9, '-', '_', '.'"
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AgentId, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<AgentId, E> {
        AgentId::try_from(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_charset() {
        for ok in [
            "a",
            "0",
            "agent",
            "weather-2.eu_west",
            "9lives",
            "a.",
            "a-",
            "a_",
        ] {
            let id: AgentId = ok.parse().unwrap();
            assert_eq!(id.as_str(), ok);
            assert_eq!(id.to_string(), ok);
        }
        let longest = "a".repeat(AGENT_ID_MAX_LEN);
        assert_eq!(longest.parse::<AgentId>().unwrap().as_str(), longest);
    }

    #[test]
    fn each_error_names_what_is_wrong() {
        assert_eq!("".parse::<AgentId>(), Err(AgentIdError::Empty));
        assert_eq!(
            "a".repeat(65).parse::<AgentId>(),
            Err(AgentIdError::TooLong { len: 65 })
        );
        assert_eq!(
            "ab:c".parse::<AgentId>(),
            Err(AgentIdError::BadChar {
                ch: ':',
                position: 2
            })
        );
        assert_eq!(
            "aB".parse::<AgentId>(),
            Err(AgentIdError::BadChar {
                ch: 'B',
                position: 1
            })
        );
        assert_eq!(
            "né".parse::<AgentId>(),
            Err(AgentIdError::BadChar {
                ch: 'é',
                position: 1
            })
        );
        assert_eq!(
            "a b".parse::<AgentId>(),
            Err(AgentIdError::BadChar {
                ch: ' ',
                position: 1
            })
        );
        for first in ['-', '_', '.'] {
            assert_eq!(
                format!("{first}agent").parse::<AgentId>(),
                Err(AgentIdError::BadFirstChar { ch: first })
            );
        }
        assert_eq!(
            "..".parse::<AgentId>(),
            Err(AgentIdError::BadFirstChar { ch: '.' })
        );
    }

    #[test]
    fn length_is_counted_in_characters() {
        // 40 two-byte characters are 80 bytes but only 40 characters: not "too long".
        let wide = "é".repeat(40);
        assert_eq!(
            wide.parse::<AgentId>(),
            Err(AgentIdError::BadChar {
                ch: 'é',
                position: 0
            })
        );
        let long = "é".repeat(70);
        assert_eq!(
            long.parse::<AgentId>(),
            Err(AgentIdError::TooLong { len: 70 })
        );
    }

    #[test]
    fn error_messages_help() {
        let text = "Agent".parse::<AgentId>().unwrap_err().to_string();
        assert!(text.contains("'A' at position 0"), "{text}");
        assert!(text.contains("lowercase"), "{text}");
        let text = "a:b".parse::<AgentId>().unwrap_err().to_string();
        assert!(text.contains("separates"), "{text}");
        let text = "a".repeat(100).parse::<AgentId>().unwrap_err().to_string();
        assert!(text.contains("got 100"), "{text}");
    }

    #[test]
    fn conversions_agree() {
        let id = AgentId::try_from(String::from("echo")).unwrap();
        assert_eq!(AgentId::try_from("echo").unwrap(), id);
        assert_eq!(id, "echo");
        assert_eq!(format!("{id:?}"), "AgentId(echo)");
        let mut map = std::collections::HashMap::new();
        map.insert(id.clone(), 1);
        assert_eq!(map.get("echo"), Some(&1));
        assert_eq!(String::from(id), "echo");
        assert!(AgentId::try_from(String::from("-x")).is_err());
    }

    #[test]
    fn serde_validates() {
        let id: AgentId = "echo".parse().unwrap();
        let bytes = postcard::to_allocvec(&id).unwrap();
        assert_eq!(bytes, b"\x04echo");
        assert_eq!(postcard::from_bytes::<AgentId>(&bytes).unwrap(), id);
        assert!(postcard::from_bytes::<AgentId>(b"\x04ECHO").is_err());
        assert!(postcard::from_bytes::<AgentId>(b"\x00").is_err());
        assert!(postcard::from_bytes::<AgentId>(b"\x04ec").is_err());
    }
}
