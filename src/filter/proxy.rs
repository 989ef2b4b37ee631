//! The proxy-wasm glue: [`Host`] over the SDK's host calls, and Envoy's
//! callbacks forwarded to the adapter. Nothing here decides anything.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};

use super::host::{Flow, HeaderMap, Host, HostError, LogLevel, MetricKind};
use super::{http, Root};
use crate::refusal::Reply;

/// The host as proxy-wasm offers it: stateless, every call a host call.
struct ProxyHost;

fn err(status: proxy_wasm::types::Status) -> HostError {
    HostError(format!("{status:?}"))
}

fn level(level: LogLevel) -> proxy_wasm::types::LogLevel {
    match level {
        LogLevel::Debug => proxy_wasm::types::LogLevel::Debug,
        LogLevel::Info => proxy_wasm::types::LogLevel::Info,
        LogLevel::Warn => proxy_wasm::types::LogLevel::Warn,
        LogLevel::Error => proxy_wasm::types::LogLevel::Error,
        LogLevel::Critical => proxy_wasm::types::LogLevel::Critical,
    }
}

impl Host for ProxyHost {
    fn request_headers(&self) -> Result<HeaderMap, HostError> {
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders).map_err(err)
    }

    fn set_request_header(&self, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
        hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, value).map_err(err)
    }

    fn set_request_headers(&self, headers: &[(&str, &[u8])]) -> Result<(), HostError> {
        hostcalls::set_map_bytes(MapType::HttpRequestHeaders, headers.to_vec()).map_err(err)
    }

    fn request_trailers(&self) -> Result<HeaderMap, HostError> {
        hostcalls::get_map_bytes(MapType::HttpRequestTrailers).map_err(err)
    }

    fn remove_request_trailer(&self, name: &str) -> Result<(), HostError> {
        hostcalls::set_map_value_bytes(MapType::HttpRequestTrailers, name, None).map_err(err)
    }

    fn request_body(&self, max: usize) -> Result<Vec<u8>, HostError> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, max)
            .map(Option::unwrap_or_default)
            .map_err(err)
    }

    fn send_reply(&self, reply: &Reply) -> Result<(), HostError> {
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        hostcalls::send_http_response(reply.status, headers, Some(reply.body.as_bytes()))
            .map_err(err)
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn set_filter_state(&self, name: &str, value: &[u8]) -> Result<(), HostError> {
        hostcalls::set_property(vec![name], Some(value)).map_err(err)
    }

    fn now_ms(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn random(&self, buf: &mut [u8]) -> bool {
        getrandom::getrandom(buf).is_ok()
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
        };
        hostcalls::define_metric(kind, name).ok()
    }

    fn increment_metric(&self, id: u32) -> Result<(), HostError> {
        hostcalls::increment_metric(id, 1).map_err(err)
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        hostcalls::record_metric(id, value).map_err(err)
    }

    fn log(&self, lvl: LogLevel, message: &str) {
        let _ = hostcalls::log(level(lvl), message);
    }

    fn log_enabled(&self, lvl: LogLevel) -> bool {
        hostcalls::get_log_level().is_ok_and(|current| current as u32 <= level(lvl) as u32)
    }

    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
    }

    fn set_tick_period_ms(&self, ms: u64) -> Result<(), HostError> {
        hostcalls::set_tick_period(Duration::from_millis(ms)).map_err(err)
    }

    fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        hostcalls::get_shared_data(key).ok().and_then(|(v, _)| v)
    }

    fn shared_data_cas(&self, key: &str) -> (Option<Vec<u8>>, u32) {
        match hostcalls::get_shared_data(key) {
            Ok((value, cas)) => (value, cas.unwrap_or(0)),
            Err(_) => (None, 0),
        }
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
        hostcalls::set_shared_data(key, Some(value), (cas != 0).then_some(cas)).map_err(err)
    }

    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(
            cluster,
            headers.to_vec(),
            None,
            vec![],
            Duration::from_millis(timeout_ms),
        )
        .map_err(err)
    }

    fn http_call_response_header(&self, name: &str) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
            .ok()
            .flatten()
    }

    fn http_call_response_body(&self, max: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, max)
            .ok()
            .flatten()
    }
}

// The SDK's entry point macro defines `_initialize` (a `no_mangle` export)
// and calls the WASI constructors, which the `unsafe_code` lint flags; this
// is the crate's only exception.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
        // After set_log_level, which installs the SDK's own hook (one that
        // unwraps the log call). A panic is never expected: this leaves a
        // trace of where it happened before the VM aborts, and
        // `failure_policy: FAIL_RELOAD` gives the next request a fresh VM.
        std::panic::set_hook(Box::new(|info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let _ = proxy_wasm::hostcalls::log(
                proxy_wasm::types::LogLevel::Critical,
                &format!("tokengate: panic at {at}; the VM stops and the request is refused"),
            );
        }));
        proxy_wasm::set_root_context(|_| -> Box<dyn super::RootContext> { Box::new(super::ProxyRoot::default()) });
    }}
}

#[derive(Default)]
struct ProxyRoot(Root);

impl Context for ProxyRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, _trailers: usize) {
        self.0
            .on_http_call_response(&ProxyHost, token, headers, body);
    }
}

impl RootContext for ProxyRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.0.on_configure(&ProxyHost)
    }

    fn on_tick(&mut self) {
        self.0.on_tick(&ProxyHost);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ProxyGate(self.0.new_request()?)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct ProxyGate(http::Gate);

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

impl Context for ProxyGate {}

impl HttpContext for ProxyGate {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_headers(&ProxyHost, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_body(&ProxyHost, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        action(self.0.on_request_trailers(&ProxyHost))
    }
}
