//! Helpers shared by the answer and offer builders.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use crate::error::SdpError;
use crate::model::{Fingerprint, LocalTransport, Setup};
use crate::parse::is_ice_chars;

/// Host candidate priority: type preference 126, local preference 65535, component 1
/// (the first address's; each further address's local preference is one
/// less: [`host_priority`]).
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

/// Priority of the UDP host candidate of the `i`-th address written
/// (RFC 8445 §5.1.2.1: local preference 65535 − i, so the addresses keep
/// distinct priorities).
pub(crate) fn host_priority(i: usize) -> u32 {
    HOST_PRIORITY - ((i as u32) << 8)
}

/// Priority of the passive TCP host candidate of the `i`-th address
/// (RFC 6544 §4.2: `other` preference 8191 − i); every one is below every
/// UDP candidate (type preference 90 against 126).
pub(crate) fn host_tcp_passive_priority(i: usize) -> u32 {
    HOST_TCP_PASSIVE_PRIORITY - ((i as u32) << 8)
}

/// The candidate addresses in the order written: IPv6 first (RFC 8421
/// prefers it a little, as browsers do), then IPv4, each family in the
/// order given.
pub(crate) fn candidate_order(local: &LocalTransport) -> impl Iterator<Item = IpAddr> + '_ {
    let v6 = local.candidate_ips.iter().filter(|ip| ip.is_ipv6());
    let v4 = local.candidate_ips.iter().filter(|ip| ip.is_ipv4());
    v6.chain(v4).copied()
}

/// The `c=` address: the first candidate's.
pub(crate) fn connection_ip(local: &LocalTransport) -> IpAddr {
    candidate_order(local)
        .next()
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

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
    let ips = &local.candidate_ips;
    if ips.is_empty()
        || ips.len() > crate::model::MAX_CANDIDATE_IPS
        || ips.iter().any(IpAddr::is_unspecified)
        || ips
            .iter()
            .enumerate()
            .any(|(i, ip)| ips.iter().skip(i + 1).any(|o| o == ip))
    {
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

/// The host candidates: every UDP one ([`candidate_order`]), then the
/// passive TCP ones (RFC 6544: port as the TCP listener's, `tcptype
/// passive`). Foundations differ by address and protocol (RFC 8445
/// §5.1.1.3): the `i`-th address's UDP candidate is `2i + 1`, its TCP one
/// `2i + 2`.
pub(crate) fn candidate(w: &mut SdpWriter, local: &LocalTransport) {
    for (i, ip) in candidate_order(local).enumerate() {
        ln!(
            w,
            "a=candidate:{} 1 udp {} {} {} typ host",
            2 * i + 1,
            host_priority(i),
            ip,
            local.candidate_port
        );
    }
    if let Some(port) = local.tcp_candidate_port {
        for (i, ip) in candidate_order(local).enumerate() {
            ln!(
                w,
                "a=candidate:{} 1 tcp {} {} {} typ host tcptype passive",
                2 * i + 2,
                host_tcp_passive_priority(i),
                ip,
                port
            );
        }
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
