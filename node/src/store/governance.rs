//! The log's governance state: the policy book of each governed namespace and the
//! [`FeedState`] of each feed in it, kept current as entries are accepted.
//!
//! The decision itself is `plexus_protocol::policy`; this file only holds its inputs. The state
//! is a fold of the stored feeds, so it is rebuilt from the log when the log opens (one pass
//! over the governed namespaces) and after a failed write (when what was folded in may not
//! have been stored).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use plexus_crypto::AgentId;
use plexus_protocol::coord::Body;
use plexus_protocol::policy::{Allowed, FeedState, PolicyBook, Violation};
use plexus_protocol::{Entry, FeedKey, Kind};

/// The admins of each governed namespace, from the node's configuration. A namespace not
/// listed is open.
pub type TrustRoots = BTreeMap<String, BTreeSet<AgentId>>;

/// Policy books and feed states of the governed namespaces.
#[derive(Debug, Clone, Default)]
pub struct Governor {
    books: BTreeMap<String, PolicyBook>,
    feeds: HashMap<FeedKey, FeedState>,
    /// Set while entries are folded in ahead of their write; cleared once the write commits.
    /// If a write fails or an error cuts the sequence short, the log finds it still set and
    /// rebuilds the state from what is stored before the next decision.
    pub(super) unsettled: bool,
}

/// How much of the decision to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The rules that need no history: for entries held until their predecessors arrive.
    Stateless,
    /// Every rule: for an entry that extends its feed.
    Full,
}

impl Governor {
    /// A governor with empty books for these trust roots.
    pub fn new(trust_roots: &TrustRoots) -> Governor {
        Governor {
            books: trust_roots
                .iter()
                .map(|(namespace, admins)| {
                    (
                        namespace.clone(),
                        PolicyBook::new(namespace.clone(), admins.clone()),
                    )
                })
                .collect(),
            feeds: HashMap::new(),
            unsettled: false,
        }
    }

    /// The governed namespaces.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.books.keys().map(String::as_str)
    }

    pub fn is_governed(&self, namespace: &str) -> bool {
        self.books.contains_key(namespace)
    }

    pub fn book(&self, namespace: &str) -> Option<&PolicyBook> {
        self.books.get(namespace)
    }

    /// Decides `entry`, whose parsed body is `body` (`None`: pruned, or not parsed because no
    /// rule reads it, see [`body_read_by_policy`]); `Ok(None)` for an entry of an open
    /// namespace.
    pub fn decide(
        &self,
        entry: &Entry,
        body: Option<&Body>,
        scope: Scope,
    ) -> Result<Option<Allowed>, Violation> {
        let header = entry.header();
        let Some(book) = self.books.get(&header.namespace) else {
            return Ok(None);
        };
        let empty = FeedState::default();
        let feed = match scope {
            Scope::Stateless => None,
            Scope::Full => Some(self.feeds.get(&FeedKey::of(entry)).unwrap_or(&empty)),
        };
        book.decide(entry, body, feed).map(Some)
    }

    /// Learns a policy entry by an admin without advancing any feed (an auditor's first
    /// pass, which must know every policy before it judges anything).
    pub fn learn_policy(&mut self, entry: &Entry, body: Option<&Body>) {
        self.learn(entry, body);
    }

    /// Folds an accepted entry in, with its parsed body as for [`Governor::decide`]: policy
    /// entries by an admin join their book, and every entry of a governed namespace advances
    /// its feed's state.
    pub fn observe(&mut self, entry: &Entry, body: Option<&Body>) {
        if !self.is_governed(&entry.header().namespace) {
            return;
        }
        self.learn(entry, body);
        self.feeds
            .entry(FeedKey::of(entry))
            .or_default()
            .observe(entry, body);
    }

    fn learn(&mut self, entry: &Entry, body: Option<&Body>) {
        let header = entry.header();
        let Some(book) = self.books.get_mut(&header.namespace) else {
            return;
        };
        if let Some(Body::Policy(policy)) = body {
            if entry.kind() == Ok(Kind::Policy) && book.is_admin(&header.author) {
                // The body was checked on the way in; a stored policy that fails now (a newer
                // build with stricter limits) is skipped rather than wedging the node.
                if let Err(error) = book.learn(entry, policy) {
                    tracing::warn!(
                        namespace = %header.namespace,
                        author = %header.author,
                        seq = header.seq,
                        "stored policy entry is no longer valid and is ignored: {error}"
                    );
                }
            }
        }
    }
}

/// The body of an entry read back from the log or a file, parsed for the decision: for the
/// kinds whose bodies the rules read (lease and TTL caps, claims, policy); `None` for the
/// others, whose bodies no rule reads, so they are not parsed at all. Entries on their way in
/// bring the body admission parsed instead.
pub fn body_read_by_policy(entry: &Entry) -> Option<Body> {
    super::parsed::parse_stored_body(entry, Kind::is_read_by_policy)
}
