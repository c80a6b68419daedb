//! `dawn backup FILE` and `dawn restore FILE`: the node's database, copied while the node runs
//! and put back while it is stopped.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use dawn_node::{backup, restore, verify_audit_log};

use crate::audit::DataDirArg;

/// `dawn backup FILE`.
#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// Where to write the backup; it must not exist.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    data_dir: DataDirArg,
}

/// `dawn restore FILE`.
#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// A backup written by `dawn backup`.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    data_dir: DataDirArg,
}

pub(crate) fn run_backup(args: &BackupArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let dir = args.data_dir.resolve(config)?;
    backup(&dir, &args.file).with_context(|| {
        format!(
            "backing up the database of {} to {}",
            dir.display(),
            args.file.display()
        )
    })?;
    println!(
        "backed up {} to {} (the node key is not in it: keep node.key safe separately)",
        dir.display(),
        args.file.display()
    );
    Ok(())
}

pub(crate) fn run_restore(args: &RestoreArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let dir = args.data_dir.resolve(config)?;
    restore(&dir, &args.file)
        .with_context(|| format!("restoring {} into {}", args.file.display(), dir.display()))?;
    println!("restored {} into {}", args.file.display(), dir.display());
    // Say at once whether the restored log is this node's and intact.
    match verify_audit_log(&dir) {
        Ok(verified) => println!(
            "audit log of {} verified: {} entries",
            verified.node_id, verified.entries
        ),
        Err(error) => println!("note: the restored audit log does not verify here: {error}"),
    }
    Ok(())
}
