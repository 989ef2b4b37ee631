//! `tokengate keygen`.

use base64::Engine as _;
use serde_json::Value;

use crate::util::Dir;

fn secret_len(entry: &Value) -> usize {
    base64::engine::general_purpose::STANDARD
        .decode(entry["secret"].as_str().unwrap())
        .unwrap()
        .len()
}

#[test]
fn prints_a_keys_entry_with_a_secret_of_the_hash_length() {
    let dir = Dir::new();
    for (alg, len) in [("HS256", 32), ("HS384", 48), ("HS512", 64)] {
        let run = dir.run(&["keygen", "--alg", alg, "--kid", "k1"]).ok();
        assert_eq!(run.stdout.lines().count(), 1, "one line: {}", run.stdout);
        let entry = run.json();
        assert_eq!(entry["kid"], "k1");
        assert_eq!(entry["alg"], alg);
        assert_eq!(secret_len(&entry), len, "{alg}");
        assert_eq!(
            entry.as_object().unwrap().len(),
            3,
            "{{kid, alg, secret}} only"
        );
        // Printed in that order, as a keys[] entry reads.
        assert!(
            run.stdout.starts_with(r#"{"kid":"k1","alg":""#),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn defaults_to_hs256_and_the_current_utc_month() {
    let entry = Dir::new().run(&["keygen"]).ok().json();
    assert_eq!(entry["alg"], "HS256");
    assert_eq!(secret_len(&entry), 32);
    let now = time::OffsetDateTime::now_utc();
    let month = format!("{:04}-{:02}", now.year(), u8::from(now.month()));
    let kid = entry["kid"].as_str().unwrap();
    // The month may turn between the run and this line.
    assert!(kid == month || kid.len() == 7, "{kid} vs {month}");
}

#[test]
fn every_key_is_new() {
    let dir = Dir::new();
    let a = dir.run(&["keygen"]).ok().json();
    let b = dir.run(&["keygen"]).ok().json();
    assert_ne!(a["secret"], b["secret"]);
}

#[test]
fn output_pastes_into_a_configuration_and_mints() {
    let dir = Dir::new();
    let entry = dir.run(&["keygen", "--kid", "2026-11"]).ok().stdout;
    dir.write("key.json", &entry);
    let config = format!(
        r#"{{"keys": [{}], "rules": [{{"match": {{"prefix": "/"}}}}]}}"#,
        entry.trim()
    );
    dir.write("filter.json", config);
    dir.run(&["check-config", "filter.json"]).ok();
    let token = dir
        .run(&["mint", "--key-file", "key.json", "--sub", "alice"])
        .ok()
        .stdout;
    dir.run(&["verify", "--config", "filter.json", token.trim()])
        .ok();
}

#[test]
fn refuses_an_unknown_algorithm() {
    Dir::new()
        .run(&["keygen", "--alg", "RS256"])
        .usage_error(&["--alg", "RS256"]);
}

#[test]
fn refuses_an_empty_kid() {
    Dir::new()
        .run(&["keygen", "--kid", ""])
        .error(2, &["--kid"]);
}

#[test]
fn refuses_a_kid_with_a_control_character() {
    let dir = Dir::new();
    for kid in ["a\tb", "a\u{85}b", "a\u{2029}b"] {
        dir.run(&["keygen", "--kid", kid])
            .error(2, &["--kid", "control characters"]);
    }
}
