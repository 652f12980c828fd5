//! Crafted Ed25519 keys and signatures for tests and test vectors (feature `crafted`).
//!
//! An honest signer never puts torsion into its key or its `R`, so ed25519-dalek cannot make
//! the signatures that probe the edges of the validity rule (docs/PROTOCOL.md §1). This signer
//! works on the curve directly: key `A = [a]B + [j]T`, nonce point `R = [r]B + [i]T`, where `T`
//! is a point of order 8, and `S = r + k·a mod ℓ` with `k = SHA-512(R ‖ A ‖ M) mod ℓ`. Such a
//! signature satisfies the cofactored equation whatever `i` and `j` are. Never use it for
//! anything but tests: the secrets are derived from public seeds.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

use crate::identity::{AgentId, IdentityError, Signature, SIGNATURE_LEN};

/// The group order ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
pub const GROUP_ORDER_LE: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// A signer whose key may carry a torsion component.
#[derive(Clone)]
pub struct CraftedSigner {
    secret: Scalar,
    public: EdwardsPoint,
}

impl std::fmt::Debug for CraftedSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CraftedSigner({})", hex(&self.public_key()))
    }
}

/// `[multiple]T` for the order-8 point `T`: the torsion component `multiple` selects (mod 8).
pub fn torsion(multiple: u8) -> EdwardsPoint {
    let generator = EIGHT_TORSION.get(1).copied().unwrap_or_default();
    generator * Scalar::from(multiple % 8)
}

impl CraftedSigner {
    /// The signer with secret `a` derived from `seed` and key `[a]B + [key_torsion]T`.
    pub fn new(seed: &[u8; 32], key_torsion: u8) -> CraftedSigner {
        let secret = wide_scalar(&[b"plexus crafted key".as_slice(), seed]);
        CraftedSigner {
            secret,
            public: ED25519_BASEPOINT_POINT * secret + torsion(key_torsion),
        }
    }

    /// The 32-byte encoding of the public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public.compress().to_bytes()
    }

    /// The key as an agent id (valid unless the key is of small order, which a random secret
    /// makes impossible in practice).
    pub fn agent_id(&self) -> Result<AgentId, IdentityError> {
        AgentId::from_bytes(&self.public_key())
    }

    /// Signs `message` with the nonce point `[r]B + [r_torsion]T`, `r` derived from `nonce`.
    pub fn sign(&self, message: &[u8], nonce: &[u8], r_torsion: u8) -> Signature {
        let r = wide_scalar(&[b"plexus crafted nonce".as_slice(), nonce, message]);
        let point = ED25519_BASEPOINT_POINT * r + torsion(r_torsion);
        self.sign_with_nonce_point(message, point.compress().to_bytes(), r)
    }

    /// Signs `message` with `R` written as `r_bytes` (any encoding, canonical or not) whose
    /// point is `[r]B` plus torsion: `S = r + k·a`, `k` computed over `r_bytes` as written.
    pub fn sign_with_nonce_point(&self, message: &[u8], r_bytes: [u8; 32], r: Scalar) -> Signature {
        let k = challenge(&r_bytes, &self.public_key(), message);
        let s = r + k * self.secret;
        let mut signature = [0u8; SIGNATURE_LEN];
        let (r_half, s_half) = signature.split_at_mut(32);
        r_half.copy_from_slice(&r_bytes);
        s_half.copy_from_slice(s.as_bytes());
        Signature(signature)
    }
}

/// `k = SHA-512(R ‖ A ‖ M) mod ℓ`, little-endian.
pub fn challenge_bytes(r_bytes: &[u8; 32], key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    challenge(r_bytes, key, message).to_bytes()
}

fn challenge(r_bytes: &[u8; 32], key: &[u8; 32], message: &[u8]) -> Scalar {
    wide_scalar(&[r_bytes.as_slice(), key, message])
}

/// The same signature with `S + ℓ` in place of `S`: the same point equation, but `S ≥ ℓ`.
pub fn with_s_plus_group_order(signature: &Signature) -> Signature {
    let mut out = *signature;
    let mut carry = 0u16;
    for (byte, order) in out.0.iter_mut().skip(32).zip(GROUP_ORDER_LE) {
        let sum = u16::from(*byte) + u16::from(order) + carry;
        *byte = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    out
}

/// The encoding of the identity point with y = p + 1 instead of 1: not canonical.
pub fn non_canonical_identity() -> [u8; 32] {
    let mut bytes = [0xff; 32];
    bytes[0] = 0xee;
    bytes[31] = 0x7f;
    bytes
}

/// The smallest canonical y-coordinate encoding (y ≥ 2) that is not on the curve, so it does
/// not decompress.
pub fn off_curve_encoding() -> [u8; 32] {
    (2u8..)
        .map(|y| {
            let mut bytes = [0u8; 32];
            if let Some(low) = bytes.first_mut() {
                *low = y;
            }
            bytes
        })
        .find(|bytes| CompressedEdwardsY(*bytes).decompress().is_none())
        .unwrap_or_default()
}

fn wide_scalar(parts: &[&[u8]]) -> Scalar {
    let mut hash = Sha512::new();
    for part in parts {
        hash.update(part);
    }
    let mut digest = [0u8; 64];
    digest.copy_from_slice(&hash.finalize());
    Scalar::from_bytes_mod_order_wide(&digest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
