//! `tokengate revoke`.

use crate::util::{finish, keyed_dir, Dir, KEY384_B64, KEY_B64, NOW, NOW_RFC3339};

fn revoke(dir: &Dir, extra: &[&str]) -> crate::util::Run {
    let now = NOW.to_string();
    let mut args = vec!["revoke", "--list", "list.json", "--now", &now];
    args.extend_from_slice(extra);
    dir.run(&args)
}

fn list(dir: &Dir, name: &str) -> serde_json::Value {
    serde_json::from_str(&dir.read(name)).unwrap()
}

#[test]
fn creates_the_list_at_version_1() {
    let dir = Dir::new();
    let run = revoke(&dir, &["--jti", "01JD3", "--exp", "2025-11-27T17:00:00Z"]).ok();
    assert_eq!(run.stdout, "list.json: version 1, 1 entry\n");
    assert_eq!(
        list(&dir, "list.json"),
        serde_json::json!({"version": 1, "generated_at": NOW, "entries": [{"jti": "01JD3", "exp": NOW + 3600}]})
    );
}

#[test]
fn raises_the_version_and_keeps_the_entries() {
    let dir = Dir::new();
    revoke(&dir, &["--jti", "a"]).ok();
    revoke(&dir, &["--sub", "user-42", "--before", NOW_RFC3339]).ok();
    let run = revoke(&dir, &["--kid", "2026-09"]).ok();
    assert_eq!(run.stdout, "list.json: version 3, 3 entries\n");
    assert_eq!(
        list(&dir, "list.json")["entries"],
        serde_json::json!([{"jti": "a"}, {"sub": "user-42", "before": NOW}, {"kid": "2026-09"}])
    );
}

fn revoke_at(dir: &Dir, now: u64, extra: &[&str]) -> crate::util::Run {
    let now = now.to_string();
    let mut args = vec!["revoke", "--list", "list.json", "--now", &now];
    args.extend_from_slice(extra);
    dir.run(&args)
}

#[test]
fn keeps_an_entry_until_300_s_past_its_exp() {
    // The filter takes a token until exp + clock_skew_s: an entry dropped
    // at exp would let the revoked token in again on a skewed clock.
    let dir = Dir::new();
    let exp = NOW + 60;
    revoke(&dir, &["--jti", "short", "--exp", &exp.to_string()]).ok();
    revoke(&dir, &["--jti", "long", "--exp", &(NOW + 3600).to_string()]).ok();
    let run = revoke_at(&dir, exp + 1, &["--sub", "s1"]).ok();
    assert_eq!(run.stdout, "list.json: version 3, 3 entries\n");
    let run = revoke_at(&dir, exp + 300, &["--sub", "s2"]).ok();
    assert_eq!(run.stdout, "list.json: version 4, 4 entries\n");
    let run = revoke_at(&dir, exp + 301, &["--sub", "s3"]).ok();
    assert_eq!(
        run.stdout,
        "list.json: version 5, 4 entries, 1 expired dropped\n"
    );
    assert_eq!(
        list(&dir, "list.json")["entries"],
        serde_json::json!([{"jti": "long", "exp": NOW + 3600}, {"sub": "s1"}, {"sub": "s2"}, {"sub": "s3"}])
    );
}

#[test]
fn lists_an_entry_once() {
    let dir = Dir::new();
    revoke(&dir, &["--kid", "k"]).ok();
    let run = revoke(&dir, &["--kid", "k"]).ok();
    assert_eq!(
        run.stdout,
        "list.json: version 2, 1 entry (the entry was already listed)\n"
    );
}

#[test]
fn signs_the_list_and_reads_it_back_with_the_same_key() {
    let mut dir = Dir::new();
    dir.env("TG_LIST_KEY", KEY_B64);
    let run = revoke(&dir, &["--jti", "a", "--sign-key-env", "TG_LIST_KEY"]).ok();
    assert_eq!(run.stdout, "list.json: version 1, 1 entry, signed HS256\n");
    let jws = dir.read("list.json");
    let header = crate::util::header_of(jws.trim());
    assert_eq!(
        header,
        serde_json::json!({"alg": "HS256", "typ": "tokengate-revocations"})
    );
    assert_eq!(
        crate::util::claims_of(jws.trim())["entries"],
        serde_json::json!([{"jti": "a"}])
    );
    let run = revoke(&dir, &["--jti", "b", "--sign-key-env", "TG_LIST_KEY"]).ok();
    assert_eq!(
        run.stdout,
        "list.json: version 2, 2 entries, signed HS256\n"
    );
}

#[test]
fn writes_atomically_keeping_permissions() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Dir::new();
    revoke(&dir, &["--jti", "a"]).ok();
    let path = dir.path("list.json");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    revoke(&dir, &["--jti", "b"]).ok();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // Only the list and its (empty) lock file are left: the temporary file
    // was renamed over the list.
    let mut names: Vec<String> = std::fs::read_dir(dir.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["list.json", "list.json.lock"]);
    assert_eq!(dir.read("list.json.lock"), "");
}

#[test]
fn concurrent_runs_on_one_list_lose_no_entry() {
    // Without a lock, runs that read the same version each write their own
    // entry over the other's.
    const RUNS: usize = 24;
    let dir = Dir::new();
    let now = NOW.to_string();
    let jtis: Vec<String> = (0..RUNS).map(|i| format!("jti-{i:02}")).collect();
    let children: Vec<_> = jtis
        .iter()
        .map(|jti| dir.spawn(&["revoke", "--list", "list.json", "--now", &now, "--jti", jti]))
        .collect();
    for child in children {
        finish(child).ok();
    }
    let list = list(&dir, "list.json");
    assert_eq!(list["version"], RUNS, "{list}");
    let mut listed: Vec<&str> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["jti"].as_str().unwrap())
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, jtis);
}

#[test]
fn a_new_list_is_readable_by_a_web_server() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Dir::new();
    revoke(&dir, &["--jti", "a"]).ok();
    let mode = std::fs::metadata(dir.path("list.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o044, 0o044, "group and others may read: {mode:o}");
}

// Errors: the file is left as it was.

#[test]
fn refuses_no_entry_and_two_entries() {
    let dir = Dir::new();
    revoke(&dir, &[]).usage_error(&["--jti", "--sub", "--kid"]);
    revoke(&dir, &["--jti", "a", "--kid", "k"]).usage_error(&["--kid"]);
    assert!(!dir.path("list.json").exists());
}

#[test]
fn refuses_before_without_sub() {
    revoke(&Dir::new(), &["--jti", "a", "--before", "5"]).usage_error(&["--before"]);
}

#[test]
fn refuses_a_bad_time() {
    revoke(&Dir::new(), &["--jti", "a", "--exp", "next week"]).usage_error(&["--exp", "RFC 3339"]);
}

#[test]
fn refuses_an_exp_more_than_300_s_in_the_past() {
    let dir = Dir::new();
    revoke(&dir, &["--jti", "a", "--exp", &(NOW - 301).to_string()])
        .error(2, &["--exp", "more than 300 s in the past"]);
    assert!(!dir.path("list.json").exists());
    // Within 300 s the entry still matters (a skewed clock takes the token).
    revoke(&dir, &["--jti", "a", "--exp", &(NOW - 300).to_string()]).ok();
    assert_eq!(
        list(&dir, "list.json")["entries"],
        serde_json::json!([{"jti": "a", "exp": NOW - 300}])
    );
}

#[test]
fn refuses_a_signed_list_without_the_key_or_with_another() {
    let mut dir = keyed_dir();
    dir.env("TG_OTHER", KEY384_B64);
    revoke(&dir, &["--jti", "a", "--sign-key-env", "TG_KEY"]).ok();
    let before = dir.read("list.json");
    revoke(&dir, &["--jti", "b"]).error(2, &["list.json", "signed", "--sign-key-env"]);
    revoke(&dir, &["--jti", "b", "--sign-key-env", "TG_OTHER"])
        .error(2, &["list.json", "signature"]);
    assert_eq!(dir.read("list.json"), before);
}

#[test]
fn names_an_unset_or_short_sign_key() {
    let mut dir = Dir::new();
    revoke(&dir, &["--jti", "a", "--sign-key-env", "TG_NOPE"])
        .error(2, &["--sign-key-env", "TG_NOPE"]);
    dir.env("TG_SHORT", "AAAA");
    revoke(&dir, &["--jti", "a", "--sign-key-env", "TG_SHORT"]).error(2, &["TG_SHORT", "3 bytes"]);
}

#[test]
fn refuses_a_corrupt_list() {
    let dir = Dir::new();
    dir.write(
        "list.json",
        r#"{"version": 3, "entries": [{"jti": "a", "sub": "b"}]}"#,
    );
    revoke(&dir, &["--jti", "c"]).error(2, &["list.json", "entries[0]"]);
    dir.write("list.json", "");
    revoke(&dir, &["--jti", "c"]).error(2, &["list.json", "empty"]);
    assert_eq!(dir.read("list.json"), "");
}

#[test]
fn refuses_empty_or_control_character_values() {
    let dir = Dir::new();
    revoke(&dir, &["--jti", ""]).error(2, &["--jti", "empty"]);
    revoke(&dir, &["--sub", "a\u{7f}"]).error(2, &["--sub", "control"]);
    revoke(&dir, &["--jti", "a\u{80}"]).error(2, &["--jti", "control"]);
    revoke(&dir, &["--kid", "a\u{2028}"]).error(2, &["--kid", "control"]);
    assert!(!dir.path("list.json").exists());
}

// A list path that is a symbolic link: the target is what a web server
// serves, so it is the target that must change.

fn is_link(path: &std::path::Path) -> bool {
    std::fs::symlink_metadata(path)
        .unwrap()
        .file_type()
        .is_symlink()
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn writes_through_a_symbolic_link_to_its_target() {
    use std::os::unix::fs::{symlink, PermissionsExt as _};
    let dir = Dir::new();
    std::fs::create_dir(dir.path("served")).unwrap();
    revoke(&dir, &["--jti", "a"]).ok();
    std::fs::rename(dir.path("list.json"), dir.path("served/list.json")).unwrap();
    std::fs::remove_file(dir.path("list.json.lock")).unwrap();
    std::fs::set_permissions(
        dir.path("served/list.json"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    // A relative link, resolved from the link's directory.
    symlink("served/list.json", dir.path("list.json")).unwrap();

    let run = revoke(&dir, &["--jti", "b"]).ok();
    assert_eq!(run.stdout, "list.json: version 2, 2 entries\n");
    assert!(is_link(&dir.path("list.json")), "the link was replaced");
    assert_eq!(
        std::fs::read_link(dir.path("list.json")).unwrap(),
        std::path::Path::new("served/list.json")
    );
    assert_eq!(
        list(&dir, "served/list.json")["entries"],
        serde_json::json!([{"jti": "a"}, {"jti": "b"}])
    );
    assert_eq!(
        std::fs::metadata(dir.path("served/list.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    // The lock and the temporary file were beside the target.
    assert_eq!(
        names_in(&dir.path("served")),
        ["list.json", "list.json.lock"]
    );
    assert_eq!(names_in(dir.root()), ["list.json", "served"]);
}

#[test]
fn follows_a_chain_of_links_with_an_absolute_target() {
    use std::os::unix::fs::symlink;
    let dir = Dir::new();
    std::fs::create_dir(dir.path("served")).unwrap();
    dir.write("served/list.json", r#"{"version": 7, "entries": []}"#);
    symlink(dir.path("served/list.json"), dir.path("middle.json")).unwrap();
    symlink("middle.json", dir.path("list.json")).unwrap();
    revoke(&dir, &["--kid", "k"]).ok();
    assert!(is_link(&dir.path("list.json")) && is_link(&dir.path("middle.json")));
    assert_eq!(list(&dir, "served/list.json")["version"], 8);
}

#[test]
fn a_link_to_a_missing_file_in_an_existing_directory_creates_the_file() {
    use std::os::unix::fs::symlink;
    let dir = Dir::new();
    std::fs::create_dir(dir.path("served")).unwrap();
    symlink("served/new.json", dir.path("list.json")).unwrap();
    let run = revoke(&dir, &["--jti", "a"]).ok();
    assert_eq!(run.stdout, "list.json: version 1, 1 entry\n");
    assert!(is_link(&dir.path("list.json")));
    assert_eq!(list(&dir, "served/new.json")["version"], 1);
}

#[test]
fn refuses_a_link_whose_target_cannot_be_resolved() {
    use std::os::unix::fs::symlink;
    let dir = Dir::new();
    symlink("nowhere/list.json", dir.path("list.json")).unwrap();
    revoke(&dir, &["--jti", "a"]).error(
        2,
        &[
            "list.json is a symbolic link to nowhere/list.json",
            "directory does not exist",
        ],
    );
    assert!(is_link(&dir.path("list.json")));
    assert!(!dir.path("nowhere").exists());

    let dir = Dir::new();
    symlink("loop-b", dir.path("list.json")).unwrap();
    symlink("list.json", dir.path("loop-b")).unwrap();
    revoke(&dir, &["--jti", "a"]).error(2, &["list.json", "symbolic links"]);
    assert!(is_link(&dir.path("list.json")));
    assert_eq!(names_in(dir.root()), ["list.json", "loop-b"]);
}
