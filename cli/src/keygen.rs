//! `tokengate keygen`: a new random HMAC key as a `keys[]` entry.
//!
//! The secret is as long as the algorithm's hash (32, 48 or 64 bytes: the
//! shortest the filter accepts and all HMAC can use, RFC 2104 §3), read from
//! the operating system's random source, printed in standard base64 (the
//! filter's default `encoding`). The output is one line of JSON that pastes
//! into `keys` as it is, or serves `mint --key-file` as a file.
//!
//! A file that holds the secret is readable by its owner only: `--out FILE`
//! creates it with mode 0600 (and never overwrites a file), and when
//! standard output is a regular file (`keygen > key.json`) its mode is set
//! to 0600 before the secret is written.

use std::process::ExitCode;

use anyhow::Result;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokengate::keys::{Alg, Key, KeyId};

use crate::util;

/// Print a new random key as a keys[] JSON entry
#[derive(clap::Args)]
#[command(
    after_help = "The default kid is the current month in UTC (\"2026-11\"): keys rotate by month.\n\n\
Examples:\n  tokengate keygen\n  tokengate keygen --alg HS512 --kid 2026-11 --out key.json\n  \
export TOKENGATE_KEY_2026_11=$(tokengate keygen | jq -r .secret)"
)]
pub struct Args {
    /// HMAC algorithm: HS256, HS384 or HS512
    #[arg(long, value_name = "ALG", default_value = "HS256", value_parser = util::parse_alg)]
    alg: Alg,
    /// Key id [default: the current UTC month, YYYY-MM]
    #[arg(long, value_name = "ID")]
    kid: Option<String>,
    /// Write the entry to this new file, readable by its owner only (mode
    /// 0600), instead of standard output; an existing file is not replaced
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
}

/// A `keys[]` entry with an inline secret, as keygen prints it and
/// `mint --key-file` reads it. Field order is the printed order.
#[derive(Serialize, Deserialize)]
pub struct KeyEntry {
    pub kid: String,
    pub alg: String,
    pub secret: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let kid = match args.kid {
        Some(kid) => kid,
        None => month_kid(util::system_now()?),
    };
    if kid.is_empty() || util::has_control(&kid) {
        anyhow::bail!("--kid: must be non-empty text without control characters");
    }
    let secret = match args.alg {
        Alg::Hs256 => util::random_bytes::<32>()?.to_vec(),
        Alg::Hs384 => util::random_bytes::<48>()?.to_vec(),
        Alg::Hs512 => util::random_bytes::<64>()?.to_vec(),
    };
    // The core checks the length the filter will check.
    Key::new(KeyId(kid.clone()), args.alg, &secret).map_err(|e| anyhow::anyhow!("{e}"))?;
    let entry = KeyEntry {
        kid,
        alg: args.alg.name().to_owned(),
        secret: base64::engine::general_purpose::STANDARD.encode(&secret),
    };
    let line = format!("{}\n", serde_json::to_string(&entry)?);
    match args.out {
        Some(path) => write_private(&path, line.as_bytes())?,
        None => {
            restrict_stdout_file();
            util::out(&line)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` readable and writable by its owner only, and writes
/// `bytes` to it; an existing file is an error, never replaced.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("--out: cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| anyhow::anyhow!("--out: cannot write {}: {e}", path.display()))
}

/// When standard output is a regular file (`keygen > key.json`), makes it
/// readable by its owner only before the secret goes in; says so on stderr
/// when that cannot be done.
fn restrict_stdout_file() {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd as _;
        use std::os::unix::fs::PermissionsExt as _;
        let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else {
            return;
        };
        let file = std::fs::File::from(fd);
        let Ok(meta) = file.metadata() else { return };
        if !meta.is_file() || meta.permissions().mode() & 0o077 == 0 {
            return;
        }
        if file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .is_err()
        {
            util::errln(format_args!(
                "warning: standard output is a file others can read, and its mode could not be set to 0600; \
                 it now holds a secret (use --out FILE)"
            ));
        }
    }
}

/// `YYYY-MM` of `now` in UTC.
fn month_kid(now: u64) -> String {
    let at = i64::try_from(now)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}", at.year(), u8::from(at.month()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_kid_is_the_utc_month() {
        assert_eq!(month_kid(1_764_259_200), "2025-11");
        assert_eq!(month_kid(0), "1970-01");
    }
}
