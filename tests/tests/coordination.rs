//! End-to-end coordination over HTTP against real nodes on 127.0.0.1: what one agent publishes
//! through its node, agents on other nodes see; lease races and partitions resolve to one
//! holder everywhere; bad requests get the right 4xx and write nothing; events arrive in order.

use std::time::Duration;

use plexus_crypto::Keypair;
use plexus_node::api::ROUTES;
use plexus_node::client::{ApiClient, ClientError};
use plexus_node::store::{IngestOutcome, RejectReason};
use plexus_protocol::coord::Body;
use plexus_protocol::{Draft, Entry};
use plexus_tests::cluster::{
    connect, heal, partition, shutdown, spawn, wait_for, TestNode, NAMESPACE,
};
use serde_json::{json, Value};

const CONVERGE: Duration = Duration::from_secs(60);

/// Waits until `check` holds for the JSON that `route` returns on every node.
async fn wait_all(
    nodes: &[&TestNode],
    clients: &[ApiClient],
    route: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    wait_for(
        what,
        CONVERGE,
        nodes,
        || async {
            let mut answers = Vec::new();
            for client in clients {
                answers.push(client.get(route).await.unwrap_or(Value::Null));
            }
            answers
        },
        |answers: &Vec<Value>| answers.iter().all(&check),
    )
    .await
}

async fn line(count: usize) -> (Vec<TestNode>, Vec<ApiClient>) {
    let mut nodes = spawn(count).await;
    for index in 1..count {
        connect(&nodes[index], &nodes[index - 1]).await;
    }
    let mut clients = Vec::new();
    for node in &mut nodes {
        clients.push(node.api().await);
    }
    (nodes, clients)
}

fn claim_body(resource: &str) -> Value {
    json!({"resource": resource, "action": "write", "leaseMs": 120_000})
}

fn holder_of(lease_answer: &Value) -> Option<String> {
    lease_answer["leases"][0]["holders"][0]["claim_id"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_node_publishes_another_node_shows() {
    let (nodes, clients) = line(2).await;
    let (a, b) = (&clients[0], &clients[1]);
    let card = json!({
        "name": "coder", "description": "Writes Rust", "version": "2.1",
        "skills": [{"id": "rust", "name": "Rust", "tags": ["code"]}], "ttlMs": 600_000,
    });
    a.post("/v1/capability", &card).await.unwrap();
    a.post("/v1/tasks", &json!({"taskId": "T-1", "contextId": "c", "status": {"state": "TASK_STATE_SUBMITTED", "message": "do it"}})).await.unwrap();
    a.post(
        "/v1/tasks",
        &json!({"taskId": "T-1", "status": {"state": "TASK_STATE_WORKING"}}),
    )
    .await
    .unwrap();
    a.post(
        "/v1/constraints",
        &json!({"resource": "db/*", "rule": {"type": "maxHolders", "limit": 2}, "ttlMs": 600_000}),
    )
    .await
    .unwrap();
    a.post(
        "/v1/patterns",
        &json!({"topic": "ci", "summary": "cache the target dir", "confidence": 0.8}),
    )
    .await
    .unwrap();
    let claimed = a.post("/v1/claims", &claim_body("db/main")).await.unwrap();
    assert_eq!(claimed["claim"]["standing"], "holding");
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let agent_a = nodes[0].node.agent_id().to_string();

    let agents = wait_all(
        &refs[1..],
        &clients[1..],
        "/v1/agents?skill=RUST",
        "the card on node B",
        |v| v["agents"].as_array().is_some_and(|a| a.len() == 1),
    )
    .await;
    assert_eq!(agents[0]["agents"][0]["author"], agent_a.as_str());
    assert_eq!(agents[0]["agents"][0]["version"], "2.1");
    let task = wait_all(
        &refs[1..],
        &clients[1..],
        "/v1/tasks/T-1",
        "the task on node B",
        |v| v["state"] == "TASK_STATE_WORKING",
    )
    .await;
    assert_eq!(task[0]["history"].as_array().unwrap().len(), 2);
    assert_eq!(task[0]["context_id"], "c");
    let leases = wait_all(
        &refs[1..],
        &clients[1..],
        "/v1/leases?resource=db/main",
        "the lease on node B",
        |v| holder_of(v).is_some(),
    )
    .await;
    assert_eq!(leases[0]["leases"][0]["max_holders"], 2);
    assert_eq!(
        holder_of(&leases[0]).unwrap(),
        claimed["claim"]["claim_id"].as_str().unwrap()
    );
    let by_holder = b
        .get(&format!("/v1/leases?holder={agent_a}"))
        .await
        .unwrap();
    assert_eq!(by_holder["leases"].as_array().unwrap().len(), 1);
    wait_all(
        &refs[1..],
        &clients[1..],
        "/v1/patterns?topic=ci",
        "the pattern on node B",
        |v| v["patterns"].as_array().is_some_and(|p| p.len() == 1),
    )
    .await;
    let constraints = b.get("/v1/constraints").await.unwrap();
    assert_eq!(constraints["constraints"][0]["rule"]["type"], "maxHolders");
    let log = b
        .get(&format!("/v1/log?author={agent_a}&kind=task"))
        .await
        .unwrap();
    assert_eq!(log["entries"].as_array().unwrap().len(), 2);
    assert_eq!(
        log["entries"][1]["body"]["status"]["state"],
        "TASK_STATE_WORKING"
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_race_among_many_contenders_converges_to_one_holder() {
    let (nodes, clients) = line(5).await;
    // Every agent claims at once.
    let racers: Vec<_> = clients
        .iter()
        .cloned()
        .map(|client| {
            tokio::spawn(async move { client.post("/v1/claims", &claim_body("repo/x")).await })
        })
        .collect();
    let mut claims: Vec<(u64, String)> = Vec::new();
    for racer in racers {
        let answer = racer.await.unwrap().unwrap();
        let claim = &answer["claim"];
        claims.push((
            claim["claimed_ms"].as_u64().unwrap(),
            claim["claim_id"].as_str().unwrap().to_owned(),
        ));
    }
    // The documented rule: the earliest claim wins, ties broken by priority, then entry id.
    claims.sort();
    let expected: Vec<String> = claims.into_iter().map(|(_, id)| id).collect();
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let order = |answer: &Value| -> Vec<String> {
        let lease = &answer["leases"][0];
        lease["holders"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(lease["waiting"].as_array().into_iter().flatten())
            .map(|claim| claim["claim_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let answers = wait_all(
        &refs,
        &clients,
        "/v1/leases?resource=repo/x",
        "all five claims on every node",
        |v| order(v).len() == 5,
    )
    .await;
    for answer in &answers {
        assert_eq!(answer["leases"][0]["holders"].as_array().unwrap().len(), 1);
        assert_eq!(
            order(answer),
            expected,
            "every node orders the claims the same way"
        );
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_partition_resolves_a_double_claim_and_tells_the_loser() {
    let mut nodes = spawn(4).await;
    connect(&nodes[1], &nodes[0]).await;
    connect(&nodes[3], &nodes[2]).await;
    partition(&nodes[..2], &nodes[2..]).await;
    let mut clients = Vec::new();
    for node in &mut nodes {
        clients.push(node.api().await);
    }
    let early = clients[0]
        .post("/v1/claims", &claim_body("printer"))
        .await
        .unwrap();
    let early_ms = early["claim"]["claimed_ms"].as_u64().unwrap();
    // The right side claims strictly later, so the left claim must win after the heal.
    let late = loop {
        let late = clients[3]
            .post("/v1/claims", &claim_body("printer"))
            .await
            .unwrap();
        if late["claim"]["claimed_ms"].as_u64().unwrap() > early_ms {
            break late;
        }
        clients[3]
            .post(
                &format!(
                    "/v1/claims/{}/release",
                    late["claim"]["claim_id"].as_str().unwrap()
                ),
                &json!({}),
            )
            .await
            .unwrap();
    };
    let late_id = late["claim"]["claim_id"].as_str().unwrap().to_owned();
    let early_id = early["claim"]["claim_id"].as_str().unwrap().to_owned();
    assert_eq!(
        late["claim"]["standing"], "holding",
        "alone on its side, the late claim holds"
    );
    let mut lost_events = clients[3]
        .events("kind=claim.lost&resource=printer")
        .await
        .unwrap();
    // Each side sees its own claimant holding.
    let refs: Vec<&TestNode> = nodes.iter().collect();
    wait_all(
        &refs[2..],
        &clients[2..],
        "/v1/leases?resource=printer",
        "the right side to agree",
        |v| holder_of(v).as_deref() == Some(late_id.as_str()),
    )
    .await;
    wait_all(
        &refs[..2],
        &clients[..2],
        "/v1/leases?resource=printer",
        "the left side to agree",
        |v| holder_of(v).as_deref() == Some(early_id.as_str()),
    )
    .await;
    // Heal.
    heal(&nodes[..2], &nodes[2..]).await;
    connect(&nodes[2], &nodes[1]).await;
    wait_all(
        &refs,
        &clients,
        "/v1/leases?resource=printer",
        "one winner everywhere",
        |v| holder_of(v).as_deref() == Some(early_id.as_str()),
    )
    .await;
    let event = tokio::time::timeout(CONVERGE, lost_events.next())
        .await
        .expect("the loser is told")
        .unwrap()
        .unwrap();
    assert_eq!(event.event, "claim.lost");
    let data: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(data["data"]["claim"]["claim_id"], late_id.as_str());
    assert_eq!(data["data"]["holders"][0]["claim_id"], early_id.as_str());
    let standing = clients[3]
        .get(&format!("/v1/claims/{late_id}"))
        .await
        .unwrap();
    assert_eq!(standing["standing"], "waiting");
    assert_eq!(standing["position"], 1);
    shutdown(nodes).await;
}

/// One bad request: who sends it, method, path, body, and the expected status, error code and
/// field.
type Case<'a> = (
    &'a ApiClient,
    &'static str,
    String,
    Option<Vec<u8>>,
    u16,
    &'static str,
    Option<&'static str>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_the_right_4xx_and_write_nothing() {
    let (nodes, clients) = line(2).await;
    let client = &clients[0];
    let other = clients[1]
        .post("/v1/claims", &claim_body("theirs"))
        .await
        .unwrap();
    let other_claim = other["claim"]["claim_id"].as_str().unwrap().to_owned();
    client
        .post(
            "/v1/tasks",
            &json!({"taskId": "done", "status": {"state": "TASK_STATE_WORKING"}}),
        )
        .await
        .unwrap();
    client
        .post(
            "/v1/tasks",
            &json!({"taskId": "done", "status": {"state": "TASK_STATE_COMPLETED"}}),
        )
        .await
        .unwrap();
    let refs: Vec<&TestNode> = nodes.iter().collect();
    wait_all(
        &refs[..1],
        &clients[..1],
        &format!("/v1/claims/{other_claim}"),
        "the other node's claim",
        |v| v["standing"] == "holding",
    )
    .await;
    let before = nodes[0].node.log().stats().unwrap();

    let no_token = ApiClient::new(client.addr(), "wrong");
    let cases: Vec<Case<'_>> = vec![
        (
            &no_token,
            "GET",
            "/v1/leases".into(),
            None,
            401,
            "unauthorized",
            None,
        ),
        (
            &no_token,
            "POST",
            "/v1/claims".into(),
            Some(claim_body("r").to_string().into_bytes()),
            401,
            "unauthorized",
            None,
        ),
        (
            client,
            "POST",
            "/v1/claims".into(),
            Some(b"{not json".to_vec()),
            400,
            "bad_json",
            None,
        ),
        (
            client,
            "POST",
            "/v1/claims".into(),
            None,
            400,
            "bad_json",
            None,
        ),
        (
            client,
            "POST",
            "/v1/claims".into(),
            Some(br#"{"resource": "r", "action": "w"}"#.to_vec()),
            422,
            "bad_body",
            Some("leaseMs"),
        ),
        (
            client,
            "POST",
            "/v1/claims".into(),
            Some(br#"{"resource": "r", "action": "w", "leaseMs": 5, "lease": 5}"#.to_vec()),
            422,
            "bad_body",
            Some("lease"),
        ),
        (
            client,
            "POST",
            "/v1/claims".into(),
            Some(br#"{"resource": "r", "action": "w", "leaseMs": 0}"#.to_vec()),
            422,
            "bad_field",
            Some("leaseMs"),
        ),
        (
            client,
            "POST",
            "/v1/claims".into(),
            Some(br#"{"resource": "two words", "action": "w", "leaseMs": 5}"#.to_vec()),
            422,
            "bad_field",
            Some("resource"),
        ),
        (
            client,
            "POST",
            "/v1/claims?namespace=Bad%20Space".into(),
            Some(claim_body("r").to_string().into_bytes()),
            400,
            "bad_query",
            Some("namespace"),
        ),
        (
            client,
            "GET",
            "/v1/leases?color=red".into(),
            None,
            400,
            "bad_query",
            None,
        ),
        (
            client,
            "GET",
            "/v1/claims/xyz".into(),
            None,
            400,
            "bad_claim_id",
            Some("claim_id"),
        ),
        (
            client,
            "POST",
            format!("/v1/claims/{}/release", "0".repeat(64)),
            None,
            404,
            "not_found",
            None,
        ),
        (
            client,
            "POST",
            format!("/v1/claims/{other_claim}/release"),
            None,
            409,
            "conflict",
            None,
        ),
        (
            client,
            "POST",
            format!("/v1/claims/{other_claim}/renew"),
            Some(br#"{"leaseMs": 1000}"#.to_vec()),
            409,
            "conflict",
            None,
        ),
        (
            client,
            "POST",
            "/v1/tasks".into(),
            Some(br#"{"taskId": "done", "status": {"state": "TASK_STATE_WORKING"}}"#.to_vec()),
            409,
            "conflict",
            None,
        ),
        (
            client,
            "POST",
            "/v1/tasks".into(),
            Some(br#"{"taskId": "new", "status": {"state": "TASK_STATE_COMPLETED"}}"#.to_vec()),
            409,
            "conflict",
            None,
        ),
        (
            client,
            "POST",
            "/v1/tasks".into(),
            Some(br#"{"taskId": "t", "status": {"state": "DONE"}}"#.to_vec()),
            422,
            "bad_body",
            None,
        ),
        (
            client,
            "POST",
            "/v1/entries".into(),
            Some(br#"{"kind": "intnet", "body": {}}"#.to_vec()),
            422,
            "unknown_kind",
            None,
        ),
        (
            client,
            "POST",
            "/v1/entries".into(),
            Some(br#"{"kind": "intent", "body": {}}"#.to_vec()),
            422,
            "use_specific_route",
            Some("kind"),
        ),
        (
            client,
            "POST",
            "/v1/patterns".into(),
            Some(br#"{"topic": "t", "summary": "s", "confidence": 7}"#.to_vec()),
            422,
            "bad_field",
            Some("confidence"),
        ),
        (
            client,
            "POST",
            "/v1/capability".into(),
            Some(vec![b' '; 200 * 1024]),
            413,
            "",
            None,
        ),
        (
            client,
            "GET",
            "/v1/tasks/missing".into(),
            None,
            404,
            "not_found",
            None,
        ),
        (
            client,
            "GET",
            "/v1/nothing-here".into(),
            None,
            404,
            "no_route",
            None,
        ),
    ];
    for (who, method, path, body, status, code, field) in cases {
        let response = who.request(method, &path, body.as_deref()).await.unwrap();
        let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        assert_eq!(response.status, status, "{method} {path}: {answer}");
        if !code.is_empty() {
            assert_eq!(answer["error"]["code"], code, "{method} {path}: {answer}");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.len() > 10),
                "{answer}"
            );
        }
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], field, "{method} {path}: {answer}");
        }
    }
    // Nothing was written by any refused request.
    let after = nodes[0].node.log().stats().unwrap();
    assert_eq!(after.entries, before.entries);
    // The client surfaces the node's error with its code and field.
    let error = client
        .post("/v1/claims", &json!({"resource": "r"}))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Status { status: 422, ref field, .. } if field.as_deref() == Some("action")),
        "{error}"
    );
    // Health needs no token; every documented route exists.
    assert_eq!(
        no_token
            .request("GET", "/v1/health", None)
            .await
            .unwrap()
            .status,
        200
    );
    for (method, path) in ROUTES {
        if *path == "/v1/events" {
            continue;
        }
        let path = path
            .replace("{claim_id}", &other_claim)
            .replace("{task_id}", "done");
        let response = client
            .request(&method.to_uppercase(), &path, Some(b"{}"))
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        assert_ne!(answer["error"]["code"], "no_route", "{method} {path}");
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_and_filters_apply() {
    let (nodes, clients) = line(1).await;
    let client = &clients[0];
    let mut all = client.events("").await.unwrap();
    let mut only_t1 = client.events("kind=task&task=T-1").await.unwrap();
    let states = [
        "TASK_STATE_SUBMITTED",
        "TASK_STATE_WORKING",
        "TASK_STATE_INPUT_REQUIRED",
        "TASK_STATE_WORKING",
        "TASK_STATE_COMPLETED",
    ];
    for (index, state) in states.iter().enumerate() {
        client.post("/v1/tasks", &json!({"taskId": "T-1", "status": {"state": state, "message": format!("step {index}")}})).await.unwrap();
        client.post("/v1/tasks", &json!({"taskId": format!("other-{index}"), "status": {"state": "TASK_STATE_SUBMITTED"}})).await.unwrap();
    }
    let mut last_id = None;
    let mut entry_seqs = Vec::new();
    while entry_seqs.len() < states.len() * 2 {
        let message = tokio::time::timeout(CONVERGE, all.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let id: u64 = message.id.as_deref().unwrap().parse().unwrap();
        if let Some(last) = last_id {
            assert_eq!(id, last + 1, "event ids have no gaps and no reordering");
        }
        last_id = Some(id);
        if message.event == "entry" {
            let event: Value = serde_json::from_str(&message.data).unwrap();
            entry_seqs.push(event["data"]["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(entry_seqs, (1..=10).collect::<Vec<u64>>());
    let mut seen_states = Vec::new();
    while seen_states.len() < 2 * states.len() {
        let message = tokio::time::timeout(CONVERGE, only_t1.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let event: Value = serde_json::from_str(&message.data).unwrap();
        assert_eq!(event["task_id"], "T-1");
        match message.event.as_str() {
            "entry" => seen_states.push(
                event["data"]["body"]["status"]["state"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            "task" => seen_states.push(format!("now {}", event["data"]["state"].as_str().unwrap())),
            other => panic!("unexpected event {other}"),
        }
    }
    let expected: Vec<String> = states
        .iter()
        .flat_map(|s| [s.to_string(), format!("now {s}")])
        .collect();
    assert_eq!(seen_states, expected);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backdated_claim_is_refused_at_ingest() {
    let (nodes, clients) = line(1).await;
    let cheater = Keypair::generate();
    let body = Body::from_json("intent", claim_body("printer"))
        .unwrap()
        .encode()
        .unwrap();
    let now = plexus_node::clock::now_ms();
    let backdated = Entry::sign(
        &cheater,
        Draft {
            namespace: NAMESPACE.into(),
            seq: 1,
            prev: None,
            timestamp_ms: now - 10 * 60 * 1000,
            kind: "intent".into(),
            body,
        },
    )
    .unwrap();
    let outcome = nodes[0].node.submit(backdated.encode()).await.unwrap();
    assert!(
        matches!(
            outcome,
            IngestOutcome::Rejected {
                reason: RejectReason::ClockSkew,
                ..
            }
        ),
        "{outcome:?}"
    );
    let rejections = clients[0].get("/v1/rejections").await.unwrap();
    let record = &rejections["rejections"][0];
    assert_eq!(record["reason"], "clock-skew");
    assert!(
        record["detail"].as_str().unwrap().contains("skew window"),
        "{record}"
    );
    let leases = clients[0].get("/v1/leases").await.unwrap();
    assert_eq!(leases["leases"], json!([]));
    // An honest claim made now is accepted.
    let honest = clients[0]
        .post("/v1/claims", &claim_body("printer"))
        .await
        .unwrap();
    assert_eq!(honest["claim"]["standing"], "holding");
    shutdown(nodes).await;
}
