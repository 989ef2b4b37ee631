//! Request matching: which rule decides a request, and whether granted scopes
//! satisfy it.
//!
//! This module owns the path normalization of SPEC section 3 (the path the
//! rules see), the rule matchers (path, method, host), first-match rule
//! selection and the scope grant logic (`orders:*` grants `orders:read`). It
//! knows nothing of tokens, claims or keys, and does not parse configuration:
//! the config module builds [`Rule`]s and checks their paths with
//! [`check_config_path`]; the filter and the CLI hand in the request's
//! `:path`, `:method` and `:authority` and act on the rule returned.

use std::borrow::Cow;
use std::fmt;

/// Why a path is refused (every case maps to reason `bad_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/` (`*`, an absolute URI, empty).
    NotAbsolute,
    /// `%2F`: an upstream that decodes it would see another path.
    EncodedSlash,
    /// `%5C`: some upstreams treat a backslash as a separator.
    EncodedBackslash,
    /// `%00`: C upstreams cut the path there.
    EncodedNul,
    /// A literal `\`, which some upstreams treat as `/`.
    Backslash,
    /// A `%` not followed by two hex digits.
    InvalidEscape,
    /// A `..` segment that climbs above the root.
    AboveRoot,
    /// Raw bytes that are not UTF-8.
    NotUtf8,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "must start with '/'",
            PathError::EncodedSlash => "holds an encoded slash (%2F)",
            PathError::EncodedBackslash => "holds an encoded backslash (%5C)",
            PathError::EncodedNul => "holds an encoded NUL (%00)",
            PathError::Backslash => "holds a backslash",
            PathError::InvalidEscape => "holds a '%' not followed by two hex digits",
            PathError::AboveRoot => "climbs above the root with '..'",
            PathError::NotUtf8 => "is not UTF-8",
        })
    }
}

impl std::error::Error for PathError {}

/// [`normalize_path`] without the copy for the common case: a path with no
/// escape, parameter, backslash, doubled slash or dot segment is already
/// normal and is borrowed as it is.
pub fn normalize_path_cow(raw: &[u8]) -> Result<Cow<'_, str>, PathError> {
    let end = raw
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(raw.len());
    let path = raw.get(..end).unwrap_or(raw);
    let plain = path.first() == Some(&b'/')
        && !path
            .iter()
            .any(|b| matches!(b, b'%' | b'\\' | b';') || b.is_ascii_control())
        && !path.windows(2).any(|w| w == b"//")
        && path
            .split(|b| *b == b'/')
            .skip(1)
            .all(|seg| seg != b"." && seg != b"..");
    if plain {
        if let Ok(text) = std::str::from_utf8(path) {
            return Ok(Cow::Borrowed(text));
        }
    }
    normalize_path(raw).map(Cow::Owned)
}

/// Normalizes a raw `:path` (bytes as received) for matching, per SPEC §3.
///
/// In order: cut at `?` and `#`; must start with `/`; percent-escapes of
/// unreserved characters (ALPHA DIGIT `-` `.` `_` `~`) decoded, other escapes
/// kept with upper-case hex; `%2F`, `%5C`, `%00` (any case), a literal
/// backslash and an invalid escape refused; `;` path parameters cut from every
/// segment; runs of `/` merged; `.` and `..` segments resolved (RFC 3986
/// §5.2.4), a `..` above the root refused. A trailing slash is kept. The
/// result always starts with `/`, and normalizing it again changes nothing.
pub fn normalize_path(raw: &[u8]) -> Result<String, PathError> {
    let end = raw
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(raw.len());
    let path = raw.get(..end).unwrap_or(raw);
    let Some((&b'/', rest)) = path.split_first() else {
        return Err(PathError::NotAbsolute);
    };

    // Never longer than the input: decoding, merging, cutting and resolving
    // only shrink it, and "/" comes from a "/" in the input.
    let mut out: Vec<u8> = Vec::with_capacity(path.len());
    // Whether the path ends in a slash once resolved: after an empty, `.`,
    // `..` or parameters-only last segment.
    let mut trailing_slash = false;

    for segment in rest.split(|&b| b == b'/') {
        let mark = out.len();
        out.push(b'/');
        push_segment(&mut out, segment)?;

        let text = out.get(mark + 1..).unwrap_or_default();
        trailing_slash = matches!(text, b"" | b"." | b"..");
        if text == b".." {
            // Drop this segment and the one before it; at the root there is
            // none, and RFC 3986 would stay at the root, but a client that
            // climbs above it is up to no good and the upstream may not agree.
            let before = out.get(..mark).unwrap_or_default();
            let Some(parent) = before.iter().rposition(|&b| b == b'/') else {
                return Err(PathError::AboveRoot);
            };
            out.truncate(parent);
        } else if trailing_slash {
            out.truncate(mark);
        }
    }

    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

/// Appends one raw segment (no `/` in it), decoded, to `out`.
///
/// Path parameters are cut: everything from the first `;` of a segment on is
/// dropped, as Tomcat and other servlet containers do before they match
/// (`/admin;x=1/users` is `/admin/users` to them). Without the cut,
/// `/public/..;/admin` would be matched under `/public` here while such an
/// upstream serves `/admin`. The parameters are still checked for the refused
/// escapes, so a path holding `%2F` is refused wherever it holds it.
fn push_segment(out: &mut Vec<u8>, segment: &[u8]) -> Result<(), PathError> {
    let mut in_params = false;
    let mut bytes = segment.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (bytes.next(), bytes.next()) else {
                    return Err(PathError::InvalidEscape);
                };
                let (Some(h), Some(l)) = (hex_value(*hi), hex_value(*lo)) else {
                    return Err(PathError::InvalidEscape);
                };
                let decoded = (h << 4) | l;
                match decoded {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::EncodedBackslash),
                    0 => return Err(PathError::EncodedNul),
                    _ if in_params => {}
                    _ if is_unreserved(decoded) => out.push(decoded),
                    _ => out.extend_from_slice(&[
                        b'%',
                        hi.to_ascii_uppercase(),
                        lo.to_ascii_uppercase(),
                    ]),
                }
            }
            b'\\' => return Err(PathError::Backslash),
            b';' => in_params = true,
            _ if in_params => {}
            _ => out.push(b),
        }
    }
    Ok(())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3: decoding these never changes what a path means.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// A configured path matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Every path (neither `path` nor `prefix` configured).
    Any,
    /// `path`: this normalized path only.
    Exact(String),
    /// `prefix`: this path and everything below it, segment-aware.
    Prefix(String),
}

impl PathMatch {
    /// Whether a normalized path fits. A prefix fits whole segments only:
    /// `/orders` fits `/orders`, `/orders/` and `/orders/7`, never `/ordersx`;
    /// a prefix ending in `/` fits whatever starts with it, so `/` fits all.
    pub fn fits(&self, normalized: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(path) => normalized == path,
            PathMatch::Prefix(prefix) => match normalized.strip_prefix(prefix.as_str()) {
                None => false,
                Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
            },
        }
    }
}

/// A configured host pattern: exact, or `*.example.com`, which fits any host
/// ending in `.example.com` but not `example.com` itself. Stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// The host itself (`api.example.com`, `[::1]`).
    Exact(String),
    /// The suffix of a `*.` pattern, dot included: `.example.com`.
    Suffix(String),
}

impl HostPattern {
    /// Parses a configured host: `api.example.com`, `*.example.com`, `[::1]`.
    /// A port is refused (ports are ignored when matching, so a pattern with
    /// one would never fit), and so is a `*` anywhere but a leading `*.`.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let lower = text.to_ascii_lowercase();
        let (name, wildcard) = match lower.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (lower.as_str(), false),
        };
        if name.is_empty() {
            return Err(format!("{text:?} names no host"));
        }
        if name.contains('*') {
            return Err(format!(
                "{text:?}: a wildcard is allowed only as a leading \"*.\""
            ));
        }
        if name
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'/' || b == b'@')
        {
            return Err(format!("{text:?} is not a host name"));
        }
        let bracketed = name.starts_with('[') && name.ends_with(']');
        if !bracketed && name.contains(':') {
            return Err(format!(
                "{text:?} holds a port or an unbracketed IPv6 address (ports are ignored; write IPv6 as \"[::1]\")"
            ));
        }
        if name.ends_with('.') {
            return Err(format!("{text:?} ends with '.'"));
        }
        Ok(if wildcard {
            HostPattern::Suffix(format!(".{name}"))
        } else {
            HostPattern::Exact(name.to_owned())
        })
    }

    /// Whether a host fits; `host` is as [`authority_host`] returns it
    /// (lower-case, no port).
    pub fn fits(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

/// The host of an `:authority` value: lower-cased, port removed
/// (`example.com:443`, `[::1]:8080` keeps its brackets as `[::1]`). A trailing
/// dot is dropped too (`example.com.` is the same DNS name, and a host rule
/// must not be sidestepped by it), and so is a userinfo part. Returns `None`
/// for bytes that are not UTF-8.
pub fn authority_host(authority: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(authority).ok()?;
    let text = match text.rsplit_once('@') {
        Some((_, host)) => host,
        None => text,
    };
    let host = if text.starts_with('[') {
        match text.find(']') {
            Some(close) => text.get(..=close).unwrap_or(text),
            None => text,
        }
    } else {
        match text.split_once(':') {
            // More than one ':' is an unbracketed IPv6 address, not a port.
            Some((name, port)) if !port.contains(':') => name,
            _ => text,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    Some(host.to_ascii_lowercase())
}

/// The `match` of a rule: path, and optionally methods and hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub path: PathMatch,
    /// Upper-case method names; `None` fits every method.
    pub methods: Option<Vec<String>>,
    /// `None` fits every host.
    pub hosts: Option<Vec<HostPattern>>,
}

impl Match {
    /// Whether a request fits: `path` normalized, `method` as sent (methods
    /// are case-sensitive, RFC 9110 §9.1), `host` from [`authority_host`].
    pub fn fits(&self, path: &str, method: &str, host: &str) -> bool {
        self.path.fits(path)
            && self
                .methods
                .as_ref()
                .is_none_or(|methods| methods.iter().any(|m| m == method))
            && self
                .hosts
                .as_ref()
                .is_none_or(|hosts| hosts.iter().any(|h| h.fits(host)))
    }
}

/// What a rule decides once it fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No token needed, none checked.
    Anonymous,
    /// Always refused (`denied`).
    Deny,
    /// A valid token holding all of `scopes` and at least one of `roles`
    /// (an empty list asks nothing).
    Require {
        scopes: Vec<String>,
        roles: Vec<String>,
    },
}

/// One configured rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matcher: Match,
    pub action: Action,
}

/// The first rule that fits, in order; `None` is default deny (`no_rule`).
pub fn first_match<'r>(
    rules: &'r [Rule],
    path: &str,
    method: &str,
    host: &str,
) -> Option<&'r Rule> {
    rules
        .iter()
        .find(|rule| rule.matcher.fits(path, method, host))
}

/// Whether a granted scope grants a required one: equal, or the granted one
/// ends in `*` and the required starts with the text before the `*`
/// (`orders:*` grants `orders:read`; `*` grants everything).
pub fn scope_grants(granted: &str, required: &str) -> bool {
    granted == required
        || granted
            .strip_suffix('*')
            .is_some_and(|stem| required.starts_with(stem))
}

/// Whether every scope of `required` is granted by some scope of `granted`.
pub fn all_scopes_granted<'a>(
    granted: impl Iterator<Item = &'a str> + Clone,
    required: &[String],
) -> bool {
    required
        .iter()
        .all(|need| granted.clone().any(|have| scope_grants(have, need)))
}

/// Checks that a configured rule `path` or `prefix` is in normalized form, so
/// that it can ever fit: a rule on `/a/../b` would never see that path.
pub fn check_config_path(p: &str) -> Result<(), String> {
    match normalize_path(p.as_bytes()) {
        Ok(normalized) if normalized == p => Ok(()),
        Ok(normalized) => Err(format!(
            "is not in normalized form ({p:?} is matched as {normalized:?})"
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
// Tests may unwrap: a panic there is a failed test, not a crashed proxy.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, PathError> {
        normalize_path(raw.as_bytes())
    }

    fn ok(s: &str) -> Result<String, PathError> {
        Ok(s.to_owned())
    }

    // --- normalize_path ---

    #[test]
    fn resolves_spec_example() {
        assert_eq!(norm("/public//..//admin"), ok("/admin"));
    }

    #[test]
    fn keeps_plain_paths() {
        assert_eq!(norm("/"), ok("/"));
        assert_eq!(norm("/orders/7"), ok("/orders/7"));
    }

    #[test]
    fn merges_slash_runs() {
        assert_eq!(norm("//"), ok("/"));
        assert_eq!(norm("///a///b"), ok("/a/b"));
    }

    #[test]
    fn keeps_trailing_slash() {
        assert_eq!(norm("/orders/"), ok("/orders/"));
        assert_eq!(norm("/orders//"), ok("/orders/"));
    }

    #[test]
    fn resolves_dot_segments() {
        assert_eq!(norm("/a/./b"), ok("/a/b"));
        assert_eq!(norm("/a/b/../c"), ok("/a/c"));
        assert_eq!(norm("/a/b/.."), ok("/a/"));
        assert_eq!(norm("/a/."), ok("/a/"));
        assert_eq!(norm("/."), ok("/"));
        assert_eq!(norm("/a/.."), ok("/"));
        assert_eq!(norm("/a/..."), ok("/a/..."));
        assert_eq!(norm("/a/.b/..c"), ok("/a/.b/..c"));
    }

    #[test]
    fn resolves_encoded_dot_segments() {
        assert_eq!(norm("/a/%2E%2E/b"), ok("/b"));
        assert_eq!(norm("/a/b/%2e%2e/%2e%2e/c"), ok("/c"));
        assert_eq!(norm("/a/.%2e/b"), ok("/b"));
        assert_eq!(norm("/a/%2e/b"), ok("/a/b"));
    }

    #[test]
    fn rejects_encoded_dots_climbing_above_root() {
        assert_eq!(norm("/%2e%2e"), Err(PathError::AboveRoot));
        assert_eq!(
            norm("/a/%2e%2e/%2E%2E/etc/passwd"),
            Err(PathError::AboveRoot)
        );
    }

    #[test]
    fn rejects_climbing_above_root() {
        assert_eq!(norm("/.."), Err(PathError::AboveRoot));
        assert_eq!(norm("/../a"), Err(PathError::AboveRoot));
        assert_eq!(norm("/a/../.."), Err(PathError::AboveRoot));
        assert_eq!(norm("//..//a"), Err(PathError::AboveRoot));
    }

    #[test]
    fn decodes_unreserved_escapes() {
        assert_eq!(norm("/%7E"), ok("/~"));
        assert_eq!(norm("/%41"), ok("/A"));
        assert_eq!(norm("/%61dmin"), ok("/admin"));
        assert_eq!(norm("/%2D%2e%5F%7e%30"), ok("/-._~0"));
    }

    #[test]
    fn keeps_reserved_escapes_in_upper_case() {
        assert_eq!(norm("/%3a"), ok("/%3A"));
        assert_eq!(norm("/a%3bb"), ok("/a%3Bb"));
        assert_eq!(norm("/%3f"), ok("/%3F"));
        assert_eq!(norm("/%25"), ok("/%25"));
        assert_eq!(norm("/%c3%a9"), ok("/%C3%A9"));
        assert_eq!(norm("/%20"), ok("/%20"));
    }

    #[test]
    fn rejects_encoded_slash() {
        assert_eq!(norm("/a%2Fb"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/a%2fb"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/..%2f..%2fetc"), Err(PathError::EncodedSlash));
    }

    #[test]
    fn rejects_encoded_backslash() {
        assert_eq!(norm("/a%5Cb"), Err(PathError::EncodedBackslash));
        assert_eq!(norm("/a%5cb"), Err(PathError::EncodedBackslash));
    }

    #[test]
    fn rejects_encoded_nul() {
        assert_eq!(norm("/a%00b"), Err(PathError::EncodedNul));
        assert_eq!(norm("/admin%00.txt"), Err(PathError::EncodedNul));
    }

    #[test]
    fn rejects_backslash() {
        assert_eq!(norm("/a\\b"), Err(PathError::Backslash));
        assert_eq!(norm("/public\\..\\admin"), Err(PathError::Backslash));
    }

    #[test]
    fn rejects_invalid_escapes() {
        assert_eq!(norm("/%zz"), Err(PathError::InvalidEscape));
        assert_eq!(norm("/%4"), Err(PathError::InvalidEscape));
        assert_eq!(norm("/%"), Err(PathError::InvalidEscape));
        assert_eq!(norm("/%4/"), Err(PathError::InvalidEscape));
        assert_eq!(norm("/%4?x"), Err(PathError::InvalidEscape));
        assert_eq!(norm("/%g1"), Err(PathError::InvalidEscape));
        assert_eq!(norm("/%%41"), Err(PathError::InvalidEscape));
    }

    #[test]
    fn rejects_paths_not_starting_with_slash() {
        assert_eq!(norm("*"), Err(PathError::NotAbsolute));
        assert_eq!(norm("http://x/"), Err(PathError::NotAbsolute));
        assert_eq!(norm(""), Err(PathError::NotAbsolute));
        assert_eq!(norm("?a=1"), Err(PathError::NotAbsolute));
        assert_eq!(norm("admin"), Err(PathError::NotAbsolute));
        assert_eq!(norm("%2Fadmin"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn cuts_query_and_fragment() {
        assert_eq!(norm("/a?b=/../c"), ok("/a"));
        assert_eq!(norm("/a#frag/.."), ok("/a"));
        assert_eq!(norm("/a/?x"), ok("/a/"));
        assert_eq!(norm("/a#x?y"), ok("/a"));
        assert_eq!(norm("/a?%zz"), ok("/a"));
        assert_eq!(norm("/?"), ok("/"));
    }

    #[test]
    fn cuts_path_parameters() {
        assert_eq!(norm("/admin;x=1/users"), ok("/admin/users"));
        assert_eq!(norm("/admin;jsessionid=abc"), ok("/admin"));
        assert_eq!(norm("/public/..;/admin"), ok("/admin"));
        assert_eq!(norm("/a/;x/b"), ok("/a/b"));
        assert_eq!(norm("/a/;x"), ok("/a/"));
        assert_eq!(norm("/;"), ok("/"));
        assert_eq!(norm("/a/.;x/b"), ok("/a/b"));
    }

    #[test]
    fn rejects_bad_escapes_inside_path_parameters() {
        assert_eq!(norm("/a;%2F"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/a;%zz"), Err(PathError::InvalidEscape));
        assert_eq!(norm("/a;x\\y"), Err(PathError::Backslash));
    }

    #[test]
    fn rejects_dot_dot_parameters_above_root() {
        assert_eq!(norm("/..;/admin"), Err(PathError::AboveRoot));
    }

    #[test]
    fn accepts_raw_utf8() {
        assert_eq!(norm("/caf\u{e9}/\u{1f600}"), ok("/caf\u{e9}/\u{1f600}"));
    }

    #[test]
    fn rejects_raw_bytes_that_are_not_utf8() {
        assert_eq!(normalize_path(b"/a\xffb"), Err(PathError::NotUtf8));
        assert_eq!(normalize_path(b"/\xc3"), Err(PathError::NotUtf8));
    }

    #[test]
    fn ignores_non_utf8_bytes_in_query() {
        assert_eq!(normalize_path(b"/a?\xff"), ok("/a"));
    }

    #[test]
    fn never_grows_beyond_input() {
        for raw in TRICKY {
            if let Ok(n) = norm(raw) {
                assert!(n.len() <= raw.len().max(1), "{raw:?} -> {n:?}");
            }
        }
    }

    const TRICKY: &[&str] = &[
        "/",
        "//",
        "/.",
        "/./",
        "/a/..",
        "/a/../",
        "/public//..//admin",
        "/a/%2E%2E/b",
        "/a/.%2e/b/",
        "/%2e/a",
        "/%7E%41%3a",
        "/%3a%3A%3b",
        "/%25",
        "/%2525",
        "/%252F",
        "/%25%32%46",
        "/a;b/c;d",
        "/public/..;/admin",
        "/a/;x",
        "/;x/;y/",
        "/orders/",
        "/orders//7//",
        "/a/b/./../c/",
        "/a/.../b",
        "/.a/..b/c..",
        "/a?b#c",
        "/a#b?c",
        "/caf\u{e9}/%C3%A9",
        "/%c3%a9",
        "/%20/%7f",
        "///x/./y/../z",
        "/a/%2e%2e%2e",
        "/%2E%2E%2F",
        "/x/y/z/../../..",
        "/a/.;/b",
        "/%2e;x/a",
        "/a%2",
        "/%41%42/../%43",
    ];

    #[test]
    fn normalizing_twice_changes_nothing() {
        for raw in TRICKY {
            if let Ok(once) = norm(raw) {
                assert_eq!(norm(&once), Ok(once.clone()), "from {raw:?}");
                assert!(once.starts_with('/'), "{raw:?} -> {once:?}");
            }
        }
        // The list is also meant to hold real normalizations, not only errors.
        assert!(TRICKY.iter().filter(|raw| norm(raw).is_ok()).count() >= 30);
    }

    #[test]
    fn decoded_percent_is_not_decoded_again() {
        // "%252F" is the text "%2F", not a slash; a second pass must agree.
        assert_eq!(norm("/%252F"), ok("/%252F"));
        assert_eq!(norm("/%25%32%46"), ok("/%252F"));
    }

    // --- PathMatch ---

    #[test]
    fn prefix_is_segment_aware() {
        let p = PathMatch::Prefix("/orders".to_owned());
        assert!(p.fits("/orders"));
        assert!(p.fits("/orders/"));
        assert!(p.fits("/orders/7"));
        assert!(!p.fits("/ordersx"));
        assert!(!p.fits("/order"));
        assert!(!p.fits("/"));
        assert!(!p.fits("/api/orders"));
    }

    #[test]
    fn prefix_ending_in_slash_fits_what_starts_with_it() {
        let p = PathMatch::Prefix("/orders/".to_owned());
        assert!(p.fits("/orders/"));
        assert!(p.fits("/orders/7"));
        assert!(!p.fits("/orders"));
    }

    #[test]
    fn root_prefix_fits_every_path() {
        let p = PathMatch::Prefix("/".to_owned());
        for path in ["/", "/a", "/a/b/", "/ordersx"] {
            assert!(p.fits(path), "{path}");
        }
    }

    #[test]
    fn exact_fits_only_itself() {
        let p = PathMatch::Exact("/orders".to_owned());
        assert!(p.fits("/orders"));
        assert!(!p.fits("/orders/"));
        assert!(!p.fits("/orders/7"));
        assert!(!p.fits("/Orders"));
    }

    #[test]
    fn any_fits_every_path() {
        assert!(PathMatch::Any.fits("/"));
        assert!(PathMatch::Any.fits("/anything/at/all"));
    }

    // --- hosts ---

    #[test]
    fn authority_host_strips_port_and_lowercases() {
        assert_eq!(
            authority_host(b"Example.COM:443"),
            Some("example.com".to_owned())
        );
        assert_eq!(
            authority_host(b"example.com"),
            Some("example.com".to_owned())
        );
        assert_eq!(authority_host(b"[::1]:8080"), Some("[::1]".to_owned()));
        assert_eq!(authority_host(b"[::1]"), Some("[::1]".to_owned()));
        assert_eq!(
            authority_host(b"[FE80::1]:80"),
            Some("[fe80::1]".to_owned())
        );
        assert_eq!(
            authority_host(b"127.0.0.1:80"),
            Some("127.0.0.1".to_owned())
        );
        assert_eq!(authority_host(b""), Some(String::new()));
    }

    #[test]
    fn authority_host_drops_trailing_dot_and_userinfo() {
        assert_eq!(
            authority_host(b"api.example.com.:443"),
            Some("api.example.com".to_owned())
        );
        assert_eq!(
            authority_host(b"user@api.example.com"),
            Some("api.example.com".to_owned())
        );
    }

    #[test]
    fn authority_host_refuses_non_utf8() {
        assert_eq!(authority_host(b"ex\xffample.com"), None);
    }

    #[test]
    fn parses_host_patterns() {
        assert_eq!(
            HostPattern::parse("API.Example.com"),
            Ok(HostPattern::Exact("api.example.com".to_owned()))
        );
        assert_eq!(
            HostPattern::parse("*.Example.com"),
            Ok(HostPattern::Suffix(".example.com".to_owned()))
        );
        assert_eq!(
            HostPattern::parse("[::1]"),
            Ok(HostPattern::Exact("[::1]".to_owned()))
        );
    }

    #[test]
    fn rejects_bad_host_patterns() {
        for bad in [
            "",
            "*.",
            "*",
            "a.*.com",
            "*example.com",
            "example.com:443",
            "::1",
            "a b",
            "a/b",
            "example.com.",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wildcard_host_does_not_fit_apex() {
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.fits("api.example.com"));
        assert!(p.fits("a.b.example.com"));
        assert!(!p.fits("example.com"));
        assert!(!p.fits(".example.com"));
        assert!(!p.fits("evilexample.com"));
        assert!(!p.fits("example.com.evil.org"));
    }

    #[test]
    fn host_matching_ignores_case_and_port() {
        let p = HostPattern::parse("Api.Example.com").unwrap();
        let host = authority_host(b"API.EXAMPLE.COM:8443").unwrap();
        assert!(p.fits(&host));
        assert!(!p.fits("other.example.com"));
        let v6 = HostPattern::parse("[::1]").unwrap();
        assert!(v6.fits(&authority_host(b"[::1]:8080").unwrap()));
    }

    // --- Match and rules ---

    fn prefix(p: &str) -> Match {
        Match {
            path: PathMatch::Prefix(p.to_owned()),
            methods: None,
            hosts: None,
        }
    }

    fn require(scopes: &[&str]) -> Action {
        Action::Require {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            roles: Vec::new(),
        }
    }

    #[test]
    fn methods_must_be_listed() {
        let m = Match {
            methods: Some(vec!["GET".to_owned(), "HEAD".to_owned()]),
            ..prefix("/orders")
        };
        assert!(m.fits("/orders", "GET", "x"));
        assert!(m.fits("/orders/7", "HEAD", "x"));
        assert!(!m.fits("/orders", "POST", "x"));
        assert!(!m.fits("/orders", "get", "x"));
        assert!(!m.fits("/other", "GET", "x"));
    }

    #[test]
    fn hosts_must_fit_one_pattern() {
        let m = Match {
            hosts: Some(vec![
                HostPattern::parse("api.example.com").unwrap(),
                HostPattern::parse("*.internal").unwrap(),
            ]),
            ..prefix("/")
        };
        assert!(m.fits("/", "GET", "api.example.com"));
        assert!(m.fits("/", "GET", "db.internal"));
        assert!(!m.fits("/", "GET", "internal"));
        assert!(!m.fits("/", "GET", "www.example.com"));
    }

    fn spec_rules() -> Vec<Rule> {
        vec![
            Rule {
                matcher: prefix("/healthz"),
                action: Action::Anonymous,
            },
            Rule {
                matcher: Match {
                    methods: Some(vec!["GET".to_owned(), "HEAD".to_owned()]),
                    ..prefix("/orders")
                },
                action: require(&["orders:read"]),
            },
            Rule {
                matcher: prefix("/orders"),
                action: require(&["orders:write"]),
            },
            Rule {
                matcher: prefix("/internal"),
                action: Action::Deny,
            },
        ]
    }

    #[test]
    fn first_fitting_rule_decides() {
        let rules = spec_rules();
        let pick =
            |path: &str, method: &str| first_match(&rules, path, method, "h").map(|r| &r.action);
        assert_eq!(pick("/healthz", "GET"), Some(&Action::Anonymous));
        assert_eq!(pick("/orders/7", "GET"), Some(&require(&["orders:read"])));
        assert_eq!(
            pick("/orders/7", "DELETE"),
            Some(&require(&["orders:write"]))
        );
        assert_eq!(pick("/internal/x", "GET"), Some(&Action::Deny));
    }

    #[test]
    fn no_fitting_rule_is_none() {
        let rules = spec_rules();
        assert_eq!(first_match(&rules, "/ordersx", "GET", "h"), None);
        assert_eq!(first_match(&rules, "/", "GET", "h"), None);
        assert_eq!(first_match(&[], "/", "GET", "h"), None);
    }

    #[test]
    fn normalized_traversal_reaches_the_guarded_rule() {
        let rules = spec_rules();
        let path = norm("/healthz/..;/internal/x").unwrap();
        assert_eq!(
            first_match(&rules, &path, "GET", "h").map(|r| &r.action),
            Some(&Action::Deny)
        );
    }

    // --- scopes ---

    #[test]
    fn scope_wildcards_grant_by_prefix() {
        assert!(scope_grants("orders:read", "orders:read"));
        assert!(!scope_grants("orders:read", "orders:write"));
        assert!(scope_grants("orders:*", "orders:read"));
        assert!(!scope_grants("orders:*", "ordersx"));
        assert!(!scope_grants("orders:*", "reports:read"));
        assert!(scope_grants("*", "anything:at:all"));
        assert!(scope_grants("orders*", "ordersx"));
        assert!(scope_grants("orders*", "orders:read"));
    }

    #[test]
    fn required_wildcard_is_granted_only_literally() {
        // A "*" in a required scope is plain text: "orders:read" does not grant it.
        assert!(!scope_grants("orders:read", "orders:*"));
        assert!(scope_grants("orders:*", "orders:*"));
    }

    #[test]
    fn all_scopes_must_be_granted() {
        let granted = ["orders:read", "reports:*"];
        let required = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(all_scopes_granted(
            granted.iter().copied(),
            &required(&["orders:read", "reports:weekly"])
        ));
        assert!(!all_scopes_granted(
            granted.iter().copied(),
            &required(&["orders:read", "orders:write"])
        ));
        assert!(all_scopes_granted(granted.iter().copied(), &[]));
        assert!(!all_scopes_granted(
            std::iter::empty(),
            &required(&["orders:read"])
        ));
    }

    // --- configuration paths ---

    #[test]
    fn accepts_normalized_config_paths() {
        for p in ["/", "/orders", "/orders/", "/a/%3A"] {
            assert_eq!(check_config_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn rejects_config_paths_not_in_normalized_form() {
        assert_eq!(
            check_config_path("orders"),
            Err("must start with '/'".to_owned())
        );
        assert_eq!(
            check_config_path("/a/../b"),
            Err("is not in normalized form (\"/a/../b\" is matched as \"/b\")".to_owned())
        );
        assert!(check_config_path("//a").is_err());
        assert!(check_config_path("/%7Ea").is_err());
        assert!(check_config_path("/a;x").is_err());
        assert!(check_config_path("/a?x").is_err());
        assert_eq!(
            check_config_path("/.."),
            Err(PathError::AboveRoot.to_string())
        );
    }
}

#[cfg(test)]
mod cow_tests {
    use super::*;

    #[test]
    fn borrowed_fast_path_agrees_with_normalize_path() {
        let samples = [
            "/",
            "/a",
            "/a/",
            "/orders/7",
            "/a/b/c?x=1",
            "/a#f",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/a;x",
            "/a%41",
            "/a\\b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/.a/..b/...",
            "/é",
            "x",
            "",
            "/a\u{7f}",
            "/a b",
            "/~user/_x-y.z",
        ];
        for s in samples {
            assert_eq!(
                normalize_path_cow(s.as_bytes()).map(Cow::into_owned),
                normalize_path(s.as_bytes()),
                "{s:?}"
            );
        }
        assert!(matches!(
            normalize_path_cow(b"/orders/7?x"),
            Ok(Cow::Borrowed("/orders/7"))
        ));
    }
}
