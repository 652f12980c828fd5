//! Answering libp2p pings (`/ipfs/ping/1.0.0`) from any peer, always; never pinging.
//!
//! Why not `libp2p::ping`: its connection handler (libp2p-ping 0.48) pings the remote, and
//! once that outbound ping fails because the remote offers no ping service, it goes inactive
//! for the rest of the connection and stops answering the remote's pings too. A js-libp2p
//! peer with default settings offers no ping service to us but pings every 10 s through its
//! connection monitor, and closes a connection whose pings fail: it was disconnected every
//! 15 s. The node never used its own pings (it reads no round-trip times, and pings keep no
//! connection alive), so it only answers them.
//!
//! The protocol (libp2p specs, `ping/ping.md`): the dialer sends 32 bytes, the listener
//! echoes them, and the dialer may send the next 32 on the same stream. One inbound ping
//! stream is served per connection; a new one replaces the old, so a peer cannot make the
//! node hold more than one per connection.

use std::convert::Infallible;
use std::io;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use libp2p::core::Endpoint;
use libp2p::futures::future::BoxFuture;
use libp2p::futures::{AsyncReadExt, AsyncWriteExt, FutureExt};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::Stream;
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};

/// The libp2p ping protocol.
pub const PING_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/ping/1.0.0");

/// Bytes in one ping.
pub const PING_SIZE: usize = 32;

/// The behaviour: a [`PongHandler`] on every connection, and nothing else.
#[derive(Debug, Default)]
pub struct Pong;

impl NetworkBehaviour for Pong {
    type ConnectionHandler = PongHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(PongHandler::default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(PongHandler::default())
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// Serves the remote's ping stream on one connection.
#[derive(Default)]
pub struct PongHandler {
    /// Echoes the next ping on the current inbound stream, returning the stream for the next.
    answering: Option<BoxFuture<'static, io::Result<Stream>>>,
}

impl std::fmt::Debug for PongHandler {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PongHandler")
            .field("answering", &self.answering.is_some())
            .finish()
    }
}

impl ConnectionHandler for PongHandler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(PING_PROTOCOL), ())
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn poll(
        &mut self,
        context: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        // Loop so that the future for the next ping on the same stream is polled at once,
        // registering this task to be woken when it arrives.
        while let Some(answering) = self.answering.as_mut() {
            match answering.poll_unpin(context) {
                Poll::Pending => break,
                Poll::Ready(Ok(stream)) => self.answering = Some(answer_ping(stream).boxed()),
                // The remote closed the stream, or sent something else: done with it.
                Poll::Ready(Err(_)) => self.answering = None,
            }
        }
        Poll::Pending
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: mut stream,
            ..
        }) = event
        {
            // Answering pings must not keep an otherwise idle connection open.
            stream.ignore_for_keep_alive();
            self.answering = Some(answer_ping(stream).boxed());
        }
    }
}

/// Reads one ping and echoes it.
async fn answer_ping(mut stream: Stream) -> io::Result<Stream> {
    let mut payload = [0u8; PING_SIZE];
    stream.read_exact(&mut payload).await?;
    stream.write_all(&payload).await?;
    stream.flush().await?;
    Ok(stream)
}
