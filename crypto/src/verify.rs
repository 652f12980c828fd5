//! Batch signature verification with a fallback that names the bad items.
//!
//! `ed25519_dalek::verify_batch` checks many signatures at roughly twice the speed of one-by-one
//! verification, but only answers "all good" or "something is bad". On failure we verify each
//! item of the failed batch on its own with `verify_strict`, so the caller learns exactly which
//! items are bad. Weak keys cannot reach this code: [`AgentId`] rejects them at construction,
//! which is the precheck `verify_batch` itself does not do.
//!
//! [`verify_batch_parallel`] splits the work into chunks of [`BATCH_CHUNK`] signatures and
//! verifies them on all cores with rayon.

use rayon::prelude::*;

use crate::identity::{AgentId, Signature};

/// Signatures per `verify_batch` call in [`verify_batch_parallel`]. Large enough that the batch
/// equation's fixed costs vanish (the multiscalar multiplication gains little past a few
/// hundred), small enough that a failed chunk's one-by-one fallback stays cheap.
pub const BATCH_CHUNK: usize = 256;

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

/// Verifies `items` as one batch; on failure, names every bad item.
///
/// Signatures whose `R` component `verify_strict` would refuse outright (a non-canonical
/// encoding or a small-order point) are refused here too, before the batch equation, which
/// does not look at them: batch and single verification then agree on every signature an
/// honest signer can produce.
pub fn verify_batch_with_fallback(items: &[BatchItem<'_>]) -> Result<(), VerifyError> {
    if items.is_empty() {
        return Ok(());
    }
    let refused: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| !strict_r_acceptable(item.signature))
        .map(|(index, _)| index)
        .collect();
    if !refused.is_empty() {
        let rest: Vec<(usize, BatchItem<'_>)> = items
            .iter()
            .copied()
            .enumerate()
            .filter(|(index, _)| !refused.contains(index))
            .collect();
        let rest_items: Vec<BatchItem<'_>> = rest.iter().map(|(_, item)| *item).collect();
        let mut bad = refused;
        if let Err(error) = verify_batch_with_fallback(&rest_items) {
            bad.extend(
                error
                    .bad
                    .iter()
                    .filter_map(|index| rest.get(*index).map(|(i, _)| *i)),
            );
        }
        bad.sort_unstable();
        return Err(VerifyError { bad });
    }
    let messages: Vec<&[u8]> = items.iter().map(|item| item.message).collect();
    let signatures: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|item| ed25519_dalek::Signature::from_bytes(&item.signature.0))
        .collect();
    let keys: Vec<ed25519_dalek::VerifyingKey> = items
        .iter()
        .map(|item| *item.author.verifying_key())
        .collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return Ok(());
    }
    let bad: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| !item.author.verify_strict(item.message, item.signature))
        .map(|(index, _)| index)
        .collect();
    if bad.is_empty() {
        // The batch equation failed but every signature verifies strictly: not possible for
        // honest inputs, so report the whole batch rather than accept it silently.
        return Err(VerifyError {
            bad: (0..items.len()).collect(),
        });
    }
    Err(VerifyError { bad })
}

/// Whether the `R` half of a signature passes the checks `verify_strict` makes on it: a
/// canonical encoding (y below the field prime) that is not one of the eight small-order points.
fn strict_r_acceptable(signature: &Signature) -> bool {
    let Some(r) = signature.0.first_chunk::<32>() else {
        return false;
    };
    if !crate::identity::is_canonical_point_encoding(r) {
        return false;
    }
    let mut masked = *r;
    if let Some(last) = masked.last_mut() {
        *last &= 0x7f;
    }
    !small_order_encodings().contains(&masked)
}

/// The compressed encodings (sign bit cleared) of the eight points of small order.
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static ENCODINGS: std::sync::OnceLock<[[u8; 32]; 8]> = std::sync::OnceLock::new();
    ENCODINGS.get_or_init(|| {
        curve25519_dalek::constants::EIGHT_TORSION.map(|point| {
            let mut bytes = point.compress().to_bytes();
            if let Some(last) = bytes.last_mut() {
                *last &= 0x7f;
            }
            bytes
        })
    })
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
mod tests {
    use super::*;
    use crate::identity::Keypair;

    fn signed(count: usize) -> (Vec<Keypair>, Vec<Vec<u8>>, Vec<Signature>) {
        let keys: Vec<Keypair> = (0..count).map(|_| Keypair::generate()).collect();
        let messages: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("message {i}").into_bytes())
            .collect();
        let signatures = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
        (keys, messages, signatures)
    }

    fn items<'a>(
        ids: &'a [AgentId],
        messages: &'a [Vec<u8>],
        signatures: &'a [Signature],
    ) -> Vec<BatchItem<'a>> {
        ids.iter()
            .zip(messages)
            .zip(signatures)
            .map(|((author, message), signature)| BatchItem {
                author,
                message,
                signature,
            })
            .collect()
    }

    #[test]
    fn a_good_batch_verifies() {
        let (keys, messages, signatures) = signed(600);
        let ids: Vec<AgentId> = keys.iter().map(Keypair::agent_id).collect();
        let batch = items(&ids, &messages, &signatures);
        assert_eq!(verify_batch_with_fallback(&batch), Ok(()));
        assert_eq!(verify_batch_parallel(&batch), Ok(()));
    }

    #[test]
    fn the_fallback_names_exactly_the_bad_items() {
        let (keys, mut messages, mut signatures) = signed(600);
        let ids: Vec<AgentId> = keys.iter().map(Keypair::agent_id).collect();
        messages[3].push(b'!');
        signatures[300].0[10] ^= 1;
        signatures[599] = keys[0].sign(&messages[599]);
        let batch = items(&ids, &messages, &signatures);
        assert_eq!(
            verify_batch_parallel(&batch),
            Err(VerifyError {
                bad: vec![3, 300, 599]
            })
        );
        let err = verify_batch_with_fallback(&batch).unwrap_err();
        assert_eq!(err.bad, vec![3, 300, 599]);
    }

    #[test]
    fn small_order_and_non_canonical_r_are_refused_like_verify_strict_does() {
        let keypair = Keypair::generate();
        let id = keypair.agent_id();
        // R = identity point (y = 1), s = 0.
        let mut signature = Signature([0u8; 64]);
        signature.0[0] = 1;
        assert!(!id.verify_strict(b"m", &signature));
        assert!(!strict_r_acceptable(&signature));
        let good = keypair.sign(b"m");
        let items = [
            BatchItem {
                author: &id,
                message: b"m",
                signature: &good,
            },
            BatchItem {
                author: &id,
                message: b"m",
                signature: &signature,
            },
        ];
        assert_eq!(
            verify_batch_with_fallback(&items),
            Err(VerifyError { bad: vec![1] })
        );
        // Non-canonical R (y = p) is refused too.
        let mut non_canonical = Signature([0xff; 64]);
        non_canonical.0[0] = 0xed;
        non_canonical.0[31] = 0x7f;
        assert!(!strict_r_acceptable(&non_canonical));
        assert!(strict_r_acceptable(&good));
    }

    #[test]
    fn empty_batches_verify() {
        assert_eq!(verify_batch_parallel(&[]), Ok(()));
    }
}
