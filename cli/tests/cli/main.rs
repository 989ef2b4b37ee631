//! The `tokengate` binary, run for real in temporary directories: each
//! command's work, and each documented error with its exit status and its
//! one line on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

mod check_config;
mod inspect;
mod keygen;
mod manifests;
mod mint;
mod package_oci;
mod resign;
mod revoke;
mod usage;
mod verify;
