//! Random token text against fixed configurations (two keys; one key).
//!
//! Properties:
//! * never allowed without a valid MAC: whenever `token::verify` returns a
//!   verified token or `Config::decide` allows the request, the token is
//!   three canonical base64url segments whose signature, as sent, is the
//!   HMAC (recomputed with the `hmac` crate) of `header.payload` under the
//!   configured key its `kid` names, with that key's `alg`;
//! * the verified key is that key;
//! * the same bytes read as JSON: whatever `Header::parse` and
//!   `Claims::parse` accept is one JSON object without repeated member
//!   names;
//! * they agree with a model of the token profile's syntax rules written on
//!   `serde_json::Value` (`tokengate_fuzz::header_model`, `claims_model`):
//!   what the rules accept is accepted and read back member by member
//!   (`alg`, `kid`, `typ`; dates, `iss`, `sub`, `jti`, `aud`, `scope`,
//!   `scp`, `role`, `roles`, `token_use`, `cnf` as a binding), and what
//!   they refuse is refused: a control character (C0, DEL, C1, U+2028,
//!   U+2029) in any claim read, white space (any Unicode `White_Space`) at
//!   an end of `sub`, `jti`, `iss`, `kid`, a scope or role that is not an
//!   RFC 6749 scope-token, a `cnf` that is not an object, a date outside
//!   0..=2^53, a joined array element that is empty or holds a space;
//!   a `cnf` other than exactly `{"x5t#S256": …}` reads as unsupported.
//!   The claims are read under two specs: nothing captured, and `tenant`
//!   captured with `aud` and `tenant` forwarded joined. A repeated name
//!   inside a member nobody reads is left open (neither asserted).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokengate::gate::{Decision, FixedConnection, Request, Revocations};
use tokengate::token::{self, Binding, ClaimSpec, Claims, Header, MAX_NUMERIC_DATE};
use tokengate_fuzz::{
    accepted_token_is_genuine, claims_model, has_controls, has_edge_whitespace, has_repeats,
    header_model, member_names, one_key_fixture, scope_token, two_key_fixture, ClaimsReading,
    Fixture, Judged, NOW,
};

fn fixtures() -> &'static [Fixture; 2] {
    static F: OnceLock<[Fixture; 2]> = OnceLock::new();
    F.get_or_init(|| [two_key_fixture(), one_key_fixture()])
}

fuzz_target!(|data: &[u8]| {
    as_token(data);
    as_header_json(data);
    as_claims_json(data);
});

fn as_token(data: &[u8]) {
    for f in fixtures() {
        if let Ok(text) = std::str::from_utf8(data) {
            if let Ok(verified) = token::verify(
                text,
                f.config.keys(),
                f.config.max_token_bytes(),
                f.config.claim_spec(),
            ) {
                let key = accepted_token_is_genuine(text, &f.keys)
                    .unwrap_or_else(|e| panic!("[{}] token::verify: {e}", f.name));
                assert_eq!(
                    verified.key().kid().as_str(),
                    key.kid,
                    "[{}] verified under another key",
                    f.name
                );
                assert_eq!(
                    verified.key().alg(),
                    key.alg,
                    "[{}] verified with another alg",
                    f.name
                );
            }
        }
        // The gate sees raw header bytes, UTF-8 or not.
        let mut bearer = b"Bearer ".to_vec();
        bearer.extend_from_slice(data);
        let headers = vec![("authorization".to_owned(), bearer)];
        let req = Request {
            method: "GET",
            path: b"/orders/7",
            authority: b"api.example.com",
            headers: &headers,
        };
        let verdict = f.config.decide(
            &req,
            &FixedConnection::default(),
            Revocations::default(),
            NOW,
        );
        if verdict.decision == Decision::Allow {
            // What the gate took as the token: the header value after the
            // scheme, trimmed of ASCII white space.
            let text = std::str::from_utf8(data)
                .unwrap_or_else(|_| panic!("[{}] allowed a non-UTF-8 token", f.name));
            accepted_token_is_genuine(
                text.trim_matches(|c: char| c.is_ascii_whitespace()),
                &f.keys,
            )
            .unwrap_or_else(|e| panic!("[{}] Config::decide: {e}", f.name));
            assert!(
                verdict.kid.is_some(),
                "[{}] allowed without a verified kid",
                f.name
            );
        }
    }
}

fn as_header_json(data: &[u8]) {
    let parsed = Header::parse(data);
    if let Ok(header) = &parsed {
        let names = member_names(data)
            .expect("Header::parse accepted something that is not one JSON object");
        assert!(
            !has_repeats(&names),
            "Header::parse accepted repeated member names {names:?}"
        );
        if let Some(kid) = &header.kid {
            assert!(
                !has_controls(kid) && !has_edge_whitespace(kid),
                "Header::parse accepted kid {kid:?}"
            );
        }
    }
    match (header_model(data), parsed) {
        (Judged::Accept((alg, kid, typ)), Ok(header)) => {
            assert_eq!(header.alg.name(), alg, "alg differs from the document's");
            assert_eq!(header.kid, kid, "kid differs from the document's");
            assert_eq!(
                header.typ.map(|t| t == token::TokenType::Refresh),
                typ,
                "typ kind differs from the document's"
            );
        }
        (Judged::Accept(_), Err(reason)) => panic!(
            "Header::parse refused ({reason:?}) a header the rules accept: {:?}",
            String::from_utf8_lossy(data)
        ),
        (Judged::Refuse(why), Ok(_)) => {
            // Not JSON: say which parser is wrong.
            as_value(data);
            panic!(
                "Header::parse accepted a header the rules refuse ({why}): {:?}",
                String::from_utf8_lossy(data)
            )
        }
        (Judged::Refuse(_), Err(_)) | (Judged::Open, _) => {}
    }
}

/// serde_json reads the document as JSON, or the failure is one a
/// tokengate parser shares. (Finding F1, fixed: a member nobody reads once
/// let a token hold bytes that are not JSON.)
fn as_value(data: &[u8]) -> Option<serde_json::Value> {
    match serde_json::from_slice(data) {
        Ok(value) => Some(value),
        Err(e) => panic!("a parser accepted a document that is not JSON: {e}"),
    }
}

/// The two claim specs the payload is read under: nothing captured, and
/// the two-key configuration's (`tenant` captured; `aud` and `tenant`
/// forwarded joined).
fn specs() -> [(ClaimSpec, &'static [&'static str], &'static [&'static str]); 2] {
    [
        (ClaimSpec::default(), &[], &[]),
        (
            ClaimSpec {
                extra: vec!["tenant".into()],
                joined: vec!["aud".into(), "tenant".into()],
            },
            &["tenant"],
            &["aud", "tenant"],
        ),
    ]
}

fn as_claims_json(data: &[u8]) {
    for (spec, extra, joined) in specs() {
        let parsed = Claims::parse(data, &spec);
        if let Ok(claims) = &parsed {
            let names = member_names(data)
                .expect("Claims::parse accepted something that is not one JSON object");
            assert!(
                !has_repeats(&names),
                "Claims::parse accepted repeated member names {names:?}"
            );
            check_claim_syntax(claims);
        }
        match (claims_model(data, extra, joined), parsed) {
            (Judged::Accept(want), Ok(claims)) => read_back(&want, &claims, extra),
            (Judged::Accept(_), Err(reason)) => panic!(
                "Claims::parse refused ({reason:?}) claims the rules accept (extra {extra:?}, joined {joined:?}): {:?}",
                String::from_utf8_lossy(data)
            ),
            (Judged::Refuse(why), Ok(_)) => {
                as_value(data);
                panic!(
                    "Claims::parse accepted claims the rules refuse ({why}; extra {extra:?}, joined {joined:?}): {:?}",
                    String::from_utf8_lossy(data)
                )
            }
            (Judged::Refuse(_), Err(_)) | (Judged::Open, _) => {}
        }
    }
}

/// What an accepted claims set holds, on its own: no control character
/// anywhere read, no white space at the ends of `sub`, `iss`, `jti`,
/// scope-tokens only in `scope`, `scp`, `role`, `roles`, dates in range.
fn check_claim_syntax(claims: &Claims) {
    for (name, parsed) in [
        ("sub", &claims.sub),
        ("iss", &claims.iss),
        ("jti", &claims.jti),
    ] {
        if let Some(s) = parsed {
            assert!(
                !has_controls(s) && !has_edge_whitespace(s),
                "Claims::parse accepted {name} {s:?}"
            );
        }
    }
    for d in [claims.exp, claims.nbf, claims.iat].into_iter().flatten() {
        let d = d.get();
        assert!(
            d.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&d),
            "date {d} out of range"
        );
    }
    let tokens = claims
        .role
        .iter()
        .chain(claims.scope.iter().flatten())
        .chain(claims.scp.iter().flatten())
        .chain(claims.roles.iter().flatten());
    for t in tokens {
        assert!(scope_token(t), "Claims::parse accepted scope or role {t:?}");
    }
    let controls = claims
        .aud
        .iter()
        .flatten()
        .chain(claims.token_use.iter())
        .any(|s| has_controls(s));
    assert!(!controls, "Claims::parse accepted a control character");
    if let Some(Binding::X5tS256(t)) = &claims.cnf {
        assert!(!has_controls(t), "cnf thumbprint with a control character");
    }
}

/// The claims read back are the document's.
fn read_back(want: &ClaimsReading, c: &Claims, extra: &[&str]) {
    let dates = [c.exp, c.nbf, c.iat].map(|d| d.map(|d| d.get()));
    assert_eq!(
        dates, want.dates,
        "exp, nbf, iat differ from the document's"
    );
    assert_eq!(c.iss, want.iss, "iss differs from the document's");
    assert_eq!(c.sub, want.sub, "sub differs from the document's");
    assert_eq!(c.jti, want.jti, "jti differs from the document's");
    assert_eq!(c.aud, want.aud, "aud differs from the document's");
    assert_eq!(c.scope, want.scope, "scope differs from the document's");
    assert_eq!(c.scp, want.scp, "scp differs from the document's");
    assert_eq!(c.role, want.role, "role differs from the document's");
    assert_eq!(c.roles, want.roles, "roles differ from the document's");
    assert_eq!(c.token_use, want.token_use, "token_use differs");
    let cnf = c.cnf.as_ref().map(|b| match b {
        Binding::X5tS256(t) => Some(t.clone()),
        Binding::Unsupported => None,
    });
    assert_eq!(cnf, want.cnf, "cnf binding differs from the document's");
    for (name, _) in &c.extra {
        assert!(
            extra.contains(&name.as_str()),
            "captured {name:?}, which was not asked for"
        );
    }
}
