//! `tokengate inspect`: what a token says, decoded, with human times.
//!
//! Nothing is verified here, and the output says so first. The segments are
//! split and decoded by the core (`token::split`, `token::b64url_decode`,
//! canonical base64url as the filter requires), every member is shown as
//! JSON, and the core's own header and claims parsers say whether the form
//! fits the token profile the filter accepts. Whether the MAC holds, and what
//! the filter would decide, is `tokengate verify`'s to say.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::{json, Map, Value};
use tokengate::config::MAX_MAX_TOKEN_BYTES;
use tokengate::token::{self, ClaimSpec, Claims, Header};

use crate::util;

const NOT_VERIFIED: &str =
    "NOT VERIFIED: this is what the token says; its signature and claims were not checked.";

/// Show a token's header and claims with human times (verifies nothing)
#[derive(clap::Args)]
#[command(
    after_help = "inspect decodes; it never checks the signature, the key or the claims. \
Use `tokengate verify --config FILE TOKEN` for the filter's decision.\n\n\
Examples:\n  tokengate inspect eyJhbGciOiJIUzI1NiIs...\n  tokengate mint --key-file key.json --sub alice | tokengate inspect\n  \
tokengate inspect --json - < token.txt | jq .claims.sub"
)]
pub struct Args {
    /// The token; - or nothing reads it from stdin
    #[arg(value_name = "TOKEN|-")]
    token: Option<String>,
    /// The clock for "expires in", Unix seconds or RFC 3339 [default: now]
    #[arg(long, value_name = "T", value_parser = util::parse_time)]
    now: Option<u64>,
    /// Print JSON: {"verified": false, "header", "claims", "times", ...}
    #[arg(long)]
    json: bool,
}

/// What could be read of a token.
struct Decoded {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signature_len: Option<usize>,
    /// Why the core's parsers would call the token malformed, if they would.
    profile_problem: Option<&'static str>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let token = match args.token.as_deref() {
        None | Some("-") => util::read_stdin_token()?,
        Some(text) => text.trim().to_owned(),
    };
    if token.is_empty() {
        anyhow::bail!("no token given: pass TOKEN, or pipe one on stdin");
    }
    let now = util::now_or_system(args.now)?;
    let decoded = match decode(&token) {
        Ok(d) => d,
        Err(why) => {
            util::errln(format_args!("error: not a readable token: {why}"));
            return Ok(ExitCode::from(1));
        }
    };
    if args.json {
        util::outln(format_args!(
            "{}",
            serde_json::to_string_pretty(&as_json(&decoded, now))?
        ))?;
    } else {
        util::out(&as_text(&decoded, now))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn decode(token: &str) -> Result<Decoded, &'static str> {
    let parts = token::split(token, MAX_MAX_TOKEN_BYTES).map_err(|_| {
        "a JWS compact token is three base64url segments joined by '.' (and at most 1 MiB)"
    })?;
    let header_bytes = token::b64url_decode(parts.header)
        .map_err(|_| "the header is not canonical base64url (unpadded, with - and _)")?;
    let payload_bytes = token::b64url_decode(parts.payload)
        .map_err(|_| "the payload is not canonical base64url (unpadded, with - and _)")?;
    let header = match serde_json::from_slice::<Value>(&header_bytes) {
        Ok(Value::Object(map)) => map,
        _ => return Err("the header is not a JSON object"),
    };
    let claims = match serde_json::from_slice::<Value>(&payload_bytes) {
        Ok(Value::Object(map)) => map,
        _ => return Err("the payload is not a JSON object"),
    };
    let signature_len = token::b64url_decode(parts.signature).ok().map(|s| s.len());
    let profile_problem = match Header::parse(&header_bytes) {
        Err(_) => Some(
            "the header does not fit the profile (alg HS256/384/512, string kid, no crit, typ JWT/at+jwt/rt+jwt, no repeated member)",
        ),
        Ok(header) => match Claims::parse(&payload_bytes, &ClaimSpec::default()) {
            Err(_) => Some(
                "a claim does not fit the profile (a wrong type, a date out of range, a control character, a repeated member)",
            ),
            Ok(_) if signature_len.is_none() => Some("the signature is not canonical base64url"),
            Ok(_) if signature_len != Some(header.alg.output_len()) => {
                Some("the signature is not as long as the algorithm's MAC (the filter says bad_signature)")
            }
            Ok(_) => None,
        },
    };
    Ok(Decoded {
        header,
        claims,
        signature_len,
        profile_problem,
    })
}

const DATE_CLAIMS: [&str; 3] = ["exp", "nbf", "iat"];

/// The expiry in words: `expires in 14m`, `expired 3h ago`.
fn expiry(claims: &Map<String, Value>, now: u64) -> String {
    match claims.get("exp") {
        None => "no exp: it never expires (the filter requires exp unless require_claims drops it)"
            .into(),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(exp) if exp <= now as f64 => format!("expired {}", util::relative(exp, now)),
            Some(exp) => format!("expires {}", util::relative(exp, now)),
            None => "exp is not a number the filter reads".into(),
        },
        Some(_) => "exp is not a NumericDate: the filter calls the token malformed".into(),
    }
}

/// Other time facts worth a line: not yet valid, issued in the future.
fn time_notes(claims: &Map<String, Value>, now: u64) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64) {
        if nbf > now as f64 {
            notes.push(format!(
                "not valid before {} ({})",
                util::format_time(nbf),
                util::relative(nbf, now)
            ));
        }
    }
    if let Some(iat) = claims.get("iat").and_then(Value::as_f64) {
        if iat > now as f64 {
            notes.push(format!(
                "issued in the future ({})",
                util::relative(iat, now)
            ));
        }
    }
    notes
}

fn as_text(d: &Decoded, now: u64) -> String {
    let mut out = String::new();
    out.push_str(NOT_VERIFIED);
    out.push('\n');
    section(&mut out, "header", &d.header, now);
    section(&mut out, "claims", &d.claims, now);
    match d.signature_len {
        Some(len) => out.push_str(&format!("signature  {len} bytes\n")),
        None => out.push_str("signature  not canonical base64url\n"),
    }
    match d.profile_problem {
        None => out.push_str("form       fits tokengate's token profile\n"),
        Some(why) => out.push_str(&format!("form       malformed for tokengate: {why}\n")),
    }
    out.push_str(&format!("status     {}\n", expiry(&d.claims, now)));
    for note in time_notes(&d.claims, now) {
        out.push_str(&format!("           {note}\n"));
    }
    out
}

fn section(out: &mut String, title: &str, members: &Map<String, Value>, now: u64) {
    out.push_str(title);
    out.push('\n');
    let width = members
        .keys()
        .map(|k| display_name(k).len())
        .max()
        .unwrap_or(0);
    for (name, value) in members {
        // Values as JSON: strings quoted and escaped, so a control
        // character in a claim cannot reach the terminal.
        let mut line = format!("  {:width$}  {}", display_name(name), value);
        if title == "claims" && DATE_CLAIMS.contains(&name.as_str()) {
            if let Some(at) = value.as_f64() {
                line.push_str(&format!(
                    "  {}  {}",
                    util::format_time(at),
                    util::relative(at, now)
                ));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
}

/// A member name, escaped as JSON when it holds anything unusual.
fn display_name(name: &str) -> String {
    if util::has_control(name) {
        Value::String(name.to_owned()).to_string()
    } else {
        name.to_owned()
    }
}

fn as_json(d: &Decoded, now: u64) -> Value {
    let mut times = Map::new();
    for name in DATE_CLAIMS {
        if let Some(at) = d.claims.get(name).and_then(Value::as_f64) {
            times.insert(
                name.to_owned(),
                json!({"utc": util::format_time(at), "relative": util::relative(at, now)}),
            );
        }
    }
    let exp = d.claims.get("exp").and_then(Value::as_f64);
    json!({
        "verified": false,
        "header": d.header,
        "claims": d.claims,
        "signature_bytes": d.signature_len,
        "profile_ok": d.profile_problem.is_none(),
        "profile_problem": d.profile_problem,
        "now": now,
        "times": times,
        "expired": exp.map(|exp| exp <= now as f64),
        "expires_in_s": exp.map(|exp| (exp - now as f64).floor() as i64),
        "status": expiry(&d.claims, now),
        "notes": time_notes(&d.claims, now),
    })
}
