//! What every command shares: help with an example, usage errors, exit 2.

use crate::util::Dir;

const COMMANDS: [&str; 7] = [
    "keygen",
    "mint",
    "inspect",
    "verify",
    "revoke",
    "resign",
    "check-config",
];

#[test]
fn every_command_has_help_with_an_example() {
    let dir = Dir::new();
    for command in COMMANDS {
        let run = dir.run(&[command, "--help"]).ok();
        assert!(
            run.stdout.contains("Usage: tokengate"),
            "{command}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains("Example"),
            "{command} --help has no example: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains(&format!("tokengate {command}")),
            "{command}: {}",
            run.stdout
        );
        assert!(run.stderr.is_empty());
    }
    let run = dir.run(&["--help"]).ok();
    for command in COMMANDS {
        assert!(
            run.stdout.contains(command),
            "top-level help lists {command}"
        );
    }
}

#[test]
fn version_prints_and_exits_zero() {
    let run = Dir::new().run(&["--version"]).ok();
    assert!(run.stdout.starts_with("tokengate "), "{}", run.stdout);
}

#[test]
fn unknown_command_is_a_usage_error() {
    Dir::new().run(&["mintt"]).usage_error(&["mintt"]);
}

#[test]
fn unknown_flag_is_a_usage_error_naming_it() {
    Dir::new()
        .run(&["keygen", "--colour"])
        .usage_error(&["--colour"]);
}

#[test]
fn no_command_shows_help_and_exits_two() {
    let run = Dir::new().run(&[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("Usage: tokengate"), "{}", run.stderr);
}

#[test]
fn output_into_a_closed_pipe_is_no_panic() {
    // `tokengate … | head -0`: the reader is gone before the write.
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["keygen", "--help"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
