//! Connection limits, as a behaviour placed in the swarm after the block list.
//!
//! Ours rather than libp2p's `connection-limits`, whose per-peer table keeps an entry for every
//! peer that ever connected (a stream of fresh identities would grow it without end). This
//! one forgets a peer with its last connection, and counts what it refuses in each direction.
//! A refused connection has finished its handshake (except for the pending cap): the remote
//! sees it open, then close.
//!
//! **No node is left alone at a full node.** A newcomer whose only known address is a full
//! node (typically a bootstrap node) would otherwise be refused there and never learn another
//! peer. So an inbound connection past the limits, from a peer not connected otherwise, is
//! held open for a [`GRACE_PERIOD`] instead of being refused at once (at most
//! [`MAX_GRACE_CONNECTIONS`] at a time): long enough for identify and a Kademlia lookup, in
//! which this node hands the newcomer the closest peers it knows. The swarm task then closes
//! it. A grace connection counts as a refusal and not against the limits, and the node does
//! not sync over it.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr};
use libp2p::swarm::behaviour::{ConnectionEstablished, DialFailure, ListenFailure};
use libp2p::swarm::{
    dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::PeerId;
use tracing::{debug, warn};

use super::ConnectionStatus;

/// Inbound connections in their handshake at once. Each holds a socket and noise state until
/// it completes or times out (10 s); the cap bounds those. It is shared by all remotes, so a
/// remote that opens this many connections and never completes them keeps others out until
/// they time out: a per-address cap would close that gap.
pub const MAX_PENDING_INCOMING: usize = 128;

/// Connections to one peer: two, for when both sides dial each other at once. (When both
/// have one free slot left and dial each other at once, each keeps its own dial and refuses
/// the other's, and both connections close.)
pub const MAX_PER_PEER: u32 = 2;

/// Inbound connections past the limits held open at once for a newcomer to learn other peers;
/// past it, such connections are refused at once (a flood of newcomers is then introduced a
/// few at a time, each retrying with backoff).
pub const MAX_GRACE_CONNECTIONS: usize = 16;

/// How long a connection past the limits stays open: identify and one Kademlia request and
/// answer take a few round trips, well under a second on most links.
pub const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// Fewest connections [`ConnectionBudget::new`] allows: one inbound and one to dial out with.
pub const MIN_CONNECTIONS: u32 = 2;

/// The connection limits derived from one setting, the most connections established at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// Established connections, both directions.
    pub max_established: u32,
    /// Established inbound connections: three quarters of the total (at least one), so that
    /// a flood of inbound connections cannot take the slots this node needs to dial out
    /// (an eclipse).
    pub max_incoming: u32,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitReached {
    #[error("{0} inbound handshakes are in progress already")]
    PendingInbound(usize),
    #[error("the limit of {0} inbound connections is reached")]
    Inbound(u32),
    #[error("the peer has {0} connections already")]
    PerPeer(u32),
    #[error("the limit of {0} connections is reached")]
    Total(u32),
}

/// The behaviour that applies a [`ConnectionBudget`].
#[derive(Debug)]
pub struct ConnectionGuard {
    budget: ConnectionBudget,
    pending_incoming: HashSet<ConnectionId>,
    /// Our dials still in progress, so that a burst of discoveries does not dial past the
    /// outbound share before any of them connects.
    pending_outgoing: HashSet<ConnectionId>,
    incoming: HashSet<ConnectionId>,
    outgoing: HashSet<ConnectionId>,
    /// Established connections per connected peer; a peer leaves with its last connection.
    per_peer: HashMap<PeerId, u32>,
    /// Inbound connections past the limits, held open until the instant given (at most
    /// [`MAX_GRACE_CONNECTIONS`]).
    grace: HashMap<ConnectionId, (PeerId, Instant)>,
    refused_incoming: u64,
    refused_outgoing: u64,
}

impl LimitReached {
    /// Whether raising `--max-connections` would have let the connection in.
    pub fn is_set_by_max_connections(self) -> bool {
        matches!(self, LimitReached::Inbound(_) | LimitReached::Total(_))
    }
}

impl ConnectionBudget {
    /// The budget for at most `max_connections` connections (raised to [`MIN_CONNECTIONS`]).
    pub fn new(max_connections: u32) -> ConnectionBudget {
        let max_established = max_connections.max(MIN_CONNECTIONS);
        // Three quarters of a u32 fits in a u32.
        let three_quarters = u32::try_from(u64::from(max_established) * 3 / 4).unwrap_or(1);
        ConnectionBudget {
            max_established,
            max_incoming: three_quarters.max(1),
        }
    }
}

impl ConnectionGuard {
    pub fn new(budget: ConnectionBudget) -> ConnectionGuard {
        ConnectionGuard {
            budget,
            pending_incoming: HashSet::new(),
            pending_outgoing: HashSet::new(),
            incoming: HashSet::new(),
            outgoing: HashSet::new(),
            per_peer: HashMap::new(),
            grace: HashMap::new(),
            refused_incoming: 0,
            refused_outgoing: 0,
        }
    }

    /// The connections established now, the limits, and what they refused.
    pub fn status(&self) -> ConnectionStatus {
        // The sets hold at most `max_established` (a u32) ids.
        let count = |set: &HashSet<ConnectionId>| u32::try_from(set.len()).unwrap_or(u32::MAX);
        ConnectionStatus {
            incoming: count(&self.incoming),
            outgoing: count(&self.outgoing),
            max_established: self.budget.max_established,
            max_incoming: self.budget.max_incoming,
            refused_incoming: self.refused_incoming,
            refused_outgoing: self.refused_outgoing,
            grace: u32::try_from(self.grace.len()).unwrap_or(u32::MAX),
        }
    }

    /// Grace connections whose time is up, for the swarm task to close (each is reported
    /// again until it has closed).
    pub fn expired_grace(&self, now: Instant) -> Vec<(PeerId, ConnectionId)> {
        self.grace
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(connection, (peer, _))| (*peer, *connection))
            .collect()
    }

    /// Whether `connection` is held open only for a newcomer to learn other peers.
    pub fn is_grace(&self, connection: ConnectionId) -> bool {
        self.grace.contains_key(&connection)
    }

    /// Whether every connection to `peer` is a grace connection (it is not a neighbour).
    pub fn is_grace_only(&self, peer: &PeerId) -> bool {
        let graced = self
            .grace
            .values()
            .filter(|(owner, _)| owner == peer)
            .count();
        graced > 0 && self.per_peer.get(peer).copied().unwrap_or(0) as usize <= graced
    }

    /// Whether no further connection would be accepted, in either direction.
    pub fn is_full(&self) -> bool {
        self.established() >= self.budget.max_established as usize
    }

    /// Whether a dial of this node's own choosing (a peer that discovery found) fits in the
    /// quarter of the budget kept for outbound connections, counting dials in progress. Dials
    /// that fill more would take the room left for peers that connect in, such as newcomers
    /// bootstrapping from here. (Kademlia's own lookups dial too, and are not held back.)
    pub fn wants_outbound(&self) -> bool {
        let outbound_share = self.budget.max_established - self.budget.max_incoming;
        let outbound = self.outgoing.len() + self.pending_outgoing.len();
        !self.is_full() && outbound < outbound_share as usize
    }

    /// This node's dials not yet connected or failed.
    pub fn dials_in_progress(&self) -> usize {
        self.pending_outgoing.len()
    }

    /// Connections refused since the node started: inbound, then our own dials.
    pub fn refused(&self) -> (u64, u64) {
        (self.refused_incoming, self.refused_outgoing)
    }

    fn established(&self) -> usize {
        self.incoming.len() + self.outgoing.len()
    }

    /// Checks the limits that apply to a new established connection to `peer`.
    fn admit(&self, peer: &PeerId, inbound: bool) -> Result<(), LimitReached> {
        let budget = self.budget;
        if inbound && self.incoming.len() >= budget.max_incoming as usize {
            return Err(LimitReached::Inbound(budget.max_incoming));
        }
        if self.per_peer.get(peer).copied().unwrap_or(0) >= MAX_PER_PEER {
            return Err(LimitReached::PerPeer(MAX_PER_PEER));
        }
        if self.is_full() {
            return Err(LimitReached::Total(budget.max_established));
        }
        Ok(())
    }

    /// Counts a refusal. Refusals that a higher `--max-connections` would avoid warn on the
    /// first and then at each power of two, so a node at its limit says so without flooding
    /// its log; the others (a third connection to one peer, usually a duplicate dial) are
    /// routine.
    fn refuse(&mut self, inbound: bool, reason: LimitReached) -> ConnectionDenied {
        self.count_refusal(inbound, reason);
        ConnectionDenied::new(reason)
    }

    fn count_refusal(&mut self, inbound: bool, reason: LimitReached) {
        let (count, direction) = if inbound {
            self.refused_incoming += 1;
            (self.refused_incoming, "inbound")
        } else {
            self.refused_outgoing += 1;
            (self.refused_outgoing, "outbound")
        };
        if reason.is_set_by_max_connections() && count.is_power_of_two() {
            warn!(
                direction,
                refused = count,
                %reason,
                "connection refused; raise --max-connections if this node should take more"
            );
        } else {
            debug!(direction, refused = count, %reason, "connection refused");
        }
    }

    /// Whether an inbound connection refused for `reason` may stay open for a grace period:
    /// refused by the limits (not as a duplicate), from a peer with no other connection, and
    /// with a grace place free.
    fn may_grace(&self, peer: &PeerId, reason: LimitReached) -> bool {
        reason.is_set_by_max_connections()
            && !self.per_peer.contains_key(peer)
            && self.grace.len() < MAX_GRACE_CONNECTIONS
    }
}

impl NetworkBehaviour for ConnectionGuard {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        if self.pending_incoming.len() >= MAX_PENDING_INCOMING {
            let reason = LimitReached::PendingInbound(MAX_PENDING_INCOMING);
            return Err(self.refuse(true, reason));
        }
        self.pending_incoming.insert(connection_id);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending_incoming.remove(&connection_id);
        match self.admit(&peer, true) {
            Ok(()) => Ok(dummy::ConnectionHandler),
            Err(reason) if self.may_grace(&peer, reason) => {
                self.count_refusal(true, reason);
                debug!(%peer, "holding a connection past the limits open to introduce the peer");
                self.grace
                    .insert(connection_id, (peer, Instant::now() + GRACE_PERIOD));
                Ok(dummy::ConnectionHandler)
            }
            Err(reason) => Err(self.refuse(true, reason)),
        }
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.pending_outgoing.insert(connection_id);
        Ok(Vec::new())
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending_outgoing.remove(&connection_id);
        match self.admit(&peer, false) {
            Ok(()) => Ok(dummy::ConnectionHandler),
            Err(reason) => Err(self.refuse(false, reason)),
        }
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                match endpoint {
                    _ if self.grace.contains_key(&connection_id) => false,
                    ConnectedPoint::Listener { .. } => self.incoming.insert(connection_id),
                    ConnectedPoint::Dialer { .. } => self.outgoing.insert(connection_id),
                };
                *self.per_peer.entry(peer_id).or_default() += 1;
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => {
                let counted = self.incoming.remove(&connection_id)
                    | self.outgoing.remove(&connection_id)
                    | self.grace.remove(&connection_id).is_some();
                if counted {
                    if let Some(count) = self.per_peer.get_mut(&peer_id) {
                        *count = count.saturating_sub(1);
                        if *count == 0 {
                            self.per_peer.remove(&peer_id);
                        }
                    }
                }
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.pending_incoming.remove(&connection_id);
            }
            FromSwarm::DialFailure(DialFailure { connection_id, .. }) => {
                self.pending_outgoing.remove(&connection_id);
            }
            _ => {}
        }
    }

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

#[cfg(test)]
mod tests {
    use libp2p::core::Endpoint;

    use super::*;

    fn listener() -> ConnectedPoint {
        ConnectedPoint::Listener {
            local_addr: Multiaddr::empty(),
            send_back_addr: Multiaddr::empty(),
        }
    }

    fn dialer() -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: Multiaddr::empty(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::New,
        }
    }

    /// Offers a connection to the guard as the swarm would; `Ok` with its id when admitted.
    fn open(
        guard: &mut ConnectionGuard,
        id: usize,
        peer: PeerId,
        endpoint: &ConnectedPoint,
    ) -> Result<ConnectionId, ConnectionDenied> {
        let connection_id = ConnectionId::new_unchecked(id);
        let none = Multiaddr::empty();
        match endpoint {
            ConnectedPoint::Listener { .. } => {
                guard.handle_pending_inbound_connection(connection_id, &none, &none)?;
                guard.handle_established_inbound_connection(connection_id, peer, &none, &none)?;
            }
            ConnectedPoint::Dialer { .. } => {
                guard.handle_pending_outbound_connection(
                    connection_id,
                    Some(peer),
                    &[],
                    Endpoint::Dialer,
                )?;
                guard.handle_established_outbound_connection(
                    connection_id,
                    peer,
                    &none,
                    Endpoint::Dialer,
                    PortUse::New,
                )?;
            }
        }
        guard.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id,
            endpoint,
            failed_addresses: &[],
            other_established: 0,
        }));
        Ok(connection_id)
    }

    fn close(
        guard: &mut ConnectionGuard,
        id: ConnectionId,
        peer: PeerId,
        endpoint: &ConnectedPoint,
    ) {
        guard.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: id,
            endpoint,
            cause: None,
            remaining_established: 0,
        }));
    }

    #[test]
    fn limits_hold_in_each_direction() {
        let mut guard = ConnectionGuard::new(ConnectionBudget::new(4));
        let (inbound, outbound) = (listener(), dialer());
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        // Three inbound fill the inbound share; a fourth inbound is refused (held open only for
        // a grace period, outside the limits), a dial is not.
        for (id, peer) in peers[..3].iter().enumerate() {
            open(&mut guard, id, *peer, &inbound).unwrap();
        }
        let graced = open(&mut guard, 10, peers[3], &inbound).unwrap();
        assert!(guard.is_grace(graced) && guard.is_grace_only(&peers[3]));
        assert_eq!((guard.status().incoming, guard.status().grace), (3, 1));
        assert!(guard.wants_outbound());
        let dialled = open(&mut guard, 11, peers[3], &outbound).unwrap();
        assert!(guard.is_full() && !guard.wants_outbound());
        // At the total, even our own dial is refused.
        assert!(open(&mut guard, 12, peers[4], &outbound).is_err());
        assert_eq!(guard.refused(), (1, 1));
        assert!(guard.pending_incoming.is_empty() && guard.pending_outgoing.is_empty());
        // A closed connection frees its slot.
        close(&mut guard, dialled, peers[3], &outbound);
        assert!(!guard.is_full());
        // Discovery fills only the outbound quarter: one outbound connection uses it up,
        // though a slot is still free for a peer that connects in.
        close(
            &mut guard,
            ConnectionId::new_unchecked(2),
            peers[2],
            &inbound,
        );
        open(&mut guard, 13, peers[3], &outbound).unwrap();
        assert!(!guard.is_full() && !guard.wants_outbound());
    }

    #[test]
    fn dials_in_progress_count_against_the_outbound_share() {
        // A limit of 8 keeps two for dialling out.
        let mut guard = ConnectionGuard::new(ConnectionBudget::new(8));
        let dial = |guard: &mut ConnectionGuard, id| {
            let id = ConnectionId::new_unchecked(id);
            guard
                .handle_pending_outbound_connection(id, None, &[], Endpoint::Dialer)
                .unwrap();
            id
        };
        dial(&mut guard, 0);
        assert!(guard.wants_outbound());
        let second = dial(&mut guard, 1);
        assert!(
            !guard.wants_outbound(),
            "a burst of discoveries dialled past the share"
        );
        // A failed dial gives its place back.
        guard.on_swarm_event(FromSwarm::DialFailure(DialFailure {
            peer_id: None,
            error: &libp2p::swarm::DialError::Aborted,
            connection_id: second,
        }));
        assert!(guard.wants_outbound());
    }

    #[test]
    fn connections_past_the_limits_get_a_bounded_grace_period() {
        // One inbound place, taken.
        let mut guard = ConnectionGuard::new(ConnectionBudget::new(2));
        let inbound = listener();
        let member = PeerId::random();
        open(&mut guard, 0, member, &inbound).unwrap();
        let newcomers: Vec<PeerId> = (0..=MAX_GRACE_CONNECTIONS)
            .map(|_| PeerId::random())
            .collect();
        let mut graced = Vec::new();
        for (id, newcomer) in newcomers[..MAX_GRACE_CONNECTIONS].iter().enumerate() {
            let connection = open(&mut guard, 1 + id, *newcomer, &inbound).unwrap();
            assert!(guard.is_grace(connection));
            graced.push(connection);
        }
        // Past the grace places, a newcomer is refused at once.
        let last = newcomers[MAX_GRACE_CONNECTIONS];
        assert!(open(&mut guard, 100, last, &inbound).is_err());
        // A second connection of a peer already connected is never graced.
        assert!(open(&mut guard, 101, member, &inbound).is_err());
        let status = guard.status();
        assert_eq!(status.incoming, 1);
        assert_eq!(status.grace as usize, MAX_GRACE_CONNECTIONS);
        assert_eq!(status.refused_incoming, MAX_GRACE_CONNECTIONS as u64 + 2);
        // Nothing expires before the grace period ends; everything after.
        let now = Instant::now();
        assert!(guard.expired_grace(now).is_empty());
        let expired = guard.expired_grace(now + GRACE_PERIOD);
        assert_eq!(expired.len(), MAX_GRACE_CONNECTIONS);
        // Once closed, a grace connection frees its place and the peer is forgotten.
        close(&mut guard, graced[0], newcomers[0], &inbound);
        assert!(!guard.is_grace_only(&newcomers[0]) && !guard.per_peer.contains_key(&newcomers[0]));
        let replaced = open(&mut guard, 102, last, &inbound).unwrap();
        assert!(guard.is_grace(replaced));
    }

    #[test]
    fn a_peer_gets_two_connections_at_most() {
        let mut guard = ConnectionGuard::new(ConnectionBudget::new(8));
        let (inbound, outbound) = (listener(), dialer());
        let peer = PeerId::random();
        open(&mut guard, 0, peer, &outbound).unwrap();
        open(&mut guard, 1, peer, &inbound).unwrap();
        let refused = [
            open(&mut guard, 2, peer, &inbound).unwrap_err(),
            open(&mut guard, 3, peer, &outbound).unwrap_err(),
        ];
        for denied in refused {
            let reason = denied.downcast::<LimitReached>().unwrap();
            assert_eq!(reason, LimitReached::PerPeer(2));
            assert!(!reason.is_set_by_max_connections());
        }
        assert_eq!(guard.refused(), (1, 1));
        // Another peer still gets in.
        open(&mut guard, 4, PeerId::random(), &inbound).unwrap();
    }

    #[test]
    fn a_peer_is_forgotten_with_its_last_connection() {
        let mut guard = ConnectionGuard::new(ConnectionBudget::new(8));
        let inbound = listener();
        for round in 0..1_000 {
            let peer = PeerId::random();
            let first = open(&mut guard, 2 * round, peer, &inbound).unwrap();
            let second = open(&mut guard, 2 * round + 1, peer, &inbound).unwrap();
            close(&mut guard, first, peer, &inbound);
            assert_eq!(guard.per_peer.get(&peer), Some(&1));
            close(&mut guard, second, peer, &inbound);
        }
        assert!(
            guard.per_peer.is_empty(),
            "{} peers kept",
            guard.per_peer.len()
        );
        assert!(guard.incoming.is_empty() && guard.pending_incoming.is_empty());
        // A denied handshake leaves nothing pending behind.
        let peer = PeerId::random();
        let id = ConnectionId::new_unchecked(5_000);
        let none = Multiaddr::empty();
        guard
            .handle_pending_inbound_connection(id, &none, &none)
            .unwrap();
        guard.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &none,
            send_back_addr: &none,
            error: &libp2p::swarm::ListenError::Aborted,
            connection_id: id,
            peer_id: Some(peer),
        }));
        assert!(guard.pending_incoming.is_empty());
    }

    #[test]
    fn the_budget_keeps_a_quarter_for_dialling_out() {
        let split = |max| {
            let budget = ConnectionBudget::new(max);
            (budget.max_established, budget.max_incoming)
        };
        assert_eq!(split(128), (128, 96));
        assert_eq!(split(7), (7, 5));
        // Never less than one inbound connection and one to dial out with.
        assert_eq!(split(0), (2, 1));
        assert_eq!(split(2), (2, 1));
        assert_eq!(split(u32::MAX), (u32::MAX, 3_221_225_471));
    }
}
