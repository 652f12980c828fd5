//! The swarm task's side of reconciliation: starting sessions, sending their rounds (held back
//! while the peer's fetch queue is too full for what an answer may add), passing answers to
//! the node's reconciler, and counting what it costs on the wire.

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
            return self.on_reconcile_answer(peer, None);
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
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.outstanding.insert(id, (peer, Outstanding::Reconcile));
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

    /// Passes the peer's answer (or `None`: refused, failed, the wrong kind) to the reconciler.
    pub(super) fn on_reconcile_answer(&mut self, peer: PeerId, response: Option<SyncResponse>) {
        let size = response.as_ref().map_or(0, encoded_len);
        let answers = match response {
            Some(SyncResponse::Reconciled { answers }) => {
                self.reconcile_cost.messages += 1;
                self.reconcile_cost.bytes += size;
                Some(answers)
            }
            Some(SyncResponse::Refused { reason }) => {
                debug!(%peer, %reason, "peer refused a reconciliation round");
                None
            }
            Some(_) => {
                warn!(%peer, "peer answered a reconciliation round with the wrong response type");
                None
            }
            None => None,
        };
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
