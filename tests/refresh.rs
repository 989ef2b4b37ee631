//! Refresh at the edge (RFC 6749 §6), decided natively at a fixed instant.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{json, Value};
use tokengate::config::{Config, Secrets};
use tokengate::gate::{Decision, FixedConnection, Revocations};
use tokengate::keys::{Alg, Key, KeyId, KeySet};
use tokengate::refresh::{RefreshAnswer, RefreshRequest};
use tokengate::refusal::Reason;
use tokengate::token::{sign, verify, ClaimSpec};

const NOW: u64 = 1_764_259_200;
const SECRET: [u8; 32] = [0x42; 32];

fn config() -> Config {
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let json = json!({
        "keys": [{"kid": "k1", "alg": "HS256", "secret": secret}],
        "issuers": ["https://auth.example.com"],
        "roles": {"ops": ["metrics:read"]},
        "rules": [{"match": {"prefix": "/"}}],
        "refresh": {"path": "/oauth/token", "access_ttl_s": 900, "kid": "k1"},
        "revocation": {"on_unavailable": "allow", "static": [{"jti": "revoked-rt"}]}
    });
    Config::from_json(json.to_string().as_bytes(), &Secrets::Placeholder).unwrap()
}

fn key() -> Key {
    Key::new(KeyId("k1".into()), Alg::Hs256, &SECRET).unwrap()
}

fn refresh_token(edit: impl FnOnce(&mut Value)) -> String {
    let mut c = json!({
        "iss": "https://auth.example.com", "sub": "user-9", "aud": ["orders-api"],
        "jti": "rt-1", "iat": NOW - 100, "exp": NOW + 86400,
        "scope": "orders:read orders:write", "roles": ["ops"]
    });
    edit(&mut c);
    sign(&c, &key(), "rt+jwt")
}

fn post(body: &str) -> RefreshAnswer {
    send("POST", Some("application/x-www-form-urlencoded"), body)
}

fn send(method: &str, content_type: Option<&str>, body: &str) -> RefreshAnswer {
    let req = RefreshRequest {
        method,
        content_type: content_type.map(str::as_bytes),
        body: body.as_bytes(),
    };
    config().refresh(
        &req,
        &FixedConnection::default(),
        Revocations::default(),
        NOW,
        [7; 16],
    )
}

fn body(a: &RefreshAnswer) -> Value {
    serde_json::from_str(&a.reply.body).unwrap()
}

#[test]
fn mints_an_access_token_with_the_same_identity() {
    let a = post(&format!(
        "grant_type=refresh_token&refresh_token={}",
        refresh_token(|_| {})
    ));
    assert_eq!(a.reply.status, 200, "{}", a.reply.body);
    assert!(a
        .reply
        .headers
        .contains(&("cache-control", "no-store".into())));
    let b = body(&a);
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], 900);
    assert_eq!(b["scope"], "orders:read orders:write");
    let keys = KeySet::new(vec![key()]);
    let access = verify(
        b["access_token"].as_str().unwrap(),
        &keys,
        4096,
        &ClaimSpec::default(),
    )
    .unwrap();
    let c = access.claims();
    assert_eq!(c.sub.as_deref(), Some("user-9"));
    assert_eq!(c.iss.as_deref(), Some("https://auth.example.com"));
    assert_eq!(c.aud, Some(vec!["orders-api".to_owned()]));
    assert_eq!(c.roles, Some(vec!["ops".to_owned()]));
    assert_eq!(c.exp.unwrap().get() - c.iat.unwrap().get(), 900.0);
    assert_ne!(c.jti.as_deref(), Some("rt-1"));
    assert_eq!(a.verdict.decision, Decision::Allow);
}

#[test]
fn down_scopes_on_request_including_role_scopes_and_wildcards() {
    let a = post(&format!(
        "grant_type=refresh_token&scope=orders%3Aread+metrics:read&refresh_token={}",
        refresh_token(|_| {})
    ));
    assert_eq!(a.reply.status, 200, "{}", a.reply.body);
    assert_eq!(body(&a)["scope"], "orders:read metrics:read");
    let wild = refresh_token(|c| c["scope"] = json!("orders:*"));
    let a = post(&format!(
        "grant_type=refresh_token&scope=orders:delete&refresh_token={wild}"
    ));
    assert_eq!(a.reply.status, 200, "{}", a.reply.body);
}

#[test]
fn invalid_scope_when_asking_for_more() {
    let a = post(&format!(
        "grant_type=refresh_token&scope=admin&refresh_token={}",
        refresh_token(|_| {})
    ));
    assert_eq!(
        (a.reply.status, body(&a)["error"].clone()),
        (400, json!("invalid_scope"))
    );
}

#[test]
fn access_token_is_refused_as_refresh_token() {
    let access = sign(
        &json!({"sub": "u", "exp": NOW + 60, "iss": "https://auth.example.com"}),
        &key(),
        "JWT",
    );
    let a = post(&format!("grant_type=refresh_token&refresh_token={access}"));
    let b = body(&a);
    assert_eq!(
        (a.reply.status, b["error"].as_str(), b["reason"].as_str()),
        (400, Some("invalid_grant"), Some("wrong_token_type"))
    );
}

#[test]
fn token_use_claim_marks_a_refresh_token() {
    let t = sign(
        &json!({"sub": "u", "exp": NOW + 60, "iss": "https://auth.example.com", "token_use": "refresh"}),
        &key(),
        "JWT",
    );
    assert_eq!(
        post(&format!("grant_type=refresh_token&refresh_token={t}"))
            .reply
            .status,
        200
    );
}

#[test]
fn revoked_or_expired_refresh_token_is_invalid_grant() {
    let revoked = refresh_token(|c| c["jti"] = json!("revoked-rt"));
    let a = post(&format!("grant_type=refresh_token&refresh_token={revoked}"));
    assert_eq!(
        (
            a.reply.status,
            body(&a)["error"].clone(),
            body(&a)["reason"].clone()
        ),
        (400, json!("invalid_grant"), json!("revoked"))
    );
    let expired = refresh_token(|c| c["exp"] = json!(NOW - 100));
    let a = post(&format!("grant_type=refresh_token&refresh_token={expired}"));
    assert_eq!(body(&a)["reason"], "expired");
    assert_eq!(a.verdict.decision, Decision::Deny(Reason::Expired));
}

#[test]
fn request_errors_follow_rfc6749_section_5_2() {
    let t = refresh_token(|_| {});
    let cases = [
        (send("GET", None, ""), "invalid_request"),
        (
            send("POST", Some("application/json"), "{}"),
            "invalid_request",
        ),
        (post("refresh_token=x"), "invalid_request"),
        (post("grant_type=refresh_token"), "invalid_request"),
        (
            post(&format!("grant_type=password&refresh_token={t}")),
            "unsupported_grant_type",
        ),
        (
            post(&format!(
                "grant_type=refresh_token&grant_type=refresh_token&refresh_token={t}"
            )),
            "invalid_request",
        ),
    ];
    for (a, error) in cases {
        assert_eq!(
            (a.reply.status, body(&a)["error"].as_str().unwrap()),
            (400, error),
            "{}",
            a.reply.body
        );
        assert!(a
            .reply
            .headers
            .contains(&("cache-control", "no-store".into())));
    }
}

#[test]
fn content_type_parameters_are_allowed() {
    let a = send(
        "POST",
        Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
        &format!(
            "grant_type=refresh_token&refresh_token={}",
            refresh_token(|_| {})
        ),
    );
    assert_eq!(a.reply.status, 200, "{}", a.reply.body);
}

#[test]
fn the_refresh_path_is_recognised_after_normalization() {
    let c = config();
    assert!(c.is_refresh_path(b"/oauth/token"));
    assert!(c.is_refresh_path(b"/oauth//token?x=1"));
    assert!(!c.is_refresh_path(b"/oauth/token/x"));
}

/// The body is read as a form only when `content-type` says it is one: the
/// same form under another type, or none, is `invalid_request`
/// (docs/refresh.md).
#[test]
fn a_form_body_under_another_content_type_is_invalid_request() {
    let form = format!(
        "grant_type=refresh_token&refresh_token={}",
        refresh_token(|_| {})
    );
    for content_type in [Some("application/json"), Some("text/plain"), None] {
        let a = send("POST", content_type, &form);
        assert_eq!(
            (a.reply.status, body(&a)["error"].as_str()),
            (400, Some("invalid_request")),
            "{content_type:?}"
        );
    }
    assert_eq!(post(&form).reply.status, 200);
}

/// An empty `refresh_token` is a missing one (`invalid_request`), never a
/// token to check (docs/refresh.md).
#[test]
fn an_empty_refresh_token_is_invalid_request() {
    let a = post("grant_type=refresh_token&refresh_token=");
    let b = body(&a);
    assert_eq!(
        (a.reply.status, b["error"].as_str(), b["reason"].as_str()),
        (400, Some("invalid_request"), Some("bad_request"))
    );
}

/// An empty `scope` asks for nothing in particular: the new token carries
/// the refresh token's own scopes and roles, as when `scope` is left out
/// (docs/refresh.md).
#[test]
fn an_empty_scope_parameter_is_no_scope_asked() {
    let a = post(&format!(
        "grant_type=refresh_token&scope=&refresh_token={}",
        refresh_token(|_| {})
    ));
    assert_eq!(a.reply.status, 200, "{}", a.reply.body);
    assert_eq!(body(&a)["scope"], "orders:read orders:write");
}

/// The form is at most 8 KiB: exactly 8 KiB is read, one byte more is
/// refused before it is parsed (docs/refresh.md).
#[test]
fn a_form_of_exactly_8_kib_is_read_and_one_byte_more_is_too_large() {
    use tokengate::refresh::{parse_form, FormError, MAX_FORM_BYTES};
    assert_eq!(MAX_FORM_BYTES, 8 * 1024);
    let head = "grant_type=refresh_token&pad=";
    let exact = format!("{head}{}", "x".repeat(MAX_FORM_BYTES - head.len()));
    assert_eq!(exact.len(), 8 * 1024);
    assert_eq!(parse_form(exact.as_bytes()).unwrap().len(), 2);
    let over = format!("{exact}x");
    assert_eq!(parse_form(over.as_bytes()), Err(FormError::TooLarge));
}

/// With `require_tls`, the refresh endpoint answers only over TLS; without
/// it the request is refused (`invalid_request`, reason `tls_required`)
/// before the token is read (docs/refresh.md).
#[test]
fn with_require_tls_a_refresh_is_answered_only_over_tls() {
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let json = json!({
        "keys": [{"kid": "k1", "alg": "HS256", "secret": secret}],
        "issuers": ["https://auth.example.com"],
        "require_tls": true,
        "rules": [{"match": {"prefix": "/"}}],
        "refresh": {"path": "/oauth/token", "kid": "k1"}
    });
    let config = Config::from_json(json.to_string().as_bytes(), &Secrets::Placeholder).unwrap();
    let form = format!(
        "grant_type=refresh_token&refresh_token={}",
        refresh_token(|_| {})
    );
    let req = RefreshRequest {
        method: "POST",
        content_type: Some(b"application/x-www-form-urlencoded"),
        body: form.as_bytes(),
    };
    let over = |tls: bool| {
        config.refresh(
            &req,
            &FixedConnection {
                tls,
                peer_certificate_sha256: None,
            },
            Revocations::default(),
            NOW,
            [7; 16],
        )
    };
    assert_eq!(over(true).reply.status, 200, "{}", over(true).reply.body);
    let a = over(false);
    let b = body(&a);
    assert_eq!(
        (a.reply.status, b["error"].as_str(), b["reason"].as_str()),
        (400, Some("invalid_request"), Some("tls_required"))
    );
}
