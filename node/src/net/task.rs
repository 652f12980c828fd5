//! The task that owns the libp2p `Swarm`: one `select!` loop, one `handle_*` call per arm.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, mdns, Multiaddr, PeerId, Swarm};
use plexus_protocol::FeedKey;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::behaviour::{topic_score_params, Behaviour, BehaviourEvent};
use super::latency::LatencyHistogram;
use super::peer_manager::{PeerManager, PEER_HEARTBEAT};
use super::reconcile::{ReconcileCost, ReconcileEvent};
use super::sync::{
    self, FetchCost, FetchedRange, SyncRequest, SyncResponse, MAX_IN_FLIGHT_PER_PEER,
    MAX_QUEUED_PER_PEER,
};
use super::{
    agent_id_of, topics, Command, NetConfig, NetError, NetEvent, NetStatus, PeerStatus,
    RangeRequest, MAX_FOLLOWED_NAMESPACES,
};

/// What an outstanding sync request was for.
#[derive(Debug)]
enum Outstanding {
    Heads,
    Range(Box<RangeRequest>),
    /// Ranges of several feeds asked in one `Ranges` request.
    Ranges(Vec<RangeRequest>),
    /// A round of a reconciliation session, kept to be sent again if the peer is busy.
    Reconcile(Box<SyncRequest>),
}

/// Per-peer sync bookkeeping.
#[derive(Debug, Default)]
struct PeerSync {
    in_flight: usize,
    queue: VecDeque<RangeRequest>,
    /// The ranges queued or in flight to the peer, per feed, as `from_seq -> to_seq`. They
    /// never overlap (an overlapping one is dropped), so one ordered lookup tells whether a
    /// new range overlaps any: O(log n) per fetch instead of a walk of the queue.
    fetching: HashMap<FeedKey, BTreeMap<u64, u64>>,
    /// A reconciliation round held back while the fetch queue is too full for what its answer
    /// may add, or after the peer refused it as busy (see `reconciling.rs`).
    deferred_reconcile: Option<SyncRequest>,
    /// The peer's busy refusals of reconciliation rounds since it last answered one.
    busy_rounds: u32,
    /// The peer failed a `Ranges` request (an older node cannot decode one): for the rest of
    /// the connection its ranges are asked one `Range` request each (see `fetching.rs`).
    single_ranges: bool,
}

impl PeerSync {
    fn overlaps(&self, range: &RangeRequest) -> bool {
        self.fetching.get(&range.feed).is_some_and(|ranges| {
            ranges
                .range(..=range.to_seq)
                .next_back()
                .is_some_and(|(_, to_seq)| *to_seq >= range.from_seq)
        })
    }

    fn forget(&mut self, range: &RangeRequest) {
        if let Some(ranges) = self.fetching.get_mut(&range.feed) {
            ranges.remove(&range.from_seq);
            if ranges.is_empty() {
                self.fetching.remove(&range.feed);
            }
        }
    }
}

/// The swarm task's state.
pub struct SwarmTask {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    config: NetConfig,
    namespaces: Vec<String>,
    outstanding: HashMap<OutboundRequestId, (PeerId, Outstanding)>,
    peers: HashMap<PeerId, PeerSync>,
    listen_addrs: Vec<Multiaddr>,
    gossip_received: u64,
    gossip_dropped: u64,
    forward_latency: LatencyHistogram,
    /// Connected peers whose first connection we dialled (as many as connected peers).
    dialed: HashSet<PeerId>,
    entries_fetched: u64,
    /// Peers blocked for misbehaving, with when to let them back (checked on the anti-entropy
    /// timer), at most [`MAX_TEMPORARY_BLOCKS`].
    temporary_blocks: HashMap<PeerId, Instant>,
    /// Keeps the degree between the watermarks and rejoins when alone.
    peer_manager: PeerManager,
    serving: Serving,
    /// The node's reconciler (`node/reconcile.rs`); without one, anti-entropy asks `Heads`.
    reconciler: Option<mpsc::Sender<ReconcileEvent>>,
    reconcile_cost: ReconcileCost,
    fetch_cost: FetchCost,
}

/// Most peers held in a temporary block at once; past it, the block ending first is lifted
/// early, so a stream of fresh identities cannot grow the table.
const MAX_TEMPORARY_BLOCKS: usize = 1_024;

impl std::fmt::Debug for SwarmTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmTask")
            .field("peer_id", self.swarm.local_peer_id())
            .finish()
    }
}

impl SwarmTask {
    /// Prepares the task: starts listening, dials bootstrap peers.
    pub fn new(
        mut swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetEvent>,
        config: NetConfig,
        namespaces: Vec<String>,
    ) -> Result<SwarmTask, NetError> {
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|source| NetError::Listen {
                    addr: addr.clone(),
                    source: Box::new(source),
                })?;
        }
        for addr in &config.external {
            swarm.add_external_address(addr.clone());
        }
        let peer_manager = PeerManager::new(&config);
        peer_manager.seed_routing_table(&mut swarm);
        for addr in &config.bootstrap {
            if let Some(peer) = peer_of(addr) {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
            if let Err(error) = swarm.dial(addr.clone()) {
                warn!(%addr, %error, "cannot dial bootstrap peer");
            }
        }
        let mut task = SwarmTask {
            swarm,
            commands,
            events,
            config,
            namespaces: Vec::new(),
            outstanding: HashMap::new(),
            peers: HashMap::new(),
            listen_addrs: Vec::new(),
            gossip_received: 0,
            gossip_dropped: 0,
            forward_latency: LatencyHistogram::default(),
            dialed: HashSet::new(),
            entries_fetched: 0,
            temporary_blocks: HashMap::new(),
            peer_manager,
            serving: Serving::default(),
            reconciler: None,
            reconcile_cost: ReconcileCost::default(),
            fetch_cost: FetchCost::default(),
        };
        for namespace in namespaces {
            if let Err(error) = task.follow(namespace) {
                warn!(%error, "namespace from the configuration not followed");
            }
        }
        Ok(task)
    }

    /// Hands peers' sync requests to `server` (a queue of its own, so gossip never waits
    /// behind serving history); `held_bytes` is the count of response bytes held, which the
    /// server reads to refuse early while it is over [`MAX_RESPONSE_BYTES_IN_FLIGHT`].
    pub fn with_sync_server(
        mut self,
        server: mpsc::Sender<NetEvent>,
        held_bytes: Arc<AtomicUsize>,
    ) -> SwarmTask {
        self.serving.server = Some(server);
        self.serving.bytes = held_bytes;
        self
    }

    /// Runs until shut down or until every handle is dropped.
    pub async fn run(mut self) {
        let mut anti_entropy = tokio::time::interval(self.config.backfill_interval);
        anti_entropy.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut peer_heartbeat = tokio::time::interval(PEER_HEARTBEAT);
        peer_heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    None | Some(Command::Shutdown) => break,
                    Some(command) => self.handle_command(command),
                },
                event = self.swarm.select_next_some() => self.handle_swarm_event(event),
                _ = anti_entropy.tick() => self.handle_anti_entropy(),
                _ = peer_heartbeat.tick() => self.peer_manager.heartbeat(&mut self.swarm, &self.dialed),
            }
        }
        self.peer_manager
            .save_now(&mut self.swarm, &self.dialed)
            .await;
        info!("network task stopped");
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data, reply } => {
                let result = match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
                    Ok(_) => Ok(()),
                    // Nobody to send to yet, or we already sent it: backfill covers both.
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic)
                    | Err(gossipsub::PublishError::Duplicate) => Ok(()),
                    Err(error) => Err(NetError::Publish(error)),
                };
                let _ = reply.send(result);
            }
            Command::Follow { namespace, reply } => {
                let _ = reply.send(self.follow(namespace));
            }
            Command::Validate(verdicts) => {
                let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
                for verdict in verdicts {
                    if matches!(verdict.acceptance, MessageAcceptance::Accept) {
                        self.forward_latency.record(verdict.received.elapsed());
                    }
                    gossipsub.report_message_validation_result(
                        &verdict.message_id,
                        &verdict.peer,
                        verdict.acceptance,
                    );
                }
            }
            Command::Respond {
                request_id,
                channel,
                response,
            } => self.respond(request_id, channel, response),
            Command::Fetch { peer, range } => self.queue_fetch(peer, range),
            Command::FetchMany { peer, ranges } => {
                for range in ranges {
                    self.enqueue_fetch(peer, range);
                }
                self.pump(peer);
            }
            Command::Reconcile {
                peer,
                request,
                first,
            } => self.send_reconcile(peer, request, first),
            Command::SyncNow => self.handle_anti_entropy(),
            Command::Dial { addr, reply } => {
                if let Some(peer) = peer_of(&addr) {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                }
                let dialed = self.swarm.dial(addr.clone());
                let _ = reply.send(dialed.map_err(|source| NetError::Dial {
                    addr,
                    source: Box::new(source),
                }));
            }
            Command::Block { peer, reply } => {
                // An explicit block lasts until an explicit unblock.
                self.temporary_blocks.remove(&peer);
                self.swarm.behaviour_mut().blocked.block_peer(peer);
                let _ = reply.send(());
            }
            Command::BlockFor { peer, duration } => self.block_for(peer, duration),
            Command::Unblock { peer, reply } => {
                self.temporary_blocks.remove(&peer);
                self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                let _ = reply.send(());
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Shutdown => {}
        }
    }

    fn handle_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, peer_id = %self.swarm.local_peer_id(), "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|known| known != &address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                debug!(%peer_id, address = %endpoint.get_remote_address(), "connected");
                if endpoint.is_dialer() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, endpoint.get_remote_address().clone());
                }
                // A grace connection only introduces the newcomer to others: no sync over it.
                let grace = self.swarm.behaviour().limits.is_grace(connection_id);
                if num_established.get() == 1 && !grace {
                    if endpoint.is_dialer() {
                        self.dialed.insert(peer_id);
                    }
                    self.peer_manager
                        .on_connected(peer_id, endpoint.get_remote_address().clone());
                    // Anti-entropy on every new peer: whatever we missed, fetch it now.
                    self.start_sync(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                debug!(%peer_id, "disconnected");
                self.peers.remove(&peer_id);
                self.forget_reconcile(peer_id);
                let gone: Vec<InboundRequestId> = self
                    .serving
                    .requests
                    .iter()
                    .filter(|(_, (peer, _))| *peer == peer_id)
                    .map(|(id, _)| *id)
                    .collect();
                for request_id in gone {
                    self.release_served(request_id);
                }
                self.dialed.remove(&peer_id);
                self.peer_manager.on_disconnected(&peer_id);
            }
            SwarmEvent::Behaviour(event) => self.handle_behaviour_event(event),
            _ => {}
        }
    }

    fn handle_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.handle_gossip(propagation_source, message_id, message),
            BehaviourEvent::Sync(event) => self.handle_sync_event(event),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                // One dial per peer with all its addresses (TCP and QUIC, each interface),
                // not one per address: those would race into duplicate connections.
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in found {
                    by_peer.entry(peer).or_default().push(addr);
                }
                for (peer, addrs) in by_peer {
                    if self.swarm.is_connected(&peer) {
                        continue;
                    }
                    for addr in &addrs {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer, addr.clone());
                    }
                    self.dial_discovered(
                        DialOpts::peer_id(peer)
                            .addresses(addrs)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build(),
                    );
                }
            }
            // Peers Kademlia finds are not dialled here: the peer manager's heartbeat dials from
            // the routing table while below the low watermark, choosing for diversity.
            _ => {}
        }
    }

    /// Dials a peer that discovery found, while below the low watermark and while outbound
    /// connections fill less than their share of the limit (explicit dials, such as bootstrap
    /// peers, are not held back).
    fn dial_discovered(&mut self, peer: impl Into<DialOpts>) {
        if self.peer_manager.wants_more(&self.swarm)
            && self.swarm.behaviour().limits.wants_outbound()
        {
            let _ = self.swarm.dial(peer);
        }
    }

    fn handle_gossip(
        &mut self,
        peer: PeerId,
        message_id: gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        self.gossip_received += 1;
        let topic = message.topic.into_string();
        let event = NetEvent::Gossip {
            message_id: message_id.clone(),
            peer,
            topic,
            data: message.data,
            received: Instant::now(),
        };
        if self.events.try_send(event).is_err() {
            // The worker is behind: do not forward, do not penalise; sync will catch up.
            self.gossip_dropped += 1;
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&message_id, &peer, MessageAcceptance::Ignore);
        }
    }

    fn handle_sync_event(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => self.serve(peer, request_id, request, channel),
            request_response::Event::ResponseSent { request_id, .. }
            | request_response::Event::InboundFailure { request_id, .. } => {
                self.release_served(request_id)
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some((_, outstanding)) = self.outstanding.remove(&request_id) else {
                    return;
                };
                self.finish_request(peer, &outstanding);
                let outstanding = match outstanding {
                    Outstanding::Reconcile(round) => {
                        return self.on_reconcile_answer(peer, response, *round)
                    }
                    other => other,
                };
                let event = match (outstanding, response) {
                    (Outstanding::Heads, SyncResponse::Heads { heads }) => {
                        Some(NetEvent::Heads { peer, heads })
                    }
                    (Outstanding::Range(range), SyncResponse::Entries { entries }) => {
                        self.entries_fetched += entries.len() as u64;
                        self.fetch_cost.bytes +=
                            entries.iter().map(|entry| entry.len() as u64).sum::<u64>();
                        Some(NetEvent::Entries {
                            peer,
                            answered: vec![FetchedRange {
                                range: *range,
                                entries: entries
                                    .into_iter()
                                    .map(|bytes| bytes.into_vec())
                                    .collect(),
                            }],
                        })
                    }
                    (Outstanding::Ranges(ranges), SyncResponse::RangeEntries { ranges: lists }) => {
                        self.on_range_entries(peer, ranges, lists)
                    }
                    (_, SyncResponse::Refused { reason }) => {
                        warn!(%peer, %reason, "peer refused a sync request");
                        None
                    }
                    (_, _) => {
                        warn!(%peer, "peer answered a sync request with the wrong response type");
                        None
                    }
                };
                if let Some(event) = event {
                    let _ = self.events.try_send(event);
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, outstanding)) = self.outstanding.remove(&request_id) {
                    debug!(%peer, %error, "sync request failed");
                    self.finish_request(peer, &outstanding);
                    match outstanding {
                        Outstanding::Reconcile(_) => self.end_reconcile(peer),
                        Outstanding::Ranges(ranges) => self.on_ranges_failed(peer, ranges),
                        Outstanding::Heads | Outstanding::Range(_) => {}
                    }
                }
            }
        }
    }

    fn block_for(&mut self, peer: PeerId, duration: Duration) {
        if self.temporary_blocks.len() >= MAX_TEMPORARY_BLOCKS
            && !self.temporary_blocks.contains_key(&peer)
        {
            if let Some(first) = self
                .temporary_blocks
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(peer, _)| *peer)
            {
                self.temporary_blocks.remove(&first);
                self.swarm.behaviour_mut().blocked.unblock_peer(first);
            }
        }
        warn!(%peer, ?duration, "blocking a peer that keeps sending invalid data");
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        self.temporary_blocks
            .insert(peer, Instant::now() + duration);
    }

    fn lift_expired_blocks(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .temporary_blocks
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            self.temporary_blocks.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }

    fn handle_anti_entropy(&mut self) {
        self.lift_expired_blocks();
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            // A round refused as busy while nothing else was on its way goes again now.
            self.send_deferred_reconcile(peer);
            self.start_sync(peer);
        }
    }

    fn follow(&mut self, namespace: String) -> Result<(), NetError> {
        if self.namespaces.contains(&namespace) {
            return Ok(());
        }
        if self.namespaces.len() >= MAX_FOLLOWED_NAMESPACES {
            return Err(NetError::TooManyNamespaces {
                namespace,
                limit: MAX_FOLLOWED_NAMESPACES,
            });
        }
        for topic in topics::namespace_topics(&namespace) {
            let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
            if let Err(error) = gossipsub.subscribe(&topic) {
                warn!(%topic, %error, "cannot subscribe");
            }
            let _ = gossipsub.set_topic_params(topic, topic_score_params());
        }
        self.namespaces.push(namespace);
        // Peers we already talk to may hold history of the new namespace.
        self.handle_anti_entropy();
        Ok(())
    }

    fn request_heads(&mut self, peer: PeerId) {
        if self.namespaces.is_empty() {
            return;
        }
        let request = SyncRequest::Heads {
            namespaces: self.namespaces.clone(),
        };
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.outstanding.insert(id, (peer, Outstanding::Heads));
        self.peers.entry(peer).or_default().in_flight += 1;
    }

    fn queue_fetch(&mut self, peer: PeerId, range: Box<RangeRequest>) {
        self.enqueue_fetch(peer, *range);
        self.pump(peer);
    }

    /// Queues a range to fetch from `peer` without sending anything yet.
    fn enqueue_fetch(&mut self, peer: PeerId, range: RangeRequest) {
        let sync = self.peers.entry(peer).or_default();
        // Already queued or on its way (an anti-entropy round planning what a pipelined window
        // is fetching): asking again would only fetch the same entries twice.
        if sync.queue.len() >= MAX_QUEUED_PER_PEER || sync.overlaps(&range) {
            return;
        }
        sync.fetching
            .entry(range.feed.clone())
            .or_default()
            .insert(range.from_seq, range.to_seq);
        sync.queue.push_back(range);
    }

    /// Sends queued range requests to `peer` while it has free in-flight slots: several
    /// ranges in one `Ranges` request where it can (see [`sync::take_batch`]).
    fn pump(&mut self, peer: PeerId) {
        loop {
            let Some(sync) = self.peers.get_mut(&peer) else {
                return;
            };
            if sync.in_flight >= MAX_IN_FLIGHT_PER_PEER {
                return;
            }
            let mut batch = if sync.single_ranges {
                sync.queue.pop_front().into_iter().collect()
            } else {
                sync::take_batch(&mut sync.queue)
            };
            let (request, outstanding) = match batch.len() {
                0 => return,
                1 => match batch.pop() {
                    Some(range) => (
                        SyncRequest::range(&range),
                        Outstanding::Range(Box::new(range)),
                    ),
                    None => return,
                },
                _ => (SyncRequest::ranges(&batch), Outstanding::Ranges(batch)),
            };
            sync.in_flight += 1;
            self.fetch_cost.requests += 1;
            let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
            self.outstanding.insert(id, (peer, outstanding));
        }
    }

    fn finish_request(&mut self, peer: PeerId, outstanding: &Outstanding) {
        if let Some(sync) = self.peers.get_mut(&peer) {
            sync.in_flight = sync.in_flight.saturating_sub(1);
            match outstanding {
                Outstanding::Range(range) => sync.forget(range),
                Outstanding::Ranges(ranges) => ranges.iter().for_each(|range| sync.forget(range)),
                Outstanding::Heads | Outstanding::Reconcile(_) => {}
            }
        }
        self.pump(peer);
        self.send_deferred_reconcile(peer);
    }

    fn status(&self) -> NetStatus {
        let gossipsub = &self.swarm.behaviour().gossipsub;
        NetStatus {
            peer_id: self.swarm.local_peer_id().to_string(),
            listen_addrs: self.listen_addrs.iter().map(ToString::to_string).collect(),
            external_addrs: self
                .swarm
                .external_addresses()
                .map(ToString::to_string)
                .collect(),
            peers: self
                .swarm
                .connected_peers()
                .filter(|peer| !self.swarm.behaviour().limits.is_grace_only(peer))
                .map(|peer| PeerStatus {
                    peer_id: peer.to_string(),
                    agent_id: agent_id_of(peer).map(|agent| agent.to_string()),
                    score: gossipsub.peer_score(peer),
                    dialed: self.dialed.contains(peer),
                    mesh: gossipsub
                        .topics()
                        .filter(|topic| gossipsub.mesh_peers(topic).any(|meshed| meshed == peer))
                        .map(ToString::to_string)
                        .collect(),
                })
                .collect(),
            topics: gossipsub.topics().map(ToString::to_string).collect(),
            namespaces: self.namespaces.clone(),
            sync_requests_in_flight: self.outstanding.len(),
            sync_ranges_queued: self.peers.values().map(|sync| sync.queue.len()).sum(),
            gossip_received: self.gossip_received,
            gossip_dropped_queue_full: self.gossip_dropped,
            gossip_forward_latency: self.forward_latency.summary(),
            sync_requests_refused: self.serving.refused,
            sync_response_bytes_held: self.serving.bytes.load(Ordering::Relaxed),
            entries_fetched: self.entries_fetched,
            reconcile: self.reconcile_cost,
            fetch: self.fetch_cost,
            connections: self.swarm.behaviour().limits.status(),
        }
    }
}

mod fetching;
mod reconciling;
mod serving;

use serving::Serving;

/// The peer id at the end of a multiaddr (`.../p2p/<id>`), if any.
pub(super) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|protocol| match protocol {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use plexus_crypto::Keypair;

    use super::*;

    fn range(feed: &FeedKey, from_seq: u64, to_seq: u64) -> RangeRequest {
        RangeRequest {
            feed: feed.clone(),
            from_seq,
            to_seq,
            target_seq: to_seq,
            lookahead: 0,
        }
    }

    #[test]
    fn a_fetch_overlapping_one_queued_or_in_flight_is_found_in_the_index() {
        let feed = FeedKey {
            namespace: "ns".into(),
            author: Keypair::generate().agent_id(),
        };
        let other = FeedKey {
            namespace: "other".into(),
            author: feed.author,
        };
        let mut sync = PeerSync::default();
        for (from_seq, to_seq) in [(1, 512), (1025, 1536)] {
            sync.fetching
                .entry(feed.clone())
                .or_default()
                .insert(from_seq, to_seq);
        }
        for (from_seq, to_seq, overlaps) in [
            (1, 1, true),
            (500, 600, true),
            (513, 1024, false),
            (1000, 1025, true),
            (1536, 2000, true),
            (1537, 2000, false),
        ] {
            assert_eq!(
                sync.overlaps(&range(&feed, from_seq, to_seq)),
                overlaps,
                "{from_seq}..={to_seq}"
            );
        }
        assert!(!sync.overlaps(&range(&other, 1, 512)));
        // Once answered, a range no longer counts, and an empty feed is forgotten.
        sync.forget(&range(&feed, 1, 512));
        assert!(!sync.overlaps(&range(&feed, 1, 1)));
        sync.forget(&range(&feed, 1025, 1536));
        assert!(sync.fetching.is_empty());
    }
}
