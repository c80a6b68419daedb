//! `dawn-node`: runs a Dawn node.
//!
//! Parses arguments, loads the configuration (file, `DAWN_*` variables, flags), sets up
//! logging, resolves the key passphrase, and runs the `dawn-node` library until SIGINT or
//! SIGTERM.

mod logging;

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use dawn_node::{
    BootstrapPeer, Config, KeyState, LogFormat, Node, NodeBuilder, NodeError, Passphrase,
    default_config_path, inspect_key, read_passphrase_file,
};

#[derive(Debug, Parser)]
#[command(
    name = "dawn-node",
    version,
    about = "Run a Dawn node: an encrypted peer-to-peer mesh for AI agents",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node (also what `dawn-node` without a command does).
    Run(RunArgs),
    /// Write a commented default config file.
    Init(InitArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Config file. Default: DAWN_CONFIG, else ~/.config/dawn/config.toml if it exists.
    #[arg(long, env = "DAWN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory for the key and the database (node.data_dir, DAWN_DATA_DIR).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// QUIC listen address, UDP (node.listen, DAWN_LISTEN). Default 0.0.0.0:7600.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// A peer to connect to and keep connected; repeat for several. Replaces the configured
    /// list (node.bootstrap, DAWN_BOOTSTRAP).
    #[arg(long, value_name = "NODE_ID@HOST:PORT")]
    bootstrap: Vec<BootstrapPeer>,
    /// HTTP API address (http.listen, DAWN_HTTP). Default 127.0.0.1:7601.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// File whose first line is the key passphrase (identity.passphrase_file,
    /// DAWN_PASSPHRASE_FILE). DAWN_PASSPHRASE, if set, takes precedence.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Ask for the key passphrase on the terminal, also to encrypt a new or unprotected key.
    #[arg(long)]
    ask_passphrase: bool,
    /// Development mode on purpose: keep the key unencrypted without the loud warning
    /// (identity.development, DAWN_DEVELOPMENT).
    #[arg(long)]
    dev: bool,
    /// Log filter, e.g. `debug` or `info,dawn_node=debug` (log.level, DAWN_LOG).
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
    /// Log format (log.format, DAWN_LOG_FORMAT).
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Where to write it. Default: DAWN_CONFIG, else ~/.config/dawn/config.toml.
    #[arg(long, env = "DAWN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Init(args)) => init(&args),
        Some(Command::Run(args)) => run(&args),
        None => run(&cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dawn-node: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init(args: &InitArgs) -> anyhow::Result<()> {
    let path = match &args.config {
        Some(path) => path.clone(),
        None => default_config_path()
            .context("this system has no config directory; pass --config FILE")?,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut options = std::fs::File::options();
    options.write(true);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = match options.open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} already exists; not overwriting it (use --force to replace it)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
    };
    file.write_all(Config::default_toml().as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote the default configuration to {}", path.display());
    println!(
        "start the node with: dawn-node run --config {}",
        path.display()
    );
    Ok(())
}

/// The configuration: defaults, then the file, then `DAWN_*` variables, then flags.
/// Also says which source chose the log filter, if any did (else `RUST_LOG` may).
fn load_config(args: &RunArgs) -> anyhow::Result<(Config, Option<&'static str>)> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => match default_config_path().filter(|p| p.is_file()) {
            Some(path) => Config::load(&path)?,
            None => Config::default(),
        },
    };
    let file_sets_level = config.log.level != Config::default().log.level;
    config.apply_env(std::env::vars_os())?;
    if let Some(dir) = &args.data_dir {
        config.node.data_dir = Some(dir.clone());
    }
    if let Some(listen) = args.listen {
        config.node.listen = listen;
    }
    if !args.bootstrap.is_empty() {
        config.node.bootstrap.clone_from(&args.bootstrap);
    }
    if let Some(http) = args.http {
        config.http.listen = http;
    }
    if let Some(file) = &args.passphrase_file {
        config.identity.passphrase_file = Some(file.clone());
    }
    if args.dev {
        config.identity.development = true;
    }
    if let Some(level) = &args.log {
        config.log.level.clone_from(level);
    }
    if let Some(format) = args.log_format {
        config.log.format = match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    let level_origin = if args.log.is_some() {
        Some("--log")
    } else if std::env::var_os("DAWN_LOG").is_some() {
        Some("DAWN_LOG")
    } else if file_sets_level {
        Some("log.level")
    } else {
        None
    };
    Ok((config, level_origin))
}

fn prompt(text: &str) -> anyhow::Result<Passphrase> {
    let answer = rpassword::prompt_password(text).context("reading the passphrase")?;
    Passphrase::new(answer).map_err(|source| {
        NodeError::Passphrase {
            origin: "the passphrase typed".to_owned(),
            source,
        }
        .into()
    })
}

/// The key passphrase: `DAWN_PASSPHRASE`, else the passphrase file, else a prompt when the key
/// needs one (or `--ask-passphrase`) and stdin is a terminal, else none (development mode).
fn passphrase(
    config: &Config,
    args: &RunArgs,
    data_dir: &Path,
) -> anyhow::Result<Option<Passphrase>> {
    if let Some(value) = std::env::var_os("DAWN_PASSPHRASE") {
        let value = value
            .into_string()
            .map_err(|_| anyhow::anyhow!("DAWN_PASSPHRASE is not valid UTF-8"))?;
        let passphrase = Passphrase::new(value).map_err(|source| NodeError::Passphrase {
            origin: "DAWN_PASSPHRASE".to_owned(),
            source,
        })?;
        return Ok(Some(passphrase));
    }
    if let Some(file) = &config.identity.passphrase_file {
        return Ok(Some(read_passphrase_file(file)?));
    }
    let terminal = std::io::stdin().is_terminal();
    let state = inspect_key(data_dir)?;
    match state {
        KeyState::Protected { node_id } if terminal || args.ask_passphrase => {
            if !terminal {
                bail!("--ask-passphrase needs a terminal on stdin");
            }
            Ok(Some(prompt(&format!(
                "Passphrase for node {} ({}): ",
                node_id.fmt_short(),
                dawn_node::key_path(data_dir).display()
            ))?))
        }
        KeyState::Missing | KeyState::Unprotected { .. } if args.ask_passphrase => {
            if !terminal {
                bail!("--ask-passphrase needs a terminal on stdin");
            }
            let first = prompt("New passphrase for the node key: ")?;
            let second = prompt("Repeat it: ")?;
            if first != second {
                bail!("the passphrases do not match");
            }
            Ok(Some(first))
        }
        _ => Ok(None),
    }
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let (config, level_origin) = load_config(args)?;
    // Kept until the end of `run`: dropping it flushes the trace export.
    let _logging = logging::init(&config, level_origin)?;
    let data_dir = config.data_dir()?;
    let passphrase = passphrase(&config, args, &data_dir)?;
    let mut builder = NodeBuilder::from_config(&config)?;
    if let Some(passphrase) = passphrase {
        builder = builder.passphrase(passphrase);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut signals = Signals::new()?;
        let node = tokio::select! {
            node = builder.start() => node?,
            name = signals.next() => {
                tracing::info!(signal = name, "stopped before the node was ready");
                return Ok(());
            }
        };
        print_ready(&node);
        let name = signals.next().await;
        tracing::info!(
            signal = name,
            "shutting down (send it again to exit at once)"
        );
        tokio::select! {
            result = node.shutdown() => result?,
            name = signals.next() => {
                tracing::warn!(signal = name, "second signal: exiting without a clean shutdown");
                std::process::exit(130);
            }
        }
        Ok(())
    })
}

fn print_ready(node: &Node) {
    let id = node.node_id();
    let quic = node.quic_addr();
    let join = if quic.ip().is_unspecified() {
        format!("<this host's IP>:{}", quic.port())
    } else {
        quic.to_string()
    };
    let http = node.http_addr();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Dawn node {} is running", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "  node id   {id}");
    let _ = writeln!(out, "  QUIC      {quic} (UDP)");
    if let Some(http) = http {
        // A wildcard address is not somewhere to point a browser: this host's loopback is.
        let mut local = http;
        if local.ip().is_unspecified() {
            local.set_ip(match local.ip() {
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = writeln!(out, "  web UI    http://{local}/");
        let _ = writeln!(out, "  metrics   http://{local}/metrics");
    }
    let _ = writeln!(out, "  data dir  {}", node.data_dir().display());
    let _ = writeln!(out, "Join another node to this one with:");
    let _ = writeln!(out, "  dawn-node run --bootstrap {id}@{join}");
    let _ = writeln!(
        out,
        "dawn-node ready node_id={id} quic={quic} http={}",
        http.map_or_else(|| "none".to_owned(), |a| a.to_string())
    );
    let _ = out.flush();
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere).
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())
                    .context("installing the SIGINT handler")?,
                terminate: signal(SignalKind::terminate())
                    .context("installing the SIGTERM handler")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
