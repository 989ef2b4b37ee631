//! Writes the committed seed corpora, `fuzz/seeds/<target>/`, from the
//! hand-picked inputs below (valid tokens signed with the fuzzing keys,
//! RFC 7515 A.1, attack shapes, sample configurations, tricky paths, sample
//! revocation lists and their snapshots, authorities, refresh forms, paths
//! for the rule readings).
//!
//!     cd fuzz && cargo +nightly run --example make_seeds
//!
//! Deterministic: running it again rewrites the same files.

use std::fs;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;
use tokengate::keys::{Alg, Key, KeyId};
use tokengate::revocation::{Document, Entry, Snapshot};
use tokengate_fuzz::{
    sign_compact, K1_SECRET, K2_SECRET, NOW, RFC7515_A1_K, RFC7515_A1_TOKEN, ROGUE_SECRET,
};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    write(&root, "token_verify", token_seeds());
    write(&root, "token_forge", forge_seeds());
    write(&root, "config_parse", config_seeds());
    write(&root, "path_normalize", path_seeds());
    write(&root, "revocation", revocation_seeds());
    write(&root, "authority", authority_seeds());
    write(&root, "refresh_form", form_seeds());
    write(&root, "rule_select", select_seeds());
}

fn write(root: &Path, target: &str, seeds: Vec<(&str, Vec<u8>)>) {
    let dir = root.join(target);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (name, bytes) in &seeds {
        fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    println!("{target}: {} seeds", seeds.len());
}

fn s(text: impl Into<String>) -> Vec<u8> {
    text.into().into_bytes()
}

fn signed(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    alg: Alg,
    secret: &[u8],
) -> Vec<u8> {
    s(sign_compact(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        alg,
        secret,
    ))
}

fn raw_signed(header: &str, payload: &str, alg: Alg, secret: &[u8]) -> Vec<u8> {
    s(sign_compact(
        header.as_bytes(),
        payload.as_bytes(),
        alg,
        secret,
    ))
}

fn token_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let k1 = json!({"alg": "HS256", "typ": "JWT", "kid": "k1"});
    let k2 = json!({"alg": "HS512", "kid": "k2"});
    let claims = json!({"sub": "user-42", "scope": "orders:read orders:write", "iat": NOW, "exp": NOW + 900,
                        "jti": "01JD3XK", "iss": "https://auth.example.com", "aud": ["orders-api"], "tenant": "acme"});
    let a1 = URL_SAFE_NO_PAD.decode(RFC7515_A1_K).unwrap_or_default();
    let good = signed(&k1, &claims, Alg::Hs256, K1_SECRET);
    let good_text = String::from_utf8(good.clone()).unwrap_or_default();
    let (hp, sig) = good_text.rsplit_once('.').unwrap_or_default();
    let (h, p) = hp.split_once('.').unwrap_or_default();
    // The signature with its last character's spare bits changed.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = sig.chars().last().unwrap_or('A');
    let tweaked = alphabet
        .chars()
        .nth(alphabet.find(last).unwrap_or(0) ^ 1)
        .unwrap_or('A');
    let noncanonical = format!("{hp}.{}{tweaked}", &sig[..sig.len().saturating_sub(1)]);
    vec![
        ("valid_k1_hs256", good.clone()),
        (
            "valid_k2_hs512",
            signed(&k2, &claims, Alg::Hs512, K2_SECRET),
        ),
        (
            "valid_k1_minimal",
            signed(
                &json!({"alg": "HS256", "kid": "k1"}),
                &json!({}),
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "valid_at_jwt",
            signed(
                &json!({"alg": "HS256", "kid": "k1", "typ": "application/at+JWT"}),
                &json!({"sub": "u"}),
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "valid_refresh_rt_jwt",
            signed(
                &json!({"alg": "HS256", "kid": "k1", "typ": "rt+jwt"}),
                &json!({"sub": "u", "exp": NOW + 60}),
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "valid_token_use_refresh",
            signed(
                &k1,
                &json!({"sub": "u", "token_use": "refresh"}),
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "valid_roles_cnf",
            signed(
                &k2,
                &json!({"sub": "u", "roles": ["admin"], "role": "manager", "scp": ["a", "b"], "cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}),
                Alg::Hs512,
                K2_SECRET,
            ),
        ),
        (
            "valid_fractional_dates",
            signed(
                &k1,
                &json!({"exp": 1_900_000_000.5, "nbf": 0, "iat": 9_007_199_254_740_992u64}),
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "valid_one_key_no_kid",
            signed(
                &json!({"alg": "HS256"}),
                &json!({"sub": "u", "exp": NOW + 900}),
                Alg::Hs256,
                &a1,
            ),
        ),
        ("rfc7515_a1", s(RFC7515_A1_TOKEN)),
        (
            "signed_payload_not_json",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                "not json",
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_duplicate_sub",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"sub":"a","\u0073ub":"b"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_string_exp",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"exp":"1700000000"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_negative_exp",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"exp":-1}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_control_in_sub",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"sub":"a\r\nX-Injected: 1"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_crit",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1","crit":["b64"],"b64":false}"#,
                "{}",
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_jku_x5u_jwk",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1","jku":"https://evil/","jwk":{"kty":"oct","k":"AA"}}"#,
                "{}",
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "alg_none_empty_sig",
            s(format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#),
                URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#)
            )),
        ),
        (
            "alg_none_no_kid",
            s(format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                URL_SAFE_NO_PAD.encode("{}")
            )),
        ),
        (
            "alg_rs256",
            raw_signed(r#"{"alg":"RS256","kid":"k1"}"#, "{}", Alg::Hs256, K1_SECRET),
        ),
        (
            "alg_confusion_hs256_on_hs512_key",
            raw_signed(r#"{"alg":"HS256","kid":"k2"}"#, "{}", Alg::Hs256, K2_SECRET),
        ),
        (
            "alg_hs512_header_k1",
            raw_signed(r#"{"alg":"HS512","kid":"k1"}"#, "{}", Alg::Hs512, K1_SECRET),
        ),
        (
            "kid_unknown",
            raw_signed(r#"{"alg":"HS256","kid":"k9"}"#, "{}", Alg::Hs256, K1_SECRET),
        ),
        (
            "kid_missing_two_keys",
            raw_signed(r#"{"alg":"HS256"}"#, "{}", Alg::Hs256, K1_SECRET),
        ),
        (
            "kid_number",
            raw_signed(r#"{"alg":"HS256","kid":1}"#, "{}", Alg::Hs256, K1_SECRET),
        ),
        ("rogue_key", signed(&k1, &claims, Alg::Hs256, ROGUE_SECRET)),
        (
            "tampered_payload",
            s(format!(
                "{h}.{}.{sig}",
                URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#)
            )),
        ),
        ("sig_noncanonical_bits", s(noncanonical)),
        (
            "sig_standard_alphabet",
            s(good_text.replace('-', "+").replace('_', "/")),
        ),
        ("sig_padded", s(format!("{good_text}="))),
        (
            "sig_wrong_length",
            s(format!("{hp}.{}", URL_SAFE_NO_PAD.encode([0u8; 16]))),
        ),
        ("sig_empty", s(format!("{hp}."))),
        ("header_padded", s(format!("{h}=.{p}.{sig}"))),
        ("four_segments", s(format!("{good_text}.x"))),
        ("two_segments", s(hp.to_owned())),
        ("dots_only", s("..")),
        ("empty", Vec::new()),
        ("whitespace_padded", s(format!(" {good_text}\t"))),
        ("comma", s(format!("{good_text},{good_text}"))),
        (
            "header_json_k1",
            s(r#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#),
        ),
        ("header_json_dup_alg", s(r#"{"alg":"HS256","alg":"HS256"}"#)),
        ("header_json_typ_number", s(r#"{"alg":"HS256","typ":7}"#)),
        (
            "claims_json_all",
            s(
                r#"{"exp":1764262800,"nbf":1764259200,"iat":1764259200.5,"iss":"i","sub":"s","jti":"j","aud":"a","scope":"a b","scp":["c"],"role":"r","roles":["x"],"token_use":"refresh","cnf":{"x5t#S256":"t"},"tenant":["a","b"]}"#,
            ),
        ),
        (
            "claims_json_many_members",
            s(format!(
                "{{{}\"m3\":0}}",
                (0..40)
                    .map(|i| format!("\"m{i}\":{i},"))
                    .collect::<String>()
            )),
        ),
        (
            "claims_json_bad_dates",
            s(r#"{"exp":9007199254740993,"nbf":1e300,"iat":-0.5}"#),
        ),
        // The claim syntax rules: controls (C1, U+2028), white space at an
        // end (U+00A0, U+3000, a plain space), scope-tokens, cnf shapes.
        (
            "signed_c1_in_sub",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"sub":"user\u0085x"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_line_separator_in_jti",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"jti":"a\u2028b"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_nbsp_before_sub",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"sub":"\u00a0admin"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_ideographic_space_after_iss",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"iss":"https://auth.example.com\u3000"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_kid_trailing_space",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1 "}"#,
                "{}",
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_scope_double_space",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"scope":"orders:read  admin"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_scope_not_ascii",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"scope":"orders:read \u00fc"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_roles_with_space",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"roles":["read admin"],"role":"a\"b"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_cnf_jkt",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"sub":"u","cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_cnf_empty",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"sub":"u","cnf":{}}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_cnf_x5t_and_jwk",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"sub":"u","cnf":{"x5t#S256":"t","jwk":{"kty":"oct"}}}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "signed_cnf_string",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"sub":"u","cnf":"x5t"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        (
            "claims_json_syntax_rules",
            s(
                r#"{"sub":"\u0085","jti":" j","iss":"i\u2029","aud":["a b"],"scope":"a\tb","scp":[""],"role":"\\","roles":["\u00a0"],"tenant":["x y"]}"#,
            ),
        ),
        (
            "claims_json_cnf_repeated",
            s(r#"{"cnf":{"x5t#S256":"a","x5t#S256":"b"}}"#),
        ),
        (
            "claims_json_nested_repeat",
            s(r#"{"sub":"u","ext":{"a":1,"a":2}}"#),
        ),
        (
            "header_json_kid_edge_space",
            s(r#"{"alg":"HS256","kid":"\u3000k1","typ":" JWT"}"#),
        ),
        // Finding F1: not UTF-8 / a lone surrogate in a member not read.
        (
            "f1_signed_payload_not_utf8",
            s(sign_compact(
                br#"{"alg":"HS256","kid":"k1"}"#,
                b"{\"sub\":\"u\",\"x\":\"\xff\"}",
                Alg::Hs256,
                K1_SECRET,
            )),
        ),
        (
            "f1_signed_payload_lone_surrogate",
            raw_signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"sub":"u","x":"\ud800"}"#,
                Alg::Hs256,
                K1_SECRET,
            ),
        ),
        ("f1_claims_json_not_utf8", b"{\"x\":\"\xff\"}".to_vec()),
        // The input token_verify first reported F1 with.
        (
            "f1_fuzzer_input",
            b"{\"alg\":\"HS25\xc1\",\"typ\":7}".to_vec(),
        ),
    ]
}

/// The structured target decodes any bytes; a few fixed patterns of several
/// lengths start it off.
fn forge_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut prng = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    vec![
        ("zeros_64", vec![0; 64]),
        ("zeros_512", vec![0; 512]),
        ("ones_256", vec![1; 256]),
        ("prng_128", prng(128)),
        ("prng_512", prng(512)),
        ("prng_2048", prng(2048)),
    ]
}

fn config_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let key32 = STANDARD.encode(K1_SECRET);
    let key64 = STANDARD.encode(K2_SECRET);
    let spec = json!({
        "realm": "orders-api",
        "keys": [
            {"kid": "2026-11", "alg": "HS256", "secret_env": "TG_KEY"},
            {"kid": "2026-10", "alg": "HS256", "secret": key32, "encoding": "base64"}
        ],
        "issuers": ["https://auth.example.com"],
        "audiences": ["orders-api"],
        "clock_skew_s": 30,
        "max_lifetime_s": 86400,
        "require_claims": ["exp", "jti"],
        "max_token_bytes": 4096,
        "token_sources": [
            {"header": "authorization", "scheme": "Bearer"},
            {"header": "x-api-key"},
            {"query": "access_token"},
            {"cookie": "tg_token"}
        ],
        "forward_token": false,
        "claims_to_headers": {"sub": "x-auth-subject", "scope": "x-auth-scopes", "role": "x-auth-role", "jti": "x-auth-token-id"},
        "roles": {"manager": ["orders:read", "orders:write", "reports:read"], "admin": ["*"]},
        "require_tls": false,
        "rules": [
            {"match": {"prefix": "/healthz"}, "anonymous": true},
            {"match": {"prefix": "/orders", "methods": ["GET", "HEAD"]}, "scopes": ["orders:read"]},
            {"match": {"prefix": "/orders"}, "scopes": ["orders:write"]},
            {"match": {"prefix": "/admin", "hosts": ["*.example.com", "[::1]"]}, "roles": ["admin"]},
            {"match": {"prefix": "/internal"}, "deny": true},
            {"match": {"prefix": "/"}}
        ],
        "revocation": {"max_stale_s": 60, "on_unavailable": "deny", "static": [{"jti": "01JD3XK"}, {"sub": "user-42", "before": 1764259000}, {"kid": "2026-09"}]},
        "refresh": {"path": "/oauth/token", "access_ttl_s": 900, "kid": "2026-10"}
    });
    let minimal = json!({"keys": [{"kid": "k", "alg": "HS256", "secret": key32}]});
    let utf8 = json!({"keys": [{"kid": "k", "alg": "HS512", "secret": std::str::from_utf8(K2_SECRET).unwrap_or_default(), "encoding": "utf8"}]});
    let envs = json!({"keys": [
        {"kid": "a", "alg": "HS256", "secret_env": "TG_KEY"},
        {"kid": "b", "alg": "HS384", "secret_env": "TG_UTF8", "encoding": "utf8"},
        {"kid": "c", "alg": "HS512", "secret_env": "TG_SHORT"},
        {"kid": "d", "alg": "HS256", "secret_env": "TG_BAD"},
        {"kid": "e", "alg": "HS256", "secret_env": "TG_EMPTY"}]});
    let service = json!({"cluster": "revocation_source", "authority": "revocations.internal", "path": "/v1/revocations",
                         "poll_interval_s": 5, "timeout_ms": 2000, "max_bytes": 134217728,
                         "verify_key": {"alg": "HS256", "secret_env": "TG_KEY"}});
    let service_inline = json!({"cluster": "c", "authority": "a", "path": "/",
                                "verify_key": {"alg": "HS512", "secret": key64}});
    let with = |extra: &str| {
        s(format!(
            r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{key32}"}}],{extra}}}"#
        ))
    };
    vec![
        (
            "spec_filter",
            s(serde_json::to_string_pretty(&spec).unwrap_or_default()),
        ),
        ("minimal", s(minimal.to_string())),
        ("utf8_secret", s(utf8.to_string())),
        ("secret_env_variants", s(envs.to_string())),
        ("spec_service", s(service.to_string())),
        ("service_inline_secret", s(service_inline.to_string())),
        (
            "service_zero_poll",
            s(r#"{"cluster":"c","authority":"a","path":"/","poll_interval_s":0}"#),
        ),
        (
            "service_relative_path",
            s(r#"{"cluster":"c","authority":"a","path":"v1"}"#),
        ),
        (
            "unknown_alg",
            s(format!(
                r#"{{"keys":[{{"kid":"a","alg":"HS256","secret":"{key32}"}},{{"kid":"b","alg":"HS255","secret":"{key32}"}}]}}"#
            )),
        ),
        (
            "duplicate_kid",
            s(format!(
                r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{key32}"}},{{"kid":"k","alg":"HS256","secret":"{key32}"}}]}}"#
            )),
        ),
        (
            "short_secret",
            s(format!(
                r#"{{"keys":[{{"kid":"k","alg":"HS512","secret":"{key32}"}}]}}"#
            )),
        ),
        (
            "secret_not_base64",
            s(
                r#"{"keys":[{"kid":"k","alg":"HS256","secret":"this-inline-secret-is-not-base64!"}]}"#,
            ),
        ),
        (
            "secret_and_env",
            s(format!(
                r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{key32}","secret_env":"TG_KEY"}}]}}"#
            )),
        ),
        (
            "secret_wrong_type",
            s(r#"{"keys":[{"kid":"k","alg":"HS256","secret":12345678901234567890}]}"#),
        ),
        ("unknown_field", with(r#""colour":1"#)),
        ("empty_keys", s(r#"{"keys":[]}"#)),
        ("not_an_object", s(r#"["keys"]"#)),
        ("trailing", s(format!("{} x", minimal))),
        (
            "lower_case_method",
            with(r#""rules":[{"match":{"prefix":"/","methods":["GET","post"]}}]"#),
        ),
        (
            "path_and_prefix",
            with(r#""rules":[{"match":{"path":"/a","prefix":"/a"}}]"#),
        ),
        (
            "unnormalized_prefix",
            with(r#""rules":[{"match":{"prefix":"/a/../b"}}]"#),
        ),
        (
            "anonymous_and_deny",
            with(r#""rules":[{"anonymous":true,"deny":true}]"#),
        ),
        (
            "anonymous_with_scopes",
            with(r#""rules":[{"anonymous":true,"scopes":["a"]}]"#),
        ),
        (
            "bad_host",
            with(r#""rules":[{"match":{"hosts":["a.com:80","*"]}}]"#),
        ),
        (
            "bad_sources",
            with(r#""token_sources":[{"header":"bad header"},{"query":"t","scheme":"Bearer"}]"#),
        ),
        (
            "claim_header_host",
            with(r#""claims_to_headers":{"sub":"Host"}"#),
        ),
        (
            "claim_header_twice",
            with(r#""claims_to_headers":{"sub":"x-a","jti":"X-A"}"#),
        ),
        (
            "static_bad_entry",
            with(r#""revocation":{"static":[{"jti":"a","sub":"b"},{"before":1}]}"#),
        ),
        (
            "refresh_unknown_kid",
            with(r#""refresh":{"path":"/oauth/token","kid":"nope"}"#),
        ),
        ("max_token_bytes_zero", with(r#""max_token_bytes":0"#)),
        ("wrong_type", with(r#""clock_skew_s":"30""#)),
        // Repeated member names, at any depth: the last value never wins.
        ("repeat_top_level", with(r#""realm":"a","realm":"b""#)),
        (
            "repeat_roles",
            with(r#""roles":{"reader":["orders:read"],"reader":["*"]}"#),
        ),
        (
            "repeat_claims_to_headers",
            with(r#""claims_to_headers":{"sub":"x-a","sub":"x-b"}"#),
        ),
        (
            "repeat_in_key",
            s(format!(
                r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{key32}","kid":"j"}}]}}"#
            )),
        ),
        (
            "repeat_in_match",
            with(r#""rules":[{"match":{"prefix":"/admin","prefix":"/"},"deny":true}]"#),
        ),
        (
            "repeat_in_static_entry",
            with(r#""revocation":{"static":[{"jti":"a"},{"jti":"a","jti":"b"}]}"#),
        ),
        (
            "repeat_escaped_name",
            with(r#""\u0072ealm":"a","realm":"b""#),
        ),
        (
            "repeat_service",
            s(r#"{"cluster":"c","authority":"a","path":"/","path":"/v2"}"#),
        ),
        // Finding F2: structs read from arrays, positionally.
        (
            "f2_service_positional",
            s(r#"["c","a","/",null,null,null,null]"#),
        ),
        (
            "f2_filter_positional",
            s(format!(
                r#"["realm",[["k","HS256","{key32}",null,null]],null,null,null,null,null,null,null,null,null,null,null,null,null,null]"#
            )),
        ),
        // Its error once kept serde's "expected struct RawConfig".
        ("f2_root_array_whitespace", s("[\t]")),
    ]
}

fn path_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let paths: [(&str, &[u8]); 41] = [
        ("root", b"/"),
        ("plain", b"/orders/7"),
        ("spec_example", b"/public//..//admin"),
        ("trailing_slash", b"/orders/"),
        ("dot_segments", b"/a/./b/../c/."),
        ("dotdot_to_root", b"/a/.."),
        ("above_root", b"/.."),
        ("above_root_later", b"/a/../../b"),
        ("encoded_dots", b"/a/%2e%2E/admin"),
        ("encoded_unreserved", b"/%7Euser/%41%62%2d%5f"),
        ("encoded_reserved_kept", b"/a%20b/%c3%a9/%3b"),
        ("encoded_slash", b"/admin%2Fusers"),
        ("encoded_backslash", b"/admin%5cusers"),
        ("encoded_nul", b"/admin%00.json"),
        ("backslash", b"/admin\\users"),
        ("bad_escape", b"/a%zz"),
        ("short_escape", b"/a%2"),
        ("double_encoding", b"/%252e%252e/admin"),
        ("params", b"/public/..;/admin"),
        ("params_segment", b"/admin;x=1/users;jsessionid=2"),
        ("params_escape", b"/a;%2f"),
        ("query_and_fragment", b"/a/b?x=1/../..#frag"),
        ("query_dotdot", b"/a?/../.."),
        ("fragment_only", b"/a#/.."),
        ("slash_runs", b"///a///b//"),
        ("not_absolute", b"admin"),
        ("asterisk", b"*"),
        ("absolute_uri", b"http://example.com/a"),
        ("empty", b""),
        ("non_utf8", b"/\xff\xfe"),
        ("utf8", "/caf\u{e9}/\u{1f600}".as_bytes()),
        ("three_dots", b"/a/.../b/..c/.d"),
        ("dot_params", b"/a/.;x/..;y/b"),
        ("dot_params_dotdot", b"/public/..;/admin"),
        ("dot_params_encoded", b"/a/%2e%2e;x/admin"),
        ("dot_params_single", b"/a/.;/b"),
        ("dot_params_last", b"/admin/..;"),
        ("dot_params_escape_after", b"/a/..;%2f/b"),
        ("params_only_segment", b"/a/;x/../b"),
        ("three_dots_params", b"/a/...;x/b"),
        ("deep", b"/a/b/c/d/e/f/g/../../../../../../../admin"),
    ];
    paths.iter().map(|(n, p)| (*n, p.to_vec())).collect()
}

fn revocation_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let spec = Document {
        version: 42,
        generated_at: Some(1_764_259_200),
        entries: vec![
            Entry::Jti {
                jti: "01JD3XK".into(),
                exp: Some(1_764_262_800),
            },
            Entry::Sub {
                sub: "user-42".into(),
                before: Some(1_764_259_000),
                exp: None,
            },
            Entry::Kid {
                kid: "2026-09".into(),
                exp: None,
            },
        ],
    };
    let repeats = Document {
        version: 7,
        generated_at: None,
        entries: vec![
            Entry::Sub {
                sub: "a".into(),
                before: Some(10),
                exp: None,
            },
            Entry::Sub {
                sub: "a".into(),
                before: Some(20),
                exp: Some(5),
            },
            Entry::Sub {
                sub: "b".into(),
                before: None,
                exp: None,
            },
            Entry::Sub {
                sub: "b".into(),
                before: Some(3),
                exp: None,
            },
            Entry::Jti {
                jti: "a".into(),
                exp: Some(1),
            },
            Entry::Kid {
                kid: "a".into(),
                exp: None,
            },
            Entry::Jti {
                jti: "\u{0}ctl\n\"q\"".into(),
                exp: None,
            },
        ],
    };
    let many = Document {
        version: 1,
        generated_at: None,
        entries: (0..64)
            .map(|i| Entry::Jti {
                jti: format!("jti-{i}"),
                exp: None,
            })
            .collect(),
    };
    let empty = Document {
        version: 1,
        generated_at: None,
        entries: vec![],
    };
    let key = Key::new(KeyId("revocations".into()), Alg::Hs256, K1_SECRET)
        .unwrap_or_else(|e| panic!("{e}"));
    let snapshot = |d: &Document| Snapshot::build(d, 0).as_bytes().to_vec();
    vec![
        ("spec_list", s(spec.to_json())),
        ("repeats_list", s(repeats.to_json())),
        ("many_list", s(many.to_json())),
        ("empty_list", s(empty.to_json())),
        ("spec_signed", s(spec.to_signed(&key) + "\n")),
        (
            "repeats_signed_without_generated_at",
            s(repeats.to_signed(&key)),
        ),
        (
            "repeats_signed",
            s(Document {
                generated_at: Some(1_764_259_200),
                ..repeats.clone()
            }
            .to_signed(&key)),
        ),
        ("spec_snapshot", snapshot(&spec)),
        ("repeats_snapshot", snapshot(&repeats)),
        ("many_snapshot", snapshot(&many)),
        ("empty_snapshot", snapshot(&empty)),
        (
            "spec_text",
            s(
                r#"{"version":42,"generated_at":1764259200,"entries":[{"jti":"01JD3","exp":1764262800},{"sub":"user-42","before":1764259000},{"kid":"2026-09"}]}"#,
            ),
        ),
        ("version_zero", s(r#"{"version":0,"entries":[]}"#)),
        (
            "both_jti_sub",
            s(r#"{"version":1,"entries":[{"jti":"a","sub":"b"}]}"#),
        ),
        (
            "before_on_jti",
            s(r#"{"version":1,"entries":[{"jti":"a","before":1}]}"#),
        ),
        (
            "null_exp",
            s(r#"{"version":1,"entries":[{"jti":"a","exp":null}]}"#),
        ),
        (
            "duplicate_field",
            s(r#"{"version":1,"version":2,"entries":[]}"#),
        ),
        (
            "unknown_member",
            s(
                r#"{"version":1,"entries":[],"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":1}"#,
            ),
        ),
        ("empty_string", s(r#"{"version":1,"entries":[{"kid":""}]}"#)),
        (
            "negative_before",
            s(r#"{"version":1,"entries":[{"sub":"a","before":-1}]}"#),
        ),
        (
            "unsigned_as_signed",
            s(format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"tokengate-revocations"}"#),
                URL_SAFE_NO_PAD.encode(spec.to_json())
            )),
        ),
        (
            "signed_wrong_typ",
            s(sign_compact(
                br#"{"alg":"HS256","typ":"JWT"}"#,
                spec.to_json().as_bytes(),
                Alg::Hs256,
                K1_SECRET,
            )),
        ),
        (
            "signed_alg_hs512",
            s(sign_compact(
                br#"{"alg":"HS512","typ":"tokengate-revocations"}"#,
                spec.to_json().as_bytes(),
                Alg::Hs512,
                K2_SECRET,
            )),
        ),
        (
            "signed_crit",
            s(sign_compact(
                br#"{"alg":"HS256","typ":"tokengate-revocations","crit":["x"]}"#,
                spec.to_json().as_bytes(),
                Alg::Hs256,
                K1_SECRET,
            )),
        ),
    ]
}

fn authority_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let long_label = format!("{}.example.com", "a".repeat(63));
    let too_long_label = format!("{}.example.com", "a".repeat(64));
    let name_253 = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "a".repeat(61));
    let name_254 = format!("{name_253}a");
    let authorities: Vec<(&str, Vec<u8>)> = vec![
        ("admin", s("admin.example.com")),
        ("admin_mixed_case", s("Admin.Example.COM")),
        ("admin_port", s("admin.example.com:8443")),
        ("admin_port_max", s("admin.example.com:65535")),
        ("admin_port_too_big", s("admin.example.com:65536")),
        ("admin_port_six_digits", s("admin.example.com:000080")),
        ("admin_port_empty", s("admin.example.com:")),
        ("admin_second_colon", s("admin.example.com:80:")),
        ("admin_port_sign", s("admin.example.com:+80")),
        ("admin_trailing_dot", s("admin.example.com.")),
        ("admin_trailing_dots", s("ADMIN.example.com..:80")),
        ("admin_empty_label", s("admin..example.com")),
        ("admin_leading_dot", s(".admin.example.com")),
        ("userinfo", s("a@admin.example.com")),
        (
            "userinfo_password_port",
            s("user:pass@admin.example.com:443"),
        ),
        (
            "userinfo_names_admin",
            s("admin.example.com@public.example.com"),
        ),
        ("userinfo_empty", s("@admin.example.com")),
        ("percent_dot", s("admin%2eexample.com")),
        ("slash", s("admin.example.com/x")),
        ("space", s("admin example.com")),
        ("tab_after", s("admin.example.com\t")),
        ("non_ascii", s("adm\u{ef}n.example.com")),
        ("underscore", s("my_host.internal:0")),
        ("punycode", s("xn--bcher-kva.example")),
        ("ipv4", s("127.0.0.1:8080")),
        ("ipv4_like_name", s("999.1.1.1")),
        ("ipv6", s("[::1]")),
        ("ipv6_port", s("[::1]:8080")),
        ("ipv6_upper", s("[FE80::1]:80")),
        ("ipv6_v4_mapped", s("[::ffff:1.2.3.4]")),
        ("ipv6_zone", s("[fe80::1%25eth0]")),
        ("ipv6_unclosed", s("[::1")),
        ("ipv6_junk_after", s("[::1]x")),
        ("ipv6_port_empty", s("[::1]:")),
        ("ipv6_bracketed_name", s("[admin.example.com]")),
        ("ipv6_bare", s("::1")),
        ("label_63", s(long_label)),
        ("label_64", s(too_long_label)),
        ("name_253", s(name_253)),
        ("name_254", s(name_254)),
        ("empty", Vec::new()),
        ("pattern_wildcard", s("*.example.com")),
        ("pattern_wildcard_upper", s("*.Example.COM")),
        ("pattern_star_dot", s("*.")),
        ("pattern_star", s("*")),
        ("pattern_inner_star", s("a.*.com")),
        ("forwarded_list", s("public.example.com, admin.example.com")),
        (
            "forwarded_trailing_dot",
            s("public.example.com,admin.example.com."),
        ),
    ];
    authorities
}

fn form_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let token = String::from_utf8(token_seeds().swap_remove(0).1).unwrap_or_default();
    let params = |n: usize| {
        (0..n)
            .map(|i| format!("p{i}=%41"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let padded = |len: usize| {
        let mut body = b"grant_type=refresh_token&refresh_token=".to_vec();
        while body.len() + 3 <= len {
            body.extend_from_slice(b"%41");
        }
        body.resize(len, b'a');
        body
    };
    let long_names = (0..16)
        .map(|i| format!("{}{}=1", "n".repeat(400), i % 10))
        .collect::<Vec<_>>()
        .join("&");
    vec![
        (
            "refresh",
            s(format!(
                "grant_type=refresh_token&refresh_token={token}&scope=orders%3Aread+orders%3Awrite"
            )),
        ),
        ("sixteen_params", s(params(16))),
        ("seventeen_params", s(params(17))),
        (
            "seventeen_params_then_junk",
            s(format!("{}&%zz&a=1&a=1", params(17))),
        ),
        ("empty_pairs", s("&&&grant_type=refresh_token&&")),
        ("repeated", s("scope=a&scope=b")),
        ("repeated_after_decoding", s("%73cope=a&scope=b")),
        ("case_differs", s("scope=a&SCOPE=b")),
        ("bad_escape", s("a=%zz")),
        ("short_escape", s("a=%2")),
        ("plus_in_escape", s("a=%+1")),
        ("not_utf8", s("a=%ff")),
        ("utf8_escaped", s("a=%C3%A9")),
        ("utf8_raw", s("a=\u{e9}")),
        ("decoded_once", s("a=%2541")),
        ("plus_spaces", s("a+b=c+d")),
        ("no_equals", s("grant_type")),
        ("empty_name", s("=x")),
        ("equals_in_value", s("a=b=c")),
        ("exactly_8192", padded(8192)),
        ("over_8192", padded(8193)),
        ("long_similar_names", s(long_names)),
        ("ampersands", vec![b'&'; 8192]),
    ]
}

fn select_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut prng = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    vec![
        ("admin", s("/admin")),
        ("admin_upper", s("/ADMIN")),
        ("admin_slash", s("/admin/")),
        ("admin_extension", s("/admin.json")),
        ("admin_all_readings", s("/Admin.JSON/")),
        ("admin_below", s("/Admin/users.json")),
        ("admin_dot_params", s("/public/..;/admin")),
        ("admin_escaped_letter", s("/%41dmin")),
        ("well_known", s("/.well-known/x")),
        ("escape_case", s("/A%3AB")),
        // Finding F3: no extension reading after a wide first character.
        ("f3_wide_segment", s("/\u{fc}.json")),
        (
            "f3_fuzzer_input",
            b"+\xecV\xefrdmin.J\xc2\xf1/\xef\xef\xef\xef\xef/pu\xe2lw\x00\xff\xff/\x1e$\xff\xff/..;/adm?innreal|\xbd\xd8\xa8\x17min.J\xc2\xf1/\xef\xef\xef\xef\xef/pu\xe2lw\x00\xff\xff/\x1e$\xff\xff/..;/adm?innreal|\xbd\xd8\xa8\x17\x8d\xae\x1e$g\xf1\x13/w\x0e\x17;?\xffN.|\xbd=\xb1\x02\xb6S\xfa\x88\xa3\xc2\xb7\xb7\xb7\xb7\xb7\xb7\xb7\xb7\xb7\xb7\xb7S\xff\x8d\xae\x1e$g\xf1\x13/w\x0e\x17;?\xffN.|\xbd=\xb1\x02\xb6S\xfa\x88\xa3\xc2\xb7\xb7\xb7\xb7\xb7\xb7\xb7\xb7\xb7\xb7\xb7S\xff".to_vec(),
        ),
        ("prng_64", prng(64)),
        ("prng_256", prng(256)),
        ("prng_1024", prng(1024)),
    ]
}
