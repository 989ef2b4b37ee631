//! Build variants that leave one step of the request path out, for
//! `benches/breakdown.sh` (which shows where the time goes) and the
//! panic-probe module of `tests/e2e/test_failure.py` (which also writes and
//! reads another snapshot format, see `revocation::SNAPSHOT_FORMAT`). Each is chosen with
//! `RUSTFLAGS='--cfg tokengate_profile="…"'`; in the shipped module every
//! flag here is `false` and the compiler drops the branches.

/// Read the request headers, then let the request go: nothing decided.
pub const READ_ONLY: bool = cfg!(tokengate_profile = "read_only");

/// Decide, but make no header edit.
pub const NO_EDITS: bool =
    cfg!(tokengate_profile = "no_edits") || cfg!(tokengate_profile = "decide_only");

/// Decide, but set no access-log filter state.
pub const NO_STATE: bool =
    cfg!(tokengate_profile = "no_state") || cfg!(tokengate_profile = "decide_only");

/// Decide, but count nothing.
pub const NO_COUNTER: bool = cfg!(tokengate_profile = "decide_only");

/// One host call that replaces the whole header map instead of one per
/// edit (measured slower; see docs/figures.md, "CPU per request in Envoy, side by side").
pub const BATCHED_EDITS: bool = cfg!(tokengate_profile = "batched_edits");

/// In the panic-probe module only: panics on this path, to show what a
/// failing VM does in Envoy. Does nothing in any other build. The panic
/// is reported at the caller's line, in the request code.
#[track_caller]
pub fn panic_probe(path: &[u8]) {
    #[cfg(tokengate_profile = "panic_probe")]
    #[allow(clippy::panic)]
    if path == b"/__tokengate_panic_probe" {
        panic!("panic probe");
    }
    let _ = path;
}
