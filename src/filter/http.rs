//! The HTTP filter (root id `tokengate`): one decision per request.
//!
//! `GateRoot` holds the compiled configuration, the metrics and this worker's
//! copy of the revocation snapshot (refreshed on a tick, never on the request
//! path). `Gate`, one per request, reads the few headers the configuration
//! names, asks the core for a verdict, and applies it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};

use super::host::{self, Metric};
use crate::config::{Config, Secrets};
use crate::gate::{Connection, Decision, Request, Revocations, Verdict};
use crate::refresh::RefreshRequest;
use crate::refusal::Reason;
use crate::revocation::Snapshot;
use crate::shared::{self, Published};
use crate::token::VerifyCache;

/// Verified tokens remembered per worker: at 4 KiB per token at most, the
/// cache stays under a few MiB.
const CACHE_SLOTS: usize = 1024;

/// How often a worker looks for a new revocation snapshot.
const REVOCATION_CHECK: Duration = Duration::from_millis(250);

struct Metrics {
    allowed: Metric,
    anonymous: Metric,
    denied: [Metric; Reason::ALL.len()],
}

impl Metrics {
    fn define() -> Metrics {
        Metrics {
            allowed: Metric::counter("tokengate.allowed"),
            anonymous: Metric::counter("tokengate.anonymous"),
            denied: Reason::ALL
                .map(|r| Metric::counter(&format!("tokengate.denied.{}", r.as_str()))),
        }
    }

    fn count(&self, decision: Decision) {
        match decision {
            Decision::Allow => self.allowed.increment(),
            Decision::Anonymous => self.anonymous.increment(),
            Decision::Deny(reason) => {
                if let Some(m) = Reason::ALL
                    .iter()
                    .position(|r| *r == reason)
                    .and_then(|i| self.denied.get(i))
                {
                    m.increment();
                }
            }
        }
    }
}

/// This worker's view of the published revocation list.
#[derive(Default)]
struct WorkerList {
    generation: Option<u64>,
    snapshot: Option<Snapshot>,
    last_fetch: Option<u64>,
}

struct Shared {
    config: Config,
    metrics: Metrics,
    /// The headers the configuration reads, fetched one host call each.
    headers: Vec<String>,
    list: RefCell<WorkerList>,
    /// Tokens whose MAC held on this worker (see `VerifyCache`).
    cache: RefCell<VerifyCache>,
}

#[derive(Default)]
pub struct GateRoot {
    shared: Option<Rc<Shared>>,
}

impl GateRoot {
    pub fn on_configure(&mut self, _size: usize) -> bool {
        let Some(json) = host::plugin_configuration() else {
            host::warn("the plugin configuration is empty; it must be the JSON of SPEC section 3");
            return false;
        };
        let config = match Config::from_json(&json, &Secrets::process_env()) {
            Ok(c) => c,
            Err(e) => {
                host::warn(&format!("configuration refused: {e}"));
                return false;
            }
        };
        if config.revocation.is_some() {
            let _ = hostcalls::set_tick_period(REVOCATION_CHECK);
        }
        let headers = config.header_names_read();
        let shared = Rc::new(Shared {
            config,
            metrics: Metrics::define(),
            headers,
            list: RefCell::new(WorkerList::default()),
            cache: RefCell::new(VerifyCache::new(CACHE_SLOTS)),
        });
        self.shared = Some(shared);
        self.on_tick();
        true
    }

    /// Picks up a newly published snapshot. The small state record is read
    /// every tick; the snapshot itself only when its generation changed.
    pub fn on_tick(&mut self) {
        let Some(shared) = &self.shared else { return };
        if shared.config.revocation.is_none() {
            return;
        }
        let Some(published) =
            host::shared_data(shared::STATE_KEY).and_then(|b| Published::decode(&b))
        else {
            return;
        };
        let mut list = shared.list.borrow_mut();
        list.last_fetch = Some(published.last_fetch);
        if list.generation == Some(published.generation) {
            return;
        }
        // Drop the old copy first: nothing runs on this worker during the
        // tick, and reading the new one beside it would double the VM's
        // memory (wasm memory never shrinks) for a million-entry list.
        list.snapshot = None;
        list.generation = None;
        match shared::read_snapshot(host::shared_data) {
            Some(snapshot) => {
                // The snapshot may already be newer than the state record
                // read a moment ago; its own version is what is in force.
                list.generation = Some(snapshot.version());
                list.snapshot = Some(snapshot);
            }
            None => host::warn(
                "the published revocation snapshot is unreadable; retrying on the next tick",
            ),
        }
    }

    pub fn create_http_context(&self) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Gate {
            shared,
            refresh: None,
        }))
    }
}

/// Largest refresh request body read; a form with one token is far smaller.
const MAX_REFRESH_BODY: usize = 64 * 1024;

pub struct Gate {
    shared: Rc<Shared>,
    /// Set while a refresh request's body is being buffered: its method and
    /// content type.
    refresh: Option<(String, Option<Vec<u8>>)>,
}

impl Gate {
    /// Answers a request on the refresh path, from its buffered body.
    fn answer_refresh(&mut self, body: &[u8]) {
        let shared = Rc::clone(&self.shared);
        let Some((method, content_type)) = self.refresh.take() else {
            return;
        };
        let mut jti = [0u8; 16];
        let answer = if getrandom::getrandom(&mut jti).is_err() {
            None
        } else {
            let list = shared.list.borrow();
            let revocations = Revocations {
                list: list.snapshot.as_ref(),
                last_fetch: list.last_fetch,
            };
            let req = RefreshRequest {
                method: &method,
                content_type: content_type.as_deref(),
                body,
            };
            Some(
                shared
                    .config
                    .refresh(&req, &HostConnection, revocations, host::now_secs(), jti),
            )
        };
        let Some(answer) = answer else {
            let _ = hostcalls::send_http_response(503, vec![("content-type", "application/json")], Some(br#"{"error":"temporarily_unavailable","error_description":"no randomness available"}"#));
            return;
        };
        record(&shared, &answer.verdict);
        let headers: Vec<(&str, &str)> = answer
            .headers
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        let _ = hostcalls::send_http_response(answer.status, headers, Some(answer.body.as_bytes()));
    }
}

/// Counts a decision and sets the access-log filter state.
fn record(shared: &Shared, verdict: &Verdict) {
    // `tokengate_profile` cfgs exist only for benches/breakdown.sh, which
    // builds variants without one step each to show where the time goes.
    #[cfg(not(tokengate_profile = "decide_only"))]
    shared.metrics.count(verdict.decision);
    if cfg!(tokengate_profile = "no_state") || cfg!(tokengate_profile = "decide_only") {
        return;
    }
    host::set_filter_state("tokengate.decision", verdict.decision.as_str().as_bytes());
    if let Some(reason) = verdict.decision.reason() {
        host::set_filter_state("tokengate.reason", reason.as_str().as_bytes());
    }
    for (name, value) in [
        ("tokengate.sub", &verdict.sub),
        ("tokengate.jti", &verdict.jti),
        ("tokengate.kid", &verdict.kid),
    ] {
        if let Some(value) = value {
            host::set_filter_state(name, value.as_bytes());
        }
    }
}

impl Context for Gate {}

/// Connection facts, fetched from the host only when a check asks.
struct HostConnection;

impl Connection for HostConnection {
    fn is_tls(&self) -> bool {
        host::property(&["connection", "tls_version"]).is_some_and(|v| !v.is_empty())
    }

    fn peer_certificate_sha256(&self) -> Option<[u8; 32]> {
        let hex = host::property(&["connection", "sha256_peer_certificate_digest"])?;
        crate::shared::decode_hex32(&hex)
    }
}

impl HttpContext for Gate {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let shared = Rc::clone(&self.shared);
        let config = &shared.config;
        // One host call for every header: repeated lines of a header the
        // gate reads are joined here (Envoy joins only some of them), so a
        // second token can never hide on a second line. Measured against
        // one `get_map_value_bytes` per header read (7 calls for the usual
        // configuration, each a round trip into the VM to allocate the
        // answer): the single copy was no slower (benches/breakdown.sh).
        let mut method = Vec::new();
        let mut path = Vec::new();
        let mut authority = Vec::new();
        let mut content_type = None;
        let mut headers: Vec<(String, Vec<u8>)> = Vec::with_capacity(shared.headers.len());
        for (name, value) in host::request_headers() {
            match name.as_str() {
                ":method" => method = value,
                ":path" => path = value,
                ":authority" => authority = value,
                "content-type" => content_type = Some(value),
                n if shared.headers.iter().any(|h| h == n) => {
                    match headers.iter_mut().find(|(h, _)| *h == name) {
                        Some((_, joined)) => {
                            joined.extend_from_slice(if name == "cookie" { b"; " } else { b"," });
                            joined.extend_from_slice(&value);
                        }
                        None => headers.push((name, value)),
                    }
                }
                _ => {}
            }
        }
        if cfg!(tokengate_profile = "read_only") {
            return Action::Continue;
        }
        if config.is_refresh_path(&path) {
            // Answered here, never by the upstream, before any rule.
            let method = String::from_utf8_lossy(&method).into_owned();
            let is_post = method == "POST";
            self.refresh = Some((method, content_type));
            if end_of_stream || !is_post {
                self.answer_refresh(&[]);
            }
            return Action::Pause;
        }
        let request = Request {
            method: std::str::from_utf8(&method).unwrap_or(""),
            path: &path,
            authority: &authority,
            headers: &headers,
        };
        let now = host::now_secs();
        let verdict = {
            let list = shared.list.borrow();
            let revocations = Revocations {
                list: list.snapshot.as_ref(),
                last_fetch: list.last_fetch,
            };
            let mut cache = shared.cache.borrow_mut();
            config.decide_with(&request, &HostConnection, revocations, now, &mut cache)
        };

        record(&shared, &verdict);

        if let Some(response) = verdict.response(&config.realm) {
            if host::debug_enabled() {
                host::log(
                    LogLevel::Debug,
                    &format!(
                        "refused {} {}: {}",
                        request.method,
                        String::from_utf8_lossy(path.split(|b| *b == b'?').next().unwrap_or(&[])),
                        verdict.decision.reason().map_or("", |r| r.as_str())
                    ),
                );
            }
            let headers: Vec<(&str, &str)> = response
                .headers
                .iter()
                .map(|(n, v)| (*n, v.as_str()))
                .collect();
            let _ = hostcalls::send_http_response(
                response.status,
                headers,
                Some(response.body.as_bytes()),
            );
            return Action::Pause;
        }

        if cfg!(tokengate_profile = "no_edits") || cfg!(tokengate_profile = "decide_only") {
            return Action::Continue;
        }
        for name in &verdict.remove_headers {
            host::set_request_header(name, None);
        }
        for (name, value) in &verdict.set_headers {
            host::set_request_header(name, Some(value.as_bytes()));
        }
        if let Some(new_path) = &verdict.new_path {
            host::set_request_header(":path", Some(new_path));
        }
        if let Some(cookie) = &verdict.new_cookie {
            host::set_request_header("cookie", cookie.as_deref());
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.refresh.is_none() {
            return Action::Continue;
        }
        if body_size > MAX_REFRESH_BODY {
            self.refresh = None;
            let _ = hostcalls::send_http_response(
                400,
                vec![("content-type", "application/json"), ("cache-control", "no-store")],
                Some(br#"{"error":"invalid_request","error_description":"the request body is too large","reason":"bad_request"}"#),
            );
            return Action::Pause;
        }
        if !end_of_stream {
            // Envoy buffers the body until the last chunk.
            return Action::Pause;
        }
        let body =
            hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpRequestBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default();
        self.answer_refresh(&body);
        Action::Pause
    }
}
