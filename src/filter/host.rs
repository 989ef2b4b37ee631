//! Thin, non-panicking wrappers over the host calls the adapter uses.
//!
//! Every call here returns what the host said or a neutral value; none
//! unwraps. Logging never formats secrets: callers pass finished messages.

use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MapType, MetricType};

pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

pub fn debug_enabled() -> bool {
    matches!(
        hostcalls::get_log_level(),
        Ok(LogLevel::Trace | LogLevel::Debug)
    )
}

/// Unix seconds from the host clock (0 if the host cannot tell).
pub fn now_secs() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

/// The plugin's root id (`plugin_root_id` attribute).
pub fn root_id() -> Option<String> {
    property(&["plugin_root_id"]).and_then(|b| String::from_utf8(b).ok())
}

pub fn plugin_configuration() -> Option<Vec<u8>> {
    hostcalls::get_buffer(
        proxy_wasm::types::BufferType::PluginConfiguration,
        0,
        usize::MAX,
    )
    .ok()
    .flatten()
}

/// Sets filter state `wasm.<name>` for access logs; ignored outside a request.
pub fn set_filter_state(name: &str, value: &[u8]) {
    let _ = hostcalls::set_property(vec![name], Some(value));
}

/// Every request header, as Envoy holds them (names lower-case).
pub fn request_headers() -> Vec<(String, Vec<u8>)> {
    hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default()
}

pub fn set_request_header(name: &str, value: Option<&[u8]>) {
    let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, value);
}

pub fn shared_data(key: &str) -> Option<Vec<u8>> {
    hostcalls::get_shared_data(key).ok().and_then(|(v, _)| v)
}

pub fn set_shared_data(key: &str, value: &[u8]) -> bool {
    hostcalls::set_shared_data(key, Some(value), None).is_ok()
}

/// A counter or gauge, defined once per VM; the same name is one stat for
/// every VM, so counts add up across workers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Metric(Option<u32>);

impl Metric {
    pub fn counter(name: &str) -> Metric {
        Metric(hostcalls::define_metric(MetricType::Counter, name).ok())
    }

    pub fn gauge(name: &str) -> Metric {
        Metric(hostcalls::define_metric(MetricType::Gauge, name).ok())
    }

    pub fn increment(self) {
        if let Some(id) = self.0 {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    pub fn record(self, value: u64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}
