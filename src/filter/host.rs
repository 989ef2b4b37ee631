//! The host interface: every call the filter and the service make into
//! Envoy, and nothing else.
//!
//! In Envoy it is implemented by `proxy::ProxyHost` over the proxy-wasm host
//! calls (each a round trip out of the VM); natively, tests implement it
//! with a recording host, so the adapter's real code runs without Envoy and
//! the calls a request costs can be counted. Every call returns what the
//! host said; none panics.

use crate::refusal::Reply;

/// Why the host refused a call (its proxy-wasm status, as text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostError(pub String);

/// What the filter tells Envoy after a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on: the request is forwarded.
    Continue,
    /// Stop here: a local reply was sent, or the body is being buffered.
    Pause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// A request header map as the host hands it over: names lower-case, one
/// entry per line.
pub type HeaderMap = Vec<(String, Vec<u8>)>;

/// The calls into Envoy. Methods take `&self`: the proxy-wasm host keeps no
/// state of ours, and a recording host keeps its log in a cell.
pub trait Host {
    // --- the request being decided
    /// Every request header, in one call.
    fn request_headers(&self) -> Result<HeaderMap, HostError>;
    /// Replaces (or, with `None`, removes) every line of one header.
    fn set_request_header(&self, name: &str, value: Option<&[u8]>) -> Result<(), HostError>;
    /// Replaces the whole request header map in one call.
    fn set_request_headers(&self, headers: &[(&str, &[u8])]) -> Result<(), HostError>;
    /// Every request trailer (HTTP/2, or chunked HTTP/1.1 with trailers).
    fn request_trailers(&self) -> Result<HeaderMap, HostError>;
    /// Removes every line of one request trailer.
    fn remove_request_trailer(&self, name: &str) -> Result<(), HostError>;
    /// Up to `max` bytes of the buffered request body.
    fn request_body(&self, max: usize) -> Result<Vec<u8>, HostError>;
    /// Answers the request locally; it never reaches the upstream.
    fn send_reply(&self, reply: &Reply) -> Result<(), HostError>;
    /// An Envoy attribute (`connection.tls_version`…); `None` if absent.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// Sets filter state `wasm.<name>` for access logs.
    fn set_filter_state(&self, name: &str, value: &[u8]) -> Result<(), HostError>;

    // --- clock and randomness
    /// Milliseconds since the Unix epoch (0 if the host cannot tell).
    fn now_ms(&self) -> u64;
    /// Fills `buf` with random bytes; `false` if none are available.
    fn random(&self, buf: &mut [u8]) -> bool;

    // --- telemetry
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment_metric(&self, id: u32) -> Result<(), HostError>;
    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError>;
    fn log(&self, level: LogLevel, message: &str);
    /// Whether a message at `level` would be written (to skip formatting).
    fn log_enabled(&self, level: LogLevel) -> bool;

    // --- configuration, timers, shared data
    fn plugin_configuration(&self) -> Option<Vec<u8>>;
    fn set_tick_period_ms(&self, ms: u64) -> Result<(), HostError>;
    fn shared_data(&self, key: &str) -> Option<Vec<u8>>;
    /// The value under `key`, if any, and its CAS token (0 when the key
    /// has never been written), for a later [`Host::set_shared_data`].
    fn shared_data_cas(&self, key: &str) -> (Option<Vec<u8>>, u32);
    /// Writes `value` under `key`. With a `cas` other than 0, only if
    /// nobody has written the key since that token was read; otherwise an
    /// error and nothing is written.
    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError>;

    // --- HTTP callouts (the revocation service)
    /// Sends a request to `cluster`; returns the call's token.
    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, HostError>;
    /// A header of the callout's response (during its callback).
    fn http_call_response_header(&self, name: &str) -> Option<Vec<u8>>;
    /// Up to `max` bytes of the callout's response body.
    fn http_call_response_body(&self, max: usize) -> Option<Vec<u8>>;
}

/// Unix seconds from the host clock.
pub fn now_secs(host: &dyn Host) -> u64 {
    host.now_ms() / 1000
}
