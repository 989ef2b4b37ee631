//! Configuration: the JSON an operator writes, checked and compiled once.
//!
//! Two phases, as ripgrep parses its flags: serde reads the JSON into the
//! `Raw*` structs of `raw.rs` (unknown fields, wrong types and arrays where
//! objects go refused, the types themselves being the schema), then
//! `compile.rs` checks what serde cannot (one secret source per key, secret
//! lengths, rule shapes, scope-token names) and builds the [`Config`] the
//! request path uses: keys decoded with their HMAC state ready, rules
//! compiled, defaults filled in. Before either, a repeated member name
//! anywhere is refused (`json::refuse_repeated_members`). Every error names
//! the JSON path of the field (`keys[1].alg: unknown algorithm "HS255"`) and
//! never a secret. The filter's `on_configure` and `tokengate check-config`
//! call the very same functions.
//!
//! A compiled [`Config`] is read-only; its entry points are:
//!
//! | call | defined in | does |
//! |---|---|---|
//! | [`Config::from_json`] | here | parse and compile |
//! | [`Config::decide`], [`Config::decide_with`] | `gate` | decide one request |
//! | [`Config::verify_token`] | `gate` | every check of one token |
//! | [`Config::is_refresh_path`], [`Config::refresh`] | `refresh` | answer the refresh endpoint |
//! | [`ServiceConfig::from_json`] | `service.rs` | the revocation service's configuration |

mod compile;
mod raw;
mod service;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::Deserialize;

use crate::keys::{KeyId, KeySet};
use crate::policy::Rule;
use crate::revocation::StaticList;
use crate::token::ClaimSpec;

pub use service::{ServiceConfig, DEFAULT_MAX_BYTES, DEFAULT_POLL_INTERVAL_S, DEFAULT_TIMEOUT_MS};

/// A configuration error: the JSON path of the field, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
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

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnUnavailable {
    /// Refuse with 503 `revocation_unavailable` (the default: fail closed).
    #[default]
    Deny,
    /// Decide without the published list; static entries still apply.
    Allow,
}

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
    pub(crate) max_stale_s: u64,
    pub(crate) on_unavailable: OnUnavailable,
    pub(crate) static_list: StaticList,
}

impl RevocationPolicy {
    /// `max_stale_s`: a list older than this is unavailable.
    pub fn max_stale_s(&self) -> u64 {
        self.max_stale_s
    }

    /// What a stale or missing list means.
    pub fn on_unavailable(&self) -> OnUnavailable {
        self.on_unavailable
    }

    /// The `static` entries, which always apply.
    pub fn static_list(&self) -> &StaticList {
        &self.static_list
    }
}

/// Refresh at the edge (docs/refresh.md).
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    pub(crate) path: String,
    pub(crate) access_ttl_s: u64,
    pub(crate) kid: KeyId,
}

impl RefreshConfig {
    /// The normalized path the filter answers itself.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn access_ttl_s(&self) -> u64 {
        self.access_ttl_s
    }

    /// The key that signs refreshed access tokens.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }
}

/// The compiled filter configuration: read-only, built only by
/// [`Config::from_json`].
#[derive(Debug)]
pub struct Config {
    pub(crate) realm: String,
    pub(crate) keys: KeySet,
    /// Empty: no issuer check.
    pub(crate) issuers: Vec<String>,
    /// Empty: no audience check.
    pub(crate) audiences: Vec<String>,
    pub(crate) clock_skew_s: u64,
    pub(crate) max_lifetime_s: Option<u64>,
    pub(crate) require_claims: Vec<String>,
    pub(crate) max_token_bytes: usize,
    pub(crate) token_sources: Vec<TokenSource>,
    pub(crate) forward_token: bool,
    /// (claim, header) pairs, header names lower-cased.
    pub(crate) claims_to_headers: Vec<(String, String)>,
    /// (role, scopes it grants), in name order; few enough for a scan.
    pub(crate) roles: Vec<(String, Vec<String>)>,
    pub(crate) require_tls: bool,
    pub(crate) rules: Vec<Rule>,
    pub(crate) revocation: Option<RevocationPolicy>,
    pub(crate) refresh: Option<RefreshConfig>,
    /// What the payload parser captures beyond the registered claims.
    pub(crate) claim_spec: ClaimSpec,
    /// Whether any rule names hosts (the `:authority` is then parsed).
    pub(crate) rules_name_hosts: bool,
    /// Whether any rule names methods (method-override headers are then read).
    pub(crate) rules_name_methods: bool,
}

impl Config {
    /// Parses and compiles a filter configuration.
    pub fn from_json(json: &[u8], secrets: &Secrets<'_>) -> Result<Config, ConfigError> {
        refuse_repeats(json)?;
        let raw::Obj(raw) = raw::parse_json::<raw::Obj<raw::RawConfig>>(json)?;
        compile::compile(raw, secrets)
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    pub fn clock_skew_s(&self) -> u64 {
        self.clock_skew_s
    }

    pub fn max_lifetime_s(&self) -> Option<u64> {
        self.max_lifetime_s
    }

    pub fn require_claims(&self) -> &[String] {
        &self.require_claims
    }

    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    pub fn token_sources(&self) -> &[TokenSource] {
        &self.token_sources
    }

    pub fn forward_token(&self) -> bool {
        self.forward_token
    }

    /// `(claim, header)` pairs, header names lower-cased.
    pub fn claims_to_headers(&self) -> &[(String, String)] {
        &self.claims_to_headers
    }

    /// `(role, scopes it grants)`, in name order.
    pub fn roles(&self) -> &[(String, Vec<String>)] {
        &self.roles
    }

    pub fn require_tls(&self) -> bool {
        self.require_tls
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn revocation(&self) -> Option<&RevocationPolicy> {
        self.revocation.as_ref()
    }

    pub fn refresh_config(&self) -> Option<&RefreshConfig> {
        self.refresh.as_ref()
    }

    /// What a payload parse captures beyond the registered claims.
    pub fn claim_spec(&self) -> &ClaimSpec {
        &self.claim_spec
    }
}

/// Every object with a repeated member name is an error: the last value
/// never silently wins (see `json`).
fn refuse_repeats(json: &[u8]) -> Result<(), ConfigError> {
    crate::json::refuse_repeated_members(json)
        .map_err(|r| ConfigError::new(r.path, format!("repeats member {}", r.name)))
}
