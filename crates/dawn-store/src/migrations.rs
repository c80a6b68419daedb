//! The schema: an append-only list of migrations.
//!
//! The schema version is SQLite's `user_version`: the number of migrations applied. A build
//! knows [`SCHEMA_VERSION`] migrations and refuses a database with a higher version rather
//! than guess at a schema it has never seen.
//!
//! To change the schema, *append* a migration to [`MIGRATIONS`] (a new
//! `migrations/NNNN_name.sql`); never edit, reorder or remove one that has shipped, because
//! databases in the field have already run it. See the crate README for the full policy.

use rusqlite_migration::{M, Migrations};

/// Every migration, oldest first. Index `i` takes the schema from version `i` to `i + 1`.
static MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("migrations/0001_peers.sql")),
    M::up(include_str!("migrations/0002_audit.sql")),
    M::up(include_str!("migrations/0003_trust_settings.sql")),
    M::up(include_str!("migrations/0004_agent_data_registry.sql")),
];

/// The schema version this build creates and understands: the number of migrations it knows.
#[allow(clippy::cast_possible_truncation)] // a handful of migrations, far below u32::MAX
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Identifies a Dawn database in the SQLite header: "Dawn" in ASCII. Set by migration 1.
pub(crate) const APPLICATION_ID: u32 = 0x4461_776e;

/// The migration set, ready to run.
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_to_an_empty_database() {
        migrations().validate().unwrap();
    }

    #[test]
    fn application_id_spells_dawn() {
        assert_eq!(APPLICATION_ID.to_be_bytes(), *b"Dawn");
        assert!(
            include_str!("migrations/0001_peers.sql")
                .contains(&format!("PRAGMA application_id = {APPLICATION_ID};"))
        );
    }
}
