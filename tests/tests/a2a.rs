//! Capability cards as A2A AgentCards against real nodes on 127.0.0.1: the well-known card is
//! public and is this node's agent's, and a card listed by another node carries an envelope
//! that verifies as the author's signed capability entry.

use std::time::Duration;

use plexus_node::client::{ApiClient, ClientError};
use plexus_protocol::value::canonical_to_json;
use plexus_protocol::Entry;
use plexus_tests::cluster::{connect, shutdown, spawn, wait_for, TestNode, NAMESPACE};
use serde_json::{json, Value};

const CONVERGE: Duration = Duration::from_secs(60);

fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_are_served_as_a2a_agent_cards_that_carry_the_signed_entry() {
    let mut nodes = spawn(2).await;
    connect(&nodes[1], &nodes[0]).await;
    let a = nodes[0].api().await;
    let b = nodes[1].api().await;
    let card = json!({
        "name": "coder", "description": "Writes Rust", "version": "2.1",
        "url": "https://coder.example/a2a",
        "skills": [{"id": "rust", "name": "Rust", "tags": ["code"]}, {"id": "review", "name": "Review"}],
        "ttlMs": 600_000,
    });
    let published = a.post("/v1/capability", &card).await.unwrap();
    let entry_id = published["entry"]["entry_id"].as_str().unwrap().to_owned();
    let author = nodes[0].node.agent_id().to_string();

    // The well-known card needs no token: a client with a wrong one still reads it.
    let stranger = ApiClient::new(a.addr(), "not-the-token");
    let own = stranger.get("/.well-known/agent-card.json").await.unwrap();
    assert!(matches!(
        stranger.get("/v1/a2a/cards").await,
        Err(ClientError::Status { status: 401, .. })
    ));
    assert_eq!(own["name"], "coder");
    assert_eq!(own["description"], "Writes Rust");
    assert_eq!(own["version"], "2.1");
    assert_eq!(
        own["supportedInterfaces"][0]["url"],
        "https://coder.example/a2a"
    );
    assert_eq!(
        own["supportedInterfaces"][1]["url"],
        format!("plexus://{NAMESPACE}/{author}")
    );
    assert_eq!(own["skills"][1]["description"], "Review");
    assert_eq!(own["defaultInputModes"], json!(["text/plain"]));

    // Node B has no card of its own, and says so.
    match b.get("/.well-known/agent-card.json").await {
        Err(ClientError::Status { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (404, "no_card"))
        }
        other => panic!("expected 404 no_card, got {other:?}"),
    }

    // Node B lists A's card once gossip brought it, with the entry that proves it.
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let listed = wait_for(
        "A's card on node B",
        CONVERGE,
        &refs,
        || async { b.get("/v1/a2a/cards?tag=code").await.unwrap_or(Value::Null) },
        |answer: &Value| {
            answer["cards"]
                .as_array()
                .is_some_and(|cards| cards.len() == 1)
        },
    )
    .await;
    let listed = &listed["cards"][0];
    assert_eq!(listed["name"], own["name"]);
    let extension = &listed["capabilities"]["extensions"][0];
    assert_eq!(extension["uri"], "urn:plexus:a2a:signed-entry:v1");
    let params = &extension["params"];
    assert_eq!(params["entryId"], entry_id.as_str());
    assert_eq!(params["author"], author.as_str());
    let entry = Entry::decode(&from_hex(params["envelope"].as_str().unwrap())).unwrap();
    assert!(entry.verify_signature());
    assert_eq!(entry.id().to_string(), entry_id);
    assert_eq!(entry.header().author.to_string(), author);
    assert_eq!(entry.header().kind, "capability");
    let signature: String = entry
        .signature()
        .0
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(params["signature"], signature.as_str());
    let body = canonical_to_json(entry.body().unwrap()).unwrap();
    assert_eq!(body["name"], "coder");
    assert_eq!(body["skills"][0]["tags"], json!(["code"]));

    // A revoked card is no longer listed.
    a.post("/v1/capability/revoke", &json!({})).await.unwrap();
    assert!(matches!(
        a.get("/.well-known/agent-card.json").await,
        Err(ClientError::Status { status: 404, .. })
    ));
    shutdown(nodes).await;
}
