//! Serving peers' sync requests from the swarm task: each request goes to the node's sync
//! server (a queue of its own) within the peer's share and the node's byte budget for answers
//! held, and its response is sent and accounted here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use libp2p::request_response::{InboundRequestId, ResponseChannel};
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::SwarmTask;
use crate::net::sync::{
    MAX_RESPONSE_BYTES_IN_FLIGHT, MAX_RESPONSE_BYTES_PER_PEER, MAX_SERVED_PER_PEER,
};
use crate::net::{NetEvent, SyncRequest, SyncResponse};

/// What one peer's sync requests hold on this node: requests being served (queued for the
/// server or answered and not yet read) and the bytes of their responses.
#[derive(Debug, Default, Clone, Copy)]
struct Served {
    requests: usize,
    bytes: usize,
}

/// Where peers' sync requests go and what serving them may hold (see [`SwarmTask::serve`]).
#[derive(Debug, Default)]
pub(super) struct Serving {
    /// The node's sync server; without one, requests go to the ingest worker's queue.
    pub(super) server: Option<mpsc::Sender<NetEvent>>,
    /// Requests being served: their peer and, once answered, their response's size.
    pub(super) requests: HashMap<InboundRequestId, (PeerId, usize)>,
    per_peer: HashMap<PeerId, Served>,
    /// Bytes of responses answered and not yet read, over all peers; shared with the server,
    /// which refuses at once, without reading the log, while it is over the budget.
    pub(super) bytes: Arc<AtomicUsize>,
    pub(super) refused: u64,
}

impl SwarmTask {
    /// Hands a peer's sync request to the server within the peer's share
    /// ([`MAX_SERVED_PER_PEER`]) and the server's queue; past either it is refused as busy at
    /// once, which costs this node nothing but a short answer.
    pub(super) fn serve(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let served = self
            .serving
            .per_peer
            .get(&peer)
            .copied()
            .unwrap_or_default();
        if served.requests >= MAX_SERVED_PER_PEER {
            let reason = format!(
                "busy: {MAX_SERVED_PER_PEER} of your sync requests are being served; wait for \
                 their answers"
            );
            return self.refuse(channel, reason);
        }
        let event = NetEvent::SyncRequest {
            peer,
            request_id,
            request,
            channel,
        };
        let queue = self.serving.server.as_ref().unwrap_or(&self.events);
        match queue.try_send(event) {
            Ok(()) => {
                self.serving.per_peer.entry(peer).or_default().requests += 1;
                self.serving.requests.insert(request_id, (peer, 0));
            }
            Err(
                mpsc::error::TrySendError::Full(NetEvent::SyncRequest { channel, .. })
                | mpsc::error::TrySendError::Closed(NetEvent::SyncRequest { channel, .. }),
            ) => {
                let reason = "busy: too many sync requests queued; try again later".to_owned();
                self.refuse(channel, reason);
            }
            Err(_) => {}
        }
    }

    /// Sends a built response, unless it would take the peer or the node past its byte
    /// budget ([`MAX_RESPONSE_BYTES_PER_PEER`], [`MAX_RESPONSE_BYTES_IN_FLIGHT`]): a peer
    /// that reads slowly then gets a short refusal instead.
    pub(super) fn respond(
        &mut self,
        request_id: InboundRequestId,
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    ) {
        let Some((peer, _)) = self.serving.requests.get(&request_id).copied() else {
            // Its connection closed meanwhile.
            return;
        };
        let size = response.size();
        let peer_bytes = self
            .serving
            .per_peer
            .get(&peer)
            .map_or(0, |served| served.bytes);
        let held = self.serving.bytes.load(Ordering::Relaxed);
        if peer_bytes + size > MAX_RESPONSE_BYTES_PER_PEER
            || held + size > MAX_RESPONSE_BYTES_IN_FLIGHT
        {
            self.release_served(request_id);
            let reason = format!(
                "busy: {} bytes of answers wait for you to read them; try again later",
                peer_bytes
            );
            return self.refuse(channel, reason);
        }
        if self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response)
            .is_err()
        {
            return self.release_served(request_id);
        }
        if let Some((_, bytes)) = self.serving.requests.get_mut(&request_id) {
            *bytes = size;
        }
        self.serving.per_peer.entry(peer).or_default().bytes += size;
        self.serving.bytes.fetch_add(size, Ordering::Relaxed);
    }

    pub(super) fn refuse(&mut self, channel: ResponseChannel<SyncResponse>, reason: String) {
        self.serving.refused += 1;
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, SyncResponse::Refused { reason });
    }

    /// Forgets a request once its response was read (or failed), with what it held.
    pub(super) fn release_served(&mut self, request_id: InboundRequestId) {
        let Some((peer, size)) = self.serving.requests.remove(&request_id) else {
            return;
        };
        self.serving.bytes.fetch_sub(size, Ordering::Relaxed);
        if let Some(served) = self.serving.per_peer.get_mut(&peer) {
            served.requests = served.requests.saturating_sub(1);
            served.bytes = served.bytes.saturating_sub(size);
            if served.requests == 0 {
                self.serving.per_peer.remove(&peer);
            }
        }
    }
}
