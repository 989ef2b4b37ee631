//! Arbitrary bytes as a request `:path` for `policy::normalize_path`.
//!
//! Properties:
//! * it agrees, result and error alike, with an independent segment-stack
//!   model of the normalization rules (`tokengate_fuzz::reference_normalize`,
//!   rules in `fuzz/README.md`), and so does the gate's fast path
//!   `normalize_path_cow`, which borrows only a path that normalization
//!   leaves unchanged; so a segment that is `.` or `..` only once its `;`
//!   parameters are cut (`..;`, `%2e%2e;x`, `.;`) is refused
//!   (`DotParameters`), never resolved nor kept;
//! * a normalized path starts with `/`, holds no `//`, no `.` or `..`
//!   segment (it never climbs out of the root), no `?`, `#` or backslash,
//!   and is no longer than its input;
//! * normalization is idempotent: normalize(normalize(x)) == normalize(x),
//!   and the result passes `check_config_path` (a rule could name it);
//! * segment-aware prefixes: `/admin` fits exactly `/admin`, `/admin/` and
//!   what lies below `/admin/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::borrow::Cow;

use tokengate::policy::{check_config_path, normalize_path, normalize_path_cow, PathMatch};
use tokengate_fuzz::{normalized_shape, reference_normalize};

fuzz_target!(|data: &[u8]| {
    let got = normalize_path(data);
    let model = reference_normalize(data);
    assert_eq!(
        got,
        model,
        "normalize_path disagrees with the model on {:?}",
        String::from_utf8_lossy(data)
    );
    // The gate's fast path (borrow a path that is already normal) gives
    // the same answer, and borrows only when nothing changes.
    let cut = data
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(data.len());
    match normalize_path_cow(data) {
        Ok(Cow::Borrowed(b)) => {
            assert_eq!(Ok(b), got.as_deref(), "the fast path disagrees");
            assert_eq!(
                b.as_bytes(),
                &data[..cut],
                "the fast path borrowed another text"
            );
        }
        other => assert_eq!(other.map(Cow::into_owned), got, "the fast path disagrees"),
    }
    let Ok(normalized) = got else { return };

    if let Err(e) = normalized_shape(cut, &normalized) {
        panic!("{e} (input {:?})", String::from_utf8_lossy(data));
    }
    assert_eq!(
        normalize_path(normalized.as_bytes()).as_ref(),
        Ok(&normalized),
        "not idempotent"
    );
    assert_eq!(
        check_config_path(&normalized),
        Ok(()),
        "a normalized path is not in normalized form"
    );

    let admin = PathMatch::Prefix("/admin".into());
    let expected = normalized == "/admin" || normalized.starts_with("/admin/");
    assert_eq!(
        admin.fits(&normalized),
        expected,
        "prefix /admin on {normalized:?}"
    );
    assert!(
        PathMatch::Prefix("/".into()).fits(&normalized),
        "prefix / does not fit {normalized:?}"
    );
    assert!(
        PathMatch::Exact(normalized.clone()).fits(&normalized),
        "exact {normalized:?} does not fit itself"
    );
});
