//! The gate's answer: the decision, the edits that go with it, the local
//! reply of a refusal, and the access-log record.

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
