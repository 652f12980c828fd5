//! `Idempotency-Key` on the publishing routes: a retried request returns the first answer and
//! publishes nothing.
//!
//! An agent that lost the answer to a publish (a timeout, a dropped connection) cannot know
//! whether its entry was made; retrying blindly makes a second entry (a second claim). With
//! the header, the node remembers what the first request with that key answered and gives the
//! same answer to a retry of the same request (same method, path, query and body), with
//! `Idempotent-Replayed: true`. The same key on a different request is refused (422), and a
//! retry while the first request is still running gets 409 (try again shortly). Only
//! successful answers are remembered: a refused request wrote nothing, so its retry runs again.
//!
//! At most [`MAX_KEYS`] keys are kept, for [`KEY_LIFETIME`] (the oldest go first when full),
//! in memory and in the node's database (`store::answers`): each answer is written, and
//! fsynced, right after the entry it answers and before it is sent, and the node loads them
//! again when it starts, so a retry across a restart gets the first answer. What remains: if
//! the node stops between the entry's write and its answer's (a crash or power cut in that
//! instant; a clean stop waits for requests to finish), the key is lost and a retry writes a
//! second entry; an answer that cannot be written (a full disk) is kept in memory only.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use plexus_crypto::{sha256, Hash256};
use tracing::warn;

use super::{ApiError, MAX_REQUEST_BYTES};
use crate::clock::now_ms;
use crate::store::Log;

/// The request header naming an idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The response header marking an answer given again for a retried request.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Keys remembered at once: far more than an agent retries within a day, and with answers of
/// about 1 KB, about 10 MB at most.
pub const MAX_KEYS: usize = 10_000;

/// How long a key is remembered: longer than any sensible retry loop.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest key accepted (UUIDs and ULIDs fit many times over).
pub const MAX_KEY_LEN: usize = 255;

/// Bytes of remembered answers kept at once, whatever their number.
const MAX_STORED_BYTES: usize = 32 * 1024 * 1024;

/// Largest answer remembered: the publishing routes answer with an entry summary and, for
/// claims, the claim's standing, well under this.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// What the node remembers about idempotency keys.
#[derive(Debug, Default)]
pub struct IdempotencyKeys {
    state: Mutex<KeysState>,
    /// Where answers are kept across restarts (`None`: in memory only).
    log: Option<Arc<Log>>,
}

#[derive(Debug, Default)]
struct KeysState {
    by_key: HashMap<String, Slot>,
    /// Completed keys in completion order, with their generation, for expiry and eviction.
    order: VecDeque<(String, u64)>,
    stored_bytes: usize,
    next_generation: u64,
    /// Completed keys dropped (expired or evicted) since the last write to the log, which
    /// deletes them there too.
    dropped: Vec<String>,
}

#[derive(Debug)]
enum Slot {
    /// The first request with this key is still running.
    InFlight {
        fingerprint: Hash256,
    },
    Done(Arc<Answer>),
}

/// A remembered successful answer.
#[derive(Debug)]
struct Answer {
    fingerprint: Hash256,
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
    /// When it was first given, Unix milliseconds (wall clock: it outlives a restart).
    at_ms: u64,
    generation: u64,
}

/// Version byte of a stored answer record.
const RECORD_VERSION: u8 = 1;

impl Answer {
    /// The record kept in the log: version, fingerprint, status, time, content type, body.
    fn to_record(&self) -> Vec<u8> {
        let content_type = self
            .content_type
            .as_ref()
            .map_or(&[][..], HeaderValue::as_bytes);
        let mut record = Vec::with_capacity(45 + content_type.len() + self.body.len());
        record.push(RECORD_VERSION);
        record.extend_from_slice(self.fingerprint.as_bytes());
        record.extend_from_slice(&self.status.as_u16().to_be_bytes());
        record.extend_from_slice(&self.at_ms.to_be_bytes());
        record.extend_from_slice(&(content_type.len() as u16).to_be_bytes());
        record.extend_from_slice(content_type);
        record.extend_from_slice(&self.body);
        record
    }

    /// The answer a record holds (`None`: not a record this node writes).
    fn from_record(record: &[u8]) -> Option<Answer> {
        let (&version, rest) = record.split_first()?;
        if version != RECORD_VERSION {
            return None;
        }
        let (fingerprint, rest) = rest.split_at_checked(32)?;
        let (status, rest) = rest.split_at_checked(2)?;
        let (at_ms, rest) = rest.split_at_checked(8)?;
        let (type_len, rest) = rest.split_at_checked(2)?;
        let type_len = u16::from_be_bytes(type_len.try_into().ok()?) as usize;
        let (content_type, body) = rest.split_at_checked(type_len)?;
        Some(Answer {
            fingerprint: Hash256::from_slice(fingerprint)?,
            status: StatusCode::from_u16(u16::from_be_bytes(status.try_into().ok()?)).ok()?,
            content_type: if content_type.is_empty() {
                None
            } else {
                Some(HeaderValue::from_bytes(content_type).ok()?)
            },
            body: Bytes::copy_from_slice(body),
            at_ms: u64::from_be_bytes(at_ms.try_into().ok()?),
            generation: 0,
        })
    }
}

/// What a request with a key should do.
#[derive(Debug)]
enum Begin {
    /// Run it; the key is now in flight.
    Fresh,
    Replay(Arc<Answer>),
    Mismatch,
    InProgress,
}

impl IdempotencyKeys {
    fn lock(&self) -> MutexGuard<'_, KeysState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keys kept in `log` as well, starting with those it holds (expired and unreadable ones
    /// are deleted there, and past [`MAX_KEYS`] the oldest).
    pub fn persistent(log: Arc<Log>) -> Result<IdempotencyKeys, crate::store::StoreError> {
        let mut loaded: Vec<(String, Answer)> = Vec::new();
        let mut unreadable = Vec::new();
        for (key, record) in log.idempotent_answers()? {
            match Answer::from_record(&record) {
                Some(answer) => loaded.push((key, answer)),
                None => unreadable.push(key),
            }
        }
        loaded.sort_by_key(|(_, answer)| answer.at_ms);
        let keys = IdempotencyKeys {
            state: Mutex::default(),
            log: Some(Arc::clone(&log)),
        };
        let mut forget = unreadable;
        {
            let mut state = keys.lock();
            for (key, answer) in loaded {
                state.insert_done(key, answer);
            }
            state.expire(now_ms());
            forget.append(&mut state.dropped);
        }
        log.forget_idempotent_answers(&forget)?;
        Ok(keys)
    }

    fn begin(&self, key: &str, fingerprint: Hash256, now_ms: u64) -> Begin {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.expire(now_ms);
        match state.by_key.get(key) {
            None => {
                state
                    .by_key
                    .insert(key.to_owned(), Slot::InFlight { fingerprint });
                Begin::Fresh
            }
            Some(Slot::InFlight { fingerprint: first }) if *first == fingerprint => {
                Begin::InProgress
            }
            Some(Slot::Done(answer)) if answer.fingerprint == fingerprint => {
                Begin::Replay(Arc::clone(answer))
            }
            Some(_) => Begin::Mismatch,
        }
    }

    /// Forgets an in-flight key whose request failed or was dropped.
    fn abandon(&self, key: &str) {
        let mut state = self.lock();
        if matches!(state.by_key.get(key), Some(Slot::InFlight { .. })) {
            state.by_key.remove(key);
        }
    }

    /// Remembers `answer` for `key`; returns its record for the log and the keys dropped
    /// since the last call, which the log deletes.
    fn complete(&self, key: &str, answer: Answer) -> (Vec<u8>, Vec<String>) {
        let record = answer.to_record();
        let mut state = self.lock();
        state.insert_done(key.to_owned(), answer);
        let dropped = std::mem::take(&mut state.dropped);
        (record, dropped)
    }

    /// Keeps a completed answer in the log, right after the entry it answers; a failure
    /// (a full disk) leaves it in memory only, and the entry stands.
    async fn save(&self, key: &str, record: Vec<u8>, dropped: Vec<String>) {
        let Some(log) = self.log.clone() else {
            return;
        };
        let key = key.to_owned();
        let saved = tokio::task::spawn_blocking(move || {
            log.save_idempotent_answer(&key, &record, &dropped)
                .map_err(|error| (key, error))
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err((key, error))) => warn!(
                %error,
                key,
                "could not keep an idempotency key's answer on disk; a retry after a restart \
                 would write again"
            ),
            Err(error) => warn!(%error, "the task keeping an idempotency answer failed"),
        }
    }
}

impl KeysState {
    fn insert_done(&mut self, key: String, mut answer: Answer) {
        answer.generation = self.next_generation;
        self.next_generation += 1;
        self.stored_bytes += answer.body.len();
        self.order.push_back((key.clone(), answer.generation));
        self.by_key.insert(key, Slot::Done(Arc::new(answer)));
        self.evict_over_bounds();
    }

    /// Drops keys older than [`KEY_LIFETIME`] (the queue is in completion order).
    fn expire(&mut self, now_ms: u64) {
        while let Some((key, generation)) = self.order.front() {
            let expired = match self.by_key.get(key) {
                Some(Slot::Done(answer)) if answer.generation == *generation => {
                    now_ms.saturating_sub(answer.at_ms) >= KEY_LIFETIME.as_millis() as u64
                }
                // Stale queue entry: the key was evicted already.
                _ => true,
            };
            if !expired {
                break;
            }
            self.pop_oldest();
        }
    }

    fn evict_over_bounds(&mut self) {
        while self.order.len() > MAX_KEYS || self.stored_bytes > MAX_STORED_BYTES {
            if !self.pop_oldest() {
                break;
            }
        }
    }

    /// Removes the oldest completed key; false when there is none.
    fn pop_oldest(&mut self) -> bool {
        let Some((key, generation)) = self.order.pop_front() else {
            return false;
        };
        if let Some(Slot::Done(answer)) = self.by_key.get(&key) {
            if answer.generation == generation {
                self.stored_bytes = self.stored_bytes.saturating_sub(answer.body.len());
                self.by_key.remove(&key);
                // Bounded: at most the keys dropped between two completions, and loading.
                self.dropped.push(key);
            }
        }
        true
    }
}

/// Releases an in-flight key if the request does not complete (an error answer, or the
/// client went away and the handler was dropped).
struct InFlight<'a> {
    keys: &'a IdempotencyKeys,
    key: &'a str,
    completed: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.completed {
            self.keys.abandon(self.key);
        }
    }
}

/// The middleware: applies to `POST` requests that carry [`IDEMPOTENCY_HEADER`].
pub(super) async fn layer(
    State(keys): State<Arc<IdempotencyKeys>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(value) = request.headers().get(IDEMPOTENCY_HEADER) else {
        return next.run(request).await;
    };
    let key = match check_key(value) {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_REQUEST_BYTES).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is over {MAX_REQUEST_BYTES} bytes"),
        )
        .into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|path| path.as_str())
        .unwrap_or_default();
    let fingerprint = fingerprint(parts.method.as_str(), path, &body);
    match keys.begin(&key, fingerprint, now_ms()) {
        Begin::Fresh => {}
        Begin::Replay(answer) => return replay(&answer),
        Begin::Mismatch => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!(
                    "Idempotency-Key {key:?} was first used for a different request (another \
                     route, query or body); a retry must repeat the request exactly, and a new \
                     request needs a new key"
                ),
            )
            .with_field(IDEMPOTENCY_HEADER)
            .into_response()
        }
        Begin::InProgress => {
            let mut response = ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_progress",
                format!(
                    "the first request with Idempotency-Key {key:?} is still running; retry \
                     shortly to get its answer"
                ),
            )
            .with_field(IDEMPOTENCY_HEADER)
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
    }
    let mut in_flight = InFlight {
        keys: &keys,
        key: &key,
        completed: false,
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, MAX_ANSWER_BYTES).await else {
        // Cannot happen with this API's answers; the entry was made, so say so plainly.
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "answer_too_large",
            "the request succeeded but its answer could not be read back; see GET /v1/log",
        )
        .into_response();
    };
    let (record, dropped) = keys.complete(
        &key,
        Answer {
            fingerprint,
            status: parts.status,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            body: body.clone(),
            at_ms: now_ms(),
            generation: 0,
        },
    );
    in_flight.completed = true;
    keys.save(&key, record, dropped).await;
    Response::from_parts(parts, Body::from(body))
}

fn check_key(value: &HeaderValue) -> Result<String, ApiError> {
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_KEY_LEN
        || !bytes.iter().all(|byte| (0x21..=0x7e).contains(byte))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_idempotency_key",
            format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters (a UUID, \
                 say); got {} bytes",
                bytes.len()
            ),
        )
        .with_field(IDEMPOTENCY_HEADER));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// SHA-256 over the method, the path with its query, and the body, each length-prefixed.
fn fingerprint(method: &str, path: &str, body: &[u8]) -> Hash256 {
    let mut input = Vec::with_capacity(24 + method.len() + path.len() + body.len());
    for part in [method.as_bytes(), path.as_bytes(), body] {
        input.extend_from_slice(&(part.len() as u64).to_be_bytes());
        input.extend_from_slice(part);
    }
    sha256(&input)
}

fn replay(answer: &Answer) -> Response {
    let mut response = Response::new(Body::from(answer.body.clone()));
    *response.status_mut() = answer.status;
    if let Some(content_type) = &answer.content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(fingerprint: Hash256, body: &'static [u8], at_ms: u64) -> Answer {
        Answer {
            fingerprint,
            status: StatusCode::CREATED,
            content_type: None,
            body: Bytes::from_static(body),
            at_ms,
            generation: 0,
        }
    }

    #[test]
    fn a_key_is_replayed_for_the_same_request_and_refused_for_another() {
        let keys = IdempotencyKeys::default();
        let now = 1_767_225_600_000;
        let first = fingerprint("POST", "/v1/claims", b"{\"resource\":\"r\"}");
        let other = fingerprint("POST", "/v1/claims", b"{\"resource\":\"s\"}");
        assert!(matches!(keys.begin("k", first, now), Begin::Fresh));
        assert!(matches!(keys.begin("k", first, now), Begin::InProgress));
        assert!(matches!(keys.begin("k", other, now), Begin::Mismatch));
        keys.complete("k", answer(first, b"{}", now));
        assert!(matches!(keys.begin("k", first, now), Begin::Replay(_)));
        assert!(matches!(keys.begin("k", other, now), Begin::Mismatch));
        // The same body on another route is another request.
        let renew = fingerprint("POST", "/v1/entries", b"{\"resource\":\"r\"}");
        assert!(matches!(keys.begin("k", renew, now), Begin::Mismatch));
    }

    #[test]
    fn a_failed_request_frees_its_key() {
        let keys = IdempotencyKeys::default();
        let now = 1_767_225_600_000;
        let print = fingerprint("POST", "/v1/tasks", b"{}");
        assert!(matches!(keys.begin("k", print, now), Begin::Fresh));
        keys.abandon("k");
        assert!(matches!(keys.begin("k", print, now), Begin::Fresh));
    }

    #[test]
    fn keys_expire_after_their_lifetime_and_the_oldest_go_first_when_full() {
        let keys = IdempotencyKeys::default();
        let start = 1_767_225_600_000;
        let print = fingerprint("POST", "/v1/tasks", b"{}");
        for index in 0..=MAX_KEYS {
            let key = format!("k{index}");
            assert!(matches!(keys.begin(&key, print, start), Begin::Fresh));
            keys.complete(&key, answer(print, b"{}", start));
        }
        assert_eq!(keys.lock().by_key.len(), MAX_KEYS);
        // k0 was evicted to make room: it is a fresh key again.
        assert!(matches!(keys.begin("k0", print, start), Begin::Fresh));
        assert!(matches!(keys.begin("k1", print, start), Begin::Replay(_)));
        let later = start + KEY_LIFETIME.as_millis() as u64;
        assert!(matches!(keys.begin("k1", print, later), Begin::Fresh));
        // Only the in-flight k0 and k1 remain.
        assert_eq!(keys.lock().by_key.len(), 2);
    }

    #[test]
    fn an_answer_record_round_trips_and_other_bytes_are_refused() {
        let mut first = answer(fingerprint("POST", "/v1/claims", b"{}"), b"{\"ok\":1}", 42);
        first.content_type = Some(HeaderValue::from_static("application/json"));
        let record = first.to_record();
        let again = Answer::from_record(&record).unwrap();
        assert_eq!(again.fingerprint, first.fingerprint);
        assert_eq!(again.status, first.status);
        assert_eq!(again.content_type, first.content_type);
        assert_eq!(again.body, first.body);
        assert_eq!(again.at_ms, 42);
        for cut in 0..45 {
            assert!(Answer::from_record(&record[..cut]).is_none(), "{cut}");
        }
        let mut other_version = record.clone();
        other_version[0] = 2;
        assert!(Answer::from_record(&other_version).is_none());
    }

    #[test]
    fn kept_keys_come_back_after_a_restart_without_the_expired_ones() {
        let dir = tempfile::tempdir().unwrap();
        let print = fingerprint("POST", "/v1/tasks", b"{}");
        let now = now_ms();
        let day = KEY_LIFETIME.as_millis() as u64;
        {
            let log = Arc::new(Log::open(dir.path()).unwrap());
            let keys = IdempotencyKeys::persistent(Arc::clone(&log)).unwrap();
            for (key, at_ms) in [("old", now - day - 1), ("fresh", now - day / 2)] {
                let (record, dropped) = keys.complete(key, answer(print, b"{}", at_ms));
                log.save_idempotent_answer(key, &record, &dropped).unwrap();
            }
            log.save_idempotent_answer("garbage", b"\x07not a record", &[])
                .unwrap();
        }
        let log = Arc::new(Log::open(dir.path()).unwrap());
        let keys = IdempotencyKeys::persistent(Arc::clone(&log)).unwrap();
        assert!(matches!(keys.begin("fresh", print, now), Begin::Replay(_)));
        assert!(matches!(keys.begin("old", print, now), Begin::Fresh));
        // What is not kept in memory is deleted from the log too.
        let stored: Vec<String> = log
            .idempotent_answers()
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(stored, vec!["fresh".to_owned()]);
    }

    #[test]
    fn keys_must_be_short_visible_ascii() {
        assert!(check_key(&HeaderValue::from_static("3f2b-uuid")).is_ok());
        assert!(check_key(&HeaderValue::from_static("")).is_err());
        assert!(check_key(&HeaderValue::from_static("with space")).is_err());
        let long = "a".repeat(MAX_KEY_LEN + 1);
        assert!(check_key(&HeaderValue::from_str(&long).unwrap()).is_err());
    }
}
