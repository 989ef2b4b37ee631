use super::*;

const KEY32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

fn parse(json: &str) -> Result<Config, ConfigError> {
    let env = |name: &str| match name {
        "TG_KEY" => Some(KEY32.to_owned()),
        "TG_EMPTY" => Some(String::new()),
        _ => None,
    };
    Config::from_json(json.as_bytes(), &Secrets::Env(&env))
}

fn err(json: &str) -> String {
    parse(json).unwrap_err().to_string()
}

fn minimal() -> String {
    format!(r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}]}}"#)
}

#[test]
fn pins_every_documented_default() {
    let c = parse(&minimal()).unwrap();
    assert_eq!(c.realm, "tokengate");
    assert_eq!(c.clock_skew_s, 30);
    assert_eq!(c.require_claims, vec!["exp".to_owned()]);
    assert_eq!(c.max_token_bytes, 4096);
    assert_eq!(
        c.token_sources,
        vec![TokenSource::Header {
            name: "authorization".into(),
            scheme: Some("Bearer".into())
        }]
    );
    assert!(!c.forward_token);
    assert!(c.issuers.is_empty());
    assert!(c.audiences.is_empty());
    assert_eq!(c.max_lifetime_s, None);
    assert!(!c.require_tls);
    assert!(c.revocation.is_none());
    assert!(c.refresh.is_none());
    assert!(
        c.rules.is_empty(),
        "no rules: everything is refused with no_rule"
    );
}

#[test]
fn pins_revocation_and_service_defaults() {
    let json =
        format!(r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}],"revocation":{{}}}}"#);
    let r = parse(&json).unwrap().revocation.unwrap();
    assert_eq!(r.max_stale_s, 300);
    assert_eq!(r.on_unavailable, OnUnavailable::Deny);
    assert!(r.static_list.is_empty());
    let s = ServiceConfig::from_json(
        br#"{"cluster":"c","authority":"a","path":"/v1/revocations"}"#,
        &Secrets::Placeholder,
    )
    .unwrap();
    assert_eq!(s.poll_interval_s, 5);
    assert_eq!(s.timeout_ms, 2000);
    assert_eq!(s.max_bytes, 128 * 1024 * 1024);
    assert!(s.verify_key.is_none());
}

#[test]
fn names_the_field_of_an_unknown_algorithm() {
    let json = format!(
        r#"{{"keys":[{{"kid":"a","alg":"HS256","secret":"{KEY32}"}},{{"kid":"b","alg":"HS255","secret":"{KEY32}"}}]}}"#
    );
    assert_eq!(err(&json), r#"keys[1].alg: unknown algorithm "HS255""#);
}

#[test]
fn refuses_unknown_fields_anywhere() {
    assert!(err(r#"{"keys":[],"colour":1}"#).contains("unknown field `colour`"));
    let json = format!(r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}","x":1}}]}}"#);
    let e = err(&json);
    assert!(
        e.starts_with("keys[0]") && e.contains("unknown field `x`"),
        "{e}"
    );
    let json = format!(
        r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}],"rules":[{{"match":{{"prefx":"/"}}}}]}}"#
    );
    assert!(err(&json).starts_with("rules[0].match"), "{}", err(&json));
}

#[test]
fn refuses_wrong_types_naming_the_field() {
    let json = format!(
        r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}],"clock_skew_s":"30"}}"#
    );
    assert!(
        err(&json).starts_with("clock_skew_s: invalid type"),
        "{}",
        err(&json)
    );
}

#[test]
fn refuses_empty_keys() {
    assert_eq!(err(r#"{"keys":[]}"#), "keys: at least one key is required");
    assert!(err(r#"{}"#).contains("missing field `keys`"));
}

#[test]
fn refuses_short_secrets() {
    let json = r#"{"keys":[{"kid":"k","alg":"HS512","secret":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}]}"#;
    assert_eq!(
        err(json),
        "keys[0]: the secret is 32 bytes; HS512 needs at least 64"
    );
}

#[test]
fn reads_secret_env_and_names_the_variable_never_the_value() {
    let ok = r#"{"keys":[{"kid":"k","alg":"HS256","secret_env":"TG_KEY"}]}"#;
    assert!(parse(ok).is_ok());
    let unset = r#"{"keys":[{"kid":"k","alg":"HS256","secret_env":"TG_NOPE"}]}"#;
    assert!(err(unset)
        .starts_with("keys[0].secret_env: environment variable TG_NOPE is unset or empty"));
    let empty = r#"{"keys":[{"kid":"k","alg":"HS256","secret_env":"TG_EMPTY"}]}"#;
    assert!(err(empty).contains("TG_EMPTY"));
    // check-config never reads the value.
    assert!(Config::from_json(unset.as_bytes(), &Secrets::Placeholder).is_ok());
}

#[test]
fn utf8_encoding_takes_the_text_bytes() {
    let json = r#"{"keys":[{"kid":"k","alg":"HS256","secret":"a-utf8-secret-that-is-32-bytes!!","encoding":"utf8"}]}"#;
    assert!(parse(json).is_ok());
}

#[test]
fn refuses_two_or_no_secret_sources_and_duplicate_kids() {
    let both = format!(
        r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}","secret_env":"TG_KEY"}}]}}"#
    );
    assert!(err(&both).starts_with("keys[0]: has both"));
    assert!(err(r#"{"keys":[{"kid":"k","alg":"HS256"}]}"#).starts_with("keys[0]: needs"));
    let dup = format!(
        r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}},{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}]}}"#
    );
    assert_eq!(err(&dup), r#"keys[1].kid: duplicate kid "k""#);
}

fn with(extra: &str) -> String {
    format!(r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}],{extra}}}"#)
}

#[test]
fn refuses_lower_case_methods() {
    let e = err(&with(
        r#""rules":[{"match":{"prefix":"/","methods":["GET","post"]}}]"#,
    ));
    assert_eq!(
        e,
        r#"rules[0].match.methods[1]: "post" is not an upper-case method name"#
    );
}

#[test]
fn refuses_path_and_prefix_together_and_conflicting_outcomes() {
    assert!(
        err(&with(r#""rules":[{"match":{"path":"/a","prefix":"/a"}}]"#))
            .starts_with("rules[0].match: has both")
    );
    assert!(err(&with(r#""rules":[{"anonymous":true,"deny":true}]"#))
        .starts_with("rules[0]: cannot be both"));
    assert!(err(&with(r#""rules":[{"anonymous":true,"scopes":["a"]}]"#))
        .starts_with("rules[0]: scopes and roles"));
    assert!(err(&with(r#""rules":[{"match":{"prefix":"orders"}}]"#))
        .starts_with("rules[0].match.prefix:"));
}

#[test]
fn refuses_bad_token_sources() {
    assert!(err(&with(r#""token_sources":[]"#)).starts_with("token_sources:"));
    assert!(
        err(&with(r#""token_sources":[{"header":"x","query":"y"}]"#))
            .starts_with("token_sources[0]:")
    );
    assert!(err(&with(
        r#""token_sources":[{"query":"t","scheme":"Bearer"}]"#
    ))
    .starts_with("token_sources[0].scheme"));
    assert!(err(&with(r#""token_sources":[{"header":"bad header"}]"#))
        .starts_with("token_sources[0].header"));
}

#[test]
fn service_refuses_zero_poll_interval_and_missing_fields() {
    let e = ServiceConfig::from_json(
        br#"{"cluster":"c","authority":"a","path":"/","poll_interval_s":0}"#,
        &Secrets::Placeholder,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "poll_interval_s: must be at least 1");
    let e = ServiceConfig::from_json(br#"{"cluster":"c","path":"/"}"#, &Secrets::Placeholder)
        .unwrap_err();
    assert!(e.to_string().contains("missing field `authority`"));
}

#[test]
fn claim_headers_are_lower_cased_and_extra_claims_captured() {
    let c = parse(&with(r#""claims_to_headers":{"sub":"X-Auth-Subject","tenant":"x-tenant"},"require_claims":["exp","org"]"#)).unwrap();
    assert!(c
        .claims_to_headers
        .contains(&("sub".into(), "x-auth-subject".into())));
    assert_eq!(
        c.claim_spec.extra,
        vec!["tenant".to_owned(), "org".to_owned()]
    );
}

#[test]
fn objects_are_objects_everywhere_the_types_say_so() {
    // The schema is the types (`raw::Obj`): no second list to keep in sync.
    for (extra, path) in [
        (r#""token_sources":[["authorization"]]"#, "token_sources[0]"),
        (r#""rules":[[]]"#, "rules[0]"),
        (r#""rules":[{"match":["/"]}]"#, "rules[0].match"),
        (r#""revocation":[]"#, "revocation"),
        (r#""refresh":["/oauth/token"]"#, "refresh"),
    ] {
        assert_eq!(
            err(&with(extra)),
            format!("{path}: invalid type: array, expected a JSON object"),
            "{extra}"
        );
    }
    assert_eq!(
        err(r#"{"keys":[["k","HS256"]]}"#),
        "keys[0]: invalid type: array, expected a JSON object"
    );
    let e = ServiceConfig::from_json(
        br#"{"cluster":"c","authority":"a","path":"/","verify_key":[1]}"#,
        &Secrets::Placeholder,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "verify_key: invalid type: array, expected a JSON object"
    );
}

#[test]
fn a_misplaced_value_is_described_never_quoted() {
    // A secret pasted where an object goes must not reach the log.
    let e = err(r#"{"keys":["c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw=="]}"#);
    assert_eq!(e, "keys[0]: invalid type: string, expected a JSON object");
}

/// What the filter and the CLI read of a compiled configuration (the realm
/// of `www-authenticate`, the keys `check-config` lists, the refresh path
/// the adapter answers…) is what the operator wrote, every setting changed
/// from its default (docs/configuration.md, "Filter (`root_id: tokengate`)").
#[test]
fn every_setting_reads_back_as_configured() {
    let json = format!(
        r#"{{
        "realm": "orders-api",
        "keys": [
            {{"kid": "2026-11", "alg": "HS256", "secret_env": "TG_KEY"}},
            {{"kid": "2026-10", "alg": "HS256", "secret": "{KEY32}"}}
        ],
        "issuers": ["https://auth.example.com"],
        "audiences": ["orders-api", "billing"],
        "clock_skew_s": 5,
        "max_lifetime_s": 3600,
        "require_claims": ["exp", "jti"],
        "max_token_bytes": 2048,
        "token_sources": [{{"header": "x-api-key"}}, {{"query": "access_token"}}],
        "forward_token": true,
        "claims_to_headers": {{"sub": "X-Auth-Subject", "tenant": "x-tenant"}},
        "roles": {{"manager": ["orders:read", "orders:write"]}},
        "require_tls": true,
        "rules": [{{"match": {{"prefix": "/healthz"}}, "anonymous": true}}, {{"match": {{"prefix": "/"}}}}],
        "revocation": {{"max_stale_s": 60, "on_unavailable": "allow", "static": [{{"jti": "j-1"}}, {{"kid": "2026-09"}}]}},
        "refresh": {{"path": "/oauth/token", "access_ttl_s": 600, "kid": "2026-11"}}
    }}"#
    );
    let c = parse(&json).unwrap();
    assert_eq!(c.realm(), "orders-api");
    assert_eq!(c.keys().len(), 2);
    assert!(!c.keys().is_empty());
    let kids: Vec<&str> = c.keys().iter().map(|k| k.kid().as_str()).collect();
    assert_eq!(kids, ["2026-11", "2026-10"]);
    assert_eq!(c.issuers(), ["https://auth.example.com"]);
    assert_eq!(c.audiences(), ["orders-api", "billing"]);
    assert_eq!(c.clock_skew_s(), 5);
    assert_eq!(c.max_lifetime_s(), Some(3600));
    assert_eq!(c.require_claims(), ["exp", "jti"]);
    assert_eq!(c.max_token_bytes(), 2048);
    assert_eq!(
        c.token_sources(),
        [
            TokenSource::Header {
                name: "x-api-key".into(),
                scheme: None
            },
            TokenSource::Query("access_token".into())
        ]
    );
    assert!(c.forward_token());
    assert_eq!(
        c.claims_to_headers(),
        [
            ("sub".to_owned(), "x-auth-subject".to_owned()),
            ("tenant".to_owned(), "x-tenant".to_owned())
        ]
    );
    assert_eq!(
        c.roles(),
        [(
            "manager".to_owned(),
            vec!["orders:read".to_owned(), "orders:write".to_owned()]
        )]
    );
    assert!(c.require_tls());
    assert_eq!(c.rules().len(), 2);
    let r = c.revocation().unwrap();
    assert_eq!(r.max_stale_s(), 60);
    assert_eq!(r.on_unavailable(), OnUnavailable::Allow);
    assert_eq!(r.static_list().len(), 2);
    assert!(!r.static_list().is_empty());
    let refresh = c.refresh_config().unwrap();
    assert_eq!(refresh.path(), "/oauth/token");
    assert_eq!(refresh.access_ttl_s(), 600);
    assert_eq!(refresh.kid().as_str(), "2026-11");
    // The extra claim forwarded is captured (and `jti`, a registered one, not).
    assert_eq!(c.claim_spec().extra, ["tenant"]);
    assert_eq!(c.claim_spec().joined, ["tenant"]);
}

/// The same accessors on a minimal configuration give the documented
/// defaults (docs/configuration.md, "Filter (`root_id: tokengate`)").
#[test]
fn the_accessors_give_the_documented_defaults() {
    let c = parse(&minimal()).unwrap();
    assert_eq!(c.realm(), "tokengate");
    assert_eq!(c.keys().len(), 1);
    assert!(c.issuers().is_empty());
    assert!(c.audiences().is_empty());
    assert_eq!(c.clock_skew_s(), 30);
    assert_eq!(c.max_lifetime_s(), None);
    assert_eq!(c.require_claims(), ["exp"]);
    assert_eq!(c.max_token_bytes(), 4096);
    assert_eq!(c.token_sources().len(), 1);
    assert!(!c.forward_token());
    assert!(c.claims_to_headers().is_empty());
    assert!(c.roles().is_empty());
    assert!(!c.require_tls());
    assert!(c.rules().is_empty());
    assert!(c.revocation().is_none());
    assert!(c.refresh_config().is_none());
    assert!(c.claim_spec().extra.is_empty());
    let json = with_revocation("{}");
    let r = parse(&json).unwrap();
    let r = r.revocation().unwrap();
    assert_eq!(r.max_stale_s(), 300);
    assert_eq!(r.on_unavailable(), OnUnavailable::Deny);
    assert!(r.static_list().is_empty());
    assert_eq!(r.static_list().len(), 0);
}

fn with_revocation(revocation: &str) -> String {
    format!(
        r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}],"revocation":{revocation}}}"#
    )
}

/// `max_token_bytes` is between 1 and 1 MiB; the error names the field
/// (docs/configuration.md, "Filter (`root_id: tokengate`)").
#[test]
fn max_token_bytes_is_between_1_byte_and_1_mib() {
    for ok in [1, 1 << 20] {
        let c = parse(&with(&format!(r#""max_token_bytes":{ok}"#))).unwrap();
        assert_eq!(c.max_token_bytes(), ok);
    }
    for bad in [0, (1 << 20) + 1] {
        assert_eq!(
            err(&with(&format!(r#""max_token_bytes":{bad}"#))),
            "max_token_bytes: must be between 1 and 1048576"
        );
    }
}

/// No claim is forwarded in `host` (nor a pseudo-header): the error names
/// the claim's entry (docs/configuration.md, "Token sources and forwarding").
#[test]
fn a_claim_cannot_be_forwarded_in_the_host_header() {
    for header in ["host", "Host"] {
        assert_eq!(
            err(&with(&format!(
                r#""claims_to_headers":{{"sub":"{header}"}}"#
            ))),
            r#"claims_to_headers.sub: "host" cannot carry a claim"#
        );
    }
    parse(&with(r#""claims_to_headers":{"sub":"x-host"}"#)).unwrap();
}

/// A token source is exactly one non-empty header, query or cookie name; a
/// scheme is one word and only for a header. Each error names the source
/// and what is wrong (docs/configuration.md, "Token sources and forwarding").
#[test]
fn token_source_errors_name_the_source_and_what_is_wrong() {
    for (source, want) in [
        (
            r#"{"header":"authorization","scheme":""}"#,
            "token_sources[0].scheme: must be one word",
        ),
        (
            r#"{"header":"authorization","scheme":"Bearer token"}"#,
            "token_sources[0].scheme: must be one word",
        ),
        (
            r#"{"cookie":"tg_token","scheme":"Bearer"}"#,
            "token_sources[0].scheme: applies to header sources only",
        ),
        (
            r#"{"query":""}"#,
            "token_sources[0]: needs exactly one of header, query, cookie (non-empty)",
        ),
        (
            r#"{"cookie":""}"#,
            "token_sources[0]: needs exactly one of header, query, cookie (non-empty)",
        ),
    ] {
        assert_eq!(
            err(&with(&format!(r#""token_sources":[{source}]"#))),
            want,
            "{source}"
        );
    }
    let c = parse(&with(
        r#""token_sources":[{"header":"x-api-key","scheme":"Token"},{"query":"access_token"},{"cookie":"tg_token"}]"#,
    ))
    .unwrap();
    assert_eq!(
        c.token_sources(),
        [
            TokenSource::Header {
                name: "x-api-key".into(),
                scheme: Some("Token".into())
            },
            TokenSource::Query("access_token".into()),
            TokenSource::Cookie("tg_token".into())
        ]
    );
}

/// Method names are upper-case letters, `-` and `_` (`M-SEARCH`,
/// `VERSION_CONTROL`) (docs/configuration.md, "Rules").
#[test]
fn method_names_may_hold_dashes_and_underscores() {
    let c = parse(&with(
        r#""rules":[{"match":{"prefix":"/","methods":["GET","M-SEARCH","VERSION_CONTROL"]}}]"#,
    ))
    .unwrap();
    assert_eq!(c.rules().len(), 1);
}

/// In a configuration written over many lines, the error still names the
/// field where it is, not one on another line (docs/configuration.md,
/// "Configuration errors").
#[test]
fn an_error_on_a_later_line_names_its_own_field() {
    let json = format!(
        "{{\n  \"keys\": [\n    {{\"kid\": \"k\", \"alg\": \"HS256\", \"secret\": \"{KEY32}\"}}\n  ],\n  \"audiences\": [\"a\"],\n  \"clock_skew_s\": \"30\"\n}}\n"
    );
    let e = err(&json);
    assert!(e.starts_with("clock_skew_s: "), "{e}");
}

/// What the revocation service reads of its configuration is what the
/// operator wrote (docs/configuration.md,
/// "Revocation service (`root_id: tokengate-revocations`)").
#[test]
fn every_service_setting_reads_back_as_configured() {
    let s = ServiceConfig::from_json(
        br#"{"cluster":"revocation_source","authority":"revocations.internal","path":"/v1/revocations","poll_interval_s":7,"timeout_ms":1500,"max_bytes":65536}"#,
        &Secrets::Placeholder,
    )
    .unwrap();
    assert_eq!(s.cluster(), "revocation_source");
    assert_eq!(s.authority(), "revocations.internal");
    assert_eq!(s.path(), "/v1/revocations");
    assert_eq!(s.poll_interval_s(), 7);
    assert_eq!(s.timeout_ms(), 1500);
    assert_eq!(s.max_bytes(), 65536);
    assert!(s.verify_key().is_none());
}
