//! JWS compact serialization with HMAC (RFC 7515): the one implementation
//! behind both access tokens and signed revocation lists.
//!
//! [`decode`] splits a compact JWS into exactly three canonical base64url
//! segments and parses its protected header strictly (one JSON object, no
//! repeated member, `alg` one of HS256/HS384/HS512, no `crit`, `kid` and
//! `typ` strings, every other member validated and ignored, never
//! dereferenced); [`Decoded::verify`] checks the MAC in constant time under
//! a key the caller chose; only then may the caller read the payload.
//! [`sign`] writes the same form. What `typ` and `kid` must be, and how a key
//! is chosen, belongs to the caller: the token profile (`token`) or the list
//! format (`revocation`).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::{self, MapAccess, Visitor};
use serde::Deserializer as _;

use crate::json::{MemberNames, Name, Skip, Text};
use crate::keys::{Alg, Key};

/// Anything wrong with the form of a compact JWS: size, segments,
/// base64url, the header's JSON or members. (A MAC that does not match is
/// not an error here: [`Decoded::verify`] says `false`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a JWS compact serialization with an HMAC header")
    }
}

impl std::error::Error for Malformed {}

/// The three segments of a compact JWS, still encoded.
#[derive(Clone, Copy, Debug)]
pub struct Compact<'t> {
    pub header: &'t str,
    pub payload: &'t str,
    pub signature: &'t str,
    /// `header.payload`, the bytes the MAC covers.
    pub signing_input: &'t str,
}

/// Splits a compact JWS into exactly three segments; `max_bytes` caps the
/// work an unauthenticated sender can cause.
pub fn split(text: &str, max_bytes: usize) -> Result<Compact<'_>, Malformed> {
    if text.is_empty() || text.len() > max_bytes {
        return Err(Malformed);
    }
    let mut parts = text.splitn(4, '.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed);
    };
    let signing_input = text
        .get(..header.len() + 1 + payload.len())
        .ok_or(Malformed)?;
    Ok(Compact {
        header,
        payload,
        signature,
        signing_input,
    })
}

/// Decodes base64url without padding, refusing non-canonical input (trailing
/// bits set, padding, the standard alphabet's `+` and `/`, white space).
pub fn b64url_decode(segment: &str) -> Result<Vec<u8>, Malformed> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| Malformed)
}

pub fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The protected header, as far as tokengate reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub alg: Alg,
    pub kid: Option<String>,
    /// As sent; its meaning is the caller's.
    pub typ: Option<String>,
}

impl Header {
    /// Parses the header JSON. Every flaw is [`Malformed`]: not one JSON
    /// object, a repeated member, a missing or non-HMAC `alg` (`none`
    /// included), `crit`, a `kid` or `typ` that is not a string, invalid
    /// JSON anywhere (also in members nobody reads).
    pub fn parse(json: &[u8]) -> Result<Header, Malformed> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let header = de.deserialize_map(HeaderVisitor).map_err(|_| Malformed)?;
        de.end().map_err(|_| Malformed)?;
        Ok(header)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut seen = MemberNames::default();
        let (mut alg, mut kid, mut typ) = (None, None, None);
        while let Some(name) = map.next_key::<Name<'de>>()? {
            match seen.add(name)? {
                "alg" => {
                    let text = map.next_value::<Text<'de>>()?.0;
                    alg = Some(Alg::from_name(&text).ok_or_else(|| de::Error::custom("alg"))?);
                }
                "kid" => kid = Some(map.next_value::<Text<'de>>()?.0.into_owned()),
                "typ" => typ = Some(map.next_value::<Text<'de>>()?.0.into_owned()),
                // No extension is understood (RFC 7515 §4.1.11).
                "crit" => return Err(de::Error::custom("crit")),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        seen.finish()?;
        let alg = alg.ok_or_else(|| de::Error::custom("alg"))?;
        Ok(Header { alg, kid, typ })
    }
}

/// A compact JWS whose form is checked and whose MAC is not, yet.
#[derive(Debug)]
pub struct Decoded<'t> {
    pub header: Header,
    /// The payload bytes: read them only once [`Decoded::verify`] held.
    pub payload: Vec<u8>,
    signature: Vec<u8>,
    signing_input: &'t str,
}

impl Decoded<'_> {
    /// Whether the MAC is `key`'s over `header.payload` (constant time; a
    /// signature of the wrong length is simply wrong).
    pub fn verify(&self, key: &Key) -> bool {
        key.verify(self.signing_input.as_bytes(), &self.signature)
    }
}

/// Splits, decodes and parses the header of a compact JWS. All three
/// segments are decoded here: their form is part of the format check,
/// though the payload is not read until the MAC holds.
pub fn decode(text: &str, max_bytes: usize) -> Result<Decoded<'_>, Malformed> {
    let parts = split(text, max_bytes)?;
    let header = Header::parse(&b64url_decode(parts.header)?)?;
    let payload = b64url_decode(parts.payload)?;
    let signature = b64url_decode(parts.signature)?;
    Ok(Decoded {
        header,
        payload,
        signature,
        signing_input: parts.signing_input,
    })
}

/// Signs `payload` with `key` as a compact JWS whose header is
/// `{"alg":…,"typ":…}` plus `"kid"` when given.
pub fn sign(payload: &[u8], key: &Key, typ: &str, kid: Option<&str>) -> String {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        alg: &'a str,
        typ: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        kid: Option<&'a str>,
    }
    let header = Out {
        alg: key.alg().name(),
        typ,
        kid,
    };
    // Serializing three strings cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = URL_SAFE_NO_PAD.encode(header);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let tag = key.sign(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyId;

    fn key() -> Key {
        Key::new(KeyId("k".into()), Alg::Hs256, &[7; 32]).unwrap()
    }

    fn with_header(header: &str) -> String {
        let k = key();
        let input = format!(
            "{}.{}",
            b64url_encode(header.as_bytes()),
            b64url_encode(b"{}")
        );
        let tag = k.sign(input.as_bytes());
        format!("{input}.{}", b64url_encode(&tag))
    }

    #[test]
    fn sign_then_decode_roundtrips_and_verifies() {
        let text = sign(b"{\"a\":1}", &key(), "x+jwt", Some("k"));
        let d = decode(&text, usize::MAX).unwrap();
        assert!(d.verify(&key()));
        assert_eq!(d.header.alg, Alg::Hs256);
        assert_eq!(d.header.kid.as_deref(), Some("k"));
        assert_eq!(d.header.typ.as_deref(), Some("x+jwt"));
        assert_eq!(d.payload, b"{\"a\":1}");
        let other = Key::new(KeyId("k".into()), Alg::Hs256, &[8; 32]).unwrap();
        assert!(!d.verify(&other));
    }

    #[test]
    fn refuses_headers_that_are_not_one_strict_object() {
        for header in [
            r#"["alg","HS256"]"#,
            r#"{"alg":"HS256","alg":"HS256"}"#,
            r#"{"alg":"HS256","x":1,"x":2}"#,
            r#"{"alg":"none"}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":"HS256","crit":["b64"]}"#,
            r#"{"alg":"HS256","kid":1}"#,
            r#"{"alg":"HS256","typ":null}"#,
            r#"{"alg":"HS256"} {}"#,
            r#"{"alg":"HS256","x":"\ud800"}"#,
        ] {
            assert_eq!(
                decode(&with_header(header), usize::MAX).err(),
                Some(Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn refuses_bad_framing() {
        let good = with_header(r#"{"alg":"HS256"}"#);
        assert!(decode(&good, usize::MAX).is_ok());
        assert!(decode(&good, good.len() - 1).is_err());
        assert!(decode(&format!("{good}."), usize::MAX).is_err());
        assert!(decode(&format!("{good}="), usize::MAX).is_err());
        assert!(decode("", usize::MAX).is_err());
    }
}
