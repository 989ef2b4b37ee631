//! The decision: one request in, one [`Verdict`] out.
//!
//! `decide` runs the checks of SPEC section 4 in their order and stops at the
//! first that fails: rule → token present → single token → TLS → format → key
//! → signature → binding → token type → required claims → time → lifetime →
//! issuer → audience → revocation → scopes and roles. It also computes what
//! the adapter must change before the request goes upstream (token removal,
//! claim headers, spoofed headers stripped). It performs no I/O: the adapter
//! hands it the request, the connection facts it asks for, the clock, and the
//! revocation list in force.

use std::borrow::Cow;

use crate::config::{Config, OnUnavailable, TokenSource};
use crate::policy::{self, Action};
use crate::refusal::{refusal_response, Reason, Response};
use crate::revocation::{Snapshot, TokenRef};
use crate::token::{self, ClaimValue, TokenType, Verified, VerifyCache};

/// The parts of a request the gate reads.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The raw `:path`, query included.
    pub path: &'a [u8],
    pub authority: &'a [u8],
    /// Every request header, names lower-case, as Envoy hands them over.
    pub headers: &'a [(String, Vec<u8>)],
}

impl<'a> Request<'a> {
    fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Facts about the connection that cost a host call each; the gate asks for
/// them only when a check needs them.
pub trait Connection {
    /// Whether the downstream connection uses TLS.
    fn is_tls(&self) -> bool;
    /// SHA-256 of the client certificate (DER), when mutual TLS presented one.
    fn peer_certificate_sha256(&self) -> Option<[u8; 32]>;
}

/// A connection with fixed facts (tests and the CLI).
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedConnection {
    pub tls: bool,
    pub peer_certificate_sha256: Option<[u8; 32]>,
}

impl Connection for FixedConnection {
    fn is_tls(&self) -> bool {
        self.tls
    }
    fn peer_certificate_sha256(&self) -> Option<[u8; 32]> {
        self.peer_certificate_sha256
    }
}

/// The published revocation list as a worker sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Revocations<'a> {
    /// The list in force, if one was ever received.
    pub list: Option<&'a Snapshot>,
    /// Unix seconds of the service's last successful fetch (200 or 304).
    pub last_fetch: Option<u64>,
}

/// What happened to the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Anonymous,
    Deny(Reason),
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Anonymous => "anonymous",
            Decision::Deny(_) => "deny",
        }
    }

    pub fn reason(self) -> Option<Reason> {
        match self {
            Decision::Deny(r) => Some(r),
            _ => None,
        }
    }
}

/// The gate's answer and the request edits that go with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    /// Headers to remove before forwarding (spoofed claim headers, the token).
    pub remove_headers: Vec<String>,
    /// Headers to set before forwarding (verified claims).
    pub set_headers: Vec<(String, String)>,
    /// A new `:path`, when the token was cut out of the query.
    pub new_path: Option<Vec<u8>>,
    /// A new `cookie` header value, when the token was cut out of it
    /// (`Some(None)`: remove the header, nothing is left).
    pub new_cookie: Option<Option<Vec<u8>>>,
    /// Verified values for access logs; `None` unless the MAC held.
    pub sub: Option<String>,
    pub jti: Option<String>,
    pub kid: Option<String>,
    /// The scopes the matched rule requires (for the challenge).
    pub required_scopes: Vec<String>,
}

impl Verdict {
    /// A verdict with no edits, refused with `no_rule` until decided.
    pub fn empty() -> Verdict {
        Verdict {
            decision: Decision::Deny(Reason::NoRule),
            remove_headers: Vec::new(),
            set_headers: Vec::new(),
            new_path: None,
            new_cookie: None,
            sub: None,
            jti: None,
            kid: None,
            required_scopes: Vec::new(),
        }
    }

    /// The local reply for a refusal; `None` when the request goes on.
    pub fn response(&self, realm: &str) -> Option<Response> {
        self.decision
            .reason()
            .map(|r| refusal_response(r, realm, &self.required_scopes))
    }
}

impl Config {
    /// Decides a request. `now` is Unix seconds.
    pub fn decide(
        &self,
        req: &Request<'_>,
        conn: &dyn Connection,
        revocations: Revocations<'_>,
        now: u64,
    ) -> Verdict {
        self.decide_with(req, conn, revocations, now, &mut VerifyCache::new(0))
    }

    /// [`Config::decide`] with a cache of verified tokens (the filter keeps
    /// one per worker). The cache only spares parsing and the MAC; every
    /// other check runs on every request.
    pub fn decide_with(
        &self,
        req: &Request<'_>,
        conn: &dyn Connection,
        revocations: Revocations<'_>,
        now: u64,
        cache: &mut VerifyCache,
    ) -> Verdict {
        let mut v = Verdict::empty();
        // Spoofed claim headers go on every request, whatever the outcome.
        for (_, header) in &self.claims_to_headers {
            if req.header(header).is_some() {
                v.remove_headers.push(header.clone());
            }
        }
        match self.decide_inner(req, conn, revocations, now, cache, &mut v) {
            Ok(decision) => v.decision = decision,
            Err(reason) => {
                v.decision = Decision::Deny(reason);
                v.set_headers.clear();
            }
        }
        v
    }

    fn decide_inner(
        &self,
        req: &Request<'_>,
        conn: &dyn Connection,
        revocations: Revocations<'_>,
        now: u64,
        cache: &mut VerifyCache,
        v: &mut Verdict,
    ) -> Result<Decision, Reason> {
        let path = policy::normalize_path_cow(req.path).map_err(|_| Reason::BadRequest)?;
        // The host is only read when a rule names hosts.
        let host = if self.rules.iter().any(|r| r.matcher.hosts.is_some()) {
            policy::authority_host(req.authority).unwrap_or_default()
        } else {
            String::new()
        };
        let rule =
            policy::first_match(&self.rules, &path, req.method, &host).ok_or(Reason::NoRule)?;
        let (scopes, roles) = match &rule.action {
            Action::Deny => return Err(Reason::Denied),
            Action::Anonymous => {
                // The token is not checked, but it still never goes
                // upstream: every source is cleared, however many tokens
                // (or repeats) the request holds.
                if !self.forward_token {
                    self.strip_all_tokens(req, v);
                }
                return Ok(Decision::Anonymous);
            }
            Action::Require { scopes, roles } => (scopes, roles),
        };
        v.required_scopes.clone_from(scopes);
        let token = self.find_token(req, v)?.ok_or(Reason::Missing)?;
        if self.require_tls && !conn.is_tls() {
            return Err(Reason::TlsRequired);
        }
        let token = std::str::from_utf8(&token).map_err(|_| Reason::Malformed)?;
        let verified = self.verify_access(token, conn, revocations, now, cache, v)?;
        let granted = self.granted_scopes(&verified);
        self.authorize(&verified, &granted, scopes, roles)?;
        self.forward_claims(&verified, &granted, v);
        Ok(Decision::Allow)
    }

    /// Every check that makes a token valid, from its form to revocation.
    /// Fills the verdict's verified log values as soon as the MAC holds.
    pub fn verify_token<'k>(
        &'k self,
        token: &str,
        conn: &dyn Connection,
        revocations: Revocations<'_>,
        now: u64,
        cache: &mut VerifyCache,
        v: &mut Verdict,
    ) -> Result<Verified<'k>, Reason> {
        let verified = cache.verify(token, &self.keys, self.max_token_bytes, &self.claim_spec)?;
        let claims = verified.claims();
        v.kid = Some(verified.key().kid().as_str().to_owned());
        v.sub.clone_from(&claims.sub);
        v.jti.clone_from(&claims.jti);
        if let Some(thumb) = &claims.x5t_s256 {
            let bound = token::b64url_decode(thumb).ok();
            let presented = conn.peer_certificate_sha256();
            if bound.is_none() || bound.as_deref() != presented.as_ref().map(|d| d.as_slice()) {
                return Err(Reason::BindingMismatch);
            }
        }
        if self.require_claims.iter().any(|c| !claims.has(c)) {
            return Err(Reason::Malformed);
        }
        let now_f = now as f64;
        let skew = self.clock_skew_s as f64;
        if claims.exp.is_some_and(|exp| now_f >= exp.get() + skew) {
            return Err(Reason::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now_f < nbf.get() - skew)
            || claims.iat.is_some_and(|iat| iat.get() > now_f + skew)
        {
            return Err(Reason::NotYetValid);
        }
        if let Some(max) = self.max_lifetime_s {
            match (claims.iat, claims.exp) {
                (Some(iat), Some(exp)) if exp.get() - iat.get() <= max as f64 => {}
                _ => return Err(Reason::LifetimeTooLong),
            }
        }
        if !self.issuers.is_empty()
            && !claims
                .iss
                .as_ref()
                .is_some_and(|iss| self.issuers.contains(iss))
        {
            return Err(Reason::WrongIssuer);
        }
        if !self.audiences.is_empty()
            && !claims
                .aud
                .iter()
                .flatten()
                .any(|a| self.audiences.contains(a))
        {
            return Err(Reason::WrongAudience);
        }
        if let Some(policy) = &self.revocation {
            let token_ref = TokenRef {
                jti: claims.jti.as_deref(),
                sub: claims.sub.as_deref(),
                iat: claims.iat.map(|d| d.get()),
                kid: verified.key().kid().as_str(),
            };
            if policy.static_list.is_revoked(&token_ref) {
                return Err(Reason::Revoked);
            }
            let fresh = revocations
                .last_fetch
                .is_some_and(|at| now.saturating_sub(at) <= policy.max_stale_s);
            match (revocations.list, fresh) {
                (Some(list), true) if list.is_revoked(&token_ref) => return Err(Reason::Revoked),
                (Some(_), true) => {}
                _ if policy.on_unavailable == OnUnavailable::Deny => {
                    return Err(Reason::RevocationUnavailable)
                }
                _ => {}
            }
        }
        Ok(verified)
    }

    fn verify_access<'k>(
        &'k self,
        token: &str,
        conn: &dyn Connection,
        revocations: Revocations<'_>,
        now: u64,
        cache: &mut VerifyCache,
        v: &mut Verdict,
    ) -> Result<Verified<'k>, Reason> {
        let verified = self.verify_token(token, conn, revocations, now, cache, v)?;
        if verified.token_type() == TokenType::Refresh {
            return Err(Reason::WrongTokenType);
        }
        Ok(verified)
    }

    /// The scopes a token grants: its own (`scope`, then `scp`), then those
    /// of its roles, without repeats.
    pub fn granted_scopes<'c>(&'c self, verified: &'c Verified<'_>) -> Vec<&'c str> {
        let claims = verified.claims();
        let mut out: Vec<&str> = Vec::new();
        let role_scopes = claims
            .all_roles()
            .filter_map(|r| {
                self.roles
                    .iter()
                    .find(|(name, _)| name == r)
                    .map(|(_, s)| s)
            })
            .flatten()
            .map(String::as_str);
        for s in claims.own_scopes().chain(role_scopes) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    fn authorize(
        &self,
        verified: &Verified<'_>,
        granted: &[&str],
        scopes: &[String],
        roles: &[String],
    ) -> Result<(), Reason> {
        if !scopes.is_empty() && !policy::all_scopes_granted(granted.iter().copied(), scopes) {
            return Err(Reason::InsufficientScope);
        }
        if !roles.is_empty()
            && !verified
                .claims()
                .all_roles()
                .any(|r| roles.iter().any(|x| x == r))
        {
            return Err(Reason::InsufficientScope);
        }
        Ok(())
    }

    fn forward_claims(&self, verified: &Verified<'_>, granted: &[&str], v: &mut Verdict) {
        let claims = verified.claims();
        for (claim, header) in &self.claims_to_headers {
            let value = match claim.as_str() {
                "scope" => (!granted.is_empty()).then(|| granted.join(" ")),
                "sub" => claims.sub.clone(),
                "jti" => claims.jti.clone(),
                "iss" => claims.iss.clone(),
                "role" => claims.role.clone(),
                "token_use" => claims.token_use.clone(),
                "aud" => claims.aud.as_ref().map(|a| a.join(" ")),
                "scp" => claims.scp.as_ref().map(|a| a.join(" ")),
                "roles" => claims.roles.as_ref().map(|a| a.join(" ")),
                "exp" => claims.exp.map(|d| d.to_decimal()),
                "nbf" => claims.nbf.map(|d| d.to_decimal()),
                "iat" => claims.iat.map(|d| d.to_decimal()),
                other => claims
                    .extra
                    .iter()
                    .find(|(n, _)| n == other)
                    .and_then(|(_, value)| match value {
                        ClaimValue::Str(s) => Some(s.clone()),
                        ClaimValue::Num(n) => Some(n.clone()),
                        ClaimValue::Strs(list) => Some(list.join(" ")),
                        ClaimValue::Other => None,
                    }),
            };
            if let Some(value) = value {
                v.set_headers.push((header.clone(), value));
            }
        }
    }

    /// Removes every token source from the request: the headers, every
    /// occurrence of the query parameter, every cookie of that name.
    fn strip_all_tokens(&self, req: &Request<'_>, v: &mut Verdict) {
        for source in &self.token_sources {
            match source {
                TokenSource::Header { name, scheme } => {
                    let holds_token = req.header(name).is_some_and(|value| match scheme {
                        // A value in another scheme (Basic) is not a token.
                        Some(scheme) => value
                            .split(|b| *b == b',')
                            .any(|part| strip_scheme(part, scheme).is_some()),
                        None => true,
                    });
                    if holds_token {
                        v.remove_headers.push(name.clone());
                    }
                }
                TokenSource::Query(param) => {
                    let path = v.new_path.as_deref().unwrap_or(req.path);
                    if query_of(path).is_some() {
                        v.new_path = Some(without_query_param(path, param));
                    }
                }
                TokenSource::Cookie(name) => {
                    if let Some(header) = req.header("cookie") {
                        let kept = without_cookie(header, name);
                        if kept.as_deref() != Some(header) {
                            v.new_cookie = Some(kept);
                        }
                    }
                }
            }
        }
        if v.new_path.as_deref() == Some(req.path) {
            v.new_path = None;
        }
    }

    /// Finds the request's token in the configured sources. More than one
    /// token, a repeated parameter or cookie, or a comma in a token header
    /// is a bad request. Records the edits that remove the token.
    fn find_token<'r>(
        &self,
        req: &Request<'r>,
        v: &mut Verdict,
    ) -> Result<Option<Cow<'r, [u8]>>, Reason> {
        let mut found: Option<(&TokenSource, Cow<'r, [u8]>)> = None;
        for source in &self.token_sources {
            let token = match source {
                TokenSource::Header { name, scheme } => match req.header(name) {
                    None => None,
                    Some(value) if value.contains(&b',') => return Err(Reason::BadRequest),
                    Some(value) => match scheme {
                        Some(scheme) => strip_scheme(value, scheme),
                        None => Some(trim(value)).filter(|t| !t.is_empty()),
                    }
                    .map(Cow::Borrowed),
                },
                TokenSource::Query(param) => query_param(req.path, param)?,
                TokenSource::Cookie(name) => cookie(req.header("cookie"), name)?.map(Cow::Borrowed),
            };
            if let Some(token) = token {
                if found.is_some() {
                    return Err(Reason::BadRequest);
                }
                found = Some((source, token));
            }
        }
        let Some((source, token)) = found else {
            return Ok(None);
        };
        if !self.forward_token {
            match source {
                TokenSource::Header { name, .. } => v.remove_headers.push(name.clone()),
                TokenSource::Query(param) => {
                    v.new_path = Some(without_query_param(req.path, param))
                }
                TokenSource::Cookie(name) => {
                    v.new_cookie = Some(without_cookie(req.header("cookie").unwrap_or(&[]), name))
                }
            }
        }
        Ok(Some(token))
    }
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or(&[])
}

/// `Bearer abc` → `abc`; a value that does not open with the scheme and a
/// space yields no token.
fn strip_scheme<'v>(value: &'v [u8], scheme: &str) -> Option<&'v [u8]> {
    let value = trim(value);
    let head = value.get(..scheme.len())?;
    if !head.eq_ignore_ascii_case(scheme.as_bytes()) {
        return None;
    }
    let rest = value.get(scheme.len()..)?;
    if rest.is_empty() {
        // The scheme alone: a token header with an empty token.
        return Some(rest);
    }
    if rest.first() != Some(&b' ') {
        return None;
    }
    Some(trim(rest))
}

/// The query of a raw `:path`: after the first `?`, before any `#`.
fn query_of(path: &[u8]) -> Option<&[u8]> {
    let start = path.iter().position(|b| *b == b'?')? + 1;
    let rest = path.get(start..)?;
    let end = rest.iter().position(|b| *b == b'#').unwrap_or(rest.len());
    rest.get(..end)
}

/// Percent-decodes a query or form component (`+` is a space, as forms
/// send it). An escape that is not `%` and two hex digits is a bad request.
/// Shared by query tokens and the refresh endpoint's form body.
pub(crate) fn percent_decode(raw: &[u8]) -> Result<Cow<'_, [u8]>, Reason> {
    if !raw.iter().any(|b| *b == b'%' || *b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(Reason::BadRequest)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(Reason::BadRequest);
                }
                let text = std::str::from_utf8(hex).map_err(|_| Reason::BadRequest)?;
                out.push(u8::from_str_radix(text, 16).map_err(|_| Reason::BadRequest)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(Cow::Owned(out))
}

/// Splits `key=value` (a missing `=` is an empty value).
pub(crate) fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    match pair.iter().position(|b| *b == b'=') {
        Some(i) => (
            pair.get(..i).unwrap_or(&[]),
            pair.get(i + 1..).unwrap_or(&[]),
        ),
        None => (pair, &[]),
    }
}

/// The value of query parameter `name`, decoded. A parameter given twice is
/// a bad request; an empty value yields no token.
fn query_param<'p>(path: &'p [u8], name: &str) -> Result<Option<Cow<'p, [u8]>>, Reason> {
    let Some(query) = query_of(path) else {
        return Ok(None);
    };
    let mut found = None;
    for pair in query.split(|b| *b == b'&') {
        let (key, value) = split_pair(pair);
        if *percent_decode(key)? == *name.as_bytes() {
            if found.is_some() {
                return Err(Reason::BadRequest);
            }
            found = Some(percent_decode(value)?);
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

/// The `:path` with parameter `name` cut out of its query.
fn without_query_param(path: &[u8], name: &str) -> Vec<u8> {
    let Some(q) = path.iter().position(|b| *b == b'?') else {
        return path.to_vec();
    };
    let (base, rest) = path.split_at(q);
    let rest = rest.get(1..).unwrap_or(&[]);
    let (query, fragment) = match rest.iter().position(|b| *b == b'#') {
        Some(i) => rest.split_at(i),
        None => (rest, &[][..]),
    };
    let mut out = Vec::with_capacity(path.len());
    out.extend_from_slice(base);
    let mut first = true;
    for pair in query.split(|b| *b == b'&') {
        let (key, _) = split_pair(pair);
        if percent_decode(key).is_ok_and(|k| *k == *name.as_bytes()) {
            continue;
        }
        out.push(if first { b'?' } else { b'&' });
        out.extend_from_slice(pair);
        first = false;
    }
    out.extend_from_slice(fragment);
    out
}

/// The pairs of a `cookie` header (RFC 6265 §5.4): `name=value; name=value`.
fn cookie_pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|b| *b == b';').map(|pair| {
        let pair = trim(pair);
        match pair.iter().position(|b| *b == b'=') {
            Some(i) => (
                trim(pair.get(..i).unwrap_or(&[])),
                trim(pair.get(i + 1..).unwrap_or(&[])),
            ),
            None => (pair, &[][..]),
        }
    })
}

/// The value of cookie `name`; a cookie sent twice is a bad request.
fn cookie<'h>(header: Option<&'h [u8]>, name: &str) -> Result<Option<&'h [u8]>, Reason> {
    let Some(header) = header else {
        return Ok(None);
    };
    let mut found = None;
    for (key, value) in cookie_pairs(header) {
        if key == name.as_bytes() {
            if found.is_some() {
                return Err(Reason::BadRequest);
            }
            // RFC 6265 allows a value in double quotes.
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            found = Some(value);
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

/// The `cookie` header without cookie `name`; `None` when nothing is left.
fn without_cookie(header: &[u8], name: &str) -> Option<Vec<u8>> {
    let kept: Vec<&[u8]> = header
        .split(|b| *b == b';')
        .map(trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let key = pair
                .iter()
                .position(|b| *b == b'=')
                .map_or(*pair, |i| pair.get(..i).unwrap_or(&[]));
            trim(key) != name.as_bytes()
        })
        .collect();
    // Bytes as they came: other cookies pass through untouched.
    (!kept.is_empty()).then(|| kept.join(&b"; "[..]))
}

impl Config {
    /// The request headers `decide` may read, besides the pseudo-headers:
    /// token source headers, `cookie` when a cookie is a source, and the
    /// claim headers (to strip spoofed ones). The adapter fetches exactly
    /// these, one host call each.
    pub fn header_names_read(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let sources = self.token_sources.iter().filter_map(|s| match s {
            TokenSource::Header { name, .. } => Some(name.as_str()),
            TokenSource::Cookie(_) => Some("cookie"),
            TokenSource::Query(_) => None,
        });
        let claims = self.claims_to_headers.iter().map(|(_, h)| h.as_str());
        for name in sources.chain(claims) {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        names
    }
}
