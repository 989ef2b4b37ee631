//! The core's own cost per decision, natively: parse, verify, claims, rules,
//! revocation lookup. Per algorithm (HS256/384/512) and per token size, with
//! and without the per-worker verified-token cache, and with an empty vs a
//! 1,000,000-entry revocation list.
//!
//! Run: `cargo bench --bench decide` (figures in docs/figures.md, "The core, natively").

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use tokengate::config::{Config, Secrets};
use tokengate::gate::{Decision, FixedConnection, Request, Revocations};
use tokengate::keys::{decode_secret, Alg, Key, KeyId, SecretEncoding};
use tokengate::revocation::{Document, Entry, Snapshot};
use tokengate::token::{sign, VerifyCache};

const NOW: u64 = 1_764_259_200;

/// The orders-api fixture every suite shares, read as it is: one key per
/// algorithm (HS256 `2026-11`, HS384 `2026-10`, HS512 `2026-09`), issuer,
/// audience, claims to headers, roles, the rules, a revocation section.
const FIXTURE: &str = include_str!("../tests/data/orders-api.json");

fn config() -> Config {
    Config::from_json(FIXTURE.as_bytes(), &Secrets::Placeholder).expect("config")
}

/// The fixture's key of algorithm `alg`.
fn key(alg: Alg) -> Key {
    let fixture: serde_json::Value = serde_json::from_str(FIXTURE).expect("fixture");
    let keys = fixture["keys"].as_array().expect("keys");
    let entry = keys
        .iter()
        .find(|k| k["alg"] == alg.name())
        .expect("a key of each algorithm");
    let secret = decode_secret(
        entry["secret"].as_str().expect("secret"),
        SecretEncoding::Base64,
    )
    .expect("base64");
    let kid = entry["kid"].as_str().expect("kid");
    Key::new(KeyId(kid.into()), alg, &secret).expect("key")
}

/// A valid token; `padding` bytes of an extra claim grow it to a size.
fn token(alg: Alg, padding: usize) -> String {
    let claims = json!({
        "iss": "https://auth.example.com", "aud": "orders-api", "sub": "user-42",
        "jti": "01JD3XK6Q4", "iat": NOW - 60, "exp": NOW + 600,
        "scope": "orders:read orders:write", "roles": ["manager"],
        "pad": "x".repeat(padding)
    });
    sign(&claims, &key(alg), "JWT")
}

fn list(n: usize) -> Snapshot {
    let entries = (0..n)
        .map(|i| Entry::Jti {
            jti: format!("revoked-{i}"),
            exp: None,
        })
        .collect();
    Snapshot::build(
        &Document {
            version: 1,
            generated_at: None,
            entries,
        },
        NOW,
    )
}

fn bench(c: &mut Criterion) {
    let config = config();
    let conn = FixedConnection {
        tls: true,
        peer_certificate_sha256: None,
    };
    let empty = list(0);
    let big = list(1_000_000);

    let mut group = c.benchmark_group("decide");
    for alg in [Alg::Hs256, Alg::Hs384, Alg::Hs512] {
        for padding in [0usize, 512, 2048] {
            let t = token(alg, padding);
            let headers = vec![(
                "authorization".to_owned(),
                format!("Bearer {t}").into_bytes(),
            )];
            let req = Request {
                method: "GET",
                path: b"/orders/7",
                authority: b"api.example.com",
                headers: &headers,
            };
            let revocations = Revocations {
                list: Some(&empty),
                fresh_at: Some(NOW),
                lost: false,
            };
            assert_eq!(
                config.decide(&req, &conn, revocations, NOW).decision,
                Decision::Allow
            );
            group.throughput(Throughput::Bytes(t.len() as u64));
            let id = format!("{}/{}B", alg.name(), t.len());
            group.bench_with_input(BenchmarkId::new("cold", &id), &req, |b, req| {
                b.iter(|| black_box(config.decide(black_box(req), &conn, revocations, NOW)))
            });
            let mut cache = VerifyCache::new(1024, 1 << 20);
            group.bench_with_input(BenchmarkId::new("cached", &id), &req, |b, req| {
                b.iter(|| {
                    black_box(config.decide_with(
                        black_box(req),
                        &conn,
                        revocations,
                        NOW,
                        &mut cache,
                    ))
                })
            });
        }
    }
    let t = token(Alg::Hs256, 0);
    let headers = vec![(
        "authorization".to_owned(),
        format!("Bearer {t}").into_bytes(),
    )];
    let req = Request {
        method: "GET",
        path: b"/orders/7",
        authority: b"api.example.com",
        headers: &headers,
    };
    for (name, snapshot) in [("empty", &empty), ("1M", &big)] {
        let revocations = Revocations {
            list: Some(snapshot),
            fresh_at: Some(NOW),
            lost: false,
        };
        let mut cache = VerifyCache::new(1024, 1 << 20);
        group.bench_function(BenchmarkId::new("cached-list", name), |b| {
            b.iter(|| {
                black_box(config.decide_with(black_box(&req), &conn, revocations, NOW, &mut cache))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
