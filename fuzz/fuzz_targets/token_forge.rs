//! Structured tokens: header and payload JSON built from fuzz data, signed
//! with a real configured key (or a rogue one, or a real key under another
//! hash), then mutated.
//!
//! Properties, against the two-key configuration (`k1` HS256, `k2` HS512):
//! * completeness: the unmutated token is accepted by `token::verify`
//!   exactly when the oracle says it should be: its `kid` names a
//!   configured key, its header `alg` is that key's, it was signed with
//!   that key's secret under that key's hash, and header and claims are
//!   well-formed under the token profile's syntax rules (`kid`, `sub`,
//!   `iss`, `jti` without control characters — C0, DEL, C1, U+2028,
//!   U+2029 — or white space at an end; `aud` without control characters;
//!   `scope`, `role`, `roles` scope-tokens; `cnf`, when written, an
//!   object); and the claims read back are the ones written, `cnf` as
//!   the binding written (exactly `{"x5t#S256": …}`, or unsupported);
//! * a mutated token (bit flips, byte edits, truncation, segment swaps)
//!   whose text differs from the signed one is never accepted, by
//!   `token::verify` or by `Config::decide`;
//! * an allowed request forwards the `sub` that was signed, and a token
//!   with any `cnf` is never allowed on a connection without a client
//!   certificate (`x5t#S256` cannot match, any other binding cannot be
//!   enforced).
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use tokengate::gate::{Decision, FixedConnection, Request, Revocations};
use tokengate::keys::Alg;
use tokengate::token::{self, Binding};
use tokengate_fuzz::{
    accepted_token_is_genuine, has_controls, has_edge_whitespace, scope_token, sign_compact,
    two_key_fixture, typ_kind, Fixture, K1_SECRET, K2_SECRET, NOW, ROGUE_SECRET,
};

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(two_key_fixture)
}

#[derive(Arbitrary, Debug)]
enum HeaderAlg {
    Hs256,
    Hs384,
    Hs512,
    None,
    Rs256,
    Absent,
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Kid {
    K1,
    K2,
    Absent,
    Text(String),
    Number(i32),
}

#[derive(Arbitrary, Debug)]
enum Secret {
    K1,
    K2,
    Rogue,
}

#[derive(Arbitrary, Debug)]
enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Strs(Vec<String>),
}

impl Scalar {
    fn json(&self) -> Value {
        match self {
            Scalar::Str(s) => json!(s),
            Scalar::Int(i) => json!(i),
            Scalar::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Scalar::Bool(b) => json!(b),
            Scalar::Null => Value::Null,
            Scalar::Strs(list) => json!(list),
        }
    }
}

/// A `cnf` claim (RFC 7800).
#[derive(Arbitrary, Debug)]
enum Cnf {
    /// `{"x5t#S256": …}`: bound to a client certificate.
    X5t(String),
    /// `{"x5t#S256": …, name: …}`: another member beside it.
    X5tAnd(String, String, Scalar),
    /// `{"jkt": …}` (RFC 9449).
    Jkt(String),
    /// `{}`.
    Empty,
    /// Not an object.
    NotObject(Scalar),
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    FlipBit {
        at: u16,
        bit: u8,
    },
    SetByte {
        at: u16,
        byte: u8,
    },
    Remove {
        at: u16,
    },
    Insert {
        at: u16,
        byte: u8,
    },
    Truncate {
        len: u16,
    },
    /// Swap two of the three segments.
    SwapSegments {
        a: u8,
        b: u8,
    },
    /// Replace the payload segment by another, re-encoded.
    ReplacePayload(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    alg: HeaderAlg,
    kid: Kid,
    typ: Option<String>,
    crit: bool,
    header_extra: Vec<(String, Scalar)>,
    sub: Option<String>,
    iss: Option<String>,
    jti: Option<String>,
    scope: Option<Vec<String>>,
    role: Option<String>,
    roles: Option<Vec<String>>,
    cnf: Option<Cnf>,
    exp: Option<u32>,
    iat: Option<u32>,
    nbf: Option<u32>,
    aud: Option<Vec<String>>,
    payload_extra: Vec<(String, Scalar)>,
    secret: Secret,
    /// The hash signed under; the key's own when it equals the key's.
    sign_alg: u8,
    mutations: Vec<Mutation>,
}

/// Names whose value the header or payload parser reads: extra members
/// never take them (each has its own field above).
const READ_NAMES: [&str; 18] = [
    "alg",
    "kid",
    "typ",
    "crit",
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
    "tenant",
];

fuzz_target!(|input: Input| {
    let f = fixture();
    let mut ok = true; // the oracle's verdict on the unmutated token

    let mut header = Map::new();
    for (name, value) in &input.header_extra {
        if !READ_NAMES.contains(&name.as_str()) {
            header.insert(name.clone(), value.json());
        }
    }
    let header_alg = match &input.alg {
        HeaderAlg::Hs256 => Some("HS256".to_owned()),
        HeaderAlg::Hs384 => Some("HS384".to_owned()),
        HeaderAlg::Hs512 => Some("HS512".to_owned()),
        HeaderAlg::None => Some("none".to_owned()),
        HeaderAlg::Rs256 => Some("RS256".to_owned()),
        HeaderAlg::Absent => None,
        HeaderAlg::Text(t) => Some(t.clone()),
    };
    match &header_alg {
        Some(a) => {
            header.insert("alg".into(), json!(a));
        }
        None => ok = false,
    }
    let kid: Option<String> = match &input.kid {
        Kid::K1 => Some("k1".into()),
        Kid::K2 => Some("k2".into()),
        Kid::Absent => None, // two keys configured: a kid is required
        Kid::Text(t) => Some(t.clone()),
        Kid::Number(n) => {
            header.insert("kid".into(), json!(n));
            ok = false;
            None
        }
    };
    if let Some(k) = &kid {
        header.insert("kid".into(), json!(k));
        ok &= !has_controls(k) && !has_edge_whitespace(k);
    } else if !matches!(input.kid, Kid::Number(_)) {
        ok = false;
    }
    let key = kid
        .as_deref()
        .and_then(|k| f.keys.iter().find(|key| key.kid == k));
    ok &= key.is_some();
    ok &= key.is_some_and(|k| header_alg.as_deref() == Some(k.alg.name()));
    if let Some(typ) = &input.typ {
        header.insert("typ".into(), json!(typ));
        ok &= typ_kind(typ).is_some();
    }
    if input.crit {
        header.insert("crit".into(), json!(["exp"]));
        ok = false;
    }

    let mut payload = Map::new();
    for (name, value) in &input.payload_extra {
        if !READ_NAMES.contains(&name.as_str()) {
            payload.insert(name.clone(), value.json());
        }
    }
    for (name, value) in [
        ("sub", &input.sub),
        ("iss", &input.iss),
        ("jti", &input.jti),
    ] {
        if let Some(v) = value {
            payload.insert(name.into(), json!(v));
            ok &= !has_controls(v) && !has_edge_whitespace(v);
        }
    }
    if let Some(aud) = &input.aud {
        payload.insert("aud".into(), json!(aud));
        ok &= !aud.iter().any(|s| has_controls(s));
    }
    if let Some(role) = &input.role {
        payload.insert("role".into(), json!(role));
        ok &= scope_token(role);
    }
    if let Some(roles) = &input.roles {
        payload.insert("roles".into(), json!(roles));
        ok &= roles.iter().all(|r| scope_token(r));
    }
    if let Some(scope) = &input.scope {
        // Joined with single spaces: each part must be a scope-token (an
        // empty part is a doubled, leading or trailing space).
        let joined = scope.join(" ");
        ok &= joined.split(' ').all(scope_token);
        payload.insert("scope".into(), json!(joined));
    }
    // The binding read back: None (no cnf), Some(Some(t)) bound to t,
    // Some(None) unsupported.
    let mut binding: Option<Option<String>> = None;
    if let Some(cnf) = &input.cnf {
        let (value, read) = match cnf {
            Cnf::X5t(t) => (json!({"x5t#S256": t}), Some(t.clone())),
            Cnf::X5tAnd(t, name, v) if name != "x5t#S256" => {
                (json!({"x5t#S256": t, name.as_str(): v.json()}), None)
            }
            Cnf::X5tAnd(t, _, _) => (json!({"x5t#S256": t}), Some(t.clone())),
            Cnf::Jkt(t) => (json!({"jkt": t}), None),
            Cnf::Empty => (json!({}), None),
            Cnf::NotObject(v) => {
                ok = false;
                (v.json(), None)
            }
        };
        if let Cnf::X5t(t) | Cnf::X5tAnd(t, ..) = cnf {
            ok &= !has_controls(t);
        }
        payload.insert("cnf".into(), value);
        binding = Some(read);
    }
    for (name, value) in [("exp", input.exp), ("iat", input.iat), ("nbf", input.nbf)] {
        if let Some(v) = value {
            payload.insert(name.into(), json!(v));
        }
    }

    let (secret, secret_alg): (&[u8], Option<Alg>) = match input.secret {
        Secret::K1 => (K1_SECRET, Some(Alg::Hs256)),
        Secret::K2 => (K2_SECRET, Some(Alg::Hs512)),
        Secret::Rogue => (ROGUE_SECRET, None),
    };
    let sign_alg = match input.sign_alg % 3 {
        0 => Alg::Hs256,
        1 => Alg::Hs384,
        _ => Alg::Hs512,
    };
    // The right secret under the right hash, for the key the kid names.
    ok &= key.is_some_and(|k| Some(k.alg) == secret_alg && k.alg == sign_alg);

    let header_text = Value::Object(header).to_string();
    let payload_text = Value::Object(payload.clone()).to_string();
    let signed = sign_compact(
        header_text.as_bytes(),
        payload_text.as_bytes(),
        sign_alg,
        secret,
    );
    ok &= signed.len() <= f.config.max_token_bytes();

    let result = token::verify(
        &signed,
        f.config.keys(),
        f.config.max_token_bytes(),
        f.config.claim_spec(),
    );
    match &result {
        Ok(v) => {
            assert!(ok, "accepted a token the oracle refuses: header {header_text} payload {payload_text}");
            accepted_token_is_genuine(&signed, &f.keys).unwrap_or_else(|e| panic!("{e}"));
            let c = v.claims();
            assert_eq!(c.sub.as_deref(), input.sub.as_deref(), "sub read back differs");
            assert_eq!(c.jti.as_deref(), input.jti.as_deref(), "jti read back differs");
            assert_eq!(c.iss.as_deref(), input.iss.as_deref(), "iss read back differs");
            assert_eq!(c.exp.map(|d| d.get()), input.exp.map(f64::from), "exp read back differs");
            assert_eq!(c.aud, input.aud, "aud read back differs");
            assert_eq!(c.role, input.role, "role read back differs");
            assert_eq!(c.roles, input.roles, "roles read back differs");
            let cnf = c.cnf.as_ref().map(|b| match b {
                Binding::X5tS256(t) => Some(t.clone()),
                Binding::Unsupported => None,
            });
            assert_eq!(cnf, binding, "cnf read back differs");
        }
        Err(reason) => assert!(
            !ok,
            "refused ({reason:?}) a well-formed token signed with the configured key: header {header_text} payload {payload_text}"
        ),
    }
    // No client certificate here: a bound token is never allowed.
    let may_allow = ok && binding.is_none();
    check_decide(f, signed.as_bytes(), may_allow, input.sub.as_deref());

    // Mutations: any change to the text must be refused.
    let mut bytes = signed.clone().into_bytes();
    for m in input.mutations.iter().take(8) {
        mutate(&mut bytes, m);
    }
    if bytes != signed.as_bytes() {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if let Ok(v) = token::verify(
                text,
                f.config.keys(),
                f.config.max_token_bytes(),
                f.config.claim_spec(),
            ) {
                panic!(
                    "accepted a mutated token {text:?} (signed {signed:?}) under key {}",
                    v.key().kid()
                );
            }
        }
        // The gate trims white space around a header's token: padding the
        // signed token with it is not a change.
        if bytes.trim_ascii() == signed.as_bytes() {
            check_decide(f, &bytes, may_allow, input.sub.as_deref());
        } else {
            check_decide(f, &bytes, false, None);
        }
    }
});

/// `Config::decide` allows only what the oracle allows, and then forwards
/// the signed `sub`.
fn check_decide(f: &Fixture, token: &[u8], may_allow: bool, sub: Option<&str>) {
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(token);
    let headers = vec![
        ("authorization".to_owned(), value),
        ("x-auth-subject".to_owned(), b"forged".to_vec()),
    ];
    let req = Request {
        method: "GET",
        path: b"/",
        authority: b"api.example.com",
        headers: &headers,
    };
    let verdict = f.config.decide(
        &req,
        &FixedConnection::default(),
        Revocations::default(),
        NOW,
    );
    assert!(
        verdict.remove_headers.iter().any(|h| h == "x-auth-subject"),
        "a forged claim header is kept"
    );
    if verdict.decision == Decision::Allow {
        assert!(
            may_allow,
            "Config::decide allowed {:?}",
            String::from_utf8_lossy(token)
        );
        let forwarded = verdict
            .set_headers
            .iter()
            .find(|(h, _)| h == "x-auth-subject")
            .map(|(_, v)| v.as_str());
        assert_eq!(forwarded, sub, "forwarded sub differs from the signed one");
    }
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    let at = |i: u16| if len == 0 { 0 } else { usize::from(i) % len };
    match m {
        Mutation::FlipBit { at: i, bit } if len > 0 => bytes[at(*i)] ^= 1 << (bit % 8),
        Mutation::SetByte { at: i, byte } if len > 0 => bytes[at(*i)] = *byte,
        Mutation::Remove { at: i } if len > 0 => {
            bytes.remove(at(*i));
        }
        Mutation::Insert { at: i, byte } => bytes.insert(at(*i), *byte),
        Mutation::Truncate { len: n } => bytes.truncate(usize::from(*n) % (len + 1)),
        Mutation::SwapSegments { a, b } => {
            let mut segs: Vec<Vec<u8>> = bytes.split(|c| *c == b'.').map(<[u8]>::to_vec).collect();
            if segs.len() >= 2 {
                let (a, b) = (usize::from(*a) % segs.len(), usize::from(*b) % segs.len());
                segs.swap(a, b);
                *bytes = segs.join(&b'.');
            }
        }
        Mutation::ReplacePayload(text) => {
            let segs: Vec<&[u8]> = bytes.split(|c| *c == b'.').collect();
            if segs.len() == 3 {
                use base64::Engine as _;
                let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
                *bytes = [segs[0], p.as_bytes(), segs[2]].join(&b'.');
            }
        }
        _ => {}
    }
}
