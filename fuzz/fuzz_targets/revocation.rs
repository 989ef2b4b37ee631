//! The revocation list: its document (plain and signed) and its snapshot.
//!
//! The same input is used three ways.
//! * Raw bytes as a document body: `revocation::fuzzing::document_json`
//!   (the canonical form re-parses to the same document; the snapshot and
//!   the static list built from it revoke every entry); error messages stay
//!   short (never the body).
//! * Raw bytes as a signed body: `Document::parse_signed` accepts only a JWS
//!   whose signature, as sent, is the HMAC of its signing input under the
//!   verify key with that key's `alg`, and whose list has a `generated_at`
//!   (without one a replayed old list could not be told from a fresh one).
//! * Raw bytes as a snapshot: `revocation::fuzzing::snapshot_bytes` (no
//!   panic, lookups bounded); an accepted snapshot keeps its bytes.
//! * Structured: a document built from fuzz data (values from a small pool,
//!   so kinds share texts and subjects repeat with several `before`s). Its
//!   canonical JSON parses back to it, and so does its signed form when it
//!   has a `generated_at` (refused without one; and the signed form fails
//!   under any other key); the snapshot built at `fetched_at`, once through
//!   its bytes, answers every probe exactly as a set model of all the
//!   entries does, expired ones included (a token stays valid until its
//!   `exp` plus the filter's clock skew, which the service cannot know) —
//!   no false negatives ever; a false positive only on a 96-bit
//!   fingerprint collision, which is checked; its length is the model's;
//!   the static list answers as the same model. `Snapshot::digest` names
//!   the set: the same for the entries in another order, repeated, under
//!   another version or `fetched_at`, and different for a document whose
//!   set differs (one entry left out).
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tokengate::keys::{Alg, Key, KeyId};
use tokengate::revocation::{fuzzing, Document, Entry, Snapshot, StaticList, TokenRef};
use tokengate_fuzz::{hmac_tag, RevocationModel, K1_SECRET, K2_SECRET};

fn list_key() -> &'static Key {
    static K: OnceLock<Key> = OnceLock::new();
    K.get_or_init(|| {
        Key::new(KeyId("revocations".into()), Alg::Hs256, K1_SECRET)
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

fn other_keys() -> &'static [Key; 2] {
    static K: OnceLock<[Key; 2]> = OnceLock::new();
    K.get_or_init(|| {
        let same_alg = Key::new(KeyId("other".into()), Alg::Hs256, &K2_SECRET[..32]);
        let other_alg = Key::new(KeyId("revocations".into()), Alg::Hs512, K2_SECRET);
        match (same_alg, other_alg) {
            (Ok(a), Ok(b)) => [a, b],
            _ => panic!("fuzzing keys"),
        }
    })
}

const POOL: [&str; 6] = ["a", "user-42", "2026-09", "01JD3XK", "k1", "\u{0}none"];

#[derive(Arbitrary, Debug)]
enum Value {
    Pool(u8),
    Text(String),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Pool(i) => POOL[usize::from(*i) % POOL.len()].to_owned(),
            Value::Text(t) if t.is_empty() => "x".to_owned(),
            Value::Text(t) => t.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct RawEntry {
    kind: u8,
    value: Value,
    before: Option<u32>,
    exp: Option<u32>,
}

#[derive(Arbitrary, Debug)]
struct Probe {
    jti: Option<Value>,
    sub: Option<Value>,
    kid: Value,
    iat: Option<f64>,
}

#[derive(Arbitrary, Debug)]
struct Structured {
    version: u64,
    generated_at: Option<u64>,
    fetched_at: u32,
    entries: Vec<RawEntry>,
    probes: Vec<Probe>,
}

fuzz_target!(|data: &[u8]| {
    raw_document(data);
    raw_signed(data);
    raw_snapshot(data);
    if let Ok(s) = Structured::arbitrary(&mut Unstructured::new(data)) {
        structured(&s);
    }
});

fn raw_document(data: &[u8]) {
    if let Err(e) = fuzzing::document_json(data) {
        panic!("document_json: {e}");
    }
    if let Err(e) = Document::parse_json(data) {
        let text = e.to_string();
        // Messages quote at most a 40-character member name; never the body.
        assert!(
            text.len() <= 512,
            "a {}-byte error message: {text:?}",
            text.len()
        );
    }
}

fn raw_signed(data: &[u8]) {
    let key = list_key();
    let Ok(doc) = Document::parse_signed(data, key) else {
        return;
    };
    let body = data.trim_ascii();
    let body =
        std::str::from_utf8(body).unwrap_or_else(|_| panic!("accepted a non-UTF-8 signed list"));
    let mut parts = body.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("accepted a signed list that is not three segments");
    };
    let expected = URL_SAFE_NO_PAD.encode(hmac_tag(
        Alg::Hs256,
        K1_SECRET,
        &body.as_bytes()[..h.len() + 1 + p.len()],
    ));
    assert_eq!(expected, s, "accepted a signed list without a valid MAC");
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap_or_default())
            .expect("accepted a non-JSON header");
    assert_eq!(
        header.get("alg").and_then(|a| a.as_str()),
        Some("HS256"),
        "accepted another alg"
    );
    let typ = header
        .get("typ")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    assert!(
        typ.eq_ignore_ascii_case("tokengate-revocations"),
        "accepted typ {typ:?}"
    );
    // The payload is the plain document.
    let payload = URL_SAFE_NO_PAD.decode(p).unwrap_or_default();
    assert_eq!(
        Document::parse_json(&payload).as_ref(),
        Ok(&doc),
        "signed payload parses to another document"
    );
    assert!(
        doc.generated_at.is_some(),
        "accepted a signed list without generated_at"
    );
}

fn raw_snapshot(data: &[u8]) {
    if let Err(e) = fuzzing::snapshot_bytes(data) {
        panic!("snapshot_bytes: {e}");
    }
    if let Ok(s) = Snapshot::from_bytes(data.to_vec()) {
        assert_eq!(s.as_bytes(), data, "an accepted snapshot changed its bytes");
        assert!(
            s.len() as u64 <= (data.len() as u64).saturating_sub(64) / 16,
            "more entries than slots fit"
        );
    }
}

/// A probe token: jti, sub, kid, iat.
type Probed = (Option<String>, Option<String>, String, Option<f64>);

fn structured(s: &Structured) {
    let entries: Vec<Entry> = s
        .entries
        .iter()
        .map(|e| {
            let value = e.value.text();
            let exp = e.exp.map(u64::from);
            match e.kind % 3 {
                0 => Entry::Jti { jti: value, exp },
                1 => Entry::Sub {
                    sub: value,
                    before: e.before.map(u64::from),
                    exp,
                },
                _ => Entry::Kid { kid: value, exp },
            }
        })
        .collect();
    let doc = Document {
        version: s.version.max(1),
        generated_at: s.generated_at,
        entries,
    };

    // Canonical and signed forms parse back to the document.
    let json = doc.to_json();
    match Document::parse_json(json.as_bytes()) {
        Ok(again) => assert_eq!(again, doc, "canonical JSON parses to another document"),
        Err(e) => panic!("canonical JSON refused: {e}"),
    }
    let signed = doc.to_signed(list_key());
    match Document::parse_signed(signed.as_bytes(), list_key()) {
        Ok(again) => {
            assert!(
                doc.generated_at.is_some(),
                "accepted a signed list without generated_at"
            );
            assert_eq!(again, doc, "signed form parses to another document");
        }
        Err(e) => assert!(
            doc.generated_at.is_none(),
            "signed form with generated_at refused: {e}"
        ),
    }
    for other in other_keys() {
        assert!(
            Document::parse_signed(signed.as_bytes(), other).is_err(),
            "signed form accepted under another key"
        );
    }

    // The snapshot decodes to the set it was built from.
    let fetched_at = u64::from(s.fetched_at);
    let built = Snapshot::build(&doc, fetched_at);
    let snapshot = match Snapshot::from_bytes(built.as_bytes().to_vec()) {
        Ok(snapshot) => snapshot,
        Err(e) => panic!("a built snapshot is refused: {e}"),
    };
    let model = RevocationModel::new(&doc.entries);
    assert_eq!(snapshot.version(), doc.version);
    assert_eq!(snapshot.fetched_at(), fetched_at);
    assert_eq!(
        snapshot.len(),
        model.len(),
        "snapshot holds another number of entries than the set"
    );
    let static_list = StaticList::new(doc.entries.clone());
    let static_model = &model;
    assert_eq!(static_list.len(), static_model.len());
    check_digest(&doc, &built, &model, s.fetched_at);

    // Probes: every entry's own value under every kind, with `iat`s around
    // each `before`, and the fuzzer's own probes.
    let mut probes: Vec<Probed> = Vec::new();
    for e in &doc.entries {
        let v = e.value().to_owned();
        let mut iats = vec![None, Some(0.0), Some(-1.0), Some(f64::NAN), Some(1e300)];
        if let Entry::Sub {
            before: Some(b), ..
        } = e
        {
            let b = *b as f64;
            iats.extend([Some(b - 1.0), Some(b - 0.5), Some(b), Some(b + 0.5)]);
        }
        for iat in iats {
            probes.push((Some(v.clone()), None, "\u{0}none".into(), iat));
            probes.push((None, Some(v.clone()), "\u{0}none".into(), iat));
        }
        probes.push((None, None, v, Some(0.0)));
    }
    for p in &s.probes {
        probes.push((
            p.jti.as_ref().map(Value::text),
            p.sub.as_ref().map(Value::text),
            p.kid.text(),
            p.iat,
        ));
    }
    for (jti, sub, kid, iat) in probes.iter().take(4096) {
        let token = TokenRef {
            jti: jti.as_deref(),
            sub: sub.as_deref(),
            iat: *iat,
            kid,
        };
        for (name, answer, model) in [
            ("built snapshot", built.is_revoked(&token), &model),
            ("snapshot from bytes", snapshot.is_revoked(&token), &model),
            ("static list", static_list.is_revoked(&token), static_model),
        ] {
            let expected = model.is_revoked(&token);
            if answer != expected {
                assert!(
                    answer && model.collides(&token),
                    "{name} answers {answer} for {token:?}, the set model {expected}"
                );
            }
        }
    }
}

/// `Snapshot::digest` depends on the set of entries only: not on their
/// order, repeats, the version or the fetch time; and a set that differs
/// (one entry left out, when that changes the set) has another digest (an
/// XXH3-128 of the table: equal digests for different sets would take a
/// collision).
fn check_digest(doc: &Document, built: &Snapshot, model: &RevocationModel, fetched_at: u32) {
    let mut shuffled = doc.clone();
    shuffled.entries.reverse();
    if let Some(first) = doc.entries.first() {
        shuffled.entries.push(first.clone());
    }
    shuffled.version = doc.version.wrapping_add(1).max(1);
    let other = Snapshot::build(&shuffled, u64::from(fetched_at ^ 0x5a5a));
    assert_eq!(
        other.digest(),
        built.digest(),
        "the digest depends on order, repeats, version or fetch time"
    );
    for skip in 0..doc.entries.len().min(8) {
        let mut fewer = doc.clone();
        fewer.entries.remove(skip);
        let smaller = Snapshot::build(&fewer, u64::from(fetched_at));
        let same_set = RevocationModel::new(&fewer.entries) == *model;
        assert_eq!(
            smaller.digest() == built.digest(),
            same_set,
            "without entry {skip}: the set is the same: {same_set}; the digest is not"
        );
    }
}
