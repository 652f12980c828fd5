//! Admission: the checks every entry passes before a node may store it, whichever way it came.
//!
//! A node receives entries three ways: gossip (live, from any peer), the API's submit (live,
//! from a local agent that holds its own key) and sync responses (history, fetched from a peer
//! for one feed and range). All three go through [`admit_batch`], which needs no state: it
//! looks at the bytes and at the route they came by, and answers for each input either
//! [`Admitted`] (the only way to make one) or a [`Refusal`] with a stable [`RefusalReason`] and
//! a detail naming the author and seq where they are known.
//!
//! The checks, in this order (the first that fails is the refusal; `docs/PROTOCOL.md` §5.2):
//!
//! 1. size: at most [`MAX_ENTRY_LEN`] bytes (`malformed`);
//! 2. decoding: a canonical entry envelope (`malformed`);
//! 3. route: a gossip entry's namespace and kind match its topic (`wrong-topic`); a sync
//!    response's entry belongs to the requested feed and range (`malformed`);
//! 4. signature, verified in one batch for the whole input (`bad-signature`);
//! 5. body presence: a live entry (gossip, submit) carries its body (`pruned-body`); history
//!    may be pruned;
//! 6. body: well formed for its kind, or the kind is an application kind (`bad-body`). This
//!    is the entry's one body parse: [`Admitted`] carries the parsed body on to the policy,
//!    the log and the view.
//!
//! What needs the node's state (replays, rate limits, the clock-skew window, quarantine,
//! placement in the feed, the namespace's policy) comes after admission, in the node.

use std::ops::RangeInclusive;

use plexus_crypto::{verify_batch_parallel, BatchItem};

use crate::body::Body;
use crate::kind::{Kind, OTHER_TOPIC_SUFFIX};
use crate::{Entry, FeedKey, MAX_ENTRY_LEN};

/// How an input arrived, which decides the route check and whether a pruned body is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// A gossip message on the entry topic of `namespace` whose last segment is `suffix`.
    Gossip { namespace: &'a str, suffix: &'a str },
    /// Submitted through the node's API by a local agent.
    Submit,
    /// Part of a sync response for `feed`, which asked for the seqs `seqs`.
    Sync {
        feed: &'a FeedKey,
        seqs: &'a RangeInclusive<u64>,
    },
    /// History read from elsewhere (a file, a tool): no route to check, pruned bodies allowed.
    History,
}

impl Route<'_> {
    /// Whether entries on this route must carry their body.
    pub fn is_live(&self) -> bool {
        matches!(self, Route::Gossip { .. } | Route::Submit)
    }
}

/// An entry that passed admission: decoded, on its route, signed by its author, with a body
/// its kind allows (or, for history, pruned), and that body as admission parsed it, so
/// nothing after admission parses it again.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    entry: Entry,
    /// `None` when the body was pruned.
    body: Option<Body>,
}

impl Admitted {
    /// The admitted entry.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The entry's body, parsed for its kind; `None` when it was pruned.
    pub fn body(&self) -> Option<&Body> {
        self.body.as_ref()
    }

    /// The admitted entry and its parsed body, by value.
    pub fn into_parts(self) -> (Entry, Option<Body>) {
        (self.entry, self.body)
    }
}

/// Why admission refused an input. The codes are those of the rejection journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    Malformed,
    WrongTopic,
    BadSignature,
    PrunedBody,
    BadBody,
}

impl RefusalReason {
    /// The stable code recorded with a rejection.
    pub fn code(self) -> &'static str {
        match self {
            RefusalReason::Malformed => "malformed",
            RefusalReason::WrongTopic => "wrong-topic",
            RefusalReason::BadSignature => "bad-signature",
            RefusalReason::PrunedBody => "pruned-body",
            RefusalReason::BadBody => "bad-body",
        }
    }

    /// Whether the input is undeniably invalid, so that whoever sent it is at fault: every
    /// reason but a bad body, which may be a kind or a field that a newer version knows.
    pub fn is_invalid_data(self) -> bool {
        self != RefusalReason::BadBody
    }
}

/// A refused input: why, and a detail for the rejection journal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.code())]
pub struct Refusal {
    pub reason: RefusalReason,
    pub detail: String,
}

/// Admits one input (a batch of one).
pub fn admit(bytes: &[u8], route: Route<'_>) -> Result<Admitted, Refusal> {
    admit_batch([(bytes, route)])
        .pop()
        .unwrap_or_else(|| Err(refusal(RefusalReason::Malformed, "no input".into())))
}

/// Admits a batch of inputs, verifying every signature in it in one batch (on every core).
/// The answers come back in input order.
pub fn admit_batch<'a, 'r>(
    inputs: impl IntoIterator<Item = (&'a [u8], Route<'r>)>,
) -> Vec<Result<Admitted, Refusal>> {
    let mut answers: Vec<Result<Entry, Refusal>> = Vec::new();
    let mut live = Vec::new();
    for (bytes, route) in inputs {
        live.push(route.is_live());
        answers.push(decode_on_route(bytes, route));
    }
    finish(answers, &live)
}

/// Admits entries already decoded (signed in this process, or read back from a file), as
/// history: their signatures are verified in one batch and their bodies checked.
pub fn admit_entries(entries: Vec<Entry>) -> Vec<Result<Admitted, Refusal>> {
    let answers: Vec<Result<Entry, Refusal>> = entries.into_iter().map(Ok).collect();
    let live = vec![false; answers.len()];
    finish(answers, &live)
}

/// Checks 4 to 6 for every decoded input (`live[i]`: whether input `i` must carry its body).
fn finish(answers: Vec<Result<Entry, Refusal>>, live: &[bool]) -> Vec<Result<Admitted, Refusal>> {
    let verified = verify_signatures(&answers);
    answers
        .into_iter()
        .zip(verified)
        .zip(live)
        .map(|((answer, signature_ok), live)| {
            let entry = answer?;
            if !signature_ok {
                let header = entry.header();
                let detail = format!(
                    "signature does not verify for author {} seq {}",
                    header.author, header.seq
                );
                return Err(refusal(RefusalReason::BadSignature, detail));
            }
            check_entry_body(entry, *live)
        })
        .collect()
}

/// Admits an entry this node signed itself (its signature is not checked again): only its
/// body is checked against its kind.
pub fn admit_own(entry: Entry) -> Result<Admitted, Refusal> {
    check_entry_body(entry, true)
}

/// Checks 1-3: size, decoding and route.
fn decode_on_route(bytes: &[u8], route: Route<'_>) -> Result<Entry, Refusal> {
    if bytes.len() > MAX_ENTRY_LEN {
        let detail = format!(
            "{} bytes, over the {MAX_ENTRY_LEN}-byte entry limit",
            bytes.len()
        );
        return Err(refusal(RefusalReason::Malformed, detail));
    }
    let entry = Entry::decode(bytes)
        .map_err(|error| refusal(RefusalReason::Malformed, error.to_string()))?;
    let header = entry.header();
    match route {
        Route::Gossip { namespace, suffix } => {
            let kind_suffix =
                Kind::parse(&header.kind).map_or(OTHER_TOPIC_SUFFIX, Kind::topic_suffix);
            if header.namespace != namespace || kind_suffix != suffix {
                let detail = format!(
                    "entry of namespace {} and kind {} arrived on the topic for \
                     {namespace}/{suffix}",
                    header.namespace, header.kind
                );
                return Err(refusal(RefusalReason::WrongTopic, detail));
            }
        }
        Route::Sync { feed, seqs } => {
            if FeedKey::of(&entry) != *feed || !seqs.contains(&header.seq) {
                let detail = format!(
                    "sync response holds an entry outside the requested range {}..={}",
                    seqs.start(),
                    seqs.end()
                );
                return Err(refusal(RefusalReason::Malformed, detail));
            }
        }
        Route::Submit | Route::History => {}
    }
    Ok(entry)
}

/// Check 4 for every decoded input, in one batch: `true` where the signature verifies (and
/// for inputs already refused, which are not looked at).
fn verify_signatures(answers: &[Result<Entry, Refusal>]) -> Vec<bool> {
    let decoded: Vec<(usize, &Entry)> = answers
        .iter()
        .enumerate()
        .filter_map(|(index, answer)| answer.as_ref().ok().map(|entry| (index, entry)))
        .collect();
    let inputs: Vec<Vec<u8>> = decoded
        .iter()
        .map(|(_, entry)| entry.signing_input())
        .collect();
    let items: Vec<BatchItem<'_>> = decoded
        .iter()
        .zip(&inputs)
        .map(|((_, entry), input)| BatchItem {
            author: &entry.header().author,
            message: input,
            signature: entry.signature(),
        })
        .collect();
    let mut verified = vec![true; answers.len()];
    if let Err(error) = verify_batch_parallel(&items) {
        for bad in error.bad {
            if let Some((index, _)) = decoded.get(bad) {
                if let Some(slot) = verified.get_mut(*index) {
                    *slot = false;
                }
            }
        }
    }
    verified
}

/// Checks 5 and 6.
fn check_entry_body(entry: Entry, live: bool) -> Result<Admitted, Refusal> {
    let header = entry.header();
    if live && entry.body().is_none() {
        let detail = format!(
            "entry seq {} of author {} arrived without its body (pruned); live entries (gossip, \
             submit) must carry their body, only history fetched by backfill may be pruned",
            header.seq, header.author
        );
        return Err(refusal(RefusalReason::PrunedBody, detail));
    }
    match Body::of_entry(&entry) {
        Ok(body) => Ok(Admitted { entry, body }),
        Err(error) => {
            let detail = format!(
                "entry seq {} of author {} in {}: {error}",
                header.seq, header.author, header.namespace
            );
            Err(refusal(RefusalReason::BadBody, detail))
        }
    }
}

fn refusal(reason: RefusalReason, detail: String) -> Refusal {
    Refusal { reason, detail }
}

#[cfg(test)]
mod tests;
