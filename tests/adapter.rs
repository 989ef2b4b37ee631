//! The real adapter (`tokengate::filter`), run natively against a recording
//! host: what each request costs in host calls, and that the request never
//! goes on when something inside fails or when it is a refresh request,
//! whatever its framing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{json, Value};
use tokengate::filter::host::{Flow, HeaderMap, Host, HostError, LogLevel, MetricKind};
use tokengate::filter::{http::Gate, Root};
use tokengate::keys::{Alg, Key, KeyId};
use tokengate::refusal::Reply;
use tokengate::revocation::{Document, Entry, Snapshot};
use tokengate::shared::{Published, SNAPSHOT_KEY, STATE_KEY};
use tokengate::token::sign;

const NOW: u64 = 1_764_259_200;
const SECRET: [u8; 32] = [0x42; 32];

/// One host call, as the adapter made it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    RequestHeaders,
    SetHeader(String, Option<Vec<u8>>),
    SetHeaders,
    RequestBody,
    Reply(u32),
    Property(String),
    FilterState(String),
    Now,
    Random,
    Increment(String),
    Record(String),
    Log(LogLevel),
    SharedData(String),
    SetSharedData(String),
    Other(&'static str),
}

/// Shared data: each key's value and CAS token.
type SharedData = Rc<RefCell<HashMap<String, (Vec<u8>, u32)>>>;

/// A callout's answer: status, etag, body.
type Response = (String, Option<String>, Vec<u8>);

/// A host that answers from fixed data and records every call.
#[derive(Default)]
struct Recorder {
    config: Vec<u8>,
    root_id: String,
    headers: RefCell<HeaderMap>,
    trailers: RefCell<HeaderMap>,
    body: RefCell<Vec<u8>>,
    now_ms: Cell<u64>,
    /// Shared data: each key's value and CAS token; shared by every host
    /// of one test, as a vm_id's roots share it.
    shared: SharedData,
    /// The answer to the service's next callout: status, etag, body.
    response: RefCell<Option<Response>>,
    metrics: RefCell<Vec<String>>,
    /// Whether Envoy refuses header edits.
    refuse_edits: Cell<bool>,
    /// Envoy refuses edits of this header only.
    refuse_edit_of: RefCell<Option<String>>,
    no_randomness: Cell<bool>,
    calls: RefCell<Vec<Call>>,
    replies: RefCell<Vec<Reply>>,
    filter_state: RefCell<Vec<(String, String)>>,
    logs: RefCell<Vec<(LogLevel, String)>>,
    counts: RefCell<HashMap<String, u64>>,
}

impl Recorder {
    fn filter(config: Value) -> Recorder {
        Recorder {
            config: config.to_string().into_bytes(),
            root_id: "tokengate".into(),
            now_ms: Cell::new(NOW * 1000),
            ..Recorder::default()
        }
    }

    fn call(&self, c: Call) {
        self.calls.borrow_mut().push(c);
    }

    fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.borrow_mut())
    }

    /// The headers of the next request.
    fn load(&self, headers: &[(String, String)]) {
        *self.headers.borrow_mut() = headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect();
    }

    fn count(&self, name: &str) -> u64 {
        self.counts.borrow().get(name).copied().unwrap_or(0)
    }

    fn last_state(&self) -> Value {
        let states = self.filter_state.borrow();
        let (key, value) = states.last().expect("no filter state was set");
        assert_eq!(key, "tokengate");
        serde_json::from_str(value).unwrap()
    }

    fn last_reply(&self) -> Reply {
        self.replies
            .borrow()
            .last()
            .cloned()
            .expect("no reply sent")
    }

    fn header(&self, name: &str) -> Option<Vec<u8>> {
        self.headers
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

impl Host for Recorder {
    fn request_headers(&self) -> Result<HeaderMap, HostError> {
        self.call(Call::RequestHeaders);
        Ok(self.headers.borrow().clone())
    }

    fn set_request_header(&self, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
        self.call(Call::SetHeader(name.into(), value.map(<[u8]>::to_vec)));
        if self.refuse_edits.get() || self.refuse_edit_of.borrow().as_deref() == Some(name) {
            return Err(HostError("BadArgument".into()));
        }
        let mut headers = self.headers.borrow_mut();
        headers.retain(|(n, _)| n != name);
        if let Some(v) = value {
            headers.push((name.into(), v.to_vec()));
        }
        Ok(())
    }

    fn set_request_headers(&self, headers: &[(&str, &[u8])]) -> Result<(), HostError> {
        self.call(Call::SetHeaders);
        if self.refuse_edits.get() {
            return Err(HostError("BadArgument".into()));
        }
        *self.headers.borrow_mut() = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
            .collect();
        Ok(())
    }

    fn request_trailers(&self) -> Result<HeaderMap, HostError> {
        self.call(Call::Other("request_trailers"));
        Ok(self.trailers.borrow().clone())
    }

    fn remove_request_trailer(&self, name: &str) -> Result<(), HostError> {
        self.call(Call::Other("remove_request_trailer"));
        if self.refuse_edits.get() {
            return Err(HostError("BadArgument".into()));
        }
        self.trailers.borrow_mut().retain(|(n, _)| n != name);
        Ok(())
    }

    fn request_body(&self, max: usize) -> Result<Vec<u8>, HostError> {
        self.call(Call::RequestBody);
        let body = self.body.borrow();
        Ok(body[..body.len().min(max)].to_vec())
    }

    fn send_reply(&self, reply: &Reply) -> Result<(), HostError> {
        self.call(Call::Reply(reply.status));
        self.replies.borrow_mut().push(reply.clone());
        Ok(())
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.call(Call::Property(path.join(".")));
        match path {
            ["plugin_root_id"] => Some(self.root_id.clone().into_bytes()),
            _ => None,
        }
    }

    fn set_filter_state(&self, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.call(Call::FilterState(name.into()));
        self.filter_state
            .borrow_mut()
            .push((name.into(), String::from_utf8(value.to_vec()).unwrap()));
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.call(Call::Now);
        self.now_ms.get()
    }

    fn random(&self, buf: &mut [u8]) -> bool {
        self.call(Call::Random);
        buf.fill(7);
        !self.no_randomness.get()
    }

    fn define_metric(&self, _kind: MetricKind, name: &str) -> Option<u32> {
        let mut metrics = self.metrics.borrow_mut();
        metrics.push(name.into());
        Some(metrics.len() as u32 - 1)
    }

    fn increment_metric(&self, id: u32) -> Result<(), HostError> {
        let name = self.metrics.borrow()[id as usize].clone();
        self.call(Call::Increment(name.clone()));
        *self.counts.borrow_mut().entry(name).or_default() += 1;
        Ok(())
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        let name = self.metrics.borrow()[id as usize].clone();
        self.call(Call::Record(name.clone()));
        self.counts.borrow_mut().insert(name, value);
        Ok(())
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.call(Call::Log(level));
        self.logs.borrow_mut().push((level, message.into()));
    }

    fn log_enabled(&self, _level: LogLevel) -> bool {
        false
    }

    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        Some(self.config.clone())
    }

    fn set_tick_period_ms(&self, _ms: u64) -> Result<(), HostError> {
        self.call(Call::Other("set_tick_period"));
        Ok(())
    }

    fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        self.call(Call::SharedData(key.into()));
        self.shared.borrow().get(key).map(|(v, _)| v.clone())
    }

    fn shared_data_cas(&self, key: &str) -> (Option<Vec<u8>>, u32) {
        self.call(Call::SharedData(key.into()));
        match self.shared.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), *cas),
            None => (None, 0),
        }
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
        self.call(Call::SetSharedData(key.into()));
        let mut shared = self.shared.borrow_mut();
        let current = shared.get(key).map_or(0, |(_, c)| *c);
        if cas != 0 && cas != current {
            return Err(HostError("CasMismatch".into()));
        }
        shared.insert(key.into(), (value.to_vec(), current + 1));
        Ok(())
    }

    fn dispatch_http_call(
        &self,
        _cluster: &str,
        _headers: &[(&str, &str)],
        _timeout_ms: u64,
    ) -> Result<u32, HostError> {
        self.call(Call::Other("dispatch_http_call"));
        Ok(1)
    }

    fn http_call_response_header(&self, name: &str) -> Option<Vec<u8>> {
        let response = self.response.borrow();
        let (status, etag, _) = response.as_ref()?;
        match name {
            ":status" => Some(status.clone().into_bytes()),
            "etag" => etag.clone().map(String::into_bytes),
            _ => None,
        }
    }

    fn http_call_response_body(&self, max: usize) -> Option<Vec<u8>> {
        let response = self.response.borrow();
        let (_, _, body) = response.as_ref()?;
        Some(body.get(..max.min(body.len()))?.to_vec())
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn config() -> Value {
    json!({
        "realm": "orders-api",
        "keys": [{"kid": "k1", "alg": "HS256", "secret": b64(&SECRET)}],
        "claims_to_headers": {"sub": "x-auth-subject", "scope": "x-auth-scopes"},
        "roles": {"admin": ["*"]},
        "rules": [
            {"match": {"prefix": "/healthz"}, "anonymous": true},
            {"match": {"prefix": "/orders"}, "scopes": ["orders:read"]},
            {"match": {"prefix": "/"}, "deny": true}
        ],
        "refresh": {"path": "/oauth/token", "kid": "k1"}
    })
}

fn key() -> Key {
    Key::new(KeyId("k1".into()), Alg::Hs256, &SECRET).unwrap()
}

fn token(claims: Value, typ: &str) -> String {
    sign(&claims, &key(), typ)
}

fn access_token() -> String {
    token(
        json!({"sub": "alice", "scope": "orders:read", "exp": NOW + 600, "jti": "t1"}),
        "JWT",
    )
}

fn refresh_token() -> String {
    token(
        json!({"sub": "alice", "scope": "orders:read", "exp": NOW + 600, "jti": "r1"}),
        "rt+jwt",
    )
}

/// A configured root and a request with these headers.
fn start(host: &Recorder, headers: &[(&str, &str)]) -> (Root, Gate) {
    let mut root = Root::default();
    assert!(root.on_configure(host), "{:?}", host.logs.borrow());
    *host.headers.borrow_mut() = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
        .collect();
    let gate = root.new_request().unwrap();
    host.take_calls();
    (root, gate)
}

fn get(path: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h = vec![
        (":method".to_owned(), "GET".to_owned()),
        (":path".to_owned(), path.to_owned()),
        (":authority".to_owned(), "api.example.com".to_owned()),
    ];
    h.extend(
        extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    h
}

fn as_refs(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
}

#[test]
fn an_allowed_request_is_edited_counted_and_logged_in_one_filter_state_key() {
    let host = Recorder::filter(config());
    let bearer = format!("Bearer {}", access_token());
    let h = get(
        "/orders/7",
        &[
            ("authorization", &bearer),
            ("x-auth-subject", "root"),
            ("x_auth_scopes", "*"),
        ],
    );
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, true), Flow::Continue);
    assert!(host.replies.borrow().is_empty());
    // The token and every forged claim header (and its look-alike) are gone;
    // the verified claims are set.
    assert_eq!(host.header("authorization"), None);
    assert_eq!(host.header("x_auth_scopes"), None);
    assert_eq!(
        host.header("x-auth-subject").as_deref(),
        Some(&b"alice"[..])
    );
    assert_eq!(
        host.header("x-auth-scopes").as_deref(),
        Some(&b"orders:read"[..])
    );
    assert_eq!(
        host.last_state(),
        json!({"decision": "allow", "sub": "alice", "jti": "t1", "kid": "k1"})
    );
    assert_eq!(host.count("tokengate.allowed"), 1);
}

#[test]
fn a_refused_request_gets_the_local_reply_and_never_continues() {
    let host = Recorder::filter(config());
    let h = get("/orders/7", &[]);
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, false), Flow::Pause);
    let reply = host.last_reply();
    assert_eq!(reply.status, 401);
    assert_eq!(
        host.last_state(),
        json!({"decision": "deny", "reason": "missing"})
    );
    assert_eq!(host.count("tokengate.denied.missing"), 1);
    // Later callbacks of a refused request never let it go on.
    assert_eq!(gate.on_request_body(&host, 10, false), Flow::Pause);
    assert_eq!(gate.on_request_trailers(&host), Flow::Pause);
}

#[test]
fn an_edit_envoy_refuses_turns_the_request_into_500_internal() {
    // The token, a forged header and the claim headers are edited one by
    // one: if Envoy refuses an edit, the request must not go on as it came.
    let host = Recorder::filter(config());
    host.refuse_edits.set(true);
    let bearer = format!("Bearer {}", access_token());
    let h = get(
        "/orders/7",
        &[("authorization", &bearer), ("x-auth-subject", "root")],
    );
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, true), Flow::Pause);
    let reply = host.last_reply();
    assert_eq!(reply.status, 500);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"], "server_error");
    assert_eq!(body["reason"], "internal");
    assert_eq!(host.last_state()["reason"], "internal");
    assert_eq!(host.count("tokengate.denied.internal"), 1);
    assert_eq!(host.count("tokengate.allowed"), 0);
    assert!(host
        .logs
        .borrow()
        .iter()
        .any(|(l, m)| *l == LogLevel::Error && m.contains("refused")));
    // The forged header is still there: nothing was forwarded.
    assert_eq!(host.header("x-auth-subject").as_deref(), Some(&b"root"[..]));
}

#[test]
fn an_edit_refused_after_others_were_made_still_refuses_the_request() {
    // The forged header and the token are already removed when Envoy
    // refuses to set the verified subject: the request is answered 500,
    // never continued without its claim header.
    let host = Recorder::filter(config());
    *host.refuse_edit_of.borrow_mut() = Some("x-auth-subject".into());
    let bearer = format!("Bearer {}", access_token());
    let h = get("/orders/7", &[("authorization", &bearer)]);
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, true), Flow::Pause);
    assert_eq!(host.last_reply().status, 500);
    assert_eq!(host.header("authorization"), None);
    assert_eq!(host.count("tokengate.denied.internal"), 1);
    assert_eq!(host.count("tokengate.allowed"), 0);
    assert_eq!(gate.on_request_body(&host, 10, true), Flow::Pause);
    assert_eq!(gate.on_request_trailers(&host), Flow::Pause);
}

fn post_refresh(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h = vec![
        (":method".to_owned(), "POST".to_owned()),
        (":path".to_owned(), "/oauth/token".to_owned()),
        (":authority".to_owned(), "api.example.com".to_owned()),
        (
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
    ];
    h.extend(
        extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    h
}

#[test]
fn a_refresh_request_with_trailers_is_answered_never_continued() {
    // The hole: headers paused, body waiting for its end, trailers ending
    // the request, and the SDK's default letting it through.
    let host = Recorder::filter(config());
    let h = post_refresh(&[("x-auth-subject", "root")]);
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, false), Flow::Pause);
    let form = format!("grant_type=refresh_token&refresh_token={}", refresh_token());
    *host.body.borrow_mut() = form.clone().into_bytes();
    assert_eq!(gate.on_request_body(&host, form.len(), false), Flow::Pause);
    assert!(host.replies.borrow().is_empty());
    assert_eq!(gate.on_request_trailers(&host), Flow::Pause);
    let reply = host.last_reply();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("access_token"));
    // A second trailers or body callback changes nothing.
    assert_eq!(gate.on_request_trailers(&host), Flow::Pause);
    assert_eq!(host.replies.borrow().len(), 1);
}

#[test]
fn a_refresh_request_with_trailers_and_no_body_is_answered() {
    let host = Recorder::filter(config());
    let h = post_refresh(&[]);
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, false), Flow::Pause);
    assert_eq!(gate.on_request_trailers(&host), Flow::Pause);
    assert_eq!(host.last_reply().status, 400);
    assert_eq!(host.last_state()["reason"], "bad_request");
}

#[test]
fn a_refresh_request_in_chunks_is_answered_at_its_end() {
    let host = Recorder::filter(config());
    let h = post_refresh(&[]);
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, false), Flow::Pause);
    let form = format!("grant_type=refresh_token&refresh_token={}", refresh_token());
    *host.body.borrow_mut() = form.clone().into_bytes();
    assert_eq!(gate.on_request_body(&host, 10, false), Flow::Pause);
    assert_eq!(gate.on_request_body(&host, form.len(), true), Flow::Pause);
    assert_eq!(host.last_reply().status, 200);
}

#[test]
fn a_refresh_body_over_8_kib_is_refused_as_it_arrives() {
    let host = Recorder::filter(config());
    let h = post_refresh(&[]);
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, false), Flow::Pause);
    assert_eq!(
        gate.on_request_body(&host, 8 * 1024 + 1, false),
        Flow::Pause
    );
    let reply = host.last_reply();
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("too large"));
    assert_eq!(host.count("tokengate.denied.bad_request"), 1);
    assert_eq!(gate.on_request_body(&host, 20_000, true), Flow::Pause);
    assert_eq!(host.replies.borrow().len(), 1);
}

#[test]
fn the_refresh_path_with_another_method_is_refused_at_once() {
    for method in ["GET", "PUT", "CONNECT"] {
        let host = Recorder::filter(config());
        let mut h = post_refresh(&[]);
        h[0].1 = method.into();
        let (_root, mut gate) = start(&host, &as_refs(&h));
        assert_eq!(
            gate.on_request_headers(&host, false),
            Flow::Pause,
            "{method}"
        );
        assert_eq!(host.last_reply().status, 400, "{method}");
        assert_eq!(gate.on_request_body(&host, 3, true), Flow::Pause);
    }
}

#[test]
fn no_randomness_for_a_new_token_id_is_500_internal() {
    let host = Recorder::filter(config());
    host.no_randomness.set(true);
    let h = post_refresh(&[]);
    let (_root, mut gate) = start(&host, &as_refs(&h));
    let form = format!("grant_type=refresh_token&refresh_token={}", refresh_token());
    *host.body.borrow_mut() = form.clone().into_bytes();
    assert_eq!(gate.on_request_headers(&host, false), Flow::Pause);
    assert_eq!(gate.on_request_body(&host, form.len(), true), Flow::Pause);
    assert_eq!(host.last_reply().status, 500);
    assert_eq!(host.count("tokengate.denied.internal"), 1);
}

// --- the worker's copy of the revocation list ---

fn with_revocation(on_unavailable: &str) -> Value {
    let mut c = config();
    c["revocation"] = json!({"max_stale_s": 60, "on_unavailable": on_unavailable});
    c
}

fn publish(host: &Recorder, version: u64, entries: Vec<Entry>, fresh_at: u64) {
    let doc = Document {
        version,
        generated_at: Some(fresh_at),
        entries,
    };
    let snapshot = Snapshot::build(&doc, fresh_at);
    let state = Published {
        generation: version,
        fresh_at,
    };
    host.set_shared_data(SNAPSHOT_KEY, snapshot.as_bytes(), 0)
        .unwrap();
    host.set_shared_data(STATE_KEY, &state.encode(), 0).unwrap();
}

fn decide(host: &Recorder, root: &Root, token: &str) -> (Flow, u32) {
    let bearer = format!("Bearer {token}");
    let h = get("/orders/7", &[("authorization", &bearer)]);
    host.load(&h);
    let mut gate = root.new_request().unwrap();
    let flow = gate.on_request_headers(host, true);
    let status = match flow {
        Flow::Continue => 200,
        Flow::Pause => host.last_reply().status,
    };
    (flow, status)
}

fn revoked_jti(jti: &str) -> Entry {
    Entry::Jti {
        jti: jti.into(),
        exp: None,
    }
}

#[test]
fn workers_never_take_a_lower_version_whoever_wrote_it() {
    let host = Recorder::filter(with_revocation("deny"));
    publish(&host, 5, vec![revoked_jti("t1")], NOW);
    let (mut root, _) = start(&host, &[]);
    assert_eq!(decide(&host, &root, &access_token()).1, 401);
    // Someone with access to shared data writes an older, empty list.
    publish(&host, 4, vec![], NOW);
    root.on_tick(&host);
    assert_eq!(
        decide(&host, &root, &access_token()).1,
        401,
        "still revoked"
    );
    // A higher version is taken.
    publish(&host, 6, vec![], NOW);
    root.on_tick(&host);
    assert_eq!(decide(&host, &root, &access_token()).1, 200);
}

#[test]
fn a_stale_list_still_revokes_under_allow() {
    let host = Recorder::filter(with_revocation("allow"));
    publish(&host, 5, vec![revoked_jti("t1")], NOW - 3600);
    let (root, _) = start(&host, &[]);
    assert_eq!(decide(&host, &root, &access_token()).1, 401);
    let other = token(
        json!({"sub": "bob", "scope": "orders:read", "exp": NOW + 600, "jti": "t2"}),
        "JWT",
    );
    assert_eq!(
        decide(&host, &root, &other).1,
        200,
        "stale is ignored under allow"
    );
}

#[test]
fn an_unreadable_newer_snapshot_makes_the_list_unavailable_even_under_allow() {
    let host = Recorder::filter(with_revocation("allow"));
    publish(&host, 5, vec![revoked_jti("t1")], NOW);
    let (mut root, _) = start(&host, &[]);
    assert_eq!(decide(&host, &root, &access_token()).1, 401);
    // A newer generation is announced, but the snapshot bytes are garbage.
    host.set_shared_data(SNAPSHOT_KEY, b"garbage", 0).unwrap();
    host.set_shared_data(
        STATE_KEY,
        &Published {
            generation: 6,
            fresh_at: NOW,
        }
        .encode(),
        0,
    )
    .unwrap();
    root.on_tick(&host);
    // Never decided without the list once one was held: a fault never
    // un-revokes.
    assert_eq!(decide(&host, &root, &access_token()).1, 503);
    publish(&host, 7, vec![revoked_jti("t1")], NOW);
    root.on_tick(&host);
    assert_eq!(decide(&host, &root, &access_token()).1, 401);
}

/// A new configuration (a new root, often a new VM: an ECDS or LDS update,
/// a module upgrade) that finds a list announced in shared data but cannot
/// read its snapshot (another build's snapshot format, damaged bytes) has
/// still seen that a list exists: it refuses what needs the list, even
/// under `allow`, instead of deciding as if none had ever been received
/// (docs/revocation.md, "Rollback, faults and age").
#[test]
fn a_new_root_that_cannot_read_the_announced_list_refuses_even_under_allow() {
    let host = Recorder::filter(with_revocation("allow"));
    publish(&host, 5, vec![revoked_jti("t1")], NOW);
    // The snapshot in shared data is one this build cannot read.
    let mut other_format = {
        let doc = Document {
            version: 5,
            generated_at: Some(NOW),
            entries: vec![revoked_jti("t1")],
        };
        Snapshot::build(&doc, NOW).as_bytes().to_vec()
    };
    other_format[4] = 2; // SNAPSHOT_FORMAT 2
    host.set_shared_data(SNAPSHOT_KEY, &other_format, 0)
        .unwrap();
    let (root, _) = start(&host, &[]);
    assert_eq!(
        decide(&host, &root, &access_token()),
        (Flow::Pause, 503),
        "a revoked token must never pass because the new root could not read the list"
    );
    // Once a readable list is published, the root takes it.
    let mut root = root;
    publish(&host, 6, vec![revoked_jti("t1")], NOW);
    root.on_tick(&host);
    assert_eq!(decide(&host, &root, &access_token()).1, 401);
}

/// A worker configured before the service first published (at start-up,
/// or a configuration that arrives first) takes the list on its next
/// request, not at its next tick: no request after the publication is
/// refused for want of a list the node has (docs/operations.md, "Changing
/// configuration while traffic flows").
#[test]
fn a_worker_configured_before_the_first_list_takes_it_on_its_next_request() {
    let host = Recorder::filter(with_revocation("deny"));
    let (root, _) = start(&host, &[]);
    // Nothing published yet: refused, fail closed.
    assert_eq!(decide(&host, &root, &access_token()).1, 503);
    publish(&host, 5, vec![revoked_jti("t1")], NOW);
    // No tick in between.
    assert_eq!(decide(&host, &root, &access_token()).1, 401);
    let other = token(
        json!({"sub": "bob", "scope": "orders:read", "exp": NOW + 600, "jti": "t2"}),
        "JWT",
    );
    assert_eq!(decide(&host, &root, &other).1, 200);
    // Once a list is held, the request path reads no shared data.
    host.take_calls();
    assert_eq!(decide(&host, &root, &other).1, 200);
    assert!(
        !calls_of(&host)
            .iter()
            .any(|c| matches!(c, Call::SharedData(_))),
        "{:?}",
        calls_of(&host)
    );
}

// --- what a request costs in host calls ---

/// The host calls of one request, without the log calls (none is made on
/// these paths at the default level).
fn calls_of(host: &Recorder) -> Vec<Call> {
    host.take_calls()
        .into_iter()
        .filter(|c| !matches!(c, Call::Log(_)))
        .collect()
}

#[test]
fn an_allowed_request_costs_four_host_calls_and_one_per_edit() {
    // The header map, the clock, one call per edit (measured cheaper in
    // Envoy than one call replacing the map: docs/figures.md, "CPU per request in Envoy, side by side"), the
    // counter, the filter state. Here four edits: the forged subject
    // removed (every line of it: a replace would leave a second line in
    // place on Envoys that replace only the first), the token removed, the
    // verified subject and scopes set.
    let host = Recorder::filter(config());
    let token = access_token();
    let bearer = format!("Bearer {token}");
    let h = get(
        "/orders/7",
        &[("authorization", &bearer), ("x-auth-subject", "root")],
    );
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, true), Flow::Continue);
    assert_eq!(
        calls_of(&host),
        vec![
            Call::RequestHeaders,
            Call::Now,
            Call::SetHeader("x-auth-subject".into(), None),
            Call::SetHeader("authorization".into(), None),
            Call::SetHeader("x-auth-scopes".into(), Some(b"orders:read".to_vec())),
            Call::SetHeader("x-auth-subject".into(), Some(b"alice".to_vec())),
            Call::Increment("tokengate.allowed".into()),
            Call::FilterState("tokengate".into()),
        ]
    );
    // The same with the token cached (a second request).
    let mut again = _root.new_request().unwrap();
    host.load(&h);
    assert_eq!(again.on_request_headers(&host, true), Flow::Continue);
    assert_eq!(calls_of(&host).len(), 8);
}

#[test]
fn an_allowed_request_under_the_lean_configuration_costs_six_host_calls() {
    // The benchmark's `tokengate-lean`: one key, one scope rule, the token
    // removed, `sub` to one header. Four calls, and two edits.
    let host = Recorder::filter(json!({
        "keys": [{"kid": "k1", "alg": "HS256", "secret": b64(&SECRET)}],
        "forward_token": false,
        "claims_to_headers": {"sub": "x-auth-subject"},
        "rules": [{"match": {"prefix": "/orders"}, "scopes": ["orders:read"]}]
    }));
    let bearer = format!("Bearer {}", access_token());
    let h = get("/orders/42", &[("authorization", &bearer)]);
    let (root, mut gate) = start(&host, &as_refs(&h));
    for _ in 0..2 {
        assert_eq!(gate.on_request_headers(&host, true), Flow::Continue);
        assert_eq!(
            calls_of(&host),
            vec![
                Call::RequestHeaders,
                Call::Now,
                Call::SetHeader("authorization".into(), None),
                Call::SetHeader("x-auth-subject".into(), Some(b"alice".to_vec())),
                Call::Increment("tokengate.allowed".into()),
                Call::FilterState("tokengate".into()),
            ]
        );
        // Again, the token now cached.
        gate = root.new_request().unwrap();
        host.load(&h);
    }
}

#[test]
fn a_refused_request_costs_five_host_calls_and_a_prebuilt_reply() {
    let host = Recorder::filter(config());
    let h = get("/orders/7", &[]);
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, true), Flow::Pause);
    assert_eq!(
        calls_of(&host),
        vec![
            Call::RequestHeaders,
            Call::Now,
            Call::Increment("tokengate.denied.missing".into()),
            Call::FilterState("tokengate".into()),
            Call::Reply(401),
        ]
    );
}

#[test]
fn an_anonymous_request_without_edits_costs_four_host_calls() {
    let host = Recorder::filter(config());
    let h = get("/healthz", &[]);
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, true), Flow::Continue);
    assert_eq!(
        calls_of(&host),
        vec![
            Call::RequestHeaders,
            Call::Now,
            Call::Increment("tokengate.anonymous".into()),
            Call::FilterState("tokengate".into()),
        ]
    );
    // With a forged header to strip: one more, its removal.
    let h = get("/healthz", &[("x-auth-subject", "root")]);
    host.load(&h);
    let mut gate = _root.new_request().unwrap();
    assert_eq!(gate.on_request_headers(&host, true), Flow::Continue);
    assert_eq!(calls_of(&host).len(), 5);
    assert_eq!(host.header("x-auth-subject"), None);
}

#[test]
fn a_refresh_request_costs_one_call_on_headers_and_six_at_its_end() {
    let host = Recorder::filter(config());
    let h = post_refresh(&[]);
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, false), Flow::Pause);
    assert_eq!(calls_of(&host), vec![Call::RequestHeaders]);
    let form = format!("grant_type=refresh_token&refresh_token={}", refresh_token());
    *host.body.borrow_mut() = form.clone().into_bytes();
    assert_eq!(gate.on_request_body(&host, form.len(), true), Flow::Pause);
    assert_eq!(
        calls_of(&host),
        vec![
            Call::RequestBody,
            Call::Random,
            Call::Now,
            Call::Increment("tokengate.allowed".into()),
            Call::FilterState("tokengate".into()),
            Call::Reply(200),
        ]
    );
}

#[test]
fn forged_claim_headers_and_tokens_in_trailers_of_a_forwarded_request_are_removed() {
    let host = Recorder::filter(config());
    let bearer = format!("Bearer {}", access_token());
    let h = get("/orders/7", &[("authorization", &bearer)]);
    let (_root, mut gate) = start(&host, &as_refs(&h));
    assert_eq!(gate.on_request_headers(&host, false), Flow::Continue);
    *host.trailers.borrow_mut() = vec![
        ("x-auth-subject".into(), b"root".to_vec()),
        ("X_AUTH_SCOPES".into(), b"*".to_vec()),
        ("authorization".into(), b"Bearer other".to_vec()),
        ("grpc-status".into(), b"0".to_vec()),
    ];
    assert_eq!(gate.on_request_trailers(&host), Flow::Continue);
    let left: Vec<String> = host
        .trailers
        .borrow()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(left, ["grpc-status"]);
}

// --- the revocation service

const LIST_SECRET: [u8; 32] = [0x24; 32];

/// A revocation service whose shared data is `shared`, as every root of
/// one vm_id sees it.
fn service(shared: &SharedData) -> (Recorder, Root) {
    let host = Recorder {
        config: json!({
            "cluster": "lists", "authority": "lists.internal", "path": "/v1/revocations",
            "poll_interval_s": 1,
            "verify_key": {"alg": "HS256", "secret": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD, LIST_SECRET)}
        })
        .to_string()
        .into_bytes(),
        root_id: "tokengate-revocations".into(),
        now_ms: Cell::new(NOW * 1000),
        shared: Rc::clone(shared),
        ..Recorder::default()
    };
    let mut root = Root::default();
    assert!(root.on_configure(&host), "{:?}", host.logs.borrow());
    (host, root)
}

/// One poll of `root`, answered with a signed list of `version` revoking
/// `jti`s (or a 304).
fn poll(host: &Recorder, root: &mut Root, answer: Option<(u64, &[&str])>) {
    host.now_ms.set(host.now_ms.get() + 1_500);
    root.on_tick(host);
    let body = match answer {
        Some((version, jtis)) => {
            let doc = Document {
                version,
                generated_at: Some(host.now_ms.get() / 1000),
                entries: jtis.iter().map(|j| revoked_jti(j)).collect(),
            };
            let key = Key::new(KeyId("list".into()), Alg::Hs256, &LIST_SECRET).unwrap();
            *host.response.borrow_mut() = Some((
                "200".into(),
                Some(format!("\"v{version}\"")),
                doc.to_signed(&key).into_bytes(),
            ));
            doc.to_signed(&key).len()
        }
        None => {
            *host.response.borrow_mut() = Some(("304".into(), None, Vec::new()));
            0
        }
    };
    root.on_http_call_response(host, 1, 2, body);
}

fn published(shared: &SharedData) -> (u64, Snapshot) {
    let shared = shared.borrow();
    let state = Published::decode(&shared[STATE_KEY].0).unwrap();
    let snapshot = Snapshot::from_bytes(shared[SNAPSHOT_KEY].0.clone()).unwrap();
    (state.generation, snapshot)
}

#[test]
fn two_services_in_one_vm_id_never_move_the_list_backwards() {
    for higher_first in [true, false] {
        let shared = Rc::default();
        let (high, mut high_root) = service(&shared);
        let (low, mut low_root) = service(&shared);
        let mut rounds: Vec<(&Recorder, &mut Root, u64, &[&str])> = Vec::new();
        if higher_first {
            rounds.push((&high, &mut high_root, 5, &["revoked"]));
            rounds.push((&low, &mut low_root, 1, &[]));
        } else {
            rounds.push((&low, &mut low_root, 1, &[]));
            rounds.push((&high, &mut high_root, 5, &["revoked"]));
        }
        let mut highest = 0;
        for round in 0..3 {
            for (host, root, version, jtis) in rounds.iter_mut() {
                // The list, then a 304, then the same list again.
                let answer = (round != 1).then_some((*version, *jtis));
                poll(host, root, answer);
                // Never backwards, and the state always announces the
                // snapshot that is there.
                let (generation, snapshot) = published(&shared);
                assert!(generation >= highest, "{generation} after {highest}");
                assert_eq!(
                    snapshot.version(),
                    generation,
                    "state and snapshot disagree"
                );
                highest = generation;
            }
            let (generation, snapshot) = published(&shared);
            assert_eq!(generation, 5, "higher first: {higher_first}, round {round}");
            assert_eq!(snapshot.version(), 5);
        }
        let logs = low.logs.borrow();
        let warned: Vec<_> = logs
            .iter()
            .filter(|(_, m)| m.contains("published in this vm_id by another writer"))
            .collect();
        assert_eq!(warned.len(), 1, "logged once: {logs:?}");
        // Refused as a rollback when version 5 was there first; as a failed
        // confirmation when version 1 had been published before it.
        let refused = if higher_first {
            "tokengate.revocation.rollback_refused"
        } else {
            "tokengate.revocation.fetch_failed"
        };
        assert!(low.count(refused) >= 1, "{refused}");
        assert!(high
            .logs
            .borrow()
            .iter()
            .all(|(_, m)| !m.contains("another writer")));
    }
}
