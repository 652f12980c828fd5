//! The HTTP API's answers to ordinary mistakes, against a real node on 127.0.0.1: errors name
//! the field (never the value), an oversized entry body is the caller's error (413), the
//! bearer scheme is case-insensitive, a released claim stays released, and an unknown event
//! kind is refused instead of waiting forever.

use plexus_node::client::ApiClient;
use plexus_tests::cluster::{shutdown, spawn};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn answer(client: &ApiClient, method: &str, route: &str, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let response = client.request(method, route, Some(&bytes)).await.unwrap();
    let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, value)
}

/// The status code of a GET sent with `authorization` as the header's value, as raw HTTP so
/// the header is exactly what a hand-written client would send.
async fn status_with_authorization(client: &ApiClient, route: &str, authorization: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(client.addr()).await.unwrap();
    let request = format!(
        "GET {route} HTTP/1.1\r\nHost: {}\r\nAuthorization: {authorization}\r\nConnection: \
         close\r\n\r\n",
        client.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_fields_and_sizes_and_schemes_are_answered_rightly() {
    let mut nodes = spawn(1).await;
    let client = nodes[0].api().await;
    let before = nodes[0].node.log().stats().unwrap().entries;

    // A mistyped value: the field is named, not the value.
    let (status, error) = answer(
        &client,
        "POST",
        "/v1/claims",
        &json!({"resource": "r", "action": "write", "leaseMs": 1000.5}),
    )
    .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["field"], "leaseMs", "{error}");
    let claimed = client
        .post(
            "/v1/claims",
            &json!({"resource": "r", "action": "write", "leaseMs": 60_000}),
        )
        .await
        .unwrap();
    let claim_id = claimed["claim"]["claim_id"].as_str().unwrap().to_owned();
    let renew = format!("/v1/claims/{claim_id}/renew");
    let (status, error) = answer(&client, "POST", &renew, &json!({"leaseMs": 1000.5})).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["field"], "leaseMs", "{error}");

    // An entry body over the entry limit but within the request limit: 413, naming the body.
    let text = "x".repeat(70_000);
    let (status, error) = answer(
        &client,
        "POST",
        "/v1/entries",
        &json!({"kind": "x-note", "body": {"text": text}}),
    )
    .await;
    assert_eq!(status, 413, "{error}");
    assert_eq!(error["error"]["field"], "body", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("64000")),
        "{error}"
    );

    // The bearer scheme is case-insensitive; the token is not.
    // The harness's token for this node (tests/src/cluster.rs).
    let token = format!("test-token-{}", nodes[0].keypair.agent_id().short());
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let status =
            status_with_authorization(&client, "/v1/status", &format!("{scheme} {token}")).await;
        assert_eq!(status, 200, "{scheme}");
    }
    let wrong = status_with_authorization(&client, "/v1/status", "bearer wrong-token").await;
    assert_eq!(wrong, 401);

    // A released claim is over: releasing or renewing it again is refused and writes nothing.
    let release = format!("/v1/claims/{claim_id}/release");
    let (status, _) = answer(&client, "POST", &release, &json!({})).await;
    assert_eq!(status, 201);
    let written = nodes[0].node.log().stats().unwrap().entries;
    let (status, error) = answer(&client, "POST", &release, &json!({})).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "claim_released", "{error}");
    let (status, error) = answer(&client, "POST", &renew, &json!({"leaseMs": 60_000})).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(nodes[0].node.log().stats().unwrap().entries, written);
    // Two entries were written in all: the claim and its release.
    assert_eq!(written, before + 2);

    // An unknown event kind is refused at once.
    let (status, error) = answer(&client, "GET", "/v1/events?kind=bogus", &json!({})).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["field"], "kind", "{error}");
    let known = client.events("kind=claim.won,x-note,task").await;
    assert!(known.is_ok(), "known kinds are accepted");
    drop(known);
    shutdown(nodes).await;
}
