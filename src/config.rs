//! Configuration: the JSON an operator writes, checked and compiled once.
//!
//! Two phases, as ripgrep parses its flags: serde reads the JSON into `Raw*`
//! structs that refuse unknown fields and wrong types, then `compile` checks
//! what serde cannot (one secret source per key, secret lengths, rule shapes)
//! and builds the [`Config`] the request path uses: keys decoded with their
//! HMAC state ready, rules compiled, defaults filled in. Every error names the
//! JSON path of the field (`keys[1].alg: unknown algorithm "HS255"`) and
//! never a secret. The filter's `on_configure` and `tokengate check-config`
//! call the very same functions.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::keys::{decode_secret, Alg, Key, KeyId, KeySet, SecretEncoding};
use crate::policy::{self, Action, HostPattern, Match, PathMatch, Rule};
use crate::revocation::{Document, StaticList};
use crate::token::{is_scope_token, ClaimSpec, KNOWN_CLAIMS};

/// A configuration error: the JSON path of the field, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where `secret_env` values come from.
pub enum Secrets<'a> {
    /// Read each variable through this function (the VM's environment, or the
    /// CLI's process environment).
    Env(&'a dyn Fn(&str) -> Option<String>),
    /// Never read a secret value: `secret_env` keys get a placeholder of the
    /// right length (for `check-config`).
    Placeholder,
}

impl Secrets<'_> {
    /// The process environment, as `std::env::var` sees it.
    pub fn process_env() -> Secrets<'static> {
        Secrets::Env(&|name| std::env::var(name).ok())
    }
}

/// Where the configuration has objects: serde's derived structs would also
/// read a JSON array by position (`["realm", [...]]`), which no operator
/// means and `deny_unknown_fields` does not stop (found by the
/// `config_parse` fuzz target). `(path, is_array_of_objects)`.
const FILTER_OBJECTS: [(&str, bool); 7] = [
    ("", false),
    ("keys", true),
    ("token_sources", true),
    ("rules", true),
    ("rules[].match", false),
    ("revocation", false),
    ("refresh", false),
];
const SERVICE_OBJECTS: [(&str, bool); 2] = [("", false), ("verify_key", false)];

/// Refuses an array where the configuration has an object.
fn require_objects(json: &[u8], places: &[(&str, bool)]) -> Result<(), ConfigError> {
    let Ok(root) = serde_json::from_slice::<serde_json::Value>(json) else {
        return Ok(()); // the typed parse reports the syntax error with its path
    };
    let not_array = |v: &serde_json::Value, path: String| {
        if v.is_array() {
            Err(ConfigError::new(
                path,
                "invalid type: array, expected a JSON object",
            ))
        } else {
            Ok(())
        }
    };
    for (place, each) in places {
        if place.is_empty() {
            not_array(&root, String::new())?;
            continue;
        }
        if let Some((outer, inner)) = place.split_once("[].") {
            for (i, item) in root
                .get(outer)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(v) = item.get(inner) {
                    not_array(v, format!("{outer}[{i}].{inner}"))?;
                }
            }
            continue;
        }
        match root.get(place) {
            Some(serde_json::Value::Array(items)) if *each => {
                for (i, item) in items.iter().enumerate() {
                    not_array(item, format!("{place}[{i}]"))?;
                }
            }
            Some(v) if !*each => not_array(v, (*place).to_owned())?,
            _ => {}
        }
    }
    Ok(())
}

/// Every object with a repeated member name is an error: the last value
/// never silently wins (see `json`).
fn refuse_repeats(json: &[u8]) -> Result<(), ConfigError> {
    crate::json::refuse_repeated_members(json)
        .map_err(|r| ConfigError::new(r.path, format!("repeats member {}", r.name)))
}

/// Parses JSON text into `T`, naming the JSON path of the first error.
fn parse_json<'de, T: Deserialize<'de>>(json: &'de [u8]) -> Result<T, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, strip_position(&err.inner().to_string()))
    })?;
    de.end()
        .map_err(|e| ConfigError::new("", strip_position(&e.to_string())))?;
    Ok(value)
}

/// serde_json appends " at line L column C"; a JSON path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_owned(),
        None => message.to_owned(),
    }
}

fn alg_from_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Alg, D::Error> {
    let text = String::deserialize(d)?;
    Alg::from_name(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown algorithm {text:?}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawEncoding {
    Base64,
    Utf8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    kid: String,
    #[serde(deserialize_with = "alg_from_text")]
    alg: Alg,
    secret: Option<String>,
    secret_env: Option<String>,
    encoding: Option<RawEncoding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerifyKey {
    #[serde(deserialize_with = "alg_from_text")]
    alg: Alg,
    secret: Option<String>,
    secret_env: Option<String>,
    encoding: Option<RawEncoding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    header: Option<String>,
    scheme: Option<String>,
    query: Option<String>,
    cookie: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    path: Option<String>,
    prefix: Option<String>,
    methods: Option<Vec<String>>,
    hosts: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match", default)]
    matcher: RawMatch,
    #[serde(default)]
    anonymous: bool,
    #[serde(default)]
    deny: bool,
    scopes: Option<Vec<String>>,
    roles: Option<Vec<String>>,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnUnavailable {
    /// Refuse with 503 `revocation_unavailable` (the default: fail closed).
    #[default]
    Deny,
    /// Decide without the published list; static entries still apply.
    Allow,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRevocation {
    max_stale_s: Option<u64>,
    on_unavailable: Option<OnUnavailable>,
    #[serde(rename = "static")]
    static_entries: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRefresh {
    path: String,
    access_ttl_s: Option<u64>,
    kid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    realm: Option<String>,
    keys: Vec<RawKey>,
    issuers: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    clock_skew_s: Option<u64>,
    max_lifetime_s: Option<u64>,
    require_claims: Option<Vec<String>>,
    max_token_bytes: Option<usize>,
    token_sources: Option<Vec<RawSource>>,
    forward_token: Option<bool>,
    claims_to_headers: Option<BTreeMap<String, String>>,
    roles: Option<BTreeMap<String, Vec<String>>>,
    require_tls: Option<bool>,
    rules: Option<Vec<RawRule>>,
    revocation: Option<RawRevocation>,
    refresh: Option<RawRefresh>,
}

/// Default `realm`.
pub const DEFAULT_REALM: &str = "tokengate";
/// Default `clock_skew_s`: tolerates ordinary clock drift between issuer and edge.
pub const DEFAULT_CLOCK_SKEW_S: u64 = 30;
/// Default `max_token_bytes`: caps the work an unauthenticated client can cause.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 4096;
/// Default `revocation.max_stale_s`.
pub const DEFAULT_MAX_STALE_S: u64 = 300;
/// Default `refresh.access_ttl_s`.
pub const DEFAULT_ACCESS_TTL_S: u64 = 900;
/// Largest `max_token_bytes` accepted: Envoy's header limits are lower anyway.
pub const MAX_MAX_TOKEN_BYTES: usize = 1 << 20;

/// Where a token may be found in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// A header (name lower-cased), optionally with a scheme (`Bearer`)
    /// that must open its value.
    Header {
        name: String,
        scheme: Option<String>,
    },
    /// A query parameter.
    Query(String),
    /// A cookie.
    Cookie(String),
}

/// The revocation part of the filter configuration.
#[derive(Debug)]
pub struct RevocationPolicy {
    pub max_stale_s: u64,
    pub on_unavailable: OnUnavailable,
    pub static_list: StaticList,
}

/// Refresh at the edge (SPEC §10.2).
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    pub path: String,
    pub access_ttl_s: u64,
    pub kid: KeyId,
}

/// The compiled filter configuration.
#[derive(Debug)]
pub struct Config {
    pub realm: String,
    pub keys: KeySet,
    /// Empty: no issuer check.
    pub issuers: Vec<String>,
    /// Empty: no audience check.
    pub audiences: Vec<String>,
    pub clock_skew_s: u64,
    pub max_lifetime_s: Option<u64>,
    pub require_claims: Vec<String>,
    pub max_token_bytes: usize,
    pub token_sources: Vec<TokenSource>,
    pub forward_token: bool,
    /// (claim, header) pairs, header names lower-cased.
    pub claims_to_headers: Vec<(String, String)>,
    /// (role, scopes it grants), in name order; few enough for a scan.
    pub roles: Vec<(String, Vec<String>)>,
    pub require_tls: bool,
    pub rules: Vec<Rule>,
    pub revocation: Option<RevocationPolicy>,
    pub refresh: Option<RefreshConfig>,
    /// What the payload parser captures beyond the registered claims.
    pub claim_spec: ClaimSpec,
    /// Whether any rule names hosts (the `:authority` is then parsed).
    pub rules_name_hosts: bool,
    /// Whether any rule names methods (method-override headers are then read).
    pub rules_name_methods: bool,
}

impl Config {
    /// Parses and compiles a filter configuration.
    pub fn from_json(json: &[u8], secrets: &Secrets<'_>) -> Result<Config, ConfigError> {
        refuse_repeats(json)?;
        require_objects(json, &FILTER_OBJECTS)?;
        let raw: RawConfig = parse_json(json)?;
        compile(raw, secrets)
    }
}

fn encoding(e: Option<RawEncoding>) -> SecretEncoding {
    match e {
        Some(RawEncoding::Utf8) => SecretEncoding::Utf8,
        Some(RawEncoding::Base64) | None => SecretEncoding::Base64,
    }
}

/// Builds a key from one of its two secret sources.
fn build_key(
    path: &str,
    kid: KeyId,
    alg: Alg,
    secret: Option<String>,
    secret_env: Option<String>,
    enc: SecretEncoding,
    secrets: &Secrets<'_>,
) -> Result<Key, ConfigError> {
    let bytes = match (secret, secret_env) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                path,
                "has both secret and secret_env; give exactly one",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(path, "needs secret or secret_env"));
        }
        (Some(text), None) => decode_secret(&text, enc)
            .map_err(|e| ConfigError::new(format!("{path}.secret"), e.to_string()))?,
        (None, Some(var)) => match secrets {
            Secrets::Placeholder => {
                if var.is_empty() {
                    return Err(ConfigError::new(format!("{path}.secret_env"), "is empty"));
                }
                vec![0x5a; alg.output_len()]
            }
            Secrets::Env(read) => {
                let text = read(&var).filter(|v| !v.is_empty()).ok_or_else(|| {
                    ConfigError::new(
                        format!("{path}.secret_env"),
                        format!("environment variable {var} is unset or empty (hand it to the VM in vm_config.environment_variables)"),
                    )
                })?;
                decode_secret(&text, enc).map_err(|e| {
                    ConfigError::new(format!("{path}.secret_env"), format!("{var}: {e}"))
                })?
            }
        },
    };
    Key::new(kid, alg, &bytes).map_err(|e| ConfigError::new(path, e.to_string()))
}

fn check_header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return Err(ConfigError::new(
            path,
            format!("{name:?} is not a valid header name"),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// Scope and role names are RFC 6749 scope-tokens, as in tokens: a name
/// holding a space would turn into two names when joined for a header.
fn scope_tokens(path: &str, list: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let list = list.unwrap_or_default();
    if let Some(i) = list.iter().position(|s| !is_scope_token(s)) {
        return Err(ConfigError::new(
            format!("{path}[{i}]"),
            "must be a scope-token: printable ASCII without space, '\"' or '\\'",
        ));
    }
    Ok(list)
}

fn non_empty_strings(path: &str, list: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let list = list.unwrap_or_default();
    if let Some(i) = list.iter().position(|s| s.is_empty()) {
        return Err(ConfigError::new(
            format!("{path}[{i}]"),
            "must not be empty",
        ));
    }
    Ok(list)
}

fn compile(raw: RawConfig, secrets: &Secrets<'_>) -> Result<Config, ConfigError> {
    if raw.keys.is_empty() {
        return Err(ConfigError::new("keys", "at least one key is required"));
    }
    let mut keys = Vec::with_capacity(raw.keys.len());
    for (i, k) in raw.keys.into_iter().enumerate() {
        let path = format!("keys[{i}]");
        if k.kid.is_empty() {
            return Err(ConfigError::new(format!("{path}.kid"), "must not be empty"));
        }
        if keys
            .iter()
            .any(|existing: &Key| existing.kid().as_str() == k.kid)
        {
            return Err(ConfigError::new(
                format!("{path}.kid"),
                format!("duplicate kid {:?}", k.kid),
            ));
        }
        keys.push(build_key(
            &path,
            KeyId(k.kid),
            k.alg,
            k.secret,
            k.secret_env,
            encoding(k.encoding),
            secrets,
        )?);
    }
    let keys = KeySet::new(keys);

    let max_token_bytes = raw.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
    if max_token_bytes == 0 || max_token_bytes > MAX_MAX_TOKEN_BYTES {
        return Err(ConfigError::new(
            "max_token_bytes",
            format!("must be between 1 and {MAX_MAX_TOKEN_BYTES}"),
        ));
    }

    let token_sources = match raw.token_sources {
        None => vec![TokenSource::Header {
            name: "authorization".into(),
            scheme: Some("Bearer".into()),
        }],
        Some(list) if list.is_empty() => {
            return Err(ConfigError::new(
                "token_sources",
                "must list at least one source",
            ))
        }
        Some(list) => compile_sources(list)?,
    };

    let mut claims_to_headers = Vec::new();
    for (claim, header) in raw.claims_to_headers.unwrap_or_default() {
        let path = format!("claims_to_headers.{claim}");
        if claim.is_empty() {
            return Err(ConfigError::new(
                "claims_to_headers",
                "a claim name must not be empty",
            ));
        }
        let header = check_header_name(&path, &header)?;
        if header.starts_with(':') || header == "host" {
            return Err(ConfigError::new(
                path,
                format!("{header:?} cannot carry a claim"),
            ));
        }
        if claims_to_headers.iter().any(|(_, h)| *h == header) {
            return Err(ConfigError::new(
                path,
                format!("header {header:?} is used twice"),
            ));
        }
        claims_to_headers.push((claim, header));
    }

    let mut roles = Vec::new();
    for (role, scopes) in raw.roles.unwrap_or_default() {
        if !is_scope_token(&role) {
            return Err(ConfigError::new(
                "roles",
                format!("role name {role:?} must be a scope-token: printable ASCII without space, '\"' or '\\'"),
            ));
        }
        let scopes = scope_tokens(&format!("roles.{role}"), Some(scopes))?;
        roles.push((role, scopes));
    }

    let rules = raw
        .rules
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| compile_rule(&format!("rules[{i}]"), r))
        .collect::<Result<Vec<_>, _>>()?;

    let require_claims = raw.require_claims.unwrap_or_else(|| vec!["exp".into()]);
    if let Some(i) = require_claims.iter().position(|c| c.is_empty()) {
        return Err(ConfigError::new(
            format!("require_claims[{i}]"),
            "must not be empty",
        ));
    }

    let revocation = match raw.revocation {
        None => None,
        Some(r) => {
            let entries = match r.static_entries {
                None => Vec::new(),
                Some(value) => Document::parse_entries(&value, "revocation.static")
                    .map_err(|message| ConfigError::new("", message))?,
            };
            Some(RevocationPolicy {
                max_stale_s: r.max_stale_s.unwrap_or(DEFAULT_MAX_STALE_S),
                on_unavailable: r.on_unavailable.unwrap_or_default(),
                static_list: StaticList::new(entries),
            })
        }
    };

    let refresh = match raw.refresh {
        None => None,
        Some(r) => {
            policy::check_config_path(&r.path).map_err(|m| ConfigError::new("refresh.path", m))?;
            if keys.by_kid(&r.kid).is_none() {
                return Err(ConfigError::new(
                    "refresh.kid",
                    format!("no key has kid {:?}", r.kid),
                ));
            }
            let access_ttl_s = r.access_ttl_s.unwrap_or(DEFAULT_ACCESS_TTL_S);
            if access_ttl_s == 0 {
                return Err(ConfigError::new(
                    "refresh.access_ttl_s",
                    "must be at least 1",
                ));
            }
            Some(RefreshConfig {
                path: r.path,
                access_ttl_s,
                kid: KeyId(r.kid),
            })
        }
    };

    let mut extra: Vec<String> = Vec::new();
    for name in claims_to_headers
        .iter()
        .map(|(c, _)| c)
        .chain(require_claims.iter())
    {
        if !KNOWN_CLAIMS.contains(&name.as_str()) && !extra.contains(name) {
            extra.push(name.clone());
        }
    }
    // Arrays forwarded joined by spaces: `aud` and extra claims.
    let joined: Vec<String> = claims_to_headers
        .iter()
        .map(|(c, _)| c)
        .filter(|c| *c == "aud" || !KNOWN_CLAIMS.contains(&c.as_str()))
        .cloned()
        .collect();
    let rules_name_hosts = rules.iter().any(|r| r.matcher.hosts.is_some());
    let rules_name_methods = rules.iter().any(|r| r.matcher.methods.is_some());

    Ok(Config {
        realm: raw.realm.unwrap_or_else(|| DEFAULT_REALM.into()),
        keys,
        issuers: non_empty_strings("issuers", raw.issuers)?,
        audiences: non_empty_strings("audiences", raw.audiences)?,
        clock_skew_s: raw.clock_skew_s.unwrap_or(DEFAULT_CLOCK_SKEW_S),
        max_lifetime_s: raw.max_lifetime_s,
        require_claims,
        max_token_bytes,
        token_sources,
        forward_token: raw.forward_token.unwrap_or(false),
        claims_to_headers,
        roles,
        require_tls: raw.require_tls.unwrap_or(false),
        rules,
        revocation,
        refresh,
        claim_spec: ClaimSpec { extra, joined },
        rules_name_hosts,
        rules_name_methods,
    })
}

fn compile_sources(list: Vec<RawSource>) -> Result<Vec<TokenSource>, ConfigError> {
    let mut out: Vec<TokenSource> = Vec::with_capacity(list.len());
    for (i, s) in list.into_iter().enumerate() {
        let path = format!("token_sources[{i}]");
        let source = match (s.header, s.query, s.cookie) {
            (Some(h), None, None) => {
                let name = check_header_name(&format!("{path}.header"), &h)?;
                let scheme = match s.scheme {
                    Some(sc) if sc.is_empty() || sc.contains(' ') => {
                        return Err(ConfigError::new(
                            format!("{path}.scheme"),
                            "must be one word",
                        ))
                    }
                    other => other,
                };
                TokenSource::Header { name, scheme }
            }
            (None, Some(q), None) if s.scheme.is_none() && !q.is_empty() => TokenSource::Query(q),
            (None, None, Some(c)) if s.scheme.is_none() && !c.is_empty() => TokenSource::Cookie(c),
            (None, Some(_), None) | (None, None, Some(_)) if s.scheme.is_some() => {
                return Err(ConfigError::new(
                    format!("{path}.scheme"),
                    "applies to header sources only",
                ))
            }
            _ => {
                return Err(ConfigError::new(
                    path,
                    "needs exactly one of header, query, cookie (non-empty)",
                ))
            }
        };
        if out.contains(&source) {
            return Err(ConfigError::new(path, "repeats an earlier source"));
        }
        out.push(source);
    }
    Ok(out)
}

fn compile_rule(path: &str, r: RawRule) -> Result<Rule, ConfigError> {
    let m = r.matcher;
    let path_match = match (m.path, m.prefix) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                format!("{path}.match"),
                "has both path and prefix; give at most one",
            ))
        }
        (Some(p), None) => {
            policy::check_config_path(&p)
                .map_err(|e| ConfigError::new(format!("{path}.match.path"), e))?;
            PathMatch::Exact(p)
        }
        (None, Some(p)) => {
            policy::check_config_path(&p)
                .map_err(|e| ConfigError::new(format!("{path}.match.prefix"), e))?;
            PathMatch::Prefix(p)
        }
        (None, None) => PathMatch::Any,
    };
    let methods = match m.methods {
        None => None,
        Some(list) => {
            for (i, method) in list.iter().enumerate() {
                let ok = !method.is_empty()
                    && method
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
                if !ok {
                    return Err(ConfigError::new(
                        format!("{path}.match.methods[{i}]"),
                        format!("{method:?} is not an upper-case method name"),
                    ));
                }
            }
            Some(list)
        }
    };
    let hosts = match m.hosts {
        None => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, h)| {
                    HostPattern::parse(h)
                        .map_err(|e| ConfigError::new(format!("{path}.match.hosts[{i}]"), e))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let has_requirement = r.scopes.is_some() || r.roles.is_some();
    let action = match (r.anonymous, r.deny) {
        (true, true) => {
            return Err(ConfigError::new(path, "cannot be both anonymous and deny"));
        }
        (true, false) | (false, true) if has_requirement => {
            return Err(ConfigError::new(
                path,
                "scopes and roles apply only to rules that require a token",
            ));
        }
        (true, false) => Action::Anonymous,
        (false, true) => Action::Deny,
        (false, false) => Action::Require {
            scopes: scope_tokens(&format!("{path}.scopes"), r.scopes)?,
            roles: scope_tokens(&format!("{path}.roles"), r.roles)?,
        },
    };
    Ok(Rule {
        matcher: Match {
            path: path_match,
            methods,
            hosts,
        },
        action,
    })
}

/// The revocation service configuration (root `tokengate-revocations`).
#[derive(Debug)]
pub struct ServiceConfig {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub poll_interval_s: u64,
    pub timeout_ms: u64,
    pub max_bytes: usize,
    pub verify_key: Option<Key>,
}

/// Default `poll_interval_s`.
pub const DEFAULT_POLL_INTERVAL_S: u64 = 5;
/// Default `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// Default `max_bytes`: 128 MiB.
pub const DEFAULT_MAX_BYTES: usize = 128 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    cluster: String,
    authority: String,
    path: String,
    poll_interval_s: Option<u64>,
    timeout_ms: Option<u64>,
    max_bytes: Option<usize>,
    verify_key: Option<RawVerifyKey>,
}

impl ServiceConfig {
    pub fn from_json(json: &[u8], secrets: &Secrets<'_>) -> Result<ServiceConfig, ConfigError> {
        refuse_repeats(json)?;
        require_objects(json, &SERVICE_OBJECTS)?;
        let raw: RawService = parse_json(json)?;
        for (name, value) in [
            ("cluster", &raw.cluster),
            ("authority", &raw.authority),
            ("path", &raw.path),
        ] {
            if value.is_empty() {
                return Err(ConfigError::new(name, "must not be empty"));
            }
        }
        if !raw.path.starts_with('/') {
            return Err(ConfigError::new("path", "must start with '/'"));
        }
        let poll_interval_s = raw.poll_interval_s.unwrap_or(DEFAULT_POLL_INTERVAL_S);
        if poll_interval_s == 0 {
            return Err(ConfigError::new("poll_interval_s", "must be at least 1"));
        }
        let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 {
            // A timeout of 0 means none at all in Envoy: a hung source would
            // then hold the poll forever.
            return Err(ConfigError::new("timeout_ms", "must be at least 1"));
        }
        let max_bytes = raw.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if max_bytes == 0 {
            return Err(ConfigError::new("max_bytes", "must be at least 1"));
        }
        let verify_key = match raw.verify_key {
            None => None,
            Some(k) => Some(build_key(
                "verify_key",
                KeyId("revocations".into()),
                k.alg,
                k.secret,
                k.secret_env,
                encoding(k.encoding),
                secrets,
            )?),
        };
        Ok(ServiceConfig {
            cluster: raw.cluster,
            authority: raw.authority,
            path: raw.path,
            poll_interval_s,
            timeout_ms,
            max_bytes,
            verify_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

    fn parse(json: &str) -> Result<Config, ConfigError> {
        let env = |name: &str| match name {
            "TG_KEY" => Some(KEY32.to_owned()),
            "TG_EMPTY" => Some(String::new()),
            _ => None,
        };
        Config::from_json(json.as_bytes(), &Secrets::Env(&env))
    }

    fn err(json: &str) -> String {
        parse(json).unwrap_err().to_string()
    }

    fn minimal() -> String {
        format!(r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}]}}"#)
    }

    #[test]
    fn pins_every_documented_default() {
        let c = parse(&minimal()).unwrap();
        assert_eq!(c.realm, "tokengate");
        assert_eq!(c.clock_skew_s, 30);
        assert_eq!(c.require_claims, vec!["exp".to_owned()]);
        assert_eq!(c.max_token_bytes, 4096);
        assert_eq!(
            c.token_sources,
            vec![TokenSource::Header {
                name: "authorization".into(),
                scheme: Some("Bearer".into())
            }]
        );
        assert!(!c.forward_token);
        assert!(c.issuers.is_empty());
        assert!(c.audiences.is_empty());
        assert_eq!(c.max_lifetime_s, None);
        assert!(!c.require_tls);
        assert!(c.revocation.is_none());
        assert!(c.refresh.is_none());
        assert!(
            c.rules.is_empty(),
            "no rules: everything is refused with no_rule"
        );
    }

    #[test]
    fn pins_revocation_and_service_defaults() {
        let json = format!(
            r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}],"revocation":{{}}}}"#
        );
        let r = parse(&json).unwrap().revocation.unwrap();
        assert_eq!(r.max_stale_s, 300);
        assert_eq!(r.on_unavailable, OnUnavailable::Deny);
        assert!(r.static_list.is_empty());
        let s = ServiceConfig::from_json(
            br#"{"cluster":"c","authority":"a","path":"/v1/revocations"}"#,
            &Secrets::Placeholder,
        )
        .unwrap();
        assert_eq!(s.poll_interval_s, 5);
        assert_eq!(s.timeout_ms, 2000);
        assert_eq!(s.max_bytes, 128 * 1024 * 1024);
        assert!(s.verify_key.is_none());
    }

    #[test]
    fn names_the_field_of_an_unknown_algorithm() {
        let json = format!(
            r#"{{"keys":[{{"kid":"a","alg":"HS256","secret":"{KEY32}"}},{{"kid":"b","alg":"HS255","secret":"{KEY32}"}}]}}"#
        );
        assert_eq!(err(&json), r#"keys[1].alg: unknown algorithm "HS255""#);
    }

    #[test]
    fn refuses_unknown_fields_anywhere() {
        assert!(err(r#"{"keys":[],"colour":1}"#).contains("unknown field `colour`"));
        let json = format!(r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}","x":1}}]}}"#);
        let e = err(&json);
        assert!(
            e.starts_with("keys[0]") && e.contains("unknown field `x`"),
            "{e}"
        );
        let json = format!(
            r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}],"rules":[{{"match":{{"prefx":"/"}}}}]}}"#
        );
        assert!(err(&json).starts_with("rules[0].match"), "{}", err(&json));
    }

    #[test]
    fn refuses_wrong_types_naming_the_field() {
        let json = format!(
            r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}],"clock_skew_s":"30"}}"#
        );
        assert!(
            err(&json).starts_with("clock_skew_s: invalid type"),
            "{}",
            err(&json)
        );
    }

    #[test]
    fn refuses_empty_keys() {
        assert_eq!(err(r#"{"keys":[]}"#), "keys: at least one key is required");
        assert!(err(r#"{}"#).contains("missing field `keys`"));
    }

    #[test]
    fn refuses_short_secrets() {
        let json = r#"{"keys":[{"kid":"k","alg":"HS512","secret":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}]}"#;
        assert_eq!(
            err(json),
            "keys[0]: the secret is 32 bytes; HS512 needs at least 64"
        );
    }

    #[test]
    fn reads_secret_env_and_names_the_variable_never_the_value() {
        let ok = r#"{"keys":[{"kid":"k","alg":"HS256","secret_env":"TG_KEY"}]}"#;
        assert!(parse(ok).is_ok());
        let unset = r#"{"keys":[{"kid":"k","alg":"HS256","secret_env":"TG_NOPE"}]}"#;
        assert!(err(unset)
            .starts_with("keys[0].secret_env: environment variable TG_NOPE is unset or empty"));
        let empty = r#"{"keys":[{"kid":"k","alg":"HS256","secret_env":"TG_EMPTY"}]}"#;
        assert!(err(empty).contains("TG_EMPTY"));
        // check-config never reads the value.
        assert!(Config::from_json(unset.as_bytes(), &Secrets::Placeholder).is_ok());
    }

    #[test]
    fn utf8_encoding_takes_the_text_bytes() {
        let json = r#"{"keys":[{"kid":"k","alg":"HS256","secret":"a-utf8-secret-that-is-32-bytes!!","encoding":"utf8"}]}"#;
        assert!(parse(json).is_ok());
    }

    #[test]
    fn refuses_two_or_no_secret_sources_and_duplicate_kids() {
        let both = format!(
            r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}","secret_env":"TG_KEY"}}]}}"#
        );
        assert!(err(&both).starts_with("keys[0]: has both"));
        assert!(err(r#"{"keys":[{"kid":"k","alg":"HS256"}]}"#).starts_with("keys[0]: needs"));
        let dup = format!(
            r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}},{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}]}}"#
        );
        assert_eq!(err(&dup), r#"keys[1].kid: duplicate kid "k""#);
    }

    fn with(extra: &str) -> String {
        format!(r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{KEY32}"}}],{extra}}}"#)
    }

    #[test]
    fn refuses_lower_case_methods() {
        let e = err(&with(
            r#""rules":[{"match":{"prefix":"/","methods":["GET","post"]}}]"#,
        ));
        assert_eq!(
            e,
            r#"rules[0].match.methods[1]: "post" is not an upper-case method name"#
        );
    }

    #[test]
    fn refuses_path_and_prefix_together_and_conflicting_outcomes() {
        assert!(
            err(&with(r#""rules":[{"match":{"path":"/a","prefix":"/a"}}]"#))
                .starts_with("rules[0].match: has both")
        );
        assert!(err(&with(r#""rules":[{"anonymous":true,"deny":true}]"#))
            .starts_with("rules[0]: cannot be both"));
        assert!(err(&with(r#""rules":[{"anonymous":true,"scopes":["a"]}]"#))
            .starts_with("rules[0]: scopes and roles"));
        assert!(err(&with(r#""rules":[{"match":{"prefix":"orders"}}]"#))
            .starts_with("rules[0].match.prefix:"));
    }

    #[test]
    fn refuses_bad_token_sources() {
        assert!(err(&with(r#""token_sources":[]"#)).starts_with("token_sources:"));
        assert!(
            err(&with(r#""token_sources":[{"header":"x","query":"y"}]"#))
                .starts_with("token_sources[0]:")
        );
        assert!(err(&with(
            r#""token_sources":[{"query":"t","scheme":"Bearer"}]"#
        ))
        .starts_with("token_sources[0].scheme"));
        assert!(err(&with(r#""token_sources":[{"header":"bad header"}]"#))
            .starts_with("token_sources[0].header"));
    }

    #[test]
    fn service_refuses_zero_poll_interval_and_missing_fields() {
        let e = ServiceConfig::from_json(
            br#"{"cluster":"c","authority":"a","path":"/","poll_interval_s":0}"#,
            &Secrets::Placeholder,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "poll_interval_s: must be at least 1");
        let e = ServiceConfig::from_json(br#"{"cluster":"c","path":"/"}"#, &Secrets::Placeholder)
            .unwrap_err();
        assert!(e.to_string().contains("missing field `authority`"));
    }

    #[test]
    fn claim_headers_are_lower_cased_and_extra_claims_captured() {
        let c = parse(&with(r#""claims_to_headers":{"sub":"X-Auth-Subject","tenant":"x-tenant"},"require_claims":["exp","org"]"#)).unwrap();
        assert!(c
            .claims_to_headers
            .contains(&("sub".into(), "x-auth-subject".into())));
        assert_eq!(
            c.claim_spec.extra,
            vec!["tenant".to_owned(), "org".to_owned()]
        );
    }
}
