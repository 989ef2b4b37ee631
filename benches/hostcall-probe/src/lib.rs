//! The host-call probe: what one proxy-wasm host call of each kind costs in
//! Envoy, measured rather than guessed (benches/hostcalls.sh).
//!
//! Its plugin configuration names one kind of host call and how many to make
//! per request, on the request headers:
//!
//! ```json
//! {"calls": "clock", "n": 20}
//! ```
//!
//! With `n` 0 (or `"calls": "none"`) it is the do-nothing filter of
//! benches/noop-filter: each callback answers `Continue`. The benchmark runs
//! it at n = 0 and n = N beside each other; (CPU at N − CPU at 0) / N is the
//! cost of one call. The kinds, each the call tokengate makes (or could make)
//! on the request path:
//!
//! | `calls` | host call | what tokengate uses it for |
//! |---|---|---|
//! | `clock` | `get_current_time_nanoseconds` | the time, once per request |
//! | `headers` | `get_header_map_pairs` (the whole request map) | reading the request, once |
//! | `header` | `get_header_map_value` (`authorization`) | the way not taken: one header at a time |
//! | `set_headers` | `set_header_map_pairs` (a 7-line map) | the `batched_edits` profile only: the whole map at once |
//! | `replace_header` | `replace_header_map_value` (`x-auth-subject`) | one claim header set (one per edit, as shipped) |
//! | `remove_header` | `remove_header_map_value` (`x-auth-subject`) | one removal (the token, a forged header) |
//! | `set_property` | `set_property` (filter state `wasm.bench.pI`, a distinct key per call, 80 bytes) | the access-log record, once |
//! | `metric` | `increment_metric` | the decision's counter, once |
//! | `get_property` | `get_property` (`connection.tls_version`) | TLS and certificate checks, when configured |
//! | `reply` | `send_http_response` (200, one header, a 60-byte body), once whatever `n` says | a refusal |
//!
//! `set_headers` replaces the request's map with a fixed one shaped like
//! tokengate's edited map (the pseudo-headers, `x-forwarded-proto`,
//! `x-request-id`, `x-auth-subject`; no `authorization`), the same every
//! time; the route (a `direct_response`) does not care. `reply` cannot be
//! repeated: it ends the request with a local 200 instead of the route's
//! `direct_response` 200, so its figure is "a local reply instead of the
//! route", not a host call alone.
//!
//! A configuration it cannot read (unknown kind, no `n`) makes
//! `on_configure` fail, so Envoy refuses to start: a typo never measures
//! the noop.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(ProbeRoot { plan: None }) });
}}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    None,
    Clock,
    Headers,
    Header,
    SetHeaders,
    ReplaceHeader,
    RemoveHeader,
    SetProperty,
    Metric,
    GetProperty,
    Reply,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "none" => Kind::None,
            "clock" => Kind::Clock,
            "headers" => Kind::Headers,
            "header" => Kind::Header,
            "set_headers" => Kind::SetHeaders,
            "replace_header" => Kind::ReplaceHeader,
            "remove_header" => Kind::RemoveHeader,
            "set_property" => Kind::SetProperty,
            "metric" => Kind::Metric,
            "get_property" => Kind::GetProperty,
            "reply" => Kind::Reply,
            _ => return None,
        })
    }
}

/// What every request does, fixed at configuration time.
struct Plan {
    kind: Kind,
    n: usize,
    metric: u32,
    /// `bench.p0` … : one filter-state key per call.
    property_names: Vec<String>,
}

const LOG_RECORD: &[u8] =
    br#"{"decision":"allow","sub":"user-00000","jti":"0123456789abcdef01234567","kid":"demo"}"#;
const EDITED_MAP: [(&str, &[u8]); 7] = [
    (":authority", b"127.0.0.1"),
    (":path", b"/orders/42"),
    (":method", b"GET"),
    (":scheme", b"http"),
    ("x-forwarded-proto", b"http"),
    ("x-request-id", b"5e0e7f6c-3b59-4c43-9a1e-5b1a9f0e2c11"),
    ("x-auth-subject", b"user-00000"),
];
const REPLY_BODY: &[u8] = br#"{"error":"probe","error_description":"a local reply, measured"}"#;

/// Reads `{"calls": "<kind>", "n": <count>}` (whitespace anywhere; nothing else).
fn parse_config(text: &str) -> Result<(Kind, usize), String> {
    fn after<'t>(text: &'t str, key: &str) -> Option<&'t str> {
        let quoted = format!("\"{key}\"");
        let rest = &text[text.find(&quoted)? + quoted.len()..];
        let rest = rest.trim_start();
        Some(rest.strip_prefix(':')?.trim_start())
    }
    let calls = after(text, "calls").ok_or("no \"calls\"")?;
    let calls = calls.strip_prefix('"').ok_or("\"calls\" is not a string")?;
    let name = &calls[..calls.find('"').ok_or("unterminated \"calls\"")?];
    let kind = Kind::parse(name).ok_or_else(|| format!("unknown kind {name:?}"))?;
    let n = match after(text, "n") {
        Some(rest) => {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits
                .parse::<usize>()
                .map_err(|_| "\"n\" is not a count".to_string())?
        }
        None if matches!(kind, Kind::None | Kind::Reply) => 0,
        None => return Err("no \"n\"".into()),
    };
    Ok((kind, n))
}

struct ProbeRoot {
    plan: Option<Rc<Plan>>,
}

impl Context for ProbeRoot {}

impl RootContext for ProbeRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let (kind, n) = if text.trim().is_empty() {
            (Kind::None, 0)
        } else {
            match parse_config(&text) {
                Ok(v) => v,
                Err(e) => {
                    let _ = hostcalls::log(
                        LogLevel::Error,
                        &format!("hostcall-probe: {e} in {text:?}"),
                    );
                    return false;
                }
            }
        };
        let Ok(metric) = hostcalls::define_metric(MetricType::Counter, "bench.probe") else {
            return false;
        };
        let property_names = match kind {
            Kind::SetProperty => (0..n).map(|i| format!("bench.p{i}")).collect(),
            _ => Vec::new(),
        };
        self.plan = Some(Rc::new(Plan {
            kind,
            n,
            metric,
            property_names,
        }));
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Probe {
            plan: Rc::clone(self.plan.as_ref()?),
        }))
    }
}

struct Probe {
    plan: Rc<Plan>,
}

impl Context for Probe {}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let plan = &*self.plan;
        let mut failed = 0u32;
        let mut count = |ok: bool| failed += u32::from(!ok);
        match plan.kind {
            Kind::None => {}
            Kind::Clock => {
                for _ in 0..plan.n {
                    count(std::hint::black_box(hostcalls::get_current_time()).is_ok());
                }
            }
            Kind::Headers => {
                for _ in 0..plan.n {
                    count(
                        std::hint::black_box(hostcalls::get_map_bytes(MapType::HttpRequestHeaders))
                            .is_ok(),
                    );
                }
            }
            Kind::Header => {
                for _ in 0..plan.n {
                    let v = hostcalls::get_map_value_bytes(
                        MapType::HttpRequestHeaders,
                        "authorization",
                    );
                    count(std::hint::black_box(v).is_ok());
                }
            }
            Kind::SetHeaders => {
                for _ in 0..plan.n {
                    count(
                        hostcalls::set_map_bytes(MapType::HttpRequestHeaders, EDITED_MAP.to_vec())
                            .is_ok(),
                    );
                }
            }
            Kind::ReplaceHeader => {
                for _ in 0..plan.n {
                    count(
                        hostcalls::set_map_value_bytes(
                            MapType::HttpRequestHeaders,
                            "x-auth-subject",
                            Some(b"user-00000"),
                        )
                        .is_ok(),
                    );
                }
            }
            Kind::RemoveHeader => {
                for _ in 0..plan.n {
                    count(
                        hostcalls::set_map_value_bytes(
                            MapType::HttpRequestHeaders,
                            "x-auth-subject",
                            None,
                        )
                        .is_ok(),
                    );
                }
            }
            Kind::SetProperty => {
                for name in &plan.property_names {
                    count(hostcalls::set_property(vec![name.as_str()], Some(LOG_RECORD)).is_ok());
                }
            }
            Kind::Metric => {
                for _ in 0..plan.n {
                    count(hostcalls::increment_metric(plan.metric, 1).is_ok());
                }
            }
            Kind::GetProperty => {
                for _ in 0..plan.n {
                    let v = hostcalls::get_property(vec!["connection", "tls_version"]);
                    count(std::hint::black_box(v).is_ok());
                }
            }
            Kind::Reply => {
                let sent = hostcalls::send_http_response(
                    200,
                    vec![
                        ("content-type", "application/json"),
                        ("www-authenticate", "Bearer realm=\"orders-api\""),
                    ],
                    Some(REPLY_BODY),
                );
                if sent.is_ok() {
                    return Action::Pause;
                }
                failed += 1;
            }
        }
        if failed > 0 {
            // The benchmark counts 2xx only: a failing call must not pass
            // unseen. A 500 makes the measurement invalid.
            let _ = hostcalls::send_http_response(
                500,
                vec![],
                Some(b"hostcall-probe: a host call failed\n"),
            );
            return Action::Pause;
        }
        Action::Continue
    }
}
