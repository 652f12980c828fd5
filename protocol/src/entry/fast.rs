//! The fast path of entry decoding: a hand-written parser for the one layout a valid envelope
//! can have, checking canonical form while it reads.
//!
//! Every field of an envelope has a fixed position and CBOR type (see the layout at the top of
//! `entry.rs`), so a valid entry can be read in one pass without building a `ciborium::Value`
//! tree and re-encoding it. The parser accepts only shortest-form heads, definite lengths, the
//! exact type of each field (`null` only where the layout allows it) and no trailing bytes, then
//! applies the same field rules as the reference decoder (`check_header`, `check_body`). It
//! allocates nothing: an [`EntryView`] borrows the input, and only turning it into an [`Entry`]
//! copies the names, the signed header and the body.
//!
//! It never reports an error itself. At the first byte that does not belong to a valid entry
//! it gives up (`None`), and [`Entry::decode_keeping_header`] runs the reference decoder
//! (decode through `ciborium::Value`, re-encode, compare), which explains exactly what is
//! wrong. Error variants, messages and byte offsets are therefore the reference's by
//! construction, and the fast path only has to be right about acceptance: whatever it accepts,
//! the reference accepts with an identical entry. The property tests in `tests.rs` check that,
//! and that it accepts every valid entry (so it is the path actually taken).

use plexus_crypto::{sha256, AgentId, AgentIdCache, Hash256, Signature};

use super::{
    append_signing_input, check_body_fields, check_header_fields, Entry, Header, FORMAT_VERSION,
    MAX_ENTRY_LEN,
};

/// A valid entry read in place from its envelope bytes (see [`Entry::decode_view`]): every
/// check of [`Entry::decode`] has passed, but nothing was copied, so an auditor can check
/// millions of entries without allocating for each one.
#[derive(Debug, Clone, Copy)]
pub struct EntryView<'a> {
    pub namespace: &'a str,
    pub author: AgentId,
    pub seq: u64,
    pub prev: Option<Hash256>,
    pub timestamp_ms: u64,
    pub kind: &'a str,
    pub body_hash: Hash256,
    pub body_len: u64,
    pub signature: Signature,
    /// The body, unless it was pruned; it matches the signed hash and length.
    pub body: Option<&'a [u8]>,
    /// The signed header's bytes, whose hash is the entry id.
    pub signed_header: &'a [u8],
}

impl EntryView<'_> {
    /// The entry id: SHA-256 of the signed header's bytes.
    pub fn id(&self) -> Hash256 {
        sha256(self.signed_header)
    }

    /// Appends the bytes the signature covers (as [`Entry::signing_input`] returns them).
    pub fn append_signing_input(&self, out: &mut Vec<u8>) {
        append_signing_input(self.signed_header, out);
    }

    /// An owned [`Entry`] with the same content.
    pub fn to_entry(&self) -> Entry {
        let signed_header_bytes = self.signed_header.to_vec();
        Entry {
            id: sha256(&signed_header_bytes),
            header: Header {
                namespace: self.namespace.to_owned(),
                author: self.author,
                seq: self.seq,
                prev: self.prev,
                timestamp_ms: self.timestamp_ms,
                kind: self.kind.to_owned(),
                body_hash: self.body_hash,
                body_len: self.body_len,
            },
            signature: self.signature,
            body: self.body.map(<[u8]>::to_vec),
            signed_header_bytes,
        }
    }
}

/// CBOR major types used by the envelope.
const UNSIGNED: u8 = 0;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
/// The one-byte encoding of `null`.
const NULL: u8 = 0xf6;

/// Decodes a valid envelope whose body (if present) matches its signed hash and length, or
/// returns `None` for anything else (including a body mismatch), which the caller hands to
/// the reference decoder.
pub(super) fn decode(bytes: &[u8], cache: Option<&mut AgentIdCache>) -> Option<Entry> {
    view(bytes, cache).map(|view| view.to_entry())
}

/// [`decode`] without the copies. With a `cache`, author keys seen lately are not
/// decompressed again.
pub(super) fn view<'a>(bytes: &'a [u8], cache: Option<&mut AgentIdCache>) -> Option<EntryView<'a>> {
    if bytes.len() > MAX_ENTRY_LEN {
        return None;
    }
    let mut reader = Reader { bytes, position: 0 };
    if reader.head(ARRAY)? != 2 {
        return None;
    }
    let header_start = reader.position;
    if reader.head(ARRAY)? != 10 || reader.head(UNSIGNED)? != FORMAT_VERSION {
        return None;
    }
    let namespace = reader.text()?;
    let author = reader.fixed::<32>()?;
    let seq = reader.head(UNSIGNED)?;
    let prev = if reader.null() {
        None
    } else {
        Some(Hash256(reader.fixed()?))
    };
    let timestamp_ms = reader.head(UNSIGNED)?;
    let kind = reader.text()?;
    let body_hash = Hash256(reader.fixed()?);
    let body_len = reader.head(UNSIGNED)?;
    let signature = Signature(reader.fixed()?);
    let header_end = reader.position;
    let body = if reader.null() {
        None
    } else {
        Some(reader.string(BYTES)?)
    };
    if reader.position != bytes.len() {
        return None;
    }
    check_header_fields(namespace, seq, prev.as_ref(), kind, body_len).ok()?;
    let author = match cache {
        Some(cache) => cache.parse(&author),
        None => AgentId::from_bytes(&author),
    }
    .ok()?;
    if let Some(body) = body {
        check_body_fields(body_len, &body_hash, body).ok()?;
    }
    Some(EntryView {
        namespace,
        author,
        seq,
        prev,
        timestamp_ms,
        kind,
        body_hash,
        body_len,
        signature,
        body,
        signed_header: bytes.get(header_start..header_end)?,
    })
}

/// A cursor over the envelope that reads only canonical items.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    /// Reads a head of the given major type in shortest form and returns its argument.
    fn head(&mut self, major: u8) -> Option<u64> {
        let initial = *self.bytes.get(self.position)?;
        if initial >> 5 != major {
            return None;
        }
        let info = initial & 0x1f;
        let start = self.position + 1;
        let (argument, width) = match info {
            0..=23 => (u64::from(info), 0),
            24..=27 => {
                let width = 1usize << (info - 24);
                let argument = self
                    .bytes
                    .get(start..start + width)?
                    .iter()
                    .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
                (argument, width)
            }
            // Reserved values and indefinite lengths never occur in canonical data.
            _ => return None,
        };
        // Shortest form: a wider argument only for a value the narrower one cannot hold.
        let shortest = match width {
            0 => true,
            1 => argument >= 24,
            2 => argument > 0xff,
            4 => argument > 0xffff,
            _ => argument > 0xffff_ffff,
        };
        if !shortest {
            return None;
        }
        self.position = start + width;
        Some(argument)
    }

    /// Reads a byte or text string (by `major`) and returns its content.
    fn string(&mut self, major: u8) -> Option<&'a [u8]> {
        let len = usize::try_from(self.head(major)?).ok()?;
        let end = self.position.checked_add(len)?;
        let content = self.bytes.get(self.position..end)?;
        self.position = end;
        Some(content)
    }

    /// Reads a text string, which must be valid UTF-8.
    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.string(TEXT)?).ok()
    }

    /// Reads a byte string of exactly `N` bytes.
    fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.string(BYTES)?.try_into().ok()
    }

    /// Consumes a `null` if one is next.
    fn null(&mut self) -> bool {
        if self.bytes.get(self.position) == Some(&NULL) {
            self.position += 1;
            true
        } else {
            false
        }
    }
}
