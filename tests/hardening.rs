//! Regression tests for the holes an attacker at the edge could use, each
//! at the level of the core (the adapter's share is in `tests/adapter.rs`,
//! Envoy's in `tests/e2e/test_hardening.py`). Decided against the one
//! orders-api fixture, `tests/data/orders-api.json`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{json, Value};
use tokengate::config::{Config, Secrets};
use tokengate::gate::{Decision, FixedConnection, Request, Revocations};
use tokengate::keys::{decode_secret, Alg, Key, KeyId, SecretEncoding};
use tokengate::refresh::{parse_form, FormError, RefreshRequest};
use tokengate::refusal::Reason;
use tokengate::revocation::{Document, Entry, Snapshot};
use tokengate::token::sign;

const NOW: u64 = 1_764_259_200;

fn fixture() -> Value {
    serde_json::from_str(include_str!("data/orders-api.json")).unwrap()
}

fn config_from(value: &Value) -> Config {
    Config::from_json(value.to_string().as_bytes(), &Secrets::Placeholder).unwrap()
}

fn config() -> Config {
    config_from(&fixture())
}

fn key() -> Key {
    let secret = fixture()["keys"][0]["secret"].as_str().unwrap().to_owned();
    let bytes = decode_secret(&secret, SecretEncoding::Base64).unwrap();
    Key::new(KeyId("2026-11".into()), Alg::Hs256, &bytes).unwrap()
}

fn claims() -> Value {
    json!({
        "iss": "https://auth.example.com", "aud": "orders-api", "sub": "alice",
        "jti": "j-1", "iat": NOW - 60, "exp": NOW + 600, "scope": "orders:read"
    })
}

fn token_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims();
    edit(&mut c);
    sign(&c, &key(), "JWT")
}

fn fresh_list() -> Snapshot {
    Snapshot::build(
        &Document {
            version: 1,
            generated_at: Some(NOW),
            entries: vec![],
        },
        NOW,
    )
}

/// Decides `method path` with these headers (the host is `authority`).
fn decide_on(
    config: &Config,
    method: &str,
    path: &str,
    authority: &str,
    headers: &[(&str, &str)],
) -> tokengate::gate::Verdict {
    let headers: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
        .collect();
    let list = fresh_list();
    let req = Request {
        method,
        path: path.as_bytes(),
        authority: authority.as_bytes(),
        headers: &headers,
    };
    config.decide(
        &req,
        &FixedConnection::default(),
        Revocations {
            list: Some(&list),
            fresh_at: Some(NOW),
            lost: false,
        },
        NOW,
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn reason(v: &tokengate::gate::Verdict) -> Option<Reason> {
    v.decision.reason()
}

// --- host rules (item 2) ---

#[test]
fn malformed_authorities_never_fall_past_a_host_rule() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    assert_eq!(
        reason(&decide_on(
            &c,
            "GET",
            "/x",
            "admin.example.com",
            &[("authorization", &t)]
        )),
        Some(Reason::Denied)
    );
    for authority in [
        "admin.example.com:80:",
        "admin.example.com:x",
        "admin.example.com..",
        "admin.example.com.",
        "a@admin.example.com",
        "",
        "ADMIN.example.com:",
        "admin.example.com:99999",
    ] {
        let v = decide_on(&c, "GET", "/x", authority, &[("authorization", &t)]);
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{authority:?}");
    }
    // A well-formed other host is fine.
    let v = decide_on(
        &c,
        "GET",
        "/x",
        "api.example.com:443",
        &[("authorization", &t)],
    );
    assert_eq!(v.decision, Decision::Allow);
}

#[test]
fn other_host_headers_that_a_rule_would_read_differently_are_refused() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for (name, value) in [
        ("host", "admin.example.com"),
        ("x-forwarded-host", "admin.example.com"),
        ("x-forwarded-host", "api.example.com, admin.example.com"),
        ("forwarded", "for=1.2.3.4;host=admin.example.com"),
        ("forwarded", "host=\"admin.example.com\""),
        ("x-forwarded-host", "admin.example.com:80:"),
    ] {
        let v = decide_on(
            &c,
            "GET",
            "/x",
            "api.example.com",
            &[("authorization", &t), (name, value)],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{name}: {value}");
    }
    // The same host again, or one under the same outcome, is no ambiguity.
    let v = decide_on(
        &c,
        "GET",
        "/x",
        "api.example.com",
        &[
            ("authorization", &t),
            ("x-forwarded-host", "api.example.com"),
        ],
    );
    assert_eq!(v.decision, Decision::Allow);
}

// --- readings of the path and method ---

#[test]
fn a_path_whose_case_slash_or_extension_picks_another_rule_is_refused() {
    let c = config();
    let admin = bearer(&token_with(|c| c["roles"] = json!(["admin"])));
    let reader = bearer(&token_with(|_| {}));
    for path in [
        "/ADMIN",
        "/Admin/users",
        "/admin.json",
        "/INTERNAL/x",
        "/Healthz",
    ] {
        let v = decide_on(
            &c,
            "GET",
            path,
            "api.example.com",
            &[("authorization", &reader)],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{path}");
    }
    // Readings under the same rule are fine.
    for path in ["/orders/7.json", "/orders/Seven/", "/admin/users/"] {
        let v = decide_on(
            &c,
            "GET",
            path,
            "api.example.com",
            &[("authorization", &admin)],
        );
        assert_eq!(v.decision, Decision::Allow, "{path}");
    }
}

#[test]
fn a_method_override_that_would_pick_another_rule_is_refused() {
    let c = config();
    let reader = bearer(&token_with(|_| {}));
    for name in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        let v = decide_on(
            &c,
            "GET",
            "/orders/7",
            "api.example.com",
            &[("authorization", &reader), (name, "delete")],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{name}");
    }
    let v = decide_on(
        &c,
        "GET",
        "/orders/7",
        "api.example.com",
        &[
            ("authorization", &reader),
            ("x-http-method-override", "HEAD"),
        ],
    );
    assert_eq!(
        v.decision,
        Decision::Allow,
        "HEAD falls under the same rule"
    );
}

#[test]
fn dot_segments_behind_parameters_are_refused() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for path in [
        "/healthz/..;/admin",
        "/healthz/%2e%2e;x/admin",
        "/orders/.;/7",
    ] {
        let v = decide_on(&c, "GET", path, "api.example.com", &[("authorization", &t)]);
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{path}");
    }
}

#[test]
fn a_path_an_upstream_may_read_as_the_refresh_path_is_refused() {
    let c = config();
    for path in ["/oauth/token/", "/OAUTH/token", "/oauth/token.json"] {
        let v = decide_on(&c, "POST", path, "api.example.com", &[]);
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{path}");
    }
}

// --- forged claim headers and tokens hidden where upstreams look (item 9) ---

#[test]
fn look_alike_claim_and_token_headers_are_stripped_on_every_request() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    let forged = [
        ("x_auth_subject", "root"),
        ("x-auth_subject", "root"),
        ("X_AUTH_SCOPES", "*"),
        ("x-auth-role", "admin"),
        ("x_api_key", "another-token"),
    ];
    for (path, auth) in [
        ("/orders/7", Some(&t)),
        ("/healthz", None),
        ("/internal/x", Some(&t)),
    ] {
        let mut headers: Vec<(&str, &str)> = forged.to_vec();
        if let Some(auth) = auth {
            headers.push(("authorization", auth));
        }
        let v = decide_on(&c, "GET", path, "api.example.com", &headers);
        for (name, _) in forged {
            assert!(
                v.remove_headers.iter().any(|n| n == name),
                "{path}: {name} kept ({:?})",
                v.remove_headers
            );
        }
    }
}

#[test]
fn query_and_cookie_names_an_upstream_reads_as_the_token_count_as_the_token() {
    let c = config();
    let good = token_with(|_| {});
    // Two tokens, one behind a ';' (Go before 1.17, Python's cgi).
    let path = format!("/orders/7?x=1;access_token={good}&access_token={good}");
    let v = decide_on(&c, "GET", &path, "api.example.com", &[]);
    assert_eq!(reason(&v), Some(Reason::BadRequest));
    // Another spelling ASP.NET or PHP reads as access_token is the token,
    // and is cut out before the upstream sees it.
    for name in ["ACCESS_TOKEN", "access.token", "Access[token"] {
        let path = format!("/orders/7?page=2&{name}={good}");
        let v = decide_on(&c, "GET", &path, "api.example.com", &[]);
        assert_eq!(v.decision, Decision::Allow, "{name}");
        assert_eq!(
            v.new_path.as_deref(),
            Some(&b"/orders/7?page=2"[..]),
            "{name}"
        );
    }
    let v = decide_on(
        &c,
        "GET",
        "/orders/7",
        "api.example.com",
        &[("cookie", &format!("a=1; TG.TOKEN={good}"))],
    );
    assert_eq!(v.decision, Decision::Allow);
    assert_eq!(v.new_cookie, Some(Some(b"a=1".to_vec())));
    // Two cookie lines (HTTP/2 sends one per cookie) holding two tokens.
    let v = decide_on(
        &c,
        "GET",
        "/orders/7",
        "api.example.com",
        &[
            ("cookie", &format!("tg_token={good}")),
            ("cookie", &format!("tg_token={good}")),
        ],
    );
    assert_eq!(reason(&v), Some(Reason::BadRequest));
}

#[test]
fn cutting_the_token_out_of_the_cookie_header_leaves_every_other_byte() {
    // Red-team round 5: the rest of the header was split on `;` and `,` and
    // joined again with `; `, which changed quoted and comma-holding values.
    let c = config();
    let good = token_with(|_| {});
    for (sent, forwarded) in [
        (format!("a=\"x;y\"; tg_token={good}"), Some("a=\"x;y\"")),
        (
            format!("a=1,b=2;  tg_token={good};c=\"p, q\""),
            Some("a=1,b=2;c=\"p, q\""),
        ),
        (format!("tg_token={good}; a=1;b=2"), Some("a=1;b=2")),
        (format!("  tg_token={good}"), None),
    ] {
        let v = decide_on(
            &c,
            "GET",
            "/orders/7",
            "api.example.com",
            &[("cookie", &sent)],
        );
        assert_eq!(v.decision, Decision::Allow, "{sent}");
        assert_eq!(
            v.new_cookie,
            Some(forwarded.map(|f| f.as_bytes().to_vec())),
            "{sent}"
        );
    }
}

// --- claims (items 5, 6) ---

#[test]
fn bindings_that_cannot_be_enforced_are_refused_never_taken_as_bearer() {
    let c = config();
    for cnf in [
        json!({"jkt": "abc"}),
        json!({}),
        json!({"x5t#S256": "abc", "jkt": "x"}),
        json!({"jwk": {}}),
    ] {
        let t = bearer(&token_with(|c| c["cnf"] = cnf.clone()));
        let v = decide_on(
            &c,
            "GET",
            "/orders/7",
            "api.example.com",
            &[("authorization", &t)],
        );
        assert_eq!(reason(&v), Some(Reason::BindingMismatch), "{cnf}");
    }
    let t = bearer(&token_with(|c| c["cnf"] = json!("x")));
    let v = decide_on(
        &c,
        "GET",
        "/orders/7",
        "api.example.com",
        &[("authorization", &t)],
    );
    assert_eq!(reason(&v), Some(Reason::Malformed));
}

#[test]
fn a_scope_that_would_split_when_joined_is_malformed() {
    let c = config();
    for edit in [
        json!({"scp": ["orders:read x"]}),
        json!({"scp": ["orders:read\u{a0}x"]}),
        json!({"scope": "orders:read  x"}),
        json!({"scope": " orders:read"}),
        json!({"scope": ""}),
        json!({"role": "admin x"}),
        json!({"roles": ["r\"q"]}),
    ] {
        let t = bearer(&token_with(|c| {
            for (k, v) in edit.as_object().unwrap() {
                c[k] = v.clone();
            }
        }));
        let v = decide_on(
            &c,
            "GET",
            "/orders/7",
            "api.example.com",
            &[("authorization", &t)],
        );
        assert_eq!(reason(&v), Some(Reason::Malformed), "{edit}");
    }
}

#[test]
fn claims_that_are_logged_may_not_hide_controls_or_edge_white_space() {
    let c = config();
    for (claim, value) in [
        ("sub", "al\u{85}ice"),
        ("sub", "al\u{2028}ice"),
        ("sub", "alice\u{a0}"),
        ("jti", " j-1"),
        ("iss", "https://auth.example.com\u{3000}"),
    ] {
        let t = bearer(&token_with(|c| c[claim] = json!(value)));
        let v = decide_on(
            &c,
            "GET",
            "/orders/7",
            "api.example.com",
            &[("authorization", &t)],
        );
        assert_eq!(reason(&v), Some(Reason::Malformed), "{claim}: {value:?}");
    }
}

// --- revocation (items 4, 8) ---

fn revoked_list(generated_at: u64) -> Snapshot {
    Snapshot::build(
        &Document {
            version: 3,
            generated_at: Some(generated_at),
            entries: vec![Entry::Jti {
                jti: "j-1".into(),
                exp: None,
            }],
        },
        generated_at,
    )
}

fn decide_with_list(
    c: &Config,
    list: Option<&Snapshot>,
    fresh_at: Option<u64>,
    lost: bool,
) -> Decision {
    let t = bearer(&token_with(|_| {}));
    let headers = vec![("authorization".to_owned(), t.into_bytes())];
    let req = Request {
        method: "GET",
        path: b"/orders/7",
        authority: b"api.example.com",
        headers: &headers,
    };
    c.decide(
        &req,
        &FixedConnection::default(),
        Revocations {
            list,
            fresh_at,
            lost,
        },
        NOW,
    )
    .decision
}

#[test]
fn under_allow_a_stale_list_still_revokes() {
    let mut f = fixture();
    f["revocation"]["on_unavailable"] = json!("allow");
    let allow = config_from(&f);
    let list = revoked_list(NOW - 3600);
    assert_eq!(
        decide_with_list(&allow, Some(&list), Some(NOW - 3600), false),
        Decision::Deny(Reason::Revoked)
    );
    // Without any list ever received, allow decides without one...
    assert_eq!(decide_with_list(&allow, None, None, false), Decision::Allow);
    // ...but not once one was held and lost.
    assert_eq!(
        decide_with_list(&allow, None, None, true),
        Decision::Deny(Reason::RevocationUnavailable)
    );
    // Under deny, stale is unavailable.
    let deny = config();
    assert_eq!(
        decide_with_list(&deny, Some(&list), Some(NOW - 3600), false),
        Decision::Deny(Reason::RevocationUnavailable)
    );
}

// --- refresh (items 3, 7) ---

fn refresh_token(edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims();
    c["scope"] = json!("orders:read orders:write");
    c["roles"] = json!(["admin"]);
    edit(&mut c);
    sign(&c, &key(), "rt+jwt")
}

fn refresh(c: &Config, body: &str) -> (u32, Value) {
    let list = fresh_list();
    let a = c.refresh(
        &RefreshRequest {
            method: "POST",
            content_type: Some(b"application/x-www-form-urlencoded"),
            body: body.as_bytes(),
        },
        &FixedConnection::default(),
        Revocations {
            list: Some(&list),
            fresh_at: Some(NOW),
            lost: false,
        },
        NOW,
        [9; 16],
    );
    (a.reply.status, serde_json::from_str(&a.reply.body).unwrap())
}

fn payload(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn a_down_scoped_token_gets_no_roles() {
    let c = config();
    let t = refresh_token(|_| {});
    let (status, body) = refresh(
        &c,
        &format!("grant_type=refresh_token&refresh_token={t}&scope=orders:read"),
    );
    assert_eq!(status, 200, "{body}");
    let access = payload(body["access_token"].as_str().unwrap());
    assert_eq!(access["scope"], "orders:read");
    assert!(
        access.get("roles").is_none() && access.get("role").is_none(),
        "{access}"
    );
    // Without a scope asked, the refresh token's own scopes and roles.
    let (_, body) = refresh(&c, &format!("grant_type=refresh_token&refresh_token={t}"));
    let access = payload(body["access_token"].as_str().unwrap());
    assert_eq!(access["roles"], json!(["admin"]));
}

#[test]
fn a_scope_asked_that_is_not_a_list_of_scope_tokens_is_invalid_scope() {
    let c = config();
    let t = refresh_token(|_| {});
    for scope in [
        "orders:read%20%20orders:write",
        "%20orders:read",
        "orders%22read",
    ] {
        let (status, body) = refresh(
            &c,
            &format!("grant_type=refresh_token&refresh_token={t}&scope={scope}"),
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope")),
            "{scope}"
        );
    }
}

#[test]
fn the_refresh_form_is_bounded_and_parsed_in_linear_time() {
    // The old parser compared each name with every earlier one: 16,000
    // names in 64 KB cost a quarter of a second of a worker.
    let many: String = (0..16_000).map(|i| format!("n{i}&")).collect();
    assert!(many.len() > 64_000);
    // Now the size is checked before anything is parsed, and at most 16
    // names are compared with each other.
    assert_eq!(parse_form(many.as_bytes()), Err(FormError::TooLarge));
    let within: String = (0..1800).map(|i| format!("{i}&")).collect();
    assert!(within.len() <= 8 * 1024);
    assert_eq!(
        parse_form(within.as_bytes()),
        Err(FormError::TooManyParameters)
    );
    let sixteen: String = (0..16).map(|i| format!("p{i}=v&")).collect();
    assert_eq!(parse_form(sixteen.as_bytes()).unwrap().len(), 16);
    let seventeen: String = (0..17).map(|i| format!("p{i}=v&")).collect();
    assert_eq!(
        parse_form(seventeen.as_bytes()),
        Err(FormError::TooManyParameters)
    );
    assert_eq!(parse_form(b"a=1&a=2"), Err(FormError::Repeated));
}

// --- configuration (item 10) ---

fn config_error(value: &Value) -> String {
    Config::from_json(value.to_string().as_bytes(), &Secrets::Placeholder)
        .unwrap_err()
        .to_string()
}

#[test]
fn repeated_members_in_configuration_are_refused() {
    let base = fixture().to_string();
    let roles = base.replacen(r#""roles":{"#, r#""roles":{"manager":["orders:read"],"#, 1);
    let e = Config::from_json(roles.as_bytes(), &Secrets::Placeholder)
        .unwrap_err()
        .to_string();
    assert_eq!(e, r#"roles: repeats member "manager""#);
    let statics = base.replacen(
        r#"{"jti":"static-revoked"}"#,
        r#"{"jti":"a","jti":"static-revoked"}"#,
        1,
    );
    let e = Config::from_json(statics.as_bytes(), &Secrets::Placeholder)
        .unwrap_err()
        .to_string();
    assert_eq!(e, r#"revocation.static[0]: repeats member "jti""#);
}

#[test]
fn scope_and_role_names_in_configuration_are_scope_tokens() {
    let mut f = fixture();
    f["roles"]["manager"] = json!(["orders:read orders:write"]);
    assert!(config_error(&f).starts_with("roles.manager[0]: must be a scope-token"));
    let mut f = fixture();
    f["rules"][2]["scopes"] = json!(["orders read"]);
    assert!(config_error(&f).starts_with("rules[2].scopes[0]: must be a scope-token"));
}

// --- found by the end-to-end hunt (tests/e2e/test_hardening.py) ---

fn with_delete_rule() -> Config {
    let mut f = fixture();
    let rules = f["rules"].as_array_mut().unwrap();
    rules.insert(
        2,
        json!({"match": {"prefix": "/orders", "methods": ["DELETE"]}, "scopes": ["orders:delete"]}),
    );
    config_from(&f)
}

#[test]
fn every_way_to_override_the_method_is_read() {
    let c = with_delete_rule();
    let writer = bearer(&token_with(|c| {
        c["scope"] = json!("orders:read orders:write")
    }));
    for (path, headers) in [
        // Express's method-override, Symfony, Laravel: a query parameter.
        ("/orders/7?_method=DELETE", vec![]),
        ("/orders/7?_METHOD=delete", vec![]),
        // Express takes the first of a comma-separated list.
        ("/orders/7", vec![("x-http-method-override", "DELETE, PUT")]),
        // Upstreams that fold `_` into `-` read this as the override.
        ("/orders/7", vec![("x_http_method_override", "DELETE")]),
    ] {
        let mut h: Vec<(&str, &str)> = headers;
        h.push(("authorization", &writer));
        let v = decide_on(&c, "POST", path, "api.example.com", &h);
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{path} {h:?}");
    }
    let v = decide_on(
        &c,
        "POST",
        "/orders/7",
        "api.example.com",
        &[("authorization", &writer)],
    );
    assert_eq!(v.decision, Decision::Allow);
}

#[test]
fn an_underscore_spelling_of_x_forwarded_host_is_read() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for name in ["x_forwarded_host", "X-Forwarded_Host", "FORWARDED"] {
        let value = if name == "FORWARDED" {
            "host=admin.example.com"
        } else {
            "admin.example.com"
        };
        let v = decide_on(
            &c,
            "GET",
            "/x",
            "public.example.com",
            &[("authorization", &t), (name, value)],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{name}");
    }
}

#[test]
fn a_second_token_under_a_name_php_reads_as_the_token_is_seen() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for path in [
        "/orders/7?%20access_token=smuggled",
        "/orders/7?access_token%00x=smuggled",
        "/orders/7?%20%20Access.Token=smuggled",
    ] {
        let v = decide_on(&c, "GET", path, "api.example.com", &[("authorization", &t)]);
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{path}");
    }
    let v = decide_on(
        &c,
        "GET",
        "/orders/7",
        "api.example.com",
        &[
            ("authorization", &t),
            ("cookie", "a=1; %20tg_token=smuggled"),
        ],
    );
    assert_eq!(reason(&v), Some(Reason::BadRequest));
}

#[test]
fn a_value_opening_with_the_scheme_but_not_with_white_space_is_a_bad_request() {
    // Found by the red team: `Authorization: Bearer:<revoked token>` beside
    // a valid token elsewhere went upstream untouched; an upstream that
    // cuts the scheme off by length would have read the revoked token.
    let c = config();
    let good = token_with(|_| {});
    for value in [
        "Bearer:smuggled",
        "bearerXsmuggled",
        "BEARER=smuggled",
        "Bearer,smuggled",
    ] {
        let v = decide_on(
            &c,
            "GET",
            "/orders/7",
            "api.example.com",
            &[("authorization", value), ("x-api-key", &good)],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{value}");
        let v = decide_on(
            &c,
            "GET",
            "/orders/7",
            "api.example.com",
            &[("authorization", value)],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "alone: {value}");
    }
    // A tab is white space: the token is read.
    let v = decide_on(
        &c,
        "GET",
        "/orders/7",
        "api.example.com",
        &[("authorization", &format!("Bearer\t{good}"))],
    );
    assert_eq!(v.decision, Decision::Allow);
    // Another scheme is no token, and passes (an upstream's own Basic auth).
    let v = decide_on(
        &c,
        "GET",
        "/orders/7",
        "api.example.com",
        &[
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("x-api-key", &good),
        ],
    );
    assert_eq!(v.decision, Decision::Allow);
    assert!(!v.remove_headers.iter().any(|n| n == "authorization"));
}

// --- found by the red team ---

#[test]
fn header_names_with_dots_are_read_as_php_reads_them() {
    // PHP names `x.auth.role` HTTP_X_AUTH_ROLE, as it names x-auth-role.
    let c = with_delete_rule();
    let writer = bearer(&token_with(|c| {
        c["scope"] = json!("orders:read orders:write")
    }));
    let v = decide_on(
        &c,
        "GET",
        "/orders/7",
        "api.example.com",
        &[
            ("authorization", &writer),
            ("x.auth.role", "admin"),
            ("x-auth.subject", "root"),
        ],
    );
    assert_eq!(v.decision, Decision::Allow);
    for name in ["x.auth.role", "x-auth.subject"] {
        assert!(v.remove_headers.iter().any(|n| n == name), "{name} kept");
    }
    let v = decide_on(
        &c,
        "POST",
        "/orders/7",
        "api.example.com",
        &[
            ("authorization", &writer),
            ("x.http.method.override", "DELETE"),
        ],
    );
    assert_eq!(reason(&v), Some(Reason::BadRequest));
    let v = decide_on(
        &c,
        "GET",
        "/x",
        "public.example.com",
        &[
            ("authorization", &writer),
            ("x.forwarded.host", "admin.example.com"),
        ],
    );
    assert_eq!(reason(&v), Some(Reason::BadRequest));
}

#[test]
fn many_method_override_values_are_refused_at_once() {
    // 14,000 distinct values once cost a worker 130 ms (a quadratic check).
    let c = with_delete_rule();
    let many: String = (0..14_000).map(|i| format!("M{i},")).collect();
    let v = decide_on(
        &c,
        "GET",
        "/public",
        "api.example.com",
        &[("x-http-method-override", &many)],
    );
    assert_eq!(reason(&v), Some(Reason::BadRequest));
    let few = "PUT, PATCH";
    let writer = bearer(&token_with(|c| {
        c["scope"] = json!("orders:read orders:write")
    }));
    let v = decide_on(
        &c,
        "POST",
        "/orders/7",
        "api.example.com",
        &[("authorization", &writer), ("x-http-method-override", few)],
    );
    assert_eq!(v.decision, Decision::Allow);
}

#[test]
fn forwarded_is_read_strictly_and_as_spring_reads_it() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for value in [
        // Rack strips the spaces around '=' and reads admin.example.com.
        "for=x; host = admin.example.com",
        "host =admin.example.com",
        // Spring finds the first 'host=' anywhere.
        "xhost=admin.example.com;host=a.com",
        "for=\"host=admin.example.com\";host=a.com",
        "by=ghost=admin.example.com",
        // Not RFC 7239 at all.
        "host",
        "host=\"admin.example.com",
    ] {
        let v = decide_on(
            &c,
            "GET",
            "/x",
            "a.com",
            &[("authorization", &t), ("forwarded", value)],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{value}");
    }
    let v = decide_on(
        &c,
        "GET",
        "/x",
        "a.com",
        &[
            ("authorization", &t),
            (
                "forwarded",
                "for=192.0.2.60;proto=https;host=a.com, for=\"[2001:db8::1]:80\"",
            ),
        ],
    );
    assert_eq!(v.decision, Decision::Allow);
}

#[test]
fn a_token_under_another_scheme_or_hidden_in_a_cookie_list_is_a_second_token() {
    let c = config();
    let good = token_with(|_| {});
    let revoked = token_with(|c| c["jti"] = json!("other"));
    for value in [
        format!("JWT {revoked}"),
        format!("Token {revoked}"),
        revoked.clone(),
    ] {
        let v = decide_on(
            &c,
            "GET",
            "/orders/7",
            "api.example.com",
            &[("x-api-key", &good), ("authorization", &value)],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{value}");
    }
    // ASP.NET Core and older Rack split cookies on ',' too.
    let v = decide_on(
        &c,
        "GET",
        "/orders/7",
        "api.example.com",
        &[
            ("authorization", &bearer(&good)),
            ("cookie", &format!("a=1, tg_token={revoked}")),
        ],
    );
    assert_eq!(reason(&v), Some(Reason::BadRequest));
    // PHP, Rails and qs keep an array under the token's name.
    for path in [
        "/orders/7?access_token[]=x",
        "/orders/7?access_token[a]=x",
        "/orders/7?access_token%5B%5D=x",
    ] {
        let v = decide_on(
            &c,
            "GET",
            path,
            "api.example.com",
            &[("authorization", &bearer(&good))],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{path}");
    }
}

#[test]
fn a_path_override_header_is_read_as_another_path() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for name in ["x-original-url", "X-Rewrite-URL", "x_original_url"] {
        let v = decide_on(
            &c,
            "GET",
            "/orders/7",
            "api.example.com",
            &[("authorization", &t), (name, "/admin")],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{name}");
    }
}

#[test]
fn other_host_headers_and_overlong_escapes_are_read() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for name in ["x-original-host", "X-Host", "x_original_host"] {
        let v = decide_on(
            &c,
            "GET",
            "/x",
            "a.com",
            &[("authorization", &t), (name, "admin.example.com")],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{name}");
    }
    // %C0%AE is '.' to a lenient UTF-8 decoder.
    let v = decide_on(
        &c,
        "GET",
        "/orders/%c0%ae%c0%ae/admin",
        "a.com",
        &[("authorization", &t)],
    );
    assert_eq!(reason(&v), Some(Reason::BadRequest));
}

// --- found by the second red-team round ---

#[test]
fn a_php_front_controller_or_trailing_white_space_is_read_as_the_path_behind() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for path in [
        // Symfony, Laravel, PATH_INFO set-ups.
        "/index.php/admin/users",
        "/app.PHP/internal/x",
        // CodeIgniter routes the query of its front controller.
        "/index.php?/admin/users",
        "/?/internal/x",
        "/index.php/?/admin",
        // A regex `$` matches before a final newline.
        "/admin%0A",
        "/internal%09%20",
        "/index.php/admin%0D",
        // Windows script names escaped as IIS and Apache decode them, and
        // before CodeIgniter's query (red-team round 5).
        "/public/index.php%3A%3A%24DATA/internal",
        "/index.php%3a%3a%24data/admin",
        "/index.php::%24DATA/admin",
        "/public/index.php.?/internal",
        "/public/index.php%20?/internal",
        "/public/index.php::$DATA?/internal",
        "/index.php%3A%3A%24DATA?/admin",
        // Other scripts a stock server runs with PATH_INFO (round 6).
        "/index.phtml/admin",
        "/index.phar/admin",
        "/index.php7/admin",
        "/cgi-bin/trac.cgi/admin",
        "/trac.fcgi/internal/x",
        "/x.pl/admin",
        "/default.aspx/admin",
        // Round 7: more script names, any extension of a name, and every
        // file under /cgi-bin/.
        "/healthz/x.pht/admin",
        "/healthz/index.cfm/admin",
        "/healthz/Service.svc/admin/users",
        "/healthz/x.cshtml/admin",
        "/healthz/x.php.jpg/admin",
        "/healthz/x.cgi.txt/internal",
        "/healthz/cgi-bin/x/internal",
        "/healthz/CGI-BIN/x/admin",
        "/healthz/cgi%2Dbin/x/admin",
        // Round 8: IIS's handlers, Lucee, Python's htbin, Windows names of
        // the CGI directory, and CodeIgniter's query behind a CGI file.
        "/healthz/x.dll/admin",
        "/healthz/x.exe/internal",
        "/healthz/x.cfml/admin",
        "/htbin/x/admin",
        "/healthz/cgi-bin./x/admin",
        "/healthz/cgi-bin%20/x/internal",
        "/healthz/cgi-bin::$INDEX_ALLOCATION/x/admin",
        "/healthz/CGI-BI~1/x/admin",
        "/healthz/cgi-bin/x?/admin",
        "/healthz/cgi-bin/x.?/internal",
    ] {
        let v = decide_on(&c, "GET", path, "api.example.com", &[("authorization", &t)]);
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{path}");
    }
    // The usual requests keep their one reading.
    for path in ["/index.php", "/orders/7?/x", "/?page=2", "/orders/7"] {
        let v = decide_on(&c, "GET", path, "api.example.com", &[("authorization", &t)]);
        assert_eq!(v.decision, Decision::Allow, "{path}");
    }
}

#[test]
fn script_name_and_path_info_headers_are_bad_requests() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for name in ["script_name", "SCRIPT-NAME", "path_info", "Path-Info"] {
        let v = decide_on(
            &c,
            "GET",
            "/orders/7",
            "api.example.com",
            &[("authorization", &t), (name, "/admin")],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{name}");
    }
}

#[test]
fn a_lower_case_method_is_read_as_its_upper_case() {
    let c = with_delete_rule();
    let writer = bearer(&token_with(|c| {
        c["scope"] = json!("orders:read orders:write")
    }));
    // HTTP/2 lets `delete` through; Express and Django take it for DELETE.
    let v = decide_on(
        &c,
        "delete",
        "/orders/7",
        "api.example.com",
        &[("authorization", &writer)],
    );
    assert_eq!(reason(&v), Some(Reason::BadRequest));
    let v = decide_on(
        &c,
        "DELETE",
        "/orders/7",
        "api.example.com",
        &[("authorization", &writer)],
    );
    assert_eq!(reason(&v), Some(Reason::InsufficientScope));
}

#[test]
fn a_forwarded_value_with_many_hosts_is_refused_in_linear_time() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    let many = vec!["host=a.com"; 11_000].join(";");
    let started = std::time::Instant::now();
    let v = decide_on(
        &c,
        "GET",
        "/x",
        "a.com",
        &[("authorization", &t), ("forwarded", &many)],
    );
    assert_eq!(reason(&v), Some(Reason::BadRequest));
    // Not a timing assertion on the gate's speed: a quadratic scan of this
    // value takes seconds in a debug build, a linear one microseconds.
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let few = ["host=a.com"; 4].join(";");
    let v = decide_on(
        &c,
        "GET",
        "/x",
        "a.com",
        &[("authorization", &t), ("forwarded", &few)],
    );
    assert_eq!(v.decision, Decision::Allow);
}

#[test]
fn rack_and_qs_bracket_spellings_of_the_token_name_are_a_second_token() {
    let c = config();
    let good = bearer(&token_with(|_| {}));
    for path in [
        "/orders/7?[access_token]=x",
        "/orders/7?access_token]=x",
        "/orders/7?%5Baccess_token%5D=x",
    ] {
        let v = decide_on(
            &c,
            "GET",
            path,
            "api.example.com",
            &[("authorization", &good)],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{path}");
    }
}

// --- found by the third red-team round ---

#[test]
fn cutting_the_token_out_of_the_query_never_changes_the_rule() {
    let c = config();
    let t = token_with(|_| {});
    for path in [
        // Anonymous: any token, or none, is cut; CodeIgniter then reads
        // `?/admin`.
        "/healthz/index.php?access_token=x&/admin/users".to_owned(),
        "/healthz/index.php?access_token&/internal/x".to_owned(),
        // With a valid token that lacks the admin role.
        format!("/?access_token={t}&/admin"),
        format!("/index.php?access_token={t};/admin"),
        // Under a Windows spelling of the script.
        format!("/index.php.?access_token={t}&/admin"),
        format!("/index.php%20?access_token={t}&/admin"),
        // Cut, the path reads as the refresh path.
        "/healthz/index.php?access_token&/oauth/token".to_owned(),
    ] {
        let v = decide_on(&c, "GET", &path, "api.example.com", &[]);
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{path}");
    }
    // The usual query token is cut and the request goes on.
    let v = decide_on(
        &c,
        "GET",
        &format!("/orders/7?access_token={t}&page=2"),
        "api.example.com",
        &[],
    );
    assert_eq!(v.decision, Decision::Allow);
    assert_eq!(v.new_path.as_deref(), Some(&b"/orders/7?page=2"[..]));
}

#[test]
fn every_trailing_white_space_an_upstream_trims_is_read() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for path in [
        "/admin%E2%80%A8",
        "/internal%C2%85",
        "/admin%E2%80%80",
        "/internal%EF%BB%BF",
        "/admin%1F",
        "/admin%0A/",
        "/internal%20%C2%A0/",
        "/oauth/token%E2%80%A9",
        // CodeIgniter installed in a directory.
        "/healthz/?/admin",
    ] {
        let v = decide_on(&c, "GET", path, "api.example.com", &[("authorization", &t)]);
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{path}");
    }
    // U+200B is no white space to any trim.
    let v = decide_on(
        &c,
        "GET",
        "/reports%E2%80%8B",
        "api.example.com",
        &[("authorization", &t)],
    );
    assert_eq!(v.decision, Decision::Allow);
}

// --- found by the fourth red-team round ---

#[test]
fn a_cookie_name_padded_with_what_a_trim_drops_is_the_token_name() {
    let c = config();
    let good = bearer(&token_with(|_| {}));
    let other = token_with(|c| c["jti"] = json!("other"));
    for cookie in [
        format!("\u{a0}tg_token={other}"),
        format!("a=1; \u{85}tg_token={other}"),
        format!("tg_token\u{2028}={other}"),
    ] {
        // Header bytes as sent (the Latin-1 bytes a WSGI server decodes).
        let raw: Vec<u8> = cookie
            .chars()
            .flat_map(|ch| match ch {
                '\u{a0}' => vec![0xa0],
                '\u{85}' => vec![0x85],
                ch => ch.to_string().into_bytes(),
            })
            .collect();
        let headers = vec![
            ("authorization".to_owned(), good.clone().into_bytes()),
            ("cookie".to_owned(), raw),
        ];
        let list = fresh_list();
        let req = Request {
            method: "GET",
            path: b"/orders/7",
            authority: b"api.example.com",
            headers: &headers,
        };
        let v = c.decide(
            &req,
            &FixedConnection::default(),
            Revocations {
                list: Some(&list),
                fresh_at: Some(NOW),
                lost: false,
            },
            NOW,
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{cookie:?}");
    }
}

#[test]
fn white_space_before_an_extension_and_windows_script_names_are_read() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for path in [
        "/admin%20.json",
        "/internal%E2%80%A8.json",
        "/admin%01",
        "/index.php./admin",
        "/index.php%20/internal/x",
        "/index.php::$DATA/admin",
        "/oauth/token%20.json",
    ] {
        let v = decide_on(&c, "GET", path, "api.example.com", &[("authorization", &t)]);
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{path}");
    }
}

// --- the bounds and the strict readings, at their edges ---

/// At most 8 method-override values are read, all headers and `_method`
/// parameters together; a ninth is a bad request (docs/security.md,
/// "Rules: path, method, host": method overrides).
#[test]
fn eight_method_override_values_are_read_and_a_ninth_is_a_bad_request() {
    let c = with_delete_rule();
    let writer = bearer(&token_with(|c| {
        c["scope"] = json!("orders:read orders:write")
    }));
    // Every value falls under the same rule as POST: the request is decided.
    let eight = "PUT, PATCH, POST, PUT, PATCH, POST, PUT, PATCH";
    let v = decide_on(
        &c,
        "POST",
        "/orders/7",
        "api.example.com",
        &[
            ("authorization", &writer),
            ("x-http-method-override", eight),
        ],
    );
    assert_eq!(v.decision, Decision::Allow);
    // The same eight split between a header and the query still count once each.
    let v = decide_on(
        &c,
        "POST",
        "/orders/7?_method=PUT",
        "api.example.com",
        &[
            ("authorization", &writer),
            (
                "x-http-method-override",
                "PATCH, POST, PUT, PATCH, POST, PUT, PATCH",
            ),
        ],
    );
    assert_eq!(v.decision, Decision::Allow);
    let nine = format!("{eight}, POST");
    let v = decide_on(
        &c,
        "POST",
        "/orders/7",
        "api.example.com",
        &[
            ("authorization", &writer),
            ("x-http-method-override", &nine),
        ],
    );
    assert_eq!(reason(&v), Some(Reason::BadRequest));
}

/// A `Forwarded` value is strict RFC 7239: every element is `name=value`.
/// A name without `=` or a value without a name is a bad request, and an
/// escaped quote (a quoted-pair) inside a quoted value does not end it
/// (docs/security.md, "Rules: path, method, host": `Forwarded`).
#[test]
fn a_forwarded_pair_needs_a_name_and_an_equals_sign_and_quoted_pairs_are_read() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    for value in ["host admin.example.com", "=admin.example.com", "for=x;=y"] {
        let v = decide_on(
            &c,
            "GET",
            "/x",
            "a.com",
            &[("authorization", &t), ("forwarded", value)],
        );
        assert_eq!(reason(&v), Some(Reason::BadRequest), "{value}");
    }
    for value in [
        r#"for="x\"y""#,
        r#"for="\\";host=a.com"#,
        r#"for="ab\"cd\"ef""#,
    ] {
        let v = decide_on(
            &c,
            "GET",
            "/x",
            "a.com",
            &[("authorization", &t), ("forwarded", value)],
        );
        assert_eq!(v.decision, Decision::Allow, "{value}");
    }
}

/// At most 32 readings of the path in all: path-override headers that
/// bring more are a bad request, up to 32 are decided (docs/security.md,
/// "Rules: path, method, host": path overrides).
#[test]
fn thirty_two_path_readings_are_decided_and_more_are_a_bad_request() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    let paths: Vec<String> = (1..=33).map(|i| format!("/orders/{i}")).collect();
    let headers = |n: usize| -> Vec<(&str, &str)> {
        let mut h = vec![("authorization", t.as_str())];
        h.extend(paths.iter().take(n).map(|p| ("x-original-url", p.as_str())));
        h
    };
    let v = decide_on(&c, "GET", "/orders/7", "api.example.com", &headers(1));
    assert_eq!(
        v.decision,
        Decision::Allow,
        "one override under the same rule"
    );
    let v = decide_on(&c, "GET", "/orders/7", "api.example.com", &headers(32));
    assert_eq!(v.decision, Decision::Allow, "32 readings");
    let v = decide_on(&c, "GET", "/orders/7", "api.example.com", &headers(33));
    assert_eq!(reason(&v), Some(Reason::BadRequest), "33 readings");
    // An override's own readings count too: `/orders/a.json/` is also
    // `/orders/a.json` and `/orders/a` to some upstream.
    let more = tokengate::policy::path_readings("/orders/a.json/").len();
    assert!(more >= 2, "{more}");
    for (plain, expected) in [(31 - more, None), (32 - more, Some(Reason::BadRequest))] {
        let mut h = headers(plain);
        h.push(("x-original-url", "/orders/a.json/"));
        let v = decide_on(&c, "GET", "/orders/7", "api.example.com", &h);
        assert_eq!(reason(&v), expected, "{plain} + 1 + {more} readings");
    }
}

/// At most 8 readings of the host (`:authority`, `host`, the
/// X-Forwarded-Host family, `Forwarded`) are compared; a ninth distinct one
/// is a bad request (docs/security.md, "Rules: path, method, host": other hosts).
#[test]
fn eight_host_readings_are_decided_and_a_ninth_is_a_bad_request() {
    let c = config();
    let t = bearer(&token_with(|_| {}));
    let seven = "b.com, c.com, d.com, e.com, f.com, g.com, h.com";
    let v = decide_on(
        &c,
        "GET",
        "/x",
        "a.com",
        &[("authorization", &t), ("x-forwarded-host", seven)],
    );
    assert_eq!(v.decision, Decision::Allow);
    // A repeated host is one reading.
    let v = decide_on(
        &c,
        "GET",
        "/x",
        "a.com",
        &[
            ("authorization", &t),
            ("x-forwarded-host", &format!("{seven}, a.com, b.com")),
        ],
    );
    assert_eq!(v.decision, Decision::Allow);
    let v = decide_on(
        &c,
        "GET",
        "/x",
        "a.com",
        &[
            ("authorization", &t),
            ("x-forwarded-host", &format!("{seven}, i.com")),
        ],
    );
    assert_eq!(reason(&v), Some(Reason::BadRequest));
}

/// Each forged name is removed once however often it is sent, and a
/// pseudo-header is never taken for one (docs/security.md, "Headers the upstream trusts":
/// forged claim headers).
#[test]
fn each_forged_header_name_is_listed_once() {
    let c = config();
    let headers: Vec<(String, Vec<u8>)> = [
        ("x-auth-subject", "a"),
        ("x_auth_subject", "b"),
        ("x-auth-subject", "c"),
        (":authority", "a.com"),
        ("x-other", "d"),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
    .collect();
    assert_eq!(
        c.forged_names(&headers, false),
        ["x-auth-subject", "x_auth_subject"]
    );
}
