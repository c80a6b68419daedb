//! The built-in agents every node can host.

pub(crate) mod directory;
pub(crate) mod echo;
pub(crate) mod guide;
pub(crate) mod memory;
