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
        // Nested objects too: a member nobody here reads may be read by
        // someone else, who must not find two values under one name.
        let mut seen = MemberNames::default();
        while let Some(name) = map.next_key::<Name<'de>>()? {
            seen.add::<A::Error>(name)?;
            map.next_value::<Skip>()?;
        }
        seen.finish().map(|()| Skip)
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

/// The JSON path (`keys[1].alg`) of the value being read at byte `offset`
/// of `json`: where a parser that stopped there was. A key read but not yet
/// followed by its `:` counts as the object's (an unknown or repeated field
/// is the object's error); a closed value counts as its own until the next
/// one starts. Used to name the field of a configuration error from the
/// position serde_json reports, without wrapping every type the parse
/// touches (as `serde_path_to_error` does, at 30 KB of the module).
pub fn path_at(json: &[u8], offset: usize) -> String {
    enum Frame {
        /// The key being read or last read, and whether its `:` was seen.
        Object { key: Option<String>, in_value: bool },
        /// The element index, and whether that element has started.
        Array { index: usize, started: bool },
    }
    let mut stack: Vec<Frame> = Vec::new();
    let end = offset.min(json.len());
    let mut i = 0;
    while i < end {
        let Some(&b) = json.get(i) else { break };
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if let Some(Frame::Array { started, .. }) = stack.last_mut() {
            if !matches!(b, b']' | b',') {
                *started = true;
            }
        }
        match b {
            b'{' => stack.push(Frame::Object {
                key: None,
                in_value: false,
            }),
            b'[' => stack.push(Frame::Array {
                index: 0,
                started: false,
            }),
            b'}' | b']' => {
                stack.pop();
            }
            b':' => {
                if let Some(Frame::Object { in_value, .. }) = stack.last_mut() {
                    *in_value = true;
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, in_value }) => {
                    *key = None;
                    *in_value = false;
                }
                Some(Frame::Array { index, started }) => {
                    *index += 1;
                    *started = false;
                }
                None => {}
            },
            b'"' => {
                // A string: to its closing quote, escapes skipped.
                let start = i;
                i += 1;
                while let Some(&c) = json.get(i) {
                    if c == b'\\' {
                        i += 2;
                        continue;
                    }
                    if c == b'"' {
                        break;
                    }
                    i += 1;
                }
                if let Some(Frame::Object {
                    key,
                    in_value: false,
                }) = stack.last_mut()
                {
                    let raw = json.get(start..=i).unwrap_or_default();
                    *key = Some(
                        serde_json::from_slice::<String>(raw)
                            .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()),
                    );
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object {
                key: Some(key),
                in_value: true,
            } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Array {
                index,
                started: true,
            } => path.push_str(&format!("[{index}]")),
            _ => break,
        }
    }
    path
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
    fn path_at_names_the_value_being_read() {
        let json = br#"{"keys":[{"kid":"a","alg":"HS255"}],"rules":[{"match":[1]}], "x" : {"y":"\u0072z"}}"#;
        let at = |needle: &str| {
            let text = std::str::from_utf8(json).unwrap();
            text.find(needle).unwrap() + needle.len()
        };
        assert_eq!(path_at(json, at(r#""HS255""#)), "keys[0].alg");
        assert_eq!(
            path_at(json, at(r#""kid""#)),
            "keys[0]",
            "a key without its ':'"
        );
        assert_eq!(path_at(json, at(r#""match":["#)), "rules[0].match");
        assert_eq!(path_at(json, at(r#""match":[1"#)), "rules[0].match[0]");
        assert_eq!(path_at(json, at(r#"}]"#)), "keys", "after the array closed");
        assert_eq!(path_at(json, at(r#""\u0072z""#)), "x.y");
        assert_eq!(path_at(json, 0), "");
        assert_eq!(path_at(json, json.len()), "");
        assert_eq!(path_at(b"[{\"a\":[[", 9), "[0].a[0]");
    }

    #[test]
    fn accepts_distinct_names_and_leaves_syntax_errors_to_the_parser() {
        assert_eq!(check(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#), Ok(()));
        assert_eq!(check(r#"{"a":"#), Ok(()));
        assert_eq!(check("[1,2]"), Ok(()));
    }
}
