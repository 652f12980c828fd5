//! The web page's side of the node: the bundle served at `/ui/` without a token and loading
//! nothing from elsewhere, the views at a past moment (`?at=`) and the history the node keeps
//! for them, and the lease timeline.
//! (The page itself is tested in a real browser by `web/tests/browser.mjs`, from scripts/test.sh.)

use std::net::SocketAddr;
use std::time::Duration;

use plexus_crypto::Keypair;
use plexus_node::client::ClientError;
use plexus_node::clock::now_ms;
use plexus_node::store::IngestOutcome;
use plexus_protocol::coord::Body;
use plexus_protocol::{Draft, Entry};
use plexus_tests::cluster::{shutdown, spawn, NAMESPACE};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response read off the socket as it is: status line, headers (names lowercased), body.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// GETs `path` with no token at all, as a browser asking for the page does.
async fn get_without_token(addr: SocketAddr, path: &str) -> Raw {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    Raw {
        status,
        headers,
        body: bytes[split + 4..].to_vec(),
    }
}

/// Every `src="..."` and `href="..."` of an HTML or script text.
fn references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (index, _) in text.match_indices(attribute) {
            let rest = &text[index + attribute.len()..];
            found.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_without_a_token_and_loads_nothing_from_elsewhere() {
    let mut nodes = spawn(1).await;
    let addr = nodes[0].api().await.addr();

    let page = get_without_token(addr, "/ui/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let policy = page.header("content-security-policy").unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"));
    let html = String::from_utf8(page.body).unwrap();
    let assets = references(&html);
    assert!(assets.iter().any(|asset| asset.ends_with(".js")), "{html}");
    for asset in assets {
        // The favicon is inline, and the skip link points into the page itself.
        if asset.starts_with("data:") || asset.starts_with('#') {
            continue;
        }
        assert!(
            asset.starts_with("/ui/"),
            "the page refers to {asset} outside the bundle"
        );
        let file = get_without_token(addr, &asset).await;
        assert_eq!(file.status, 200, "{asset}");
        let expected = if asset.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(
            file.header("content-type").unwrap().starts_with(expected),
            "{asset}"
        );
        let text = String::from_utf8(file.body).unwrap();
        assert!(
            !text.contains("https://"),
            "{asset} names an address elsewhere"
        );
    }

    let bare = get_without_token(addr, "/ui").await;
    assert_eq!(bare.status, 308);
    assert_eq!(bare.header("location"), Some("/ui/"));
    assert_eq!(
        get_without_token(addr, "/ui/no-such-file.js").await.status,
        404
    );
    // The page is public; the API it reads is not.
    assert_eq!(get_without_token(addr, "/v1/leases").await.status, 401);
    assert_eq!(get_without_token(addr, "/v1/timeline").await.status, 401);
    shutdown(nodes).await;
}

/// Waits until the clock has passed `ms`, so the next entry gets a later timestamp.
async fn clock_past(ms: u64) {
    while now_ms() <= ms {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn holders(answer: &Value) -> Vec<String> {
    answer["leases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|lease| lease["holders"].as_array().unwrap())
        .map(|claim| claim["claim_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_views_at_a_past_moment_show_the_earlier_holder_card_and_task_state() {
    let mut nodes = spawn(1).await;
    let client = nodes[0].api().await;
    let claim = json!({"resource": "repo/x", "action": "write", "leaseMs": 120_000});
    let first = client.post("/v1/claims", &claim).await.unwrap();
    let first_id = first["claim"]["claim_id"].as_str().unwrap().to_owned();
    let first_ms = first["claim"]["claimed_ms"].as_u64().unwrap();
    clock_past(first_ms).await;
    client
        .post(&format!("/v1/claims/{first_id}/release"), &json!({}))
        .await
        .unwrap();
    let card =
        json!({"name": "coder-1", "skills": [{"id": "rust", "name": "Rust"}], "ttlMs": 600_000});
    let published = client.post("/v1/capability", &card).await.unwrap();
    let card_ms = published["entry"]["timestamp_ms"].as_u64().unwrap();
    client
        .post(
            "/v1/tasks",
            &json!({"taskId": "T-1", "status": {"state": "TASK_STATE_SUBMITTED"}}),
        )
        .await
        .unwrap();
    let second = client.post("/v1/claims", &claim).await.unwrap();
    let second_id = second["claim"]["claim_id"].as_str().unwrap().to_owned();
    let second_ms = second["claim"]["claimed_ms"].as_u64().unwrap();
    clock_past(second_ms).await;
    client
        .post(
            "/v1/tasks",
            &json!({"taskId": "T-1", "status": {"state": "TASK_STATE_WORKING"}}),
        )
        .await
        .unwrap();

    assert_eq!(
        holders(&client.get("/v1/leases").await.unwrap()),
        vec![second_id.clone()]
    );
    let then = client
        .get(&format!("/v1/leases?at={first_ms}"))
        .await
        .unwrap();
    assert_eq!(holders(&then), vec![first_id.clone()]);
    assert_eq!(then["at_ms"], first_ms);
    let before_card = client
        .get(&format!("/v1/agents?at={first_ms}"))
        .await
        .unwrap();
    assert_eq!(before_card["agents"], json!([]));
    let with_card = client
        .get(&format!("/v1/agents?at={card_ms}"))
        .await
        .unwrap();
    assert_eq!(with_card["agents"][0]["name"], "coder-1");
    let task_then = client
        .get(&format!("/v1/tasks/T-1?at={second_ms}"))
        .await
        .unwrap();
    assert_eq!(task_then["state"], "TASK_STATE_SUBMITTED");
    let tasks_now = client.get("/v1/tasks").await.unwrap();
    assert_eq!(tasks_now["tasks"][0]["state"], "TASK_STATE_WORKING");
    let tasks_then = client
        .get(&format!("/v1/tasks?at={first_ms}"))
        .await
        .unwrap();
    assert_eq!(tasks_then["tasks"], json!([]));

    // The timeline: the first claim held until its release, the second from its claim on.
    let to = now_ms() + 1;
    let timeline = client
        .get(&format!("/v1/timeline?from={}&to={to}", first_ms - 1))
        .await
        .unwrap();
    let row = &timeline["resources"][0];
    assert_eq!(row["resource"], "repo/x");
    let segments = |id: &str| -> Vec<(u64, u64, String)> {
        let claim = row["claims"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["claim_id"] == id)
            .unwrap();
        claim["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["from_ms"].as_u64().unwrap(),
                    s["to_ms"].as_u64().unwrap(),
                    s["standing"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let first_segments = segments(&first_id);
    assert_eq!(first_segments.len(), 1);
    assert_eq!(
        (first_segments[0].0, first_segments[0].2.as_str()),
        (first_ms, "holding")
    );
    assert!(first_segments[0].1 <= second_ms);
    assert_eq!(
        segments(&second_id),
        vec![(second_ms, to, "holding".to_owned())]
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_time_queries_are_refused_with_a_reason() {
    let mut nodes = spawn(1).await;
    let client = nodes[0].api().await;
    for (route, field, says) in [
        ("/v1/timeline?from=10&to=10", Some("from"), "must be before"),
        (
            "/v1/timeline?from=0&to=99999999999",
            Some("from"),
            "shorter",
        ),
        ("/v1/leases?at=yesterday", None, "at"),
    ] {
        let (status, named, message) = match client.get(route).await.unwrap_err() {
            ClientError::Status {
                status,
                field,
                message,
                ..
            } => (status, field, message),
            other => panic!("{route}: {other}"),
        };
        assert_eq!(status, 400, "{route}: {message}");
        assert!(message.contains(says), "{route}: {message}");
        if field.is_some() {
            assert_eq!(named.as_deref(), field, "{route}: {message}");
        }
    }
    shutdown(nodes).await;
}

/// The view keeps the last `--view-history-minutes` (a day by default): a moment before that is
/// refused, saying where to ask instead, rather than answered from a view that forgot it; a
/// timeline reaching back past it starts where the history does, and says it was cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moments_before_the_kept_history_are_refused_with_where_to_ask() {
    const HOUR: u64 = 3_600_000;
    let mut nodes = spawn(1).await;
    let client = nodes[0].api().await;
    let started = now_ms();
    for route in ["/v1/leases", "/v1/agents"] {
        let too_old = format!("{route}?at={}", started - 25 * HOUR);
        let (status, code, field, message) = match client.get(&too_old).await.unwrap_err() {
            ClientError::Status {
                status,
                code,
                field,
                message,
            } => (status, code, field, message),
            other => panic!("{too_old}: {other}"),
        };
        assert_eq!(
            (status, code.as_str()),
            (410, "before_history"),
            "{too_old}: {message}"
        );
        assert_eq!(field.as_deref(), Some("at"));
        assert!(message.contains("plexus audit replay"), "{message}");
        let recent = format!("{route}?at={}", started - 23 * HOUR);
        client
            .get(&recent)
            .await
            .unwrap_or_else(|error| panic!("{recent}: {error}"));
    }
    let timeline = client
        .get(&format!(
            "/v1/timeline?from={}&to={started}",
            started - 30 * HOUR
        ))
        .await
        .unwrap();
    let from = timeline["from_ms"].as_u64().unwrap();
    assert!(
        from > started - 25 * HOUR && from < started - 23 * HOUR,
        "the history kept starts a day back: {timeline}"
    );
    assert_eq!(timeline["truncated"], true);
    shutdown(nodes).await;
}

/// A task that ended before the history the view keeps is not listed; asked for by id, the
/// node says how and when it ended and where its history is; an update to it is refused as
/// its whole history refuses it; and a moment before that history is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_ended_before_the_kept_history_is_not_listed_but_stays_ended() {
    const HOUR: u64 = 3_600_000;
    let mut nodes = spawn(1).await;
    let client = nodes[0].api().await;
    let worker = Keypair::generate();
    let started = now_ms();
    let mut prev = None;
    let updates = [
        (started - 26 * HOUR, "TASK_STATE_WORKING"),
        (started - 25 * HOUR, "TASK_STATE_COMPLETED"),
    ];
    for (seq, (timestamp_ms, state)) in (1..).zip(updates) {
        let body = json!({"taskId": "old", "status": {"state": state}});
        let body = Body::from_json("task", body).unwrap().encode().unwrap();
        let draft = Draft {
            namespace: NAMESPACE.into(),
            seq,
            prev,
            timestamp_ms,
            kind: "task".into(),
            body,
        };
        let entry = Entry::sign(&worker, draft).unwrap();
        prev = Some(entry.id());
        let outcome = nodes[0].node.submit(entry.encode()).await.unwrap();
        assert!(
            matches!(outcome, IngestOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }
    // The node's own update folds everything stored before it into the view.
    let working = json!({"taskId": "new", "status": {"state": "TASK_STATE_WORKING"}});
    client.post("/v1/tasks", &working).await.unwrap();
    let listed = client.get("/v1/tasks").await.unwrap();
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|task| task["task_id"].as_str())
        .collect();
    assert_eq!(ids, ["new"], "{listed}");
    let status_of = |error: ClientError| match error {
        ClientError::Status {
            status,
            code,
            message,
            ..
        } => (status, code, message),
        other => panic!("{other}"),
    };
    let (status, code, message) = status_of(client.get("/v1/tasks/old").await.unwrap_err());
    assert_eq!((status, code.as_str()), (404, "not_found"), "{message}");
    for says in [
        "TASK_STATE_COMPLETED",
        &(started - 25 * HOUR).to_string(),
        "plexus audit replay",
    ] {
        assert!(message.contains(says), "{says:?} in {message}");
    }
    let again = json!({"taskId": "old", "status": {"state": "TASK_STATE_WORKING"}});
    let (status, _, message) = status_of(client.post("/v1/tasks", &again).await.unwrap_err());
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("TASK_STATE_COMPLETED"), "{message}");
    for route in ["/v1/tasks", "/v1/tasks/new"] {
        let too_old = format!("{route}?at={}", started - 25 * HOUR);
        let (status, code, message) = status_of(client.get(&too_old).await.unwrap_err());
        assert_eq!(
            (status, code.as_str()),
            (410, "before_history"),
            "{message}"
        );
    }
    shutdown(nodes).await;
}
