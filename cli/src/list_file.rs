//! A revocation list file, changed by one run at a time.
//!
//! `revoke` and `resign` change a list file by reading it, changing it and
//! writing it back; this module is that cycle, for both. A list path that is
//! a symbolic link stands for the file the link leads to: that file is
//! replaced, in its own directory, and the link stays a link (a web server
//! may serve either). An exclusive lock is taken before the read and held
//! until the new list has been renamed into place, so concurrent runs on one
//! list take turns and none loses another's entry. The lock is a file of its own beside the file
//! written (`FILE.lock`, left in place and always empty): the rename gives
//! the list a new inode, and a lock on the list itself would be a lock on the
//! old one, which the next run no longer opens.
//!
//! Within the cycle the list is read by the core's strict parser, entries
//! past `exp` + 300 s are dropped, the version is raised (the service refuses
//! a lower one: rollback protection), `generated_at` is set, and the result
//! is read back with the service's parser before the file is replaced
//! atomically, so a web server handing it out never serves half a list.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tokengate::keys::Key;
use tokengate::revocation::Document;

use crate::util;

/// How long an entry outlives its `exp`. The filter honours a token until
/// `exp` + `clock_skew_s`, so a publisher drops an entry only once `exp` +
/// 300 s has passed (docs/cli.md, "`revoke` and `resign`"); dropping it at `exp`
/// would let a revoked token in again while a skewed clock still accepts it.
pub const KEEP_PAST_EXP_S: u64 = 300;

/// One change to a list file.
pub struct Update<'a> {
    /// The list file as given on the command line (named in messages).
    pub path: &'a Path,
    /// The key that reads a signed list and signs the new one; without it
    /// the list is written as JSON (and a signed one cannot be read).
    pub key: Option<&'a Key>,
    /// The clock: `generated_at`, and which entries are past `exp` + 300 s.
    pub now: u64,
    /// Only an existing signed list will do (`resign`): a missing file or
    /// an unsigned list is refused instead of starting or rewriting one.
    pub signed_only: bool,
}

/// The list as written.
pub struct Written {
    pub document: Document,
    /// Entries dropped because their `exp` + 300 s had passed.
    pub dropped: usize,
    /// Whether it was written signed.
    pub signed: bool,
    name: String,
}

impl Written {
    /// `FILE: version V, N entries{note}, K expired dropped, signed HS256`:
    /// the line `revoke` and `resign` print.
    pub fn summary(&self, note: &str) -> String {
        let n = self.document.entries.len();
        let mut line = format!(
            "{}: version {}, {n} entr{}{note}",
            self.name,
            self.document.version,
            if n == 1 { "y" } else { "ies" }
        );
        if self.dropped > 0 {
            line.push_str(&format!(", {} expired dropped", self.dropped));
        }
        if self.signed {
            line.push_str(", signed HS256");
        }
        line
    }
}

impl Update<'_> {
    /// Locks the list, reads it (a missing file is a new, empty list at
    /// version 0, unless `signed_only`), drops entries past `exp` + 300 s,
    /// lets `change` edit what is left, raises the version, sets
    /// `generated_at`, and writes the list back atomically; the lock is
    /// released once the new file is in place. An error anywhere before the
    /// rename leaves the file as it was.
    pub fn apply<T>(&self, change: impl FnOnce(&mut Document) -> T) -> Result<(Written, T)> {
        let name = self.path.display().to_string();
        let target = resolve(self.path)?;
        let missing = matches!(
            fs::symlink_metadata(&target),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        );
        if self.signed_only && missing {
            // Refused before the lock file is made: nothing is left behind.
            return Err(self.missing());
        }
        let _lock = lock_beside(&target)?;

        let mut document = self.read(&target)?.unwrap_or(Document {
            version: 0,
            generated_at: None,
            entries: Vec::new(),
        });
        let before = document.entries.len();
        document.drop_expired(self.now.saturating_sub(KEEP_PAST_EXP_S));
        let dropped = before - document.entries.len();
        let changed = change(&mut document);
        document.version = document
            .version
            .checked_add(1)
            .ok_or_else(|| anyhow!("{name}: the version cannot rise past {}", document.version))?;
        document.generated_at = Some(self.now);

        let mut text = match self.key {
            Some(key) => document.to_signed(key),
            None => document.to_json(),
        };
        // Read back with the service's parser before anything is replaced.
        let reread = match self.key {
            Some(key) => Document::parse_signed(text.as_bytes(), key),
            None => Document::parse_json(text.as_bytes()),
        };
        if reread.as_ref() != Ok(&document) {
            bail!("{name}: the written list would not read back as written; nothing was changed");
        }
        text.push('\n');
        util::write_atomically(&target, text.as_bytes())?;
        let written = Written {
            document,
            dropped,
            signed: self.key.is_some(),
            name,
        };
        Ok((written, changed))
    }

    /// The list in `target`, or `None` when there is no such file.
    fn read(&self, target: &Path) -> Result<Option<Document>> {
        let name = self.path.display();
        let body = match std::fs::read(target) {
            Ok(body) => body,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.signed_only => {
                return Err(self.missing())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(anyhow!(e).context(format!("cannot read {name}"))),
        };
        if body.trim_ascii().is_empty() {
            bail!("--list: {name} is empty; remove it to start a new list");
        }
        let signed = !body.trim_ascii_start().starts_with(b"{");
        if self.signed_only && !signed {
            bail!(
                "--list: {name} is an unsigned list: re-signing it makes no sense (an unsigned list's age \
                 is the time since the service last fetched it, not its generated_at); to sign it, add an \
                 entry with tokengate revoke --sign-key-env VAR"
            );
        }
        let parsed = match (signed, self.key) {
            (true, Some(key)) => Document::parse_signed(&body, key),
            (true, None) => {
                bail!("--list: {name} is a signed list: give --sign-key-env VAR to read and re-sign it")
            }
            (false, _) => Document::parse_json(&body),
        };
        parsed.map(Some).map_err(|e| anyhow!("--list: {name}: {e}"))
    }

    /// The refusal of a missing file when `signed_only`.
    fn missing(&self) -> anyhow::Error {
        anyhow!(
            "--list: {} does not exist: there is no signed list to re-sign; start one with tokengate revoke --sign-key-env VAR",
            self.path.display()
        )
    }
}

/// The most symbolic links followed from a list path, as Linux's ELOOP.
const MAX_LINKS: usize = 40;

/// The file a list path stands for: the path itself, or, when it is a
/// symbolic link, the file its chain of links ends at. A link to a file that
/// does not exist yet stands for that file, which the write creates, when the
/// file's directory exists; when it does not, or the chain does not end (a
/// loop), the path is refused: writing a file in place of the link would
/// leave the served list unchanged.
fn resolve(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        let meta = match fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            // No file at the path itself: a new list (its directory is the
            // write's to find).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && current == path => {
                return Ok(current)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let dir = match current.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                if dir.is_dir() {
                    return Ok(current);
                }
                bail!(
                    "--list: {} is a symbolic link to {}, whose directory does not exist",
                    path.display(),
                    current.display()
                );
            }
            Err(e) => return Err(anyhow!(e).context(format!("cannot read {}", current.display()))),
        };
        if !meta.file_type().is_symlink() {
            return Ok(current);
        }
        let link = fs::read_link(&current)
            .with_context(|| format!("cannot read the symbolic link {}", current.display()))?;
        // Relative to the link's own directory; an absolute target replaces
        // the whole path.
        current = current
            .parent()
            .map_or_else(|| link.clone(), |dir| dir.join(&link));
    }
    bail!(
        "--list: {} is a chain of more than {MAX_LINKS} symbolic links (a loop?)",
        path.display()
    )
}

/// Takes the exclusive lock on `TARGET.lock`, creating it when missing; it
/// is released when the returned file is closed (also when the process
/// dies, so a crashed run leaves no stale lock).
fn lock_beside(target: &Path) -> Result<File> {
    let Some(file_name) = target.file_name() else {
        bail!("--list: {} names no file", target.display());
    };
    let mut lock_name = file_name.to_os_string();
    lock_name.push(".lock");
    let lock_path: PathBuf = target.with_file_name(lock_name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .with_context(|| format!("cannot open the lock file {}", lock_path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    Ok(file)
}
