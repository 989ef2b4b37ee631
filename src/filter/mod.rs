//! The adapter: the filter and the service as Envoy runs them, talking to
//! Envoy only through the [`host::Host`] interface.
//!
//! Everything here is plain Rust and runs natively against a recording host
//! in the tests (`tests/adapter.rs`); only `proxy` (built for `wasm32`)
//! knows proxy-wasm: it implements `Host` over the SDK's host calls and
//! forwards Envoy's callbacks. Every host call goes through
//! `proxy_wasm::hostcalls`, which returns `Result`, never through the SDK's
//! trait wrappers that unwrap.
//!
//! ```text
//!   Envoy worker ──callbacks──▶ proxy ──▶ http::Gate ──Request──▶ Config::decide ──Verdict──▶ edits / local reply
//!                                              ▲
//!   shared data ◀── service::Poller ◀── follower::Follower (singleton: fetch, verify, build Snapshot)
//!        └──────── on_tick ──▶ http::GateRoot (worker copy of the snapshot)
//! ```

pub mod host;
pub mod http;
mod profile;
pub mod service;

#[cfg(target_arch = "wasm32")]
mod proxy;

use host::{Host, LogLevel};

/// The root id of the HTTP filter.
pub const FILTER_ROOT_ID: &str = "tokengate";
/// The root id of the singleton revocation service.
pub const SERVICE_ROOT_ID: &str = "tokengate-revocations";

/// A root context. Envoy creates every root through one callback and tells
/// it its root id only at configuration; the role is picked then.
#[derive(Default)]
pub enum Root {
    #[default]
    Unknown,
    Filter(http::GateRoot),
    Service(Box<service::Poller>),
}

impl Root {
    pub fn on_configure(&mut self, host: &dyn Host) -> bool {
        let root_id = host
            .property(&["plugin_root_id"])
            .and_then(|b| String::from_utf8(b).ok());
        match root_id.as_deref() {
            Some(SERVICE_ROOT_ID) => {
                let mut poller = Box::<service::Poller>::default();
                let ok = poller.on_configure(host);
                *self = Root::Service(poller);
                ok
            }
            Some(FILTER_ROOT_ID) | None => {
                let mut root = http::GateRoot::default();
                let ok = root.on_configure(host);
                *self = Root::Filter(root);
                ok
            }
            Some(other) => {
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "unknown root_id {other:?}; use {FILTER_ROOT_ID:?} or {SERVICE_ROOT_ID:?}"
                    ),
                );
                false
            }
        }
    }

    pub fn on_tick(&mut self, host: &dyn Host) {
        match self {
            Root::Filter(root) => root.on_tick(host),
            Root::Service(poller) => poller.on_tick(host),
            Root::Unknown => {}
        }
    }

    pub fn on_http_call_response(
        &mut self,
        host: &dyn Host,
        token: u32,
        headers: usize,
        body: usize,
    ) {
        if let Root::Service(poller) = self {
            poller.on_http_call_response(host, token, headers, body);
        }
    }

    /// The per-request filter; `None` for the service or an unconfigured root.
    pub fn new_request(&self) -> Option<http::Gate> {
        match self {
            Root::Filter(root) => root.new_request(),
            _ => None,
        }
    }
}
