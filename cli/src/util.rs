//! What several commands share: the clock, times and durations as people
//! write them, randomness, secrets from the environment, tokens from the
//! command line or stdin, certificate digests, and atomic file writes.
//!
//! Nothing here decides anything about a token: that is the core's.

use std::fs;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokengate::keys::{decode_secret, Alg, Key, KeyId, SecretEncoding};
use tokengate::token::MAX_NUMERIC_DATE;

/// The largest token read from stdin. The filter refuses anything over
/// `max_token_bytes` (at most 1 MiB) anyway.
const MAX_STDIN_TOKEN: u64 = 1 << 20;

/// Writes to stdout. A closed pipe (`tokengate inspect … | head -1`) is an
/// error here and a quiet exit in `main`, never a panic as `println!` has.
pub fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// A line on stdout.
pub fn outln(text: std::fmt::Arguments<'_>) -> Result<()> {
    out(&format!("{text}\n"))
}

/// A line on stderr; a stderr that cannot be written is ignored.
pub fn errln(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// The system clock in Unix seconds.
pub fn system_now() -> Result<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .context("the system clock is before 1970")
}

/// `--now T` when given, else the system clock.
pub fn now_or_system(now: Option<u64>) -> Result<u64> {
    match now {
        Some(now) => Ok(now),
        None => system_now(),
    }
}

/// A time given as Unix seconds (`1764259200`) or RFC 3339
/// (`2025-11-27T16:00:00Z`, any offset). For clap's `value_parser`.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = text
            .parse()
            .map_err(|_| "is too large for Unix seconds".to_owned())?;
        return within_numeric_date(secs);
    }
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        "is neither Unix seconds nor an RFC 3339 time (2025-11-27T16:00:00Z)".to_owned()
    })?;
    let secs = u64::try_from(at.unix_timestamp()).map_err(|_| "is before 1970".to_owned())?;
    within_numeric_date(secs)
}

fn within_numeric_date(secs: u64) -> Result<u64, String> {
    // Compared as integers: 2^53 + 1 rounds to 2^53 as an f64.
    if secs > MAX_NUMERIC_DATE as u64 {
        return Err("is beyond the largest NumericDate (2^53)".to_owned());
    }
    Ok(secs)
}

/// A duration: one or more `<number><unit>` groups, unit `s`, `m`, `h` or
/// `d` (`90s`, `15m`, `12h`, `7d`, `1h30m`), or plain seconds (`900`).
/// Deliberately exact: no months or years, whose length varies.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    const HINT: &str = "is not a duration like 90s, 15m, 12h, 7d or 1h30m";
    let text = text.trim();
    if text.is_empty() {
        return Err(HINT.to_owned());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| "is too large".to_owned());
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(|| "is too large".to_owned())?,
            );
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(HINT.to_owned()),
        };
        let n = number.take().ok_or_else(|| HINT.to_owned())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| "is too large".to_owned())?;
    }
    if number.is_some() {
        // Digits after the last unit: "1h30".
        return Err(HINT.to_owned());
    }
    Ok(total)
}

/// A NumericDate as RFC 3339 in UTC (`2025-11-27T16:00:00Z`); fractions of
/// a second are cut.
pub fn format_time(secs: f64) -> String {
    OffsetDateTime::from_unix_timestamp(secs.floor() as i64)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "after the year 9999".to_owned())
}

/// A span of seconds in its largest whole unit: `42s`, `14m`, `3h`, `2d`.
pub fn span(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// `at` relative to `now`: `in 14m`, `3h ago`, `now`.
pub fn relative(at: f64, now: u64) -> String {
    let delta = at - now as f64;
    if delta.abs() < 1.0 {
        "now".to_owned()
    } else if delta > 0.0 {
        format!("in {}", span(delta as u64))
    } else {
        format!("{} ago", span((-delta) as u64))
    }
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out)
        .map_err(|e| anyhow::anyhow!("the operating system's random source failed: {e}"))?;
    Ok(out)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text of environment variable `var`; unset or empty is an error that
/// names the variable (never a value).
pub fn env_text(var: &str, flag: &str) -> Result<String> {
    match std::env::var(var) {
        Ok(text) if !text.trim().is_empty() => Ok(text),
        Ok(_) => bail!("{flag}: environment variable {var} is empty"),
        Err(std::env::VarError::NotPresent) => {
            bail!("{flag}: environment variable {var} is not set")
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("{flag}: environment variable {var} is not valid UTF-8")
        }
    }
}

/// A key from the secret in environment variable `var`, decoded with
/// `encoding`, checked by the core (length at least the hash's).
pub fn key_from_env(
    var: &str,
    flag: &str,
    kid: &str,
    alg: Alg,
    encoding: SecretEncoding,
) -> Result<Key> {
    let text = env_text(var, flag)?;
    let bytes =
        decode_secret(&text, encoding).map_err(|e| anyhow::anyhow!("{flag}: {var}: {e}"))?;
    Key::new(KeyId(kid.to_owned()), alg, &bytes).map_err(|e| anyhow::anyhow!("{flag}: {var}: {e}"))
}

/// The token argument: the text itself, `-` for stdin, or nothing.
/// Surrounding white space (a final newline) is dropped.
pub fn read_token_arg(arg: Option<&str>) -> Result<Option<String>> {
    match arg {
        None => Ok(None),
        Some("-") => read_stdin_token().map(Some),
        Some(text) => Ok(Some(text.trim().to_owned())),
    }
}

/// A token piped on stdin. A terminal is refused: nobody is typing one.
pub fn read_stdin_token() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("no token given: pass TOKEN, or pipe one on stdin");
    }
    let mut text = String::new();
    stdin
        .lock()
        .take(MAX_STDIN_TOKEN + 1)
        .read_to_string(&mut text)
        .context("reading the token from stdin")?;
    if text.len() as u64 > MAX_STDIN_TOKEN {
        bail!("the token on stdin is over {MAX_STDIN_TOKEN} bytes");
    }
    Ok(text.trim().to_owned())
}

/// Reads a file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// SHA-256 of a certificate's DER: the first `CERTIFICATE` block of a PEM
/// file, or the file itself when it is DER. This is what Envoy reports as
/// `connection.sha256_peer_certificate_digest` and what `cnf.x5t#S256`
/// carries (RFC 8705 §3.1).
pub fn cert_sha256(path: &Path) -> Result<[u8; 32]> {
    let bytes = read_file(path)?;
    let der = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let blocks = pem::parse_many(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a PEM file: {e}", path.display()))?;
        blocks
            .into_iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.into_contents())
            .ok_or_else(|| anyhow::anyhow!("{}: holds no CERTIFICATE block", path.display()))?
    } else {
        // DER: an X.509 certificate opens with a SEQUENCE.
        if bytes.first() != Some(&0x30) {
            bail!("{}: neither a PEM certificate nor DER", path.display());
        }
        bytes
    };
    Ok(Sha256::digest(&der).into())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, flushed and synced, then renamed over `path`. Readers (a web
/// server handing the list to Envoy) see the old file or the new one, never
/// a part. An existing file's permissions are kept; a new file is made
/// readable by all (mode 0644 less the umask), as a published list must be.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tokengate-").suffix(".tmp");
    let existing = fs::metadata(path).ok().map(|m| m.permissions());
    #[cfg(unix)]
    let permissions = {
        use std::os::unix::fs::PermissionsExt as _;
        existing
            .clone()
            .unwrap_or_else(|| fs::Permissions::from_mode(0o644))
    };
    #[cfg(unix)]
    builder.permissions(permissions.clone());
    let mut tmp = builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.flush())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    // The mode given at creation is reduced by the umask; an existing
    // file's mode is restored exactly.
    #[cfg(unix)]
    if existing.is_some() {
        fs::set_permissions(tmp.path(), permissions)
            .with_context(|| format!("cannot set the permissions of {}", tmp.path().display()))?;
    }
    #[cfg(not(unix))]
    let _ = existing;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// Whether a string holds a character the filter refuses in claims it
/// reads: C0 (U+0000–U+001F), DEL, C1 (U+0080–U+009F), and the line and
/// paragraph separators U+2028 and U+2029 (docs/token.md, "Claims").
/// Judged by character: C1 and the separators are several bytes in UTF-8.
pub fn has_control(s: &str) -> bool {
    // The filter's own check, so the two can never disagree.
    tokengate::token::has_controls(s)
}

/// The algorithm named on the command line.
pub fn parse_alg(text: &str) -> Result<Alg, String> {
    Alg::from_name(text).ok_or_else(|| "is not one of HS256, HS384, HS512".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_documented_units() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("900"), Ok(900));
        for bad in [
            "",
            "m",
            "15M",
            "1h30",
            "1w",
            "-5m",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1764259200"), Ok(1_764_259_200));
        assert_eq!(parse_time("2025-11-27T16:00:00Z"), Ok(1_764_259_200));
        assert_eq!(parse_time("2025-11-27T17:00:00+01:00"), Ok(1_764_259_200));
        assert!(parse_time("1969-12-31T23:59:59Z").is_err());
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("9007199254740993").is_err());
        assert!(parse_time("-5").is_err());
    }

    #[test]
    fn control_characters_are_those_the_filter_refuses() {
        for bad in [
            "\u{0}",
            "a\tb",
            "\u{1f}",
            "\u{7f}",
            "\u{80}",
            "x\u{85}",
            "\u{9f}",
            "\u{2028}",
            "a\u{2029}b",
        ] {
            assert!(has_control(bad), "{bad:?}");
        }
        for good in [
            "", "user-42", " ", "~", "\u{a0}", "é", "\u{2027}", "\u{202a}", "😀",
        ] {
            assert!(!has_control(good), "{good:?}");
        }
    }

    #[test]
    fn relative_times_use_the_largest_unit() {
        assert_eq!(relative(1000.0 + 14.0 * 60.0 + 59.0, 1000), "in 14m");
        assert_eq!(relative(1000.0, 1000 + 3 * 3600 + 5), "3h ago");
        assert_eq!(relative(1000.0, 1000), "now");
        assert_eq!(relative(1000.0 + 2.0 * 86_400.0, 1000), "in 2d");
        assert_eq!(format_time(1_764_259_200.0), "2025-11-27T16:00:00Z");
    }
}
