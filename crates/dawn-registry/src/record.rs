//! What the directory says about one agent, and the bounds every field must respect.

use dawn_identity::AgentId;
use serde::{Deserialize, Serialize};

/// The longest agent name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 128;
/// The longest agent description, in bytes of UTF-8.
pub const MAX_DESCRIPTION_LEN: usize = 2048;
/// The most tools, resources or prompts one record lists (each list separately).
pub const MAX_SUMMARIES: usize = 128;
/// The longest tool, resource or prompt name, in bytes of UTF-8.
pub const MAX_SUMMARY_NAME_LEN: usize = 128;
/// The longest tool or prompt description, in bytes of UTF-8.
pub const MAX_SUMMARY_DESCRIPTION_LEN: usize = 1024;
/// The longest resource URI, in bytes of UTF-8.
pub const MAX_URI_LEN: usize = 512;
/// The longest encoded record, in bytes: the bound that keeps a record small even when every
/// list and string is near its own maximum.
pub const MAX_RECORD_LEN: usize = 32 * 1024;

/// A record breaks one of the bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A string field is longer than its maximum.
    #[error("{field} of {len} bytes exceeds the maximum of {max}")]
    FieldTooLong {
        /// Which field (`name`, `description`, `tools[3].name`...).
        field: String,
        /// Its length in bytes.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A list has more than [`MAX_SUMMARIES`] elements.
    #[error("{field} lists {len} elements; the maximum is {MAX_SUMMARIES}")]
    TooMany {
        /// Which list (`tools`, `resources`, `prompts`).
        field: &'static str,
        /// How many it has.
        len: usize,
    },
    /// The record encodes to more than [`MAX_RECORD_LEN`] bytes.
    #[error("record encodes to {len} bytes; the maximum is {MAX_RECORD_LEN}")]
    TooLarge {
        /// The encoded length.
        len: usize,
    },
    /// The record could not be encoded (it does not happen for a record within bounds).
    #[error("record cannot be encoded: {0}")]
    Encode(String),
}

/// One tool an agent offers: what an MCP `tools/list` would show, without the schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ToolSummary {
    /// The tool's name, at most [`MAX_SUMMARY_NAME_LEN`] bytes.
    pub name: String,
    /// What it does, at most [`MAX_SUMMARY_DESCRIPTION_LEN`] bytes.
    pub description: String,
}

/// One resource an agent offers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceSummary {
    /// Its URI, at most [`MAX_URI_LEN`] bytes.
    pub uri: String,
    /// Its name, at most [`MAX_SUMMARY_NAME_LEN`] bytes.
    pub name: String,
}

/// One prompt an agent offers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PromptSummary {
    /// The prompt's name, at most [`MAX_SUMMARY_NAME_LEN`] bytes.
    pub name: String,
    /// What it is for, at most [`MAX_SUMMARY_DESCRIPTION_LEN`] bytes.
    pub description: String,
}

/// What the directory says about one agent of a node.
///
/// Every string is UTF-8 and bounded (the `MAX_*` constants of this crate); the whole record
/// encodes to at most [`MAX_RECORD_LEN`] bytes. [`validate`](Self::validate) checks all of
/// it; the registry refuses records that fail, from the application and from the network
/// alike.
///
/// ```
/// use dawn_registry::{AgentRecord, ToolSummary};
///
/// let mut record = AgentRecord::new("weather".parse()?, "Weather");
/// record.description = "Forecasts for any city".into();
/// record.tools.push(ToolSummary { name: "forecast".into(), description: "Three days".into() });
/// record.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The agent's id on its node.
    pub agent_id: AgentId,
    /// A human-readable name, at most [`MAX_NAME_LEN`] bytes.
    pub name: String,
    /// What the agent does, at most [`MAX_DESCRIPTION_LEN`] bytes.
    pub description: String,
    /// Its tools, at most [`MAX_SUMMARIES`].
    pub tools: Vec<ToolSummary>,
    /// Its resources, at most [`MAX_SUMMARIES`].
    pub resources: Vec<ResourceSummary>,
    /// Its prompts, at most [`MAX_SUMMARIES`].
    pub prompts: Vec<PromptSummary>,
    /// The agent's own version number, chosen by the application (the registry orders
    /// updates itself and does not interpret it).
    pub version: u64,
}

impl AgentRecord {
    /// A record with a name, an empty description, no tools, resources or prompts, and
    /// version 0.
    #[must_use]
    pub fn new(agent_id: AgentId, name: impl Into<String>) -> Self {
        Self {
            agent_id,
            name: name.into(),
            description: String::new(),
            tools: Vec::new(),
            resources: Vec::new(),
            prompts: Vec::new(),
            version: 0,
        }
    }

    /// Checks every bound.
    ///
    /// # Errors
    /// [`RecordError::FieldTooLong`], [`RecordError::TooMany`] or [`RecordError::TooLarge`].
    pub fn validate(&self) -> Result<(), RecordError> {
        self.encode().map(drop)
    }

    /// The record's canonical encoding (postcard, field order as declared), after checking
    /// every bound.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, RecordError> {
        self.check_fields()?;
        let bytes =
            dawn_wire::encode_payload(self).map_err(|e| RecordError::Encode(e.to_string()))?;
        if bytes.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge { len: bytes.len() });
        }
        Ok(bytes)
    }

    /// Decodes a record strictly (canonical postcard, nothing left over) and checks every
    /// bound.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, RecordDecodeError> {
        if bytes.len() > MAX_RECORD_LEN {
            return Err(RecordDecodeError::Bounds(RecordError::TooLarge {
                len: bytes.len(),
            }));
        }
        let record: Self = dawn_wire::decode_payload(bytes).map_err(RecordDecodeError::Body)?;
        record.check_fields().map_err(RecordDecodeError::Bounds)?;
        Ok(record)
    }

    fn check_fields(&self) -> Result<(), RecordError> {
        check_len("name", &self.name, MAX_NAME_LEN)?;
        check_len("description", &self.description, MAX_DESCRIPTION_LEN)?;
        check_count("tools", self.tools.len())?;
        check_count("resources", self.resources.len())?;
        check_count("prompts", self.prompts.len())?;
        for (i, tool) in self.tools.iter().enumerate() {
            check_indexed("tools", i, "name", &tool.name, MAX_SUMMARY_NAME_LEN)?;
            check_indexed(
                "tools",
                i,
                "description",
                &tool.description,
                MAX_SUMMARY_DESCRIPTION_LEN,
            )?;
        }
        for (i, resource) in self.resources.iter().enumerate() {
            check_indexed("resources", i, "uri", &resource.uri, MAX_URI_LEN)?;
            check_indexed("resources", i, "name", &resource.name, MAX_SUMMARY_NAME_LEN)?;
        }
        for (i, prompt) in self.prompts.iter().enumerate() {
            check_indexed("prompts", i, "name", &prompt.name, MAX_SUMMARY_NAME_LEN)?;
            check_indexed(
                "prompts",
                i,
                "description",
                &prompt.description,
                MAX_SUMMARY_DESCRIPTION_LEN,
            )?;
        }
        Ok(())
    }
}

/// A record from the network did not decode or breaks a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordDecodeError {
    Body(dawn_wire::PayloadError),
    Bounds(RecordError),
    AgentId,
}

/// An [`AgentRecord`] borrowed from its encoding: the same postcard layout, strings not
/// copied. Checking a record from the network through it allocates only the lists.
#[derive(Serialize, Deserialize)]
struct RecordView<'a> {
    agent_id: &'a str,
    name: &'a str,
    description: &'a str,
    #[serde(borrow)]
    tools: Vec<PairView<'a>>,
    #[serde(borrow)]
    resources: Vec<PairView<'a>>,
    #[serde(borrow)]
    prompts: Vec<PairView<'a>>,
    version: u64,
}

/// A tool, resource or prompt summary: two strings, in declaration order.
#[derive(Serialize, Deserialize)]
struct PairView<'a> {
    first: &'a str,
    second: &'a str,
}

/// Checks an encoded record the way [`AgentRecord::decode`] would, without building it, and
/// returns its agent id.
pub(crate) fn check_encoded(bytes: &[u8]) -> Result<AgentId, RecordDecodeError> {
    if bytes.len() > MAX_RECORD_LEN {
        return Err(RecordDecodeError::Bounds(RecordError::TooLarge {
            len: bytes.len(),
        }));
    }
    let view: RecordView<'_> = dawn_wire::decode_payload(bytes).map_err(RecordDecodeError::Body)?;
    let bounds = RecordDecodeError::Bounds;
    check_len("name", view.name, MAX_NAME_LEN).map_err(bounds)?;
    check_len("description", view.description, MAX_DESCRIPTION_LEN).map_err(bounds)?;
    check_count("tools", view.tools.len()).map_err(bounds)?;
    check_count("resources", view.resources.len()).map_err(bounds)?;
    check_count("prompts", view.prompts.len()).map_err(bounds)?;
    let lists = [
        (
            "tools",
            &view.tools,
            ("name", MAX_SUMMARY_NAME_LEN),
            ("description", MAX_SUMMARY_DESCRIPTION_LEN),
        ),
        (
            "resources",
            &view.resources,
            ("uri", MAX_URI_LEN),
            ("name", MAX_SUMMARY_NAME_LEN),
        ),
        (
            "prompts",
            &view.prompts,
            ("name", MAX_SUMMARY_NAME_LEN),
            ("description", MAX_SUMMARY_DESCRIPTION_LEN),
        ),
    ];
    for (list, items, (first, first_max), (second, second_max)) in lists {
        for (i, item) in items.iter().enumerate() {
            check_indexed(list, i, first, item.first, first_max).map_err(bounds)?;
            check_indexed(list, i, second, item.second, second_max).map_err(bounds)?;
        }
    }
    AgentId::try_from(view.agent_id).map_err(|_| RecordDecodeError::AgentId)
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), RecordError> {
    if value.len() > max {
        return Err(RecordError::FieldTooLong {
            field: field.to_owned(),
            len: value.len(),
            max,
        });
    }
    Ok(())
}

fn check_indexed(
    list: &str,
    index: usize,
    field: &str,
    value: &str,
    max: usize,
) -> Result<(), RecordError> {
    if value.len() > max {
        return Err(RecordError::FieldTooLong {
            field: format!("{list}[{index}].{field}"),
            len: value.len(),
            max,
        });
    }
    Ok(())
}

const fn check_count(field: &'static str, len: usize) -> Result<(), RecordError> {
    if len > MAX_SUMMARIES {
        return Err(RecordError::TooMany { field, len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AgentRecord {
        let mut r = AgentRecord::new("echo".parse().unwrap(), "Echo");
        r.tools.push(ToolSummary {
            name: "echo".into(),
            description: "says it back".into(),
        });
        r
    }

    #[test]
    fn round_trips_and_is_canonical() {
        let r = record();
        let bytes = r.encode().unwrap();
        assert_eq!(AgentRecord::decode(&bytes).unwrap(), r);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            AgentRecord::decode(&trailing),
            Err(RecordDecodeError::Body(_))
        ));
    }

    #[test]
    fn the_borrowed_check_agrees_with_the_full_decoder() {
        let mut r = record();
        r.resources.push(ResourceSummary {
            uri: "file:///x".into(),
            name: "x".into(),
        });
        r.prompts.push(PromptSummary {
            name: "p".into(),
            description: "d".into(),
        });
        let bytes = r.encode().unwrap();
        assert_eq!(check_encoded(&bytes).unwrap(), r.agent_id);
        for bad in [
            AgentRecord {
                name: "n".repeat(MAX_NAME_LEN + 1),
                ..r.clone()
            },
            AgentRecord {
                resources: vec![ResourceSummary {
                    uri: "u".repeat(MAX_URI_LEN + 1),
                    name: String::new(),
                }],
                ..r.clone()
            },
        ] {
            let bytes = dawn_wire::encode_payload(&bad).unwrap();
            assert!(AgentRecord::decode(&bytes).is_err());
            assert!(check_encoded(&bytes).is_err());
        }
        let mut trailing = bytes;
        trailing.push(0);
        assert!(check_encoded(&trailing).is_err());
    }

    #[test]
    fn every_bound_is_enforced() {
        let mut r = record();
        r.name = "n".repeat(MAX_NAME_LEN);
        r.validate().unwrap();
        r.name.push('n');
        assert_eq!(
            r.validate(),
            Err(RecordError::FieldTooLong {
                field: "name".into(),
                len: MAX_NAME_LEN + 1,
                max: MAX_NAME_LEN
            })
        );

        let mut r = record();
        r.description = "d".repeat(MAX_DESCRIPTION_LEN + 1);
        assert!(matches!(
            r.validate(),
            Err(RecordError::FieldTooLong { .. })
        ));

        let mut r = record();
        r.tools[0].description = "d".repeat(MAX_SUMMARY_DESCRIPTION_LEN + 1);
        assert_eq!(
            r.validate(),
            Err(RecordError::FieldTooLong {
                field: "tools[0].description".into(),
                len: MAX_SUMMARY_DESCRIPTION_LEN + 1,
                max: MAX_SUMMARY_DESCRIPTION_LEN
            })
        );

        let mut r = record();
        r.resources = vec![
            ResourceSummary {
                uri: "u".into(),
                name: "n".into()
            };
            MAX_SUMMARIES + 1
        ];
        assert_eq!(
            r.validate(),
            Err(RecordError::TooMany {
                field: "resources",
                len: MAX_SUMMARIES + 1
            })
        );

        let mut r = record();
        r.resources = vec![ResourceSummary {
            uri: "u".repeat(MAX_URI_LEN + 1),
            name: String::new(),
        }];
        assert!(matches!(
            r.validate(),
            Err(RecordError::FieldTooLong { .. })
        ));

        // Every list near its maximum: the total bound bites.
        let mut r = record();
        r.tools = vec![
            ToolSummary {
                name: "t".repeat(MAX_SUMMARY_NAME_LEN),
                description: "d".repeat(MAX_SUMMARY_DESCRIPTION_LEN),
            };
            MAX_SUMMARIES
        ];
        assert!(matches!(r.validate(), Err(RecordError::TooLarge { .. })));
        let bytes = dawn_wire::encode_payload(&r).unwrap();
        assert!(matches!(
            AgentRecord::decode(&bytes),
            Err(RecordDecodeError::Bounds(RecordError::TooLarge { .. }))
        ));
    }
}
