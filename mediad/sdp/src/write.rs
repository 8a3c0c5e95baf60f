//! Helpers shared by the answer and offer builders.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use crate::error::SdpError;
use crate::model::{Fingerprint, LocalTransport, Setup};
use crate::parse::is_ice_chars;

/// Host candidate priority: type preference 126, local preference 65535, component 1.
pub(crate) const HOST_PRIORITY: u32 = 2_130_706_431;

/// Type preference of a host TCP candidate: below host UDP (126), so a
/// browser that can use both prefers UDP (libwebrtc uses 90 too).
pub(crate) const HOST_TCP_TYPE_PREFERENCE: u32 = 90;
/// Direction preference of a passive host TCP candidate (RFC 6544 §4.2).
pub(crate) const PASSIVE_DIRECTION_PREFERENCE: u32 = 4;

/// Priority of the passive TCP host candidate, RFC 6544 §4.2: RFC 5245's
/// formula, `2^24 * type + 2^8 * local + (256 - component)`, with the
/// local preference `2^13 * direction + other` (other: 8191, one address).
pub(crate) const HOST_TCP_PASSIVE_PRIORITY: u32 = (HOST_TCP_TYPE_PREFERENCE << 24)
    + (((PASSIVE_DIRECTION_PREFERENCE << 13) + 8191) << 8)
    + (256 - 1);

/// Accumulates CRLF-terminated lines.
pub(crate) struct SdpWriter {
    out: String,
}

impl SdpWriter {
    pub(crate) fn new() -> Self {
        SdpWriter {
            out: String::with_capacity(2048),
        }
    }

    pub(crate) fn line(&mut self, args: fmt::Arguments<'_>) {
        // Writing into a String cannot fail.
        let _ = self.out.write_fmt(args);
        self.out.push_str("\r\n");
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

macro_rules! ln {
    ($w:expr, $($arg:tt)*) => { $w.line(format_args!($($arg)*)) };
}
pub(crate) use ln;

/// Refuses local parameters that would produce an SDP our own parser (or a
/// browser) rejects.
pub(crate) fn validate_local(local: &LocalTransport) -> Result<(), SdpError> {
    if !is_ice_chars(&local.ice_ufrag, 4, 256) {
        return Err(SdpError::InvalidLocal("ice ufrag"));
    }
    if !is_ice_chars(local.ice_pwd.as_str(), 22, 256) {
        return Err(SdpError::InvalidLocal("ice pwd"));
    }
    let fp = &local.fingerprint;
    let alg_ok = !fp.algorithm.is_empty()
        && fp.algorithm.len() <= 16
        && fp
            .algorithm
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !alg_ok || Fingerprint::expected_len(&fp.algorithm) != Some(fp.bytes.len()) {
        return Err(SdpError::InvalidLocal("fingerprint"));
    }
    if local.candidate_port == 0 || local.tcp_candidate_port == Some(0) {
        return Err(SdpError::InvalidLocal("candidate port"));
    }
    if local.candidate_ip.is_unspecified() {
        return Err(SdpError::InvalidLocal("candidate address"));
    }
    Ok(())
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// `v=`, `o=`, `s=`, `t=`, `a=ice-lite`, the BUNDLE group and the
/// session-level transport attributes (repeated per active m-line, so an SDP
/// without active m-lines is still complete).
pub(crate) fn session_header(
    w: &mut SdpWriter,
    local: &LocalTransport,
    bundle: &[&str],
    setup: Setup,
) {
    ln!(w, "v=0");
    ln!(
        w,
        "o=- {} {} IN IP4 127.0.0.1",
        local.session_id & (i64::MAX as u64),
        local.session_version
    );
    ln!(w, "s=-");
    ln!(w, "t=0 0");
    ln!(w, "a=ice-lite");
    if !bundle.is_empty() {
        ln!(w, "a=group:BUNDLE {}", bundle.join(" "));
    }
    transport_attrs(w, local, setup);
}

pub(crate) fn transport_attrs(w: &mut SdpWriter, local: &LocalTransport, setup: Setup) {
    ln!(w, "a=ice-ufrag:{}", local.ice_ufrag);
    ln!(w, "a=ice-pwd:{}", local.ice_pwd.as_str());
    ln!(w, "a=fingerprint:{}", local.fingerprint);
    ln!(w, "a=setup:{}", setup.as_str());
}

pub(crate) fn connection(w: &mut SdpWriter, ip: IpAddr) {
    ln!(w, "c=IN {} {}", addr_type(ip), ip);
}

pub(crate) fn connection_disabled(w: &mut SdpWriter) {
    ln!(w, "c=IN IP4 0.0.0.0");
}

/// The host candidates, UDP first, then the passive TCP one (RFC 6544:
/// port as the TCP listener's, `tcptype passive`; its own foundation).
pub(crate) fn candidate(w: &mut SdpWriter, local: &LocalTransport) {
    ln!(
        w,
        "a=candidate:1 1 udp {} {} {} typ host",
        HOST_PRIORITY,
        local.candidate_ip,
        local.candidate_port
    );
    if let Some(port) = local.tcp_candidate_port {
        ln!(
            w,
            "a=candidate:2 1 tcp {} {} {} typ host tcptype passive",
            HOST_TCP_PASSIVE_PRIORITY,
            local.candidate_ip,
            port
        );
    }
    ln!(w, "a=end-of-candidates");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_passive_priority_follows_rfc_6544() {
        // 90 << 24 | (4 << 13 | 8191) << 8 | 255
        assert_eq!(HOST_TCP_PASSIVE_PRIORITY, 1_520_435_199);
        const { assert!(HOST_TCP_PASSIVE_PRIORITY < HOST_PRIORITY, "UDP first") };
    }
}
