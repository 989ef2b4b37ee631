//! Request matching: which rule decides a request, and whether granted scopes
//! satisfy it.
//!
//! This module owns the path normalization of docs/configuration.md, "Rules" (the path the
//! rules see), the rule matchers (path, method, host), first-match rule
//! selection and the scope grant logic (`orders:*` grants `orders:read`). It
//! knows nothing of tokens, claims or keys, and does not parse configuration:
//! the config module builds [`Rule`]s and checks their paths with
//! [`check_config_path`]; the filter and the CLI hand in the request's
//! `:path`, `:method` and `:authority` and act on the rule returned.

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv6Addr;

use crate::wire::hex_value;

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
    /// `%C0` or `%C1`: never UTF-8; an overlong encoding (`%C0%AE` for `.`)
    /// that a lenient decoder reads as another character.
    Overlong,
    /// A literal `\`, which some upstreams treat as `/`.
    Backslash,
    /// A `%` not followed by two hex digits.
    InvalidEscape,
    /// A `..` segment that climbs above the root.
    AboveRoot,
    /// A segment that is `.` or `..` only once its path parameters are cut
    /// (`..;`, `%2e%2e;x`, `.;`): an upstream may resolve it or take it
    /// literally, so the gate does neither.
    DotParameters,
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
            PathError::Overlong => "holds an overlong UTF-8 escape (%C0 or %C1)",
            PathError::Backslash => "holds a backslash",
            PathError::InvalidEscape => "holds a '%' not followed by two hex digits",
            PathError::AboveRoot => "climbs above the root with '..'",
            PathError::DotParameters => "holds a '.' or '..' segment with path parameters",
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

/// Normalizes a raw `:path` (bytes as received) for matching, as
/// docs/configuration.md, "Rules", describes.
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
/// (`/admin;x=1/users` is `/admin/users` to them). A segment that is `.` or
/// `..` only once its parameters are cut (`..;`, `%2e%2e;x`, `.;`) is
/// refused: Tomcat resolves `/public/..;/admin` to `/admin`, while nginx or
/// Go take `..;` as a name, and the gate must not pick either reading. The
/// parameters are still checked for the refused escapes, so a path holding
/// `%2F` is refused wherever it holds it.
fn push_segment(out: &mut Vec<u8>, segment: &[u8]) -> Result<(), PathError> {
    let start = out.len();
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
                    0xc0 | 0xc1 => return Err(PathError::Overlong),
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
            b';' if !in_params => {
                in_params = true;
                if matches!(out.get(start..), Some(b"." | b"..")) {
                    return Err(PathError::DotParameters);
                }
            }
            _ if in_params => {}
            _ => out.push(b),
        }
    }
    Ok(())
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
    /// The name must be what [`parse_authority`] accepts as a host, without
    /// a port (ports are ignored when matching, so a pattern with one would
    /// never fit); a `*` is allowed only as a leading `*.`.
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
        if !name.starts_with('[') && name.contains(':') {
            return Err(format!(
                "{text:?} holds a port or an unbracketed IPv6 address (ports are ignored; write IPv6 as \"[::1]\")"
            ));
        }
        match parse_authority(name.as_bytes()) {
            Ok(host) if host == name => {}
            Ok(_) => return Err(format!("{text:?} holds a port (ports are ignored)")),
            Err(e) => return Err(format!("{text:?} is not a host: {e}")),
        }
        let numeric =
            name.starts_with('[') || name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if wildcard && numeric {
            return Err(format!(
                "{text:?}: a wildcard fits host names, never an IP address"
            ));
        }
        Ok(if wildcard {
            HostPattern::Suffix(format!(".{name}"))
        } else {
            HostPattern::Exact(name.to_owned())
        })
    }

    /// Whether a host fits; `host` is as [`parse_authority`] returns it
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

/// Why an `:authority` (or another header naming a host) is not a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorityError {
    /// Nothing at all.
    Empty,
    /// A `user@` part: upstreams drop it and serve the host after it.
    Userinfo,
    /// A port that is empty, not all digits, or above 65535, or a second `:`.
    BadPort,
    /// A label that is empty (`a..b`, a trailing dot), too long, or holds a
    /// character no host name has.
    BadHostName,
    /// A bracketed part that is not an IPv6 address (zone ids included).
    BadIpv6,
}

impl fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthorityError::Empty => "is empty",
            AuthorityError::Userinfo => "holds userinfo ('@')",
            AuthorityError::BadPort => "has a port that is not 0-65535 in digits",
            AuthorityError::BadHostName => {
                "is not a host name (empty, trailing-dot or invalid label)"
            }
            AuthorityError::BadIpv6 => "holds brackets without an IPv6 address",
        })
    }
}

impl std::error::Error for AuthorityError {}

/// Parses an `:authority` strictly and returns its host, lower-cased, without
/// the port: a host name (labels of letters, digits, `-` and `_`, 1 to 63
/// bytes each, 253 in all, no empty label and no trailing dot), an IPv4
/// address (which is such a name), or a bracketed IPv6 address; then
/// optionally `:` and a port of at most five digits, up to 65535. Anything
/// else is refused: `admin.example.com:80:`, `admin.example.com..`,
/// `a@admin.example.com` and the empty authority are all served as
/// `admin.example.com` by some upstream, so none of them may fall past a
/// host rule onto a looser one.
pub fn parse_authority(raw: &[u8]) -> Result<String, AuthorityError> {
    if raw.is_empty() {
        return Err(AuthorityError::Empty);
    }
    if raw.contains(&b'@') {
        return Err(AuthorityError::Userinfo);
    }
    let (host, port) = if raw.first() == Some(&b'[') {
        let close = raw
            .iter()
            .position(|b| *b == b']')
            .ok_or(AuthorityError::BadIpv6)?;
        let inner = raw.get(1..close).ok_or(AuthorityError::BadIpv6)?;
        let text = std::str::from_utf8(inner).map_err(|_| AuthorityError::BadIpv6)?;
        text.parse::<Ipv6Addr>()
            .map_err(|_| AuthorityError::BadIpv6)?;
        let rest = raw.get(close + 1..).unwrap_or_default();
        let port = match rest.split_first() {
            None => None,
            Some((b':', port)) => Some(port),
            Some(_) => return Err(AuthorityError::BadPort),
        };
        (raw.get(..=close).unwrap_or_default(), port)
    } else {
        match raw.iter().position(|b| *b == b':') {
            Some(i) => (
                raw.get(..i).unwrap_or_default(),
                Some(raw.get(i + 1..).unwrap_or_default()),
            ),
            None => (raw, None),
        }
    };
    if let Some(port) = port {
        let digits = !port.is_empty() && port.len() <= 5 && port.iter().all(u8::is_ascii_digit);
        let value = std::str::from_utf8(port)
            .ok()
            .and_then(|p| p.parse::<u32>().ok());
        if !digits || value.is_none_or(|v| v > 65535) {
            return Err(AuthorityError::BadPort);
        }
    }
    if host.first() != Some(&b'[') {
        check_host_name(host)?;
    }
    // Checked above: ASCII only.
    let text = String::from_utf8_lossy(host);
    Ok(text.to_ascii_lowercase())
}

fn check_host_name(host: &[u8]) -> Result<(), AuthorityError> {
    if host.is_empty() || host.len() > 253 {
        return Err(AuthorityError::BadHostName);
    }
    let label_ok = |label: &[u8]| {
        (1..=63).contains(&label.len())
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    };
    if host.split(|b| *b == b'.').all(label_ok) {
        Ok(())
    } else {
        Err(AuthorityError::BadHostName)
    }
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
    /// are case-sensitive, RFC 9110 §9.1), `host` from [`parse_authority`].
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

/// A request as the rules see it: one reading of its path, method and host.
#[derive(Clone, Copy, Debug)]
pub struct Route<'a> {
    /// Normalized path (see [`normalize_path`]).
    pub path: &'a str,
    pub method: &'a str,
    /// From [`parse_authority`]; empty when no rule names hosts.
    pub host: &'a str,
}

/// The request could be routed under rules with different outcomes,
/// depending on how the upstream reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ambiguous;

/// The rule that decides a request, given every reading of it an upstream
/// may make: `paths[0]`, `methods[0]` and `hosts[0]` are the request as the
/// gate reads it, the rest what some upstream may make of it (see
/// [`path_readings`]). When two readings fit rules with different outcomes
/// (or one fits a rule and another none), the gate cannot know which the
/// upstream will apply, and refuses: a rule on `/admin` must not be slipped
/// past with `/ADMIN` to an Express upstream, which routes both alike.
pub fn select<'r>(
    rules: &'r [Rule],
    paths: &[&str],
    methods: &[&str],
    hosts: &[&str],
) -> Result<Option<&'r Rule>, Ambiguous> {
    let (Some(path), Some(method), Some(host)) = (paths.first(), methods.first(), hosts.first())
    else {
        return Ok(None);
    };
    let chosen = first_match(rules, path, method, host);
    let outcome = chosen.map(|r| &r.action);
    for p in paths {
        for m in methods {
            for h in hosts {
                if first_match(rules, p, m, h).map(|r| &r.action) != outcome {
                    return Err(Ambiguous);
                }
            }
        }
    }
    Ok(chosen)
}

/// The other paths that common upstream frameworks route a normalized
/// `path` to, each different from it: letters in lower case (Express and
/// ASP.NET match routes case-insensitively), without a trailing slash
/// (Express and Spring before 6 ignore it), without an extension on the
/// last segment (Rails' `(.:format)`, Spring's suffix patterns: `/admin.json`
/// is `/admin` to them), after a PHP front controller (`/index.php/admin` is
/// `/admin` to Symfony, Laravel and `PATH_INFO` set-ups) or another script
/// (any file under `/cgi-bin/`), and without
/// encoded white space at its end (`/admin%0A`: a regex `$` that matches
/// before a final newline, as in nginx regex locations and older Django;
/// routers that trim); and each combination. Percent-escapes keep their
/// upper-case hex. Empty for the usual `/orders/7`.
pub fn path_readings(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // The common path has nothing to read otherwise: no letter in upper
    // case, no trailing slash, no dot in any segment but as the first
    // character of the last (a script or an extension), no escape, no
    // white space, control or byte beyond ASCII, no script directory.
    let (dirs, last) = path.rsplit_once('/').unwrap_or(("", path));
    if !path
        .bytes()
        .any(|b| b.is_ascii_uppercase() || b == b'%' || !b.is_ascii_graphic())
        && (path.len() <= 1 || !path.ends_with('/'))
        && !last.chars().skip(1).any(|c| c == '.')
        && !dirs.contains('.')
        && !path.contains("/cgi-bi")
        && !path.contains("/htbin/")
    {
        return out;
    }
    let mut bases = vec![path.to_owned()];
    if let Some(inner) = after_front_controller(path) {
        bases.push(inner);
    }
    // White space trimmed, also from under a trailing slash (`/admin%0A/`
    // reads as `/admin` to a router that drops the slash, then trims).
    for i in 0..bases.len() {
        let Some(base) = bases.get(i).cloned() else {
            break;
        };
        let unslashed = base.strip_suffix('/').unwrap_or(&base);
        for b in [base.as_str(), unslashed] {
            if let Some(trimmed) = without_trailing_space(b) {
                if !bases.contains(&trimmed) {
                    bases.push(trimmed);
                }
            }
        }
    }
    for start in bases {
        let lower = lower_outside_escapes(&start);
        for base in [Some(start), lower].into_iter().flatten() {
            let unslashed = base
                .strip_suffix('/')
                .filter(|p| !p.is_empty())
                .map(str::to_owned);
            for p in [Some(base.clone()), unslashed].into_iter().flatten() {
                let bare = without_extension(&p);
                // White space before an extension: `/admin%20.json`.
                let bare_trimmed = bare.as_deref().and_then(without_trailing_space);
                for reading in [Some(p), bare, bare_trimmed].into_iter().flatten() {
                    if reading != path && !out.contains(&reading) {
                        out.push(reading);
                    }
                }
            }
        }
    }
    out
}

/// `/index.php/admin` → `/admin`: what follows the first segment that names
/// a script ([`is_script`]), when something follows it.
fn after_front_controller(path: &str) -> Option<String> {
    let mut at = 0;
    let mut in_script_dir = false;
    for segment in path.split('/') {
        let end = at + segment.len();
        if !segment.is_empty() && (in_script_dir || is_script(segment)) {
            let behind = path.get(end..)?;
            return (behind.len() > 1).then(|| behind.to_owned());
        }
        in_script_dir = is_script_dir(segment);
        at = end + 1;
    }
    None
}

/// Whether `path` ends in a script: its last segment names one, or sits
/// in a script directory (`/cgi-bin/report`): what a front controller's
/// query is read behind.
pub fn ends_in_script(path: &str) -> bool {
    let mut segments = path.rsplit('/');
    let last = segments.next().unwrap_or("");
    is_script(last) || (!last.is_empty() && segments.next().is_some_and(is_script_dir))
}

/// Whether a segment names a directory whose every file a stock server
/// runs as a script with `PATH_INFO`: `cgi-bin` (Apache's `ScriptAlias`,
/// IIS's CGI folder; its 8.3 short name too) and `htbin` (Python's
/// `CGIHTTPRequestHandler`), read as [`windows_name`] reads names.
fn is_script_dir(segment: &str) -> bool {
    // Both names open with `c` or `h`, written as itself or escaped: any
    // other segment is done without decoding it.
    if !matches!(
        segment.as_bytes().first(),
        Some(b'c' | b'C' | b'h' | b'H' | b'%')
    ) {
        return false;
    }
    let name = windows_name(segment);
    matches!(name.as_slice(), b"cgi-bin" | b"htbin")
        || name
            .strip_prefix(b"cgi-bi~")
            .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
}

/// A name as a server opens the file: every percent-escape decoded (IIS
/// and Apache decode reserved characters too), in lower case, without what
/// Windows drops at the end of a name: dots, spaces, `::$DATA` (the file
/// itself), `::$INDEX_ALLOCATION` and `:$I30:$INDEX_ALLOCATION` (the
/// directory itself), in any order.
fn windows_name(segment: &str) -> Vec<u8> {
    let mut name = crate::wire::percent_decode_path(segment.as_bytes());
    name.make_ascii_lowercase();
    let mut end = name.len();
    while let Some(kept) = name.get(..end) {
        let shorter = kept
            .strip_suffix(b".")
            .or_else(|| kept.strip_suffix(b" "))
            .or_else(|| kept.strip_suffix(b"::$data"))
            .or_else(|| kept.strip_suffix(b":$i30:$index_allocation"))
            .or_else(|| kept.strip_suffix(b"::$index_allocation"));
        match shorter {
            Some(rest) => end = rest.len(),
            None => break,
        }
    }
    name.truncate(end);
    name
}

/// The extensions of scripts a stock server runs with what follows them
/// as `PATH_INFO` (Apache's PHP handler: `.php`, `.phtml`, `.pht`, `.phar`
/// and numbered `.php`s; CGI and FastCGI: `.cgi`, `.fcgi`, `.pl`, `.py`;
/// mod_wsgi: `.wsgi`; ASP.NET: `.aspx`, `.ashx`, `.asmx`, `.svc`, `.rem`,
/// `.soap`, `.cshtml`, `.vbhtml`, `.xamlx`; classic ASP: `.asp`, `.asa`,
/// `.cer`, `.cdx`; ColdFusion and Lucee: `.cfm`, `.cfml`, `.cfc`; IIS's
/// ISAPI and CGI handlers: `.dll`, `.exe`; server-side includes: `.shtml`).
const SCRIPT_EXTENSIONS: [&str; 33] = [
    "php", "php3", "php4", "php5", "php7", "php8", "phtml", "pht", "phar", "cgi", "fcgi", "pl",
    "py", "wsgi", "aspx", "ashx", "asmx", "svc", "xamlx", "rem", "soap", "cshtml", "vbhtml", "asp",
    "asa", "cer", "cdx", "cfm", "cfml", "cfc", "dll", "exe", "shtml",
];

/// Whether a path segment names a script as a server reads it
/// ([`SCRIPT_EXTENSIONS`]): every percent-escape decoded (IIS and Apache
/// decode reserved characters too: `index.php%3A%3A%24DATA` is
/// `index.php::$DATA`), any case, and as Windows opens files: trailing dots
/// and spaces dropped, `::$DATA` the file itself, in any order
/// (`index.php.`, `index.php%20`, `index.php::$DATA.`). Any extension of
/// the name counts, not only the last: Apache's `AddHandler` runs
/// `x.php.jpg` as PHP.
pub fn is_script(segment: &str) -> bool {
    // Every extension opens with a dot, written as itself or escaped.
    if !segment.bytes().any(|b| b == b'.' || b == b'%') {
        return false;
    }
    windows_name(segment)
        .split(|b| *b == b'.')
        .skip(1)
        .any(|ext| {
            SCRIPT_EXTENSIONS
                .iter()
                .any(|known| ext == known.as_bytes())
        })
}

/// `path` without the white space at its end, percent-encoded or not:
/// every character an upstream's trim may drop (Unicode `White_Space`, as
/// Python's `strip`, JavaScript's `trim`, Java's `strip` and .NET's `Trim`
/// read it; every control up to U+0020, as Java's `trim`; U+180E and
/// U+FEFF); `None` when there is none.
fn without_trailing_space(path: &str) -> Option<String> {
    let mut end = path.len();
    while let Some((start, c)) = path.get(..end).and_then(last_char) {
        if !(c.is_whitespace() || c <= ' ' || matches!(c, '\u{180e}' | '\u{feff}')) {
            break;
        }
        end = start;
    }
    let kept = path.get(..end)?;
    (end < path.len() && !kept.is_empty()).then(|| kept.to_owned())
}

/// The last character of `text`, each of its bytes written as itself or as
/// a `%XX` escape, with where it starts; `None` when `text` does not end in
/// a whole UTF-8 character.
fn last_char(text: &str) -> Option<(usize, char)> {
    let b = text.as_bytes();
    let mut bytes = [0u8; 4];
    let mut n = 0;
    let mut at = b.len();
    while n < 4 && at > 0 {
        let escaped = at.checked_sub(3).and_then(|i| match b.get(i..at)? {
            [b'%', hi, lo] => Some((
                i,
                crate::wire::hex_value(*hi)? * 16 + crate::wire::hex_value(*lo)?,
            )),
            _ => None,
        });
        let (start, byte) = match escaped {
            Some(found) => found,
            None => (at - 1, *b.get(at - 1)?),
        };
        n += 1;
        *bytes.get_mut(4 - n)? = byte;
        at = start;
        if let Ok(s) = std::str::from_utf8(bytes.get(4 - n..)?) {
            let mut chars = s.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                return Some((at, c));
            }
        }
    }
    None
}

/// `path` with ASCII letters lower-cased, except the hex digits of
/// percent-escapes; `None` when nothing changes.
fn lower_outside_escapes(path: &str) -> Option<String> {
    if !path.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut escape = 0;
    let mut changed = false;
    let lowered: String = path
        .chars()
        .map(|c| {
            if escape > 0 {
                escape -= 1;
                return c;
            }
            if c == '%' {
                escape = 2;
                return c;
            }
            changed |= c.is_ascii_uppercase();
            c.to_ascii_lowercase()
        })
        .collect();
    changed.then_some(lowered)
}

/// `path` without the extension of its last segment (`/a/b.json` → `/a/b`);
/// `None` without one. A segment that starts with `.` (`/.well-known`) has
/// no extension.
fn without_extension(path: &str) -> Option<String> {
    let slash = path.rfind('/')?;
    let last = path.get(slash + 1..)?;
    // From the second character on, whatever its width in bytes.
    let (dot, _) = last.char_indices().skip(1).find(|(_, c)| *c == '.')?;
    path.get(..slash + 1 + dot).map(str::to_owned)
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
        assert_eq!(norm("/%c0%ae%c0%ae/admin"), Err(PathError::Overlong));
        assert_eq!(norm("/a/%C1%81"), Err(PathError::Overlong));
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
        assert_eq!(norm("/a/;x/b"), ok("/a/b"));
        assert_eq!(norm("/a/;x"), ok("/a/"));
        assert_eq!(norm("/;"), ok("/"));
        assert_eq!(norm("/a/..b;x/c"), ok("/a/..b/c"));
        assert_eq!(norm("/a/b.;x/c"), ok("/a/b./c"));
    }

    /// Path parameters are cut whole, escapes included: an escape inside
    /// one never reaches the path matched (docs/configuration.md, "Rules":
    /// path parameters).
    #[test]
    fn escapes_inside_path_parameters_are_cut_with_them() {
        assert_eq!(norm("/admin;x%41y/users"), ok("/admin/users"));
        assert_eq!(norm("/admin;%7E/users"), ok("/admin/users"));
        assert_eq!(norm("/a;%20"), ok("/a"));
    }

    #[test]
    fn refuses_dot_segments_hidden_behind_parameters() {
        // Tomcat resolves these, nginx and Go take them as names: the gate
        // picks neither reading.
        for raw in [
            "/public/..;/admin",
            "/admin/..;/healthz",
            "/a/.;x/b",
            "/a/.;",
            "/a/%2e%2e;x/b",
            "/a/%2E.;/b",
            "/a/..;x=1",
            "/..;/admin",
        ] {
            assert_eq!(norm(raw), Err(PathError::DotParameters), "{raw}");
        }
    }

    #[test]
    fn rejects_bad_escapes_inside_path_parameters() {
        assert_eq!(norm("/a;%2F"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/a;%zz"), Err(PathError::InvalidEscape));
        assert_eq!(norm("/a;x\\y"), Err(PathError::Backslash));
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
        "/a/b;.x",
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

    fn host(raw: &[u8]) -> Result<String, AuthorityError> {
        parse_authority(raw)
    }

    #[test]
    fn authority_gives_the_host_lower_cased_without_the_port() {
        assert_eq!(host(b"Example.COM:443"), Ok("example.com".to_owned()));
        assert_eq!(host(b"example.com"), Ok("example.com".to_owned()));
        assert_eq!(host(b"[::1]:8080"), Ok("[::1]".to_owned()));
        assert_eq!(host(b"[::1]"), Ok("[::1]".to_owned()));
        assert_eq!(host(b"[FE80::1]:80"), Ok("[fe80::1]".to_owned()));
        assert_eq!(host(b"127.0.0.1:80"), Ok("127.0.0.1".to_owned()));
        assert_eq!(
            host(b"my_host.internal:0"),
            Ok("my_host.internal".to_owned())
        );
        assert_eq!(host(b"a:65535"), Ok("a".to_owned()));
    }

    /// A host name is at most 253 bytes, each label at most 63
    /// (docs/security.md, "Rules: path, method, host": malformed hosts).
    #[test]
    fn authority_host_names_up_to_253_bytes_and_labels_up_to_63() {
        let label = |c: char, n: usize| c.to_string().repeat(n);
        let longest = format!(
            "{}.{}.{}.{}",
            label('a', 63),
            label('b', 63),
            label('c', 63),
            label('d', 61)
        );
        assert_eq!(longest.len(), 253);
        assert_eq!(
            host(format!("{longest}:443").as_bytes()),
            Ok(longest.clone())
        );
        let over = format!("{longest}e");
        assert_eq!(host(over.as_bytes()), Err(AuthorityError::BadHostName));
        assert_eq!(host(label('a', 63).as_bytes()), Ok(label('a', 63)));
        assert_eq!(
            host(label('a', 64).as_bytes()),
            Err(AuthorityError::BadHostName)
        );
    }

    #[test]
    fn authority_refuses_what_upstreams_would_serve_as_another_host() {
        // Each of these is served as admin.example.com by some upstream
        // (nginx drops a trailing dot, Express reads up to the first ':').
        for (raw, why) in [
            (&b"admin.example.com:80:"[..], AuthorityError::BadPort),
            (b"admin.example.com:x", AuthorityError::BadPort),
            (b"admin.example.com:", AuthorityError::BadPort),
            (b"admin.example.com:65536", AuthorityError::BadPort),
            (b"admin.example.com:000080", AuthorityError::BadPort),
            (b"admin.example.com:+80", AuthorityError::BadPort),
            (b"admin.example.com..", AuthorityError::BadHostName),
            (b"admin.example.com.", AuthorityError::BadHostName),
            (b"admin..example.com", AuthorityError::BadHostName),
            (b".admin.example.com", AuthorityError::BadHostName),
            (b"a@admin.example.com", AuthorityError::Userinfo),
            (b"@admin.example.com", AuthorityError::Userinfo),
            (b"", AuthorityError::Empty),
            (b"admin.example.com%2f", AuthorityError::BadHostName),
            (b"admin.example.com/x", AuthorityError::BadHostName),
            (b"admin example.com", AuthorityError::BadHostName),
            (b"adm\xc3\xafn.example.com", AuthorityError::BadHostName),
            (b"[::1", AuthorityError::BadIpv6),
            (b"[::1]x", AuthorityError::BadPort),
            (b"[::1]:", AuthorityError::BadPort),
            (b"[fe80::1%25eth0]", AuthorityError::BadIpv6),
            (b"[example.com]", AuthorityError::BadIpv6),
            (b"::1", AuthorityError::BadPort),
        ] {
            assert_eq!(host(raw), Err(why), "{:?}", String::from_utf8_lossy(raw));
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert_eq!(
            host(long_label.as_bytes()),
            Err(AuthorityError::BadHostName)
        );
        let long_name = vec!["a"; 130].join(".");
        assert_eq!(host(long_name.as_bytes()), Err(AuthorityError::BadHostName));
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
            "*.[::1]",
            "*.127.0.0.1",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// A configured host with a port never fits (ports are ignored when
    /// matching), so it is refused, bracketed IPv6 included; the error says
    /// why (docs/configuration.md, "Rules": hosts).
    #[test]
    fn a_host_pattern_with_a_port_is_refused_saying_so() {
        for bad in ["[::1]:8080", "*.example.com:443", "example.com:443"] {
            let e = HostPattern::parse(bad).unwrap_err();
            assert!(e.contains("port"), "{bad:?}: {e}");
        }
        assert_eq!(
            HostPattern::parse("a..b").unwrap_err(),
            r#""a..b" is not a host: is not a host name (empty, trailing-dot or invalid label)"#
        );
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
        let host = parse_authority(b"API.EXAMPLE.COM:8443").unwrap();
        assert!(p.fits(&host));
        assert!(!p.fits("other.example.com"));
        let v6 = HostPattern::parse("[::1]").unwrap();
        assert!(v6.fits(&parse_authority(b"[::1]:8080").unwrap()));
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

    /// A last segment that is one character and dots (`/orders/7.`) is read
    /// without them, as an extension is cut (docs/security.md, "Rules: path, method, host":
    /// extensions and Windows' trailing dots).
    #[test]
    fn a_short_last_segment_ending_in_dots_is_read_without_them() {
        assert!(path_readings("/orders/7.").contains(&"/orders/7".to_owned()));
        assert!(path_readings("/a..").contains(&"/a".to_owned()));
        assert!(path_readings("/orders/7").is_empty());
    }

    /// A front controller is read as what follows it only when something
    /// does: `/index.php/x` is also `/x`, while `/index.php/` is read as the
    /// script (without its slash or extension), never as `/` (docs/security.md, "Rules: path, method, host": front
    /// controllers).
    #[test]
    fn a_front_controller_with_nothing_behind_it_is_the_script() {
        assert!(path_readings("/index.php/x").contains(&"/x".to_owned()));
        let bare = path_readings("/index.php/");
        assert!(bare.contains(&"/index.php".to_owned()), "{bare:?}");
        assert!(!bare.contains(&"/".to_owned()), "{bare:?}");
    }

    /// A short path ending in an escaped byte that is no whole character
    /// (`/%80`) has no white space to trim: it is read as it is, and the
    /// scan back over its bytes stops at the start (docs/security.md,
    /// "Rules: path, method, host": trailing white space).
    #[test]
    fn a_path_ending_in_a_stray_escaped_byte_has_no_trimmed_reading() {
        for path in ["/%80", "/%C3", "/%E2%80", "/a%80"] {
            assert_eq!(path_readings(path), Vec::<String>::new(), "{path}");
        }
    }

    /// Letters after an escape are lower-cased like any other; only the
    /// escape's two hex digits keep their case (docs/security.md, "Rules: path, method, host":
    /// path case).
    #[test]
    fn letters_after_an_escape_are_lower_cased() {
        assert_eq!(path_readings("/a%3AB"), vec!["/a%3Ab".to_owned()]);
        assert_eq!(path_readings("/%7EAdmin/X"), vec!["/%7Eadmin/x".to_owned()]);
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
        let path = norm("/healthz/../internal/x").unwrap();
        assert_eq!(
            first_match(&rules, &path, "GET", "h").map(|r| &r.action),
            Some(&Action::Deny)
        );
    }

    // --- readings and selection ---

    #[test]
    fn path_readings_cover_case_trailing_slash_and_extension() {
        assert!(path_readings("/orders/7").is_empty());
        assert!(path_readings("/").is_empty());
        assert_eq!(path_readings("/ADMIN"), vec!["/admin".to_owned()]);
        assert_eq!(path_readings("/admin/"), vec!["/admin".to_owned()]);
        assert_eq!(path_readings("/admin.json"), vec!["/admin".to_owned()]);
        let all = path_readings("/Admin.JSON/");
        for want in [
            "/Admin.JSON",
            "/Admin",
            "/admin.json/",
            "/admin.json",
            "/admin",
        ] {
            assert!(all.contains(&want.to_owned()), "{want} in {all:?}");
        }
        // Escapes keep their upper-case hex; a leading dot is no extension.
        assert_eq!(path_readings("/a%3Ab"), Vec::<String>::new());
        assert_eq!(path_readings("/.well-known"), Vec::<String>::new());
        assert_eq!(path_readings("/A%3Ab"), vec!["/a%3Ab".to_owned()]);
        // A PHP front controller, encoded white space at the end.
        assert!(path_readings("/index.php/reports").contains(&"/reports".to_owned()));
        assert!(path_readings("/public/x.PHP/admin/users").contains(&"/admin/users".to_owned()));
        assert!(path_readings("/reports%0A").contains(&"/reports".to_owned()));
        assert!(path_readings("/reports%09%20").contains(&"/reports".to_owned()));
        assert!(path_readings("/index.php/admin%0D").contains(&"/admin".to_owned()));
        // Every white space an upstream's trim drops, escaped or raw, also
        // from under a trailing slash.
        for tail in [
            "%C2%85",
            "%E2%80%A8",
            "%E2%80%A9",
            "%E2%80%80",
            "%E2%80%8A",
            "%E2%80%AF",
            "%E2%81%9F",
            "%E1%9A%80",
            "%EF%BB%BF",
            "%1C",
            "%1F",
            "%E1%A0%8E",
            "\u{2028}",
            "\u{3000}",
            "%0A/",
            "%20%C2%A0/",
        ] {
            let path = format!("/admin{tail}");
            assert!(
                path_readings(&path).contains(&"/admin".to_owned()),
                "{path}"
            );
        }
        // Combined with an extension, Java's trim, Windows names.
        for (path, reading) in [
            ("/admin%20.json", "/admin"),
            ("/admin%E2%80%A8.json", "/admin"),
            ("/admin%01", "/admin"),
            ("/index.php./admin", "/admin"),
            ("/index.php%20/admin", "/admin"),
            ("/index.php::$DATA/admin", "/admin"),
            ("/x.phpx/y.php/admin", "/admin"),
            // Escaped as a server decodes them (red-team round 5).
            ("/index.php%3A%3A%24DATA/admin", "/admin"),
            ("/index.php%3a%3a%24data/admin", "/admin"),
            ("/index.php::%24DATA/admin", "/admin"),
            ("/index.php%3A%3A$DATA/admin", "/admin"),
            ("/index%2Ephp/admin", "/admin"),
            ("/index.php::$DATA%20./admin", "/admin"),
        ] {
            assert!(path_readings(path).contains(&reading.to_owned()), "{path}");
        }
        // Not white space: no reading without it.
        for tail in ["%E2%80%8B", "%41", "%C2", "%E2%80"] {
            let path = format!("/admin{tail}");
            assert!(
                !path_readings(&path).contains(&"/admin".to_owned()),
                "{path}"
            );
        }
        assert!(
            path_readings("/index.php").is_empty()
                || !path_readings("/index.php").contains(&"/".to_owned())
        );
    }

    fn rules_with_catch_all() -> Vec<Rule> {
        vec![
            Rule {
                matcher: Match {
                    path: PathMatch::Prefix("/admin".into()),
                    methods: None,
                    hosts: None,
                },
                action: require(&["admin"]),
            },
            Rule {
                matcher: Match {
                    path: PathMatch::Prefix("/orders".into()),
                    methods: Some(vec!["GET".into()]),
                    hosts: None,
                },
                action: require(&["orders:read"]),
            },
            Rule {
                matcher: Match {
                    path: PathMatch::Prefix("/orders".into()),
                    methods: None,
                    hosts: None,
                },
                action: require(&["orders:write"]),
            },
            Rule {
                matcher: Match {
                    path: PathMatch::Prefix("/".into()),
                    methods: None,
                    hosts: Some(vec![HostPattern::parse("admin.example.com").unwrap()]),
                },
                action: Action::Deny,
            },
            Rule {
                matcher: Match {
                    path: PathMatch::Prefix("/".into()),
                    methods: None,
                    hosts: None,
                },
                action: require(&[]),
            },
        ]
    }

    #[test]
    fn readings_under_rules_with_different_outcomes_are_ambiguous() {
        let rules = rules_with_catch_all();
        let pick = |paths: &[&str], methods: &[&str], hosts: &[&str]| {
            select(&rules, paths, methods, hosts).map(|r| r.map(|r| r.action.clone()))
        };
        // /ADMIN falls to the catch-all, /admin does not.
        let ambiguous = pick(&["/ADMIN", "/admin"], &["GET"], &["a"]);
        assert_eq!(ambiguous, Err(Ambiguous));
        // A method override that would change the rule.
        assert_eq!(
            pick(&["/orders/7"], &["GET", "DELETE"], &["a"]),
            Err(Ambiguous)
        );
        // A second host that a host rule treats differently.
        assert_eq!(
            pick(
                &["/x"],
                &["GET"],
                &["public.example.com", "admin.example.com"]
            ),
            Err(Ambiguous)
        );
        // Readings under rules with the same outcome are fine.
        assert_eq!(
            pick(
                &["/files/ReadMe.TXT", "/files/readme.txt", "/files/ReadMe"],
                &["GET"],
                &["a"]
            ),
            Ok(Some(require(&[])))
        );
        assert_eq!(
            pick(&["/orders/7"], &["GET"], &["a"]),
            Ok(Some(require(&["orders:read"])))
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

#[cfg(test)]
mod script_tests {
    use super::is_script;

    #[test]
    fn a_script_is_read_as_a_windows_server_reads_its_name() {
        for name in [
            "index.php",
            "INDEX.PHP",
            "index.php.",
            "index.php%20",
            "index.php%20.%20",
            "index.php::$DATA",
            "index.php%3A%3A%24DATA",
            "index.php::$data.",
            "index%2ephp",
        ] {
            assert!(is_script(name), "{name}");
        }
        // Other scripts a stock server runs with PATH_INFO (round 6).
        for name in [
            "index.phtml",
            "x.php5",
            "trac.cgi",
            "app.fcgi",
            "x.PL",
            "default.aspx%20",
        ] {
            assert!(is_script(name), "{name}");
        }
        // And those red-team round 7 found missing: older PHP packages,
        // ColdFusion, WCF, ASP.NET Web Pages, classic ASP, .NET remoting,
        // CGI in Python, and an extension before the last (AddHandler).
        for name in [
            "x.pht",
            "index.cfm",
            "x.cfc",
            "Service.svc",
            "x.cshtml",
            "x.vbhtml",
            "x.asp",
            "x.rem",
            "x.soap",
            "a.py",
            "x.php.jpg",
            "x.cgi.txt",
            "x.PHP.%6Apg",
            // Round 8: IIS's ISAPI and CGI handlers, Lucee, and more.
            "x.dll",
            "x.exe",
            "x.cfml",
            "x.xamlx",
            "x.shtml",
            "x.dll::$DATA",
        ] {
            assert!(is_script(name), "{name}");
        }
        // Script directories, as Windows names them too (round 8).
        for dir in [
            "cgi-bin",
            "CGI-BIN.",
            "cgi-bin%2e",
            "cgi-bin%20",
            "cgi-bin.%20.",
            "cgi-bin::$INDEX_ALLOCATION",
            "cgi-bin:$I30:$INDEX_ALLOCATION",
            "cgi-bin%3A%3A%24index_allocation",
            "CGI-BI~1",
            "htbin",
            "HTBIN.",
            "%63gi-bin",
            "%68tbin",
        ] {
            assert!(super::is_script_dir(dir), "{dir}");
        }
        for dir in [
            "cgi", "cgibin", "cgi-bin2", "cgi-bi~", "cgi-bi~x", "bin", "",
        ] {
            assert!(!super::is_script_dir(dir), "{dir}");
        }
        assert!(super::ends_in_script("/app/cgi-bin/report"));
        assert!(super::ends_in_script("/x.dll"));
        assert!(!super::ends_in_script("/cgi-bin/"));
        assert!(!super::ends_in_script("/app/report"));
        for name in [
            "index.php+",
            "index.phpx",
            "index.php9",
            "index.php%3B",
            "php",
            "index.php%2",
            "x.html",
            "x.phpx.jpg",
            "cgi-bin",
        ] {
            assert!(!is_script(name), "{name}");
        }
    }
}
