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
//!   state machine of [`TaskState::check_transition`]; an illegal update stays in the history,
//!   marked rejected with its reason, and changes nothing.
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

mod timeline;

use std::collections::{BTreeMap, BTreeSet};

use plexus_crypto::{sha256, AgentId, Hash256};
use serde::Serialize;

mod space;

use crate::body::{
    parse_entry_id, Body, Capability, Constraint, ConstraintRule, Intent, Pattern, Skill,
    TaskState, TaskUpdate,
};
use crate::entry::Entry;

pub use timeline::{ClaimTimeline, ResourceTimeline, Segment, Timeline};

/// Where a task update sorts: (timestamp, author, seq, entry id).
type TaskKey = (u64, AgentId, u64, Hash256);

/// The fold of every entry seen, per namespace.
#[derive(Debug, Default, Clone)]
pub struct View {
    spaces: BTreeMap<String, Space>,
    interpreted: u64,
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

/// A card as the registry shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardView {
    pub author: String,
    pub name: String,
    pub description: String,
    pub version: String,
    pub url: Option<String>,
    pub skills: Vec<Skill>,
    pub published_ms: u64,
    pub expires_ms: u64,
    pub entry_id: String,
}

/// Where a claim stands at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "standing")]
pub enum ClaimStanding {
    /// The claim holds the lease.
    Holding,
    /// The claim is live and waits; `position` 1 is next.
    Waiting { position: usize },
    /// The claim is live, but a `notBefore` constraint keeps everyone out until `until_ms`.
    Blocked { until_ms: u64 },
    /// A rate-limit constraint excludes the claim.
    RateLimited,
    /// The lease ran out.
    Expired,
    /// Its author released it.
    Released,
}

/// A claim as the lease table shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimView {
    pub claim_id: String,
    pub author: String,
    pub resource: String,
    pub action: String,
    pub note: String,
    pub priority: u8,
    pub claimed_ms: u64,
    /// When the lease ends unless renewed (or ended, for a released claim: the release time).
    pub expires_ms: u64,
    #[serde(flatten)]
    pub standing: ClaimStanding,
    /// Whether this node received the claim, or a renewal or release of it by its author, as
    /// history long after its timestamp (`docs/PROTOCOL.md` §9.4): a per-node annotation that
    /// never changes the lease order. Serialised only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// One resource's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseView {
    pub resource: String,
    pub max_holders: u32,
    pub holders: Vec<ClaimView>,
    pub waiting: Vec<ClaimView>,
    /// Live claims that do not count: rate-limited, or blocked by `notBefore`.
    pub excluded: Vec<ClaimView>,
}

/// A task with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskView {
    pub task_id: String,
    pub context_id: String,
    pub state: TaskState,
    pub message: String,
    /// The author of the task's first accepted update.
    pub created_by: String,
    pub updated_by: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub history: Vec<TaskHistoryItem>,
}

/// One update in a task's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskHistoryItem {
    pub entry_id: String,
    pub author: String,
    pub timestamp_ms: u64,
    pub state: TaskState,
    pub message: String,
    pub references: Vec<String>,
    /// Why the state machine refused this update; `None` when it was applied.
    pub rejected: Option<String>,
}

/// A live constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConstraintView {
    pub entry_id: String,
    pub author: String,
    pub resource: String,
    pub rule: ConstraintRule,
    pub note: String,
    pub published_ms: u64,
    pub expires_ms: u64,
}

/// A shared pattern.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatternView {
    pub entry_id: String,
    pub author: String,
    pub topic: String,
    pub summary: String,
    pub data: serde_json::Value,
    pub confidence: f64,
    pub references: Vec<String>,
    pub published_ms: u64,
}

/// Filters for the capability registry; each given filter must match (case-insensitively).
#[derive(Debug, Clone, Default)]
pub struct CardQuery {
    /// A skill id or name.
    pub skill: Option<String>,
    /// A tag of any skill.
    pub tag: Option<String>,
    /// Text found in the name, description, or any skill's name, description or tags.
    pub text: Option<String>,
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
    cards: BTreeMap<AgentId, BTreeMap<(u64, Hash256), CardEvent>>,
    claims: BTreeMap<Hash256, Stamped<Intent>>,
    /// Each claim's running bound: no renewal can keep it running at or after this time.
    claim_bounds: BTreeMap<Hash256, u64>,
    /// Claims per resource, by (running bound, id).
    claims_by_resource: BTreeMap<String, BTreeSet<(u64, Hash256)>>,
    /// Claims per author, by (running bound, id).
    claims_by_author: BTreeMap<AgentId, BTreeSet<(u64, Hash256)>>,
    /// Every claim of the namespace, by (running bound, id).
    claims_by_bound: BTreeSet<(u64, Hash256)>,
    /// Claims per (resource, author), in lease order, for the rate limit.
    claims_in_order: BTreeMap<(String, AgentId), BTreeSet<OrderKey>>,
    /// Constraints by (end, id).
    constraints_by_end: BTreeSet<(u64, Hash256)>,
    /// Renewals and releases by the id of the claim they name, keyed by (timestamp, id).
    renewals: BTreeMap<Hash256, BTreeMap<(u64, Hash256), Stamped<u64>>>,
    releases: BTreeMap<Hash256, BTreeMap<(u64, Hash256), Stamped<()>>>,
    /// Updates by task id, keyed by (timestamp, author, seq, id): one author's updates made in
    /// the same millisecond keep the order of its feed.
    tasks: BTreeMap<String, BTreeMap<TaskKey, Stamped<TaskUpdate>>>,
    constraints: BTreeMap<Hash256, Stamped<Constraint>>,
    patterns: BTreeMap<Hash256, Stamped<Pattern>>,
    /// Claims, renewals and releases this node received late ([`View::mark_late`]).
    late: BTreeSet<Hash256>,
}

/// A card, or `None` for a revocation.
type CardEvent = Stamped<Option<Capability>>;

#[derive(Debug, Clone)]
struct Stamped<T> {
    id: Hash256,
    author: AgentId,
    timestamp_ms: u64,
    value: T,
}

impl<T> Stamped<T> {
    fn at((id, author, timestamp_ms): (Hash256, AgentId, u64), value: T) -> Stamped<T> {
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

    /// Files one entry. Entries of application kinds, entries whose body was pruned and
    /// entries whose body does not parse are skipped (`None`); applying an entry twice is a
    /// no-op.
    pub fn apply(&mut self, entry: &Entry) -> Option<Touched> {
        let header = entry.header();
        if header
            .kind
            .starts_with(crate::kind::APPLICATION_KIND_PREFIX)
        {
            // Never interpreted: spare parsing the body.
            return None;
        }
        let body = Body::parse(&header.kind, entry.body()?).ok()?;
        let id = entry.id();
        let author = header.author;
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
                space
                    .tasks
                    .entry(update.task_id.clone())
                    .or_default()
                    .insert(
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
            author,
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

    /// Live cards matching `query`, by author.
    pub fn cards(&self, namespace: &str, query: &CardQuery, now_ms: u64) -> Vec<CardView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        space
            .cards
            .iter()
            .filter_map(|(author, events)| {
                let latest = events
                    .values()
                    .rev()
                    .find(|event| event.timestamp_ms <= now_ms)?;
                let card = latest.value.as_ref()?;
                let expires_ms = latest.timestamp_ms.saturating_add(card.ttl_ms);
                (now_ms < expires_ms && query.matches(card)).then(|| CardView {
                    author: author.to_string(),
                    name: card.name.clone(),
                    description: card.description.clone(),
                    version: card.version.clone(),
                    url: card.url.clone(),
                    skills: card.skills.clone(),
                    published_ms: latest.timestamp_ms,
                    expires_ms,
                    entry_id: latest.id.to_string(),
                })
            })
            .collect()
    }

    /// The lease on one resource.
    pub fn lease(&self, namespace: &str, resource: &str, now_ms: u64) -> LeaseView {
        let mut lease = LeaseView {
            resource: resource.to_owned(),
            max_holders: 1,
            holders: Vec::new(),
            waiting: Vec::new(),
            excluded: Vec::new(),
        };
        let Some(space) = self.spaces.get(namespace) else {
            return lease;
        };
        let rules = space.rules_for(resource, now_ms);
        lease.max_holders = rules.max_holders;
        let mut live = Vec::new();
        for claim in space.claims_on(resource, now_ms) {
            let (expires_ms, ended) = space.claim_end(claim, now_ms);
            if ended.is_none() && now_ms < expires_ms {
                live.push((claim, expires_ms));
            }
        }
        live.sort_by_key(|(claim, _)| order_key(claim));
        let mut contenders = Vec::new();
        for (claim, expires_ms) in live {
            if space.rate_limited(claim, &rules.rate_limits) {
                lease.excluded.push(claim_view(
                    space,
                    claim,
                    expires_ms,
                    ClaimStanding::RateLimited,
                ));
            } else if let Some(until_ms) = rules.not_before.filter(|at| now_ms < *at) {
                let standing = ClaimStanding::Blocked { until_ms };
                lease
                    .excluded
                    .push(claim_view(space, claim, expires_ms, standing));
            } else {
                contenders.push((claim, expires_ms));
            }
        }
        let max_holders = usize::try_from(rules.max_holders).unwrap_or(usize::MAX);
        for (index, (claim, expires_ms)) in contenders.into_iter().enumerate() {
            if index < max_holders {
                lease
                    .holders
                    .push(claim_view(space, claim, expires_ms, ClaimStanding::Holding));
            } else {
                let position = index - max_holders + 1;
                let standing = ClaimStanding::Waiting { position };
                lease
                    .waiting
                    .push(claim_view(space, claim, expires_ms, standing));
            }
        }
        lease
    }

    /// Every resource with at least one live claim, by resource name.
    pub fn leases(&self, namespace: &str, now_ms: u64) -> Vec<LeaseView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        space
            .resources_running(now_ms)
            .into_iter()
            .map(|resource| self.lease(namespace, resource, now_ms))
            .filter(|lease| {
                !(lease.holders.is_empty() && lease.waiting.is_empty() && lease.excluded.is_empty())
            })
            .collect()
    }

    /// The resources that may have a live claim at `now_ms` (every resource with one, and
    /// perhaps a few whose claims were released), by name: what has to be re-evaluated as time
    /// passes, found without walking expired claims.
    pub fn live_resources(&self, namespace: &str, now_ms: u64) -> Vec<String> {
        self.spaces
            .get(namespace)
            .map(|space| {
                space
                    .resources_running(now_ms)
                    .into_iter()
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One claim and where it stands.
    pub fn claim(&self, namespace: &str, claim_id: &Hash256, now_ms: u64) -> Option<ClaimView> {
        let space = self.spaces.get(namespace)?;
        let claim = space.claims.get(claim_id)?;
        if claim.timestamp_ms > now_ms {
            return None;
        }
        let (expires_ms, ended) = space.claim_end(claim, now_ms);
        if let Some(released_ms) = ended {
            return Some(claim_view(
                space,
                claim,
                released_ms,
                ClaimStanding::Released,
            ));
        }
        if now_ms >= expires_ms {
            return Some(claim_view(space, claim, expires_ms, ClaimStanding::Expired));
        }
        let lease = self.lease(namespace, &claim.value.resource, now_ms);
        let id = claim_id.to_string();
        lease
            .holders
            .into_iter()
            .chain(lease.waiting)
            .chain(lease.excluded)
            .find(|view| view.claim_id == id)
    }

    /// The author and resource of a claim, if the claim is known.
    pub fn claim_owner(&self, namespace: &str, claim_id: &Hash256) -> Option<(AgentId, String)> {
        let claim = self.spaces.get(namespace)?.claims.get(claim_id)?;
        Some((claim.author, claim.value.resource.clone()))
    }

    /// Claims by `author` that are still running (holding, waiting or excluded).
    pub fn live_claims_of(&self, namespace: &str, author: &AgentId, now_ms: u64) -> Vec<ClaimView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        let resources: BTreeSet<&String> = space
            .claims_by_author
            .get(author)
            .into_iter()
            .flat_map(|claims| claims.range((now_ms.saturating_add(1), Hash256([0; 32]))..))
            .filter_map(|(_, id)| space.claims.get(id))
            .filter(|claim| claim.timestamp_ms <= now_ms)
            .map(|claim| &claim.value.resource)
            .collect();
        let author = author.to_string();
        resources
            .into_iter()
            .flat_map(|resource| {
                let lease = self.lease(namespace, resource, now_ms);
                lease
                    .holders
                    .into_iter()
                    .chain(lease.waiting)
                    .chain(lease.excluded)
            })
            .filter(|view| view.author == author)
            .collect()
    }

    /// Every task, by task id.
    pub fn tasks(&self, namespace: &str, now_ms: u64) -> Vec<TaskView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        space
            .tasks
            .keys()
            .filter_map(|task_id| self.task(namespace, task_id, now_ms))
            .collect()
    }

    /// One task, replayed through the state machine.
    pub fn task(&self, namespace: &str, task_id: &str, now_ms: u64) -> Option<TaskView> {
        let updates = self.spaces.get(namespace)?.tasks.get(task_id)?;
        let mut view: Option<TaskView> = None;
        for update in updates.values().filter(|u| u.timestamp_ms <= now_ms) {
            let state = update.value.status.state;
            let from = view.as_ref().map(|task| task.state);
            let verdict = state.check_transition(from);
            let item = TaskHistoryItem {
                entry_id: update.id.to_string(),
                author: update.author.to_string(),
                timestamp_ms: update.timestamp_ms,
                state,
                message: update.value.status.message.clone(),
                references: update.value.references.clone(),
                rejected: verdict.clone().err(),
            };
            match (&mut view, verdict) {
                (None, Ok(())) => {
                    view = Some(TaskView {
                        task_id: task_id.to_owned(),
                        context_id: update.value.context_id.clone(),
                        state,
                        message: update.value.status.message.clone(),
                        created_by: update.author.to_string(),
                        updated_by: update.author.to_string(),
                        created_ms: update.timestamp_ms,
                        updated_ms: update.timestamp_ms,
                        history: vec![item],
                    });
                }
                (Some(task), Ok(())) => {
                    task.state = state;
                    task.message = update.value.status.message.clone();
                    task.updated_by = update.author.to_string();
                    task.updated_ms = update.timestamp_ms;
                    if task.context_id.is_empty() {
                        task.context_id = update.value.context_id.clone();
                    }
                    task.history.push(item);
                }
                (Some(task), Err(_)) => task.history.push(item),
                // An illegal first update does not create the task; it is not shown until a
                // legal one arrives, and then only the legal history counts.
                (None, Err(_)) => {}
            }
        }
        view
    }

    /// Whether `state` may follow the task's current state at `now_ms`.
    pub fn check_task_update(
        &self,
        namespace: &str,
        task_id: &str,
        state: TaskState,
        now_ms: u64,
    ) -> Result<(), String> {
        let current = self.task(namespace, task_id, now_ms).map(|task| task.state);
        state.check_transition(current)
    }

    /// Live constraints, by entry id.
    pub fn constraints(&self, namespace: &str, now_ms: u64) -> Vec<ConstraintView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        let mut live: Vec<&Stamped<Constraint>> = space.live_constraints(now_ms).collect();
        live.sort_by_key(|constraint| constraint.id);
        live.into_iter()
            .map(|constraint| ConstraintView {
                entry_id: constraint.id.to_string(),
                author: constraint.author.to_string(),
                resource: constraint.value.resource.clone(),
                rule: constraint.value.rule.clone(),
                note: constraint.value.note.clone(),
                published_ms: constraint.timestamp_ms,
                expires_ms: constraint
                    .timestamp_ms
                    .saturating_add(constraint.value.ttl_ms),
            })
            .collect()
    }

    /// Patterns published up to `now_ms`, optionally only those on `topic`, oldest first.
    pub fn patterns(&self, namespace: &str, topic: Option<&str>, now_ms: u64) -> Vec<PatternView> {
        let Some(space) = self.spaces.get(namespace) else {
            return Vec::new();
        };
        let mut patterns: Vec<PatternView> = space
            .patterns
            .values()
            .filter(|p| p.timestamp_ms <= now_ms)
            .filter(|p| topic.is_none_or(|topic| p.value.topic == topic))
            .map(|p| PatternView {
                entry_id: p.id.to_string(),
                author: p.author.to_string(),
                topic: p.value.topic.clone(),
                summary: p.value.summary.clone(),
                data: p.value.data.clone(),
                confidence: p.value.confidence,
                references: p.value.references.clone(),
                published_ms: p.timestamp_ms,
            })
            .collect();
        patterns.sort_by(|a, b| (a.published_ms, &a.entry_id).cmp(&(b.published_ms, &b.entry_id)));
        patterns
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

impl CardQuery {
    fn matches(&self, card: &Capability) -> bool {
        let has = |haystack: &str, needle: &str| haystack.to_lowercase().contains(needle);
        let equal = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        if let Some(skill) = &self.skill {
            if !card
                .skills
                .iter()
                .any(|s| equal(&s.id, skill) || equal(&s.name, skill))
            {
                return false;
            }
        }
        if let Some(tag) = &self.tag {
            if !card
                .skills
                .iter()
                .any(|s| s.tags.iter().any(|t| equal(t, tag)))
            {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let needle = text.to_lowercase();
            let found = has(&card.name, &needle)
                || has(&card.description, &needle)
                || card.skills.iter().any(|s| {
                    has(&s.name, &needle)
                        || has(&s.description, &needle)
                        || has(&s.id, &needle)
                        || s.tags.iter().any(|t| has(t, &needle))
                });
            if !found {
                return false;
            }
        }
        true
    }
}

/// Whether a constraint's resource pattern (a name, or a prefix ending in `*`) covers `resource`.
pub fn resource_matches(pattern: &str, resource: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => resource.starts_with(prefix),
        None => pattern == resource,
    }
}

/// The lease order: earlier first, then higher priority, then smaller entry id.
fn order_key(claim: &Stamped<Intent>) -> OrderKey {
    (
        claim.timestamp_ms,
        std::cmp::Reverse(claim.value.priority),
        claim.id,
    )
}

fn claim_view(
    space: &Space,
    claim: &Stamped<Intent>,
    expires_ms: u64,
    standing: ClaimStanding,
) -> ClaimView {
    ClaimView {
        late: space.claim_is_late(claim),
        claim_id: claim.id.to_string(),
        author: claim.author.to_string(),
        resource: claim.value.resource.clone(),
        action: claim.value.action.clone(),
        note: claim.value.note.clone(),
        priority: claim.value.priority,
        claimed_ms: claim.timestamp_ms,
        expires_ms,
        standing,
    }
}
