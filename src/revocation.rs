//! The revocation list of SPEC section 5: the document, its signature, the
//! compact snapshot that crosses shared data, and the lookups.
//!
//! This module owns the list [`Document`] (its strict JSON form, refused on
//! any other shape, and its signed form: a JWS compact token with `typ`
//! `tokengate-revocations`, HMAC-signed with the service's `verify_key`), the
//! [`Snapshot`] the singleton builds once per new list and publishes, which
//! every worker then uses exactly as it copied it out of shared data, and the
//! one question the gate asks of either: is this verified token revoked?
//! The filter's few `static` entries answer the same question through a
//! [`StaticList`].
//!
//! It does not fetch, touch shared data, read a clock, or decide what an old
//! or missing list means: the service root polls, compares versions (rollback)
//! and publishes; the filter root copies the bytes and applies `max_stale_s`
//! and `on_unavailable`. Times are arguments.
//!
//! # The snapshot
//!
//! Shared data hands a worker a fresh copy of the whole value on every read
//! (about 40 µs per MiB), so the published form is the form looked up: a
//! worker moves the copied `Vec<u8>` into a [`Snapshot`] after checking a
//! 64-byte header, with no per-entry decoding and no allocation. All numbers
//! are little-endian and read through checked slices, so hostile bytes give
//! an error or a wrong-but-sane answer, never a panic or an endless probe.
//!
//! ```text
//!  offset  size  field
//!       0     4  magic "TGRL"
//!       4     4  format (1)
//!       8     8  version        the document's version
//!      16     8  fetched_at     unix seconds of the fetch that made it
//!      24     8  entries        distinct entries in the table
//!      32     8  homes H        home of a fingerprint: (hi × H) >> 64, < H
//!      40     8  slots S        table length, S ≥ H (the tail is overflow)
//!      48     8  befores B      length of the `before` array
//!      56     8  max_probe P    largest (position − home) in the table, < S
//!      64  16×S  slots          hi u64 | lo u32 | aux u32; all zero = empty
//!   64+16S  8×B  befores        u64 each
//! ```
//!
//! An entry is its 96-bit [`Fingerprint`]: XXH3-128 of the value, seeded
//! differently for `jti`, `sub` and `kid`, so a `jti` never meets a `sub`
//! entry of the same text. A false match can only refuse a token wrongly,
//! never let one through; with three lookups per token its probability is
//! at most 3n / 2^96 per request, under 2^-74 for a million entries. `aux`
//! only means something on `sub` slots: 0 revokes every token of the
//! subject, k ≥ 1 those issued before `befores[k-1]`.
//!
//! The table is an *ordered* open-addressing table: slots hold the
//! fingerprints in ascending order, each at `max(home, previous + 1)`, which
//! is linear probing without wrap-around (Robin Hood order comes free from
//! the sort). A lookup starts at its home and stops at an empty slot, at a
//! larger fingerprint, or after `P + 1` slots: so a miss, the common case,
//! costs about as much as a hit, about three slots at load 0.8. `H` is
//! `n + n/4` rather than a power of two (the home is a multiply-shift, not a
//! mask), so the load stays at 0.8 whatever `n` is: a table costs 20 bytes
//! per entry, plus 8 for each `sub` entry with `before`, 28 at worst.
//! Lookup cost does not grow with the list. A million `jti` entries make a
//! 20 MB value: under a millisecond to copy out of shared data, then the
//! header check.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use xxhash_rust::xxh3::xxh3_128_with_seed;

use crate::jws;
use crate::keys::Key;

/// The `typ` of a signed list's JWS header (compared case-insensitively).
pub const JWS_TYPE: &str = "tokengate-revocations";

// ---------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------

/// One entry, as in the document: exactly one of jti, sub, kid; `before`
/// only with sub; optional exp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Revokes the token with this `jti`.
    Jti { jti: String, exp: Option<u64> },
    /// Revokes the subject's tokens issued before `before` (or lacking
    /// `iat`); without `before`, all of them.
    Sub {
        sub: String,
        before: Option<u64>,
        exp: Option<u64>,
    },
    /// Revokes every token signed with this key id.
    Kid { kid: String, exp: Option<u64> },
}

impl Entry {
    /// When the entry may be dropped (unix seconds), if ever.
    pub fn exp(&self) -> Option<u64> {
        match self {
            Entry::Jti { exp, .. } | Entry::Sub { exp, .. } | Entry::Kid { exp, .. } => *exp,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Entry::Jti { .. } => Kind::Jti,
            Entry::Sub { .. } => Kind::Sub,
            Entry::Kid { .. } => Kind::Kid,
        }
    }

    /// The revoked `jti`, `sub` or `kid`.
    pub fn value(&self) -> &str {
        match self {
            Entry::Jti { jti: v, .. } | Entry::Sub { sub: v, .. } | Entry::Kid { kid: v, .. } => v,
        }
    }

    fn expired_at(&self, now: u64) -> bool {
        matches!(self.exp(), Some(exp) if exp < now)
    }
}

/// The revocation list document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Must rise from one list to the next (checked by the service root).
    pub version: u64,
    pub generated_at: Option<u64>,
    pub entries: Vec<Entry>,
}

/// Why a body is not an acceptable list. Messages are short and never hold
/// the body (an unknown member's name is quoted, cut to 40 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    /// Not JSON at all; the message gives the position.
    Json(String),
    /// JSON of another shape, e.g. `entries[3]: has both jti and sub`.
    Shape(String),
    /// A signed list was expected and this is not a JWS compact token (wrong
    /// segment count, non-canonical base64url, header not a JSON object,
    /// `crit` present).
    NotJws,
    /// The MAC does not match `verify_key`.
    BadSignature,
    /// The JWS header's `typ` is missing or not `tokengate-revocations`.
    WrongType,
    /// The JWS header's `alg` is not the `alg` of `verify_key`.
    WrongAlg,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocumentError::Json(m) => write!(f, "revocation list is not JSON: {m}"),
            DocumentError::Shape(m) => write!(f, "revocation list: {m}"),
            DocumentError::NotJws => f.write_str("revocation list is not a JWS compact token"),
            DocumentError::BadSignature => f.write_str("revocation list signature does not match"),
            DocumentError::WrongType => {
                write!(f, "revocation list JWS typ is not \"{JWS_TYPE}\"")
            }
            DocumentError::WrongAlg => {
                f.write_str("revocation list JWS alg is not the verify key's")
            }
        }
    }
}

impl std::error::Error for DocumentError {}

impl Document {
    /// Strict parse of the JSON document: `version` integer >= 1 and
    /// `entries` required; `generated_at` optional integer; each entry an
    /// object with exactly one of jti/sub/kid (non-empty strings), optional
    /// `exp` (integer >= 0), `before` (integer >= 0) only on sub entries;
    /// unknown members anywhere refused; duplicate member names refused;
    /// `null` is never taken for an absent member.
    pub fn parse_json(body: &[u8]) -> Result<Document, DocumentError> {
        // serde_json appends "at line L column C" to every error; the
        // path-naming message is kept aside here and returned as written.
        let shape = Cell::new(None);
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed = DocSeed { shape: &shape }
            .deserialize(&mut de)
            .and_then(|doc| de.end().map(|()| doc));
        match parsed {
            Ok(doc) => Ok(doc),
            Err(e) => match shape.take() {
                Some(message) => Err(DocumentError::Shape(message)),
                // Only syntax and end-of-input errors get here; their text
                // names what was expected and where, never the body.
                None if !e.is_data() => Err(DocumentError::Json(e.to_string())),
                None => Err(DocumentError::Shape(format!(
                    "unexpected value at line {} column {}",
                    e.line(),
                    e.column()
                ))),
            },
        }
    }

    /// The body is a JWS compact token (three base64url-no-pad segments,
    /// canonical) whose header has `alg` == `key.alg()` and `typ` ==
    /// `tokengate-revocations` (case-insensitive), HMAC-verified with `key`;
    /// only then is the payload decoded and parsed with [`parse_json`].
    /// Surrounding ASCII white space (a file's final newline) is ignored.
    ///
    /// [`parse_json`]: Document::parse_json
    pub fn parse_signed(body: &[u8], key: &Key) -> Result<Document, DocumentError> {
        let body = std::str::from_utf8(body.trim_ascii()).map_err(|_| DocumentError::NotJws)?;
        let jws = jws::decode(body, usize::MAX).map_err(|_| DocumentError::NotJws)?;
        // The key decides the algorithm, never the list.
        if jws.header.alg != key.alg() {
            return Err(DocumentError::WrongAlg);
        }
        if !jws
            .header
            .typ
            .as_deref()
            .is_some_and(|typ| typ.eq_ignore_ascii_case(JWS_TYPE))
        {
            return Err(DocumentError::WrongType);
        }
        if !jws.verify(key) {
            return Err(DocumentError::BadSignature);
        }
        // Nothing of the payload is read before the MAC holds.
        let doc = Document::parse_json(&jws.payload)?;
        // A signed list's age is its signed `generated_at`: without one, a
        // replayed old list could never be told from a fresh one.
        if doc.generated_at.is_none() {
            return Err(DocumentError::Shape(
                "generated_at: required in a signed list".to_owned(),
            ));
        }
        Ok(doc)
    }

    /// The canonical JSON form: members in a fixed order, one entry per line
    /// (list files diff well), no trailing newline.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(48 + 48 * self.entries.len());
        let _ = write!(out, "{{\"version\":{}", self.version);
        if let Some(at) = self.generated_at {
            let _ = write!(out, ",\"generated_at\":{at}");
        }
        out.push_str(",\"entries\":[");
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('\n');
            write_entry(&mut out, entry);
        }
        if !self.entries.is_empty() {
            out.push('\n');
        }
        out.push_str("]}");
        out
    }

    /// The signed form: a JWS compact token with header
    /// `{"alg":…,"typ":"tokengate-revocations"}` and [`to_json`] as payload.
    ///
    /// [`to_json`]: Document::to_json
    pub fn to_signed(&self, key: &Key) -> String {
        jws::sign(self.to_json().as_bytes(), key, JWS_TYPE, None)
    }

    /// Drops entries whose `exp` < `now`.
    pub fn drop_expired(&mut self, now: u64) {
        self.entries.retain(|e| !e.expired_at(now));
    }

    /// Parses a JSON array of entries under the document's rules (for the
    /// filter's `revocation.static`); errors name the JSON path, e.g.
    /// `revocation.static[2]: has both jti and sub`. Duplicate member names
    /// are the caller's to refuse: a `Value` has already merged them.
    pub fn parse_entries(value: &serde_json::Value, path: &str) -> Result<Vec<Entry>, String> {
        // The very parser of the document's `entries`, run over the value.
        let shape = Cell::new(None);
        EntriesSeed {
            shape: &shape,
            base: path,
        }
        .deserialize(value)
        .map_err(|e| shape.take().unwrap_or_else(|| format!("{path}: {e}")))
    }
}

fn write_entry(out: &mut String, entry: &Entry) {
    let (name, value) = match entry {
        Entry::Jti { jti, .. } => ("jti", jti),
        Entry::Sub { sub, .. } => ("sub", sub),
        Entry::Kid { kid, .. } => ("kid", kid),
    };
    let _ = write!(out, "{{\"{name}\":");
    write_json_str(out, value);
    if let Entry::Sub {
        before: Some(before),
        ..
    } = entry
    {
        let _ = write!(out, ",\"before\":{before}");
    }
    if let Some(exp) = entry.exp() {
        let _ = write!(out, ",\"exp\":{exp}");
    }
    out.push('}');
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// --- Parsing, shared between the document and `static` ----------------------

/// A JSON path for messages: `version`, `entries[3]`, `entries[3].exp`.
#[derive(Clone, Copy)]
struct Path<'a> {
    base: &'a str,
    index: Option<usize>,
    field: Option<&'static str>,
}

impl<'a> Path<'a> {
    fn top(field: &'static str) -> Path<'static> {
        Path {
            base: "",
            index: None,
            field: Some(field),
        }
    }

    fn entry(base: &'a str, index: usize) -> Path<'a> {
        Path {
            base,
            index: Some(index),
            field: None,
        }
    }

    fn field(self, field: &'static str) -> Path<'a> {
        Path {
            field: Some(field),
            ..self
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        match self.field {
            Some(field) if self.base.is_empty() && self.index.is_none() => f.write_str(field),
            Some(field) => write!(f, ".{field}"),
            None => Ok(()),
        }
    }
}

/// A member name as it may appear in a message: quoted, escaped, cut short.
fn quoted(name: &str) -> String {
    let cut: String = name.chars().take(40).collect();
    format!("{cut:?}")
}

fn must_be_int(path: Path<'_>, min: u64) -> String {
    format!("{path}: must be an integer >= {min}")
}

fn must_be_str(path: Path<'_>) -> String {
    format!("{path}: must be a non-empty string")
}

/// An entry's members before the rules between them are checked.
#[derive(Default)]
struct RawEntry {
    jti: Option<String>,
    sub: Option<String>,
    kid: Option<String>,
    exp: Option<u64>,
    before: Option<u64>,
}

const ENTRY_FIELDS: [&str; 5] = ["jti", "sub", "kid", "exp", "before"];

impl RawEntry {
    fn is_set(&self, field: &str) -> bool {
        match field {
            "jti" => self.jti.is_some(),
            "sub" => self.sub.is_some(),
            "kid" => self.kid.is_some(),
            "exp" => self.exp.is_some(),
            "before" => self.before.is_some(),
            _ => false,
        }
    }

    fn finish(self, path: Path<'_>) -> Result<Entry, String> {
        let RawEntry {
            jti,
            sub,
            kid,
            exp,
            before,
        } = self;
        let kinds = [
            ("jti", jti.is_some()),
            ("sub", sub.is_some()),
            ("kid", kid.is_some()),
        ];
        let mut present = kinds.iter().filter(|(_, set)| *set).map(|(name, _)| *name);
        if let (Some(first), Some(second)) = (present.next(), present.next()) {
            return Err(format!("{path}: has both {first} and {second}"));
        }
        if before.is_some() && sub.is_none() {
            return Err(format!("{path}: before is allowed only on sub entries"));
        }
        match (jti, sub, kid) {
            (Some(jti), _, _) => Ok(Entry::Jti { jti, exp }),
            (_, Some(sub), _) => Ok(Entry::Sub { sub, before, exp }),
            (_, _, Some(kid)) => Ok(Entry::Kid { kid, exp }),
            (None, None, None) => Err(format!("{path}: needs one of jti, sub, kid")),
        }
    }
}

/// Where a visitor leaves its message before failing (see `parse_json`).
type ShapeSlot<'c> = &'c Cell<Option<String>>;

fn refuse<E: de::Error>(slot: ShapeSlot<'_>, message: String) -> E {
    slot.set(Some(message));
    E::custom("shape")
}

/// The visitor methods for JSON values of every type but the one a visitor
/// wants; each calls `self.wrong()`, so no message of serde's own (which
/// would quote the offending string) ever reaches the caller.
macro_rules! refuse_other_types {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> {
                Err(self.wrong())
            }
        )*
    };
}

macro_rules! refuse_scalars {
    () => {
        refuse_other_types!(
            visit_bool(bool),
            visit_i64(i64),
            visit_u64(u64),
            visit_f64(f64),
            visit_str(&str)
        );
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(self.wrong())
        }
    };
}

macro_rules! refuse_seq {
    () => {
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.wrong())
        }
    };
}

macro_rules! refuse_map {
    () => {
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.wrong())
        }
    };
}

/// A member name, borrowed from the body when it holds no escape.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v))
    }
}

#[derive(Clone, Copy)]
struct IntSeed<'c, 'p> {
    shape: ShapeSlot<'c>,
    path: Path<'p>,
    min: u64,
}

impl IntSeed<'_, '_> {
    fn wrong<E: de::Error>(self) -> E {
        refuse(self.shape, must_be_int(self.path, self.min))
    }
}

impl<'de> DeserializeSeed<'de> for IntSeed<'_, '_> {
    type Value = u64;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IntSeed<'_, '_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer >= {}", self.min)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if v >= self.min {
            Ok(v)
        } else {
            Err(self.wrong())
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(self.wrong()),
        }
    }

    refuse_other_types!(visit_bool(bool), visit_f64(f64), visit_str(&str));

    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Err(self.wrong())
    }

    refuse_seq!();
    refuse_map!();
}

#[derive(Clone, Copy)]
struct StrSeed<'c, 'p> {
    shape: ShapeSlot<'c>,
    path: Path<'p>,
}

impl StrSeed<'_, '_> {
    fn wrong<E: de::Error>(self) -> E {
        refuse(self.shape, must_be_str(self.path))
    }
}

impl<'de> DeserializeSeed<'de> for StrSeed<'_, '_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrSeed<'_, '_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-empty string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if v.is_empty() {
            Err(self.wrong())
        } else {
            Ok(v.to_owned())
        }
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        if v.is_empty() {
            Err(self.wrong())
        } else {
            Ok(v)
        }
    }

    refuse_other_types!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64)
    );

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(self.wrong())
    }

    refuse_seq!();
    refuse_map!();
}

#[derive(Clone, Copy)]
struct DocSeed<'c> {
    shape: ShapeSlot<'c>,
}

impl DocSeed<'_> {
    fn wrong<E: de::Error>(self) -> E {
        refuse(self.shape, "the document must be a JSON object".to_owned())
    }
}

impl<'de> DeserializeSeed<'de> for DocSeed<'_> {
    type Value = Document;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Document, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_> {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a revocation list object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let shape = self.shape;
        let mut version = None;
        let mut generated_at = None;
        let mut entries = None;
        while let Some(name) = map.next_key_seed(KeySeed)? {
            let duplicate = match &*name {
                "version" => version.is_some(),
                "generated_at" => generated_at.is_some(),
                "entries" => entries.is_some(),
                other => return Err(refuse(shape, format!("unknown field {}", quoted(other)))),
            };
            if duplicate {
                return Err(refuse(shape, format!("duplicate field {}", quoted(&name))));
            }
            match &*name {
                "version" => {
                    version = Some(map.next_value_seed(IntSeed {
                        shape,
                        path: Path::top("version"),
                        min: 1,
                    })?)
                }
                "generated_at" => {
                    generated_at = Some(map.next_value_seed(IntSeed {
                        shape,
                        path: Path::top("generated_at"),
                        min: 0,
                    })?)
                }
                _ => {
                    entries = Some(map.next_value_seed(EntriesSeed {
                        shape,
                        base: "entries",
                    })?)
                }
            }
        }
        let version = version.ok_or_else(|| refuse(shape, "version: required".to_owned()))?;
        let entries = entries.ok_or_else(|| refuse(shape, "entries: required".to_owned()))?;
        Ok(Document {
            version,
            generated_at,
            entries,
        })
    }

    refuse_scalars!();
    refuse_seq!();
}

#[derive(Clone, Copy)]
struct EntriesSeed<'c, 'p> {
    shape: ShapeSlot<'c>,
    /// The JSON path of the array, for messages.
    base: &'p str,
}

impl EntriesSeed<'_, '_> {
    fn wrong<E: de::Error>(self) -> E {
        refuse(self.shape, format!("{}: must be an array", self.base))
    }
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_, '_> {
    type Value = Vec<Entry>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<Entry>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_, '_> {
    type Value = Vec<Entry>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Entry>, A::Error> {
        let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(entry) = seq.next_element_seed(EntrySeed {
            shape: self.shape,
            path: Path::entry(self.base, entries.len()),
        })? {
            entries.push(entry);
        }
        Ok(entries)
    }

    refuse_scalars!();
    refuse_map!();
}

#[derive(Clone, Copy)]
struct EntrySeed<'c, 'p> {
    shape: ShapeSlot<'c>,
    path: Path<'p>,
}

impl EntrySeed<'_, '_> {
    fn wrong<E: de::Error>(self) -> E {
        refuse(self.shape, format!("{}: must be an object", self.path))
    }
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_, '_> {
    type Value = Entry;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Entry, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_, '_> {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an entry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let (shape, path) = (self.shape, self.path);
        let mut raw = RawEntry::default();
        while let Some(name) = map.next_key_seed(KeySeed)? {
            let Some(&field) = ENTRY_FIELDS.iter().find(|f| **f == name) else {
                return Err(refuse(
                    shape,
                    format!("{path}: unknown field {}", quoted(&name)),
                ));
            };
            if raw.is_set(field) {
                return Err(refuse(
                    shape,
                    format!("{path}: duplicate field {}", quoted(field)),
                ));
            }
            let text = StrSeed {
                shape,
                path: path.field(field),
            };
            let int = IntSeed {
                shape,
                path: path.field(field),
                min: 0,
            };
            match field {
                "jti" => raw.jti = Some(map.next_value_seed(text)?),
                "sub" => raw.sub = Some(map.next_value_seed(text)?),
                "kid" => raw.kid = Some(map.next_value_seed(text)?),
                "exp" => raw.exp = Some(map.next_value_seed(int)?),
                _ => raw.before = Some(map.next_value_seed(int)?),
            }
        }
        raw.finish(path).map_err(|message| refuse(shape, message))
    }

    refuse_scalars!();
    refuse_seq!();
}

// ---------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------

/// What an entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Jti,
    Sub,
    Kid,
}

impl Kind {
    /// One XXH3 seed per kind: the same text under two kinds gives unrelated
    /// fingerprints, without copying the value behind a tag byte.
    fn seed(self) -> u64 {
        match self {
            Kind::Jti => 0x7467_726c_006a_7469, // "tgrl\0jti"
            Kind::Sub => 0x7467_726c_0073_7562, // "tgrl\0sub"
            Kind::Kid => 0x7467_726c_006b_6964, // "tgrl\0kid"
        }
    }
}

/// The 96 bits of XXH3-128 by which an entry is known in a snapshot. Never
/// all zero (that marks an empty slot). Ordered by (`hi`, `lo`): the order of
/// the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint {
    hi: u64,
    lo: u32,
}

impl Fingerprint {
    fn is_empty(self) -> bool {
        self.hi == 0 && self.lo == 0
    }
}

/// The fingerprint of `value` as an entry of `kind`.
pub fn fingerprint(kind: Kind, value: &str) -> Fingerprint {
    let h = xxh3_128_with_seed(value.as_bytes(), kind.seed());
    let hi = (h >> 64) as u64;
    let lo = h as u32;
    // Losing one value of 2^96 to the empty marker costs nothing.
    Fingerprint {
        hi,
        lo: if hi == 0 && lo == 0 { 1 } else { lo },
    }
}

/// The parts of a verified token that revocation reads.
#[derive(Clone, Copy, Debug)]
pub struct TokenRef<'a> {
    pub jti: Option<&'a str>,
    pub sub: Option<&'a str>,
    /// `None` when the token has no `iat`.
    pub iat: Option<f64>,
    /// The id of the key that verified the token.
    pub kid: &'a str,
}

/// Does a `sub` entry with this `before` revoke a token issued at `iat`?
/// Exact for every f64: for an integer B, `iat < B` ⇔ `floor(iat) < B`, and
/// `floor(iat)` converts to u64 exactly below 2^64 (saturating above, where
/// `iat < B` is false anyway). No `iat`, a negative one or NaN is revoked:
/// a fault never un-revokes.
fn issued_before(iat: Option<f64>, before: u64) -> bool {
    match iat {
        None => true,
        Some(iat) if iat.is_nan() || iat < 0.0 => true,
        Some(iat) => (iat.floor() as u64) < before,
    }
}

/// Does a `sub` entry revoke this token? `before` `None`: every token.
fn sub_revokes(before: Option<u64>, iat: Option<f64>) -> bool {
    match before {
        None => true,
        Some(before) => issued_before(iat, before),
    }
}

/// Of two `sub` entries for the same subject, the one that revokes more:
/// no `before` (all tokens) beats any `before`, else the later `before`.
fn stricter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// The snapshot
// ---------------------------------------------------------------------------

pub const SNAPSHOT_MAGIC: [u8; 4] = *b"TGRL";
pub const SNAPSHOT_FORMAT: u32 = 1;
const HEADER_LEN: usize = 64;
const SLOT_LEN: usize = 16;
const BEFORE_LEN: usize = 8;

/// Why bytes are not a snapshot.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Fewer bytes than a header.
    TooShort { len: usize },
    /// The bytes do not start with `TGRL`.
    BadMagic,
    /// A format this build does not read (a newer singleton, say).
    UnsupportedFormat(u32),
    /// The header contradicts itself or the byte count; names the check.
    Inconsistent(&'static str),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::TooShort { len } => {
                write!(f, "revocation snapshot too short: {len} bytes")
            }
            SnapshotError::BadMagic => f.write_str("not a revocation snapshot (bad magic)"),
            SnapshotError::UnsupportedFormat(v) => {
                write!(f, "revocation snapshot format {v} is not supported")
            }
            SnapshotError::Inconsistent(what) => {
                write!(f, "revocation snapshot header is inconsistent: {what}")
            }
        }
    }
}

impl std::error::Error for SnapshotError {}

/// The validated header; every count fits the byte length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    version: u64,
    fetched_at: u64,
    entries: u64,
    homes: u64,
    slots: u64,
    befores: u64,
    max_probe: u64,
}

impl Header {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
        for field in [
            self.version,
            self.fetched_at,
            self.entries,
            self.homes,
            self.slots,
            self.befores,
            self.max_probe,
        ] {
            out.extend_from_slice(&field.to_le_bytes());
        }
    }

    fn read(bytes: &[u8]) -> Result<Header, SnapshotError> {
        if bytes.len() < HEADER_LEN {
            return Err(SnapshotError::TooShort { len: bytes.len() });
        }
        if bytes.get(0..4) != Some(&SNAPSHOT_MAGIC[..]) {
            return Err(SnapshotError::BadMagic);
        }
        let format = read_u32(bytes, 4).ok_or(SnapshotError::TooShort { len: bytes.len() })?;
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::UnsupportedFormat(format));
        }
        let field = |at| read_u64(bytes, at).ok_or(SnapshotError::TooShort { len: bytes.len() });
        let header = Header {
            version: field(8)?,
            fetched_at: field(16)?,
            entries: field(24)?,
            homes: field(32)?,
            slots: field(40)?,
            befores: field(48)?,
            max_probe: field(56)?,
        };
        let inconsistent = SnapshotError::Inconsistent;
        if header.homes == 0 {
            return Err(inconsistent("no home slots"));
        }
        if header.slots < header.homes {
            return Err(inconsistent("fewer slots than homes"));
        }
        if header.entries > header.slots {
            return Err(inconsistent("more entries than slots"));
        }
        if header.befores > header.entries {
            return Err(inconsistent("more befores than entries"));
        }
        if header.max_probe >= header.slots {
            return Err(inconsistent("probe bound beyond the table"));
        }
        let expected = header
            .slots
            .checked_mul(SLOT_LEN as u64)
            .and_then(|t| t.checked_add(header.befores.checked_mul(BEFORE_LEN as u64)?))
            .and_then(|t| t.checked_add(HEADER_LEN as u64));
        if expected != Some(bytes.len() as u64) {
            return Err(inconsistent("lengths do not match the byte count"));
        }
        Ok(header)
    }
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(raw.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

/// The home slot of a fingerprint: a multiply-shift onto `0..homes`, which
/// keeps homes in fingerprint order and allows any table size.
fn home(hi: u64, homes: u64) -> u64 {
    ((u128::from(hi) * u128::from(homes)) >> 64) as u64
}

/// One entry while a snapshot is built.
struct Pending {
    fp: Fingerprint,
    /// For `sub` entries: `None` revokes all tokens. Always `None` otherwise.
    before: Option<u64>,
}

/// The compact, position-independent binary form published through shared
/// data; see the module docs for the layout. Built once in the singleton;
/// workers hold the bytes they copied.
#[derive(Clone)]
pub struct Snapshot {
    bytes: Vec<u8>,
    header: Header,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.header.version)
            .field("fetched_at", &self.header.fetched_at)
            .field("entries", &self.header.entries)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Snapshot {
    /// Builds the table from `doc`, merging repeats (a repeated `sub` keeps
    /// its strictest form). Every entry is kept, whatever its `exp`: a token
    /// stays valid until its `exp` + the filter's `clock_skew_s`, which the
    /// service cannot know, so dropping entries is the publisher's job
    /// (once `exp` + 300 s has passed, as `tokengate revoke` does).
    pub fn build(doc: &Document, fetched_at: u64) -> Snapshot {
        let mut pending: Vec<Pending> = doc
            .entries
            .iter()
            .map(|e| Pending {
                fp: fingerprint(e.kind(), e.value()),
                before: match e {
                    Entry::Sub { before, .. } => *before,
                    _ => None,
                },
            })
            .collect();
        pending.sort_unstable_by_key(|p| p.fp);
        // Equal fingerprints are the same kind and value (or a 2^-96 accident,
        // which this merges towards revoking more).
        pending.dedup_by(|later, kept| {
            let same = later.fp == kept.fp;
            if same {
                kept.before = stricter(kept.before, later.before);
            }
            same
        });

        let entries = pending.len() as u64;
        let homes = (entries + entries / 4).max(1);
        // First pass: positions, hence the table length and the probe bound.
        let mut next = 0u64;
        let mut max_probe = 0u64;
        let mut befores = 0u64;
        for p in &pending {
            let home = home(p.fp.hi, homes);
            let at = home.max(next);
            max_probe = max_probe.max(at - home);
            next = at + 1;
            befores += u64::from(p.before.is_some());
        }
        let slots = next.max(homes);
        let header = Header {
            version: doc.version,
            fetched_at,
            entries,
            homes,
            slots,
            befores,
            max_probe,
        };

        // Sizes are bounded by the entries already in memory (28 bytes each
        // at most, less than an `Entry` takes), so they cannot overflow.
        let len = HEADER_LEN
            .saturating_add((slots as usize).saturating_mul(SLOT_LEN))
            .saturating_add((befores as usize).saturating_mul(BEFORE_LEN));
        let mut bytes = Vec::with_capacity(len);
        header.write(&mut bytes);
        let mut before_values = Vec::with_capacity(befores as usize);
        let mut next = 0u64;
        for p in &pending {
            let at = home(p.fp.hi, homes).max(next);
            for _ in next..at {
                bytes.extend_from_slice(&[0; SLOT_LEN]);
            }
            let aux = match p.before {
                Some(before) => {
                    before_values.push(before);
                    // Beyond 2^32 - 1 befores (not reachable within
                    // max_bytes), fall back to revoking all: stricter.
                    u32::try_from(before_values.len()).unwrap_or(0)
                }
                None => 0,
            };
            bytes.extend_from_slice(&p.fp.hi.to_le_bytes());
            bytes.extend_from_slice(&p.fp.lo.to_le_bytes());
            bytes.extend_from_slice(&aux.to_le_bytes());
            next = at + 1;
        }
        for _ in next..slots {
            bytes.extend_from_slice(&[0; SLOT_LEN]);
        }
        for before in before_values {
            bytes.extend_from_slice(&before.to_le_bytes());
        }
        Snapshot { bytes, header }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Identifies the entries, whatever the document's order, repeats or
    /// version: two snapshots with the same digest revoke the same tokens
    /// (XXH3-128 of the table, which is built in fingerprint order).
    pub fn digest(&self) -> u128 {
        xxh3_128_with_seed(self.bytes.get(HEADER_LEN..).unwrap_or_default(), 0)
    }

    /// Takes bytes copied out of shared data after checking the header
    /// (magic, format, counts consistent with the byte count): no per-entry
    /// work. Hostile bytes past the header give wrong answers at worst,
    /// never a panic, and each lookup reads at most `max_probe + 1` slots.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Snapshot, SnapshotError> {
        let header = Header::read(&bytes)?;
        Ok(Snapshot { bytes, header })
    }

    /// The document's version.
    pub fn version(&self) -> u64 {
        self.header.version
    }

    /// Unix seconds of the successful fetch that made it.
    pub fn fetched_at(&self) -> u64 {
        self.header.fetched_at
    }

    /// Distinct entries in force (static entries are not in snapshots).
    pub fn len(&self) -> usize {
        usize::try_from(self.header.entries).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.header.entries == 0
    }

    /// Is a verified token revoked? A `jti` entry revokes that token, a `kid`
    /// entry every token signed with that key, a `sub` entry every token of
    /// the subject, or with `before` B those with `iat` < B or without `iat`.
    pub fn is_revoked(&self, token: &TokenRef<'_>) -> bool {
        if let Some(jti) = token.jti {
            if self.find(fingerprint(Kind::Jti, jti)).is_some() {
                return true;
            }
        }
        if self.find(fingerprint(Kind::Kid, token.kid)).is_some() {
            return true;
        }
        match token
            .sub
            .and_then(|sub| self.find(fingerprint(Kind::Sub, sub)))
        {
            None => false,
            Some(0) => true,
            // A `before` that is not there (hostile bytes) revokes all.
            Some(aux) => sub_revokes(self.before(aux), token.iat),
        }
    }

    /// The `aux` word of the slot holding `fp`, if any.
    fn find(&self, fp: Fingerprint) -> Option<u32> {
        let h = &self.header;
        let start = home(fp.hi, h.homes);
        let end = start
            .saturating_add(h.max_probe)
            .saturating_add(1)
            .min(h.slots);
        for i in start..end {
            let (slot, aux) = self.slot(i)?;
            if slot.is_empty() {
                return None;
            }
            match slot.cmp(&fp) {
                Ordering::Equal => return Some(aux),
                Ordering::Greater => return None,
                Ordering::Less => {}
            }
        }
        None
    }

    fn slot(&self, i: u64) -> Option<(Fingerprint, u32)> {
        let at = usize::try_from(i)
            .ok()?
            .checked_mul(SLOT_LEN)?
            .checked_add(HEADER_LEN)?;
        let hi = read_u64(&self.bytes, at)?;
        let lo = read_u32(&self.bytes, at.checked_add(8)?)?;
        let aux = read_u32(&self.bytes, at.checked_add(12)?)?;
        Some((Fingerprint { hi, lo }, aux))
    }

    fn before(&self, aux: u32) -> Option<u64> {
        let index = u64::from(aux).checked_sub(1)?;
        if index >= self.header.befores {
            return None;
        }
        let at = usize::try_from(self.header.slots)
            .ok()?
            .checked_mul(SLOT_LEN)?
            .checked_add(HEADER_LEN)?
            .checked_add(usize::try_from(index).ok()?.checked_mul(BEFORE_LEN)?)?;
        read_u64(&self.bytes, at)
    }
}

// ---------------------------------------------------------------------------
// Static entries
// ---------------------------------------------------------------------------

/// The filter's `static` entries (few), with the same semantics as a
/// snapshot. They always apply, and their `exp` is not consulted: a static
/// entry lasts as long as the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticList {
    jti: BTreeSet<String>,
    kid: BTreeSet<String>,
    /// `None`: every token of the subject.
    sub: BTreeMap<String, Option<u64>>,
}

impl StaticList {
    pub fn new(entries: Vec<Entry>) -> StaticList {
        let mut list = StaticList::default();
        for entry in entries {
            match entry {
                Entry::Jti { jti, .. } => {
                    list.jti.insert(jti);
                }
                Entry::Kid { kid, .. } => {
                    list.kid.insert(kid);
                }
                Entry::Sub { sub, before, .. } => {
                    list.sub
                        .entry(sub)
                        .and_modify(|kept| *kept = stricter(*kept, before))
                        .or_insert(before);
                }
            }
        }
        list
    }

    pub fn is_revoked(&self, token: &TokenRef<'_>) -> bool {
        token.jti.is_some_and(|jti| self.jti.contains(jti))
            || self.kid.contains(token.kid)
            || token
                .sub
                .and_then(|sub| self.sub.get(sub))
                .is_some_and(|before| sub_revokes(*before, token.iat))
    }

    pub fn is_empty(&self) -> bool {
        self.jti.is_empty() && self.kid.is_empty() && self.sub.is_empty()
    }

    pub fn len(&self) -> usize {
        self.jti.len() + self.kid.len() + self.sub.len()
    }
}

// ---------------------------------------------------------------------------
// Fuzzing entry points
// ---------------------------------------------------------------------------

/// Entry points for a fuzz harness. Each checks a property and returns the
/// broken one as `Err`; the harness panics on it. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{Document, Entry, Snapshot, StaticList, TokenRef};

    const PROBES: [&str; 4] = ["", "a", "user-42", "2026-09"];

    /// Any bytes: `from_bytes` refuses them, or answers every lookup
    /// (bounded probing, checked reads) without panicking.
    pub fn snapshot_bytes(data: &[u8]) -> Result<(), String> {
        if let Ok(snapshot) = Snapshot::from_bytes(data.to_vec()) {
            for value in PROBES {
                for iat in [None, Some(0.0), Some(f64::NAN), Some(1e300)] {
                    let _ = snapshot.is_revoked(&TokenRef {
                        jti: Some(value),
                        sub: Some(value),
                        iat,
                        kid: value,
                    });
                }
            }
        }
        Ok(())
    }

    /// Any body: if it parses, its canonical form parses to the same
    /// document, and the snapshot and the static list built from it revoke
    /// every unexpired entry's token.
    pub fn document_json(data: &[u8]) -> Result<(), String> {
        let Ok(doc) = Document::parse_json(data) else {
            return Ok(());
        };
        let again = Document::parse_json(doc.to_json().as_bytes())
            .map_err(|e| format!("canonical form does not parse: {e}"))?;
        if again != doc {
            return Err("canonical form parses to another document".into());
        }
        let snapshot = Snapshot::build(&doc, 0);
        let static_list = StaticList::new(doc.entries.clone());
        let reloaded = Snapshot::from_bytes(snapshot.as_bytes().to_vec())
            .map_err(|e| format!("built snapshot refused: {e}"))?;
        for entry in &doc.entries {
            let token = token_for(entry);
            if !snapshot.is_revoked(&token)
                || !reloaded.is_revoked(&token)
                || !static_list.is_revoked(&token)
            {
                return Err(format!("entry not enforced: {:?}", entry.kind()));
            }
        }
        Ok(())
    }

    /// A token the entry revokes whatever else it holds (a `sub` one without
    /// `iat`, which every `sub` entry revokes).
    pub fn token_for(entry: &Entry) -> TokenRef<'_> {
        let none = "\u{0}none";
        match entry {
            Entry::Jti { jti, .. } => TokenRef {
                jti: Some(jti),
                sub: None,
                iat: None,
                kid: none,
            },
            Entry::Sub { sub, .. } => TokenRef {
                jti: None,
                sub: Some(sub),
                iat: None,
                kid: none,
            },
            Entry::Kid { kid, .. } => TokenRef {
                jti: None,
                sub: None,
                iat: Some(0.0),
                kid,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::keys::{Alg, KeyId};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    const NOW: u64 = 1_764_259_200;

    fn list_key() -> Key {
        Key::new(KeyId("revocations".into()), Alg::Hs256, &[7; 32]).unwrap()
    }

    fn shape(body: &str) -> String {
        match Document::parse_json(body.as_bytes()) {
            Err(DocumentError::Shape(m)) => m,
            other => panic!("expected a shape error for {body}, got {other:?}"),
        }
    }

    fn jti(v: &str) -> Entry {
        Entry::Jti {
            jti: v.into(),
            exp: None,
        }
    }

    fn sub(v: &str, before: Option<u64>) -> Entry {
        Entry::Sub {
            sub: v.into(),
            before,
            exp: None,
        }
    }

    fn kid(v: &str) -> Entry {
        Entry::Kid {
            kid: v.into(),
            exp: None,
        }
    }

    fn doc(entries: Vec<Entry>) -> Document {
        Document {
            version: 42,
            generated_at: Some(NOW),
            entries,
        }
    }

    fn token<'a>(
        jti: Option<&'a str>,
        sub: Option<&'a str>,
        iat: Option<f64>,
        kid: &'a str,
    ) -> TokenRef<'a> {
        TokenRef { jti, sub, iat, kid }
    }

    /// The snapshot as built, the snapshot as a worker reloads it, and the
    /// static list: all three must agree on every question.
    fn all_three(entries: Vec<Entry>) -> (Snapshot, Snapshot, StaticList) {
        let built = Snapshot::build(&doc(entries.clone()), NOW);
        let reloaded = Snapshot::from_bytes(built.as_bytes().to_vec()).unwrap();
        (built, reloaded, StaticList::new(entries))
    }

    fn revoked_by_all(entries: &[Entry], t: &TokenRef<'_>) -> bool {
        let (built, reloaded, fixed) = all_three(entries.to_vec());
        let answers = [
            built.is_revoked(t),
            reloaded.is_revoked(t),
            fixed.is_revoked(t),
        ];
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "disagree on {t:?}: {answers:?}"
        );
        answers[0]
    }

    // --- document parsing -------------------------------------------------

    #[test]
    fn parses_the_spec_example() {
        let body = br#"{
          "version": 42,
          "generated_at": 1764259200,
          "entries": [
            {"jti": "01JD3", "exp": 1764262800},
            {"sub": "user-42", "before": 1764259000},
            {"kid": "2026-09"}
          ]
        }"#;
        let parsed = Document::parse_json(body).unwrap();
        assert_eq!(
            parsed,
            Document {
                version: 42,
                generated_at: Some(1_764_259_200),
                entries: vec![
                    Entry::Jti {
                        jti: "01JD3".into(),
                        exp: Some(1_764_262_800)
                    },
                    sub("user-42", Some(1_764_259_000)),
                    kid("2026-09"),
                ],
            }
        );
    }

    #[test]
    fn refuses_missing_version() {
        assert_eq!(shape(r#"{"entries":[]}"#), "version: required");
    }

    #[test]
    fn refuses_version_zero() {
        assert_eq!(
            shape(r#"{"version":0,"entries":[]}"#),
            "version: must be an integer >= 1"
        );
    }

    #[test]
    fn refuses_string_version() {
        assert_eq!(
            shape(r#"{"version":"1","entries":[]}"#),
            "version: must be an integer >= 1"
        );
    }

    #[test]
    fn refuses_fractional_and_null_version() {
        assert_eq!(
            shape(r#"{"version":1.0,"entries":[]}"#),
            "version: must be an integer >= 1"
        );
        assert_eq!(
            shape(r#"{"version":null,"entries":[]}"#),
            "version: must be an integer >= 1"
        );
    }

    #[test]
    fn refuses_missing_entries() {
        assert_eq!(shape(r#"{"version":1}"#), "entries: required");
        assert_eq!(
            shape(r#"{"version":1,"entries":{}}"#),
            "entries: must be an array"
        );
    }

    #[test]
    fn refuses_entry_with_two_kinds() {
        assert_eq!(
            shape(
                r#"{"version":1,"entries":[{"jti":"a"},{"jti":"b"},{"kid":"k"},{"jti":"c","sub":"u"}]}"#
            ),
            "entries[3]: has both jti and sub"
        );
        assert_eq!(
            shape(r#"{"version":1,"entries":[{"kid":"k","sub":"u"}]}"#),
            "entries[0]: has both sub and kid"
        );
    }

    #[test]
    fn refuses_entry_without_kind() {
        assert_eq!(
            shape(r#"{"version":1,"entries":[{"exp":5}]}"#),
            "entries[0]: needs one of jti, sub, kid"
        );
    }

    #[test]
    fn refuses_before_on_jti_and_kid() {
        assert_eq!(
            shape(r#"{"version":1,"entries":[{"jti":"a","before":5}]}"#),
            "entries[0]: before is allowed only on sub entries"
        );
        assert_eq!(
            shape(r#"{"version":1,"entries":[{"kid":"a","before":5}]}"#),
            "entries[0]: before is allowed only on sub entries"
        );
    }

    #[test]
    fn refuses_unknown_fields() {
        assert_eq!(
            shape(r#"{"version":1,"entries":[],"extra":1}"#),
            r#"unknown field "extra""#
        );
        assert_eq!(
            shape(r#"{"version":1,"entries":[{"jti":"a","iat":1}]}"#),
            r#"entries[0]: unknown field "iat""#
        );
    }

    #[test]
    fn refuses_duplicate_members() {
        assert_eq!(
            shape(r#"{"version":1,"version":2,"entries":[]}"#),
            r#"duplicate field "version""#
        );
        assert_eq!(
            shape(r#"{"version":1,"entries":[{"jti":"a","jti":"b"}]}"#),
            r#"entries[0]: duplicate field "jti""#
        );
        // An escaped name is the same name.
        assert_eq!(
            shape(r#"{"version":1,"entries":[{"sub":"a","su\u0062":"b"}]}"#),
            r#"entries[0]: duplicate field "sub""#
        );
    }

    #[test]
    fn refuses_negative_exp() {
        assert_eq!(
            shape(r#"{"version":1,"entries":[{"jti":"a","exp":-1}]}"#),
            "entries[0].exp: must be an integer >= 0"
        );
    }

    #[test]
    fn refuses_fractional_null_and_string_exp() {
        for exp in ["1.5", "1e3", "null", "\"5\"", "18446744073709551616"] {
            assert_eq!(
                shape(&format!(
                    r#"{{"version":1,"entries":[{{"jti":"a","exp":{exp}}}]}}"#
                )),
                "entries[0].exp: must be an integer >= 0",
                "{exp}"
            );
        }
    }

    #[test]
    fn refuses_empty_or_non_string_values() {
        assert_eq!(
            shape(r#"{"version":1,"entries":[{"jti":""}]}"#),
            "entries[0].jti: must be a non-empty string"
        );
        assert_eq!(
            shape(r#"{"version":1,"entries":[{"sub":7}]}"#),
            "entries[0].sub: must be a non-empty string"
        );
        assert_eq!(
            shape(r#"{"version":1,"entries":["user-42"]}"#),
            "entries[0]: must be an object"
        );
    }

    #[test]
    fn shape_errors_never_quote_values() {
        let message = shape(r#"{"version":1,"entries":[{"jti":{"secret-ish":"value"}}]}"#);
        assert_eq!(message, "entries[0].jti: must be a non-empty string");
        let message = shape(r#"["secret-ish"]"#);
        assert_eq!(message, "the document must be a JSON object");
    }

    #[test]
    fn refuses_bad_json_as_json() {
        for body in [
            "",
            "{",
            r#"{"version":1,"entries":[]} x"#,
            "nul",
            "{\"version\":1,}",
        ] {
            assert!(
                matches!(
                    Document::parse_json(body.as_bytes()),
                    Err(DocumentError::Json(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn canonical_json_round_trips() {
        let original = Document {
            version: 7,
            generated_at: None,
            entries: vec![
                Entry::Jti {
                    jti: "q\"uote\\back\nline\u{1}\u{7f}é😀".into(),
                    exp: Some(9),
                },
                Entry::Sub {
                    sub: "user-42".into(),
                    before: Some(5),
                    exp: Some(u64::MAX),
                },
                sub("all", None),
                kid("2026-09"),
            ],
        };
        let json = original.to_json();
        assert_eq!(Document::parse_json(json.as_bytes()).unwrap(), original);
        assert!(json.starts_with("{\"version\":7,\"entries\":[\n{\"jti\":"));
        assert!(
            json.contains("\n{\"sub\":\"user-42\",\"before\":5,\"exp\":18446744073709551615},\n")
        );
        let empty = Document {
            version: 1,
            generated_at: Some(3),
            entries: vec![],
        };
        assert_eq!(
            empty.to_json(),
            r#"{"version":1,"generated_at":3,"entries":[]}"#
        );
        assert_eq!(
            Document::parse_json(empty.to_json().as_bytes()).unwrap(),
            empty
        );
    }

    #[test]
    fn drop_expired_keeps_entries_expiring_now_or_later() {
        let mut d = doc(vec![
            Entry::Jti {
                jti: "old".into(),
                exp: Some(NOW - 1),
            },
            Entry::Jti {
                jti: "now".into(),
                exp: Some(NOW),
            },
            jti("forever"),
        ]);
        d.drop_expired(NOW);
        let left: Vec<&str> = d.entries.iter().map(Entry::value).collect();
        assert_eq!(left, ["now", "forever"]);
    }

    #[test]
    fn static_entries_name_their_json_path() {
        let value: serde_json::Value =
            serde_json::from_str(r#"[{"jti":"a"},{"kid":"k"},{"jti":"b","sub":"c"}]"#).unwrap();
        assert_eq!(
            Document::parse_entries(&value, "revocation.static"),
            Err("revocation.static[2]: has both jti and sub".into())
        );
        let value: serde_json::Value =
            serde_json::from_str(r#"[{"sub":"u","before":-3}]"#).unwrap();
        assert_eq!(
            Document::parse_entries(&value, "revocation.static"),
            Err("revocation.static[0].before: must be an integer >= 0".into())
        );
        let value: serde_json::Value = serde_json::from_str(r#"[{"jti":"a","why":"x"}]"#).unwrap();
        assert_eq!(
            Document::parse_entries(&value, "revocation.static"),
            Err(r#"revocation.static[0]: unknown field "why""#.into())
        );
        let value: serde_json::Value = serde_json::from_str(r#"{"jti":"a"}"#).unwrap();
        assert_eq!(
            Document::parse_entries(&value, "revocation.static"),
            Err("revocation.static: must be an array".into())
        );
    }

    #[test]
    fn static_entries_parse_like_document_entries() {
        let entries = r#"[{"jti":"a","exp":3},{"sub":"u","before":9},{"sub":"v"},{"kid":"k"}]"#;
        let value: serde_json::Value = serde_json::from_str(entries).unwrap();
        let from_value = Document::parse_entries(&value, "revocation.static").unwrap();
        let body = format!(r#"{{"version":1,"entries":{entries}}}"#);
        assert_eq!(
            from_value,
            Document::parse_json(body.as_bytes()).unwrap().entries
        );
    }

    // --- signed documents ---------------------------------------------------

    fn jws(header: &str, payload: &str, key: &Key) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let tag = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    const PAYLOAD: &str = r#"{"version":3,"generated_at":1764259200,"entries":[{"jti":"a"}]}"#;

    #[test]
    fn refuses_signed_list_without_generated_at() {
        // Its age could never be told: a replayed old list would look fresh.
        let key = list_key();
        let token = jws(
            r#"{"alg":"HS256","typ":"tokengate-revocations"}"#,
            r#"{"version":3,"entries":[]}"#,
            &key,
        );
        assert_eq!(
            Document::parse_signed(token.as_bytes(), &key),
            Err(DocumentError::Shape(
                "generated_at: required in a signed list".into()
            ))
        );
    }

    #[test]
    fn refuses_signed_list_with_a_header_that_is_not_one_strict_object() {
        // Found by review: the list once had its own, looser header parser.
        let key = list_key();
        for header in [
            r#"["HS256","tokengate-revocations"]"#,
            r#"{"alg":"HS256","typ":"tokengate-revocations","x":1,"x":2}"#,
            r#"{"alg":"HS256","alg":"HS256","typ":"tokengate-revocations"}"#,
            r#"{"alg":"HS256","typ":"tokengate-revocations","crit":[]}"#,
        ] {
            let token = jws(header, PAYLOAD, &key);
            assert_eq!(
                Document::parse_signed(token.as_bytes(), &key),
                Err(DocumentError::NotJws),
                "{header}"
            );
        }
    }

    #[test]
    fn accepts_signed_list() {
        let key = list_key();
        let d = doc(vec![jti("a"), sub("u", Some(5)), kid("k")]);
        let signed = d.to_signed(&key);
        assert_eq!(Document::parse_signed(signed.as_bytes(), &key).unwrap(), d);
        // A file's final newline and a lower-case typ are fine.
        assert_eq!(
            Document::parse_signed(format!("{signed}\n").as_bytes(), &key).unwrap(),
            d
        );
        let lower = jws(
            r#"{"alg":"HS256","typ":"TokenGate-Revocations"}"#,
            PAYLOAD,
            &key,
        );
        assert_eq!(
            Document::parse_signed(lower.as_bytes(), &key)
                .unwrap()
                .version,
            3
        );
    }

    #[test]
    fn refuses_signed_list_with_wrong_typ() {
        let key = list_key();
        for header in [
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"HS256","typ":"application/tokengate-revocations"}"#,
        ] {
            let token = jws(header, PAYLOAD, &key);
            assert_eq!(
                Document::parse_signed(token.as_bytes(), &key),
                Err(DocumentError::WrongType),
                "{header}"
            );
        }
    }

    #[test]
    fn refuses_signed_list_with_wrong_alg() {
        let key = list_key();
        let token = jws(
            r#"{"alg":"HS512","typ":"tokengate-revocations"}"#,
            PAYLOAD,
            &key,
        );
        assert_eq!(
            Document::parse_signed(token.as_bytes(), &key),
            Err(DocumentError::WrongAlg)
        );
        // Not an HMAC algorithm at all: not a JWS this parser reads (the
        // same header parser as tokens').
        for header in [
            r#"{"alg":"none","typ":"tokengate-revocations"}"#,
            r#"{"alg":"hs256","typ":"tokengate-revocations"}"#,
        ] {
            let token = jws(header, PAYLOAD, &key);
            assert_eq!(
                Document::parse_signed(token.as_bytes(), &key),
                Err(DocumentError::NotJws),
                "{header}"
            );
        }
        // The list signed with HS256 does not pass a verify key of HS384.
        let hs384 = Key::new(KeyId("revocations".into()), Alg::Hs384, &[7; 48]).unwrap();
        let signed = doc(vec![]).to_signed(&key);
        assert_eq!(
            Document::parse_signed(signed.as_bytes(), &hs384),
            Err(DocumentError::WrongAlg)
        );
    }

    #[test]
    fn refuses_tampered_signed_list() {
        let key = list_key();
        let signed = doc(vec![jti("a")]).to_signed(&key);
        let parts: Vec<&str> = signed.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(r#"{"version":42,"entries":[]}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(
            Document::parse_signed(forged.as_bytes(), &key),
            Err(DocumentError::BadSignature)
        );
        let other_key = Key::new(KeyId("revocations".into()), Alg::Hs256, &[8; 32]).unwrap();
        assert_eq!(
            Document::parse_signed(signed.as_bytes(), &other_key),
            Err(DocumentError::BadSignature)
        );
        let short_tag = format!("{}.{}.AAAA", parts[0], parts[1]);
        assert_eq!(
            Document::parse_signed(short_tag.as_bytes(), &key),
            Err(DocumentError::BadSignature)
        );
    }

    #[test]
    fn refuses_body_that_is_not_a_jws() {
        let key = list_key();
        let signed = doc(vec![jti("a")]).to_signed(&key);
        let parts: Vec<&str> = signed.split('.').collect();
        let padded_sig = format!("{}.{}.{}=", parts[0], parts[1], parts[2]);
        for body in [
            PAYLOAD.to_string(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{signed}.x"),
            padded_sig,
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode("not json"),
                parts[1],
                parts[2]
            ),
            String::new(),
        ] {
            assert_eq!(
                Document::parse_signed(body.as_bytes(), &key),
                Err(DocumentError::NotJws),
                "{body}"
            );
        }
    }

    #[test]
    fn refuses_signed_list_with_duplicate_header_member() {
        let key = list_key();
        let token = jws(
            r#"{"alg":"HS256","alg":"HS256","typ":"tokengate-revocations"}"#,
            PAYLOAD,
            &key,
        );
        assert_eq!(
            Document::parse_signed(token.as_bytes(), &key),
            Err(DocumentError::NotJws)
        );
    }

    #[test]
    fn refuses_signed_list_with_crit() {
        let key = list_key();
        let token = jws(
            r#"{"alg":"HS256","typ":"tokengate-revocations","crit":["x"]}"#,
            PAYLOAD,
            &key,
        );
        assert_eq!(
            Document::parse_signed(token.as_bytes(), &key),
            Err(DocumentError::NotJws)
        );
    }

    #[test]
    fn signed_list_payload_keeps_the_document_rules() {
        let key = list_key();
        let token = jws(
            r#"{"alg":"HS256","typ":"tokengate-revocations"}"#,
            r#"{"version":0,"entries":[]}"#,
            &key,
        );
        assert_eq!(
            Document::parse_signed(token.as_bytes(), &key),
            Err(DocumentError::Shape(
                "version: must be an integer >= 1".into()
            ))
        );
    }

    // --- lookups --------------------------------------------------------------

    #[test]
    fn jti_entry_revokes_that_token_only() {
        let entries = [jti("t1")];
        assert!(revoked_by_all(
            &entries,
            &token(Some("t1"), Some("u"), Some(1.0), "k")
        ));
        assert!(!revoked_by_all(
            &entries,
            &token(Some("t2"), Some("u"), Some(1.0), "k")
        ));
        assert!(!revoked_by_all(
            &entries,
            &token(None, Some("t1"), None, "t1")
        ));
    }

    #[test]
    fn kid_entry_revokes_every_token_of_that_key() {
        let entries = [kid("2026-09")];
        assert!(revoked_by_all(
            &entries,
            &token(None, None, None, "2026-09")
        ));
        assert!(revoked_by_all(
            &entries,
            &token(Some("x"), Some("y"), Some(5.0), "2026-09")
        ));
        assert!(!revoked_by_all(
            &entries,
            &token(Some("2026-09"), Some("2026-09"), None, "2026-10")
        ));
    }

    #[test]
    fn sub_with_before_revokes_earlier_tokens_and_those_without_iat() {
        let entries = [sub("user-42", Some(1000))];
        let at = |iat| token(Some("j"), Some("user-42"), iat, "k");
        assert!(revoked_by_all(&entries, &at(Some(999.0))));
        assert!(revoked_by_all(&entries, &at(Some(999.999))));
        assert!(!revoked_by_all(&entries, &at(Some(1000.0))));
        assert!(!revoked_by_all(&entries, &at(Some(1000.5))));
        assert!(revoked_by_all(&entries, &at(None)));
        assert!(revoked_by_all(&entries, &at(Some(-1.0))));
        assert!(revoked_by_all(&entries, &at(Some(f64::NAN))));
        assert!(!revoked_by_all(&entries, &at(Some(f64::INFINITY))));
        assert!(!revoked_by_all(
            &entries,
            &token(Some("j"), Some("user-43"), None, "k")
        ));
    }

    #[test]
    fn sub_before_compares_exactly_near_2_pow_53_and_u64_max() {
        let big = 1u64 << 53;
        let entries = [sub("a", Some(big + 1)), sub("b", Some(u64::MAX))];
        assert!(revoked_by_all(
            &entries,
            &token(None, Some("a"), Some(big as f64), "k")
        ));
        assert!(revoked_by_all(
            &entries,
            &token(None, Some("b"), Some(1e19), "k")
        ));
        assert!(!revoked_by_all(
            &entries,
            &token(None, Some("b"), Some(2e19), "k")
        ));
    }

    #[test]
    fn sub_without_before_revokes_every_token_of_the_subject() {
        let entries = [sub("user-42", None)];
        assert!(revoked_by_all(
            &entries,
            &token(None, Some("user-42"), Some(1e15), "k")
        ));
        assert!(revoked_by_all(
            &entries,
            &token(None, Some("user-42"), None, "k")
        ));
        assert!(!revoked_by_all(
            &entries,
            &token(Some("user-42"), None, None, "user-42")
        ));
    }

    #[test]
    fn repeated_sub_keeps_the_strictest() {
        let later = [
            sub("u", Some(100)),
            sub("u", Some(200)),
            sub("u", Some(150)),
        ];
        assert!(revoked_by_all(
            &later,
            &token(None, Some("u"), Some(199.0), "k")
        ));
        assert!(!revoked_by_all(
            &later,
            &token(None, Some("u"), Some(200.0), "k")
        ));
        let all = [sub("u", Some(100)), sub("u", None), sub("u", Some(300))];
        assert!(revoked_by_all(
            &all,
            &token(None, Some("u"), Some(1e9), "k")
        ));
        let (built, _, fixed) = all_three(all.to_vec());
        assert_eq!((built.len(), fixed.len()), (1, 1));
    }

    #[test]
    fn expired_entries_are_kept_at_build() {
        let entries = vec![
            Entry::Jti {
                jti: "gone".into(),
                exp: Some(NOW - 1),
            },
            Entry::Jti {
                jti: "last-second".into(),
                exp: Some(NOW),
            },
        ];
        // A token with that exp is valid until exp + the filter's clock skew,
        // which the service does not know: the publisher drops entries.
        let snapshot = Snapshot::build(&doc(entries), NOW);
        assert_eq!(snapshot.len(), 2);
        assert!(snapshot.is_revoked(&token(Some("gone"), None, None, "k")));
        assert!(snapshot.is_revoked(&token(Some("last-second"), None, None, "k")));
    }

    #[test]
    fn empty_list_revokes_nothing() {
        let (built, reloaded, fixed) = all_three(vec![]);
        assert!(built.is_empty() && reloaded.is_empty() && fixed.is_empty());
        assert_eq!(built.as_bytes().len(), HEADER_LEN + SLOT_LEN);
        for t in [
            token(Some("a"), Some("b"), None, "c"),
            token(None, None, None, ""),
        ] {
            assert!(!built.is_revoked(&t) && !reloaded.is_revoked(&t) && !fixed.is_revoked(&t));
        }
    }

    fn mixed_entries(n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| match i % 4 {
                0 | 1 => jti(&format!("jti-{i}")),
                2 => sub(
                    &format!("user-{i}"),
                    (i % 8 == 2).then_some(1000 + i as u64),
                ),
                _ => kid(&format!("kid-{i}")),
            })
            .collect()
    }

    #[test]
    fn snapshot_round_trip_answers_the_same() {
        let entries = mixed_entries(10_000);
        let built = Snapshot::build(&doc(entries.clone()), NOW);
        let reloaded = Snapshot::from_bytes(built.as_bytes().to_vec()).unwrap();
        assert_eq!(
            (reloaded.version(), reloaded.fetched_at(), reloaded.len()),
            (42, NOW, 10_000)
        );
        for entry in &entries {
            let t = fuzzing::token_for(entry);
            assert!(built.is_revoked(&t) && reloaded.is_revoked(&t), "{entry:?}");
        }
        for i in 0..1_000 {
            let (j, s, k) = (
                format!("jti-x{i}"),
                format!("user-x{i}"),
                format!("kid-x{i}"),
            );
            let t = token(Some(&j), Some(&s), None, &k);
            assert!(!built.is_revoked(&t) && !reloaded.is_revoked(&t), "{i}");
            // The same text under another kind does not match.
            let (entry_jti, entry_sub) = (format!("jti-{}", i * 4), format!("user-{}", i * 4 + 2));
            let crossed = token(Some(&entry_sub), Some(&entry_jti), None, &entry_jti);
            assert!(!reloaded.is_revoked(&crossed), "{i}");
        }
    }

    #[test]
    fn snapshot_layout_is_as_documented() {
        let snapshot = Snapshot::build(&doc(vec![jti("a"), sub("u", Some(7))]), NOW);
        let b = snapshot.as_bytes();
        assert_eq!(&b[0..4], b"TGRL");
        assert_eq!(read_u32(b, 4), Some(1));
        assert_eq!(read_u64(b, 8), Some(42));
        assert_eq!(read_u64(b, 16), Some(NOW));
        assert_eq!(read_u64(b, 24), Some(2));
        assert_eq!(read_u64(b, 32), Some(2)); // homes: 2 + 2/4
        assert_eq!(read_u64(b, 48), Some(1));
        let slots = read_u64(b, 40).unwrap() as usize;
        assert_eq!(b.len(), HEADER_LEN + SLOT_LEN * slots + BEFORE_LEN);
        assert_eq!(read_u64(b, b.len() - 8), Some(7));
    }

    // --- hostile bytes ----------------------------------------------------------

    fn sample() -> Vec<u8> {
        Snapshot::build(&doc(mixed_entries(40)), NOW)
            .as_bytes()
            .to_vec()
    }

    fn set_u64(bytes: &mut [u8], at: usize, v: u64) {
        bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn refuses_truncated_snapshots() {
        let bytes = sample();
        for len in 0..bytes.len() {
            let err = Snapshot::from_bytes(bytes[..len].to_vec()).unwrap_err();
            if len < HEADER_LEN {
                assert_eq!(err, SnapshotError::TooShort { len });
            } else {
                assert_eq!(
                    err,
                    SnapshotError::Inconsistent("lengths do not match the byte count")
                );
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Snapshot::from_bytes(longer).is_err());
    }

    #[test]
    fn refuses_wrong_magic_and_format() {
        let mut bytes = sample();
        bytes[0] = b'X';
        assert_eq!(
            Snapshot::from_bytes(bytes).unwrap_err(),
            SnapshotError::BadMagic
        );
        let mut bytes = sample();
        bytes[4] = 2;
        assert_eq!(
            Snapshot::from_bytes(bytes).unwrap_err(),
            SnapshotError::UnsupportedFormat(2)
        );
    }

    #[test]
    fn refuses_headers_that_lie() {
        let cases: [(usize, u64, &str); 7] = [
            (40, u64::MAX, "lengths do not match the byte count"),
            (40, 1 << 20, "lengths do not match the byte count"),
            (32, 0, "no home slots"),
            (32, u64::MAX, "fewer slots than homes"),
            (24, u64::MAX, "more entries than slots"),
            (48, 1_000, "more befores than entries"),
            (56, u64::MAX, "probe bound beyond the table"),
        ];
        for (at, value, why) in cases {
            let mut bytes = sample();
            set_u64(&mut bytes, at, value);
            assert_eq!(
                Snapshot::from_bytes(bytes).unwrap_err(),
                SnapshotError::Inconsistent(why),
                "{at}={value}"
            );
        }
        // Counts that overflow when multiplied out.
        for (slots, befores) in [
            (u64::MAX / 8, 0),
            (1, u64::MAX / 4),
            (u64::MAX / 16, u64::MAX / 16),
        ] {
            let mut bytes = sample();
            set_u64(&mut bytes, 24, befores);
            set_u64(&mut bytes, 32, 1);
            set_u64(&mut bytes, 40, slots.max(befores));
            set_u64(&mut bytes, 48, befores);
            set_u64(&mut bytes, 56, 0);
            assert_eq!(
                Snapshot::from_bytes(bytes).unwrap_err(),
                SnapshotError::Inconsistent("lengths do not match the byte count"),
                "{slots} {befores}"
            );
        }
    }

    #[test]
    fn refuses_all_ff_bytes() {
        for len in [0, 1, 63, 64, 65, 80, 4096] {
            assert!(Snapshot::from_bytes(vec![0xFF; len]).is_err(), "{len}");
        }
    }

    /// A header that fits its bytes over a table of garbage: the lookups
    /// stay in bounds and end, and a sub slot whose `before` is missing
    /// revokes (fail closed).
    #[test]
    fn garbage_table_under_a_valid_header_answers_sanely() {
        for fill in [0x00u8, 0x01, 0x7F, 0xFF] {
            let slots = 64u64;
            let mut bytes = Vec::new();
            Header {
                version: 1,
                fetched_at: NOW,
                entries: 64,
                homes: 1,
                slots,
                befores: 0,
                max_probe: slots - 1,
            }
            .write(&mut bytes);
            bytes.resize(HEADER_LEN + SLOT_LEN * slots as usize, fill);
            let snapshot = Snapshot::from_bytes(bytes).unwrap();
            for v in ["a", "user-42", ""] {
                let _ = snapshot.is_revoked(&token(Some(v), Some(v), None, v));
            }
        }
        // One real sub slot whose aux points past the befores array.
        let mut bytes = Snapshot::build(&doc(vec![sub("u", Some(10))]), NOW)
            .as_bytes()
            .to_vec();
        let fp = fingerprint(Kind::Sub, "u");
        let slot_at = (0..)
            .map(|i| HEADER_LEN + SLOT_LEN * i)
            .find(|&at| read_u64(&bytes, at) == Some(fp.hi))
            .unwrap();
        bytes[slot_at + 12..slot_at + 16].copy_from_slice(&99u32.to_le_bytes());
        let snapshot = Snapshot::from_bytes(bytes).unwrap();
        assert!(snapshot.is_revoked(&token(None, Some("u"), Some(1e9), "k")));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let base = sample();
        for _ in 0..2_000 {
            let mut bytes = base.clone();
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            fuzzing::snapshot_bytes(&bytes).unwrap();
            let len = (next() as usize) % 200;
            let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            fuzzing::snapshot_bytes(&noise).unwrap();
            fuzzing::document_json(&noise).unwrap();
        }
    }

    #[test]
    fn fuzz_property_holds_on_a_mixed_document() {
        let body = doc(mixed_entries(200)).to_json();
        fuzzing::document_json(body.as_bytes()).unwrap();
    }

    // --- size and speed -----------------------------------------------------------

    fn bytes_per_entry(entries: Vec<Entry>) -> f64 {
        let n = entries.len();
        let snapshot = Snapshot::build(&doc(entries), NOW);
        assert_eq!(snapshot.len(), n);
        snapshot.as_bytes().len() as f64 / n as f64
    }

    #[test]
    fn costs_at_most_32_bytes_per_entry_at_100k() {
        let n = 100_000;
        let jtis = bytes_per_entry((0..n).map(|i| jti(&format!("{i:026}"))).collect());
        let subs = bytes_per_entry(
            (0..n)
                .map(|i| sub(&format!("user-{i}"), Some(i as u64)))
                .collect(),
        );
        assert!(jtis <= 20.1, "{jtis}");
        assert!(subs <= 28.1, "{subs}");
    }

    #[test]
    fn probe_bound_stays_small() {
        let snapshot = Snapshot::build(
            &doc((0..100_000).map(|i| jti(&format!("{i}"))).collect()),
            NOW,
        );
        assert!(
            snapshot.header.max_probe < 64,
            "{}",
            snapshot.header.max_probe
        );
    }

    /// `cargo test --release --lib revocation -- --ignored --nocapture`
    #[test]
    #[ignore = "1,000,000 entries: run in release"]
    fn million_entries_load_fast_and_small() {
        let n = 1_000_000;
        // Identifiers the size of a ULID, as `tokengate mint` makes them.
        let entries: Vec<Entry> = (0..n).map(|i| jti(&format!("01JD3{i:021}"))).collect();
        let d = doc(entries);
        let key = list_key();
        let signed = d.to_signed(&key);
        let started = Instant::now();
        let parsed = Document::parse_signed(signed.as_bytes(), &key).unwrap();
        let parse_time = started.elapsed();
        assert_eq!(parsed.entries.len(), n);
        let started = Instant::now();
        let built = Snapshot::build(&d, NOW);
        let build_time = started.elapsed();
        let copy = built.as_bytes().to_vec();
        let started = Instant::now();
        let loaded = Snapshot::from_bytes(copy).unwrap();
        let load_time = started.elapsed();
        let per_entry = loaded.as_bytes().len() as f64 / n as f64;
        let started = Instant::now();
        let mut hits = 0;
        for entry in &d.entries {
            hits += usize::from(loaded.is_revoked(&fuzzing::token_for(entry)));
        }
        let hit_time = started.elapsed() / n as u32;
        let misses: Vec<String> = (0..n).map(|i| format!("01JD4{i:021}")).collect();
        let started = Instant::now();
        let mut false_hits = 0;
        for m in &misses {
            false_hits += usize::from(loaded.is_revoked(&token(Some(m), Some(m), None, "k")));
        }
        let miss_time = started.elapsed() / n as u32;
        let subs = Document {
            entries: (0..n)
                .map(|i| sub(&format!("user-{i}"), Some(i as u64)))
                .collect(),
            ..d.clone()
        };
        let sub_per_entry = Snapshot::build(&subs, NOW).as_bytes().len() as f64 / n as f64;
        println!(
            "1M entries: {} bytes ({per_entry:.2} B/entry jti, {sub_per_entry:.2} B/entry sub+before), \
             signed list of {} bytes verified and parsed in {parse_time:?}, \
             build {build_time:?}, from_bytes {load_time:?}, max_probe {}, \
             lookup hit {hit_time:?}, token miss (3 probes) {miss_time:?}",
            loaded.as_bytes().len(),
            signed.len(),
            loaded.header.max_probe
        );
        assert_eq!((hits, false_hits), (n, 0));
        assert!(per_entry <= 32.0 && sub_per_entry <= 32.0);
    }
}
