//! The board views (leases, tasks, agents) as MCP resources, and the notifications that tell a
//! subscribed client one of them changed.
//!
//! A client subscribes either with `resources/subscribe` on a session (protocol versions up to
//! 2025-11-25: `plexus mcp` over stdio) or with one `subscriptions/listen` request (2026-07-28,
//! over stdio or the sessionless Streamable HTTP endpoint). Either way one watch task reads the
//! node's change events, maps each to the views it changes ([`BoardView::changed_by`]), and
//! sends `notifications/resources/updated` for the subscribed ones through a [`Coalescer`]: at
//! most one notification per view per [`COALESCE_WINDOW`], and the last change of a burst is
//! always notified, so a client that re-reads after each notification ends up current.
//!
//! Bounds: a subscription is a set of [`BoardView`]s, so a session holds at most
//! [`BoardView::ALL`]`.len()` of them and the coalescer's state is one slot per view; a session
//! has at most one watch task; listens are capped per node by [`MAX_OPEN_LISTENS`]. The watch
//! task ends, freeing its event stream, when the client unsubscribes from everything, cancels
//! its listen, disconnects, or the node's event stream ends.
//!
//! The list of resources never changes (the three views are fixed), so the server does not
//! advertise or send `notifications/resources/list_changed`.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::SubscriptionSink;
use rmcp::{Peer, RoleServer};
use serde_json::Value;
use tokio::sync::{watch, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::backend::{Backend, CallError, Events, NextEvent};

/// Shortest time between two notifications for one view: a burst of claims (a swarm of agents
/// racing for one resource) becomes a few notifications, not one per event, while a model
/// still hears of a change well within a second.
pub const COALESCE_WINDOW: Duration = Duration::from_millis(250);

/// Most `subscriptions/listen` requests open at once on one node (each holds an event stream);
/// one more is refused with an error saying so.
pub const MAX_OPEN_LISTENS: usize = 64;

/// How often a session's watch task checks that its client is still connected when no event
/// comes (rmcp offers no future that completes on disconnection).
const DISCONNECT_CHECK: Duration = Duration::from_secs(5);

/// The event types and entry kinds that change a board view: what the watch task asks the
/// node's event stream for.
const VIEW_CHANGING_KINDS: &str = "lease,claim.won,claim.lost,claim.ended,intent,intent.renew,\
                                   intent.release,constraint,task,capability,capability.revoke";

/// One of the board views served as a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BoardView {
    Leases,
    Tasks,
    Agents,
}

impl BoardView {
    /// Every view, in the order `resources/list` gives them.
    pub const ALL: [BoardView; 3] = [BoardView::Leases, BoardView::Tasks, BoardView::Agents];

    pub fn uri(self) -> &'static str {
        match self {
            BoardView::Leases => "plexus://board/leases",
            BoardView::Tasks => "plexus://board/tasks",
            BoardView::Agents => "plexus://board/agents",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BoardView::Leases => "leases",
            BoardView::Tasks => "tasks",
            BoardView::Agents => "agents",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            BoardView::Leases => "Who holds which resource and who waits, in this node's namespace",
            BoardView::Tasks => "Every task with its state and history",
            BoardView::Agents => "The live capability cards of the namespace's agents",
        }
    }

    /// The API route whose answer is the resource's content.
    pub fn route(self) -> &'static str {
        match self {
            BoardView::Leases => "/v1/leases",
            BoardView::Tasks => "/v1/tasks",
            BoardView::Agents => "/v1/agents",
        }
    }

    pub fn from_uri(uri: &str) -> Option<BoardView> {
        BoardView::ALL.into_iter().find(|view| view.uri() == uri)
    }

    /// The views an event of the node's stream changes: its type (`lease`, `task`,
    /// `claim.won`, `entry`, `lagged`, ...) and, for `entry` events, the entry's kind.
    /// A `lagged` event means some were missed, so every view may have changed.
    pub fn changed_by(event_type: &str, entry_kind: Option<&str>) -> &'static [BoardView] {
        match (event_type, entry_kind) {
            ("lease" | "claim.won" | "claim.lost" | "claim.ended", _) => &[BoardView::Leases],
            ("task", _) | ("entry", Some("task")) => &[BoardView::Tasks],
            ("entry", Some("intent" | "intent.renew" | "intent.release" | "constraint")) => {
                &[BoardView::Leases]
            }
            ("entry", Some("capability" | "capability.revoke")) => &[BoardView::Agents],
            ("lagged", _) => &BoardView::ALL,
            _ => &[],
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Spaces the notifications of each view at least a window apart, without losing the last
/// change of a burst. Pure: the caller passes the time.
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    /// When each view was last notified.
    last_sent: [Option<Instant>; 3],
    /// Views changed since their last notification, to notify when their window ends.
    pending: [bool; 3],
}

impl Coalescer {
    pub fn new(window: Duration) -> Coalescer {
        Coalescer {
            window,
            last_sent: [None; 3],
            pending: [false; 3],
        }
    }

    /// `view` changed at `now`: true when the caller should notify it now (and it counts as
    /// sent); otherwise it is pending until its window ends (see [`Coalescer::take_due`]).
    pub fn changed(&mut self, view: BoardView, now: Instant) -> bool {
        let slot = view.index();
        let within_window = self.last_sent[slot].is_some_and(|sent| now < sent + self.window);
        if within_window {
            self.pending[slot] = true;
            false
        } else {
            self.last_sent[slot] = Some(now);
            true
        }
    }

    /// When the earliest pending view is due, if any is pending.
    pub fn next_due(&self) -> Option<Instant> {
        BoardView::ALL
            .into_iter()
            .filter(|view| self.pending[view.index()])
            .filter_map(|view| self.last_sent[view.index()].map(|sent| sent + self.window))
            .min()
    }

    /// The pending views whose window has ended at `now`; they count as sent at `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<BoardView> {
        let mut due = Vec::new();
        for view in BoardView::ALL {
            let slot = view.index();
            let window_over = self.last_sent[slot].is_none_or(|sent| now >= sent + self.window);
            if self.pending[slot] && window_over {
                self.pending[slot] = false;
                self.last_sent[slot] = Some(now);
                due.push(view);
            }
        }
        due
    }
}

/// Why a subscription request is refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error(
        "no resource {0}: the board views are plexus://board/leases, plexus://board/tasks and \
         plexus://board/agents (see resources/list)"
    )]
    UnknownResource(String),
    #[error(
        "resources/subscribe needs a session, and this Streamable HTTP endpoint is sessionless: \
         use subscriptions/listen (protocol 2026-07-28), or `plexus mcp` over stdio"
    )]
    Sessionless,
    #[error(
        "{MAX_OPEN_LISTENS} subscriptions/listen requests are already open on this node: close \
         one, or subscribe to several resources in one listen"
    )]
    TooManyListens,
    #[error("could not follow the node's events: {0}")]
    Events(CallError),
}

/// The `resources/subscribe` subscriptions of one session, and its watch task.
#[derive(Debug, Default)]
pub struct SessionSubscriptions {
    /// The subscribed views, shared with the running watch task; `None` when none runs.
    watching: Arc<Mutex<Option<watch::Sender<BTreeSet<BoardView>>>>>,
}

impl SessionSubscriptions {
    /// Adds `view`; starts the session's watch task (following the node's events before this
    /// returns, so no change after the answer is missed) if none runs.
    pub async fn subscribe(
        &self,
        view: BoardView,
        backend: &Backend,
        peer: Peer<RoleServer>,
    ) -> Result<(), SubscribeError> {
        let mut watching = self.watching.lock().await;
        if let Some(subscribed) = watching.as_ref() {
            subscribed.send_modify(|views| {
                views.insert(view);
            });
            return Ok(());
        }
        let events = backend
            .events(VIEW_CHANGING_KINDS, None)
            .await
            .map_err(SubscribeError::Events)?;
        let (subscribed, views) = watch::channel(BTreeSet::from([view]));
        *watching = Some(subscribed);
        let shared = Arc::clone(&self.watching);
        tokio::spawn(async move {
            let disconnected = {
                let peer = peer.clone();
                async move {
                    while !peer.is_transport_closed() {
                        tokio::time::sleep(DISCONNECT_CHECK).await;
                    }
                }
            };
            let notifier = Notifier::Session(peer);
            let cleared = watch_views(events, views, notifier, disconnected, Some(&shared)).await;
            if !cleared {
                // Until now the session's sender was this task's, so no other task started.
                *shared.lock().await = None;
            }
        });
        Ok(())
    }

    /// Removes `view`; the watch task ends once no view is left.
    pub async fn unsubscribe(&self, view: BoardView) {
        if let Some(subscribed) = self.watching.lock().await.as_ref() {
            subscribed.send_modify(|views| {
                views.remove(&view);
            });
        }
    }
}

/// Serves one `subscriptions/listen` request: notifies `views` until `cancelled` completes
/// (the client cancelled or went away) or the node's events end. `open_listens` caps how many
/// run at once on the node.
pub async fn listen(
    views: BTreeSet<BoardView>,
    backend: &Backend,
    sink: SubscriptionSink,
    cancelled: impl Future<Output = ()>,
    open_listens: &Arc<Semaphore>,
) -> Result<(), SubscribeError> {
    let _permit: OwnedSemaphorePermit = Arc::clone(open_listens)
        .try_acquire_owned()
        .map_err(|_| SubscribeError::TooManyListens)?;
    if views.is_empty() {
        cancelled.await;
        return Ok(());
    }
    let events = backend
        .events(VIEW_CHANGING_KINDS, None)
        .await
        .map_err(SubscribeError::Events)?;
    // The sender stays here, so the set never changes and never empties.
    let (_fixed, views) = watch::channel(views);
    watch_views(events, views, Notifier::Listen(sink), cancelled, None).await;
    Ok(())
}

/// Where a watch task sends its notifications.
enum Notifier {
    /// A `resources/subscribe` session.
    Session(Peer<RoleServer>),
    /// One `subscriptions/listen` request.
    Listen(SubscriptionSink),
}

impl Notifier {
    /// Sends `notifications/resources/updated`; false when the client can no longer get it.
    async fn updated(&self, view: BoardView) -> bool {
        match self {
            Notifier::Session(peer) => peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(view.uri()))
                .await
                .is_ok(),
            Notifier::Listen(sink) => sink.notify_resource_updated(view.uri()).await.is_ok(),
        }
    }
}

/// The watch loop: events in, coalesced notifications of the subscribed views out. With
/// `session`, it ends once the subscribed set is empty, clearing the session's sender under
/// its lock (so a concurrent subscribe either sees this task running or starts a new one), and
/// then returns true; it returns false when it ends for any other reason.
async fn watch_views(
    mut events: Events,
    mut views: watch::Receiver<BTreeSet<BoardView>>,
    notifier: Notifier,
    stop: impl Future<Output = ()>,
    session: Option<&Mutex<Option<watch::Sender<BTreeSet<BoardView>>>>>,
) -> bool {
    let mut coalescer = Coalescer::new(COALESCE_WINDOW);
    tokio::pin!(stop);
    loop {
        let due = coalescer.next_due();
        let mut notify_now: Vec<BoardView> = Vec::new();
        tokio::select! {
            biased;
            () = &mut stop => return false,
            changed = views.changed() => {
                if changed.is_err() {
                    return false;
                }
                if let Some(session) = session {
                    let mut watching = session.lock().await;
                    if views.borrow().is_empty() {
                        *watching = None;
                        return true;
                    }
                }
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                notify_now = coalescer.take_due(Instant::now());
            }
            next = events.next_within(DISCONNECT_CHECK) => match next {
                NextEvent::Event(event_type, event) => {
                    let now = Instant::now();
                    let entry_kind = event.get("kind").and_then(Value::as_str);
                    for view in BoardView::changed_by(&event_type, entry_kind) {
                        if views.borrow().contains(view) && coalescer.changed(*view, now) {
                            notify_now.push(*view);
                        }
                    }
                }
                NextEvent::Quiet => {}
                NextEvent::Ended => return false,
            },
        }
        for view in notify_now {
            let still_wanted = views.borrow().contains(&view);
            if still_wanted && !notifier.updated(view).await {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(250);

    #[test]
    fn a_burst_of_changes_gives_one_notification_at_once_and_one_when_the_window_ends() {
        let start = Instant::now();
        let mut coalescer = Coalescer::new(WINDOW);
        assert!(coalescer.changed(BoardView::Leases, start));
        for step in 1..100u64 {
            let now = start + Duration::from_millis(step);
            assert!(
                !coalescer.changed(BoardView::Leases, now),
                "event {step} was sent"
            );
        }
        assert_eq!(coalescer.next_due(), Some(start + WINDOW));
        assert!(coalescer
            .take_due(start + WINDOW - Duration::from_millis(1))
            .is_empty());
        assert_eq!(coalescer.take_due(start + WINDOW), vec![BoardView::Leases]);
        assert_eq!(coalescer.next_due(), None);
        // The trailing notification starts a new window.
        assert!(!coalescer.changed(BoardView::Leases, start + WINDOW + Duration::from_millis(1)));
    }

    #[test]
    fn a_single_change_is_notified_at_once_and_nothing_is_left_pending() {
        let start = Instant::now();
        let mut coalescer = Coalescer::new(WINDOW);
        assert!(coalescer.changed(BoardView::Tasks, start));
        assert_eq!(coalescer.next_due(), None);
        assert!(coalescer.take_due(start + WINDOW * 10).is_empty());
        assert!(coalescer.changed(BoardView::Tasks, start + WINDOW));
    }

    #[test]
    fn views_are_coalesced_separately() {
        let start = Instant::now();
        let mut coalescer = Coalescer::new(WINDOW);
        assert!(coalescer.changed(BoardView::Leases, start));
        assert!(coalescer.changed(BoardView::Agents, start + Duration::from_millis(10)));
        assert!(!coalescer.changed(BoardView::Leases, start + Duration::from_millis(20)));
        assert!(!coalescer.changed(BoardView::Agents, start + Duration::from_millis(30)));
        assert_eq!(coalescer.next_due(), Some(start + WINDOW));
        assert_eq!(coalescer.take_due(start + WINDOW), vec![BoardView::Leases]);
        assert_eq!(
            coalescer.take_due(start + WINDOW + Duration::from_millis(10)),
            vec![BoardView::Agents]
        );
    }

    #[test]
    fn events_map_to_the_views_they_change() {
        assert_eq!(
            BoardView::changed_by("claim.won", None),
            [BoardView::Leases]
        );
        assert_eq!(BoardView::changed_by("lease", None), [BoardView::Leases]);
        assert_eq!(
            BoardView::changed_by("entry", Some("intent.release")),
            [BoardView::Leases]
        );
        assert_eq!(BoardView::changed_by("task", None), [BoardView::Tasks]);
        assert_eq!(
            BoardView::changed_by("entry", Some("capability.revoke")),
            [BoardView::Agents]
        );
        assert_eq!(BoardView::changed_by("lagged", None), BoardView::ALL);
        assert!(BoardView::changed_by("entry", Some("x-build")).is_empty());
        assert!(BoardView::changed_by("entry", Some("pattern")).is_empty());
    }

    #[test]
    fn every_kind_asked_of_the_node_changes_a_view() {
        for kind in VIEW_CHANGING_KINDS.split(',') {
            let as_type = BoardView::changed_by(kind, None);
            let as_entry = BoardView::changed_by("entry", Some(kind));
            assert!(
                !as_type.is_empty() || !as_entry.is_empty(),
                "{kind} is asked for but changes no view"
            );
        }
    }

    #[test]
    fn uris_name_the_views_and_nothing_else() {
        for view in BoardView::ALL {
            assert_eq!(BoardView::from_uri(view.uri()), Some(view));
        }
        assert_eq!(BoardView::from_uri("plexus://board/secrets"), None);
    }
}
