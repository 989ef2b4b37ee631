//! Arbitrary bytes, and bodies built to be expensive, as the refresh
//! endpoint's `application/x-www-form-urlencoded` body for
//! `refresh::parse_form`.
//!
//! Properties:
//! * it agrees with an independent model of the form rules
//!   (`tokengate_fuzz::form_model`): the same pairs, each name and value
//!   percent-decoded once (`+` a space), or the same refusal — too large,
//!   too many parameters, bad encoding, a repeated name — read left to
//!   right;
//! * what is accepted holds at most 16 pairs with unique names, from a body
//!   of at most 8192 bytes;
//! * written back as a form (spaces as `+` or as `%20`), the pairs parse to
//!   the same pairs (or the written form is too large);
//! * the work is linear in the body, counted, not timed: the allocations a
//!   parse makes are at most 64 and their bytes at most twice the body plus
//!   4 KiB; a body over 8192 bytes is refused without allocating; and a
//!   parse that stops at the 17th parameter does exactly the same work
//!   (allocations and bytes) with whatever follows that parameter cut off or
//!   replaced: nothing after it is decoded. A structured pass builds the
//!   expensive shapes on purpose: many parameters, long near-identical
//!   names, `%` escapes everywhere, runs of `&`, bodies of exactly 8192 and
//!   8193 bytes.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tokengate::refresh::{parse_form, FormError};
use tokengate_fuzz::{form_encode, form_model, FORM_MAX_BYTES, FORM_MAX_PARAMS};

/// The system allocator, counting allocations (and bytes asked for) while
/// `COUNTING` is set. libFuzzer runs the target on one thread.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

fn count(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to `System` unchanged; counting only
// touches atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type Parsed = Result<Vec<(String, String)>, FormError>;

/// `parse_form(body)` and the work it did: (allocations, bytes).
fn measured(body: &[u8]) -> (Parsed, (usize, usize)) {
    ALLOCS.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let parsed = parse_form(body);
    COUNTING.store(false, Ordering::Relaxed);
    let work = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    (parsed, work)
}

/// At most this many allocations per parse: two per pair (name and value),
/// a few for the list of pairs.
const MAX_ALLOCS: usize = 64;

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Ok(shape) = Shape::arbitrary(&mut Unstructured::new(data)) {
        check(&shape.build());
    }
});

fn show(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() > 200 {
        let cut: String = text.chars().take(200).collect();
        format!("{cut:?}… ({} bytes)", body.len())
    } else {
        format!("{text:?}")
    }
}

fn check(body: &[u8]) {
    let (got, (allocs, bytes)) = measured(body);
    let model = form_model(body);
    assert_eq!(
        got,
        model,
        "parse_form disagrees with the model on {}",
        show(body)
    );

    // Work: bounded by the body's length, nothing at all past the limit.
    if body.len() > FORM_MAX_BYTES {
        assert_eq!(
            (allocs, bytes),
            (0, 0),
            "a {}-byte body was read before it was refused",
            body.len()
        );
    }
    assert!(
        allocs <= MAX_ALLOCS && bytes <= 2 * body.len() + 4096,
        "{allocs} allocations of {bytes} bytes for a {}-byte body {}",
        body.len(),
        show(body)
    );
    if got == Err(FormError::TooManyParameters) {
        stops_at_the_17th(body, (allocs, bytes));
    }

    let Ok(pairs) = got else { return };
    assert!(
        body.len() <= FORM_MAX_BYTES,
        "accepted a {}-byte body",
        body.len()
    );
    assert!(
        pairs.len() <= FORM_MAX_PARAMS,
        "accepted {} pairs",
        pairs.len()
    );
    for (i, (name, _)) in pairs.iter().enumerate() {
        assert!(
            !pairs[..i].iter().any(|(n, _)| n == name),
            "accepted {name:?} twice"
        );
    }
    for plus in [true, false] {
        let again = form_encode(&pairs, plus);
        let parsed = parse_form(again.as_bytes());
        if again.len() > FORM_MAX_BYTES {
            assert_eq!(parsed, Err(FormError::TooLarge), "{again:?}");
        } else {
            assert_eq!(
                parsed.as_ref(),
                Ok(&pairs),
                "{again:?} (written back from {}) parses to other pairs",
                show(body)
            );
        }
    }
}

/// A parse refused for its 17th parameter reads no further: cut just after
/// that parameter, or with anything else after it, the body gives the same
/// refusal for the same work.
fn stops_at_the_17th(body: &[u8], work: (usize, usize)) {
    // Where the 17th non-empty pair ends (its '&', or the body's end).
    let mut seen = 0;
    let mut start = 0;
    let mut end = body.len();
    for (i, b) in body.iter().copied().enumerate().chain([(body.len(), b'&')]) {
        if b == b'&' {
            if i > start {
                seen += 1;
                if seen == FORM_MAX_PARAMS + 1 {
                    end = i;
                    break;
                }
            }
            start = i + 1;
        }
    }
    assert_eq!(
        seen,
        FORM_MAX_PARAMS + 1,
        "refused for too many parameters with {seen}"
    );
    let cut = &body[..end];
    let mut junk = cut.to_vec();
    junk.extend_from_slice(b"&%zz&=&a=1&a=2&\xff%%");
    let room = FORM_MAX_BYTES.saturating_sub(junk.len());
    junk.extend(std::iter::repeat_n(b'%', room.min(512)));
    let mut others = vec![("cut off", cut)];
    if junk.len() <= FORM_MAX_BYTES {
        others.push(("with junk after it", &junk[..]));
    }
    for (name, other) in others {
        let (parsed, other_work) = measured(other);
        assert_eq!(
            parsed,
            Err(FormError::TooManyParameters),
            "{name}: another answer"
        );
        assert_eq!(
            other_work,
            work,
            "{name}: other work (allocations, bytes) for the same 17 parameters of {}",
            show(body)
        );
    }
}

/// A body built to cost: `params` pairs, each a name and a value made of
/// repeated pieces, `&` runs between them, padded to the size limit.
#[derive(Arbitrary, Debug)]
struct Shape {
    params: u8,
    /// Names share this stem; `same_name` makes them all equal.
    stem: Vec<Piece>,
    stem_repeat: u8,
    same_name: bool,
    value: Vec<Piece>,
    value_repeat: u16,
    extra_ampersands: u8,
    pad: Pad,
}

#[derive(Arbitrary, Debug)]
enum Piece {
    /// `%XX` with this byte.
    Escape(u8),
    /// `%` with these two bytes, maybe not hex.
    RawEscape(u8, u8),
    Plus,
    Equals,
    Byte(u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Pad {
    None,
    /// To exactly 8192 bytes with `%41` (then `a`).
    ToLimit,
    /// To 8193 bytes.
    PastLimit,
    /// To 8192 bytes of `&`.
    Ampersands,
}

impl Piece {
    fn push(&self, out: &mut Vec<u8>) {
        match self {
            Piece::Escape(b) => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
            Piece::RawEscape(a, b) => out.extend_from_slice(&[b'%', *a, *b]),
            Piece::Plus => out.push(b'+'),
            Piece::Equals => out.push(b'='),
            Piece::Byte(b) => out.push(*b),
            Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
        }
    }
}

impl Shape {
    fn build(&self) -> Vec<u8> {
        let limit = FORM_MAX_BYTES;
        let mut stem = Vec::new();
        for _ in 0..usize::from(self.stem_repeat % 64).max(1) {
            for p in &self.stem {
                p.push(&mut stem);
            }
        }
        let mut value = Vec::new();
        'fill: for _ in 0..usize::from(self.value_repeat % 2048).max(1) {
            for p in &self.value {
                p.push(&mut value);
                if value.len() > limit {
                    break 'fill;
                }
            }
        }
        let mut out = Vec::new();
        for i in 0..usize::from(self.params % 40) {
            if out.len() > 2 * limit {
                break;
            }
            if i > 0 {
                out.push(b'&');
                out.extend(std::iter::repeat_n(
                    b'&',
                    usize::from(self.extra_ampersands % 8),
                ));
            }
            out.extend_from_slice(&stem);
            if !self.same_name {
                out.extend_from_slice(i.to_string().as_bytes());
            }
            out.push(b'=');
            out.extend_from_slice(&value);
        }
        let target = match self.pad {
            Pad::None => return out,
            Pad::ToLimit | Pad::Ampersands => limit,
            Pad::PastLimit => limit + 1,
        };
        if let Pad::Ampersands = self.pad {
            out.resize(out.len().max(target), b'&');
        } else {
            while out.len() + 3 <= target {
                out.extend_from_slice(b"%41");
            }
            out.resize(out.len().max(target), b'a');
        }
        out
    }
}
