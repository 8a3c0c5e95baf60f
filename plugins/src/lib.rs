//! salon-plugins: the sandboxed Lua policy host and Jitsi-compatible token
//! authentication.
//!
//! # Driving contract
//!
//! The signaling gateway owns one [`PolicyHost`] in its hub task and calls one
//! hook per signaling event (never per packet), passing the time it read
//! itself (`now`, unix seconds): the host never reads the clock for policy
//! decisions, so every decision can be replayed in tests.
//!
//! * Every hook returns a typed decision ([`JoinDecision`], [`ChatDecision`],
//!   [`Verdict`]). A script error, a budget overrun, an out-of-memory or a bad
//!   return value *fails closed* (a deny with [`FAIL_CLOSED_REASON`]), logs one
//!   `warn` line with the hook and error kind, and bumps a counter
//!   ([`PolicyHost::failure_count`]).
//! * [`PolicyHost::reload`] (on `SIGHUP`) and [`PolicyHost::reload_if_changed`]
//!   (polled by the gateway every few seconds) load the policy folder into a
//!   fresh VM; on failure the previous VM keeps serving.
//! * [`auth::Authenticator::verify`] turns a `?jwt=` token into an
//!   [`auth::Identity`] that goes into [`Ctx::identity`].
//!
//! The host is `Send` (mlua's `send` feature) so the gateway can keep it in a
//! spawned task; it is driven through `&mut self` by one owner, without locks.

#![forbid(unsafe_code)]

pub mod auth;
#[doc(hidden)]
pub mod fuzzing;
pub mod policy;

pub use auth::{AuthConfig, AuthError, Authenticator, Identity, IdentitySource};
pub use policy::{
    ChatDecision, Ctx, ErrorKind, FAIL_CLOSED_REASON, Hook, JoinDecision, MAX_BITRATE_KBPS,
    MAX_LAST_N, MediaLimits, ModerationAction, ModerationKind, PolicyConfig, PolicyError,
    PolicyHost, Role, RoleCounts, RoomInfo, RoomSettings, Verdict,
};
