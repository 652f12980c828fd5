//! Tasks: each task's updates, their replay through the state machine, and forgetting the
//! tasks that finished before the view's horizon.
//!
//! A task whose accepted history ends in a terminal state is settled: nothing may follow a
//! terminal state, so every update ordered after that one is refused and changes nothing.
//! Once that terminal update is older than the horizon `H` of [`View::forget_before`], the
//! view drops the task's updates and keeps a [`Finished`] mark: its id, final state and the
//! time of the update that ended it. Then:
//! - the task is not listed at any time: a task that ended before the history the view keeps
//!   is history, as a claim that ended before it is. The rule is applied to every task, those
//!   not yet dropped included, so answers never depend on when the view last forgot;
//! - an update made after that terminal update is refused as the whole history refuses it
//!   ([`View::check_task_update`]), and is not filed;
//! - an update made at or before that time may sort before the terminal update and change the
//!   fold: applying it marks the view stale, and its owner rebuilds it from the log.

use serde::Serialize;

use super::forget::Forgotten;
use super::{Space, Stamped, TaskKey, View};
use crate::body::{TaskState, TaskUpdate};

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

/// What the view keeps of a task that ended before its horizon.
#[derive(Debug, Clone, Copy)]
pub(super) struct Finished {
    pub(super) state: TaskState,
    /// The timestamp of the update that ended it.
    pub(super) at_ms: u64,
}

/// One task's updates in [`TaskKey`] order. A sorted vector rather than a map: a task has a
/// handful of updates, and a map's first leaf holds 11 update slots whatever the task's
/// length (about 2.7 KB a task).
#[derive(Debug, Default, Clone)]
pub(super) struct TaskUpdates(Vec<(TaskKey, Stamped<TaskUpdate>)>);

impl TaskUpdates {
    /// Files `update` under `key`; the same key again replaces it (applying twice is a no-op).
    fn insert(&mut self, key: TaskKey, update: Stamped<TaskUpdate>) {
        match self.0.binary_search_by(|(filed, _)| filed.cmp(&key)) {
            Ok(index) => {
                if let Some(slot) = self.0.get_mut(index) {
                    slot.1 = update;
                }
            }
            Err(index) => {
                // Grow one slot at a time while short (most tasks end within four updates).
                if self.0.len() == self.0.capacity() && self.0.len() < 4 {
                    self.0.reserve_exact(1);
                }
                self.0.insert(index, (key, update));
            }
        }
    }

    /// The updates in order.
    fn values(&self) -> impl Iterator<Item = &Stamped<TaskUpdate>> {
        self.0.iter().map(|(_, update)| update)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// The state after the updates made by `now_ms`, and the time of the last accepted one.
    fn state_at(&self, now_ms: u64) -> Option<(TaskState, u64)> {
        let mut current: Option<(TaskState, u64)> = None;
        for update in self.values().filter(|u| u.timestamp_ms <= now_ms) {
            let state = update.value.status.state;
            if state
                .check_transition(current.map(|(state, _)| state))
                .is_ok()
            {
                current = Some((state, update.timestamp_ms));
            }
        }
        current
    }
}

impl View {
    /// Every task, by task id, but those that ended before the history the view keeps.
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

    /// One task, replayed through the state machine; `None` for a task that ended before
    /// [`View::kept_from_ms`] ([`View::task_ended_before_history`] says when).
    pub fn task(&self, namespace: &str, task_id: &str, now_ms: u64) -> Option<TaskView> {
        let updates = self.spaces.get(namespace)?.tasks.get(task_id)?;
        let task = replay(task_id, updates, now_ms)?;
        let ended_before = task.state.is_terminal() && task.updated_ms < self.kept_from_ms();
        (!ended_before).then_some(task)
    }

    /// The final state of a task that ended before [`View::kept_from_ms`], and the time of
    /// the update that ended it; `None` for any other task.
    pub fn task_ended_before_history(
        &self,
        namespace: &str,
        task_id: &str,
    ) -> Option<(TaskState, u64)> {
        let space = self.spaces.get(namespace)?;
        if let Some(finished) = space.finished.get(task_id) {
            return Some((finished.state, finished.at_ms));
        }
        let (state, at_ms) = space.tasks.get(task_id)?.state_at(u64::MAX)?;
        (state.is_terminal() && at_ms < self.kept_from_ms()).then_some((state, at_ms))
    }

    /// Whether `state` may follow the task's current state at `now_ms`.
    pub fn check_task_update(
        &self,
        namespace: &str,
        task_id: &str,
        state: TaskState,
        now_ms: u64,
    ) -> Result<(), String> {
        let space = self.spaces.get(namespace);
        let current = match space.and_then(|space| space.finished.get(task_id)) {
            Some(finished) => Some(finished.state),
            None => space
                .and_then(|space| space.tasks.get(task_id))
                .and_then(|updates| updates.state_at(now_ms))
                .map(|(state, _)| state),
        };
        state.check_transition(current)
    }
}

impl Space {
    /// Files a task update, unless its task ended before the horizon: the update is then
    /// refused by the state machine, or (made before that end) the view is stale.
    pub(super) fn file_task(&mut self, key: TaskKey, update: Stamped<TaskUpdate>) {
        if self.finished.contains_key(&update.value.task_id) {
            return;
        }
        self.tasks
            .entry(update.value.task_id.clone())
            .or_default()
            .insert(key, update);
    }

    /// Whether an update of `task_id` made at `timestamp_ms` may sort before the end of a
    /// task whose updates were dropped.
    pub(super) fn precedes_a_finished_task(&self, task_id: &str, timestamp_ms: u64) -> bool {
        self.finished
            .get(task_id)
            .is_some_and(|finished| timestamp_ms <= finished.at_ms)
    }

    /// Drops the updates of every task whose accepted history ends in a terminal state made
    /// before `horizon`, keeping a [`Finished`] mark.
    pub(super) fn forget_tasks(&mut self, horizon: u64, forgotten: &mut Forgotten) {
        let ended: Vec<(String, Finished)> = self
            .tasks
            .iter()
            .filter_map(|(task_id, updates)| {
                let (state, at_ms) = updates.state_at(u64::MAX)?;
                (state.is_terminal() && at_ms < horizon)
                    .then(|| (task_id.clone(), Finished { state, at_ms }))
            })
            .collect();
        for (task_id, finished) in ended {
            if let Some(updates) = self.tasks.remove(&task_id) {
                forgotten.tasks += 1;
                forgotten.task_updates += updates.len();
            }
            self.finished.insert(task_id, finished);
        }
    }
}

/// The task's updates made by `now_ms` through the state machine; `None` until one is legal.
fn replay(task_id: &str, updates: &TaskUpdates, now_ms: u64) -> Option<TaskView> {
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
