//! The per-worker cache of verified tokens.

use std::rc::Rc;

use super::{verify, Binding, ClaimSpec, ClaimValue, Parts, Verified};
use crate::keys::KeySet;
use crate::refusal::Reason;

/// A bounded cache of tokens whose MAC held, keyed by the whole token.
///
/// Direct-mapped: a token's slot is chosen by a hash of its text, and a hit
/// compares the whole token, never a hash, so two tokens can never be taken
/// for each other. Only verified tokens enter, so a client without a key
/// cannot fill it. What a hit skips is the token's parsing and its MAC;
/// everything that depends on time or on the revocation list (expiry,
/// revocation) is checked by the caller on every request.
///
/// Memory is bounded twice: by `slots`, and by `max_bytes` for the tokens
/// and their parsed claims together (as `Parts::footprint` counts them),
/// so a key holder minting large tokens cannot make it hold
/// `slots × max_token_bytes`. A token that does not fit is verified and
/// simply not remembered.
pub struct VerifyCache {
    slots: Vec<Option<Cached>>,
    used: usize,
    max_bytes: usize,
}

/// A cache entry: the whole token, the index of its key, what it says, and
/// the bytes it is counted for.
struct Cached {
    token: Box<str>,
    key_index: usize,
    parts: Rc<Parts>,
    bytes: usize,
}

impl VerifyCache {
    /// A cache of `slots` entries (rounded up to a power of two) holding at
    /// most `max_bytes`; 0 for either disables it.
    pub fn new(slots: usize, max_bytes: usize) -> VerifyCache {
        let n = if slots == 0 || max_bytes == 0 {
            0
        } else {
            slots.next_power_of_two()
        };
        VerifyCache {
            slots: (0..n).map(|_| None).collect(),
            used: 0,
            max_bytes,
        }
    }

    /// Bytes held by the cached tokens and their claims.
    pub fn bytes(&self) -> usize {
        self.used
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    fn slot(&self, token: &str) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        Some(xxhash_rust::xxh3::xxh3_64(token.as_bytes()) as usize & mask)
    }

    /// [`verify`], answered from the cache when this exact token was
    /// verified before under the same key set.
    pub fn verify<'k>(
        &mut self,
        token: &str,
        keys: &'k KeySet,
        max_bytes: usize,
        spec: &ClaimSpec,
    ) -> Result<Verified<'k>, Reason> {
        let Some(i) = self.slot(token) else {
            return verify(token, keys, max_bytes, spec);
        };
        if let Some(Some(cached)) = self.slots.get(i) {
            if *cached.token == *token {
                if let Some(key) = keys.iter().nth(cached.key_index) {
                    return Ok(Verified {
                        key,
                        parts: Rc::clone(&cached.parts),
                    });
                }
            }
        }
        let verified = verify(token, keys, max_bytes, spec)?;
        if let Some(key_index) = keys.iter().position(|k| std::ptr::eq(k, verified.key)) {
            self.insert(i, token, key_index, &verified.parts);
        }
        Ok(verified)
    }

    fn insert(&mut self, i: usize, token: &str, key_index: usize, parts: &Rc<Parts>) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if let Some(old) = slot.take() {
            self.used = self.used.saturating_sub(old.bytes);
        }
        let bytes = CACHE_ENTRY_OVERHEAD
            .saturating_add(token.len())
            .saturating_add(parts.footprint());
        if self.used.saturating_add(bytes) > self.max_bytes {
            return;
        }
        self.used += bytes;
        *slot = Some(Cached {
            token: token.into(),
            key_index,
            parts: Rc::clone(parts),
            bytes,
        });
    }
}

/// What a cache entry costs beside its token and claims: the slot, the
/// `Rc` box, the struct fields.
const CACHE_ENTRY_OVERHEAD: usize = 128;

impl Parts {
    /// Heap bytes held by the parsed header and claims, counting each
    /// string's capacity and a `String`'s own 24 bytes per list element.
    fn footprint(&self) -> usize {
        fn text(s: &Option<String>) -> usize {
            s.as_ref().map_or(0, String::capacity)
        }
        fn list(l: Option<&Vec<String>>) -> usize {
            l.map_or(0, |l| {
                l.capacity() * std::mem::size_of::<String>()
                    + l.iter().map(String::capacity).sum::<usize>()
            })
        }
        let c = &self.claims;
        let cnf = match &c.cnf {
            Some(Binding::X5tS256(t)) => t.capacity(),
            _ => 0,
        };
        let extra: usize = c
            .extra
            .iter()
            .map(|(name, value)| {
                name.capacity()
                    + std::mem::size_of::<(String, ClaimValue)>()
                    + match value {
                        ClaimValue::Str(s) | ClaimValue::Num(s) => s.capacity(),
                        ClaimValue::Strs(l) => list(Some(l)),
                        ClaimValue::Other => 0,
                    }
            })
            .sum();
        text(&self.header.kid)
            + text(&c.iss)
            + text(&c.sub)
            + text(&c.jti)
            + text(&c.role)
            + text(&c.token_use)
            + list(c.aud.as_ref())
            + list(c.scope.as_ref())
            + list(c.scp.as_ref())
            + list(c.roles.as_ref())
            + cnf
            + extra
    }
}
