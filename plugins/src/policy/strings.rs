//! The sandbox's bounded string functions: `string.find`, `match`,
//! `gmatch` and `gsub` on the metered matcher ([`super::pattern`]), whose
//! work is charged to the hook's instruction budget, and `string.rep`
//! refusing results over [`MAX_REP_BYTES`]. Installed over the standard
//! ones, so `s:find(…)` method calls get them too.

use std::sync::{Arc, Mutex};

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::pattern::{self, Capture, Matcher, PatternError};

/// Largest `string.rep` result (the VM's memory limit is 16 MiB by
/// default; a policy has no use for megabytes of repetition).
pub const MAX_REP_BYTES: usize = 1 << 20;
/// Largest `string.gsub` result (a replacement can multiply its subject).
pub const MAX_GSUB_BYTES: usize = 8 << 20;

/// What the host gives: `spend(steps)` charges the budget (false: spent),
/// the error a spent budget raises, and the error a result over the size
/// limit raises (the sandbox makes it an out-of-memory: fatal, as the
/// memory limit would have been).
#[derive(Clone)]
pub(super) struct Budget {
    pub spend: Arc<dyn Fn(u64) -> bool + Send + Sync>,
    pub exceeded: fn() -> mlua::Error,
    pub too_large: Arc<dyn Fn(String) -> mlua::Error + Send + Sync>,
}

impl Budget {
    fn meter(&self) -> impl FnMut(u64) -> bool + use<> {
        let spend = Arc::clone(&self.spend);
        move |n| spend(n)
    }

    fn error(&self, e: PatternError) -> mlua::Error {
        match e {
            PatternError::Budget => (self.exceeded)(),
            PatternError::Lua(m) => mlua::Error::RuntimeError(m),
        }
    }
}

/// The bytes of argument `n` of `fname` (strings and numbers, as
/// `luaL_checklstring`).
fn bytes_arg(lua: &Lua, v: Option<&Value>, n: usize, fname: &str) -> mlua::Result<Vec<u8>> {
    let v = v.cloned().unwrap_or(Value::Nil);
    let type_name = v.type_name();
    match lua.coerce_string(v)? {
        Some(s) => Ok(s.as_bytes().to_vec()),
        None => Err(mlua::Error::RuntimeError(format!(
            "bad argument #{n} to '{fname}' (string expected, got {type_name})"
        ))),
    }
}

/// An optional integer argument.
fn int_arg(lua: &Lua, v: Option<&Value>, n: usize, fname: &str, default: i64) -> mlua::Result<i64> {
    match v {
        None | Some(Value::Nil) => Ok(default),
        Some(Value::Integer(i)) => Ok(*i),
        Some(other) => match lua.coerce_number(other.clone())? {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
            _ => Err(mlua::Error::RuntimeError(format!(
                "bad argument #{n} to '{fname}' (number has no integer representation)"
            ))),
        },
    }
}

fn capture_value(lua: &Lua, src: &[u8], c: Capture) -> mlua::Result<Value> {
    Ok(match c {
        Capture::Text(a, b) => Value::String(lua.create_string(src.get(a..b).unwrap_or(&[]))?),
        Capture::Position(n) => Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
    })
}

fn capture_values(lua: &Lua, src: &[u8], caps: Vec<Capture>) -> mlua::Result<Vec<Value>> {
    caps.into_iter()
        .map(|c| capture_value(lua, src, c))
        .collect()
}

fn position(n: usize) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `string.find` (`find`) and `string.match` (`!find`).
fn find_aux(lua: &Lua, args: &MultiValue, find: bool, budget: &Budget) -> mlua::Result<MultiValue> {
    let fname = if find { "find" } else { "match" };
    let s = bytes_arg(lua, args.front(), 1, fname)?;
    let p = bytes_arg(lua, args.get(1), 2, fname)?;
    let init = pattern::start_position(int_arg(lua, args.get(2), 3, fname, 1)?, s.len()) - 1;
    let fail = || MultiValue::from_vec(vec![Value::Nil]);
    if init > s.len() {
        return Ok(fail());
    }
    let plain = args
        .get(3)
        .is_some_and(|v| !matches!(v, Value::Nil | Value::Boolean(false)));
    if find && (plain || pattern::no_specials(&p)) {
        let mut meter = budget.meter();
        let hay = s.get(init..).unwrap_or(&[]);
        return match pattern::find_plain(hay, &p, &mut meter).map_err(|e| budget.error(e))? {
            Some(at) => Ok(MultiValue::from_vec(vec![
                position(init + at + 1),
                position(init + at + p.len()),
            ])),
            None => Ok(fail()),
        };
    }
    let (anchor, pat) = match p.split_first() {
        Some((b'^', rest)) => (true, rest),
        _ => (false, p.as_slice()),
    };
    let mut m = Matcher::new(&s, pat, budget.meter());
    let mut at = init;
    loop {
        m.reset();
        if let Some(e) = m.do_match(at, 0).map_err(|e| budget.error(e))? {
            m.flush().map_err(|e| budget.error(e))?;
            let mut out = Vec::new();
            if find {
                out.push(position(at + 1));
                out.push(position(e));
                out.extend(capture_values(
                    lua,
                    &s,
                    m.captures(at, e, false).map_err(|e| budget.error(e))?,
                )?);
            } else {
                out.extend(capture_values(
                    lua,
                    &s,
                    m.captures(at, e, true).map_err(|e| budget.error(e))?,
                )?);
            }
            return Ok(MultiValue::from_vec(out));
        }
        if anchor || at >= s.len() {
            break;
        }
        at += 1;
    }
    m.flush().map_err(|e| budget.error(e))?;
    Ok(fail())
}

/// Where a `gmatch` iterator is.
struct Gmatch {
    src: Vec<u8>,
    pat: Vec<u8>,
    at: usize,
    last: Option<usize>,
}

fn gmatch(lua: &Lua, args: &MultiValue, budget: &Budget) -> mlua::Result<Function> {
    let src = bytes_arg(lua, args.front(), 1, "gmatch")?;
    let pat = bytes_arg(lua, args.get(1), 2, "gmatch")?;
    let mut init =
        pattern::start_position(int_arg(lua, args.get(2), 3, "gmatch", 1)?, src.len()) - 1;
    if init > src.len() {
        init = src.len() + 1;
    }
    let state = Mutex::new(Gmatch {
        src,
        pat,
        at: init,
        last: None,
    });
    let budget = budget.clone();
    lua.create_function(move |lua, _: MultiValue| {
        let mut g = state
            .lock()
            .map_err(|_| mlua::Error::RuntimeError("gmatch iterator poisoned".into()))?;
        let Gmatch { src, pat, at, last } = &mut *g;
        let mut m = Matcher::new(src, pat, budget.meter());
        let mut s = *at;
        while s <= src.len() {
            m.reset();
            if let Some(e) = m.do_match(s, 0).map_err(|e| budget.error(e))?
                && Some(e) != *last
            {
                m.flush().map_err(|e| budget.error(e))?;
                let caps = m.captures(s, e, true).map_err(|e| budget.error(e))?;
                let values = capture_values(lua, src, caps)?;
                *at = e;
                *last = Some(e);
                return Ok(MultiValue::from_vec(values));
            }
            s += 1;
        }
        m.flush().map_err(|e| budget.error(e))?;
        *at = s;
        Ok(MultiValue::from_vec(vec![Value::Nil]))
    })
}

/// `string.gsub`.
fn gsub(lua: &Lua, args: &MultiValue, budget: &Budget) -> mlua::Result<MultiValue> {
    let src = bytes_arg(lua, args.front(), 1, "gsub")?;
    let p = bytes_arg(lua, args.get(1), 2, "gsub")?;
    let repl = args.get(2).cloned().unwrap_or(Value::Nil);
    if !matches!(
        repl,
        Value::String(_)
            | Value::Integer(_)
            | Value::Number(_)
            | Value::Table(_)
            | Value::Function(_)
    ) {
        return Err(mlua::Error::RuntimeError(format!(
            "bad argument #3 to 'gsub' (string/function/table expected, got {})",
            repl.type_name()
        )));
    }
    let repl_bytes = match &repl {
        Value::Table(_) | Value::Function(_) => None,
        other => Some(bytes_arg(lua, Some(other), 3, "gsub")?),
    };
    let default_max = i64::try_from(src.len())
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    let max_s = int_arg(lua, args.get(3), 4, "gsub", default_max)?;
    let (anchor, pat) = match p.split_first() {
        Some((b'^', rest)) => (true, rest),
        _ => (false, p.as_slice()),
    };
    let mut m = Matcher::new(&src, pat, budget.meter());
    let mut out: Vec<u8> = Vec::new();
    let mut s = 0usize;
    let mut last: Option<usize> = None;
    let mut n: i64 = 0;
    while n < max_s {
        m.reset();
        let e = m.do_match(s, 0).map_err(|e| budget.error(e))?;
        match e {
            Some(e) if Some(e) != last => {
                n += 1;
                add_value(
                    lua,
                    &m,
                    &src,
                    s,
                    e,
                    &repl,
                    repl_bytes.as_deref(),
                    &mut out,
                    budget,
                )?;
                s = e;
                last = Some(e);
            }
            _ if s < src.len() => {
                out.extend(src.get(s..=s).unwrap_or(&[]));
                s += 1;
            }
            _ => break,
        }
        if out.len() > MAX_GSUB_BYTES {
            return Err((budget.too_large)(format!(
                "string.gsub: a result over the limit of {MAX_GSUB_BYTES} bytes"
            )));
        }
        if anchor {
            break;
        }
    }
    m.flush().map_err(|e| budget.error(e))?;
    out.extend(src.get(s..).unwrap_or(&[]));
    Ok(MultiValue::from_vec(vec![
        Value::String(lua.create_string(&out)?),
        Value::Integer(n),
    ]))
}

/// One replacement (`add_value`/`add_s`).
#[allow(clippy::too_many_arguments)]
fn add_value<M: pattern::Meter>(
    lua: &Lua,
    m: &Matcher<'_, M>,
    src: &[u8],
    s: usize,
    e: usize,
    repl: &Value,
    repl_bytes: Option<&[u8]>,
    out: &mut Vec<u8>,
    budget: &Budget,
) -> mlua::Result<()> {
    let whole = src.get(s..e).unwrap_or(&[]);
    if let Some(r) = repl_bytes {
        let mut i = 0;
        while let Some(&c) = r.get(i) {
            i += 1;
            if c != b'%' {
                out.push(c);
                continue;
            }
            let d = r.get(i).copied();
            i += 1;
            match d {
                Some(b'%') => out.push(b'%'),
                Some(b'0') => out.extend_from_slice(whole),
                Some(d @ b'1'..=b'9') => {
                    let cap = m
                        .capture(usize::from(d - b'1'), s, e)
                        .map_err(|e| budget.error(e))?;
                    match cap {
                        Capture::Text(a, b) => out.extend(src.get(a..b).unwrap_or(&[])),
                        Capture::Position(p) => out.extend(p.to_string().bytes()),
                    }
                }
                _ => {
                    return Err(mlua::Error::RuntimeError(
                        "invalid use of '%' in replacement string".into(),
                    ));
                }
            }
        }
        return Ok(());
    }
    let value = match repl {
        Value::Table(t) => {
            let key = capture_value(lua, src, m.capture(0, s, e).map_err(|e| budget.error(e))?)?;
            t.get::<Value>(key)?
        }
        Value::Function(f) => {
            let caps = m.captures(s, e, true).map_err(|e| budget.error(e))?;
            f.call::<Value>(MultiValue::from_vec(capture_values(lua, src, caps)?))?
        }
        _ => Value::Nil,
    };
    match value {
        Value::Nil | Value::Boolean(false) => out.extend_from_slice(whole),
        v @ (Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
            if let Some(text) = lua.coerce_string(v)? {
                out.extend_from_slice(&text.as_bytes());
            }
        }
        other => {
            return Err(mlua::Error::RuntimeError(format!(
                "invalid replacement value (a {})",
                other.type_name()
            )));
        }
    }
    Ok(())
}

/// Install the bounded functions into `string` (`rep` wraps the original).
pub(super) fn install(lua: &Lua, string: &Table, budget: Budget) -> mlua::Result<()> {
    let b = budget.clone();
    string.raw_set(
        "find",
        lua.create_function(move |lua, args: MultiValue| find_aux(lua, &args, true, &b))?,
    )?;
    let b = budget.clone();
    string.raw_set(
        "match",
        lua.create_function(move |lua, args: MultiValue| find_aux(lua, &args, false, &b))?,
    )?;
    let b = budget.clone();
    string.raw_set(
        "gmatch",
        lua.create_function(move |lua, args: MultiValue| gmatch(lua, &args, &b))?,
    )?;
    let b = budget.clone();
    string.raw_set(
        "gsub",
        lua.create_function(move |lua, args: MultiValue| gsub(lua, &args, &b))?,
    )?;
    let rep: Function = string.raw_get("rep")?;
    let b = budget;
    string.raw_set(
        "rep",
        lua.create_function(move |lua, args: MultiValue| {
            let s = bytes_arg(lua, args.front(), 1, "rep")?;
            if args.get(1).is_none_or(|v| matches!(v, Value::Nil)) {
                return Err(mlua::Error::RuntimeError(
                    "bad argument #2 to 'rep' (number expected, got no value)".into(),
                ));
            }
            let n = int_arg(lua, args.get(1), 2, "rep", 0)?;
            let sep = match args.get(2) {
                None | Some(Value::Nil) => Vec::new(),
                v => bytes_arg(lua, v, 3, "rep")?,
            };
            let n = u64::try_from(n.max(0)).unwrap_or(0);
            let total = (s.len() as u64)
                .saturating_mul(n)
                .saturating_add((sep.len() as u64).saturating_mul(n.saturating_sub(1)));
            if total > MAX_REP_BYTES as u64 {
                return Err((b.too_large)(format!(
                    "string.rep: a result of {total} bytes is over the limit of {MAX_REP_BYTES}"
                )));
            }
            if !(b.spend)(total / 64 + 1) {
                return Err((b.exceeded)());
            }
            rep.call::<MultiValue>(args)
        })?,
    )?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A VM whose `string` has the bounded functions, the originals kept
    /// as `orig.*`, and a budget of `limit` steps.
    fn vm(limit: u64) -> Lua {
        let lua = Lua::new();
        let string: Table = lua.globals().get("string").unwrap();
        let orig = lua.create_table().unwrap();
        for f in ["find", "match", "gmatch", "gsub", "rep"] {
            orig.set(f, string.get::<Function>(f).unwrap()).unwrap();
        }
        lua.globals().set("orig", orig).unwrap();
        let used = Arc::new(std::sync::atomic::AtomicU64::new(0));
        install(
            &lua,
            &string,
            Budget {
                spend: Arc::new(move |n| {
                    used.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n <= limit
                }),
                exceeded: || mlua::Error::RuntimeError("budget exceeded".into()),
                too_large: Arc::new(mlua::Error::RuntimeError),
            },
        )
        .unwrap();
        lua
    }

    #[test]
    fn the_bounded_functions_answer_as_lua_does() {
        let lua = vm(u64::MAX);
        lua.load(
            r##"
            local function pack(...) return { n = select("#", ...), ... } end
            local function same(a, b, what)
              assert(a.n == b.n, what .. ": " .. a.n .. " results, not " .. b.n)
              for i = 1, a.n do
                assert(a[i] == b[i], what .. ": result " .. i .. " is " .. tostring(a[i]) .. ", not " .. tostring(b[i]))
              end
            end
            local subjects = { "", "hello world", "  key = value  ", "a,b,,c", "THE (quick) [fox]",
              "2024-05-06 12:30", "aaa", "x%y", "été", "one two  three\tfour\n" }
            local patterns = { "", "o", "o w", "%w+", "^%s*(.-)%s*$", "(%w+)%s*=%s*(%w+)", "[^,]*", "()",
              "%b()", "%f[%w]%w+", "(a)(a)", "a-", "a*", "a+b?", ".-", "%d+", "(%d+)-(%d+)", "^h", "d$",
              "[%a_][%w_]*", "%%", "x%%y", ".", "()a()", "[a-c]+", "%s+" }
            for _, s in ipairs(subjects) do
              for _, p in ipairs(patterns) do
                local what = string.format("%q ~ %q", s, p)
                same(pack(string.find(s, p)), pack(orig.find(s, p)), "find " .. what)
                same(pack(string.find(s, p, 3)), pack(orig.find(s, p, 3)), "find@3 " .. what)
                same(pack(string.find(s, p, -4)), pack(orig.find(s, p, -4)), "find@-4 " .. what)
                same(pack(string.find(s, p, 1, true)), pack(orig.find(s, p, 1, true)), "plain " .. what)
                same(pack(string.match(s, p)), pack(orig.match(s, p)), "match " .. what)
                same(pack(string.gsub(s, p, "<%0>")), pack(orig.gsub(s, p, "<%0>")), "gsub " .. what)
                same(pack(string.gsub(s, p, "#", 2)), pack(orig.gsub(s, p, "#", 2)), "gsub/2 " .. what)
                same(pack(string.gsub(s, p, { hello = "HI", a = false })),
                     pack(orig.gsub(s, p, { hello = "HI", a = false })), "gsub{} " .. what)
                same(pack(string.gsub(s, p, function(x, y) return y and (x .. "|" .. y) or nil end)),
                     pack(orig.gsub(s, p, function(x, y) return y and (x .. "|" .. y) or nil end)), "gsub() " .. what)
                local a, b = {}, {}
                for x, y in string.gmatch(s, p) do a[#a + 1] = tostring(x) .. "/" .. tostring(y) end
                for x, y in orig.gmatch(s, p) do b[#b + 1] = tostring(x) .. "/" .. tostring(y) end
                assert(table.concat(a, ";") == table.concat(b, ";"), "gmatch " .. what)
              end
            end
            assert(("abc"):find("b") == 2, "method calls")
            assert(string.rep("ab", 3, "-") == "ab-ab-ab")
            assert(string.rep("x", 0) == "" and string.rep("x", -1) == "")
            assert(string.gsub("abc", "(b)", "%1%1") == "abbc")
            assert(string.gsub("abc", "b", 7) == "a7c")
            for _, bad in ipairs({ "%", "[a", "(a", "a)", "%1", "%b", "%fa" }) do
              local ok1, e1 = pcall(orig.match, "abc", bad)
              local ok2, e2 = pcall(string.match, "abc", bad)
              assert(not ok1 and not ok2, bad)
              assert(tostring(e2):find(tostring(e1), 1, true), bad .. ": " .. tostring(e2) .. " vs " .. tostring(e1))
            end
            assert(not pcall(string.gsub, "abc", "b", "%2"))
            assert(not pcall(string.gsub, "abc", "b", "%z"))
            assert(not pcall(string.gsub, "abc", "b", {b = {}}))
            "##,
        )
        .exec()
        .unwrap();
    }

    /// Random patterns (from pattern syntax, often malformed) and subjects:
    /// the bounded functions answer exactly as the C ones, errors included,
    /// and never panic.
    #[test]
    fn random_patterns_answer_as_lua_does() {
        let lua = vm(u64::MAX);
        let compare: Function = lua
            .load(
                r##"
                local function show(ok, ...)
                  local t = { ok and "ok" or "err" }
                  for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
                  return table.concat(t, "|")
                end
                return function(s, p, init, f)
                  local mine, theirs
                  if f == 0 then
                    mine, theirs = show(pcall(string.find, s, p, init)), show(pcall(orig.find, s, p, init))
                  elseif f == 1 then
                    mine, theirs = show(pcall(string.match, s, p, init)), show(pcall(orig.match, s, p, init))
                  elseif f == 2 then
                    mine, theirs = show(pcall(string.gsub, s, p, "<%0>")), show(pcall(orig.gsub, s, p, "<%0>"))
                  elseif f == 4 then
                    mine, theirs = show(pcall(string.gsub, s, p, "%1-", 3)), show(pcall(orig.gsub, s, p, "%1-", 3))
                  elseif f == 5 then
                    mine, theirs = show(pcall(string.find, s, p, init, true)), show(pcall(orig.find, s, p, init, true))
                  else
                    local function all(g)
                      return pcall(function()
                        local t = {}
                        for a, b in g(s, p, init) do t[#t + 1] = tostring(a) .. "," .. tostring(b) end
                        return table.concat(t, ";")
                      end)
                    end
                    mine, theirs = show(all(string.gmatch)), show(all(orig.gmatch))
                  end
                  if mine ~= theirs then
                    -- The C message carries no position; ours may add a traceback.
                    -- Compare the messages without positions or tracebacks.
                    local function core(x)
                      local m = orig.match(x, "^err|(.*)")
                      if not m then return nil end
                      m = orig.match(m, "^(.-)\n") or m
                      m = orig.gsub(m, "^runtime error: ", "")
                      return (orig.gsub(m, "^.-:%d+:%d*:? ?", ""))
                    end
                    local m1, m2 = core(mine), core(theirs)
                    if m1 and m2 and m1 == m2 then return nil end
                    return mine .. "  vs  " .. theirs
                  end
                  return nil
                end
                "##,
            )
            .eval()
            .unwrap();
        let alphabet: &[&str] = &[
            "a", "b", "%", "(", ")", "[", "]", "^", "$", "*", "+", "-", "?", ".", "%a", "%d", "%s",
            "%w", "%b()", "%f[%w]", "%1", "()", "[^a]", "[a-c]", "x", "[]]", "[%a-]", "%%", "%.",
            "%-", "%b", "%f", "%2", "[^]", "%A", "%z", "\0",
        ];
        let subjects: &[&str] = &[
            "", "a", "ab", "aab(b)a", "(a)", "abcabc", " a b ", "xa1", "((a))b", "a%b", "[x]-y",
            "aaaa", "b\0a",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for case in 0..150_000 {
            let len = 1 + next(8);
            let p: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
            let s = subjects[next(subjects.len())];
            let init = [1i64, 2, -1, 0, 5][next(5)];
            let f = next(6);
            let diff: Option<String> = compare.call((s, p.as_str(), init, f)).unwrap();
            assert!(
                diff.is_none(),
                "case {case}: f{f} {s:?} ~ {p:?} @{init}: {}",
                diff.unwrap()
            );
        }
    }

    #[test]
    fn repetition_over_a_mebibyte_is_refused() {
        let lua = vm(u64::MAX);
        let err = lua
            .load(r#"return string.rep("x", 1e9)"#)
            .eval::<Value>()
            .unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err}");
        let err = lua
            .load(r#"return string.rep("x", 1000, string.rep("y", 2000))"#)
            .eval::<Value>()
            .unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err}");
        let n: usize = lua
            .load(r#"return #string.rep("x", 1024 * 1024)"#)
            .eval()
            .unwrap();
        assert_eq!(n, MAX_REP_BYTES);
    }

    #[test]
    fn a_runaway_match_spends_the_budget_and_stops() {
        let lua = vm(1_000_000);
        let t = std::time::Instant::now();
        let err = lua
            .load(r#"local s = string.rep("a", 1000000); return s:find("(.-)(.-)(.-)x")"#)
            .eval::<Value>()
            .unwrap_err();
        assert!(err.to_string().contains("budget exceeded"), "{err}");
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}
