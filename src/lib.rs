//! tokengate: an HMAC-signed API token gate for Envoy.
//!
//! tokengate checks each request's JWT (HS256/384/512) inline, at the edge:
//! signature, key id, expiry, issuer, audience, scopes and roles against
//! per-route rules, and a revocation list. It does no network I/O on the
//! request path and takes time as an argument.
//!
//! ```text
//!  request bytes ──▶ gate::Request ──▶ Config::decide(req, conn, revocations, now) ──▶ gate::Verdict
//!                                          │  policy  (path, rules, scopes)
//!                                          │  token   (JWS, MAC, claims)
//!                                          │  revocation (snapshot lookup)
//!  configuration JSON ──▶ config::Config::from_json ──┘
//!  revocation list JSON/JWS ──▶ revocation::Document ──▶ revocation::Snapshot ──▶ shared data
//! ```
//!
//! The core modules are plain Rust and tested natively. The proxy-wasm
//! adapter (`filter`, built for `wasm32` only) reads the request from Envoy
//! and applies the verdict; the `tokengate` CLI (the `cli/` crate) runs the
//! same `Config::decide` from the command line. What tokengate leaves to
//! others: TLS (Envoy), fetching nothing but the revocation list (through an
//! Envoy cluster), issuing tokens (your auth server, or `tokengate mint`).

pub mod config;

pub mod gate;
pub mod json;
pub mod jws;
pub mod keys;
pub mod policy;
pub mod refresh;
pub mod refusal;
pub mod revocation;
pub mod shared;
pub mod token;
pub mod wire;

pub mod filter;
