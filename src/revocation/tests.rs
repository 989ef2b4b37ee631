use std::time::Instant;

use super::snapshot::{read_u32, read_u64, Header, BEFORE_LEN, HEADER_LEN, SLOT_LEN};
use super::*;
use crate::keys::Key;
use crate::keys::{Alg, KeyId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

const NOW: u64 = 1_764_259_200;

fn list_key() -> Key {
    Key::new(KeyId("revocations".into()), Alg::Hs256, &[7; 32]).unwrap()
}

fn shape(body: &str) -> String {
    match Document::parse_json(body.as_bytes()) {
        Err(DocumentError::Shape(m)) => m,
        other => panic!("expected a shape error for {body}, got {other:?}"),
    }
}

fn jti(v: &str) -> Entry {
    Entry::Jti {
        jti: v.into(),
        exp: None,
    }
}

fn sub(v: &str, before: Option<u64>) -> Entry {
    Entry::Sub {
        sub: v.into(),
        before,
        exp: None,
    }
}

fn kid(v: &str) -> Entry {
    Entry::Kid {
        kid: v.into(),
        exp: None,
    }
}

fn doc(entries: Vec<Entry>) -> Document {
    Document {
        version: 42,
        generated_at: Some(NOW),
        entries,
    }
}

fn token<'a>(
    jti: Option<&'a str>,
    sub: Option<&'a str>,
    iat: Option<f64>,
    kid: &'a str,
) -> TokenRef<'a> {
    TokenRef { jti, sub, iat, kid }
}

/// The snapshot as built, the snapshot as a worker reloads it, and the
/// static list: all three must agree on every question.
fn all_three(entries: Vec<Entry>) -> (Snapshot, Snapshot, StaticList) {
    let built = Snapshot::build(&doc(entries.clone()), NOW);
    let reloaded = Snapshot::from_bytes(built.as_bytes().to_vec()).unwrap();
    (built, reloaded, StaticList::new(entries))
}

fn revoked_by_all(entries: &[Entry], t: &TokenRef<'_>) -> bool {
    let (built, reloaded, fixed) = all_three(entries.to_vec());
    let answers = [
        built.is_revoked(t),
        reloaded.is_revoked(t),
        fixed.is_revoked(t),
    ];
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "disagree on {t:?}: {answers:?}"
    );
    answers[0]
}

// --- document parsing -------------------------------------------------

#[test]
fn parses_the_spec_example() {
    let body = br#"{
      "version": 42,
      "generated_at": 1764259200,
      "entries": [
        {"jti": "01JD3", "exp": 1764262800},
        {"sub": "user-42", "before": 1764259000},
        {"kid": "2026-09"}
      ]
    }"#;
    let parsed = Document::parse_json(body).unwrap();
    assert_eq!(
        parsed,
        Document {
            version: 42,
            generated_at: Some(1_764_259_200),
            entries: vec![
                Entry::Jti {
                    jti: "01JD3".into(),
                    exp: Some(1_764_262_800)
                },
                sub("user-42", Some(1_764_259_000)),
                kid("2026-09"),
            ],
        }
    );
}

#[test]
fn refuses_missing_version() {
    assert_eq!(shape(r#"{"entries":[]}"#), "version: required");
}

#[test]
fn refuses_version_zero() {
    assert_eq!(
        shape(r#"{"version":0,"entries":[]}"#),
        "version: must be an integer >= 1"
    );
}

#[test]
fn refuses_string_version() {
    assert_eq!(
        shape(r#"{"version":"1","entries":[]}"#),
        "version: must be an integer >= 1"
    );
}

#[test]
fn refuses_fractional_and_null_version() {
    assert_eq!(
        shape(r#"{"version":1.0,"entries":[]}"#),
        "version: must be an integer >= 1"
    );
    assert_eq!(
        shape(r#"{"version":null,"entries":[]}"#),
        "version: must be an integer >= 1"
    );
}

#[test]
fn refuses_missing_entries() {
    assert_eq!(shape(r#"{"version":1}"#), "entries: required");
    assert_eq!(
        shape(r#"{"version":1,"entries":{}}"#),
        "entries: must be an array"
    );
}

#[test]
fn refuses_entry_with_two_kinds() {
    assert_eq!(
        shape(
            r#"{"version":1,"entries":[{"jti":"a"},{"jti":"b"},{"kid":"k"},{"jti":"c","sub":"u"}]}"#
        ),
        "entries[3]: has both jti and sub"
    );
    assert_eq!(
        shape(r#"{"version":1,"entries":[{"kid":"k","sub":"u"}]}"#),
        "entries[0]: has both sub and kid"
    );
}

#[test]
fn refuses_entry_without_kind() {
    assert_eq!(
        shape(r#"{"version":1,"entries":[{"exp":5}]}"#),
        "entries[0]: needs one of jti, sub, kid"
    );
}

#[test]
fn refuses_before_on_jti_and_kid() {
    assert_eq!(
        shape(r#"{"version":1,"entries":[{"jti":"a","before":5}]}"#),
        "entries[0]: before is allowed only on sub entries"
    );
    assert_eq!(
        shape(r#"{"version":1,"entries":[{"kid":"a","before":5}]}"#),
        "entries[0]: before is allowed only on sub entries"
    );
}

#[test]
fn refuses_unknown_fields() {
    assert_eq!(
        shape(r#"{"version":1,"entries":[],"extra":1}"#),
        r#"unknown field "extra""#
    );
    assert_eq!(
        shape(r#"{"version":1,"entries":[{"jti":"a","iat":1}]}"#),
        r#"entries[0]: unknown field "iat""#
    );
}

#[test]
fn refuses_duplicate_members() {
    assert_eq!(
        shape(r#"{"version":1,"version":2,"entries":[]}"#),
        r#"duplicate field "version""#
    );
    assert_eq!(
        shape(r#"{"version":1,"entries":[{"jti":"a","jti":"b"}]}"#),
        r#"entries[0]: duplicate field "jti""#
    );
    // An escaped name is the same name.
    assert_eq!(
        shape(r#"{"version":1,"entries":[{"sub":"a","su\u0062":"b"}]}"#),
        r#"entries[0]: duplicate field "sub""#
    );
}

#[test]
fn refuses_negative_exp() {
    assert_eq!(
        shape(r#"{"version":1,"entries":[{"jti":"a","exp":-1}]}"#),
        "entries[0].exp: must be an integer >= 0"
    );
}

#[test]
fn refuses_fractional_null_and_string_exp() {
    for exp in ["1.5", "1e3", "null", "\"5\"", "18446744073709551616"] {
        assert_eq!(
            shape(&format!(
                r#"{{"version":1,"entries":[{{"jti":"a","exp":{exp}}}]}}"#
            )),
            "entries[0].exp: must be an integer >= 0",
            "{exp}"
        );
    }
}

#[test]
fn refuses_empty_or_non_string_values() {
    assert_eq!(
        shape(r#"{"version":1,"entries":[{"jti":""}]}"#),
        "entries[0].jti: must be a non-empty string"
    );
    assert_eq!(
        shape(r#"{"version":1,"entries":[{"sub":7}]}"#),
        "entries[0].sub: must be a non-empty string"
    );
    assert_eq!(
        shape(r#"{"version":1,"entries":["user-42"]}"#),
        "entries[0]: must be an object"
    );
}

#[test]
fn shape_errors_never_quote_values() {
    let message = shape(r#"{"version":1,"entries":[{"jti":{"secret-ish":"value"}}]}"#);
    assert_eq!(message, "entries[0].jti: must be a non-empty string");
    let message = shape(r#"["secret-ish"]"#);
    assert_eq!(message, "the document must be a JSON object");
}

#[test]
fn refuses_bad_json_as_json() {
    for body in [
        "",
        "{",
        r#"{"version":1,"entries":[]} x"#,
        "nul",
        "{\"version\":1,}",
    ] {
        assert!(
            matches!(
                Document::parse_json(body.as_bytes()),
                Err(DocumentError::Json(_))
            ),
            "{body}"
        );
    }
}

#[test]
fn canonical_json_round_trips() {
    let original = Document {
        version: 7,
        generated_at: None,
        entries: vec![
            Entry::Jti {
                jti: "q\"uote\\back\nline\u{1}\u{7f}é😀".into(),
                exp: Some(9),
            },
            Entry::Sub {
                sub: "user-42".into(),
                before: Some(5),
                exp: Some(u64::MAX),
            },
            sub("all", None),
            kid("2026-09"),
        ],
    };
    let json = original.to_json();
    assert_eq!(Document::parse_json(json.as_bytes()).unwrap(), original);
    assert!(json.starts_with("{\"version\":7,\"entries\":[\n{\"jti\":"));
    assert!(json.contains("\n{\"sub\":\"user-42\",\"before\":5,\"exp\":18446744073709551615},\n"));
    let empty = Document {
        version: 1,
        generated_at: Some(3),
        entries: vec![],
    };
    assert_eq!(
        empty.to_json(),
        r#"{"version":1,"generated_at":3,"entries":[]}"#
    );
    assert_eq!(
        Document::parse_json(empty.to_json().as_bytes()).unwrap(),
        empty
    );
}

#[test]
fn drop_expired_keeps_entries_expiring_now_or_later() {
    let mut d = doc(vec![
        Entry::Jti {
            jti: "old".into(),
            exp: Some(NOW - 1),
        },
        Entry::Jti {
            jti: "now".into(),
            exp: Some(NOW),
        },
        jti("forever"),
    ]);
    d.drop_expired(NOW);
    let left: Vec<&str> = d.entries.iter().map(Entry::value).collect();
    assert_eq!(left, ["now", "forever"]);
}

/// Entries read with no path of their own (a bare array) are named from
/// their index: `[0].before` (docs/revocation.md, "The list document").
#[test]
fn entries_without_a_base_path_are_named_from_their_index() {
    let value = r#"[{"jti":"a"},{"sub":"u","before":-3}]"#.as_bytes();
    assert_eq!(
        Document::parse_entries(value, ""),
        Err("[1].before: must be an integer >= 0".into())
    );
}

/// A member given twice in one entry is refused, whichever it is: the last
/// value never silently wins (docs/revocation.md, "The list document").
#[test]
fn every_repeated_entry_member_is_refused() {
    for (entry, field) in [
        (r#"{"jti":"a","jti":"b"}"#, "jti"),
        (r#"{"sub":"a","sub":"b"}"#, "sub"),
        (r#"{"kid":"a","kid":"b"}"#, "kid"),
        (r#"{"jti":"a","exp":1,"exp":2}"#, "exp"),
        (r#"{"sub":"a","before":1,"before":2}"#, "before"),
    ] {
        assert_eq!(
            shape(&format!(r#"{{"version":1,"entries":[{entry}]}}"#)),
            format!(r#"entries[0]: duplicate field "{field}""#),
            "{entry}"
        );
    }
}

/// `null` is no value for a string member, never taken for an absent one
/// (docs/revocation.md, "The list document").
#[test]
fn a_null_string_member_is_refused() {
    for field in ["jti", "sub", "kid"] {
        assert_eq!(
            shape(&format!(
                r#"{{"version":1,"entries":[{{"{field}":null}}]}}"#
            )),
            format!("entries[0].{field}: must be a non-empty string"),
        );
    }
}

/// A snapshot counts its distinct entries, for the entries gauge
/// (docs/telemetry.md, "Counters and gauges").
#[test]
fn a_snapshot_counts_its_distinct_entries() {
    let empty = Snapshot::build(&doc(vec![]), NOW);
    assert!(empty.is_empty());
    assert_eq!(empty.len(), 0);
    let some = Snapshot::build(&doc(vec![jti("a"), jti("a"), kid("k")]), NOW);
    assert!(!some.is_empty());
    assert_eq!(some.len(), 2);
}

/// The filter's `static` entries, counted (one per distinct entry) and
/// empty only when there are none of any kind (docs/configuration.md,
/// "Revocation settings of the filter").
#[test]
fn a_static_list_counts_its_entries_of_every_kind() {
    assert!(StaticList::new(vec![]).is_empty());
    assert_eq!(StaticList::new(vec![]).len(), 0);
    for one in [jti("a"), kid("k"), sub("u", None)] {
        let list = StaticList::new(vec![one.clone()]);
        assert!(!list.is_empty(), "{one:?}");
        assert_eq!(list.len(), 1, "{one:?}");
    }
    let list = StaticList::new(vec![
        jti("a"),
        kid("k"),
        sub("u", None),
        sub("v", Some(NOW)),
        sub("v", Some(NOW - 10)),
    ]);
    assert_eq!(list.len(), 4);
}

#[test]
fn static_entries_name_their_json_path() {
    let value = r#"[{"jti":"a"},{"kid":"k"},{"jti":"b","sub":"c"}]"#.as_bytes();
    assert_eq!(
        Document::parse_entries(value, "revocation.static"),
        Err("revocation.static[2]: has both jti and sub".into())
    );
    let value = r#"[{"sub":"u","before":-3}]"#.as_bytes();
    assert_eq!(
        Document::parse_entries(value, "revocation.static"),
        Err("revocation.static[0].before: must be an integer >= 0".into())
    );
    let value = r#"[{"jti":"a","why":"x"}]"#.as_bytes();
    assert_eq!(
        Document::parse_entries(value, "revocation.static"),
        Err(r#"revocation.static[0]: unknown field "why""#.into())
    );
    let value = r#"{"jti":"a"}"#.as_bytes();
    assert_eq!(
        Document::parse_entries(value, "revocation.static"),
        Err("revocation.static: must be an array".into())
    );
}

#[test]
fn static_entries_parse_like_document_entries() {
    let entries = r#"[{"jti":"a","exp":3},{"sub":"u","before":9},{"sub":"v"},{"kid":"k"}]"#;
    let from_value = Document::parse_entries(entries.as_bytes(), "revocation.static").unwrap();
    let body = format!(r#"{{"version":1,"entries":{entries}}}"#);
    assert_eq!(
        from_value,
        Document::parse_json(body.as_bytes()).unwrap().entries
    );
}

// --- signed documents ---------------------------------------------------

fn jws(header: &str, payload: &str, key: &Key) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let tag = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

const PAYLOAD: &str = r#"{"version":3,"generated_at":1764259200,"entries":[{"jti":"a"}]}"#;

#[test]
fn refuses_signed_list_without_generated_at() {
    // Its age could never be told: a replayed old list would look fresh.
    let key = list_key();
    let token = jws(
        r#"{"alg":"HS256","typ":"tokengate-revocations"}"#,
        r#"{"version":3,"entries":[]}"#,
        &key,
    );
    assert_eq!(
        Document::parse_signed(token.as_bytes(), &key),
        Err(DocumentError::Shape(
            "generated_at: required in a signed list".into()
        ))
    );
}

#[test]
fn refuses_signed_list_with_a_header_that_is_not_one_strict_object() {
    // Found by review: the list once had its own, looser header parser.
    let key = list_key();
    for header in [
        r#"["HS256","tokengate-revocations"]"#,
        r#"{"alg":"HS256","typ":"tokengate-revocations","x":1,"x":2}"#,
        r#"{"alg":"HS256","alg":"HS256","typ":"tokengate-revocations"}"#,
        r#"{"alg":"HS256","typ":"tokengate-revocations","crit":[]}"#,
    ] {
        let token = jws(header, PAYLOAD, &key);
        assert_eq!(
            Document::parse_signed(token.as_bytes(), &key),
            Err(DocumentError::NotJws),
            "{header}"
        );
    }
}

#[test]
fn accepts_signed_list() {
    let key = list_key();
    let d = doc(vec![jti("a"), sub("u", Some(5)), kid("k")]);
    let signed = d.to_signed(&key);
    assert_eq!(Document::parse_signed(signed.as_bytes(), &key).unwrap(), d);
    // A file's final newline and a lower-case typ are fine.
    assert_eq!(
        Document::parse_signed(format!("{signed}\n").as_bytes(), &key).unwrap(),
        d
    );
    let lower = jws(
        r#"{"alg":"HS256","typ":"TokenGate-Revocations"}"#,
        PAYLOAD,
        &key,
    );
    assert_eq!(
        Document::parse_signed(lower.as_bytes(), &key)
            .unwrap()
            .version,
        3
    );
}

#[test]
fn refuses_signed_list_with_wrong_typ() {
    let key = list_key();
    for header in [
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":"application/tokengate-revocations"}"#,
    ] {
        let token = jws(header, PAYLOAD, &key);
        assert_eq!(
            Document::parse_signed(token.as_bytes(), &key),
            Err(DocumentError::WrongType),
            "{header}"
        );
    }
}

#[test]
fn refuses_signed_list_with_wrong_alg() {
    let key = list_key();
    let token = jws(
        r#"{"alg":"HS512","typ":"tokengate-revocations"}"#,
        PAYLOAD,
        &key,
    );
    assert_eq!(
        Document::parse_signed(token.as_bytes(), &key),
        Err(DocumentError::WrongAlg)
    );
    // Not an HMAC algorithm at all: not a JWS this parser reads (the
    // same header parser as tokens').
    for header in [
        r#"{"alg":"none","typ":"tokengate-revocations"}"#,
        r#"{"alg":"hs256","typ":"tokengate-revocations"}"#,
    ] {
        let token = jws(header, PAYLOAD, &key);
        assert_eq!(
            Document::parse_signed(token.as_bytes(), &key),
            Err(DocumentError::NotJws),
            "{header}"
        );
    }
    // The list signed with HS256 does not pass a verify key of HS384.
    let hs384 = Key::new(KeyId("revocations".into()), Alg::Hs384, &[7; 48]).unwrap();
    let signed = doc(vec![]).to_signed(&key);
    assert_eq!(
        Document::parse_signed(signed.as_bytes(), &hs384),
        Err(DocumentError::WrongAlg)
    );
}

#[test]
fn refuses_tampered_signed_list() {
    let key = list_key();
    let signed = doc(vec![jti("a")]).to_signed(&key);
    let parts: Vec<&str> = signed.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(r#"{"version":42,"entries":[]}"#);
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        Document::parse_signed(forged.as_bytes(), &key),
        Err(DocumentError::BadSignature)
    );
    let other_key = Key::new(KeyId("revocations".into()), Alg::Hs256, &[8; 32]).unwrap();
    assert_eq!(
        Document::parse_signed(signed.as_bytes(), &other_key),
        Err(DocumentError::BadSignature)
    );
    let short_tag = format!("{}.{}.AAAA", parts[0], parts[1]);
    assert_eq!(
        Document::parse_signed(short_tag.as_bytes(), &key),
        Err(DocumentError::BadSignature)
    );
}

#[test]
fn refuses_body_that_is_not_a_jws() {
    let key = list_key();
    let signed = doc(vec![jti("a")]).to_signed(&key);
    let parts: Vec<&str> = signed.split('.').collect();
    let padded_sig = format!("{}.{}.{}=", parts[0], parts[1], parts[2]);
    for body in [
        PAYLOAD.to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{signed}.x"),
        padded_sig,
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("not json"),
            parts[1],
            parts[2]
        ),
        String::new(),
    ] {
        assert_eq!(
            Document::parse_signed(body.as_bytes(), &key),
            Err(DocumentError::NotJws),
            "{body}"
        );
    }
}

#[test]
fn refuses_signed_list_with_duplicate_header_member() {
    let key = list_key();
    let token = jws(
        r#"{"alg":"HS256","alg":"HS256","typ":"tokengate-revocations"}"#,
        PAYLOAD,
        &key,
    );
    assert_eq!(
        Document::parse_signed(token.as_bytes(), &key),
        Err(DocumentError::NotJws)
    );
}

#[test]
fn refuses_signed_list_with_crit() {
    let key = list_key();
    let token = jws(
        r#"{"alg":"HS256","typ":"tokengate-revocations","crit":["x"]}"#,
        PAYLOAD,
        &key,
    );
    assert_eq!(
        Document::parse_signed(token.as_bytes(), &key),
        Err(DocumentError::NotJws)
    );
}

#[test]
fn signed_list_payload_keeps_the_document_rules() {
    let key = list_key();
    let token = jws(
        r#"{"alg":"HS256","typ":"tokengate-revocations"}"#,
        r#"{"version":0,"entries":[]}"#,
        &key,
    );
    assert_eq!(
        Document::parse_signed(token.as_bytes(), &key),
        Err(DocumentError::Shape(
            "version: must be an integer >= 1".into()
        ))
    );
}

// --- lookups --------------------------------------------------------------

#[test]
fn jti_entry_revokes_that_token_only() {
    let entries = [jti("t1")];
    assert!(revoked_by_all(
        &entries,
        &token(Some("t1"), Some("u"), Some(1.0), "k")
    ));
    assert!(!revoked_by_all(
        &entries,
        &token(Some("t2"), Some("u"), Some(1.0), "k")
    ));
    assert!(!revoked_by_all(
        &entries,
        &token(None, Some("t1"), None, "t1")
    ));
}

#[test]
fn kid_entry_revokes_every_token_of_that_key() {
    let entries = [kid("2026-09")];
    assert!(revoked_by_all(
        &entries,
        &token(None, None, None, "2026-09")
    ));
    assert!(revoked_by_all(
        &entries,
        &token(Some("x"), Some("y"), Some(5.0), "2026-09")
    ));
    assert!(!revoked_by_all(
        &entries,
        &token(Some("2026-09"), Some("2026-09"), None, "2026-10")
    ));
}

#[test]
fn sub_with_before_revokes_earlier_tokens_and_those_without_iat() {
    let entries = [sub("user-42", Some(1000))];
    let at = |iat| token(Some("j"), Some("user-42"), iat, "k");
    assert!(revoked_by_all(&entries, &at(Some(999.0))));
    assert!(revoked_by_all(&entries, &at(Some(999.999))));
    assert!(!revoked_by_all(&entries, &at(Some(1000.0))));
    assert!(!revoked_by_all(&entries, &at(Some(1000.5))));
    assert!(revoked_by_all(&entries, &at(None)));
    assert!(revoked_by_all(&entries, &at(Some(-1.0))));
    assert!(revoked_by_all(&entries, &at(Some(f64::NAN))));
    assert!(!revoked_by_all(&entries, &at(Some(f64::INFINITY))));
    assert!(!revoked_by_all(
        &entries,
        &token(Some("j"), Some("user-43"), None, "k")
    ));
}

#[test]
fn sub_before_compares_exactly_near_2_pow_53_and_u64_max() {
    let big = 1u64 << 53;
    let entries = [sub("a", Some(big + 1)), sub("b", Some(u64::MAX))];
    assert!(revoked_by_all(
        &entries,
        &token(None, Some("a"), Some(big as f64), "k")
    ));
    assert!(revoked_by_all(
        &entries,
        &token(None, Some("b"), Some(1e19), "k")
    ));
    assert!(!revoked_by_all(
        &entries,
        &token(None, Some("b"), Some(2e19), "k")
    ));
}

#[test]
fn sub_without_before_revokes_every_token_of_the_subject() {
    let entries = [sub("user-42", None)];
    assert!(revoked_by_all(
        &entries,
        &token(None, Some("user-42"), Some(1e15), "k")
    ));
    assert!(revoked_by_all(
        &entries,
        &token(None, Some("user-42"), None, "k")
    ));
    assert!(!revoked_by_all(
        &entries,
        &token(Some("user-42"), None, None, "user-42")
    ));
}

#[test]
fn repeated_sub_keeps_the_strictest() {
    let later = [
        sub("u", Some(100)),
        sub("u", Some(200)),
        sub("u", Some(150)),
    ];
    assert!(revoked_by_all(
        &later,
        &token(None, Some("u"), Some(199.0), "k")
    ));
    assert!(!revoked_by_all(
        &later,
        &token(None, Some("u"), Some(200.0), "k")
    ));
    let all = [sub("u", Some(100)), sub("u", None), sub("u", Some(300))];
    assert!(revoked_by_all(
        &all,
        &token(None, Some("u"), Some(1e9), "k")
    ));
    let (built, _, fixed) = all_three(all.to_vec());
    assert_eq!((built.len(), fixed.len()), (1, 1));
}

#[test]
fn expired_entries_are_kept_at_build() {
    let entries = vec![
        Entry::Jti {
            jti: "gone".into(),
            exp: Some(NOW - 1),
        },
        Entry::Jti {
            jti: "last-second".into(),
            exp: Some(NOW),
        },
    ];
    // A token with that exp is valid until exp + the filter's clock skew,
    // which the service does not know: the publisher drops entries.
    let snapshot = Snapshot::build(&doc(entries), NOW);
    assert_eq!(snapshot.len(), 2);
    assert!(snapshot.is_revoked(&token(Some("gone"), None, None, "k")));
    assert!(snapshot.is_revoked(&token(Some("last-second"), None, None, "k")));
}

#[test]
fn empty_list_revokes_nothing() {
    let (built, reloaded, fixed) = all_three(vec![]);
    assert!(built.is_empty() && reloaded.is_empty() && fixed.is_empty());
    assert_eq!(built.as_bytes().len(), HEADER_LEN + SLOT_LEN);
    for t in [
        token(Some("a"), Some("b"), None, "c"),
        token(None, None, None, ""),
    ] {
        assert!(!built.is_revoked(&t) && !reloaded.is_revoked(&t) && !fixed.is_revoked(&t));
    }
}

fn mixed_entries(n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| match i % 4 {
            0 | 1 => jti(&format!("jti-{i}")),
            2 => sub(
                &format!("user-{i}"),
                (i % 8 == 2).then_some(1000 + i as u64),
            ),
            _ => kid(&format!("kid-{i}")),
        })
        .collect()
}

#[test]
fn snapshot_round_trip_answers_the_same() {
    let entries = mixed_entries(10_000);
    let built = Snapshot::build(&doc(entries.clone()), NOW);
    let reloaded = Snapshot::from_bytes(built.as_bytes().to_vec()).unwrap();
    assert_eq!(
        (reloaded.version(), reloaded.fetched_at(), reloaded.len()),
        (42, NOW, 10_000)
    );
    for entry in &entries {
        let t = fuzzing::token_for(entry);
        assert!(built.is_revoked(&t) && reloaded.is_revoked(&t), "{entry:?}");
    }
    for i in 0..1_000 {
        let (j, s, k) = (
            format!("jti-x{i}"),
            format!("user-x{i}"),
            format!("kid-x{i}"),
        );
        let t = token(Some(&j), Some(&s), None, &k);
        assert!(!built.is_revoked(&t) && !reloaded.is_revoked(&t), "{i}");
        // The same text under another kind does not match.
        let (entry_jti, entry_sub) = (format!("jti-{}", i * 4), format!("user-{}", i * 4 + 2));
        let crossed = token(Some(&entry_sub), Some(&entry_jti), None, &entry_jti);
        assert!(!reloaded.is_revoked(&crossed), "{i}");
    }
}

#[test]
fn snapshot_layout_is_as_documented() {
    let snapshot = Snapshot::build(&doc(vec![jti("a"), sub("u", Some(7))]), NOW);
    let b = snapshot.as_bytes();
    assert_eq!(&b[0..4], b"TGRL");
    assert_eq!(read_u32(b, 4), Some(1));
    assert_eq!(read_u64(b, 8), Some(42));
    assert_eq!(read_u64(b, 16), Some(NOW));
    assert_eq!(read_u64(b, 24), Some(2));
    assert_eq!(read_u64(b, 32), Some(2)); // homes: 2 + 2/4
    assert_eq!(read_u64(b, 48), Some(1));
    let slots = read_u64(b, 40).unwrap() as usize;
    assert_eq!(b.len(), HEADER_LEN + SLOT_LEN * slots + BEFORE_LEN);
    assert_eq!(read_u64(b, b.len() - 8), Some(7));
}

// --- hostile bytes ----------------------------------------------------------

fn sample() -> Vec<u8> {
    Snapshot::build(&doc(mixed_entries(40)), NOW)
        .as_bytes()
        .to_vec()
}

fn set_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn refuses_truncated_snapshots() {
    let bytes = sample();
    for len in 0..bytes.len() {
        let err = Snapshot::from_bytes(bytes[..len].to_vec()).unwrap_err();
        if len < HEADER_LEN {
            assert_eq!(err, SnapshotError::TooShort { len });
        } else {
            assert_eq!(
                err,
                SnapshotError::Inconsistent("lengths do not match the byte count")
            );
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Snapshot::from_bytes(longer).is_err());
}

#[test]
fn refuses_wrong_magic_and_format() {
    let mut bytes = sample();
    bytes[0] = b'X';
    assert_eq!(
        Snapshot::from_bytes(bytes).unwrap_err(),
        SnapshotError::BadMagic
    );
    let mut bytes = sample();
    bytes[4] = 2;
    assert_eq!(
        Snapshot::from_bytes(bytes).unwrap_err(),
        SnapshotError::UnsupportedFormat(2)
    );
}

#[test]
fn refuses_headers_that_lie() {
    let cases: [(usize, u64, &str); 7] = [
        (40, u64::MAX, "lengths do not match the byte count"),
        (40, 1 << 20, "lengths do not match the byte count"),
        (32, 0, "no home slots"),
        (32, u64::MAX, "fewer slots than homes"),
        (24, u64::MAX, "more entries than slots"),
        (48, 1_000, "more befores than entries"),
        (56, u64::MAX, "probe bound beyond the table"),
    ];
    for (at, value, why) in cases {
        let mut bytes = sample();
        set_u64(&mut bytes, at, value);
        assert_eq!(
            Snapshot::from_bytes(bytes).unwrap_err(),
            SnapshotError::Inconsistent(why),
            "{at}={value}"
        );
    }
    // Counts that overflow when multiplied out.
    for (slots, befores) in [
        (u64::MAX / 8, 0),
        (1, u64::MAX / 4),
        (u64::MAX / 16, u64::MAX / 16),
    ] {
        let mut bytes = sample();
        set_u64(&mut bytes, 24, befores);
        set_u64(&mut bytes, 32, 1);
        set_u64(&mut bytes, 40, slots.max(befores));
        set_u64(&mut bytes, 48, befores);
        set_u64(&mut bytes, 56, 0);
        assert_eq!(
            Snapshot::from_bytes(bytes).unwrap_err(),
            SnapshotError::Inconsistent("lengths do not match the byte count"),
            "{slots} {befores}"
        );
    }
}

#[test]
fn refuses_all_ff_bytes() {
    for len in [0, 1, 63, 64, 65, 80, 4096] {
        assert!(Snapshot::from_bytes(vec![0xFF; len]).is_err(), "{len}");
    }
}

/// A header that fits its bytes over a table of garbage: the lookups
/// stay in bounds and end, and a sub slot whose `before` is missing
/// revokes (fail closed).
#[test]
fn garbage_table_under_a_valid_header_answers_sanely() {
    for fill in [0x00u8, 0x01, 0x7F, 0xFF] {
        let slots = 64u64;
        let mut bytes = Vec::new();
        Header {
            version: 1,
            fetched_at: NOW,
            entries: 64,
            homes: 1,
            slots,
            befores: 0,
            max_probe: slots - 1,
        }
        .write(&mut bytes);
        bytes.resize(HEADER_LEN + SLOT_LEN * slots as usize, fill);
        let snapshot = Snapshot::from_bytes(bytes).unwrap();
        for v in ["a", "user-42", ""] {
            let _ = snapshot.is_revoked(&token(Some(v), Some(v), None, v));
        }
    }
    // One real sub slot whose aux points past the befores array.
    let mut bytes = Snapshot::build(&doc(vec![sub("u", Some(10))]), NOW)
        .as_bytes()
        .to_vec();
    let fp = fingerprint(Kind::Sub, "u");
    let slot_at = (0..)
        .map(|i| HEADER_LEN + SLOT_LEN * i)
        .find(|&at| read_u64(&bytes, at) == Some(fp.hi))
        .unwrap();
    bytes[slot_at + 12..slot_at + 16].copy_from_slice(&99u32.to_le_bytes());
    let snapshot = Snapshot::from_bytes(bytes).unwrap();
    assert!(snapshot.is_revoked(&token(None, Some("u"), Some(1e9), "k")));
}

#[test]
fn random_bytes_never_panic() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let base = sample();
    for _ in 0..2_000 {
        let mut bytes = base.clone();
        for _ in 0..(next() % 8) {
            let at = (next() as usize) % bytes.len();
            bytes[at] = next() as u8;
        }
        fuzzing::snapshot_bytes(&bytes).unwrap();
        let len = (next() as usize) % 200;
        let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        fuzzing::snapshot_bytes(&noise).unwrap();
        fuzzing::document_json(&noise).unwrap();
    }
}

#[test]
fn fuzz_property_holds_on_a_mixed_document() {
    let body = doc(mixed_entries(200)).to_json();
    fuzzing::document_json(body.as_bytes()).unwrap();
}

/// A property that cannot fail is no property: each check of the
/// `revocation` fuzz target reports a counterexample fed to it, naming what
/// broke (docs/revocation.md, "The list document": every entry is enforced, by
/// the snapshot and by the static list alike).
#[test]
fn fuzz_properties_report_their_counterexamples() {
    let entries = vec![jti("j-1"), sub("user-42", Some(NOW)), kid("2026-09")];
    let whole = doc(entries.clone());
    assert_eq!(fuzzing::same_document(&whole, &whole.clone()), Ok(()));
    let fewer = doc(entries[..2].to_vec());
    assert!(fuzzing::same_document(&whole, &fewer).is_err());
    let older = Document {
        version: 41,
        ..whole.clone()
    };
    assert!(fuzzing::same_document(&whole, &older).is_err());

    let all = StaticList::new(entries.clone());
    assert_eq!(
        fuzzing::enforces_every_entry("static list", &entries, |t| all.is_revoked(t)),
        Ok(())
    );
    for (i, missing) in entries.iter().enumerate() {
        let mut rest = entries.clone();
        rest.remove(i);
        let partial = Snapshot::build(&doc(rest), NOW);
        let err = fuzzing::enforces_every_entry("snapshot", &entries, |t| partial.is_revoked(t))
            .unwrap_err();
        assert!(err.starts_with("snapshot: "), "{err}");
        assert!(err.contains(&format!("{:?}", missing.kind())), "{err}");
    }
    assert!(fuzzing::enforces_every_entry("nothing", &entries, |_| false).is_err());
}

/// A body that is JSON, but not a list document, is refused as a document
/// of the wrong shape, never reported as "not JSON" (docs/revocation.md,
/// "The list document").
#[test]
fn json_of_another_shape_is_a_shape_error_not_a_json_error() {
    for body in [
        "[]",
        "42",
        "null",
        r#"{"version":1,"entries":[[1]]}"#,
        r#"{"version":"1","entries":[]}"#,
    ] {
        match Document::parse_json(body.as_bytes()) {
            Err(DocumentError::Shape(m)) => assert!(!m.is_empty(), "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    assert!(matches!(
        Document::parse_json(b"{\"version\":1,"),
        Err(DocumentError::Json(_))
    ));
}

/// The canonical writer escapes what JSON needs escaped and nothing more:
/// a space or any printable character is written as itself
/// (docs/revocation.md, "The list document").
#[test]
fn the_canonical_form_writes_printable_text_as_itself() {
    let json = doc(vec![sub("John Doe ~é", None), jti("a\"b\\c\u{7f}\u{1f}")]).to_json();
    assert!(json.contains(r#"{"sub":"John Doe ~é"}"#), "{json}");
    assert!(json.contains(r#"{"jti":"a\"b\\c\u007f\u001f"}"#), "{json}");
    let again = Document::parse_json(json.as_bytes()).unwrap();
    assert_eq!(
        again,
        doc(vec![sub("John Doe ~é", None), jti("a\"b\\c\u{7f}\u{1f}")])
    );
}

/// A `sub` entry with `before` B revokes the tokens issued before B, those
/// without `iat`, and those whose `iat` cannot be read as a time (NaN, or
/// negative from hostile bytes): a fault never un-revokes. With B = 0, a
/// token issued at 0 is not before it (docs/revocation.md, "The list document":
/// `before`).
#[test]
fn issued_before_at_zero_and_for_unreadable_times() {
    use super::lookup::issued_before;
    assert!(!issued_before(Some(0.0), 0));
    assert!(!issued_before(Some(0.5), 0));
    assert!(issued_before(None, 0));
    assert!(issued_before(Some(f64::NAN), 0));
    assert!(issued_before(Some(-1.0), 0));
    assert!(issued_before(Some(-0.5), 0));
    assert!(issued_before(Some(0.0), 1));
    assert!(!issued_before(Some(1.0), 1));
}

/// Writes a snapshot of `slots` (fingerprint, aux) with one home slot, so
/// every lookup starts at slot 0 and may probe them all.
fn crafted_table(slots: &[(Fingerprint, u32)]) -> Snapshot {
    let n = slots.len();
    let mut bytes = vec![0u8; HEADER_LEN + n * SLOT_LEN];
    bytes[..4].copy_from_slice(&SNAPSHOT_MAGIC);
    bytes[4..8].copy_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
    set_u64(&mut bytes, 8, 1);
    set_u64(&mut bytes, 16, NOW);
    set_u64(&mut bytes, 24, n as u64);
    set_u64(&mut bytes, 32, 1);
    set_u64(&mut bytes, 40, n as u64);
    set_u64(&mut bytes, 48, 0);
    set_u64(&mut bytes, 56, n as u64 - 1);
    for (i, (fp, aux)) in slots.iter().enumerate() {
        let at = HEADER_LEN + i * SLOT_LEN;
        set_u64(&mut bytes, at, fp.hi);
        bytes[at + 8..at + 12].copy_from_slice(&fp.lo.to_le_bytes());
        bytes[at + 12..at + 16].copy_from_slice(&aux.to_le_bytes());
    }
    Snapshot::from_bytes(bytes).unwrap()
}

/// A slot is empty only when all of it is zero: a fingerprint with one half
/// zero is an entry like any other, which a lookup passes over to the next;
/// at an empty slot a lookup stops (docs/revocation.md, "Polling and the hand-over to workers").
#[test]
fn only_an_all_zero_slot_is_empty_and_a_lookup_stops_there() {
    let fp = fingerprint(Kind::Jti, "a");
    assert!(fp.hi > 0 && fp.lo > 0);
    let token = token(Some("a"), None, None, "k");
    for before in [
        Fingerprint { hi: 0, lo: 5 },
        Fingerprint { hi: fp.hi, lo: 0 },
    ] {
        assert!(before < fp);
        assert!(crafted_table(&[(before, 0), (fp, 0)]).is_revoked(&token));
    }
    let empty = Fingerprint { hi: 0, lo: 0 };
    assert!(!crafted_table(&[(empty, 0), (fp, 0)]).is_revoked(&token));
    assert!(crafted_table(&[(fp, 0), (empty, 0)]).is_revoked(&token));
}

// --- size and speed -----------------------------------------------------------

fn bytes_per_entry(entries: Vec<Entry>) -> f64 {
    let n = entries.len();
    let snapshot = Snapshot::build(&doc(entries), NOW);
    assert_eq!(snapshot.len(), n);
    snapshot.as_bytes().len() as f64 / n as f64
}

#[test]
fn costs_at_most_32_bytes_per_entry_at_100k() {
    let n = 100_000;
    let jtis = bytes_per_entry((0..n).map(|i| jti(&format!("{i:026}"))).collect());
    let subs = bytes_per_entry(
        (0..n)
            .map(|i| sub(&format!("user-{i}"), Some(i as u64)))
            .collect(),
    );
    assert!(jtis <= 20.1, "{jtis}");
    assert!(subs <= 28.1, "{subs}");
}

#[test]
fn probe_bound_stays_small() {
    let snapshot = Snapshot::build(
        &doc((0..100_000).map(|i| jti(&format!("{i}"))).collect()),
        NOW,
    );
    assert!(
        snapshot.header.max_probe < 64,
        "{}",
        snapshot.header.max_probe
    );
}

/// `cargo test --release --lib revocation -- --ignored --nocapture`
#[test]
#[ignore = "1,000,000 entries: run in release"]
fn million_entries_load_fast_and_small() {
    let n = 1_000_000;
    // Identifiers the size of a ULID, as `tokengate mint` makes them.
    let entries: Vec<Entry> = (0..n).map(|i| jti(&format!("01JD3{i:021}"))).collect();
    let d = doc(entries);
    let key = list_key();
    let signed = d.to_signed(&key);
    let started = Instant::now();
    let parsed = Document::parse_signed(signed.as_bytes(), &key).unwrap();
    let parse_time = started.elapsed();
    assert_eq!(parsed.entries.len(), n);
    let started = Instant::now();
    let built = Snapshot::build(&d, NOW);
    let build_time = started.elapsed();
    let copy = built.as_bytes().to_vec();
    let started = Instant::now();
    let loaded = Snapshot::from_bytes(copy).unwrap();
    let load_time = started.elapsed();
    let per_entry = loaded.as_bytes().len() as f64 / n as f64;
    let started = Instant::now();
    let mut hits = 0;
    for entry in &d.entries {
        hits += usize::from(loaded.is_revoked(&fuzzing::token_for(entry)));
    }
    let hit_time = started.elapsed() / n as u32;
    let misses: Vec<String> = (0..n).map(|i| format!("01JD4{i:021}")).collect();
    let started = Instant::now();
    let mut false_hits = 0;
    for m in &misses {
        false_hits += usize::from(loaded.is_revoked(&token(Some(m), Some(m), None, "k")));
    }
    let miss_time = started.elapsed() / n as u32;
    let subs = Document {
        entries: (0..n)
            .map(|i| sub(&format!("user-{i}"), Some(i as u64)))
            .collect(),
        ..d.clone()
    };
    let sub_per_entry = Snapshot::build(&subs, NOW).as_bytes().len() as f64 / n as f64;
    println!(
        "1M entries: {} bytes ({per_entry:.2} B/entry jti, {sub_per_entry:.2} B/entry sub+before), \
         signed list of {} bytes verified and parsed in {parse_time:?}, \
         build {build_time:?}, from_bytes {load_time:?}, max_probe {}, \
         lookup hit {hit_time:?}, token miss (3 probes) {miss_time:?}",
        loaded.as_bytes().len(),
        signed.len(),
        loaded.header.max_probe
    );
    assert_eq!((hits, false_hits), (n, 0));
    assert!(per_entry <= 32.0 && sub_per_entry <= 32.0);
}
