//! The filter's own few `static` entries.

use std::collections::{BTreeMap, BTreeSet};

use super::document::Entry;
use super::lookup::{stricter, sub_revokes, TokenRef};

/// The filter's `static` entries (few), with the same semantics as a
/// snapshot. They always apply, and their `exp` is not consulted: a static
/// entry lasts as long as the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticList {
    jti: BTreeSet<String>,
    kid: BTreeSet<String>,
    /// `None`: every token of the subject.
    sub: BTreeMap<String, Option<u64>>,
}

impl StaticList {
    pub fn new(entries: Vec<Entry>) -> StaticList {
        let mut list = StaticList::default();
        for entry in entries {
            match entry {
                Entry::Jti { jti, .. } => {
                    list.jti.insert(jti);
                }
                Entry::Kid { kid, .. } => {
                    list.kid.insert(kid);
                }
                Entry::Sub { sub, before, .. } => {
                    list.sub
                        .entry(sub)
                        .and_modify(|kept| *kept = stricter(*kept, before))
                        .or_insert(before);
                }
            }
        }
        list
    }

    pub fn is_revoked(&self, token: &TokenRef<'_>) -> bool {
        token.jti.is_some_and(|jti| self.jti.contains(jti))
            || self.kid.contains(token.kid)
            || token
                .sub
                .and_then(|sub| self.sub.get(sub))
                .is_some_and(|before| sub_revokes(*before, token.iat))
    }

    pub fn is_empty(&self) -> bool {
        self.jti.is_empty() && self.kid.is_empty() && self.sub.is_empty()
    }

    pub fn len(&self) -> usize {
        self.jti.len() + self.kid.len() + self.sub.len()
    }
}
