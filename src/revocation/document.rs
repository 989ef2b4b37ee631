//! The list document: its strict JSON form, its signed form (a JWS with
//! `typ` `tokengate-revocations`), and the canonical writer.

use std::cell::Cell;
use std::fmt::{self, Write as _};

use serde::de::DeserializeSeed;

use super::lookup::Kind;
use super::parse::{DocSeed, EntriesSeed};
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

    /// Parses JSON text holding an array of entries under the document's
    /// rules (for the filter's `revocation.static`); errors name the JSON
    /// path, e.g. `revocation.static[2]: has both jti and sub`, and a
    /// repeated member is refused as in the document.
    pub fn parse_entries(json: &[u8], path: &str) -> Result<Vec<Entry>, String> {
        // The very parser of the document's `entries`, on the same reader.
        let shape = Cell::new(None);
        let mut de = serde_json::Deserializer::from_slice(json);
        EntriesSeed {
            shape: &shape,
            base: path,
        }
        .deserialize(&mut de)
        .and_then(|entries| de.end().map(|()| entries))
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
