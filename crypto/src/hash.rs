//! SHA-256, the one hash of the protocol: entry ids, body hashes and export digests.
//!
//! SHA-256 was chosen over faster hashes (BLAKE3) because an outside auditor must be able to
//! recompute every id with standard tools (`sha256sum`, `openssl dgst`), and because hashing is a
//! small cost next to signature verification (see `docs/benchmarks.md`).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::identity::{decode_hex_exact, IdentityError};

/// Length in bytes of a SHA-256 digest.
pub const HASH_LEN: usize = 32;

/// A SHA-256 digest. Printed and parsed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash256(pub [u8; HASH_LEN]);

/// Incremental SHA-256, for digests over streams (an export file's content).
#[derive(Clone, Default)]
pub struct Sha256Stream(Sha256);

/// Hashes `data` with SHA-256.
pub fn sha256(data: &[u8]) -> Hash256 {
    Hash256(Sha256::digest(data).into())
}

impl Hash256 {
    /// The digest's raw bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Builds a digest from a slice that must be exactly [`HASH_LEN`] bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash256> {
        <[u8; HASH_LEN]>::try_from(bytes).ok().map(Hash256)
    }

    /// The first eight hex digits, for compact human output.
    pub fn short(&self) -> String {
        let mut text = self.to_string();
        text.truncate(8);
        text
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({self})")
    }
}

impl FromStr for Hash256 {
    type Err = IdentityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        decode_hex_exact::<HASH_LEN>(text, "hash").map(Hash256)
    }
}

impl Sha256Stream {
    /// Starts an empty digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Finishes the digest.
    pub fn finish(self) -> Hash256 {
        Hash256(self.0.finalize().into())
    }
}

impl fmt::Debug for Sha256Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sha256Stream")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_fips_test_vector() {
        assert_eq!(
            sha256(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn stream_equals_one_shot() {
        let mut stream = Sha256Stream::new();
        stream.update(b"a");
        stream.update(b"bc");
        assert_eq!(stream.finish(), sha256(b"abc"));
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let hash = sha256(b"plexus");
        assert_eq!(hash.to_string().parse::<Hash256>().unwrap(), hash);
        let err = "abc".parse::<Hash256>().unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
    }
}
