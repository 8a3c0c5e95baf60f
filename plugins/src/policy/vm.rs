//! One sandboxed Lua 5.4 VM holding a loaded policy.
//!
//! Sandbox: only the `string` (without `dump`), `table`, `math`, `utf8` and a
//! three-function `os` libraries; no `io`, `debug`, `package`, `coroutine`,
//! `load`/`loadfile`/`dofile`, `collectgarbage`, `rawset`, `print`, `warn`;
//! `require` serves only the policy folder's modules (read at load time, text
//! only); `pcall`/`xpcall` cannot swallow budget, memory or sandbox errors;
//! `setmetatable` refuses `__gc`. A memory limit per VM and an instruction
//! count hook (plus a wall-clock safety net) bound every call; the pattern
//! functions (`find`, `match`, `gmatch`, `gsub`) are metered replacements
//! charging the same budget, and `string.rep` is capped
//! ([`super::strings`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use mlua::chunk::ChunkMode;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use super::convert::{self, ReadOnly};
use super::{Ctx, Hook, ModerationAction, PolicyConfig, PolicyError, Returned};

/// Largest module file accepted.
const MAX_MODULE_BYTES: u64 = 1024 * 1024;
/// Most module files in a policy folder.
const MAX_MODULES: usize = 256;
/// Longest module name.
const MAX_MODULE_NAME: usize = 64;
/// Instructions between two budget checks (the budget's granularity).
const HOOK_STEP: u32 = 1000;
/// Longest `salon.log` message kept, in bytes.
const MAX_LOG_BYTES: usize = 256;
/// Registry key of the `require` cache.
const LOADED_KEY: &str = "salon.loaded";

/// The hooks a policy table may hold, in `Hook` order (without `Load`).
const HOOKS: [Hook; 9] = [
    Hook::RoomCreate,
    Hook::Join,
    Hook::Knock,
    Hook::Chat,
    Hook::Moderation,
    Hook::Leave,
    Hook::RoomEnd,
    Hook::RoomSettings,
    Hook::MediaLimits,
];

/// The extra argument after `ctx`.
pub(super) enum Extra<'a> {
    None,
    Message(&'a str),
    Action(&'a ModerationAction<'a>),
}

/// A rule of the sandbox was broken; raised by the host's own functions.
#[derive(Debug, thiserror::Error)]
#[error("sandbox violation: {0}")]
struct Violation(&'static str);

/// The per-call budget exceeded; raised from the instruction hook.
#[derive(Debug, thiserror::Error)]
#[error("instruction or time budget exceeded")]
struct BudgetExceeded;

/// State shared by the host and the Rust functions inside the VM. Atomics
/// only so that the closures are `Send`; there is one caller at a time.
#[derive(Debug)]
struct Shared {
    base: Instant,
    used: AtomicU64,
    limit: AtomicU64,
    /// Nanoseconds after `base`; 0 means no deadline.
    deadline_ns: AtomicU64,
    tripped: AtomicBool,
    oom: AtomicBool,
    violation: AtomicBool,
    hook: AtomicU8,
    now: AtomicU64,
    log_second: AtomicU64,
    log_count: AtomicU32,
    log_max: u32,
    log_dropped: AtomicU64,
}

impl Shared {
    fn arm(&self, budget: u64, wall: Option<Duration>, now: u64, hook: Hook) {
        self.used.store(0, Relaxed);
        self.limit.store(budget, Relaxed);
        let deadline = wall.map_or(0, |w| {
            let at = self.base.elapsed().saturating_add(w);
            u64::try_from(at.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        self.deadline_ns.store(deadline, Relaxed);
        self.tripped.store(false, Relaxed);
        self.oom.store(false, Relaxed);
        self.violation.store(false, Relaxed);
        self.hook.store(hook as u8, Relaxed);
        self.now.store(now, Relaxed);
    }

    /// `steps` of work done inside a host function (pattern matching):
    /// charged to the instruction budget, with the same checks as
    /// [`Shared::step`]. False when the budget is spent (the call is then
    /// tripped, as by the hook).
    fn spend(&self, steps: u64) -> bool {
        let used = self.used.fetch_add(steps, Relaxed).saturating_add(steps);
        let deadline = self.deadline_ns.load(Relaxed);
        let over_time = deadline != 0 && {
            let el = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
            el > deadline
        };
        if used > self.limit.load(Relaxed) || over_time || self.tripped.load(Relaxed) {
            self.tripped.store(true, Relaxed);
            return false;
        }
        true
    }

    /// Called every `HOOK_STEP` instructions.
    fn step(&self) -> mlua::Result<VmState> {
        let used = self.used.fetch_add(u64::from(HOOK_STEP), Relaxed) + u64::from(HOOK_STEP);
        let over_count = used > self.limit.load(Relaxed);
        let deadline = self.deadline_ns.load(Relaxed);
        let over_time = deadline != 0 && {
            let el = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
            el > deadline
        };
        if over_count || over_time || self.tripped.load(Relaxed) {
            self.tripped.store(true, Relaxed);
            return Err(mlua::Error::external(BudgetExceeded));
        }
        Ok(VmState::Continue)
    }

    fn violation(&self, what: &'static str) -> mlua::Error {
        self.violation.store(true, Relaxed);
        mlua::Error::external(Violation(what))
    }

    fn any_fatal(&self) -> bool {
        self.tripped.load(Relaxed) || self.oom.load(Relaxed) || self.violation.load(Relaxed)
    }

    fn hook_name(&self) -> &'static str {
        let i = usize::from(self.hook.load(Relaxed));
        super::Hook::ALL.get(i).map_or("?", |h| h.name())
    }
}

/// A loaded policy.
pub(super) struct Vm {
    lua: Lua,
    hooks: [Option<Function>; HOOKS.len()],
    shared: Arc<Shared>,
    ro: ReadOnly,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let present: Vec<&str> = HOOKS
            .iter()
            .zip(&self.hooks)
            .filter(|(_, f)| f.is_some())
            .map(|(h, _)| h.name())
            .collect();
        f.debug_struct("Vm")
            .field("hooks", &present)
            .finish_non_exhaustive()
    }
}

fn hook_slot(hook: Hook) -> Option<usize> {
    HOOKS.iter().position(|h| *h == hook)
}

impl Vm {
    pub(super) fn has(&self, hook: Hook) -> bool {
        hook_slot(hook).is_some_and(|i| self.hooks[i].is_some())
    }

    pub(super) fn log_lines_dropped(&self) -> u64 {
        self.shared.log_dropped.load(Relaxed)
    }

    pub(super) fn used_memory(&self) -> usize {
        self.lua.used_memory()
    }

    /// Reads the folder, builds a sandboxed VM and runs the entry module.
    pub(super) fn load(cfg: &PolicyConfig) -> Result<Vm, PolicyError> {
        let sources = read_sources(&cfg.dir)?;
        if !sources.contains_key(&cfg.entry) {
            return Err(PolicyError::Invalid(format!(
                "{}.lua not found in the policy folder",
                cfg.entry
            )));
        }
        let libs = StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8 | StdLib::OS;
        let lua = Lua::new_with(libs, LuaOptions::default())
            .map_err(|e| PolicyError::Invalid(format!("cannot create the VM: {e}")))?;
        let shared = Arc::new(Shared {
            base: Instant::now(),
            used: AtomicU64::new(0),
            limit: AtomicU64::new(cfg.load_instruction_budget),
            deadline_ns: AtomicU64::new(0),
            tripped: AtomicBool::new(false),
            oom: AtomicBool::new(false),
            violation: AtomicBool::new(false),
            hook: AtomicU8::new(Hook::Load as u8),
            now: AtomicU64::new(0),
            log_second: AtomicU64::new(0),
            log_count: AtomicU32::new(0),
            log_max: cfg.log_lines_per_sec,
            log_dropped: AtomicU64::new(0),
        });

        // Syntax-check every module now, so a broken helper fails the reload
        // instead of a hook later.
        for (name, src) in &sources {
            lua.load(src.as_str())
                .set_name(format!("={name}.lua"))
                .set_mode(ChunkMode::Text)
                .into_function()
                .map_err(|e| match e {
                    mlua::Error::SyntaxError { message, .. } => PolicyError::Syntax(message),
                    other => PolicyError::Invalid(other.to_string()),
                })?;
        }

        let setup = |lua: &Lua| -> mlua::Result<ReadOnly> {
            let ro = sandbox(lua, &shared, sources)?;
            let hook_shared = Arc::clone(&shared);
            lua.set_global_hook(
                HookTriggers::new().every_nth_instruction(HOOK_STEP),
                move |_, _| hook_shared.step(),
            )?;
            lua.set_memory_limit(cfg.memory_limit)?;
            Ok(ro)
        };
        shared.arm(cfg.load_instruction_budget, None, 0, Hook::Load);
        let ro = setup(&lua).map_err(|e| PolicyError::Invalid(format!("sandbox setup: {e}")))?;

        let mut vm = Vm {
            lua,
            hooks: Default::default(),
            shared,
            ro,
        };
        let table = vm.load_entry(cfg)?;
        for (slot, hook) in HOOKS.iter().enumerate() {
            match table.raw_get::<Value>(hook.name()) {
                Ok(Value::Function(f)) => vm.hooks[slot] = Some(f),
                Ok(Value::Nil) => {}
                _ => {
                    return Err(PolicyError::Invalid(format!(
                        "{} is not a function",
                        hook.name()
                    )));
                }
            }
        }
        if vm.hooks[1].is_none() {
            return Err(PolicyError::Invalid("on_join is required".to_owned()));
        }
        // Unknown `on_*` names are most likely typos: say so, but load.
        for (k, _) in table.pairs::<Value, Value>().flatten() {
            if let Value::String(s) = k
                && let Ok(s) = s.to_str()
                && s.starts_with("on_")
                && !HOOKS.iter().any(|h| h.name() == &*s)
            {
                tracing::warn!(name = %&*s, "policy defines an unknown hook; ignored");
            }
        }
        Ok(vm)
    }

    fn load_entry(&self, cfg: &PolicyConfig) -> Result<Table, PolicyError> {
        self.shared.arm(
            cfg.load_instruction_budget,
            cfg.wall_budget.map(|w| w * 20),
            0,
            Hook::Load,
        );
        let result = self
            .lua
            .globals()
            .raw_get::<Function>("require")
            .and_then(|req| req.call::<Value>(cfg.entry.as_str()));
        match result {
            Ok(Value::Table(t)) if !self.shared.any_fatal() => Ok(t),
            Ok(_) if !self.shared.any_fatal() => Err(PolicyError::Invalid(format!(
                "{}.lua must return a table of hook functions",
                cfg.entry
            ))),
            Ok(_) => Err(self.classify(Hook::Load, None)),
            Err(e) => Err(self.classify(Hook::Load, Some(e))),
        }
    }

    /// Calls `hook` with a read-only `ctx` (and the extra argument) under the
    /// per-call budget. `Ok(None)` if the policy has no such hook.
    pub(super) fn call(
        &self,
        cfg: &PolicyConfig,
        hook: Hook,
        ctx: &Ctx<'_>,
        extra: Extra<'_>,
    ) -> Result<Returned, PolicyError> {
        let Some(f) = hook_slot(hook).and_then(|i| self.hooks[i].as_ref()) else {
            return Ok(None);
        };
        self.shared
            .arm(cfg.instruction_budget, cfg.wall_budget, ctx.now, hook);
        let result = (|| {
            let c = convert::ctx_table(&self.lua, &self.ro, ctx)?;
            match extra {
                Extra::None => f.call::<MultiValue>(c),
                Extra::Message(m) => f.call::<MultiValue>((c, self.lua.create_string(m)?)),
                Extra::Action(a) => {
                    let t = convert::action_table(&self.lua, &self.ro, a)?;
                    f.call::<MultiValue>((c, t))
                }
            }
        })();
        match result {
            Ok(v) if !self.shared.any_fatal() => Ok(Some(v)),
            Ok(_) => Err(self.classify(hook, None)),
            Err(e) => Err(self.classify(hook, Some(e))),
        }
    }

    fn classify(&self, hook: Hook, e: Option<mlua::Error>) -> PolicyError {
        let is_oom = e.as_ref().is_some_and(is_memory_error);
        let err = if self.shared.tripped.load(Relaxed)
            || e.as_ref()
                .is_some_and(|e| e.downcast_ref::<BudgetExceeded>().is_some())
        {
            PolicyError::Timeout { hook }
        } else if self.shared.oom.load(Relaxed) || is_oom {
            PolicyError::OutOfMemory { hook }
        } else if let Some(v) = e.as_ref().and_then(|e| e.downcast_ref::<Violation>()) {
            PolicyError::Sandbox {
                hook,
                message: v.0.to_owned(),
            }
        } else if self.shared.violation.load(Relaxed) {
            PolicyError::Sandbox {
                hook,
                message: "sandbox rule broken".to_owned(),
            }
        } else {
            match e {
                Some(mlua::Error::SyntaxError { message, .. }) => PolicyError::Syntax(message),
                Some(e) => PolicyError::Runtime {
                    hook,
                    message: e.to_string(),
                },
                None => PolicyError::Runtime {
                    hook,
                    message: "unknown error".to_owned(),
                },
            }
        };
        if matches!(err, PolicyError::OutOfMemory { .. }) {
            // Free what the failed call left behind (no `__gc` can run Lua code).
            let _ = self.lua.gc_collect();
        }
        err
    }
}

fn is_memory_error(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            is_memory_error(cause)
        }
        mlua::Error::BadArgument { cause, .. } => is_memory_error(cause),
        _ => false,
    }
}

/// `[a-z0-9_]{1,64}`
pub(super) fn valid_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MODULE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The `<name>.lua` files of `dir` with a valid module name.
pub(super) fn module_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, PolicyError> {
    let io = |source| PolicyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".lua"))
        else {
            continue;
        };
        if !valid_module_name(name) || !path.is_file() {
            continue;
        }
        out.push((name.to_owned(), path));
        if out.len() > MAX_MODULES {
            return Err(PolicyError::Invalid(format!(
                "more than {MAX_MODULES} modules in the policy folder"
            )));
        }
    }
    out.sort();
    Ok(out)
}

fn read_sources(dir: &Path) -> Result<HashMap<String, String>, PolicyError> {
    let mut sources = HashMap::new();
    for (name, path) in module_files(dir)? {
        let io = |source| PolicyError::Io {
            path: path.clone(),
            source,
        };
        let len = std::fs::metadata(&path).map_err(io)?.len();
        if len > MAX_MODULE_BYTES {
            return Err(PolicyError::Invalid(format!(
                "{name}.lua is larger than {MAX_MODULE_BYTES} bytes"
            )));
        }
        let src = std::fs::read_to_string(&path).map_err(io)?;
        sources.insert(name, src);
    }
    Ok(sources)
}

/// Lua run once per VM, before any policy code: wraps `pcall`, `xpcall` and
/// `setmetatable` with locals the policy cannot reach.
const PRELUDE: &str = r#"
local fatal, violation, newindex = ...
local raw_pcall, raw_xpcall, raw_setmetatable, rawget, type, next = pcall, xpcall, setmetatable, rawget, type, next
pcall = function(f, ...) return fatal(raw_pcall(f, ...)) end
xpcall = function(f, h, ...) return fatal(raw_xpcall(f, h, ...)) end
setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    violation("__gc")
  end
  return raw_setmetatable(t, mt)
end

-- Read-only proxies: an empty table whose hidden metatable reads `t`.
local inner = raw_setmetatable({}, { __mode = "k" })
local function ro_pairs(p) return next, inner[p], nil end
local function ro_len(p) return #inner[p] end
local function freeze(t)
  local p = raw_setmetatable({}, {
    __index = t, __newindex = newindex, __pairs = ro_pairs, __len = ro_len,
    __metatable = "read-only",
  })
  inner[p] = t
  return p
end
local function deep(t)
  for k, v in next, t do
    if type(v) == "table" then t[k] = deep(v) end
  end
  return freeze(t)
end

local function make_ctx(display_name, participant_id, role, now,
                        name, size, locked, exists, nmod, npart, nguest,
                        issuer, sub, id, uname, email, avatar, moderator, troom, claims,
                        source)
  local identity
  if issuer ~= nil then
    identity = freeze({
      sub = sub, id = id, name = uname, email = email, avatar = avatar,
      moderator = moderator, issuer = issuer, room = troom, claims = deep(claims),
      source = source,
    })
  end
  return freeze({
    identity = identity, display_name = display_name, participant_id = participant_id,
    role = role, now = now,
    room = freeze({
      name = name, size = size, locked = locked, exists = exists,
      roles = freeze({ moderator = nmod, participant = npart, guest = nguest }),
    }),
  })
end

local function make_action(kind, target)
  return freeze({ kind = kind, target = target })
end

return make_ctx, make_action
"#;

/// Strips the standard library and installs the host's functions.
fn sandbox(
    lua: &Lua,
    shared: &Arc<Shared>,
    sources: HashMap<String, String>,
) -> mlua::Result<ReadOnly> {
    let g = lua.globals();
    for name in [
        "dofile",
        "loadfile",
        "load",
        "loadstring",
        "collectgarbage",
        "rawset",
        "print",
        "warn",
        "require",
        "module",
        "debug",
        "io",
        "package",
        "coroutine",
    ] {
        g.raw_set(name, Value::Nil)?;
    }
    let string: Table = g.raw_get("string")?;
    string.raw_set("dump", Value::Nil)?;
    // Pattern matching and repetition in C would run unchecked by the
    // instruction hook: metered replacements instead.
    let s = Arc::clone(shared);
    let s2 = Arc::clone(shared);
    super::strings::install(
        lua,
        &string,
        super::strings::Budget {
            spend: Arc::new(move |n| s.spend(n)),
            exceeded: || mlua::Error::external(BudgetExceeded),
            too_large: Arc::new(move |message| {
                s2.oom.store(true, Relaxed);
                mlua::Error::MemoryError(message)
            }),
        },
    )?;
    let os: Table = g.raw_get("os")?;
    let safe_os = lua.create_table()?;
    for name in ["time", "clock", "date"] {
        safe_os.raw_set(name, os.raw_get::<Value>(name)?)?;
    }
    g.raw_set("os", safe_os)?;
    let math: Table = g.raw_get("math")?;
    math.raw_get::<Function>("randomseed")?.call::<()>(0)?;

    // pcall/xpcall/setmetatable wrappers.
    let s = Arc::clone(shared);
    let fatal = lua.create_function(move |_, args: MultiValue| {
        if s.tripped.load(Relaxed) {
            return Err(mlua::Error::external(BudgetExceeded));
        }
        if s.oom.load(Relaxed) {
            return Err(mlua::Error::MemoryError("not enough memory".to_owned()));
        }
        if s.violation.load(Relaxed) {
            return Err(mlua::Error::external(Violation("sandbox rule broken")));
        }
        if let (Some(Value::Boolean(false)), Some(err)) = (args.front(), args.get(1)) {
            match err {
                Value::String(m) if m.as_bytes().as_ref() == b"not enough memory" => {
                    s.oom.store(true, Relaxed);
                    return Err(mlua::Error::MemoryError("not enough memory".to_owned()));
                }
                Value::Error(e) if is_memory_error(e) => {
                    s.oom.store(true, Relaxed);
                    return Err((**e).clone());
                }
                _ => {}
            }
        }
        Ok(args)
    })?;
    let s = Arc::clone(shared);
    let violation = lua.create_function(move |_, _: MultiValue| -> mlua::Result<()> {
        Err(s.violation("__gc metamethods are not allowed"))
    })?;
    let s = Arc::clone(shared);
    let newindex = lua.create_function(move |_, _: MultiValue| -> mlua::Result<()> {
        Err(s.violation("ctx is read-only"))
    })?;
    let (make_ctx, make_action) = lua
        .load(PRELUDE)
        .set_name("=prelude")
        .set_mode(ChunkMode::Text)
        .call::<(Function, Function)>((fatal, violation, newindex))?;

    // require: the policy folder's modules only, read at load time.
    lua.set_named_registry_value(LOADED_KEY, lua.create_table()?)?;
    let s = Arc::clone(shared);
    let sources = Arc::new(sources);
    let require = lua.create_function(move |lua, name: Value| {
        let name = match &name {
            Value::String(n) => n.to_str().map(|n| n.to_owned()).ok(),
            _ => None,
        };
        let Some(name) = name.filter(|n| valid_module_name(n)) else {
            return Err(s.violation("require: module names are [a-z0-9_]+"));
        };
        let loaded: Table = lua.named_registry_value(LOADED_KEY)?;
        match loaded.raw_get::<Value>(name.as_str())? {
            Value::Nil => {}
            Value::Boolean(false) => {
                return Err(mlua::Error::runtime(format!("require: cycle at {name}")));
            }
            v => return Ok(v),
        }
        let Some(src) = sources.get(&name) else {
            return Err(mlua::Error::runtime(format!("require: no module {name}")));
        };
        loaded.raw_set(name.as_str(), false)?;
        let value = lua
            .load(src.as_str())
            .set_name(format!("={name}.lua"))
            .set_mode(ChunkMode::Text)
            .call::<Value>(());
        let value = match value {
            Ok(Value::Nil) => Value::Boolean(true),
            Ok(v) => v,
            Err(e) => {
                loaded.raw_set(name.as_str(), Value::Nil)?;
                return Err(e);
            }
        };
        loaded.raw_set(name.as_str(), &value)?;
        Ok(value)
    })?;
    g.raw_set("require", require)?;

    let ro = ReadOnly {
        make_ctx,
        make_action,
    };

    // The `salon` helpers.
    let salon = lua.create_table()?;
    let s = Arc::clone(shared);
    let log = lua.create_function(move |_, (level, msg): (mlua::LuaString, mlua::LuaString)| {
        let level = level.to_str()?.to_owned();
        if !matches!(level.as_str(), "debug" | "info" | "warn" | "error") {
            return Err(mlua::Error::runtime(
                "salon.log: level is debug, info, warn or error",
            ));
        }
        let now = s.now.load(Relaxed);
        if s.log_second.swap(now, Relaxed) != now {
            s.log_count.store(0, Relaxed);
        }
        if s.log_count.fetch_add(1, Relaxed) >= s.log_max {
            s.log_dropped.fetch_add(1, Relaxed);
            return Ok(());
        }
        let bytes = msg.as_bytes();
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_LOG_BYTES)]);
        let hook = s.hook_name();
        if level == "debug" {
            tracing::debug!(target: "salon_policy", hook, "{text}");
        } else {
            // Capped at info: a policy cannot raise alarms by itself.
            tracing::info!(target: "salon_policy", hook, level = level.as_str(), "{text}");
        }
        Ok(())
    })?;
    salon.raw_set("log", log)?;
    let json = lua.create_table()?;
    json.raw_set(
        "encode",
        lua.create_function(|_, v: Value| {
            let j = convert::lua_to_json(&v, 0)?;
            serde_json::to_string(&j).map_err(mlua::Error::external)
        })?,
    )?;
    json.raw_set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            match serde_json::from_slice::<serde_json::Value>(&s.as_bytes()) {
                Ok(j) => Ok((convert::json_to_lua(lua, &j, 0)?, Value::Nil)),
                Err(_) => Ok((
                    Value::Nil,
                    Value::String(lua.create_string("invalid json")?),
                )),
            }
        })?,
    )?;
    salon.raw_set("json", json)?;
    salon.raw_set(
        "email_domain",
        lua.create_function(|_, e: Value| {
            Ok(match e {
                Value::String(s) => s.to_str().ok().and_then(|s| email_domain(&s)),
                _ => None,
            })
        })?,
    )?;
    salon.raw_set("version", env!("CARGO_PKG_VERSION"))?;
    g.raw_set("salon", salon)?;
    Ok(ro)
}

/// The lowercased domain of an address, or `None` if it does not look like one.
pub(crate) fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || domain.len() > 253 {
        return None;
    }
    let ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    ok.then(|| domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert!(valid_module_name("policy"));
        assert!(valid_module_name("lib_2"));
        for bad in [
            "",
            "../etc/passwd",
            "a.b",
            "A",
            "a/b",
            "a-b",
            &"x".repeat(65),
        ] {
            assert!(!valid_module_name(bad), "{bad}");
        }
    }

    #[test]
    fn email_domains() {
        assert_eq!(
            email_domain("a@Interieur.Gouv.FR").as_deref(),
            Some("interieur.gouv.fr")
        );
        assert_eq!(email_domain("\"a@b\"@gouv.fr").as_deref(), Some("gouv.fr"));
        for bad in [
            "",
            "a",
            "@gouv.fr",
            "a@",
            "a@gouv..fr",
            "a@-x.fr",
            "a@x.fr.",
            "a@x_y.fr",
        ] {
            assert_eq!(email_domain(bad), None, "{bad}");
        }
    }
}
