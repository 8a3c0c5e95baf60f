//! The Lua policy host: typed context in, typed and validated decisions out.
//!
//! See `docs/lua-api.md` for the Lua side.

mod convert;
pub(crate) mod pattern;
mod strings;
mod vm;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mlua::{MultiValue, Value};

use crate::auth::Identity;
use vm::Vm;

/// The reason shown to a user when a hook failed closed. Deliberately says
/// nothing about what went wrong.
pub const FAIL_CLOSED_REASON: &str = "refused by the room policy";

/// Reason used when a script denies without giving one.
const DEFAULT_DENY_REASON: &str = "not allowed";

/// Host limits and the policy folder.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// The folder holding `<entry>.lua` and the modules it may `require`.
    pub dir: PathBuf,
    /// Entry module name (default `policy`, i.e. `<dir>/policy.lua`).
    pub entry: String,
    /// Memory limit of each VM, in bytes (default 16 MiB).
    pub memory_limit: usize,
    /// VM instructions one hook call may run (default 1 000 000).
    pub instruction_budget: u64,
    /// VM instructions loading the policy may run (default 10 000 000).
    pub load_instruction_budget: u64,
    /// Wall-clock safety net per hook call (default 50 ms); `None` disables it.
    /// The instruction budget is the deterministic limit; this one catches a
    /// slow C function such as a pathological `string.find`.
    pub wall_budget: Option<Duration>,
    /// `salon.log` lines allowed per second of `ctx.now` (default 20).
    pub log_lines_per_sec: u32,
    /// Longest `reason` a script may return, in bytes (default 200).
    pub max_reason_len: usize,
    /// Longest chat text a script may rewrite to, in bytes (default 8192).
    pub max_text_len: usize,
}

impl PolicyConfig {
    /// Defaults for a policy folder.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            entry: "policy".to_owned(),
            memory_limit: 16 * 1024 * 1024,
            instruction_budget: 1_000_000,
            load_instruction_budget: 10_000_000,
            wall_budget: Some(Duration::from_millis(50)),
            log_lines_per_sec: 20,
            max_reason_len: 200,
            max_text_len: 8192,
        }
    }
}

/// A participant's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// May moderate.
    Moderator,
    /// A full participant.
    Participant,
    /// A guest (no identity).
    Guest,
}

impl Role {
    /// The Lua name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Moderator => "moderator",
            Role::Participant => "participant",
            Role::Guest => "guest",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "moderator" => Some(Role::Moderator),
            "participant" => Some(Role::Participant),
            "guest" => Some(Role::Guest),
            _ => None,
        }
    }
}

/// How many participants hold each role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleCounts {
    /// Moderators.
    pub moderator: u32,
    /// Participants.
    pub participant: u32,
    /// Guests (not counting those waiting in the lobby).
    pub guest: u32,
}

/// What the policy sees of the room.
#[derive(Debug, Clone, Copy)]
pub struct RoomInfo<'a> {
    /// Room name.
    pub name: &'a str,
    /// Participants in the room (lobby excluded).
    pub size: u32,
    /// Whether a moderator locked it.
    pub locked: bool,
    /// Whether the room exists yet.
    pub exists: bool,
    /// Participants per role.
    pub roles: RoleCounts,
}

/// The context of one hook call, handed to Lua as a read-only `ctx` table.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The actor's verified identity (`None` for guests).
    pub identity: Option<&'a Identity>,
    /// The display name the actor asked for.
    pub display_name: Option<&'a str>,
    /// The actor's participant id, if it has one yet.
    pub participant_id: Option<&'a str>,
    /// The room.
    pub room: RoomInfo<'a>,
    /// The actor's current role, if it is in the room.
    pub role: Option<Role>,
    /// Unix seconds, read by the caller.
    pub now: u64,
}

/// The outcome of `on_join`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinDecision {
    /// Join with this role.
    Allow {
        /// Granted role.
        role: Role,
    },
    /// Wait in the room's lobby.
    Lobby,
    /// Refused.
    Deny {
        /// Shown to the user.
        reason: String,
    },
}

/// A room's media settings, from `room_settings(ctx)` when the room is
/// created. `None` fields keep the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomSettings {
    /// Most video senders each receiver gets (last-N), 0 ..= [`MAX_LAST_N`].
    pub last_n: Option<u32>,
}

/// A participant's media limits, from `media_limits(ctx)` when it enters
/// the meeting (directly or from the lobby, with its role in `ctx.role`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaLimits {
    /// Most bits per second of video it receives (the operator's cap),
    /// from `max_bitrate_kbps` in 1 ..= [`MAX_BITRATE_KBPS`].
    pub max_receive_bps: Option<u64>,
}

/// Largest `last_n` a policy may set.
pub const MAX_LAST_N: u32 = 1000;
/// Largest `max_bitrate_kbps` a policy may set (1 Gbit/s).
pub const MAX_BITRATE_KBPS: u64 = 1_000_000;

/// The outcome of `on_chat`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChatDecision {
    /// Deliver as sent.
    Allow,
    /// Deliver this text instead.
    Rewrite {
        /// The replacement text.
        text: String,
    },
    /// Do not deliver.
    Drop {
        /// Shown to the sender.
        reason: String,
    },
}

/// A yes/no decision with a reason on no.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Refused.
    Deny {
        /// Shown to the user.
        reason: String,
    },
}

impl Verdict {
    /// Whether this is [`Verdict::Allow`].
    pub fn is_allow(&self) -> bool {
        matches!(self, Verdict::Allow)
    }
}

/// A moderation action kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModerationKind {
    /// Mute one participant.
    Mute,
    /// Mute everyone.
    MuteAll,
    /// Stop one participant's camera.
    StopVideo,
    /// Stop one participant's screen share.
    StopScreen,
    /// Remove a participant.
    Kick,
    /// Remove and refuse to readmit.
    Ban,
    /// Lock the room.
    Lock,
    /// Unlock the room.
    Unlock,
    /// Make a participant moderator.
    GrantModerator,
    /// Take moderator away.
    RevokeModerator,
    /// End the room for everyone.
    End,
    /// Admit someone from the lobby.
    Admit,
    /// Refuse someone waiting in the lobby.
    Deny,
}

impl ModerationKind {
    /// The Lua name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModerationKind::Mute => "mute",
            ModerationKind::MuteAll => "mute_all",
            ModerationKind::StopVideo => "stop_video",
            ModerationKind::StopScreen => "stop_screen",
            ModerationKind::Kick => "kick",
            ModerationKind::Ban => "ban",
            ModerationKind::Lock => "lock",
            ModerationKind::Unlock => "unlock",
            ModerationKind::GrantModerator => "grant_moderator",
            ModerationKind::RevokeModerator => "revoke_moderator",
            ModerationKind::End => "end",
            ModerationKind::Admit => "admit",
            ModerationKind::Deny => "deny",
        }
    }
}

/// A moderation request.
#[derive(Debug, Clone, Copy)]
pub struct ModerationAction<'a> {
    /// What is asked.
    pub kind: ModerationKind,
    /// The participant it targets, if any.
    pub target: Option<&'a str>,
}

/// The hooks, plus `Load` for errors while loading the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `on_room_create`
    RoomCreate,
    /// `on_join`
    Join,
    /// `on_knock`
    Knock,
    /// `on_chat`
    Chat,
    /// `on_moderation`
    Moderation,
    /// `on_leave`
    Leave,
    /// `on_room_end`
    RoomEnd,
    /// `room_settings`
    RoomSettings,
    /// `media_limits`
    MediaLimits,
    /// Loading the policy (`reload`).
    Load,
}

impl Hook {
    /// Every hook, in counter order.
    pub const ALL: [Hook; 10] = [
        Hook::RoomCreate,
        Hook::Join,
        Hook::Knock,
        Hook::Chat,
        Hook::Moderation,
        Hook::Leave,
        Hook::RoomEnd,
        Hook::RoomSettings,
        Hook::MediaLimits,
        Hook::Load,
    ];
    /// The Lua function name.
    pub fn name(self) -> &'static str {
        match self {
            Hook::RoomCreate => "on_room_create",
            Hook::Join => "on_join",
            Hook::Knock => "on_knock",
            Hook::Chat => "on_chat",
            Hook::Moderation => "on_moderation",
            Hook::Leave => "on_leave",
            Hook::RoomEnd => "on_room_end",
            Hook::RoomSettings => "room_settings",
            Hook::MediaLimits => "media_limits",
            Hook::Load => "load",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Kinds of failure, one counter each per hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A Lua runtime error (includes calling a removed function such as `io.open`).
    Runtime,
    /// The instruction or wall-clock budget ran out.
    Timeout,
    /// The VM's memory limit was hit.
    OutOfMemory,
    /// The hook returned something that is not a valid decision.
    BadReturn,
    /// A sandbox rule was broken (writing to `ctx`, a bad `require`, a `__gc` metamethod).
    Sandbox,
    /// Loading failed: unreadable file, syntax error, missing `on_join`.
    Load,
}

impl ErrorKind {
    /// Every kind, in counter order.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Runtime,
        ErrorKind::Timeout,
        ErrorKind::OutOfMemory,
        ErrorKind::BadReturn,
        ErrorKind::Sandbox,
        ErrorKind::Load,
    ];
    /// A short stable name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Runtime => "runtime",
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutOfMemory => "out_of_memory",
            ErrorKind::BadReturn => "bad_return",
            ErrorKind::Sandbox => "sandbox",
            ErrorKind::Load => "load",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Errors of the policy host. Messages from Lua may quote the script, so
/// they are returned to the operator but only the [`ErrorKind`] is logged for
/// hook calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A policy file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A module has a syntax error.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// The policy does not provide what the host needs (e.g. `on_join`).
    #[error("invalid policy: {0}")]
    Invalid(String),
    /// A Lua runtime error.
    #[error("{hook}: runtime error: {message}", hook = .hook.name())]
    Runtime {
        /// Where.
        hook: Hook,
        /// Lua's message.
        message: String,
    },
    /// The instruction or time budget ran out.
    #[error("{hook}: budget exceeded", hook = .hook.name())]
    Timeout {
        /// Where.
        hook: Hook,
    },
    /// The memory limit was hit.
    #[error("{hook}: out of memory", hook = .hook.name())]
    OutOfMemory {
        /// Where.
        hook: Hook,
    },
    /// The hook returned an invalid decision.
    #[error("{hook}: bad return value: {detail}", hook = .hook.name())]
    BadReturn {
        /// Where.
        hook: Hook,
        /// What was wrong.
        detail: &'static str,
    },
    /// A sandbox rule was broken.
    #[error("{hook}: sandbox violation: {message}", hook = .hook.name())]
    Sandbox {
        /// Where.
        hook: Hook,
        /// Which rule.
        message: String,
    },
}

impl PolicyError {
    /// The counter this error goes to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PolicyError::Io { .. } | PolicyError::Syntax(_) | PolicyError::Invalid(_) => {
                ErrorKind::Load
            }
            PolicyError::Runtime { .. } => ErrorKind::Runtime,
            PolicyError::Timeout { .. } => ErrorKind::Timeout,
            PolicyError::OutOfMemory { .. } => ErrorKind::OutOfMemory,
            PolicyError::BadReturn { .. } => ErrorKind::BadReturn,
            PolicyError::Sandbox { .. } => ErrorKind::Sandbox,
        }
    }
}

/// What `reload_if_changed` compares: name, length and mtime of each module.
type Fingerprint = Vec<(String, u64, Option<SystemTime>)>;

/// The Lua policy host. One VM at a time; `reload` swaps it atomically.
#[derive(Debug)]
pub struct PolicyHost {
    config: PolicyConfig,
    vm: Vm,
    fingerprint: Fingerprint,
    failures: [[u64; ErrorKind::ALL.len()]; Hook::ALL.len()],
    reloads: u64,
    last_failure: Option<(Hook, ErrorKind)>,
}

impl PolicyHost {
    /// Loads the policy folder. Fails if the policy cannot be loaded.
    pub fn new(config: PolicyConfig) -> Result<Self, PolicyError> {
        let fingerprint = fingerprint(&config.dir)?;
        let vm = Vm::load(&config)?;
        Ok(Self {
            config,
            vm,
            fingerprint,
            failures: [[0; ErrorKind::ALL.len()]; Hook::ALL.len()],
            reloads: 0,
            last_failure: None,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Loads the folder into a fresh VM and swaps it in. On failure the
    /// previous VM keeps serving, the error is logged and returned, and the
    /// `(Load, Load)` counter (or the load's own kind) goes up. The gateway
    /// calls this on `SIGHUP`.
    pub fn reload(&mut self) -> Result<(), PolicyError> {
        // Fingerprint first: a change made while loading is seen next poll.
        let fp = fingerprint(&self.config.dir);
        let result = fp.and_then(|fp| {
            self.fingerprint = fp;
            Vm::load(&self.config)
        });
        match result {
            Ok(vm) => {
                self.vm = vm;
                self.reloads += 1;
                tracing::info!(dir = %self.config.dir.display(), "policy reloaded");
                Ok(())
            }
            Err(e) => {
                self.count(Hook::Load, e.kind());
                tracing::warn!(
                    dir = %self.config.dir.display(),
                    error = %e,
                    "policy reload failed; keeping the previous policy"
                );
                Err(e)
            }
        }
    }

    /// Reloads if a module file was added, removed or modified since the last
    /// load attempt (a broken file is tried once, then again when it changes).
    /// Returns whether a reload happened and succeeded.
    pub fn reload_if_changed(&mut self) -> Result<bool, PolicyError> {
        let fp = match fingerprint(&self.config.dir) {
            Ok(fp) => fp,
            Err(e) => {
                self.count(Hook::Load, e.kind());
                return Err(e);
            }
        };
        if fp == self.fingerprint {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// Successful reloads since creation.
    pub fn reload_count(&self) -> u64 {
        self.reloads
    }

    /// Failures of `hook` with `kind` since creation.
    pub fn failure_count(&self, hook: Hook, kind: ErrorKind) -> u64 {
        self.failures[hook.index()][kind.index()]
    }

    /// Every non-zero failure counter, in a stable order (for metrics export).
    pub fn failure_counters(&self) -> impl Iterator<Item = (Hook, ErrorKind, u64)> + '_ {
        Hook::ALL.iter().flat_map(move |h| {
            ErrorKind::ALL.iter().filter_map(move |k| {
                let n = self.failure_count(*h, *k);
                (n > 0).then_some((*h, *k, n))
            })
        })
    }

    /// The most recent failure, if any.
    pub fn last_failure(&self) -> Option<(Hook, ErrorKind)> {
        self.last_failure
    }

    /// `salon.log` lines dropped by the rate limit.
    pub fn log_lines_dropped(&self) -> u64 {
        self.vm.log_lines_dropped()
    }

    /// Lua memory in use by the current VM, in bytes.
    pub fn used_memory(&self) -> usize {
        self.vm.used_memory()
    }

    fn count(&mut self, hook: Hook, kind: ErrorKind) {
        self.failures[hook.index()][kind.index()] += 1;
        self.last_failure = Some((hook, kind));
    }

    fn fail(&mut self, e: &PolicyError) {
        let hook = match e {
            PolicyError::Runtime { hook, .. }
            | PolicyError::Timeout { hook }
            | PolicyError::OutOfMemory { hook }
            | PolicyError::BadReturn { hook, .. }
            | PolicyError::Sandbox { hook, .. } => *hook,
            _ => Hook::Load,
        };
        let kind = e.kind();
        self.count(hook, kind);
        // Hook and kind only: Lua messages may quote personal data.
        tracing::warn!(
            hook = hook.name(),
            kind = kind.as_str(),
            "policy hook failed; failing closed"
        );
    }

    /// `on_room_create(ctx) -> true | false, reason`. Missing hook: allow.
    pub fn on_room_create(&mut self, ctx: &Ctx<'_>) -> Verdict {
        let r = self.try_verdict(Hook::RoomCreate, ctx, None, Verdict::Allow);
        self.verdict_or_deny(r)
    }

    /// `room_settings(ctx) -> nil | { last_n = N }`, called once when a room
    /// is created. Missing hook: defaults. Not an authorization: an error
    /// keeps the defaults (logged and counted).
    pub fn room_settings(&mut self, ctx: &Ctx<'_>) -> RoomSettings {
        self.try_room_settings(ctx).unwrap_or_else(|e| {
            self.fail(&e);
            RoomSettings::default()
        })
    }

    /// Like [`PolicyHost::room_settings`], without the fallback or counting.
    pub fn try_room_settings(&mut self, ctx: &Ctx<'_>) -> Result<RoomSettings, PolicyError> {
        let hook = Hook::RoomSettings;
        let Some(t) = self.settings_table(hook, ctx)? else {
            return Ok(RoomSettings::default());
        };
        let last_n = Self::bounded_int(hook, &t, "last_n", 0, u64::from(MAX_LAST_N))?
            .map(|n| u32::try_from(n).unwrap_or(MAX_LAST_N));
        Ok(RoomSettings { last_n })
    }

    /// `media_limits(ctx) -> nil | { max_bitrate_kbps = N }`, called when a
    /// participant enters the meeting. Missing hook: no cap. An error means
    /// no cap (logged and counted): a cap is a resource setting, not an
    /// authorization.
    pub fn media_limits(&mut self, ctx: &Ctx<'_>) -> MediaLimits {
        self.try_media_limits(ctx).unwrap_or_else(|e| {
            self.fail(&e);
            MediaLimits::default()
        })
    }

    /// Like [`PolicyHost::media_limits`], without the fallback or counting.
    pub fn try_media_limits(&mut self, ctx: &Ctx<'_>) -> Result<MediaLimits, PolicyError> {
        let hook = Hook::MediaLimits;
        let Some(t) = self.settings_table(hook, ctx)? else {
            return Ok(MediaLimits::default());
        };
        let kbps = Self::bounded_int(hook, &t, "max_bitrate_kbps", 1, MAX_BITRATE_KBPS)?;
        Ok(MediaLimits {
            max_receive_bps: kbps.map(|k| k * 1000),
        })
    }

    /// Calls a settings hook: `None` when it is absent or returned nil.
    fn settings_table(
        &mut self,
        hook: Hook,
        ctx: &Ctx<'_>,
    ) -> Result<Option<mlua::Table>, PolicyError> {
        if !self.vm.has(hook) {
            return Ok(None);
        }
        let ret = self.vm.call(&self.config, hook, ctx, vm::Extra::None)?;
        match ret.and_then(|r| r.into_iter().next()) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Table(t)) => Ok(Some(t)),
            Some(_) => Err(PolicyError::BadReturn {
                hook,
                detail: "expected nil or a table",
            }),
        }
    }

    /// An optional integer field within `lo ..= hi`.
    fn bounded_int(
        hook: Hook,
        t: &mlua::Table,
        key: &str,
        lo: u64,
        hi: u64,
    ) -> Result<Option<u64>, PolicyError> {
        let bad = |detail| PolicyError::BadReturn { hook, detail };
        let n = match Self::field(hook, t, key)? {
            Value::Nil => return Ok(None),
            Value::Integer(i) => i,
            // Lua numbers written 10.0 are still whole.
            #[allow(clippy::cast_possible_truncation)]
            Value::Number(f) if f.fract() == 0.0 && f.abs() < 1e15 => f as i64,
            _ => return Err(bad("expected a whole number")),
        };
        match u64::try_from(n) {
            Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => Err(bad("number out of range")),
        }
    }

    /// `on_knock(ctx) -> true | false, reason`: may a guest waiting in the
    /// lobby enter now? Missing hook: deny (wait for a moderator's `admit`).
    pub fn on_knock(&mut self, ctx: &Ctx<'_>) -> Verdict {
        let default = Verdict::Deny {
            reason: "waiting for a moderator".to_owned(),
        };
        let r = self.try_verdict(Hook::Knock, ctx, None, default);
        self.verdict_or_deny(r)
    }

    /// `on_moderation(ctx, action) -> true | false, reason`. Missing hook:
    /// allow (the gateway still checks roles).
    pub fn on_moderation(&mut self, ctx: &Ctx<'_>, action: &ModerationAction<'_>) -> Verdict {
        let r = self.try_verdict(Hook::Moderation, ctx, Some(action), Verdict::Allow);
        self.verdict_or_deny(r)
    }

    fn verdict_or_deny(&mut self, r: Result<Verdict, PolicyError>) -> Verdict {
        r.unwrap_or_else(|e| {
            self.fail(&e);
            Verdict::Deny {
                reason: FAIL_CLOSED_REASON.to_owned(),
            }
        })
    }

    /// `on_join(ctx) -> { action, role, reason }`.
    pub fn on_join(&mut self, ctx: &Ctx<'_>) -> JoinDecision {
        self.try_on_join(ctx).unwrap_or_else(|e| {
            self.fail(&e);
            JoinDecision::Deny {
                reason: FAIL_CLOSED_REASON.to_owned(),
            }
        })
    }

    /// `on_chat(ctx, msg) -> { action = "allow" | "rewrite" | "drop", ... }`.
    /// Missing hook: allow.
    pub fn on_chat(&mut self, ctx: &Ctx<'_>, msg: &str) -> ChatDecision {
        self.try_on_chat(ctx, msg).unwrap_or_else(|e| {
            self.fail(&e);
            ChatDecision::Drop {
                reason: FAIL_CLOSED_REASON.to_owned(),
            }
        })
    }

    /// `on_leave(ctx)`: notification; errors are only counted and logged.
    pub fn on_leave(&mut self, ctx: &Ctx<'_>) {
        self.notify(Hook::Leave, ctx);
    }

    /// `on_room_end(ctx)`: notification; errors are only counted and logged.
    pub fn on_room_end(&mut self, ctx: &Ctx<'_>) {
        self.notify(Hook::RoomEnd, ctx);
    }

    fn notify(&mut self, hook: Hook, ctx: &Ctx<'_>) {
        if let Err(e) = self
            .vm
            .call(&self.config, hook, ctx, vm::Extra::None)
            .map(drop)
        {
            self.fail(&e);
        }
    }

    fn try_verdict(
        &mut self,
        hook: Hook,
        ctx: &Ctx<'_>,
        action: Option<&ModerationAction<'_>>,
        default: Verdict,
    ) -> Result<Verdict, PolicyError> {
        if !self.vm.has(hook) {
            return Ok(default);
        }
        let extra = match action {
            Some(a) => vm::Extra::Action(a),
            None => vm::Extra::None,
        };
        let ret = self.vm.call(&self.config, hook, ctx, extra)?;
        let Some(ret) = ret else {
            return Ok(default);
        };
        let bad = |detail| PolicyError::BadReturn { hook, detail };
        let mut it = ret.into_iter();
        match it.next() {
            Some(Value::Boolean(true)) => Ok(Verdict::Allow),
            Some(Value::Boolean(false)) => {
                let reason = self.reason(hook, it.next())?;
                Ok(Verdict::Deny { reason })
            }
            _ => Err(bad("expected true, or false and a reason")),
        }
    }

    fn reason(&self, hook: Hook, v: Option<Value>) -> Result<String, PolicyError> {
        match v {
            None | Some(Value::Nil) => Ok(DEFAULT_DENY_REASON.to_owned()),
            Some(v) => self.text(hook, v, self.config.max_reason_len, "reason"),
        }
    }

    fn text(
        &self,
        hook: Hook,
        v: Value,
        max: usize,
        what: &'static str,
    ) -> Result<String, PolicyError> {
        let bad = |detail| PolicyError::BadReturn { hook, detail };
        let Value::String(s) = v else {
            return Err(bad(if what == "reason" {
                "reason is not a string"
            } else {
                "text is not a string"
            }));
        };
        let s = s.to_str().map_err(|_| bad("text is not UTF-8"))?;
        if s.len() > max {
            return Err(bad(if what == "reason" {
                "reason too long"
            } else {
                "text too long"
            }));
        }
        if what == "reason" && s.chars().any(char::is_control) {
            return Err(bad("control character in reason"));
        }
        Ok(s.to_owned())
    }

    fn field(hook: Hook, t: &mlua::Table, key: &str) -> Result<Value, PolicyError> {
        t.raw_get::<Value>(key).map_err(|_| PolicyError::BadReturn {
            hook,
            detail: "unreadable field",
        })
    }

    /// Like [`PolicyHost::on_join`], without failing closed or counting.
    pub fn try_on_join(&mut self, ctx: &Ctx<'_>) -> Result<JoinDecision, PolicyError> {
        let hook = Hook::Join;
        let bad = |detail| PolicyError::BadReturn { hook, detail };
        let ret = self
            .vm
            .call(&self.config, hook, ctx, vm::Extra::None)?
            .ok_or(bad("on_join missing"))?;
        let Some(Value::Table(t)) = ret.into_iter().next() else {
            return Err(bad("expected a table"));
        };
        let Value::String(action) = Self::field(hook, &t, "action")? else {
            return Err(bad("action is not a string"));
        };
        let action = action
            .to_str()
            .map_err(|_| bad("unknown action"))?
            .to_owned();
        match action.as_str() {
            "allow" => {
                let role = match Self::field(hook, &t, "role")? {
                    // A missing role is the least that fits the actor.
                    Value::Nil if ctx.identity.is_none() => Role::Guest,
                    Value::Nil => Role::Participant,
                    Value::String(s) => s
                        .to_str()
                        .ok()
                        .and_then(|s| Role::parse(&s))
                        .ok_or(bad("unknown role"))?,
                    _ => return Err(bad("role is not a string")),
                };
                Ok(JoinDecision::Allow { role })
            }
            "lobby" => Ok(JoinDecision::Lobby),
            "deny" => {
                let reason = self.reason(hook, Some(Self::field(hook, &t, "reason")?))?;
                Ok(JoinDecision::Deny { reason })
            }
            _ => Err(bad("unknown action")),
        }
    }

    /// Like [`PolicyHost::on_chat`], without failing closed or counting.
    pub fn try_on_chat(&mut self, ctx: &Ctx<'_>, msg: &str) -> Result<ChatDecision, PolicyError> {
        let hook = Hook::Chat;
        let bad = |detail| PolicyError::BadReturn { hook, detail };
        if !self.vm.has(hook) {
            return Ok(ChatDecision::Allow);
        }
        let Some(ret) = self
            .vm
            .call(&self.config, hook, ctx, vm::Extra::Message(msg))?
        else {
            return Ok(ChatDecision::Allow);
        };
        let Some(Value::Table(t)) = ret.into_iter().next() else {
            return Err(bad("expected a table"));
        };
        let Value::String(action) = Self::field(hook, &t, "action")? else {
            return Err(bad("action is not a string"));
        };
        let action = action
            .to_str()
            .map_err(|_| bad("unknown action"))?
            .to_owned();
        match action.as_str() {
            "allow" => Ok(ChatDecision::Allow),
            "rewrite" => {
                let text = self.text(
                    hook,
                    Self::field(hook, &t, "text")?,
                    self.config.max_text_len,
                    "text",
                )?;
                Ok(ChatDecision::Rewrite { text })
            }
            "drop" => {
                let reason = self.reason(hook, Some(Self::field(hook, &t, "reason")?))?;
                Ok(ChatDecision::Drop { reason })
            }
            _ => Err(bad("unknown action")),
        }
    }
}

/// Module files of the folder, with length and mtime.
fn fingerprint(dir: &Path) -> Result<Fingerprint, PolicyError> {
    let mut fp = Vec::new();
    for (name, path) in vm::module_files(dir)? {
        let meta = std::fs::metadata(&path).map_err(|source| PolicyError::Io {
            path: path.clone(),
            source,
        })?;
        fp.push((name, meta.len(), meta.modified().ok()));
    }
    fp.sort();
    Ok(fp)
}

/// Keep `MultiValue` in the signature of `Vm::call` readable.
type Returned = Option<MultiValue>;
