//! `tokengate revoke`: one more entry in a revocation list file.
//!
//! The list is read and written by the core's `revocation::Document` (the
//! strict parser the service uses, the canonical writer, the JWS form), so
//! what this command writes is what the service accepts. The read, the
//! change and the atomic write happen under a lock, in `list_file`; this
//! module adds the entry the command line names.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use tokengate::keys::{Alg, SecretEncoding};
use tokengate::revocation::Entry;

use crate::list_file::{self, KEEP_PAST_EXP_S};
use crate::util;

/// Add an entry to a revocation list file (created at version 1), raise its version, drop entries 300 s past their exp
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["jti", "sub", "kid"]))]
#[command(
    after_help = "Times are Unix seconds or RFC 3339. A signed list (JWS, typ tokengate-revocations, HS256) \
is read back and re-signed with the same --sign-key-env key; an unsigned one given --sign-key-env is written signed. \
An entry is kept until its exp + 300 s has passed (the filter honours a token until exp + clock_skew_s). \
A --list that is a symbolic link is written through: the file it leads to is replaced in its own directory \
(created there when missing) and the link stays a link. Concurrent runs take turns on a lock, FILE.lock beside that file.\n\n\
Examples:\n  tokengate revoke --list revocations.json --jti 9f2c4e... --exp 2026-11-27T16:15:00Z\n  \
tokengate revoke --list revocations.json --sub user-42 --before 2026-11-27T12:00:00Z\n  \
tokengate revoke --list revocations.jws --kid 2026-09 --sign-key-env TOKENGATE_LIST_KEY"
)]
pub struct Args {
    /// The list file (JSON, or JWS when signed)
    #[arg(long, value_name = "FILE")]
    list: PathBuf,
    /// Revoke the token with this jti
    #[arg(long, value_name = "ID")]
    jti: Option<String>,
    /// Revoke the subject's tokens (all, or those issued before --before)
    #[arg(long, value_name = "S")]
    sub: Option<String>,
    /// Revoke every token signed with this key id
    #[arg(long, value_name = "K")]
    kid: Option<String>,
    /// The token's exp: the entry is dropped once exp + 300 s has passed
    #[arg(long, value_name = "T", value_parser = util::parse_time)]
    exp: Option<u64>,
    /// With --sub: revoke the tokens issued (iat) before this time, and those without iat
    #[arg(long, value_name = "T", value_parser = util::parse_time, conflicts_with_all = ["jti", "kid"])]
    before: Option<u64>,
    /// Environment variable holding the base64 HS256 key that signs the list (JWS)
    #[arg(long, value_name = "VAR")]
    sign_key_env: Option<String>,
    /// The clock for generated_at and dropping entries past exp + 300 s [default: now]
    #[arg(long, value_name = "T", value_parser = util::parse_time)]
    now: Option<u64>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let now = util::now_or_system(args.now)?;
    let key = match &args.sign_key_env {
        Some(var) => Some(util::key_from_env(
            var,
            "--sign-key-env",
            "revocations",
            Alg::Hs256,
            SecretEncoding::Base64,
        )?),
        None => None,
    };
    let entry = entry(&args, now)?;
    let update = list_file::Update {
        path: &args.list,
        key: key.as_ref(),
        now,
        signed_only: false,
    };
    let (written, added) = update.apply(|document| {
        let added = !document.entries.contains(&entry);
        if added {
            document.entries.push(entry);
        }
        added
    })?;
    let note = if added {
        ""
    } else {
        " (the entry was already listed)"
    };
    util::outln(format_args!("{}", written.summary(note)))?;
    Ok(ExitCode::SUCCESS)
}

fn entry(args: &Args, now: u64) -> Result<Entry> {
    fn text(flag: &str, value: &str) -> Result<String> {
        if value.is_empty() {
            bail!("{flag}: must not be empty");
        }
        if util::has_control(value) {
            bail!("{flag}: holds a control character, which no valid token carries");
        }
        Ok(value.to_owned())
    }
    if let Some(exp) = args.exp {
        if exp.saturating_add(KEEP_PAST_EXP_S) < now {
            bail!(
                "--exp: {} is more than {KEEP_PAST_EXP_S} s in the past: the entry would be dropped at once",
                util::format_time(exp as f64)
            );
        }
    }
    let exp = args.exp;
    Ok(match (&args.jti, &args.sub, &args.kid) {
        (Some(jti), None, None) => Entry::Jti {
            jti: text("--jti", jti)?,
            exp,
        },
        (None, Some(sub), None) => Entry::Sub {
            sub: text("--sub", sub)?,
            before: args.before,
            exp,
        },
        (None, None, Some(kid)) => Entry::Kid {
            kid: text("--kid", kid)?,
            exp,
        },
        _ => bail!("give exactly one of --jti, --sub, --kid"),
    })
}
