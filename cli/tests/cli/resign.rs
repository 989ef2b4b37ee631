//! `tokengate resign`.

use crate::util::{claims_of, finish, header_of, Dir, KEY384_B64, KEY_B64, NOW};

/// A directory whose environment holds `TG_LIST_KEY` = `KEY_B64`, with a
/// signed list `list.jws` written by `revoke` at NOW: version 2, a jti
/// entry with exp NOW + 60 and a kid entry.
fn signed_list() -> Dir {
    let mut dir = Dir::new();
    dir.env("TG_LIST_KEY", KEY_B64);
    let now = NOW.to_string();
    let exp = (NOW + 60).to_string();
    for entry in [["--jti", "a", "--exp", &exp].as_slice(), &["--kid", "k"]] {
        let mut args = vec![
            "revoke",
            "--list",
            "list.jws",
            "--now",
            &now,
            "--sign-key-env",
            "TG_LIST_KEY",
        ];
        args.extend_from_slice(entry);
        dir.run(&args).ok();
    }
    dir
}

fn resign(dir: &Dir, now: u64) -> crate::util::Run {
    let now = now.to_string();
    dir.run(&[
        "resign",
        "--list",
        "list.jws",
        "--sign-key-env",
        "TG_LIST_KEY",
        "--now",
        &now,
    ])
}

/// The payload of the signed list (its signature is checked by `verify`
/// in `reads_back_with_the_services_parser`).
fn payload(dir: &Dir) -> serde_json::Value {
    claims_of(dir.read("list.jws").trim())
}

#[test]
fn raises_the_version_and_renews_generated_at_keeping_the_entries() {
    let dir = signed_list();
    let run = resign(&dir, NOW + 50).ok();
    assert_eq!(run.stdout, "list.jws: version 3, 2 entries, signed HS256\n");
    assert_eq!(
        payload(&dir),
        serde_json::json!({"version": 3, "generated_at": NOW + 50,
            "entries": [{"jti": "a", "exp": NOW + 60}, {"kid": "k"}]})
    );
    assert_eq!(
        header_of(dir.read("list.jws").trim()),
        serde_json::json!({"alg": "HS256", "typ": "tokengate-revocations"})
    );
    let run = resign(&dir, NOW + 100).ok();
    assert_eq!(run.stdout, "list.jws: version 4, 2 entries, signed HS256\n");
    assert_eq!(payload(&dir)["generated_at"], NOW + 100);
}

#[test]
fn drops_entries_once_300_s_past_their_exp() {
    let dir = signed_list();
    let exp = NOW + 60;
    resign(&dir, exp + 300).ok();
    assert_eq!(payload(&dir)["entries"].as_array().unwrap().len(), 2);
    let run = resign(&dir, exp + 301).ok();
    assert_eq!(
        run.stdout,
        "list.jws: version 4, 1 entry, 1 expired dropped, signed HS256\n"
    );
    assert_eq!(payload(&dir)["entries"], serde_json::json!([{"kid": "k"}]));
}

#[test]
fn reads_back_with_the_services_parser() {
    // What `verify --revocation-list` reads is what the service reads.
    let mut dir = signed_list();
    resign(&dir, NOW + 10).ok();
    dir.env("TG_KEY", KEY_B64);
    let mut config = crate::util::filter_config();
    config["revocation"] = serde_json::json!({"max_stale_s": 60});
    dir.write("filter.json", config.to_string());
    let token = crate::util::mint_orders(
        &dir,
        &[
            "--sub",
            "alice",
            "--jti",
            "a",
            "--ttl",
            "1m",
            "--aud",
            "orders-api",
            "--iss",
            "https://auth.example.com",
        ],
    );
    let now = (NOW + 10).to_string();
    let run = dir.run(&[
        "verify",
        "--config",
        "filter.json",
        "--revocation-list",
        "list.jws",
        "--list-key-env",
        "TG_LIST_KEY",
        "--path",
        "/orders/7",
        "--now",
        &now,
        &token,
    ]);
    assert!(run.stdout.starts_with("deny revoked"), "{run:?}");
}

#[test]
fn refuses_an_unsigned_list() {
    let mut dir = Dir::new();
    dir.env("TG_LIST_KEY", KEY_B64);
    dir.write("list.jws", r#"{"version": 3, "entries": [{"jti": "a"}]}"#);
    resign(&dir, NOW).error(2, &["list.jws", "unsigned", "makes no sense"]);
    assert_eq!(
        dir.read("list.jws"),
        r#"{"version": 3, "entries": [{"jti": "a"}]}"#
    );
}

#[test]
fn refuses_a_missing_list_and_creates_nothing() {
    let mut dir = Dir::new();
    dir.env("TG_LIST_KEY", KEY_B64);
    resign(&dir, NOW).error(2, &["list.jws", "does not exist", "tokengate revoke"]);
    assert_eq!(std::fs::read_dir(dir.root()).unwrap().count(), 0);
}

#[test]
fn refuses_another_key_and_a_missing_one() {
    let mut dir = signed_list();
    let before = dir.read("list.jws");
    dir.env("TG_OTHER", KEY384_B64);
    dir.run(&["resign", "--list", "list.jws", "--sign-key-env", "TG_OTHER"])
        .error(2, &["list.jws", "signature"]);
    dir.run(&["resign", "--list", "list.jws", "--sign-key-env", "TG_NOPE"])
        .error(2, &["--sign-key-env", "TG_NOPE"]);
    dir.run(&["resign", "--list", "list.jws"])
        .usage_error(&["--sign-key-env"]);
    assert_eq!(dir.read("list.jws"), before);
}

#[test]
fn takes_turns_with_concurrent_revoke_runs() {
    // resign and revoke share the lock: a resign that read the list before
    // a revoke wrote it would otherwise write the entry away.
    const EACH: usize = 12;
    let dir = signed_list();
    let now = NOW.to_string();
    let jtis: Vec<String> = (0..EACH).map(|i| format!("jti-{i:02}")).collect();
    let mut children = Vec::new();
    for jti in &jtis {
        children.push(dir.spawn(&[
            "revoke",
            "--list",
            "list.jws",
            "--now",
            &now,
            "--sign-key-env",
            "TG_LIST_KEY",
            "--jti",
            jti,
        ]));
        children.push(dir.spawn(&[
            "resign",
            "--list",
            "list.jws",
            "--now",
            &now,
            "--sign-key-env",
            "TG_LIST_KEY",
        ]));
    }
    for child in children {
        finish(child).ok();
    }
    let list = payload(&dir);
    assert_eq!(list["version"], 2 + 2 * EACH, "{list}");
    for jti in &jtis {
        assert!(
            list["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["jti"] == jti.as_str()),
            "{jti} lost: {list}"
        );
    }
}
