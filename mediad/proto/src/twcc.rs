//! Transport-wide congestion control feedback
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01): the feedback
//! control information of an RTPFB/FMT 15 packet
//! ([`crate::rtcp::TransportCc::fci`]) and the 2-byte transport-wide
//! sequence number header extension.
//!
//! FCI layout:
//!
//! ```text
//! base sequence number (16) | packet status count (16)
//! reference time (24, signed, 64 ms) | feedback packet count (8)
//! packet chunks (16 each) ... | receive deltas (8 or 16 each) ... | padding
//! ```
//!
//! A chunk is either a run length (`0 SS LLLLLLLLLLLLL`: 13-bit run of one
//! 2-bit symbol) or a status vector (`1 0` + fourteen 1-bit symbols, or
//! `1 1` + seven 2-bit symbols). Symbols: 0 not received, 1 received with a
//! small delta (one unsigned byte), 2 received with a large or negative
//! delta (two bytes, signed), 3 reserved (refused). Deltas count 250 µs.

use std::mem;

use crate::be16;
use crate::rtcp::{RtcpError, pt};

/// Microseconds per reference-time unit.
pub const REFERENCE_TIME_UNIT_US: i64 = 64_000;
/// Microseconds per receive-delta unit.
pub const DELTA_UNIT_US: i64 = 250;
const TICKS_PER_REF: i64 = REFERENCE_TIME_UNIT_US / DELTA_UNIT_US; // 256
const FCI_HEADER: usize = 8;
const RTCP_HEADER: usize = 12;
const MAX_RUN: usize = 0x1fff;

/// Why a transport-cc feedback was refused or could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TwccError {
    /// Shorter than its 8-byte header.
    #[error("transport-cc feedback truncated")]
    Truncated,
    /// The packet status count is zero.
    #[error("transport-cc feedback reports no packet")]
    Empty,
    /// The chunks end before the packet status count is covered.
    #[error("transport-cc chunks run past the end")]
    ChunksTruncated,
    /// Fewer receive deltas than the received symbols need.
    #[error("transport-cc receive deltas missing")]
    DeltasTruncated,
    /// A status symbol with the reserved value 3.
    #[error("transport-cc reserved status symbol")]
    ReservedSymbol,
    /// The output buffer (or the length limit) cannot hold one chunk.
    #[error("buffer too small for the transport-cc feedback")]
    BufferTooSmall,
    /// Nothing to write.
    #[error("no packets to report")]
    NothingToWrite,
}

impl From<TwccError> for RtcpError {
    fn from(e: TwccError) -> Self {
        match e {
            TwccError::BufferTooSmall => RtcpError::BufferTooSmall,
            TwccError::NothingToWrite => RtcpError::TooMany,
            _ => RtcpError::BadCount,
        }
    }
}

/// What the feedback says about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketStatus {
    /// Not received (yet).
    NotReceived,
    /// Received.
    Received {
        /// Arrival time minus the previous received packet's arrival time
        /// (or minus the reference time for the first), in µs.
        delta_us: i64,
        /// Arrival time in the feedback sender's time base: reference time
        /// plus every delta so far, in µs. Only differences are meaningful.
        arrival_us: i64,
    },
}

/// A parsed, validated transport-cc FCI. `Copy`, borrows the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwccFeedback<'a> {
    /// Transport-wide sequence number of the first packet reported.
    pub base_seq: u16,
    /// Number of packets reported.
    pub status_count: u16,
    /// Reference time (24-bit signed), in units of 64 ms.
    pub reference_time: i32,
    /// Feedback packet count (wraps at 256), to detect lost feedback.
    pub fb_count: u8,
    chunks: &'a [u8],
    deltas: &'a [u8],
}

/// One chunk, decoded.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    Run { symbol: u8, len: usize },
    OneBit(u16),
    TwoBit(u16),
}

impl Chunk {
    fn decode(c: u16) -> Self {
        if c & 0x8000 == 0 {
            Chunk::Run {
                symbol: ((c >> 13) & 0x3) as u8,
                len: usize::from(c & 0x1fff),
            }
        } else if c & 0x4000 == 0 {
            Chunk::OneBit(c)
        } else {
            Chunk::TwoBit(c)
        }
    }

    fn capacity(self) -> usize {
        match self {
            Chunk::Run { len, .. } => len,
            Chunk::OneBit(_) => 14,
            Chunk::TwoBit(_) => 7,
        }
    }

    fn symbol(self, i: usize) -> u8 {
        match self {
            Chunk::Run { symbol, .. } => symbol,
            Chunk::OneBit(c) => ((c >> (13 - i)) & 1) as u8,
            Chunk::TwoBit(c) => ((c >> (12 - 2 * i)) & 3) as u8,
        }
    }
}

fn delta_len(symbol: u8) -> usize {
    usize::from(symbol) // 0 → 0, 1 → 1, 2 → 2
}

impl<'a> TwccFeedback<'a> {
    /// Parse and validate a transport-cc FCI. Checks every chunk and that
    /// the receive deltas are present; trailing bytes (padding) are allowed.
    pub fn parse(fci: &'a [u8]) -> Result<Self, TwccError> {
        let Some((&[s0, s1, c0, c1, r0, r1, r2, fb_count], body)) =
            fci.split_first_chunk::<FCI_HEADER>()
        else {
            return Err(TwccError::Truncated);
        };
        let base_seq = u16::from_be_bytes([s0, s1]);
        let status_count = u16::from_be_bytes([c0, c1]);
        if status_count == 0 {
            return Err(TwccError::Empty);
        }
        let raw_ref = u32::from_be_bytes([0, r0, r1, r2]);
        let reference_time = ((raw_ref << 8) as i32) >> 8; // sign-extend 24 bits
        let mut at = 0;
        let mut left = usize::from(status_count);
        let mut delta_bytes = 0usize;
        while left > 0 {
            let c = be16(body, at).ok_or(TwccError::ChunksTruncated)?;
            at += 2;
            let chunk = Chunk::decode(c);
            let n = chunk.capacity().min(left);
            if let Chunk::Run { symbol, .. } = chunk {
                if symbol == 3 && n > 0 {
                    return Err(TwccError::ReservedSymbol);
                }
                delta_bytes += delta_len(symbol) * n;
            } else {
                for i in 0..n {
                    let s = chunk.symbol(i);
                    if s == 3 {
                        return Err(TwccError::ReservedSymbol);
                    }
                    delta_bytes += delta_len(s);
                }
            }
            left -= n;
        }
        // `at` is within `body`: the last chunk read ended there.
        let (chunks, rest) = body
            .split_at_checked(at)
            .ok_or(TwccError::ChunksTruncated)?;
        let deltas = rest.get(..delta_bytes).ok_or(TwccError::DeltasTruncated)?;
        Ok(Self {
            base_seq,
            status_count,
            reference_time,
            fb_count,
            chunks,
            deltas,
        })
    }

    /// The reference time in µs (may be negative: 24-bit signed).
    pub fn reference_time_us(&self) -> i64 {
        i64::from(self.reference_time) * REFERENCE_TIME_UNIT_US
    }

    /// Every packet reported, in sequence order, as `(seq, status)`.
    pub fn packets(&self) -> TwccPackets<'a> {
        TwccPackets {
            chunks: self.chunks,
            deltas: self.deltas,
            chunk_at: 0,
            in_chunk: 0,
            delta_at: 0,
            left: usize::from(self.status_count),
            seq: self.base_seq,
            arrival_us: self.reference_time_us(),
        }
    }
}

/// Iterator over the packets of a [`TwccFeedback`].
#[derive(Debug, Clone)]
pub struct TwccPackets<'a> {
    chunks: &'a [u8],
    deltas: &'a [u8],
    chunk_at: usize,
    in_chunk: usize,
    delta_at: usize,
    left: usize,
    seq: u16,
    arrival_us: i64,
}

impl Iterator for TwccPackets<'_> {
    type Item = (u16, PacketStatus);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let chunk = loop {
            let chunk = Chunk::decode(be16(self.chunks, self.chunk_at)?);
            if self.in_chunk < chunk.capacity() {
                break chunk;
            }
            self.chunk_at += 2;
            self.in_chunk = 0;
        };
        let symbol = chunk.symbol(self.in_chunk);
        self.in_chunk += 1;
        self.left -= 1;
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let status = match symbol {
            1 => {
                let d = i64::from(*self.deltas.get(self.delta_at)?);
                self.delta_at += 1;
                self.received(d)
            }
            2 => {
                let d = i64::from(be16(self.deltas, self.delta_at)? as i16);
                self.delta_at += 2;
                self.received(d)
            }
            _ => PacketStatus::NotReceived,
        };
        Some((seq, status))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

impl TwccPackets<'_> {
    fn received(&mut self, ticks: i64) -> PacketStatus {
        let delta_us = ticks * DELTA_UNIT_US;
        self.arrival_us += delta_us;
        PacketStatus::Received {
            delta_us,
            arrival_us: self.arrival_us,
        }
    }
}

/// What [`write_feedback`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwccWritten {
    /// Length of the RTCP packet written.
    pub len: usize,
    /// How many entries of the input it covers; write the rest (with the
    /// next feedback packet count) in another packet.
    pub consumed: usize,
}

/// The header fields of a feedback to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwccParams {
    /// Sender SSRC of the RTCP packet.
    pub sender_ssrc: u32,
    /// Media SSRC of the RTCP packet.
    pub media_ssrc: u32,
    /// Feedback packet count.
    pub fb_count: u8,
    /// Largest RTCP packet to write (bytes, at least 36 to be useful).
    pub max_len: usize,
}

/// Walks the input as a receiver's status symbols, with the deltas they
/// need. Stops at the end, before a delta that does not fit 16 bits, or at
/// 65535 symbols.
#[derive(Debug, Clone)]
struct Cursor<'a> {
    packets: &'a [(u16, Option<i64>)],
    idx: usize,
    seq: u16,
    emitted: usize,
    prev_ticks: i64,
}

fn ticks_of(us: i64) -> i64 {
    (us.saturating_add(DELTA_UNIT_US / 2)).div_euclid(DELTA_UNIT_US)
}

impl<'a> Cursor<'a> {
    /// Skip entries behind `seq` (duplicates, reordering) and return the
    /// arrival of the entry for `seq`, `Some(None)` if `seq` is a gap or
    /// not received, `None` at the end.
    fn peek(&mut self) -> Option<Option<i64>> {
        if self.emitted >= usize::from(u16::MAX) {
            return None;
        }
        loop {
            let &(s, arrival) = self.packets.get(self.idx)?;
            let ahead = s.wrapping_sub(self.seq);
            if ahead == 0 {
                return Some(arrival);
            }
            if ahead < 0x8000 {
                return Some(None); // a gap: not received
            }
            self.idx += 1;
        }
    }

    /// The next symbol and its delta (in ticks), advancing.
    fn next_symbol(&mut self) -> Option<(u8, i64)> {
        let arrival = self.peek()?;
        let (symbol, delta) = match arrival {
            None => (0, 0),
            Some(us) => {
                let t = ticks_of(us);
                let d = t - self.prev_ticks;
                if (0..=255).contains(&d) {
                    (1, d)
                } else if (i64::from(i16::MIN)..=i64::from(i16::MAX)).contains(&d) {
                    (2, d)
                } else {
                    return None;
                }
            }
        };
        if let Some(&(s, _)) = self.packets.get(self.idx)
            && s == self.seq
        {
            self.idx += 1;
        }
        if symbol != 0 {
            self.prev_ticks += delta;
        }
        self.seq = self.seq.wrapping_add(1);
        self.emitted += 1;
        Some((symbol, delta))
    }

    /// The next chunk: its 16-bit value, the symbols it covers and the
    /// delta bytes they need. Greedy: a run when at least 14 (or all that
    /// remain) symbols repeat; else a 1-bit vector when the next 14 hold no
    /// large delta; else a 2-bit vector of 7.
    fn next_chunk(&mut self, max_run: usize) -> Option<(u16, usize, usize)> {
        let mut look = self.clone();
        let (first, _) = look.next_symbol()?;
        let (mut run, mut seen) = (1usize, 1usize);
        let mut has_large = first == 2; // among the first 14
        let (mut broken, mut ended) = (false, false);
        while seen < max_run && !(broken && seen >= 14) {
            let Some((s, _)) = look.next_symbol() else {
                ended = true;
                break;
            };
            seen += 1;
            has_large |= seen <= 14 && s == 2;
            if !broken {
                if s == first {
                    run += 1;
                } else {
                    broken = true;
                }
            }
        }
        let remaining_all = ended && !broken;
        let capped = !broken && run >= max_run;
        if run >= 14 || remaining_all || capped {
            let n = run;
            let mut bytes = 0;
            for _ in 0..n {
                let (s, _) = self.next_symbol()?;
                bytes += delta_len(s);
            }
            return Some((((u16::from(first)) << 13) | n as u16, n, bytes));
        }
        if !has_large {
            let mut c = 0x8000u16;
            let (mut n, mut bytes) = (0, 0);
            while n < 14 {
                let Some((s, _)) = self.next_symbol() else {
                    break;
                };
                c |= u16::from(s) << (13 - n);
                bytes += delta_len(s);
                n += 1;
            }
            return Some((c, n, bytes));
        }
        let mut c = 0xc000u16;
        let (mut n, mut bytes) = (0, 0);
        while n < 7 {
            let Some((s, _)) = self.next_symbol() else {
                break;
            };
            c |= u16::from(s) << (12 - 2 * n);
            bytes += delta_len(s);
            n += 1;
        }
        Some((c, n, bytes))
    }
}

fn padded(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// Write one transport-cc RTCP packet (RTPFB, FMT 15) reporting on
/// `packets`, as a receiver: `(transport-wide seq, arrival time in µs)`
/// in increasing sequence order (modulo wrap); `None` or a missing
/// sequence number means not received. Entries behind the current sequence
/// number are skipped. Chooses run-length or status-vector chunks, keeps
/// the packet within `params.max_len` and `buf`, and ends it early before
/// an arrival delta that does not fit 16 bits (±8.2 s) — then
/// [`TwccWritten::consumed`] tells where the next packet starts.
///
/// The reference time is the first received packet's arrival rounded down
/// to 64 ms, wrapped to 24 bits. Zero padding to a 32-bit boundary.
pub fn write_feedback(
    buf: &mut [u8],
    params: &TwccParams,
    packets: &[(u16, Option<i64>)],
) -> Result<TwccWritten, TwccError> {
    let Some(&(base_seq, _)) = packets.first() else {
        return Err(TwccError::NothingToWrite);
    };
    let limit = params.max_len.min(buf.len());
    let ref_ticks = packets
        .iter()
        .find_map(|(_, a)| a.map(ticks_of))
        .unwrap_or(0)
        .div_euclid(TICKS_PER_REF);
    let start = Cursor {
        packets,
        idx: 0,
        seq: base_seq,
        emitted: 0,
        prev_ticks: ref_ticks * TICKS_PER_REF,
    };
    // Plan: how many chunks fit.
    let mut plan = start.clone();
    let (mut chunks, mut symbols, mut delta_bytes) = (0usize, 0usize, 0usize);
    let mut last_run = MAX_RUN;
    let room = limit - limit % 4;
    while let Some((c, n, bytes)) = plan.clone().next_chunk(MAX_RUN) {
        let fixed = RTCP_HEADER + FCI_HEADER + 2 * (chunks + 1) + delta_bytes;
        if fixed + bytes > room {
            // A long run of received packets: cut it to what fits.
            let symbol = usize::from((c >> 13) & 3);
            if c & 0x8000 == 0 && symbol > 0 && fixed < room {
                last_run = (room - fixed) / symbol;
                if last_run > 0
                    && let Some((_, n, bytes)) = plan.next_chunk(last_run)
                {
                    chunks += 1;
                    symbols += n;
                    delta_bytes += bytes;
                }
            }
            break;
        }
        let _ = plan.next_chunk(MAX_RUN);
        chunks += 1;
        symbols += n;
        delta_bytes += bytes;
    }
    if chunks == 0 {
        return Err(if plan.next_symbol().is_some() {
            TwccError::BufferTooSmall
        } else {
            TwccError::NothingToWrite
        });
    }
    let len = padded(RTCP_HEADER + FCI_HEADER + 2 * chunks + delta_bytes);
    let out = buf.get_mut(..len).ok_or(TwccError::BufferTooSmall)?;
    // The plan above sized `len` for the header, `chunks` chunks and the
    // deltas of `symbols` symbols: the splits below cannot fail.
    let (head, body) = out
        .split_first_chunk_mut::<{ RTCP_HEADER + FCI_HEADER }>()
        .ok_or(TwccError::BufferTooSmall)?;
    head[0] = 0x80 | 15;
    head[1] = pt::RTPFB;
    head[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    head[4..8].copy_from_slice(&params.sender_ssrc.to_be_bytes());
    head[8..12].copy_from_slice(&params.media_ssrc.to_be_bytes());
    head[12..14].copy_from_slice(&base_seq.to_be_bytes());
    head[14..16].copy_from_slice(&(symbols as u16).to_be_bytes());
    let [_, r0, r1, r2] = ((ref_ticks as u32) & 0x00ff_ffff).to_be_bytes();
    head[16..19].copy_from_slice(&[r0, r1, r2]);
    head[19] = params.fb_count;
    let (chunk_out, mut tail) = body
        .split_at_mut_checked(2 * chunks)
        .ok_or(TwccError::BufferTooSmall)?;
    // Chunks, then deltas from a second cursor over the same symbols.
    let mut w = start.clone();
    for (i, dst) in chunk_out.chunks_exact_mut(2).enumerate() {
        let max_run = if i + 1 == chunks { last_run } else { MAX_RUN };
        let (c, _, _) = w.next_chunk(max_run).ok_or(TwccError::BufferTooSmall)?;
        dst.copy_from_slice(&c.to_be_bytes());
    }
    let consumed = w.idx;
    let mut d = start;
    for _ in 0..symbols {
        let (s, delta) = d.next_symbol().ok_or(TwccError::BufferTooSmall)?;
        match s {
            1 => {
                let (dst, rest) = mem::take(&mut tail)
                    .split_first_mut()
                    .ok_or(TwccError::BufferTooSmall)?;
                *dst = delta as u8;
                tail = rest;
            }
            2 => {
                let (dst, rest) = mem::take(&mut tail)
                    .split_first_chunk_mut::<2>()
                    .ok_or(TwccError::BufferTooSmall)?;
                *dst = (delta as i16).to_be_bytes();
                tail = rest;
            }
            _ => {}
        }
    }
    tail.fill(0);
    Ok(TwccWritten { len, consumed })
}

/// Read the transport-wide sequence number from its header extension
/// element's data (exactly 2 bytes, big endian).
pub fn read_transport_seq(ext_data: &[u8]) -> Option<u16> {
    match ext_data {
        [a, b] => Some(u16::from_be_bytes([*a, *b])),
        _ => None,
    }
}

/// Write a transport-wide sequence number into an extension element's
/// 2-byte data. Returns false (writing nothing) if `ext_data` is not 2 bytes.
pub fn write_transport_seq(ext_data: &mut [u8], seq: u16) -> bool {
    match ext_data {
        [a, b] => {
            [*a, *b] = seq.to_be_bytes();
            true
        }
        _ => false,
    }
}

/// Byte offset, within `packet`, of the data of the 2-byte transport-wide
/// sequence number extension with id `ext_id`, so a forwarder can rewrite
/// it in place with [`write_transport_seq`].
pub fn find_transport_seq(packet: &[u8], h: &crate::rtp::RtpHeader, ext_id: u8) -> Option<usize> {
    let base = packet.as_ptr() as usize;
    crate::rtp::extensions(packet, h)
        .find(|(id, d)| *id == ext_id && d.len() == 2)
        .map(|(_, d)| (d.as_ptr() as usize).wrapping_sub(base))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests may index
mod tests {
    use super::*;
    use crate::rtcp::{RtcpIter, RtcpPacket};

    fn params(max_len: usize) -> TwccParams {
        TwccParams {
            sender_ssrc: 1,
            media_ssrc: 2,
            fb_count: 7,
            max_len,
        }
    }

    fn parse_rtcp(b: &[u8]) -> TwccFeedback<'_> {
        match RtcpIter::new(b).next() {
            Some(Ok(RtcpPacket::TransportCc(t))) => TwccFeedback::parse(t.fci).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    /// Expected (seq, Some(ticks-rounded arrival)) per sequence number.
    fn expected(input: &[(u16, Option<i64>)], n: usize) -> Vec<(u16, Option<i64>)> {
        let base = input[0].0;
        (0..n)
            .map(|i| {
                let s = base.wrapping_add(i as u16);
                let a = input
                    .iter()
                    .find(|(q, _)| *q == s)
                    .and_then(|(_, a)| a.map(|u| ticks_of(u) * DELTA_UNIT_US));
                (s, a)
            })
            .collect()
    }

    fn decoded(fb: &TwccFeedback<'_>) -> Vec<(u16, Option<i64>)> {
        fb.packets()
            .map(|(s, st)| match st {
                PacketStatus::NotReceived => (s, None),
                PacketStatus::Received { arrival_us, .. } => (s, Some(arrival_us)),
            })
            .collect()
    }

    #[test]
    fn draft_example_chunks() {
        // A run of 221 packets received with small deltas (the draft's
        // run-length example, 0b0_01_0000011011101 = 0x20dd), a 1-bit
        // vector (13 not received, 1 received) and a 2-bit vector of
        // [1, 0, 2, 0, 0, 0, 1].
        let one_bit: u16 = 0b1000_0000_0000_0001; // 13 not received, 1 received
        let two_bit: u16 = 0b1101_0000_0000_0001 | (2 << 8); // [1,0,2,0,0,0,1]
        let mut fci = vec![0x00, 0x0a, 0, 221 + 14 + 7, 0xff, 0xff, 0xfe, 3];
        fci.extend_from_slice(&0x20ddu16.to_be_bytes());
        fci.extend_from_slice(&one_bit.to_be_bytes());
        fci.extend_from_slice(&two_bit.to_be_bytes());
        fci.extend(std::iter::repeat_n(4u8, 221)); // 1 ms each
        fci.push(8); // the 1-bit vector's received one: 2 ms
        fci.push(1); // 250 µs
        fci.extend_from_slice(&(-4i16).to_be_bytes()); // -1 ms
        fci.push(0);
        fci.extend_from_slice(&[0, 0]); // padding
        let fb = TwccFeedback::parse(&fci).unwrap();
        assert_eq!(fb.base_seq, 10);
        assert_eq!(fb.status_count, 242);
        assert_eq!(fb.reference_time, -2);
        assert_eq!(fb.reference_time_us(), -128_000);
        assert_eq!(fb.fb_count, 3);
        let all: Vec<_> = fb.packets().collect();
        assert_eq!(all.len(), 242);
        assert_eq!(
            all[0],
            (
                10,
                PacketStatus::Received {
                    delta_us: 1000,
                    arrival_us: -127_000
                }
            )
        );
        assert_eq!(all[221].1, PacketStatus::NotReceived);
        assert_eq!(
            all[234],
            (
                244,
                PacketStatus::Received {
                    delta_us: 2000,
                    arrival_us: -128_000 + 223_000
                }
            )
        );
        assert!(matches!(
            all[237].1,
            PacketStatus::Received {
                delta_us: -1000,
                ..
            }
        ));
        assert!(matches!(
            all[241].1,
            PacketStatus::Received { delta_us: 0, .. }
        ));
    }

    #[test]
    fn malformed_fci() {
        assert_eq!(TwccFeedback::parse(&[0; 7]), Err(TwccError::Truncated));
        assert_eq!(TwccFeedback::parse(&[0; 8]), Err(TwccError::Empty));
        // 65535 statuses announced, one run chunk of 13 not received.
        let fci = [0, 0, 0xff, 0xff, 0, 0, 0, 0, 0x00, 0x0d];
        assert_eq!(TwccFeedback::parse(&fci), Err(TwccError::ChunksTruncated));
        // Run of 8191 received (small): 8191 delta bytes missing.
        let fci = [0, 0, 0x1f, 0xff, 0, 0, 0, 0, 0x3f, 0xff, 1, 2];
        assert_eq!(TwccFeedback::parse(&fci), Err(TwccError::DeltasTruncated));
        // Reserved symbol in a run and in a 2-bit vector.
        let fci = [0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x01];
        assert_eq!(TwccFeedback::parse(&fci), Err(TwccError::ReservedSymbol));
        let fci = [0, 0, 0, 1, 0, 0, 0, 0, 0xf0, 0x00];
        assert_eq!(TwccFeedback::parse(&fci), Err(TwccError::ReservedSymbol));
        // Zero-length runs are skipped, not looped on.
        let fci = [0, 5, 0, 1, 0, 0, 0, 0, 0x20, 0x00, 0x20, 0x01, 9];
        let fb = TwccFeedback::parse(&fci).unwrap();
        assert_eq!(fb.packets().count(), 1);
    }

    #[test]
    fn write_then_parse_simple() {
        let mut input = Vec::new();
        for i in 0..40u16 {
            let a = if i % 5 == 3 {
                None
            } else {
                Some(1_000_000 + i64::from(i) * 3_000)
            };
            input.push((65_520u16.wrapping_add(i), a));
        }
        input[10].1 = Some(1_000_000); // a negative delta: large symbol
        let mut buf = [0u8; 1500];
        let w = write_feedback(&mut buf, &params(1200), &input).unwrap();
        assert_eq!(w.consumed, 40);
        assert_eq!(w.len % 4, 0);
        let fb = parse_rtcp(&buf[..w.len]);
        assert_eq!(fb.fb_count, 7);
        assert_eq!(fb.base_seq, 65_520);
        assert_eq!(decoded(&fb), expected(&input, 40));
    }

    #[test]
    fn gaps_runs_and_splitting() {
        // 300 received every 1 ms, a gap of 1000 (run of not received),
        // 50 more received.
        let mut input: Vec<(u16, Option<i64>)> =
            (0..300).map(|i| (i as u16, Some(i * 1000))).collect();
        input.extend((1300..1350).map(|i| (i as u16, Some(400_000 + i * 10))));
        let mut buf = [0u8; 1500];
        let w = write_feedback(&mut buf, &params(1500), &input).unwrap();
        assert_eq!(w.consumed, input.len());
        let fb = parse_rtcp(&buf[..w.len]);
        assert_eq!(usize::from(fb.status_count), 1350);
        assert_eq!(decoded(&fb), expected(&input, 1350));
        // Run chunks keep it small: 350 delta bytes + a few chunks.
        assert!(w.len < 20 + 350 + 20, "{}", w.len);

        // Split at 100 bytes.
        let mut fb_count = 0u8;
        let mut rest = &input[..];
        let mut got = Vec::new();
        while !rest.is_empty() {
            let p = TwccParams {
                fb_count,
                ..params(100)
            };
            let w = write_feedback(&mut buf, &p, rest).unwrap();
            assert!(w.len <= 100);
            let fb = parse_rtcp(&buf[..w.len]);
            assert_eq!(fb.fb_count, fb_count);
            got.extend(decoded(&fb).into_iter().filter(|(_, a)| a.is_some()));
            rest = &rest[w.consumed..];
            fb_count = fb_count.wrapping_add(1);
        }
        assert!(fb_count >= 5);
        let want: Vec<_> = input
            .iter()
            .map(|(s, a)| (*s, a.map(|u| ticks_of(u) * DELTA_UNIT_US)))
            .collect();
        // Arrival times differ by the reference (whole multiples of 64 ms
        // are exact), so compare them directly.
        assert_eq!(got, want);
    }

    #[test]
    fn huge_delta_splits_packets() {
        let input = [
            (1u16, Some(0)),
            (2, Some(10_000_000)),
            (3, Some(10_001_000)),
        ];
        let mut buf = [0u8; 200];
        let w = write_feedback(&mut buf, &params(200), &input).unwrap();
        assert_eq!(w.consumed, 1);
        let w2 = write_feedback(&mut buf, &params(200), &input[1..]).unwrap();
        assert_eq!(w2.consumed, 2);
        let fb = parse_rtcp(&buf[..w2.len]);
        assert_eq!(decoded(&fb), expected(&input[1..], 2));
    }

    #[test]
    fn writer_errors() {
        let mut buf = [0u8; 200];
        assert_eq!(
            write_feedback(&mut buf, &params(200), &[]),
            Err(TwccError::NothingToWrite)
        );
        assert_eq!(
            write_feedback(&mut buf, &params(20), &[(1, Some(5))]),
            Err(TwccError::BufferTooSmall)
        );
        assert_eq!(
            write_feedback(&mut buf[..10], &params(200), &[(1, Some(5))]),
            Err(TwccError::BufferTooSmall)
        );
    }

    #[test]
    fn random_round_trips() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut buf = [0u8; 1500];
        for round in 0..2000 {
            let n = 1 + (rnd() % 400) as usize;
            let mut seq = rnd() as u16;
            let mut t = (rnd() % 100_000_000) as i64;
            let loss = rnd() % 4;
            let mut input = Vec::with_capacity(n);
            for _ in 0..n {
                seq = seq.wrapping_add(if rnd() % 10 == 0 {
                    1 + (rnd() % 20) as u16
                } else {
                    1
                });
                t += match rnd() % 8 {
                    0 => -((rnd() % 20_000) as i64),
                    1 => (rnd() % 3_000_000) as i64,
                    _ => (rnd() % 5_000) as i64,
                };
                let a = if rnd() % 4 < loss { None } else { Some(t) };
                input.push((seq, a));
            }
            let max_len = 40 + (rnd() % 1400) as usize;
            let mut rest = &input[..];
            let mut guard = 0;
            while !rest.is_empty() {
                let w = write_feedback(&mut buf, &params(max_len), rest).unwrap();
                assert!(w.len <= max_len && w.consumed > 0, "round {round}");
                let fb = parse_rtcp(&buf[..w.len]);
                assert_eq!(fb.base_seq, rest[0].0);
                let got = decoded(&fb);
                let want = expected(rest, got.len());
                assert_eq!(got, want, "round {round}");
                rest = &rest[w.consumed..];
                guard += 1;
                assert!(guard < 10_000);
            }
        }
    }

    #[test]
    fn transport_seq_extension() {
        let mut buf = [0u8; 64];
        let f = crate::rtp::RtpFields {
            marker: false,
            payload_type: 96,
            sequence: 1,
            timestamp: 2,
            ssrc: 3,
        };
        let n = crate::rtp::write_header(&mut buf, &f, &[(1, &[9]), (3, &[0x12, 0x34])]).unwrap();
        let h = crate::rtp::RtpHeader::parse(&buf[..n]).unwrap();
        let at = find_transport_seq(&buf[..n], &h, 3).unwrap();
        assert_eq!(read_transport_seq(&buf[at..at + 2]), Some(0x1234));
        assert!(write_transport_seq(&mut buf[at..at + 2], 0xbeef));
        let h = crate::rtp::RtpHeader::parse(&buf[..n]).unwrap();
        let e: Vec<_> = crate::rtp::extensions(&buf[..n], &h).collect();
        assert_eq!(e[1], (3, &[0xbe, 0xef][..]));
        assert_eq!(find_transport_seq(&buf[..n], &h, 1), None);
        assert_eq!(read_transport_seq(&[1]), None);
        assert!(!write_transport_seq(&mut [0u8; 3], 1));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut data = [0u8; 64];
        for _ in 0..100_000 {
            let n = (rnd() % 64) as usize;
            for b in &mut data[..n] {
                *b = rnd() as u8;
            }
            if n >= 4 && rnd() % 2 == 0 {
                data[2] = 0;
                data[3] = (rnd() % 40) as u8;
            }
            if let Ok(fb) = TwccFeedback::parse(&data[..n]) {
                assert_eq!(fb.packets().count(), usize::from(fb.status_count));
            }
        }
    }
}
