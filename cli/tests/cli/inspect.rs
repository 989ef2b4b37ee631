//! `tokengate inspect`.

use base64::Engine as _;

use crate::util::{keyed_dir, mint, Dir, NOW, PYJWT_HS256, PYJWT_HS384};

fn at(secs: u64) -> String {
    secs.to_string()
}

#[test]
fn shows_header_claims_and_human_times_and_says_nothing_was_verified() {
    let dir = keyed_dir();
    let token = mint(&dir, &["--sub", "alice", "--scope", "orders:read"]);
    let run = dir.run(&["inspect", "--now", &at(NOW + 60), &token]).ok();
    let first = run.stdout.lines().next().unwrap();
    assert!(
        first.contains("NOT VERIFIED") && first.contains("not checked"),
        "{first}"
    );
    assert!(run.stdout.contains("\"alice\""));
    assert!(
        run.stdout.contains("2025-11-27T16:15:00Z"),
        "exp in RFC 3339: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains("2025-11-27T16:00:00Z  1m ago"),
        "iat: {}",
        run.stdout
    );
    assert!(run.stdout.contains("expires in 14m"), "{}", run.stdout);
    assert!(run.stdout.contains("fits tokengate's token profile"));
}

#[test]
fn says_how_long_ago_a_token_expired() {
    let dir = keyed_dir();
    let token = mint(&dir, &["--sub", "alice"]);
    let run = dir
        .run(&[
            "inspect",
            "--now",
            &at(NOW + 15 * 60 + 3 * 3600 + 20),
            &token,
        ])
        .ok();
    assert!(run.stdout.contains("expired 3h ago"), "{}", run.stdout);
}

#[test]
fn reads_the_token_from_stdin() {
    let dir = keyed_dir();
    let token = mint(&dir, &["--sub", "alice"]);
    let dash = dir
        .run_with_stdin(&["inspect", "-"], &format!("{token}\n"))
        .ok();
    let none = dir.run_with_stdin(&["inspect"], &token).ok();
    assert!(dash.stdout.contains("\"alice\""));
    assert_eq!(dash.stdout.lines().count(), none.stdout.lines().count());
}

#[test]
fn json_output_is_machine_readable() {
    let dir = keyed_dir();
    let token = mint(&dir, &["--sub", "alice"]);
    let out = dir
        .run(&["inspect", "--json", "--now", &at(NOW), &token])
        .ok()
        .json();
    assert_eq!(out["verified"], false);
    assert_eq!(out["header"]["kid"], "demo");
    assert_eq!(out["claims"]["sub"], "alice");
    assert_eq!(out["expired"], false);
    assert_eq!(out["expires_in_s"], 900);
    assert_eq!(out["times"]["exp"]["utc"], "2025-11-27T16:15:00Z");
    assert_eq!(out["profile_ok"], true);
}

#[test]
fn reads_pyjwt_tokens() {
    let dir = Dir::new();
    let one = dir
        .run(&["inspect", "--json", "--now", &at(NOW), PYJWT_HS256])
        .ok()
        .json();
    assert_eq!(one["header"]["alg"], "HS256");
    assert_eq!(one["claims"]["sub"], "py-alice");
    assert_eq!(one["signature_bytes"], 32);
    let two = dir
        .run(&["inspect", "--json", "--now", &at(NOW), PYJWT_HS384])
        .ok()
        .json();
    assert_eq!(two["header"]["alg"], "HS384");
    assert_eq!(
        two["claims"]["aud"],
        serde_json::json!(["other", "orders-api"])
    );
    assert_eq!(two["signature_bytes"], 48);
    assert_eq!(two["profile_ok"], true);
}

#[test]
fn flags_a_token_outside_the_profile() {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let token = format!(
        "{}.{}.",
        b64(r#"{"alg":"none"}"#),
        b64(r#"{"sub":"mallory"}"#)
    );
    let run = Dir::new().run(&["inspect", &token]).ok();
    assert!(
        run.stdout.contains("malformed for tokengate"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\"mallory\""));
}

#[test]
fn shows_a_control_character_escaped() {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let token = format!(
        "{}.{}.AAAA",
        b64(r#"{"alg":"HS256"}"#),
        b64("{\"note\":\"a\\u001b[31mred\"}")
    );
    let run = Dir::new().run(&["inspect", &token]).ok();
    assert!(
        !run.stdout.contains('\u{1b}'),
        "raw escape reached the terminal"
    );
    assert!(run.stdout.contains("\\u001b"), "{}", run.stdout);
}

// Errors.

#[test]
fn refuses_what_is_not_a_token() {
    Dir::new()
        .run(&["inspect", "not-a-token"])
        .error(1, &["not a readable token", "three"]);
    Dir::new()
        .run(&["inspect", "a.b.c"])
        .error(1, &["not a readable token"]);
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let token = format!("{}.{}.", b64(r#"{"alg":"HS256"}"#), b64("[1,2]"));
    Dir::new()
        .run(&["inspect", &token])
        .error(1, &["payload", "JSON object"]);
}

#[test]
fn refuses_an_empty_stdin() {
    Dir::new().run(&["inspect"]).error(2, &["no token"]);
}

#[test]
fn refuses_a_bad_now() {
    Dir::new()
        .run(&["inspect", "--now", "tomorrow", PYJWT_HS256])
        .usage_error(&["--now", "RFC 3339"]);
}
