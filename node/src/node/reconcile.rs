//! Reconciliation of feed heads with peers, both sides: [`serve`] answers a peer's round (on
//! the sync server's thread), and the [`Reconciler`] runs this node's sessions on a thread of
//! its own, one session per peer, one namespace after another, handing every feed the peer
//! lists in a differing range to [`sync::plan`] and its ranges to the swarm task.
//!
//! A session is bounded by [`plexus_protocol::reconcile`] (pending ranges, rounds); the
//! sessions by the peers connected (one each, dropped when the peer goes or after
//! [`SESSION_TIMEOUT_SECS`] without an answer).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use plexus_crypto::{AgentId, Hash256};
use plexus_protocol::reconcile::{self, Leaf, Session};
use plexus_protocol::{FeedHead, FeedKey};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::net::reconcile::{
    decode_answers, decode_request, encode_answers, encode_request, ReconcileEvent, WireRangeQuery,
    SESSION_TIMEOUT_SECS,
};
use crate::net::sync::{self, SyncResponse};
use crate::net::{Command, NetworkHandle};
use crate::store::{Log, NamespaceHeads, StoreError};

/// Answers one `Reconcile` round from the log, or refuses it with what is wrong.
pub(crate) fn serve(
    log: &Log,
    namespace: &str,
    ranges: &[WireRangeQuery],
) -> Result<SyncResponse, StoreError> {
    let queries = match decode_request(namespace, ranges) {
        Ok(queries) => queries,
        Err(error) => {
            return Ok(SyncResponse::Refused {
                reason: format!("bad reconcile request: {error}"),
            })
        }
    };
    let mut heads = NamespaceHeads { log, namespace };
    let answers = queries
        .iter()
        .map(|query| reconcile::answer(&mut heads, query))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SyncResponse::Reconciled {
        answers: encode_answers(&answers),
    })
}

/// This node's sessions with its peers.
pub(crate) struct Reconciler {
    pub log: Arc<Log>,
    pub net: NetworkHandle,
    pub events: mpsc::Receiver<ReconcileEvent>,
    pub sessions: HashMap<PeerId, PeerSession>,
}

/// One peer's session: the namespace being reconciled and those still to do.
pub(crate) struct PeerSession {
    namespace: String,
    session: Session,
    remaining: VecDeque<String>,
    /// When the last round was sent (a session silent for [`SESSION_TIMEOUT_SECS`] is stale).
    last_sent: Instant,
}

impl Reconciler {
    /// Runs sessions until the swarm task stops.
    pub fn run(mut self) {
        while let Some(event) = self.events.blocking_recv() {
            let result = match event {
                ReconcileEvent::Start { peer, namespaces } => self.start(peer, namespaces),
                ReconcileEvent::Answers { peer, answers } => self.on_answers(peer, answers),
                ReconcileEvent::Gone { peer } => {
                    self.sessions.remove(&peer);
                    Ok(())
                }
            };
            if let Err(error) = result {
                warn!(%error, "reconciler: storage error");
            }
        }
        debug!("reconciler stopped");
    }

    fn start(&mut self, peer: PeerId, namespaces: Vec<String>) -> Result<(), StoreError> {
        let timeout = Duration::from_secs(SESSION_TIMEOUT_SECS);
        self.sessions
            .retain(|_, session| session.last_sent.elapsed() < timeout);
        if self.sessions.contains_key(&peer) {
            return Ok(());
        }
        let mut remaining: VecDeque<String> = namespaces.into();
        let Some(namespace) = remaining.pop_front() else {
            return Ok(());
        };
        self.sessions.insert(
            peer,
            PeerSession {
                namespace,
                session: Session::new(),
                remaining,
                last_sent: Instant::now(),
            },
        );
        self.advance(peer, true)
    }

    fn on_answers(
        &mut self,
        peer: PeerId,
        answers: Option<Vec<crate::net::reconcile::WireAnswer>>,
    ) -> Result<(), StoreError> {
        let Some(answers) = answers else {
            // Refused or failed: the next anti-entropy round starts again.
            self.sessions.remove(&peer);
            return Ok(());
        };
        let Some(state) = self.sessions.get_mut(&peer) else {
            return Ok(());
        };
        let answers = match decode_answers(answers) {
            Ok(answers) => answers,
            Err(error) => {
                warn!(%peer, %error, "peer sent a malformed reconciliation answer");
                self.sessions.remove(&peer);
                return Ok(());
            }
        };
        let mut heads = NamespaceHeads {
            log: &self.log,
            namespace: &state.namespace,
        };
        let outcome = match state.session.handle_answers(answers, &mut heads) {
            Ok(outcome) => outcome,
            Err(reconcile::ReconcileError::Store(error)) => {
                self.sessions.remove(&peer);
                return Err(error);
            }
            Err(error) => {
                warn!(%peer, %error, "reconciliation stopped");
                self.sessions.remove(&peer);
                return Ok(());
            }
        };
        let namespace = state.namespace.clone();
        self.fetch_differing(peer, &namespace, &outcome.leaves)?;
        self.advance(peer, false)
    }

    /// Sends the session's next round, moving on to the next namespace when one is settled
    /// and ending the session after the last.
    fn advance(&mut self, peer: PeerId, mut first: bool) -> Result<(), StoreError> {
        loop {
            let Some(state) = self.sessions.get_mut(&peer) else {
                return Ok(());
            };
            let mut heads = NamespaceHeads {
                log: &self.log,
                namespace: &state.namespace,
            };
            match state.session.next_request(&mut heads) {
                Ok(Some(queries)) => {
                    let request = encode_request(&state.namespace, &queries);
                    state.last_sent = Instant::now();
                    let _ = self.net.blocking_send(Command::Reconcile {
                        peer,
                        request,
                        first,
                    });
                    return Ok(());
                }
                Ok(None) => {}
                Err(reconcile::ReconcileError::Store(error)) => {
                    self.sessions.remove(&peer);
                    return Err(error);
                }
                Err(error) => {
                    warn!(%peer, %error, "reconciliation stopped");
                }
            }
            // This namespace is settled (or stopped): the next one, with a fresh session.
            match state.remaining.pop_front() {
                Some(namespace) => {
                    state.namespace = namespace;
                    state.session = Session::new();
                    first = false;
                }
                None => {
                    self.sessions.remove(&peer);
                    return Ok(());
                }
            }
        }
    }

    /// Plans fetches for the feeds the peer listed whose head is ahead of ours or differs.
    fn fetch_differing(
        &self,
        peer: PeerId,
        namespace: &str,
        leaves: &[Leaf],
    ) -> Result<(), StoreError> {
        fetch_what_differs(&self.log, &self.net, peer, &feed_heads(namespace, leaves))
    }
}

/// Asks `peer` for what its feed heads `theirs` hold beyond ours (see [`sync::plan`]).
pub(crate) fn fetch_what_differs(
    log: &Log,
    net: &NetworkHandle,
    peer: PeerId,
    theirs: &[(FeedKey, FeedHead)],
) -> Result<(), StoreError> {
    let mut lookup_error = None;
    let ranges = sync::plan(
        theirs,
        |feed| {
            log.head(feed).unwrap_or_else(|error| {
                lookup_error = Some(error);
                None
            })
        },
        |feed, seq| {
            log.entry_at(feed, seq)
                .ok()
                .flatten()
                .map(|entry| entry.id())
        },
    );
    if let Some(error) = lookup_error {
        return Err(error);
    }
    if !ranges.is_empty() {
        let _ = net.blocking_send(Command::FetchMany { peer, ranges });
    }
    Ok(())
}

/// The listed items as feed heads; an author key that is not a valid public key, or a seq of
/// zero, names no feed that could be fetched and is skipped.
fn feed_heads(namespace: &str, leaves: &[Leaf]) -> Vec<(FeedKey, FeedHead)> {
    leaves
        .iter()
        .flat_map(|leaf| &leaf.items)
        .filter(|item| item.seq > 0)
        .filter_map(|item| {
            let author = AgentId::from_slice(&item.key).ok()?;
            Some((
                FeedKey {
                    namespace: namespace.to_owned(),
                    author,
                },
                FeedHead {
                    seq: item.seq,
                    id: Hash256(item.id),
                },
            ))
        })
        .collect()
}
