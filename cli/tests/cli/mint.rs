//! `tokengate mint`.

use crate::util::{
    claims_of, header_of, keyed_dir, mint, Dir, CLIENT_PEM, CLIENT_X5T_S256, KEY_B64, NOW,
    NOW_RFC3339,
};

#[test]
fn mints_a_token_the_filter_accepts() {
    let dir = keyed_dir();
    dir.write("filter.json", r#"{"keys":[{"kid":"demo","alg":"HS256","secret_env":"TG_KEY"}],"rules":[{"match":{"prefix":"/orders"},"scopes":["orders:read"]}]}"#);
    let token = mint(&dir, &["--sub", "alice", "--scope", "orders:read"]);
    let now = NOW.to_string();
    let run = dir
        .run(&[
            "verify",
            "--config",
            "filter.json",
            "--path",
            "/orders",
            "--now",
            &now,
            &token,
        ])
        .ok();
    assert_eq!(run.stdout.lines().next(), Some("allow"));
}

#[test]
fn header_carries_kid_alg_and_typ_jwt() {
    let dir = keyed_dir();
    let token = mint(&dir, &["--sub", "alice"]);
    let header = header_of(&token);
    assert_eq!(
        header,
        serde_json::json!({"alg": "HS256", "kid": "demo", "typ": "JWT"})
    );
}

#[test]
fn sets_iat_exp_and_a_fresh_128_bit_jti() {
    let dir = keyed_dir();
    let a = claims_of(&mint(&dir, &["--sub", "alice"]));
    let b = claims_of(&mint(&dir, &["--sub", "alice"]));
    assert_eq!(a["iat"], NOW);
    assert_eq!(a["exp"], NOW + 15 * 60, "--ttl defaults to 15m");
    assert_eq!(a["sub"], "alice");
    let jti = a["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 32, "128 bits in hex: {jti}");
    assert!(jti.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a["jti"], b["jti"]);
}

#[test]
fn takes_ttl_as_90s_15m_12h_7d() {
    let dir = keyed_dir();
    for (ttl, secs) in [
        ("90s", 90),
        ("15m", 900),
        ("12h", 43_200),
        ("7d", 604_800),
        ("1h30m", 5400),
    ] {
        let claims = claims_of(&mint(&dir, &["--sub", "a", "--ttl", ttl]));
        assert_eq!(claims["exp"], NOW + secs, "{ttl}");
    }
}

#[test]
fn takes_now_as_rfc3339() {
    let dir = keyed_dir();
    let run = dir
        .run(&[
            "mint",
            "--kid",
            "demo",
            "--secret-env",
            "TG_KEY",
            "--sub",
            "a",
            "--now",
            NOW_RFC3339,
        ])
        .ok();
    assert_eq!(claims_of(run.stdout.trim())["iat"], NOW);
}

#[test]
fn keeps_a_given_jti() {
    let dir = keyed_dir();
    assert_eq!(
        claims_of(&mint(&dir, &["--sub", "a", "--jti", "01JD3"]))["jti"],
        "01JD3"
    );
}

#[test]
fn writes_scope_roles_audience_and_issuer() {
    let dir = keyed_dir();
    let one = claims_of(&mint(
        &dir,
        &[
            "--sub",
            "a",
            "--scope",
            "orders:read orders:write",
            "--role",
            "manager",
            "--aud",
            "orders-api",
            "--iss",
            "https://auth.example.com",
        ],
    ));
    assert_eq!(one["scope"], "orders:read orders:write");
    assert_eq!(one["role"], "manager", "one role is the string claim role");
    assert_eq!(one["aud"], "orders-api");
    assert_eq!(one["iss"], "https://auth.example.com");
    let many = claims_of(&mint(
        &dir,
        &[
            "--sub", "a", "--scope", "a", "--scope", "b a", "--role", "r1", "--role", "r2",
            "--aud", "x", "--aud", "y",
        ],
    ));
    assert_eq!(
        many["scope"], "a b",
        "repeated scopes joined, without repeats"
    );
    assert_eq!(many["roles"], serde_json::json!(["r1", "r2"]));
    assert!(many.get("role").is_none());
    assert_eq!(many["aud"], serde_json::json!(["x", "y"]));
}

#[test]
fn adds_other_claims_as_json_or_text() {
    let dir = keyed_dir();
    let claims = claims_of(&mint(
        &dir,
        &[
            "--sub",
            "a",
            "--claim",
            "tenant=acme",
            "--claim",
            "level=3",
            "--claim",
            r#"groups=["g1","g2"]"#,
        ],
    ));
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["level"], 3);
    assert_eq!(claims["groups"], serde_json::json!(["g1", "g2"]));
}

#[test]
fn json_prints_token_header_and_claims() {
    let dir = keyed_dir();
    let now = NOW.to_string();
    let out = dir
        .run(&[
            "mint",
            "--kid",
            "demo",
            "--secret-env",
            "TG_KEY",
            "--sub",
            "alice",
            "--now",
            &now,
            "--json",
        ])
        .ok()
        .json();
    let token = out["token"].as_str().unwrap();
    assert_eq!(out["claims"], claims_of(token));
    assert_eq!(out["header"], header_of(token));
}

#[test]
fn key_file_gives_kid_and_algorithm() {
    let dir = Dir::new();
    let key = dir
        .run(&["keygen", "--alg", "HS512", "--kid", "k5"])
        .ok()
        .stdout;
    dir.write("key.json", key);
    let token = dir
        .run(&["mint", "--key-file", "key.json", "--sub", "a"])
        .ok()
        .stdout;
    assert_eq!(header_of(token.trim())["alg"], "HS512");
    assert_eq!(header_of(token.trim())["kid"], "k5");
}

#[test]
fn key_file_may_be_a_whole_configuration() {
    let mut dir = Dir::new();
    dir.env("TG_KEY", KEY_B64);
    dir.write(
        "filter.json",
        format!(r#"{{"keys":[{{"kid":"a","alg":"HS256","secret_env":"TG_KEY"}},{{"kid":"b","alg":"HS256","secret":"{KEY_B64}"}}]}}"#),
    );
    let token = dir
        .run(&[
            "mint",
            "--key-file",
            "filter.json",
            "--kid",
            "b",
            "--sub",
            "x",
        ])
        .ok()
        .stdout;
    assert_eq!(header_of(token.trim())["kid"], "b");
    dir.run(&["mint", "--key-file", "filter.json", "--sub", "x"])
        .error(2, &["--kid", "2 keys"]);
}

#[test]
fn utf8_encoding_takes_the_text_as_the_key() {
    let mut dir = Dir::new();
    dir.env("TG_TEXT", "a-utf8-secret-that-is-32-bytes!!");
    dir.write("filter.json", r#"{"keys":[{"kid":"u","alg":"HS256","secret":"a-utf8-secret-that-is-32-bytes!!","encoding":"utf8"}],"rules":[{}]}"#);
    let token = dir
        .run(&[
            "mint",
            "--kid",
            "u",
            "--secret-env",
            "TG_TEXT",
            "--encoding",
            "utf8",
            "--sub",
            "a",
        ])
        .ok()
        .stdout;
    dir.run(&["verify", "--config", "filter.json", token.trim()])
        .ok();
}

#[test]
fn bind_cert_writes_the_certificate_thumbprint() {
    let dir = keyed_dir();
    dir.write("client.pem", CLIENT_PEM);
    let claims = claims_of(&mint(&dir, &["--sub", "a", "--bind-cert", "client.pem"]));
    assert_eq!(
        claims["cnf"],
        serde_json::json!({"x5t#S256": CLIENT_X5T_S256})
    );
}

#[test]
fn typ_marks_a_refresh_token() {
    let dir = keyed_dir();
    assert_eq!(
        header_of(&mint(&dir, &["--sub", "a", "--typ", "rt+jwt"]))["typ"],
        "rt+jwt"
    );
    dir.run(&[
        "mint",
        "--kid",
        "demo",
        "--secret-env",
        "TG_KEY",
        "--sub",
        "a",
        "--typ",
        "JOSE",
    ])
    .error(2, &["--typ"]);
}

// Errors.

#[test]
fn refuses_a_missing_sub() {
    keyed_dir()
        .run(&["mint", "--kid", "demo", "--secret-env", "TG_KEY"])
        .usage_error(&["--sub"]);
}

#[test]
fn refuses_no_key_source_and_two_key_sources() {
    let dir = keyed_dir();
    dir.run(&["mint", "--kid", "demo", "--sub", "a"])
        .usage_error(&["--secret-env", "--key-file"]);
    dir.write("key.json", "{}");
    dir.run(&[
        "mint",
        "--kid",
        "demo",
        "--sub",
        "a",
        "--secret-env",
        "TG_KEY",
        "--key-file",
        "key.json",
    ])
    .usage_error(&["--key-file"]);
}

#[test]
fn secret_env_needs_a_kid() {
    keyed_dir()
        .run(&["mint", "--secret-env", "TG_KEY", "--sub", "a"])
        .error(2, &["--kid"]);
}

#[test]
fn names_an_unset_variable() {
    Dir::new()
        .run(&[
            "mint",
            "--kid",
            "demo",
            "--secret-env",
            "TG_NOPE",
            "--sub",
            "a",
        ])
        .error(2, &["--secret-env", "TG_NOPE", "not set"]);
}

#[test]
fn refuses_a_short_secret_without_printing_it() {
    let mut dir = Dir::new();
    dir.env("TG_SHORT", "c2hvcnQtc2VjcmV0LXZhbHVl"); // "short-secret-value"
    let run = dir
        .run(&[
            "mint",
            "--kid",
            "demo",
            "--secret-env",
            "TG_SHORT",
            "--sub",
            "a",
        ])
        .error(2, &["TG_SHORT", "18 bytes", "HS256"]);
    assert!(!run.stderr.contains("c2hvcnQ") && !run.stderr.contains("short-secret"));
}

#[test]
fn refuses_a_secret_that_is_not_base64() {
    let mut dir = Dir::new();
    dir.env("TG_BAD", "not base64 at all!");
    dir.run(&[
        "mint",
        "--kid",
        "demo",
        "--secret-env",
        "TG_BAD",
        "--sub",
        "a",
    ])
    .error(2, &["TG_BAD", "base64"]);
}

#[test]
fn refuses_a_bad_ttl() {
    let dir = keyed_dir();
    for ttl in ["5y", "15M", "1h30", "-5m"] {
        dir.run(&[
            "mint",
            "--kid",
            "demo",
            "--secret-env",
            "TG_KEY",
            "--sub",
            "a",
            &format!("--ttl={ttl}"),
        ])
        .usage_error(&["--ttl"]);
    }
    dir.run(&[
        "mint",
        "--kid",
        "demo",
        "--secret-env",
        "TG_KEY",
        "--sub",
        "a",
        "--ttl",
        "0s",
    ])
    .error(2, &["--ttl"]);
}

#[test]
fn refuses_a_bad_alg() {
    keyed_dir()
        .run(&[
            "mint",
            "--kid",
            "demo",
            "--secret-env",
            "TG_KEY",
            "--sub",
            "a",
            "--alg",
            "none",
        ])
        .usage_error(&["--alg"]);
}

#[test]
fn refuses_alg_or_kid_other_than_the_key_files() {
    let dir = Dir::new();
    let key = dir.run(&["keygen", "--kid", "k1"]).ok().stdout;
    dir.write("key.json", key);
    dir.run(&[
        "mint",
        "--key-file",
        "key.json",
        "--sub",
        "a",
        "--alg",
        "HS512",
    ])
    .error(2, &["--alg", "HS256"]);
    dir.run(&[
        "mint",
        "--key-file",
        "key.json",
        "--sub",
        "a",
        "--kid",
        "k2",
    ])
    .error(2, &["--kid", "k1"]);
}

#[test]
fn refuses_a_missing_or_broken_key_file() {
    let dir = Dir::new();
    dir.run(&["mint", "--key-file", "nope.json", "--sub", "a"])
        .error(2, &["nope.json"]);
    dir.write("key.json", "not json");
    dir.run(&["mint", "--key-file", "key.json", "--sub", "a"])
        .error(2, &["--key-file", "key.json", "JSON"]);
    dir.write("key.json", r#"{"kid":"k","alg":"HS255","secret":"AAAA"}"#);
    dir.run(&["mint", "--key-file", "key.json", "--sub", "a"])
        .error(2, &["key.json", "alg", "HS255"]);
}

#[test]
fn refuses_control_characters_in_claims() {
    keyed_dir()
        .run(&[
            "mint",
            "--kid",
            "demo",
            "--secret-env",
            "TG_KEY",
            "--sub",
            "a\nb",
        ])
        .error(2, &["--sub", "control character"]);
}

#[test]
fn refuses_c1_controls_and_unicode_line_separators_in_claims() {
    // Several bytes each in UTF-8: a byte-wise check lets them through,
    // and the filter would then refuse the token as malformed.
    let dir = keyed_dir();
    for sub in ["a\u{85}b", "a\u{9b}b", "a\u{2028}b", "a\u{2029}b"] {
        dir.run(&[
            "mint",
            "--kid",
            "demo",
            "--secret-env",
            "TG_KEY",
            "--sub",
            sub,
        ])
        .error(2, &["--sub", "control character"]);
    }
}

#[test]
fn refuses_a_claim_that_would_make_the_token_malformed() {
    let dir = keyed_dir();
    dir.run(&[
        "mint",
        "--kid",
        "demo",
        "--secret-env",
        "TG_KEY",
        "--sub",
        "a",
        "--claim",
        r#"nbf="soon""#,
    ])
    .error(2, &["malformed", "--claim"]);
    dir.run(&[
        "mint",
        "--kid",
        "demo",
        "--secret-env",
        "TG_KEY",
        "--sub",
        "a",
        "--claim",
        "exp=1",
    ])
    .error(2, &["--claim", "exp", "already set"]);
    dir.run(&[
        "mint",
        "--kid",
        "demo",
        "--secret-env",
        "TG_KEY",
        "--sub",
        "a",
        "--claim",
        "novalue",
    ])
    .error(2, &["--claim", "NAME=VALUE"]);
}

#[test]
fn refuses_a_missing_bind_cert() {
    keyed_dir()
        .run(&[
            "mint",
            "--kid",
            "demo",
            "--secret-env",
            "TG_KEY",
            "--sub",
            "a",
            "--bind-cert",
            "none.pem",
        ])
        .error(2, &["--bind-cert", "none.pem"]);
}
