//! The revocation list (docs/revocation.md): the document, its
//! signature, the compact snapshot that crosses shared data, the lookups,
//! and the follower that decides what each poll does.
//!
//! This module owns the list [`Document`] (its strict JSON form, refused on
//! any other shape, and its signed form: a JWS compact token with `typ`
//! `tokengate-revocations`, HMAC-signed with the service's `verify_key`), the
//! [`Snapshot`] the singleton builds once per new list and publishes, which
//! every worker then uses exactly as it copied it out of shared data, and the
//! one question the gate asks of either: is this verified token revoked?
//! The filter's few `static` entries answer the same question through a
//! [`StaticList`].
//!
//! The [`follower::Follower`] decides when to poll and what a response does
//! to the list in force (rollback, same version, freshness). Nothing here
//! fetches, touches shared data or reads a clock: the service adapter moves
//! the bytes, the filter root copies the snapshot and the gate applies
//! `max_stale_s` and `on_unavailable`. Times are arguments.
//!
//! | file | owns |
//! |---|---|
//! | `document.rs` | [`Document`], [`Entry`]: strict JSON and signed forms, the canonical writer |
//! | `parse.rs` | the one entry parser (document `entries` and the filter's `static`) |
//! | `lookup.rs` | [`Kind`], [`Fingerprint`], [`TokenRef`]: what an entry revokes |
//! | `snapshot.rs` | [`Snapshot`]: the shared-data table and its lookups |
//! | `static_list.rs` | [`StaticList`]: the filter's own entries |
//! | `follower.rs` | [`follower::Follower`]: the service's poll logic |
//! | `fuzzing.rs` | property checks for the fuzz targets |
//!
//! # The snapshot
//!
//! Shared data hands a worker a fresh copy of the whole value on every read
//! (about 40 µs per MiB), so the published form is the form looked up: a
//! worker moves the copied `Vec<u8>` into a [`Snapshot`] after checking a
//! 64-byte header, with no per-entry decoding and no allocation. All numbers
//! are little-endian and read through checked slices, so hostile bytes give
//! an error or a wrong-but-sane answer, never a panic or an endless probe.
//!
//! ```text
//!  offset  size  field
//!       0     4  magic "TGRL"
//!       4     4  format (1)
//!       8     8  version        the document's version
//!      16     8  fetched_at     unix seconds of the fetch that made it
//!      24     8  entries        distinct entries in the table
//!      32     8  homes H        home of a fingerprint: (hi × H) >> 64, < H
//!      40     8  slots S        table length, S ≥ H (the tail is overflow)
//!      48     8  befores B      length of the `before` array
//!      56     8  max_probe P    largest (position − home) in the table, < S
//!      64  16×S  slots          hi u64 | lo u32 | aux u32; all zero = empty
//!   64+16S  8×B  befores        u64 each
//! ```
//!
//! An entry is its 96-bit [`Fingerprint`]: XXH3-128 of the value, seeded
//! differently for `jti`, `sub` and `kid`, so a `jti` never meets a `sub`
//! entry of the same text. A false match can only refuse a token wrongly,
//! never let one through; with three lookups per token its probability is
//! at most 3n / 2^96 per request, under 2^-74 for a million entries. `aux`
//! only means something on `sub` slots: 0 revokes every token of the
//! subject, k ≥ 1 those issued before `befores[k-1]`.
//!
//! The table is an *ordered* open-addressing table: slots hold the
//! fingerprints in ascending order, each at `max(home, previous + 1)`, which
//! is linear probing without wrap-around (Robin Hood order comes free from
//! the sort). A lookup starts at its home and stops at an empty slot, at a
//! larger fingerprint, or after `P + 1` slots: so a miss, the common case,
//! costs about as much as a hit, about three slots at load 0.8. `H` is
//! `n + n/4` rather than a power of two (the home is a multiply-shift, not a
//! mask), so the load stays at 0.8 whatever `n` is: a table costs 20 bytes
//! per entry, plus 8 for each `sub` entry with `before`, 28 at worst.
//! Lookup cost does not grow with the list. A million `jti` entries make a
//! 20 MB value: under a millisecond to copy out of shared data, then the
//! header check.

mod document;
pub mod follower;
#[doc(hidden)]
pub mod fuzzing;
mod lookup;
mod parse;
mod snapshot;
mod static_list;
#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests;

pub use document::{Document, DocumentError, Entry, JWS_TYPE};
pub use lookup::{fingerprint, Fingerprint, Kind, TokenRef};
pub use snapshot::{Snapshot, SnapshotError, SNAPSHOT_FORMAT, SNAPSHOT_MAGIC};
pub use static_list::StaticList;
