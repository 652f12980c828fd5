//! Ed25519 verification under one rule for single and batch checks, with a batch fallback
//! that names the bad items.
//!
//! The rule (docs/PROTOCOL.md §1): a signature `(R, S)` on `M` is valid for a valid key `A` iff
//! `R` is a canonical encoding of a curve point (torsion allowed), `S < ℓ`, and
//! `[8][S]B = [8]R + [8][k]A` with `k = SHA-512(R ‖ A ‖ M) mod ℓ`: the cofactored equation, as
//! in ZIP-215 but with canonical encodings. ed25519-dalek's `verify_strict` and `verify_batch`
//! use the cofactorless equation and disagree with each other on torsion in `R` or `A`, so both
//! equations are computed here with curve25519-dalek; only signing stays with ed25519-dalek.
//!
//! The batch check is a random linear combination of the cofactored equations. Multiplying the
//! sum by the cofactor removes every torsion component, so a batch of valid signatures always
//! passes, and a batch holding an invalid one passes with probability about 2^-128: single and
//! batch verdicts agree. Terms of the same author are merged into one, which keeps the
//! multiscalar multiplication small for a feed's entries.
//!
//! [`verify_batch_parallel`] splits the work into chunks of [`BATCH_CHUNK`] signatures and
//! verifies them on all cores with rayon.

use std::collections::HashMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand_core::{OsRng, RngCore};
use rayon::prelude::*;
use sha2::{Digest, Sha512};

use crate::identity::{is_canonical_point_encoding, AgentId, Signature};

/// Signatures per batch equation in [`verify_batch_parallel`]. Large enough that the batch
/// equation's fixed costs vanish (the multiscalar multiplication gains little past a few
/// hundred), small enough that a failed chunk's one-by-one fallback stays cheap.
pub const BATCH_CHUNK: usize = 256;

/// Bytes of each random coefficient of the batch equation (128 bits: a forged batch passes
/// with probability about 2^-128).
const COEFFICIENT_BYTES: usize = 16;

/// One signature to check: who signed, what, and the signature.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub author: &'a AgentId,
    pub message: &'a [u8],
    pub signature: &'a Signature,
}

/// The items of a batch that failed verification, by index into the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} of the signatures do not verify (first at index {})", bad.len(), bad.first().copied().unwrap_or_default())]
pub struct VerifyError {
    /// Indexes of the bad items, ascending.
    pub bad: Vec<usize>,
}

/// A signature whose encodings passed the rule's checks, ready for an equation.
struct Parsed {
    r: EdwardsPoint,
    s: Scalar,
    /// `k = SHA-512(R ‖ A ‖ M) mod ℓ`.
    k: Scalar,
}

/// Checks the encodings of `signature` and computes its challenge; `None` when `R` is not a
/// canonical point encoding, does not decompress, or `S ≥ ℓ`.
fn parse(author: &AgentId, message: &[u8], signature: &Signature) -> Option<Parsed> {
    let (r_bytes, s_bytes) = signature.0.split_first_chunk::<32>()?;
    let s_bytes = <[u8; 32]>::try_from(s_bytes).ok()?;
    // curve25519-dalek reduces a y ≥ p silently; the rule refuses it, so one signature has one
    // encoding.
    if !is_canonical_point_encoding(r_bytes) {
        return None;
    }
    let r = CompressedEdwardsY(*r_bytes).decompress()?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let mut hash = Sha512::new();
    hash.update(r_bytes);
    hash.update(author.as_bytes());
    hash.update(message);
    let mut digest = [0u8; 64];
    digest.copy_from_slice(&hash.finalize());
    let k = Scalar::from_bytes_mod_order_wide(&digest);
    Some(Parsed { r, s, k })
}

/// The cofactored equation of one parsed signature: `[8]([S]B − [k]A − R)` is the identity.
fn single_equation_holds(author: &AgentId, parsed: &Parsed) -> bool {
    let s_b_minus_k_a =
        EdwardsPoint::vartime_double_scalar_mul_basepoint(&parsed.k, &-author.point(), &parsed.s);
    (s_b_minus_k_a - parsed.r).mul_by_cofactor().is_identity()
}

/// Verifies one signature under the rule (see the module documentation).
pub(crate) fn verify_one(author: &AgentId, message: &[u8], signature: &Signature) -> bool {
    parse(author, message, signature).is_some_and(|parsed| single_equation_holds(author, &parsed))
}

/// The random linear combination of the cofactored equations of `parsed` (indexes into
/// `items`): `[8]([−Σ zᵢSᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢkᵢ]Aᵢ)` is the identity. `false` also when no
/// randomness could be had, so the caller falls back to single checks, which decide alone.
fn batch_equation_holds(items: &[BatchItem<'_>], parsed: &[(usize, Parsed)]) -> bool {
    let mut random = vec![0u8; parsed.len() * COEFFICIENT_BYTES];
    if OsRng.try_fill_bytes(&mut random).is_err() {
        return false;
    }
    let mut basepoint_scalar = Scalar::ZERO;
    let mut scalars: Vec<Scalar> = Vec::with_capacity(1 + 2 * parsed.len());
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(1 + 2 * parsed.len());
    scalars.push(Scalar::ZERO);
    points.push(ED25519_BASEPOINT_POINT);
    // One term per distinct author: a chunk of one feed's entries needs one `A` point.
    let mut author_terms: HashMap<&[u8; 32], (Scalar, EdwardsPoint)> = HashMap::new();
    for ((index, signature), coefficient) in parsed.iter().zip(random.chunks(COEFFICIENT_BYTES)) {
        let Some(item) = items.get(*index) else {
            return false;
        };
        let mut wide = [0u8; 32];
        if let Some(low) = wide.get_mut(..COEFFICIENT_BYTES) {
            low.copy_from_slice(coefficient);
        }
        let z = Scalar::from_bytes_mod_order(wide);
        basepoint_scalar -= z * signature.s;
        scalars.push(z);
        points.push(signature.r);
        let term = author_terms
            .entry(item.author.as_bytes())
            .or_insert_with(|| (Scalar::ZERO, item.author.point()));
        term.0 += z * signature.k;
    }
    if let Some(first) = scalars.first_mut() {
        *first = basepoint_scalar;
    }
    for (scalar, point) in author_terms.into_values() {
        scalars.push(scalar);
        points.push(point);
    }
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
        .mul_by_cofactor()
        .is_identity()
}

/// Verifies `items` as one batch; on failure, names every bad item.
///
/// The verdict for each item is exactly that of single verification ([`AgentId::verify`]):
/// items with a bad encoding are refused before the batch equation, and when the equation
/// fails every remaining item is checked on its own.
pub fn verify_batch_with_fallback(items: &[BatchItem<'_>]) -> Result<(), VerifyError> {
    let mut bad = Vec::new();
    let mut parsed = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match parse(item.author, item.message, item.signature) {
            Some(signature) => parsed.push((index, signature)),
            None => bad.push(index),
        }
    }
    if !parsed.is_empty() && !batch_equation_holds(items, &parsed) {
        bad.extend(
            parsed
                .iter()
                .filter(|(index, signature)| {
                    items
                        .get(*index)
                        .is_none_or(|item| !single_equation_holds(item.author, signature))
                })
                .map(|(index, _)| *index),
        );
        bad.sort_unstable();
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(VerifyError { bad })
    }
}

/// Verifies `items` in chunks on all cores; on failure, names every bad item.
pub fn verify_batch_parallel(items: &[BatchItem<'_>]) -> Result<(), VerifyError> {
    let mut bad: Vec<usize> = items
        .par_chunks(BATCH_CHUNK)
        .enumerate()
        .flat_map_iter(|(chunk_index, chunk)| {
            let offset = chunk_index * BATCH_CHUNK;
            verify_batch_with_fallback(chunk)
                .err()
                .map(|error| error.bad)
                .unwrap_or_default()
                .into_iter()
                .map(move |index| index + offset)
        })
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    bad.sort_unstable();
    Err(VerifyError { bad })
}

#[cfg(test)]
mod tests;
