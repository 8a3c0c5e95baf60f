//! Lua 5.4 patterns with a work meter.
//!
//! `string.find`, `match`, `gmatch` and `gsub` run in C in stock Lua: one
//! call on attacker text (a 1 MB chat message, a pattern such as
//! `(.-)(.-)(.-)x`) can run for minutes without returning to the VM, where
//! the instruction budget is checked. This is a port of `lstrlib.c`'s
//! matcher (same syntax, same results, same error messages) in which every
//! step — an attempt at a pattern item, a character tried by a repetition,
//! a start position — is counted through a [`Meter`], which the sandbox
//! charges to the hook's instruction budget: a runaway match stops like a
//! runaway loop.

/// Most captures in a pattern (`LUA_MAXCAPTURES`).
pub const MAX_CAPTURES: usize = 32;
/// Deepest recursion of the matcher (`MAXCCALLS`).
const MAX_DEPTH: usize = 200;
/// Steps counted locally before the meter is asked.
const BATCH: u64 = 256;

/// Why a pattern call failed: a Lua error, or the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// A malformed pattern, a bad capture (Lua's own messages).
    Lua(String),
    /// The work meter said stop.
    Budget,
}

impl PatternError {
    fn lua(msg: &str) -> Self {
        Self::Lua(msg.to_owned())
    }
}

/// Where the work goes: `spend(n)` is asked every few hundred steps and
/// returns false to stop the match.
pub trait Meter {
    /// Account `steps` more; false when the budget is spent.
    fn spend(&mut self, steps: u64) -> bool;
}

impl<F: FnMut(u64) -> bool> Meter for F {
    fn spend(&mut self, steps: u64) -> bool {
        self(steps)
    }
}

/// One capture of a successful match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// A substring: `start..end` of the subject.
    Text(usize, usize),
    /// A position capture `()`: the 1-based position.
    Position(usize),
}

#[derive(Debug, Clone, Copy)]
enum CapLen {
    Unfinished,
    Position,
    Len(usize),
}

/// The state of one match attempt (`MatchState`).
pub struct Matcher<'a, M: Meter> {
    src: &'a [u8],
    pat: &'a [u8],
    depth: usize,
    level: usize,
    caps: [(usize, CapLen); MAX_CAPTURES],
    meter: M,
    pending: u64,
}

type R<T> = Result<T, PatternError>;

fn match_class(c: u8, cl: u8) -> bool {
    let res = match cl.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        b's' => matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        // Deprecated in the manual, still in lstrlib.c.
        b'z' => c == 0,
        _ => return cl == c,
    };
    if cl.is_ascii_uppercase() { !res } else { res }
}

impl<'a, M: Meter> Matcher<'a, M> {
    /// A matcher of `pat` (without a leading `^` anchor) over `src`.
    pub fn new(src: &'a [u8], pat: &'a [u8], meter: M) -> Self {
        Self {
            src,
            pat,
            depth: MAX_DEPTH,
            level: 0,
            caps: [(0, CapLen::Unfinished); MAX_CAPTURES],
            meter,
            pending: 0,
        }
    }

    /// Count `n` steps; ask the meter every [`BATCH`].
    fn tick(&mut self, n: u64) -> R<()> {
        self.pending += n;
        if self.pending >= BATCH {
            let spent = std::mem::take(&mut self.pending);
            if !self.meter.spend(spent) {
                return Err(PatternError::Budget);
            }
        }
        Ok(())
    }

    /// Hand the last uncounted steps to the meter.
    pub fn flush(&mut self) -> R<()> {
        let spent = std::mem::take(&mut self.pending);
        if spent > 0 && !self.meter.spend(spent) {
            return Err(PatternError::Budget);
        }
        Ok(())
    }

    /// The pattern byte at `i`, NUL past the end (as in C).
    fn p(&self, i: usize) -> u8 {
        self.pat.get(i).copied().unwrap_or(0)
    }

    /// The subject byte at `i`, NUL past the end (as in C).
    fn s(&self, i: usize) -> u8 {
        self.src.get(i).copied().unwrap_or(0)
    }

    fn class_end(&self, mut p: usize) -> R<usize> {
        let c = self.p(p);
        p += 1;
        match c {
            b'%' => {
                if p >= self.pat.len() {
                    return Err(PatternError::lua("malformed pattern (ends with '%')"));
                }
                Ok(p + 1)
            }
            b'[' => {
                if self.p(p) == b'^' {
                    p += 1;
                }
                loop {
                    if p >= self.pat.len() {
                        return Err(PatternError::lua("malformed pattern (missing ']')"));
                    }
                    let c = self.p(p);
                    p += 1;
                    if c == b'%' && p < self.pat.len() {
                        p += 1;
                    }
                    if self.p(p) == b']' {
                        break;
                    }
                }
                Ok(p + 1)
            }
            _ => Ok(p),
        }
    }

    /// `[set]` from `p` (at `[`) to `ec` (at `]`).
    fn match_bracket_class(&self, c: u8, mut p: usize, ec: usize) -> bool {
        let mut sig = true;
        if self.p(p + 1) == b'^' {
            sig = false;
            p += 1;
        }
        loop {
            p += 1;
            if p >= ec {
                break;
            }
            if self.p(p) == b'%' {
                p += 1;
                if match_class(c, self.p(p)) {
                    return sig;
                }
            } else if self.p(p + 1) == b'-' && p + 2 < ec {
                p += 2;
                if self.p(p - 2) <= c && c <= self.p(p) {
                    return sig;
                }
            } else if self.p(p) == c {
                return sig;
            }
        }
        !sig
    }

    fn single_match(&self, s: usize, p: usize, ep: usize) -> bool {
        if s >= self.src.len() {
            return false;
        }
        let c = self.s(s);
        match self.p(p) {
            b'.' => true,
            b'%' => match_class(c, self.p(p + 1)),
            b'[' => self.match_bracket_class(c, p, ep - 1),
            pc => pc == c,
        }
    }

    fn match_balance(&mut self, s: usize, p: usize) -> R<Option<usize>> {
        if p + 1 >= self.pat.len() {
            return Err(PatternError::lua(
                "malformed pattern (missing arguments to '%b')",
            ));
        }
        if s >= self.src.len() || self.s(s) != self.p(p) {
            return Ok(None);
        }
        let (b, e) = (self.p(p), self.p(p + 1));
        let mut cont = 1usize;
        let mut i = s + 1;
        while i < self.src.len() {
            self.tick(1)?;
            let c = self.s(i);
            if c == e {
                cont -= 1;
                if cont == 0 {
                    return Ok(Some(i + 1));
                }
            } else if c == b {
                cont += 1;
            }
            i += 1;
        }
        Ok(None)
    }

    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> R<Option<usize>> {
        let mut i = 0usize;
        while self.single_match(s + i, p, ep) {
            self.tick(1)?;
            i += 1;
        }
        loop {
            if let Some(r) = self.do_match(s + i, ep + 1)? {
                return Ok(Some(r));
            }
            if i == 0 {
                return Ok(None);
            }
            i -= 1;
        }
    }

    fn min_expand(&mut self, mut s: usize, p: usize, ep: usize) -> R<Option<usize>> {
        loop {
            if let Some(r) = self.do_match(s, ep + 1)? {
                return Ok(Some(r));
            }
            if self.single_match(s, p, ep) {
                s += 1;
            } else {
                return Ok(None);
            }
        }
    }

    fn start_capture(&mut self, s: usize, p: usize, what: CapLen) -> R<Option<usize>> {
        let level = self.level;
        let Some(slot) = self.caps.get_mut(level) else {
            return Err(PatternError::lua("too many captures"));
        };
        *slot = (s, what);
        self.level = level + 1;
        let res = self.do_match(s, p)?;
        if res.is_none() {
            self.level -= 1;
        }
        Ok(res)
    }

    fn capture_to_close(&self) -> R<usize> {
        (0..self.level)
            .rev()
            .find(|&l| matches!(self.caps.get(l), Some((_, CapLen::Unfinished))))
            .ok_or_else(|| PatternError::lua("invalid pattern capture"))
    }

    fn end_capture(&mut self, s: usize, p: usize) -> R<Option<usize>> {
        let l = self.capture_to_close()?;
        if let Some(cap) = self.caps.get_mut(l) {
            cap.1 = CapLen::Len(s - cap.0);
        }
        let res = self.do_match(s, p)?;
        if res.is_none()
            && let Some(cap) = self.caps.get_mut(l)
        {
            cap.1 = CapLen::Unfinished;
        }
        Ok(res)
    }

    fn check_capture(&self, l: u8) -> R<usize> {
        let l = usize::from(l.wrapping_sub(b'1'));
        match self.caps.get(l) {
            Some((_, len)) if l < self.level && !matches!(len, CapLen::Unfinished) => Ok(l),
            _ => Err(PatternError::Lua(format!(
                "invalid capture index %{}",
                l.wrapping_add(1)
            ))),
        }
    }

    fn match_capture(&mut self, s: usize, l: u8) -> R<Option<usize>> {
        let l = self.check_capture(l)?;
        let (init, len) = match self.caps.get(l) {
            Some(&(init, CapLen::Len(len))) => (init, len),
            // A position capture's length is -2 in C: as a size, larger
            // than any rest of the subject, so `%n` of `()` never matches.
            _ => return Ok(None),
        };
        self.tick(1 + len as u64 / 64)?;
        let want = self.src.get(init..init + len);
        let here = self.src.get(s..s + len);
        Ok(match (want, here) {
            (Some(a), Some(b)) if a == b => Some(s + len),
            _ => None,
        })
    }

    /// Match the pattern from `p` at subject position `s` (`match`).
    pub fn do_match(&mut self, s: usize, p: usize) -> R<Option<usize>> {
        if self.depth == 0 {
            return Err(PatternError::lua("pattern too complex"));
        }
        self.depth -= 1;
        let res = self.match_body(s, p);
        self.depth += 1;
        res
    }

    fn match_body(&mut self, mut s: usize, mut p: usize) -> R<Option<usize>> {
        loop {
            self.tick(1)?;
            if p >= self.pat.len() {
                return Ok(Some(s));
            }
            match self.p(p) {
                b'(' => {
                    return if self.p(p + 1) == b')' {
                        self.start_capture(s, p + 2, CapLen::Position)
                    } else {
                        self.start_capture(s, p + 1, CapLen::Unfinished)
                    };
                }
                b')' => return self.end_capture(s, p + 1),
                b'$' if p + 1 == self.pat.len() => {
                    return Ok((s == self.src.len()).then_some(s));
                }
                b'%' if self.p(p + 1) == b'b' => match self.match_balance(s, p + 2)? {
                    Some(e) => {
                        s = e;
                        p += 4;
                        continue;
                    }
                    None => return Ok(None),
                },
                b'%' if self.p(p + 1) == b'f' => {
                    p += 2;
                    if self.p(p) != b'[' {
                        return Err(PatternError::lua("missing '[' after '%f' in pattern"));
                    }
                    let ep = self.class_end(p)?;
                    let previous = if s == 0 { 0 } else { self.s(s - 1) };
                    if !self.match_bracket_class(previous, p, ep - 1)
                        && self.match_bracket_class(self.s(s), p, ep - 1)
                    {
                        p = ep;
                        continue;
                    }
                    return Ok(None);
                }
                b'%' if self.p(p + 1).is_ascii_digit() => {
                    match self.match_capture(s, self.p(p + 1))? {
                        Some(e) => {
                            s = e;
                            p += 2;
                            continue;
                        }
                        None => return Ok(None),
                    }
                }
                _ => {
                    let ep = self.class_end(p)?;
                    let next = self.p(ep);
                    if !self.single_match(s, p, ep) {
                        if matches!(next, b'*' | b'?' | b'-') {
                            p = ep + 1;
                            continue;
                        }
                        return Ok(None);
                    }
                    match next {
                        b'?' => match self.do_match(s + 1, ep + 1)? {
                            Some(r) => return Ok(Some(r)),
                            None => {
                                p = ep + 1;
                                continue;
                            }
                        },
                        b'+' => return self.max_expand(s + 1, p, ep),
                        b'*' => return self.max_expand(s, p, ep),
                        b'-' => return self.min_expand(s, p, ep),
                        _ => {
                            s += 1;
                            p = ep;
                            continue;
                        }
                    }
                }
            }
        }
    }

    /// Forget the captures of the previous attempt (`reprepstate`).
    pub fn reset(&mut self) {
        self.level = 0;
        self.depth = MAX_DEPTH;
    }

    /// Capture `i` of the match `s..e` (the whole match when the pattern
    /// has no captures and `i` is 0: `get_onecapture`).
    pub fn capture(&self, i: usize, s: usize, e: usize) -> R<Capture> {
        if i >= self.level {
            if i != 0 {
                return Err(PatternError::Lua(format!(
                    "invalid capture index %{}",
                    i + 1
                )));
            }
            return Ok(Capture::Text(s, e));
        }
        match self.caps.get(i) {
            Some(&(init, CapLen::Len(len))) => Ok(Capture::Text(init, init + len)),
            Some(&(init, CapLen::Position)) => Ok(Capture::Position(init + 1)),
            _ => Err(PatternError::lua("unfinished capture")),
        }
    }

    /// The captures of the match `s..e`: each capture, or the whole match
    /// if there are none and `whole` (`push_captures`).
    pub fn captures(&self, s: usize, e: usize, whole: bool) -> R<Vec<Capture>> {
        let n = if self.level == 0 && whole {
            1
        } else {
            self.level
        };
        (0..n).map(|i| self.capture(i, s, e)).collect()
    }
}

/// Whether `p` has no pattern specials (then `find` searches it plainly).
pub fn no_specials(p: &[u8]) -> bool {
    !p.iter().any(|c| b"^$*+?.([%-".contains(c))
}

/// `lmemfind` with a meter: the first `needle` in `hay` at or after 0.
pub fn find_plain<M: Meter>(hay: &[u8], needle: &[u8], meter: &mut M) -> R<Option<usize>> {
    if needle.is_empty() {
        return Ok(Some(0));
    }
    let Some((&first, _)) = needle.split_first() else {
        return Ok(Some(0));
    };
    if needle.len() > hay.len() {
        return Ok(None);
    }
    let last_start = hay.len() - needle.len();
    let per_try = 1 + needle.len() as u64 / 64;
    let mut pending = 0u64;
    let mut i = 0usize;
    while i <= last_start {
        let Some(off) = hay
            .get(i..=last_start)
            .and_then(|h| h.iter().position(|&c| c == first))
        else {
            break;
        };
        pending += off as u64 / 64 + per_try;
        if pending >= BATCH && !meter.spend(std::mem::take(&mut pending)) {
            return Err(PatternError::Budget);
        }
        let at = i + off;
        if hay.get(at..at + needle.len()) == Some(needle) {
            let _ = meter.spend(pending);
            return Ok(Some(at));
        }
        i = at + 1;
    }
    if pending > 0 && !meter.spend(pending) {
        return Err(PatternError::Budget);
    }
    Ok(None)
}

/// `posrelatI`: a 1-based start position from Lua's `init` argument.
pub fn start_position(init: i64, len: usize) -> usize {
    if init > 0 {
        usize::try_from(init).unwrap_or(usize::MAX)
    } else if init == 0 || init.unsigned_abs() > len as u64 {
        1
    } else {
        len - init.unsigned_abs() as usize + 1
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn unlimited(_: u64) -> bool {
        true
    }

    /// `string.match(s, p)` as texts (positions as numbers).
    fn lua_match(s: &str, p: &str) -> Option<Vec<String>> {
        let (anchor, pat) = match p.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, p),
        };
        let mut m = Matcher::new(s.as_bytes(), pat.as_bytes(), unlimited);
        let mut at = 0;
        loop {
            m.reset();
            if let Some(e) = m.do_match(at, 0).unwrap() {
                return Some(
                    m.captures(at, e, true)
                        .unwrap()
                        .into_iter()
                        .map(|c| match c {
                            Capture::Text(a, b) => s[a..b].to_owned(),
                            Capture::Position(n) => n.to_string(),
                        })
                        .collect(),
                );
            }
            if anchor || at >= s.len() {
                return None;
            }
            at += 1;
        }
    }

    #[test]
    fn matches_as_lua_does() {
        let cases: &[(&str, &str, Option<&[&str]>)] = &[
            ("hello world", "o w", Some(&["o w"])),
            ("hello world", "(%w+) (%w+)", Some(&["hello", "world"])),
            (
                "key = value",
                "^(%w+)%s*=%s*(%w+)$",
                Some(&["key", "value"]),
            ),
            ("  x", "^x", None),
            ("[[nested]]", "%b[]", Some(&["[[nested]]"])),
            ("THE (quick) fox", "%f[%a]%a+", Some(&["THE"])),
            ("abcabc", "(a)(b)c%1%2", Some(&["a", "b"])),
            ("aaab", "a-b", Some(&["aaab"])),
            ("aaa", "a-", Some(&[""])),
            (
                "date 2024-05-06",
                "(%d+)-(%d+)-(%d+)",
                Some(&["2024", "05", "06"]),
            ),
            ("hello", "()ll()", Some(&["3", "5"])),
            ("x]y", "[]]", Some(&["]"])),
            ("a.b", "%.", Some(&["."])),
            ("abc", "[^a]+", Some(&["bc"])),
            ("a-z", "[a%-z]+", Some(&["a-z"])),
            ("colour", "colou?r", Some(&["colour"])),
            ("color", "colou?r", Some(&["color"])),
            ("end", "d$", Some(&["d"])),
            ("$x", "$x", Some(&["$x"])),
        ];
        for (s, p, want) in cases {
            let got = lua_match(s, p);
            let want = want.map(|w| w.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>());
            assert_eq!(got, want, "{s:?} ~ {p:?}");
        }
    }

    #[test]
    fn malformed_patterns_say_why() {
        for (p, msg) in [
            ("%", "malformed pattern (ends with '%')"),
            ("[a", "malformed pattern (missing ']')"),
            ("(a", "unfinished capture"),
            ("a)", "invalid pattern capture"),
            ("%1", "invalid capture index %1"),
            ("%b", "malformed pattern (missing arguments to '%b')"),
            ("%fa", "missing '[' after '%f' in pattern"),
        ] {
            let mut m = Matcher::new(b"a", p.as_bytes(), unlimited);
            let err = m
                .do_match(0, 0)
                .and_then(|e| e.map_or(Ok(vec![]), |e| m.captures(0, e, true)))
                .unwrap_err();
            assert_eq!(err, PatternError::Lua(msg.to_owned()), "{p}");
        }
        let deep = "(".repeat(40) + &")".repeat(40);
        let mut m = Matcher::new(b"a", deep.as_bytes(), unlimited);
        assert_eq!(
            m.do_match(0, 0).unwrap_err(),
            PatternError::lua("too many captures")
        );
    }

    #[test]
    fn a_pathological_match_stops_at_the_meter() {
        let subject = "a".repeat(1 << 20);
        let mut spent = 0u64;
        let meter = |n: u64| {
            spent += n;
            spent < 1_000_000
        };
        let mut m = Matcher::new(subject.as_bytes(), b"(.-)(.-)(.-)x", meter);
        let t = std::time::Instant::now();
        assert_eq!(m.do_match(0, 0), Err(PatternError::Budget));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn plain_search_finds_and_is_metered() {
        let mut n = 0u64;
        let mut meter = |k: u64| {
            n += k;
            true
        };
        assert_eq!(find_plain(b"hello world", b"o w", &mut meter), Ok(Some(4)));
        assert_eq!(find_plain(b"hello", b"", &mut meter), Ok(Some(0)));
        assert_eq!(find_plain(b"hello", b"xyz", &mut meter), Ok(None));
        let hay = "a".repeat(100_000);
        let needle = "a".repeat(50_000) + "b";
        let mut stop = |_: u64| false;
        assert_eq!(
            find_plain(hay.as_bytes(), needle.as_bytes(), &mut stop),
            Err(PatternError::Budget)
        );
        assert_eq!(start_position(1, 5), 1);
        assert_eq!(start_position(-2, 5), 4);
        assert_eq!(start_position(-9, 5), 1);
        assert_eq!(start_position(0, 5), 1);
    }
}
