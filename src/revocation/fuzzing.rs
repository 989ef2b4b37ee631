//! Entry points for a fuzz harness. Each checks a property and returns the
//! broken one as `Err`; the harness panics on it. Not a stable API.

use super::{Document, Entry, Snapshot, StaticList, TokenRef};

const PROBES: [&str; 4] = ["", "a", "user-42", "2026-09"];

/// Any bytes: `from_bytes` refuses them, or answers every lookup
/// (bounded probing, checked reads) without panicking.
pub fn snapshot_bytes(data: &[u8]) -> Result<(), String> {
    if let Ok(snapshot) = Snapshot::from_bytes(data.to_vec()) {
        for value in PROBES {
            for iat in [None, Some(0.0), Some(f64::NAN), Some(1e300)] {
                let _ = snapshot.is_revoked(&TokenRef {
                    jti: Some(value),
                    sub: Some(value),
                    iat,
                    kid: value,
                });
            }
        }
    }
    Ok(())
}

/// Any body: if it parses, its canonical form parses to the same
/// document, and the snapshot and the static list built from it revoke
/// every entry's token (snapshots keep every entry, whatever its exp).
pub fn document_json(data: &[u8]) -> Result<(), String> {
    let Ok(doc) = Document::parse_json(data) else {
        return Ok(());
    };
    let again = Document::parse_json(doc.to_json().as_bytes())
        .map_err(|e| format!("canonical form does not parse: {e}"))?;
    same_document(&doc, &again)?;
    let snapshot = Snapshot::build(&doc, 0);
    let static_list = StaticList::new(doc.entries.clone());
    let reloaded = Snapshot::from_bytes(snapshot.as_bytes().to_vec())
        .map_err(|e| format!("built snapshot refused: {e}"))?;
    enforces_every_entry("snapshot", &doc.entries, |t| snapshot.is_revoked(t))?;
    enforces_every_entry("reloaded snapshot", &doc.entries, |t| {
        reloaded.is_revoked(t)
    })?;
    enforces_every_entry("static list", &doc.entries, |t| static_list.is_revoked(t))
}

/// The canonical form parsed back (`again`) is the document itself.
pub fn same_document(doc: &Document, again: &Document) -> Result<(), String> {
    if again != doc {
        return Err("canonical form parses to another document".into());
    }
    Ok(())
}

/// The lookup `what` (`is_revoked`), built from `entries`, revokes each
/// entry's token ([`token_for`]).
pub fn enforces_every_entry(
    what: &str,
    entries: &[Entry],
    is_revoked: impl Fn(&TokenRef<'_>) -> bool,
) -> Result<(), String> {
    for entry in entries {
        if !is_revoked(&token_for(entry)) {
            return Err(format!("{what}: entry not enforced: {:?}", entry.kind()));
        }
    }
    Ok(())
}

/// A token the entry revokes whatever else it holds (a `sub` one without
/// `iat`, which every `sub` entry revokes).
pub fn token_for(entry: &Entry) -> TokenRef<'_> {
    let none = "\u{0}none";
    match entry {
        Entry::Jti { jti, .. } => TokenRef {
            jti: Some(jti),
            sub: None,
            iat: None,
            kid: none,
        },
        Entry::Sub { sub, .. } => TokenRef {
            jti: None,
            sub: Some(sub),
            iat: None,
            kid: none,
        },
        Entry::Kid { kid, .. } => TokenRef {
            jti: None,
            sub: None,
            iat: Some(0.0),
            kid,
        },
    }
}
