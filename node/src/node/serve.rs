//! The sync server: answers peers' `/plexus/sync/1` requests (reconciliation rounds, heads
//! and ranges) on a thread
//! and a bounded queue of its own, so gossip never waits behind serving history, and a peer
//! flooding requests only fills its own share (the swarm task refuses past
//! [`crate::net::sync::MAX_SERVED_PER_PEER`] requests and the response byte budgets).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use libp2p::request_response::{InboundRequestId, ResponseChannel};
use libp2p::PeerId;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::net::sync::{
    self, SyncRequest, SyncResponse, MAX_NAMESPACES, MAX_RESPONSE_BYTES_IN_FLIGHT,
    RESPONSE_BYTE_BUDGET,
};
use crate::net::{Command, NetEvent, NetworkHandle};
use crate::store::{Log, StoreError};

pub(crate) struct SyncServer {
    pub log: Arc<Log>,
    pub net: NetworkHandle,
    pub requests: mpsc::Receiver<NetEvent>,
    /// Response bytes the swarm task holds for peers (see `SwarmTask::with_sync_server`).
    pub held_bytes: Arc<AtomicUsize>,
}

impl SyncServer {
    /// Answers requests until the swarm task stops.
    pub fn run(mut self) {
        while let Some(event) = self.requests.blocking_recv() {
            let NetEvent::SyncRequest {
                peer,
                request_id,
                request,
                channel,
            } = event
            else {
                continue;
            };
            // Over the budget: refuse before reading anything.
            if self.held_bytes.load(Ordering::Relaxed) + RESPONSE_BYTE_BUDGET
                > MAX_RESPONSE_BYTES_IN_FLIGHT
            {
                let response = SyncResponse::Refused {
                    reason: "busy: serving other peers; try again later".into(),
                };
                let _ = self.net.blocking_send(Command::Respond {
                    request_id,
                    channel,
                    response,
                });
                continue;
            }
            if let Err(error) = answer(&self.log, &self.net, peer, request_id, request, channel) {
                warn!(%error, "sync server: storage error");
            }
        }
        debug!("sync server stopped");
    }
}

/// Answers one sync request from the log.
pub(crate) fn answer(
    log: &Log,
    net: &NetworkHandle,
    peer: PeerId,
    request_id: InboundRequestId,
    request: SyncRequest,
    channel: ResponseChannel<SyncResponse>,
) -> Result<(), StoreError> {
    let response = match request {
        SyncRequest::Heads { namespaces } => serve_heads(log, &namespaces)?,
        SyncRequest::Reconcile { namespace, ranges } => {
            super::reconcile::serve(log, &namespace, &ranges)?
        }
        SyncRequest::Range {
            namespace,
            author,
            from_seq,
            to_seq,
        } => match sync::validate_range(&namespace, &author, from_seq, to_seq) {
            Ok(range) => SyncResponse::Entries {
                entries: log
                    .entries_range(
                        &range.feed,
                        range.from_seq,
                        range.to_seq,
                        RESPONSE_BYTE_BUDGET,
                    )?
                    .into_iter()
                    .map(serde_bytes::ByteBuf::from)
                    .collect(),
            },
            Err(error) => {
                debug!(%peer, %error, "refused a range request");
                SyncResponse::Refused {
                    reason: error.to_string(),
                }
            }
        },
        SyncRequest::Ranges { namespace, ranges } => answer_ranges(log, &namespace, &ranges)?,
    };
    let _ = net.blocking_send(Command::Respond {
        request_id,
        channel,
        response,
    });
    Ok(())
}

/// Answers a `Ranges` request (docs/PROTOCOL.md §8.2.2): each range's entries in request
/// order, within one response's byte budget (the ranges past it are left for the peer to ask
/// again), or a refusal naming the first bad range.
pub fn answer_ranges(
    log: &Log,
    namespace: &str,
    ranges: &[sync::WireRange],
) -> Result<SyncResponse, StoreError> {
    let ranges = match sync::validate_ranges(namespace, ranges) {
        Ok(ranges) => ranges,
        Err(error) => {
            return Ok(SyncResponse::Refused {
                reason: format!("bad ranges request: {error}"),
            })
        }
    };
    let lists = log.entries_ranges(
        ranges
            .iter()
            .map(|range| (&range.feed, range.from_seq, range.to_seq)),
        RESPONSE_BYTE_BUDGET,
    )?;
    Ok(SyncResponse::RangeEntries {
        ranges: lists
            .into_iter()
            .map(|list| list.into_iter().map(serde_bytes::ByteBuf::from).collect())
            .collect(),
    })
}

fn serve_heads(log: &Log, namespaces: &[String]) -> Result<SyncResponse, StoreError> {
    if namespaces.len() > MAX_NAMESPACES {
        return Ok(SyncResponse::Refused {
            reason: format!(
                "{} namespaces, over the limit of {MAX_NAMESPACES}",
                namespaces.len()
            ),
        });
    }
    let heads: Vec<_> = log
        .heads()?
        .into_iter()
        .filter(|(feed, _)| namespaces.contains(&feed.namespace))
        .collect();
    Ok(SyncResponse::Heads {
        heads: sync::encode_heads(&heads),
    })
}
