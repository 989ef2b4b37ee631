//! What the gate is handed: the request, the connection facts it may ask
//! for, and the revocation list in force.

use crate::refusal::Reason;
use crate::revocation::Snapshot;

/// The parts of a request the gate reads.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The raw `:path`, query included.
    pub path: &'a [u8],
    pub authority: &'a [u8],
    /// The request's headers as Envoy holds them (names lower-case), every
    /// line of a repeated header on its own; pseudo-headers are ignored.
    pub headers: &'a [(String, Vec<u8>)],
}

impl<'a> Request<'a> {
    /// A request from a whole header map as the host hands it over, with
    /// `:method`, `:path` and `:authority` picked out. A missing or
    /// non-UTF-8 method reads as empty (no rule names it).
    pub fn from_map(headers: &'a [(String, Vec<u8>)]) -> Request<'a> {
        let pseudo = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map_or(&[][..], |(_, v)| v.as_slice())
        };
        Request {
            method: std::str::from_utf8(pseudo(":method")).unwrap_or(""),
            path: pseudo(":path"),
            authority: pseudo(":authority"),
            headers,
        }
    }

    /// Every line of header `name`.
    pub(super) fn lines<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The one line of header `name`; several lines are a bad request.
    pub(super) fn single(&self, name: &str) -> Result<Option<&'a [u8]>, Reason> {
        let mut lines = self.lines(name);
        match (lines.next(), lines.next()) {
            (_, Some(_)) => Err(Reason::BadRequest),
            (line, None) => Ok(line),
        }
    }
}

/// Facts about the connection that cost a host call each; the gate asks for
/// them only when a check needs them.
pub trait Connection {
    /// Whether the downstream connection uses TLS.
    fn is_tls(&self) -> bool;
    /// SHA-256 of the client certificate (DER), when mutual TLS presented one.
    fn peer_certificate_sha256(&self) -> Option<[u8; 32]>;
}

/// A connection with fixed facts (tests and the CLI).
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedConnection {
    pub tls: bool,
    pub peer_certificate_sha256: Option<[u8; 32]>,
}

impl Connection for FixedConnection {
    fn is_tls(&self) -> bool {
        self.tls
    }
    fn peer_certificate_sha256(&self) -> Option<[u8; 32]> {
        self.peer_certificate_sha256
    }
}

/// The published revocation list as a worker sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Revocations<'a> {
    /// The list in force, if one was ever received.
    pub list: Option<&'a Snapshot>,
    /// Unix seconds from which the list's age counts: its signed
    /// `generated_at` for a signed list, the service's last successful fetch
    /// (200 or 304) for an unsigned one.
    pub fresh_at: Option<u64>,
    /// A list was received but the latest could not be read: the list is
    /// unavailable whatever `on_unavailable` says (a fault never
    /// un-revokes).
    pub lost: bool,
}
