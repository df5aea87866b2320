//! `busbar`: the gateway binary.
//!
//! ```text
//!   busbar [--config FILE] [--listen ADDR] [--admin-listen ADDR|off] [--ledger DIR|off]
//!          [--shards N] [--driver auto|io_uring|epoll]
//!   busbar check FILE
//!   busbar bench-ledger [--dir DIR] [--requests N] [--producers P]
//! ```
//!
//! With no `--config`, busbar runs on the embedded default (the built-in mock model plus every
//! known provider whose API key is in the environment).

mod admin;
mod control;
mod fleet;
mod gate;
mod gateway;
mod hooks;
mod io;
mod lanes;
mod ledger;
mod routes;
mod runtime;
mod server;
mod shard;
mod telemetry;
mod upstream;

use busbar_core::config::{self, Config, Driver};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "busbar", version, about = "A thread-per-core LLM API gateway")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (TOML). Without it, the embedded default is used.
    #[arg(long, short = 'c', global = true)]
    config: Option<std::path::PathBuf>,
    /// Override the listen address (e.g. 127.0.0.1:0 for a free port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Override the shard count (0 = one per core).
    #[arg(long)]
    shards: Option<usize>,
    /// Override the admin listen address (e.g. 127.0.0.1:0), or `off`.
    #[arg(long)]
    admin_listen: Option<String>,
    /// Override the ledger directory (virtual keys, usage), or `off`.
    #[arg(long)]
    ledger: Option<String>,
    /// Override the I/O driver.
    #[arg(long, value_parser = ["auto", "io_uring", "epoll"])]
    driver: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and report errors with line and column.
    Check {
        /// The file to check.
        file: std::path::PathBuf,
    },
    /// Measure how many settled requests per second the ledger commits to a real LMDB file on
    /// this machine's disk.
    BenchLedger {
        /// Directory for the ledger file (default: a fresh temporary directory).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Settled requests to write.
        #[arg(long, default_value_t = 200_000)]
        requests: u64,
        /// Threads sending them, as shards would.
        #[arg(long, default_value_t = 2)]
        producers: usize,
    },
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn load(path: Option<&std::path::Path>) -> Result<Config, String> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            // Scripts are named relative to the config file.
            let dir = p.parent().unwrap_or(std::path::Path::new("."));
            let files = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .map_err(|e| format!("cannot read `{}`: {e}", dir.join(name).display()))
            };
            config::parse_with_files(&text, &env_lookup, &files)
                .map_err(|e| format!("{}: {e}", p.display()))
        }
        None => config::parse(&config::default_toml(&env_lookup), &env_lookup)
            .map_err(|e| format!("{}: {e}", config::DEFAULT_SOURCE_NAME)),
    }
}

/// The config file (or the embedded default) with the command line's overrides applied; run
/// at start-up and again on every reload.
fn configure(cli: &Cli) -> Result<Config, String> {
    let mut config = load(cli.config.as_deref())?;
    if let Some(l) = cli.listen {
        config.listen = l;
    }
    if let Some(s) = cli.shards {
        config.shards = s;
    }
    match cli.admin_listen.as_deref() {
        None => {}
        Some("off") => config.admin = None,
        Some(a) => match a.parse() {
            Ok(addr) => {
                let token = config.admin.as_ref().and_then(|a| a.token.clone());
                let tls = config.admin.as_ref().and_then(|a| a.tls.clone());
                if token.is_none() && !std::net::SocketAddr::ip(&addr).is_loopback() {
                    return Err(format!(
                        "--admin-listen {a}: not a loopback address, and no admin token is configured (admin.token_env)"
                    ));
                }
                config.admin = Some(config::Admin {
                    listen: addr,
                    token,
                    tls,
                });
            }
            Err(_) => {
                return Err(format!(
                    "--admin-listen: `{a}` is not an address like 127.0.0.1:8081 (or `off`)"
                ));
            }
        },
    }
    match cli.ledger.as_deref() {
        None => {}
        Some("off") => config.ledger = None,
        Some(dir) => config.ledger = Some(dir.to_string()),
    }
    if let Some(d) = cli.driver.as_deref() {
        config.driver = match d {
            "io_uring" => Driver::IoUring,
            "epoll" => Driver::Epoll,
            _ => Driver::Auto,
        };
    }
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BUSBAR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    if let Some(Command::BenchLedger {
        dir,
        requests,
        producers,
    }) = &cli.command
    {
        let (dir, temporary) = match dir {
            Some(d) => (d.clone(), false),
            None => (
                std::env::temp_dir().join(format!("busbar-ledger-bench-{}", std::process::id())),
                true,
            ),
        };
        let res = ledger::bench(&dir, *requests, *producers);
        if temporary {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return match res {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(Command::Check { file }) = &cli.command {
        // Certificates and keys are checked as TLS will use them.
        let checked = load(Some(file)).and_then(|c| {
            server::tls::ServerTls::build(&c)?;
            if let Some(f) = &c.fleet {
                fleet::client(f).map_err(|e| format!("fleet: {e}"))?;
            }
            Ok(c)
        });
        return match checked {
            Ok(c) => {
                println!(
                    "{}: ok ({} providers, {} models, {} pools, {} keys)",
                    file.display(),
                    c.providers.len(),
                    c.models.len(),
                    c.pools.len(),
                    c.keys.len()
                );
                for p in c
                    .providers
                    .iter()
                    .filter(|p| p.api_key_env.is_some() && p.api_key.is_none())
                {
                    println!(
                        "warning: provider `{}`: {} is not set; its models will answer 503",
                        p.name,
                        p.api_key_env.as_deref().unwrap_or_default()
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }

    let config = match configure(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = std::sync::Arc::new(cli);
    let loader: runtime::Loader = std::sync::Arc::new(move || configure(&cli));
    match runtime::run(config, loader) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
