//! Property helpers for the tokengate fuzz targets.
//!
//! Each helper states one property of the library and returns the broken one
//! as `Err(String)`; the targets in `fuzz_targets/` panic on it, which
//! libFuzzer reports as a crash. They use only tokengate's public API plus
//! independent oracles (the `hmac` crate for MACs, `serde_json::Value` for
//! JSON, a segment-stack model for path normalization, a set model for
//! revocation), so a finding here is a disagreement between tokengate and
//! something that does not share its code.
//!
//! These would move into the library as `#[doc(hidden)] pub mod fuzzing`
//! modules (rustls `internal::fuzzing`, like `revocation::fuzzing`) once the
//! owners of `src/` take them; until then they live here.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::Deserializer as _;
use sha2::{Sha256, Sha384, Sha512};

use tokengate::config::{Config, Secrets};
use tokengate::keys::Alg;
use tokengate::policy::{AuthorityError, HostPattern, Match, PathError, PathMatch, Rule};
use tokengate::refresh::FormError;
use tokengate::revocation::{fingerprint, Entry, Kind, TokenRef};

// ---------------------------------------------------------------------------
// The fixed configurations tokens are checked against
// ---------------------------------------------------------------------------

/// The instant every decision is taken at (2025-11-27T16:00:00Z).
pub const NOW: u64 = 1_764_259_200;

/// HS256 key `k1` of the two-key configuration (32 bytes, utf8 encoding).
pub const K1_SECRET: &[u8; 32] = b"tokengate fuzz key k1, 32 bytes!";
/// HS512 key `k2` of the two-key configuration (64 bytes, utf8 encoding).
pub const K2_SECRET: &[u8; 64] =
    b"tokengate fuzz key k2: sixty-four bytes of secret for HS512 MACs";
/// A key no configuration holds: tokens signed with it must never pass.
pub const ROGUE_SECRET: &[u8; 64] =
    b"not configured anywhere: a token signed with this must not pass!";
/// The RFC 7515 appendix A.1 key (`k` of its JWK), base64url.
pub const RFC7515_A1_K: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
/// The RFC 7515 appendix A.1 token (no `kid`; HS256).
pub const RFC7515_A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A configured key as the oracle sees it: the raw secret, not tokengate's
/// keyed state.
#[derive(Clone, Debug)]
pub struct OracleKey {
    pub kid: String,
    pub alg: Alg,
    pub secret: Vec<u8>,
}

/// A compiled configuration and the keys it was given.
pub struct Fixture {
    pub name: &'static str,
    pub config: Config,
    pub keys: Vec<OracleKey>,
}

fn utf8(secret: &[u8]) -> &str {
    std::str::from_utf8(secret).unwrap_or_default()
}

/// Two keys (`k1` HS256, `k2` HS512), one catch-all rule that needs any
/// valid token, no required claims (so any correctly signed, well-formed
/// token is allowed: the widest door for the property), and claim headers.
pub fn two_key_fixture() -> Fixture {
    let json = serde_json::json!({
        "realm": "fuzz",
        "keys": [
            {"kid": "k1", "alg": "HS256", "secret": utf8(K1_SECRET), "encoding": "utf8"},
            {"kid": "k2", "alg": "HS512", "secret": utf8(K2_SECRET), "encoding": "utf8"}
        ],
        "require_claims": [],
        "claims_to_headers": {"sub": "x-auth-subject", "scope": "x-auth-scopes", "tenant": "x-tenant"},
        "roles": {"admin": ["*"]},
        "rules": [{"match": {"prefix": "/"}}]
    });
    Fixture {
        name: "two-key",
        config: compile(&json),
        keys: vec![
            OracleKey {
                kid: "k1".into(),
                alg: Alg::Hs256,
                secret: K1_SECRET.to_vec(),
            },
            OracleKey {
                kid: "k2".into(),
                alg: Alg::Hs512,
                secret: K2_SECRET.to_vec(),
            },
        ],
    }
}

/// One key, the RFC 7515 A.1 key: a token without `kid` selects it, so the
/// sole-key path is fuzzed too.
pub fn one_key_fixture() -> Fixture {
    let json = serde_json::json!({
        "keys": [{"kid": "rfc7515-a1", "alg": "HS256", "secret": RFC7515_A1_K}],
        "require_claims": [],
        "rules": [{"match": {"prefix": "/"}, "scopes": []}]
    });
    Fixture {
        name: "one-key",
        config: compile(&json),
        keys: vec![OracleKey {
            kid: "rfc7515-a1".into(),
            alg: Alg::Hs256,
            secret: URL_SAFE_NO_PAD.decode(RFC7515_A1_K).unwrap_or_default(),
        }],
    }
}

fn compile(json: &serde_json::Value) -> Config {
    match Config::from_json(json.to_string().as_bytes(), &Secrets::Placeholder) {
        Ok(config) => config,
        Err(e) => panic!("the fuzzing fixture does not compile: {e}"),
    }
}

// ---------------------------------------------------------------------------
// MAC oracle
// ---------------------------------------------------------------------------

/// HMAC of `input` under `secret` with the hash of `alg`, by the `hmac`
/// crate directly (not tokengate's keyed state).
pub fn hmac_tag(alg: Alg, secret: &[u8], input: &[u8]) -> Vec<u8> {
    fn tag<M: Mac + hmac::digest::KeyInit>(secret: &[u8], input: &[u8]) -> Vec<u8> {
        match <M as Mac>::new_from_slice(secret) {
            Ok(mut mac) => {
                mac.update(input);
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
    match alg {
        Alg::Hs256 => tag::<Hmac<Sha256>>(secret, input),
        Alg::Hs384 => tag::<Hmac<Sha384>>(secret, input),
        Alg::Hs512 => tag::<Hmac<Sha512>>(secret, input),
    }
}

/// A compact JWS over arbitrary header and payload text, signed with `secret`
/// under `alg`'s hash.
pub fn sign_compact(header: &[u8], payload: &[u8], alg: Alg, secret: &[u8]) -> String {
    let mut out = URL_SAFE_NO_PAD.encode(header);
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let tag = hmac_tag(alg, secret, out.as_bytes());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(tag));
    out
}

/// Property: a token tokengate accepted carries a valid MAC under a
/// configured key. Checked from scratch: exactly three canonical base64url
/// segments; the header a JSON object whose `kid` names a configured key (or
/// is absent with exactly one key configured) and whose `alg` is that key's;
/// and the signature segment, as sent, is the base64url of the HMAC of
/// `header.payload`, as sent, under that key. Returns the key.
pub fn accepted_token_is_genuine<'k>(
    token: &str,
    keys: &'k [OracleKey],
) -> Result<&'k OracleKey, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("accepted a token that is not three segments".into());
    };
    for (name, seg) in [("header", h), ("payload", p), ("signature", s)] {
        let decoded = URL_SAFE_NO_PAD
            .decode(seg)
            .map_err(|e| format!("accepted a token whose {name} is not base64url: {e}"))?;
        if URL_SAFE_NO_PAD.encode(&decoded) != seg {
            return Err(format!(
                "accepted a token whose {name} is not canonical base64url"
            ));
        }
    }
    let header_json = URL_SAFE_NO_PAD.decode(h).unwrap_or_default();
    let header: serde_json::Value = serde_json::from_slice(&header_json)
        .map_err(|e| format!("accepted a token whose header is not JSON: {e}"))?;
    let header = header
        .as_object()
        .ok_or("accepted a token whose header is not an object")?;
    let key = match header.get("kid") {
        Some(serde_json::Value::String(kid)) => keys
            .iter()
            .find(|k| k.kid == *kid)
            .ok_or_else(|| format!("accepted a token whose kid {kid:?} is not configured"))?,
        Some(other) => {
            return Err(format!(
                "accepted a token whose kid is not a string: {other}"
            ))
        }
        None if keys.len() == 1 => &keys[0],
        None => {
            return Err("accepted a token without kid while several keys are configured".into())
        }
    };
    let alg = header.get("alg").and_then(|a| a.as_str());
    if alg != Some(key.alg.name()) {
        return Err(format!(
            "accepted alg {alg:?} for key {} ({})",
            key.kid, key.alg
        ));
    }
    let signing_input = token.get(..h.len() + 1 + p.len()).unwrap_or_default();
    let expected = URL_SAFE_NO_PAD.encode(hmac_tag(key.alg, &key.secret, signing_input.as_bytes()));
    if expected != s {
        return Err(format!(
            "accepted a token whose MAC is not the HMAC under key {}",
            key.kid
        ));
    }
    Ok(key)
}

// ---------------------------------------------------------------------------
// JSON oracle
// ---------------------------------------------------------------------------

/// The member names of a top-level JSON object in document order, repeats
/// kept (`serde_json::Value` would merge them). `None`: not one JSON object.
pub fn member_names(json: &[u8]) -> Option<Vec<String>> {
    struct Names;
    impl<'de> Visitor<'de> for Names {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut names = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                names.push(name);
            }
            Ok(names)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let names = de.deserialize_map(Names).ok()?;
    de.end().ok()?;
    Some(names)
}

/// Whether a list of names holds one twice.
pub fn has_repeats(names: &[String]) -> bool {
    let mut seen = HashSet::new();
    names.iter().any(|n| !seen.insert(n.as_str()))
}

/// Whether text holds a character no claim tokengate reads may hold: a C0
/// control (U+0000–U+001F), DEL, a C1 control (U+0080–U+009F), or the line
/// and paragraph separators U+2028 and U+2029.
pub fn has_controls(s: &str) -> bool {
    s.chars().any(|c| {
        c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c) || c == '\u{2028}' || c == '\u{2029}'
    })
}

/// The Unicode `White_Space` characters (PropList.txt), listed here rather
/// than taken from `char::is_whitespace`, which tokengate uses.
const WHITE_SPACE: [char; 25] = [
    '\u{9}', '\u{a}', '\u{b}', '\u{c}', '\u{d}', ' ', '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}',
    '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}',
    '\u{2009}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
];

/// Whether text starts or ends with a Unicode `White_Space` character
/// (U+00A0 and U+3000 included): refused in the claims tokengate forwards
/// or logs (`sub`, `jti`, `iss`, and `kid` in the header).
pub fn has_edge_whitespace(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| WHITE_SPACE.contains(&c));
    edge(s.chars().next()) || edge(s.chars().next_back())
}

/// Whether text is an RFC 6749 §3.3 scope-token: one or more printable
/// ASCII characters other than space, `"` and `\`.
pub fn scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| ('!'..='~').contains(&c) && c != '"' && c != '\\')
}

/// The `typ` values a token may declare, with their kind (true: refresh):
/// `JWT`, `at+jwt`, `rt+jwt`, case-insensitive, an `application/` prefix
/// allowed, nothing else (no white space either).
pub fn typ_kind(typ: &str) -> Option<bool> {
    let lower = typ.to_ascii_lowercase();
    let t = lower.strip_prefix("application/").unwrap_or(&lower);
    match t {
        "jwt" | "at+jwt" => Some(false),
        "rt+jwt" => Some(true),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Header and claims models
// ---------------------------------------------------------------------------

/// A model's verdict on a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judged<T> {
    /// Every rule holds: the parser must accept, and read back this.
    Accept(T),
    /// A rule is broken (named): the parser must refuse.
    Refuse(String),
    /// The rules do not say (a repeated name inside a member nobody reads).
    Open,
}

/// Every repeated member name of a JSON text, at any depth, in the order a
/// reader meets the second occurrence, as (path of the object, name); the
/// path is written as configuration errors write it (`roles`,
/// `revocation.static[1]`, empty for the top level). `None`: not JSON.
pub fn repeated_members(json: &[u8]) -> Option<Vec<(String, String)>> {
    use serde::de::{DeserializeSeed, SeqAccess};
    use std::cell::RefCell;

    struct At<'r> {
        path: String,
        found: &'r RefCell<Vec<(String, String)>>,
    }
    impl At<'_> {
        fn child(&self, step: String) -> At<'_> {
            let path = if self.path.is_empty() {
                step.trim_start_matches('.').to_owned()
            } else {
                format!("{}{step}", self.path)
            };
            At {
                path,
                found: self.found,
            }
        }
    }
    impl<'de> DeserializeSeed<'de> for At<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for At<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0usize;
            while seq
                .next_element_seed(self.child(format!("[{i}]")))?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(name) = map.next_key::<String>()? {
                if !seen.insert(name.clone()) {
                    self.found
                        .borrow_mut()
                        .push((self.path.clone(), name.clone()));
                }
                map.next_value_seed(self.child(format!(".{name}")))?;
            }
            Ok(())
        }
    }

    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(json);
    At {
        path: String::new(),
        found: &found,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    Some(found.into_inner())
}

/// What a header parse must read back: `alg`, `kid`, `typ` kind.
pub type HeaderReading = (String, Option<String>, Option<bool>);

/// The token profile's rules for a protected header, on the document: one
/// JSON object, no repeated member name, `alg` one of HS256/HS384/HS512, no
/// `crit`, `kid` a string without control characters or white space at an
/// end, `typ` one of the accepted types; other members anything.
pub fn header_model(json: &[u8]) -> Judged<HeaderReading> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return Judged::Refuse("not JSON".into());
    };
    let Some(map) = value.as_object() else {
        return Judged::Refuse("not an object".into());
    };
    let Some(repeats) = repeated_members(json) else {
        return Judged::Refuse("not JSON".into());
    };
    if repeats.iter().any(|(path, _)| path.is_empty()) {
        return Judged::Refuse("a repeated member".into());
    }
    let alg = match map.get("alg").map(|a| a.as_str()) {
        Some(Some(a @ ("HS256" | "HS384" | "HS512"))) => a.to_owned(),
        _ => return Judged::Refuse("alg".into()),
    };
    if map.contains_key("crit") {
        return Judged::Refuse("crit".into());
    }
    let kid = match map.get("kid") {
        None => None,
        Some(serde_json::Value::String(k)) if !has_controls(k) && !has_edge_whitespace(k) => {
            Some(k.clone())
        }
        Some(_) => return Judged::Refuse("kid".into()),
    };
    let typ = match map.get("typ") {
        None => None,
        Some(t) => match t.as_str().and_then(typ_kind) {
            Some(kind) => Some(kind),
            None => return Judged::Refuse("typ".into()),
        },
    };
    if repeats.is_empty() {
        Judged::Accept((alg, kid, typ))
    } else {
        Judged::Open
    }
}

/// The `cnf` a claims parse must read back: `Some(thumbprint)` for exactly
/// `{"x5t#S256": …}`, `None` for any other object.
pub type CnfReading = Option<String>;

/// What a claims parse must read back, member by member.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClaimsReading {
    pub dates: [Option<f64>; 3],
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub jti: Option<String>,
    pub aud: Option<Vec<String>>,
    pub scope: Option<Vec<String>>,
    pub scp: Option<Vec<String>>,
    pub role: Option<String>,
    pub roles: Option<Vec<String>>,
    pub token_use: Option<String>,
    pub cnf: Option<CnfReading>,
}

/// The largest NumericDate, 2^53.
pub const MAX_DATE: f64 = 9_007_199_254_740_992.0;

/// The claim rules of the token profile (see `fuzz/README.md`), on the
/// document: one JSON object without repeated names; `exp`, `nbf`, `iat`
/// numbers within 0..=2^53; `iss`, `sub`, `jti` strings without control
/// characters or white space at an end; `token_use` a string without
/// control characters; `aud` a string or an array of strings without
/// control characters (and, when `aud` is forwarded joined, none empty or
/// holding a space); `scope` scope-tokens separated by single spaces; `scp`
/// and `roles` arrays of scope-tokens, `role` one; `cnf` an object (a
/// member `x5t#S256` a string without controls; its names not repeated);
/// each `extra` claim: a string without controls, an array of them (not
/// empty and without a space when joined), or anything else. Unknown
/// claims are anything.
pub fn claims_model(json: &[u8], extra: &[&str], joined: &[&str]) -> Judged<ClaimsReading> {
    use serde_json::Value;
    let Ok(value) = serde_json::from_slice::<Value>(json) else {
        return Judged::Refuse("not JSON".into());
    };
    let Some(map) = value.as_object() else {
        return Judged::Refuse("not an object".into());
    };
    let Some(repeats) = repeated_members(json) else {
        return Judged::Refuse("not JSON".into());
    };
    if let Some((path, name)) = repeats
        .iter()
        .find(|(path, _)| path.is_empty() || path == "cnf")
    {
        return Judged::Refuse(format!("{path}: {name} repeated"));
    }
    let refuse = |name: &str| Judged::Refuse(format!("{name}: breaks its rule"));
    let date = |v: &Value| -> Option<f64> {
        let n = v.as_number()?;
        if let Some(u) = n.as_u64() {
            return (u <= 1 << 53).then_some(u as f64);
        }
        if n.is_i64() {
            return None; // negative
        }
        let f = n.as_f64()?;
        (f.is_finite() && (0.0..=MAX_DATE).contains(&f)).then_some(f)
    };
    let logged = |v: &Value| -> Option<String> {
        let s = v.as_str()?;
        (!has_controls(s) && !has_edge_whitespace(s)).then(|| s.to_owned())
    };
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|i| i.as_str().filter(|s| !has_controls(s)).map(str::to_owned))
            .collect()
    };
    let scope_tokens = |v: &Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|i| i.as_str().filter(|s| scope_token(s)).map(str::to_owned))
            .collect()
    };
    let joinable = |list: &[String]| list.iter().all(|s| !s.is_empty() && !s.contains(' '));

    let mut r = ClaimsReading::default();
    for (name, v) in map {
        let ok = match name.as_str() {
            "exp" | "nbf" | "iat" => {
                let i = ["exp", "nbf", "iat"]
                    .iter()
                    .position(|n| n == name)
                    .unwrap_or(0);
                r.dates[i] = date(v);
                r.dates[i].is_some()
            }
            "iss" => {
                r.iss = logged(v);
                r.iss.is_some()
            }
            "sub" => {
                r.sub = logged(v);
                r.sub.is_some()
            }
            "jti" => {
                r.jti = logged(v);
                r.jti.is_some()
            }
            "token_use" => {
                r.token_use = v.as_str().filter(|s| !has_controls(s)).map(str::to_owned);
                r.token_use.is_some()
            }
            "role" => {
                r.role = v.as_str().filter(|s| scope_token(s)).map(str::to_owned);
                r.role.is_some()
            }
            "aud" => {
                r.aud = match v {
                    Value::String(s) if !has_controls(s) => Some(vec![s.clone()]),
                    other => strings(other),
                }
                .filter(|list| !joined.contains(&"aud") || joinable(list));
                r.aud.is_some()
            }
            "scope" => {
                r.scope = v.as_str().and_then(|s| {
                    s.split(' ')
                        .map(|t| scope_token(t).then(|| t.to_owned()))
                        .collect()
                });
                r.scope.is_some()
            }
            "scp" => {
                r.scp = scope_tokens(v);
                r.scp.is_some()
            }
            "roles" => {
                r.roles = scope_tokens(v);
                r.roles.is_some()
            }
            "cnf" => match v.as_object() {
                None => false,
                Some(cnf) => match cnf.get("x5t#S256") {
                    None => {
                        r.cnf = Some(None);
                        true
                    }
                    Some(Value::String(t)) if !has_controls(t) => {
                        r.cnf = Some((cnf.len() == 1).then(|| t.clone()));
                        true
                    }
                    Some(_) => false,
                },
            },
            other if extra.contains(&other) => match v {
                Value::String(s) => !has_controls(s),
                Value::Array(items) if items.iter().all(Value::is_string) => {
                    strings(v).is_some_and(|list| !joined.contains(&other) || joinable(&list))
                }
                _ => true,
            },
            _ => true,
        };
        if !ok {
            return refuse(name);
        }
    }
    if repeats.is_empty() {
        Judged::Accept(r)
    } else {
        Judged::Open
    }
}

// ---------------------------------------------------------------------------
// Path normalization model
// ---------------------------------------------------------------------------

/// The path normalization of `fuzz/README.md` written as a segment stack,
/// independently of `policy::normalize_path` (which edits one output buffer
/// in place): cut at `?`/`#`; must start with `/`; per segment, escapes
/// checked and unreserved ones decoded (others kept, hex upper-cased), `;`
/// parameters cut, and a segment that is `.` or `..` once they are cut
/// refused (`..;`, `%2e%2e;x`, `.;`: an upstream may resolve it or take it
/// literally); empty and `.` segments dropped, `..` pops (above the root is
/// an error); a trailing slash kept when the last segment was empty, `.` or
/// `..`. The first error in left-to-right order wins (a dot segment's at
/// its `;`), as in the library.
pub fn reference_normalize(raw: &[u8]) -> Result<String, PathError> {
    let end = raw
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(raw.len());
    let path = &raw[..end];
    let Some((&b'/', rest)) = path.split_first() else {
        return Err(PathError::NotAbsolute);
    };
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut trailing = false;
    for segment in rest.split(|&b| b == b'/') {
        let decoded = reference_segment(segment)?;
        match decoded.as_slice() {
            b"" | b"." => trailing = true,
            b".." => {
                if stack.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing = true;
            }
            _ => {
                stack.push(decoded);
                trailing = false;
            }
        }
    }
    let mut out = Vec::new();
    for segment in &stack {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if out.is_empty() || trailing {
        out.push(b'/');
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

fn reference_segment(segment: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::new();
    let mut params = false;
    let mut i = 0;
    while i < segment.len() {
        let b = segment[i];
        if b == b'%' {
            let hex = |j: usize| segment.get(j).and_then(|c| (*c as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                return Err(PathError::InvalidEscape);
            };
            let v = (hi * 16 + lo) as u8;
            match v {
                b'/' => return Err(PathError::EncodedSlash),
                b'\\' => return Err(PathError::EncodedBackslash),
                0 => return Err(PathError::EncodedNul),
                0xc0 | 0xc1 => return Err(PathError::Overlong),
                _ if params => {}
                _ if v.is_ascii_alphanumeric() || b"-._~".contains(&v) => out.push(v),
                _ => out.extend_from_slice(format!("%{v:02X}").as_bytes()),
            }
            i += 3;
            continue;
        }
        match b {
            b'\\' => return Err(PathError::Backslash),
            b';' if !params => {
                if out == b"." || out == b".." {
                    return Err(PathError::DotParameters);
                }
                params = true;
            }
            _ if params => {}
            _ => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

/// Properties of a normalized path on its own: it starts with `/`; it has
/// no `//`, no `.` or `..` segment (so it never climbs out of the root), no
/// `?`, `#` or backslash; it is no longer than the path it came from.
pub fn normalized_shape(input_len: usize, normalized: &str) -> Result<(), String> {
    if !normalized.starts_with('/') {
        return Err(format!("{normalized:?} does not start with '/'"));
    }
    if normalized.contains("//") {
        return Err(format!("{normalized:?} holds '//'"));
    }
    if let Some(seg) = normalized.split('/').find(|s| *s == "." || *s == "..") {
        return Err(format!("{normalized:?} holds a {seg:?} segment"));
    }
    if let Some(c) = normalized.chars().find(|c| matches!(c, '?' | '#' | '\\')) {
        return Err(format!("{normalized:?} holds {c:?}"));
    }
    if normalized.len() > input_len.max(1) {
        return Err(format!(
            "{normalized:?} is longer than its input ({input_len} bytes)"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Revocation model
// ---------------------------------------------------------------------------

/// The revocation set as plain collections: what a snapshot or a static
/// list must answer. Both keep every entry, whatever its `exp`: a token
/// stays valid until its `exp` plus the filter's clock skew, which the
/// service cannot know, so dropping entries is the publisher's job.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct RevocationModel {
    pub jti: HashSet<String>,
    pub kid: HashSet<String>,
    /// `None`: every token of the subject; `Some(b)`: those issued before b.
    pub sub: HashMap<String, Option<u64>>,
}

impl RevocationModel {
    /// The model of `entries`: all of them, expired or not.
    pub fn new(entries: &[Entry]) -> RevocationModel {
        let mut m = RevocationModel::default();
        for e in entries {
            match e {
                Entry::Jti { jti, .. } => {
                    m.jti.insert(jti.clone());
                }
                Entry::Kid { kid, .. } => {
                    m.kid.insert(kid.clone());
                }
                Entry::Sub { sub, before, .. } => {
                    let merged = match m.sub.get(sub) {
                        None => *before,
                        // No `before` (all tokens) beats any; else the later.
                        Some(None) => None,
                        Some(Some(kept)) => before.map(|b| b.max(*kept)),
                    };
                    m.sub.insert(sub.clone(), merged);
                }
            }
        }
        m
    }

    pub fn len(&self) -> usize {
        self.jti.len() + self.kid.len() + self.sub.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// By jti, by kid, by sub (before B: `iat` < B, or no `iat`; a
    /// negative or NaN `iat` counts as issued before, a fault never
    /// un-revokes).
    pub fn is_revoked(&self, t: &TokenRef<'_>) -> bool {
        t.jti.is_some_and(|j| self.jti.contains(j))
            || self.kid.contains(t.kid)
            || t.sub
                .and_then(|s| self.sub.get(s))
                .is_some_and(|before| match (before, t.iat) {
                    (None, _) | (Some(_), None) => true,
                    (Some(_), Some(iat)) if iat.is_nan() || iat < 0.0 => true,
                    (Some(b), Some(iat)) => issued_before_exact(iat, *b),
                })
    }

    /// Whether some member of the model shares a 96-bit fingerprint with a
    /// value of the token while differing from it: the only way a snapshot
    /// may answer "revoked" where the model says no (probability ~2^-96).
    pub fn collides(&self, t: &TokenRef<'_>) -> bool {
        fn hits<'m>(
            kind: Kind,
            value: &str,
            mut members: impl Iterator<Item = &'m String>,
        ) -> bool {
            let fp = fingerprint(kind, value);
            members.any(|m| m != value && fingerprint(kind, m) == fp)
        }
        t.jti.is_some_and(|j| hits(Kind::Jti, j, self.jti.iter()))
            || hits(Kind::Kid, t.kid, self.kid.iter())
            || t.sub.is_some_and(|s| hits(Kind::Sub, s, self.sub.keys()))
    }
}

/// `iat < before` exactly, for finite `iat` >= 0: compared as rationals via
/// the integer part (exact for an integer `before`).
fn issued_before_exact(iat: f64, before: u64) -> bool {
    if iat.is_infinite() {
        return false;
    }
    let whole = iat.floor();
    if whole >= 18_446_744_073_709_551_616.0 {
        return false;
    }
    (whole as u128) < u128::from(before)
}

// ---------------------------------------------------------------------------
// Configuration error oracle
// ---------------------------------------------------------------------------

/// Top-level fields of the filter configuration (`config::RawConfig`).
pub const FILTER_FIELDS: [&str; 16] = [
    "realm",
    "keys",
    "issuers",
    "audiences",
    "clock_skew_s",
    "max_lifetime_s",
    "require_claims",
    "max_token_bytes",
    "token_sources",
    "forward_token",
    "claims_to_headers",
    "roles",
    "require_tls",
    "rules",
    "revocation",
    "refresh",
];

/// Top-level fields of the revocation service configuration
/// (`config::RawService`).
pub const SERVICE_FIELDS: [&str; 7] = [
    "cluster",
    "authority",
    "path",
    "poll_interval_s",
    "timeout_ms",
    "max_bytes",
    "verify_key",
];

/// How serde's and serde_json's own messages begin (serde `de::Error`
/// constructors, serde_json's syntax error codes).
pub const SERDE_MESSAGE_STARTS: [&str; 26] = [
    "invalid type: ",
    "invalid value: ",
    "invalid length ",
    "unknown variant ",
    "unknown field ",
    "missing field ",
    "duplicate field ",
    "EOF while parsing",
    "expected ",
    "invalid escape",
    "invalid number",
    "number out of range",
    "invalid unicode code point",
    "control character",
    "key must be a string",
    "key must be ",
    "lone leading surrogate",
    "unexpected end of hex escape",
    "trailing comma",
    "trailing characters",
    "recursion limit exceeded",
    "float key must be finite",
    "data did not match",
    "unexpected ",
    "invalid ",
    "string ",
];

/// The first segment of a JSON path (`keys` of `keys[1].alg`).
pub fn first_segment(path: &str) -> &str {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    &path[..end]
}

/// The inline secrets of a configuration document: `keys[i].secret` and
/// `verify_key.secret`, for rewriting in place.
fn inline_secrets_mut(value: &mut serde_json::Value) -> Vec<&mut String> {
    let mut out = Vec::new();
    let serde_json::Value::Object(map) = value else {
        return out;
    };
    for (name, field) in map.iter_mut() {
        match (name.as_str(), field) {
            ("keys", serde_json::Value::Array(keys)) => {
                for key in keys {
                    if let Some(serde_json::Value::String(s)) = key.get_mut("secret") {
                        out.push(s);
                    }
                }
            }
            ("verify_key", key) => {
                if let Some(serde_json::Value::String(s)) = key.get_mut("secret") {
                    out.push(s);
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether the document has an inline secret with a letter or digit in it.
pub fn has_inline_secret(value: &serde_json::Value) -> bool {
    let mut value = value.clone();
    inline_secrets_mut(&mut value)
        .iter()
        .any(|s| s.chars().any(|c| c.is_ascii_alphanumeric()))
}

/// The document with every inline secret's letters and digits rotated
/// within their class (A-Z, a-z, 0-9): same length, same base64 validity
/// and padding, same decoded length, other content. An error message that
/// differs between the two documents depends on a secret's content: it
/// leaks the secret.
pub fn rotate_secrets(value: &serde_json::Value) -> serde_json::Value {
    fn rotate(c: char) -> char {
        let shift = |base: u8, n: u8| char::from(base + (c as u8 - base + 7) % n);
        match c {
            'A'..='Z' => shift(b'A', 26),
            'a'..='z' => shift(b'a', 26),
            '0'..='9' => shift(b'0', 10),
            other => other,
        }
    }
    let mut value = value.clone();
    for secret in inline_secrets_mut(&mut value) {
        *secret = secret.chars().map(rotate).collect();
    }
    value
}

// ---------------------------------------------------------------------------
// `:authority` model and lenient upstream readings
// ---------------------------------------------------------------------------

/// The strict `:authority` grammar, written from its rules: a host — a
/// name of labels of ASCII letters, digits, `-` and `_`, each 1 to 63
/// bytes, 253 bytes in all, no empty label (so no trailing dot), which
/// covers IPv4; or `[` an IPv6 address (as `std` reads one) `]` — then
/// optionally `:` and a port of 1 to 5 digits up to 65535; nothing else
/// (no userinfo). `Ok`: the host lower-cased and the port text. `Err`:
/// every reason that applies (the library reports one of them).
pub fn authority_model(raw: &[u8]) -> Result<(String, Option<String>), Vec<AuthorityError>> {
    use std::net::Ipv6Addr;
    if raw.is_empty() {
        return Err(vec![AuthorityError::Empty]);
    }
    let mut why = Vec::new();
    if raw.contains(&b'@') {
        why.push(AuthorityError::Userinfo);
    }
    let (host, port): (&[u8], Option<&[u8]>) = if raw[0] == b'[' {
        match raw.iter().position(|&b| b == b']') {
            None => {
                why.push(AuthorityError::BadIpv6);
                (raw, None)
            }
            Some(close) => {
                let v6 = std::str::from_utf8(&raw[1..close])
                    .ok()
                    .and_then(|t| t.parse::<Ipv6Addr>().ok());
                if v6.is_none() {
                    why.push(AuthorityError::BadIpv6);
                }
                let (host, rest) = raw.split_at(close + 1);
                match rest {
                    [] => (host, None),
                    [b':', port @ ..] => (host, Some(port)),
                    _ => {
                        why.push(AuthorityError::BadPort);
                        (host, None)
                    }
                }
            }
        }
    } else {
        let mut parts = raw.splitn(2, |&b| b == b':');
        (parts.next().unwrap_or_default(), parts.next())
    };
    if let Some(port) = port {
        let digits = port.iter().all(u8::is_ascii_digit) && (1..=5).contains(&port.len());
        // At most five digits: no overflow.
        let value = || port.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
        if !digits || value() > 65_535 {
            why.push(AuthorityError::BadPort);
        }
    }
    if host.first() != Some(&b'[') {
        let label = |l: &[u8]| {
            (1..=63).contains(&l.len())
                && l.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if host.is_empty() || host.len() > 253 || !host.split(|&b| b == b'.').all(label) {
            why.push(AuthorityError::BadHostName);
        }
    }
    if !why.is_empty() {
        return Err(why);
    }
    let host = String::from_utf8_lossy(host).to_ascii_lowercase();
    let port = port.map(|p| String::from_utf8_lossy(p).into_owned());
    Ok((host, port))
}

/// How a lenient upstream (nginx, Express and the like) reads the host of
/// an `:authority` or `Host`: userinfo before the last `@` dropped; cut at
/// the first `:` (or, with `last_colon`, the last, as a `rsplit` on the
/// port does), unless the host is bracketed, then after the `]`; one
/// trailing dot dropped; ASCII lower-cased.
pub fn lenient_host(raw: &[u8], last_colon: bool) -> Vec<u8> {
    let rest = match raw.iter().rposition(|&b| b == b'@') {
        Some(at) => &raw[at + 1..],
        None => raw,
    };
    let host = if rest.first() == Some(&b'[') {
        match rest.iter().position(|&b| b == b']') {
            Some(close) => &rest[..=close],
            None => rest,
        }
    } else {
        let colon = if last_colon {
            rest.iter().rposition(|&b| b == b':')
        } else {
            rest.iter().position(|&b| b == b':')
        };
        colon.map_or(rest, |c| &rest[..c])
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    host.to_ascii_lowercase()
}

// ---------------------------------------------------------------------------
// Refresh form model
// ---------------------------------------------------------------------------

/// The most bytes a refresh form may hold (8 KiB).
pub const FORM_MAX_BYTES: usize = 8 * 1024;
/// The most parameters a refresh form may hold.
pub const FORM_MAX_PARAMS: usize = 16;

/// The refresh form's rules, written from them: at most 8 KiB; pairs
/// separated by `&`, empty ones skipped; each `name=value` split at its
/// first `=` (none: an empty value); `+` a space and `%` two hex digits a
/// byte, decoded once; name and value UTF-8; at most 16 pairs; no name
/// twice. Read left to right: the first broken rule is the answer.
pub fn form_model(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    if body.len() > FORM_MAX_BYTES {
        return Err(FormError::TooLarge);
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for raw in body.split(|&b| b == b'&') {
        if raw.is_empty() {
            continue;
        }
        if pairs.len() >= FORM_MAX_PARAMS {
            return Err(FormError::TooManyParameters);
        }
        let (name, value) = match raw.iter().position(|&b| b == b'=') {
            Some(eq) => (&raw[..eq], &raw[eq + 1..]),
            None => (raw, &raw[raw.len()..]),
        };
        let name = form_component(name).ok_or(FormError::BadEncoding)?;
        let value = form_component(value).ok_or(FormError::BadEncoding)?;
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(FormError::Repeated);
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// One form component decoded: `+` is a space, `%` and two hex digits a
/// byte; the bytes must be UTF-8.
pub fn form_component(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                // `from_str_radix` alone would take "+1".
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Pairs written back as a form: unreserved bytes as they are, a space as
/// `+` (or `%20` when `plus` is false), everything else `%XX`.
pub fn form_encode(pairs: &[(String, String)], plus: bool) -> String {
    fn push(out: &mut String, text: &str, plus: bool) {
        for b in text.bytes() {
            match b {
                b' ' if plus => out.push('+'),
                b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => out.push(char::from(b)),
                b => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push(&mut out, name, plus);
        out.push('=');
        push(&mut out, value, plus);
    }
    out
}

// ---------------------------------------------------------------------------
// Path readings and rule matching model
// ---------------------------------------------------------------------------

/// The other paths common upstream frameworks route a normalized path to,
/// written from their rules: ASCII letters lower-cased (the hex digits of
/// `%XX` escapes kept), one trailing slash dropped (not from `/`), the
/// extension of the last segment dropped (from its first `.` that is not
/// its first character), and every combination; the path itself left out.
pub fn readings_model(path: &str) -> BTreeSet<String> {
    fn lower(path: &str) -> String {
        let b = path.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let end = (i + 3).min(b.len());
                out.extend_from_slice(&b[i..end]);
                i = end;
            } else {
                out.push(b[i].to_ascii_lowercase());
                i += 1;
            }
        }
        String::from_utf8(out).unwrap_or_default()
    }
    fn unslash(path: &str) -> String {
        match path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p.to_owned(),
            _ => path.to_owned(),
        }
    }
    fn bare(path: &str) -> String {
        let (dir, last) = path.rsplit_once('/').unwrap_or(("", path));
        match last.char_indices().skip(1).find(|(_, c)| *c == '.') {
            Some((dot, _)) => format!("{dir}/{}", &last[..dot]),
            None => path.to_owned(),
        }
    }
    /// What follows the first segment naming a script, when more than `/`
    /// does: the segment with every `%XX` decoded, in lower case, is
    /// `….php` (or another extension a stock server runs with PATH_INFO)
    /// followed by any run of `.`, ` ` and `::$data` (Windows).
    fn behind_front_controller(path: &str) -> Option<String> {
        fn decoded(segment: &str) -> Vec<u8> {
            let b = segment.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
                if b[i] == b'%' && i + 2 < b.len() {
                    if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                        out.push(h * 16 + l);
                        i += 3;
                        continue;
                    }
                }
                out.push(b[i]);
                i += 1;
            }
            out.to_ascii_lowercase()
        }
        /// The name as Windows opens it: decoded, in lower case, without
        /// trailing dots, spaces, `::$data` and the directory streams.
        fn windows_name(segment: &str) -> Vec<u8> {
            let mut name = decoded(segment);
            loop {
                if name.ends_with(b".") || name.ends_with(b" ") {
                    name.pop();
                } else if name.ends_with(b"::$data") {
                    name.truncate(name.len() - 7);
                } else if name.ends_with(b":$i30:$index_allocation") {
                    name.truncate(name.len() - 23);
                } else if name.ends_with(b"::$index_allocation") {
                    name.truncate(name.len() - 19);
                } else {
                    return name;
                }
            }
        }
        fn names_script(segment: &str) -> bool {
            // Any extension of the name, not only the last.
            windows_name(segment)
                .split(|b| *b == b'.')
                .skip(1)
                .any(|part| {
                    [
                        "php", "php3", "php4", "php5", "php7", "php8", "phtml", "pht", "phar",
                        "cgi", "fcgi", "pl", "py", "wsgi", "aspx", "ashx", "asmx", "svc", "xamlx",
                        "rem", "soap", "cshtml", "vbhtml", "asp", "asa", "cer", "cdx", "cfm",
                        "cfml", "cfc", "dll", "exe", "shtml",
                    ]
                    .iter()
                    .any(|ext| part == ext.as_bytes())
                })
        }
        let mut offset = 0;
        let mut after_cgi_bin = false;
        for segment in path.split('/') {
            offset += segment.len();
            // Every file under /cgi-bin/ is a script.
            if !segment.is_empty() && (after_cgi_bin || names_script(segment)) {
                let rest = &path[offset..];
                return (rest.len() > 1).then(|| rest.to_owned());
            }
            // cgi-bin or htbin as Windows names a directory; cgi-bin's 8.3
            // short name.
            let dir = windows_name(segment);
            after_cgi_bin = dir == b"cgi-bin"
                || dir == b"htbin"
                || (dir.len() > 7
                    && dir.starts_with(b"cgi-bi~")
                    && dir[7..].iter().all(u8::is_ascii_digit));
            offset += 1;
        }
        None
    }
    /// Without the white space at its end (every `char::is_whitespace`,
    /// every character up to U+0020, U+180E, U+FEFF; each written raw or as upper-case
    /// `%XX` escapes, as a normalized path holds them), when some is there
    /// and something is left.
    fn trimmed(path: &str) -> Option<String> {
        static FORMS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let forms = FORMS.get_or_init(|| {
            (0..=0x10FFFFu32)
                .filter_map(char::from_u32)
                .filter(|c| c.is_whitespace() || *c <= ' ' || matches!(*c, '\u{180e}' | '\u{feff}'))
                .flat_map(|c| {
                    let raw = c.to_string();
                    let escaped: String = raw.bytes().map(|b| format!("%{b:02X}")).collect();
                    [raw, escaped]
                })
                .collect()
        });
        let mut p = path;
        while let Some(shorter) = forms.iter().find_map(|f| p.strip_suffix(f.as_str())) {
            p = shorter;
        }
        (p.len() < path.len() && !p.is_empty()).then(|| p.to_owned())
    }
    let mut starts = vec![path.to_owned()];
    starts.extend(behind_front_controller(path));
    let mut trims: Vec<String> = Vec::new();
    for s in &starts {
        trims.extend(trimmed(s));
        trims.extend(s.strip_suffix('/').and_then(trimmed));
    }
    starts.extend(trims);
    let mut out = BTreeSet::new();
    for start in &starts {
        for a in [start.clone(), lower(start)] {
            for b in [a.clone(), unslash(&a)] {
                // White space before a dropped extension.
                if bare(&b) != b {
                    out.extend(trimmed(&bare(&b)));
                }
                out.insert(bare(&b));
                out.insert(b);
            }
        }
    }
    out.remove(path);
    out
}

/// A rule's `match` on its own, written from the rules: `Exact` equal;
/// `Prefix` the prefix itself or below it on a segment boundary (a prefix
/// ending in `/` fits what starts with it); methods listed (exactly);
/// hosts: one pattern fits, exactly or as `*.` suffix (the host longer than
/// the suffix).
pub fn fits_model(m: &Match, path: &str, method: &str, host: &str) -> bool {
    let path_fits = match &m.path {
        PathMatch::Any => true,
        PathMatch::Exact(p) => p == path,
        PathMatch::Prefix(p) => {
            path == p
                || (path.len() > p.len()
                    && path.starts_with(p.as_str())
                    && (p.ends_with('/') || path.as_bytes()[p.len()] == b'/'))
        }
    };
    let method_fits = m
        .methods
        .as_ref()
        .is_none_or(|ms| ms.iter().any(|x| x == method));
    let host_fits = m.hosts.as_ref().is_none_or(|hs| {
        hs.iter().any(|h| match h {
            HostPattern::Exact(name) => name == host,
            HostPattern::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        })
    });
    path_fits && method_fits && host_fits
}

/// The first rule whose `match` fits, by [`fits_model`].
pub fn first_match_model<'r>(
    rules: &'r [Rule],
    path: &str,
    method: &str,
    host: &str,
) -> Option<&'r Rule> {
    rules
        .iter()
        .find(|r| fits_model(&r.matcher, path, method, host))
}
