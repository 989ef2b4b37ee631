//! The second phase: what serde cannot check, and the compiled [`Config`].

use super::raw::{Obj, RawConfig, RawEncoding, RawRule, RawSource};
use super::{
    Config, ConfigError, RefreshConfig, RevocationPolicy, Secrets, TokenSource,
    DEFAULT_ACCESS_TTL_S, DEFAULT_CLOCK_SKEW_S, DEFAULT_MAX_STALE_S, DEFAULT_MAX_TOKEN_BYTES,
    DEFAULT_REALM, MAX_MAX_TOKEN_BYTES,
};
use crate::keys::{decode_secret, Alg, Key, KeyId, KeySet, SecretEncoding};
use crate::policy::{self, Action, HostPattern, Match, PathMatch, Rule};
use crate::revocation::{Document, StaticList};
use crate::token::{is_scope_token, ClaimSpec, KNOWN_CLAIMS};

pub(super) fn encoding(e: Option<RawEncoding>) -> SecretEncoding {
    match e {
        Some(RawEncoding::Utf8) => SecretEncoding::Utf8,
        Some(RawEncoding::Base64) | None => SecretEncoding::Base64,
    }
}

/// Builds a key from one of its two secret sources.
pub(super) fn build_key(
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

pub(super) fn compile(raw: RawConfig, secrets: &Secrets<'_>) -> Result<Config, ConfigError> {
    if raw.keys.is_empty() {
        return Err(ConfigError::new("keys", "at least one key is required"));
    }
    let mut keys = Vec::with_capacity(raw.keys.len());
    for (i, Obj(k)) in raw.keys.into_iter().enumerate() {
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
        .map(|(i, Obj(r))| compile_rule(&format!("rules[{i}]"), r))
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
        Some(Obj(r)) => {
            let entries = match r.static_entries {
                None => Vec::new(),
                Some(raw) => Document::parse_entries(raw.get().as_bytes(), "revocation.static")
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
        Some(Obj(r)) => {
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

fn compile_sources(list: Vec<Obj<RawSource>>) -> Result<Vec<TokenSource>, ConfigError> {
    let mut out: Vec<TokenSource> = Vec::with_capacity(list.len());
    for (i, Obj(s)) in list.into_iter().enumerate() {
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
    let Obj(m) = r.matcher;
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
