//! The swarm task's side of reconciliation: starting sessions, sending their rounds (held back
//! while the peer's fetch queue is too full for what an answer may add, and sent again when
//! the peer refused one as busy), passing answers to the node's reconciler, and counting what
//! it costs on the wire.

use libp2p::PeerId;
use plexus_protocol::reconcile::{MAX_LEAF_ITEMS, MAX_RANGES_PER_REQUEST};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{Outstanding, SwarmTask};
use crate::net::reconcile::{encoded_len, ReconcileEvent};
use crate::net::sync::{SyncRequest, SyncResponse, MAX_QUEUED_PER_PEER};

/// Feeds one round's answer can name to fetch: a round is sent only while the peer's fetch
/// queue has room for them all, so a backfill of many feeds is paced by its fetches instead
/// of overflowing the queue (ranges past it would wait for the next anti-entropy round).
const FEEDS_PER_ROUND: usize = MAX_RANGES_PER_REQUEST * MAX_LEAF_ITEMS;

/// Busy refusals of a session's rounds in a row that a peer may answer before the session
/// ends. A busy peer is loaded, not lost: a refused round waits and goes again (when one of
/// this node's requests to the peer completes, or at the next anti-entropy tick) instead of
/// ending the session, which would restart it from the whole key space. Sixteen retries ride
/// out a load that lasts several ticks; a peer that is never anything but busy costs one short
/// request per completion or tick, and its session ends after them.
const MAX_BUSY_ROUNDS: u32 = 16;

impl SwarmTask {
    /// Hands the reconciler's queue to the task: anti-entropy then reconciles feed heads with
    /// each peer instead of asking for all of them.
    pub fn with_reconciler(mut self, reconciler: mpsc::Sender<ReconcileEvent>) -> SwarmTask {
        self.reconciler = Some(reconciler);
        self
    }

    /// Starts anti-entropy with `peer`: a reconciliation session (or, without a reconciler, a
    /// `Heads` request).
    pub(super) fn start_sync(&mut self, peer: PeerId) {
        if self.namespaces.is_empty() {
            return;
        }
        let Some(reconciler) = &self.reconciler else {
            return self.request_heads(peer);
        };
        let start = ReconcileEvent::Start {
            peer,
            namespaces: self.namespaces.clone(),
        };
        if reconciler.try_send(start).is_err() {
            debug!(%peer, "reconciler busy; the next anti-entropy round starts this session");
        }
    }

    /// Sends a session's round, or holds it (one per peer) until the fetch queue has room.
    pub(super) fn send_reconcile(&mut self, peer: PeerId, request: SyncRequest, first: bool) {
        if !self.swarm.is_connected(&peer) {
            return self.end_reconcile(peer);
        }
        if first {
            self.reconcile_cost.sessions += 1;
        }
        let sync = self.peers.entry(peer).or_default();
        if sync.queue.len() + FEEDS_PER_ROUND > MAX_QUEUED_PER_PEER {
            sync.deferred_reconcile = Some(request);
            return;
        }
        self.reconcile_cost.messages += 1;
        self.reconcile_cost.bytes += encoded_len(&request);
        sync.in_flight += 1;
        let round = Box::new(request.clone());
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.outstanding
            .insert(id, (peer, Outstanding::Reconcile(round)));
    }

    /// Sends the round held for `peer`, if its fetch queue now has room.
    pub(super) fn send_deferred_reconcile(&mut self, peer: PeerId) {
        let Some(sync) = self.peers.get_mut(&peer) else {
            return;
        };
        if sync.queue.len() + FEEDS_PER_ROUND > MAX_QUEUED_PER_PEER {
            return;
        }
        if let Some(request) = sync.deferred_reconcile.take() {
            self.send_reconcile(peer, request, false);
        }
    }

    /// Passes the peer's answer to `round` to the reconciler; holds the round to send again if
    /// the peer refused it as busy (see [`MAX_BUSY_ROUNDS`]); ends the session on any other
    /// refusal or the wrong kind of response.
    pub(super) fn on_reconcile_answer(
        &mut self,
        peer: PeerId,
        response: SyncResponse,
        round: SyncRequest,
    ) {
        let size = encoded_len(&response);
        let answers = match response {
            SyncResponse::Reconciled { answers } => {
                self.reconcile_cost.messages += 1;
                self.reconcile_cost.bytes += size;
                if let Some(sync) = self.peers.get_mut(&peer) {
                    sync.busy_rounds = 0;
                }
                answers
            }
            SyncResponse::Refused { reason } if reason.starts_with("busy:") => {
                return self.hold_busy_round(peer, round, &reason);
            }
            SyncResponse::Refused { reason } => {
                debug!(%peer, %reason, "peer refused a reconciliation round");
                return self.end_reconcile(peer);
            }
            _ => {
                warn!(%peer, "peer answered a reconciliation round with the wrong response type");
                return self.end_reconcile(peer);
            }
        };
        self.pass_answers(peer, Some(answers));
    }

    /// Ends the peer's session (its round failed or was refused for good): the next
    /// anti-entropy tick starts a new one.
    pub(super) fn end_reconcile(&mut self, peer: PeerId) {
        self.pass_answers(peer, None);
    }

    /// Holds a round the peer refused as busy until one of this node's requests to the peer
    /// completes or the next anti-entropy tick, unless the peer has refused
    /// [`MAX_BUSY_ROUNDS`] in a row, which ends the session.
    fn hold_busy_round(&mut self, peer: PeerId, round: SyncRequest, reason: &str) {
        let Some(sync) = self.peers.get_mut(&peer) else {
            return self.end_reconcile(peer);
        };
        sync.busy_rounds += 1;
        if sync.busy_rounds > MAX_BUSY_ROUNDS {
            sync.busy_rounds = 0;
            debug!(%peer, %reason, "peer refused too many rounds in a row as busy; session ends");
            return self.end_reconcile(peer);
        }
        debug!(%peer, %reason, "peer busy; the reconciliation round waits to go again");
        // Held as a round deferred for a full fetch queue is: `finish_request` and the
        // anti-entropy tick send it.
        sync.deferred_reconcile = Some(round);
    }

    fn pass_answers(
        &mut self,
        peer: PeerId,
        answers: Option<Vec<crate::net::reconcile::WireAnswer>>,
    ) {
        if let Some(reconciler) = &self.reconciler {
            // Full: the session waits out its timeout and the next round starts again.
            let _ = reconciler.try_send(ReconcileEvent::Answers { peer, answers });
        }
    }

    /// Tells the reconciler a peer is gone, so its session does not wait for an answer.
    pub(super) fn forget_reconcile(&mut self, peer: PeerId) {
        if let Some(reconciler) = &self.reconciler {
            let _ = reconciler.try_send(ReconcileEvent::Gone { peer });
        }
    }
}
