//! The decision: one request in, one [`Verdict`] out.
//!
//! `decide` runs the checks of the README's "Decisions and responses" in
//! their order and stops at the first that fails: rule (path, method, host,
//! under every reading an upstream may give them) → token present → single
//! token → TLS → format → key → signature → binding → required claims → time
//! → lifetime → issuer → audience → revocation → token type → scopes and
//! roles. It also computes what the adapter must change before the request
//! goes upstream (token removal, claim headers, forged headers stripped). It
//! performs no I/O: the adapter hands it the request, the connection facts
//! it asks for, the clock, and the revocation list in force.

use std::borrow::Cow;

use crate::config::{Config, OnUnavailable, TokenSource};
use crate::policy::{self, Action, Rule};
use crate::refusal::{refusal_response, Reason, Reply};
use crate::revocation::{Snapshot, TokenRef};
use crate::token::{self, Binding, ClaimValue, TokenType, Verified, VerifyCache};
use crate::wire::{self, cookie_pairs, percent_decode, query_pairs, query_range};

/// The parts of a request the gate reads.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The raw `:path`, query included.
    pub path: &'a [u8],
    pub authority: &'a [u8],
    /// The request's headers as Envoy holds them (names lower-case), every
    /// line of a repeated header on its own; pseudo-headers are ignored.
    pub headers: &'a [(String, Vec<u8>)],
}

impl<'a> Request<'a> {
    /// A request from a whole header map as the host hands it over, with
    /// `:method`, `:path` and `:authority` picked out. A missing or
    /// non-UTF-8 method reads as empty (no rule names it).
    pub fn from_map(headers: &'a [(String, Vec<u8>)]) -> Request<'a> {
        let pseudo = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map_or(&[][..], |(_, v)| v.as_slice())
        };
        Request {
            method: std::str::from_utf8(pseudo(":method")).unwrap_or(""),
            path: pseudo(":path"),
            authority: pseudo(":authority"),
            headers,
        }
    }

    /// Every line of header `name`.
    fn lines<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The one line of header `name`; several lines are a bad request.
    fn single(&self, name: &str) -> Result<Option<&'a [u8]>, Reason> {
        let mut lines = self.lines(name);
        match (lines.next(), lines.next()) {
            (_, Some(_)) => Err(Reason::BadRequest),
            (line, None) => Ok(line),
        }
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
    /// Unix seconds from which the list's age counts: its signed
    /// `generated_at` for a signed list, the service's last successful fetch
    /// (200 or 304) for an unsigned one.
    pub fresh_at: Option<u64>,
    /// A list was received but the latest could not be read: the list is
    /// unavailable whatever `on_unavailable` says (a fault never
    /// un-revokes).
    pub lost: bool,
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
    /// Headers to remove before forwarding (forged claim headers and their
    /// look-alikes, the token).
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
    pub fn response(&self, realm: &str) -> Option<Reply> {
        self.decision
            .reason()
            .map(|r| refusal_response(r, realm, &self.required_scopes))
    }

    /// The changes to make to the request before it goes upstream, in
    /// order: removals (forged headers, the token), then the verified claim
    /// headers, then a new `:path` or `cookie` when the token was cut out of
    /// them. Empty for a refusal.
    pub fn edits(&self) -> Vec<Edit<'_>> {
        if self.decision.reason().is_some() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(self.remove_headers.len() + self.set_headers.len() + 2);
        out.extend(self.remove_headers.iter().map(|n| Edit::Remove(n)));
        out.extend(
            self.set_headers
                .iter()
                .map(|(n, v)| Edit::Set(n, v.as_bytes())),
        );
        if let Some(path) = &self.new_path {
            out.push(Edit::Set(":path", path));
        }
        match &self.new_cookie {
            Some(Some(cookie)) => out.push(Edit::Set("cookie", cookie)),
            Some(None) => out.push(Edit::Remove("cookie")),
            None => {}
        }
        out
    }

    /// The access-log record, set as the one filter state key
    /// [`FILTER_STATE_KEY`]: a compact JSON object
    /// `{"decision", "reason", "sub", "jti", "kid"}` without the members
    /// that do not apply (`reason` only on a refusal; `sub`, `jti`, `kid`
    /// only once the MAC held).
    pub fn log_record(&self) -> String {
        let mut record = serde_json::Map::new();
        record.insert("decision".into(), self.decision.as_str().into());
        if let Some(reason) = self.decision.reason() {
            record.insert("reason".into(), reason.as_str().into());
        }
        for (name, value) in [("sub", &self.sub), ("jti", &self.jti), ("kid", &self.kid)] {
            if let Some(value) = value {
                record.insert(name.into(), value.as_str().into());
            }
        }
        serde_json::Value::Object(record).to_string()
    }

    fn remove(&mut self, name: &str) {
        if !self.remove_headers.iter().any(|n| n == name) {
            self.remove_headers.push(name.to_owned());
        }
    }
}

/// The filter state key of the access-log record: Envoy shows it as
/// `%FILTER_STATE(wasm.tokengate:PLAIN)%`.
pub const FILTER_STATE_KEY: &str = "tokengate";

/// One change to a request header before the request goes upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit<'v> {
    /// Remove every line of this header.
    Remove(&'v str),
    /// Replace every line of this header (or `:path`) with this value.
    Set(&'v str, &'v [u8]),
}

/// Headers that clients use to ask frameworks for another method
/// (Express's `method-override`, Spring, Rails, ASP.NET).
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

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
        let rule = self.route(req, &path)?.ok_or(Reason::NoRule)?;
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
        v.required_scopes.clone_from(scopes);
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

    /// The rule that decides the request, after reading its path, method
    /// and host every way a common upstream may read them: when two readings
    /// fall under rules with different outcomes, the request is a bad
    /// request (see `policy::select`). So is a path an upstream may read as
    /// the refresh path, which must never be forwarded.
    fn route(&self, req: &Request<'_>, path: &str) -> Result<Option<&Rule>, Reason> {
        let readings = policy::path_readings(path);
        if let Some(refresh) = &self.refresh {
            if readings.contains(&refresh.path) {
                return Err(Reason::BadRequest);
            }
        }
        let mut paths: Vec<&str> = Vec::with_capacity(1 + readings.len());
        paths.push(path);
        paths.extend(readings.iter().map(String::as_str));

        let mut method_readings: Vec<String> = Vec::new();
        if self.rules_name_methods {
            for name in METHOD_OVERRIDES {
                for line in req.lines(name) {
                    let text = std::str::from_utf8(wire::trim(line))
                        .map_err(|_| Reason::BadRequest)?
                        .to_ascii_uppercase();
                    if text != req.method && !method_readings.contains(&text) {
                        method_readings.push(text);
                    }
                }
            }
        }
        let mut methods: Vec<&str> = Vec::with_capacity(1 + method_readings.len());
        methods.push(req.method);
        methods.extend(method_readings.iter().map(String::as_str));

        let host_readings = if self.rules_name_hosts {
            self.host_readings(req)?
        } else {
            vec![String::new()]
        };
        let hosts: Vec<&str> = host_readings.iter().map(String::as_str).collect();

        policy::select(&self.rules, &paths, &methods, &hosts).map_err(|_| Reason::BadRequest)
    }

    /// The request's host, and every other host an upstream may take for
    /// it: an HTTP/2 `host` header beside `:authority`, `x-forwarded-host`
    /// (Express with `trust proxy`, Spring's forwarded-header filter), and
    /// `forwarded`'s `host=`. Each must be a host; the first is the
    /// `:authority`.
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
            match name.as_str() {
                "host" => add(wire::trim(value))?,
                "x-forwarded-host" => {
                    for part in value.split(|b| *b == b',') {
                        add(wire::trim(part))?;
                    }
                }
                "forwarded" => {
                    for param in value.split(|b| *b == b',' || *b == b';') {
                        let (key, val) = wire::split_pair(wire::trim(param));
                        if key.eq_ignore_ascii_case(b"host") {
                            let val = wire::trim(val);
                            let val = val
                                .strip_prefix(b"\"")
                                .and_then(|v| v.strip_suffix(b"\""))
                                .unwrap_or(val);
                            add(val)?;
                        }
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

    /// Marks for removal every claim header a client sent, and every header
    /// an upstream may read as a claim header or a token header
    /// (`x_auth_subject` for `x-auth-subject`, `x_api_key` for `x-api-key`),
    /// so that only what the gate verified and set reaches the upstream.
    fn strip_forged_headers(&self, req: &Request<'_>, v: &mut Verdict) {
        for (name, _) in req.headers {
            if name.starts_with(':') {
                continue;
            }
            let claim_header = self
                .claims_to_headers
                .iter()
                .any(|(_, h)| wire::same_header_name(h.as_bytes(), name.as_bytes()));
            let token_lookalike = self.token_sources.iter().any(|s| match s {
                TokenSource::Header { name: h, .. } => {
                    h != name && wire::same_header_name(h.as_bytes(), name.as_bytes())
                }
                _ => false,
            });
            if claim_header || token_lookalike {
                v.remove(name);
            }
        }
    }

    /// Removes every token source from the request: the headers, every
    /// occurrence of the query parameter, every cookie of that name.
    fn strip_all_tokens(&self, req: &Request<'_>, v: &mut Verdict) -> Result<(), Reason> {
        for source in &self.token_sources {
            match source {
                TokenSource::Header { name, scheme } => {
                    let holds_token = req.lines(name).any(|value| match scheme {
                        // A value in another scheme (Basic) is not a token.
                        Some(scheme) => value
                            .split(|b| *b == b',')
                            .any(|part| strip_scheme(part, scheme).is_some()),
                        None => true,
                    });
                    if holds_token {
                        v.remove(name);
                    }
                }
                TokenSource::Query(param) => {
                    let path = v.new_path.as_deref().unwrap_or(req.path);
                    if let Some(cut) = without_query_param(path, param) {
                        v.new_path = Some(cut);
                    }
                }
                TokenSource::Cookie(name) => {
                    if let Some(kept) = without_cookie(req, name) {
                        v.new_cookie = Some(kept);
                    }
                }
            }
        }
        Ok(())
    }

    /// Finds the request's token in the configured sources. More than one
    /// token, a repeated header, parameter or cookie, or a comma in a token
    /// header is a bad request. Records the edits that remove the token.
    fn find_token<'r>(
        &self,
        req: &Request<'r>,
        v: &mut Verdict,
    ) -> Result<Option<Cow<'r, [u8]>>, Reason> {
        let mut found: Option<(&TokenSource, Cow<'r, [u8]>)> = None;
        for source in &self.token_sources {
            let token = match source {
                TokenSource::Header { name, scheme } => match req.single(name)? {
                    None => None,
                    Some(value) if value.contains(&b',') => return Err(Reason::BadRequest),
                    Some(value) => match scheme {
                        Some(scheme) => strip_scheme(value, scheme),
                        None => Some(wire::trim(value)).filter(|t| !t.is_empty()),
                    }
                    .map(Cow::Borrowed),
                },
                TokenSource::Query(param) => query_param(req.path, param)?,
                TokenSource::Cookie(name) => cookie(req, name)?.map(Cow::Borrowed),
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
                TokenSource::Header { name, .. } => v.remove(name),
                TokenSource::Query(param) => v.new_path = without_query_param(req.path, param),
                TokenSource::Cookie(name) => v.new_cookie = without_cookie(req, name),
            }
        }
        Ok(Some(token))
    }
}

/// `Bearer abc` → `abc`; a value that does not open with the scheme and a
/// space yields no token.
fn strip_scheme<'v>(value: &'v [u8], scheme: &str) -> Option<&'v [u8]> {
    let value = wire::trim(value);
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
    Some(wire::trim(rest))
}

/// Whether a query or cookie name, decoded, may be read as `name` by an
/// upstream (see `wire::same_param_name`).
fn names_param(raw_key: &[u8], name: &str) -> Result<bool, Reason> {
    let key = percent_decode(raw_key).map_err(|_| Reason::BadRequest)?;
    Ok(wire::same_param_name(&key, name.as_bytes()))
}

/// The value of query parameter `name`, decoded. A parameter given twice
/// (under any name an upstream reads as `name`, `&` or `;` separated) is a
/// bad request; an empty value yields no token.
fn query_param<'p>(path: &'p [u8], name: &str) -> Result<Option<Cow<'p, [u8]>>, Reason> {
    let Some(query) = query_range(path).and_then(|r| path.get(r)) else {
        return Ok(None);
    };
    let mut found = None;
    for pair in query_pairs(query) {
        if names_param(pair.key, name)? {
            if found.is_some() {
                return Err(Reason::BadRequest);
            }
            found = Some(percent_decode(pair.value).map_err(|_| Reason::BadRequest)?);
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

/// The `:path` with every parameter an upstream may read as `name` cut out
/// of its query, the other bytes kept as they came; `None` when there is
/// nothing to cut.
fn without_query_param(path: &[u8], name: &str) -> Option<Vec<u8>> {
    let range = query_range(path)?;
    let query = path.get(range.clone())?;
    let cut: Vec<(usize, usize)> = query_pairs(query)
        .filter(|p| names_param(p.key, name).unwrap_or(true))
        .map(|p| (p.start, p.end))
        .collect();
    if cut.is_empty() {
        return None;
    }
    let mut kept_query: Vec<u8> = Vec::with_capacity(query.len());
    let mut at = 0;
    for (start, end) in cut {
        kept_query.extend_from_slice(query.get(at..start).unwrap_or_default());
        at = end;
    }
    kept_query.extend_from_slice(query.get(at..).unwrap_or_default());
    // Separators left at the ends or doubled by the cut are dropped; the
    // other pairs keep their bytes and their separators.
    let mut cleaned: Vec<u8> = Vec::with_capacity(kept_query.len());
    for piece in kept_query.split(|b| *b == b'&' || *b == b';') {
        let sep_at = cleaned.len();
        if piece.is_empty() {
            continue;
        }
        if sep_at > 0 {
            // The separator that stood before this piece in `kept_query`.
            let offset = piece.as_ptr() as usize - kept_query.as_ptr() as usize;
            let sep = offset
                .checked_sub(1)
                .and_then(|i| kept_query.get(i))
                .copied()
                .unwrap_or(b'&');
            cleaned.push(sep);
        }
        cleaned.extend_from_slice(piece);
    }
    let mut out = Vec::with_capacity(path.len());
    out.extend_from_slice(
        path.get(..range.start.saturating_sub(1))
            .unwrap_or_default(),
    );
    if !cleaned.is_empty() {
        out.push(b'?');
        out.extend_from_slice(&cleaned);
    }
    out.extend_from_slice(path.get(range.end..).unwrap_or_default());
    Some(out)
}

/// The value of cookie `name`, over every `cookie` line (HTTP/2 sends one
/// per cookie); a cookie sent twice, under any name an upstream reads as
/// `name`, is a bad request.
fn cookie<'h>(req: &Request<'h>, name: &str) -> Result<Option<&'h [u8]>, Reason> {
    let mut found = None;
    for line in req.lines("cookie") {
        for (key, value) in cookie_pairs(line) {
            if names_param(key, name)? {
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
    }
    Ok(found.filter(|v| !v.is_empty()))
}

/// The `cookie` header without cookie `name` (and its look-alikes), every
/// line joined into one: `None` when nothing changes, `Some(None)` when
/// nothing is left.
fn without_cookie(req: &Request<'_>, name: &str) -> Option<Option<Vec<u8>>> {
    let mut removed = false;
    let mut kept: Vec<&[u8]> = Vec::new();
    for line in req.lines("cookie") {
        for pair in line.split(|b| *b == b';').map(wire::trim) {
            if pair.is_empty() {
                continue;
            }
            let key = wire::trim(wire::split_pair(pair).0);
            if names_param(key, name).unwrap_or(true) {
                removed = true;
            } else {
                kept.push(pair);
            }
        }
    }
    // Bytes as they came: other cookies pass through untouched.
    removed.then(|| (!kept.is_empty()).then(|| kept.join(&b"; "[..])))
}
