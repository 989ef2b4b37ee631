//! The revocation follower with a fake clock and fake responses: when it
//! polls, and what each answer does to the list in force.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use tokengate::config::{Secrets, ServiceConfig};
use tokengate::keys::{Alg, Key, KeyId};
use tokengate::revocation::follower::{Follower, Outcome};
use tokengate::revocation::{Document, Entry, Snapshot};
use tokengate::shared::Published;

const NOW: u64 = 1_764_259_200;
const LIST_KEY: [u8; 32] = [0x11; 32];

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unsigned() -> ServiceConfig {
    ServiceConfig::from_json(
        br#"{"cluster":"c","authority":"a","path":"/l","poll_interval_s":5,"max_bytes":4096}"#,
        &Secrets::Placeholder,
    )
    .unwrap()
}

fn signed() -> ServiceConfig {
    let json = format!(
        r#"{{"cluster":"c","authority":"a","path":"/l","verify_key":{{"alg":"HS256","secret":"{}"}}}}"#,
        b64(&LIST_KEY)
    );
    ServiceConfig::from_json(json.as_bytes(), &Secrets::Placeholder).unwrap()
}

fn key() -> Key {
    Key::new(KeyId("revocations".into()), Alg::Hs256, &LIST_KEY).unwrap()
}

fn jti(v: &str) -> Entry {
    Entry::Jti {
        jti: v.into(),
        exp: None,
    }
}

fn doc(version: u64, generated_at: u64, entries: Vec<Entry>) -> Document {
    Document {
        version,
        generated_at: Some(generated_at),
        entries,
    }
}

/// Polls (which must be due) and answers 200 with `body`.
fn answer(f: &mut Follower, config: &ServiceConfig, now: u64, body: &str) -> Outcome {
    assert!(f.poll(now * 1000).is_some(), "a poll is due");
    let bytes = body.as_bytes().to_vec();
    f.on_response(
        Some(b"200"),
        Some(format!("\"{}\"", body.len()).into_bytes()),
        bytes.len(),
        || Some(bytes),
        config.verify_key(),
        now,
    )
}

fn not_modified(f: &mut Follower, config: &ServiceConfig, now: u64) -> Outcome {
    assert!(f.poll(now * 1000).is_some(), "a poll is due");
    f.on_response(
        Some(b"304"),
        None,
        0,
        || panic!("a 304 has no body to read"),
        config.verify_key(),
        now,
    )
}

/// Takes a published list into force, as the service does once written.
fn commit(f: &mut Follower, outcome: Outcome) -> Published {
    match outcome {
        Outcome::Publish(p) => {
            let state = p.state;
            f.published(p);
            state
        }
        other => panic!("expected a new list, got {other:?}"),
    }
}

/// Answers 200 with `body` and takes the new list into force.
fn take(f: &mut Follower, config: &ServiceConfig, now: u64, body: &str) -> Published {
    let outcome = answer(f, config, now, body);
    commit(f, outcome)
}

fn failed(outcome: Outcome) -> (String, bool) {
    match outcome {
        Outcome::Failed { why, rollback } => (why, rollback),
        other => panic!("expected a failed fetch, got {other:?}"),
    }
}

#[test]
fn polls_at_once_then_every_interval_and_never_twice_at_a_time() {
    let config = unsigned();
    let mut f = Follower::new(&config);
    assert_eq!(
        f.poll(NOW * 1000),
        Some(None),
        "the first poll is due at once"
    );
    assert_eq!(
        f.poll(NOW * 1000 + 6000),
        None,
        "one poll in flight at a time"
    );
    let body = doc(1, NOW, vec![]).to_json();
    let bytes = body.clone().into_bytes();
    let outcome = f.on_response(
        Some(b"200"),
        Some(b"\"v1\"".to_vec()),
        bytes.len(),
        || Some(bytes),
        None,
        NOW,
    );
    commit(&mut f, outcome);
    assert_eq!(
        f.poll(NOW * 1000 + 4999),
        None,
        "not before poll_interval_s"
    );
    assert_eq!(
        f.poll(NOW * 1000 + 5000),
        Some(Some("\"v1\"".to_owned())),
        "then with the ETag"
    );
}

#[test]
fn an_unsigned_list_is_fresh_from_its_last_fetch_a_304_included() {
    let config = unsigned();
    let mut f = Follower::new(&config);
    let state = take(&mut f, &config, NOW, &doc(3, 1, vec![jti("a")]).to_json());
    assert_eq!(
        state,
        Published {
            generation: 3,
            fresh_at: NOW
        }
    );
    match not_modified(&mut f, &config, NOW + 10) {
        Outcome::Confirmed {
            state,
            not_modified,
        } => {
            assert!(not_modified);
            assert_eq!(
                state,
                Published {
                    generation: 3,
                    fresh_at: NOW + 10
                }
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.age_s(NOW + 15), Some(5));
}

#[test]
fn a_signed_list_ages_from_its_generated_at_whatever_the_fetches() {
    let config = signed();
    let mut f = Follower::new(&config);
    let list = doc(7, NOW - 100, vec![jti("a")]).to_signed(&key());
    let state = take(&mut f, &config, NOW, &list);
    assert_eq!(
        state,
        Published {
            generation: 7,
            fresh_at: NOW - 100
        }
    );
    // A 304 forever, or the same list replayed, never makes it fresher.
    match not_modified(&mut f, &config, NOW + 10) {
        Outcome::Confirmed { state, .. } => assert_eq!(state.fresh_at, NOW - 100),
        other => panic!("{other:?}"),
    }
    match answer(&mut f, &config, NOW + 20, &list) {
        Outcome::Confirmed {
            state,
            not_modified,
        } => {
            assert!(!not_modified);
            assert_eq!(state.fresh_at, NOW - 100);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.age_s(NOW + 20), Some(120));
    // A re-signed list (higher version, new generated_at) is fresh again.
    let resigned = doc(8, NOW + 25, vec![jti("a")]).to_signed(&key());
    let state = take(&mut f, &config, NOW + 30, &resigned);
    assert_eq!(
        state,
        Published {
            generation: 8,
            fresh_at: NOW + 25
        }
    );
}

#[test]
fn an_old_signed_list_with_a_higher_version_is_taken_but_stays_stale() {
    let config = signed();
    let mut f = Follower::new(&config);
    let old = doc(2, NOW - 86_400, vec![jti("a")]).to_signed(&key());
    let state = take(&mut f, &config, NOW, &old);
    assert_eq!(
        state.fresh_at,
        NOW - 86_400,
        "it can only be newer; its age is its own"
    );
}

#[test]
fn a_lower_version_is_refused_as_a_rollback() {
    let config = unsigned();
    let mut f = Follower::new(&config);
    take(&mut f, &config, NOW, &doc(5, NOW, vec![jti("a")]).to_json());
    let (why, rollback) = failed(answer(
        &mut f,
        &config,
        NOW + 10,
        &doc(4, NOW, vec![]).to_json(),
    ));
    assert!(rollback);
    assert!(why.contains("rollback"), "{why}");
    assert_eq!(f.version(), Some(5));
    assert_eq!(
        f.age_s(NOW + 10),
        Some(10),
        "a failure does not refresh the list"
    );
}

#[test]
fn the_same_version_with_the_same_entries_in_any_order_changes_nothing() {
    let config = unsigned();
    let mut f = Follower::new(&config);
    let first = doc(5, NOW, vec![jti("a"), jti("b")]).to_json();
    take(&mut f, &config, NOW, &first);
    let reordered = doc(5, NOW, vec![jti("b"), jti("a"), jti("a")]).to_json();
    match answer(&mut f, &config, NOW + 10, &reordered) {
        Outcome::Confirmed {
            state,
            not_modified,
        } => {
            assert!(!not_modified);
            assert_eq!(
                state,
                Published {
                    generation: 5,
                    fresh_at: NOW + 10
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_same_version_with_other_entries_is_a_failed_fetch() {
    let config = unsigned();
    let mut f = Follower::new(&config);
    take(&mut f, &config, NOW, &doc(5, NOW, vec![jti("a")]).to_json());
    let (why, rollback) = failed(answer(
        &mut f,
        &config,
        NOW + 10,
        &doc(5, NOW, vec![jti("a"), jti("b")]).to_json(),
    ));
    assert!(!rollback);
    assert!(why.contains("higher version"), "{why}");
    assert_eq!(
        f.age_s(NOW + 10),
        Some(10),
        "the list in force stays, unrefreshed"
    );
}

#[test]
fn every_fault_keeps_the_list_in_force() {
    let config = unsigned();
    let mut f = Follower::new(&config);
    take(&mut f, &config, NOW, &doc(5, NOW, vec![jti("a")]).to_json());
    let mut now = NOW;
    for body in [
        "not json",
        r#"{"version":6}"#,
        r#"{"version":6,"entries":[{"jti":""}]}"#,
    ] {
        now += 5;
        failed(answer(&mut f, &config, now, body));
    }
    now += 5;
    assert!(f.poll(now * 1000).is_some());
    let (why, _) = failed(f.on_response(Some(b"503"), None, 0, || None, None, now));
    assert!(why.contains("503"));
    now += 5;
    assert!(f.poll(now * 1000).is_some());
    failed(f.on_response(None, None, 0, || None, None, now));
    now += 5;
    assert!(f.poll(now * 1000).is_some());
    let (why, _) = failed(f.on_response(
        Some(b"200"),
        None,
        4097,
        || panic!("a body over max_bytes is never read"),
        None,
        now,
    ));
    assert!(why.contains("max_bytes"), "{why}");
    assert_eq!(f.version(), Some(5));
    assert_eq!(f.age_s(now), Some(now - NOW));
}

#[test]
fn a_signed_list_needs_its_signature_and_its_generated_at() {
    let config = signed();
    let mut f = Follower::new(&config);
    failed(answer(&mut f, &config, NOW, &doc(1, NOW, vec![]).to_json()));
    let other = Key::new(KeyId("x".into()), Alg::Hs256, &[0x22; 32]).unwrap();
    failed(answer(
        &mut f,
        &config,
        NOW + 5,
        &doc(1, NOW, vec![]).to_signed(&other),
    ));
    let undated = Document {
        version: 1,
        generated_at: None,
        entries: vec![],
    };
    let (why, _) = failed(answer(
        &mut f,
        &config,
        NOW + 10,
        &undated.to_signed(&key()),
    ));
    assert!(why.contains("generated_at"), "{why}");
    assert_eq!(f.version(), None);
}

#[test]
fn a_304_before_any_list_is_a_failure() {
    let config = unsigned();
    let mut f = Follower::new(&config);
    failed(not_modified(&mut f, &config, NOW));
}

#[test]
fn a_list_not_written_is_not_in_force_and_is_fetched_again() {
    let config = unsigned();
    let mut f = Follower::new(&config);
    let body = doc(5, NOW, vec![jti("a")]).to_json();
    // The service could not write it to shared data: it never calls
    // `published`, so neither the version nor the ETag moves.
    assert!(matches!(
        answer(&mut f, &config, NOW, &body),
        Outcome::Publish(_)
    ));
    assert_eq!(f.version(), None);
    assert_eq!(
        f.poll((NOW + 5) * 1000),
        Some(None),
        "no ETag: the list is fetched whole"
    );
    let bytes = body.into_bytes();
    let outcome = f.on_response(
        Some(b"200"),
        None,
        bytes.len(),
        || Some(bytes),
        None,
        NOW + 5,
    );
    assert!(matches!(outcome, Outcome::Publish(_)), "published again");
}

#[test]
fn a_restarted_service_keeps_the_published_version_as_its_floor() {
    let config = unsigned();
    let published = doc(9, NOW, vec![jti("a")]);
    let snapshot = Snapshot::build(&published, NOW);
    let mut f = Follower::new(&config);
    f.recover(
        Some(Published {
            generation: 9,
            fresh_at: NOW,
        }),
        Some(&snapshot),
    );
    assert_eq!(f.version(), Some(9));
    let (_, rollback) = failed(answer(
        &mut f,
        &config,
        NOW + 5,
        &doc(8, NOW, vec![]).to_json(),
    ));
    assert!(
        rollback,
        "an older list replayed after the restart is refused"
    );
    assert!(matches!(
        answer(&mut f, &config, NOW + 10, &published.to_json()),
        Outcome::Confirmed { .. }
    ));
    let (why, _) = failed(answer(
        &mut f,
        &config,
        NOW + 15,
        &doc(9, NOW, vec![]).to_json(),
    ));
    assert!(why.contains("higher version"), "{why}");
}

#[test]
fn a_response_to_no_poll_is_ignored() {
    let config = unsigned();
    let mut f = Follower::new(&config);
    assert!(matches!(
        f.on_response(Some(b"200"), None, 0, || None, None, NOW),
        Outcome::Stale
    ));
}

/// The list's entries, for the `tokengate.revocation.entries` gauge: those
/// of a new list as it is published, then those of the list in force
/// (docs/telemetry.md, "Counters and gauges").
#[test]
fn a_new_list_and_the_list_in_force_count_their_entries() {
    let config = unsigned();
    let mut f = Follower::new(&config);
    assert_eq!(f.entries(), None);
    let body = doc(1, NOW, vec![jti("a"), jti("b"), jti("c")]).to_json();
    let outcome = answer(&mut f, &config, NOW, &body);
    match &outcome {
        Outcome::Publish(p) => assert_eq!(p.entries(), 3),
        other => panic!("expected a new list, got {other:?}"),
    }
    commit(&mut f, outcome);
    assert_eq!(f.entries(), Some(3));
}

/// An unsigned list confirmed by a 200 with the same version and entries
/// is fresh from that fetch, in the follower's own age as in what it
/// publishes (docs/revocation.md, "Age and staleness").
#[test]
fn an_unsigned_list_confirmed_by_the_same_version_is_fresh_from_that_fetch() {
    let config = unsigned();
    let mut f = Follower::new(&config);
    let body = doc(5, NOW, vec![jti("a")]).to_json();
    take(&mut f, &config, NOW, &body);
    assert!(matches!(
        answer(&mut f, &config, NOW + 100, &body),
        Outcome::Confirmed { .. }
    ));
    assert_eq!(f.age_s(NOW + 103), Some(3));
}

/// A body of exactly `max_bytes` is read; one byte more is a failed fetch
/// (docs/revocation.md, "Polling and the hand-over to workers").
#[test]
fn a_body_of_exactly_max_bytes_is_read_and_one_byte_more_fails() {
    let config = unsigned();
    assert_eq!(config.max_bytes(), 4096);
    let json = doc(1, NOW, vec![jti("a")]).to_json();
    let exact = format!("{json}{}", " ".repeat(4096 - json.len()));
    let mut f = Follower::new(&config);
    take(&mut f, &config, NOW, &exact);
    assert_eq!(f.version(), Some(1));
    let over = format!(
        "{}{}",
        doc(2, NOW, vec![jti("a")]).to_json(),
        " ".repeat(4097 - json.len())
    );
    assert_eq!(over.len(), 4097);
    let (why, rollback) = failed(answer(&mut f, &config, NOW + 10, &over));
    assert!(why.contains("max_bytes"), "{why}");
    assert!(!rollback);
    assert_eq!(f.version(), Some(1));
}
