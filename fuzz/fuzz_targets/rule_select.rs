//! Random rules and requests for `policy::path_readings` and
//! `policy::select`, and raw paths through a gate with a guarded prefix.
//!
//! Properties:
//! * `path_readings` gives exactly the readings of an independent model
//!   (`tokengate_fuzz::readings_model`: lower-cased outside escapes, one
//!   trailing slash dropped, the last segment's extension dropped, and each
//!   combination), each once, never the path itself;
//! * `first_match` agrees with a model of the rule matchers
//!   (`fits_model`: exact, segment-aware prefix, listed methods, exact or
//!   `*.` hosts) on every reading, method and host;
//! * `select` decides by every reading: `Ok(Some(rule))` only when every
//!   reading of the path (with every method and host given) falls under a
//!   rule with the same action as `rule`, which is the first rule the
//!   gate's own reading fits; `Ok(None)` only when none fits any reading;
//!   `Err(Ambiguous)` only when two readings fall under different outcomes;
//! * end to end, with rules `/admin → deny`, then `/ → anonymous`: a raw
//!   path is let through anonymously only when it normalizes and no reading
//!   of it (the path itself included) falls under `/admin`.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tokengate::config::{Config, Secrets};
use tokengate::gate::{Decision, FixedConnection, Request, Revocations};
use tokengate::policy::{
    first_match, normalize_path, path_readings, select, Action, HostPattern, Match, PathMatch, Rule,
};
use tokengate_fuzz::{first_match_model, fits_model, readings_model, NOW};

/// Segments that upstream readings tell apart or not.
const SEGMENTS: [&str; 16] = [
    "admin",
    "Admin",
    "ADMIN",
    "admin.json",
    "Admin.JSON",
    "admin.",
    "orders",
    "7",
    ".well-known",
    "a%3Ab",
    "A%3AB",
    "x.y.z",
    "api",
    "healthz",
    "ADMIN.json",
    "",
];
const METHODS: [&str; 5] = ["GET", "POST", "DELETE", "HEAD", "get"];
const HOSTS: [&str; 5] = [
    "admin.example.com",
    "api.example.com",
    "x.internal",
    "internal",
    "[::1]",
];
const PATTERNS: [&str; 5] = [
    "admin.example.com",
    "*.example.com",
    "*.internal",
    "api.example.com",
    "[::1]",
];
const SCOPES: [&str; 3] = ["admin", "orders:read", "orders:*"];

#[derive(Arbitrary, Debug)]
enum Segment {
    Pool(u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
struct RawPath {
    segments: Vec<Segment>,
    trailing_slash: bool,
}

impl RawPath {
    fn text(&self) -> String {
        let mut out = String::new();
        for s in self.segments.iter().take(8) {
            out.push('/');
            match s {
                Segment::Pool(i) => out.push_str(SEGMENTS[usize::from(*i) % SEGMENTS.len()]),
                Segment::Text(t) => out.push_str(t),
            }
        }
        if self.trailing_slash || out.is_empty() {
            out.push('/');
        }
        out
    }
}

#[derive(Arbitrary, Debug)]
enum RawPathMatch {
    Any,
    Exact(RawPath),
    Prefix(RawPath),
}

#[derive(Arbitrary, Debug)]
enum RawAction {
    Anonymous,
    Deny,
    Require(u8),
}

#[derive(Arbitrary, Debug)]
struct RawRule {
    path: RawPathMatch,
    methods: Option<Vec<u8>>,
    hosts: Option<Vec<u8>>,
    action: RawAction,
}

#[derive(Arbitrary, Debug)]
struct Input {
    rules: Vec<RawRule>,
    path: RawPath,
    methods: Vec<u8>,
    hosts: Vec<u8>,
}

fn pick<'a>(pool: &[&'a str], indices: &[u8], at_least_one: bool) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in indices.iter().take(4) {
        let s = pool[usize::from(*i) % pool.len()];
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if at_least_one && out.is_empty() {
        out.push(pool[0]);
    }
    out
}

impl RawRule {
    /// The rule as the configuration would compile it; `None` when its
    /// path is not a normalized path.
    fn rule(&self) -> Option<Rule> {
        let normal = |p: &RawPath| {
            let text = p.text();
            normalize_path(text.as_bytes()).ok()
        };
        let path = match &self.path {
            RawPathMatch::Any => PathMatch::Any,
            RawPathMatch::Exact(p) => PathMatch::Exact(normal(p)?),
            RawPathMatch::Prefix(p) => PathMatch::Prefix(normal(p)?),
        };
        let methods = self.methods.as_ref().map(|m| {
            pick(&METHODS[..4], m, false)
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        let hosts = match &self.hosts {
            None => None,
            Some(h) => Some(
                pick(&PATTERNS, h, false)
                    .iter()
                    .map(|p| HostPattern::parse(p).ok())
                    .collect::<Option<Vec<_>>>()?,
            ),
        };
        let action = match self.action {
            RawAction::Anonymous => Action::Anonymous,
            RawAction::Deny => Action::Deny,
            RawAction::Require(n) => Action::Require {
                scopes: SCOPES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| n >> i & 1 == 1)
                    .map(|(_, s)| s.to_string())
                    .collect(),
                roles: Vec::new(),
            },
        };
        Some(Rule {
            matcher: Match {
                path,
                methods,
                hosts,
            },
            action,
        })
    }
}

/// Known finding F3 (fuzz/README.md): `path_readings` gives no reading
/// without the extension when the last segment starts with a character of
/// more than one byte (`/ü.json` has none, `/x.json` has `/x`), so a rule
/// on `/ü` is slipped past with `/ü.json` to an upstream that drops
/// extensions. Tolerated here (those readings are left out) so the other
/// properties keep being fuzzed; set to false once `src/policy.rs` is
/// fixed.
const TOLERATE_F3: bool = false;

/// Whether F3 may explain a difference: the last segment (after dropping
/// one trailing slash) starts with a character of more than one byte.
fn f3(path: &str) -> bool {
    let p = path.strip_suffix('/').unwrap_or(path);
    let last = p.rsplit('/').next().unwrap_or_default();
    last.chars().next().is_some_and(|c| !c.is_ascii())
}

fuzz_target!(|data: &[u8]| {
    through_the_gate(data);
    if let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) {
        structured(&input);
        through_the_gate(input.path.text().as_bytes());
    }
});

fn structured(input: &Input) {
    let rules: Vec<Rule> = input
        .rules
        .iter()
        .take(8)
        .filter_map(RawRule::rule)
        .collect();
    let Ok(path) = normalize_path(input.path.text().as_bytes()) else {
        return;
    };
    let methods = pick(&METHODS, &input.methods, true);
    let hosts = pick(&HOSTS, &input.hosts, true);

    // The readings are the model's.
    let readings = path_readings(&path);
    for (i, r) in readings.iter().enumerate() {
        assert_ne!(r, &path, "{path:?} is one of its own readings");
        assert!(
            !readings[..i].contains(r),
            "reading {r:?} of {path:?} twice"
        );
    }
    let mut model = readings_model(&path);
    let got: BTreeSet<String> = readings.iter().cloned().collect();
    if got != model {
        assert!(
            TOLERATE_F3 && f3(&path) && got.is_subset(&model),
            "readings of {path:?}: {got:?}, the model's {model:?}"
        );
        // Go on with the readings the gate has.
        model = got.clone();
    }

    let mut paths: Vec<&str> = vec![&path];
    paths.extend(readings.iter().map(String::as_str));

    // Every reading, method and host: first_match agrees with the model.
    let mut outcomes = Vec::new();
    for p in &paths {
        for m in &methods {
            for h in &hosts {
                let lib = first_match(&rules, p, m, h);
                let modelled = first_match_model(&rules, p, m, h);
                assert!(
                    lib.map(|r| r as *const Rule) == modelled.map(|r| r as *const Rule),
                    "first_match({p:?}, {m:?}, {h:?}) picks {lib:?}, the model {modelled:?}"
                );
                outcomes.push(((*p, *m, *h), modelled.map(|r| &r.action)));
            }
        }
    }
    let gate = first_match_model(&rules, &path, methods[0], hosts[0]);
    let all_same = outcomes.iter().all(|(_, o)| *o == gate.map(|r| &r.action));

    match select(&rules, &paths, &methods, &hosts) {
        Ok(Some(rule)) => {
            assert!(
                gate.is_some_and(|g| std::ptr::eq(g, rule)),
                "select picks {rule:?}, not the first rule the gate's reading fits ({gate:?})"
            );
            for ((p, m, h), o) in &outcomes {
                assert!(
                    *o == Some(&rule.action),
                    "select picks {:?} for {path:?}, but reading {p:?} {m} {h} falls under {o:?}",
                    rule.action
                );
                if *p != path {
                    assert!(model.contains(*p), "{p:?} is no reading of {path:?}");
                }
            }
            for r in &model {
                for m in &methods {
                    for h in &hosts {
                        let o = first_match_model(&rules, r, m, h).map(|r| &r.action);
                        assert_eq!(o, Some(&rule.action), "reading {r:?} {m} {h}");
                    }
                }
            }
        }
        Ok(None) => assert!(
            outcomes.iter().all(|(_, o)| o.is_none()),
            "no rule selected for {path:?}, but {outcomes:?}"
        ),
        Err(_) => assert!(
            !all_same,
            "{path:?} refused as ambiguous, every reading falls under {gate:?}"
        ),
    }
}

fn guarded() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        let json = serde_json::json!({
            "keys": [{"kid": "k", "alg": "HS256", "secret": "a".repeat(32), "encoding": "utf8"}],
            "rules": [
                {"match": {"prefix": "/admin"}, "deny": true},
                {"match": {"prefix": "/"}, "anonymous": true}
            ]
        });
        Config::from_json(json.to_string().as_bytes(), &Secrets::Placeholder)
            .unwrap_or_else(|e| panic!("the fuzzing configuration does not compile: {e}"))
    })
}

/// A raw path the gate lets through anonymously normalizes, and neither it
/// nor any reading of it is under `/admin`.
fn through_the_gate(raw: &[u8]) {
    let req = Request {
        method: "GET",
        path: raw,
        authority: b"api.example.com",
        headers: &[],
    };
    let decision = guarded()
        .decide(
            &req,
            &FixedConnection::default(),
            Revocations::default(),
            NOW,
        )
        .decision;
    if decision != Decision::Anonymous {
        return;
    }
    let path = normalize_path(raw).unwrap_or_else(|e| {
        panic!(
            "{:?} let through, though it does not normalize ({e})",
            String::from_utf8_lossy(raw)
        )
    });
    let admin = Match {
        path: PathMatch::Prefix("/admin".into()),
        methods: None,
        hosts: None,
    };
    let mut readings = readings_model(&path);
    readings.insert(path.clone());
    for r in &readings {
        assert!(
            !fits_model(&admin, r, "GET", ""),
            "{:?} let through, but an upstream may read it as {r:?}",
            String::from_utf8_lossy(raw)
        );
    }
}
