//! Small wire formats the gate reads: query strings and form bodies, cookie
//! headers, percent-escapes, hex digests, and the name folding that tells
//! which names an upstream framework may read as the same one.
//!
//! Everything here is byte-level and allocation-free where it can be; none
//! of it knows about tokens or rules. The gate uses it to find (and cut out)
//! tokens, the refresh endpoint to read its form, the adapter to read the
//! client certificate digest.

use std::borrow::Cow;
use std::ops::Range;

/// A percent-escape that is not `%` and two hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEscape;

/// Percent-decodes a query or form component; `+` is a space, as HTML
/// forms send it. Borrows when there is nothing to decode.
pub fn percent_decode(raw: &[u8]) -> Result<Cow<'_, [u8]>, BadEscape> {
    if !raw.iter().any(|b| *b == b'%' || *b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (bytes.next(), bytes.next()) else {
                    return Err(BadEscape);
                };
                let (Some(hi), Some(lo)) = (hex_value(*hi), hex_value(*lo)) else {
                    return Err(BadEscape);
                };
                out.push((hi << 4) | lo);
            }
            b'+' => out.push(b' '),
            _ => out.push(b),
        }
    }
    Ok(Cow::Owned(out))
}

/// Percent-decodes a path or one of its segments: every `%XX` escape, as a
/// server decodes it before mapping the path to a file; a `+` is itself,
/// and what is not an escape is kept as sent.
pub fn percent_decode_path(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&byte) = raw.get(i) {
        let escaped = match raw.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex_value(*hi)
                .zip(hex_value(*lo))
                .map(|(hi, lo)| (hi << 4) | lo),
            _ => None,
        };
        match escaped {
            Some(value) => {
                out.push(value);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// The value of one hex digit, either case.
pub fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes 64 hex digits (either case) into 32 bytes.
pub fn decode_hex32(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *byte = (hex_value(*hi)? << 4) | hex_value(*lo)?;
    }
    Some(out)
}

/// Splits `key=value` at the first `=` (a missing `=` is an empty value).
pub fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    match pair.iter().position(|b| *b == b'=') {
        Some(i) => (
            pair.get(..i).unwrap_or_default(),
            pair.get(i + 1..).unwrap_or_default(),
        ),
        None => (pair, &[]),
    }
}

/// The query of a raw `:path`: after the first `?`, before any `#`, with
/// its position in the path.
pub fn query_range(path: &[u8]) -> Option<Range<usize>> {
    let start = path.iter().position(|b| *b == b'?')? + 1;
    let rest = path.get(start..)?;
    let end = rest.iter().position(|b| *b == b'#').unwrap_or(rest.len());
    Some(start..start + end)
}

/// One `key=value` pair of a query, with its place in the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair<'q> {
    pub key: &'q [u8],
    pub value: &'q [u8],
    /// Where the pair lies in the query (separators excluded).
    pub start: usize,
    pub end: usize,
}

/// The non-empty pairs of a query. Both `&` and `;` separate pairs: the
/// HTML form rules use `&`, but Go before 1.17, Python's `cgi` and some
/// servlet containers also split on `;`, so a token hidden behind a `;`
/// must be seen here as it would be there.
pub fn query_pairs(query: &[u8]) -> impl Iterator<Item = Pair<'_>> {
    let mut at = 0;
    query
        .split(|b| *b == b'&' || *b == b';')
        .filter_map(move |pair| {
            let start = at;
            at += pair.len() + 1;
            if pair.is_empty() {
                return None;
            }
            let (key, value) = split_pair(pair);
            Some(Pair {
                key,
                value,
                start,
                end: start + pair.len(),
            })
        })
}

/// Leading and trailing ASCII white space removed.
pub fn trim(value: &[u8]) -> &[u8] {
    value.trim_ascii()
}

/// The `name=value` pairs of a `cookie` header value (RFC 6265 §5.4),
/// names and values trimmed; a pair without `=` has an empty value. Both
/// `;` and `,` separate pairs: ASP.NET Core and older Rack split on `,`
/// too, and no cookie value may hold one.
pub fn cookie_pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header
        .split(|b| *b == b';' || *b == b',')
        .map(trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = split_pair(pair);
            (trim(name), trim(value))
        })
}

/// Whether a parameter or cookie name (decoded) that a client sent may be
/// read as `name` by an upstream framework. ASCII case is ignored (ASP.NET,
/// IIS). The name is read as PHP reads it (leading spaces dropped, cut at a
/// NUL, an array suffix dropped: `access_token[]`, `access_token[x]`; else
/// `.`, ` ` and `[` taken for `_`: `access.token`) and as Rack 2 and qs read
/// it (leading `[` and `]` dropped, cut at the next `[` or `]`:
/// `[access_token]`, `access_token]`).
pub fn same_param_name(sent: &[u8], name: &[u8]) -> bool {
    same_name_read(sent, name) || same_name_read(trim_wide(sent), name)
}

/// `bytes` without what any upstream's trim may drop at either end: ASCII
/// white space and controls (Java's `trim`), U+0085 and U+00A0 as single
/// bytes (WSGI and ASGI read header bytes as Latin-1, then Python's `strip`
/// drops them), and every Unicode white space in UTF-8 (JavaScript's
/// `trim`, Python's `strip` on UTF-8 text).
pub fn trim_wide(bytes: &[u8]) -> &[u8] {
    const UTF8_SPACES: [&[u8]; 20] = [
        b"\xc2\x85",
        b"\xc2\xa0",
        b"\xe1\x9a\x80",
        b"\xe1\xa0\x8e",
        b"\xe2\x80\x80",
        b"\xe2\x80\x81",
        b"\xe2\x80\x82",
        b"\xe2\x80\x83",
        b"\xe2\x80\x84",
        b"\xe2\x80\x85",
        b"\xe2\x80\x86",
        b"\xe2\x80\x87",
        b"\xe2\x80\x88",
        b"\xe2\x80\x89",
        b"\xe2\x80\x8a",
        b"\xe2\x80\xa8",
        b"\xe2\x80\xa9",
        b"\xe2\x80\xaf",
        b"\xe2\x81\x9f",
        b"\xe3\x80\x80",
    ];
    const BOM: &[u8] = b"\xef\xbb\xbf";
    let single = |b: u8| b <= b' ' || b == 0x7f || b == 0x85 || b == 0xa0;
    let mut rest = bytes;
    loop {
        let before = rest.len();
        for space in UTF8_SPACES.iter().chain([&BOM]) {
            rest = rest.strip_prefix(*space).unwrap_or(rest);
            rest = rest.strip_suffix(*space).unwrap_or(rest);
        }
        if let Some((first, tail)) = rest.split_first() {
            if single(*first) {
                rest = tail;
            }
        }
        if let Some((last, head)) = rest.split_last() {
            if single(*last) {
                rest = head;
            }
        }
        if rest.len() == before {
            return rest;
        }
    }
}

/// [`same_param_name`] for one spelling of the name.
fn same_name_read(sent: &[u8], name: &[u8]) -> bool {
    fn fold(c: u8) -> u8 {
        match c {
            b'.' | b' ' | b'[' => b'_',
            c => c.to_ascii_lowercase(),
        }
    }
    let same = |read: &[u8]| {
        read.len() == name.len() && read.iter().zip(name).all(|(x, y)| fold(*x) == fold(*y))
    };
    let start = sent.iter().position(|b| *b != b' ').unwrap_or(sent.len());
    let sent = sent.get(start..).unwrap_or_default();
    let sent = sent.split(|b| *b == 0).next().unwrap_or_default();
    // PHP: `base[…]` is an array (or hash) parameter named `base`.
    let php = match sent.iter().position(|b| *b == b'[') {
        Some(open) if open > 0 && sent.get(open..).is_some_and(|r| r.contains(&b']')) => {
            sent.get(..open).unwrap_or_default()
        }
        _ => sent,
    };
    // Rack 2 (`\A[\[\]]*([^\[\]]+)\]*`) and qs.
    let from = sent
        .iter()
        .position(|b| !matches!(b, b'[' | b']'))
        .unwrap_or(sent.len());
    let rest = sent.get(from..).unwrap_or_default();
    let rack = rest
        .split(|b| matches!(b, b'[' | b']'))
        .next()
        .unwrap_or_default();
    same(php) || same(rack)
}

/// Whether two header names may be read as the same header by an upstream:
/// case ignored, and every character but letters and digits taken for one
/// another, as CGI-style upstreams name their variables (WSGI, PHP, Rack:
/// `x_auth_subject` and `x.auth.subject` are both `HTTP_X_AUTH_SUBJECT`).
pub fn same_header_name(a: &[u8], b: &[u8]) -> bool {
    fn fold(c: u8) -> u8 {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            b'-'
        }
    }
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == fold(*y))
}

/// Whether a value reads as a compact JWS somewhere: a word (between white
/// space, `:` `=` `,`) of three base64url segments, the first two non-empty.
/// Used to find a token sent in a token header under another scheme
/// (`Authorization: JWT …`, `Token …`, a bare token), which an upstream may
/// read although the gate did not.
pub fn holds_jws(value: &[u8]) -> bool {
    value
        .split(|b| b.is_ascii_whitespace() || matches!(b, b':' | b'=' | b','))
        .any(|word| {
            let mut parts = word.split(|b| *b == b'.');
            let (Some(h), Some(p), Some(_), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return false;
            };
            !h.is_empty()
                && !p.is_empty()
                && word
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_checks_every_escape() {
        assert_eq!(&*percent_decode(b"a%20b+c").unwrap(), b"a b c");
        assert_eq!(&*percent_decode(b"%7e%7E").unwrap(), b"~~");
        for bad in [&b"%"[..], b"%2", b"%zz", b"%+1", b"%-1", b"a%2"] {
            assert_eq!(percent_decode(bad), Err(BadEscape), "{bad:?}");
        }
        assert!(matches!(percent_decode(b"plain"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn hex_digest_decodes_and_refuses_junk() {
        let hex = "00ff".repeat(16);
        let bytes = decode_hex32(hex.as_bytes()).unwrap();
        assert_eq!(bytes[1], 0xff);
        assert_eq!(decode_hex32(b"zz"), None);
        assert_eq!(decode_hex32("g0".repeat(32).as_bytes()), None);
        assert_eq!(decode_hex32("+1".repeat(32).as_bytes()), None);
    }

    #[test]
    fn query_pairs_split_on_ampersand_and_semicolon_with_their_places() {
        let q = b"a=1&&b;c=3=4";
        let pairs: Vec<_> = query_pairs(q).collect();
        assert_eq!(pairs.len(), 3);
        assert_eq!((pairs[0].key, pairs[0].value), (&b"a"[..], &b"1"[..]));
        assert_eq!((pairs[1].key, pairs[1].value), (&b"b"[..], &b""[..]));
        assert_eq!((pairs[2].key, pairs[2].value), (&b"c"[..], &b"3=4"[..]));
        for p in &pairs {
            assert_eq!(
                &q[p.start..p.end].split(|b| *b == b'=').next(),
                &Some(p.key)
            );
        }
    }

    #[test]
    fn query_range_stops_at_the_fragment() {
        let path = b"/a?x=1#frag";
        assert_eq!(&path[query_range(path).unwrap()], b"x=1");
        assert_eq!(query_range(b"/a"), None);
    }

    #[test]
    fn names_fold_as_upstream_frameworks_read_them() {
        assert!(same_param_name(b"ACCESS.TOKEN", b"access_token"));
        assert!(same_param_name(b"access token", b"access_token"));
        assert!(same_param_name(b"access[token", b"access_token"));
        assert!(!same_param_name(b"access-token", b"access_token"));
        assert!(same_param_name(b" access_token", b"access_token"));
        assert!(same_param_name(b"access_token\0x", b"access_token"));
        assert!(!same_param_name(b"access_tokenx", b"access_token"));
        assert!(same_header_name(b"x-auth-subject", b"x_auth_subject"));
        assert!(same_header_name(b"x-auth-subject", b"X-Auth_Subject"));
        assert!(same_header_name(b"x-auth-subject", b"x.auth.subject"));
        assert!(same_header_name(
            b"x-http-method-override",
            b"X-HTTP-Method.Override"
        ));
        assert!(same_param_name(b"access_token[]", b"access_token"));
        assert!(same_param_name(b"access_token[x]", b"access_token"));
        assert!(same_param_name(b"[access_token]", b"access_token"));
        assert!(same_param_name(b"access_token]", b"access_token"));
        assert!(same_param_name(b"]access_token", b"access_token"));
        assert!(!same_param_name(b"access", b"access_token"));
        assert!(!same_header_name(b"x-auth-subject", b"x-auth-subjec"));
    }

    /// PHP reads `base[…]` as the parameter `base`, whatever `base` holds
    /// (a `]` included, where Rack and qs cut the name short): a configured
    /// name is found under its array spelling (docs/security.md, "Headers the upstream trusts":
    /// token names PHP reads as the token's).
    #[test]
    fn php_reads_an_array_suffix_off_any_name() {
        assert!(same_param_name(b"tok]en[0]", b"tok]en"));
        assert!(same_param_name(b"tok]en[]", b"tok]en"));
        assert!(!same_param_name(b"tok]en[0", b"tok]en"));
        assert!(!same_param_name(b"tok]en]", b"tok]en"));
    }

    #[test]
    fn jws_shaped_words_are_found_under_any_scheme() {
        assert!(holds_jws(b"JWT eyJh.eyJw.c2ln"));
        assert!(holds_jws(b"eyJh.eyJw.c2ln"));
        assert!(holds_jws(b"Token:eyJh.eyJw."));
        assert!(!holds_jws(b"Basic dXNlcjpwYXNz"));
        assert!(!holds_jws(b"Digest username=\"a.b\", uri=\"/x\""));
        assert!(!holds_jws(b"a..b"));
    }

    #[test]
    fn names_padded_with_what_a_trim_drops_are_the_name() {
        for sent in [
            &b"\xa0tg_token"[..],
            b"tg_token\x85",
            b"\xc2\xa0tg_token",
            b"tg_token\xe2\x80\xa8",
            b"\xef\xbb\xbftg_token",
            b"\x0btg_token\x01",
            b" tg_token \xa0",
        ] {
            assert!(same_param_name(sent, b"tg_token"), "{sent:?}");
        }
        for sent in [&b"tg\xa0token"[..], b"tg_token\xe2\x80\x8b", b"xtg_token"] {
            assert!(!same_param_name(sent, b"tg_token"), "{sent:?}");
        }
    }

    #[test]
    fn cookie_pairs_are_trimmed() {
        let pairs: Vec<_> = cookie_pairs(b" a=1 ;b = 2;; c").collect();
        assert_eq!(
            pairs,
            vec![
                (&b"a"[..], &b"1"[..]),
                (&b"b"[..], &b"2"[..]),
                (&b"c"[..], &b""[..])
            ]
        );
    }
}
