//! Publishing through the API is safe to retry: a stored entry is never reported as failed,
//! and an `Idempotency-Key` makes a retried request return the first entry instead of making
//! a second one.

use plexus_node::client::{ApiClient, RawResponse};
use plexus_tests::cluster::{
    shutdown, spawn_node, start_again, stop, test_net_config, TestNode, NAMESPACE,
};
use plexus_tests::localnode::metric_value;
use serde_json::{json, Value};

fn claim_body(resource: &str) -> Value {
    json!({"resource": resource, "action": "write", "leaseMs": 120_000})
}

async fn post_with_key(client: &ApiClient, path: &str, body: &Value, key: &str) -> RawResponse {
    let bytes = serde_json::to_vec(body).unwrap();
    client
        .request_with_headers("POST", path, Some(&bytes), &[("Idempotency-Key", key)])
        .await
        .unwrap()
}

fn json_of(response: &RawResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap()
}

fn replayed(response: &RawResponse) -> bool {
    response
        .headers
        .iter()
        .any(|(name, value)| name == "idempotent-replayed" && value == "true")
}

fn entries_in_log(node: &TestNode) -> u64 {
    node.node.log().stats().unwrap().entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_stored_while_gossip_fails_is_answered_as_made() {
    let mut node = spawn_node(test_net_config()).await;
    let client = node.api().await;
    client
        .post("/v1/claims", &claim_body("before"))
        .await
        .unwrap();
    // Gossip can no longer take anything (as with a full send queue): the claim is still
    // signed and synced to disk, so it is made, and the agent must hear so, or it retries
    // and claims twice.
    node.node.net().shutdown().await;
    let answer = client.post("/v1/claims", &claim_body("during")).await;
    let answer = answer.unwrap_or_else(|error| panic!("a stored claim was reported as {error}"));
    assert_eq!(answer["claim"]["resource"], "during");
    assert_eq!(answer["claim"]["standing"], "holding");
    assert_eq!(entries_in_log(&node), 2);
    assert_eq!(node.node.gossip_failures(), 1);
    let metrics = client
        .request("GET", "/v1/metrics", None)
        .await
        .unwrap()
        .body;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("plexus_gossip_publish_failures_total 1"));
    // The two claims sit in RocksDB's memtables, not yet flushed.
    let memtables = metric_value(&metrics, "plexus_store_memtable_bytes");
    assert!(memtables.is_some_and(|bytes| bytes > 0), "{metrics}");
    // On Linux with glibc jemalloc is the node's malloc, RocksDB's included: what it reports
    // covers the memtables.
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        let allocated = metric_value(&metrics, "plexus_heap_allocated_bytes").unwrap_or(0);
        let resident = metric_value(&metrics, "plexus_heap_resident_bytes").unwrap_or(0);
        assert!(allocated >= memtables.unwrap(), "{metrics}");
        assert!(resident >= allocated, "{metrics}");
    }
    shutdown(vec![node]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_claim_with_its_idempotency_key_returns_the_first_claim() {
    let mut node = spawn_node(test_net_config()).await;
    let client = node.api().await;
    let first = post_with_key(&client, "/v1/claims", &claim_body("repo/x"), "retry-1").await;
    assert_eq!(first.status, 201);
    assert!(!replayed(&first));
    let retry = post_with_key(&client, "/v1/claims", &claim_body("repo/x"), "retry-1").await;
    assert_eq!(retry.status, 201);
    assert!(replayed(&retry));
    assert_eq!(
        json_of(&retry)["entry"]["entry_id"],
        json_of(&first)["entry"]["entry_id"]
    );
    assert_eq!(entries_in_log(&node), 1, "the retry wrote a second claim");
    let leases = client
        .get(&format!("/v1/leases?namespace={NAMESPACE}&resource=repo/x"))
        .await
        .unwrap();
    assert_eq!(leases["leases"][0]["holders"].as_array().unwrap().len(), 1);

    // The same key for another request is refused and writes nothing.
    let reused = post_with_key(&client, "/v1/claims", &claim_body("repo/y"), "retry-1").await;
    assert_eq!(reused.status, 422);
    assert_eq!(json_of(&reused)["error"]["code"], "idempotency_key_reused");
    let elsewhere = post_with_key(
        &client,
        "/v1/tasks",
        &json!({"taskId": "T-1", "status": {"state": "TASK_STATE_SUBMITTED"}}),
        "retry-1",
    )
    .await;
    assert_eq!(elsewhere.status, 422);
    assert_eq!(entries_in_log(&node), 1);

    // A new key is a new request.
    let second = post_with_key(&client, "/v1/claims", &claim_body("repo/x"), "retry-2").await;
    assert_eq!(second.status, 201);
    assert_ne!(
        json_of(&second)["entry"]["entry_id"],
        json_of(&first)["entry"]["entry_id"]
    );
    assert_eq!(entries_in_log(&node), 2);
    shutdown(vec![node]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_node_restarts_returns_the_first_claim_and_writes_nothing() {
    let mut node = spawn_node(test_net_config()).await;
    let client = node.api().await;
    let body = claim_body("repo/x");
    let first = post_with_key(&client, "/v1/claims", &body, "across-restart").await;
    assert_eq!(first.status, 201);
    // The agent lost that answer; meanwhile the node restarts.
    let mut node = start_again(stop(node).await, test_net_config()).await;
    let client = node.api().await;
    let retry = post_with_key(&client, "/v1/claims", &body, "across-restart").await;
    assert_eq!(retry.status, 201);
    assert!(replayed(&retry));
    assert_eq!(json_of(&retry), json_of(&first));
    assert_eq!(
        entries_in_log(&node),
        1,
        "the retry after the restart wrote a second claim"
    );
    // The key still belongs to its first request.
    let reused = post_with_key(
        &client,
        "/v1/claims",
        &claim_body("repo/y"),
        "across-restart",
    )
    .await;
    assert_eq!(reused.status, 422);
    assert_eq!(entries_in_log(&node), 1);
    shutdown(vec![node]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_does_not_use_up_its_key_and_bad_keys_are_named() {
    let mut node = spawn_node(test_net_config()).await;
    let client = node.api().await;
    let bad_body = json!({"resource": "r", "action": "write", "leaseMs": 0});
    let refused = post_with_key(&client, "/v1/claims", &bad_body, "k").await;
    assert_eq!(refused.status, 422);
    assert_eq!(entries_in_log(&node), 0);
    // Nothing was made, so the key is free for the corrected request.
    let made = post_with_key(&client, "/v1/claims", &claim_body("r"), "k").await;
    assert_eq!(made.status, 201);
    assert!(!replayed(&made));

    let too_long = "k".repeat(256);
    let bad_key = post_with_key(&client, "/v1/claims", &claim_body("r"), &too_long).await;
    assert_eq!(bad_key.status, 400);
    let error = json_of(&bad_key);
    assert_eq!(error["error"]["code"], "bad_idempotency_key");
    assert_eq!(error["error"]["field"], "idempotency-key");
    assert_eq!(entries_in_log(&node), 1);
    shutdown(vec![node]).await;
}
