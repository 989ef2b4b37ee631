//! The revocation service (root id `tokengate-revocations`, a singleton on
//! Envoy's main thread): sends the polls the follower asks for, hands it the
//! responses, and writes what it says to shared data.
//!
//! All the logic (when to poll, what a 304, a 200, a rollback or a failure
//! does, what is published) is `follower::Follower`'s; this file only moves
//! bytes between it and Envoy, and counts.

use super::host::{now_secs, Host, LogLevel, MetricKind};
use crate::config::{Secrets, ServiceConfig};
use crate::revocation::follower::{Follower, Outcome};
use crate::shared::{self, Published, SNAPSHOT_KEY, STATE_KEY};

/// The service's tick: fine enough that a poll starts within 200 ms of its
/// due time, so a revocation is enforced within `poll_interval_s` + 1 s.
const TICK_MS: u64 = 200;

struct Metrics {
    entries: Option<u32>,
    version: Option<u32>,
    age_s: Option<u32>,
    fetch_ok: Option<u32>,
    fetch_not_modified: Option<u32>,
    fetch_failed: Option<u32>,
    rollback_refused: Option<u32>,
}

impl Metrics {
    fn define(host: &dyn Host) -> Metrics {
        let gauge = |name: &str| host.define_metric(MetricKind::Gauge, name);
        let counter = |name: &str| host.define_metric(MetricKind::Counter, name);
        Metrics {
            entries: gauge("tokengate.revocation.entries"),
            version: gauge("tokengate.revocation.version"),
            age_s: gauge("tokengate.revocation.age_s"),
            fetch_ok: counter("tokengate.revocation.fetch_ok"),
            fetch_not_modified: counter("tokengate.revocation.fetch_not_modified"),
            fetch_failed: counter("tokengate.revocation.fetch_failed"),
            rollback_refused: counter("tokengate.revocation.rollback_refused"),
        }
    }
}

fn bump(host: &dyn Host, id: Option<u32>) {
    if let Some(id) = id {
        let _ = host.increment_metric(id);
    }
}

fn set(host: &dyn Host, id: Option<u32>, value: u64) {
    if let Some(id) = id {
        let _ = host.record_metric(id, value);
    }
}

#[derive(Default)]
pub struct Poller {
    state: Option<State>,
}

struct State {
    config: ServiceConfig,
    follower: Follower,
    metrics: Metrics,
    in_flight: Option<u32>,
    /// The last version another writer was found to have published (it is
    /// logged once per version).
    foreign: Option<u64>,
}

/// What is published in the vm_id now, whoever wrote it, with the CAS
/// tokens of both keys: every write is made against them, so that two
/// services (or any module) sharing the vm_id never move the list
/// backwards, nor leave a state that announces another writer's snapshot.
struct InForce {
    state: Option<Published>,
    state_cas: u32,
    snapshot_cas: u32,
}

impl InForce {
    fn read(host: &dyn Host) -> InForce {
        let (state, state_cas) = host.shared_data_cas(STATE_KEY);
        let (_, snapshot_cas) = host.shared_data_cas(SNAPSHOT_KEY);
        InForce {
            state: state.as_deref().and_then(Published::decode),
            state_cas,
            snapshot_cas,
        }
    }

    /// The published version, when it is not `mine`.
    fn other_than(&self, mine: u64) -> Option<u64> {
        self.state
            .map(|p| p.generation)
            .filter(|&generation| generation != mine)
    }
}

impl Poller {
    pub fn on_configure(&mut self, host: &dyn Host) -> bool {
        let Some(json) = host.plugin_configuration() else {
            host.log(LogLevel::Warn, "the service configuration is empty");
            return false;
        };
        let config = match ServiceConfig::from_json(&json, &Secrets::process_env()) {
            Ok(config) => config,
            Err(e) => {
                host.log(LogLevel::Warn, &format!("configuration refused: {e}"));
                return false;
            }
        };
        if host.set_tick_period_ms(TICK_MS).is_err() {
            host.log(
                LogLevel::Warn,
                "cannot set the tick period: the list would never be fetched",
            );
            return false;
        }
        let mut follower = Follower::new(&config);
        // A reloaded service VM starts from what is published: its version
        // stays the rollback floor.
        let published = host
            .shared_data(STATE_KEY)
            .and_then(|b| Published::decode(&b));
        let snapshot = shared::read_snapshot(|key| host.shared_data(key));
        follower.recover(published, snapshot.as_ref());
        let metrics = Metrics::define(host);
        if let (Some(version), Some(entries)) = (follower.version(), follower.entries()) {
            set(host, metrics.version, version);
            set(host, metrics.entries, entries);
        }
        self.state = Some(State {
            config,
            follower,
            metrics,
            in_flight: None,
            foreign: None,
        });
        true
    }

    pub fn on_tick(&mut self, host: &dyn Host) {
        let Some(s) = &mut self.state else { return };
        let now_ms = host.now_ms();
        if let Some(age) = s.follower.age_s(now_ms / 1000) {
            set(host, s.metrics.age_s, age);
        }
        let Some(etag) = s.follower.poll(now_ms) else {
            return;
        };
        let mut headers = vec![
            (":method", "GET"),
            (":path", s.config.path.as_str()),
            (":authority", s.config.authority.as_str()),
        ];
        if let Some(etag) = etag.as_deref() {
            headers.push(("if-none-match", etag));
        }
        match host.dispatch_http_call(&s.config.cluster, &headers, s.config.timeout_ms) {
            Ok(token) => s.in_flight = Some(token),
            Err(e) => {
                let why = format!("cluster {:?}: {}", s.config.cluster, e.0);
                let outcome = s.follower.not_sent(&why);
                s.handle(host, outcome);
            }
        }
    }

    pub fn on_http_call_response(
        &mut self,
        host: &dyn Host,
        token: u32,
        headers: usize,
        body_size: usize,
    ) {
        let Some(s) = &mut self.state else { return };
        if s.in_flight != Some(token) {
            return;
        }
        s.in_flight = None;
        // Without response headers (reset, timeout, a body over Envoy's
        // callout buffer) there is nothing to read.
        let status = (headers > 0)
            .then(|| host.http_call_response_header(":status"))
            .flatten();
        let etag = (headers > 0)
            .then(|| host.http_call_response_header("etag"))
            .flatten();
        let outcome = s.follower.on_response(
            status.as_deref(),
            etag,
            body_size,
            || host.http_call_response_body(body_size),
            s.config.verify_key.as_ref(),
            now_secs(host),
        );
        s.handle(host, outcome);
    }
}

impl State {
    fn handle(&mut self, host: &dyn Host, outcome: Outcome) {
        let m = &self.metrics;
        match outcome {
            Outcome::Publish(publish) => {
                let now = InForce::read(host);
                let version = publish.state.generation;
                if let Some(higher) = now.other_than(version).filter(|&g| g > version) {
                    bump(host, m.rollback_refused);
                    self.another_writer(host, higher, version);
                    return;
                }
                let written = host
                    .set_shared_data(SNAPSHOT_KEY, publish.snapshot.as_bytes(), now.snapshot_cas)
                    .and_then(|()| {
                        host.set_shared_data(STATE_KEY, &publish.state.encode(), now.state_cas)
                    });
                if let Err(e) = written {
                    bump(host, m.fetch_failed);
                    host.log(
                        LogLevel::Warn,
                        &format!(
                            "fetch failed, keeping the list in force: cannot write version {} to shared data: {}",
                            publish.state.generation, e.0
                        ),
                    );
                    return;
                }
                bump(host, m.fetch_ok);
                set(host, m.entries, publish.entries());
                set(host, m.version, publish.state.generation);
                set(
                    host,
                    m.age_s,
                    now_secs(host).saturating_sub(publish.state.fresh_at),
                );
                self.follower.published(publish);
            }
            Outcome::Confirmed {
                state,
                not_modified,
            } => {
                let now = InForce::read(host);
                // Confirming the list in force only says it is fresh: never
                // over another writer's version, whose snapshot it is not.
                if let Some(other) = now.other_than(state.generation) {
                    bump(host, m.fetch_failed);
                    self.another_writer(host, other, state.generation);
                    return;
                }
                if let Err(e) = host.set_shared_data(STATE_KEY, &state.encode(), now.state_cas) {
                    bump(host, m.fetch_failed);
                    host.log(
                        LogLevel::Warn,
                        &format!("cannot write the list's state to shared data: {}; workers will see it age", e.0),
                    );
                    return;
                }
                bump(
                    host,
                    if not_modified {
                        m.fetch_not_modified
                    } else {
                        m.fetch_ok
                    },
                );
                set(host, m.age_s, now_secs(host).saturating_sub(state.fresh_at));
            }
            Outcome::Failed { why, rollback } => {
                bump(host, m.fetch_failed);
                if rollback {
                    bump(host, m.rollback_refused);
                }
                host.log(
                    LogLevel::Warn,
                    &format!("fetch failed, keeping the list in force: {why}"),
                );
            }
            Outcome::Stale => {}
        }
    }

    /// Another writer in the vm_id has published `theirs`: this service
    /// writes nothing over it. Logged once per version.
    fn another_writer(&mut self, host: &dyn Host, theirs: u64, mine: u64) {
        if self.foreign.replace(theirs) != Some(theirs) {
            host.log(
                LogLevel::Warn,
                &format!(
                    "version {theirs} is published in this vm_id by another writer \
                     (a second revocation service?); this service's version {mine} \
                     is not written over it"
                ),
            );
        }
    }
}
