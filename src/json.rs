//! Strict JSON: a repeated member name is an error, in tokens, signed lists
//! and configuration alike, and members nobody reads are still validated.
//!
//! For tokens and list headers, `MemberNames`, `Name`, `Skip` and
//! `Text` are the visitor parts the JWS and claims parsers are built from.
//! For configuration, serde's derived structs refuse a repeated field, but maps (`roles`,
//! `claims_to_headers`) and `serde_json::Value` keep the last value, which
//! is how `{"roles": {"r": ["a"], "r": ["*"]}}` once granted `*`. This pass
//! runs over the whole text before the typed parse and refuses the first
//! repeated name, naming the object that holds it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

/// A repeated member name: where (a JSON path, empty for the top level) and
/// which name (quoted, cut to 40 characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepeatedMember {
    pub path: String,
    pub name: String,
}

impl fmt::Display for RepeatedMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "repeats member {}", self.name)
        } else {
            write!(f, "{}: repeats member {}", self.path, self.name)
        }
    }
}

/// Checks every object of `json` for repeated member names (after escapes
/// are decoded: `"\u0072"` is `"r"`). Text that is not JSON passes: the
/// typed parse reports it with its position.
pub fn refuse_repeated_members(json: &[u8]) -> Result<(), RepeatedMember> {
    let found = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(json);
    let _ = Walk {
        path: String::new(),
        found: &found,
    }
    .deserialize(&mut de);
    match found.into_inner() {
        Some(repeated) => Err(repeated),
        None => Ok(()),
    }
}

struct Walk<'f> {
    path: String,
    found: &'f std::cell::RefCell<Option<RepeatedMember>>,
}

impl Walk<'_> {
    fn child(&self, step: fmt::Arguments<'_>) -> Walk<'_> {
        let path = if self.path.is_empty() {
            step.to_string().trim_start_matches('.').to_owned()
        } else {
            format!("{}{step}", self.path)
        };
        Walk {
            path,
            found: self.found,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq
            .next_element_seed(self.child(format_args!("[{i}]")))?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names: Vec<String> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if names.contains(&name) {
                let cut: String = name.chars().take(40).collect();
                *self.found.borrow_mut() = Some(RepeatedMember {
                    path: self.path.clone(),
                    name: format!("{cut:?}"),
                });
                return Err(de::Error::custom("repeated member"));
            }
            map.next_value_seed(self.child(format_args!(".{name}")))?;
            names.push(name);
        }
        Ok(())
    }
}

/// Member names seen in one object, to refuse duplicates (RFC 7515 §5.2 and
/// RFC 7519 §4: parsers must reject or use the last; tokengate rejects, so
/// two parsers can never disagree about what a token says).
#[derive(Default)]
pub(crate) struct MemberNames<'de> {
    names: Vec<Cow<'de, str>>,
}

impl<'de> MemberNames<'de> {
    pub(crate) fn add<E: de::Error>(&mut self, name: Name<'de>) -> Result<&str, E> {
        // Small objects are the norm: a linear scan beats hashing. Large
        // hostile objects are bounded by max_token_bytes; past 32 members the
        // check moves to a sort in `finish`.
        if self.names.len() < 32 && self.names.contains(&name.0) {
            return Err(E::custom("duplicate member"));
        }
        self.names.push(name.0);
        Ok(self.names.last().map(|n| n.as_ref()).unwrap_or(""))
    }

    pub(crate) fn finish<E: de::Error>(mut self) -> Result<(), E> {
        if self.names.len() > 32 {
            self.names.sort_unstable();
            if self.names.windows(2).any(|w| w.first() == w.get(1)) {
                return Err(E::custom("duplicate member"));
            }
        }
        Ok(())
    }
}

/// An object member name, borrowed from the input when it has no escapes.
pub(crate) struct Name<'de>(pub(crate) Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor).map(|t| Name(t.0))
    }
}

/// A member tokengate does not read, skipped but still validated: its
/// strings must be UTF-8 with valid escapes, its numbers in range (RFC 7519
/// §7.2 step 10: the header and payload are UTF-8 JSON). serde's
/// `IgnoredAny` skips strings without checking them, which let a correctly
/// signed token carry bytes no other JSON parser would accept (found by the
/// `token_verify` fuzz target).
pub(crate) struct Skip;

impl<'de> de::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
}

/// A JSON string, borrowed when it has no escapes.
pub(crate) struct Text<'de>(pub(crate) Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor)
    }
}

pub(crate) struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<(), String> {
        refuse_repeated_members(json.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn refuses_repeats_at_any_depth_naming_the_object() {
        assert_eq!(
            check(r#"{"a":1,"a":2}"#),
            Err(r#"repeats member "a""#.into())
        );
        assert_eq!(
            check(r#"{"roles":{"r":["a"],"r":["*"]}}"#),
            Err(r#"roles: repeats member "r""#.into())
        );
        assert_eq!(
            check(r#"{"revocation":{"static":[{"jti":"a"},{"jti":"a","jti":"b"}]}}"#),
            Err(r#"revocation.static[1]: repeats member "jti""#.into())
        );
        assert_eq!(
            check(r#"{"x":{"\u0072":1,"r":2}}"#),
            Err(r#"x: repeats member "r""#.into())
        );
    }

    #[test]
    fn accepts_distinct_names_and_leaves_syntax_errors_to_the_parser() {
        assert_eq!(check(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#), Ok(()));
        assert_eq!(check(r#"{"a":"#), Ok(()));
        assert_eq!(check("[1,2]"), Ok(()));
    }
}
