//! Peers built on other libp2p stacks: a plain libp2p swarm that offers no ping service of its
//! own but pings the node, as a js-libp2p peer's connection monitor does (every 10 s, closing
//! the connection when a ping fails), must get every ping answered, for longer than the
//! window in which the node used to stop answering.

use std::io;
use std::time::Duration;

use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, StreamProtocol, Swarm, SwarmBuilder};
use plexus_tests::cluster::{address, shutdown, spawn_node, test_net_config};

/// The libp2p ping protocol: the dialer sends 32 bytes, the listener echoes them.
const PING_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/ping/1.0.0");
const PING_SIZE: usize = 32;

/// Pings sent, one a second: together longer than js-libp2p's 15 s disconnect window (and than
/// libp2p-ping's own 15 s interval), while the node gave up answering within the first
/// second, as soon as its own ping to this peer failed.
const PINGS: u32 = 16;

/// How long one ping may take before it counts as unanswered.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The ping protocol as request and response: 32 bytes out, the same 32 bytes back.
#[derive(Debug, Clone, Default)]
struct PingCodec;

impl request_response::Codec for PingCodec {
    type Protocol = StreamProtocol;
    type Request = [u8; PING_SIZE];
    type Response = [u8; PING_SIZE];

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut payload = [0u8; PING_SIZE];
        io.read_exact(&mut payload).await?;
        Ok(payload)
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut payload = [0u8; PING_SIZE];
        io.read_exact(&mut payload).await?;
        Ok(payload)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Self::Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&request).await?;
        io.flush().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Self::Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&response).await?;
        io.flush().await
    }
}

type Pinger = Swarm<request_response::Behaviour<PingCodec>>;

/// A swarm that pings (outbound only): it serves no ping, so the node's own pings to it fail.
fn pinger() -> Pinger {
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                PingCodec,
                [(PING_PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(PING_TIMEOUT),
            )
        })
        .unwrap()
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Drives the swarm until the request `id` is answered (`Ok` with the payload) or fails.
async fn outcome(swarm: &mut Pinger, id: OutboundRequestId) -> Result<[u8; PING_SIZE], String> {
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) if request_id == id => return Ok(response),
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) if request_id == id => return Err(error.to_string()),
            SwarmEvent::ConnectionClosed { cause, .. } => {
                return Err(format!("the node closed the connection: {cause:?}"))
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_answered_for_a_peer_that_serves_no_ping() {
    let node = spawn_node(test_net_config()).await;
    let node_peer = node.node.net().peer_id();
    let mut swarm = pinger();
    swarm.dial(address(&node).await).unwrap();
    loop {
        if let SwarmEvent::ConnectionEstablished { peer_id, .. } = swarm.select_next_some().await {
            assert_eq!(peer_id, node_peer);
            break;
        }
    }
    // Paced like a connection monitor; each ping waits for its answer (or failure) first.
    let mut pace = tokio::time::interval(Duration::from_secs(1));
    for round in 0..PINGS {
        pace.tick().await;
        let payload = [round as u8; PING_SIZE];
        let id = swarm.behaviour_mut().send_request(&node_peer, payload);
        match outcome(&mut swarm, id).await {
            Ok(echo) => assert_eq!(echo, payload, "ping {round} echoed other bytes"),
            Err(error) => panic!("ping {round} of {PINGS} was not answered: {error}"),
        }
    }
    assert!(swarm.is_connected(&node_peer));
    shutdown(vec![node]).await;
}
