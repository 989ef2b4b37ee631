//! Every refusal reason of docs/responses.md, reached through `Config::decide`
//! with a fixed instant, and the request edits of an allowed request.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::json;
use tokengate::config::{Config, Secrets};
use tokengate::gate::{Decision, FixedConnection, Request, Revocations, Verdict};
use tokengate::keys::{decode_secret, Alg, Key, KeyId, SecretEncoding};
use tokengate::refusal::Reason;
use tokengate::revocation::{Document, Entry, Snapshot};
use tokengate::token::sign;

const NOW: u64 = 1_764_259_200; // 2025-11-27T16:00:00Z

/// The orders-api fixture every suite shares, `tests/data/orders-api.json`.
fn fixture() -> serde_json::Value {
    serde_json::from_str(include_str!("data/orders-api.json")).unwrap()
}

/// The fixture, with two changes that let every reason be reached: `exp`
/// is forwarded too, and its last rule, the catch-all `/`, gives way to a
/// rule on `/api` for the hosts under `example.com`, so a request no rule
/// names is refused with `no_rule`.
fn config_json() -> serde_json::Value {
    let mut value = fixture();
    value["claims_to_headers"]["exp"] = json!("x-auth-exp");
    let rules = value["rules"].as_array_mut().unwrap();
    assert_eq!(rules.pop(), Some(json!({"match": {"prefix": "/"}})));
    rules.push(json!({"match": {"prefix": "/api", "hosts": ["*.example.com"]}}));
    value
}

fn config_from(value: serde_json::Value) -> Config {
    Config::from_json(value.to_string().as_bytes(), &Secrets::Placeholder).unwrap()
}

fn config() -> Config {
    config_from(config_json())
}

/// The secret of the fixture's key `kid`, and its algorithm.
fn fixture_key(kid: &str) -> (Vec<u8>, Alg) {
    let fixture = fixture();
    let key = fixture["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap();
    let secret = decode_secret(key["secret"].as_str().unwrap(), SecretEncoding::Base64).unwrap();
    let alg = Alg::from_name(key["alg"].as_str().unwrap()).unwrap();
    (secret, alg)
}

/// The fixture's first key, HS256 `2026-11`: every token below is signed
/// with it unless a test says otherwise.
const KID: &str = "2026-11";

fn key() -> Key {
    let (secret, alg) = fixture_key(KID);
    Key::new(KeyId(KID.into()), alg, &secret).unwrap()
}

fn claims() -> serde_json::Value {
    json!({
        "iss": "https://auth.example.com", "aud": "orders-api", "sub": "user-7",
        "jti": "t-1", "iat": NOW - 60, "exp": NOW + 600, "scope": "orders:read"
    })
}

fn token_with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut c = claims();
    edit(&mut c);
    sign(&c, &key(), "JWT")
}

fn token() -> String {
    token_with(|_| {})
}

struct Req {
    method: &'static str,
    path: String,
    authority: String,
    headers: Vec<(String, Vec<u8>)>,
    tls: bool,
}

fn get(path: &str) -> Req {
    Req {
        method: "GET",
        path: path.into(),
        authority: "api.example.com".into(),
        headers: vec![],
        tls: true,
    }
}

impl Req {
    fn bearer(self, token: &str) -> Req {
        self.header("authorization", &format!("Bearer {token}"))
    }
    fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.as_bytes().to_vec()));
        self
    }
    fn method(mut self, m: &'static str) -> Req {
        self.method = m;
        self
    }
    fn run_with(&self, config: &Config, revocations: Revocations<'_>, now: u64) -> Verdict {
        let req = Request {
            method: self.method,
            path: self.path.as_bytes(),
            authority: self.authority.as_bytes(),
            headers: &self.headers,
        };
        config.decide(
            &req,
            &FixedConnection {
                tls: self.tls,
                peer_certificate_sha256: None,
            },
            revocations,
            now,
        )
    }
    fn run(&self, config: &Config) -> Verdict {
        let empty = fresh_list(&[]);
        self.run_with(
            config,
            Revocations {
                list: Some(&empty),
                fresh_at: Some(NOW),
                lost: false,
            },
            NOW,
        )
    }
    fn decision(&self) -> Decision {
        self.run(&config()).decision
    }
}

fn fresh_list(entries: &[Entry]) -> Snapshot {
    Snapshot::build(
        &Document {
            version: 1,
            generated_at: None,
            entries: entries.to_vec(),
        },
        NOW,
    )
}

fn refused(reason: Reason) -> Decision {
    Decision::Deny(reason)
}

#[test]
fn allows_a_valid_token_and_forwards_claims() {
    let v = get("/orders/7")
        .bearer(&token())
        .header("x-auth-subject", "spoofed")
        .run(&config());
    assert_eq!(v.decision, Decision::Allow);
    assert!(v.remove_headers.contains(&"x-auth-subject".to_owned()));
    assert!(v.remove_headers.contains(&"authorization".to_owned()));
    assert!(v
        .set_headers
        .contains(&("x-auth-subject".into(), "user-7".into())));
    assert!(v
        .set_headers
        .contains(&("x-auth-scopes".into(), "orders:read".into())));
    assert!(v
        .set_headers
        .contains(&("x-auth-token-id".into(), "t-1".into())));
    assert!(v
        .set_headers
        .contains(&("x-auth-exp".into(), (NOW + 600).to_string())));
    assert_eq!(
        (v.sub.as_deref(), v.jti.as_deref(), v.kid.as_deref()),
        (Some("user-7"), Some("t-1"), Some(KID))
    );
}

/// Claims beyond the registered ones go upstream each in its own header,
/// strings as they are and numbers in decimal; an absent one sets none
/// (docs/configuration.md, "Token sources and forwarding").
#[test]
fn each_forwarded_extra_claim_goes_in_its_own_header() {
    let mut json = config_json();
    json["claims_to_headers"]["tenant"] = json!("x-auth-tenant");
    json["claims_to_headers"]["level"] = json!("x-auth-level");
    json["claims_to_headers"]["region"] = json!("x-auth-region");
    let config = config_from(json);
    let t = token_with(|c| {
        c["tenant"] = json!("acme");
        c["level"] = json!(3);
    });
    let v = get("/orders/7").bearer(&t).run(&config);
    assert_eq!(v.decision, Decision::Allow);
    assert!(v
        .set_headers
        .contains(&("x-auth-tenant".into(), "acme".into())));
    assert!(v.set_headers.contains(&("x-auth-level".into(), "3".into())));
    assert!(
        !v.set_headers.iter().any(|(h, _)| h == "x-auth-region"),
        "{:?}",
        v.set_headers
    );
}

/// `require_claims` may name any claim, not only registered ones: a token
/// without it is malformed (docs/configuration.md, "Filter (`root_id: tokengate`)").
#[test]
fn a_required_extra_claim_must_be_present() {
    let mut json = config_json();
    json["require_claims"] = json!(["exp", "tenant"]);
    let config = config_from(json);
    let with = token_with(|c| c["tenant"] = json!("acme"));
    assert_eq!(
        get("/orders/7").bearer(&with).run(&config).decision,
        Decision::Allow
    );
    assert_eq!(
        get("/orders/7").bearer(&token()).run(&config).decision,
        refused(Reason::Malformed)
    );
}

#[test]
fn bad_request_for_a_path_escaping_the_root() {
    assert_eq!(
        get("/../orders").bearer(&token()).decision(),
        refused(Reason::BadRequest)
    );
    assert_eq!(
        get("/orders%2F7").bearer(&token()).decision(),
        refused(Reason::BadRequest)
    );
}

#[test]
fn bad_request_for_two_tokens() {
    let t = token();
    let r = get("/orders").bearer(&t).header("x-api-key", &t);
    assert_eq!(r.decision(), refused(Reason::BadRequest));
    let r = get(&format!("/orders?access_token={t}&access_token={t}"));
    assert_eq!(r.decision(), refused(Reason::BadRequest));
    let r = get("/orders").header("cookie", &format!("tg_token={t}; tg_token={t}"));
    assert_eq!(r.decision(), refused(Reason::BadRequest));
    // Envoy joins two Authorization headers with a comma.
    let r = get("/orders").header("authorization", &format!("Bearer {t},Bearer {t}"));
    assert_eq!(r.decision(), refused(Reason::BadRequest));
}

#[test]
fn missing_without_a_token() {
    assert_eq!(get("/orders").decision(), refused(Reason::Missing));
    // Another scheme yields no token.
    assert_eq!(
        get("/orders")
            .header("authorization", "Basic dXNlcjpwdw==")
            .decision(),
        refused(Reason::Missing)
    );
}

#[test]
fn tls_required_without_tls() {
    let mut value = config_json();
    value["require_tls"] = json!(true);
    let mut r = get("/orders").bearer(&token());
    r.tls = false;
    assert_eq!(
        r.run(&config_from(value.clone())).decision,
        refused(Reason::TlsRequired)
    );
    r.tls = true;
    assert_eq!(r.run(&config_from(value)).decision, Decision::Allow);
}

#[test]
fn malformed_token() {
    assert_eq!(
        get("/orders").bearer("abc.def").decision(),
        refused(Reason::Malformed)
    );
    assert_eq!(
        get("/orders")
            .bearer(&token_with(|c| c["exp"] = json!("soon")))
            .decision(),
        refused(Reason::Malformed)
    );
    // A required claim missing (jti).
    let t = token_with(|c| {
        c.as_object_mut().unwrap().remove("jti");
    });
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::Malformed)
    );
}

#[test]
fn unknown_key() {
    let (secret, _) = fixture_key(KID);
    let other = Key::new(KeyId("zz".into()), Alg::Hs256, &secret).unwrap();
    assert_eq!(
        get("/orders")
            .bearer(&sign(&claims(), &other, "JWT"))
            .decision(),
        refused(Reason::UnknownKey)
    );
}

#[test]
fn bad_signature() {
    let forged = Key::new(KeyId(KID.into()), Alg::Hs256, &[0; 32]).unwrap();
    assert_eq!(
        get("/orders")
            .bearer(&sign(&claims(), &forged, "JWT"))
            .decision(),
        refused(Reason::BadSignature)
    );
}

#[test]
fn expired_at_exp_plus_skew() {
    let t = token_with(|c| c["exp"] = json!(NOW - 30));
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::Expired)
    );
    let t = token_with(|c| c["exp"] = json!(NOW - 29));
    assert_eq!(get("/orders").bearer(&t).decision(), Decision::Allow);
}

#[test]
fn not_yet_valid_by_nbf_or_iat() {
    let t = token_with(|c| c["nbf"] = json!(NOW + 31));
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::NotYetValid)
    );
    let t = token_with(|c| c["nbf"] = json!(NOW + 30));
    assert_eq!(get("/orders").bearer(&t).decision(), Decision::Allow);
    let t = token_with(|c| c["iat"] = json!(NOW + 31));
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::NotYetValid)
    );
}

/// `iat` is refused only when later than now + `clock_skew_s`: a token
/// issued exactly at that instant is valid (docs/token.md, "Claims").
#[test]
fn a_token_issued_exactly_at_now_plus_skew_is_accepted() {
    let t = token_with(|c| c["iat"] = json!(NOW + 30));
    assert_eq!(get("/orders").bearer(&t).decision(), Decision::Allow);
    let t = token_with(|c| c["iat"] = json!(NOW as f64 + 30.5));
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::NotYetValid)
    );
}

/// `max_lifetime_s` refuses a token whose `exp - iat` exceeds it: exactly
/// the maximum is fine (docs/configuration.md, "Filter (`root_id: tokengate`)").
#[test]
fn a_lifetime_of_exactly_max_lifetime_s_is_accepted() {
    let t = token_with(|c| {
        c["iat"] = json!(NOW - 10);
        c["exp"] = json!(NOW - 10 + 86400);
    });
    assert_eq!(get("/orders").bearer(&t).decision(), Decision::Allow);
}

#[test]
fn lifetime_too_long_or_without_iat() {
    let t = token_with(|c| {
        c["iat"] = json!(NOW - 10);
        c["exp"] = json!(NOW - 10 + 86401);
    });
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::LifetimeTooLong)
    );
    let t = token_with(|c| {
        c.as_object_mut().unwrap().remove("iat");
    });
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::LifetimeTooLong)
    );
}

#[test]
fn wrong_issuer() {
    let t = token_with(|c| c["iss"] = json!("https://evil.example.com"));
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::WrongIssuer)
    );
}

#[test]
fn wrong_audience_including_empty_array() {
    let t = token_with(|c| c["aud"] = json!(["billing"]));
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::WrongAudience)
    );
    let t = token_with(|c| c["aud"] = json!([]));
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::WrongAudience)
    );
    let t = token_with(|c| c["aud"] = json!(["billing", "orders-api"]));
    assert_eq!(get("/orders").bearer(&t).decision(), Decision::Allow);
}

#[test]
fn revoked_by_static_entry_and_by_list() {
    let t = token_with(|c| c["jti"] = json!("static-revoked"));
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::Revoked)
    );
    let list = fresh_list(&[Entry::Sub {
        sub: "user-7".into(),
        before: Some(NOW),
        exp: None,
    }]);
    let v = get("/orders").bearer(&token()).run_with(
        &config(),
        Revocations {
            list: Some(&list),
            fresh_at: Some(NOW),
            lost: false,
        },
        NOW,
    );
    assert_eq!(v.decision, refused(Reason::Revoked));
}

#[test]
fn revocation_unavailable_when_stale_or_never_fetched() {
    let list = fresh_list(&[]);
    let r = get("/orders").bearer(&token());
    let stale = r.run_with(
        &config(),
        Revocations {
            list: Some(&list),
            fresh_at: Some(NOW - 61),
            lost: false,
        },
        NOW,
    );
    assert_eq!(stale.decision, refused(Reason::RevocationUnavailable));
    let never = r.run_with(&config(), Revocations::default(), NOW);
    assert_eq!(never.decision, refused(Reason::RevocationUnavailable));
    let mut value = config_json();
    value["revocation"]["on_unavailable"] = json!("allow");
    let allow = r.run_with(&config_from(value), Revocations::default(), NOW);
    assert_eq!(allow.decision, Decision::Allow);
}

#[test]
fn wrong_token_type_for_a_refresh_token() {
    let t = sign(&claims(), &key(), "rt+jwt");
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::WrongTokenType)
    );
    let t = token_with(|c| c["token_use"] = json!("refresh"));
    assert_eq!(
        get("/orders").bearer(&t).decision(),
        refused(Reason::WrongTokenType)
    );
}

#[test]
fn insufficient_scope_names_the_rule_scopes() {
    let v = get("/orders")
        .method("POST")
        .bearer(&token())
        .run(&config());
    assert_eq!(v.decision, refused(Reason::InsufficientScope));
    let c = config();
    assert_eq!(v.required_scopes(&c), ["orders:write".to_owned()]);
    let response = v.response(&c).unwrap();
    // The filter's replies, rendered once, are the same.
    let replies = tokengate::gate::Replies::new(&c);
    assert_eq!(replies.for_verdict(&v), Some(&response));
    let challenge = &response
        .headers
        .iter()
        .find(|(n, _)| *n == "www-authenticate")
        .unwrap()
        .1;
    assert!(challenge.ends_with("scope=\"orders:write\""), "{challenge}");
}

#[test]
fn roles_grant_scopes_and_satisfy_role_rules() {
    let t = token_with(|c| {
        c.as_object_mut().unwrap().remove("scope");
        c["roles"] = json!(["manager"]);
    });
    let v = get("/orders").method("POST").bearer(&t).run(&config());
    assert_eq!(v.decision, Decision::Allow);
    assert!(v.set_headers.contains(&(
        "x-auth-scopes".into(),
        "orders:read orders:write reports:read".into()
    )));
    assert_eq!(
        get("/admin").bearer(&t).decision(),
        refused(Reason::InsufficientScope)
    );
    let admin = token_with(|c| c["role"] = json!("admin"));
    assert_eq!(
        get("/admin/users").bearer(&admin).decision(),
        Decision::Allow
    );
    // "*" from the admin role grants every scope.
    assert_eq!(
        get("/orders").method("DELETE").bearer(&admin).decision(),
        Decision::Allow
    );
}

#[test]
fn denied_by_a_deny_rule() {
    assert_eq!(
        get("/internal/x").bearer(&token()).decision(),
        refused(Reason::Denied)
    );
}

#[test]
fn no_rule_is_default_deny() {
    assert_eq!(
        get("/elsewhere").bearer(&token()).decision(),
        refused(Reason::NoRule)
    );
    let mut r = get("/api/x").bearer(&token());
    r.authority = "example.com".into();
    assert_eq!(r.decision(), refused(Reason::NoRule));
    r.authority = "EU.Example.com:8443".into();
    assert_eq!(r.decision(), Decision::Allow);
}

#[test]
fn anonymous_route_needs_no_token_but_strips_it_and_spoofs() {
    let v = get("/healthz")
        .bearer("garbage")
        .header("x-auth-subject", "root")
        .run(&config());
    assert_eq!(v.decision, Decision::Anonymous);
    assert!(v.remove_headers.contains(&"authorization".to_owned()));
    assert!(v.remove_headers.contains(&"x-auth-subject".to_owned()));
    assert!(v.set_headers.is_empty());
}

#[test]
fn token_is_cut_from_query_and_cookie() {
    let t = token();
    let v = get(&format!("/orders?a=1&access_token={t}&b=2")).run(&config());
    assert_eq!(v.decision, Decision::Allow);
    assert_eq!(v.new_path.as_deref(), Some(&b"/orders?a=1&b=2"[..]));
    let v = get("/orders")
        .header("cookie", &format!("theme=dark; tg_token={t}"))
        .run(&config());
    assert_eq!(v.decision, Decision::Allow);
    assert_eq!(v.new_cookie, Some(Some(b"theme=dark".to_vec())));
}

/// Cutting the token out of the query keeps every other pair with the
/// separator that stood before it, `;` as well as `&` (docs/configuration.md,
/// "Token sources and forwarding").
#[test]
fn the_query_keeps_its_own_separators_when_the_token_is_cut() {
    let t = token();
    for (path, forwarded) in [
        (
            format!("/orders?a=1&access_token={t};b=2"),
            "/orders?a=1;b=2",
        ),
        (
            format!("/orders?a=1;access_token={t}&b=2;c=3"),
            "/orders?a=1&b=2;c=3",
        ),
    ] {
        let v = get(&path).run(&config());
        assert_eq!(v.decision, Decision::Allow, "{path}");
        assert_eq!(v.new_path.as_deref(), Some(forwarded.as_bytes()), "{path}");
    }
}

/// The header map the adapter sets in one call is the request's own, in
/// order, without the token and forged claim headers, then the claim
/// headers set (docs/configuration.md, "Token sources and forwarding").
#[test]
fn the_edited_header_map_keeps_other_headers_in_order_then_adds_the_claims() {
    let t = token();
    let headers: Vec<(String, Vec<u8>)> = [
        ("x-request-id", "r-1".to_owned()),
        ("authorization", format!("Bearer {t}")),
        ("x-auth-subject", "spoofed".to_owned()),
        ("accept", "*/*".to_owned()),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.into_bytes()))
    .collect();
    let mut req = get("/orders/7");
    req.headers = headers.clone();
    let v = req.run(&config());
    assert_eq!(v.decision, Decision::Allow);
    let map = v.edited_map(&headers);
    let mut want: Vec<(&str, &[u8])> = vec![("x-request-id", b"r-1"), ("accept", b"*/*")];
    want.extend(
        v.set_headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes())),
    );
    assert_eq!(map, want);
    assert!(map.contains(&("x-auth-subject", &b"user-7"[..])));
}

#[test]
fn forward_token_keeps_it() {
    let mut value = config_json();
    value["forward_token"] = json!(true);
    let v = get("/orders").bearer(&token()).run(&config_from(value));
    assert_eq!(v.decision, Decision::Allow);
    assert!(!v.remove_headers.contains(&"authorization".to_owned()));
}

#[test]
fn verified_values_are_not_logged_before_the_mac_holds() {
    let forged = Key::new(KeyId(KID.into()), Alg::Hs256, &[0; 32]).unwrap();
    let v = get("/orders")
        .bearer(&sign(&claims(), &forged, "JWT"))
        .run(&config());
    assert_eq!((v.sub, v.jti, v.kid), (None, None, None));
}

#[test]
fn refusal_bodies_carry_error_and_reason() {
    for (req, reason) in [
        (get("/orders"), Reason::Missing),
        (get("/internal"), Reason::Denied),
    ] {
        let c = config();
        let v = req.run(&c);
        let r = v.response(&c).unwrap();
        assert_eq!(tokengate::gate::Replies::new(&c).for_verdict(&v), Some(&r));
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["reason"], reason.as_str());
        assert_eq!(r.status, reason.status());
    }
}

#[test]
fn hs384_key_verifies_by_kid() {
    let (secret, alg) = fixture_key("2026-10");
    assert_eq!(alg, Alg::Hs384);
    let k = Key::new(KeyId("2026-10".into()), alg, &secret).unwrap();
    assert_eq!(
        get("/orders")
            .bearer(&sign(&claims(), &k, "JWT"))
            .decision(),
        Decision::Allow
    );
}

#[test]
fn binding_mismatch_without_the_bound_certificate() {
    use sha2::{Digest, Sha256};
    let digest: [u8; 32] = Sha256::digest(b"client certificate DER").into();
    let thumb = tokengate::token::b64url_encode(&digest);
    let t = token_with(|c| c["cnf"] = json!({"x5t#S256": thumb}));
    let run = |cert: Option<[u8; 32]>| {
        let r = get("/orders").bearer(&t);
        let empty = fresh_list(&[]);
        let req = Request {
            method: r.method,
            path: r.path.as_bytes(),
            authority: r.authority.as_bytes(),
            headers: &r.headers,
        };
        config()
            .decide(
                &req,
                &FixedConnection {
                    tls: true,
                    peer_certificate_sha256: cert,
                },
                Revocations {
                    list: Some(&empty),
                    fresh_at: Some(NOW),
                    lost: false,
                },
                NOW,
            )
            .decision
    };
    assert_eq!(run(Some(digest)), Decision::Allow);
    assert_eq!(run(Some([0; 32])), refused(Reason::BindingMismatch));
    assert_eq!(run(None), refused(Reason::BindingMismatch));
    // An unbound token needs no certificate.
    assert_eq!(get("/orders").bearer(&token()).decision(), Decision::Allow);
}

#[test]
fn cached_tokens_still_expire_and_get_revoked() {
    use tokengate::token::VerifyCache;
    let c = config();
    let mut cache = VerifyCache::new(4, 1 << 20);
    let r = get("/orders").bearer(&token());
    let empty = fresh_list(&[]);
    let req = Request {
        method: r.method,
        path: r.path.as_bytes(),
        authority: r.authority.as_bytes(),
        headers: &r.headers,
    };
    let conn = FixedConnection {
        tls: true,
        peer_certificate_sha256: None,
    };
    let fresh = Revocations {
        list: Some(&empty),
        fresh_at: Some(NOW),
        lost: false,
    };
    assert_eq!(
        c.decide_with(&req, &conn, fresh, NOW, &mut cache).decision,
        Decision::Allow
    );
    // The same token, now cached, later than exp + skew.
    let later = NOW + 700;
    let fresh_later = Revocations {
        list: Some(&empty),
        fresh_at: Some(later),
        lost: false,
    };
    assert_eq!(
        c.decide_with(&req, &conn, fresh_later, later, &mut cache)
            .decision,
        refused(Reason::Expired)
    );
    // Revoked after it was cached.
    let list = fresh_list(&[Entry::Jti {
        jti: "t-1".into(),
        exp: None,
    }]);
    let revoked = Revocations {
        list: Some(&list),
        fresh_at: Some(NOW),
        lost: false,
    };
    assert_eq!(
        c.decide_with(&req, &conn, revoked, NOW, &mut cache)
            .decision,
        refused(Reason::Revoked)
    );
}

#[test]
fn cache_compares_whole_tokens() {
    use tokengate::token::VerifyCache;
    let c = config();
    // One slot: every token maps to it.
    let mut cache = VerifyCache::new(1, 1 << 20);
    let conn = FixedConnection {
        tls: true,
        peer_certificate_sha256: None,
    };
    let empty = fresh_list(&[]);
    let fresh = Revocations {
        list: Some(&empty),
        fresh_at: Some(NOW),
        lost: false,
    };
    let good = token();
    let forged = {
        let (hp, _) = good.rsplit_once('.').unwrap();
        format!("{hp}.{}", tokengate::token::b64url_encode(&[0; 32]))
    };
    for (t, expect) in [
        (&good, Decision::Allow),
        (&forged, refused(Reason::BadSignature)),
        (&good, Decision::Allow),
        (&forged, refused(Reason::BadSignature)),
    ] {
        let r = get("/orders").bearer(t);
        let req = Request {
            method: r.method,
            path: r.path.as_bytes(),
            authority: r.authority.as_bytes(),
            headers: &r.headers,
        };
        assert_eq!(
            c.decide_with(&req, &conn, fresh, NOW, &mut cache).decision,
            expect
        );
    }
}
