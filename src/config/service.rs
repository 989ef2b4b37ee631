//! The revocation service's configuration (root `tokengate-revocations`).

use super::compile::{build_key, encoding};
use super::raw::{parse_json, Obj, RawService};
use super::{refuse_repeats, ConfigError, Secrets};
use crate::keys::{Key, KeyId};

/// The revocation service configuration (root `tokengate-revocations`).
#[derive(Debug)]
pub struct ServiceConfig {
    pub(crate) cluster: String,
    pub(crate) authority: String,
    pub(crate) path: String,
    pub(crate) poll_interval_s: u64,
    pub(crate) timeout_ms: u64,
    pub(crate) max_bytes: usize,
    pub(crate) verify_key: Option<Key>,
}

/// Default `poll_interval_s`.
pub const DEFAULT_POLL_INTERVAL_S: u64 = 5;
/// Default `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// Default `max_bytes`: 128 MiB.
pub const DEFAULT_MAX_BYTES: usize = 128 << 20;

impl ServiceConfig {
    pub fn from_json(json: &[u8], secrets: &Secrets<'_>) -> Result<ServiceConfig, ConfigError> {
        refuse_repeats(json)?;
        let Obj(raw) = parse_json::<Obj<RawService>>(json)?;
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
            Some(Obj(k)) => Some(build_key(
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

impl ServiceConfig {
    /// The Envoy cluster serving the list.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn poll_interval_s(&self) -> u64 {
        self.poll_interval_s
    }

    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The key a signed list must verify under.
    pub fn verify_key(&self) -> Option<&Key> {
        self.verify_key.as_ref()
    }
}
