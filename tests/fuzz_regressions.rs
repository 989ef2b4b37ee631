//! Inputs the fuzz targets found (fuzz/README.md, "Findings"), as ordinary tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use tokengate::config::{Config, Secrets, ServiceConfig};
use tokengate::keys::{Alg, Key, KeyId, KeySet};
use tokengate::refusal::Reason;
use tokengate::token::{self, b64url_encode, ClaimSpec, Claims, Header};

fn key() -> Key {
    Key::new(KeyId("k1".into()), Alg::Hs256, &[9; 32]).unwrap()
}

fn craft(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64url_encode(header), b64url_encode(payload));
    let tag = key().sign(input.as_bytes());
    format!("{input}.{}", b64url_encode(&tag))
}

/// F1 (fuzz target token_verify): RFC 7519 §7.2 step 10, the header and
/// payload are UTF-8 JSON, also in members tokengate does not read.
#[test]
fn rejects_header_or_payload_that_is_not_utf8_json() {
    let keys = KeySet::new(vec![key()]);
    let cases: [(&[u8], &[u8]); 4] = [
        (br#"{"alg":"HS256"}"#, b"{\"sub\":\"u\",\"x\":\"\xff\"}"),
        (br#"{"alg":"HS256"}"#, br#"{"sub":"u","x":"\ud800"}"#),
        (b"{\"alg\":\"HS256\",\"x\":\"\xc1\"}", b"{}"),
        (br#"{"alg":"HS256","x":["\udfff"]}"#, b"{}"),
    ];
    for (header, payload) in cases {
        let token = craft(header, payload);
        assert_eq!(
            token::verify(&token, &keys, 4096, &ClaimSpec::default()).map(|_| ()),
            Err(Reason::Malformed),
            "{token}"
        );
    }
    let spec = ClaimSpec::default();
    assert_eq!(
        Claims::parse(b"{\"alg\":\"HS25\xc1\",\"typ\":7}", &spec).err(),
        Some(Reason::Malformed)
    );
    assert_eq!(
        Claims::parse(b"{\"x\":\"\xff\"}", &spec).err(),
        Some(Reason::Malformed)
    );
    assert_eq!(
        Header::parse(b"{\"alg\":\"HS256\",\"x\":\"\xff\"}").err(),
        Some(Reason::Malformed)
    );
}

/// F2 (fuzz target config_parse): structs are objects, never positional arrays.
#[test]
fn refuses_configurations_written_as_arrays() {
    let secret = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="; // 32 bytes
    let e = ServiceConfig::from_json(
        br#"["c","a","/",null,null,null,null]"#,
        &Secrets::Placeholder,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "invalid type: array, expected a JSON object");
    let filter = format!(
        r#"["realm",[["k","HS256","{secret}",null,null]],null,null,null,null,null,null,null,null,null,null,null,null,null,null]"#
    );
    assert!(Config::from_json(filter.as_bytes(), &Secrets::Placeholder).is_err());
    let key_as_array = format!(r#"{{"keys":[["k","HS256","{secret}",null,null]]}}"#);
    let e = Config::from_json(key_as_array.as_bytes(), &Secrets::Placeholder).unwrap_err();
    assert_eq!(
        e.to_string(),
        "keys[0]: invalid type: array, expected a JSON object"
    );
    let rule_as_array = format!(
        r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{secret}"}}],"rules":[[{{"prefix":"/"}},true,false,null,null]]}}"#
    );
    let e = Config::from_json(rule_as_array.as_bytes(), &Secrets::Placeholder).unwrap_err();
    assert_eq!(
        e.to_string(),
        "rules[0]: invalid type: array, expected a JSON object"
    );
    let match_as_array = format!(
        r#"{{"keys":[{{"kid":"k","alg":"HS256","secret":"{secret}"}}],"rules":[{{"match":["/a",null,null,null]}}]}}"#
    );
    let e = Config::from_json(match_as_array.as_bytes(), &Secrets::Placeholder).unwrap_err();
    assert_eq!(
        e.to_string(),
        "rules[0].match: invalid type: array, expected a JSON object"
    );
}

/// F3 (fuzz target rule_select): the extension reading of a last segment
/// that starts with a character of more than one byte. `path_readings`
/// looks for the extension's dot from byte 1 of the segment, which is not
/// a character boundary after `ü`, and so gives no reading at all: a rule
/// on `/ü` is slipped past with `/ü.json` to an upstream that drops
/// extensions (Rails' `(.:format)`, Spring's suffix patterns), while
/// `/x.json` is refused as ambiguous. Fails until `src/policy.rs` is fixed.
#[test]
fn reads_the_extension_of_a_segment_that_starts_with_a_wide_character() {
    use tokengate::gate::{Decision, FixedConnection, Request, Revocations};
    use tokengate::policy::path_readings;

    assert_eq!(path_readings("/x.json"), vec!["/x".to_owned()]);
    assert_eq!(path_readings("/ü.json"), vec!["/ü".to_owned()]);
    // The fuzzer's input, minimized by hand: the last segment is "بmin.J".
    assert!(path_readings("/ADMIN/بmin.J/").contains(&"/admin/بmin".to_owned()));

    let json = r#"{"keys":[{"kid":"k","alg":"HS256","secret":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","encoding":"utf8"}],
        "rules":[{"match":{"prefix":"/ü"},"deny":true},{"match":{"prefix":"/"},"anonymous":true}]}"#;
    let config = Config::from_json(json.as_bytes(), &Secrets::Placeholder).unwrap();
    let req = Request {
        method: "GET",
        path: "/ü.json".as_bytes(),
        authority: b"api.example.com",
        headers: &[],
    };
    let decision = config
        .decide(&req, &FixedConnection::default(), Revocations::default(), 0)
        .decision;
    assert_eq!(decision, Decision::Deny(Reason::BadRequest));
}
