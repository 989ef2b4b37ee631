//! The core's own cost per decision, natively: parse, verify, claims, rules,
//! revocation lookup. Per algorithm (HS256/384/512) and per token size, with
//! and without the per-worker verified-token cache, and with an empty vs a
//! 1,000,000-entry revocation list.
//!
//! Run: `cargo bench --bench decide` (figures in the README).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use tokengate::config::{Config, Secrets};
use tokengate::gate::{Decision, FixedConnection, Request, Revocations};
use tokengate::keys::{Alg, Key, KeyId};
use tokengate::revocation::{Document, Entry, Snapshot};
use tokengate::token::{sign, VerifyCache};

const NOW: u64 = 1_764_259_200;

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn config() -> Config {
    let json = json!({
        "realm": "orders-api",
        "keys": [
            {"kid": "k256", "alg": "HS256", "secret": b64(&[1; 32])},
            {"kid": "k384", "alg": "HS384", "secret": b64(&[2; 48])},
            {"kid": "k512", "alg": "HS512", "secret": b64(&[3; 64])}
        ],
        "issuers": ["https://auth.example.com"],
        "audiences": ["orders-api"],
        "require_claims": ["exp", "jti"],
        "claims_to_headers": {"sub": "x-auth-subject", "scope": "x-auth-scopes", "jti": "x-auth-token-id"},
        "roles": {"manager": ["orders:read", "orders:write"], "admin": ["*"]},
        "rules": [
            {"match": {"prefix": "/healthz"}, "anonymous": true},
            {"match": {"prefix": "/orders", "methods": ["GET", "HEAD"]}, "scopes": ["orders:read"]},
            {"match": {"prefix": "/orders"}, "scopes": ["orders:write"]},
            {"match": {"prefix": "/admin"}, "roles": ["admin"]},
            {"match": {"prefix": "/internal"}, "deny": true},
            {"match": {"prefix": "/"}}
        ],
        "revocation": {"max_stale_s": 60}
    });
    Config::from_json(json.to_string().as_bytes(), &Secrets::Placeholder).expect("config")
}

/// A valid token; `padding` bytes of an extra claim grow it to a size.
fn token(alg: Alg, padding: usize) -> String {
    let (kid, len, byte) = match alg {
        Alg::Hs256 => ("k256", 32, 1),
        Alg::Hs384 => ("k384", 48, 2),
        Alg::Hs512 => ("k512", 64, 3),
    };
    let key = Key::new(KeyId(kid.into()), alg, &vec![byte; len]).expect("key");
    let claims = json!({
        "iss": "https://auth.example.com", "aud": "orders-api", "sub": "user-42",
        "jti": "01JD3XK6Q4", "iat": NOW - 60, "exp": NOW + 600,
        "scope": "orders:read orders:write", "roles": ["manager"],
        "pad": "x".repeat(padding)
    });
    sign(&claims, &key, "JWT")
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
