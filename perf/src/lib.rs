//! salon-perf: Salon's load harness.
//!
//! Synthetic participants speak the real protocols to a running `salon`:
//! WebSocket signaling (`docs/signaling.md`), ICE (controlling, towards
//! ICE-lite mediad), DTLS (client, `dimpl`), SRTP (`salon-srtp`). Each
//! publishes Opus-like audio and, for a fraction of them, VP8-like video;
//! each subscriber decrypts and authenticates every packet, counts loss per
//! SSRC and measures added latency from a stamp in the payload.
//!
//! Layout: [`scenario`] (TOML files), [`metrics`] (histogram, loss, stamp),
//! [`media`] (the per-thread `mio` loops: the hot path), [`signaling`]
//! (tokio, control plane), [`sut`] (spawning `salon`, `/proc` sampling),
//! [`run`] (the controller), [`churn`] (churn runs and their invariants),
//! [`abuse`] (the abuse suite: attacks beside a bystander meeting) and
//! [`report`] (JSON, table, SVG).
//!
//! The media path allocates nothing per packet: each worker owns its
//! receive and send buffers, SRTP works in place, and the only allocation
//! on receive is the first packet of a new SSRC.

pub mod abuse;
pub mod churn;
pub mod janus;
pub mod media;
pub mod metrics;
pub mod reflector;
pub mod report;
pub mod run;
pub mod scenario;
pub mod signaling;
pub mod sut;
