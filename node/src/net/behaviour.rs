//! The combined libp2p behaviour and the swarm's construction.
//!
//! Gossipsub runs with `MessageAuthenticity::Anonymous`: every payload is a Plexus envelope
//! that carries its author's signature, so a second libp2p signature would add bytes and CPU and
//! no trust. The message id is SHA-256 of the payload (the canonical envelope, body included),
//! so the same entry is deduplicated whichever peer relays it, and a copy with its body
//! stripped cannot shadow the real one.
//! Every message is validated by the ingest worker before it is forwarded (`validate_messages`),
//! and peer scoring penalises invalid deliveries (P4).

use std::num::NonZeroUsize;
use std::time::Duration;

use libp2p::gossipsub::{self, MessageAuthenticity, ValidationMode};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, identify, kad, mdns, noise, request_response, tcp, yamux, StreamProtocol,
    Swarm, SwarmBuilder,
};
use plexus_crypto::{sha256, Keypair};
use plexus_protocol::MAX_ENTRY_LEN;

use super::limits::{ConnectionBudget, ConnectionGuard};
use super::sync::{
    SyncRequest, SyncResponse, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, SYNC_PROTOCOL,
};
use super::NetConfig;

/// Room above [`MAX_ENTRY_LEN`] for the gossipsub RPC framing (protobuf fields and the topic
/// name). Gossipsub applies `max_transmit_size` to whole inbound RPC frames, so it must exceed
/// the entry cap by this much for a maximal entry to pass; anything larger than the entry cap
/// itself is then refused by our decoder before parsing.
pub const GOSSIP_FRAME_OVERHEAD: usize = 4096;

/// Messages accepted per inbound gossipsub RPC (set explicitly: the library's default differs
/// between its config and its codec).
pub const MAX_MESSAGES_PER_RPC: usize = 256;

/// Message ids in one `IHAVE` or `IWANT` we send. A rust-libp2p peer (0.50) refuses an RPC
/// whose control part exceeds 16 KiB by closing its inbound stream, which leaves the sender's
/// stream wedged (it writes on, and nothing reads): with the library's default of 5,000 ids
/// (about 170 KB), one burst of gossip cut a fast publisher off from its peer for good. 400
/// ids of 32 bytes take about 13.6 KB with their framing.
pub const GOSSIP_CONTROL_IDS: usize = 400;

/// Per-connection gossipsub send queue (messages). Beyond it the library drops and reports a
/// slow peer instead of growing memory.
pub const GOSSIP_SEND_QUEUE: usize = 2048;

/// Weight of invalid message deliveries (P4) per topic. Nothing rewards a peer (see
/// [`topic_score_params`]), so three invalid messages in quick succession (-10 x 3^2 = -90)
/// put any peer below the default graylist threshold of -80, and two (-40) do not.
pub const INVALID_MESSAGE_WEIGHT: f64 = -10.0;

/// Identify protocol version string; peers with another major version are still talked to,
/// the string is informative.
pub const IDENTIFY_PROTOCOL: &str = "/plexus/1.0.0";

/// Kademlia protocol name: a private DHT for Plexus nodes, separate from the public IPFS one.
pub const KAD_PROTOCOL: &str = "/plexus/kad/1.0.0";

/// The node's libp2p behaviour. (Not `Debug`: several libp2p behaviours are not.)
#[allow(missing_debug_implementations)]
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// First, so that a blocked peer's connection is refused before the limits count it.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub limits: ConnectionGuard,
    pub gossipsub: gossipsub::Behaviour,
    pub sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub identify: identify::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Answers pings, never sends them (see [`super::pong`] for why not `libp2p::ping`).
    pub ping: super::pong::Pong,
}

/// Errors building the swarm.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid key for libp2p: {0}")]
    Key(String),
    #[error("cannot set up the transport: {0}")]
    Transport(String),
    #[error("cannot set up the network behaviour: {0}")]
    Behaviour(String),
}

/// The libp2p key pair for an agent key pair: the same Ed25519 secret.
pub(crate) fn libp2p_keypair(keypair: &Keypair) -> Result<libp2p::identity::Keypair, BuildError> {
    let mut seed = keypair.secret_seed();
    libp2p::identity::Keypair::ed25519_from_bytes(&mut seed[..])
        .map_err(|error| BuildError::Key(error.to_string()))
}

/// The gossipsub message id: SHA-256 of the whole payload (for an entry, the canonical
/// envelope, body included). Binding the body matters: with the entry id (which covers only
/// the signed header) a copy relayed with its body stripped took the id first, and the real
/// copy was then dropped as a duplicate everywhere. Every honest copy of an entry has the same
/// canonical bytes, so deduplication across relays still works.
pub(crate) fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    gossipsub::MessageId::new(sha256(&message.data).as_bytes())
}

/// Builds the swarm for `keypair` with `config`.
pub(crate) fn build_swarm(
    keypair: &Keypair,
    config: &NetConfig,
) -> Result<Swarm<Behaviour>, BuildError> {
    let identity = libp2p_keypair(keypair)?;
    let mdns_enabled = config.mdns;
    let heartbeat = config.heartbeat;
    let budget = ConnectionBudget::new(config.max_connections);
    let swarm = SwarmBuilder::with_existing_identity(identity)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|error| BuildError::Transport(error.to_string()))?
        .with_quic()
        .with_behaviour(
            |key| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                let peer_id = key.public().to_peer_id();
                let gossipsub = build_gossipsub(heartbeat)?;
                let sync_codec =
                    request_response::cbor::codec::Codec::<SyncRequest, SyncResponse>::default()
                        .set_request_size_maximum(MAX_REQUEST_BYTES)
                        .set_response_size_maximum(MAX_RESPONSE_BYTES);
                let sync = request_response::cbor::Behaviour::with_codec(
                    sync_codec,
                    [(
                        StreamProtocol::new(SYNC_PROTOCOL),
                        request_response::ProtocolSupport::Full,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30))
                        .with_max_concurrent_streams(64),
                );
                let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
                // The peer manager bootstraps periodically itself, only once the routing table
                // holds a peer: the library's timer warns on a node that knows none yet.
                kad_config.set_periodic_bootstrap_interval(None);
                let mut kad = kad::Behaviour::with_config(
                    peer_id,
                    kad::store::MemoryStore::new(peer_id),
                    kad_config,
                );
                kad.set_mode(Some(kad::Mode::Server));
                let identify = identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                        .with_agent_version(format!("plexus/{}", env!("CARGO_PKG_VERSION"))),
                );
                let mdns = if mdns_enabled {
                    Some(mdns::tokio::Behaviour::new(
                        mdns::Config::default(),
                        peer_id,
                    )?)
                } else {
                    None
                };
                Ok(Behaviour {
                    blocked: allow_block_list::Behaviour::default(),
                    limits: ConnectionGuard::new(budget),
                    gossipsub,
                    sync,
                    kad,
                    identify,
                    mdns: mdns.into(),
                    ping: super::pong::Pong,
                })
            },
        )
        .map_err(|error| BuildError::Behaviour(error.to_string()))?
        .with_swarm_config(|swarm_config| {
            swarm_config
                .with_idle_connection_timeout(config.idle_timeout)
                .with_notify_handler_buffer_size(NonZeroUsize::MIN.saturating_add(31))
        })
        .build();
    Ok(swarm)
}

fn build_gossipsub(
    heartbeat: Duration,
) -> Result<gossipsub::Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let config = gossipsub_config(heartbeat).validate_messages().build()?;
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)?;
    gossipsub.with_peer_score(
        peer_score_params(),
        gossipsub::PeerScoreThresholds::default(),
    )?;
    Ok(gossipsub)
}

/// The gossipsub parameters of every node, except manual validation, which [`build_swarm`]
/// adds. Public so that the propagation benchmark runs plain gossipsub with exactly these.
pub fn gossipsub_config(heartbeat: Duration) -> gossipsub::ConfigBuilder {
    let mut builder = gossipsub::ConfigBuilder::default();
    builder
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(message_id)
        .max_transmit_size(MAX_ENTRY_LEN + GOSSIP_FRAME_OVERHEAD)
        .max_publish_messages(MAX_MESSAGES_PER_RPC)
        .max_control_messages_sent(GOSSIP_CONTROL_IDS)
        // Accept as much control as a frame may carry (about 2,000 ids), rather than refuse a
        // larger `IHAVE` than ours and wedge its sender's stream.
        .max_control_message_size(MAX_ENTRY_LEN + GOSSIP_FRAME_OVERHEAD)
        .connection_handler_queue_len(GOSSIP_SEND_QUEUE)
        .heartbeat_interval(heartbeat)
        .heartbeat_initial_delay(Duration::from_millis(100));
    builder
}

/// Score per forward a peer's full send queue made us drop (gossipsub's slow-peer penalty,
/// which decays by 0.2 a second). Gossipsub's default, −0.2, graylisted an honest peer that
/// fell 400 forwards behind in a burst, and a graylisted peer's own messages are dropped
/// unread: the node lost every entry its fastest publishers sent. At −0.01 a slow peer leaves
/// the mesh (any negative score) and stops being sent gossip after about 800 dropped forwards
/// a second (−10), and is graylisted only after about 6,400 a second, sustained.
const SLOW_PEER_WEIGHT: f64 = -0.01;

/// Peer scoring of every node (topic parameters: [`topic_score_params`]).
pub fn peer_score_params() -> gossipsub::PeerScoreParams {
    // Many honest nodes share one address on loopback, behind NAT and in containers: do not
    // penalise co-location.
    gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        slow_peer_weight: SLOW_PEER_WEIGHT,
        ..gossipsub::PeerScoreParams::default()
    }
}

/// Score parameters for one of our topics: only invalid deliveries (P4) count. Time in mesh
/// (P1) and first deliveries (P2) earn nothing: with gossipsub's defaults a peer in the mesh
/// earned up to +3,600 for time alone and stayed above the graylist threshold through about
/// 20 invalid messages, not the three `docs/PROTOCOL.md` §8.1 states. Mesh delivery rates (P3,
/// P3b) are off because coordination topics are often quiet.
pub fn topic_score_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: 0.99,
        ..gossipsub::TopicScoreParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_protocol::{Draft, Entry};

    #[test]
    fn three_invalid_messages_graylist_even_a_long_standing_mesh_peer() {
        let topic = topic_score_params();
        let peer = peer_score_params();
        let thresholds = gossipsub::PeerScoreThresholds::default();
        topic.validate().unwrap();
        peer.validate().unwrap();
        // The most a peer can earn on a topic: P1 and P2 at their caps, P3 and P3b are
        // penalties only.
        let best_reward = topic.topic_weight
            * (topic.time_in_mesh_weight * topic.time_in_mesh_cap
                + topic.first_message_deliveries_weight * topic.first_message_deliveries_cap);
        let invalid = |count: f64| {
            topic.topic_weight * topic.invalid_message_deliveries_weight * count * count
        };
        // Many topics may each earn the best reward; with none to earn, one topic decides.
        for topics in [1.0, 11.0, 100.0] {
            let score = topics * best_reward + invalid(3.0);
            assert!(
                score < thresholds.graylist_threshold,
                "{topics} topics: {score}"
            );
        }
        assert!(best_reward + invalid(2.0) > thresholds.graylist_threshold);
        // Co-located honest nodes are not penalised, and no application score is set.
        assert_eq!(peer.ip_colocation_factor_weight, 0.0);
        // The count decays by 0.99 a second: back above the threshold within ten seconds,
        // which is why persistent offenders are blocked by the strike count instead.
        let after_ten_seconds = 3.0 * topic.invalid_message_deliveries_decay.powi(10);
        assert!(invalid(after_ten_seconds) > thresholds.graylist_threshold);
    }

    #[test]
    fn a_peer_slow_to_read_our_forwards_leaves_the_mesh_but_is_not_graylisted() {
        let peer = peer_score_params();
        let thresholds = gossipsub::PeerScoreThresholds::default();
        peer.validate().unwrap();
        // The penalty counts dropped forwards and decays every interval: at a steady rate of
        // `per_second` drops it settles at per_second / (1 - decay) (a geometric series).
        let interval = peer.decay_interval.as_secs_f64();
        let settled = |per_second: f64| {
            let penalty = per_second * interval / (1.0 - peer.slow_peer_decay);
            (penalty - peer.slow_peer_threshold).max(0.0) * peer.slow_peer_weight
        };
        // A burst of a thousand dropped forwards a second, as a publisher on a busy machine
        // falls behind: out of the mesh, but still heard.
        assert!(settled(1_000.0) < 0.0);
        assert!(settled(1_000.0) > thresholds.publish_threshold);
        assert!(settled(1_000.0) > thresholds.graylist_threshold);
        // A peer that reads nothing while we forward ten thousand a second is graylisted.
        assert!(settled(10_000.0) < thresholds.graylist_threshold);
    }

    #[test]
    fn the_message_id_binds_the_body() {
        let keypair = Keypair::generate();
        let entry = Entry::sign(
            &keypair,
            Draft {
                namespace: "ns".into(),
                seq: 1,
                prev: None,
                timestamp_ms: 1,
                kind: "note".into(),
                body: b"x".to_vec(),
            },
        )
        .unwrap();
        let message = gossipsub::Message {
            source: None,
            data: entry.encode(),
            sequence_number: None,
            topic: gossipsub::TopicHash::from_raw("t"),
        };
        assert_eq!(
            message_id(&message).0,
            sha256(&entry.encode()).as_bytes().to_vec()
        );
        // The same signed entry relayed without its body is another message, so it cannot
        // make the real copy look like a duplicate.
        let stripped = gossipsub::Message {
            data: entry.without_body().encode(),
            ..message.clone()
        };
        assert_ne!(message_id(&stripped), message_id(&message));
        let garbage = gossipsub::Message {
            data: b"garbage".to_vec(),
            ..message
        };
        assert_eq!(
            message_id(&garbage).0,
            sha256(b"garbage").as_bytes().to_vec()
        );
    }
}
