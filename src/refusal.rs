//! Why a request is refused, and how each reason looks on the wire.
//!
//! This module owns the one mapping from a refusal [`Reason`] to the HTTP
//! status, the RFC 6750 `error` code, the `www-authenticate` header and the
//! JSON body (docs/responses.md, "The answer"). Everything that refuses a request goes through
//! [`Reason`]; nothing else invents a status code.

use std::fmt;

use serde::Serialize;

/// The reason a request was refused, in the order the checks run (see `gate`).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The request itself is unacceptable: a bad path, several tokens, a
    /// repeated query parameter or cookie, a comma in Authorization.
    BadRequest,
    /// The rule needs a token and none was sent.
    Missing,
    /// The token's form is wrong (size, segments, base64url, JSON, header,
    /// claim types, control characters, a missing required claim).
    Malformed,
    /// No configured key fits the token's `kid` and `alg`.
    UnknownKey,
    /// The MAC does not match.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future, or `iat` is later than now.
    NotYetValid,
    /// `exp - iat` exceeds `max_lifetime_s`, or `iat` is missing while it is set.
    LifetimeTooLong,
    /// `iss` is not one of `issuers`.
    WrongIssuer,
    /// `aud` names none of `audiences`.
    WrongAudience,
    /// The token is on the revocation list.
    Revoked,
    /// A certificate-bound token arrived without its certificate.
    BindingMismatch,
    /// A refresh token where an access token is needed, or the reverse.
    WrongTokenType,
    /// A token arrived over a connection without TLS while `require_tls` is on.
    TlsRequired,
    /// A required scope or role is not granted.
    InsufficientScope,
    /// The rule denies every request.
    Denied,
    /// No rule matches: default deny.
    NoRule,
    /// The revocation list is missing or stale and `on_unavailable` is `deny`.
    RevocationUnavailable,
    /// Something inside failed (Envoy refused an edit the decision needs):
    /// the request is refused rather than forwarded as it is.
    Internal,
}

impl Reason {
    /// Every reason, for telemetry and tests.
    pub const ALL: [Reason; 19] = [
        Reason::BadRequest,
        Reason::Missing,
        Reason::Malformed,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::LifetimeTooLong,
        Reason::WrongIssuer,
        Reason::WrongAudience,
        Reason::Revoked,
        Reason::BindingMismatch,
        Reason::WrongTokenType,
        Reason::TlsRequired,
        Reason::InsufficientScope,
        Reason::Denied,
        Reason::NoRule,
        Reason::RevocationUnavailable,
        Reason::Internal,
    ];

    /// The position of the reason in [`Reason::ALL`].
    pub fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// The name used in bodies, filter state and metric names.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "bad_request",
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::LifetimeTooLong => "lifetime_too_long",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongAudience => "wrong_audience",
            Reason::Revoked => "revoked",
            Reason::BindingMismatch => "binding_mismatch",
            Reason::WrongTokenType => "wrong_token_type",
            Reason::TlsRequired => "tls_required",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::Denied => "denied",
            Reason::NoRule => "no_rule",
            Reason::RevocationUnavailable => "revocation_unavailable",
            Reason::Internal => "internal",
        }
    }

    /// The HTTP status of the refusal.
    pub fn status(self) -> u32 {
        match self {
            Reason::BadRequest => 400,
            Reason::Missing
            | Reason::Malformed
            | Reason::UnknownKey
            | Reason::BadSignature
            | Reason::Expired
            | Reason::NotYetValid
            | Reason::LifetimeTooLong
            | Reason::WrongIssuer
            | Reason::WrongAudience
            | Reason::Revoked
            | Reason::BindingMismatch
            | Reason::WrongTokenType => 401,
            Reason::TlsRequired | Reason::InsufficientScope | Reason::Denied | Reason::NoRule => {
                403
            }
            Reason::RevocationUnavailable => 503,
            Reason::Internal => 500,
        }
    }

    /// The RFC 6750 `error` code, `None` for a missing token (RFC 6750 §3.1:
    /// a request without authentication gets no error code).
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            Reason::BadRequest | Reason::TlsRequired => Some("invalid_request"),
            Reason::Missing => None,
            Reason::InsufficientScope => Some("insufficient_scope"),
            Reason::Denied | Reason::NoRule => Some("access_denied"),
            Reason::RevocationUnavailable => Some("temporarily_unavailable"),
            Reason::Internal => Some("server_error"),
            _ => Some("invalid_token"),
        }
    }

    /// A short human description. It never holds token content.
    pub fn description(self) -> &'static str {
        match self {
            Reason::BadRequest => "the request is malformed",
            Reason::Missing => "a bearer token is required",
            Reason::Malformed => "the token is malformed",
            Reason::UnknownKey => "the token's key is not known",
            Reason::BadSignature => "the token's signature is invalid",
            Reason::Expired => "the token has expired",
            Reason::NotYetValid => "the token is not valid yet",
            Reason::LifetimeTooLong => "the token's lifetime is too long",
            Reason::WrongIssuer => "the token's issuer is not accepted",
            Reason::WrongAudience => "the token is not meant for this audience",
            Reason::Revoked => "the token has been revoked",
            Reason::BindingMismatch => "the token is bound to another client certificate",
            Reason::WrongTokenType => "the token is of the wrong type",
            Reason::TlsRequired => "a token may only be sent over TLS",
            Reason::InsufficientScope => "the token lacks a required scope or role",
            Reason::Denied => "access to this resource is denied",
            Reason::NoRule => "no rule allows this request",
            Reason::RevocationUnavailable => "the revocation list is unavailable",
            Reason::Internal => "the gate could not complete the request",
        }
    }

    /// Whether the refusal carries a `www-authenticate` challenge: every 401,
    /// and `insufficient_scope` (RFC 6750 §3).
    pub fn challenges(self) -> bool {
        self.status() == 401 || self == Reason::InsufficientScope
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A local reply: what the filter sends instead of forwarding the request.
/// Every local answer (a refusal, a refresh error or token, an internal
/// error) is one of these, built by [`Reply::json`], so all have the same
/// shape and the same headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    /// A JSON reply: `content-type: application/json`, and `cache-control:
    /// no-store` with `pragma: no-cache`, which RFC 6749 §5.1 asks of any
    /// answer holding a token and which no refusal suffers from either.
    pub fn json<T: Serialize + ?Sized>(status: u32, body: &T) -> Reply {
        Reply {
            status,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("cache-control", "no-store".to_owned()),
                ("pragma", "no-cache".to_owned()),
            ],
            // Serializing these plain structs cannot fail.
            body: serde_json::to_string(body).unwrap_or_default(),
        }
    }

    /// An error reply: `{"error": …, "reason": …, "error_description": …}`.
    /// The description is fixed text, never token content.
    pub fn error(status: u32, error: &str, reason: Reason, description: &str) -> Reply {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
            reason: &'a str,
            error_description: &'a str,
        }
        Reply::json(
            status,
            &ErrorBody {
                error,
                reason: reason.as_str(),
                error_description: description,
            },
        )
    }

    /// The value of header `name`, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Builds the refusal reply of table of docs/responses.md, "Reasons and status codes".
///
/// `scopes` are the scopes the matched rule requires; they are sent in the
/// challenge's `scope` attribute on `insufficient_scope` only.
pub fn refusal_response(reason: Reason, realm: &str, scopes: &[String]) -> Reply {
    let mut reply = Reply::error(
        reason.status(),
        reason.error_code().unwrap_or("unauthorized"),
        reason,
        reason.description(),
    );
    if reason.challenges() {
        let mut challenge = format!("Bearer realm=\"{}\"", quote_safe(realm));
        if let Some(code) = reason.error_code() {
            challenge.push_str(&format!(
                ", error=\"{code}\", error_description=\"{}\"",
                reason.description()
            ));
        }
        if reason == Reason::InsufficientScope && !scopes.is_empty() {
            challenge.push_str(&format!(", scope=\"{}\"", quote_safe(&scopes.join(" "))));
        }
        reply.headers.push(("www-authenticate", challenge));
    }
    reply
}

/// Drops the characters that cannot stand inside an RFC 7235 quoted string
/// as RFC 6750 restricts it (`"` and `\`); configuration text only.
fn quote_safe(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\\').collect()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_the_spec_status_and_code() {
        let table = [
            ("bad_request", 400, Some("invalid_request")),
            ("missing", 401, None),
            ("malformed", 401, Some("invalid_token")),
            ("unknown_key", 401, Some("invalid_token")),
            ("bad_signature", 401, Some("invalid_token")),
            ("expired", 401, Some("invalid_token")),
            ("not_yet_valid", 401, Some("invalid_token")),
            ("lifetime_too_long", 401, Some("invalid_token")),
            ("wrong_issuer", 401, Some("invalid_token")),
            ("wrong_audience", 401, Some("invalid_token")),
            ("revoked", 401, Some("invalid_token")),
            ("binding_mismatch", 401, Some("invalid_token")),
            ("wrong_token_type", 401, Some("invalid_token")),
            ("tls_required", 403, Some("invalid_request")),
            ("insufficient_scope", 403, Some("insufficient_scope")),
            ("denied", 403, Some("access_denied")),
            ("no_rule", 403, Some("access_denied")),
            (
                "revocation_unavailable",
                503,
                Some("temporarily_unavailable"),
            ),
            ("internal", 500, Some("server_error")),
        ];
        assert_eq!(table.len(), Reason::ALL.len());
        for (reason, (name, status, code)) in Reason::ALL.iter().zip(table) {
            assert_eq!(reason.as_str(), name);
            assert_eq!(reason.to_string(), name, "displays as its name");
            assert_eq!(reason.status(), status, "{name}");
            assert_eq!(reason.error_code(), code, "{name}");
        }
    }

    #[test]
    fn missing_token_challenge_has_no_error() {
        let r = refusal_response(Reason::Missing, "orders-api", &[]);
        assert_eq!(r.status, 401);
        assert!(r
            .headers
            .contains(&("www-authenticate", "Bearer realm=\"orders-api\"".into())));
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(body["reason"], "missing");
    }

    #[test]
    fn insufficient_scope_names_the_required_scopes() {
        let r = refusal_response(
            Reason::InsufficientScope,
            "api",
            &["orders:read".into(), "orders:write".into()],
        );
        assert_eq!(r.status, 403);
        let (_, challenge) = r
            .headers
            .iter()
            .find(|(n, _)| *n == "www-authenticate")
            .unwrap();
        assert_eq!(
            challenge,
            "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope or role\", scope=\"orders:read orders:write\""
        );
    }

    /// The realm is configuration text inside a quoted string: `"` and `\`
    /// are dropped from it, never sent to break the challenge open
    /// (docs/responses.md, "The answer").
    #[test]
    fn quotes_and_backslashes_are_dropped_from_the_realm() {
        let r = refusal_response(Reason::Missing, r#"orders "api" \ v2"#, &[]);
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="orders api  v2""#)
        );
    }

    #[test]
    fn forbidden_refusals_other_than_scope_have_no_challenge() {
        for reason in [
            Reason::Denied,
            Reason::NoRule,
            Reason::TlsRequired,
            Reason::BadRequest,
        ] {
            let r = refusal_response(reason, "api", &[]);
            assert!(
                r.headers.iter().all(|(n, _)| *n != "www-authenticate"),
                "{reason}"
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(r.header("cache-control"), Some("no-store"));
        }
    }
}
