//! Refresh at the edge (SPEC §10.2, RFC 6749 §6): a refresh token in, a new
//! short-lived access token out, answered by the filter itself.
//!
//! The refresh token passes every check an access token passes (signature,
//! binding, claims, time, issuer, audience, revocation) and must be a refresh
//! token. The new token keeps the subject, issuer, audience, roles and
//! certificate binding; its scopes are those asked for (each granted by the
//! refresh token: down-scoping only) or the refresh token's own. Randomness
//! for the new `jti` is an argument, like time.

use crate::config::Config;
use crate::gate::{percent_decode, split_pair, Connection, Decision, Revocations, Verdict};
use crate::policy;
use crate::refusal::Reason;
use crate::token::{self, b64url_encode, TokenType, VerifyCache};

/// The answer to a request on the refresh path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshAnswer {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// For telemetry and access logs: `Allow` when a token was minted.
    pub verdict: Verdict,
}

/// What the refresh request carried.
#[derive(Clone, Copy, Debug)]
pub struct RefreshRequest<'a> {
    pub method: &'a str,
    pub content_type: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// RFC 6749 §5.2 error codes.
fn error_answer(
    status: u32,
    error: &str,
    description: &str,
    reason: Reason,
    verdict: Verdict,
) -> RefreshAnswer {
    let body = serde_json::json!({
        "error": error,
        "error_description": description,
        "reason": reason.as_str(),
    })
    .to_string();
    let mut verdict = verdict;
    verdict.decision = Decision::Deny(reason);
    RefreshAnswer {
        status,
        headers: no_store_headers(),
        body,
        verdict,
    }
}

fn no_store_headers() -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".to_owned()),
        ("cache-control", "no-store".to_owned()),
        ("pragma", "no-cache".to_owned()),
    ]
}

fn invalid_request(description: &str, verdict: Verdict) -> RefreshAnswer {
    error_answer(
        400,
        "invalid_request",
        description,
        Reason::BadRequest,
        verdict,
    )
}

/// Parses an `application/x-www-form-urlencoded` body; a repeated parameter
/// is an error (RFC 6749 §3.2).
fn form(body: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = split_pair(pair);
        let k = form_decode(k).ok_or("the body is not valid form encoding")?;
        let v = form_decode(v).ok_or("the body is not valid form encoding")?;
        if out.iter().any(|(name, _)| *name == k) {
            return Err("a parameter is repeated");
        }
        out.push((k, v));
    }
    Ok(out)
}

fn form_decode(raw: &[u8]) -> Option<String> {
    String::from_utf8(percent_decode(raw).ok()?.into_owned()).ok()
}

fn is_form(content_type: Option<&[u8]>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct.split(|b| *b == b';').next().unwrap_or(&[]);
    let essence = String::from_utf8_lossy(essence);
    essence
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

impl Config {
    /// Whether a raw `:path` is the configured refresh path.
    pub fn is_refresh_path(&self, raw_path: &[u8]) -> bool {
        match &self.refresh {
            Some(r) => policy::normalize_path(raw_path).is_ok_and(|p| p == r.path),
            None => false,
        }
    }

    /// Answers a refresh request. `jti` is 16 random bytes for the new token.
    pub fn refresh(
        &self,
        req: &RefreshRequest<'_>,
        conn: &dyn Connection,
        revocations: Revocations<'_>,
        now: u64,
        jti: [u8; 16],
    ) -> RefreshAnswer {
        let mut v = Verdict::empty();
        let Some(refresh) = &self.refresh else {
            return invalid_request("refresh is not configured", v);
        };
        if req.method != "POST" {
            return invalid_request("the token endpoint takes POST only", v);
        }
        if !is_form(req.content_type) {
            return invalid_request("the body must be application/x-www-form-urlencoded", v);
        }
        let params = match form(req.body) {
            Ok(p) => p,
            Err(why) => return invalid_request(why, v),
        };
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        match param("grant_type") {
            None => return invalid_request("grant_type is missing", v),
            Some("refresh_token") => {}
            Some(_) => {
                return error_answer(
                    400,
                    "unsupported_grant_type",
                    "only the refresh_token grant is supported here",
                    Reason::BadRequest,
                    v,
                )
            }
        }
        let Some(token) = param("refresh_token").filter(|t| !t.is_empty()) else {
            return invalid_request("refresh_token is missing", v);
        };
        if self.require_tls && !conn.is_tls() {
            return error_answer(
                400,
                "invalid_request",
                Reason::TlsRequired.description(),
                Reason::TlsRequired,
                v,
            );
        }
        let verified = match self.verify_token(
            token,
            conn,
            revocations,
            now,
            &mut VerifyCache::new(0),
            &mut v,
        ) {
            Ok(t) => t,
            Err(Reason::RevocationUnavailable) => {
                return error_answer(
                    503,
                    "temporarily_unavailable",
                    Reason::RevocationUnavailable.description(),
                    Reason::RevocationUnavailable,
                    v,
                )
            }
            Err(reason) => {
                return error_answer(400, "invalid_grant", reason.description(), reason, v)
            }
        };
        if verified.token_type() != TokenType::Refresh {
            return error_answer(
                400,
                "invalid_grant",
                "an access token cannot be used as a refresh token",
                Reason::WrongTokenType,
                v,
            );
        }
        let claims = verified.claims();
        let own: Vec<&str> = claims.own_scopes().collect();
        let scopes: Vec<&str> = match param("scope").map(str::trim).filter(|s| !s.is_empty()) {
            None => own,
            Some(asked) => {
                let granted = self.granted_scopes(&verified);
                let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
                if !asked
                    .iter()
                    .all(|a| granted.iter().any(|g| policy::scope_grants(g, a)))
                {
                    return error_answer(
                        400,
                        "invalid_scope",
                        "a requested scope exceeds the refresh token's",
                        Reason::InsufficientScope,
                        v,
                    );
                }
                asked
            }
        };
        let Some(key) = self.keys.by_kid(refresh.kid.as_str()) else {
            return invalid_request("the refresh key is not configured", v);
        };
        let mut out = serde_json::Map::new();
        let mut put = |name: &str, value: serde_json::Value| {
            out.insert(name.to_owned(), value);
        };
        if let Some(sub) = &claims.sub {
            put("sub", sub.clone().into());
        }
        if let Some(iss) = &claims.iss {
            put("iss", iss.clone().into());
        }
        if let Some(aud) = &claims.aud {
            put("aud", aud.clone().into());
        }
        if let Some(role) = &claims.role {
            put("role", role.clone().into());
        }
        if let Some(roles) = &claims.roles {
            put("roles", roles.clone().into());
        }
        if let Some(thumb) = &claims.x5t_s256 {
            put("cnf", serde_json::json!({ "x5t#S256": thumb }));
        }
        let scope = scopes.join(" ");
        if !scope.is_empty() {
            put("scope", scope.clone().into());
        }
        let new_jti = b64url_encode(&jti);
        put("jti", new_jti.clone().into());
        put("iat", now.into());
        put("exp", now.saturating_add(refresh.access_ttl_s).into());
        let access = token::sign(&serde_json::Value::Object(out), key, "at+jwt");
        let mut body = serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": refresh.access_ttl_s,
        });
        if !scope.is_empty() {
            body["scope"] = scope.into();
        }
        v.decision = Decision::Allow;
        RefreshAnswer {
            status: 200,
            headers: no_store_headers(),
            body: body.to_string(),
            verdict: v,
        }
    }
}
