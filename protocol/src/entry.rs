//! The entry: one signed statement by one author, in that author's feed for one namespace.
//!
//! Byte layout (normative text in `docs/PROTOCOL.md`):
//!
//! ```text
//! envelope      = [ signed-header, body / null ]                     ; CBOR array(2)
//! signed-header = [ version, namespace, author, seq, prev / null,
//!                   timestamp, kind, body-hash, body-len, signature ] ; CBOR array(10)
//! signing-input = "plexus/entry/v1" 0x00 || CBOR([ the first nine fields ])
//! entry id      = SHA-256(signed-header bytes)
//! ```
//!
//! The signature covers the body's hash and length, never the body, and the id does not depend on
//! the body either: a feed whose bodies were pruned still verifies and keeps its ids.
//!
//! Decoding is strict. The size cap is checked before any parsing; the bytes must be canonical
//! CBOR; every field is checked for type and range, and a present body must match the signed
//! hash and length. Two decoders share these rules: a hand-written one for the fixed layout
//! (`fast.rs`), which checks canonical form while parsing and only ever accepts, and the
//! reference decoder (decode through `ciborium::Value`, re-encode, compare), which runs
//! whenever the fast one gives up and so produces every error.
//!
//! Signature verification is a separate step ([`Entry::verify_signature`]) so that audit and
//! backfill can verify many entries in a batch.

use ciborium::Value;
use plexus_crypto::{
    sha256, AgentId, AgentIdCache, Hash256, Keypair, Signature, HASH_LEN, PUBLIC_KEY_LEN,
    SIGNATURE_LEN,
};

use crate::cbor::{self, CborError};

mod fast;
pub use fast::EntryView;

/// The entry format version this code writes and accepts.
pub const FORMAT_VERSION: u64 = 1;

/// Largest encoded envelope accepted anywhere (storage, gossip, backfill, export). The gossip
/// layer's `max_transmit_size` is derived from this value.
pub const MAX_ENTRY_LEN: usize = 65_536;

/// Largest body. The rest of [`MAX_ENTRY_LEN`] is headroom for the signed header (at most
/// about 330 bytes with maximal names).
pub const MAX_BODY_LEN: usize = 64_000;

/// Longest namespace or kind name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Domain tag that starts every signing input, so an entry signature can never be replayed as a
/// signature over anything else this key signs.
pub const SIGNING_DOMAIN: &[u8] = b"plexus/entry/v1\0";

/// Encoded length of the signature item at the end of the signed header: a two-byte CBOR head
/// (`0x58 0x40`) and the 64 signature bytes.
const SIGNATURE_ITEM_LEN: usize = 2 + SIGNATURE_LEN;

/// The fields an author chooses; the log adds seq and prev when it appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub namespace: String,
    pub seq: u64,
    pub prev: Option<Hash256>,
    pub timestamp_ms: u64,
    pub kind: String,
    pub body: Vec<u8>,
}

/// The signed fields of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub namespace: String,
    pub author: AgentId,
    pub seq: u64,
    pub prev: Option<Hash256>,
    pub timestamp_ms: u64,
    pub kind: String,
    pub body_hash: Hash256,
    pub body_len: u64,
}

/// A decoded (or freshly signed) entry. Its id and encodings are computed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    header: Header,
    signature: Signature,
    body: Option<Vec<u8>>,
    id: Hash256,
    signed_header_bytes: Vec<u8>,
}

/// Why bytes are not a well-formed entry, or a draft cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Larger than [`MAX_ENTRY_LEN`]; checked before parsing.
    #[error("entry is {len} bytes, over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    /// Not canonical CBOR.
    #[error("bad encoding: {0}")]
    Cbor(#[from] CborError),
    /// A field of the wrong type, length or range.
    #[error("field `{field}`: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
    /// A format version this code does not know.
    #[error("unsupported format version {0} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u64),
    /// The body's length differs from the signed `body-len`.
    #[error("body is {actual} bytes but the signed header says {declared}")]
    BodyLenMismatch { declared: u64, actual: usize },
    /// The body's hash differs from the signed `body-hash`.
    #[error("body hash {actual} does not match the signed body hash {declared}")]
    BodyHashMismatch { declared: Hash256, actual: Hash256 },
}

impl EntryError {
    /// A stable, machine-readable code for the error, used in test vectors and rejection
    /// records (`field:<name>` for field errors).
    pub fn code(&self) -> String {
        match self {
            EntryError::TooLarge { .. } => "too-large".into(),
            EntryError::Cbor(CborError::Truncated { .. }) => "truncated".into(),
            EntryError::Cbor(CborError::Malformed { .. }) => "malformed-cbor".into(),
            EntryError::Cbor(CborError::TooDeep) => "too-deep".into(),
            EntryError::Cbor(CborError::NotCanonical { .. }) => "non-canonical".into(),
            EntryError::Cbor(CborError::TrailingBytes { .. }) => "trailing-bytes".into(),
            EntryError::Cbor(CborError::UnsortedMap) => "unsorted-map".into(),
            EntryError::Field { field, .. } => format!("field:{field}"),
            EntryError::UnsupportedVersion(_) => "unsupported-version".into(),
            EntryError::BodyLenMismatch { .. } => "body-len-mismatch".into(),
            EntryError::BodyHashMismatch { .. } => "body-hash-mismatch".into(),
        }
    }
}

impl Entry {
    /// Signs a draft with `keypair`, checking every field as [`Entry::decode`] would.
    pub fn sign(keypair: &Keypair, draft: Draft) -> Result<Entry, EntryError> {
        let header = Header {
            namespace: draft.namespace,
            author: keypair.agent_id(),
            seq: draft.seq,
            prev: draft.prev,
            timestamp_ms: draft.timestamp_ms,
            kind: draft.kind,
            body_hash: sha256(&draft.body),
            body_len: draft.body.len() as u64,
        };
        check_header(&header)?;
        let signature = keypair.sign(&signing_input(&header));
        let entry = Entry::assemble(header, signature, Some(draft.body));
        if entry.encoded_len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLarge {
                len: entry.encoded_len(),
                max: MAX_ENTRY_LEN,
            });
        }
        Ok(entry)
    }

    /// Decodes and checks an envelope. Does not verify the signature.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        match Entry::decode_keeping_header(bytes)? {
            (entry, None) => Ok(entry),
            (_, Some(body_error)) => Err(body_error),
        }
    }

    /// Like [`Entry::decode`], but a body that does not match its signed hash or length is
    /// returned as a separate error beside the (body-less) entry, so an auditor can still
    /// locate it by author and seq and check its signature and chain.
    pub fn decode_keeping_header(bytes: &[u8]) -> Result<(Entry, Option<EntryError>), EntryError> {
        match fast::decode(bytes, None) {
            Some(entry) => Ok((entry, None)),
            None => Entry::decode_reference(bytes),
        }
    }

    /// Reads a valid entry in place, without allocating: `Some` exactly when
    /// [`Entry::decode_keeping_header`] would return the entry with no body error. `None`
    /// says only "not that": call [`Entry::decode_keeping_header`] for the verdict and error.
    /// Author keys are parsed through `cache` (see [`AgentIdCache`]).
    pub fn decode_view<'a>(bytes: &'a [u8], cache: &mut AgentIdCache) -> Option<EntryView<'a>> {
        fast::view(bytes, Some(cache))
    }

    /// Like [`Entry::decode_keeping_header`], with author keys parsed through `cache`: when
    /// many entries by a few authors are decoded (an audit), each key is decompressed once.
    pub fn decode_keeping_header_cached(
        bytes: &[u8],
        cache: &mut AgentIdCache,
    ) -> Result<(Entry, Option<EntryError>), EntryError> {
        match fast::decode(bytes, Some(cache)) {
            Some(entry) => Ok((entry, None)),
            None => Entry::decode_reference(bytes),
        }
    }

    /// The reference decoder: decode through `ciborium::Value`, re-encode, compare, then check
    /// each field. Every error comes from here (the fast path only accepts), and the property
    /// tests hold the fast path to the same verdicts.
    fn decode_reference(bytes: &[u8]) -> Result<(Entry, Option<EntryError>), EntryError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLarge {
                len: bytes.len(),
                max: MAX_ENTRY_LEN,
            });
        }
        let value = cbor::decode_canonical(bytes)?;
        let Value::Array(mut envelope) = value else {
            return Err(field("envelope", "must be an array of 2 items"));
        };
        if envelope.len() != 2 {
            return Err(field("envelope", "must be an array of 2 items"));
        }
        let body_value = envelope.pop().unwrap_or(Value::Null);
        let header_value = envelope.pop().unwrap_or(Value::Null);
        // The order of checks is normative (docs/PROTOCOL.md, 3.4): shapes and types in field
        // order, then the body's type, then the version, then the field rules in field order.
        let raw = parse_signed_header(header_value)?;
        let body = match body_value {
            Value::Null => None,
            Value::Bytes(body) => Some(body),
            _ => return Err(field("body", "must be a byte string or null")),
        };
        if raw.version != FORMAT_VERSION {
            return Err(EntryError::UnsupportedVersion(raw.version));
        }
        check_name("namespace", &raw.namespace)?;
        let author = AgentId::from_bytes(&raw.author).map_err(|error| field("author", error))?;
        let signature = raw.signature;
        let header = Header {
            namespace: raw.namespace,
            author,
            seq: raw.seq,
            prev: raw.prev,
            timestamp_ms: raw.timestamp_ms,
            kind: raw.kind,
            body_hash: raw.body_hash,
            body_len: raw.body_len,
        };
        check_header(&header)?;
        let body_error = body
            .as_ref()
            .and_then(|body| check_body(&header, body).err());
        let body = if body_error.is_some() { None } else { body };
        // The signed header is the first item of the envelope, after its one-byte array head.
        let header_len = bytes
            .get(1..)
            .map(cbor::item_len)
            .transpose()?
            .flatten()
            .ok_or(CborError::Truncated {
                available: bytes.len(),
            })?;
        let signed_header_bytes = bytes.get(1..1 + header_len).unwrap_or_default().to_vec();
        let entry = Entry {
            id: sha256(&signed_header_bytes),
            header,
            signature,
            body,
            signed_header_bytes,
        };
        Ok((entry, body_error))
    }

    /// Where a damaged envelope claims to be, read leniently so an auditor can locate a bad
    /// entry. The rule is normative (docs/PROTOCOL.md §6.2): the bytes are at most
    /// [`MAX_ENTRY_LEN`] long and start `0x82 0x8a`; the version item is skipped whatever it
    /// is; then come a text string that is a valid name (the namespace), a byte string of 32
    /// bytes that is a valid key (the author) and an unsigned integer (the seq). Heads may use
    /// more argument bytes than needed, and nothing after the seq is looked at. Never trust
    /// the result for anything but a report.
    pub fn peek_position(bytes: &[u8]) -> Option<(String, AgentId, u64)> {
        if bytes.len() > MAX_ENTRY_LEN {
            return None;
        }
        let rest = bytes.strip_prefix(&[0x82, 0x8a])?;
        let version_len = cbor::item_len(rest).ok().flatten()?;
        let rest = rest.get(version_len..)?;
        let (namespace, rest) = lenient_string(rest, 3)?;
        let namespace = std::str::from_utf8(namespace).ok()?;
        check_name("namespace", namespace).ok()?;
        let (author, rest) = lenient_string(rest, 2)?;
        let author = AgentId::from_slice(author).ok()?;
        let (major, seq, _) = lenient_head(rest)?;
        (major == 0).then(|| (namespace.to_owned(), author, seq))
    }

    /// The canonical envelope bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(0x82);
        out.extend_from_slice(&self.signed_header_bytes);
        match &self.body {
            Some(body) => {
                write_bytes_head(&mut out, body.len() as u64);
                out.extend_from_slice(body);
            }
            None => out.push(0xf6),
        }
        out
    }

    /// Length of [`Entry::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        1 + self.signed_header_bytes.len()
            + match &self.body {
                Some(body) => cbor_head_len(body.len() as u64) + body.len(),
                None => 1,
            }
    }

    /// The entry id: SHA-256 of the signed header's bytes.
    pub fn id(&self) -> Hash256 {
        self.id
    }

    /// The signed fields.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// What the header's kind name means to the protocol; decoding checks only the name's
    /// syntax, so an unknown kind is an error here (and in [`crate::coord::check_body`]).
    pub fn kind(&self) -> Result<crate::Kind, crate::UnknownKind> {
        crate::Kind::parse(&self.header.kind)
    }

    /// The author's signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The body, unless it was pruned.
    pub fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }

    /// The bytes the signature covers.
    pub fn signing_input(&self) -> Vec<u8> {
        let mut input = Vec::with_capacity(SIGNING_DOMAIN.len() + self.signed_header_bytes.len());
        append_signing_input(&self.signed_header_bytes, &mut input);
        input
    }

    /// Verifies the signature against the author key (the rule of docs/PROTOCOL.md §1).
    pub fn verify_signature(&self) -> bool {
        self.header
            .author
            .verify(&self.signing_input(), &self.signature)
    }

    /// The same entry without its body (signature and id unchanged).
    pub fn without_body(&self) -> Entry {
        Entry {
            body: None,
            ..self.clone()
        }
    }

    fn assemble(header: Header, signature: Signature, body: Option<Vec<u8>>) -> Entry {
        let mut fields = header_fields(&header);
        fields.push(Value::Bytes(signature.0.to_vec()));
        let signed_header_bytes = cbor::encode(&Value::Array(fields));
        Entry {
            id: sha256(&signed_header_bytes),
            header,
            signature,
            body,
            signed_header_bytes,
        }
    }
}

/// Checks the rules every namespace and kind name follows: 1 to 64 bytes of lowercase ASCII
/// letters, digits, `.`, `_` and `-`, starting with a letter or digit.
pub fn check_name(what: &'static str, name: &str) -> Result<(), EntryError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(field(
            what,
            format!("must be 1 to {MAX_NAME_LEN} bytes, got {}", name.len()),
        ));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return Err(field(
            what,
            format!("{name:?} contains {bad:?}; use lowercase letters, digits, '.', '_' and '-'"),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(field(
            what,
            format!("{name:?} must start with a letter or digit"),
        ));
    }
    Ok(())
}

/// Appends the signing input of an entry whose signed header is `signed_header` to `out`.
fn append_signing_input(signed_header: &[u8], out: &mut Vec<u8>) {
    // The signed header minus its array head and the trailing signature item is exactly the
    // nine signed fields; re-heading them as array(9) gives the signing encoding without
    // re-encoding anything.
    let fields = signed_header
        .get(1..signed_header.len().saturating_sub(SIGNATURE_ITEM_LEN))
        .unwrap_or_default();
    out.extend_from_slice(SIGNING_DOMAIN);
    out.push(0x89);
    out.extend_from_slice(fields);
}

fn signing_input(header: &Header) -> Vec<u8> {
    let mut input = SIGNING_DOMAIN.to_vec();
    input.extend_from_slice(&cbor::encode(&Value::Array(header_fields(header))));
    input
}

fn header_fields(header: &Header) -> Vec<Value> {
    vec![
        Value::Integer(FORMAT_VERSION.into()),
        Value::Text(header.namespace.clone()),
        Value::Bytes(header.author.as_bytes().to_vec()),
        Value::Integer(header.seq.into()),
        match header.prev {
            Some(prev) => Value::Bytes(prev.0.to_vec()),
            None => Value::Null,
        },
        Value::Integer(header.timestamp_ms.into()),
        Value::Text(header.kind.clone()),
        Value::Bytes(header.body_hash.0.to_vec()),
        Value::Integer(header.body_len.into()),
    ]
}

/// The signed header's fields, type-checked but not yet judged.
struct RawHeader {
    version: u64,
    namespace: String,
    author: [u8; PUBLIC_KEY_LEN],
    seq: u64,
    prev: Option<Hash256>,
    timestamp_ms: u64,
    kind: String,
    body_hash: Hash256,
    body_len: u64,
    signature: Signature,
}

/// Checks the shape and the CBOR type of every field, in field order.
fn parse_signed_header(value: Value) -> Result<RawHeader, EntryError> {
    let Value::Array(items) = value else {
        return Err(field("header", "must be an array of 10 items"));
    };
    let [version, namespace, author, seq, prev, timestamp, kind, body_hash, body_len, signature]: [Value; 10] =
        items
            .try_into()
            .map_err(|_| field("header", "must be an array of 10 items"))?;
    Ok(RawHeader {
        version: uint("version", version)?,
        namespace: text("namespace", namespace)?,
        author: <[u8; PUBLIC_KEY_LEN]>::try_from(bytes("author", author)?)
            .map_err(|_| field("author", format!("must be {PUBLIC_KEY_LEN} bytes")))?,
        seq: uint("seq", seq)?,
        prev: match prev {
            Value::Null => None,
            other => Some(hash("prev", other)?),
        },
        timestamp_ms: uint("timestamp", timestamp)?,
        kind: text("kind", kind)?,
        body_hash: hash("body_hash", body_hash)?,
        body_len: uint("body_len", body_len)?,
        signature: Signature::from_slice(&bytes("signature", signature)?)
            .ok_or_else(|| field("signature", format!("must be {SIGNATURE_LEN} bytes")))?,
    })
}

/// The field rules, in field order (the author key is checked when it is parsed).
fn check_header(header: &Header) -> Result<(), EntryError> {
    check_header_fields(
        &header.namespace,
        header.seq,
        header.prev.as_ref(),
        &header.kind,
        header.body_len,
    )
}

/// [`check_header`] on borrowed fields, so the fast path checks before it allocates.
fn check_header_fields(
    namespace: &str,
    seq: u64,
    prev: Option<&Hash256>,
    kind: &str,
    body_len: u64,
) -> Result<(), EntryError> {
    check_name("namespace", namespace)?;
    if seq == 0 {
        return Err(field("seq", "must be 1 or more"));
    }
    match (seq, prev) {
        (1, Some(_)) => return Err(field("prev", "must be null for seq 1")),
        (seq, None) if seq > 1 => {
            return Err(field(
                "prev",
                format!("must be the previous entry's id for seq {seq}"),
            ))
        }
        _ => {}
    }
    check_name("kind", kind)?;
    if body_len > MAX_BODY_LEN as u64 {
        return Err(field(
            "body_len",
            format!("{body_len} is over the {MAX_BODY_LEN}-byte body limit"),
        ));
    }
    Ok(())
}

fn check_body(header: &Header, body: &[u8]) -> Result<(), EntryError> {
    check_body_fields(header.body_len, &header.body_hash, body)
}

/// [`check_body`] on borrowed fields.
fn check_body_fields(body_len: u64, body_hash: &Hash256, body: &[u8]) -> Result<(), EntryError> {
    if body.len() as u64 != body_len {
        return Err(EntryError::BodyLenMismatch {
            declared: body_len,
            actual: body.len(),
        });
    }
    let actual = sha256(body);
    if actual != *body_hash {
        return Err(EntryError::BodyHashMismatch {
            declared: *body_hash,
            actual,
        });
    }
    Ok(())
}

fn field(field: &'static str, problem: impl ToString) -> EntryError {
    EntryError::Field {
        field,
        problem: problem.to_string(),
    }
}

fn uint(name: &'static str, value: Value) -> Result<u64, EntryError> {
    match value {
        Value::Integer(integer) => {
            u64::try_from(integer).map_err(|_| field(name, "must be an unsigned 64-bit integer"))
        }
        _ => Err(field(name, "must be an unsigned integer")),
    }
}

fn text(name: &'static str, value: Value) -> Result<String, EntryError> {
    match value {
        Value::Text(text) => Ok(text),
        _ => Err(field(name, "must be a text string")),
    }
}

fn bytes(name: &'static str, value: Value) -> Result<Vec<u8>, EntryError> {
    match value {
        Value::Bytes(bytes) => Ok(bytes),
        _ => Err(field(name, "must be a byte string")),
    }
}

fn hash(name: &'static str, value: Value) -> Result<Hash256, EntryError> {
    Hash256::from_slice(&bytes(name, value)?)
        .ok_or_else(|| field(name, format!("must be {HASH_LEN} bytes")))
}

/// Reads one CBOR head in any argument width: (major type, argument, rest after the head).
fn lenient_head(bytes: &[u8]) -> Option<(u8, u64, &[u8])> {
    let (&initial, rest) = bytes.split_first()?;
    let info = initial & 0x1f;
    let width = match info {
        0..=23 => return Some((initial >> 5, u64::from(info), rest)),
        24..=27 => 1usize << (info - 24),
        _ => return None,
    };
    let argument = rest
        .get(..width)?
        .iter()
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    Some((initial >> 5, argument, rest.get(width..)?))
}

/// Reads a byte string (major 2) or text string (major 3) leniently: (payload, rest).
fn lenient_string(bytes: &[u8], major: u8) -> Option<(&[u8], &[u8])> {
    let (found, len, rest) = lenient_head(bytes)?;
    let len = usize::try_from(len).ok()?;
    (found == major && len <= rest.len()).then(|| rest.split_at(len))
}

/// Length of the shortest-form CBOR head for a byte string of `len` bytes.
fn cbor_head_len(len: u64) -> usize {
    match len {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Writes the shortest-form CBOR head of a byte string (major type 2) of `len` bytes.
fn write_bytes_head(out: &mut Vec<u8>, len: u64) {
    const BYTES: u8 = 0x40;
    let be = len.to_be_bytes();
    match cbor_head_len(len) {
        1 => out.push(BYTES | be[7]),
        2 => out.extend_from_slice(&[BYTES | 24, be[7]]),
        3 => out.extend_from_slice(&[BYTES | 25, be[6], be[7]]),
        5 => {
            out.push(BYTES | 26);
            out.extend_from_slice(&be[4..]);
        }
        _ => {
            out.push(BYTES | 27);
            out.extend_from_slice(&be);
        }
    }
}

#[cfg(test)]
mod tests;
