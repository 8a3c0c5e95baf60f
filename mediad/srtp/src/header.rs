//! The few header fields SRTP needs: RTP header length, sequence number, SSRC;
//! the RTCP sender SSRC. Everything is bounds-checked; nothing here panics.

use crate::SrtpError;

/// Fixed part of an RTP header (RFC 3550 §5.1).
pub(crate) const RTP_FIXED_HEADER_LEN: usize = 12;
/// The part of an RTCP packet SRTCP leaves in the clear: V/P/RC, PT, length, SSRC.
pub(crate) const RTCP_HEADER_LEN: usize = 8;

/// The RTP fields SRTP uses, read from a header whose length was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RtpHeader {
    /// Header length: 12 + 4 * CC + (4 + 4 * extension words if X).
    pub(crate) len: usize,
    pub(crate) seq: u16,
    pub(crate) ssrc: u32,
}

/// Parse the RTP header at the start of `pkt` (which must not include an SRTP tag).
pub(crate) fn parse_rtp(pkt: &[u8]) -> Result<RtpHeader, SrtpError> {
    let fixed: &[u8; RTP_FIXED_HEADER_LEN] = pkt
        .get(..RTP_FIXED_HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(SrtpError::TooShort)?;
    let b0 = fixed[0];
    if b0 >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let csrc_count = usize::from(b0 & 0x0f);
    let mut len = RTP_FIXED_HEADER_LEN + 4 * csrc_count;
    if b0 & 0x10 != 0 {
        // Extension header: 16-bit profile-defined id, 16-bit length in 32-bit words.
        let Some(&[_, _, hi, lo]) = pkt.get(len..len + 4) else {
            return Err(SrtpError::Malformed);
        };
        len += 4 + 4 * usize::from(u16::from_be_bytes([hi, lo]));
    }
    if len > pkt.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(RtpHeader {
        len,
        seq: u16::from_be_bytes([fixed[2], fixed[3]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
    })
}

/// Check the first RTCP header of a (compound) packet and return the sender SSRC.
pub(crate) fn parse_rtcp(pkt: &[u8]) -> Result<u32, SrtpError> {
    let fixed: &[u8; RTCP_HEADER_LEN] = pkt
        .get(..RTCP_HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(SrtpError::TooShort)?;
    if fixed[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    Ok(u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests may index
mod tests {
    use super::*;

    #[test]
    fn plain_header() {
        let pkt = [
            0x80, 0x60, 0x12, 0x34, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0xaa,
        ];
        let h = parse_rtp(&pkt).unwrap();
        assert_eq!(
            h,
            RtpHeader {
                len: 12,
                seq: 0x1234,
                ssrc: 0xdead_beef
            }
        );
    }

    #[test]
    fn csrc_and_extension() {
        // CC = 2, X = 1, extension of 1 word.
        let mut pkt = vec![0x92, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7];
        pkt.extend_from_slice(&[0; 8]); // 2 CSRC
        pkt.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]);
        assert_eq!(parse_rtp(&pkt).unwrap().len, 12 + 8 + 8);
        // Extension length that runs past the end.
        pkt[12 + 8 + 3] = 2;
        assert_eq!(parse_rtp(&pkt), Err(SrtpError::Malformed));
        // Truncated extension header.
        assert_eq!(parse_rtp(&pkt[..22]), Err(SrtpError::Malformed));
    }

    #[test]
    fn rejects_short_and_wrong_version() {
        assert_eq!(parse_rtp(&[0x80; 11]), Err(SrtpError::TooShort));
        assert_eq!(parse_rtp(&[0x40; 12]), Err(SrtpError::Malformed));
        assert_eq!(parse_rtp(&[0x8f; 12]), Err(SrtpError::Malformed));
        assert_eq!(parse_rtcp(&[0x80; 7]), Err(SrtpError::TooShort));
        assert_eq!(parse_rtcp(&[0x00; 8]), Err(SrtpError::Malformed));
    }
}
