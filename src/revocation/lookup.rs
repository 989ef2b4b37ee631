//! What an entry names, its fingerprint, and the one question both the
//! snapshot and the static list answer: is this verified token revoked?

use xxhash_rust::xxh3::xxh3_128_with_seed;

/// What an entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Jti,
    Sub,
    Kid,
}

impl Kind {
    /// One XXH3 seed per kind: the same text under two kinds gives unrelated
    /// fingerprints, without copying the value behind a tag byte.
    fn seed(self) -> u64 {
        match self {
            Kind::Jti => 0x7467_726c_006a_7469, // "tgrl\0jti"
            Kind::Sub => 0x7467_726c_0073_7562, // "tgrl\0sub"
            Kind::Kid => 0x7467_726c_006b_6964, // "tgrl\0kid"
        }
    }
}

/// The 96 bits of XXH3-128 by which an entry is known in a snapshot. Never
/// all zero (that marks an empty slot). Ordered by (`hi`, `lo`): the order of
/// the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint {
    pub(super) hi: u64,
    pub(super) lo: u32,
}

impl Fingerprint {
    pub(super) fn is_empty(self) -> bool {
        self.hi == 0 && self.lo == 0
    }
}

/// The fingerprint of `value` as an entry of `kind`.
pub fn fingerprint(kind: Kind, value: &str) -> Fingerprint {
    let h = xxh3_128_with_seed(value.as_bytes(), kind.seed());
    let hi = (h >> 64) as u64;
    let lo = h as u32;
    // Losing one value of 2^96 to the empty marker costs nothing.
    Fingerprint {
        hi,
        lo: if hi == 0 && lo == 0 { 1 } else { lo },
    }
}

/// The parts of a verified token that revocation reads.
#[derive(Clone, Copy, Debug)]
pub struct TokenRef<'a> {
    pub jti: Option<&'a str>,
    pub sub: Option<&'a str>,
    /// `None` when the token has no `iat`.
    pub iat: Option<f64>,
    /// The id of the key that verified the token.
    pub kid: &'a str,
}

/// Does a `sub` entry with this `before` revoke a token issued at `iat`?
/// Exact for every f64: for an integer B, `iat < B` ⇔ `floor(iat) < B`, and
/// `floor(iat)` converts to u64 exactly below 2^64 (saturating above, where
/// `iat < B` is false anyway). No `iat`, a negative one or NaN is revoked:
/// a fault never un-revokes.
pub(super) fn issued_before(iat: Option<f64>, before: u64) -> bool {
    match iat {
        None => true,
        Some(iat) if iat.is_nan() || iat < 0.0 => true,
        Some(iat) => (iat.floor() as u64) < before,
    }
}

/// Does a `sub` entry revoke this token? `before` `None`: every token.
pub(super) fn sub_revokes(before: Option<u64>, iat: Option<f64>) -> bool {
    match before {
        None => true,
        Some(before) => issued_before(iat, before),
    }
}

/// Of two `sub` entries for the same subject, the one that revokes more:
/// no `before` (all tokens) beats any `before`, else the later `before`.
pub(super) fn stricter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}
