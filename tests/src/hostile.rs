//! A hostile peer for tests: a libp2p swarm of its own that speaks Plexus's gossip topics and
//! `/plexus/sync/1` protocol and misbehaves on purpose (floods of fork proofs from fresh keys,
//! orphans that fill `pending`, sync request floods, fake feed heads announced in
//! reconciliation, a peer of an older version that cannot decode `Ranges`). It never
//! validates or stores anything, and answers nothing but reconciliation rounds (once told to
//! announce heads) and `Range` and `Ranges` requests for feeds it was told to serve: other sync
//! requests sent to it are left unanswered, as a peer that went silent would.
//!
//! The swarm runs in its own task; [`HostilePeer`] drives it over a bounded command channel,
//! each command answered on a `oneshot`, like the node's own swarm task.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder};
use plexus_crypto::Keypair;
use plexus_node::net::behaviour::gossipsub_config;
use plexus_node::net::reconcile::{decode_request, encode_answers};
use plexus_node::net::sync::{
    SyncRequest, SyncResponse, WireRange, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, SYNC_PROTOCOL,
};
use plexus_node::net::topics;
use plexus_protocol::reconcile::{answer, Item};
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Draft, Entry, ForkProof};
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot, watch};

use crate::vectors::reconcile::VecStore;

/// Commands waiting for the hostile swarm's task.
const COMMAND_QUEUE: usize = 64;

/// How often a flood that filled the send queue tries again, as the connection drains it
/// (gossipsub reports no event when its queue drains).
const FLOOD_RETRY: Duration = Duration::from_millis(5);

/// What the answers to a burst of sync requests were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTally {
    /// Answered with entries or heads.
    pub served: usize,
    /// Answered with a refusal (busy, or an invalid request).
    pub refused: usize,
    /// Failed: the stream was refused, reset or timed out.
    pub failed: usize,
}

/// Sync requests for served feeds (see [`HostilePeer::serve`]) this peer has received, and
/// the reconciliation rounds it answered from announced heads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServedTally {
    /// `Range` requests, each answered.
    pub range_requests: u64,
    /// `Ranges` requests, answered or (as an older node would) left failing.
    pub ranges_requests: u64,
    /// `Reconcile` rounds answered (see [`HostilePeer::announce`] and [`HostilePeer::serve`]).
    pub reconcile_rounds: u64,
}

/// Feeds this peer holds and serves, and how it treats `Ranges` requests.
#[derive(Debug, Default)]
struct Served {
    namespace: String,
    /// Each feed's entries from seq 1, by author key.
    feeds: HashMap<[u8; 32], Vec<Entry>>,
    /// Whether `Ranges` requests fail (their stream closed unanswered), as on a node of a
    /// version before `Ranges`, which cannot decode one.
    refuse_ranges: bool,
    tally: ServedTally,
}

impl Served {
    /// Envelopes `from_seq..=to_seq` of a served feed (empty for any other).
    fn range(&self, author: &[u8], from_seq: u64, to_seq: u64) -> Vec<ByteBuf> {
        let Some(entries) = <[u8; 32]>::try_from(author)
            .ok()
            .and_then(|key| self.feeds.get(&key))
        else {
            return Vec::new();
        };
        entries
            .iter()
            .filter(|entry| (from_seq..=to_seq).contains(&entry.header().seq))
            .map(|entry| ByteBuf::from(entry.encode()))
            .collect()
    }
}

/// A running hostile peer.
#[derive(Debug)]
pub struct HostilePeer {
    commands: mpsc::Sender<HostileCommand>,
    peer_id: PeerId,
    /// Gossip messages received so far (what the node forwarded to this peer).
    received: watch::Receiver<u64>,
}

#[derive(NetworkBehaviour)]
struct HostileBehaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
}

enum HostileCommand {
    /// Dials the node and waits until it is subscribed to `topic` as seen from here.
    Join {
        addr: Multiaddr,
        topic: IdentTopic,
        reply: oneshot::Sender<()>,
    },
    /// Publishes every message on `topic` as fast as the connection takes them; replies with
    /// how many went out.
    Flood {
        topic: IdentTopic,
        messages: Vec<Vec<u8>>,
        reply: oneshot::Sender<usize>,
    },
    /// From now on, answers reconciliation rounds as a peer holding `heads` (sorted by key)
    /// would; their feeds' entries are never served.
    Announce {
        heads: Vec<Item>,
        reply: oneshot::Sender<()>,
    },
    /// From now on, holds `entries` (whole feeds of one namespace from seq 1): announces their
    /// heads in reconciliation and serves them to `Range` requests, and to `Ranges` requests
    /// unless `refuse_ranges`.
    Serve {
        entries: Vec<Entry>,
        refuse_ranges: bool,
        reply: oneshot::Sender<()>,
    },
    /// Replies with the requests for served feeds received so far.
    ServedTally { reply: oneshot::Sender<ServedTally> },
    /// Sends every request to `peer` at once; replies once each is answered or failed.
    Requests {
        peer: PeerId,
        requests: Vec<SyncRequest>,
        reply: oneshot::Sender<RequestTally>,
    },
}

impl HostilePeer {
    /// Starts the hostile peer's swarm, listening on nothing (it only dials).
    pub fn start() -> HostilePeer {
        let mut swarm = build_swarm().unwrap_or_else(|error| panic!("hostile swarm: {error}"));
        let peer_id = *swarm.local_peer_id();
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        // The peer only dials, but a listener keeps libp2p's address book simple.
        let _ = swarm.listen_on(
            "/ip4/127.0.0.1/tcp/0"
                .parse()
                .unwrap_or_else(|_| Multiaddr::empty()),
        );
        let (received_tx, received) = watch::channel(0);
        tokio::spawn(run(swarm, receiver, received_tx));
        HostilePeer {
            commands,
            peer_id,
            received,
        }
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Connects to the node at `addr` and waits until the node's subscription to `topic` is
    /// known here, so that a flood on it reaches the node.
    pub async fn join(&self, addr: Multiaddr, topic: IdentTopic) {
        let (reply, done) = oneshot::channel();
        self.send(HostileCommand::Join { addr, topic, reply }).await;
        tokio::time::timeout(Duration::from_secs(20), done)
            .await
            .unwrap_or_else(|_| panic!("the hostile peer did not join the node's topic"))
            .unwrap_or_else(|_| panic!("the hostile peer stopped"));
    }

    /// Publishes `messages` on `topic`; returns how many the swarm sent.
    pub async fn flood(&self, topic: IdentTopic, messages: Vec<Vec<u8>>) -> usize {
        let (reply, done) = oneshot::channel();
        self.send(HostileCommand::Flood {
            topic,
            messages,
            reply,
        })
        .await;
        done.await
            .unwrap_or_else(|_| panic!("the hostile peer stopped"))
    }

    /// How many gossip messages this peer has received (what the node forwarded to it), and
    /// a way to wait for the next: `changed()` returns when another arrives.
    pub fn received(&self) -> watch::Receiver<u64> {
        self.received.clone()
    }

    /// Sends `requests` to `peer` all at once and tallies the answers.
    pub async fn requests(&self, peer: PeerId, requests: Vec<SyncRequest>) -> RequestTally {
        let (reply, done) = oneshot::channel();
        self.send(HostileCommand::Requests {
            peer,
            requests,
            reply,
        })
        .await;
        done.await
            .unwrap_or_else(|_| panic!("the hostile peer stopped"))
    }

    /// Claims `heads` in every reconciliation round a node asks of this peer (and serves
    /// none of their entries): a peer announcing many fake feeds.
    pub async fn announce(&self, mut heads: Vec<Item>) {
        heads.sort();
        let (reply, done) = oneshot::channel();
        self.send(HostileCommand::Announce { heads, reply }).await;
        let _ = done.await;
    }

    /// Holds and serves `entries` (whole feeds of one namespace, from seq 1): their heads are
    /// announced in reconciliation rounds, their entries served to `Range` requests, and to
    /// `Ranges` requests unless `refuse_ranges`, in which case every `Ranges` request fails
    /// as it does against a node of a version before `Ranges`.
    pub async fn serve(&self, entries: Vec<Entry>, refuse_ranges: bool) {
        let (reply, done) = oneshot::channel();
        self.send(HostileCommand::Serve {
            entries,
            refuse_ranges,
            reply,
        })
        .await;
        let _ = done.await;
    }

    /// The requests for served feeds received so far, and the reconciliation rounds answered.
    pub async fn served_tally(&self) -> ServedTally {
        let (reply, done) = oneshot::channel();
        self.send(HostileCommand::ServedTally { reply }).await;
        done.await
            .unwrap_or_else(|_| panic!("the hostile peer stopped"))
    }

    async fn send(&self, command: HostileCommand) {
        if self.commands.send(command).await.is_err() {
            panic!("the hostile peer stopped");
        }
    }
}

/// A proof that a fresh key signed two entries at seq 1 of its feed in `namespace`.
pub fn fresh_fork_proof(namespace: &str) -> ForkProof {
    let author = Keypair::generate();
    let left = note(&author, namespace, 1, None, "left");
    let right = note(&author, namespace, 1, None, "right");
    ForkProof::new(left, right).unwrap_or_else(|error| panic!("fork proof: {error}"))
}

/// Entry 2 of a fresh key's feed in `namespace`, whose entry 1 nobody ever sees.
pub fn orphan(namespace: &str) -> Entry {
    let author = Keypair::generate();
    let first = note(&author, namespace, 1, None, "never sent");
    note(&author, namespace, 2, Some(&first), "orphan")
}

/// An `x-note` entry with `text` in its body, timestamped now (within every skew window).
pub fn note(
    author: &Keypair,
    namespace: &str,
    seq: u64,
    prev: Option<&Entry>,
    text: &str,
) -> Entry {
    let draft = Draft {
        namespace: namespace.to_owned(),
        seq,
        prev: prev.map(Entry::id),
        timestamp_ms: plexus_node::clock::now_ms(),
        kind: "x-note".into(),
        body: json_text_to_canonical(&format!("{{\"text\": \"{text}\"}}"))
            .unwrap_or_else(|error| panic!("body: {error}")),
    };
    Entry::sign(author, draft).unwrap_or_else(|error| panic!("sign: {error}"))
}

/// The topic entries of kind `x-note` travel on in `namespace`.
pub fn note_topic(namespace: &str) -> IdentTopic {
    topics::entry_topic(namespace, "x-note")
}

fn build_swarm() -> Result<Swarm<HostileBehaviour>, Box<dyn std::error::Error + Send + Sync>> {
    let swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(
            |_| -> Result<HostileBehaviour, Box<dyn std::error::Error + Send + Sync>> {
                // The node's parameters (message ids, sizes), without validation: it forwards
                // whatever it is told to.
                let config = gossipsub_config(Duration::from_millis(200)).build()?;
                let gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)?;
                let codec =
                    request_response::cbor::codec::Codec::<SyncRequest, SyncResponse>::default()
                        .set_request_size_maximum(MAX_REQUEST_BYTES)
                        .set_response_size_maximum(MAX_RESPONSE_BYTES);
                let sync = request_response::cbor::Behaviour::with_codec(
                    codec,
                    [(
                        StreamProtocol::new(SYNC_PROTOCOL),
                        request_response::ProtocolSupport::Full,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30))
                        .with_max_concurrent_streams(1024),
                );
                Ok(HostileBehaviour { gossipsub, sync })
            },
        )?
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

/// A flood being published: what is left, how much went out, who to tell.
struct Flood {
    topic: IdentTopic,
    left: VecDeque<Vec<u8>>,
    sent: usize,
    reply: oneshot::Sender<usize>,
}

impl Flood {
    /// Publishes until the send queue is full; true once nothing is left.
    fn push(&mut self, swarm: &mut Swarm<HostileBehaviour>) -> bool {
        while let Some(message) = self.left.pop_front() {
            match swarm
                .behaviour_mut()
                .gossipsub
                .publish(self.topic.clone(), message.clone())
            {
                Ok(_) => self.sent += 1,
                Err(gossipsub::PublishError::AllQueuesFull(_)) => {
                    self.left.push_front(message);
                    return false;
                }
                Err(_) => {}
            }
        }
        true
    }
}

/// A burst of requests in flight: what is outstanding, what came back, who to tell.
struct Burst {
    outstanding: HashMap<OutboundRequestId, ()>,
    tally: RequestTally,
    reply: oneshot::Sender<RequestTally>,
}

async fn run(
    mut swarm: Swarm<HostileBehaviour>,
    mut commands: mpsc::Receiver<HostileCommand>,
    received: watch::Sender<u64>,
) {
    let mut joining: Vec<(IdentTopic, oneshot::Sender<()>)> = Vec::new();
    let mut bursts: Vec<Burst> = Vec::new();
    let mut floods: VecDeque<Flood> = VecDeque::new();
    let mut retry = tokio::time::interval(FLOOD_RETRY);
    let mut announced = VecStore(Vec::new());
    let mut served = Served::default();
    loop {
        while let Some(flood) = floods.front_mut() {
            if !flood.push(&mut swarm) {
                break;
            }
            if let Some(flood) = floods.pop_front() {
                let _ = flood.reply.send(flood.sent);
            }
        }
        tokio::select! {
            _ = retry.tick(), if !floods.is_empty() => {}
            command = commands.recv() => match command {
                None => return,
                Some(HostileCommand::Join { addr, topic, reply }) => {
                    let _ = swarm.behaviour_mut().gossipsub.subscribe(&topic);
                    let _ = swarm.dial(addr);
                    joining.push((topic, reply));
                }
                Some(HostileCommand::Flood { topic, messages, reply }) => {
                    floods.push_back(Flood { topic, left: messages.into(), sent: 0, reply });
                }
                Some(HostileCommand::Serve { entries, refuse_ranges, reply }) => {
                    served = serve(entries, refuse_ranges);
                    announced = VecStore(heads_of(&served));
                    let _ = reply.send(());
                }
                Some(HostileCommand::ServedTally { reply }) => {
                    let _ = reply.send(served.tally);
                }
                Some(HostileCommand::Announce { heads, reply }) => {
                    announced = VecStore(heads);
                    let _ = reply.send(());
                }
                Some(HostileCommand::Requests { peer, requests, reply }) => {
                    let outstanding = requests
                        .into_iter()
                        .map(|request| (swarm.behaviour_mut().sync.send_request(&peer, request), ()))
                        .collect();
                    bursts.push(Burst { outstanding, tally: RequestTally::default(), reply });
                }
            },
            event = swarm.select_next_some() => {
                let Some(event) = answer_reconcile(&mut swarm, event, &mut announced) else {
                    served.tally.reconcile_rounds += 1;
                    continue;
                };
                let Some(event) = answer_ranges(&mut swarm, event, &mut served) else {
                    continue;
                };
                if let SwarmEvent::Behaviour(HostileBehaviourEvent::Gossipsub(
                    gossipsub::Event::Message { .. },
                )) = &event
                {
                    received.send_modify(|count| *count += 1);
                }
                handle_event(event, &mut bursts);
                // Joined once the node's subscription is known here.
                let subscribed: Vec<gossipsub::TopicHash> = swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .flat_map(|(_, topics)| topics.into_iter().cloned())
                    .collect();
                let (done, waiting): (Vec<_>, Vec<_>) = joining
                    .into_iter()
                    .partition(|(topic, _)| subscribed.contains(&topic.hash()));
                joining = waiting;
                for (_, reply) in done {
                    let _ = reply.send(());
                }
                bursts = finish_bursts(bursts);
            }
        }
    }
}

/// Answers a reconciliation round from the announced heads (while there are any); hands
/// back every other event.
fn answer_reconcile(
    swarm: &mut Swarm<HostileBehaviour>,
    event: SwarmEvent<HostileBehaviourEvent>,
    announced: &mut VecStore,
) -> Option<SwarmEvent<HostileBehaviourEvent>> {
    if announced.0.is_empty() {
        return Some(event);
    }
    match event {
        SwarmEvent::Behaviour(HostileBehaviourEvent::Sync(request_response::Event::Message {
            message:
                request_response::Message::Request {
                    request: SyncRequest::Reconcile { namespace, ranges },
                    channel,
                    ..
                },
            ..
        })) => {
            let answers = decode_request(&namespace, &ranges)
                .unwrap_or_default()
                .iter()
                .map(|query| match answer(announced, query) {
                    Ok(answer) => answer,
                    Err(never) => match never {},
                })
                .collect::<Vec<_>>();
            let response = SyncResponse::Reconciled {
                answers: encode_answers(&answers),
            };
            let _ = swarm.behaviour_mut().sync.send_response(channel, response);
            None
        }
        other => Some(other),
    }
}

/// What [`HostileCommand::Serve`] sets up: `entries` grouped by feed, in seq order.
fn serve(entries: Vec<Entry>, refuse_ranges: bool) -> Served {
    let mut served = Served {
        refuse_ranges,
        ..Served::default()
    };
    for entry in entries {
        served.namespace = entry.header().namespace.clone();
        served
            .feeds
            .entry(*entry.header().author.as_bytes())
            .or_default()
            .push(entry);
    }
    for feed in served.feeds.values_mut() {
        feed.sort_by_key(|entry| entry.header().seq);
    }
    served
}

/// The feed heads of what is served, sorted by key.
fn heads_of(served: &Served) -> Vec<Item> {
    let mut heads: Vec<Item> = served
        .feeds
        .iter()
        .filter_map(|(key, entries)| {
            entries.last().map(|head| Item {
                key: *key,
                seq: head.header().seq,
                id: head.id().0,
            })
        })
        .collect();
    heads.sort();
    heads
}

/// Answers `Range` and `Ranges` requests for the served namespace from the served feeds (a
/// `Ranges` request left unanswered, its stream closed, when refusing them); hands back every
/// other event.
fn answer_ranges(
    swarm: &mut Swarm<HostileBehaviour>,
    event: SwarmEvent<HostileBehaviourEvent>,
    served: &mut Served,
) -> Option<SwarmEvent<HostileBehaviourEvent>> {
    let SwarmEvent::Behaviour(HostileBehaviourEvent::Sync(request_response::Event::Message {
        message: request_response::Message::Request {
            request, channel, ..
        },
        ..
    })) = event
    else {
        return Some(event);
    };
    let response = match request {
        SyncRequest::Range {
            namespace,
            author,
            from_seq,
            to_seq,
        } if namespace == served.namespace => {
            served.tally.range_requests += 1;
            SyncResponse::Entries {
                entries: served.range(&author, from_seq, to_seq),
            }
        }
        SyncRequest::Ranges { namespace, ranges } if namespace == served.namespace => {
            served.tally.ranges_requests += 1;
            if served.refuse_ranges {
                // Dropping the channel closes the stream unanswered: the requester sees the
                // request fail, as when an older node resets a stream it cannot decode.
                return None;
            }
            SyncResponse::RangeEntries {
                ranges: ranges
                    .iter()
                    .map(
                        |WireRange {
                             author,
                             from_seq,
                             to_seq,
                         }| { served.range(author, *from_seq, *to_seq) },
                    )
                    .collect(),
            }
        }
        // Requests to us go unanswered: their channels drop, as a silent peer's would.
        _ => return None,
    };
    let _ = swarm.behaviour_mut().sync.send_response(channel, response);
    None
}

fn handle_event(event: SwarmEvent<HostileBehaviourEvent>, bursts: &mut [Burst]) {
    let SwarmEvent::Behaviour(HostileBehaviourEvent::Sync(event)) = event else {
        return;
    };
    let (request_id, outcome) = match event {
        request_response::Event::Message {
            message:
                request_response::Message::Response {
                    request_id,
                    response,
                },
            ..
        } => (request_id, matches!(response, SyncResponse::Refused { .. })),
        request_response::Event::OutboundFailure { request_id, .. } => {
            for burst in bursts.iter_mut() {
                if burst.outstanding.remove(&request_id).is_some() {
                    burst.tally.failed += 1;
                }
            }
            return;
        }
        // Requests to us go unanswered: their channels drop, as a silent peer's would.
        _ => return,
    };
    for burst in bursts.iter_mut() {
        if burst.outstanding.remove(&request_id).is_some() {
            if outcome {
                burst.tally.refused += 1;
            } else {
                burst.tally.served += 1;
            }
        }
    }
}

fn finish_bursts(bursts: Vec<Burst>) -> Vec<Burst> {
    let mut open = Vec::new();
    for burst in bursts {
        if burst.outstanding.is_empty() {
            let _ = burst.reply.send(burst.tally);
        } else {
            open.push(burst);
        }
    }
    open
}
