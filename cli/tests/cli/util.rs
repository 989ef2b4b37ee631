//! Running the real `tokengate` binary in a temporary directory, as
//! ripgrep's `tests/util.rs` does: each test gets its own directory and a
//! cleared environment, and looks at the exit status, stdout and stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;

/// 2025-11-27T16:00:00Z: every test that involves time passes `--now`.
pub const NOW: u64 = 1_764_259_200;
pub const NOW_RFC3339: &str = "2025-11-27T16:00:00Z";

/// A 32-byte HS256 secret, base64 (bytes 0x00..=0x1f).
pub const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// A 48-byte HS384 secret, base64 (bytes 100..148).
pub const KEY384_B64: &str = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKT";

/// Tokens made by PyJWT 2.15.1 (`jwt.encode`), iat = NOW:
/// HS256, kid "py", with KEY_B64; aud "orders-api", iss
/// "https://auth.example.com", scope "orders:read", jti "py-jti-1", exp NOW+900.
pub const PYJWT_HS256: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6InB5IiwidHlwIjoiSldUIn0.eyJzdWIiOiJweS1hbGljZSIsImlhdCI6MTc2NDI1OTIwMCwiZXhwIjoxNzY0MjYwMTAwLCJqdGkiOiJweS1qdGktMSIsImF1ZCI6Im9yZGVycy1hcGkiLCJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJzY29wZSI6Im9yZGVyczpyZWFkIn0.3t36Ur8qnhNEMtJzB6R_jmnx4Xix4JAfN-2sAhrGajA";
/// HS384, no kid, with KEY384_B64; aud ["other", "orders-api"], scp
/// ["orders:read", "orders:write"], roles ["manager"], exp NOW+3600.
pub const PYJWT_HS384: &str = "eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJweS1ib2IiLCJpYXQiOjE3NjQyNTkyMDAsImV4cCI6MTc2NDI2MjgwMCwiYXVkIjpbIm90aGVyIiwib3JkZXJzLWFwaSJdLCJzY3AiOlsib3JkZXJzOnJlYWQiLCJvcmRlcnM6d3JpdGUiXSwicm9sZXMiOlsibWFuYWdlciJdfQ.zeYfNBfSF3gCFWQ1T4ZvbDtx6QiehLrGNKOPySi6mB9zFOmwOXWcYRa_IE_vjicN";

/// The client certificate in `tests/data/client.pem`, and the base64url
/// SHA-256 of its DER (computed with Python's hashlib, not this crate).
pub const CLIENT_PEM: &str = include_str!("../data/client.pem");
pub const CLIENT_X5T_S256: &str = "SUGom-Cc3knDJtGcUfKG0BWChbvskh7hpTgvrRPGz1E";

/// The outcome of one run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exit 0; shows stderr otherwise.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Exit `code` with exactly one line on stderr, which starts with
    /// `error: ` and holds every one of `words`.
    #[track_caller]
    pub fn error(self, code: i32, words: &[&str]) -> Run {
        assert_eq!(
            self.code, code,
            "exit status\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr, got: {:?}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{:?}", lines[0]);
        for word in words {
            assert!(
                lines[0].contains(word),
                "stderr {:?} lacks {word:?}",
                lines[0]
            );
        }
        self
    }

    /// A usage error from argument parsing: exit 2, a first line naming what
    /// is wrong, then only the usage hint.
    #[track_caller]
    pub fn usage_error(self, words: &[&str]) -> Run {
        assert_eq!(self.code, 2, "exit status\nstderr: {}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(!lines.is_empty() && lines.len() <= 2, "{:?}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{:?}", lines[0]);
        for word in words {
            assert!(
                lines[0].contains(word),
                "stderr {:?} lacks {word:?}",
                lines[0]
            );
        }
        if let Some(hint) = lines.get(1) {
            assert!(hint.starts_with("Usage: tokengate"), "{hint:?}");
        }
        assert!(self.stdout.is_empty(), "{:?}", self.stdout);
        self
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// The value of the first stdout line `name: value`.
    pub fn field(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }
}

/// A temporary working directory for one test.
pub struct Dir {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            dir: tempfile::Builder::new()
                .prefix("tokengate-cli-test-")
                .tempdir()
                .unwrap(),
            env: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> &Dir {
        std::fs::write(self.path(name), contents).unwrap();
        self
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// Sets an environment variable for every later run.
    pub fn env(&mut self, name: &str, value: &str) -> &mut Dir {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Runs `tokengate ARGS` here, stdin empty (not a terminal).
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "")
    }

    /// Runs `tokengate ARGS` here with `stdin`.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self.spawn(args);
        // A command that exits before reading stdin closes the pipe: fine.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        finish(child)
    }

    /// Starts `tokengate ARGS` here without waiting for it (stdin, stdout
    /// and stderr piped); `finish` waits for it.
    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_tokengate"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Waits for a run started with `Dir::spawn` (its stdin closed, empty).
pub fn finish(mut child: Child) -> Run {
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().expect("tokengate was killed by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "tokengate panicked: {}",
        run.stderr
    );
    run
}

/// Mints a token with the HS256 key `KEY_B64` (kid `demo`) at NOW, in a
/// directory whose environment has `TG_KEY`.
pub fn mint(dir: &Dir, extra: &[&str]) -> String {
    mint_with_kid(dir, "demo", extra)
}

fn mint_with_kid(dir: &Dir, kid: &str, extra: &[&str]) -> String {
    let now = NOW.to_string();
    let mut args = vec![
        "mint",
        "--kid",
        kid,
        "--secret-env",
        "TG_KEY",
        "--now",
        &now,
    ];
    args.extend_from_slice(extra);
    dir.run(&args).ok().stdout.trim().to_owned()
}

/// A directory whose environment holds `TG_KEY` = `KEY_B64`.
pub fn keyed_dir() -> Dir {
    let mut dir = Dir::new();
    dir.env("TG_KEY", KEY_B64);
    dir
}

/// Decodes a token's payload (no verification) as JSON.
pub fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Decodes a token's header as JSON.
pub fn header_of(token: &str) -> serde_json::Value {
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The orders-api filter configuration every suite shares,
/// `tests/data/orders-api.json`.
pub fn orders_api() -> serde_json::Value {
    serde_json::from_str(include_str!("../../../tests/data/orders-api.json")).unwrap()
}

/// The orders-api fixture as an Envoy file holds it: its first key,
/// `ORDERS_KID`, reads its secret from `TG_KEY` (secret_env) instead of
/// inline; no revocation section (`verify` has no list unless given one) and
/// no refresh path (it needs `allow_on_headers_stop_iteration`, which
/// `check_config::Bootstrap` leaves out). Tests add them back where they need
/// them.
pub fn filter_config() -> serde_json::Value {
    let mut config = orders_api();
    let key = &mut config["keys"][0];
    assert_eq!(key["kid"], ORDERS_KID);
    key.as_object_mut().unwrap().remove("secret");
    key["secret_env"] = serde_json::json!("TG_KEY");
    let config_map = config.as_object_mut().unwrap();
    config_map.remove("revocation");
    config_map.remove("refresh");
    config
}

/// The kid of the fixture's first key, HS256, which `filter_config` reads
/// from `TG_KEY`.
pub const ORDERS_KID: &str = "2026-11";

/// Mints a token for `filter_config` (kid `ORDERS_KID`, the secret in
/// `TG_KEY`) at NOW.
pub fn mint_orders(dir: &Dir, extra: &[&str]) -> String {
    mint_with_kid(dir, ORDERS_KID, extra)
}

/// The claims flags every token for `filter_config` needs.
pub const GOOD_CLAIMS: [&str; 4] = ["--aud", "orders-api", "--iss", "https://auth.example.com"];
