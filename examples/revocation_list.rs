//! Building a revocation list through the library API.
//!
//! `tokengate revoke` is this, one entry at a time. A [`Document`] holds the
//! entries (by `jti`, by `sub` with an optional `before`, by `kid`); its
//! canonical JSON is what a web server hands the revocation service, and
//! `to_signed` wraps it as a JWS (`typ` `tokengate-revocations`) for a
//! service with a `verify_key`. The service parses it back with the same
//! parser and builds the [`Snapshot`] every worker looks tokens up in.
//!
//! Run: `cargo run --example revocation_list`

use std::error::Error;

use tokengate::keys::{Alg, Key, KeyId};
use tokengate::revocation::{Document, Entry, Snapshot, TokenRef};

/// 2025-11-27T16:00:00Z.
const NOW: u64 = 1_764_259_200;

fn main() -> Result<(), Box<dyn Error>> {
    let mut list = Document {
        version: 41,
        generated_at: None,
        entries: vec![
            // A leaked token: listed until it would have expired anyway.
            Entry::Jti {
                jti: "01JD3X5W9Q".into(),
                exp: Some(NOW + 900),
            },
            // An entry whose exp has passed: dropped below.
            Entry::Jti {
                jti: "01JD2OLD".into(),
                exp: Some(NOW - 60),
            },
            // A user who logged out everywhere: tokens issued before now.
            Entry::Sub {
                sub: "user-42".into(),
                before: Some(NOW),
                exp: None,
            },
            // A retired key: every token it signed.
            Entry::Kid {
                kid: "2026-09".into(),
                exp: None,
            },
        ],
    };

    // What `tokengate revoke` does on each write.
    list.drop_expired(NOW);
    list.version += 1;
    list.generated_at = Some(NOW);

    let json = list.to_json();
    println!("list (JSON, for a service without verify_key):\n{json}\n");

    // Signed for a service whose verify_key holds the same HS256 secret.
    let list_key = Key::new(KeyId("revocations".into()), Alg::Hs256, &[0x42; 32])
        .map_err(|e| e.to_string())?;
    let signed = list.to_signed(&list_key);
    println!("list (JWS, for a service with verify_key):\n{signed}\n");

    // The service's side: parse, verify, build the snapshot.
    let received = Document::parse_signed(signed.as_bytes(), &list_key)?;
    assert_eq!(received, list);
    let snapshot = Snapshot::build(&received, NOW);
    println!(
        "snapshot: version {}, {} entries, {} bytes\n",
        snapshot.version(),
        snapshot.len(),
        snapshot.as_bytes().len()
    );

    // The gate's question, for a few verified tokens.
    let tokens = [
        (
            "the leaked token",
            TokenRef {
                jti: Some("01JD3X5W9Q"),
                sub: Some("bob"),
                iat: Some((NOW - 10) as f64),
                kid: "2026-11",
            },
        ),
        (
            "user-42, issued before",
            TokenRef {
                jti: Some("a"),
                sub: Some("user-42"),
                iat: Some((NOW - 10) as f64),
                kid: "2026-11",
            },
        ),
        (
            "user-42, issued after",
            TokenRef {
                jti: Some("b"),
                sub: Some("user-42"),
                iat: Some((NOW + 10) as f64),
                kid: "2026-11",
            },
        ),
        (
            "signed by 2026-09",
            TokenRef {
                jti: Some("c"),
                sub: Some("carol"),
                iat: Some(NOW as f64),
                kid: "2026-09",
            },
        ),
        (
            "an ordinary token",
            TokenRef {
                jti: Some("d"),
                sub: Some("dave"),
                iat: Some(NOW as f64),
                kid: "2026-11",
            },
        ),
    ];
    for (name, token) in tokens {
        let verdict = if snapshot.is_revoked(&token) {
            "revoked"
        } else {
            "not revoked"
        };
        println!("{name}: {verdict}");
    }
    Ok(())
}
