//! Where tokens hide in a request, and how they (and forged claim headers)
//! are cut out before it goes upstream: headers, query parameters, cookies,
//! under every name an upstream framework may read as theirs.

use std::borrow::Cow;

use super::{Request, Verdict};
use crate::config::{Config, TokenSource};
use crate::refusal::Reason;
use crate::wire::{self, cookie_pairs, percent_decode, query_pairs, query_range};

impl Config {
    /// Marks for removal every claim header a client sent, and every header
    /// an upstream may read as a claim header or a token header
    /// (`x_auth_subject` for `x-auth-subject`, `x_api_key` for `x-api-key`),
    /// so that only what the gate verified and set reaches the upstream.
    pub(super) fn strip_forged_headers(&self, req: &Request<'_>, v: &mut Verdict) {
        for name in self.forged_names(req.headers, false) {
            v.remove(name);
        }
    }

    /// The names in `headers` that must not reach the upstream: claim
    /// headers and every spelling an upstream reads as one, spellings of a
    /// token header other than its own, and with `token_headers` (request
    /// trailers, where no token is ever looked for) the token headers too.
    pub fn forged_names<'h>(
        &self,
        headers: &'h [(String, Vec<u8>)],
        token_headers: bool,
    ) -> Vec<&'h str> {
        let mut out: Vec<&str> = Vec::new();
        for (name, _) in headers {
            if name.starts_with(':') || out.contains(&name.as_str()) {
                continue;
            }
            let claim_header = self
                .claims_to_headers
                .iter()
                .any(|(_, h)| wire::same_header_name(h.as_bytes(), name.as_bytes()));
            let token_header = self.token_sources.iter().any(|s| match s {
                TokenSource::Header { name: h, .. } => {
                    (token_headers || h != name)
                        && wire::same_header_name(h.as_bytes(), name.as_bytes())
                }
                _ => false,
            });
            if claim_header || token_header {
                out.push(name);
            }
        }
        out
    }

    /// Removes every token source from the request: the headers, every
    /// occurrence of the query parameter, every cookie of that name.
    pub(super) fn strip_all_tokens(
        &self,
        req: &Request<'_>,
        v: &mut Verdict,
    ) -> Result<(), Reason> {
        for source in &self.token_sources {
            match source {
                TokenSource::Header { name, scheme } => {
                    let holds_token = req.lines(name).any(|value| match scheme {
                        // A value in another scheme (Basic) is not a token.
                        Some(scheme) => {
                            wire::holds_jws(value)
                                || value
                                    .split(|b| *b == b',')
                                    .any(|part| !matches!(strip_scheme(part, scheme), Ok(None)))
                        }
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
    pub(super) fn find_token<'r>(
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
                        Some(scheme) => match strip_scheme(value, scheme)? {
                            // Another scheme (`Basic …`) is no token, unless
                            // it carries one an upstream may read (`JWT …`,
                            // `Token …`, a bare token): never forwarded
                            // unchecked.
                            None if wire::holds_jws(value) => return Err(Reason::BadRequest),
                            other => other,
                        },
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

/// `Bearer abc` → `abc`; a value that does not open with the scheme
/// (`Basic …`) yields no token. A value that opens with the scheme but not
/// with the scheme, white space and a token (`Bearer:abc`, `Bearerabc`) is a
/// bad request: an upstream that cuts the scheme off by length, or splits on
/// any separator, would read a token there that the gate never checked.
fn strip_scheme<'v>(value: &'v [u8], scheme: &str) -> Result<Option<&'v [u8]>, Reason> {
    let value = wire::trim(value);
    let Some(head) = value.get(..scheme.len()) else {
        return Ok(None);
    };
    if !head.eq_ignore_ascii_case(scheme.as_bytes()) {
        return Ok(None);
    }
    let rest = value.get(scheme.len()..).unwrap_or_default();
    match rest.first() {
        // The scheme alone: a token header with an empty token.
        None => Ok(Some(rest)),
        Some(b' ' | b'\t') => Ok(Some(wire::trim(rest))),
        Some(_) => Err(Reason::BadRequest),
    }
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
/// nothing is left. Only the token's own pair and the separator before it
/// are cut: every other byte, quoted values and `,` included, goes on as
/// the client sent it.
fn without_cookie(req: &Request<'_>, name: &str) -> Option<Option<Vec<u8>>> {
    let mut removed = false;
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for line in req.lines("cookie") {
        let mut out: Vec<u8> = Vec::with_capacity(line.len());
        let mut start: usize = 0;
        for piece in line.split(|b| *b == b';' || *b == b',') {
            // The piece with the separator before it, as sent.
            let sent = line.get(start.saturating_sub(1)..start + piece.len());
            start += piece.len() + 1;
            let pair = wire::trim(piece);
            if pair.is_empty() {
                continue;
            }
            if names_param(wire::trim(wire::split_pair(pair).0), name).unwrap_or(true) {
                removed = true;
            } else if out.is_empty() {
                out.extend_from_slice(pair);
            } else {
                out.extend_from_slice(sent.unwrap_or_default());
            }
        }
        if !out.is_empty() {
            kept.push(out);
        }
    }
    removed.then(|| (!kept.is_empty()).then(|| kept.join(&b"; "[..])))
}
