//! `tokengate verify`: the decision the filter would give one request.
//!
//! The request is built from the flags, the token put where the
//! configuration's first token source looks for it, and handed to the very
//! function the filter calls, `Config::decide`, with the system clock (or
//! `--now`). What comes back is printed as the filter would act on it: the
//! refusal's status, `www-authenticate` and body, or the edits made to an
//! allowed request before it goes upstream.
//!
//! Two facts the CLI cannot observe are stated instead: the connection is
//! taken to be TLS unless `--no-tls` (with the client certificate of
//! `--peer-cert`, if any), and the revocation list is the one in
//! `--revocation-list`, as if fetched just now; without it the filter's own
//! rule for "no list yet" applies.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};
use tokengate::config::{Config, OnUnavailable, Secrets, TokenSource};
use tokengate::gate::{Decision, Edit, FixedConnection, Request, Revocations, Verdict};
use tokengate::keys::{Alg, SecretEncoding};
use tokengate::refresh::RefreshRequest;
use tokengate::refusal::Reason;
use tokengate::refusal::Reply;
use tokengate::revocation::{Document, Snapshot};

use crate::envoy::{self, FileKind};
use crate::manifests;
use crate::util;

/// Give the filter's decision for a request: allow, or the reason it refuses
#[derive(clap::Args)]
#[command(
    after_help = "The token goes where the configuration's first token source looks (a header with its \
scheme, a query parameter, or a cookie). The connection counts as TLS unless --no-tls. Without \
--revocation-list, a configuration with a revocation section is decided as the filter decides before any list \
arrives (revocation_unavailable when on_unavailable is deny).\n\n\
Output: the first line is `allow`, `anonymous` or `deny <reason>`; then `status:`, the refusal's headers and \
`body:`, or the request edits (`set-header:`, `remove-header:`); then the verified `sub:`, `jti:`, `kid:`. \
Exit status: 0 allowed (or anonymous), 1 refused, 2 bad usage or configuration.\n\n\
Examples:\n  tokengate verify --config filter.json --path /orders/7 \"$TOKEN\"\n  \
tokengate mint --key-file key.json --sub alice --scope orders:write \\\n      \
| tokengate verify --config envoy.yaml --method POST --path /orders -\n  \
tokengate verify --config filter.json --path /healthz"
)]
pub struct Args {
    /// The filter configuration, or an Envoy file holding exactly one tokengate filter (secret_env read from this environment)
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Request method
    #[arg(long, value_name = "M", default_value = "GET")]
    method: String,
    /// Request :path, query included
    #[arg(long, value_name = "P", default_value = "/")]
    path: String,
    /// Request :authority
    #[arg(long, value_name = "H", default_value = "localhost")]
    host: String,
    /// Another request header; repeatable (repeats are joined with ", " as Envoy does)
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Decide as if the connection were plain HTTP (the default is TLS)
    #[arg(long)]
    no_tls: bool,
    /// The client certificate presented over mutual TLS (PEM or DER)
    #[arg(long, value_name = "FILE.pem", conflicts_with = "no_tls")]
    peer_cert: Option<PathBuf>,
    /// A revocation list (JSON, or JWS with --list-key-env), taken as fetched just now
    #[arg(long, value_name = "FILE")]
    revocation_list: Option<PathBuf>,
    /// Environment variable holding the base64 HS256 key of a signed list
    #[arg(long, value_name = "VAR", requires = "revocation_list")]
    list_key_env: Option<String>,
    /// The clock, Unix seconds or RFC 3339 [default: now]
    #[arg(long, value_name = "T", value_parser = util::parse_time)]
    now: Option<u64>,
    /// Print the decision as JSON
    #[arg(long)]
    json: bool,
    /// The token; - reads it from stdin; none means a request without one
    #[arg(value_name = "TOKEN|-")]
    token: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let (config, (normalize, merge)) = load_config(&args.config)?;
    let now = util::now_or_system(args.now)?;
    let token = util::read_token_arg(args.token.as_deref())?;

    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':').filter(|(n, _)| !n.trim().is_empty())
        else {
            bail!("--header: {header:?} is not NAME: VALUE");
        };
        add_header(
            &mut headers,
            &name.trim().to_ascii_lowercase(),
            value.trim().as_bytes(),
            b", ",
        );
    }
    // Envoy rewrites the path before any filter runs when its connection
    // manager says so; the filter then decides on that path.
    let mut path = envoy::normalize_like_envoy(args.path.as_bytes(), normalize, merge);
    if path != args.path.as_bytes() {
        util::errln(format_args!(
            "note: Envoy's normalize_path/merge_slashes turn the path into {}",
            String::from_utf8_lossy(&path)
        ));
    }
    if let Some(token) = &token {
        place_token(&config, token, &mut path, &mut headers)?;
    }

    let connection = FixedConnection {
        tls: !args.no_tls,
        peer_certificate_sha256: match &args.peer_cert {
            Some(file) => Some(util::cert_sha256(file).map_err(|e| anyhow!("--peer-cert: {e:#}"))?),
            None => None,
        },
    };
    let snapshot = match &args.revocation_list {
        Some(file) => Some(load_list(file, args.list_key_env.as_deref(), now)?),
        None => None,
    };
    let revocations = Revocations {
        list: snapshot.as_ref().map(|(list, _)| list),
        fresh_at: snapshot.as_ref().map(|(_, at)| *at),
        lost: false,
    };
    let (verdict, reply) = if config.is_refresh_path(&path) {
        // The filter answers the refresh path itself, before any rule: the
        // token goes in as the refresh_token of the form it expects.
        util::errln(format_args!(
            "note: {} is the refresh path: the filter answers it itself; TOKEN is sent as a form's refresh_token",
            String::from_utf8_lossy(&path)
        ));
        let body = token
            .as_deref()
            .map(|t| {
                format!(
                    "grant_type=refresh_token&refresh_token={}",
                    percent_encode(t)
                )
            })
            .unwrap_or_default();
        let request = RefreshRequest {
            method: &args.method,
            content_type: Some(b"application/x-www-form-urlencoded"),
            body: body.as_bytes(),
        };
        let answer = config.refresh(
            &request,
            &connection,
            revocations,
            now,
            util::random_bytes::<16>()?,
        );
        (answer.verdict, Some(answer.reply))
    } else {
        let request = Request {
            method: &args.method,
            path: &path,
            authority: args.host.as_bytes(),
            headers: &headers,
        };
        let verdict = config.decide(&request, &connection, revocations, now);
        let reply = verdict.response(&config);
        (verdict, reply)
    };

    if args.json {
        util::outln(format_args!(
            "{}",
            serde_json::to_string_pretty(&as_json(&verdict, reply.as_ref()))?
        ))?;
    } else {
        util::out(&as_text(&verdict, reply.as_ref()))?;
    }
    hints(&config, &verdict, &args);
    Ok(match verdict.decision {
        Decision::Allow | Decision::Anonymous => ExitCode::SUCCESS,
        Decision::Deny(_) => ExitCode::from(1),
    })
}

/// The filter configuration: a file of its own, or the one tokengate filter
/// of an Envoy file. `secret_env` is read from this process's environment.
fn load_config(file: &Path) -> Result<(Config, (bool, bool))> {
    let name = file.display();
    let bytes = util::read_file(file)?;
    let mut path_options = (false, false);
    let json = match envoy::classify(&bytes).map_err(|m| anyhow!("--config: {name}: {m}"))? {
        FileKind::Filter(json) => json,
        FileKind::Service(_) => {
            bail!(
                "--config: {name} is a revocation service configuration; verify needs the filter's"
            )
        }
        FileKind::Envoy(root) => {
            path_options = envoy::path_options(&root);
            the_filter(&name.to_string(), &envoy::plugins(&root))?
        }
        // Istio's or Envoy Gateway's resources: the configuration the
        // control plane hands the filter.
        FileKind::Manifests(docs) => {
            the_filter(&name.to_string(), &manifests::read(&docs).plugins())?
        }
    };
    let config = Config::from_json(&json, &Secrets::process_env())
        .map_err(|e| anyhow!("--config: {name}: {e}"))?;
    Ok((config, path_options))
}

/// The JSON of the one tokengate filter among `plugins`.
fn the_filter(name: &str, plugins: &[envoy::Plugin<'_>]) -> Result<Vec<u8>> {
    let filters: Vec<_> = plugins
        .iter()
        .filter(|p| p.root_id == envoy::FILTER_ROOT)
        .collect();
    match filters.as_slice() {
        [one] => Ok(one
            .configuration()
            .map_err(|(path, m)| anyhow!("--config: {name}: {}: {path}: {m}", one.path))?
            .as_bytes()
            .to_vec()),
        [] => bail!("--config: {name} holds no tokengate filter configuration"),
        many => bail!(
            "--config: {name} holds {} tokengate filters; save the one to check in a file of its own",
            many.len()
        ),
    }
}

/// Adds a header; a repeat is joined to the first as Envoy joins them.
fn add_header(headers: &mut Vec<(String, Vec<u8>)>, name: &str, value: &[u8], joiner: &[u8]) {
    match headers.iter_mut().find(|(n, _)| n == name) {
        Some((_, existing)) => {
            existing.extend_from_slice(joiner);
            existing.extend_from_slice(value);
        }
        None => headers.push((name.to_owned(), value.to_vec())),
    }
}

/// Puts the token where the first configured source looks for it.
fn place_token(
    config: &Config,
    token: &str,
    path: &mut Vec<u8>,
    headers: &mut Vec<(String, Vec<u8>)>,
) -> Result<()> {
    match config.token_sources().first() {
        Some(TokenSource::Header { name, scheme }) => {
            let value = match scheme {
                Some(scheme) => format!("{scheme} {token}"),
                None => token.to_owned(),
            };
            add_header(headers, name, value.as_bytes(), b", ");
        }
        Some(TokenSource::Query(param)) => {
            let fragment_at = path.iter().position(|b| *b == b'#').unwrap_or(path.len());
            let fragment = path.split_off(fragment_at);
            path.push(if path.contains(&b'?') { b'&' } else { b'?' });
            path.extend_from_slice(percent_encode(param).as_bytes());
            path.push(b'=');
            path.extend_from_slice(percent_encode(token).as_bytes());
            path.extend_from_slice(&fragment);
        }
        Some(TokenSource::Cookie(name)) => {
            add_header(
                headers,
                "cookie",
                format!("{name}={token}").as_bytes(),
                b"; ",
            );
        }
        None => bail!("--config: the configuration has no token source"),
    }
    Ok(())
}

/// Percent-encodes all but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A list file as the service would take it: JSON, or JWS checked with the
/// key in `key_env`; built into the snapshot the filter consults.
/// The list as the filter would hold it, and the time its age counts
/// from: a signed list's `generated_at`, or now for an unsigned list (as
/// if just fetched).
fn load_list(file: &Path, key_env: Option<&str>, now: u64) -> Result<(Snapshot, u64)> {
    let name = file.display();
    let body = util::read_file(file)?;
    let signed = !body.trim_ascii_start().starts_with(b"{");
    let document = if !signed {
        Document::parse_json(&body)
    } else {
        let Some(var) = key_env else {
            bail!("--revocation-list: {name} is a signed list; give --list-key-env VAR");
        };
        let key = util::key_from_env(
            var,
            "--list-key-env",
            "revocations",
            Alg::Hs256,
            SecretEncoding::Base64,
        )?;
        Document::parse_signed(&body, &key)
    }
    .map_err(|e| anyhow!("--revocation-list: {name}: {e}"))?;
    let fresh_at = match (signed, document.generated_at) {
        (true, Some(at)) => at,
        _ => now,
    };
    Ok((Snapshot::build(&document, now), fresh_at))
}

fn first_line(decision: Decision) -> String {
    match decision {
        Decision::Deny(reason) => format!("deny {reason}"),
        other => other.as_str().to_owned(),
    }
}

fn as_text(verdict: &Verdict, reply: Option<&Reply>) -> String {
    let mut out = first_line(verdict.decision);
    out.push('\n');
    match reply {
        Some(response) => {
            out.push_str(&format!("status: {}\n", response.status));
            for (name, value) in &response.headers {
                out.push_str(&format!("{name}: {value}\n"));
            }
            out.push_str(&format!("body: {}\n", response.body));
        }
        None => {
            for edit in verdict.edits() {
                match edit {
                    Edit::Remove(name) => out.push_str(&format!("remove-header: {name}\n")),
                    Edit::Set(name, value) => out.push_str(&format!(
                        "set-header: {name}: {}\n",
                        String::from_utf8_lossy(value)
                    )),
                }
            }
        }
    }
    for (name, value) in [
        ("sub", &verdict.sub),
        ("jti", &verdict.jti),
        ("kid", &verdict.kid),
    ] {
        if let Some(value) = value {
            // Verified values, still escaped: a sub may hold anything but
            // control characters, and a line break is one.
            out.push_str(&format!("{name}: {}\n", value.escape_debug()));
        }
    }
    out
}

fn as_json(verdict: &Verdict, response: Option<&Reply>) -> Value {
    let edits = if response.is_some() {
        Vec::new()
    } else {
        verdict.edits()
    };
    let removed: Vec<&str> = edits
        .iter()
        .filter_map(|e| match e {
            Edit::Remove(name) => Some(*name),
            Edit::Set(..) => None,
        })
        .collect();
    let set: Vec<Value> = edits
        .iter()
        .filter_map(|e| match e {
            Edit::Set(name, value) => Some(json!([name, String::from_utf8_lossy(value)])),
            Edit::Remove(_) => None,
        })
        .collect();
    json!({
        "decision": verdict.decision.as_str(),
        "reason": verdict.decision.reason().map(Reason::as_str),
        "status": response.map(|r| r.status),
        "headers": response.map(|r| {
            r.headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>()
        }),
        "body": response.and_then(|r| serde_json::from_str::<Value>(&r.body).ok()),
        "remove_headers": removed,
        "set_headers": set,
        "sub": verdict.sub,
        "jti": verdict.jti,
        "kid": verdict.kid,
    })
}

/// A line on stderr for refusals the CLI's own circumstances can explain.
fn hints(config: &Config, verdict: &Verdict, args: &Args) {
    if args.revocation_list.is_some() && config.revocation().is_none() {
        util::errln(format_args!(
            "hint: the configuration has no revocation section: the filter never consults a list"
        ));
    }
    match verdict.decision {
        Decision::Deny(Reason::RevocationUnavailable) if args.revocation_list.is_none() => {
            let on_unavailable = config.revocation().as_ref().map(|r| r.on_unavailable());
            if on_unavailable == Some(OnUnavailable::Deny) {
                util::errln(format_args!(
                    "hint: the configuration has a revocation section and no list was given: pass --revocation-list FILE \
                     (the filter answers the same until its service has fetched a list)"
                ));
            }
        }
        Decision::Deny(Reason::BindingMismatch) if args.peer_cert.is_none() => {
            util::errln(format_args!(
                "hint: the token is bound to a client certificate: pass --peer-cert FILE.pem"
            ));
        }
        Decision::Deny(Reason::TlsRequired) if args.no_tls => {
            util::errln(format_args!(
                "hint: require_tls is on and --no-tls was given"
            ));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved() {
        assert_eq!(percent_encode("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(percent_encode("a b&c=d"), "a%20b%26c%3Dd");
    }
}
