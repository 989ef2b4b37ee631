//! Arbitrary bytes as an `:authority` for `policy::parse_authority`, as a
//! configured host for `HostPattern::parse`, and as the `:authority` and
//! `x-forwarded-host` of a request to a configuration with a host rule.
//!
//! Properties:
//! * `parse_authority` agrees with an independent model of the grammar
//!   (`tokengate_fuzz::authority_model`): it accepts exactly what the model
//!   accepts, with the same host, and refuses with one of the reasons the
//!   model finds;
//! * an accepted host is lower-case ASCII, holds no `@`, no `:` outside
//!   brackets, no empty label and no trailing dot; parsing the host again,
//!   alone or with the input's port or `:443`, gives the same host;
//! * no upstream reads another host: whatever is accepted is the host a
//!   lenient upstream reads (`lenient_host`: userinfo before the last `@`
//!   dropped, cut at the first — or the last — `:` unless bracketed, one
//!   trailing dot dropped, lower-cased); in particular, an authority such an
//!   upstream reads as `admin.example.com` is refused or read as exactly
//!   `admin.example.com`, never as another host. A structured pass builds
//!   such authorities on purpose (userinfo, case, trailing dots, port junk);
//! * `HostPattern::parse` never accepts what `parse_authority` refuses: an
//!   exact pattern is a host `parse_authority` returns unchanged, a `*.`
//!   pattern's rest is one; and every such host (with or without `*.`) is
//!   a pattern that fits what it should;
//! * end to end, with rules `hosts: [admin.example.com] → deny`, then
//!   `/ → anonymous`: a request is let through anonymously only when
//!   neither its `:authority` nor any part of its `x-forwarded-host` is
//!   read as `admin.example.com` by the lenient upstreams.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tokengate::config::{Config, Secrets};
use tokengate::gate::{Decision, FixedConnection, Request, Revocations};
use tokengate::policy::{parse_authority, HostPattern};
use tokengate_fuzz::{authority_model, lenient_host, NOW};

const ADMIN: &str = "admin.example.com";

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        let json = serde_json::json!({
            "keys": [{"kid": "k", "alg": "HS256", "secret": "a".repeat(32), "encoding": "utf8"}],
            "rules": [
                {"match": {"prefix": "/", "hosts": [ADMIN]}, "deny": true},
                {"match": {"prefix": "/"}, "anonymous": true}
            ]
        });
        Config::from_json(json.to_string().as_bytes(), &Secrets::Placeholder)
            .unwrap_or_else(|e| panic!("the fuzzing configuration does not compile: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    as_authority(data);
    as_pattern(data);
    through_the_gate(data);
    if let Ok(around) = Around::arbitrary(&mut Unstructured::new(data)) {
        let raw = around.build();
        as_authority(&raw);
        through_the_gate(&raw);
    }
});

fn show(raw: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(raw))
}

fn as_authority(raw: &[u8]) {
    let got = parse_authority(raw);
    let model = authority_model(raw);
    let port = match (&got, &model) {
        (Ok(host), Ok((want, port))) => {
            assert_eq!(
                host,
                want,
                "parse_authority reads another host in {}",
                show(raw)
            );
            port.clone()
        }
        (Err(e), Err(reasons)) => {
            assert!(
                reasons.contains(e),
                "parse_authority refuses {} as {e:?}; the model finds {reasons:?}",
                show(raw)
            );
            None
        }
        (Ok(host), Err(reasons)) => panic!(
            "parse_authority accepts {} as {host:?}; the model refuses it: {reasons:?}",
            show(raw)
        ),
        (Err(e), Ok((host, _))) => panic!(
            "parse_authority refuses {} ({e:?}); the model reads {host:?}",
            show(raw)
        ),
    };

    // The bypass property, stated on its own: what an upstream reads as the
    // admin host is refused or is the admin host.
    for last_colon in [false, true] {
        if lenient_host(raw, last_colon) == ADMIN.as_bytes() {
            assert!(
                got.as_ref().map_or(true, |h| h == ADMIN),
                "{} is {ADMIN} upstream, {got:?} at the gate",
                show(raw)
            );
        }
    }
    let Ok(host) = got else { return };

    assert!(
        host.is_ascii() && !host.bytes().any(|b| b.is_ascii_uppercase()),
        "host {host:?} is not lower-case ASCII"
    );
    assert!(!host.contains('@'), "host {host:?} holds '@'");
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .unwrap_or_else(|| panic!("bracketed host {host:?} does not end in ']'"));
        assert!(
            !inner.contains(['[', ']']),
            "host {host:?} holds more brackets"
        );
    } else {
        assert!(!host.contains(':'), "host {host:?} holds ':'");
        assert!(
            !host.split('.').any(str::is_empty),
            "host {host:?} has an empty label or a trailing dot"
        );
    }

    // Read again, alone and with a port: the same host.
    assert_eq!(
        parse_authority(host.as_bytes()).as_ref(),
        Ok(&host),
        "the host does not read as itself"
    );
    for port in port.iter().map(String::as_str).chain(["443"]) {
        assert_eq!(
            parse_authority(format!("{host}:{port}").as_bytes()).as_ref(),
            Ok(&host),
            "{host}:{port} reads as another host"
        );
    }

    // Every lenient upstream reads the very same host.
    for last_colon in [false, true] {
        let upstream = lenient_host(raw, last_colon);
        assert_eq!(
            upstream,
            host.as_bytes(),
            "{} is {:?} upstream (last colon: {last_colon}), {host:?} at the gate",
            show(raw),
            String::from_utf8_lossy(&upstream)
        );
    }
}

fn as_pattern(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lower = text.to_ascii_lowercase();
    let (name, wildcard) = match lower.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (lower.as_str(), false),
    };
    // A host is a pattern when parse_authority returns it unchanged (no
    // port): exactly, or after "*.".
    let is_host = parse_authority(name.as_bytes()).is_ok_and(|h| h == name);
    match HostPattern::parse(text) {
        Ok(HostPattern::Exact(h)) => {
            assert!(!wildcard, "{text:?} parsed as the exact pattern {h:?}");
            assert_eq!(h, name, "{text:?} parsed as another host");
            assert!(
                is_host,
                "HostPattern::parse accepts {text:?}, parse_authority does not read it as {h:?}"
            );
            assert!(HostPattern::Exact(h.clone()).fits(&h));
        }
        Ok(HostPattern::Suffix(suffix)) => {
            assert!(wildcard, "{text:?} parsed as a wildcard");
            assert_eq!(
                suffix,
                format!(".{name}"),
                "{text:?} parsed as another suffix"
            );
            assert!(
                is_host,
                "HostPattern::parse accepts {text:?}, parse_authority refuses {name:?}"
            );
            let pattern = HostPattern::Suffix(suffix);
            assert!(
                pattern.fits(&format!("a.{name}")),
                "{text:?} does not fit a.{name}"
            );
            assert!(!pattern.fits(name), "{text:?} fits {name:?} itself");
        }
        Err(e) => assert!(
            !is_host,
            "HostPattern::parse refuses {text:?} ({e}), a host parse_authority accepts"
        ),
    }
}

/// Authorities an upstream may well read as the admin host: userinfo (maybe
/// naming another host), the admin host in any case, trailing dots, a port
/// or junk after a colon.
#[derive(Arbitrary, Debug)]
struct Around {
    userinfo: Option<Vec<u8>>,
    host: Host,
    /// Bit i set: the i-th letter upper-cased.
    case: u32,
    trailing_dots: u8,
    after_colon: Option<Vec<u8>>,
    second_colon: Option<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
enum Host {
    Admin,
    Public,
    Bracketed,
    Text(Vec<u8>),
}

impl Around {
    fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(user) = &self.userinfo {
            out.extend_from_slice(user);
            out.push(b'@');
        }
        let host: &[u8] = match &self.host {
            Host::Admin => ADMIN.as_bytes(),
            Host::Public => b"public.example.com",
            Host::Bracketed => b"[::1]",
            Host::Text(t) => t,
        };
        let mut letter = 0;
        for &b in host {
            if b.is_ascii_alphabetic() {
                let upper = self.case.checked_shr(letter).is_some_and(|m| m & 1 == 1);
                out.push(if upper { b.to_ascii_uppercase() } else { b });
                letter += 1;
            } else {
                out.push(b);
            }
        }
        out.extend(std::iter::repeat_n(
            b'.',
            usize::from(self.trailing_dots % 4),
        ));
        for part in [&self.after_colon, &self.second_colon]
            .into_iter()
            .flatten()
        {
            out.push(b':');
            out.extend_from_slice(part);
        }
        out
    }
}

/// The host rule holds against every reading: anonymous only when no
/// lenient upstream reads the admin host in the `:authority` or in a part
/// of `x-forwarded-host`.
fn through_the_gate(raw: &[u8]) {
    let upstream_admin = |raw: &[u8]| {
        let raw = raw.trim_ascii();
        [false, true]
            .iter()
            .any(|&last| lenient_host(raw, last) == ADMIN.as_bytes())
    };
    let decide = |authority: &[u8], headers: &[(String, Vec<u8>)]| {
        let req = Request {
            method: "GET",
            path: b"/x",
            authority,
            headers,
        };
        config()
            .decide(
                &req,
                &FixedConnection::default(),
                Revocations::default(),
                NOW,
            )
            .decision
    };
    if decide(raw, &[]) == Decision::Anonymous {
        assert!(
            !upstream_admin(raw),
            "authority {} let through, {ADMIN} upstream",
            show(raw)
        );
        assert!(
            parse_authority(raw).is_ok_and(|h| h != ADMIN),
            "authority {} let through",
            show(raw)
        );
    }
    let forwarded = vec![("x-forwarded-host".to_owned(), raw.to_vec())];
    if decide(b"public.example.com", &forwarded) == Decision::Anonymous {
        for part in raw.split(|b| *b == b',') {
            assert!(
                !upstream_admin(part),
                "x-forwarded-host {} let through, {ADMIN} upstream in {}",
                show(raw),
                show(part)
            );
        }
    }
}
