//! The `plexus` command line: argument definitions and dispatch.
//!
//! Exit codes (also in `plexus --help` and README.md): see [`EXIT_CODES`].

mod audit;
mod coord;
mod demo;
mod governance;
mod local;
mod mcp;
mod replay;
mod run;
mod time;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, PathOverrides};

/// What each exit status means, for `--help` and README.md.
pub const EXIT_CODES: &str = "Exit codes:
  0  success (an audit: the log verified)
  1  an audit found problems in the log (or the demo failed)
  2  the command could not run: bad arguments, a missing file or node, an I/O error
  3  an audit found the log intact, but an author forked
  4  the node (or, offline, the log's rules) refused the request; the message names the
     field or the rule
  5  `plexus mcp` found no node running on the data directory (start `plexus run` first)";

/// The exit status of a command that could not run (also clap's status for bad usage).
pub const EXIT_ERROR: u8 = 2;
/// The exit status of a request the node refused.
pub const EXIT_REFUSED: u8 = 4;

/// Plexus: a peer-to-peer coordination layer for AI agents.
///
/// Each agent runs a Plexus node beside it. The node holds the agent's Ed25519 identity, signs
/// what the agent publishes into an append-only log, and lets anyone verify that log offline.
#[derive(Debug, Parser)]
#[command(name = "plexus", version, propagate_version = true, after_help = EXIT_CODES)]
pub struct Cli {
    /// Data directory holding the identity key and the log [default: ~/.local/share/plexus]
    #[arg(long, global = true, env = "PLEXUS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Config file [default: ~/.config/plexus/config.toml]
    #[arg(long, global = true, env = "PLEXUS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Format of diagnostic logs on stderr
    #[arg(long, global = true, env = "PLEXUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How diagnostics are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this agent's identity, its log and a config file
    Init(InitArgs),
    /// Print this agent's id (its public key)
    Id(IdArgs),
    /// Append a signed entry to this agent's own feed
    Publish(PublishArgs),
    /// Show entries of the local log in arrival order
    Log(LogArgs),
    /// Export the log for auditors, or verify an export or a data directory offline
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run a short self-contained demonstration in a temporary directory
    Demo(DemoArgs),
    /// Run the node: join the network, gossip and backfill entries, serve the local HTTP API
    Run(RunArgs),
    /// Show a running node's peers, topics, feed heads, and pending and backfill progress
    Status(StatusArgs),
    /// Print (and on a desktop open) the address of the running node's read-only web page
    Ui(ui::UiArgs),
    /// Serve this node as MCP tools over stdio, for an LLM host (needs `plexus run` going)
    Mcp,
    #[command(flatten)]
    Coord(coord::CoordCommand),
    /// Print a shell completion script: `plexus completion bash > /etc/bash_completion.d/plexus`
    Completion(CompletionArgs),
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Print the agent id, peer id and the node's dialable addresses as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Multiaddr to listen on (repeatable) [default: /ip4/0.0.0.0/tcp/7400 and /ip4/0.0.0.0/udp/7400/quic-v1]
    #[arg(long, env = "PLEXUS_LISTEN", value_delimiter = ',')]
    pub listen: Vec<String>,
    /// Bootstrap peer multiaddr ending in /p2p/<peer id> (repeatable)
    #[arg(long, env = "PLEXUS_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<String>,
    /// Multiaddr to announce as reachable (repeatable)
    #[arg(long, env = "PLEXUS_EXTERNAL", value_delimiter = ',')]
    pub external: Vec<String>,
    /// Do not discover peers with mDNS on the local network
    #[arg(long, env = "PLEXUS_NO_MDNS")]
    pub no_mdns: bool,
    /// Namespace to follow (repeatable) [default: the configured namespace]
    #[arg(long, env = "PLEXUS_FOLLOW", value_delimiter = ',')]
    pub follow: Vec<String>,
    /// Seconds between anti-entropy rounds with every peer [default: 30]
    #[arg(long, env = "PLEXUS_BACKFILL_INTERVAL", value_name = "SECS")]
    pub backfill_interval: Option<u64>,
    /// Address of the local HTTP API [default: 127.0.0.1:7474]
    #[arg(long, env = "PLEXUS_API_LISTEN", value_name = "ADDR")]
    pub api_listen: Option<String>,
    /// Keep storing entries of authors proven to have forked
    #[arg(long)]
    pub no_quarantine: bool,
    /// Refuse live claims whose timestamp is further than this from our clock [default: 30000]
    #[arg(long, env = "PLEXUS_CLOCK_SKEW_MS", value_name = "MS")]
    pub clock_skew_ms: Option<u64>,
    /// Minutes of history the coordination view answers for (`?at=`); older ended claims,
    /// constraints and card changes stay in the log only [default: 1440 (a day), at least 5]
    #[arg(long, env = "PLEXUS_VIEW_HISTORY_MINUTES", value_name = "MINUTES")]
    pub view_history_minutes: Option<u64>,
    /// Govern a namespace: NAMESPACE=ADMIN_AGENT_ID (repeatable; replaces the config file's
    /// [governance.trust_roots])
    #[arg(
        long,
        env = "PLEXUS_TRUST_ROOT",
        value_delimiter = ',',
        value_name = "NS=ADMIN"
    )]
    pub trust_root: Vec<String>,
    /// Gossip messages per second accepted from one peer [default: 5000]
    #[arg(long, env = "PLEXUS_INGRESS_PEER_RATE", value_name = "PER_SEC")]
    pub ingress_peer_rate: Option<u32>,
    /// Gossip entries per second accepted from one author [default: 1000]
    #[arg(long, env = "PLEXUS_INGRESS_AUTHOR_RATE", value_name = "PER_SEC")]
    pub ingress_author_rate: Option<u32>,
    /// Most connections established at once (at least 2); three quarters of them may be
    /// inbound [default: 128]
    #[arg(long, env = "PLEXUS_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u32>,
    /// Low watermark: below this many peers the node dials more [default: 20]
    #[arg(long, env = "PLEXUS_PEERS_LOW", value_name = "N")]
    pub peers_low: Option<u32>,
    /// High watermark: above this many peers the node disconnects the surplus, never a peer
    /// its gossip meshes use [default: 40]
    #[arg(long, env = "PLEXUS_PEERS_HIGH", value_name = "N")]
    pub peers_high: Option<u32>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the node's status document as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Namespace recorded in a newly written config file as the default
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Entry kind: a coordination kind (`capability`, `intent`, `task`, ...) or an application
    /// kind starting with `x-`, such as `x-note`
    #[arg(long)]
    pub kind: String,
    /// Body as JSON text; stored in canonical form, so key order does not matter
    #[arg(long)]
    pub body: String,
    /// Namespace to publish in [default: from the config file, else `default`]
    #[arg(long)]
    pub namespace: Option<String>,
    /// Print the stored entry as JSON
    #[arg(long)]
    pub json: bool,
    /// Write into the log directly even if a node runs (or ran) on this data directory;
    /// without it, publishing goes through the running node, and a node that stopped
    /// answering is an error
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only entries by this author (agent id, 64 hex digits)
    #[arg(long)]
    pub author: Option<String>,
    /// Only entries of this kind
    #[arg(long)]
    pub kind: Option<String>,
    /// Only entries in this namespace
    #[arg(long)]
    pub namespace: Option<String>,
    /// Show only the last N matching entries
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// One JSON object per line instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the whole log to one self-contained file, signed by this node
    Export(ExportArgs),
    /// Verify an export file or a data directory: signatures, chains, forks, truncation
    Verify(VerifyArgs),
    /// Reconstruct leases, live capabilities and task states at a past moment from a log
    Replay(replay::ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write the export
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An export file, or a node's data directory
    #[arg(value_name = "FILE|DATA_DIR")]
    pub target: PathBuf,
    /// File of trusted author ids, one per line; entries by anyone else are reported
    #[arg(long, value_name = "FILE")]
    pub trusted_keys: Option<PathBuf>,
    /// Re-derive every policy decision of a governed namespace: NAMESPACE=ADMIN_AGENT_ID
    /// (repeatable; several admins of one namespace each get a flag)
    #[arg(long, value_name = "NS=ADMIN")]
    pub trust_root: Vec<String>,
    /// The clock-skew window the node ran with (its `--clock-skew-ms`), for the notice of the
    /// claims it received late (verifying a data directory; namespaces whose policy sets no
    /// window) [default: 30000]
    #[arg(long, value_name = "MS")]
    pub clock_skew_ms: Option<u64>,
    /// Print the full report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's files in this directory instead of a temporary one
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Serve the web page of the reviewer's node, print its address, and keep the nodes
    /// running after the script until Ctrl-C
    #[arg(long)]
    pub ui: bool,
    /// Address of the web page and API with --ui [default: 127.0.0.1:7474]
    #[arg(long, value_name = "ADDR", requires = "ui")]
    pub api_listen: Option<std::net::SocketAddr>,
}

/// Parses the command line, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error_text(&error));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// An error and its causes on one line, each cause once: many messages already quote their
/// cause ("cannot read x: No such file"), and printing the chain again would repeat it.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = PathOverrides {
        data_dir: cli.data_dir.clone(),
        config: cli.config.clone(),
    };
    let config = || Config::resolve(&overrides);
    match cli.command {
        Command::Init(args) => {
            local::init(&Config::resolve_for_init(&overrides)?, &overrides, args)
        }
        Command::Id(args) => local::id(&config()?, args),
        Command::Publish(args) => local::publish(&config()?, args),
        Command::Log(args) => local::log(&config()?, args),
        Command::Audit(AuditCommand::Export(args)) => audit::export(&config()?, args),
        Command::Audit(AuditCommand::Verify(args)) => audit::verify(args),
        Command::Demo(args) => demo::run(args),
        Command::Run(args) => run::run(&config()?, args),
        Command::Status(args) => run::status(&config()?, args),
        Command::Ui(args) => ui::run(&config()?, args),
        Command::Mcp => mcp::run(&config()?),
        Command::Audit(AuditCommand::Replay(args)) => replay::replay(args),
        Command::Coord(command) => coord::run(&config()?, command),
        Command::Completion(args) => {
            clap_complete::generate(
                args.shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "plexus",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The log filter when `PLEXUS_LOG` is not set. Kademlia warns "Failed to trigger bootstrap:
/// No known peers" whenever its routing table is empty, which is simply the state of the first
/// node of a network, so its warnings are left out unless asked for.
const DEFAULT_LOG_FILTER: &str = "warn,libp2p_kad=error";

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PLEXUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colours only for a person at a terminal, and never when NO_COLOR is set (no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
