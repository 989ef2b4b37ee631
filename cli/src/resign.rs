//! `tokengate resign`: a signed list signed again, nothing else changed.
//!
//! The filter counts a signed list's age from its signed `generated_at`, so
//! that a host replaying an old list cannot keep it fresh; a list that
//! nobody changes therefore goes stale after the filter's `max_stale_s`.
//! Run from cron or a systemd timer more often than that, this command keeps
//! the list fresh: entries past `exp` + 300 s are dropped, the version rises
//! by one, `generated_at` becomes now, and the list is signed again, under
//! the same lock and with the same atomic write as `revoke` (`list_file`).
//! An unsigned list is refused: its age is counted from the service's last
//! fetch, so there is no signature to refresh.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use tokengate::keys::{Alg, SecretEncoding};

use crate::list_file;
use crate::util;

/// Re-sign a signed revocation list without adding an entry (version + 1, generated_at now), e.g. from cron
#[derive(clap::Args)]
#[command(
    after_help = "The filter counts a signed list's age from its signed generated_at: run resign more often than \
the filter's revocation.max_stale_s (default 300 s), or a list nobody changes goes stale and, with on_unavailable \
deny, every token is refused with revocation_unavailable. Entries past their exp + 300 s are dropped. An unsigned \
list is refused (its age is the time since the service last fetched it: there is no signature to refresh). \
resign and revoke take turns on the same lock (FILE.lock beside the list), and a --list that is a symbolic \
link is written through to the file it leads to.\n\n\
Examples:\n  tokengate resign --list revocations.jws --sign-key-env TOKENGATE_LIST_KEY\n  \
# crontab, every minute (a crontab is readable by its owner only):\n  \
TOKENGATE_LIST_KEY=<the base64 key>\n  \
* * * * * tokengate resign --list /srv/www/revocations.jws --sign-key-env TOKENGATE_LIST_KEY"
)]
pub struct Args {
    /// The signed list file (JWS)
    #[arg(long, value_name = "FILE")]
    list: PathBuf,
    /// Environment variable holding the base64 HS256 key that reads and signs the list
    #[arg(long, value_name = "VAR")]
    sign_key_env: String,
    /// The clock for generated_at and dropping entries past exp + 300 s [default: now]
    #[arg(long, value_name = "T", value_parser = util::parse_time)]
    now: Option<u64>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let now = util::now_or_system(args.now)?;
    let key = util::key_from_env(
        &args.sign_key_env,
        "--sign-key-env",
        "revocations",
        Alg::Hs256,
        SecretEncoding::Base64,
    )?;
    let update = list_file::Update {
        path: &args.list,
        key: Some(&key),
        now,
        signed_only: true,
    };
    let (written, ()) = update.apply(|_| ())?;
    util::outln(format_args!("{}", written.summary("")))?;
    Ok(ExitCode::SUCCESS)
}
