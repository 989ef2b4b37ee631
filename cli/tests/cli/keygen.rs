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

#[cfg(unix)]
#[test]
fn out_writes_a_new_file_only_its_owner_can_read_and_never_replaces_one() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Dir::new();
    let run = dir
        .run(&["keygen", "--kid", "k1", "--out", "key.json"])
        .ok();
    assert_eq!(run.stdout, "", "the secret goes to the file only");
    let mode = std::fs::metadata(dir.path("key.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let entry: Value = serde_json::from_str(&dir.read("key.json")).unwrap();
    assert_eq!(secret_len(&entry), 32);
    // A second run does not replace the key.
    let before = dir.read("key.json");
    let run = dir.run(&["keygen", "--kid", "k1", "--out", "key.json"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--out"), "{}", run.stderr);
    assert_eq!(dir.read("key.json"), before);
}

#[cfg(unix)]
#[test]
fn a_file_standard_output_is_redirected_to_is_made_private() {
    // `tokengate keygen > key.json` with a umask that leaves it readable.
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Dir::new();
    let path = dir.path("key.json");
    let file = std::fs::File::create(&path).unwrap();
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["keygen", "--kid", "k1"])
        .env_clear()
        .stdout(file)
        .status()
        .unwrap();
    assert!(status.success());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let entry: Value = serde_json::from_str(&dir.read("key.json")).unwrap();
    assert_eq!(entry["kid"], "k1");
}
