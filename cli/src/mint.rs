//! `tokengate mint`: a signed token for tests, demos and small deployments.
//!
//! The claims are built here from the flags; the signing is the core's
//! (`token::sign`, header `{"alg","typ","kid"}`), and before printing, the
//! token goes once through the core's own verifier so that `mint` never
//! prints a token the filter would call malformed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use tokengate::config::{Config, Secrets, DEFAULT_MAX_TOKEN_BYTES, MAX_MAX_TOKEN_BYTES};
use tokengate::keys::{Alg, Key, KeySet, SecretEncoding};
use tokengate::token::{self, ClaimSpec};

use crate::util;

/// Print a signed token (HS256/384/512 JWT)
#[derive(clap::Args)]
#[command(
    after_help = "A single --role becomes the claim \"role\"; several become \"roles\" (an array). \
A single --aud is a string, several an array. --claim NAME=VALUE adds any other claim: VALUE is read as JSON \
when it is JSON (3, true, [\"a\"]) and as a string otherwise.\n\n\
Examples:\n  export TOKENGATE_KEY_DEMO=$(tokengate keygen | jq -r .secret)\n  \
tokengate mint --kid demo --secret-env TOKENGATE_KEY_DEMO --sub alice \\\n      \
--scope \"orders:read orders:write\" --ttl 15m\n  \
tokengate mint --key-file key.json --sub svc-report --role manager \\\n      \
--aud orders-api --iss https://auth.example.com --json"
)]
#[command(group = clap::ArgGroup::new("key").required(true).args(["secret_env", "key_file"]))]
pub struct Args {
    /// Key id, written in the header [default with --key-file: the file's kid]
    #[arg(long, value_name = "ID")]
    kid: Option<String>,
    /// Environment variable holding the secret
    #[arg(long, value_name = "VAR")]
    secret_env: Option<String>,
    /// File holding a keys[] entry as `tokengate keygen` prints it, or a whole filter configuration (with --kid)
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Algorithm [default: the key's; HS256 with --secret-env]
    #[arg(long, value_name = "ALG", value_parser = util::parse_alg)]
    alg: Option<Alg>,
    /// How the --secret-env text becomes key bytes
    #[arg(
        long,
        value_name = "ENCODING",
        value_enum,
        default_value = "base64",
        conflicts_with = "key_file"
    )]
    encoding: EncodingArg,
    /// Subject (claim "sub")
    #[arg(long, value_name = "S")]
    sub: String,
    /// Granted scopes, space-separated (claim "scope"); repeatable
    #[arg(long, value_name = "\"A B\"")]
    scope: Vec<String>,
    /// Role; repeatable
    #[arg(long, value_name = "R")]
    role: Vec<String>,
    /// Audience; repeatable
    #[arg(long, value_name = "A")]
    aud: Vec<String>,
    /// Issuer (claim "iss")
    #[arg(long, value_name = "I")]
    iss: Option<String>,
    /// Lifetime: exp = iat + TTL (90s, 15m, 12h, 7d, 1h30m)
    #[arg(long, value_name = "TTL", default_value = "15m", value_parser = util::parse_duration)]
    ttl: u64,
    /// Token id [default: 128 random bits, hex]
    #[arg(long, value_name = "ID")]
    jti: Option<String>,
    /// Header typ: JWT, at+jwt, or rt+jwt for a refresh token
    #[arg(long, value_name = "TYP", default_value = "JWT")]
    typ: String,
    /// Bind the token to this client certificate (PEM or DER): cnf.x5t#S256 (RFC 8705)
    #[arg(long, value_name = "FILE.pem")]
    bind_cert: Option<PathBuf>,
    /// Any other claim, NAME=VALUE; repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    claim: Vec<String>,
    /// Issue time, Unix seconds or RFC 3339 [default: now]
    #[arg(long, value_name = "T", value_parser = util::parse_time)]
    now: Option<u64>,
    /// Print {"token", "header", "claims"} as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum EncodingArg {
    Base64,
    Utf8,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let key = load_key(&args)?;
    checked_text("--kid", key.kid().as_str())?;
    let claims = claims(&args)?;
    let token = token::sign(&Value::Object(claims.clone()), &key, &args.typ);

    // What the filter's verifier makes of it, before anyone else sees it.
    let keys = KeySet::new(vec![key.clone()]);
    if let Err(reason) = token::verify(&token, &keys, MAX_MAX_TOKEN_BYTES, &ClaimSpec::default()) {
        bail!("the token would be refused as {reason}: check the --claim values");
    }
    if token.len() > DEFAULT_MAX_TOKEN_BYTES {
        util::errln(format_args!(
            "warning: the token is {} bytes, over the default max_token_bytes ({DEFAULT_MAX_TOKEN_BYTES})",
            token.len()
        ));
    }

    if args.json {
        let header = token
            .split('.')
            .next()
            .and_then(|h| token::b64url_decode(h).ok())
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
            .unwrap_or(Value::Null);
        let out = json!({"token": token, "header": header, "claims": claims});
        util::outln(format_args!("{}", serde_json::to_string_pretty(&out)?))?;
    } else {
        util::outln(format_args!("{token}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn load_key(args: &Args) -> Result<Key> {
    let key = match (&args.secret_env, &args.key_file) {
        (Some(var), _) => {
            let Some(kid) = &args.kid else {
                bail!("--kid: required with --secret-env");
            };
            let encoding = match args.encoding {
                EncodingArg::Base64 => SecretEncoding::Base64,
                EncodingArg::Utf8 => SecretEncoding::Utf8,
            };
            return util::key_from_env(
                var,
                "--secret-env",
                kid,
                args.alg.unwrap_or(Alg::Hs256),
                encoding,
            );
        }
        (None, Some(file)) => key_from_file(file, args.kid.as_deref())?,
        (None, None) => bail!("give --secret-env VAR or --key-file FILE"),
    };
    if let Some(kid) = &args.kid {
        if key.kid().as_str() != kid {
            bail!(
                "--kid: {kid:?} differs from the key file's kid {:?}",
                key.kid().as_str()
            );
        }
    }
    if let Some(alg) = args.alg {
        if alg != key.alg() {
            bail!(
                "--alg: {alg} differs from the key's algorithm {}",
                key.alg()
            );
        }
    }
    Ok(key)
}

/// A key from a file: a single `keys[]` entry (inline `secret` or
/// `secret_env`, optional `encoding`), or a filter configuration whose key
/// `kid` is chosen. Either way the core's configuration parser builds it,
/// so the file is read exactly as the filter would read that entry.
fn key_from_file(file: &std::path::Path, kid: Option<&str>) -> Result<Key> {
    let bytes = util::read_file(file)?;
    let value: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("--key-file: {} is not JSON", file.display()))?;
    let whole_config = value.get("keys").is_some();
    let config_json = if whole_config {
        bytes
    } else {
        json!({ "keys": [value] }).to_string().into_bytes()
    };
    let config = Config::from_json(&config_json, &Secrets::process_env()).map_err(|e| {
        let path = if whole_config {
            e.path.clone()
        } else {
            // The entry was wrapped as keys[0]: name its fields alone.
            e.path
                .strip_prefix("keys[0]")
                .map(|p| p.trim_start_matches('.').to_owned())
                .unwrap_or_else(|| e.path.clone())
        };
        if path.is_empty() {
            anyhow::anyhow!("--key-file: {}: {}", file.display(), e.message)
        } else {
            anyhow::anyhow!("--key-file: {}: {path}: {}", file.display(), e.message)
        }
    })?;
    let key = match kid {
        Some(kid) if whole_config => config.keys().by_kid(kid),
        _ if config.keys().len() == 1 => config.keys().iter().next(),
        _ => bail!(
            "--kid: {} holds {} keys; name one",
            file.display(),
            config.keys().len()
        ),
    };
    key.cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "--kid: {} has no key with kid {:?}",
            file.display(),
            kid.unwrap_or_default()
        )
    })
}

fn checked_text(flag: &str, value: &str) -> Result<String> {
    if value.is_empty() {
        bail!("{flag}: must not be empty");
    }
    if util::has_control(value) {
        bail!("{flag}: holds a control character, which makes the token malformed");
    }
    Ok(value.to_owned())
}

/// One string for one value, an array for several.
fn one_or_many(flag: &str, values: &[String]) -> Result<Value> {
    let values = values
        .iter()
        .map(|v| checked_text(flag, v))
        .collect::<Result<Vec<_>>>()?;
    Ok(match values.as_slice() {
        [one] => Value::String(one.clone()),
        _ => Value::from(values),
    })
}

fn claims(args: &Args) -> Result<Map<String, Value>> {
    if token::token_type_of(&args.typ).is_none() {
        bail!(
            "--typ: {:?} is not one tokengate accepts (JWT, at+jwt, rt+jwt)",
            args.typ
        );
    }
    if args.ttl == 0 {
        bail!("--ttl: must be more than 0");
    }
    let iat = util::now_or_system(args.now)?;
    let exp = iat
        .checked_add(args.ttl)
        .filter(|exp| *exp <= token::MAX_NUMERIC_DATE as u64)
        .ok_or_else(|| {
            anyhow::anyhow!("--ttl: exp would be beyond the largest NumericDate (2^53)")
        })?;
    let jti = match &args.jti {
        Some(jti) => checked_text("--jti", jti)?,
        None => util::hex(&util::random_bytes::<16>()?),
    };

    let mut claims = Map::new();
    claims.insert("sub".into(), checked_text("--sub", &args.sub)?.into());
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), exp.into());
    claims.insert("jti".into(), jti.into());
    if !args.scope.is_empty() {
        let mut scopes: Vec<&str> = Vec::new();
        for s in args
            .scope
            .iter()
            .flat_map(|s| s.split(' '))
            .filter(|s| !s.is_empty())
        {
            checked_text("--scope", s)?;
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        claims.insert("scope".into(), scopes.join(" ").into());
    }
    match args.role.as_slice() {
        [] => {}
        [one] => {
            claims.insert("role".into(), checked_text("--role", one)?.into());
        }
        many => {
            claims.insert("roles".into(), one_or_many("--role", many)?);
        }
    }
    if !args.aud.is_empty() {
        claims.insert("aud".into(), one_or_many("--aud", &args.aud)?);
    }
    if let Some(iss) = &args.iss {
        claims.insert("iss".into(), checked_text("--iss", iss)?.into());
    }
    if let Some(cert) = &args.bind_cert {
        let digest = util::cert_sha256(cert).context("--bind-cert")?;
        claims.insert(
            "cnf".into(),
            json!({"x5t#S256": token::b64url_encode(&digest)}),
        );
    }
    for pair in &args.claim {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--claim: {pair:?} is not NAME=VALUE");
        };
        if name.is_empty() {
            bail!("--claim: the name before '=' is empty");
        }
        if claims.contains_key(name) {
            bail!("--claim: {name:?} is already set (by another flag or an earlier --claim)");
        }
        let value = serde_json::from_str::<Value>(value)
            .unwrap_or_else(|_| Value::String(value.to_owned()));
        claims.insert(name.to_owned(), value);
    }
    Ok(claims)
}
