//! The revocation service (root id `tokengate-revocations`, a singleton on
//! Envoy's main thread): polls the list over HTTP and publishes snapshots.
//!
//! Each poll sends `If-None-Match` with the last `ETag`. A 200 is checked
//! (size, signature, shape, rising version) and, when good, built into a
//! [`Snapshot`] and published through shared data; a 304 only refreshes the
//! time of the last successful fetch. Any failure keeps the list in force
//! unchanged: nothing already revoked becomes valid through a fault.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

use super::host::{self, Metric};
use crate::config::{Secrets, ServiceConfig};
use crate::revocation::{Document, Snapshot};
use crate::shared::{Published, SNAPSHOT_KEY, STATE_KEY};

/// The service's tick: fine enough that a poll starts within 200 ms of its
/// due time, so a revocation is enforced within `poll_interval_s` + 1 s.
const TICK: Duration = Duration::from_millis(200);

struct Metrics {
    entries: Metric,
    version: Metric,
    age_s: Metric,
    fetch_ok: Metric,
    fetch_not_modified: Metric,
    fetch_failed: Metric,
    rollback_refused: Metric,
}

impl Metrics {
    fn define() -> Metrics {
        Metrics {
            entries: Metric::gauge("tokengate.revocation.entries"),
            version: Metric::gauge("tokengate.revocation.version"),
            age_s: Metric::gauge("tokengate.revocation.age_s"),
            fetch_ok: Metric::counter("tokengate.revocation.fetch_ok"),
            fetch_not_modified: Metric::counter("tokengate.revocation.fetch_not_modified"),
            fetch_failed: Metric::counter("tokengate.revocation.fetch_failed"),
            rollback_refused: Metric::counter("tokengate.revocation.rollback_refused"),
        }
    }
}

#[derive(Default)]
pub struct Poller {
    config: Option<ServiceConfig>,
    metrics: Option<Metrics>,
    /// Milliseconds (host clock) when the last poll was sent.
    last_poll_ms: Option<u64>,
    in_flight: Option<u32>,
    etag: Option<Vec<u8>>,
    version: Option<u64>,
    last_fetch: Option<u64>,
}

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

impl Poller {
    pub fn on_configure(&mut self, _size: usize) -> bool {
        let Some(json) = host::plugin_configuration() else {
            host::warn("the service configuration is empty");
            return false;
        };
        match ServiceConfig::from_json(&json, &Secrets::process_env()) {
            Ok(config) => {
                self.config = Some(config);
                self.metrics = Some(Metrics::define());
                let _ = hostcalls::set_tick_period(TICK);
                true
            }
            Err(e) => {
                host::warn(&format!("configuration refused: {e}"));
                false
            }
        }
    }

    pub fn on_tick(&mut self) {
        let Some(config) = &self.config else { return };
        let now = now_ms();
        if let (Some(m), Some(at)) = (&self.metrics, self.last_fetch) {
            m.age_s.record((now / 1000).saturating_sub(at));
        }
        if self.in_flight.is_some() {
            return;
        }
        let due = self
            .last_poll_ms
            .is_none_or(|at| now.saturating_sub(at) >= config.poll_interval_s.saturating_mul(1000));
        if !due {
            return;
        }
        self.last_poll_ms = Some(now);
        let etag = self
            .etag
            .as_deref()
            .and_then(|e| std::str::from_utf8(e).ok());
        let mut headers = vec![
            (":method", "GET"),
            (":path", config.path.as_str()),
            (":authority", config.authority.as_str()),
        ];
        if let Some(etag) = etag {
            headers.push(("if-none-match", etag));
        }
        match hostcalls::dispatch_http_call(
            &config.cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(config.timeout_ms),
        ) {
            Ok(token) => self.in_flight = Some(token),
            Err(status) => self.fail(&format!(
                "cannot call cluster {:?}: {status:?}",
                config.cluster
            )),
        }
    }

    fn fail(&self, why: &str) {
        if let Some(m) = &self.metrics {
            m.fetch_failed.increment();
        }
        host::warn(&format!("fetch failed, keeping the list in force: {why}"));
    }

    pub fn on_http_call_response(
        &mut self,
        token: u32,
        headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if self.in_flight != Some(token) {
            return;
        }
        self.in_flight = None;
        if headers == 0 {
            // No response at all (reset, timeout, a body over Envoy's
            // callout buffer): reading a header now would make the SDK
            // panic on the host's BadArgument.
            self.fail("no response (connection failure, timeout, or a body over Envoy's callout buffer limit)");
            return;
        }
        match self.accept(body_size) {
            Ok(()) => {}
            Err(why) => self.fail(&why),
        }
    }

    fn accept(&mut self, body_size: usize) -> Result<(), String> {
        let (Some(config), Some(metrics)) = (&self.config, &self.metrics) else {
            return Ok(());
        };
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .unwrap_or_default();
        let now = host::now_secs();
        match status.as_slice() {
            b"304" => {
                if self.version.is_none() {
                    return Err("304 Not Modified before any list was received".into());
                }
                metrics.fetch_not_modified.increment();
                self.last_fetch = Some(now);
                self.publish_state(now);
                return Ok(());
            }
            b"200" => {}
            b"" => return Err("no response (connection failure or timeout)".into()),
            other => return Err(format!("status {}", String::from_utf8_lossy(other))),
        }
        if body_size > config.max_bytes {
            return Err(format!(
                "body of {body_size} bytes is over max_bytes ({})",
                config.max_bytes
            ));
        }
        let body = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::HttpCallResponseBody,
            0,
            body_size,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let doc = match &config.verify_key {
            Some(key) => Document::parse_signed(&body, key),
            None => Document::parse_json(&body),
        }
        .map_err(|e| e.to_string())?;
        let etag = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, "etag")
            .ok()
            .flatten();
        if let Some(in_force) = self.version {
            if doc.version < in_force {
                metrics.rollback_refused.increment();
                return Err(format!(
                    "version {} is lower than {in_force} in force (rollback refused)",
                    doc.version
                ));
            }
            if doc.version == in_force {
                // Same list: a fresh fetch that changes nothing.
                metrics.fetch_ok.increment();
                self.etag = etag;
                self.last_fetch = Some(now);
                self.publish_state(now);
                return Ok(());
            }
        }
        let snapshot = Snapshot::build(&doc, now);
        if !host::set_shared_data(SNAPSHOT_KEY, snapshot.as_bytes()) {
            return Err("cannot write the snapshot to shared data".into());
        }
        metrics.fetch_ok.increment();
        metrics.entries.record(snapshot.len() as u64);
        metrics.version.record(doc.version);
        self.version = Some(doc.version);
        self.etag = etag;
        self.last_fetch = Some(now);
        self.publish_state(now);
        Ok(())
    }

    fn publish_state(&self, now: u64) {
        if let Some(version) = self.version {
            let state = Published {
                generation: version,
                last_fetch: now,
            };
            host::set_shared_data(STATE_KEY, &state.encode());
        }
        if let Some(m) = &self.metrics {
            m.age_s.record(0);
        }
    }
}
