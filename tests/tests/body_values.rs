//! Body numbers and keys through the HTTP API: the stored bytes are the canonical form of
//! docs/PROTOCOL.md §4 for the JSON text the agent sent, and what cannot be stored exactly is
//! refused with 422 naming the field, writing nothing.

use plexus_crypto::Hash256;
use plexus_tests::cluster::{shutdown, spawn_node, test_net_config};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_stored_as_written_and_inexact_ones_are_refused() {
    let mut node = spawn_node(test_net_config()).await;
    let client = node.api().await;
    let stored = [
        // Integer syntax: -0 is the integer 0, not the float -0.0.
        (r#"{"kind": "x-number", "body": {"n": -0}}"#, "a1616e00"),
        (
            r#"{"kind": "x-number", "body": {"n": -0.0}}"#,
            "a1616ef98000",
        ),
        // 2^-24 and the largest single, each in its shortest exact width.
        (
            r#"{"kind": "x-number", "body": {"n": 5.960464477539063e-08}}"#,
            "a1616ef90001",
        ),
        (
            r#"{"kind": "x-number", "body": {"n": 3.4028234663852886e38}}"#,
            "a1616efa7f7fffff",
        ),
        (
            r#"{"kind": "x-number", "body": {"n": 18446744073709551615}}"#,
            "a1616e1bffffffffffffffff",
        ),
    ];
    for (request, expected) in stored {
        let response = client
            .request("POST", "/v1/entries", Some(request.as_bytes()))
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(response.status, 201, "{request}: {answer}");
        let id: Hash256 = answer["entry"]["entry_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let entry = node.node.log().entry_by_id(&id).unwrap().unwrap();
        let body: String = entry
            .body()
            .unwrap()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(body, expected, "{request}");
    }
    let before = node.node.log().stats().unwrap().entries;
    let refused = [
        (
            r#"{"kind": "x-number", "body": {"n": 18446744073709551616}}"#,
            "body.n",
        ),
        (
            r#"{"kind": "x-number", "body": {"list": [1, -9223372036854775809]}}"#,
            "body.list[1]",
        ),
        (r#"{"kind": "x-number", "body": {"n": 1e400}}"#, "body.n"),
        (
            r#"{"kind": "x-number", "body": {"a": {"b": 1, "b": 2}}}"#,
            "body.a",
        ),
        (r#"{"kind": "x-number", "kind": "x-other", "body": {}}"#, ""),
    ];
    for (request, field) in refused {
        let response = client
            .request("POST", "/v1/entries", Some(request.as_bytes()))
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(response.status, 422, "{request}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_value", "{request}: {answer}");
        let expected_field = (!field.is_empty()).then_some(field);
        assert_eq!(
            answer["error"]["field"].as_str(),
            expected_field,
            "{request}: {answer}"
        );
    }
    assert_eq!(node.node.log().stats().unwrap().entries, before);
    shutdown(vec![node]).await;
}
