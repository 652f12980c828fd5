//! Unit tests of the degree decisions.

use super::*;

fn group(n: u8) -> NetGroup {
    NetGroup::Ipv4([10, 0, n])
}

fn candidate(group_n: u8, bucket: u32) -> DialCandidate {
    DialCandidate {
        peer: PeerId::random(),
        group: group(group_n),
        bucket,
    }
}

/// A connected peer, in mesh 0 when `in_mesh`.
fn connected(group_n: u8, bucket: u32, outbound: bool, in_mesh: bool) -> ConnectedPeer {
    ConnectedPeer {
        peer: PeerId::random(),
        group: group(group_n),
        bucket,
        outbound,
        meshes: if in_mesh { vec![0] } else { Vec::new() },
        score: 0.0,
    }
}

fn target(low: u32, high: u32) -> DegreeTarget {
    DegreeTarget::new(low, high).unwrap()
}

#[test]
fn watermarks_must_make_sense() {
    assert_eq!(DegreeTarget::new(0, 10), Err(DegreeError::LowIsZero));
    assert_eq!(
        DegreeTarget::new(10, 9),
        Err(DegreeError::HighBelowLow { low: 10, high: 9 })
    );
    let equal = DegreeTarget::new(5, 5).unwrap();
    assert_eq!((equal.low(), equal.high()), (5, 5));
    let defaults = DegreeTarget::default();
    assert!(defaults.low() >= 12 + 6, "room for a full mesh and gossip");
    assert_eq!(defaults.high(), 2 * defaults.low());
}

#[test]
fn dials_only_up_to_the_low_watermark_counting_dials_in_progress() {
    let candidates: Vec<DialCandidate> = (0..50).map(|n| candidate(n, u32::from(n))).collect();
    let have: Vec<ConnectedPeer> = (0..3).map(|n| connected(100 + n, 0, true, false)).collect();
    // Low 5: three connected and one dialling leave one place.
    assert_eq!(choose_dials(target(5, 10), &have, 1, &candidates).len(), 1);
    // At or above the low watermark, nobody is dialled however many are known.
    assert!(choose_dials(target(3, 10), &have, 0, &candidates).is_empty());
    assert!(choose_dials(target(3, 10), &have, 7, &candidates).is_empty());
    // Fewer candidates than places: all of them, once each.
    let few = &candidates[..2];
    let chosen = choose_dials(target(20, 40), &[], 0, few);
    assert_eq!(chosen, vec![few[0].peer, few[1].peer]);
}

#[test]
fn dials_prefer_new_groups_then_new_buckets() {
    // Already connected in group 1, bucket 7.
    let have = vec![connected(1, 7, true, false)];
    let same_group = candidate(1, 3);
    let same_bucket = candidate(2, 7);
    let fresh = candidate(3, 4);
    let fresh_same_group = candidate(3, 5);
    let candidates = vec![
        same_group.clone(),
        same_bucket.clone(),
        fresh.clone(),
        fresh_same_group.clone(),
    ];
    let chosen = choose_dials(target(3, 10), &have, 0, &candidates);
    // First the peer sharing nothing; then group 2 (new group, though bucket 7 is taken)
    // rather than group 3 again or group 1.
    assert_eq!(chosen, vec![fresh.peer, same_bucket.peer]);
}

#[test]
fn dials_spread_over_buckets_when_every_peer_shares_one_address_range() {
    // On loopback every peer is 127.0.0.1: the bucket is then what spreads the choice.
    let candidates: Vec<DialCandidate> =
        (0..12u8).map(|n| candidate(0, u32::from(n % 3))).collect();
    let chosen = choose_dials(target(3, 6), &[], 0, &candidates);
    let buckets: Vec<u32> = chosen
        .iter()
        .map(|peer| candidates.iter().find(|c| c.peer == *peer).unwrap().bucket)
        .collect();
    assert_eq!(buckets, vec![0, 1, 2]);
}

#[test]
fn trims_only_the_surplus_above_the_high_watermark() {
    let peers: Vec<ConnectedPeer> = (0..8)
        .map(|n| connected(n, u32::from(n), false, false))
        .collect();
    assert!(trims(target(2, 8), &peers).is_empty());
    assert!(trims(target(2, 20), &peers).is_empty());
    assert_eq!(trims(target(2, 5), &peers).len(), 3);
}

/// Trims with no gossipsub mesh.
fn trims(target: DegreeTarget, peers: &[ConnectedPeer]) -> Vec<PeerId> {
    choose_trims(target, peers, &[], 4)
}

#[test]
fn trims_never_thin_a_mesh_below_its_floor() {
    // Six peers in mesh 0, one in no mesh (each in a group of its own), a floor of 4.
    let mut peers: Vec<ConnectedPeer> = (0..6).map(|n| connected(n, 0, false, true)).collect();
    let outsider = connected(9, 9, true, false);
    peers.push(outsider.clone());
    // The surplus is 5, but the mesh can spare only two.
    let trimmed = choose_trims(target(1, 2), &peers, &[6], 4);
    assert_eq!(trimmed.len(), 3);
    assert_eq!(trimmed[0], outsider.peer, "the peer in no mesh goes first");
    let mesh_left = peers[..6]
        .iter()
        .filter(|peer| !trimmed.contains(&peer.peer))
        .count();
    assert_eq!(mesh_left, 4);
    // Peers in two meshes stay while either mesh is at its floor, and go once both can spare
    // one.
    let in_two = |group_n| ConnectedPeer {
        meshes: vec![0, 1],
        ..connected(group_n, 1, false, true)
    };
    let pair = [in_two(1), in_two(2)];
    assert!(choose_trims(target(1, 1), &pair, &[6, 4], 4).is_empty());
    assert_eq!(choose_trims(target(1, 1), &pair, &[6, 5], 4).len(), 1);
}

#[test]
fn trims_take_the_crowded_group_then_inbound_then_low_scores() {
    let crowded_a = connected(1, 1, true, false);
    let crowded_b = connected(1, 2, true, false);
    let alone_inbound = connected(2, 3, false, false);
    let alone_outbound = connected(3, 4, true, false);
    let peers = vec![
        crowded_a.clone(),
        crowded_b.clone(),
        alone_inbound.clone(),
        alone_outbound.clone(),
    ];
    // One to trim: from group 1, the only one with two peers.
    let first = trims(target(1, 3), &peers);
    assert_eq!(first.len(), 1);
    assert!(first[0] == crowded_a.peer || first[0] == crowded_b.peer);
    // Two to trim: one from group 1, then (all groups alike) an inbound peer first.
    let second = trims(target(1, 2), &peers);
    assert_eq!(second.len(), 2);
    assert_eq!(second[1], alone_inbound.peer);
    // Among otherwise equal peers, the lowest score goes.
    let mut low_score = connected(5, 5, false, false);
    low_score.score = -20.0;
    let mut high_score = connected(6, 6, false, false);
    high_score.score = 5.0;
    let equal = vec![high_score.clone(), low_score.clone()];
    assert_eq!(trims(target(1, 1), &equal), vec![low_score.peer]);
}

#[test]
fn net_groups_follow_the_address_prefix() {
    let addr = |text: &str| text.parse::<Multiaddr>().unwrap();
    assert_eq!(
        net_group(&addr("/ip4/192.168.7.20/tcp/7400")),
        net_group(&addr("/ip4/192.168.7.99/udp/7400/quic-v1"))
    );
    assert_ne!(
        net_group(&addr("/ip4/192.168.7.20/tcp/7400")),
        net_group(&addr("/ip4/192.168.8.20/tcp/7400"))
    );
    assert_eq!(
        net_group(&addr("/ip6/2001:db8:1::1/tcp/1")),
        net_group(&addr("/ip6/2001:db8:1:ff::2/tcp/1"))
    );
    assert_ne!(
        net_group(&addr("/ip6/2001:db8:1::1/tcp/1")),
        net_group(&addr("/ip6/2001:db8:2::1/tcp/1"))
    );
    assert_eq!(
        net_group(&addr("/dns4/example.org/tcp/1")),
        NetGroup::Unknown
    );
}

#[test]
fn backoff_doubles_up_to_its_cap_and_resets() {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
    let delays: Vec<u64> = (0..6).map(|_| backoff.next_delay(1.0).as_secs()).collect();
    assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);
    // The spread only ever shortens, to half at most.
    assert_eq!(backoff.next_delay(0.0), Duration::from_secs(4));
    backoff.reset();
    assert_eq!(backoff.next_delay(1.0), Duration::from_secs(1));
}
