//! Minting tokens through the library API, and checking one the way the
//! filter does.
//!
//! `tokengate mint` is this, plus flags. The key is built once from its
//! secret (`Key::new` refuses one shorter than the hash), the claims are a
//! JSON object, and `token::sign` writes the JWS with the header
//! `{"alg", "typ", "kid"}`. The same key then backs a configuration, and
//! `Config::decide` answers a request carrying the token, at a fixed
//! instant: time is an argument.
//!
//! Run: `cargo run --example mint`

use std::error::Error;

use base64::Engine as _;
use serde_json::json;
use tokengate::config::{Config, Secrets};
use tokengate::gate::{Decision, FixedConnection, Request, Revocations};
use tokengate::keys::{Alg, Key, KeyId};
use tokengate::token;

/// 2025-11-27T16:00:00Z.
const NOW: u64 = 1_764_259_200;

fn main() -> Result<(), Box<dyn Error>> {
    // A real deployment takes the secret from `tokengate keygen` (32 random
    // bytes for HS256); a fixed one keeps this example self-contained.
    let secret = [0x5a_u8; 32];
    // (`SecretError` and getrandom's error are not `std::error::Error` here:
    // their text is.)
    let key = Key::new(KeyId("2026-11".into()), Alg::Hs256, &secret).map_err(|e| e.to_string())?;

    // A 128-bit random jti, as `tokengate mint` makes one.
    let mut jti = [0u8; 16];
    getrandom::getrandom(&mut jti).map_err(|e| e.to_string())?;
    let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();

    let claims = json!({
        "sub": "alice",
        "scope": "orders:read orders:write",
        "aud": "orders-api",
        "iss": "https://auth.example.com",
        "iat": NOW,
        "exp": NOW + 15 * 60,
        "jti": jti,
    });
    let access = token::sign(&claims, &key, "JWT");
    println!("access token:\n{access}\n");

    // A refresh token differs by its typ (docs/refresh.md).
    let refresh_claims = json!({
        "sub": "alice",
        "aud": "orders-api",
        "iss": "https://auth.example.com",
        "iat": NOW,
        "exp": NOW + 86_400,
    });
    let refresh = token::sign(&refresh_claims, &key, "rt+jwt");
    println!("refresh token:\n{refresh}\n");

    // The filter's view: a configuration holding the same key, one rule.
    let config = Config::from_json(
        json!({
            "realm": "orders-api",
            "keys": [{
                "kid": "2026-11",
                "alg": "HS256",
                "secret": base64::engine::general_purpose::STANDARD.encode(secret),
            }],
            "issuers": ["https://auth.example.com"],
            "audiences": ["orders-api"],
            "claims_to_headers": {"sub": "x-auth-subject"},
            "rules": [{"match": {"prefix": "/orders"}, "scopes": ["orders:read"]}],
        })
        .to_string()
        .as_bytes(),
        &Secrets::Placeholder,
    )?;
    let connection = FixedConnection {
        tls: true,
        peer_certificate_sha256: None,
    };

    for (name, token, at) in [
        ("access token, now", &access, NOW),
        ("access token, an hour later", &access, NOW + 3600),
        ("refresh token used as access", &refresh, NOW),
    ] {
        let headers = vec![(
            "authorization".to_owned(),
            format!("Bearer {token}").into_bytes(),
        )];
        let request = Request {
            method: "GET",
            path: b"/orders/7",
            authority: b"api.example.com",
            headers: &headers,
        };
        let verdict = config.decide(&request, &connection, Revocations::default(), at);
        match verdict.decision {
            Decision::Deny(reason) => println!("{name}: deny {reason}"),
            decision => println!("{name}: {} {:?}", decision.as_str(), verdict.set_headers),
        }
    }
    Ok(())
}
