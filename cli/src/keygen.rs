//! `tokengate keygen`: a new random HMAC key as a `keys[]` entry.
//!
//! The secret is as long as the algorithm's hash (32, 48 or 64 bytes: the
//! shortest the filter accepts and all HMAC can use, RFC 2104 §3), read from
//! the operating system's random source, printed in standard base64 (the
//! filter's default `encoding`). The output is one line of JSON that pastes
//! into `keys` as it is, or serves `mint --key-file` as a file.

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
Examples:\n  tokengate keygen\n  tokengate keygen --alg HS512 --kid 2026-11 > key.json\n  \
export TOKENGATE_KEY_2026_11=$(tokengate keygen | jq -r .secret)"
)]
pub struct Args {
    /// HMAC algorithm: HS256, HS384 or HS512
    #[arg(long, value_name = "ALG", default_value = "HS256", value_parser = util::parse_alg)]
    alg: Alg,
    /// Key id [default: the current UTC month, YYYY-MM]
    #[arg(long, value_name = "ID")]
    kid: Option<String>,
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
    util::outln(format_args!("{}", serde_json::to_string(&entry)?))?;
    Ok(ExitCode::SUCCESS)
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
