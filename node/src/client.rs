//! A small client of the node's local HTTP API, used by the CLI and the tests: HTTP/1.1 over
//! one TCP connection per request (`Connection: close`), JSON bodies, and a reader for the
//! server-sent event stream. It speaks only what our own server sends: `Content-Length` or
//! chunked bodies, capped at [`MAX_RESPONSE_BYTES`].

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::{self, API_ADDR_FILE};

/// Largest response body read; the API pages its lists well below this.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// Longest header section accepted from the server.
const MAX_HEADER_BYTES: usize = 64 * 1024;

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
    #[error("cannot reach the node at {addr}: {source}; is `plexus run` still running?")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("talking to the node at {addr} failed: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
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
}

/// A raw response: status and body.
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
    reader: BufReader<TcpStream>,
    chunked: bool,
    buffer: Vec<u8>,
}

impl ApiClient {
    /// A client for the node at `addr` with `token`.
    pub fn new(addr: SocketAddr, token: impl Into<String>) -> ApiClient {
        ApiClient {
            addr,
            token: token.into(),
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
            let (mut reader, status, headers) = self
                .send(method, path, body, "application/json", extra_headers)
                .await?;
            let body = read_body(self.addr, &mut reader, &headers).await?;
            Ok(RawResponse {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                addr: self.addr,
                seconds: TIMEOUT.as_secs(),
            })?
    }

    /// Opens `GET /v1/events` with `query` (for example `kind=claim.won&resource=repo/*`).
    pub async fn events(&self, query: &str) -> Result<EventStream, ClientError> {
        let path = if query.is_empty() {
            "/v1/events".to_owned()
        } else {
            format!("/v1/events?{query}")
        };
        let opened = tokio::time::timeout(
            TIMEOUT,
            self.send("GET", &path, None, "text/event-stream", &[]),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            addr: self.addr,
            seconds: TIMEOUT.as_secs(),
        })?;
        let (mut reader, status, headers) = opened?;
        if status != 200 {
            let body = read_body(self.addr, &mut reader, &headers).await?;
            return Err(status_error(status, &body));
        }
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
        Ok(EventStream {
            addr: self.addr,
            reader,
            chunked,
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
    ) -> Result<(BufReader<TcpStream>, u16, Vec<(String, String)>), ClientError> {
        let addr = self.addr;
        let io = |source| ClientError::Io { addr, source };
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Accept: {accept}\r\nConnection: close\r\n",
            self.token
        );
        for (name, value) in extra_headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        if let Some(body) = body {
            stream.write_all(body).await.map_err(io)?;
        }
        stream.flush().await.map_err(io)?;
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(addr, &mut reader).await?;
        Ok((reader, status, headers))
    }

    fn json(&self, response: RawResponse) -> Result<Value, ClientError> {
        if !(200..300).contains(&response.status) {
            return Err(status_error(response.status, &response.body));
        }
        serde_json::from_slice(&response.body).map_err(|error| ClientError::Protocol {
            addr: self.addr,
            problem: format!("the body is not JSON: {error}"),
        })
    }
}

impl EventStream {
    /// The next event, or `None` when the server closed the stream. Keep-alive comments are
    /// skipped.
    pub async fn next(&mut self) -> Result<Option<SseMessage>, ClientError> {
        loop {
            if let Some(end) = find_event_end(&self.buffer) {
                let block: Vec<u8> = self.buffer.drain(..end.0 + end.1).collect();
                let text = String::from_utf8_lossy(&block[..end.0]).into_owned();
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
            let more = if self.chunked {
                read_chunk(self.addr, &mut self.reader).await?
            } else {
                let mut piece = vec![0u8; 8192];
                let read =
                    self.reader
                        .read(&mut piece)
                        .await
                        .map_err(|source| ClientError::Io {
                            addr: self.addr,
                            source,
                        })?;
                piece.truncate(read);
                (read > 0).then_some(piece)
            };
            match more {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }
}

fn status_error(status: u16, body: &[u8]) -> ClientError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    let text = |key: &str| {
        error
            .and_then(|error| error.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    ClientError::Status {
        status,
        code: text("code").unwrap_or_default(),
        message: text("message").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
        field: text("field"),
    }
}

async fn read_head(
    addr: SocketAddr,
    reader: &mut BufReader<TcpStream>,
) -> Result<(u16, Vec<(String, String)>), ClientError> {
    let mut total = 0usize;
    let mut status_line = String::new();
    total += read_line(addr, reader, &mut status_line).await?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| ClientError::Protocol {
            addr,
            problem: format!("bad status line {status_line:?}"),
        })?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        total += read_line(addr, reader, &mut line).await?;
        if total > MAX_HEADER_BYTES {
            return Err(ClientError::Protocol {
                addr,
                problem: "headers too long".into(),
            });
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Ok((status, headers));
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
}

async fn read_line(
    addr: SocketAddr,
    reader: &mut BufReader<TcpStream>,
    line: &mut String,
) -> Result<usize, ClientError> {
    let read = reader
        .read_line(line)
        .await
        .map_err(|source| ClientError::Io { addr, source })?;
    if read == 0 {
        return Err(ClientError::Protocol {
            addr,
            problem: "the connection closed in the middle of the response".into(),
        });
    }
    Ok(read)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

async fn read_body(
    addr: SocketAddr,
    reader: &mut BufReader<TcpStream>,
    headers: &[(String, String)],
) -> Result<Vec<u8>, ClientError> {
    let io = |source| ClientError::Io { addr, source };
    if header(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        while let Some(chunk) = read_chunk(addr, reader).await? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_RESPONSE_BYTES {
                return Err(ClientError::Protocol {
                    addr,
                    problem: format!("response over {MAX_RESPONSE_BYTES} bytes"),
                });
            }
        }
        return Ok(body);
    }
    if let Some(length) = header(headers, "content-length") {
        let length: usize = length.parse().map_err(|_| ClientError::Protocol {
            addr,
            problem: format!("bad content-length {length:?}"),
        })?;
        if length > MAX_RESPONSE_BYTES {
            return Err(ClientError::Protocol {
                addr,
                problem: format!("response of {length} bytes is over the limit"),
            });
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await.map_err(io)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    reader
        .take(MAX_RESPONSE_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .await
        .map_err(io)?;
    Ok(body)
}

/// Reads one chunk of a chunked body; `None` after the last (empty) chunk.
async fn read_chunk(
    addr: SocketAddr,
    reader: &mut BufReader<TcpStream>,
) -> Result<Option<Vec<u8>>, ClientError> {
    let mut size_line = String::new();
    let read = reader
        .read_line(&mut size_line)
        .await
        .map_err(|source| ClientError::Io { addr, source })?;
    if read == 0 {
        return Ok(None);
    }
    let size_text = size_line.trim().split(';').next().unwrap_or_default();
    let size = usize::from_str_radix(size_text, 16).map_err(|_| ClientError::Protocol {
        addr,
        problem: format!("bad chunk size {size_text:?}"),
    })?;
    if size > MAX_RESPONSE_BYTES {
        return Err(ClientError::Protocol {
            addr,
            problem: format!("chunk of {size} bytes is over the limit"),
        });
    }
    let mut chunk = vec![0u8; size + 2];
    reader
        .read_exact(&mut chunk)
        .await
        .map_err(|source| ClientError::Io { addr, source })?;
    chunk.truncate(size);
    Ok((size > 0).then_some(chunk))
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
    use super::{find_event_end, parse_event};

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
}
