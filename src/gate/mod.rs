//! The decision: one request in, one [`Verdict`] out.
//!
//! `decide` runs the checks of docs/responses.md ("The order of the checks") in their order and
//! stops at the first that fails: rule (path, method, host, under every
//! reading an upstream may give them) → token present → single token → TLS
//! → format → key → signature → binding → token type → required claims →
//! time → lifetime → issuer → audience → revocation → scopes and roles. It also computes what the adapter must change before the request
//! goes upstream (token removal, claim headers, forged headers stripped). It
//! performs no I/O: the adapter hands it the request, the connection facts
//! it asks for, the clock, and the revocation list in force.

mod request;
mod sources;
mod verdict;

pub use request::{Connection, FixedConnection, Request, Revocations};
pub use verdict::{Decision, Edit, Replies, Verdict, FILTER_STATE_KEY};

use crate::config::{Config, OnUnavailable};
use crate::policy::{self, Action, Rule};
use crate::refusal::Reason;
use crate::revocation::TokenRef;
use crate::token::{self, Binding, ClaimValue, TokenType, Verified, VerifyCache};
use crate::wire;

/// Headers that clients use to ask frameworks for another method
/// (Express's `method-override`, Spring, Rails, ASP.NET).
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The query parameter frameworks read as the method (Express's
/// method-override in its documented setup, Symfony and Laravel).
const METHOD_PARAM: &str = "_method";

/// The other methods an upstream may run the request as: the method sent,
/// upper-cased (HTTP/2 lets a client send `delete`, which Express and
/// Django's views take for `DELETE`), every value of a method-override
/// header (under any spelling an upstream reads as it, each comma-separated
/// value: Express takes the first) and of a `_method` query parameter,
/// upper-cased, each different from the method sent.
fn method_readings(req: &Request<'_>) -> Result<Vec<String>, Reason> {
    let mut out: Vec<String> = Vec::new();
    if req.method.bytes().any(|b| b.is_ascii_lowercase()) {
        out.push(req.method.to_ascii_uppercase());
    }
    let mut values = 0usize;
    let mut add = |raw: &[u8]| -> Result<(), Reason> {
        // Bounded: a request may not make the gate compare thousands of
        // values (each list is short; the whole check stays linear).
        values += 1;
        if values > MAX_METHOD_VALUES {
            return Err(Reason::BadRequest);
        }
        let text = std::str::from_utf8(wire::trim(raw))
            .map_err(|_| Reason::BadRequest)?
            .to_ascii_uppercase();
        if text != req.method && !out.contains(&text) {
            out.push(text);
        }
        Ok(())
    };
    for (name, value) in req.headers {
        if METHOD_OVERRIDES
            .iter()
            .any(|m| wire::same_header_name(m.as_bytes(), name.as_bytes()))
        {
            for part in value.split(|b| *b == b',') {
                add(part)?;
            }
        }
    }
    if let Some(query) = wire::query_range(req.path).and_then(|r| req.path.get(r)) {
        for pair in wire::query_pairs(query) {
            let key = wire::percent_decode(pair.key).map_err(|_| Reason::BadRequest)?;
            if wire::same_param_name(&key, METHOD_PARAM.as_bytes()) {
                add(&wire::percent_decode(pair.value).map_err(|_| Reason::BadRequest)?)?;
            }
        }
    }
    Ok(out)
}

/// Headers naming the host a proxy in front saw, read by some upstream as
/// the request's host: `X-Forwarded-Host` (Express with `trust proxy`,
/// Spring, Rails, Django), `X-Original-Host` (IIS ARR, Azure), `X-Host`.
/// Each may hold a comma-separated list.
const OTHER_HOST_HEADERS: [&str; 3] = ["x-forwarded-host", "x-original-host", "x-host"];

/// At most this many method-override values (all headers and `_method`
/// parameters together); more is a bad request.
const MAX_METHOD_VALUES: usize = 8;

/// At most this many readings of the path in all (an override counts its own); more is a bad request.
const MAX_PATH_READINGS: usize = 32;

/// Headers that old Symfony, Zend and IIS rewrites read as the request's
/// path (`X-Original-URL: /admin`).
const PATH_OVERRIDES: [&str; 2] = ["x-original-url", "x-rewrite-url"];

/// Headers that gunicorn (`forwarder_headers`) and other CGI-style servers
/// take for the request's `SCRIPT_NAME` and `PATH_INFO`, moving the path
/// the application routes. No client has a reason to send them: a request
/// that does is a bad request.
const CGI_PATH_HEADERS: [&str; 2] = ["script-name", "path-info"];

/// At most this many hosts in one `Forwarded` value (both readings
/// together); more is a bad request, and the scan stays linear.
const MAX_FORWARDED_HOSTS: usize = 16;

/// Every host a `Forwarded` value names, as RFC 7239 reads it and as
/// Spring does (an unanchored, case-insensitive search for `host=`, which
/// also finds `xhost=…` and `host=` inside a quoted value). A value that is
/// not strictly RFC 7239 (white space around `=`, a parameter without a
/// value, an unclosed quote) is a bad request: Rack strips such spaces and
/// reads a host the gate would not.
fn forwarded_hosts(value: &[u8]) -> Result<Vec<&[u8]>, Reason> {
    let mut out: Vec<&[u8]> = Vec::new();
    // RFC 7239: elements by `,`, pairs by `;`, each `token=token` or
    // `token="quoted"`, optional white space only around the separators.
    let mut rest = value;
    loop {
        rest = wire::trim(rest);
        let key_end = rest
            .iter()
            .position(|b| !is_tchar(*b))
            .unwrap_or(rest.len());
        let (key, after) = rest.split_at(key_end);
        if key.is_empty() || after.first() != Some(&b'=') {
            return Err(Reason::BadRequest);
        }
        let after = after.get(1..).unwrap_or_default();
        let (val, after) = if after.first() == Some(&b'"') {
            let body = after.get(1..).unwrap_or_default();
            let mut i = 0;
            loop {
                match body.get(i) {
                    None => return Err(Reason::BadRequest),
                    Some(b'\\') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            (
                body.get(..i).unwrap_or_default(),
                body.get(i + 1..).unwrap_or_default(),
            )
        } else {
            let end = after
                .iter()
                .position(|b| !is_tchar(*b))
                .unwrap_or(after.len());
            let (val, after) = after.split_at(end);
            if val.is_empty() {
                return Err(Reason::BadRequest);
            }
            (val, after)
        };
        if key.eq_ignore_ascii_case(b"host") {
            if out.len() >= MAX_FORWARDED_HOSTS {
                return Err(Reason::BadRequest);
            }
            out.push(val);
        }
        let after = wire::trim(after);
        match after.split_first() {
            None => break,
            Some((b';' | b',', next)) => rest = next,
            Some(_) => return Err(Reason::BadRequest),
        }
    }
    // Spring's reading: the first `host=` anywhere, case-insensitively, up
    // to `;`, `,` or `"`.
    let lower = value.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower
        .get(from..)
        .and_then(|l| l.windows(5).position(|w| w == b"host="))
    {
        let start = from + at + 5;
        let tail = value.get(start..).unwrap_or_default();
        let tail = tail.strip_prefix(b"\"").unwrap_or(tail);
        let end = tail
            .iter()
            .position(|b| matches!(b, b';' | b',' | b'"'))
            .unwrap_or(tail.len());
        if out.len() >= MAX_FORWARDED_HOSTS {
            return Err(Reason::BadRequest);
        }
        out.push(tail.get(..end).unwrap_or_default());
        from = start;
    }
    Ok(out)
}

/// The path CodeIgniter routes when the request goes to its front
/// controller (a directory it may be installed in: `/`, `/app/`; or a
/// script: `/index.php`, a file under `/cgi-bin/`: `policy::ends_in_script`)
/// with a query that starts with `/`: the query up to the next `?`,
/// normalized like any path. `None` for every other request.
fn query_as_path(raw: &[u8], path: &str) -> Result<Option<String>, Reason> {
    // The query first: the usual request has none that opens with `/`,
    // and is done without reading its path's segments.
    let Some(query) = wire::query_range(raw).and_then(|r| raw.get(r)) else {
        return Ok(None);
    };
    if query.first() != Some(&b'/') {
        return Ok(None);
    }
    // The script as `after_front_controller` reads it in a path: Windows
    // spellings and escapes included (`/index.php.?/admin`,
    // `/index.php%3A%3A%24DATA?/admin`).
    if !(path.ends_with('/') || policy::ends_in_script(path)) {
        return Ok(None);
    }
    let other = policy::normalize_path(query).map_err(|_| Reason::BadRequest)?;
    Ok((other != path).then_some(other))
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// At most this many readings of the host (`:authority`, `host`,
/// `x-forwarded-host`, `forwarded`) are compared; more is a bad request.
const MAX_HOST_READINGS: usize = 8;

impl Config {
    /// Decides a request. `now` is Unix seconds.
    pub fn decide(
        &self,
        req: &Request<'_>,
        conn: &dyn Connection,
        revocations: Revocations<'_>,
        now: u64,
    ) -> Verdict {
        self.decide_with(req, conn, revocations, now, &mut VerifyCache::new(0, 0))
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
        // Forged claim headers go on every request, whatever the outcome.
        self.strip_forged_headers(req, &mut v);
        let decided = self
            .decide_inner(req, conn, revocations, now, cache, &mut v)
            .and_then(|decision| self.same_rule_as_forwarded(req, &v).map(|()| decision));
        match decided {
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
        let rule = self.route(req, &path)?.ok_or(Reason::NoRule)?;
        v.rule = self.rules.iter().position(|r| std::ptr::eq(r, rule));
        let (scopes, roles) = match &rule.action {
            Action::Deny => return Err(Reason::Denied),
            Action::Anonymous => {
                // The token is not checked, but it still never goes
                // upstream: every source is cleared, however many tokens
                // (or repeats) the request holds.
                if !self.forward_token {
                    self.strip_all_tokens(req, v)?;
                }
                return Ok(Decision::Anonymous);
            }
            Action::Require { scopes, roles } => (scopes, roles),
        };
        let token = self.find_token(req, v)?.ok_or(Reason::Missing)?;
        if self.require_tls && !conn.is_tls() {
            return Err(Reason::TlsRequired);
        }
        let token = std::str::from_utf8(&token).map_err(|_| Reason::Malformed)?;
        let verified =
            self.verify_token(token, TokenType::Access, conn, revocations, now, cache, v)?;
        let granted = self.granted_scopes(&verified);
        self.authorize(&verified, &granted, scopes, roles)?;
        self.forward_claims(&verified, &granted, v);
        Ok(Decision::Allow)
    }

    /// When the token was cut out of the query, the request goes upstream
    /// with another `:path`; it must fall under the same rule, under every
    /// reading, as the request decided (cutting `access_token=x&` out of
    /// `/index.php?access_token=x&/admin` leaves CodeIgniter's `?/admin`).
    fn same_rule_as_forwarded(&self, req: &Request<'_>, v: &Verdict) -> Result<(), Reason> {
        let Some(new_path) = &v.new_path else {
            return Ok(());
        };
        let forwarded = Request {
            path: new_path,
            ..*req
        };
        let path = policy::normalize_path_cow(new_path).map_err(|_| Reason::BadRequest)?;
        let rule = self.route(&forwarded, &path)?;
        let index = rule.and_then(|r| self.rules.iter().position(|x| std::ptr::eq(x, r)));
        if index == v.rule {
            Ok(())
        } else {
            Err(Reason::BadRequest)
        }
    }

    /// The rule that decides the request, after reading its path, method
    /// and host every way a common upstream may read them: when two readings
    /// fall under rules with different outcomes, the request is a bad
    /// request (see `policy::select`). So is a path an upstream may read as
    /// the refresh path, which must never be forwarded.
    fn route(&self, req: &Request<'_>, path: &str) -> Result<Option<&Rule>, Reason> {
        let mut readings = policy::path_readings(path);
        // CodeIgniter reads `/index.php?/admin` (and `/?/admin`) as `/admin`.
        if let Some(other) = query_as_path(req.path, path)? {
            readings.extend(policy::path_readings(&other));
            readings.push(other);
        }
        // A path-override header names another path the upstream may serve.
        for (name, value) in req.headers {
            if CGI_PATH_HEADERS
                .iter()
                .any(|h| wire::same_header_name(h.as_bytes(), name.as_bytes()))
            {
                return Err(Reason::BadRequest);
            }
            if PATH_OVERRIDES
                .iter()
                .any(|h| wire::same_header_name(h.as_bytes(), name.as_bytes()))
            {
                let other = policy::normalize_path(value).map_err(|_| Reason::BadRequest)?;
                let more = policy::path_readings(&other);
                if readings.len() + 1 + more.len() > MAX_PATH_READINGS {
                    return Err(Reason::BadRequest);
                }
                readings.push(other);
                readings.extend(more);
            }
        }
        if let Some(refresh) = &self.refresh {
            if readings.contains(&refresh.path) {
                return Err(Reason::BadRequest);
            }
        }
        let method_readings = if self.rules_name_methods {
            method_readings(req)?
        } else {
            Vec::new()
        };
        let host_readings = if self.rules_name_hosts {
            self.host_readings(req)?
        } else {
            Vec::new()
        };
        // The usual request has one reading of each: no list is built.
        if readings.is_empty() && method_readings.is_empty() && host_readings.len() <= 1 {
            let host = host_readings.first().map_or("", String::as_str);
            return Ok(policy::first_match(&self.rules, path, req.method, host));
        }
        let mut paths: Vec<&str> = Vec::with_capacity(1 + readings.len());
        paths.push(path);
        paths.extend(readings.iter().map(String::as_str));
        let mut methods: Vec<&str> = Vec::with_capacity(1 + method_readings.len());
        methods.push(req.method);
        methods.extend(method_readings.iter().map(String::as_str));
        let mut hosts: Vec<&str> = host_readings.iter().map(String::as_str).collect();
        if hosts.is_empty() {
            hosts.push("");
        }
        policy::select(&self.rules, &paths, &methods, &hosts).map_err(|_| Reason::BadRequest)
    }

    /// The request's host, and every other host an upstream may take for
    /// it: an HTTP/2 `host` header beside `:authority`, the headers of
    /// `OTHER_HOST_HEADERS`, and `forwarded`'s `host=`. Each must be a host;
    /// the first is the `:authority`.
    fn host_readings(&self, req: &Request<'_>) -> Result<Vec<String>, Reason> {
        let parse = |raw: &[u8]| policy::parse_authority(raw).map_err(|_| Reason::BadRequest);
        let mut hosts = vec![parse(req.authority)?];
        let mut add = |raw: &[u8]| -> Result<(), Reason> {
            let host = parse(raw)?;
            if !hosts.contains(&host) {
                hosts.push(host);
            }
            if hosts.len() > MAX_HOST_READINGS {
                return Err(Reason::BadRequest);
            }
            Ok(())
        };
        for (name, value) in req.headers {
            // Under any spelling an upstream reads as the header
            // (`x_forwarded_host` is X-Forwarded-Host to WSGI and Rack).
            let folded = if name == "host" {
                "host"
            } else if OTHER_HOST_HEADERS
                .iter()
                .any(|h| wire::same_header_name(name.as_bytes(), h.as_bytes()))
            {
                "x-forwarded-host"
            } else if wire::same_header_name(name.as_bytes(), b"forwarded") {
                "forwarded"
            } else {
                ""
            };
            match folded {
                "host" => add(wire::trim(value))?,
                "x-forwarded-host" => {
                    for part in value.split(|b| *b == b',') {
                        add(wire::trim(part))?;
                    }
                }
                "forwarded" => {
                    for host in forwarded_hosts(value)? {
                        add(host)?;
                    }
                }
                _ => {}
            }
        }
        Ok(hosts)
    }

    /// Every check that makes a token valid, from its form to revocation,
    /// for a token of type `expected` (an access token on a route, a
    /// refresh token at the refresh endpoint). Fills the verdict's verified
    /// log values as soon as the MAC holds.
    #[allow(clippy::too_many_arguments)]
    pub fn verify_token<'k>(
        &'k self,
        token: &str,
        expected: TokenType,
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
        match &claims.cnf {
            None => {}
            Some(Binding::X5tS256(thumb)) => {
                let bound = token::b64url_decode(thumb).ok();
                let presented = conn.peer_certificate_sha256();
                if bound.is_none() || bound.as_deref() != presented.as_ref().map(|d| d.as_slice()) {
                    return Err(Reason::BindingMismatch);
                }
            }
            // A binding that cannot be checked here is never taken for a
            // bearer token.
            Some(Binding::Unsupported) => return Err(Reason::BindingMismatch),
        }
        if verified.token_type() != expected {
            return Err(Reason::WrongTokenType);
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
                .fresh_at
                .is_some_and(|at| now.saturating_sub(at) <= policy.max_stale_s);
            let deny_stale = policy.on_unavailable == OnUnavailable::Deny;
            match revocations.list {
                _ if revocations.lost => return Err(Reason::RevocationUnavailable),
                Some(_) | None if !fresh && deny_stale => {
                    return Err(Reason::RevocationUnavailable)
                }
                // A stale list still applies under `allow`: it only ever
                // revokes, and un-revoking through an outage is what an
                // attacker waiting it out would want.
                Some(list) if list.is_revoked(&token_ref) => return Err(Reason::Revoked),
                _ => {}
            }
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
}
