//! The one parser of list entries, shared by the document's `entries` and
//! the filter's `revocation.static`: serde seeds that refuse every other
//! shape (unknown or repeated members, `null` for an absent member, wrong
//! types) with a message naming the JSON path, and never the value.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::document::{Document, Entry};

/// A JSON path for messages: `version`, `entries[3]`, `entries[3].exp`.
#[derive(Clone, Copy)]
struct Path<'a> {
    base: &'a str,
    index: Option<usize>,
    field: Option<&'static str>,
}

impl<'a> Path<'a> {
    fn top(field: &'static str) -> Path<'static> {
        Path {
            base: "",
            index: None,
            field: Some(field),
        }
    }

    fn entry(base: &'a str, index: usize) -> Path<'a> {
        Path {
            base,
            index: Some(index),
            field: None,
        }
    }

    fn field(self, field: &'static str) -> Path<'a> {
        Path {
            field: Some(field),
            ..self
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        match self.field {
            Some(field) if self.base.is_empty() && self.index.is_none() => f.write_str(field),
            Some(field) => write!(f, ".{field}"),
            None => Ok(()),
        }
    }
}

/// A member name as it may appear in a message: quoted, escaped, cut short.
fn quoted(name: &str) -> String {
    let cut: String = name.chars().take(40).collect();
    format!("{cut:?}")
}

fn must_be_int(path: Path<'_>, min: u64) -> String {
    format!("{path}: must be an integer >= {min}")
}

fn must_be_str(path: Path<'_>) -> String {
    format!("{path}: must be a non-empty string")
}

/// An entry's members before the rules between them are checked.
#[derive(Default)]
struct RawEntry {
    jti: Option<String>,
    sub: Option<String>,
    kid: Option<String>,
    exp: Option<u64>,
    before: Option<u64>,
}

const ENTRY_FIELDS: [&str; 5] = ["jti", "sub", "kid", "exp", "before"];

impl RawEntry {
    fn is_set(&self, field: &str) -> bool {
        match field {
            "jti" => self.jti.is_some(),
            "sub" => self.sub.is_some(),
            "kid" => self.kid.is_some(),
            "exp" => self.exp.is_some(),
            "before" => self.before.is_some(),
            _ => false,
        }
    }

    fn finish(self, path: Path<'_>) -> Result<Entry, String> {
        let RawEntry {
            jti,
            sub,
            kid,
            exp,
            before,
        } = self;
        let kinds = [
            ("jti", jti.is_some()),
            ("sub", sub.is_some()),
            ("kid", kid.is_some()),
        ];
        let mut present = kinds.iter().filter(|(_, set)| *set).map(|(name, _)| *name);
        if let (Some(first), Some(second)) = (present.next(), present.next()) {
            return Err(format!("{path}: has both {first} and {second}"));
        }
        if before.is_some() && sub.is_none() {
            return Err(format!("{path}: before is allowed only on sub entries"));
        }
        match (jti, sub, kid) {
            (Some(jti), _, _) => Ok(Entry::Jti { jti, exp }),
            (_, Some(sub), _) => Ok(Entry::Sub { sub, before, exp }),
            (_, _, Some(kid)) => Ok(Entry::Kid { kid, exp }),
            (None, None, None) => Err(format!("{path}: needs one of jti, sub, kid")),
        }
    }
}

/// Where a visitor leaves its message before failing (see `parse_json`).
pub(super) type ShapeSlot<'c> = &'c Cell<Option<String>>;

fn refuse<E: de::Error>(slot: ShapeSlot<'_>, message: String) -> E {
    slot.set(Some(message));
    E::custom("shape")
}

/// The visitor methods for JSON values of every type but the one a visitor
/// wants; each calls `self.wrong()`, so no message of serde's own (which
/// would quote the offending string) ever reaches the caller.
macro_rules! refuse_other_types {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> {
                Err(self.wrong())
            }
        )*
    };
}

macro_rules! refuse_scalars {
    () => {
        refuse_other_types!(
            visit_bool(bool),
            visit_i64(i64),
            visit_u64(u64),
            visit_f64(f64),
            visit_str(&str)
        );
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(self.wrong())
        }
    };
}

macro_rules! refuse_seq {
    () => {
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.wrong())
        }
    };
}

macro_rules! refuse_map {
    () => {
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.wrong())
        }
    };
}

/// A member name, borrowed from the body when it holds no escape.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v))
    }
}

#[derive(Clone, Copy)]
struct IntSeed<'c, 'p> {
    shape: ShapeSlot<'c>,
    path: Path<'p>,
    min: u64,
}

impl IntSeed<'_, '_> {
    fn wrong<E: de::Error>(self) -> E {
        refuse(self.shape, must_be_int(self.path, self.min))
    }
}

impl<'de> DeserializeSeed<'de> for IntSeed<'_, '_> {
    type Value = u64;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IntSeed<'_, '_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer >= {}", self.min)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if v >= self.min {
            Ok(v)
        } else {
            Err(self.wrong())
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(self.wrong()),
        }
    }

    refuse_other_types!(visit_bool(bool), visit_f64(f64), visit_str(&str));

    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Err(self.wrong())
    }

    refuse_seq!();
    refuse_map!();
}

#[derive(Clone, Copy)]
struct StrSeed<'c, 'p> {
    shape: ShapeSlot<'c>,
    path: Path<'p>,
}

impl StrSeed<'_, '_> {
    fn wrong<E: de::Error>(self) -> E {
        refuse(self.shape, must_be_str(self.path))
    }
}

impl<'de> DeserializeSeed<'de> for StrSeed<'_, '_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrSeed<'_, '_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-empty string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if v.is_empty() {
            Err(self.wrong())
        } else {
            Ok(v.to_owned())
        }
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        if v.is_empty() {
            Err(self.wrong())
        } else {
            Ok(v)
        }
    }

    refuse_other_types!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64)
    );

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(self.wrong())
    }

    refuse_seq!();
    refuse_map!();
}

#[derive(Clone, Copy)]
pub(super) struct DocSeed<'c> {
    pub(super) shape: ShapeSlot<'c>,
}

impl DocSeed<'_> {
    fn wrong<E: de::Error>(self) -> E {
        refuse(self.shape, "the document must be a JSON object".to_owned())
    }
}

impl<'de> DeserializeSeed<'de> for DocSeed<'_> {
    type Value = Document;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Document, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_> {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a revocation list object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let shape = self.shape;
        let mut version = None;
        let mut generated_at = None;
        let mut entries = None;
        while let Some(name) = map.next_key_seed(KeySeed)? {
            let duplicate = match &*name {
                "version" => version.is_some(),
                "generated_at" => generated_at.is_some(),
                "entries" => entries.is_some(),
                other => return Err(refuse(shape, format!("unknown field {}", quoted(other)))),
            };
            if duplicate {
                return Err(refuse(shape, format!("duplicate field {}", quoted(&name))));
            }
            match &*name {
                "version" => {
                    version = Some(map.next_value_seed(IntSeed {
                        shape,
                        path: Path::top("version"),
                        min: 1,
                    })?)
                }
                "generated_at" => {
                    generated_at = Some(map.next_value_seed(IntSeed {
                        shape,
                        path: Path::top("generated_at"),
                        min: 0,
                    })?)
                }
                _ => {
                    entries = Some(map.next_value_seed(EntriesSeed {
                        shape,
                        base: "entries",
                    })?)
                }
            }
        }
        let version = version.ok_or_else(|| refuse(shape, "version: required".to_owned()))?;
        let entries = entries.ok_or_else(|| refuse(shape, "entries: required".to_owned()))?;
        Ok(Document {
            version,
            generated_at,
            entries,
        })
    }

    refuse_scalars!();
    refuse_seq!();
}

#[derive(Clone, Copy)]
pub(super) struct EntriesSeed<'c, 'p> {
    pub(super) shape: ShapeSlot<'c>,
    /// The JSON path of the array, for messages.
    pub(super) base: &'p str,
}

impl EntriesSeed<'_, '_> {
    fn wrong<E: de::Error>(self) -> E {
        refuse(self.shape, format!("{}: must be an array", self.base))
    }
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_, '_> {
    type Value = Vec<Entry>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<Entry>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_, '_> {
    type Value = Vec<Entry>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Entry>, A::Error> {
        let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(entry) = seq.next_element_seed(EntrySeed {
            shape: self.shape,
            path: Path::entry(self.base, entries.len()),
        })? {
            entries.push(entry);
        }
        Ok(entries)
    }

    refuse_scalars!();
    refuse_map!();
}

#[derive(Clone, Copy)]
struct EntrySeed<'c, 'p> {
    shape: ShapeSlot<'c>,
    path: Path<'p>,
}

impl EntrySeed<'_, '_> {
    fn wrong<E: de::Error>(self) -> E {
        refuse(self.shape, format!("{}: must be an object", self.path))
    }
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_, '_> {
    type Value = Entry;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Entry, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_, '_> {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an entry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let (shape, path) = (self.shape, self.path);
        let mut raw = RawEntry::default();
        while let Some(name) = map.next_key_seed(KeySeed)? {
            let Some(&field) = ENTRY_FIELDS.iter().find(|f| **f == name) else {
                return Err(refuse(
                    shape,
                    format!("{path}: unknown field {}", quoted(&name)),
                ));
            };
            if raw.is_set(field) {
                return Err(refuse(
                    shape,
                    format!("{path}: duplicate field {}", quoted(field)),
                ));
            }
            let text = StrSeed {
                shape,
                path: path.field(field),
            };
            let int = IntSeed {
                shape,
                path: path.field(field),
                min: 0,
            };
            match field {
                "jti" => raw.jti = Some(map.next_value_seed(text)?),
                "sub" => raw.sub = Some(map.next_value_seed(text)?),
                "kid" => raw.kid = Some(map.next_value_seed(text)?),
                "exp" => raw.exp = Some(map.next_value_seed(int)?),
                _ => raw.before = Some(map.next_value_seed(int)?),
            }
        }
        raw.finish(path).map_err(|message| refuse(shape, message))
    }

    refuse_scalars!();
    refuse_seq!();
}
