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
//!   names, and the values they report are the document's (`alg`, `kid`,
//!   `typ`; `sub`, `iss`, `jti`, `exp`, `nbf`, `iat`, free of control
//!   characters and dates within 0..=2^53).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokengate::gate::{Decision, FixedConnection, Request, Revocations};
use tokengate::token::{self, ClaimSpec, Claims, Header, MAX_NUMERIC_DATE};
use tokengate_fuzz::{
    accepted_token_is_genuine, has_controls, has_repeats, member_names, one_key_fixture,
    two_key_fixture, typ_kind, Fixture, NOW,
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
                &f.config.keys,
                f.config.max_token_bytes,
                &f.config.claim_spec,
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
    let Ok(header) = Header::parse(data) else {
        return;
    };
    let names =
        member_names(data).expect("Header::parse accepted something that is not one JSON object");
    assert!(
        !has_repeats(&names),
        "Header::parse accepted repeated member names {names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "crit"),
        "Header::parse accepted crit"
    );
    let Some(value) = as_value(data) else { return };
    assert_eq!(
        value.get("alg").and_then(|a| a.as_str()),
        Some(header.alg.name()),
        "alg differs from the document's"
    );
    assert_eq!(
        value.get("kid").and_then(|k| k.as_str()),
        header.kid.as_deref(),
        "kid differs from the document's"
    );
    if let Some(kid) = &header.kid {
        assert!(
            !has_controls(kid),
            "Header::parse accepted a kid with a control character"
        );
    }
    let typ = value.get("typ").map(|t| t.as_str().and_then(typ_kind));
    match (typ, header.typ) {
        (None, None) => {}
        (Some(Some(refresh)), Some(t)) => {
            assert_eq!(
                refresh,
                t == token::TokenType::Refresh,
                "typ kind differs from SPEC §2's"
            )
        }
        (typ, parsed) => panic!("typ {typ:?} in the document, {parsed:?} parsed"),
    }
}

/// Known finding F1 (fuzz/README.md): serde_json skips a member tokengate
/// does not read (`IgnoredAny`) without checking that its strings are UTF-8
/// or that their `\u` escapes are valid code points, so `Header::parse` and
/// `Claims::parse` accept such documents although they are not JSON (RFC 8259
/// §8.1). Tolerated here so the other properties keep being fuzzed; set
/// `TOLERATE_F1` to false once `src/token.rs` refuses them.
const TOLERATE_F1: bool = false;

fn as_value(data: &[u8]) -> Option<serde_json::Value> {
    match serde_json::from_slice(data) {
        Ok(value) => Some(value),
        Err(e) => {
            let text = e.to_string();
            let f1 = text.contains("unicode code point")
                || text.contains("surrogate")
                || text.contains("hex escape");
            // Not a finding: JSON (RFC 8259 §6) allows any exponent, and
            // `Value` refuses numbers beyond f64 that tokengate never reads.
            let big_number = text.starts_with("number out of range");
            assert!(
                (TOLERATE_F1 && f1) || big_number,
                "a parser accepted a document that is not JSON: {text}"
            );
            None
        }
    }
}

fn as_claims_json(data: &[u8]) {
    let spec = ClaimSpec {
        extra: vec!["tenant".into()],
    };
    let Ok(claims) = Claims::parse(data, &spec) else {
        return;
    };
    let names =
        member_names(data).expect("Claims::parse accepted something that is not one JSON object");
    assert!(
        !has_repeats(&names),
        "Claims::parse accepted repeated member names {names:?}"
    );
    let Some(value) = as_value(data) else { return };
    for (name, parsed) in [
        ("sub", &claims.sub),
        ("iss", &claims.iss),
        ("jti", &claims.jti),
        ("role", &claims.role),
    ] {
        assert_eq!(
            value.get(name).and_then(|v| v.as_str()),
            parsed.as_deref(),
            "{name} differs from the document's"
        );
        if let Some(s) = parsed {
            assert!(
                !has_controls(s),
                "Claims::parse accepted {name} with a control character"
            );
        }
    }
    for (name, parsed) in [
        ("exp", claims.exp),
        ("nbf", claims.nbf),
        ("iat", claims.iat),
    ] {
        let doc = value.get(name).and_then(|v| v.as_f64());
        assert_eq!(
            doc,
            parsed.map(|d| d.get()),
            "{name} differs from the document's"
        );
        if let Some(d) = parsed {
            let d = d.get();
            assert!(
                d.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&d),
                "{name} {d} out of range"
            );
        }
    }
    let strings = |v: Option<&Vec<String>>| v.into_iter().flatten().any(|s| has_controls(s));
    assert!(
        !strings(claims.aud.as_ref())
            && !strings(claims.scope.as_ref())
            && !strings(claims.scp.as_ref())
            && !strings(claims.roles.as_ref()),
        "Claims::parse accepted a list claim with a control character"
    );
}
