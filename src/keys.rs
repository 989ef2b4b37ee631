//! HMAC keys: algorithms, secret decoding, and MAC computation.
//!
//! A [`Key`] is built once, at configuration time, from its secret bytes; it
//! keeps the HMAC state already keyed (the inner and outer pads hashed), so
//! checking a token clones that state instead of re-keying. This module never
//! reads configuration or the environment: callers hand it the secret bytes.
//! Secrets never leave it: `Debug` prints `[redacted]`.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

/// An HMAC JWS algorithm (RFC 7518 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    Hs256,
    Hs384,
    Hs512,
}

impl Alg {
    /// The algorithm named `name` on the wire (`"HS256"` …); case-sensitive,
    /// as RFC 7515 §4.1.1 makes it.
    pub fn from_name(name: &str) -> Option<Alg> {
        match name {
            "HS256" => Some(Alg::Hs256),
            "HS384" => Some(Alg::Hs384),
            "HS512" => Some(Alg::Hs512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Hs384 => "HS384",
            Alg::Hs512 => "HS512",
        }
    }

    /// The hash output length, which is also the MAC length and the
    /// shortest secret accepted (RFC 7518 §3.2).
    pub fn output_len(self) -> usize {
        match self {
            Alg::Hs256 => 32,
            Alg::Hs384 => 48,
            Alg::Hs512 => 64,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a configured secret's text becomes key bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecretEncoding {
    /// Standard or URL-safe base64, padding optional.
    #[default]
    Base64,
    /// The text's UTF-8 bytes, as many JWT libraries take a secret.
    Utf8,
}

/// Why a secret could not become a key. Never holds the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretError {
    NotBase64,
    TooShort { alg: Alg, len: usize },
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::NotBase64 => f.write_str("the secret is not valid base64"),
            SecretError::TooShort { alg, len } => write!(
                f,
                "the secret is {len} bytes; {alg} needs at least {}",
                alg.output_len()
            ),
        }
    }
}

impl std::error::Error for SecretError {}

/// Decodes a secret's text. Base64 accepts either alphabet, with or without
/// padding, and ignores surrounding white space.
pub fn decode_secret(text: &str, encoding: SecretEncoding) -> Result<Vec<u8>, SecretError> {
    match encoding {
        SecretEncoding::Utf8 => Ok(text.as_bytes().to_vec()),
        SecretEncoding::Base64 => {
            use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
            use base64::engine::DecodePaddingMode;
            let cfg = GeneralPurposeConfig::new()
                .with_decode_padding_mode(DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true);
            let text = text.trim();
            let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
            let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg);
            standard
                .decode(text)
                .or_else(|_| url.decode(text))
                .map_err(|_| SecretError::NotBase64)
        }
    }
}

/// A key id (`kid`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub String);

impl KeyId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone)]
enum KeyedMac {
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
}

/// A configured signing key: its id, its algorithm, and its keyed HMAC state.
#[derive(Clone)]
pub struct Key {
    kid: KeyId,
    alg: Alg,
    mac: KeyedMac,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl Key {
    /// Builds a key from its secret bytes; a secret shorter than the hash
    /// output is refused (RFC 7518 §3.2).
    pub fn new(kid: KeyId, alg: Alg, secret: &[u8]) -> Result<Key, SecretError> {
        if secret.len() < alg.output_len() {
            return Err(SecretError::TooShort {
                alg,
                len: secret.len(),
            });
        }
        // HMAC accepts keys of any length, so these cannot fail; map anyway
        // rather than unwrap.
        let mac = match alg {
            Alg::Hs256 => Hmac::<Sha256>::new_from_slice(secret).map(KeyedMac::Hs256),
            Alg::Hs384 => Hmac::<Sha384>::new_from_slice(secret).map(KeyedMac::Hs384),
            Alg::Hs512 => Hmac::<Sha512>::new_from_slice(secret).map(KeyedMac::Hs512),
        }
        .map_err(|_| SecretError::TooShort {
            alg,
            len: secret.len(),
        })?;
        Ok(Key { kid, alg, mac })
    }

    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// Checks `tag` over `signing_input` in constant time. A tag of the wrong
    /// length is simply a mismatch.
    pub fn verify(&self, signing_input: &[u8], tag: &[u8]) -> bool {
        match &self.mac {
            KeyedMac::Hs256(m) => verify_with(m, signing_input, tag),
            KeyedMac::Hs384(m) => verify_with(m, signing_input, tag),
            KeyedMac::Hs512(m) => verify_with(m, signing_input, tag),
        }
    }

    /// Computes the MAC of `signing_input`.
    pub fn sign(&self, signing_input: &[u8]) -> Vec<u8> {
        match &self.mac {
            KeyedMac::Hs256(m) => sign_with(m, signing_input),
            KeyedMac::Hs384(m) => sign_with(m, signing_input),
            KeyedMac::Hs512(m) => sign_with(m, signing_input),
        }
    }
}

fn verify_with<M: Mac + Clone>(keyed: &M, input: &[u8], tag: &[u8]) -> bool {
    let mut mac = keyed.clone();
    mac.update(input);
    mac.verify_slice(tag).is_ok()
}

fn sign_with<M: Mac + Clone>(keyed: &M, input: &[u8]) -> Vec<u8> {
    let mut mac = keyed.clone();
    mac.update(input);
    mac.finalize().into_bytes().to_vec()
}

/// The configured keys, looked up by `kid` and `alg`.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    pub fn new(keys: Vec<Key>) -> KeySet {
        KeySet { keys }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }

    pub fn by_kid(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid.0 == kid)
    }

    /// The key a token names: by `kid`, or the only key when the token has no
    /// `kid` and exactly one key is configured. The key's algorithm must be
    /// the token's: the key decides the algorithm, never the token.
    pub fn select(&self, kid: Option<&str>, alg: Alg) -> Option<&Key> {
        let key = match kid {
            Some(kid) => self.by_kid(kid)?,
            None if self.keys.len() == 1 => self.keys.first()?,
            None => return None,
        };
        (key.alg == alg).then_some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_secret_shorter_than_hash() {
        let err = Key::new(KeyId("k".into()), Alg::Hs384, &[7; 47]).unwrap_err();
        assert_eq!(
            err,
            SecretError::TooShort {
                alg: Alg::Hs384,
                len: 47
            }
        );
        assert!(Key::new(KeyId("k".into()), Alg::Hs384, &[7; 48]).is_ok());
    }

    #[test]
    fn base64_secret_accepts_both_alphabets_and_optional_padding() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        for text in [
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes),
            base64::engine::general_purpose::URL_SAFE.encode(&bytes),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
        ] {
            assert_eq!(
                decode_secret(&text, SecretEncoding::Base64).unwrap(),
                bytes,
                "{text}"
            );
        }
        assert_eq!(
            decode_secret("not base64!", SecretEncoding::Base64),
            Err(SecretError::NotBase64)
        );
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let key = Key::new(
            KeyId("k1".into()),
            Alg::Hs256,
            b"0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        let text = format!("{key:?}");
        assert!(text.contains("[redacted]"));
        assert!(!text.contains("0123456789"));
    }

    #[test]
    fn key_decides_the_algorithm() {
        let set = KeySet::new(vec![
            Key::new(KeyId("a".into()), Alg::Hs256, &[1; 32]).unwrap()
        ]);
        assert!(set.select(Some("a"), Alg::Hs256).is_some());
        assert!(set.select(None, Alg::Hs256).is_some());
        assert!(set.select(Some("a"), Alg::Hs512).is_none());
        assert!(set.select(Some("b"), Alg::Hs256).is_none());
    }

    /// The configured keys, counted and listed in configuration order, as
    /// `check-config` reports them (docs/configuration.md, "Keys"); a key
    /// id displays as its text.
    #[test]
    fn a_key_set_counts_and_lists_its_keys_in_order() {
        let empty = KeySet::default();
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.iter().count(), 0);
        let set = KeySet::new(vec![
            Key::new(KeyId("b".into()), Alg::Hs256, &[1; 32]).unwrap(),
            Key::new(KeyId("a".into()), Alg::Hs384, &[2; 48]).unwrap(),
        ]);
        assert!(!set.is_empty());
        assert_eq!(set.len(), 2);
        let listed: Vec<(String, Alg)> =
            set.iter().map(|k| (k.kid().to_string(), k.alg())).collect();
        assert_eq!(
            listed,
            [("b".to_owned(), Alg::Hs256), ("a".to_owned(), Alg::Hs384)]
        );
    }

    #[test]
    fn missing_kid_needs_exactly_one_key() {
        let set = KeySet::new(vec![
            Key::new(KeyId("a".into()), Alg::Hs256, &[1; 32]).unwrap(),
            Key::new(KeyId("b".into()), Alg::Hs256, &[2; 32]).unwrap(),
        ]);
        assert!(set.select(None, Alg::Hs256).is_none());
    }
}
