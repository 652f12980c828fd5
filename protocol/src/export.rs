//! The audit export file: a self-contained CBOR sequence (RFC 8742) an auditor verifies offline.
//!
//! ```text
//! file    = header, *envelope, trailer
//! header  = [ "plexus-audit", 1, exporter, created-ms, entry-count ]
//! trailer = [ "plexus-audit-end", entry-count, digest, exporter, signature ]
//! digest  = SHA-256 of every byte of the file before the trailer
//! signed  = "plexus/audit-export/v1" 0x00 || CBOR([ entry-count, digest, exporter ])
//! ```
//!
//! Envelopes come grouped by feed (namespace, then author) in ascending seq; the second entry of
//! a fork follows the stored one at the same seq. The exporter signs the trailer, so dropping
//! or adding whole entries, or cutting the file, is detected even where every remaining entry is
//! individually valid. The header's count is a hint for progress display; the signed trailer is
//! what counts.

use ciborium::Value;
use plexus_crypto::{AgentId, Hash256, Keypair, Signature};

use crate::cbor::{self, CborError};

/// First element of the header.
pub const HEADER_TAG: &str = "plexus-audit";
/// First element of the trailer.
pub const TRAILER_TAG: &str = "plexus-audit-end";
/// Export format version.
pub const EXPORT_VERSION: u64 = 1;
/// Domain tag of the trailer signature.
pub const TRAILER_DOMAIN: &[u8] = b"plexus/audit-export/v1\0";
/// Largest header or trailer accepted; both are a few hundred bytes.
pub const MAX_FRAME_LEN: usize = 1024;

/// The export file's first item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportHeader {
    pub exporter: AgentId,
    pub created_ms: u64,
    pub entry_count: u64,
}

/// The export file's last item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportTrailer {
    pub entry_count: u64,
    pub digest: Hash256,
    pub exporter: AgentId,
    pub signature: Signature,
}

/// What kind of item starts at a position of the file, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Header,
    Entry,
    Trailer,
    Unknown,
}

/// Why a header or trailer is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("bad encoding: {0}")]
    Cbor(#[from] CborError),
    #[error("{0} is {1} bytes, over the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(&'static str, usize),
    #[error("malformed {what}: {problem}")]
    Malformed {
        what: &'static str,
        problem: &'static str,
    },
    #[error("unsupported export version {0} (this build reads version {EXPORT_VERSION})")]
    UnsupportedVersion(u64),
}

/// Classifies an item by its first two bytes: envelopes are `array(2)` of `array(10)`, headers
/// and trailers are `array(5)` starting with their tag text.
pub fn classify(bytes: &[u8]) -> ItemKind {
    match bytes {
        [0x82, 0x8a, ..] => ItemKind::Entry,
        [0x85, 0x6c, rest @ ..] if rest.starts_with(HEADER_TAG.as_bytes()) => ItemKind::Header,
        [0x85, 0x70, rest @ ..] if rest.starts_with(TRAILER_TAG.as_bytes()) => ItemKind::Trailer,
        _ => ItemKind::Unknown,
    }
}

impl ExportHeader {
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            Value::Text(HEADER_TAG.into()),
            Value::Integer(EXPORT_VERSION.into()),
            Value::Bytes(self.exporter.as_bytes().to_vec()),
            Value::Integer(self.created_ms.into()),
            Value::Integer(self.entry_count.into()),
        ]))
    }

    pub fn decode(bytes: &[u8]) -> Result<ExportHeader, ExportError> {
        let [tag, version, exporter, created, count] = frame::<5>("header", bytes)?;
        expect_tag("header", tag, HEADER_TAG)?;
        let version = uint("header", version)?;
        if version != EXPORT_VERSION {
            return Err(ExportError::UnsupportedVersion(version));
        }
        Ok(ExportHeader {
            exporter: agent("header", exporter)?,
            created_ms: uint("header", created)?,
            entry_count: uint("header", count)?,
        })
    }
}

impl ExportTrailer {
    /// Signs a trailer for `entry_count` envelopes whose file prefix hashes to `digest`.
    pub fn sign(keypair: &Keypair, entry_count: u64, digest: Hash256) -> ExportTrailer {
        let exporter = keypair.agent_id();
        let signature = keypair.sign(&trailer_signing_input(entry_count, &digest, &exporter));
        ExportTrailer {
            entry_count,
            digest,
            exporter,
            signature,
        }
    }

    /// Checks the exporter's signature over count, digest and exporter.
    pub fn verify_signature(&self) -> bool {
        self.exporter.verify(
            &trailer_signing_input(self.entry_count, &self.digest, &self.exporter),
            &self.signature,
        )
    }

    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            Value::Text(TRAILER_TAG.into()),
            Value::Integer(self.entry_count.into()),
            Value::Bytes(self.digest.0.to_vec()),
            Value::Bytes(self.exporter.as_bytes().to_vec()),
            Value::Bytes(self.signature.0.to_vec()),
        ]))
    }

    pub fn decode(bytes: &[u8]) -> Result<ExportTrailer, ExportError> {
        let [tag, count, digest, exporter, signature] = frame::<5>("trailer", bytes)?;
        expect_tag("trailer", tag, TRAILER_TAG)?;
        let malformed = |problem| ExportError::Malformed {
            what: "trailer",
            problem,
        };
        let digest = match digest {
            Value::Bytes(bytes) => Hash256::from_slice(&bytes),
            _ => None,
        }
        .ok_or(malformed("digest must be 32 bytes"))?;
        let signature = match signature {
            Value::Bytes(bytes) => Signature::from_slice(&bytes),
            _ => None,
        }
        .ok_or(malformed("signature must be 64 bytes"))?;
        Ok(ExportTrailer {
            entry_count: uint("trailer", count)?,
            digest,
            exporter: agent("trailer", exporter)?,
            signature,
        })
    }
}

fn trailer_signing_input(entry_count: u64, digest: &Hash256, exporter: &AgentId) -> Vec<u8> {
    let mut input = TRAILER_DOMAIN.to_vec();
    input.extend_from_slice(&cbor::encode(&Value::Array(vec![
        Value::Integer(entry_count.into()),
        Value::Bytes(digest.0.to_vec()),
        Value::Bytes(exporter.as_bytes().to_vec()),
    ])));
    input
}

fn frame<const N: usize>(what: &'static str, bytes: &[u8]) -> Result<[Value; N], ExportError> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(ExportError::TooLarge(what, bytes.len()));
    }
    let malformed = ExportError::Malformed {
        what,
        problem: "wrong shape or number of fields",
    };
    match cbor::decode_canonical(bytes)? {
        Value::Array(items) => items.try_into().map_err(|_| malformed),
        _ => Err(malformed),
    }
}

fn expect_tag(what: &'static str, value: Value, tag: &str) -> Result<(), ExportError> {
    match value {
        Value::Text(text) if text == tag => Ok(()),
        _ => Err(ExportError::Malformed {
            what,
            problem: "wrong tag",
        }),
    }
}

fn uint(what: &'static str, value: Value) -> Result<u64, ExportError> {
    match value {
        Value::Integer(integer) => u64::try_from(integer).ok(),
        _ => None,
    }
    .ok_or(ExportError::Malformed {
        what,
        problem: "expected an unsigned integer",
    })
}

fn agent(what: &'static str, value: Value) -> Result<AgentId, ExportError> {
    match value {
        Value::Bytes(bytes) => AgentId::from_slice(&bytes).ok(),
        _ => None,
    }
    .ok_or(ExportError::Malformed {
        what,
        problem: "exporter must be a valid 32-byte Ed25519 key",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_crypto::sha256;

    #[test]
    fn header_and_trailer_round_trip_and_classify() {
        let keypair = Keypair::from_seed(&[1; 32]);
        let header = ExportHeader {
            exporter: keypair.agent_id(),
            created_ms: 1_700_000_000_000,
            entry_count: 3,
        };
        let bytes = header.encode();
        assert_eq!(classify(&bytes), ItemKind::Header);
        assert_eq!(ExportHeader::decode(&bytes).unwrap(), header);

        let trailer = ExportTrailer::sign(&keypair, 3, sha256(b"prefix"));
        assert!(trailer.verify_signature());
        let bytes = trailer.encode();
        assert_eq!(classify(&bytes), ItemKind::Trailer);
        assert_eq!(ExportTrailer::decode(&bytes).unwrap(), trailer);
    }

    #[test]
    fn a_changed_count_breaks_the_trailer_signature() {
        let keypair = Keypair::from_seed(&[1; 32]);
        let mut trailer = ExportTrailer::sign(&keypair, 3, sha256(b"prefix"));
        trailer.entry_count = 2;
        assert!(!trailer.verify_signature());
    }

    #[test]
    fn garbage_is_classified_unknown_and_rejected() {
        assert_eq!(classify(&[0x00, 0x01]), ItemKind::Unknown);
        assert!(ExportHeader::decode(&[0x85, 0x00]).is_err());
        assert!(ExportTrailer::decode(&[]).is_err());
    }
}
