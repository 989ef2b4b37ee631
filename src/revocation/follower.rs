//! The revocation follower: what the service does with each poll, as plain
//! logic with the clock and the responses passed in.
//!
//! The follower decides when a poll is due, what a response does to the
//! list in force, and what must be published; the service adapter only
//! sends the request, hands the response in, and writes what it is told
//! to shared data. Its rules (see docs/revocation.md, "Rollback, faults and age"):
//!
//! * A 200 is checked (size, signature, shape). A version lower than the one
//!   in force is refused (rollback). An equal version with the same entries
//!   changes nothing; with other entries it is refused as a failed fetch. A
//!   higher version is built into a snapshot and published.
//! * The list's age counts from its signed `generated_at` for a signed
//!   list, so a replayed or never-changing (304) signed list goes stale;
//!   for an unsigned list, from the last successful fetch (a 304 included).
//! * Every failure keeps the list in force, unchanged.
//! * A follower started beside an already published list (a service VM
//!   that was reloaded) takes it as the list in force: the rollback floor
//!   survives the restart.

use crate::config::ServiceConfig;
use crate::revocation::{Document, Snapshot};
use crate::shared::Published;

/// What the service knows of the list in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InForce {
    version: u64,
    /// Identifies the entries (see [`Snapshot::digest`]); `None` when
    /// recovered without a readable snapshot.
    digest: Option<u128>,
    fresh_at: u64,
    entries: u64,
}

/// A new list, ready to be written: the snapshot first, then the state
/// record; then [`Follower::published`].
#[derive(Debug)]
pub struct Publish {
    pub snapshot: Snapshot,
    pub state: Published,
    in_force: InForce,
    etag: Option<Vec<u8>>,
}

impl Publish {
    /// Entries in the new list.
    pub fn entries(&self) -> u64 {
        self.in_force.entries
    }
}

/// What a response did.
#[derive(Debug)]
pub enum Outcome {
    /// A higher version: publish it.
    Publish(Publish),
    /// The list in force was confirmed (a 304, or the same version with the
    /// same entries): write the state record (its age may have restarted).
    Confirmed {
        state: Published,
        not_modified: bool,
    },
    /// A failed fetch; the list in force stays. `rollback` when it was a
    /// lower version.
    Failed { why: String, rollback: bool },
    /// A response to a call that is no longer awaited.
    Stale,
}

/// Follows the list source for the singleton service.
#[derive(Debug)]
pub struct Follower {
    poll_interval_ms: u64,
    signed: bool,
    max_bytes: usize,
    last_poll_ms: Option<u64>,
    in_flight: bool,
    etag: Option<Vec<u8>>,
    in_force: Option<InForce>,
}

impl Follower {
    pub fn new(config: &ServiceConfig) -> Follower {
        Follower {
            poll_interval_ms: config.poll_interval_s.saturating_mul(1000),
            signed: config.verify_key.is_some(),
            max_bytes: config.max_bytes,
            last_poll_ms: None,
            in_flight: false,
            etag: None,
            in_force: None,
        }
    }

    /// Takes what a previous service VM published as the list in force:
    /// a later list must have at least its version.
    pub fn recover(&mut self, state: Option<Published>, snapshot: Option<&Snapshot>) {
        let version = state
            .map(|s| s.generation)
            .max(snapshot.map(Snapshot::version));
        let Some(version) = version else { return };
        let digest = snapshot
            .filter(|s| s.version() == version)
            .map(Snapshot::digest);
        self.in_force = Some(InForce {
            version,
            digest,
            fresh_at: state.map_or(0, |s| s.fresh_at),
            entries: snapshot.map_or(0, |s| s.len() as u64),
        });
    }

    /// The version in force, if any.
    pub fn version(&self) -> Option<u64> {
        self.in_force.map(|f| f.version)
    }

    /// Entries in the list in force.
    pub fn entries(&self) -> Option<u64> {
        self.in_force.map(|f| f.entries)
    }

    /// The list's age in seconds at `now`.
    pub fn age_s(&self, now: u64) -> Option<u64> {
        self.in_force.map(|f| now.saturating_sub(f.fresh_at))
    }

    /// Whether a poll is due at `now_ms`: then it is taken as sent, and the
    /// `If-None-Match` value to send comes back (`Some(None)`: none).
    pub fn poll(&mut self, now_ms: u64) -> Option<Option<String>> {
        if self.in_flight {
            return None;
        }
        let due = self
            .last_poll_ms
            .is_none_or(|at| now_ms.saturating_sub(at) >= self.poll_interval_ms);
        if !due {
            return None;
        }
        self.last_poll_ms = Some(now_ms);
        self.in_flight = true;
        Some(
            self.etag
                .as_deref()
                .and_then(|e| std::str::from_utf8(e).ok())
                .map(str::to_owned),
        )
    }

    /// The poll could not be sent.
    pub fn not_sent(&mut self, why: &str) -> Outcome {
        self.in_flight = false;
        Outcome::Failed {
            why: format!("cannot send the poll: {why}"),
            rollback: false,
        }
    }

    /// Takes the response to the poll in flight. `status` is `None` when
    /// there was none (reset, timeout, a body over Envoy's callout buffer);
    /// `body` is read only when a 200 of acceptable size needs it.
    pub fn on_response(
        &mut self,
        status: Option<&[u8]>,
        etag: Option<Vec<u8>>,
        body_len: usize,
        body: impl FnOnce() -> Option<Vec<u8>>,
        verify_key: Option<&crate::keys::Key>,
        now: u64,
    ) -> Outcome {
        if !self.in_flight {
            return Outcome::Stale;
        }
        self.in_flight = false;
        let fail = |why: String| Outcome::Failed {
            why,
            rollback: false,
        };
        match status {
            None | Some(b"") => {
                return fail(
                    "no response (connection failure, timeout, or a body over Envoy's callout buffer limit)"
                        .into(),
                )
            }
            Some(b"304") => return self.not_modified(now),
            Some(b"200") => {}
            Some(other) => return fail(format!("status {}", String::from_utf8_lossy(other))),
        }
        if body_len > self.max_bytes {
            return fail(format!(
                "body of {body_len} bytes is over max_bytes ({})",
                self.max_bytes
            ));
        }
        let body = body().unwrap_or_default();
        let doc = match verify_key {
            Some(key) => Document::parse_signed(&body, key),
            None => Document::parse_json(&body),
        };
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => return fail(e.to_string()),
        };
        // A signed list's age is its own, signed; an unsigned one's is the
        // fetch's.
        let fresh_at = match (self.signed, doc.generated_at) {
            (true, Some(at)) => at,
            _ => now,
        };
        let snapshot = Snapshot::build(&doc, now);
        let digest = snapshot.digest();
        if let Some(in_force) = self.in_force {
            if doc.version < in_force.version {
                return Outcome::Failed {
                    why: format!(
                        "version {} is lower than {} in force (rollback refused)",
                        doc.version, in_force.version
                    ),
                    rollback: true,
                };
            }
            if doc.version == in_force.version {
                if in_force.digest.is_some_and(|d| d != digest) {
                    return fail(format!(
                        "version {} holds other entries than the list in force under the same version; \
                         a changed list needs a higher version",
                        doc.version
                    ));
                }
                if in_force.digest.is_some() {
                    let fresh_at = if self.signed { in_force.fresh_at } else { now };
                    self.in_force = Some(InForce {
                        fresh_at,
                        ..in_force
                    });
                    self.etag = etag;
                    return Outcome::Confirmed {
                        state: Published {
                            generation: in_force.version,
                            fresh_at,
                        },
                        not_modified: false,
                    };
                }
                // Recovered without its snapshot: publish this one again.
            }
        }
        let in_force = InForce {
            version: doc.version,
            digest: Some(digest),
            fresh_at,
            entries: snapshot.len() as u64,
        };
        Outcome::Publish(Publish {
            state: Published {
                generation: doc.version,
                fresh_at,
            },
            snapshot,
            in_force,
            etag,
        })
    }

    fn not_modified(&mut self, now: u64) -> Outcome {
        let Some(in_force) = self.in_force else {
            return Outcome::Failed {
                why: "304 Not Modified before any list was received".into(),
                rollback: false,
            };
        };
        // For a signed list a 304 proves nothing about freshness: a replayed
        // answer looks the same.
        let fresh_at = if self.signed { in_force.fresh_at } else { now };
        self.in_force = Some(InForce {
            fresh_at,
            ..in_force
        });
        Outcome::Confirmed {
            state: Published {
                generation: in_force.version,
                fresh_at,
            },
            not_modified: true,
        }
    }

    /// The new list was written to shared data: it is in force now. (If
    /// writing failed, do not call this: the list in force stays, and the
    /// next poll, without the new `ETag`, fetches and publishes it again.)
    pub fn published(&mut self, publish: Publish) {
        self.in_force = Some(publish.in_force);
        self.etag = publish.etag;
    }
}
