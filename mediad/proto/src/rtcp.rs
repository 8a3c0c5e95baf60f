//! RTCP (RFC 3550 §6): compound packets, sender and receiver reports, SDES,
//! BYE; transport and payload-specific feedback (RFC 4585: generic NACK,
//! PLI; RFC 5104: FIR); REMB and transport-wide congestion control framing.

use crate::{be16, be32};

/// Packet types.
pub mod pt {
    /// Sender report.
    pub const SR: u8 = 200;
    /// Receiver report.
    pub const RR: u8 = 201;
    /// Source description.
    pub const SDES: u8 = 202;
    /// Goodbye.
    pub const BYE: u8 = 203;
    /// Application-defined.
    pub const APP: u8 = 204;
    /// Transport-layer feedback.
    pub const RTPFB: u8 = 205;
    /// Payload-specific feedback.
    pub const PSFB: u8 = 206;
}

const REPORT_BLOCK_LEN: usize = 24;

/// Why an RTCP packet was refused or could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// Shorter than a header or than its length field says.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Version is not 2.
    #[error("RTCP version is not 2")]
    BadVersion,
    /// The count field does not fit the length.
    #[error("RTCP count does not match its length")]
    BadCount,
    /// The output buffer is too small.
    #[error("buffer too small for the RTCP packet")]
    BufferTooSmall,
    /// Too many items to write in one packet.
    #[error("too many items for one RTCP packet")]
    TooMany,
}

/// One report block of a sender or receiver report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// SSRC of the stream reported on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter.
    pub jitter: u32,
    /// Last SR timestamp (middle 32 bits of its NTP time).
    pub lsr: u32,
    /// Delay since last SR, in 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> Option<Self> {
        let lost = be32(b, 4)?;
        let cumulative = (lost & 0x00ff_ffff) as i32;
        let cumulative = if cumulative & 0x0080_0000 != 0 {
            cumulative - 0x0100_0000
        } else {
            cumulative
        };
        Some(Self {
            ssrc: be32(b, 0)?,
            fraction_lost: (lost >> 24) as u8,
            cumulative_lost: cumulative,
            highest_seq: be32(b, 8)?,
            jitter: be32(b, 12)?,
            lsr: be32(b, 16)?,
            dlsr: be32(b, 20)?,
        })
    }

    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        let lost = (u32::from(self.fraction_lost) << 24)
            | ((self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff);
        out[4..8].copy_from_slice(&lost.to_be_bytes());
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.lsr.to_be_bytes());
        out[20..24].copy_from_slice(&self.dlsr.to_be_bytes());
    }
}

/// Iterator over report blocks.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a> {
    raw: &'a [u8],
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        let b = ReportBlock::parse(self.raw.get(..REPORT_BLOCK_LEN)?)?;
        self.raw = self.raw.get(REPORT_BLOCK_LEN..).unwrap_or(&[]);
        Some(b)
    }
}

/// A sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport<'a> {
    /// Sender SSRC.
    pub ssrc: u32,
    /// NTP timestamp (64-bit fixed point).
    pub ntp: u64,
    /// RTP timestamp matching `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
    blocks: &'a [u8],
}

impl<'a> SenderReport<'a> {
    /// Its report blocks.
    pub fn reports(&self) -> ReportBlocks<'a> {
        ReportBlocks { raw: self.blocks }
    }
}

/// A receiver report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    /// Reporter SSRC.
    pub ssrc: u32,
    blocks: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    /// Its report blocks.
    pub fn reports(&self) -> ReportBlocks<'a> {
        ReportBlocks { raw: self.blocks }
    }
}

/// A generic NACK (RTPFB, FMT 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nack<'a> {
    /// Sender of the feedback.
    pub sender_ssrc: u32,
    /// The stream with losses.
    pub media_ssrc: u32,
    fci: &'a [u8],
}

impl<'a> Nack<'a> {
    /// The lost sequence numbers, from every (PID, BLP) pair.
    pub fn lost(&self) -> NackLost<'a> {
        NackLost {
            fci: self.fci,
            bit: 0,
        }
    }

    /// Number of (PID, BLP) pairs.
    pub fn pairs(&self) -> usize {
        self.fci.len() / 4
    }
}

/// Iterator over the sequence numbers a NACK asks for.
#[derive(Debug, Clone)]
pub struct NackLost<'a> {
    fci: &'a [u8],
    bit: u8,
}

impl Iterator for NackLost<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        loop {
            let pid = be16(self.fci, 0)?;
            let blp = be16(self.fci, 2)?;
            let bit = self.bit;
            if bit == 0 {
                self.bit = 1;
                return Some(pid);
            }
            if bit > 16 {
                self.fci = self.fci.get(4..).unwrap_or(&[]);
                self.bit = 0;
                continue;
            }
            self.bit += 1;
            if blp & (1 << (bit - 1)) != 0 {
                return Some(pid.wrapping_add(u16::from(bit)));
            }
        }
    }
}

/// A picture loss indication (PSFB, FMT 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pli {
    /// Sender of the feedback.
    pub sender_ssrc: u32,
    /// The stream that needs a key frame.
    pub media_ssrc: u32,
}

/// A full intra request (PSFB, FMT 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fir<'a> {
    /// Sender of the feedback.
    pub sender_ssrc: u32,
    fci: &'a [u8],
}

/// One FIR entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirEntry {
    /// The stream that needs a key frame.
    pub ssrc: u32,
    /// Command sequence number.
    pub seq: u8,
}

impl Fir<'_> {
    /// Its entries.
    pub fn entries(&self) -> impl Iterator<Item = FirEntry> + '_ {
        self.fci.chunks_exact(8).filter_map(|c| {
            Some(FirEntry {
                ssrc: be32(c, 0)?,
                seq: *c.get(4)?,
            })
        })
    }
}

/// Receiver estimated maximum bitrate (PSFB, FMT 15, "REMB").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remb<'a> {
    /// Sender of the feedback.
    pub sender_ssrc: u32,
    /// The estimate.
    pub bitrate_bps: u64,
    ssrcs: &'a [u8],
}

impl Remb<'_> {
    /// The SSRCs it applies to.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.ssrcs.chunks_exact(4).filter_map(|c| be32(c, 0))
    }
}

/// Transport-wide congestion control feedback (RTPFB, FMT 15), unparsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportCc<'a> {
    /// Sender of the feedback.
    pub sender_ssrc: u32,
    /// Media source (unused by the format).
    pub media_ssrc: u32,
    /// The feedback control information.
    pub fci: &'a [u8],
}

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpPacket<'a> {
    /// SR.
    SenderReport(SenderReport<'a>),
    /// RR.
    ReceiverReport(ReceiverReport<'a>),
    /// SDES (not parsed further).
    Sdes(&'a [u8]),
    /// BYE, with its SSRC list.
    Bye(&'a [u8]),
    /// Generic NACK.
    Nack(Nack<'a>),
    /// PLI.
    Pli(Pli),
    /// FIR.
    Fir(Fir<'a>),
    /// REMB.
    Remb(Remb<'a>),
    /// Transport-wide feedback.
    TransportCc(TransportCc<'a>),
    /// Anything else, as its type, count/format field and bytes.
    Other {
        /// Packet type.
        pt: u8,
        /// Count or FMT field.
        fmt: u8,
        /// The whole packet.
        raw: &'a [u8],
    },
}

/// Iterator over the packets of a compound RTCP packet. Yields one error
/// and stops at the first malformed packet.
#[derive(Debug, Clone)]
pub struct RtcpIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> RtcpIter<'a> {
    /// Iterate over `compound`.
    pub fn new(compound: &'a [u8]) -> Self {
        Self {
            rest: compound,
            failed: false,
        }
    }
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match parse_one(self.rest) {
            Ok((pkt, len)) => {
                self.rest = self.rest.get(len..).unwrap_or(&[]);
                Some(Ok(pkt))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn parse_one(b: &[u8]) -> Result<(RtcpPacket<'_>, usize), RtcpError> {
    if b.len() < 4 {
        return Err(RtcpError::Truncated);
    }
    let b0 = b[0];
    if b0 >> 6 != 2 {
        return Err(RtcpError::BadVersion);
    }
    let count = b0 & 0x1f;
    let packet_type = b[1];
    let len = (usize::from(be16(b, 2).ok_or(RtcpError::Truncated)?) + 1) * 4;
    let p = b.get(..len).ok_or(RtcpError::Truncated)?;
    // Padding (P bit) sits at the end of the packet; bodies never reach it
    // because every parser below bounds itself by counts.
    let body_end = if b0 & 0x20 != 0 {
        let pad = usize::from(*p.last().ok_or(RtcpError::Truncated)?);
        if pad == 0 || pad > len - 4 {
            return Err(RtcpError::BadCount);
        }
        len - pad
    } else {
        len
    };
    let p = &p[..body_end];
    let ssrc_at = |at: usize| be32(p, at).ok_or(RtcpError::Truncated);
    let pkt = match (packet_type, count) {
        (pt::SR, rc) => {
            let need = 28 + REPORT_BLOCK_LEN * usize::from(rc);
            if p.len() < need {
                return Err(RtcpError::BadCount);
            }
            let ntp = (u64::from(ssrc_at(8)?) << 32) | u64::from(ssrc_at(12)?);
            RtcpPacket::SenderReport(SenderReport {
                ssrc: ssrc_at(4)?,
                ntp,
                rtp_timestamp: ssrc_at(16)?,
                packet_count: ssrc_at(20)?,
                octet_count: ssrc_at(24)?,
                blocks: &p[28..need],
            })
        }
        (pt::RR, rc) => {
            let need = 8 + REPORT_BLOCK_LEN * usize::from(rc);
            if p.len() < need {
                return Err(RtcpError::BadCount);
            }
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: ssrc_at(4)?,
                blocks: &p[8..need],
            })
        }
        (pt::SDES, _) => RtcpPacket::Sdes(p),
        (pt::BYE, sc) => {
            let need = 4 + 4 * usize::from(sc);
            if p.len() < need {
                return Err(RtcpError::BadCount);
            }
            RtcpPacket::Bye(&p[4..need])
        }
        (pt::RTPFB | pt::PSFB, fmt) => {
            if p.len() < 12 {
                return Err(RtcpError::Truncated);
            }
            let sender_ssrc = ssrc_at(4)?;
            let media_ssrc = ssrc_at(8)?;
            let fci = &p[12..];
            match (packet_type, fmt) {
                (pt::RTPFB, 1) => {
                    if fci.is_empty() || fci.len() % 4 != 0 {
                        return Err(RtcpError::BadCount);
                    }
                    RtcpPacket::Nack(Nack {
                        sender_ssrc,
                        media_ssrc,
                        fci,
                    })
                }
                (pt::RTPFB, 15) => RtcpPacket::TransportCc(TransportCc {
                    sender_ssrc,
                    media_ssrc,
                    fci,
                }),
                (pt::PSFB, 1) => RtcpPacket::Pli(Pli {
                    sender_ssrc,
                    media_ssrc,
                }),
                (pt::PSFB, 4) => {
                    if fci.is_empty() || fci.len() % 8 != 0 {
                        return Err(RtcpError::BadCount);
                    }
                    RtcpPacket::Fir(Fir { sender_ssrc, fci })
                }
                (pt::PSFB, 15) if fci.get(..4) == Some(b"REMB") => {
                    let n = usize::from(*fci.get(4).ok_or(RtcpError::Truncated)?);
                    let exp = fci.get(5).ok_or(RtcpError::Truncated)? >> 2;
                    let mantissa = (u64::from(fci[5] & 0x03) << 16)
                        | (u64::from(*fci.get(6).ok_or(RtcpError::Truncated)?) << 8)
                        | u64::from(*fci.get(7).ok_or(RtcpError::Truncated)?);
                    let ssrcs = fci.get(8..8 + 4 * n).ok_or(RtcpError::BadCount)?;
                    RtcpPacket::Remb(Remb {
                        sender_ssrc,
                        bitrate_bps: mantissa.checked_shl(u32::from(exp)).unwrap_or(u64::MAX),
                        ssrcs,
                    })
                }
                _ => RtcpPacket::Other {
                    pt: packet_type,
                    fmt,
                    raw: p,
                },
            }
        }
        (t, c) => RtcpPacket::Other {
            pt: t,
            fmt: c,
            raw: p,
        },
    };
    Ok((pkt, len))
}

fn header(out: &mut [u8], count: u8, packet_type: u8, len: usize) {
    out[0] = 0x80 | (count & 0x1f);
    out[1] = packet_type;
    out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
}

/// Write a sender report; returns its length.
pub fn write_sender_report(
    buf: &mut [u8],
    ssrc: u32,
    ntp: u64,
    rtp_timestamp: u32,
    packet_count: u32,
    octet_count: u32,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    if blocks.len() > 31 {
        return Err(RtcpError::TooMany);
    }
    let len = 28 + REPORT_BLOCK_LEN * blocks.len();
    let out = buf.get_mut(..len).ok_or(RtcpError::BufferTooSmall)?;
    header(out, blocks.len() as u8, pt::SR, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    out[8..16].copy_from_slice(&ntp.to_be_bytes());
    out[16..20].copy_from_slice(&rtp_timestamp.to_be_bytes());
    out[20..24].copy_from_slice(&packet_count.to_be_bytes());
    out[24..28].copy_from_slice(&octet_count.to_be_bytes());
    for (i, b) in blocks.iter().enumerate() {
        b.write(&mut out[28 + i * REPORT_BLOCK_LEN..28 + (i + 1) * REPORT_BLOCK_LEN]);
    }
    Ok(len)
}

/// Write a receiver report; returns its length.
pub fn write_receiver_report(
    buf: &mut [u8],
    ssrc: u32,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    if blocks.len() > 31 {
        return Err(RtcpError::TooMany);
    }
    let len = 8 + REPORT_BLOCK_LEN * blocks.len();
    let out = buf.get_mut(..len).ok_or(RtcpError::BufferTooSmall)?;
    header(out, blocks.len() as u8, pt::RR, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    for (i, b) in blocks.iter().enumerate() {
        b.write(&mut out[8 + i * REPORT_BLOCK_LEN..8 + (i + 1) * REPORT_BLOCK_LEN]);
    }
    Ok(len)
}

fn write_feedback(
    buf: &mut [u8],
    packet_type: u8,
    fmt: u8,
    sender: u32,
    media: u32,
    fci_len: usize,
) -> Result<&mut [u8], RtcpError> {
    let len = 12 + fci_len;
    let out = buf.get_mut(..len).ok_or(RtcpError::BufferTooSmall)?;
    header(out, fmt, packet_type, len);
    out[4..8].copy_from_slice(&sender.to_be_bytes());
    out[8..12].copy_from_slice(&media.to_be_bytes());
    Ok(&mut out[12..])
}

/// Write a PLI; returns its length (12).
pub fn write_pli(buf: &mut [u8], sender_ssrc: u32, media_ssrc: u32) -> Result<usize, RtcpError> {
    write_feedback(buf, pt::PSFB, 1, sender_ssrc, media_ssrc, 0)?;
    Ok(12)
}

/// Write a FIR with one entry; returns its length (20).
pub fn write_fir(
    buf: &mut [u8],
    sender_ssrc: u32,
    media_ssrc: u32,
    seq: u8,
) -> Result<usize, RtcpError> {
    let fci = write_feedback(buf, pt::PSFB, 4, sender_ssrc, 0, 8)?;
    fci[0..4].copy_from_slice(&media_ssrc.to_be_bytes());
    fci[4] = seq;
    fci[5..8].fill(0);
    Ok(20)
}

/// Write a generic NACK for the sequence numbers in `lost` (in increasing
/// order modulo wrap), packed into (PID, BLP) pairs; returns its length.
pub fn write_nack(
    buf: &mut [u8],
    sender_ssrc: u32,
    media_ssrc: u32,
    lost: &[u16],
) -> Result<usize, RtcpError> {
    // Count pairs first.
    let mut pairs = 0usize;
    let mut pid: Option<u16> = None;
    for &s in lost {
        match pid {
            Some(p) if s.wrapping_sub(p) >= 1 && s.wrapping_sub(p) <= 16 => {}
            _ => {
                pairs += 1;
                pid = Some(s);
            }
        }
    }
    if pairs == 0 {
        return Err(RtcpError::TooMany);
    }
    let fci = write_feedback(buf, pt::RTPFB, 1, sender_ssrc, media_ssrc, 4 * pairs)?;
    let mut i = 0usize;
    let mut cur: Option<(u16, u16)> = None;
    for &s in lost {
        match cur {
            Some((p, blp)) if s.wrapping_sub(p) >= 1 && s.wrapping_sub(p) <= 16 => {
                cur = Some((p, blp | (1 << (s.wrapping_sub(p) - 1))));
            }
            _ => {
                if let Some((p, blp)) = cur {
                    fci[i..i + 2].copy_from_slice(&p.to_be_bytes());
                    fci[i + 2..i + 4].copy_from_slice(&blp.to_be_bytes());
                    i += 4;
                }
                cur = Some((s, 0));
            }
        }
    }
    if let Some((p, blp)) = cur {
        fci[i..i + 2].copy_from_slice(&p.to_be_bytes());
        fci[i + 2..i + 4].copy_from_slice(&blp.to_be_bytes());
    }
    Ok(12 + 4 * pairs)
}

/// Write an SDES packet with one chunk carrying a CNAME; returns its length.
pub fn write_sdes_cname(buf: &mut [u8], ssrc: u32, cname: &[u8]) -> Result<usize, RtcpError> {
    if cname.len() > 255 {
        return Err(RtcpError::TooMany);
    }
    // SSRC, CNAME item (type, len, text), then at least one null, to a word.
    let body = 4 + 2 + cname.len() + 1;
    let len = 4 + body.div_ceil(4) * 4;
    let out = buf.get_mut(..len).ok_or(RtcpError::BufferTooSmall)?;
    header(out, 1, pt::SDES, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    out[8] = 1;
    out[9] = cname.len() as u8;
    out[10..10 + cname.len()].copy_from_slice(cname);
    out[10 + cname.len()..].fill(0);
    Ok(len)
}

/// Write a REMB; returns its length.
pub fn write_remb(
    buf: &mut [u8],
    sender_ssrc: u32,
    bitrate_bps: u64,
    ssrcs: &[u32],
) -> Result<usize, RtcpError> {
    if ssrcs.len() > 255 {
        return Err(RtcpError::TooMany);
    }
    let fci = write_feedback(buf, pt::PSFB, 15, sender_ssrc, 0, 8 + 4 * ssrcs.len())?;
    let mut exp = 0u8;
    let mut mantissa = bitrate_bps;
    while mantissa > 0x3ffff {
        mantissa >>= 1;
        exp += 1;
    }
    fci[0..4].copy_from_slice(b"REMB");
    fci[4] = ssrcs.len() as u8;
    fci[5] = (exp << 2) | ((mantissa >> 16) as u8 & 0x03);
    fci[6] = (mantissa >> 8) as u8;
    fci[7] = mantissa as u8;
    for (i, s) in ssrcs.iter().enumerate() {
        fci[8 + 4 * i..12 + 4 * i].copy_from_slice(&s.to_be_bytes());
    }
    Ok(20 + 4 * ssrcs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(b: &[u8]) -> Vec<Result<RtcpPacket<'_>, RtcpError>> {
        RtcpIter::new(b).collect()
    }

    #[test]
    fn compound_round_trip() {
        let mut buf = [0u8; 1500];
        let block = ReportBlock {
            ssrc: 0x1111,
            fraction_lost: 12,
            cumulative_lost: -3,
            highest_seq: 70_000,
            jitter: 45,
            lsr: 0xabcd,
            dlsr: 65536,
        };
        let mut n = write_sender_report(
            &mut buf,
            7,
            0x0102_0304_0506_0708,
            90_000,
            10,
            1000,
            &[block],
        )
        .unwrap();
        n += write_sdes_cname(&mut buf[n..], 7, b"salon").unwrap();
        n += write_receiver_report(&mut buf[n..], 8, &[block, block]).unwrap();
        n += write_pli(&mut buf[n..], 8, 9).unwrap();
        n += write_fir(&mut buf[n..], 8, 9, 3).unwrap();
        n += write_nack(&mut buf[n..], 8, 9, &[100, 101, 116, 117, 65535, 2]).unwrap();
        n += write_remb(&mut buf[n..], 8, 2_500_000, &[9, 10]).unwrap();
        let pkts = all(&buf[..n]);
        assert_eq!(pkts.len(), 7);
        match pkts[0].unwrap() {
            RtcpPacket::SenderReport(sr) => {
                assert_eq!(
                    (
                        sr.ssrc,
                        sr.ntp,
                        sr.rtp_timestamp,
                        sr.packet_count,
                        sr.octet_count
                    ),
                    (7, 0x0102_0304_0506_0708, 90_000, 10, 1000)
                );
                assert_eq!(sr.reports().collect::<Vec<_>>(), vec![block]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(pkts[1].unwrap(), RtcpPacket::Sdes(_)));
        match pkts[2].unwrap() {
            RtcpPacket::ReceiverReport(rr) => assert_eq!(rr.reports().count(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pkts[3].unwrap(),
            RtcpPacket::Pli(Pli {
                sender_ssrc: 8,
                media_ssrc: 9
            })
        );
        match pkts[4].unwrap() {
            RtcpPacket::Fir(f) => assert_eq!(
                f.entries().collect::<Vec<_>>(),
                vec![FirEntry { ssrc: 9, seq: 3 }]
            ),
            other => panic!("{other:?}"),
        }
        match pkts[5].unwrap() {
            RtcpPacket::Nack(nack) => {
                assert_eq!(nack.media_ssrc, 9);
                assert_eq!(
                    nack.lost().collect::<Vec<_>>(),
                    vec![100, 101, 116, 117, 65535, 2]
                );
                assert_eq!(nack.pairs(), 3);
            }
            other => panic!("{other:?}"),
        }
        match pkts[6].unwrap() {
            RtcpPacket::Remb(r) => {
                assert!(r.bitrate_bps <= 2_500_000 && r.bitrate_bps > 2_490_000);
                assert_eq!(r.ssrcs().collect::<Vec<_>>(), vec![9, 10]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_packets_stop_iteration() {
        // Length 0xffff beyond the buffer.
        let p = [0x81, 200, 0xff, 0xff, 0, 0, 0, 1];
        assert_eq!(all(&p), vec![Err(RtcpError::Truncated)]);
        // Count inconsistent with length: RR claiming 5 blocks in 8 bytes.
        let p = [0x85, 201, 0, 1, 0, 0, 0, 1];
        assert_eq!(all(&p), vec![Err(RtcpError::BadCount)]);
        // Version 1.
        assert_eq!(
            all(&[0x41, 201, 0, 1, 0, 0, 0, 1]),
            vec![Err(RtcpError::BadVersion)]
        );
        // Truncated header after a good packet.
        let mut buf = [0u8; 20];
        let n = write_receiver_report(&mut buf, 1, &[]).unwrap();
        buf[n] = 0x80;
        let r = all(&buf[..n + 2]);
        assert!(r[0].is_ok());
        assert_eq!(r[1], Err(RtcpError::Truncated));
        // NACK with no FCI.
        let p = [0x81, 205, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(all(&p), vec![Err(RtcpError::BadCount)]);
        // Padding larger than the packet.
        let p = [0xa0, 201, 0, 1, 0, 0, 0, 9];
        assert_eq!(all(&p), vec![Err(RtcpError::BadCount)]);
        assert!(all(&[]).is_empty());
    }
}
