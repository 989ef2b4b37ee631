//! The benchmark's "wasm filter that does nothing": a root context that makes
//! one HTTP context per request, and an HTTP context that keeps every default
//! (each callback answers `Continue`). What it costs in Envoy is the price of
//! running any proxy-wasm filter at all: the VM calls per request and the
//! context's creation and deletion.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot) });
}}

struct NoopRoot;

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Noop))
    }
}

struct Noop;

impl Context for Noop {}

impl HttpContext for Noop {}
