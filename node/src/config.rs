//! Where the node keeps its state and how it is configured.
//!
//! The data directory is chosen by, in order: the `--data-dir` flag, the `PLEXUS_DATA_DIR`
//! environment variable, `data_dir` in the config file, and the per-user default
//! `$XDG_DATA_HOME/plexus` (`~/.local/share/plexus`). The config file is chosen by `--config`,
//! then `PLEXUS_CONFIG`, then `$XDG_CONFIG_HOME/plexus/config.toml`
//! (`~/.config/plexus/config.toml`); it is optional.
//!
//! The data directory holds the identity key (`identity.key`, mode 0600), the agent id it
//! belongs to (`agent.id`), the RocksDB log (`log/`) and the lock file (`plexus.lock`).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use plexus_crypto::{check_key_file_mode, AgentId, IdentityError, Keypair};

use crate::store::TrustRoots;
use serde::{Deserialize, Serialize};

/// File name of the identity key inside the data directory.
pub const KEY_FILE: &str = "identity.key";
/// File name of the HTTP API bearer token inside the data directory (mode 0600).
pub const TOKEN_FILE: &str = "api.token";
/// File name where a running node records its API address.
pub const API_ADDR_FILE: &str = "api.addr";
/// File name where the data directory records the agent id of its identity key.
pub const AGENT_ID_FILE: &str = "agent.id";
/// Namespace used when neither a flag nor the config names one.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Largest config file read; a config is a few lines.
const MAX_CONFIG_LEN: u64 = 1 << 20;

/// Errors about configuration and key files.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "config file {path} (named by --config or PLEXUS_CONFIG) does not exist: check the \
         path, or run `plexus init` to create it"
    )]
    Missing { path: PathBuf },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path} is not valid: {source}")]
    TrustRoot {
        path: PathBuf,
        // Boxed: the identity and name errors it carries are large, and config errors are
        // returned on every command's path.
        source: Box<TrustRootError>,
    },
    #[error("cannot determine a home directory: set HOME, or pass --data-dir and --config")]
    NoHome,
    #[error("no identity in {dir}: run `plexus init` first, or pass the right --data-dir")]
    NoIdentity { dir: PathBuf },
    #[error("key file {path}: {source}")]
    Key {
        path: PathBuf,
        source: IdentityError,
    },
    #[error(
        "key file {path} is not a regular file: put the identity key there, or run \
         `plexus init` on a fresh data directory"
    )]
    NotAKeyFile { path: PathBuf },
    #[error(
        "key file {key_path} holds agent {found}, but this data directory belongs to agent \
         {recorded} ({record}): the key file was changed or replaced; restore the original \
         key, or use a new data directory for a new identity"
    )]
    WrongIdentity {
        key_path: PathBuf,
        record: PathBuf,
        recorded: String,
        found: String,
    },
    #[error("key file {path}: {source}")]
    KeyIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A trust root that cannot be used, from a `--trust-root` flag or the config file's
/// `[governance.trust_roots]`.
#[derive(Debug, thiserror::Error)]
pub enum TrustRootError {
    #[error(
        "--trust-root {pair:?} must be NAMESPACE=ADMIN_AGENT_ID, for example team=3f1c...e9 \
         (the admin's `plexus id`)"
    )]
    NotAPair { pair: String },
    #[error(
        "governance.trust_roots.{namespace} lists no admins: name at least one agent id, or \
         remove the namespace to leave it open"
    )]
    NoAdmins { namespace: String },
    #[error("trust root for {namespace:?}: {source}")]
    BadNamespace {
        namespace: String,
        source: plexus_protocol::EntryError,
    },
    #[error(
        "trust root for {namespace}: admin {admin:?} is not an agent id: {source} (use the \
         admin's `plexus id`)"
    )]
    BadAdmin {
        namespace: String,
        admin: String,
        source: IdentityError,
    },
}

/// Settings read from the config file. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Where the node keeps its key and log.
    pub data_dir: Option<PathBuf>,
    /// The namespace `publish` and `log` use by default.
    pub namespace: Option<String>,
    /// Settings of `plexus run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkFile>,
    /// Governed namespaces and their trust roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub governance: Option<GovernanceFile>,
}

/// The `[governance]` section: which namespaces are governed, and by whom.
///
/// ```toml
/// [governance.trust_roots]
/// team = ["<admin agent id>", "<another admin>"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceFile {
    /// Namespace to the agent ids of its admins.
    #[serde(default)]
    pub trust_roots: BTreeMap<String, Vec<String>>,
}

/// The `[network]` section of the config file; flags and environment variables override it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    /// Multiaddrs to listen on.
    pub listen: Option<Vec<String>>,
    /// Multiaddrs of bootstrap peers, each ending in `/p2p/<peer id>`.
    pub bootstrap: Option<Vec<String>>,
    /// Multiaddrs to announce as reachable.
    pub external: Option<Vec<String>>,
    /// Discover peers with mDNS on the local network.
    pub mdns: Option<bool>,
    /// Namespaces to follow.
    pub follow: Option<Vec<String>>,
    /// Seconds between anti-entropy rounds.
    pub backfill_interval_secs: Option<u64>,
    /// Address of the HTTP API.
    pub api_listen: Option<String>,
    /// Quarantine authors proven to have forked.
    pub quarantine_forkers: Option<bool>,
    /// Milliseconds a live claim's timestamp may differ from this node's clock.
    pub clock_skew_ms: Option<u64>,
    /// Minutes of history the coordination view answers for.
    pub view_history_minutes: Option<u64>,
    /// Gossip messages per second accepted from one peer.
    pub ingress_peer_rate: Option<u32>,
    /// Gossip entries per second accepted from one author.
    pub ingress_author_rate: Option<u32>,
    /// Most connections established at once.
    pub max_connections: Option<u32>,
    /// Below this many connected peers, the node dials more from its routing table.
    pub peers_low: Option<u32>,
    /// Above this many connected peers, the node disconnects the surplus (never a mesh peer).
    pub peers_high: Option<u32>,
}

/// Flags and environment that decide the paths, as parsed by the CLI.
#[derive(Debug, Clone, Default)]
pub struct PathOverrides {
    pub data_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub config_path: PathBuf,
    pub config_file_exists: bool,
    pub data_dir: PathBuf,
    pub namespace: String,
    pub network: NetworkFile,
    /// Governed namespaces from the config file (flags of `plexus run` may replace them).
    pub trust_roots: TrustRoots,
}

impl Config {
    /// Resolves paths and reads the config file if there is one. The CLI passes flag values in
    /// `overrides`; clap already folds `PLEXUS_DATA_DIR` and `PLEXUS_CONFIG` into them. A
    /// config file named explicitly must exist: a typo in its path would otherwise drop its
    /// settings (trust roots among them) without a word.
    pub fn resolve(overrides: &PathOverrides) -> Result<Config, ConfigError> {
        Config::resolve_with(overrides, false)
    }

    /// [`Config::resolve`] for `plexus init`, which writes the named config file when it does
    /// not exist yet.
    pub fn resolve_for_init(overrides: &PathOverrides) -> Result<Config, ConfigError> {
        Config::resolve_with(overrides, true)
    }

    fn resolve_with(overrides: &PathOverrides, may_create: bool) -> Result<Config, ConfigError> {
        let config_path = match &overrides.config {
            Some(path) => path.clone(),
            None => default_config_path()?,
        };
        let (file, exists) = match std::fs::metadata(&config_path) {
            Ok(_) => (read_config_file(&config_path)?, true),
            Err(error)
                if error.kind() == std::io::ErrorKind::NotFound
                    && overrides.config.is_some()
                    && !may_create =>
            {
                return Err(ConfigError::Missing { path: config_path })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                (ConfigFile::default(), false)
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: config_path,
                    source,
                })
            }
        };
        let trust_roots = match &file.governance {
            Some(governance) => {
                trust_roots_from_file(&governance.trust_roots).map_err(|source| {
                    ConfigError::TrustRoot {
                        path: config_path.clone(),
                        source: Box::new(source),
                    }
                })?
            }
            None => TrustRoots::new(),
        };
        let data_dir = match (&overrides.data_dir, &file.data_dir) {
            (Some(dir), _) | (None, Some(dir)) => dir.clone(),
            (None, None) => default_data_dir()?,
        };
        Ok(Config {
            config_path,
            config_file_exists: exists,
            data_dir,
            namespace: file
                .namespace
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            network: file.network.unwrap_or_default(),
            trust_roots,
        })
    }

    /// Path of the identity key.
    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join(KEY_FILE)
    }
}

/// Parses `NAMESPACE=ADMIN_ID` pairs (from `--trust-root` flags) into trust roots; several
/// pairs for one namespace give it several admins.
pub fn parse_trust_root_flags(pairs: &[String]) -> Result<TrustRoots, TrustRootError> {
    let mut roots = TrustRoots::new();
    for pair in pairs {
        let Some((namespace, admin)) = pair.split_once('=') else {
            return Err(TrustRootError::NotAPair { pair: pair.clone() });
        };
        add_trust_root(&mut roots, namespace, admin)?;
    }
    Ok(roots)
}

fn trust_roots_from_file(
    section: &BTreeMap<String, Vec<String>>,
) -> Result<TrustRoots, TrustRootError> {
    let mut roots = TrustRoots::new();
    for (namespace, admins) in section {
        if admins.is_empty() {
            return Err(TrustRootError::NoAdmins {
                namespace: namespace.clone(),
            });
        }
        for admin in admins {
            add_trust_root(&mut roots, namespace, admin)?;
        }
    }
    Ok(roots)
}

fn add_trust_root(
    roots: &mut TrustRoots,
    namespace: &str,
    admin: &str,
) -> Result<(), TrustRootError> {
    plexus_protocol::entry::check_name("namespace", namespace).map_err(|source| {
        TrustRootError::BadNamespace {
            namespace: namespace.to_owned(),
            source,
        }
    })?;
    let admin: AgentId = admin
        .trim()
        .parse()
        .map_err(|source| TrustRootError::BadAdmin {
            namespace: namespace.to_owned(),
            admin: admin.to_owned(),
            source,
        })?;
    roots.entry(namespace.to_owned()).or_default().insert(admin);
    Ok(())
}

/// Reads and parses a config file.
pub fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if metadata.len() > MAX_CONFIG_LEN {
        return Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message: format!("{} bytes is too large for a config file", metadata.len()),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let file: ConfigFile = toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    if let Some(namespace) = &file.namespace {
        plexus_protocol::entry::check_name("namespace", namespace).map_err(|error| {
            ConfigError::Parse {
                path: path.to_path_buf(),
                message: error.to_string(),
            }
        })?;
    }
    Ok(file)
}

/// Writes a config file (creating its directory), refusing to overwrite an existing one.
pub fn write_config_file(path: &Path, file: &ConfigFile) -> Result<(), ConfigError> {
    let write_error = |source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    let body = toml::to_string(file).map_err(|error| ConfigError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(error),
    })?;
    let text = format!("# Plexus node configuration (see README.md, \"Configuration\").\n{body}");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(write_error)?;
    out.write_all(text.as_bytes()).map_err(write_error)?;
    out.sync_all().map_err(write_error)
}

/// Creates a new identity key file with mode 0600. Fails if the file exists.
pub fn create_key_file(path: &Path, keypair: &Keypair) -> Result<(), ConfigError> {
    let io_error = |source| ConfigError::KeyIo {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error)?;
    file.write_all(keypair.to_key_file_text().as_bytes())
        .map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

/// Loads the API token, creating it (32 random bytes in hex, mode 0600) when missing.
///
/// The token is written whole or not at all: into a temporary file, fsynced, then linked to
/// its name (a link, unlike a rename, never replaces a token another process just made) and
/// the directory fsynced. An empty token file, which a crash of an older version could leave
/// between creating the file and writing it, is replaced the same way instead of blocking
/// start-up.
pub fn load_or_create_token(data_dir: &Path) -> Result<String, ConfigError> {
    let path = data_dir.join(TOKEN_FILE);
    let io_error = |source| ConfigError::KeyIo {
        path: path.clone(),
        source,
    };
    match std::fs::metadata(&path) {
        Ok(metadata) => {
            check_key_file_mode(metadata.permissions().mode()).map_err(|source| {
                ConfigError::Key {
                    path: path.clone(),
                    source,
                }
            })?;
            let token = std::fs::read_to_string(&path).map_err(io_error)?;
            let token = token.trim().to_owned();
            if token.is_empty() {
                return write_token(data_dir, &path, true);
            }
            if token.len() < 32 {
                return Err(ConfigError::Parse {
                    path,
                    message: "the API token is shorter than 32 characters: delete the file and \
                              run `plexus init` to create a new one"
                        .into(),
                });
            }
            Ok(token)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            write_token(data_dir, &path, false)
        }
        Err(source) => Err(io_error(source)),
    }
}

/// Writes a new token to `path` atomically (see [`load_or_create_token`]); `replace` says
/// whether an (empty) token file may be replaced.
fn write_token(data_dir: &Path, path: &Path, replace: bool) -> Result<String, ConfigError> {
    let io_error = |source| ConfigError::KeyIo {
        path: path.to_path_buf(),
        source,
    };
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    std::fs::create_dir_all(data_dir).map_err(io_error)?;
    let contents = format!("{token}\n");
    match write_whole_file(path, contents.as_bytes(), replace) {
        Ok(()) => Ok(token),
        // Another process made the token first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create_token(data_dir)
        }
        Err(error) => Err(io_error(error)),
    }
}

/// Loads the identity key, refusing a file that group or others can read.
pub fn load_key_file(path: &Path) -> Result<Keypair, ConfigError> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NoIdentity {
                dir: path.parent().unwrap_or(path).to_path_buf(),
            })
        }
        Err(source) => {
            return Err(ConfigError::KeyIo {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !metadata.is_file() {
        return Err(ConfigError::NotAKeyFile {
            path: path.to_path_buf(),
        });
    }
    check_key_file_mode(metadata.permissions().mode()).map_err(|source| ConfigError::Key {
        path: path.to_path_buf(),
        source,
    })?;
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        ConfigError::KeyIo {
            path: path.to_path_buf(),
            source,
        }
    })?);
    let keypair = Keypair::from_key_file_text(&text).map_err(|source| ConfigError::Key {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(data_dir) = path.parent() {
        check_recorded_agent(data_dir, path, &keypair.agent_id())?;
    }
    Ok(keypair)
}

/// Refuses a key that is not the one the data directory was made with: a key file changed by
/// one digit is still a valid key, and would silently become a second identity writing into
/// the same log. The agent id is recorded in [`AGENT_ID_FILE`] the first time a key is
/// loaded (by `plexus init` for new directories).
fn check_recorded_agent(
    data_dir: &Path,
    key_path: &Path,
    agent: &AgentId,
) -> Result<(), ConfigError> {
    let record = data_dir.join(AGENT_ID_FILE);
    let io_error = |source| ConfigError::KeyIo {
        path: record.clone(),
        source,
    };
    match std::fs::read_to_string(&record) {
        Ok(text) => {
            let recorded = text.trim();
            if recorded == agent.to_string() {
                Ok(())
            } else {
                Err(ConfigError::WrongIdentity {
                    key_path: key_path.to_path_buf(),
                    record,
                    recorded: recorded.chars().take(64).collect(),
                    found: agent.to_string(),
                })
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            match write_whole_file(&record, format!("{agent}\n").as_bytes(), false) {
                Ok(()) => Ok(()),
                // Another process loading the same key recorded it first: check theirs.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    check_recorded_agent(data_dir, key_path, agent)
                }
                Err(source) => Err(io_error(source)),
            }
        }
        Err(source) => Err(io_error(source)),
    }
}

/// Puts `contents` at `path` whole or not at all (mode 0600): written to a temporary file in the
/// same directory and synced, then renamed over `path` (`replace`) or hard-linked to it, which
/// fails with `AlreadyExists` if another process made `path` first. A reader never sees a
/// created but unwritten file, and a crash leaves at most a `.partial` file beside it.
fn write_whole_file(path: &Path, contents: &[u8], replace: bool) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = directory.join(format!(
        "{name}.{}.{:016x}.partial",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        if replace {
            std::fs::rename(&temporary, path)
        } else {
            std::fs::hard_link(&temporary, path)
        }
    })();
    let _ = std::fs::remove_file(&temporary);
    written?;
    std::fs::File::open(directory)?.sync_all()
}

fn home() -> Result<PathBuf, ConfigError> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .ok_or(ConfigError::NoHome)
}

fn xdg_dir(variable: &str, fallback: &str) -> Result<PathBuf, ConfigError> {
    match std::env::var_os(variable).filter(|dir| !dir.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(home()?.join(fallback)),
    }
}

/// `$XDG_DATA_HOME/plexus`, or `~/.local/share/plexus`.
pub fn default_data_dir() -> Result<PathBuf, ConfigError> {
    Ok(xdg_dir("XDG_DATA_HOME", ".local/share")?.join("plexus"))
}

/// `$XDG_CONFIG_HOME/plexus/config.toml`, or `~/.config/plexus/config.toml`.
pub fn default_config_path() -> Result<PathBuf, ConfigError> {
    Ok(xdg_dir("XDG_CONFIG_HOME", ".config")?
        .join("plexus")
        .join("config.toml"))
}

#[cfg(test)]
mod tests;
