//! The shared data channel between the revocation service and the workers.
//!
//! The singleton writes two values under the `tokengate` VM id: the snapshot
//! bytes, then a 16-byte state record (snapshot generation, time of the last
//! successful fetch). Workers read the small record on a tick and copy the
//! snapshot only when its generation changed, so the request path never
//! touches shared data. Keys are fixed: Envoy's shared data never evicts, so a
//! key per generation would leak.

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
    /// Unix seconds of the last successful fetch (a 304 included).
    pub last_fetch: u64,
}

impl Published {
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.generation.to_le_bytes());
        out[8..].copy_from_slice(&self.last_fetch.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Published> {
        let generation = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let last_fetch = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
        Some(Published {
            generation,
            last_fetch,
        })
    }
}

/// Reads and checks the published snapshot through `get`.
pub fn read_snapshot(get: impl Fn(&str) -> Option<Vec<u8>>) -> Option<Snapshot> {
    Snapshot::from_bytes(get(SNAPSHOT_KEY)?).ok()
}

/// Decodes 64 hex digits (either case) into 32 bytes.
pub fn decode_hex32(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_record_roundtrips() {
        let p = Published {
            generation: 42,
            last_fetch: 1_764_259_200,
        };
        assert_eq!(Published::decode(&p.encode()), Some(p));
        assert_eq!(Published::decode(&[0; 15]), None);
    }

    #[test]
    fn hex_digest_decodes_and_refuses_junk() {
        let hex = "00ff".repeat(16);
        let bytes = decode_hex32(hex.as_bytes()).unwrap();
        assert_eq!(bytes[1], 0xff);
        assert_eq!(decode_hex32(b"zz"), None);
        assert_eq!(decode_hex32("g0".repeat(32).as_bytes()), None);
        assert_eq!(decode_hex32("+1".repeat(32).as_bytes()), None);
    }
}
