//! RTCP (RFC 3550 §6): compound packets, sender and receiver reports, SDES,
//! BYE; transport and payload-specific feedback (RFC 4585: generic NACK,
//! PLI; RFC 5104: FIR); REMB (draft-alvestrand-rmcat-remb) and the framing
//! of transport-wide congestion control feedback
//! (draft-holmer-rmcat-transport-wide-cc-extensions).
//!
//! [`RtcpIter`] walks a compound packet; each packet is validated whole
//! (version, length within the buffer, padding, counts against the length)
//! before it is yielded, and the first malformed one ends the walk. Views
//! borrow the buffer; their iterators never fail. The `write_*` functions
//! append one packet to a buffer the caller owns and return its length.

#![deny(clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

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
/// Most report blocks, SSRCs or chunks a count field (5 bits) can say.
pub const MAX_COUNT: usize = 31;
/// The SDES item type of CNAME.
pub const SDES_CNAME: u8 = 1;

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
    /// The count field, padding or item structure does not fit the length.
    #[error("RTCP count does not match its length")]
    BadCount,
    /// The output buffer is too small.
    #[error("buffer too small for the RTCP packet")]
    BufferTooSmall,
    /// Too many items (or too long a value) to write in one packet.
    #[error("too many items for one RTCP packet")]
    TooMany,
    /// Nothing to write (a NACK without lost packets).
    #[error("nothing to write in the RTCP packet")]
    Empty,
}

/// One report block of a sender or receiver report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// SSRC of the stream reported on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (24-bit signed; clamped on write).
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
        // Sign-extend the low 24 bits.
        let cumulative = ((lost << 8) as i32) >> 8;
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

    fn write(&self, out: &mut [u8]) -> Result<(), RtcpError> {
        let lost = (u32::from(self.fraction_lost) << 24)
            | ((self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff);
        put(out, 0, &self.ssrc.to_be_bytes())?;
        put(out, 4, &lost.to_be_bytes())?;
        put(out, 8, &self.highest_seq.to_be_bytes())?;
        put(out, 12, &self.jitter.to_be_bytes())?;
        put(out, 16, &self.lsr.to_be_bytes())?;
        put(out, 20, &self.dlsr.to_be_bytes())
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

/// A source description (SDES), validated chunk by chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sdes<'a> {
    chunks: &'a [u8],
}

impl<'a> Sdes<'a> {
    /// Its chunks.
    pub fn chunks(&self) -> SdesChunks<'a> {
        SdesChunks { raw: self.chunks }
    }

    /// The CNAME of `ssrc`, if a chunk gives one.
    pub fn cname(&self, ssrc: u32) -> Option<&'a [u8]> {
        self.chunks()
            .filter(|c| c.ssrc == ssrc)
            .find_map(|c| c.items().find(|(t, _)| *t == SDES_CNAME).map(|(_, v)| v))
    }
}

/// Iterator over the chunks of an SDES packet.
#[derive(Debug, Clone)]
pub struct SdesChunks<'a> {
    raw: &'a [u8],
}

/// One SDES chunk: an SSRC and its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    /// SSRC or CSRC described.
    pub ssrc: u32,
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    /// Its items as `(type, value)`.
    pub fn items(&self) -> SdesItems<'a> {
        SdesItems { raw: self.items }
    }
}

/// Iterator over the items of an SDES chunk, as `(type, value)`.
#[derive(Debug, Clone)]
pub struct SdesItems<'a> {
    raw: &'a [u8],
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = (u8, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let t = *self.raw.first()?;
        if t == 0 {
            return None;
        }
        let l = usize::from(*self.raw.get(1)?);
        let v = self.raw.get(2..2 + l)?;
        self.raw = self.raw.get(2 + l..).unwrap_or(&[]);
        Some((t, v))
    }
}

/// Length of the SDES chunk at the start of `b` (SSRC, items, the null
/// item and padding to a word), if it is well formed.
fn sdes_chunk_len(b: &[u8]) -> Option<usize> {
    be32(b, 0)?;
    let mut at = 4;
    loop {
        let t = *b.get(at)?;
        if t == 0 {
            // The null item, then padding to the next word.
            let end = (at + 1).div_ceil(4) * 4;
            return b.get(..end).map(<[u8]>::len);
        }
        let l = usize::from(*b.get(at + 1)?);
        at += 2 + l;
    }
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = SdesChunk<'a>;
    fn next(&mut self) -> Option<SdesChunk<'a>> {
        let len = sdes_chunk_len(self.raw)?;
        let chunk = SdesChunk {
            ssrc: be32(self.raw, 0)?,
            items: self.raw.get(4..len)?,
        };
        self.raw = self.raw.get(len..).unwrap_or(&[]);
        Some(chunk)
    }
}

/// A goodbye (BYE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bye<'a> {
    ssrcs: &'a [u8],
    reason: Option<&'a [u8]>,
}

impl<'a> Bye<'a> {
    /// The sources leaving.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.ssrcs.chunks_exact(4).filter_map(|c| be32(c, 0))
    }

    /// The reason given, if any.
    pub fn reason(&self) -> Option<&'a [u8]> {
        self.reason
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
    /// Its (PID, BLP) pairs.
    pub fn items(&self) -> impl Iterator<Item = (u16, u16)> + 'a {
        self.fci
            .chunks_exact(4)
            .filter_map(|c| Some((be16(c, 0)?, be16(c, 2)?)))
    }

    /// The lost sequence numbers, from every (PID, BLP) pair: PID, then
    /// PID + i for every bit i-1 set in BLP.
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

impl<'a> Fir<'a> {
    /// Its entries.
    pub fn entries(&self) -> impl Iterator<Item = FirEntry> + 'a {
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
    /// The estimate (saturates at `u64::MAX`).
    pub bitrate_bps: u64,
    ssrcs: &'a [u8],
}

impl<'a> Remb<'a> {
    /// The SSRCs it applies to.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + 'a {
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
    /// The feedback control information (after the media SSRC).
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
    /// SDES.
    Sdes(Sdes<'a>),
    /// BYE.
    Bye(Bye<'a>),
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
        /// The whole packet, padding excluded.
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

/// Parse the packet at the start of `b`; returns it and its length.
fn parse_one(b: &[u8]) -> Result<(RtcpPacket<'_>, usize), RtcpError> {
    let b0 = *b.first().ok_or(RtcpError::Truncated)?;
    let packet_type = *b.get(1).ok_or(RtcpError::Truncated)?;
    let words = be16(b, 2).ok_or(RtcpError::Truncated)?;
    if b0 >> 6 != 2 {
        return Err(RtcpError::BadVersion);
    }
    let count = b0 & 0x1f;
    let len = (usize::from(words) + 1) * 4;
    let p = b.get(..len).ok_or(RtcpError::Truncated)?;
    // Padding (P bit) sits at the end of the packet, its length in the last
    // byte; bodies are cut before it.
    let body_end = if b0 & 0x20 != 0 {
        let pad = usize::from(*p.last().ok_or(RtcpError::Truncated)?);
        if pad == 0 || pad > len - 4 {
            return Err(RtcpError::BadCount);
        }
        len - pad
    } else {
        len
    };
    let p = p.get(..body_end).ok_or(RtcpError::Truncated)?;
    let word = |at: usize| be32(p, at).ok_or(RtcpError::Truncated);
    let range = |from: usize, to: usize| p.get(from..to).ok_or(RtcpError::BadCount);
    let pkt = match packet_type {
        pt::SR => {
            let need = 28 + REPORT_BLOCK_LEN * usize::from(count);
            let blocks = range(28, need)?;
            RtcpPacket::SenderReport(SenderReport {
                ssrc: word(4)?,
                ntp: (u64::from(word(8)?) << 32) | u64::from(word(12)?),
                rtp_timestamp: word(16)?,
                packet_count: word(20)?,
                octet_count: word(24)?,
                blocks,
            })
        }
        pt::RR => {
            let need = 8 + REPORT_BLOCK_LEN * usize::from(count);
            let blocks = range(8, need)?;
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: word(4)?,
                blocks,
            })
        }
        pt::SDES => {
            let mut at = 4;
            for _ in 0..count {
                let rest = p.get(at..).ok_or(RtcpError::BadCount)?;
                at += sdes_chunk_len(rest).ok_or(RtcpError::BadCount)?;
            }
            RtcpPacket::Sdes(Sdes {
                chunks: range(4, at)?,
            })
        }
        pt::BYE => {
            let need = 4 + 4 * usize::from(count);
            let ssrcs = range(4, need)?;
            let reason = match p.get(need) {
                Some(&l) => Some(range(need + 1, need + 1 + usize::from(l))?),
                None => None,
            };
            RtcpPacket::Bye(Bye { ssrcs, reason })
        }
        pt::RTPFB | pt::PSFB => {
            let sender_ssrc = word(4)?;
            let media_ssrc = word(8)?;
            let fci = p.get(12..).ok_or(RtcpError::Truncated)?;
            match (packet_type, count) {
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
                    let m = be32(fci, 4).ok_or(RtcpError::Truncated)?;
                    let exp = (m >> 18) & 0x3f;
                    let mantissa = u64::from(m & 0x3_ffff);
                    // Saturate rather than lose the high bits.
                    let bitrate_bps = if mantissa != 0 && exp > mantissa.leading_zeros() {
                        u64::MAX
                    } else {
                        mantissa << exp
                    };
                    let ssrcs = fci.get(8..8 + 4 * n).ok_or(RtcpError::BadCount)?;
                    RtcpPacket::Remb(Remb {
                        sender_ssrc,
                        bitrate_bps,
                        ssrcs,
                    })
                }
                _ => RtcpPacket::Other {
                    pt: packet_type,
                    fmt: count,
                    raw: p,
                },
            }
        }
        t => RtcpPacket::Other {
            pt: t,
            fmt: count,
            raw: p,
        },
    };
    Ok((pkt, len))
}

fn put(buf: &mut [u8], at: usize, src: &[u8]) -> Result<(), RtcpError> {
    buf.get_mut(at..at + src.len())
        .ok_or(RtcpError::BufferTooSmall)?
        .copy_from_slice(src);
    Ok(())
}

/// The first `len` bytes of `buf`, zeroed, with an RTCP header written.
fn packet(buf: &mut [u8], count: u8, packet_type: u8, len: usize) -> Result<&mut [u8], RtcpError> {
    let words = u16::try_from(len / 4 - 1).map_err(|_| RtcpError::TooMany)?;
    let out = buf.get_mut(..len).ok_or(RtcpError::BufferTooSmall)?;
    out.fill(0);
    put(out, 0, &[0x80 | (count & 0x1f), packet_type])?;
    put(out, 2, &words.to_be_bytes())?;
    Ok(out)
}

fn write_blocks(out: &mut [u8], at: usize, blocks: &[ReportBlock]) -> Result<(), RtcpError> {
    let area = out.get_mut(at..).ok_or(RtcpError::BufferTooSmall)?;
    for (chunk, b) in area.chunks_exact_mut(REPORT_BLOCK_LEN).zip(blocks) {
        b.write(chunk)?;
    }
    Ok(())
}

/// Write a sender report with up to 31 report blocks; returns its length.
pub fn write_sender_report(
    buf: &mut [u8],
    ssrc: u32,
    ntp: u64,
    rtp_timestamp: u32,
    packet_count: u32,
    octet_count: u32,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    if blocks.len() > MAX_COUNT {
        return Err(RtcpError::TooMany);
    }
    let len = 28 + REPORT_BLOCK_LEN * blocks.len();
    let out = packet(buf, blocks.len() as u8, pt::SR, len)?;
    put(out, 4, &ssrc.to_be_bytes())?;
    put(out, 8, &ntp.to_be_bytes())?;
    put(out, 16, &rtp_timestamp.to_be_bytes())?;
    put(out, 20, &packet_count.to_be_bytes())?;
    put(out, 24, &octet_count.to_be_bytes())?;
    write_blocks(out, 28, blocks)?;
    Ok(len)
}

/// Write a receiver report with up to 31 report blocks; returns its length.
pub fn write_receiver_report(
    buf: &mut [u8],
    ssrc: u32,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    if blocks.len() > MAX_COUNT {
        return Err(RtcpError::TooMany);
    }
    let len = 8 + REPORT_BLOCK_LEN * blocks.len();
    let out = packet(buf, blocks.len() as u8, pt::RR, len)?;
    put(out, 4, &ssrc.to_be_bytes())?;
    write_blocks(out, 8, blocks)?;
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
    let out = packet(buf, fmt, packet_type, 12 + fci_len)?;
    put(out, 4, &sender.to_be_bytes())?;
    put(out, 8, &media.to_be_bytes())?;
    out.get_mut(12..).ok_or(RtcpError::BufferTooSmall)
}

/// Write a PLI; returns its length (12).
pub fn write_pli(buf: &mut [u8], sender_ssrc: u32, media_ssrc: u32) -> Result<usize, RtcpError> {
    write_feedback(buf, pt::PSFB, 1, sender_ssrc, media_ssrc, 0)?;
    Ok(12)
}

/// Write a FIR with one entry for `media_ssrc` with command sequence
/// number `seq`; returns its length (20).
pub fn write_fir(
    buf: &mut [u8],
    sender_ssrc: u32,
    media_ssrc: u32,
    seq: u8,
) -> Result<usize, RtcpError> {
    let fci = write_feedback(buf, pt::PSFB, 4, sender_ssrc, 0, 8)?;
    put(fci, 0, &media_ssrc.to_be_bytes())?;
    put(fci, 4, &[seq])?;
    Ok(20)
}

/// Pack `lost` into (PID, BLP) pairs, calling `emit` for each: a sequence
/// number within 16 after the current PID sets its bit, any other starts a
/// new pair. Returns the number of pairs.
fn nack_pairs(lost: &[u16], mut emit: impl FnMut(usize, u16, u16)) -> usize {
    let mut n = 0usize;
    let mut cur: Option<(u16, u16)> = None;
    for &s in lost {
        match cur {
            Some((p, blp)) if (1..=16).contains(&s.wrapping_sub(p)) => {
                cur = Some((p, blp | (1 << (s.wrapping_sub(p) - 1))));
            }
            _ => {
                if let Some((p, blp)) = cur {
                    emit(n, p, blp);
                    n += 1;
                }
                cur = Some((s, 0));
            }
        }
    }
    if let Some((p, blp)) = cur {
        emit(n, p, blp);
        n += 1;
    }
    n
}

/// Write a generic NACK for the sequence numbers in `lost` (best packed
/// when in increasing order modulo wrap; any order is correct), as (PID,
/// BLP) pairs; returns its length.
pub fn write_nack(
    buf: &mut [u8],
    sender_ssrc: u32,
    media_ssrc: u32,
    lost: &[u16],
) -> Result<usize, RtcpError> {
    let pairs = nack_pairs(lost, |_, _, _| {});
    if pairs == 0 {
        return Err(RtcpError::Empty);
    }
    let fci = write_feedback(buf, pt::RTPFB, 1, sender_ssrc, media_ssrc, 4 * pairs)?;
    nack_pairs(lost, |i, pid, blp| {
        if let Some(c) = fci.get_mut(4 * i..4 * i + 4) {
            let [a, b] = pid.to_be_bytes();
            let [c2, d] = blp.to_be_bytes();
            c.copy_from_slice(&[a, b, c2, d]);
        }
    });
    Ok(12 + 4 * pairs)
}

/// Write an SDES packet with one chunk carrying a CNAME (at most 255
/// bytes); returns its length.
pub fn write_sdes_cname(buf: &mut [u8], ssrc: u32, cname: &[u8]) -> Result<usize, RtcpError> {
    let l = u8::try_from(cname.len()).map_err(|_| RtcpError::TooMany)?;
    // SSRC, CNAME item (type, len, text), then at least one null, to a word.
    let body = 4 + 2 + cname.len() + 1;
    let len = 4 + body.div_ceil(4) * 4;
    let out = packet(buf, 1, pt::SDES, len)?;
    put(out, 4, &ssrc.to_be_bytes())?;
    put(out, 8, &[SDES_CNAME, l])?;
    put(out, 10, cname)?;
    Ok(len)
}

/// Write a BYE for up to 31 `ssrcs`, with an optional `reason` (at most
/// 255 bytes); returns its length.
pub fn write_bye(buf: &mut [u8], ssrcs: &[u32], reason: Option<&[u8]>) -> Result<usize, RtcpError> {
    if ssrcs.len() > MAX_COUNT {
        return Err(RtcpError::TooMany);
    }
    let reason_len = match reason {
        Some(r) => Some(u8::try_from(r.len()).map_err(|_| RtcpError::TooMany)?),
        None => None,
    };
    let body = 4 * ssrcs.len() + reason.map_or(0, |r| 1 + r.len());
    let len = 4 + body.div_ceil(4) * 4;
    let out = packet(buf, ssrcs.len() as u8, pt::BYE, len)?;
    for (i, s) in ssrcs.iter().enumerate() {
        put(out, 4 + 4 * i, &s.to_be_bytes())?;
    }
    if let (Some(r), Some(l)) = (reason, reason_len) {
        let at = 4 + 4 * ssrcs.len();
        put(out, at, &[l])?;
        put(out, at + 1, r)?;
    }
    Ok(len)
}

/// Write a REMB for up to 255 `ssrcs`; returns its length. The bitrate is
/// rounded down to 18 bits of mantissa.
pub fn write_remb(
    buf: &mut [u8],
    sender_ssrc: u32,
    bitrate_bps: u64,
    ssrcs: &[u32],
) -> Result<usize, RtcpError> {
    let n = u8::try_from(ssrcs.len()).map_err(|_| RtcpError::TooMany)?;
    let fci = write_feedback(buf, pt::PSFB, 15, sender_ssrc, 0, 8 + 4 * ssrcs.len())?;
    let mut exp = 0u32;
    let mut mantissa = bitrate_bps;
    while mantissa > 0x3ffff {
        mantissa >>= 1;
        exp += 1;
    }
    let m = (exp << 18) | mantissa as u32;
    put(fci, 0, b"REMB")?;
    put(fci, 4, &m.to_be_bytes())?;
    put(fci, 4, &[n])?;
    for (i, s) in ssrcs.iter().enumerate() {
        put(fci, 8 + 4 * i, &s.to_be_bytes())?;
    }
    Ok(20 + 4 * ssrcs.len())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)]
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

    /// A compound SR + SDES as a browser sends it, typed byte by byte.
    #[test]
    fn browser_sr_and_sdes() {
        let p: [u8; 76] = [
            0x81, 0xc8, 0x00, 0x0c, // SR, RC=1, 13 words
            0x11, 0x22, 0x33, 0x44, // sender SSRC
            0xe8, 0x3a, 0x1f, 0x0e, 0x80, 0x00, 0x00, 0x00, // NTP
            0x00, 0x0f, 0x42, 0x40, // RTP timestamp 1_000_000
            0x00, 0x00, 0x03, 0xe8, // 1000 packets
            0x00, 0x01, 0x86, 0xa0, // 100_000 octets
            0xaa, 0xbb, 0xcc, 0xdd, // report block SSRC
            0x19, 0xff, 0xff, 0xfe, // 10% lost, cumulative -2
            0x00, 0x01, 0x00, 0x10, // highest seq (1 cycle, 16)
            0x00, 0x00, 0x00, 0x2a, // jitter 42
            0x3a, 0x1f, 0x0e, 0x80, // LSR
            0x00, 0x00, 0x80, 0x00, // DLSR 0.5 s
            0x81, 0xca, 0x00, 0x05, // SDES, SC=1, 6 words
            0x11, 0x22, 0x33, 0x44, // chunk SSRC
            0x01, 0x0a, b'u', b's', b'e', b'r', b'@', b'h', b'o', b's', b't', b'1', // CNAME
            0x00, 0x00, 0x00, 0x00, // end, padding
        ];
        let pkts: Vec<_> = RtcpIter::new(&p).collect::<Result<_, _>>().unwrap();
        assert_eq!(pkts.len(), 2);
        let RtcpPacket::SenderReport(sr) = pkts[0] else {
            panic!("{:?}", pkts[0]);
        };
        assert_eq!(sr.ssrc, 0x1122_3344);
        assert_eq!(sr.ntp, 0xe83a_1f0e_8000_0000);
        assert_eq!(
            (sr.rtp_timestamp, sr.packet_count, sr.octet_count),
            (1_000_000, 1000, 100_000)
        );
        let blocks: Vec<_> = sr.reports().collect();
        assert_eq!(
            blocks,
            vec![ReportBlock {
                ssrc: 0xaabb_ccdd,
                fraction_lost: 25,
                cumulative_lost: -2,
                highest_seq: 0x0001_0010,
                jitter: 42,
                lsr: 0x3a1f_0e80,
                dlsr: 0x8000,
            }]
        );
        let RtcpPacket::Sdes(sdes) = pkts[1] else {
            panic!("{:?}", pkts[1]);
        };
        assert_eq!(sdes.cname(0x1122_3344), Some(&b"user@host1"[..]));
        assert_eq!(sdes.cname(1), None);
        let chunks: Vec<_> = sdes.chunks().collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].items().count(), 1);

        // The writers give the same bytes.
        let mut buf = [0u8; 128];
        let mut n = write_sender_report(
            &mut buf,
            sr.ssrc,
            sr.ntp,
            sr.rtp_timestamp,
            sr.packet_count,
            sr.octet_count,
            &blocks,
        )
        .unwrap();
        n += write_sdes_cname(&mut buf[n..], 0x1122_3344, b"user@host1").unwrap();
        assert_eq!(&buf[..n], &p[..]);

        // An SDES whose count says two chunks but holds one.
        let mut q = p;
        q[52] = 0x82;
        let r: Vec<_> = RtcpIter::new(&q).collect();
        assert_eq!(r[1], Err(RtcpError::BadCount));
        // A chunk without its null item.
        let mut q = p;
        q[72] = 0x05;
        q[73] = 0x05;
        let r: Vec<_> = RtcpIter::new(&q).collect();
        assert_eq!(r[1], Err(RtcpError::BadCount));
    }

    #[test]
    fn nack_pid_blp_expansion() {
        // PID 1000, BLP 0b1000_0000_0000_0101: 1000, 1001, 1003, 1016;
        // PID 65534, BLP 0b11: 65534, 65535, 0 (wrap).
        let p = [
            0x81, 0xcd, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 2, 0x03, 0xe8, 0x80, 0x05, 0xff, 0xfe,
            0x00, 0x03,
        ];
        let r: Vec<_> = RtcpIter::new(&p).collect();
        let Ok(RtcpPacket::Nack(nack)) = r[0] else {
            panic!("{r:?}");
        };
        assert_eq!((nack.sender_ssrc, nack.media_ssrc), (1, 2));
        assert_eq!(
            nack.items().collect::<Vec<_>>(),
            vec![(1000, 0x8005), (65534, 3)]
        );
        let lost: Vec<u16> = nack.lost().collect();
        assert_eq!(lost, vec![1000, 1001, 1003, 1016, 65534, 65535, 0]);
        // Writing the expansion packs it back into the same pairs.
        let mut buf = [0u8; 64];
        let n = write_nack(&mut buf, 1, 2, &lost).unwrap();
        assert_eq!(&buf[..n], &p[..]);
        // 17 after PID needs a second pair; unsorted input stays correct.
        let n = write_nack(&mut buf, 1, 2, &[10, 27, 5, 11]).unwrap();
        let Some(Ok(RtcpPacket::Nack(nack))) = RtcpIter::new(&buf[..n]).next() else {
            panic!();
        };
        assert_eq!(nack.lost().collect::<Vec<_>>(), vec![10, 27, 5, 11]);
        assert_eq!(write_nack(&mut buf, 1, 2, &[]), Err(RtcpError::Empty));
        assert_eq!(
            write_nack(&mut buf[..15], 1, 2, &[1]),
            Err(RtcpError::BufferTooSmall)
        );
    }

    #[test]
    fn fir_pli_bye_remb_from_bytes() {
        let p = [
            // FIR with two entries.
            0x84, 0xce, 0x00, 0x06, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9, 42, 0, 0, 0, 0, 0, 0, 10,
            43, 0, 0, 0, // PLI.
            0x81, 0xce, 0x00, 0x02, 0, 0, 0, 7, 0, 0, 0, 9, // BYE, two SSRCs, reason "gone".
            0x82, 0xcb, 0x00, 0x04, 0, 0, 0, 9, 0, 0, 0, 10, 4, b'g', b'o', b'n', b'e', 0, 0, 0,
        ];
        let r: Vec<_> = RtcpIter::new(&p).collect::<Result<_, _>>().unwrap();
        assert_eq!(r.len(), 3);
        let RtcpPacket::Fir(fir) = r[0] else {
            panic!("{:?}", r[0]);
        };
        assert_eq!(fir.sender_ssrc, 7);
        assert_eq!(
            fir.entries().collect::<Vec<_>>(),
            vec![
                FirEntry { ssrc: 9, seq: 42 },
                FirEntry { ssrc: 10, seq: 43 }
            ]
        );
        assert_eq!(
            r[1],
            RtcpPacket::Pli(Pli {
                sender_ssrc: 7,
                media_ssrc: 9
            })
        );
        let RtcpPacket::Bye(bye) = r[2] else {
            panic!("{:?}", r[2]);
        };
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), vec![9, 10]);
        assert_eq!(bye.reason(), Some(&b"gone"[..]));
        let mut buf = [0u8; 64];
        let n = write_bye(&mut buf, &[9, 10], Some(b"gone")).unwrap();
        assert_eq!(&buf[..n], &p[40..]);
        let n = write_fir(&mut buf, 7, 9, 42).unwrap();
        // Same as the first entry of the FIR above, with its own length.
        assert_eq!(n, 20);
        assert_eq!(&buf[..3], &p[..3]);
        assert_eq!(buf[3], 4);
        assert_eq!(&buf[4..20], &p[4..20]);
        // A BYE reason running past the packet.
        let mut q = p;
        q[52] = 9;
        assert_eq!(RtcpIter::new(&q).nth(2), Some(Err(RtcpError::BadCount)));

        // REMB: exponent 63 saturates; mantissa 0 is 0 whatever the exponent.
        let mut remb = [
            0x8f, 0xce, 0x00, 0x05, 0, 0, 0, 1, 0, 0, 0, 0, b'R', b'E', b'M', b'B', 1, 0xff, 0xff,
            0xff, 0, 0, 0, 5,
        ];
        let Some(Ok(RtcpPacket::Remb(r))) = RtcpIter::new(&remb).next() else {
            panic!();
        };
        assert_eq!(r.bitrate_bps, u64::MAX);
        assert_eq!(r.ssrcs().collect::<Vec<_>>(), vec![5]);
        remb[17..20].copy_from_slice(&[0xfc, 0, 0]);
        let Some(Ok(RtcpPacket::Remb(r))) = RtcpIter::new(&remb).next() else {
            panic!();
        };
        assert_eq!(r.bitrate_bps, 0);
        // 1 SSRC announced, 2 present is fine; 2 announced, 1 present is not.
        remb[16] = 2;
        assert_eq!(RtcpIter::new(&remb).next(), Some(Err(RtcpError::BadCount)));
        let n = write_remb(&mut buf, 1, 1_000_000, &[5]).unwrap();
        let Some(Ok(RtcpPacket::Remb(r))) = RtcpIter::new(&buf[..n]).next() else {
            panic!();
        };
        assert_eq!(r.bitrate_bps, 1_000_000);
    }

    #[test]
    fn writers_refuse_what_does_not_fit() {
        let mut buf = [0u8; 2048];
        let blocks = [ReportBlock::default(); 32];
        assert_eq!(
            write_receiver_report(&mut buf, 1, &blocks),
            Err(RtcpError::TooMany)
        );
        assert_eq!(
            write_sender_report(&mut buf, 1, 0, 0, 0, 0, &blocks[..31]).map(|n| n % 4),
            Ok(0)
        );
        assert_eq!(
            write_sender_report(&mut buf[..27], 1, 0, 0, 0, 0, &[]),
            Err(RtcpError::BufferTooSmall)
        );
        assert_eq!(
            write_sdes_cname(&mut buf, 1, &[b'a'; 256]),
            Err(RtcpError::TooMany)
        );
        assert_eq!(
            write_pli(&mut buf[..11], 1, 2),
            Err(RtcpError::BufferTooSmall)
        );
        // Cumulative loss is clamped to 24 bits signed.
        let b = ReportBlock {
            cumulative_lost: -10_000_000,
            ..Default::default()
        };
        let n = write_receiver_report(&mut buf, 1, &[b]).unwrap();
        let Some(Ok(RtcpPacket::ReceiverReport(rr))) = RtcpIter::new(&buf[..n]).next() else {
            panic!();
        };
        assert_eq!(rr.reports().next().unwrap().cumulative_lost, -0x80_0000);
        // Every SDES CNAME length pads to a word and parses back.
        for l in 0..=255usize {
            let cname = vec![b'x'; l];
            let n = write_sdes_cname(&mut buf, 3, &cname).unwrap();
            assert_eq!(n % 4, 0);
            let Some(Ok(RtcpPacket::Sdes(s))) = RtcpIter::new(&buf[..n]).next() else {
                panic!("{l}");
            };
            assert_eq!(s.cname(3), Some(&cname[..]));
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
