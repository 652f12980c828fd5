//! The peer store: a small file in the data directory listing peers this node was connected
//! to, so that after a restart it rejoins the network without any bootstrap node.
//!
//! The file (`peers.json`) is JSON, `{"version": 1, "peers": [{"peer_id": "12D3…",
//! "addrs": ["/ip4/…/tcp/…"]}]}`, at most [`MAX_STORED_PEERS`] peers of at most
//! [`MAX_ADDRS_PER_PEER`] addresses each. It is only a cache of hints: a missing or damaged
//! file costs nothing but the shortcut (the node says so and starts from its bootstrap list),
//! and it is replaced whole (written to a temporary file, synced, renamed over the old one,
//! the directory synced), so a crash leaves the old list or the new one, never half of one.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// Name of the peer store file in the data directory.
pub const PEER_STORE_FILE: &str = "peers.json";

/// Peers kept in the store: enough to find a live one after most of them left (a rejoin needs
/// only one), few enough that the file stays a few KiB.
pub const MAX_STORED_PEERS: usize = 64;

/// Addresses kept per peer (TCP and QUIC on a couple of interfaces).
pub const MAX_ADDRS_PER_PEER: usize = 4;

/// Largest peer store file read; a larger one is refused before parsing (64 peers of 4
/// addresses take about 16 KiB).
pub const MAX_PEER_STORE_BYTES: u64 = 64 * 1024;

/// The file format version this node writes and reads.
pub const PEER_STORE_VERSION: u32 = 1;

/// A peer and the addresses it was reached at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPeer {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// What [`load`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedPeers {
    pub peers: Vec<StoredPeer>,
    /// Entries left out: unreadable peer ids or addresses, or past the bounds.
    pub skipped: usize,
}

/// Why the peer store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PeerStoreError {
    #[error("cannot read the peer store {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the peer store {path} is larger than {MAX_PEER_STORE_BYTES} bytes; it is not one this \
         node wrote: delete it (the node will write a new one)"
    )]
    TooLarge { path: PathBuf },
    #[error(
        "the peer store {path} is not valid (line {line}, column {column}: {reason}); delete it \
         (the node will write a new one)"
    )]
    Malformed {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error(
        "the peer store {path} has version {found}, this node reads version \
         {PEER_STORE_VERSION}: delete it or run the node version that wrote it"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write the peer store {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    peers: Vec<StoreEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoreEntry {
    peer_id: String,
    addrs: Vec<String>,
}

/// Reads the peer store at `path`; a missing file is an empty store.
pub fn load(path: &Path) -> Result<LoadedPeers, PeerStoreError> {
    let read_error = |source| PeerStoreError::Read {
        path: path.to_owned(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LoadedPeers::default())
        }
        Err(error) => return Err(read_error(error)),
    };
    let mut text = String::new();
    file.take(MAX_PEER_STORE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_PEER_STORE_BYTES {
        return Err(PeerStoreError::TooLarge {
            path: path.to_owned(),
        });
    }
    let parsed: StoreFile =
        serde_json::from_str(&text).map_err(|error| PeerStoreError::Malformed {
            path: path.to_owned(),
            line: error.line(),
            column: error.column(),
            reason: error.to_string(),
        })?;
    if parsed.version != PEER_STORE_VERSION {
        return Err(PeerStoreError::Version {
            path: path.to_owned(),
            found: parsed.version,
        });
    }
    let mut loaded = LoadedPeers::default();
    for entry in parsed.peers {
        if loaded.peers.len() >= MAX_STORED_PEERS {
            loaded.skipped += 1;
            continue;
        }
        let Ok(peer) = entry.peer_id.parse::<PeerId>() else {
            loaded.skipped += 1;
            continue;
        };
        let addrs: Vec<Multiaddr> = entry
            .addrs
            .iter()
            .filter_map(|text| text.parse().ok())
            .take(MAX_ADDRS_PER_PEER)
            .collect();
        if addrs.is_empty() {
            loaded.skipped += 1;
            continue;
        }
        loaded.peers.push(StoredPeer { peer, addrs });
    }
    Ok(loaded)
}

/// Replaces the peer store at `path` with `peers` (the first [`MAX_STORED_PEERS`], the first
/// [`MAX_ADDRS_PER_PEER`] addresses of each), atomically.
pub fn save(path: &Path, peers: &[StoredPeer]) -> Result<(), PeerStoreError> {
    let write_error = |source| PeerStoreError::Write {
        path: path.to_owned(),
        source,
    };
    let contents = StoreFile {
        version: PEER_STORE_VERSION,
        peers: peers
            .iter()
            .filter(|stored| !stored.addrs.is_empty())
            .take(MAX_STORED_PEERS)
            .map(|stored| StoreEntry {
                peer_id: stored.peer.to_string(),
                addrs: stored
                    .addrs
                    .iter()
                    .take(MAX_ADDRS_PER_PEER)
                    .map(ToString::to_string)
                    .collect(),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&contents)
        .map_err(|error| write_error(std::io::Error::other(error)))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary = tempfile::NamedTempFile::new_in(directory).map_err(write_error)?;
    temporary
        .write_all(text.as_bytes())
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(write_error)?;
    temporary
        .persist(path)
        .map_err(|error| write_error(error.error))?;
    // The rename is durable only once the directory entry is.
    File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(port: u16) -> StoredPeer {
        let peer = PeerId::random();
        StoredPeer {
            peer,
            addrs: vec![format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}")
                .parse()
                .unwrap()],
        }
    }

    #[test]
    fn peers_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PEER_STORE_FILE);
        assert_eq!(load(&path).unwrap(), LoadedPeers::default(), "no file yet");
        let peers: Vec<StoredPeer> = (0..3).map(|n| stored(7400 + n)).collect();
        save(&path, &peers).unwrap();
        assert_eq!(load(&path).unwrap().peers, peers);
        // Saving again replaces the list and leaves no temporary file behind.
        save(&path, &peers[..1]).unwrap();
        assert_eq!(load(&path).unwrap().peers, peers[..1].to_vec());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_store_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PEER_STORE_FILE);
        let mut peers: Vec<StoredPeer> = (0..100).map(|n| stored(7000 + n)).collect();
        peers[0].addrs = (0..10)
            .map(|n| format!("/ip4/127.0.0.{n}/tcp/1").parse().unwrap())
            .collect();
        save(&path, &peers).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.peers.len(), MAX_STORED_PEERS);
        assert_eq!(loaded.peers[0].addrs.len(), MAX_ADDRS_PER_PEER);
        assert!(std::fs::metadata(&path).unwrap().len() < MAX_PEER_STORE_BYTES);
    }

    #[test]
    fn a_damaged_store_is_named_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PEER_STORE_FILE);
        std::fs::write(&path, "{\"version\": 1, \"peers\": [").unwrap();
        let error = load(&path).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, PeerStoreError::Malformed { line: 1, .. }));
        assert!(message.contains(PEER_STORE_FILE) && message.contains("delete it"));
        // Reading did not remove or change it.
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"version\": 1, \"peers\": ["
        );

        std::fs::write(&path, "{\"version\": 2, \"peers\": []}").unwrap();
        assert!(matches!(
            load(&path).unwrap_err(),
            PeerStoreError::Version { found: 2, .. }
        ));

        std::fs::write(&path, vec![b' '; MAX_PEER_STORE_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            load(&path).unwrap_err(),
            PeerStoreError::TooLarge { .. }
        ));
    }

    #[test]
    fn unreadable_entries_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PEER_STORE_FILE);
        let good = stored(7400);
        let text = format!(
            "{{\"version\": 1, \"peers\": [\
             {{\"peer_id\": \"not a peer\", \"addrs\": [\"/ip4/127.0.0.1/tcp/1\"]}},\
             {{\"peer_id\": \"{}\", \"addrs\": [\"nonsense\"]}},\
             {{\"peer_id\": \"{}\", \"addrs\": [\"nonsense\", \"{}\"]}}]}}",
            PeerId::random(),
            good.peer,
            good.addrs[0]
        );
        std::fs::write(&path, text).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.peers, vec![good]);
        assert_eq!(loaded.skipped, 2);
    }
}
