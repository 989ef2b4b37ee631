//! The gate's answer: the decision, the edits that go with it, the local
//! reply of a refusal, and the access-log record.

use crate::config::Config;
use crate::policy::Action;
use crate::refusal::{refusal_response, Reason, Reply};

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
    /// The index of the rule that decided, once one did (its scopes go in
    /// an `insufficient_scope` challenge).
    pub rule: Option<usize>,
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
            rule: None,
        }
    }

    /// The local reply for a refusal; `None` when the request goes on.
    /// (The filter uses [`Replies`], built once, for the same answers.)
    pub fn response(&self, config: &Config) -> Option<Reply> {
        let reason = self.decision.reason()?;
        Some(refusal_response(
            reason,
            config.realm(),
            self.required_scopes(config),
        ))
    }

    /// The scopes the deciding rule requires.
    pub fn required_scopes<'c>(&self, config: &'c Config) -> &'c [String] {
        match self
            .rule
            .and_then(|i| config.rules().get(i))
            .map(|r| &r.action)
        {
            Some(Action::Require { scopes, .. }) => scopes,
            _ => &[],
        }
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
    pub fn log_record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.extend_from_slice(b"{\"decision\":\"");
        out.extend_from_slice(self.decision.as_str().as_bytes());
        out.push(b'"');
        if let Some(reason) = self.decision.reason() {
            out.extend_from_slice(b",\"reason\":\"");
            out.extend_from_slice(reason.as_str().as_bytes());
            out.push(b'"');
        }
        for (name, value) in [("sub", &self.sub), ("jti", &self.jti), ("kid", &self.kid)] {
            if let Some(value) = value {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":");
                // Escaped as JSON: a verified value holds no control
                // character, but may hold `"` or `\`.
                if serde_json::to_writer(&mut out, value).is_err() {
                    out.extend_from_slice(b"null");
                }
            }
        }
        out.push(b'}');
        out
    }

    /// The request's header map after [`Verdict::edits`], for one call
    /// that replaces the whole map: every line kept in order but those
    /// removed or replaced, then the set values.
    pub fn edited_map<'h>(&'h self, headers: &'h [(String, Vec<u8>)]) -> Vec<(&'h str, &'h [u8])> {
        let edits = self.edits();
        let touched = |name: &str| {
            edits.iter().any(|e| match e {
                Edit::Remove(n) | Edit::Set(n, _) => *n == name,
            })
        };
        let mut out: Vec<(&str, &[u8])> = Vec::with_capacity(headers.len() + edits.len());
        out.extend(
            headers
                .iter()
                .filter(|(n, _)| !touched(n))
                .map(|(n, v)| (n.as_str(), v.as_slice())),
        );
        for edit in edits {
            if let Edit::Set(name, value) = edit {
                out.push((name, value));
            }
        }
        out
    }

    pub(super) fn remove(&mut self, name: &str) {
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

/// Every refusal's reply, rendered once from the configuration: the
/// bodies and `www-authenticate` values never change per request, so the
/// filter looks them up instead of formatting them.
#[derive(Debug)]
pub struct Replies {
    /// By [`Reason::index`].
    by_reason: Vec<Reply>,
    /// `insufficient_scope` for each rule that lists scopes (its challenge
    /// names them); `None` for the others.
    insufficient_scope_by_rule: Vec<Option<Reply>>,
}

impl Replies {
    pub fn new(config: &Config) -> Replies {
        Replies {
            by_reason: Reason::ALL
                .iter()
                .map(|r| refusal_response(*r, config.realm(), &[]))
                .collect(),
            insufficient_scope_by_rule: config
                .rules()
                .iter()
                .map(|rule| match &rule.action {
                    Action::Require { scopes, .. } if !scopes.is_empty() => Some(refusal_response(
                        Reason::InsufficientScope,
                        config.realm(),
                        scopes,
                    )),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The reply of a refused verdict; `None` when the request goes on.
    pub fn for_verdict(&self, verdict: &Verdict) -> Option<&Reply> {
        let reason = verdict.decision.reason()?;
        if reason == Reason::InsufficientScope {
            if let Some(reply) = verdict
                .rule
                .and_then(|i| self.insufficient_scope_by_rule.get(i))
                .and_then(Option::as_ref)
            {
                return Some(reply);
            }
        }
        self.for_reason(reason)
    }

    /// The reply of a refusal for `reason` (no scopes named).
    pub fn for_reason(&self, reason: Reason) -> Option<&Reply> {
        self.by_reason.get(reason.index())
    }
}
