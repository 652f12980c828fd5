//! A client of the node's local HTTP API, used by the CLI and the tests: reqwest over plain
//! HTTP/1.1 to the node's loopback address, JSON bodies, and a reader for the server-sent
//! event stream. Responses are capped at [`MAX_RESPONSE_BYTES`].

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;

use crate::config::{self, API_ADDR_FILE};

/// Largest response body read; the API pages its lists well below this.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// How long connecting and each response may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Errors talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no running node found for {dir} (no {file}): start one with `plexus run`",
        file = API_ADDR_FILE
    )]
    NoNode { dir: String },
    #[error("{path} does not hold a socket address")]
    BadAddress { path: String },
    #[error("cannot read the API token: {0}")]
    Token(String),
    /// Nothing accepted the connection: the node is not (or no longer) running.
    #[error("cannot reach the node at {addr} ({reason}): is `plexus run` still running?")]
    Connect { addr: SocketAddr, reason: String },
    #[error("talking to the node at {addr} failed: {reason}")]
    Io { addr: SocketAddr, reason: String },
    #[error("the node at {addr} did not answer within {seconds} s")]
    Timeout { addr: SocketAddr, seconds: u64 },
    #[error("the node at {addr} sent a malformed response: {problem}")]
    Protocol { addr: SocketAddr, problem: String },
    /// The node answered with an error status; `message` is its JSON error's message.
    #[error("the node answered {status}: {message}")]
    Status {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
    },
}

/// A client of one node's API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    addr: SocketAddr,
    token: String,
    http: reqwest::Client,
}

/// A raw response: status, headers and body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// An open event stream.
#[derive(Debug)]
pub struct EventStream {
    addr: SocketAddr,
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl ApiClient {
    /// A client for the node at `addr` with `token`.
    pub fn new(addr: SocketAddr, token: impl Into<String>) -> ApiClient {
        // Building fails only when the TLS backend or the system resolver cannot start; we
        // use neither (plain HTTP to an IP address), so the default client is the fallback.
        let http = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .no_proxy()
            .build()
            .unwrap_or_default();
        ApiClient {
            addr,
            token: token.into(),
            http,
        }
    }

    /// A client for the node running on `data_dir` (its address file and token).
    pub fn for_data_dir(data_dir: &Path) -> Result<ApiClient, ClientError> {
        let addr_file = data_dir.join(API_ADDR_FILE);
        let text = std::fs::read_to_string(&addr_file).map_err(|_| ClientError::NoNode {
            dir: data_dir.display().to_string(),
        })?;
        let addr = text.trim().parse().map_err(|_| ClientError::BadAddress {
            path: addr_file.display().to_string(),
        })?;
        let token = config::load_or_create_token(data_dir)
            .map_err(|error| ClientError::Token(error.to_string()))?;
        Ok(ApiClient::new(addr, token))
    }

    /// The node's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// GETs `path` (with its query) and parses the JSON answer; error statuses become
    /// [`ClientError::Status`].
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.json(self.request("GET", path, None).await?)
    }

    /// POSTs `body` as JSON to `path` and parses the JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.json(self.request("POST", path, Some(&bytes)).await?)
    }

    /// Sends one request and returns the status and body as they are.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<RawResponse, ClientError> {
        self.request_with_headers(method, path, body, &[]).await
    }

    /// [`ApiClient::request`] with extra request headers (for example `Idempotency-Key`).
    pub async fn request_with_headers(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra_headers: &[(&str, &str)],
    ) -> Result<RawResponse, ClientError> {
        let exchange = async {
            let mut response = self
                .send(method, path, body, "application/json", extra_headers)
                .await?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| self.failure(&e))? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_RESPONSE_BYTES {
                    return Err(self.protocol(format!("response over {MAX_RESPONSE_BYTES} bytes")));
                }
            }
            Ok(RawResponse {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| self.timeout())?
    }

    /// Opens `GET /v1/events` with `query` (for example `kind=claim.won&resource=repo/*`).
    pub async fn events(&self, query: &str) -> Result<EventStream, ClientError> {
        let path = if query.is_empty() {
            "/v1/events".to_owned()
        } else {
            format!("/v1/events?{query}")
        };
        let response = tokio::time::timeout(
            TIMEOUT,
            self.send("GET", &path, None, "text/event-stream", &[]),
        )
        .await
        .map_err(|_| self.timeout())??;
        let status = response.status().as_u16();
        if status != 200 {
            let body = tokio::time::timeout(TIMEOUT, response.bytes())
                .await
                .map_err(|_| self.timeout())?
                .map_err(|error| self.failure(&error))?;
            return Err(status_error(status, &body));
        }
        Ok(EventStream {
            addr: self.addr,
            response,
            buffer: Vec::new(),
        })
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        accept: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, ClientError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| self.protocol(format!("{method:?} is not an HTTP method")))?;
        let mut request = self
            .http
            .request(method, format!("http://{}{path}", self.addr))
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(ACCEPT, accept);
        for (name, value) in extra_headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        request.send().await.map_err(|error| self.failure(&error))
    }

    fn json(&self, response: RawResponse) -> Result<Value, ClientError> {
        if !(200..300).contains(&response.status) {
            return Err(status_error(response.status, &response.body));
        }
        serde_json::from_slice(&response.body)
            .map_err(|error| self.protocol(format!("the body is not JSON: {error}")))
    }

    fn failure(&self, error: &reqwest::Error) -> ClientError {
        failure(self.addr, error)
    }

    fn protocol(&self, problem: String) -> ClientError {
        ClientError::Protocol {
            addr: self.addr,
            problem,
        }
    }

    fn timeout(&self) -> ClientError {
        ClientError::Timeout {
            addr: self.addr,
            seconds: TIMEOUT.as_secs(),
        }
    }
}

impl EventStream {
    /// The next event, or `None` when the server closed the stream. Keep-alive comments are
    /// skipped.
    pub async fn next(&mut self) -> Result<Option<SseMessage>, ClientError> {
        loop {
            if let Some((text_len, separator_len)) = find_event_end(&self.buffer) {
                let block: Vec<u8> = self.buffer.drain(..text_len + separator_len).collect();
                let text = String::from_utf8_lossy(block.get(..text_len).unwrap_or_default());
                if let Some(message) = parse_event(&text) {
                    return Ok(Some(message));
                }
                continue;
            }
            if self.buffer.len() > MAX_RESPONSE_BYTES {
                return Err(ClientError::Protocol {
                    addr: self.addr,
                    problem: "an event is larger than the response limit".into(),
                });
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                Ok(None) => return Ok(None),
                Err(error) => return Err(failure(self.addr, &error)),
            }
        }
    }
}

/// Names what went wrong by the innermost cause (such as "Connection refused"), once: reqwest
/// wraps it in several layers that each repeat the URL.
fn failure(addr: SocketAddr, error: &reqwest::Error) -> ClientError {
    let mut innermost: &dyn std::error::Error = error;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    let reason = innermost.to_string();
    if error.is_timeout() {
        ClientError::Timeout {
            addr,
            seconds: TIMEOUT.as_secs(),
        }
    } else if error.is_connect() {
        ClientError::Connect { addr, reason }
    } else {
        ClientError::Io { addr, reason }
    }
}

/// The error of a non-2xx answer. The node always sends `{"error": {"code", "message"}}`; an
/// answer without it (from something else on the port, or HTTP-level refusals) still gets a
/// readable message.
fn status_error(status: u16, body: &[u8]) -> ClientError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    let text = |key: &str| {
        error
            .and_then(|error| error.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let raw = String::from_utf8_lossy(body).trim().to_owned();
    let message = text("message").unwrap_or_else(|| {
        if raw.is_empty() {
            format!("HTTP {status} with no explanation")
        } else {
            raw.chars().take(500).collect()
        }
    });
    ClientError::Status {
        status,
        code: text("code").unwrap_or_else(|| "http_error".to_owned()),
        message,
        field: text("field"),
    }
}

/// The end of the first complete event in `buffer`: (length of its text, separator length).
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|at| (at, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_event(text: &str) -> Option<SseMessage> {
    let mut message = SseMessage {
        id: None,
        event: "message".to_owned(),
        data: String::new(),
    };
    let mut has_data = false;
    for line in text.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => message.id = Some(value.to_owned()),
            "event" => message.event = value.to_owned(),
            "data" => {
                if has_data {
                    message.data.push('\n');
                }
                message.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    has_data.then_some(message)
}

#[cfg(test)]
mod tests {
    use super::{find_event_end, parse_event, status_error, ClientError};

    #[test]
    fn events_parse_and_comments_are_skipped() {
        let text = "id: 7\nevent: claim.won\ndata: {\"a\":1}";
        let message = parse_event(text).unwrap();
        assert_eq!(message.id.as_deref(), Some("7"));
        assert_eq!(message.event, "claim.won");
        assert_eq!(message.data, "{\"a\":1}");
        assert!(parse_event(": keep-alive").is_none());
        assert_eq!(find_event_end(b"data: x\n\nrest"), Some((7, 2)));
        assert_eq!(find_event_end(b"data: x\n"), None);
    }

    #[test]
    fn an_error_answer_without_a_body_still_says_something() {
        let ClientError::Status { code, message, .. } = status_error(400, b"") else {
            panic!("a status error")
        };
        assert_eq!(code, "http_error");
        assert_eq!(message, "HTTP 400 with no explanation");
    }
}
