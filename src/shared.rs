//! The shared data channel between the revocation service and the workers.
//!
//! The singleton writes two values under the `tokengate` VM id: the snapshot
//! bytes, then a 16-byte state record (snapshot generation, and the time
//! from which the list's age counts). Workers read the small record on a
//! tick and copy the snapshot only when its generation rose, so the request
//! path never touches shared data. Keys are fixed: Envoy's shared data never
//! evicts, so a key per generation would leak.
//!
//! Shared data is readable and writable by every module in the same VM id:
//! so workers never take a lower version than the one they hold, whoever
//! wrote it, and the service starts from what is published (a restarted
//! service VM keeps the rollback floor).

use crate::revocation::Snapshot;

/// The state record: generation and last successful fetch.
pub const STATE_KEY: &str = "tokengate.revocations.state";
/// The snapshot bytes (see `revocation::Snapshot`).
pub const SNAPSHOT_KEY: &str = "tokengate.revocations.snapshot";

/// What the state record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The document version of the snapshot in force.
    pub generation: u64,
    /// Unix seconds from which the list's age counts: its signed
    /// `generated_at` for a signed list, the last successful fetch (a 304
    /// included) for an unsigned one.
    pub fresh_at: u64,
}

impl Published {
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.generation.to_le_bytes());
        out[8..].copy_from_slice(&self.fresh_at.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Published> {
        let generation = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let fresh_at = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
        if bytes.len() != 16 {
            return None;
        }
        Some(Published {
            generation,
            fresh_at,
        })
    }
}

/// Reads and checks the published snapshot through `get`.
pub fn read_snapshot(get: impl Fn(&str) -> Option<Vec<u8>>) -> Option<Snapshot> {
    Snapshot::from_bytes(get(SNAPSHOT_KEY)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_record_roundtrips() {
        let p = Published {
            generation: 42,
            fresh_at: 1_764_259_200,
        };
        assert_eq!(Published::decode(&p.encode()), Some(p));
        assert_eq!(Published::decode(&[0; 15]), None);
    }
}
