//! How late a late claim arrived, added to the answers that show claims (leases, one claim,
//! the timeline): `late: true` and `late_after_ms`, the time between the late entry's
//! timestamp and this node receiving it, so an agent or the web page can say why the claim is
//! marked (docs/PROTOCOL.md §9.4).

use plexus_protocol::coord::parse_entry_id;
use serde_json::{json, Value};

use crate::coord::ViewGuard;

/// Marks, anywhere in `value`, each object naming a `claim_id` this node received late.
pub(super) fn annotate(value: &mut Value, view: &ViewGuard<'_>) {
    match value {
        Value::Array(items) => {
            for item in items {
                annotate(item, view);
            }
        }
        Value::Object(map) => {
            let late_after_ms = map
                .get("claim_id")
                .and_then(Value::as_str)
                .and_then(parse_entry_id)
                .and_then(|id| view.late_after_ms(&id));
            if let Some(after) = late_after_ms {
                map.insert("late".into(), json!(true));
                map.insert("late_after_ms".into(), json!(after));
            }
            for item in map.values_mut() {
                annotate(item, view);
            }
        }
        _ => {}
    }
}
