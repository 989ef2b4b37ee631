//! The first phase: the configuration as written, read by serde.
//!
//! Every struct refuses unknown fields, and every place the configuration
//! has an object is an [`Obj`]: serde's derived structs would also read a
//! JSON array by position (`["realm", [...]]`), which no operator means
//! (found by the `config_parse` fuzz target). The types are the schema: there
//! is no second list of where objects go to keep in sync.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::Deserialize;

use super::{ConfigError, OnUnavailable};
use crate::keys::Alg;

/// A JSON object holding a `T`, never an array (nor anything else).
pub(super) struct Obj<T>(pub(super) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(ObjectOnly(d)).map(Obj)
    }
}

/// Hands a derived struct's visitor only JSON objects.
struct ObjectOnly<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(ObjectVisitor(visitor, PhantomData))
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(ObjectVisitor(visitor, PhantomData))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Passes a map on; refuses every other JSON value as "expected a JSON
/// object", without quoting it (a misplaced secret is never echoed).
struct ObjectVisitor<'de, V>(V, PhantomData<&'de ()>);

impl<'de, V: Visitor<'de>> ObjectVisitor<'de, V> {
    fn refuse<E: de::Error>(&self, what: &str) -> E {
        E::invalid_type(Unexpected::Other(what), self)
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for ObjectVisitor<'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<V::Value, A::Error> {
        Err(self.refuse("array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<V::Value, E> {
        Err(self.refuse("string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<V::Value, E> {
        Err(self.refuse("boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<V::Value, E> {
        Err(self.refuse("number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<V::Value, E> {
        Err(self.refuse("number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<V::Value, E> {
        Err(self.refuse("number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        Err(self.refuse("null"))
    }
}

/// Parses JSON text into `T`, naming the JSON path of the first error.
pub(super) fn parse_json<'de, T: Deserialize<'de>>(json: &'de [u8]) -> Result<T, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = T::deserialize(&mut de).map_err(|err| at_error(json, &err))?;
    de.end()
        .map_err(|e| ConfigError::new("", strip_position(&e.to_string())))?;
    Ok(value)
}

/// A serde_json error as a configuration error: the JSON path of the value
/// being read where it stopped, and the message without its position.
fn at_error(json: &[u8], err: &serde_json::Error) -> ConfigError {
    let offset = offset_of(json, err.line(), err.column());
    ConfigError::new(
        crate::json::path_at(json, offset),
        strip_position(&err.to_string()),
    )
}

/// The byte offset of serde_json's 1-based line and column.
fn offset_of(json: &[u8], line: usize, column: usize) -> usize {
    let line_start = json
        .split_inclusive(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    line_start.saturating_add(column)
}

/// serde_json appends " at line L column C"; a JSON path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_owned(),
        None => message.to_owned(),
    }
}

pub(super) fn alg_from_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Alg, D::Error> {
    let text = String::deserialize(d)?;
    Alg::from_name(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown algorithm {text:?}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawEncoding {
    Base64,
    Utf8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub(super) kid: String,
    #[serde(deserialize_with = "alg_from_text")]
    pub(super) alg: Alg,
    pub(super) secret: Option<String>,
    pub(super) secret_env: Option<String>,
    pub(super) encoding: Option<RawEncoding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVerifyKey {
    #[serde(deserialize_with = "alg_from_text")]
    pub(super) alg: Alg,
    pub(super) secret: Option<String>,
    pub(super) secret_env: Option<String>,
    pub(super) encoding: Option<RawEncoding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) header: Option<String>,
    pub(super) scheme: Option<String>,
    pub(super) query: Option<String>,
    pub(super) cookie: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatch {
    pub(super) path: Option<String>,
    pub(super) prefix: Option<String>,
    pub(super) methods: Option<Vec<String>>,
    pub(super) hosts: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    #[serde(rename = "match", default)]
    pub(super) matcher: Obj<RawMatch>,
    #[serde(default)]
    pub(super) anonymous: bool,
    #[serde(default)]
    pub(super) deny: bool,
    pub(super) scopes: Option<Vec<String>>,
    pub(super) roles: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRevocation {
    pub(super) max_stale_s: Option<u64>,
    pub(super) on_unavailable: Option<OnUnavailable>,
    /// Kept as text and read by the revocation list's own entry parser.
    #[serde(rename = "static")]
    pub(super) static_entries: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRefresh {
    pub(super) path: String,
    pub(super) access_ttl_s: Option<u64>,
    pub(super) kid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) realm: Option<String>,
    pub(super) keys: Vec<Obj<RawKey>>,
    pub(super) issuers: Option<Vec<String>>,
    pub(super) audiences: Option<Vec<String>>,
    pub(super) clock_skew_s: Option<u64>,
    pub(super) max_lifetime_s: Option<u64>,
    pub(super) require_claims: Option<Vec<String>>,
    pub(super) max_token_bytes: Option<usize>,
    pub(super) token_sources: Option<Vec<Obj<RawSource>>>,
    pub(super) forward_token: Option<bool>,
    pub(super) claims_to_headers: Option<BTreeMap<String, String>>,
    pub(super) roles: Option<BTreeMap<String, Vec<String>>>,
    pub(super) require_tls: Option<bool>,
    pub(super) rules: Option<Vec<Obj<RawRule>>>,
    pub(super) revocation: Option<Obj<RawRevocation>>,
    pub(super) refresh: Option<Obj<RawRefresh>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) cluster: String,
    pub(super) authority: String,
    pub(super) path: String,
    pub(super) poll_interval_s: Option<u64>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) max_bytes: Option<usize>,
    pub(super) verify_key: Option<Obj<RawVerifyKey>>,
}

impl Default for Obj<RawMatch> {
    fn default() -> Self {
        Obj(RawMatch::default())
    }
}
