//! Agent identities: the Ed25519 public key that names an agent, its key pair, and key files.
//!
//! The printable form of an agent id is its 32-byte public key as 64 lowercase hex digits. It is
//! the same in the CLI, the HTTP API, logs and docs, and it is what standard tools print for the
//! raw key bytes, so an auditor can match ids by eye.
//!
//! A key file is text: the line [`KEY_FILE_HEADER`] followed by the 32-byte secret seed in hex on
//! a second line. The node writes it with mode 0600 and refuses to load it when group or others
//! may read it (see [`check_key_file_mode`]).

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::OsRng;
use zeroize::Zeroizing;

/// Length in bytes of an Ed25519 public key (an agent id).
pub const PUBLIC_KEY_LEN: usize = 32;

/// Length in bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// First line of every key file; it names the format so a wrong file is recognised at once.
pub const KEY_FILE_HEADER: &str = "plexus-ed25519-secret-key-v1";

/// Errors about identities, keys and their printable forms.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// Text that should be hex was not, or had the wrong length.
    #[error("invalid {what}: expected {expected} hex digits, got {problem}")]
    BadHex {
        what: &'static str,
        expected: usize,
        problem: String,
    },
    /// The bytes are not a point on the curve.
    #[error("invalid agent id: not a valid Ed25519 public key")]
    InvalidKey,
    /// The key has small order: any signature would verify against it.
    #[error("invalid agent id: weak (small-order) Ed25519 key, which anyone could sign for")]
    WeakKey,
    /// A key file whose text is not in the expected format.
    #[error("malformed key file: {0}")]
    MalformedKeyFile(String),
    /// A key file that group or others may read.
    #[error(
        "key file permissions are too open (mode {mode:04o}): group or others can read the secret \
         key; run `chmod 600` on the file"
    )]
    KeyFileTooOpen { mode: u32 },
}

/// Slots of the per-thread cache of recently accepted keys (see [`AgentId::from_bytes`]).
/// A node hears from a few dozen to a few hundred authors at a time; 128 slots keep most of
/// them at that scale, for about 25 KiB of thread-local storage in each thread.
const VALID_KEY_SLOTS: usize = 128;

thread_local! {
    /// Keys this thread accepted in [`AgentId::from_bytes`], direct-mapped by their first byte
    /// (uniform for real keys). Decompressing the point costs about 10 us, as much as a fifth
    /// of a signature check, and the same authors' keys are parsed over and over: every gossip
    /// message, every feed head read back from the log, every entry of an export. A hit is a
    /// 32-byte comparison; only keys that passed every check are stored, so a hit is exactly
    /// as valid as a fresh parse, and crafted keys that collide cost only their own misses.
    static VALID_KEYS: [Cell<Option<VerifyingKey>>; VALID_KEY_SLOTS] =
        const { [const { Cell::new(None) }; VALID_KEY_SLOTS] };
}

/// An agent's identity: a valid, non-weak Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgentId(VerifyingKey);

/// Slots in an [`AgentIdCache`]. An export groups entries by feed and a batch of live entries
/// comes from a handful of authors, so a few slots catch nearly every repeat; a linear scan of
/// 16 keys costs far less than the one decompression it saves.
pub const AGENT_ID_CACHE_SLOTS: usize = 16;

/// Remembers the last few public keys parsed by [`AgentIdCache::parse`].
///
/// Parsing an agent id decompresses the curve point (a field square root), which costs about as
/// much as a quarter of a batched signature check. When many entries by the same few authors
/// are decoded, the cache turns all but the first parse per author into a 32-byte comparison.
/// It is exact: [`AgentId::from_bytes`] is a pure function of the bytes, only successes are
/// remembered, and a miss runs the full check. Its size is fixed ([`AGENT_ID_CACHE_SLOTS`]).
#[derive(Debug, Clone, Default)]
pub struct AgentIdCache {
    slots: [Option<AgentId>; AGENT_ID_CACHE_SLOTS],
    /// The slot the next miss overwrites (round robin).
    next: usize,
    /// The slot of the most recent hit or insertion, compared first.
    last: usize,
}

/// An Ed25519 signature as transported: 64 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

/// An agent's key pair. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Keypair {
    signing_key: SigningKey,
}

impl AgentId {
    /// Parses and validates a public key: a canonical encoding that decompresses to a point
    /// that does not have small order. (A non-canonical encoding would give one key two ids.)
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<AgentId, IdentityError> {
        let slot = usize::from(bytes[0]) % VALID_KEY_SLOTS;
        let cached = VALID_KEYS.with(|keys| keys.get(slot).and_then(Cell::get));
        if let Some(key) = cached.filter(|key| key.as_bytes() == bytes) {
            return Ok(AgentId(key));
        }
        if !is_canonical_point_encoding(bytes) {
            return Err(IdentityError::InvalidKey);
        }
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| IdentityError::InvalidKey)?;
        if key.is_weak() {
            return Err(IdentityError::WeakKey);
        }
        VALID_KEYS.with(|keys| {
            if let Some(cell) = keys.get(slot) {
                cell.set(Some(key));
            }
        });
        Ok(AgentId(key))
    }

    /// Like [`AgentId::from_bytes`] for a slice of any length.
    pub fn from_slice(bytes: &[u8]) -> Result<AgentId, IdentityError> {
        let array = <[u8; PUBLIC_KEY_LEN]>::try_from(bytes).map_err(|_| IdentityError::BadHex {
            what: "agent id",
            expected: PUBLIC_KEY_LEN * 2,
            problem: format!("{} bytes", bytes.len()),
        })?;
        AgentId::from_bytes(&array)
    }

    /// The raw 32 bytes of the key.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.0.as_bytes()
    }

    /// The first eight hex digits, for compact human output.
    pub fn short(&self) -> String {
        let mut text = self.to_string();
        text.truncate(8);
        text
    }

    /// Whether `signature` is a valid signature of `message` by this key, under the one rule
    /// every path uses (docs/PROTOCOL.md §1): canonical `R` that decompresses, `S` below the
    /// group order, and the cofactored equation. Torsion in `R` or in the key is allowed.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        crate::verify::verify_one(self, message, signature)
    }

    /// The key as a curve point, for the verification equations.
    pub(crate) fn point(&self) -> curve25519_dalek::EdwardsPoint {
        self.0.to_edwards()
    }
}

impl AgentIdCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Same result as [`AgentId::from_bytes`], without the decompression for a key seen lately.
    pub fn parse(&mut self, bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<AgentId, IdentityError> {
        if let Some(Some(id)) = self.slots.get(self.last) {
            if id.as_bytes() == bytes {
                return Ok(*id);
            }
        }
        if let Some(index) = self
            .slots
            .iter()
            .position(|slot| slot.is_some_and(|id| id.as_bytes() == bytes))
        {
            self.last = index;
            if let Some(Some(id)) = self.slots.get(index) {
                return Ok(*id);
            }
        }
        let id = AgentId::from_bytes(bytes)?;
        if let Some(slot) = self.slots.get_mut(self.next) {
            *slot = Some(id);
        }
        self.last = self.next;
        self.next = (self.next + 1) % AGENT_ID_CACHE_SLOTS;
        Ok(id)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.as_bytes() {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({self})")
    }
}

impl FromStr for AgentId {
    type Err = IdentityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = decode_hex_exact::<PUBLIC_KEY_LEN>(text, "agent id")?;
        AgentId::from_bytes(&bytes)
    }
}

impl PartialOrd for AgentId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AgentId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Signature {
    /// Builds a signature from a slice that must be exactly [`SIGNATURE_LEN`] bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Signature> {
        <[u8; SIGNATURE_LEN]>::try_from(bytes).ok().map(Signature)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(")?;
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("..)")
    }
}

impl Keypair {
    /// Generates a fresh key pair from the operating system's random source.
    pub fn generate() -> Keypair {
        Keypair {
            signing_key: SigningKey::generate(&mut OsRng),
        }
    }

    /// Builds a key pair from a 32-byte secret seed (used by test vectors and key files).
    pub fn from_seed(seed: &[u8; 32]) -> Keypair {
        Keypair {
            signing_key: SigningKey::from_bytes(seed),
        }
    }

    /// The public half: this agent's id.
    ///
    /// A key derived from a secret seed is never weak: the clamped scalar times the base point
    /// has the full prime order, so the [`AgentId`] invariant holds without a check.
    pub fn agent_id(&self) -> AgentId {
        AgentId(self.signing_key.verifying_key())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing_key.sign(message).to_bytes())
    }

    /// The 32-byte secret seed, wrapped so it is wiped from memory when dropped. Needed to derive
    /// the node's libp2p identity from the same key.
    pub fn secret_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing_key.to_bytes())
    }

    /// Renders the key file text. The caller writes it with mode 0600.
    pub fn to_key_file_text(&self) -> Zeroizing<String> {
        let seed = self.secret_seed();
        let mut text = Zeroizing::new(String::with_capacity(KEY_FILE_HEADER.len() + 66));
        text.push_str(KEY_FILE_HEADER);
        text.push('\n');
        for byte in seed.iter() {
            text.push_str(&format!("{byte:02x}"));
        }
        text.push('\n');
        text
    }

    /// Parses key file text produced by [`Keypair::to_key_file_text`].
    pub fn from_key_file_text(text: &str) -> Result<Keypair, IdentityError> {
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(KEY_FILE_HEADER) {
            return Err(IdentityError::MalformedKeyFile(format!(
                "the first line must be `{KEY_FILE_HEADER}`"
            )));
        }
        let seed_line = lines.next().map(str::trim).unwrap_or_default();
        let seed = Zeroizing::new(decode_hex_exact::<32>(seed_line, "secret key").map_err(
            |_| {
                IdentityError::MalformedKeyFile(
                    "the second line must hold the 32-byte secret key as 64 hex digits".into(),
                )
            },
        )?);
        if lines.any(|line| !line.trim().is_empty()) {
            return Err(IdentityError::MalformedKeyFile(
                "unexpected text after the secret key line".into(),
            ));
        }
        Ok(Keypair::from_seed(&seed))
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({}, secret redacted)", self.agent_id())
    }
}

/// Whether a compressed Edwards point encodes its y coordinate canonically, that is below
/// the field prime p = 2^255 - 19 (the top bit is the sign of x and is ignored).
pub(crate) fn is_canonical_point_encoding(bytes: &[u8; 32]) -> bool {
    // y >= p only when y is one of p .. 2^255 - 1: bytes 1..=30 all 0xff, the top byte 0x7f
    // (sign bit masked) and the low byte at least 0xed.
    let [low, middle @ .., high] = bytes;
    !(*high & 0x7f == 0x7f && middle.iter().all(|byte| *byte == 0xff) && *low >= 0xed)
}

/// Checks the Unix permission bits of a key file: group and others must have no access at all.
pub fn check_key_file_mode(mode: u32) -> Result<(), IdentityError> {
    if mode & 0o077 != 0 {
        return Err(IdentityError::KeyFileTooOpen {
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Decodes exactly `N` bytes of hex (either case), naming `what` in the error.
pub(crate) fn decode_hex_exact<const N: usize>(
    text: &str,
    what: &'static str,
) -> Result<[u8; N], IdentityError> {
    let bad = |problem: String| IdentityError::BadHex {
        what,
        expected: N * 2,
        problem,
    };
    let text = text.trim();
    if text.len() != N * 2 {
        return Err(bad(format!("{} characters", text.len())));
    }
    let mut out = [0u8; N];
    for (index, (slot, pair)) in out.iter_mut().zip(text.as_bytes().chunks(2)).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        match pair {
            [high, low] => match (digit(*high), digit(*low)) {
                (Some(high), Some(low)) => *slot = (high * 16 + low) as u8,
                _ => {
                    return Err(bad(format!(
                        "a non-hex character near position {}",
                        index * 2
                    )))
                }
            },
            _ => return Err(bad("an odd number of digits".into())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_prints_and_parses_as_hex() {
        let keypair = Keypair::from_seed(&[7; 32]);
        let id = keypair.agent_id();
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert!(text
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(text.parse::<AgentId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<AgentId>().unwrap(), id);
    }

    #[test]
    fn bad_agent_id_text_is_explained() {
        let err = "zz".repeat(32).parse::<AgentId>().unwrap_err().to_string();
        assert!(err.contains("non-hex"), "{err}");
        let err = "ab".parse::<AgentId>().unwrap_err().to_string();
        assert!(
            err.contains("expected 64 hex digits, got 2 characters"),
            "{err}"
        );
    }

    #[test]
    fn weak_keys_are_rejected() {
        // The identity point (y = 1) has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(AgentId::from_bytes(&identity), Err(IdentityError::WeakKey));
    }

    #[test]
    fn non_canonical_keys_are_rejected() {
        // y = p + 1 encodes the same point as y = 1 (the identity) non-canonically.
        let mut encoding = [0xff; 32];
        encoding[0] = 0xee;
        encoding[31] = 0x7f;
        assert_eq!(
            AgentId::from_bytes(&encoding),
            Err(IdentityError::InvalidKey)
        );
        assert!(is_canonical_point_encoding(
            Keypair::generate().agent_id().as_bytes()
        ));
    }

    #[test]
    fn keys_sharing_a_cache_slot_keep_their_own_answers() {
        // Two valid keys in the weak key's slot, parsed in turn with it: each parse answers for
        // its own bytes, and the bad key stays refused with a good key cached in its slot.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let same_slot: Vec<AgentId> = (0u32..)
            .map(|seed| {
                let mut bytes = [0u8; 32];
                bytes[..4].copy_from_slice(&seed.to_le_bytes());
                Keypair::from_seed(&bytes).agent_id()
            })
            .filter(|id| usize::from(id.as_bytes()[0]) % VALID_KEY_SLOTS == 1)
            .take(2)
            .collect();
        for _ in 0..3 {
            for id in &same_slot {
                assert_eq!(AgentId::from_bytes(id.as_bytes()), Ok(*id));
                assert_eq!(AgentId::from_bytes(&weak), Err(IdentityError::WeakKey));
            }
        }
    }

    #[test]
    fn the_cache_parses_exactly_like_from_bytes() {
        let keys: Vec<[u8; 32]> = (0..40u8)
            .map(|seed| *Keypair::from_seed(&[seed; 32]).agent_id().as_bytes())
            .collect();
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let mut non_canonical = [0xff; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        let mut cache = AgentIdCache::new();
        // More distinct keys than slots, revisited, with bad keys mixed in: every answer is the
        // uncached one, and bad keys stay refused however often they come.
        for round in 0..3 {
            for (index, key) in keys.iter().enumerate() {
                assert_eq!(cache.parse(key), AgentId::from_bytes(key), "round {round}");
                if index % 7 == 0 {
                    assert_eq!(cache.parse(&weak), Err(IdentityError::WeakKey));
                    assert_eq!(cache.parse(&non_canonical), Err(IdentityError::InvalidKey));
                }
                assert_eq!(cache.parse(&keys[0]), AgentId::from_bytes(&keys[0]));
            }
        }
    }

    #[test]
    fn verification_accepts_good_and_rejects_bad_signatures() {
        let keypair = Keypair::generate();
        let signature = keypair.sign(b"hello");
        assert!(keypair.agent_id().verify(b"hello", &signature));
        assert!(!keypair.agent_id().verify(b"hellO", &signature));
        let other = Keypair::generate();
        assert!(!other.agent_id().verify(b"hello", &signature));
    }

    #[test]
    fn key_file_round_trip_and_debug_hides_secret() {
        let keypair = Keypair::generate();
        let text = keypair.to_key_file_text();
        let loaded = Keypair::from_key_file_text(&text).unwrap();
        assert_eq!(loaded.agent_id(), keypair.agent_id());
        let debug = format!("{keypair:?}");
        let seed_hex: String = keypair
            .secret_seed()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!debug.contains(&seed_hex));
        assert!(debug.contains("redacted"));
    }

    #[test]
    fn malformed_key_files_are_explained() {
        let err = Keypair::from_key_file_text("hello\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(KEY_FILE_HEADER), "{err}");
        let err = Keypair::from_key_file_text(&format!("{KEY_FILE_HEADER}\nxyz\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("64 hex digits"), "{err}");
    }

    #[test]
    fn open_key_file_modes_are_refused() {
        assert!(check_key_file_mode(0o600).is_ok());
        assert!(check_key_file_mode(0o400).is_ok());
        let err = check_key_file_mode(0o644).unwrap_err().to_string();
        assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");
        assert!(check_key_file_mode(0o604).is_err());
    }
}
