//! [`SharedNode`]: a node shared between tasks, and a shutdown that waits for every other
//! holder to let go of it.
//!
//! A server reports its work done a moment before its tasks drop what they hold (axum's
//! `serve` signals a connection closed just before the connection's task ends), and the log
//! can only be flushed and its lock released once nothing else uses the node. Each clone of a
//! `SharedNode` carries a sender of one channel; nothing is ever sent on it, so the
//! receiver's `recv()` returns `None` exactly when every other clone is gone, and shutdown
//! waits on that instead of polling a reference count.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Node, NodeError};

/// How long [`SharedNode::shutdown`] waits for the other holders to drop their handles: far
/// longer than a task needs to end once its work is done.
pub const RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A node several tasks use at once; it dereferences to [`Node`].
#[derive(Debug, Clone)]
pub struct SharedNode {
    // Fields drop in declaration order: a clone lets go of the node before its guard, so
    // once every guard is gone, so is every other reference to the node.
    node: Arc<Node>,
    _guard: mpsc::Sender<()>,
    /// Closes when every guard is dropped; taken by the first shutdown.
    released: Arc<std::sync::Mutex<Option<mpsc::Receiver<()>>>>,
}

impl SharedNode {
    /// Shares a started node.
    pub fn new(node: Node) -> SharedNode {
        let (guard, released) = mpsc::channel(1);
        SharedNode {
            node: Arc::new(node),
            _guard: guard,
            released: Arc::new(std::sync::Mutex::new(Some(released))),
        }
    }

    /// [`Node::shutdown`], once every other clone of this handle is dropped (waiting up to
    /// [`RELEASE_TIMEOUT`] for them). Only the first clone to call this shuts the node down;
    /// a later call just lets go of its handle, as a drop would.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let SharedNode {
            node,
            _guard: guard,
            released,
        } = self;
        let receiver = released
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(mut receiver) = receiver else {
            // Another clone is shutting the node down and waits for this one: let go of the
            // node before the guard, as a drop does.
            drop(node);
            drop(guard);
            return Ok(());
        };
        drop(guard);
        if tokio::time::timeout(RELEASE_TIMEOUT, receiver.recv())
            .await
            .is_err()
        {
            let others = Arc::strong_count(&node) - 1;
            tracing::error!(
                others,
                timeout = ?RELEASE_TIMEOUT,
                "the node is still in use at shutdown; the log is not flushed (its write-ahead \
                 log keeps what was written, and a restart recovers it)"
            );
            return Err(NodeError::StillShared(others));
        }
        // Every guard is gone, and with it every other clone's reference to the node (see the
        // fields' order).
        match Arc::try_unwrap(node) {
            Ok(node) => node.shutdown().await,
            Err(node) => Err(NodeError::StillShared(Arc::strong_count(&node) - 1)),
        }
    }
}

impl Deref for SharedNode {
    type Target = Node;

    fn deref(&self) -> &Node {
        &self.node
    }
}
