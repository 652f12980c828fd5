//! The coordination view: a deterministic fold from entries to what they mean at a time.
//!
//! **Same entries, same state, whatever the arrival order.** [`View::apply`] only files an
//! entry under keys derived from its content (entry id, author, seq, timestamp); it never
//! looks at what arrived before. Every question is answered at a time `now` passed in, from
//! the filed entries alone, by the rules below, so two nodes holding the same entries give the
//! same answers, and an auditor replaying a log gives the answer a node gave at that time.
//! Entries whose timestamp lies after `now` are ignored: at time T the view is what the
//! entries published up to T say.
//!
//! Rules (normative text in `docs/PROTOCOL.md` §9.2):
//! - **Cards.** An author's card is its latest `capability` or `capability.revoke` by
//!   (seq, id); it is live if that is a `capability` and `now < timestamp + ttlMs`.
//! - **Claims.** A claim (`intent`) runs from its timestamp until `timestamp + leaseMs`. Each
//!   `intent.renew` by the claim's author, taken in (timestamp, id) order, replaces the end
//!   with `renew.timestamp + leaseMs` if it was made while the claim was running. The earliest
//!   `intent.release` by the claim's author ends it. Renewals and releases by anyone else are
//!   ignored.
//! - **Leases.** For a resource, the live claims are ordered by (timestamp, higher priority
//!   first, entry id); claims a rate-limit constraint excludes are skipped; the first
//!   `max holders` hold the lease (1 unless a live `maxHolders` constraint says otherwise; the
//!   smallest limit wins, and `exclusive` is a limit of 1); the rest wait in that order. While
//!   a `notBefore` constraint is live and `now` is before its time, nobody holds.
//! - **Tasks.** A task's updates are taken in (timestamp, author, seq) order through the
//!   state machine of [`crate::body::TaskState::check_transition`]; an illegal update stays in the history,
//!   marked rejected with its reason, and changes nothing. A task that ended before the
//!   history the view keeps is not listed ([`View::kept_from_ms`]).
//! - **Constraints** are live from their timestamp for `ttlMs`; **patterns** are kept forever.
//!
//! Indexes keep a query at the current time from walking the whole history: every claim is
//! filed by the latest time it could still be running (`timestamp + leaseMs`, raised by each
//! in-time renewal of its author: an upper bound of its end at any `now`), per resource, per
//! author and per namespace, and every constraint by its end. A query at `now` reads only the
//! claims and constraints whose bound lies after `now`, then applies the rules above to them
//! exactly as before, so answers at every time (an audit replay's past included) are unchanged.
//! The rate limit reads one author's earlier claims on the resource from an index in lease
//! order, and stops once it has counted the limit.

mod forget;
mod leases;
mod registry;
mod space;
mod tasks;
mod timeline;

use std::collections::{BTreeMap, BTreeSet};

use plexus_crypto::{sha256, AgentId, Hash256};
use serde::Serialize;

use crate::body::{parse_entry_id, Body, Capability, Constraint, Intent, Pattern};
use crate::entry::Entry;

pub use forget::{Forgotten, Held};
use leases::order_key;
pub use leases::{ClaimStanding, ClaimView, LeaseView};
pub use registry::{CardQuery, CardView, ConstraintView, PatternView};
pub use tasks::{TaskHistoryItem, TaskView};
pub use timeline::{ClaimTimeline, ResourceTimeline, Segment, Timeline};

/// Where a task update sorts: (timestamp, author, seq, entry id).
type TaskKey = (u64, Author, u64, Hash256);

/// The fold of every entry seen, per namespace.
#[derive(Debug, Default, Clone)]
pub struct View {
    spaces: BTreeMap<String, Space>,
    interpreted: u64,
    /// What [`View::forget_before`] dropped, and whether a later entry needs it.
    horizon: forget::Horizon,
}

/// What applying one entry touched, so a node can tell who is interested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    pub namespace: String,
    pub kind: &'static str,
    pub author: AgentId,
    pub entry_id: Hash256,
    /// The resource of a claim, renewal or release (when its claim is known), or a
    /// constraint's resource pattern.
    pub resource: Option<String>,
    pub task_id: Option<String>,
}

/// Everything the view says about every namespace at one time; its digest compares views.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub at_ms: u64,
    pub namespaces: BTreeMap<String, SpaceSnapshot>,
}

/// One namespace in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpaceSnapshot {
    pub cards: Vec<CardView>,
    pub leases: Vec<LeaseView>,
    pub tasks: Vec<TaskView>,
    pub constraints: Vec<ConstraintView>,
    pub patterns: Vec<PatternView>,
}

/// Where a claim sorts in a lease: (timestamp, higher priority first, entry id).
type OrderKey = (u64, std::cmp::Reverse<u8>, Hash256);

#[derive(Debug, Default, Clone)]
struct Space {
    /// Per author, card events keyed by (seq, id).
    cards: BTreeMap<Author, BTreeMap<(u64, Hash256), CardEvent>>,
    claims: BTreeMap<Hash256, Stamped<Intent>>,
    /// Each claim's running bound: no renewal can keep it running at or after this time.
    claim_bounds: BTreeMap<Hash256, u64>,
    /// Claims per resource, by (running bound, id).
    claims_by_resource: BTreeMap<String, BTreeSet<(u64, Hash256)>>,
    /// Claims per author, by (running bound, id).
    claims_by_author: BTreeMap<Author, BTreeSet<(u64, Hash256)>>,
    /// Every claim of the namespace, by (running bound, id).
    claims_by_bound: BTreeSet<(u64, Hash256)>,
    /// Claims per (resource, author), in lease order, for the rate limit.
    claims_in_order: BTreeMap<(String, Author), BTreeSet<OrderKey>>,
    /// Constraints by (end, id).
    constraints_by_end: BTreeSet<(u64, Hash256)>,
    /// Renewals and releases by the id of the claim they name, keyed by (timestamp, id).
    renewals: BTreeMap<Hash256, BTreeMap<(u64, Hash256), Stamped<u64>>>,
    releases: BTreeMap<Hash256, BTreeMap<(u64, Hash256), Stamped<()>>>,
    /// Updates by task id, keyed by (timestamp, author, seq, id): one author's updates made in
    /// the same millisecond keep the order of its feed.
    tasks: BTreeMap<String, tasks::TaskUpdates>,
    /// Tasks that ended before the horizon, whose updates were dropped.
    finished: BTreeMap<String, tasks::Finished>,
    constraints: BTreeMap<Hash256, Stamped<Constraint>>,
    patterns: BTreeMap<Hash256, Stamped<Pattern>>,
    /// Claims, renewals and releases this node received late ([`View::mark_late`]).
    late: BTreeSet<Hash256>,
}

/// A card, or `None` for a revocation.
type CardEvent = Stamped<Option<Capability>>;

/// An author as its 32 public-key bytes, as the view files it with every entry: an
/// [`AgentId`] holds the decompressed key too (192 bytes), and the view keeps one per entry in
/// several indexes. Ordered and written (hex) as [`AgentId`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Author([u8; plexus_crypto::PUBLIC_KEY_LEN]);

impl From<&AgentId> for Author {
    fn from(agent: &AgentId) -> Author {
        Author(*agent.as_bytes())
    }
}

impl Author {
    /// The [`AgentId`] these bytes came from (they were a valid key when filed).
    fn agent_id(&self) -> Option<AgentId> {
        AgentId::from_bytes(&self.0).ok()
    }
}

impl std::fmt::Display for Author {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Stamped<T> {
    id: Hash256,
    author: Author,
    timestamp_ms: u64,
    value: T,
}

impl<T> Stamped<T> {
    fn at((id, author, timestamp_ms): (Hash256, Author, u64), value: T) -> Stamped<T> {
        Stamped {
            id,
            author,
            timestamp_ms,
            value,
        }
    }
}

impl View {
    /// An empty view.
    pub fn new() -> View {
        View::default()
    }

    /// Files one entry with its parsed body: the body admission parsed, or for an entry read
    /// back from a log or a file, [`crate::coord::body_for_view`]'s (an entry without a body
    /// the view can read is not applied at all). Bodies of kinds the view does not interpret
    /// (`policy`, application kinds) and a body of another kind than the entry's are skipped
    /// (`None`); applying an entry twice is a no-op.
    pub fn apply(&mut self, entry: &Entry, body: Body) -> Option<Touched> {
        let header = entry.header();
        if entry.kind() != Ok(body.kind()) {
            return None;
        }
        if self.needs_forgotten(
            self.spaces.get(&header.namespace),
            &body,
            header.timestamp_ms,
        ) {
            self.horizon.stale = true;
        }
        let id = entry.id();
        let author = Author::from(&header.author);
        let timestamp_ms = header.timestamp_ms;
        let meta = (id, author, timestamp_ms);
        let kind = body.kind().as_str();
        let space = self.spaces.entry(header.namespace.clone()).or_default();
        let mut resource = None;
        let mut task_id = None;
        match body {
            Body::Capability(card) => {
                space
                    .cards
                    .entry(author)
                    .or_default()
                    .insert((header.seq, id), Stamped::at(meta, Some(card)));
            }
            Body::CapabilityRevoke(_) => {
                space
                    .cards
                    .entry(author)
                    .or_default()
                    .insert((header.seq, id), Stamped::at(meta, None));
            }
            Body::Intent(intent) => {
                resource = Some(intent.resource.clone());
                space.file_claim(Stamped::at(meta, intent));
            }
            Body::IntentRenew(renew) => {
                let claim = parse_entry_id(&renew.claim)?;
                resource = space.claims.get(&claim).map(|c| c.value.resource.clone());
                space
                    .renewals
                    .entry(claim)
                    .or_default()
                    .insert((timestamp_ms, id), Stamped::at(meta, renew.lease_ms));
                space.raise_bound(&claim);
            }
            Body::IntentRelease(release) => {
                let claim = parse_entry_id(&release.claim)?;
                resource = space.claims.get(&claim).map(|c| c.value.resource.clone());
                space
                    .releases
                    .entry(claim)
                    .or_default()
                    .insert((timestamp_ms, id), Stamped::at(meta, ()));
            }
            Body::Task(update) => {
                task_id = Some(update.task_id.clone());
                space.file_task(
                    (timestamp_ms, author, header.seq, id),
                    Stamped::at(meta, update),
                );
            }
            Body::Constraint(constraint) => {
                resource = Some(constraint.resource.clone());
                let end = timestamp_ms.saturating_add(constraint.ttl_ms);
                space.constraints_by_end.insert((end, id));
                space.constraints.insert(id, Stamped::at(meta, constraint));
            }
            Body::Pattern(pattern) => {
                space.patterns.insert(id, Stamped::at(meta, pattern));
            }
            Body::Policy(_) | Body::Application(_) => return None,
        }
        self.interpreted += 1;
        Some(Touched {
            namespace: header.namespace.clone(),
            kind,
            author: header.author,
            entry_id: id,
            resource,
            task_id,
        })
    }

    /// Marks the entry `id` of `namespace` as received late by this node (a claim, renewal
    /// or release, `docs/PROTOCOL.md` §9.4). The mark only shows in [`ClaimView::late`]; the
    /// lease order ignores it, so views that hold the same entries still agree on every
    /// holder. Marking before or after the entry is applied gives the same view.
    pub fn mark_late(&mut self, namespace: &str, id: Hash256) {
        self.spaces
            .entry(namespace.to_owned())
            .or_default()
            .late
            .insert(id);
    }

    /// How many entries were filed (re-applied duplicates included).
    pub fn interpreted(&self) -> u64 {
        self.interpreted
    }

    /// The namespaces that have coordination entries.
    pub fn namespaces(&self) -> Vec<String> {
        self.spaces.keys().cloned().collect()
    }

    /// Everything, at one time.
    pub fn snapshot(&self, now_ms: u64) -> Snapshot {
        let all = CardQuery::default();
        Snapshot {
            at_ms: now_ms,
            namespaces: self
                .spaces
                .keys()
                .map(|namespace| {
                    (
                        namespace.clone(),
                        SpaceSnapshot {
                            cards: self.cards(namespace, &all, now_ms),
                            leases: self.leases(namespace, now_ms),
                            tasks: self.tasks(namespace, now_ms),
                            constraints: self.constraints(namespace, now_ms),
                            patterns: self.patterns(namespace, None, now_ms),
                        },
                    )
                })
                .collect(),
        }
    }

    /// SHA-256 of the snapshot's JSON without this node's late marks: equal for views of
    /// the same entries, whenever each node received them.
    pub fn digest(&self, now_ms: u64) -> Hash256 {
        let mut snapshot = self.snapshot(now_ms);
        for space in snapshot.namespaces.values_mut() {
            for lease in &mut space.leases {
                let claims = lease.holders.iter_mut().chain(&mut lease.waiting);
                for claim in claims.chain(&mut lease.excluded) {
                    claim.late = false;
                }
            }
        }
        // Serialising plain data into a Vec cannot fail.
        sha256(&serde_json::to_vec(&snapshot).unwrap_or_default())
    }
}

/// Whether a constraint's resource pattern (a name, or a prefix ending in `*`) covers `resource`.
pub fn resource_matches(pattern: &str, resource: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => resource.starts_with(prefix),
        None => pattern == resource,
    }
}
