//! `dawn audit verify` and `dawn audit export`: the node's audit log, read straight from its
//! database (the node may be running or stopped).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use dawn_node::{Config, default_config_path, export_audit_log, verify_audit_log};

/// What to do with the audit log.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Walk the whole chain: every entry must decode, follow the one before it and carry the
    /// node's signature. Exits non-zero at the first tampered, missing or reordered entry.
    Verify(DataDirArg),
    /// Write every entry as JSON lines, in order.
    Export {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `--data-dir`, shared by the commands that read the database.
#[derive(Debug, Args)]
pub(crate) struct DataDirArg {
    /// The node's data directory. Default: node.data_dir of the config file, DAWN_DATA_DIR,
    /// else the platform's data directory + /dawn.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

impl DataDirArg {
    /// The data directory: the flag, else the configuration (file, then `DAWN_*`), else the
    /// default.
    pub(crate) fn resolve(&self, config: Option<&Path>) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.data_dir {
            return Ok(dir.clone());
        }
        let mut loaded = match config {
            Some(path) => Config::load(path)?,
            None => match default_config_path().filter(|p| p.exists()) {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            },
        };
        loaded.apply_env(std::env::vars_os())?;
        Ok(loaded.data_dir()?)
    }
}

pub(crate) fn run(command: &AuditCommand, config: Option<&Path>, json: bool) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(dir) => {
            let dir = dir.resolve(config)?;
            let verified = verify_audit_log(&dir)
                .with_context(|| format!("verifying the audit log in {}", dir.display()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "node_id": verified.node_id,
                        "entries": verified.entries,
                        "next_seq": verified.next_seq,
                    })
                );
            } else {
                println!(
                    "audit log of {} verified: {} entries, next seq {}",
                    verified.node_id, verified.entries, verified.next_seq
                );
            }
        }
        AuditCommand::Export { data_dir, out } => {
            let dir = data_dir.resolve(config)?;
            match out {
                Some(path) => {
                    let mut file = std::io::BufWriter::new(
                        std::fs::File::create(path)
                            .with_context(|| format!("creating {}", path.display()))?,
                    );
                    let written = export_audit_log(&dir, &mut file)?;
                    file.flush()
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("{written} entries written to {}", path.display());
                }
                None => {
                    let stdout = std::io::stdout();
                    export_audit_log(&dir, &mut stdout.lock())?;
                }
            }
        }
    }
    Ok(())
}
