//! Salon's signaling gateway.
//!
//! A small hyper server that serves the browser client, runs the WebSocket
//! signaling protocol (`docs/signaling.md`) and drives the media plane
//! (mediad) through its command/event interface.
//!
//! Layout:
//! - [`protocol`]: the wire messages, their parser and validation (never
//!   panics, stable error codes).
//! - [`hub`]: the sans-IO signaling core (rooms, names, roles, lobby,
//!   moderation through the Lua policy of `salon-plugins`; `handle_*` in,
//!   `poll_output` out).
//! - [`server`]: the tokio/hyper driver: HTTP routes, WebSocket sessions, and
//!   the hub task that owns the [`hub::Hub`].
//! - [`turn`]: TURN REST credentials for the browsers' `iceServers`.
//! - [`oidc`]: OIDC login for agents (`docs/oidc.md`): sans-IO login checks
//!   and sessions, and the driver the `/auth/*` routes call.
//! - [`MediaControl`]: what the gateway needs of the media plane, so tests can
//!   use a recording fake. Events come back through an `mpsc` the gateway
//!   owns ([`media_event_channel`]).

#![forbid(unsafe_code)]

pub use salon_mediad::control;

pub mod config_file;
pub mod hub;
pub mod metrics;
pub mod oidc;
pub mod pad;
pub mod protocol;
pub mod server;
pub mod tls;
pub mod turn;
mod web;

use tokio::sync::mpsc;

use control::{Command, Event};

pub use server::{
    AdminListener, Brand, FontError, HubPanicked, MAX_BRAND_FONT_BYTES, RedirectListener,
    ServeOptions, TlsOptions, serve,
};
pub use tls::{ServerCert, TlsError};
pub use turn::{TurnConfig, TurnSecret};

/// The media plane as the gateway sees it.
pub trait MediaControl: Send + Sync {
    /// Hands a command to the media plane. Must not block.
    fn send(&self, cmd: Command);
    /// Prometheus text exposition of the media plane's counters.
    fn metrics_text(&self) -> String;
}

impl MediaControl for salon_mediad::Mediad {
    fn send(&self, cmd: Command) {
        salon_mediad::Mediad::send(self, cmd);
    }

    fn metrics_text(&self) -> String {
        salon_mediad::Mediad::metrics_text(self)
    }
}

/// Sender half for media events: cloneable, never blocks, callable from any
/// thread (mediad's workers).
pub type MediaEventSender = mpsc::UnboundedSender<Event>;
/// Receiver half, given to [`serve`].
pub type MediaEventReceiver = mpsc::UnboundedReceiver<Event>;

/// The channel media events travel on. Media events are control-plane and
/// rare (a handful per join), so the channel is unbounded: mediad's worker
/// threads must never block on the gateway.
pub fn media_event_channel() -> (MediaEventSender, MediaEventReceiver) {
    mpsc::unbounded_channel()
}
