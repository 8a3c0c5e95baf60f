//! salon-proto: the wire formats mediad speaks, parsed without copying and
//! written into buffers the caller owns.
//!
//! - [`demux`]: which protocol a datagram carries (RFC 7983, RFC 5761).
//! - [`stun`]: STUN (RFC 8489, formerly RFC 5389) with the ICE attributes of RFC 8445:
//!   Binding requests and responses, MESSAGE-INTEGRITY, FINGERPRINT.
//! - [`rtp`]: RTP headers (RFC 3550) and header extensions (RFC 8285).
//! - [`rtcp`]: RTCP compound packets (RFC 3550), feedback (RFC 4585: NACK,
//!   PLI; RFC 5104: FIR), REMB and transport-cc framing.
//!
//! Every parser checks each length before use and returns a typed error;
//! none allocates or panics, whatever the input (`fuzz/` holds the
//! cargo-fuzz targets, `tests/fuzz_regressions.rs` replays their corpus).

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::expect_used)]

pub mod demux;
#[doc(hidden)]
pub mod fuzzing;
pub mod rtcp;
pub mod rtp;
pub mod stun;
pub mod twcc;
pub mod vp8;

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}
