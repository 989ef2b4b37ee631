//! The shared attack corpus, run against the core.
//!
//! `tests/data/attacks.json` describes attack tokens by their parts (header
//! and payload text, the key and algorithm of the MAC, mutations of the
//! encoded form, where the token goes in the request); `tests/data/paths.json`
//! holds raw `:path`s with the path the rules must see. Both are decided
//! against `tests/data/attack_config.json` at a fixed instant. The same files
//! drive the end-to-end runner against a real Envoy, so the schema lives in
//! `tests/data/README.md`, not here. Each case names the public weakness it
//! guards against (`guards`), and many the rule that decides it (`rule`); a
//! failure prints them next to what went wrong.
//! Every case runs even when an earlier one fails, and the test fails once
//! with the full list.

// A test harness: a panic (through unwrap, expect or panic!) is a failed test
// or a broken data file, and says which.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Sha256, Sha384, Sha512};
use tokengate::config::{Config, Secrets};
use tokengate::gate::{Decision, FixedConnection, Request, Revocations, Verdict};
use tokengate::keys::{decode_secret, Alg, Key, KeyId, SecretEncoding};
use tokengate::policy::normalize_path;
use tokengate::token::b64url_encode;

const URL_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn data_file(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data", name]
        .iter()
        .collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse<'a, T: Deserialize<'a>>(name: &str, text: &'a str) -> T {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).unwrap_or_else(|e| panic!("tests/data/{name}: {e}"))
}

// ------------------------------------------------------------------ schema

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttackFile {
    #[allow(dead_code)]
    description: String,
    config: String,
    now: u64,
    attacker_keys: BTreeMap<String, AttackerKey>,
    cases: Vec<AttackCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttackerKey {
    secret_utf8: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttackCase {
    name: String,
    guards: String,
    /// The project's own rule that decides the expected outcome, if the
    /// case names one; a failure prints it.
    rule: Option<String>,
    /// The whole token, verbatim; when set, nothing else builds it.
    token: Option<String>,
    header_json: Option<String>,
    payload_json: Option<String>,
    sign_with: Option<String>,
    sign_alg: Option<String>,
    signature: Option<String>,
    #[serde(default)]
    mutate: Vec<String>,
    tamper_payload_json: Option<String>,
    fill_to: Option<usize>,
    placement: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    method: String,
    path: String,
    expect: Expect,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Expect {
    decision: String,
    reason: Option<String>,
    status: u32,
    /// Header → exact value upstream, `null` for "absent upstream".
    #[serde(default)]
    upstream_headers: BTreeMap<String, Option<String>>,
    upstream_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathFile {
    #[allow(dead_code)]
    description: String,
    config: String,
    #[allow(dead_code)]
    token: String,
    #[allow(dead_code)]
    envoy_settings: serde_json::Value,
    cases: Vec<PathCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathCase {
    name: String,
    guards: String,
    raw_path: String,
    method: String,
    /// The path the rules see; `null` when the path is a bad request.
    normalized: Option<String>,
    expect: Expect,
    #[allow(dead_code)]
    note: Option<String>,
    envoy: Option<EnvoyBehaviour>,
}

/// What Envoy (normalize_path, merge_slashes, escaped slashes rejected) does
/// to the path before the filter runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvoyBehaviour {
    /// `passes`, `normalizes` or `rejects`.
    action: String,
    /// The `:path` the filter sees (`normalizes`).
    path: Option<String>,
    /// The status Envoy answers with itself (`rejects`).
    status: Option<u32>,
    /// The decision on the path Envoy hands the filter (`normalizes`).
    expect: Option<Expect>,
    #[allow(dead_code)]
    note: Option<String>,
}

// ------------------------------------------------------------------ keys and MACs

/// A key the cases can sign with: configured ones (from the config file) and
/// the attacker's.
struct SigningKey {
    alg: Alg,
    secret: Vec<u8>,
}

struct Keys(BTreeMap<String, SigningKey>);

impl Keys {
    fn load(config_text: &str, attackers: &BTreeMap<String, AttackerKey>) -> Keys {
        let config: serde_json::Value = serde_json::from_str(config_text).unwrap();
        let mut keys = BTreeMap::new();
        for k in config["keys"].as_array().unwrap() {
            let alg = Alg::from_name(k["alg"].as_str().unwrap()).unwrap();
            let secret =
                decode_secret(k["secret"].as_str().unwrap(), SecretEncoding::Base64).unwrap();
            keys.insert(
                k["kid"].as_str().unwrap().to_owned(),
                SigningKey { alg, secret },
            );
        }
        for (name, k) in attackers {
            let key = SigningKey {
                alg: Alg::Hs256,
                secret: k.secret_utf8.as_bytes().to_vec(),
            };
            assert!(
                keys.insert(name.clone(), key).is_none(),
                "attacker key {name} shadows a configured key"
            );
        }
        Keys(keys)
    }

    fn mac(&self, name: &str, alg: Option<&str>, input: &[u8]) -> Vec<u8> {
        let key = self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no key {name:?}"));
        let alg = alg.map_or(key.alg, |a| {
            Alg::from_name(a).unwrap_or_else(|| panic!("sign_alg {a:?}"))
        });
        match Key::new(KeyId(name.into()), alg, &key.secret) {
            Ok(k) => k.sign(input),
            // Attacker keys may be shorter than the hash, which Key refuses.
            Err(_) => raw_hmac(alg, &key.secret, input),
        }
    }
}

fn raw_hmac(alg: Alg, secret: &[u8], input: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(secret: &[u8], input: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(secret).unwrap();
        m.update(input);
        m.finalize().into_bytes().to_vec()
    }
    match alg {
        Alg::Hs256 => run::<Hmac<Sha256>>(secret, input),
        Alg::Hs384 => run::<Hmac<Sha384>>(secret, input),
        Alg::Hs512 => run::<Hmac<Sha512>>(secret, input),
    }
}

// ------------------------------------------------------------------ building tokens

/// Replaces `$NOW`, `$NOW+N`, `$NOW-N` with decimal seconds and `$FILL`
/// with `fill` filler characters.
fn substitute(text: &str, now: u64, fill: usize) -> String {
    let mut out = String::with_capacity(text.len() + fill);
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$NOW") {
            let sign = after.chars().next().filter(|c| *c == '+' || *c == '-');
            let digits = sign.map_or("", |_| {
                let d = &after[1..];
                &d[..d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len())]
            });
            let value = match (sign, digits) {
                (Some('+'), d) if !d.is_empty() => now + d.parse::<u64>().unwrap(),
                (Some('-'), d) if !d.is_empty() => now - d.parse::<u64>().unwrap(),
                _ => now,
            };
            out.push_str(&value.to_string());
            let used = if digits.is_empty() {
                0
            } else {
                1 + digits.len()
            };
            rest = &after[used..];
        } else if let Some(after) = tail.strip_prefix("$FILL") {
            out.extend(std::iter::repeat_n('a', fill));
            rest = after;
        } else {
            panic!("unknown placeholder at {tail:?}");
        }
    }
    out.push_str(rest);
    out
}

fn pad(segment: &mut String, what: &str) {
    let missing = (4 - segment.len() % 4) % 4;
    assert!(
        missing > 0,
        "{what}: the segment is a multiple of 4 long, padding would add nothing"
    );
    segment.extend(std::iter::repeat_n('=', missing));
}

fn std_alphabet(segment: &mut String, what: &str) {
    let changed = segment.replace('-', "+").replace('_', "/");
    assert_ne!(&changed, segment, "{what}: no '-' or '_' to rewrite");
    *segment = changed;
}

/// Sets a spare low bit of the last character: same bytes to a lenient
/// decoder, not canonical base64url.
fn non_canonical(segment: &mut String, what: &str) {
    assert!(
        matches!(segment.len() % 4, 2 | 3),
        "{what}: the last character has no spare bits"
    );
    let last = segment.pop().unwrap();
    let index = URL_ALPHABET
        .iter()
        .position(|c| *c as char == last)
        .unwrap();
    segment.push(URL_ALPHABET[index ^ 1] as char);
}

fn build_token(case: &AttackCase, keys: &Keys, now: u64) -> String {
    if let Some(token) = &case.token {
        return token.clone();
    }
    let Some(target) = case.fill_to else {
        return build_with_fill(case, keys, now, 0);
    };
    // The payload grows by 4 characters per 3 filler bytes: start just below
    // the target and step up to it.
    let base = build_with_fill(case, keys, now, 0).len();
    assert!(
        target > base,
        "{}: fill_to {target} is below the unfilled length {base}",
        case.name
    );
    let mut fill = ((target - base) * 3 / 4).saturating_sub(3);
    loop {
        let token = build_with_fill(case, keys, now, fill);
        if token.len() >= target {
            assert_eq!(
                token.len(),
                target,
                "{}: fill_to {target} cannot be reached exactly",
                case.name
            );
            return token;
        }
        fill += 1;
    }
}

fn build_with_fill(case: &AttackCase, keys: &Keys, now: u64, fill: usize) -> String {
    let name = &case.name;
    let header = substitute(case.header_json.as_deref().expect("header_json"), now, fill);
    let payload = substitute(
        case.payload_json.as_deref().expect("payload_json"),
        now,
        fill,
    );
    let mut h = b64url_encode(header.as_bytes());
    let mut p = b64url_encode(payload.as_bytes());
    // Mutations of the signed text come before the MAC: it covers them.
    for step in &case.mutate {
        match step.as_str() {
            "pad_header" => pad(&mut h, name),
            "pad_payload" => pad(&mut p, name),
            "std_alphabet_header" => std_alphabet(&mut h, name),
            "std_alphabet_payload" => std_alphabet(&mut p, name),
            "noncanonical_header" => non_canonical(&mut h, name),
            "noncanonical_payload" => non_canonical(&mut p, name),
            "payload_unencoded" => p = payload.clone(),
            _ => {}
        }
    }
    let input = format!("{h}.{p}");
    let mac = || {
        keys.mac(
            case.sign_with.as_deref().expect("sign_with"),
            case.sign_alg.as_deref(),
            input.as_bytes(),
        )
    };
    let signature = case.signature.as_deref().expect("signature");
    let tag = match signature {
        "valid" => mac(),
        "empty" => Vec::new(),
        "flip_bit" => {
            let mut t = mac();
            t[0] ^= 1;
            t
        }
        s => match s.split_once(':') {
            Some(("truncate", n)) => mac()[..n.parse::<usize>().unwrap()].to_vec(),
            Some(("zeros", n)) => vec![0; n.parse().unwrap()],
            _ => panic!("{name}: unknown signature {s:?}"),
        },
    };
    let mut segments = vec![h, p, b64url_encode(&tag)];
    // Mutations of the finished token: what a tamperer in transit does.
    for step in &case.mutate {
        match step.as_str() {
            "pad_signature" => pad(&mut segments[2], name),
            "noncanonical_signature" => non_canonical(&mut segments[2], name),
            "std_alphabet_token" => {
                let before = segments.join(".");
                for s in &mut segments {
                    *s = s.replace('-', "+").replace('_', "/");
                }
                assert_ne!(
                    segments.join("."),
                    before,
                    "{name}: no '-' or '_' to rewrite"
                );
            }
            "append_segment" => segments.push(b64url_encode(b"{}")),
            "drop_signature" => {
                segments.pop();
            }
            "prepend_dot" => segments.insert(0, String::new()),
            "tamper_payload" => {
                let text = case
                    .tamper_payload_json
                    .as_deref()
                    .expect("tamper_payload_json");
                segments[1] = b64url_encode(substitute(text, now, fill).as_bytes());
            }
            "pad_header"
            | "pad_payload"
            | "std_alphabet_header"
            | "std_alphabet_payload"
            | "noncanonical_header"
            | "noncanonical_payload"
            | "payload_unencoded" => {}
            other => panic!("{name}: unknown mutation {other:?}"),
        }
    }
    segments.join(".")
}

// ------------------------------------------------------------------ requests

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn pct(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Built {
    method: String,
    path: String,
    /// As the filter sees them: names lower-case, repeated headers joined
    /// the way Envoy joins them.
    headers: Vec<(String, Vec<u8>)>,
}

fn build_request(
    placement: &str,
    extra: &[(String, String)],
    method: &str,
    path: &str,
    token: &str,
) -> Built {
    let mut path = path.replace("{token}", &pct(token));
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut query: Vec<String> = Vec::new();
    let mut cookies: Vec<String> = Vec::new();
    for place in placement.split('+') {
        match place {
            "authorization" => lines.push(("authorization".into(), format!("Bearer {token}"))),
            "x-api-key" => lines.push(("x-api-key".into(), token.into())),
            "query" => query.push(format!("access_token={}", pct(token))),
            "cookie" => cookies.push(format!("tg_token={token}")),
            "none" => {}
            other => panic!("unknown placement {other:?}"),
        }
    }
    if !query.is_empty() {
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str(&query.join("&"));
    }
    if !cookies.is_empty() {
        lines.push(("cookie".into(), cookies.join("; ")));
    }
    for (name, value) in extra {
        lines.push((name.to_ascii_lowercase(), value.replace("{token}", token)));
    }
    // Envoy joins repeated request headers with ',' (cookie with "; ")
    // before any filter runs.
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, value) in lines {
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.extend_from_slice(if name == "cookie" { b"; " } else { b"," });
                v.extend_from_slice(value.as_bytes());
            }
            None => headers.push((name, value.into_bytes())),
        }
    }
    Built {
        method: method.into(),
        path,
        headers,
    }
}

fn decide(config: &Config, req: &Built, now: u64) -> Verdict {
    let request = Request {
        method: &req.method,
        path: req.path.as_bytes(),
        authority: b"api.test",
        headers: &req.headers,
    };
    config.decide(
        &request,
        &FixedConnection::default(),
        Revocations::default(),
        now,
    )
}

/// What the core decided, in the terms of the data files.
fn observed(req: &Built, v: &Verdict, expect: &Expect) -> Expect {
    let (decision, reason, status) = match v.decision {
        Decision::Deny(r) => ("deny", Some(r.as_str().to_owned()), r.status()),
        d => (d.as_str(), None, 200),
    };
    let mut upstream: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(n, _)| !v.remove_headers.contains(n))
        .map(|(n, val)| (n.clone(), String::from_utf8_lossy(val).into_owned()))
        .collect();
    if let Some(cookie) = &v.new_cookie {
        upstream.retain(|(n, _)| n != "cookie");
        upstream.extend(
            cookie
                .iter()
                .map(|c| ("cookie".to_owned(), String::from_utf8_lossy(c).into_owned())),
        );
    }
    for (name, value) in &v.set_headers {
        upstream.retain(|(n, _)| n != name);
        upstream.push((name.clone(), value.clone()));
    }
    let forwarded = v.decision.reason().is_none();
    Expect {
        decision: decision.into(),
        reason,
        status,
        // Only the headers the case asks about, and only when the request
        // goes upstream at all.
        upstream_headers: if forwarded {
            expect
                .upstream_headers
                .keys()
                .map(|k| {
                    (
                        k.clone(),
                        upstream
                            .iter()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.clone()),
                    )
                })
                .collect()
        } else {
            BTreeMap::new()
        },
        upstream_path: (forwarded && expect.upstream_path.is_some()).then(|| match &v.new_path {
            Some(p) => String::from_utf8_lossy(p).into_owned(),
            None => req.path.clone(),
        }),
    }
}

fn excerpt(token: &str) -> String {
    if token.len() <= 160 {
        token.to_owned()
    } else {
        format!("{}…({} bytes)", &token[..160], token.len())
    }
}

fn report(failures: &[String], total: usize, file: &str) {
    assert!(
        failures.is_empty(),
        "{} of {total} cases in tests/data/{file} failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ------------------------------------------------------------------ runners

#[test]
fn attack_corpus() {
    let text = data_file("attacks.json");
    let file: AttackFile = parse("attacks.json", &text);
    let config_text = data_file(&file.config);
    let config = Config::from_json(config_text.as_bytes(), &Secrets::Placeholder).unwrap();
    let keys = Keys::load(&config_text, &file.attacker_keys);
    let mut names = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for case in &file.cases {
        assert!(
            names.insert(case.name.as_str()),
            "case {} appears twice",
            case.name
        );
        assert!(
            case.expect.upstream_headers.is_empty() && case.expect.upstream_path.is_none()
                || case.expect.decision != "deny",
            "{}: a refused request has no upstream to describe",
            case.name
        );
        let token = build_token(case, &keys, file.now);
        let req = build_request(
            &case.placement,
            &case.headers,
            &case.method,
            &case.path,
            &token,
        );
        let verdict = decide(&config, &req, file.now);
        let got = observed(&req, &verdict, &case.expect);
        if got != case.expect {
            let rule = case
                .rule
                .as_ref()
                .map(|r| format!("\n  rule:     {r}"))
                .unwrap_or_default();
            failures.push(format!(
                "case {}\n  guards:   {}{rule}\n  expected: {:?}\n  got:      {:?}\n  token:    {}",
                case.name,
                case.guards,
                case.expect,
                got,
                excerpt(&token)
            ));
        }
    }
    report(&failures, file.cases.len(), "attacks.json");
}

#[test]
fn path_corpus() {
    let text = data_file("paths.json");
    let file: PathFile = parse("paths.json", &text);
    let attacks: AttackFile = parse("attacks.json", &data_file("attacks.json"));
    let config_text = data_file(&file.config);
    let config = Config::from_json(config_text.as_bytes(), &Secrets::Placeholder).unwrap();
    let keys = Keys::load(&config_text, &attacks.attacker_keys);
    // The token of the paths corpus: the first attack case, a valid token
    // without a role.
    let token = build_token(&attacks.cases[0], &keys, attacks.now);
    let mut failures = Vec::new();
    for case in &file.cases {
        let normalized = normalize_path(case.raw_path.as_bytes()).ok();
        let req = build_request("authorization", &[], &case.method, &case.raw_path, &token);
        let got = observed(&req, &decide(&config, &req, attacks.now), &case.expect);
        let mut wrong = Vec::new();
        if normalized != case.normalized {
            wrong.push(format!(
                "normalized: expected {:?}, got {:?}",
                case.normalized, normalized
            ));
        }
        if got != case.expect {
            wrong.push(format!(
                "decision: expected {:?}, got {:?}",
                case.expect, got
            ));
        }
        // The e2e runner sees the path Envoy hands the filter: the core must
        // decide that path as the data says too.
        if let Some(envoy) = &case.envoy {
            match (
                envoy.action.as_str(),
                &envoy.path,
                &envoy.expect,
                envoy.status,
            ) {
                ("passes", None, None, None) | ("rejects", None, None, Some(_)) => {}
                ("normalizes", Some(path), Some(expect), None) => {
                    let req = build_request("authorization", &[], &case.method, path, &token);
                    let got = observed(&req, &decide(&config, &req, attacks.now), expect);
                    if &got != expect {
                        wrong.push(format!(
                            "on Envoy's path {path:?}: expected {expect:?}, got {got:?}"
                        ));
                    }
                }
                _ => wrong.push(format!(
                    "envoy: inconsistent fields for action {:?}",
                    envoy.action
                )),
            }
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "case {} (raw path {:?})\n  guards: {}\n  {}",
                case.name,
                case.raw_path,
                case.guards,
                wrong.join("\n  ")
            ));
        }
    }
    report(&failures, file.cases.len(), "paths.json");
}
