//! tokengate: an HMAC-signed API token gate for Envoy.
//!
//! (crate docs are written once the modules settle)

pub mod keys;
pub mod refusal;
