//! The HTTP filter (root id `tokengate`): one decision per request.
//!
//! `GateRoot` holds the compiled configuration, the metrics and this worker's
//! copy of the revocation snapshot (read when the root is configured, then
//! refreshed on a tick; on the request path only while the worker holds no
//! list at all). `Gate`, one per request, reads the header map once, asks the core
//! for a verdict, and applies it: the edits, or a local reply. Whatever goes
//! wrong inside, the request does not go upstream as it came: an edit Envoy
//! refuses turns the request into a 500 `internal` refusal, and a request to
//! the refresh path is answered here whatever its framing (body, chunks,
//! trailers), never continued.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::host::{now_secs, Flow, Host, LogLevel, MetricKind};
use super::profile;
use crate::config::{Config, Secrets};
use crate::gate::{
    Connection, Decision, Edit, Replies, Request, Revocations, Verdict, FILTER_STATE_KEY,
};
use crate::refresh::{self, RefreshRequest, MAX_FORM_BYTES};
use crate::refusal::{Reason, Reply};
use crate::revocation::Snapshot;
use crate::shared::{self, Published};
use crate::token::VerifyCache;

/// Verified tokens remembered per worker, and the bytes they may take
/// (tokens and parsed claims together; see `VerifyCache`).
const CACHE_SLOTS: usize = 1024;
const CACHE_BYTES: usize = 2 << 20;

/// How often a worker looks for a new revocation snapshot (and reads the
/// log level).
const REVOCATION_CHECK_MS: u64 = 250;
/// The tick without revocation: the log level only.
const LOG_LEVEL_CHECK_MS: u64 = 1000;

struct Metrics {
    allowed: Option<u32>,
    anonymous: Option<u32>,
    denied: [Option<u32>; Reason::ALL.len()],
    /// Host calls that failed without failing the request (filter state,
    /// a counter): logged once, counted always.
    host_call_failed: Option<u32>,
}

impl Metrics {
    fn define(host: &dyn Host) -> Metrics {
        let counter = |name: &str| host.define_metric(MetricKind::Counter, name);
        Metrics {
            allowed: counter("tokengate.allowed"),
            anonymous: counter("tokengate.anonymous"),
            denied: Reason::ALL.map(|r| counter(&format!("tokengate.denied.{}", r.as_str()))),
            host_call_failed: counter("tokengate.host_call_failed"),
        }
    }

    fn for_decision(&self, decision: Decision) -> Option<u32> {
        match decision {
            Decision::Allow => self.allowed,
            Decision::Anonymous => self.anonymous,
            Decision::Deny(reason) => self.denied.get(reason.index()).copied().flatten(),
        }
    }
}

/// This worker's view of the published revocation list.
#[derive(Default)]
struct WorkerList {
    snapshot: Option<Snapshot>,
    fresh_at: Option<u64>,
    /// A list was held, and a newer one could not be read: requests that
    /// need the list are refused until one can.
    lost: bool,
    /// The generation whose snapshot was unreadable (not retried).
    failed_generation: Option<u64>,
}

struct Shared {
    config: Config,
    /// Every refusal's reply, rendered at configuration time.
    replies: Replies,
    metrics: Metrics,
    list: RefCell<WorkerList>,
    /// Tokens whose MAC held on this worker (see `VerifyCache`).
    cache: RefCell<VerifyCache>,
    /// Whether a failed host call was already logged (once per VM).
    warned: Cell<bool>,
    /// Whether refusals are logged (debug), read on each tick rather than
    /// by a host call per refusal.
    debug: Cell<bool>,
}

impl Shared {
    /// Notes a host call that failed without failing the request.
    fn host_call_failed(&self, host: &dyn Host, what: &str) {
        if let Some(id) = self.metrics.host_call_failed {
            let _ = host.increment_metric(id);
        }
        if !self.warned.replace(true) {
            host.log(
                LogLevel::Warn,
                &format!("{what} failed (logged once; counted in tokengate.host_call_failed)"),
            );
        }
    }

    /// Counts a decision and sets the access-log filter state: one host
    /// call each.
    fn record(&self, host: &dyn Host, verdict: &Verdict) {
        if let Some(id) = self.metrics.for_decision(verdict.decision) {
            if !profile::NO_COUNTER && host.increment_metric(id).is_err() {
                self.host_call_failed(host, "a counter increment");
            }
        }
        if profile::NO_STATE {
            return;
        }
        if host
            .set_filter_state(FILTER_STATE_KEY, &verdict.log_record())
            .is_err()
        {
            self.host_call_failed(host, "setting the access-log filter state");
        }
    }

    /// Sends a local reply. If Envoy refuses it, the request must still not
    /// go on: the caller pauses it, and Envoy's stream timeout ends it.
    fn reply(&self, host: &dyn Host, reply: &Reply) {
        if let Err(e) = host.send_reply(reply) {
            host.log(
                LogLevel::Error,
                &format!(
                    "cannot send the local reply ({}): {}; the request is held, never forwarded",
                    reply.status, e.0
                ),
            );
        }
    }

    /// Refuses the request with 500 `internal` because something inside
    /// failed: the request does not go upstream as it is.
    fn internal(&self, host: &dyn Host, mut verdict: Verdict, why: &str) -> Flow {
        host.log(
            LogLevel::Error,
            &format!("refusing the request with 500 internal: {why}"),
        );
        verdict.decision = Decision::Deny(Reason::Internal);
        self.record(host, &verdict);
        if let Some(reply) = self.replies.for_reason(Reason::Internal) {
            self.reply(host, reply);
        }
        Flow::Pause
    }

    /// Picks up a newly published snapshot. The small state record is read
    /// every tick; the snapshot itself only when its generation rose. A
    /// lower generation is ignored, whoever wrote it.
    fn take_published(&self, host: &dyn Host) {
        if self.config.revocation.is_none() {
            return;
        }
        let Some(published) = host
            .shared_data(shared::STATE_KEY)
            .and_then(|b| Published::decode(&b))
        else {
            return;
        };
        let mut list = self.list.borrow_mut();
        let held = list.snapshot.as_ref().map(Snapshot::version);
        match held {
            Some(v) if published.generation < v => return,
            Some(v) if published.generation == v => {
                list.fresh_at = Some(published.fresh_at);
                return;
            }
            _ => {}
        }
        if list.failed_generation == Some(published.generation) {
            return;
        }
        // Drop the old copy first: nothing runs on this worker during the
        // tick, and reading the new one beside it would double the VM's
        // memory (wasm memory never shrinks) for a million-entry list. If
        // the new one cannot be read, the worker has no list and refuses
        // what needs one until it can: a fault never un-revokes. That holds
        // for a root that never held a list too (a new configuration, a new
        // VM, a module whose snapshot format differs from the service's):
        // the state record says a list was published, so this node is not
        // one that has "never received a list", even under `allow`.
        list.snapshot = None;
        match shared::read_snapshot(|key| host.shared_data(key)) {
            Some(snapshot)
                if snapshot.version() >= published.generation
                    && held.is_none_or(|h| snapshot.version() > h) =>
            {
                list.snapshot = Some(snapshot);
                list.fresh_at = Some(published.fresh_at);
                list.lost = false;
                list.failed_generation = None;
            }
            _ => {
                list.lost = true;
                list.failed_generation = Some(published.generation);
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "the published revocation snapshot (generation {}) is unreadable or older than announced; \
                         requests that need the list are refused until a good one is published",
                        published.generation
                    ),
                );
            }
        }
    }

    /// Before a decision: a worker that holds no list and has not failed
    /// to read one (it was configured before the service first published,
    /// at start-up) looks in shared data now instead of waiting for its
    /// next tick, so the first request after the list is published is
    /// decided with it, not refused with 503 for up to a tick. One host
    /// call per request only while nothing has been published.
    fn before_decision(&self, host: &dyn Host) {
        if self.config.revocation.is_none() {
            return;
        }
        let looking = {
            let list = self.list.borrow();
            list.snapshot.is_none() && !list.lost && list.failed_generation.is_none()
        };
        if looking {
            self.take_published(host);
        }
    }
}

#[derive(Default)]
pub struct GateRoot {
    shared: Option<Rc<Shared>>,
}

impl GateRoot {
    pub fn on_configure(&mut self, host: &dyn Host) -> bool {
        let Some(json) = host.plugin_configuration() else {
            host.log(
                LogLevel::Warn,
                "the plugin configuration is empty; it must be the filter's JSON configuration (see docs/configuration.md)",
            );
            return false;
        };
        let config = match Config::from_json(&json, &Secrets::process_env()) {
            Ok(c) => c,
            Err(e) => {
                host.log(LogLevel::Warn, &format!("configuration refused: {e}"));
                return false;
            }
        };
        let tick = if config.revocation.is_some() {
            REVOCATION_CHECK_MS
        } else {
            LOG_LEVEL_CHECK_MS
        };
        if host.set_tick_period_ms(tick).is_err() {
            host.log(
                LogLevel::Warn,
                "cannot set the tick period: the revocation list would never be read",
            );
            return false;
        }
        let shared = Rc::new(Shared {
            replies: Replies::new(&config),
            config,
            metrics: Metrics::define(host),
            list: RefCell::new(WorkerList::default()),
            cache: RefCell::new(VerifyCache::new(CACHE_SLOTS, CACHE_BYTES)),
            warned: Cell::new(false),
            debug: Cell::new(false),
        });
        self.shared = Some(shared);
        self.on_tick(host);
        true
    }

    /// Reads the log level, and picks up a newly published snapshot
    /// (`Shared::take_published`).
    pub fn on_tick(&mut self, host: &dyn Host) {
        let Some(shared) = &self.shared else { return };
        shared.debug.set(host.log_enabled(LogLevel::Debug));
        shared.take_published(host);
    }

    pub fn new_request(&self) -> Option<Gate> {
        Some(Gate {
            shared: Rc::clone(self.shared.as_ref()?),
            stream: Stream::Open,
        })
    }
}

/// Where a request stands.
enum Stream {
    /// Not decided yet.
    Open,
    /// On the refresh path, its body being buffered: method and content type.
    Refresh {
        method: String,
        content_type: Option<Vec<u8>>,
    },
    /// Decided: forwarded, or answered here.
    Done { forwarded: bool },
}

pub struct Gate {
    shared: Rc<Shared>,
    stream: Stream,
}

/// Makes the verdict's edits, one host call each (`remove` the token and
/// forged headers, `replace` each claim header). Measured in Envoy, this
/// is cheaper than one call replacing the whole map, which Envoy rebuilds
/// line by line, even with five edits (docs/figures.md, "CPU per request in Envoy, side by side"); the
/// `batched_edits` profile keeps the other way measurable (`profile.rs`).
/// If Envoy refuses one edit the caller refuses the request, so edits made
/// before it never reach an upstream.
fn apply_edits(
    host: &dyn Host,
    verdict: &Verdict,
    headers: &[(String, Vec<u8>)],
) -> Result<(), String> {
    if profile::BATCHED_EDITS {
        if verdict.edits().is_empty() {
            return Ok(());
        }
        return host
            .set_request_headers(&verdict.edited_map(headers))
            .map_err(|e| format!("Envoy refused the edited request headers: {}", e.0));
    }
    for edit in verdict.edits() {
        let (name, result) = match edit {
            Edit::Remove(name) => (name, host.set_request_header(name, None)),
            Edit::Set(name, value) => (name, host.set_request_header(name, Some(value))),
        };
        result.map_err(|e| format!("Envoy refused to edit request header {name:?}: {}", e.0))?;
    }
    Ok(())
}

/// Connection facts, fetched from the host only when a check asks.
struct HostConnection<'h>(&'h dyn Host);

impl Connection for HostConnection<'_> {
    fn is_tls(&self) -> bool {
        self.0
            .property(&["connection", "tls_version"])
            .is_some_and(|v| !v.is_empty())
    }

    fn peer_certificate_sha256(&self) -> Option<[u8; 32]> {
        let hex = self
            .0
            .property(&["connection", "sha256_peer_certificate_digest"])?;
        crate::wire::decode_hex32(&hex)
    }
}

impl Gate {
    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Flow {
        let shared = Rc::clone(&self.shared);
        let config = &shared.config;
        let headers = match host.request_headers() {
            Ok(h) => h,
            Err(e) => {
                self.stream = Stream::Done { forwarded: false };
                return shared.internal(
                    host,
                    Verdict::empty(),
                    &format!("cannot read the request headers: {}", e.0),
                );
            }
        };
        let request = Request::from_map(&headers);
        profile::panic_probe(request.path);
        if profile::READ_ONLY {
            return Flow::Continue;
        }
        if config.is_refresh_path(request.path) {
            // Answered here, before any rule, never by the upstream.
            let method = request.method.to_owned();
            let content_type = headers
                .iter()
                .find(|(n, _)| n == "content-type")
                .map(|(_, v)| v.clone());
            let is_post = method == "POST";
            self.stream = Stream::Refresh {
                method,
                content_type,
            };
            if end_of_stream || !is_post {
                self.answer_refresh(host, &[]);
            }
            return Flow::Pause;
        }
        shared.before_decision(host);
        let verdict = {
            let list = shared.list.borrow();
            let revocations = Revocations {
                list: list.snapshot.as_ref(),
                fresh_at: list.fresh_at,
                lost: list.lost,
            };
            let mut cache = shared.cache.borrow_mut();
            config.decide_with(
                &request,
                &HostConnection(host),
                revocations,
                now_secs(host),
                &mut cache,
            )
        };
        self.stream = Stream::Done { forwarded: false };

        if let Some(reply) = shared.replies.for_verdict(&verdict) {
            if shared.debug.get() {
                let path = request.path.split(|b| *b == b'?').next().unwrap_or(&[]);
                host.log(
                    LogLevel::Debug,
                    &format!(
                        "refused {} {}: {}",
                        request.method,
                        String::from_utf8_lossy(path),
                        verdict.decision.reason().map_or("", |r| r.as_str())
                    ),
                );
            }
            shared.record(host, &verdict);
            shared.reply(host, reply);
            return Flow::Pause;
        }

        if !profile::NO_EDITS {
            if let Err(why) = apply_edits(host, &verdict, &headers) {
                return shared.internal(host, verdict.clone(), &why);
            }
        }
        shared.record(host, &verdict);
        self.stream = Stream::Done { forwarded: true };
        Flow::Continue
    }

    pub fn on_request_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        match self.stream {
            Stream::Done { forwarded: true } => Flow::Continue,
            Stream::Open => self.undecided(host, "body"),
            Stream::Done { forwarded: false } => Flow::Pause,
            Stream::Refresh { .. } => {
                if body_size > MAX_FORM_BYTES {
                    let answer = refresh::invalid_request(
                        refresh::FormError::TooLarge.description(),
                        Verdict::empty(),
                    );
                    self.stream = Stream::Done { forwarded: false };
                    self.shared.record(host, &answer.verdict);
                    self.shared.reply(host, &answer.reply);
                } else if end_of_stream {
                    self.answer_buffered_refresh(host);
                }
                // Envoy buffers the body until the last chunk.
                Flow::Pause
            }
        }
    }

    /// Request trailers end the request (HTTP/2, or chunked HTTP/1.1 with
    /// trailers): a refresh request is answered now with what was
    /// buffered (without this, the SDK's default would let it go on); a
    /// forwarded request loses any forged claim header or token the
    /// trailers carry, as its headers did, since an upstream may read
    /// trailers as headers.
    pub fn on_request_trailers(&mut self, host: &dyn Host) -> Flow {
        match self.stream {
            Stream::Done { forwarded: true } => self.strip_trailers(host),
            Stream::Open => self.undecided(host, "trailers"),
            Stream::Done { forwarded: false } => Flow::Pause,
            Stream::Refresh { .. } => {
                self.answer_buffered_refresh(host);
                Flow::Pause
            }
        }
    }

    fn strip_trailers(&mut self, host: &dyn Host) -> Flow {
        let shared = Rc::clone(&self.shared);
        let trailers = match host.request_trailers() {
            Ok(t) => t,
            Err(e) => {
                self.stream = Stream::Done { forwarded: false };
                return shared.internal(
                    host,
                    Verdict::empty(),
                    &format!("cannot read the request trailers: {}", e.0),
                );
            }
        };
        for name in shared.config.forged_names(&trailers, true) {
            if let Err(e) = host.remove_request_trailer(name) {
                self.stream = Stream::Done { forwarded: false };
                return shared.internal(
                    host,
                    Verdict::empty(),
                    &format!("Envoy refused to remove request trailer {name:?}: {}", e.0),
                );
            }
        }
        Flow::Continue
    }

    /// A callback for a request the gate never decided (its headers never
    /// reached the filter): refused, never forwarded undecided.
    fn undecided(&mut self, host: &dyn Host, what: &str) -> Flow {
        self.stream = Stream::Done { forwarded: false };
        self.shared.internal(
            host,
            Verdict::empty(),
            &format!("request {what} arrived before its headers were decided"),
        )
    }

    fn answer_buffered_refresh(&mut self, host: &dyn Host) {
        match host.request_body(MAX_FORM_BYTES + 1) {
            Ok(body) => self.answer_refresh(host, &body),
            Err(e) => {
                self.stream = Stream::Done { forwarded: false };
                let shared = Rc::clone(&self.shared);
                shared.internal(
                    host,
                    Verdict::empty(),
                    &format!("cannot read the refresh request body: {}", e.0),
                );
            }
        }
    }

    /// Answers a request on the refresh path, from its buffered body.
    fn answer_refresh(&mut self, host: &dyn Host, body: &[u8]) {
        let shared = Rc::clone(&self.shared);
        let Stream::Refresh {
            method,
            content_type,
        } = std::mem::replace(&mut self.stream, Stream::Done { forwarded: false })
        else {
            return;
        };
        let mut jti = [0u8; 16];
        if !host.random(&mut jti) {
            shared.internal(host, Verdict::empty(), "no randomness for a new token id");
            return;
        }
        shared.before_decision(host);
        let answer = {
            let list = shared.list.borrow();
            let revocations = Revocations {
                list: list.snapshot.as_ref(),
                fresh_at: list.fresh_at,
                lost: list.lost,
            };
            let req = RefreshRequest {
                method: &method,
                content_type: content_type.as_deref(),
                body,
            };
            shared.config.refresh(
                &req,
                &HostConnection(host),
                revocations,
                now_secs(host),
                jti,
            )
        };
        shared.record(host, &answer.verdict);
        shared.reply(host, &answer.reply);
    }
}
