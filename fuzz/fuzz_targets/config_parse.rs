//! Arbitrary bytes as a filter configuration (`Config::from_json`) and as a
//! revocation service configuration (`ServiceConfig::from_json`), each with
//! `Secrets::Placeholder` (check-config) and with an environment.
//!
//! Properties:
//! * no panic;
//! * what is accepted is written as JSON objects (finding F2, fixed);
//! * a document with a repeated member name in any object, at any depth
//!   (the top level, `roles`, `claims_to_headers`, a key, a rule, a list
//!   entry, or anywhere else), is refused — the last value never silently
//!   wins — and the error names the first repeat a reader meets: the path
//!   of its object and the name, quoted and cut to 40 characters, as found
//!   by an independent walk (`tokengate_fuzz::repeated_members`);
//! * an error names a JSON path whose first segment is a top-level field of
//!   that configuration (or is the unknown top-level field the message
//!   names), or, with no path, is serde's or serde_json's own
//!   message (or a `revocation.static…` path in the message, or a repeated
//!   member of the top level); never a serde_json " at line L column C"
//!   suffix;
//! * an error never holds a configured secret: the outcome and every error
//!   text stay the same when each inline `secret`'s letters and digits are
//!   rotated (same length, same base64 validity), and no error holds a value
//!   read from the environment;
//! * check-config agrees with the plugin: with every variable set to a valid
//!   secret, `Secrets::Placeholder` accepts exactly what the environment
//!   accepts, and both compile to the same keys, rules and sources;
//! * an accepted configuration is sound: at least one key, unique `kid`s,
//!   `max_token_bytes` within 1..=1 MiB, at least one token source, rule
//!   paths in normalized form, claim header names lower-case and unique;
//!   and a request without a valid MAC (none, or a garbage token) is never
//!   allowed by it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::config::{
    Config, ConfigError, Secrets, ServiceConfig, TokenSource, MAX_MAX_TOKEN_BYTES,
};
use tokengate::gate::{Decision, FixedConnection, Request, Revocations};
use tokengate::policy::{check_config_path, PathMatch};
use tokengate_fuzz::{
    first_segment, has_inline_secret, repeated_members, rotate_secrets, FILTER_FIELDS, NOW,
    SERDE_MESSAGE_STARTS, SERVICE_FIELDS,
};

/// Values the environment holds. A variable named like one of these is set
/// to it; each must stay out of every error message.
const ENV: [(&str, &str); 5] = [
    // 64 bytes, base64: valid for every algorithm.
    (
        "TG_KEY",
        "dG9rZW5nYXRlLWZ1enotZW52LXNlY3JldC12YWx1ZS1zaXh0eS1mb3VyLWJ5dGVzLWxvbmctZm9yLWhzNTEyIQ==",
    ),
    // 64 bytes of text, for `encoding: utf8`.
    (
        "TG_UTF8",
        "env-utf8-secret-value-that-is-sixty-four-bytes-long-for-hs512!!!",
    ),
    // Too short for any algorithm.
    ("TG_SHORT", "c2hvcnQtZW52LXNlY3JldA=="),
    // Not base64.
    ("TG_BAD", "!!env-secret-value-not-base64!!"),
    ("TG_EMPTY", ""),
];

fn env_lookup(name: &str) -> Option<String> {
    ENV.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| (*v).to_owned())
}

/// Every variable but the empty name holds a valid 64-byte secret.
fn env_all_valid(name: &str) -> Option<String> {
    (!name.is_empty()).then(|| ENV[0].1.to_owned())
}

fuzz_target!(|data: &[u8]| {
    let doc: Option<serde_json::Value> = serde_json::from_slice(data).ok();
    let input = String::from_utf8_lossy(data);

    // Neither the outcome nor an error's text depends on what an inline
    // secret says (beyond its length and validity), so no error shows one.
    if let Some(doc) = doc.as_ref().filter(|d| has_inline_secret(d)) {
        let outcome = |json: String| {
            let json = json.as_bytes();
            (
                Config::from_json(json, &Secrets::Placeholder)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                ServiceConfig::from_json(json, &Secrets::Placeholder)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            )
        };
        assert_eq!(
            outcome(doc.to_string()),
            outcome(rotate_secrets(doc).to_string()),
            "an outcome depends on the content of an inline secret"
        );
    }

    // Repeated member names, wherever they are, are refused by both.
    if let Some(first) = repeated_members(data).and_then(|r| r.into_iter().next()) {
        let (path, name) = &first;
        let cut: String = name.chars().take(40).collect();
        let message = format!("repeats member {cut:?}");
        for (what, result) in [
            (
                "Config",
                Config::from_json(data, &Secrets::Placeholder).map(|_| ()),
            ),
            (
                "ServiceConfig",
                ServiceConfig::from_json(data, &Secrets::Placeholder).map(|_| ()),
            ),
        ] {
            match result {
                Ok(()) => panic!("[{what}] accepted a repeated member {first:?}"),
                Err(e) => assert!(
                    e.path == *path && e.message == message,
                    "[{what}] a repeated member {first:?} gives {e}"
                ),
            }
        }
    }

    let placeholder = Config::from_json(data, &Secrets::Placeholder);
    let env = Config::from_json(data, &Secrets::Env(&env_lookup));
    let all_valid = Config::from_json(data, &Secrets::Env(&env_all_valid));
    for (mode, result) in [
        ("placeholder", &placeholder),
        ("env", &env),
        ("all-valid env", &all_valid),
    ] {
        match result {
            Ok(config) => {
                check_config(config);
                assert!(
                    TOLERATE_F2 || doc.as_ref().is_some_and(filter_objects),
                    "[Config/{mode}] accepted a configuration that is not written as JSON objects"
                );
            }
            Err(e) => check_error("Config", mode, e, &FILTER_FIELDS, &input),
        }
    }
    match (&placeholder, &all_valid) {
        (Ok(a), Ok(b)) => assert_eq!(
            summary(a),
            summary(b),
            "check-config compiles another configuration"
        ),
        (Ok(_), Err(e)) => panic!("check-config accepts what the plugin refuses: {e}"),
        (Err(e), Ok(_)) => panic!("check-config refuses what the plugin accepts: {e}"),
        (Err(_), Err(_)) => {}
    }

    let placeholder = ServiceConfig::from_json(data, &Secrets::Placeholder);
    let env = ServiceConfig::from_json(data, &Secrets::Env(&env_lookup));
    let all_valid = ServiceConfig::from_json(data, &Secrets::Env(&env_all_valid));
    for (mode, result) in [
        ("placeholder", &placeholder),
        ("env", &env),
        ("all-valid env", &all_valid),
    ] {
        match result {
            Ok(s) => {
                assert!(
                    TOLERATE_F2 || doc.as_ref().is_some_and(service_objects),
                    "[ServiceConfig/{mode}] accepted a configuration that is not written as JSON objects"
                );
                assert!(
                    !s.cluster().is_empty() && !s.authority().is_empty(),
                    "empty cluster or authority accepted"
                );
                assert!(
                    s.path().starts_with('/'),
                    "service path {:?} accepted",
                    s.path()
                );
                assert!(
                    s.poll_interval_s() >= 1 && s.timeout_ms() >= 1 && s.max_bytes() >= 1,
                    "a zero limit accepted"
                );
            }
            Err(e) => check_error("ServiceConfig", mode, e, &SERVICE_FIELDS, &input),
        }
    }
    match (&placeholder, &all_valid) {
        (Ok(a), Ok(b)) => assert_eq!(
            a.verify_key().as_ref().map(|k| k.alg()),
            b.verify_key().as_ref().map(|k| k.alg()),
            "check-config reads another verify_key"
        ),
        (Ok(_), Err(e)) => {
            panic!("check-config accepts a service configuration the plugin refuses: {e}")
        }
        (Err(e), Ok(_)) => {
            panic!("check-config refuses a service configuration the plugin accepts: {e}")
        }
        (Err(_), Err(_)) => {}
    }
});

/// Finding F2 (fuzz/README.md), fixed: serde's derived `Deserialize` also
/// reads a struct from a JSON array, positionally, and `deny_unknown_fields`
/// does not stop it, so `["c","a","/",null,null,null,null]` was a valid
/// service configuration and a key could be `["k","HS256","…",null,null]`.
/// Stays false: the property holds again if it comes back.
const TOLERATE_F2: bool = false;

fn is_object(v: Option<&serde_json::Value>) -> bool {
    v.is_none_or(|v| v.is_null() || v.is_object())
}

fn all_objects(v: Option<&serde_json::Value>, inner: &[&str]) -> bool {
    v.and_then(|v| v.as_array()).is_none_or(|items| {
        items
            .iter()
            .all(|i| i.is_object() && inner.iter().all(|n| is_object(i.get(n))))
    })
}

/// Every place the configuration has an object holds one (or is absent).
fn filter_objects(doc: &serde_json::Value) -> bool {
    doc.is_object()
        && all_objects(doc.get("keys"), &[])
        && all_objects(doc.get("token_sources"), &[])
        && all_objects(doc.get("rules"), &["match"])
        && is_object(doc.get("revocation"))
        && is_object(doc.get("refresh"))
}

fn service_objects(doc: &serde_json::Value) -> bool {
    doc.is_object() && is_object(doc.get("verify_key"))
}

fn check_error(what: &str, mode: &str, e: &ConfigError, fields: &[&str], input: &str) {
    let text = e.to_string();
    assert!(!e.message.is_empty(), "[{what}/{mode}] empty error message");
    if e.path.is_empty() {
        let static_path = e.message.starts_with("revocation.static");
        let repeat = e.message.starts_with("repeats member \"");
        let serde = SERDE_MESSAGE_STARTS
            .iter()
            .any(|p| e.message.starts_with(p));
        assert!(
            static_path || serde || repeat,
            "[{what}/{mode}] error without a path is not serde's: {text:?}"
        );
    } else {
        let first = first_segment(&e.path);
        // serde_path_to_error names an unknown field by its own path.
        let unknown_top = e
            .message
            .starts_with(&format!("unknown field `{}`", e.path));
        // Repeats are looked for before the fields are read, so their path
        // is wherever the document holds them (checked against the
        // independent walk in the target itself).
        let repeat = e.message.starts_with("repeats member \"");
        // "?" is its segment for a member name it could not read (not
        // UTF-8); "" opens a path into a document that is an array.
        assert!(
            fields.contains(&first) || unknown_top || repeat || first == "?" || first.is_empty(),
            "[{what}/{mode}] error path {:?} does not start with a field: {text:?}",
            e.path
        );
        assert!(
            text.starts_with(&format!("{}: ", e.path)),
            "[{what}/{mode}] error does not open with its path: {text:?}"
        );
    }
    assert!(
        !ends_with_position(&e.message),
        "[{what}/{mode}] error keeps serde_json's position: {text:?}"
    );
    for (_, value) in ENV {
        if value.len() >= 12 && !input.contains(value) {
            assert!(
                !text.contains(value),
                "[{what}/{mode}] error {text:?} holds an environment secret"
            );
        }
    }
}

/// " at line L column C" at the very end.
fn ends_with_position(message: &str) -> bool {
    let Some(i) = message.rfind(" at line ") else {
        return false;
    };
    let rest = &message[i + " at line ".len()..];
    let mut parts = rest.splitn(3, ' ');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(l), Some("column"), Some(c)) if !l.is_empty() && !c.is_empty()
            && l.bytes().all(|b| b.is_ascii_digit()) && c.bytes().all(|b| b.is_ascii_digit())
    )
}

/// What check-config and the plugin must agree on (the secrets aside).
fn summary(c: &Config) -> String {
    let keys: Vec<String> = c
        .keys()
        .iter()
        .map(|k| format!("{}:{}", k.kid(), k.alg()))
        .collect();
    format!(
        "{keys:?} {:?} {:?} {:?} {:?} {:?} {}",
        c.rules(),
        c.token_sources(),
        c.claims_to_headers(),
        c.require_claims(),
        c.refresh_config(),
        c.max_token_bytes()
    )
}

/// Request headers as the gate is handed them.
type Headers = Vec<(String, Vec<u8>)>;

fn check_config(c: &Config) {
    assert!(
        !c.keys().is_empty(),
        "a configuration without keys accepted"
    );
    let kids: Vec<&str> = c.keys().iter().map(|k| k.kid().as_str()).collect();
    for (i, kid) in kids.iter().enumerate() {
        assert!(!kid.is_empty(), "an empty kid accepted");
        assert!(!kids[..i].contains(kid), "duplicate kid {kid:?} accepted");
    }
    assert!(
        (1..=MAX_MAX_TOKEN_BYTES).contains(&c.max_token_bytes()),
        "max_token_bytes {}",
        c.max_token_bytes()
    );
    assert!(!c.token_sources().is_empty(), "no token source");
    for rule in c.rules() {
        if let PathMatch::Exact(p) | PathMatch::Prefix(p) = &rule.matcher.path {
            assert!(
                check_config_path(p).is_ok(),
                "rule path {p:?} is not normalized"
            );
        }
    }
    for (i, (_, header)) in c.claims_to_headers().iter().enumerate() {
        assert_eq!(
            *header,
            header.to_ascii_lowercase(),
            "claim header {header:?} not lower-cased"
        );
        assert!(
            !c.claims_to_headers()[..i].iter().any(|(_, h)| h == header),
            "claim header {header:?} twice"
        );
    }

    // Without a valid MAC nothing is allowed, whatever the rules say: no
    // token, or a garbage token in each configured source in turn.
    let garbage = "eyJhbGciOiJIUzI1NiJ9.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let mut requests: Vec<(String, Headers)> = vec![("/".into(), Vec::new())];
    for source in c.token_sources() {
        let path = "/admin/x".to_owned();
        requests.push(match source {
            TokenSource::Header { name, scheme } => {
                let value = match scheme {
                    Some(scheme) => format!("{scheme} {garbage}"),
                    None => garbage.to_owned(),
                };
                (path, vec![(name.clone(), value.into_bytes())])
            }
            TokenSource::Query(name) => (format!("{path}?{name}={garbage}"), Vec::new()),
            TokenSource::Cookie(name) => (
                path,
                vec![("cookie".into(), format!("{name}={garbage}").into_bytes())],
            ),
        });
    }
    for (path, headers) in &requests {
        let req = Request {
            method: "GET",
            path: path.as_bytes(),
            authority: b"api.example.com",
            headers,
        };
        let verdict = c.decide(
            &req,
            &FixedConnection::default(),
            Revocations::default(),
            NOW,
        );
        assert_ne!(
            verdict.decision,
            Decision::Allow,
            "allowed a request without a valid MAC"
        );
    }
}
