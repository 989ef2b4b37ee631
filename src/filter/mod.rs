//! The proxy-wasm adapter: the only code that talks to Envoy.
//!
//! Compiled for `wasm32` only. It reads what the core needs from the host
//! (headers by name, the clock, connection facts on demand, the revocation
//! snapshot from shared data), calls the core, and applies its answer. Every
//! host call goes through `proxy_wasm::hostcalls`, which returns `Result`,
//! never through the SDK's trait wrappers that unwrap (see ENVOY-NOTES.md).
//!
//! ```text
//!   Envoy worker ──headers──▶ http::Gate ──Request──▶ Config::decide ──Verdict──▶ edits / local reply
//!                                 ▲
//!   shared data ◀── service::Poller (singleton: fetch, verify, build Snapshot)
//!        └──────── on_tick ──▶ http::GateRoot (worker copy of the snapshot)
//! ```

mod host;
mod http;
mod service;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

/// The root id of the HTTP filter.
pub const FILTER_ROOT_ID: &str = "tokengate";
/// The root id of the singleton revocation service.
pub const SERVICE_ROOT_ID: &str = "tokengate-revocations";

// The SDK's entry point macro defines `_initialize` (a `no_mangle` export)
// and calls the WASI constructors, which the `unsafe_code` lint flags; this
// is the crate's only exception.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(super::LogLevel::Trace);
        proxy_wasm::set_root_context(|_| -> Box<dyn super::RootContext> { Box::new(super::Dispatch::default()) });
    }}
}

/// Envoy creates every root context through one callback and tells it its
/// root id only in `on_vm_start`/`on_configure`; this dispatcher picks the
/// role then.
#[derive(Default)]
enum Dispatch {
    #[default]
    Unknown,
    Filter(http::GateRoot),
    Service(Box<service::Poller>),
}

impl proxy_wasm::traits::Context for Dispatch {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        if let Dispatch::Service(s) = self {
            s.on_http_call_response(token, headers, body, trailers);
        }
    }
}

impl RootContext for Dispatch {
    fn on_configure(&mut self, size: usize) -> bool {
        match host::root_id().as_deref() {
            Some(SERVICE_ROOT_ID) => {
                let mut poller = Box::<service::Poller>::default();
                let ok = poller.on_configure(size);
                *self = Dispatch::Service(poller);
                ok
            }
            Some(FILTER_ROOT_ID) | None => {
                let mut root = http::GateRoot::default();
                let ok = root.on_configure(size);
                *self = Dispatch::Filter(root);
                ok
            }
            Some(other) => {
                host::warn(&format!(
                    "unknown root_id {other:?}; use {FILTER_ROOT_ID:?} or {SERVICE_ROOT_ID:?}"
                ));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        match self {
            Dispatch::Filter(root) => root.on_tick(),
            Dispatch::Service(poller) => poller.on_tick(),
            Dispatch::Unknown => {}
        }
    }

    fn create_http_context(
        &self,
        _context_id: u32,
    ) -> Option<Box<dyn proxy_wasm::traits::HttpContext>> {
        match self {
            Dispatch::Filter(root) => root.create_http_context(),
            _ => None,
        }
    }

    fn get_type(&self) -> Option<proxy_wasm::types::ContextType> {
        Some(proxy_wasm::types::ContextType::HttpContext)
    }
}
