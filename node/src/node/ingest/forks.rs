//! Fork proofs in the ingest pipeline: a proof gossiped by a peer (checked, kept only for a
//! feed this node holds), and a fork found here (the author quarantined, the proof spread).

use std::time::Instant;

use libp2p::gossipsub::MessageAcceptance;
use libp2p::PeerId;
use plexus_protocol::ForkProof;
use tokio::sync::oneshot;
use tracing::warn;

use super::{lock_ingress, Pipeline};
use crate::clock::now_ms;
use crate::net::topics;
use crate::net::Command;
use crate::node::limits::Admission;
use crate::store::{RejectReason, StoreError};

/// Largest fork proof accepted from gossip: two body-less envelopes and framing.
const MAX_FORK_PROOF_LEN: usize = 2 * 1024;

impl Pipeline {
    /// A fork proof from gossip: within the peer's allowance, checked, and kept (quarantining
    /// its author and forwarding it) only when it is about a feed this node holds
    /// ([`Log::store_fork_proof`]); anything else is ignored without penalty, since an honest
    /// peer holding that feed forwards it rightly.
    pub(super) fn handle_fork_proof(
        &self,
        peer: PeerId,
        namespace: &str,
        data: &[u8],
        source: &str,
    ) -> Result<MessageAcceptance, StoreError> {
        if lock_ingress(&self.ingress).admit_fork_proof(peer, Instant::now()) != Admission::Pass {
            self.log
                .count_rejection(RejectReason::Throttled, "fork-proof");
            return Ok(MessageAcceptance::Ignore);
        }
        let now = now_ms();
        if data.len() > MAX_FORK_PROOF_LEN {
            let detail = format!(
                "fork proof of {} bytes, over {MAX_FORK_PROOF_LEN}",
                data.len()
            );
            self.log
                .record_rejection(data, RejectReason::Malformed, detail, source, now)?;
            return Ok(MessageAcceptance::Reject);
        }
        let proof = match ForkProof::decode(data) {
            Ok(proof) if proof.feed().namespace == namespace => proof,
            Ok(_) => {
                let detail = "fork proof about another namespace".to_owned();
                self.log
                    .record_rejection(data, RejectReason::WrongTopic, detail, source, now)?;
                return Ok(MessageAcceptance::Reject);
            }
            Err(error) => {
                self.log.record_rejection(
                    data,
                    RejectReason::Malformed,
                    format!("invalid fork proof: {error}"),
                    source,
                    now,
                )?;
                return Ok(MessageAcceptance::Reject);
            }
        };
        if self.log.store_fork_proof(&proof)? {
            self.quarantine(&proof);
            self.shared.changed();
            Ok(MessageAcceptance::Accept)
        } else {
            Ok(MessageAcceptance::Ignore)
        }
    }

    /// A fork found here: quarantine the author and tell every honest node.
    pub(super) fn on_fork(&self, proof: &ForkProof) {
        warn!(author = %proof.feed().author, seq = proof.seq(), "fork detected");
        self.quarantine(proof);
        self.shared.changed();
        let (reply, _) = oneshot::channel();
        let _ = self.net.blocking_send(Command::Publish {
            topic: topics::fork_topic(&proof.feed().namespace),
            data: proof.encode(),
            reply,
        });
    }

    fn quarantine(&self, proof: &ForkProof) {
        if self.shared.quarantine_forkers {
            self.shared.quarantine(proof.feed());
        }
    }
}
