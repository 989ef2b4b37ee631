//! `tokengate revoke`: one more entry in a revocation list file.
//!
//! The list is read and written by the core's `revocation::Document` (the
//! strict parser the service uses, the canonical writer, the JWS form), so
//! what this command writes is what the service accepts. Each run raises
//! the version (the service refuses a lower one: rollback protection), sets
//! `generated_at`, drops entries once their `exp` + 300 s has passed, and
//! replaces the file atomically, so a web server handing it out never serves
//! half a list.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use tokengate::keys::{Alg, Key, SecretEncoding};
use tokengate::revocation::{Document, Entry};

use crate::util;

/// How long an entry outlives its `exp`. The filter honours a token until
/// `exp` + `clock_skew_s`, so a publisher drops an entry only once `exp` +
/// 300 s has passed (README, "Command-line tool"); dropping it at `exp`
/// would let a revoked token in again while a skewed clock still accepts it.
pub const KEEP_PAST_EXP_S: u64 = 300;

/// Add an entry to a revocation list file (created at version 1), raise its version, drop entries 300 s past their exp
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["jti", "sub", "kid"]))]
#[command(
    after_help = "Times are Unix seconds or RFC 3339. A signed list (JWS, typ tokengate-revocations, HS256) \
is read back and re-signed with the same --sign-key-env key; an unsigned one given --sign-key-env is written signed. \
An entry is kept until its exp + 300 s has passed (the filter honours a token until exp + clock_skew_s).\n\n\
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
    let name = args.list.display().to_string();
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
    let mut document = read_list(&args, key.as_ref())?;

    let before = document.entries.len();
    document.drop_expired(now.saturating_sub(KEEP_PAST_EXP_S));
    let dropped = before - document.entries.len();
    let added = !document.entries.contains(&entry);
    if added {
        document.entries.push(entry);
    }
    document.version = document
        .version
        .checked_add(1)
        .ok_or_else(|| anyhow!("{name}: the version cannot rise past {}", document.version))?;
    document.generated_at = Some(now);

    let mut text = match &key {
        Some(key) => document.to_signed(key),
        None => document.to_json(),
    };
    // Read back with the service's parser before anything is replaced.
    let reread = match &key {
        Some(key) => Document::parse_signed(text.as_bytes(), key),
        None => Document::parse_json(text.as_bytes()),
    };
    if reread.as_ref() != Ok(&document) {
        bail!("{name}: the written list would not read back as written; nothing was changed");
    }
    text.push('\n');
    util::write_atomically(&args.list, text.as_bytes())?;

    let mut summary = format!(
        "{name}: version {}, {} entr{}",
        document.version,
        document.entries.len(),
        if document.entries.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    if !added {
        summary.push_str(" (the entry was already listed)");
    }
    if dropped > 0 {
        summary.push_str(&format!(", {dropped} expired dropped"));
    }
    if key.is_some() {
        summary.push_str(", signed HS256");
    }
    util::outln(format_args!("{summary}"))?;
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

/// The list in force, or a new empty one (version 0, raised to 1 on write)
/// when the file does not exist.
fn read_list(args: &Args, key: Option<&Key>) -> Result<Document> {
    let name = args.list.display();
    let body = match std::fs::read(&args.list) {
        Ok(body) => body,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Document {
                version: 0,
                generated_at: None,
                entries: Vec::new(),
            })
        }
        Err(e) => return Err(anyhow!(e).context(format!("cannot read {name}"))),
    };
    if body.trim_ascii().is_empty() {
        bail!("--list: {name} is empty; remove it to start a new list");
    }
    let signed = !body.trim_ascii_start().starts_with(b"{");
    let parsed = match (signed, key) {
        (true, Some(key)) => Document::parse_signed(&body, key),
        (true, None) => {
            bail!("--list: {name} is a signed list: give --sign-key-env VAR to read and re-sign it")
        }
        (false, _) => Document::parse_json(&body),
    };
    parsed.map_err(|e| anyhow!("--list: {name}: {e}"))
}
