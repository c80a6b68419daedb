//! Permissions and sets of them.

use std::fmt;
use std::str::FromStr;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Something a peer may be allowed to do on this node.
///
/// Text and serde form: `connect`, `read_agents`, `call_tools`, `write_registry`, `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Open a connection to this node (checked when a peer connects).
    Connect,
    /// Read this node's agent directory; may be scoped to agents.
    ReadAgents,
    /// Call a tool of an agent on this node; may be scoped to agents and tools.
    CallTools,
    /// Have its registry entries (its own agents) merged into this node's directory.
    WriteRegistry,
    /// Administer this node remotely.
    Admin,
}

impl Permission {
    /// Every permission, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Connect,
        Self::ReadAgents,
        Self::CallTools,
        Self::WriteRegistry,
        Self::Admin,
    ];

    /// The permission's text form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::ReadAgents => "read_agents",
            Self::CallTools => "call_tools",
            Self::WriteRegistry => "write_registry",
            Self::Admin => "admin",
        }
    }

    /// Whether requests for this permission can name an agent (so rules scoped to agents can
    /// match them).
    #[must_use]
    pub const fn takes_agent(self) -> bool {
        matches!(self, Self::ReadAgents | Self::CallTools)
    }

    /// Whether requests for this permission can name a tool.
    #[must_use]
    pub const fn takes_tool(self) -> bool {
        matches!(self, Self::CallTools)
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission {0:?}; expected one of connect, read_agents, call_tools, \
     write_registry, admin"
)]
pub struct ParsePermissionError(String);

impl FromStr for Permission {
    type Err = ParsePermissionError;

    fn from_str(s: &str) -> Result<Self, ParsePermissionError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ParsePermissionError(s.to_owned()))
    }
}

/// A set of [`Permission`]s.
///
/// Serde form: a list of permission names (`["connect", "read_agents"]`), written in
/// declaration order; duplicates in input are merged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u8);

impl PermissionSet {
    /// No permission.
    pub const EMPTY: Self = Self(0);

    /// Every permission.
    pub const ALL: Self = Self(0b1_1111);

    /// A set of the given permissions.
    #[must_use]
    pub const fn of(permissions: &[Permission]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < permissions.len() {
            bits |= permissions[i].bit();
            i += 1;
        }
        Self(bits)
    }

    /// Whether `permission` is in the set.
    #[must_use]
    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// The set with `permission` added.
    #[must_use]
    pub const fn with(self, permission: Permission) -> Self {
        Self(self.0 | permission.bit())
    }

    /// The set with `permission` removed.
    #[must_use]
    pub const fn without(self, permission: Permission) -> Self {
        Self(self.0 & !permission.bit())
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing");
        }
        for (i, p) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(p.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.iter().count()))?;
        for p in self.iter() {
            seq.serialize_element(&p)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SetVisitor;

        impl<'de> Visitor<'de> for SetVisitor {
            type Value = PermissionSet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of permissions")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PermissionSet, A::Error> {
                let mut set = PermissionSet::EMPTY;
                // Each element is one of five names; anything longer than a generous bound is
                // refused rather than read to the end.
                let mut count = 0usize;
                while let Some(p) = seq.next_element::<Permission>()? {
                    count += 1;
                    if count > 64 {
                        return Err(serde::de::Error::custom(
                            "a permission list has at most 64 entries",
                        ));
                    }
                    set = set.with(p);
                }
                Ok(set)
            }
        }

        deserializer.deserialize_seq(SetVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let set = PermissionSet::of(&[Permission::Connect, Permission::CallTools]);
        assert!(set.contains(Permission::Connect));
        assert!(!set.contains(Permission::Admin));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Permission::Connect, Permission::CallTools]
        );
        assert_eq!(
            set.without(Permission::Connect)
                .with(Permission::Admin)
                .to_string(),
            "call_tools, admin"
        );
        assert_eq!(
            Permission::ALL.into_iter().collect::<PermissionSet>(),
            PermissionSet::ALL
        );
        assert_eq!(PermissionSet::EMPTY.to_string(), "nothing");
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
        }
        assert!("call-tools".parse::<Permission>().is_err());
    }

    #[test]
    fn serde_is_a_list_of_names() {
        let set = PermissionSet::of(&[Permission::ReadAgents, Permission::Connect]);
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"["connect","read_agents"]"#
        );
        let back: PermissionSet =
            serde_json::from_str(r#"["read_agents","connect","connect"]"#).unwrap();
        assert_eq!(back, set);
        let err = serde_json::from_str::<PermissionSet>(r#"["fly"]"#).unwrap_err();
        assert!(err.to_string().contains("fly"), "{err}");
    }
}
