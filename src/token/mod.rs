//! JWS compact tokens: splitting, the protected header, the MAC, and claims.
//!
//! This module turns the bytes a client sent into a [`Verified`] token, or a
//! [`Reason`]. The order is fixed and deliberate (RFC 8725 §2; docs/token.md,
//! "Header and signature"): size cap → exactly three segments → canonical
//! base64url → header → key chosen by (`kid`, `alg`) → constant-time MAC
//! check → only then is the payload parsed.
//! Nothing from the payload is trusted, or even read as JSON, before the MAC
//! holds. What the claims mean for a request (time, issuer, audience, scopes)
//! is decided in `gate`; this module only establishes what the token says and
//! that a configured key said it.

use std::fmt;
use std::rc::Rc;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

use crate::json::{MemberNames, Name, Skip, Text};
use crate::jws;
use crate::keys::{Alg, Key, KeySet};
use crate::refusal::Reason;

pub use crate::jws::{b64url_decode, b64url_encode, split, Compact};

mod cache;
pub use cache::VerifyCache;

/// The largest NumericDate accepted, 2^53: beyond it a JSON number is no
/// longer an exact integer in the f64 that most libraries use.
pub const MAX_NUMERIC_DATE: f64 = 9_007_199_254_740_992.0;

/// The token type the header's `typ` (or the `token_use` claim) declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    /// `typ` absent, `JWT` or `at+jwt`.
    Access,
    /// `typ` `rt+jwt`, or the claim `token_use: "refresh"`.
    Refresh,
}

/// The protected header, as far as tokengate reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<TokenType>,
}

impl Header {
    /// Parses the header JSON. Every flaw is `malformed`: the JWS header's
    /// own (see `jws::Header::parse`: a missing or non-HMAC `alg`, `crit`, a
    /// repeated member…), and the token profile's: a `kid` with a control
    /// character or white space at an end, a `typ` that is neither JWT,
    /// at+jwt nor rt+jwt.
    pub fn parse(json: &[u8]) -> Result<Header, Reason> {
        Header::from_jws(jws::Header::parse(json).map_err(|_| Reason::Malformed)?)
    }

    fn from_jws(header: jws::Header) -> Result<Header, Reason> {
        if let Some(kid) = &header.kid {
            check_logged::<serde_json::Error>(kid).map_err(|_| Reason::Malformed)?;
        }
        let typ = match &header.typ {
            None => None,
            Some(typ) => Some(token_type_of(typ).ok_or(Reason::Malformed)?),
        };
        Ok(Header {
            alg: header.alg,
            kid: header.kid,
            typ,
        })
    }
}

/// Classifies a `typ` value: case-insensitive, `application/` prefix allowed
/// (RFC 7515 §4.1.9).
pub fn token_type_of(typ: &str) -> Option<TokenType> {
    let t = typ;
    let t = match t.get(..12) {
        Some(p) if p.eq_ignore_ascii_case("application/") => t.get(12..).unwrap_or(""),
        _ => t,
    };
    if t.eq_ignore_ascii_case("jwt") || t.eq_ignore_ascii_case("at+jwt") {
        Some(TokenType::Access)
    } else if t.eq_ignore_ascii_case("rt+jwt") {
        Some(TokenType::Refresh)
    } else {
        None
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number, 0 ≤ value ≤ 2^53.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct NumericDate(f64);

impl NumericDate {
    pub fn new(value: f64) -> Option<NumericDate> {
        (value.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&value))
            .then_some(NumericDate(value))
    }

    pub fn get(self) -> f64 {
        self.0
    }

    /// Decimal text: integers without a fraction, fractions as the shortest
    /// exact decimal.
    pub fn to_decimal(self) -> String {
        if self.0.fract() == 0.0 {
            (self.0 as u64).to_string()
        } else {
            // serde_json's shortest round-trip form; avoids pulling core's
            // float formatting into the wasm module.
            serde_json::Number::from_f64(self.0).map_or_else(String::new, |n| n.to_string())
        }
    }
}

/// An arbitrary claim captured for `claims_to_headers` or `require_claims`.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimValue {
    Str(String),
    /// A number, kept as the decimal text that will be forwarded.
    Num(String),
    Strs(Vec<String>),
    /// Present, of a type no header carries (object, bool, null, mixed array).
    Other,
}

/// The claims tokengate reads. Everything else in the payload is skipped
/// (but still counted for duplicate member names).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims {
    pub exp: Option<NumericDate>,
    pub nbf: Option<NumericDate>,
    pub iat: Option<NumericDate>,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub jti: Option<String>,
    /// `aud` as a list; a single string becomes a list of one.
    pub aud: Option<Vec<String>>,
    /// `scope`, split on single spaces into scope-tokens.
    pub scope: Option<Vec<String>>,
    pub scp: Option<Vec<String>>,
    pub role: Option<String>,
    pub roles: Option<Vec<String>>,
    pub token_use: Option<String>,
    /// `cnf` (RFC 7800): how the token is bound to its holder.
    pub cnf: Option<Binding>,
    /// Claims captured by name for `claims_to_headers` and `require_claims`.
    pub extra: Vec<(String, ClaimValue)>,
}

/// A token's proof-of-possession binding (`cnf`, RFC 7800).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// `{"x5t#S256": …}` alone (RFC 8705 §3.1): the base64url SHA-256 of the
    /// client certificate, still encoded.
    X5tS256(String),
    /// Any other binding (`jkt`, `jwk`, an empty `cnf`, or `x5t#S256` beside
    /// another member): tokengate cannot enforce it, so the token is refused
    /// (`binding_mismatch`), never taken as a bearer token.
    Unsupported,
}

/// Which claims beyond the registered ones a payload parse captures.
#[derive(Clone, Debug, Default)]
pub struct ClaimSpec {
    /// Claim names to capture into [`Claims::extra`].
    pub extra: Vec<String>,
    /// Array claims forwarded upstream joined by spaces (`aud` and extra
    /// claims in `claims_to_headers`): an element holding a space would turn
    /// into two when joined, so such a token is malformed.
    pub joined: Vec<String>,
}

impl Claims {
    /// Parses a payload. Wrong types, out-of-range dates, control characters
    /// in read claims and duplicate member names are all `malformed`.
    pub fn parse(json: &[u8], spec: &ClaimSpec) -> Result<Claims, Reason> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let claims = de
            .deserialize_map(ClaimsVisitor { spec })
            .map_err(|_| Reason::Malformed)?;
        de.end().map_err(|_| Reason::Malformed)?;
        Ok(claims)
    }

    /// Whether a claim is present, by name.
    pub fn has(&self, name: &str) -> bool {
        match name {
            "exp" => self.exp.is_some(),
            "nbf" => self.nbf.is_some(),
            "iat" => self.iat.is_some(),
            "iss" => self.iss.is_some(),
            "sub" => self.sub.is_some(),
            "jti" => self.jti.is_some(),
            "aud" => self.aud.is_some(),
            "scope" => self.scope.is_some(),
            "scp" => self.scp.is_some(),
            "role" => self.role.is_some(),
            "roles" => self.roles.is_some(),
            "token_use" => self.token_use.is_some(),
            "cnf" => self.cnf.is_some(),
            other => self.extra.iter().any(|(n, _)| n == other),
        }
    }

    /// The token's roles: `role` and `roles` together.
    pub fn all_roles(&self) -> impl Iterator<Item = &str> + Clone {
        self.role
            .iter()
            .map(String::as_str)
            .chain(self.roles.iter().flatten().map(String::as_str))
    }

    /// The scopes the token itself grants: `scope`, then `scp`.
    pub fn own_scopes(&self) -> impl Iterator<Item = &str> + Clone {
        self.scope
            .iter()
            .flatten()
            .chain(self.scp.iter().flatten())
            .map(String::as_str)
    }
}

/// The names of registered claims with a fixed meaning; these are never
/// captured as extra claims.
pub const KNOWN_CLAIMS: [&str; 13] = [
    "exp",
    "nbf",
    "iat",
    "iss",
    "sub",
    "jti",
    "aud",
    "scope",
    "scp",
    "role",
    "roles",
    "token_use",
    "cnf",
];

struct ClaimsVisitor<'s> {
    spec: &'s ClaimSpec,
}

impl<'de> Visitor<'de> for ClaimsVisitor<'_> {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JWT claims object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let mut seen = MemberNames::default();
        let mut c = Claims::default();
        while let Some(name) = map.next_key::<Name<'de>>()? {
            let name = seen.add(name)?;
            match name {
                "exp" => c.exp = Some(map.next_value::<Date>()?.0),
                "nbf" => c.nbf = Some(map.next_value::<Date>()?.0),
                "iat" => c.iat = Some(map.next_value::<Date>()?.0),
                "iss" => c.iss = Some(logged_string(&mut map)?),
                "sub" => c.sub = Some(logged_string(&mut map)?),
                "jti" => c.jti = Some(logged_string(&mut map)?),
                "role" => {
                    let role = map.next_value::<Text<'de>>()?.0;
                    check_scope_token(&role)?;
                    c.role = Some(role.into_owned());
                }
                "token_use" => c.token_use = Some(checked_string(&mut map)?),
                "aud" => {
                    let aud = map.next_value::<Audience>()?.0;
                    if self.spec.joined.iter().any(|n| n == "aud") {
                        check_joinable(&aud)?;
                    }
                    c.aud = Some(aud);
                }
                "scope" => {
                    // RFC 6749 §3.3: scope-tokens separated by single spaces;
                    // an empty one (a leading, trailing or doubled space, or
                    // an empty string) is malformed.
                    let text = map.next_value::<Text<'de>>()?.0;
                    let scopes = text
                        .split(' ')
                        .map(|s| check_scope_token(s).map(|()| s.to_owned()))
                        .collect::<Result<Vec<_>, _>>()?;
                    c.scope = Some(scopes);
                }
                "scp" => c.scp = Some(map.next_value::<ScopeTokens>()?.0),
                "roles" => c.roles = Some(map.next_value::<ScopeTokens>()?.0),
                "cnf" => c.cnf = Some(map.next_value::<Confirmation>()?.0),
                other if self.spec.extra.iter().any(|n| n == other) => {
                    let value = map.next_value::<Captured>()?.0;
                    if let ClaimValue::Strs(list) = &value {
                        if self.spec.joined.iter().any(|n| n == other) {
                            check_joinable(list)?;
                        }
                    }
                    c.extra.push((other.to_owned(), value));
                }
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        seen.finish()?;
        Ok(c)
    }
}

fn checked_string<'de, A: MapAccess<'de>>(map: &mut A) -> Result<String, A::Error> {
    let s = map.next_value::<Text<'de>>()?.0;
    check_controls(&s)?;
    Ok(s.into_owned())
}

/// A claim tokengate forwards or logs (`sub`, `jti`, `iss`; `kid` in the
/// header): no control character, and no white space at either end, which
/// a log reader or an upstream that trims would not see.
fn logged_string<'de, A: MapAccess<'de>>(map: &mut A) -> Result<String, A::Error> {
    let s = map.next_value::<Text<'de>>()?.0;
    check_logged(&s)?;
    Ok(s.into_owned())
}

/// Whether a string holds a character no claim tokengate reads may hold:
/// C0 controls, DEL, C1 controls (U+0080–U+009F), and the line and
/// paragraph separators U+2028 and U+2029, which some log viewers and
/// JavaScript consumers take for line breaks.
pub fn has_controls(s: &str) -> bool {
    if s.is_ascii() {
        return s.bytes().any(|b| b < 0x20 || b == 0x7f);
    }
    s.chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

/// Whether `s` is an RFC 6749 §3.3 scope-token: one or more characters of
/// %x21 / %x23-5B / %x5D-7E (printable ASCII but space, `"` and `\`).
/// Scope and role names are scope-tokens, so joining them with spaces (for
/// a header or a refreshed token) can never turn one into two.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

fn check_controls<E: de::Error>(s: &str) -> Result<(), E> {
    if has_controls(s) {
        Err(E::custom("control character"))
    } else {
        Ok(())
    }
}

fn check_logged<E: de::Error>(s: &str) -> Result<(), E> {
    check_controls(s)?;
    // `trim` strips Unicode White_Space (U+00A0 and U+3000 included).
    if s.trim() != s {
        return Err(E::custom("white space at an end"));
    }
    Ok(())
}

fn check_scope_token<E: de::Error>(s: &str) -> Result<(), E> {
    if is_scope_token(s) {
        Ok(())
    } else {
        Err(E::custom("not a scope-token"))
    }
}

/// Elements of an array forwarded joined by spaces must not hold one.
fn check_joinable<E: de::Error>(list: &[String]) -> Result<(), E> {
    if list.iter().any(|s| s.is_empty() || s.contains(' ')) {
        return Err(E::custom("an element would split when joined"));
    }
    Ok(())
}

/// A NumericDate claim value.
struct Date(NumericDate);

impl<'de> de::Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Date;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a NumericDate")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Date, E> {
                if v > MAX_NUMERIC_DATE as u64 {
                    return Err(E::custom("date out of range"));
                }
                Ok(Date(NumericDate(v as f64)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Date, E> {
                // serde_json only calls this for negative integers: a negative
                // exp must never wrap to the far future (jwt-simple, 2021).
                u64::try_from(v)
                    .map_err(|_| E::custom("negative date"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Date, E> {
                NumericDate::new(v)
                    .map(Date)
                    .ok_or_else(|| E::custom("date out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `aud`: a string or an array of strings.
struct Audience(Vec<String>);

impl<'de> de::Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                check_controls(v)?;
                Ok(Audience(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Audience, A::Error> {
                StringsVisitor.visit_seq(seq).map(|s| Audience(s.0))
            }
        }
        d.deserialize_any(V)
    }
}

/// An array of strings without control characters.
struct Strings(Vec<String>);

struct StringsVisitor;

impl<'de> Visitor<'de> for StringsVisitor {
    type Value = Strings;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(16));
        while let Some(s) = seq.next_element::<Text<'de>>()? {
            check_controls(&s.0)?;
            out.push(s.0.into_owned());
        }
        Ok(Strings(out))
    }
}

/// An array of RFC 6749 scope-tokens (`scp`, `roles`).
struct ScopeTokens(Vec<String>);

impl<'de> de::Deserialize<'de> for ScopeTokens {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScopeTokens;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of scope-tokens")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ScopeTokens, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(16));
                while let Some(s) = seq.next_element::<Text<'de>>()? {
                    check_scope_token(&s.0)?;
                    out.push(s.0.into_owned());
                }
                Ok(ScopeTokens(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// `cnf` (RFC 7800): an object. Only `{"x5t#S256": "…"}` (RFC 8705 §3.1)
/// can be enforced here; any other content is [`Binding::Unsupported`].
struct Confirmation(Binding);

impl<'de> de::Deserialize<'de> for Confirmation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Confirmation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a confirmation object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Confirmation, A::Error> {
                let mut seen = MemberNames::default();
                let mut thumb = None;
                let mut other = false;
                while let Some(name) = map.next_key::<Name<'de>>()? {
                    if seen.add(name)? == "x5t#S256" {
                        thumb = Some(checked_string(&mut map)?);
                    } else {
                        other = true;
                        map.next_value::<Skip>()?;
                    }
                }
                seen.finish()?;
                Ok(Confirmation(match thumb {
                    Some(thumb) if !other => Binding::X5tS256(thumb),
                    _ => Binding::Unsupported,
                }))
            }
        }
        d.deserialize_map(V)
    }
}

/// A captured extra claim: never an error, whatever its type, except a
/// control character in a string that would be forwarded in a header.
struct Captured(ClaimValue);

impl<'de> de::Deserialize<'de> for Captured {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Captured;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Captured, E> {
                check_controls(v)?;
                Ok(Captured(ClaimValue::Str(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Captured, E> {
                Ok(Captured(ClaimValue::Num(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Captured, E> {
                Ok(Captured(ClaimValue::Num(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Captured, E> {
                // The shortest text that reads back as the same number.
                Ok(Captured(ClaimValue::Num(
                    serde_json::Number::from_f64(v).map_or_else(String::new, |n| n.to_string()),
                )))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Captured, E> {
                Ok(Captured(ClaimValue::Other))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Captured, E> {
                Ok(Captured(ClaimValue::Other))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Captured, A::Error> {
                // All strings: a list; anything else in it: of no type a
                // header carries (the rest is still read and validated).
                let mut out = Vec::new();
                let mut mixed = false;
                while let Some(item) = seq.next_element::<Captured>()? {
                    match item.0 {
                        ClaimValue::Str(s) if !mixed => out.push(s),
                        _ => mixed = true,
                    }
                }
                Ok(Captured(if mixed {
                    ClaimValue::Other
                } else {
                    ClaimValue::Strs(out)
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Captured, A::Error> {
                while map.next_key::<Skip>()?.is_some() {
                    map.next_value::<Skip>()?;
                }
                Ok(Captured(ClaimValue::Other))
            }
        }
        d.deserialize_any(V)
    }
}

/// What a verified token says: its header and claims.
#[derive(Debug)]
struct Parts {
    header: Header,
    claims: Claims,
}

/// A token whose MAC was verified under a configured key. Only
/// [`verify`] and [`VerifyCache`] make one, so holding a `Verified` means
/// the check ran.
#[derive(Debug, Clone)]
pub struct Verified<'k> {
    key: &'k Key,
    parts: Rc<Parts>,
}

impl<'k> Verified<'k> {
    pub fn key(&self) -> &'k Key {
        self.key
    }

    pub fn header(&self) -> &Header {
        &self.parts.header
    }

    pub fn claims(&self) -> &Claims {
        &self.parts.claims
    }

    /// The declared token type: the header's `typ`, else `token_use`.
    pub fn token_type(&self) -> TokenType {
        match self.parts.header.typ {
            Some(TokenType::Refresh) => TokenType::Refresh,
            _ if self.parts.claims.token_use.as_deref() == Some("refresh") => TokenType::Refresh,
            _ => TokenType::Access,
        }
    }
}

/// Parses and verifies a token: size, segments, base64url, header, key,
/// MAC, then the claims. The first failure gives the reason.
pub fn verify<'k>(
    token: &str,
    keys: &'k KeySet,
    max_bytes: usize,
    spec: &ClaimSpec,
) -> Result<Verified<'k>, Reason> {
    let mut jws = jws::decode(token, max_bytes).map_err(|_| Reason::Malformed)?;
    let header = Header::from_jws(std::mem::replace(
        &mut jws.header,
        jws::Header {
            alg: Alg::Hs256,
            kid: None,
            typ: None,
        },
    ))?;
    // The key decides the algorithm: (kid, alg) must name a configured key.
    let key = keys
        .select(header.kid.as_deref(), header.alg)
        .ok_or(Reason::UnknownKey)?;
    if !jws.verify(key) {
        return Err(Reason::BadSignature);
    }
    let claims = Claims::parse(&jws.payload, spec)?;
    Ok(Verified {
        key,
        parts: Rc::new(Parts { header, claims }),
    })
}

/// Signs `claims` (a JSON object) with `key`, with header
/// `{"alg", "typ", "kid"}`. Used by the CLI and by refresh.
pub fn sign<T: serde::Serialize + ?Sized>(claims: &T, key: &Key, typ: &str) -> String {
    // Claims are plain data (a JSON value, or a struct of strings and
    // numbers): serializing them cannot fail.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    jws::sign(&payload, key, typ, Some(key.kid().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyId;

    fn key(kid: &str, alg: Alg, secret: &[u8]) -> Key {
        Key::new(KeyId(kid.into()), alg, secret).unwrap()
    }

    /// Signs arbitrary header and payload text, for crafting attack tokens.
    fn craft(header: &str, payload: &str, key: &Key) -> String {
        let input = format!(
            "{}.{}",
            b64url_encode(header.as_bytes()),
            b64url_encode(payload.as_bytes())
        );
        let tag = key.sign(input.as_bytes());
        format!("{input}.{}", b64url_encode(&tag))
    }

    fn one_key() -> (KeySet, Key) {
        let k = key("k1", Alg::Hs256, &[9; 32]);
        (KeySet::new(vec![k.clone()]), k)
    }

    fn check(token: &str, keys: &KeySet) -> Result<Claims, Reason> {
        verify(token, keys, 4096, &ClaimSpec::default()).map(|v| v.claims().clone())
    }

    #[test]
    fn rfc7515_a1_example_verifies() {
        // RFC 7515 appendix A.1: HS256 with the JWK's `k`.
        use base64::Engine as _;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let keys = KeySet::new(vec![key("any", Alg::Hs256, &secret)]);
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let claims = check(token, &keys).unwrap();
        assert_eq!(claims.iss.as_deref(), Some("joe"));
        assert_eq!(claims.exp, NumericDate::new(1_300_819_380.0));
    }

    #[test]
    fn rejects_tampered_payload() {
        let (keys, k) = one_key();
        let token = craft(r#"{"alg":"HS256"}"#, r#"{"sub":"a"}"#, &k);
        let (hp, sig) = token.rsplit_once('.').unwrap();
        let (h, _) = hp.split_once('.').unwrap();
        let forged = format!("{h}.{}.{sig}", b64url_encode(br#"{"sub":"b"}"#));
        assert_eq!(check(&forged, &keys), Err(Reason::BadSignature));
    }

    #[test]
    fn rejects_alg_none_in_any_spelling() {
        let (keys, k) = one_key();
        for alg in ["none", "None", "NONE", "nOnE", ""] {
            let t = craft(&format!(r#"{{"alg":"{alg}"}}"#), r#"{"sub":"a"}"#, &k);
            assert_eq!(check(&t, &keys), Err(Reason::Malformed), "{alg}");
        }
    }

    #[test]
    fn rejects_asymmetric_algorithms_as_malformed() {
        let (keys, k) = one_key();
        for alg in ["RS256", "ES256", "PS256", "EdDSA", "hs256"] {
            let t = craft(&format!(r#"{{"alg":"{alg}"}}"#), r#"{"sub":"a"}"#, &k);
            assert_eq!(check(&t, &keys), Err(Reason::Malformed), "{alg}");
        }
    }

    #[test]
    fn rejects_other_hmac_size_than_the_key() {
        let (keys, _) = one_key();
        let k512 = key("k1", Alg::Hs512, &[9; 64]);
        let t = craft(r#"{"alg":"HS512","kid":"k1"}"#, r#"{"sub":"a"}"#, &k512);
        assert_eq!(check(&t, &keys), Err(Reason::UnknownKey));
    }

    #[test]
    fn rejects_crit() {
        let (keys, k) = one_key();
        let t = craft(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, r#"{}"#, &k);
        assert_eq!(check(&t, &keys), Err(Reason::Malformed));
    }

    #[test]
    fn rejects_duplicate_members_in_header_and_payload() {
        let (keys, k) = one_key();
        let t = craft(r#"{"alg":"HS256","alg":"HS256"}"#, r#"{}"#, &k);
        assert_eq!(check(&t, &keys), Err(Reason::Malformed));
        let t = craft(r#"{"alg":"HS256"}"#, r#"{"sub":"a","sub":"b"}"#, &k);
        assert_eq!(check(&t, &keys), Err(Reason::Malformed));
        // An escaped name is the same name.
        let t = craft(r#"{"alg":"HS256"}"#, r#"{"sub":"a","\u0073ub":"b"}"#, &k);
        assert_eq!(check(&t, &keys), Err(Reason::Malformed));
        // Unknown members count too, at any depth.
        let t = craft(r#"{"alg":"HS256"}"#, r#"{"x":1,"x":2}"#, &k);
        assert_eq!(check(&t, &keys), Err(Reason::Malformed));
        let t = craft(r#"{"alg":"HS256"}"#, r#"{"x":{"a":1,"a":2}}"#, &k);
        assert_eq!(check(&t, &keys), Err(Reason::Malformed));
        let t = craft(r#"{"alg":"HS256"}"#, r#"{"x":[{"a":1},{"a":2}]}"#, &k);
        assert!(
            check(&t, &keys).is_ok(),
            "the same name in two objects is fine"
        );
    }

    #[test]
    fn rejects_duplicates_among_many_members() {
        let (keys, k) = one_key();
        let mut payload = String::from("{");
        for i in 0..40 {
            payload.push_str(&format!("\"m{i}\":{i},"));
        }
        payload.push_str("\"m3\":0}");
        let t = craft(r#"{"alg":"HS256"}"#, &payload, &k);
        assert_eq!(check(&t, &keys), Err(Reason::Malformed));
    }

    /// Past 32 members the duplicate check sorts the names: distinct names
    /// are still accepted however many there are (docs/token.md, "Claims":
    /// unknown claims are ignored).
    #[test]
    fn accepts_many_distinct_members() {
        let (keys, k) = one_key();
        for n in [31, 32, 33, 40] {
            let members: Vec<String> = (0..n).map(|i| format!("\"m{i}\":{i}")).collect();
            let payload = format!("{{{}}}", members.join(","));
            let t = craft(r#"{"alg":"HS256"}"#, &payload, &k);
            assert!(check(&t, &keys).is_ok(), "{n} members");
        }
    }

    #[test]
    fn rejects_padded_and_noncanonical_base64url() {
        let (keys, k) = one_key();
        let good = craft(r#"{"alg":"HS256"}"#, r#"{"sub":"ab"}"#, &k);
        assert!(check(&good, &keys).is_ok());
        let (h, rest) = good.split_once('.').unwrap();
        assert_eq!(
            check(&format!("{h}=.{rest}"), &keys),
            Err(Reason::Malformed)
        );
        // Standard-alphabet characters.
        let std_sig = good.replace('-', "+").replace('_', "/");
        if std_sig != good {
            assert_eq!(check(&std_sig, &keys), Err(Reason::Malformed));
        }
        // Non-canonical trailing bits in the signature (43 chars: last holds 2 spare bits).
        let (hp, sig) = good.rsplit_once('.').unwrap();
        let last = sig.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.find(last).unwrap();
        let tweaked = alphabet.chars().nth(idx ^ 1).unwrap();
        let bad = format!("{hp}.{}{tweaked}", &sig[..sig.len() - 1]);
        assert_eq!(check(&bad, &keys), Err(Reason::Malformed));
    }

    #[test]
    fn rejects_wrong_segment_counts_and_size() {
        let (keys, k) = one_key();
        let good = craft(r#"{"alg":"HS256"}"#, r#"{}"#, &k);
        assert_eq!(check(&format!("{good}.x"), &keys), Err(Reason::Malformed));
        assert_eq!(
            check(good.rsplit_once('.').unwrap().0, &keys),
            Err(Reason::Malformed)
        );
        assert_eq!(check("", &keys), Err(Reason::Malformed));
        assert_eq!(check("..", &keys), Err(Reason::Malformed));
        assert_eq!(
            verify(&good, &keys, good.len() - 1, &ClaimSpec::default()).err(),
            Some(Reason::Malformed)
        );
    }

    #[test]
    fn rejects_signature_of_wrong_length_as_bad_signature() {
        let (keys, k) = one_key();
        let good = craft(r#"{"alg":"HS256"}"#, r#"{}"#, &k);
        let (hp, _) = good.rsplit_once('.').unwrap();
        assert_eq!(
            check(&format!("{hp}.{}", b64url_encode(&[0; 16])), &keys),
            Err(Reason::BadSignature)
        );
        assert_eq!(check(&format!("{hp}."), &keys), Err(Reason::BadSignature));
    }

    #[test]
    fn payload_is_not_parsed_before_the_mac_holds() {
        let (keys, _) = one_key();
        let other = key("k1", Alg::Hs256, &[1; 32]);
        let t = craft(r#"{"alg":"HS256"}"#, "not json", &other);
        assert_eq!(check(&t, &keys), Err(Reason::BadSignature));
    }

    #[test]
    fn rejects_string_exp() {
        let (keys, k) = one_key();
        let t = craft(r#"{"alg":"HS256"}"#, r#"{"exp":"1700000000"}"#, &k);
        assert_eq!(check(&t, &keys), Err(Reason::Malformed));
    }

    #[test]
    fn rejects_negative_exp_instead_of_wrapping() {
        // jwt-simple fixed a negative exp read as a huge unsigned value.
        let (keys, k) = one_key();
        for exp in [
            "-1",
            "-1.5",
            "9007199254740993",
            "1e300",
            "true",
            "null",
            "[1]",
        ] {
            let t = craft(r#"{"alg":"HS256"}"#, &format!(r#"{{"exp":{exp}}}"#), &k);
            assert_eq!(check(&t, &keys), Err(Reason::Malformed), "{exp}");
        }
    }

    #[test]
    fn accepts_fractional_and_boundary_dates() {
        let (keys, k) = one_key();
        let t = craft(
            r#"{"alg":"HS256"}"#,
            r#"{"exp":1700000000.5,"iat":0,"nbf":9007199254740992}"#,
            &k,
        );
        let c = check(&t, &keys).unwrap();
        assert_eq!(c.exp.unwrap().to_decimal(), "1700000000.5");
        assert_eq!(c.iat.unwrap().get(), 0.0);
    }

    #[test]
    fn rejects_control_characters_in_read_claims() {
        let (keys, k) = one_key();
        for claim in ["iss", "sub", "jti", "role", "scope"] {
            let t = craft(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"{claim}":"a\r\nX-Injected: 1"}}"#),
                &k,
            );
            assert_eq!(check(&t, &keys), Err(Reason::Malformed), "{claim}");
        }
        for claim in ["aud", "scp", "roles"] {
            let t = craft(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"{claim}":["ok","a\u007f"]}}"#),
                &k,
            );
            assert_eq!(check(&t, &keys), Err(Reason::Malformed), "{claim}");
        }
        let t = craft(r#"{"alg":"HS256","kid":"k1\u0000"}"#, r#"{}"#, &k);
        assert_eq!(check(&t, &keys), Err(Reason::Malformed));
        // Claims tokengate does not read are ignored entirely.
        let t = craft(r#"{"alg":"HS256"}"#, r#"{"note":"a\nb"}"#, &k);
        assert!(check(&t, &keys).is_ok());
    }

    /// Text beyond ASCII is fine in a claim; the line and paragraph
    /// separators U+2028 and U+2029 and the C1 controls are refused like
    /// any control (docs/token.md, "Claims").
    #[test]
    fn accepts_non_ascii_text_but_not_separators_or_c1_controls() {
        let (keys, k) = one_key();
        for sub in ["josé", "日本語", "Ünïcödé"] {
            let t = craft(r#"{"alg":"HS256"}"#, &format!(r#"{{"sub":"{sub}"}}"#), &k);
            assert_eq!(check(&t, &keys).unwrap().sub.as_deref(), Some(sub));
        }
        // JSON escapes, and the characters themselves.
        for bad in [
            r"a\u2028b",
            r"a\u2029b",
            r"a\u0085b",
            "é\u{2028}",
            "\u{2029}é",
        ] {
            let t = craft(r#"{"alg":"HS256"}"#, &format!(r#"{{"sub":"{bad}"}}"#), &k);
            assert_eq!(check(&t, &keys), Err(Reason::Malformed), "{bad}");
        }
    }

    /// An array that is forwarded joined by spaces (`aud`, or an extra claim
    /// named in `claims_to_headers`) may not hold an element with a space,
    /// nor an empty one: joined, it would turn into two or vanish. Arrays
    /// that are not forwarded are not held to it (docs/token.md, "Claims").
    #[test]
    fn forwarded_arrays_refuse_elements_that_would_split_when_joined() {
        let (keys, k) = one_key();
        let run = |spec: &ClaimSpec, payload: &str| {
            let t = craft(r#"{"alg":"HS256"}"#, payload, &k);
            verify(&t, &keys, 4096, spec).map(|_| ())
        };
        let groups = ClaimSpec {
            extra: vec!["groups".into(), "tags".into()],
            joined: vec!["groups".into()],
        };
        assert_eq!(run(&groups, r#"{"groups":["a","b"]}"#), Ok(()));
        for payload in [r#"{"groups":["a b"]}"#, r#"{"groups":["a",""]}"#] {
            assert_eq!(run(&groups, payload), Err(Reason::Malformed), "{payload}");
        }
        // Not forwarded joined: `tags` and `aud` may hold spaces here.
        assert_eq!(run(&groups, r#"{"tags":["a b"],"aud":["x y"]}"#), Ok(()));
        let aud = ClaimSpec {
            extra: vec![],
            joined: vec!["aud".into()],
        };
        assert_eq!(run(&aud, r#"{"aud":["a","b"]}"#), Ok(()));
        for payload in [
            r#"{"aud":["a b"]}"#,
            r#"{"aud":"a b"}"#,
            r#"{"aud":["", "x"]}"#,
        ] {
            assert_eq!(run(&aud, payload), Err(Reason::Malformed), "{payload}");
        }
    }

    /// `x5t#S256` beside any other `cnf` member is a binding tokengate
    /// cannot enforce, never taken for a certificate binding alone
    /// (docs/token.md, "Claims": `cnf`).
    #[test]
    fn a_thumbprint_beside_another_confirmation_member_is_unsupported() {
        let spec = ClaimSpec::default();
        let parse = |json: &str| Claims::parse(json.as_bytes(), &spec).unwrap().cnf;
        assert_eq!(
            parse(r#"{"cnf":{"x5t#S256":"abc"}}"#),
            Some(Binding::X5tS256("abc".into()))
        );
        for cnf in [
            r#"{"cnf":{"x5t#S256":"abc","jkt":"def"}}"#,
            r#"{"cnf":{"jkt":"def","x5t#S256":"abc"}}"#,
            r#"{"cnf":{}}"#,
        ] {
            assert_eq!(parse(cnf), Some(Binding::Unsupported), "{cnf}");
        }
    }

    #[test]
    fn rejects_wrong_claim_types() {
        let (keys, k) = one_key();
        for payload in [
            r#"{"iss":1}"#,
            r#"{"sub":["a"]}"#,
            r#"{"aud":[1]}"#,
            r#"{"aud":{"a":1}}"#,
            r#"{"scope":["a"]}"#,
            r#"{"scp":"a b"}"#,
            r#"{"roles":"admin"}"#,
            r#"{"role":["admin"]}"#,
            r#"{"jti":null}"#,
            r#"{"cnf":"x"}"#,
            r#"[]"#,
            r#""claims""#,
        ] {
            let t = craft(r#"{"alg":"HS256"}"#, payload, &k);
            assert_eq!(check(&t, &keys), Err(Reason::Malformed), "{payload}");
        }
    }

    #[test]
    fn rejects_bad_typ_and_accepts_the_listed_ones() {
        let (keys, k) = one_key();
        for typ in [
            "JWT",
            "jwt",
            "at+jwt",
            "application/at+JWT",
            "rt+jwt",
            "APPLICATION/jwt",
        ] {
            let t = craft(&format!(r#"{{"alg":"HS256","typ":"{typ}"}}"#), "{}", &k);
            assert!(check(&t, &keys).is_ok(), "{typ}");
        }
        for typ in ["JOSE", "dpop+jwt", "", "application/"] {
            let t = craft(&format!(r#"{{"alg":"HS256","typ":"{typ}"}}"#), "{}", &k);
            assert_eq!(check(&t, &keys), Err(Reason::Malformed), "{typ}");
        }
        let t = craft(r#"{"alg":"HS256","typ":7}"#, "{}", &k);
        assert_eq!(check(&t, &keys), Err(Reason::Malformed));
    }

    /// Only `application/` may precede the type: twelve other characters
    /// before `jwt` are a bad `typ` (docs/token.md, "Header and signature").
    #[test]
    fn only_the_application_prefix_is_dropped_from_typ() {
        let (keys, k) = one_key();
        for typ in ["example.com/jwt", "applicationXjwt", "vnd.example+jwt"] {
            let t = craft(&format!(r#"{{"alg":"HS256","typ":"{typ}"}}"#), "{}", &k);
            assert_eq!(check(&t, &keys), Err(Reason::Malformed), "{typ}");
        }
        assert_eq!(
            token_type_of("application/rt+jwt"),
            Some(TokenType::Refresh)
        );
        assert_eq!(token_type_of("Application/JWT"), Some(TokenType::Access));
    }

    #[test]
    fn rejects_non_string_kid() {
        let (keys, k) = one_key();
        let t = craft(r#"{"alg":"HS256","kid":1}"#, "{}", &k);
        assert_eq!(check(&t, &keys), Err(Reason::Malformed));
    }

    #[test]
    fn ignores_key_url_header_members() {
        let (keys, k) = one_key();
        let t = craft(
            r#"{"alg":"HS256","jku":"https://evil/","x5u":"https://evil/","jwk":{"kty":"oct","k":"AA"}}"#,
            "{}",
            &k,
        );
        assert!(check(&t, &keys).is_ok());
    }

    #[test]
    fn empty_aud_array_is_present_but_empty() {
        // An empty aud is not "no aud": it names no audience.
        let (keys, k) = one_key();
        let t = craft(r#"{"alg":"HS256"}"#, r#"{"aud":[]}"#, &k);
        assert_eq!(check(&t, &keys).unwrap().aud, Some(vec![]));
    }

    #[test]
    fn captures_extra_claims_by_type() {
        let (keys, k) = one_key();
        let spec = ClaimSpec {
            extra: vec![
                "tenant".into(),
                "level".into(),
                "groups".into(),
                "obj".into(),
            ],
            joined: vec![],
        };
        let t = craft(
            r#"{"alg":"HS256"}"#,
            r#"{"tenant":"acme","level":3,"groups":["a","b"],"obj":{"x":1}}"#,
            &k,
        );
        let c = verify(&t, &keys, 4096, &spec).unwrap().claims().clone();
        assert_eq!(
            c.extra,
            vec![
                ("tenant".into(), ClaimValue::Str("acme".into())),
                ("level".into(), ClaimValue::Num("3".into())),
                (
                    "groups".into(),
                    ClaimValue::Strs(vec!["a".into(), "b".into()])
                ),
                ("obj".into(), ClaimValue::Other),
            ]
        );
    }

    /// The per-worker cache remembers each verified token once, counts the
    /// bytes of the token and of every claim it holds, never holds more than
    /// its byte bound (a token that does not fit is verified, not
    /// remembered), and answers a repeat with the same claims
    /// (docs/security.md, "Inside the gate").
    #[test]
    fn the_cache_remembers_verified_tokens_within_its_byte_bound() {
        let kid = "k".repeat(40);
        let k = key(&kid, Alg::Hs256, &[9; 32]);
        let keys = KeySet::new(vec![k.clone()]);
        let spec = ClaimSpec {
            extra: vec!["tenant".into()],
            joined: vec![],
        };
        let off = VerifyCache::new(0, 1 << 20);
        assert!(off.is_empty());
        assert_eq!((off.len(), off.bytes()), (0, 0));

        // Every claim the cache counts, each of a different size.
        let text = |c: &str, n: usize| c.repeat(n);
        let four = |c: &str| {
            (0..4)
                .map(|i| format!("{}{i}", text(c, 19)))
                .collect::<Vec<_>>()
        };
        let aud: Vec<String> = (0..16).map(|i| format!("audience-{i:015}")).collect();
        let t = sign(
            &serde_json::json!({
                "iss": text("i", 50), "sub": text("u", 1000), "jti": text("j", 60),
                "role": text("r", 70), "token_use": text("e", 80), "aud": aud,
                "scope": four("s").join(" "), "scp": four("p"), "roles": four("o"),
                "cnf": {"x5t#S256": text("t", 100)}, "tenant": text("x", 500),
            }),
            &k,
            "JWT",
        );
        // The entry's overhead, the token, and each claim's text; a list's
        // strings also count their own `String` each.
        let list = |n: usize, len: usize| n * (std::mem::size_of::<String>() + len);
        let claims = 40
            + 50
            + 1000
            + 60
            + 70
            + 80
            + list(16, 24)
            + list(4, 20) * 3
            + 100
            + "tenant".len()
            + std::mem::size_of::<(String, ClaimValue)>()
            + 500;
        let floor = 128 + t.len() + claims;
        let mut cache = VerifyCache::new(1024, 1 << 20);
        assert!(cache.is_empty());
        let v = cache.verify(&t, &keys, 8192, &spec).unwrap();
        assert_eq!(v.claims().sub.as_deref(), Some(text("u", 1000).as_str()));
        assert_eq!(cache.len(), 1);
        assert!(!cache.is_empty());
        let bytes = cache.bytes();
        assert!((floor..floor + 64).contains(&bytes), "{bytes} for {floor}");

        // A repeat is answered from the cache: the same claims, nothing added.
        let again = cache.verify(&t, &keys, 8192, &spec).unwrap();
        assert_eq!(again.claims(), v.claims());
        assert_eq!((cache.len(), cache.bytes()), (1, bytes));
        // Another token takes its own slot.
        let other = sign(&serde_json::json!({"sub": "v"}), &k, "JWT");
        cache.verify(&other, &keys, 8192, &spec).unwrap();
        assert_eq!(cache.len(), 2);
        assert!(cache.bytes() > bytes);

        // One byte short of the token's size: verified, not remembered.
        let mut small = VerifyCache::new(8, bytes - 1);
        assert!(small.verify(&t, &keys, 8192, &spec).is_ok());
        assert_eq!((small.len(), small.bytes()), (0, 0));
        let mut exact = VerifyCache::new(8, bytes);
        assert!(exact.verify(&t, &keys, 8192, &spec).is_ok());
        assert_eq!((exact.len(), exact.bytes()), (1, bytes));
    }

    #[test]
    fn sign_then_verify_roundtrips_every_algorithm() {
        for (alg, len) in [(Alg::Hs256, 32), (Alg::Hs384, 48), (Alg::Hs512, 64)] {
            let k = key("k", alg, &vec![5; len]);
            let keys = KeySet::new(vec![k.clone()]);
            let t = sign(&serde_json::json!({"sub": "u", "scope": "a b"}), &k, "JWT");
            let c = check(&t, &keys).unwrap();
            assert_eq!(c.scope, Some(vec!["a".into(), "b".into()]));
        }
    }
}
