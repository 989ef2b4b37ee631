//! Refresh at the edge (RFC 6749 §6): a refresh token in, a new
//! short-lived access token out, answered by the filter itself.
//!
//! The refresh token passes every check an access token passes (signature,
//! binding, claims, time, issuer, audience, revocation) and must be a refresh
//! token. The new token keeps the subject, issuer, audience, roles and
//! certificate binding; its scopes are those asked for (each granted by the
//! refresh token: down-scoping only) or the refresh token's own. Randomness
//! for the new `jti` is an argument, like time.

use serde::Serialize;

use crate::config::Config;
use crate::gate::{Connection, Decision, Revocations, Verdict};
use crate::policy;
use crate::refusal::{Reason, Reply};
use crate::token::{self, b64url_encode, is_scope_token, Binding, TokenType, VerifyCache};
use crate::wire::{percent_decode, split_pair};

/// The largest refresh form read: one token and a few parameters fit
/// many times over; anything bigger is refused before it is parsed.
pub const MAX_FORM_BYTES: usize = 8 * 1024;
/// The most parameters a refresh form may hold.
pub const MAX_FORM_PARAMS: usize = 16;

/// The answer to a request on the refresh path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshAnswer {
    pub reply: Reply,
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

/// The claims of a refreshed access token: what the refresh token says of
/// its holder, and nothing else.
#[derive(Serialize)]
struct AccessClaims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Cnf<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    jti: String,
    iat: u64,
    exp: u64,
}

#[derive(Serialize)]
struct Cnf<'a> {
    #[serde(rename = "x5t#S256")]
    x5t_s256: &'a str,
}

/// RFC 6749 §5.1.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// An RFC 6749 §5.2 error answer.
fn error_answer(
    status: u32,
    error: &str,
    description: &str,
    reason: Reason,
    mut verdict: Verdict,
) -> RefreshAnswer {
    verdict.decision = Decision::Deny(reason);
    RefreshAnswer {
        reply: Reply::error(status, error, reason, description),
        verdict,
    }
}

/// `invalid_request` (400) with `reason` `bad_request`.
pub fn invalid_request(description: &str, verdict: Verdict) -> RefreshAnswer {
    error_answer(
        400,
        "invalid_request",
        description,
        Reason::BadRequest,
        verdict,
    )
}

/// Why a refresh form is refused (each is `invalid_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormError {
    /// More than [`MAX_FORM_BYTES`].
    TooLarge,
    /// More than [`MAX_FORM_PARAMS`] parameters.
    TooManyParameters,
    /// A bad percent-escape, or a name or value that is not UTF-8.
    BadEncoding,
    /// A parameter given twice (RFC 6749 §3.2).
    Repeated,
}

impl FormError {
    pub fn description(self) -> &'static str {
        match self {
            FormError::TooLarge => "the request body is too large",
            FormError::TooManyParameters => "the request has too many parameters",
            FormError::BadEncoding => "the body is not valid form encoding",
            FormError::Repeated => "a parameter is repeated",
        }
    }
}

/// Parses an `application/x-www-form-urlencoded` body of at most
/// [`MAX_FORM_BYTES`] and [`MAX_FORM_PARAMS`] parameters, each decoded once:
/// the work is linear in the body's size, and the repeat check compares at
/// most 16 names with each other.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    if body.len() > MAX_FORM_BYTES {
        return Err(FormError::TooLarge);
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        if out.len() == MAX_FORM_PARAMS {
            return Err(FormError::TooManyParameters);
        }
        let (k, v) = split_pair(pair);
        let k = form_decode(k).ok_or(FormError::BadEncoding)?;
        let v = form_decode(v).ok_or(FormError::BadEncoding)?;
        if out.iter().any(|(name, _)| *name == k) {
            return Err(FormError::Repeated);
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
        let params = match parse_form(req.body) {
            Ok(p) => p,
            Err(why) => return invalid_request(why.description(), v),
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
            TokenType::Refresh,
            conn,
            revocations,
            now,
            &mut VerifyCache::new(0, 0),
            &mut v,
        ) {
            Ok(t) => t,
            Err(Reason::WrongTokenType) => {
                return error_answer(
                    400,
                    "invalid_grant",
                    "an access token cannot be used as a refresh token",
                    Reason::WrongTokenType,
                    v,
                )
            }
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
        let claims = verified.claims();
        let own: Vec<&str> = claims.own_scopes().collect();
        // When scopes are asked, the new token holds exactly those and no
        // roles: a role mapped to `*` would otherwise grant everything again.
        let asked = param("scope").filter(|s| !s.is_empty());
        let scopes: Vec<&str> = match asked {
            None => own,
            Some(asked) => {
                let granted = self.granted_scopes(&verified);
                let asked: Vec<&str> = asked.split(' ').collect();
                if !asked.iter().all(|a| is_scope_token(a)) {
                    return error_answer(
                        400,
                        "invalid_scope",
                        "the scope parameter is not a list of scope-tokens",
                        Reason::InsufficientScope,
                        v,
                    );
                }
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
        let cnf = match &claims.cnf {
            Some(Binding::X5tS256(thumb)) => Some(Cnf { x5t_s256: thumb }),
            // verify_token refuses every other binding; never mint an
            // unbound token from a bound one.
            Some(Binding::Unsupported) => {
                return invalid_request("the refresh token's binding cannot be kept", v)
            }
            None => None,
        };
        let scope = scopes.join(" ");
        let scope = (!scope.is_empty()).then_some(scope);
        let keep_roles = asked.is_none();
        let access = AccessClaims {
            sub: claims.sub.as_deref(),
            iss: claims.iss.as_deref(),
            aud: claims.aud.as_deref(),
            role: claims.role.as_deref().filter(|_| keep_roles),
            roles: claims.roles.as_deref().filter(|_| keep_roles),
            cnf,
            scope: scope.as_deref(),
            jti: b64url_encode(&jti),
            iat: now,
            exp: now.saturating_add(refresh.access_ttl_s),
        };
        let body = TokenResponse {
            access_token: token::sign(&access, key, "at+jwt"),
            token_type: "Bearer",
            expires_in: refresh.access_ttl_s,
            scope: scope.as_deref(),
        };
        v.decision = Decision::Allow;
        RefreshAnswer {
            reply: Reply::json(200, &body),
            verdict: v,
        }
    }
}
