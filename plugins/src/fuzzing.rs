//! Entry points of the fuzz targets (`plugins/fuzz`), public so that the
//! ordinary test suite can replay their regressions on stable.

use crate::policy::pattern::{Matcher, find_plain};

/// Steps one input may take (the hook's budget is 1,000,000).
const STEPS: u64 = 1_000_000;

/// The Lua pattern matcher on arbitrary bytes: the first byte is the
/// pattern's length (mod 64), then the pattern, then the subject. Every
/// start position is tried as `string.find` does, captures read as
/// `gsub` does, and a plain search run: it must end within the step budget
/// with a match, no match, a Lua error or the budget — never a panic.
pub fn pattern(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (pat, subject) = rest.split_at((usize::from(n) % 64).min(rest.len()));
    let mut spent = 0u64;
    let mut m = Matcher::new(subject, pat, |k: u64| {
        spent += k;
        spent <= STEPS
    });
    for at in 0..=subject.len() {
        m.reset();
        match m.do_match(at, 0) {
            Ok(Some(e)) => {
                assert!(e >= at && e <= subject.len(), "match end {e} out of {at}..");
                if let Ok(caps) = m.captures(at, e, true) {
                    for c in caps {
                        if let crate::policy::pattern::Capture::Text(a, b) = c {
                            assert!(a <= b && b <= subject.len(), "capture {a}..{b}");
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
    let mut steps = 0u64;
    let _ = find_plain(subject, pat, &mut |k: u64| {
        steps += k;
        steps <= STEPS
    });
}
