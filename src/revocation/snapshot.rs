//! The snapshot: the compact, position-independent table the singleton
//! builds once per list and every worker uses as copied out of shared data
//! (layout in the module docs of `revocation`).

use std::cmp::Ordering;
use std::fmt;

use xxhash_rust::xxh3::xxh3_128_with_seed;

use super::document::{Document, Entry};
use super::lookup::{fingerprint, stricter, sub_revokes, Fingerprint, Kind, TokenRef};

pub const SNAPSHOT_MAGIC: [u8; 4] = *b"TGRL";
/// The snapshot layout this build writes and reads. The panic-probe module
/// (`tests/e2e/test_failure.py`) also stands in for a later build with
/// another layout: a filter of that build beside a service of this one
/// cannot read the published list (`tests/e2e/test_live_config.py`).
pub const SNAPSHOT_FORMAT: u32 = if cfg!(tokengate_profile = "panic_probe") {
    2
} else {
    1
};
pub(super) const HEADER_LEN: usize = 64;
pub(super) const SLOT_LEN: usize = 16;
pub(super) const BEFORE_LEN: usize = 8;

/// Why bytes are not a snapshot.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Fewer bytes than a header.
    TooShort { len: usize },
    /// The bytes do not start with `TGRL`.
    BadMagic,
    /// A format this build does not read (a newer singleton, say).
    UnsupportedFormat(u32),
    /// The header contradicts itself or the byte count; names the check.
    Inconsistent(&'static str),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::TooShort { len } => {
                write!(f, "revocation snapshot too short: {len} bytes")
            }
            SnapshotError::BadMagic => f.write_str("not a revocation snapshot (bad magic)"),
            SnapshotError::UnsupportedFormat(v) => {
                write!(f, "revocation snapshot format {v} is not supported")
            }
            SnapshotError::Inconsistent(what) => {
                write!(f, "revocation snapshot header is inconsistent: {what}")
            }
        }
    }
}

impl std::error::Error for SnapshotError {}

/// The validated header; every count fits the byte length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) version: u64,
    pub(super) fetched_at: u64,
    pub(super) entries: u64,
    pub(super) homes: u64,
    pub(super) slots: u64,
    pub(super) befores: u64,
    pub(super) max_probe: u64,
}

impl Header {
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
        for field in [
            self.version,
            self.fetched_at,
            self.entries,
            self.homes,
            self.slots,
            self.befores,
            self.max_probe,
        ] {
            out.extend_from_slice(&field.to_le_bytes());
        }
    }

    fn read(bytes: &[u8]) -> Result<Header, SnapshotError> {
        if bytes.len() < HEADER_LEN {
            return Err(SnapshotError::TooShort { len: bytes.len() });
        }
        if bytes.get(0..4) != Some(&SNAPSHOT_MAGIC[..]) {
            return Err(SnapshotError::BadMagic);
        }
        let format = read_u32(bytes, 4).ok_or(SnapshotError::TooShort { len: bytes.len() })?;
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::UnsupportedFormat(format));
        }
        let field = |at| read_u64(bytes, at).ok_or(SnapshotError::TooShort { len: bytes.len() });
        let header = Header {
            version: field(8)?,
            fetched_at: field(16)?,
            entries: field(24)?,
            homes: field(32)?,
            slots: field(40)?,
            befores: field(48)?,
            max_probe: field(56)?,
        };
        let inconsistent = SnapshotError::Inconsistent;
        if header.homes == 0 {
            return Err(inconsistent("no home slots"));
        }
        if header.slots < header.homes {
            return Err(inconsistent("fewer slots than homes"));
        }
        if header.entries > header.slots {
            return Err(inconsistent("more entries than slots"));
        }
        if header.befores > header.entries {
            return Err(inconsistent("more befores than entries"));
        }
        if header.max_probe >= header.slots {
            return Err(inconsistent("probe bound beyond the table"));
        }
        let expected = header
            .slots
            .checked_mul(SLOT_LEN as u64)
            .and_then(|t| t.checked_add(header.befores.checked_mul(BEFORE_LEN as u64)?))
            .and_then(|t| t.checked_add(HEADER_LEN as u64));
        if expected != Some(bytes.len() as u64) {
            return Err(inconsistent("lengths do not match the byte count"));
        }
        Ok(header)
    }
}

pub(super) fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(raw.try_into().ok()?))
}

pub(super) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

/// The home slot of a fingerprint: a multiply-shift onto `0..homes`, which
/// keeps homes in fingerprint order and allows any table size.
fn home(hi: u64, homes: u64) -> u64 {
    ((u128::from(hi) * u128::from(homes)) >> 64) as u64
}

/// One entry while a snapshot is built.
struct Pending {
    fp: Fingerprint,
    /// For `sub` entries: `None` revokes all tokens. Always `None` otherwise.
    before: Option<u64>,
}

/// The compact, position-independent binary form published through shared
/// data; see the module docs for the layout. Built once in the singleton;
/// workers hold the bytes they copied.
#[derive(Clone)]
pub struct Snapshot {
    bytes: Vec<u8>,
    pub(super) header: Header,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.header.version)
            .field("fetched_at", &self.header.fetched_at)
            .field("entries", &self.header.entries)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Snapshot {
    /// Builds the table from `doc`, merging repeats (a repeated `sub` keeps
    /// its strictest form). Every entry is kept, whatever its `exp`: a token
    /// stays valid until its `exp` + the filter's `clock_skew_s`, which the
    /// service cannot know, so dropping entries is the publisher's job
    /// (once `exp` + 300 s has passed, as `tokengate revoke` does).
    pub fn build(doc: &Document, fetched_at: u64) -> Snapshot {
        let mut pending: Vec<Pending> = doc
            .entries
            .iter()
            .map(|e| Pending {
                fp: fingerprint(e.kind(), e.value()),
                before: match e {
                    Entry::Sub { before, .. } => *before,
                    _ => None,
                },
            })
            .collect();
        pending.sort_unstable_by_key(|p| p.fp);
        // Equal fingerprints are the same kind and value (or a 2^-96 accident,
        // which this merges towards revoking more).
        pending.dedup_by(|later, kept| {
            let same = later.fp == kept.fp;
            if same {
                kept.before = stricter(kept.before, later.before);
            }
            same
        });

        let entries = pending.len() as u64;
        let homes = (entries + entries / 4).max(1);
        // First pass: positions, hence the table length and the probe bound.
        let mut next = 0u64;
        let mut max_probe = 0u64;
        let mut befores = 0u64;
        for p in &pending {
            let home = home(p.fp.hi, homes);
            let at = home.max(next);
            max_probe = max_probe.max(at - home);
            next = at + 1;
            befores += u64::from(p.before.is_some());
        }
        let slots = next.max(homes);
        let header = Header {
            version: doc.version,
            fetched_at,
            entries,
            homes,
            slots,
            befores,
            max_probe,
        };

        // Sizes are bounded by the entries already in memory (28 bytes each
        // at most, less than an `Entry` takes), so they cannot overflow.
        let len = HEADER_LEN
            .saturating_add((slots as usize).saturating_mul(SLOT_LEN))
            .saturating_add((befores as usize).saturating_mul(BEFORE_LEN));
        let mut bytes = Vec::with_capacity(len);
        header.write(&mut bytes);
        let mut before_values = Vec::with_capacity(befores as usize);
        let mut next = 0u64;
        for p in &pending {
            let at = home(p.fp.hi, homes).max(next);
            for _ in next..at {
                bytes.extend_from_slice(&[0; SLOT_LEN]);
            }
            let aux = match p.before {
                Some(before) => {
                    before_values.push(before);
                    // Beyond 2^32 - 1 befores (not reachable within
                    // max_bytes), fall back to revoking all: stricter.
                    u32::try_from(before_values.len()).unwrap_or(0)
                }
                None => 0,
            };
            bytes.extend_from_slice(&p.fp.hi.to_le_bytes());
            bytes.extend_from_slice(&p.fp.lo.to_le_bytes());
            bytes.extend_from_slice(&aux.to_le_bytes());
            next = at + 1;
        }
        for _ in next..slots {
            bytes.extend_from_slice(&[0; SLOT_LEN]);
        }
        for before in before_values {
            bytes.extend_from_slice(&before.to_le_bytes());
        }
        Snapshot { bytes, header }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Identifies the entries, whatever the document's order, repeats or
    /// version: two snapshots with the same digest revoke the same tokens
    /// (XXH3-128 of the table, which is built in fingerprint order).
    pub fn digest(&self) -> u128 {
        xxh3_128_with_seed(self.bytes.get(HEADER_LEN..).unwrap_or_default(), 0)
    }

    /// Takes bytes copied out of shared data after checking the header
    /// (magic, format, counts consistent with the byte count): no per-entry
    /// work. Hostile bytes past the header give wrong answers at worst,
    /// never a panic, and each lookup reads at most `max_probe + 1` slots.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Snapshot, SnapshotError> {
        let header = Header::read(&bytes)?;
        Ok(Snapshot { bytes, header })
    }

    /// The document's version.
    pub fn version(&self) -> u64 {
        self.header.version
    }

    /// Unix seconds of the successful fetch that made it.
    pub fn fetched_at(&self) -> u64 {
        self.header.fetched_at
    }

    /// Distinct entries in force (static entries are not in snapshots).
    pub fn len(&self) -> usize {
        usize::try_from(self.header.entries).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.header.entries == 0
    }

    /// Is a verified token revoked? A `jti` entry revokes that token, a `kid`
    /// entry every token signed with that key, a `sub` entry every token of
    /// the subject, or with `before` B those with `iat` < B or without `iat`.
    pub fn is_revoked(&self, token: &TokenRef<'_>) -> bool {
        if let Some(jti) = token.jti {
            if self.find(fingerprint(Kind::Jti, jti)).is_some() {
                return true;
            }
        }
        if self.find(fingerprint(Kind::Kid, token.kid)).is_some() {
            return true;
        }
        match token
            .sub
            .and_then(|sub| self.find(fingerprint(Kind::Sub, sub)))
        {
            None => false,
            Some(0) => true,
            // A `before` that is not there (hostile bytes) revokes all.
            Some(aux) => sub_revokes(self.before(aux), token.iat),
        }
    }

    /// The `aux` word of the slot holding `fp`, if any.
    fn find(&self, fp: Fingerprint) -> Option<u32> {
        let h = &self.header;
        let start = home(fp.hi, h.homes);
        let end = start
            .saturating_add(h.max_probe)
            .saturating_add(1)
            .min(h.slots);
        for i in start..end {
            let (slot, aux) = self.slot(i)?;
            if slot.is_empty() {
                return None;
            }
            match slot.cmp(&fp) {
                Ordering::Equal => return Some(aux),
                Ordering::Greater => return None,
                Ordering::Less => {}
            }
        }
        None
    }

    fn slot(&self, i: u64) -> Option<(Fingerprint, u32)> {
        let at = usize::try_from(i)
            .ok()?
            .checked_mul(SLOT_LEN)?
            .checked_add(HEADER_LEN)?;
        let hi = read_u64(&self.bytes, at)?;
        let lo = read_u32(&self.bytes, at.checked_add(8)?)?;
        let aux = read_u32(&self.bytes, at.checked_add(12)?)?;
        Some((Fingerprint { hi, lo }, aux))
    }

    fn before(&self, aux: u32) -> Option<u64> {
        let index = u64::from(aux).checked_sub(1)?;
        if index >= self.header.befores {
            return None;
        }
        let at = usize::try_from(self.header.slots)
            .ok()?
            .checked_mul(SLOT_LEN)?
            .checked_add(HEADER_LEN)?
            .checked_add(usize::try_from(index).ok()?.checked_mul(BEFORE_LEN)?)?;
        read_u64(&self.bytes, at)
    }
}
