//! RTP headers (RFC 3550 §5.1) and header extensions (RFC 8285).
//!
//! [`RtpHeader::parse`] returns a `Copy` struct of the fields and of the
//! byte ranges of the extension block and the payload; [`extensions`]
//! walks the extension elements of either form. [`write_header`] and the
//! `set_*` functions write into a buffer the caller owns.

#![deny(clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

use std::ops::Range;

use crate::{be16, be32};

/// Why an RTP packet was refused or could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than its header says.
    #[error("RTP packet truncated")]
    Truncated,
    /// Version is not 2.
    #[error("RTP version is not 2")]
    BadVersion,
    /// Padding length larger than the payload.
    #[error("bad RTP padding")]
    BadPadding,
    /// The output buffer is too small.
    #[error("buffer too small for the RTP header")]
    BufferTooSmall,
    /// An extension id or length that cannot be written.
    #[error("bad RTP header extension")]
    BadExtension,
}

/// The header of an RTP packet: fields and byte ranges. `Copy`, no borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Number of CSRCs.
    pub csrc_count: u8,
    /// Header extension profile (`0xBEDE`, `0x100x`), if the X bit is set.
    pub ext_profile: Option<u16>,
    /// Byte offset of the extension data (after its 4-byte header).
    pub ext_offset: usize,
    /// Length in bytes of the extension data (0 without the X bit).
    pub ext_len: usize,
    /// Length of the whole header (fixed part, CSRCs, extension).
    pub header_len: usize,
    /// Byte offset of the payload.
    pub payload_offset: usize,
    /// Payload length, padding excluded.
    pub payload_len: usize,
    /// Padding length (0 when the P bit is clear).
    pub padding_len: usize,
}

impl RtpHeader {
    /// Parse the header of the RTP packet `b`.
    pub fn parse(b: &[u8]) -> Result<Self, RtpError> {
        let b0 = *b.first().ok_or(RtpError::Truncated)?;
        if b0 >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        if b.len() < 12 {
            return Err(RtpError::Truncated);
        }
        let b1 = *b.get(1).ok_or(RtpError::Truncated)?;
        let csrc_count = b0 & 0x0f;
        let mut header_len = 12 + 4 * usize::from(csrc_count);
        if b.len() < header_len {
            return Err(RtpError::Truncated);
        }
        let (mut ext_profile, mut ext_offset, mut ext_len) = (None, 0, 0);
        if b0 & 0x10 != 0 {
            let profile = be16(b, header_len).ok_or(RtpError::Truncated)?;
            let words = usize::from(be16(b, header_len + 2).ok_or(RtpError::Truncated)?);
            ext_profile = Some(profile);
            ext_offset = header_len + 4;
            ext_len = words * 4;
            header_len = ext_offset + ext_len;
            if b.len() < header_len {
                return Err(RtpError::Truncated);
            }
        }
        let mut padding_len = 0;
        if b0 & 0x20 != 0 {
            padding_len = usize::from(*b.last().ok_or(RtpError::Truncated)?);
            if padding_len == 0 || header_len + padding_len > b.len() {
                return Err(RtpError::BadPadding);
            }
        }
        Ok(Self {
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7f,
            sequence: be16(b, 2).ok_or(RtpError::Truncated)?,
            timestamp: be32(b, 4).ok_or(RtpError::Truncated)?,
            ssrc: be32(b, 8).ok_or(RtpError::Truncated)?,
            csrc_count,
            ext_profile,
            ext_offset,
            ext_len,
            header_len,
            payload_offset: header_len,
            payload_len: b.len() - header_len - padding_len,
            padding_len,
        })
    }

    /// The payload of `packet`, whose header this is (padding excluded).
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet.get(self.payload_range()).unwrap_or(&[])
    }

    /// Byte range of the payload, padding excluded.
    pub fn payload_range(&self) -> Range<usize> {
        self.payload_offset..self.payload_offset + self.payload_len
    }

    /// Byte range of the extension data (empty without the X bit).
    pub fn ext_range(&self) -> Range<usize> {
        self.ext_offset..self.ext_offset + self.ext_len
    }

    /// The contributing sources of `packet`, whose header this is.
    pub fn csrcs<'a>(&self, packet: &'a [u8]) -> impl Iterator<Item = u32> + 'a {
        packet
            .get(12..12 + 4 * usize::from(self.csrc_count))
            .unwrap_or(&[])
            .chunks_exact(4)
            .filter_map(|c| be32(c, 0))
    }
}

/// Iterator over the header extension elements of a packet, as
/// `(id, data)`, padding bytes skipped. Stops at the end, at the first
/// malformed element ([`ExtIter::malformed`] tells which: a length running
/// past the block, or id 0 with a length in the one-byte form), or at the
/// reserved one-byte id 15 (RFC 8285 §4.2: stop, not an error).
#[derive(Debug, Clone)]
pub struct ExtIter<'a> {
    data: &'a [u8],
    two_byte: bool,
    at: usize,
    malformed: bool,
}

impl ExtIter<'_> {
    /// True if iteration stopped on a malformed element.
    pub fn malformed(&self) -> bool {
        self.malformed
    }

    /// True for the two-byte form (profile `0x100x`).
    pub fn is_two_byte(&self) -> bool {
        self.two_byte
    }
}

/// The header extension elements of `packet` (one-byte form, profile
/// `0xBEDE`, or two-byte form, `0x100x`); empty for other profiles.
pub fn extensions<'a>(packet: &'a [u8], h: &RtpHeader) -> ExtIter<'a> {
    let data = match h.ext_profile {
        Some(0xBEDE) | Some(0x1000..=0x100F) => packet
            .get(h.ext_offset..h.ext_offset + h.ext_len)
            .unwrap_or(&[]),
        _ => &[],
    };
    ExtIter {
        data,
        two_byte: h.ext_profile != Some(0xBEDE),
        at: 0,
        malformed: false,
    }
}

impl<'a> Iterator for ExtIter<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let b = *self.data.get(self.at)?;
            if b == 0 {
                self.at += 1; // padding
                continue;
            }
            let (id, len, start) = if self.two_byte {
                let len = usize::from(*self.data.get(self.at + 1)?);
                (b, len, self.at + 2)
            } else {
                let id = b >> 4;
                if id == 0 {
                    // Only a zero byte may use id 0 (padding).
                    self.malformed = true;
                    self.at = self.data.len();
                    return None;
                }
                if id == 15 {
                    // Reserved: stop processing (RFC 8285 §4.2).
                    self.at = self.data.len();
                    return None;
                }
                (id, usize::from(b & 0x0f) + 1, self.at + 1)
            };
            let Some(v) = self.data.get(start..start + len) else {
                self.malformed = true;
                self.at = self.data.len();
                return None;
            };
            self.at = start + len;
            return Some((id, v));
        }
    }
}

/// The fields of a header to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpFields {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
}

/// Write an RTP header with the given extension elements into `buf`;
/// returns its length (the payload goes right after). Uses the one-byte
/// form when every id is 1..=14 and every value 1..=16 bytes, else the
/// two-byte form (ids 1..=255, values 0..=255 bytes). No CSRCs, no padding.
pub fn write_header(
    buf: &mut [u8],
    f: &RtpFields,
    exts: &[(u8, &[u8])],
) -> Result<usize, RtpError> {
    let one_byte = exts
        .iter()
        .all(|(id, d)| (1..=14).contains(id) && (1..=16).contains(&d.len()));
    if !one_byte && exts.iter().any(|(id, d)| *id == 0 || d.len() > 255) {
        return Err(RtpError::BadExtension);
    }
    let per_element = if one_byte { 1 } else { 2 };
    let ext_data: usize = exts.iter().map(|(_, d)| d.len() + per_element).sum();
    let ext_words = u16::try_from(ext_data.div_ceil(4)).map_err(|_| RtpError::BadExtension)?;
    let total = if exts.is_empty() {
        12
    } else {
        16 + 4 * usize::from(ext_words)
    };
    let out = buf.get_mut(..total).ok_or(RtpError::BufferTooSmall)?;
    out.fill(0);
    let b0 = if exts.is_empty() { 0x80 } else { 0x90 };
    let b1 = (f.payload_type & 0x7f) | if f.marker { 0x80 } else { 0 };
    put(out, 0, &[b0, b1])?;
    put(out, 2, &f.sequence.to_be_bytes())?;
    put(out, 4, &f.timestamp.to_be_bytes())?;
    put(out, 8, &f.ssrc.to_be_bytes())?;
    if exts.is_empty() {
        return Ok(total);
    }
    let profile: u16 = if one_byte { 0xBEDE } else { 0x1000 };
    put(out, 12, &profile.to_be_bytes())?;
    put(out, 14, &ext_words.to_be_bytes())?;
    let mut at = 16;
    for (id, d) in exts {
        // Lengths were checked above: 1..=16 or 0..=255.
        let len = d.len() as u8;
        if one_byte {
            put(out, at, &[(id << 4) | (len - 1)])?;
        } else {
            put(out, at, &[*id, len])?;
        }
        at += per_element;
        put(out, at, d)?;
        at += d.len();
    }
    Ok(total)
}

fn put(buf: &mut [u8], at: usize, src: &[u8]) -> Result<(), RtpError> {
    buf.get_mut(at..at + src.len())
        .ok_or(RtpError::BufferTooSmall)?
        .copy_from_slice(src);
    Ok(())
}

/// Set the sequence number of the RTP packet in `buf`.
pub fn set_seq(buf: &mut [u8], seq: u16) -> Result<(), RtpError> {
    put(buf, 2, &seq.to_be_bytes()).map_err(|_| RtpError::Truncated)
}

/// Set the timestamp of the RTP packet in `buf`.
pub fn set_timestamp(buf: &mut [u8], ts: u32) -> Result<(), RtpError> {
    put(buf, 4, &ts.to_be_bytes()).map_err(|_| RtpError::Truncated)
}

/// Set the SSRC of the RTP packet in `buf`.
pub fn set_ssrc(buf: &mut [u8], ssrc: u32) -> Result<(), RtpError> {
    put(buf, 8, &ssrc.to_be_bytes()).map_err(|_| RtpError::Truncated)
}

/// Set the payload type of the RTP packet in `buf`, keeping the marker.
pub fn set_pt(buf: &mut [u8], pt: u8) -> Result<(), RtpError> {
    let b = buf.get_mut(1).ok_or(RtpError::Truncated)?;
    *b = (*b & 0x80) | (pt & 0x7f);
    Ok(())
}

/// Set the marker bit of the RTP packet in `buf`.
pub fn set_marker(buf: &mut [u8], marker: bool) -> Result<(), RtpError> {
    let b = buf.get_mut(1).ok_or(RtpError::Truncated)?;
    *b = (*b & 0x7f) | if marker { 0x80 } else { 0 };
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse_one_and_two_byte_forms() {
        let mut buf = [0u8; 100];
        let f = RtpFields {
            marker: true,
            payload_type: 96,
            sequence: 65535,
            timestamp: 0xdead_beef,
            ssrc: 0x0102_0304,
        };
        let n = write_header(&mut buf, &f, &[(1, &[0x85]), (4, b"mid0")]).unwrap();
        buf[n..n + 3].copy_from_slice(b"abc");
        let p = &buf[..n + 3];
        let h = RtpHeader::parse(p).unwrap();
        assert_eq!(
            (h.marker, h.payload_type, h.sequence, h.timestamp, h.ssrc),
            (true, 96, 65535, 0xdead_beef, 0x0102_0304)
        );
        assert_eq!(h.ext_profile, Some(0xBEDE));
        assert_eq!(h.payload(p), b"abc");
        let e: Vec<(u8, &[u8])> = extensions(p, &h).collect();
        assert_eq!(e, vec![(1, &[0x85][..]), (4, &b"mid0"[..])]);

        let long = [7u8; 20];
        let n = write_header(&mut buf, &f, &[(20, &long[..]), (2, &[])]).unwrap();
        let h = RtpHeader::parse(&buf[..n]).unwrap();
        assert_eq!(h.ext_profile, Some(0x1000));
        let e: Vec<(u8, &[u8])> = extensions(&buf[..n], &h).collect();
        assert_eq!(e, vec![(20, &long[..]), (2, &[][..])]);
        assert_eq!(h.payload_len, 0);

        set_seq(&mut buf, 7).unwrap();
        set_ssrc(&mut buf, 9).unwrap();
        set_timestamp(&mut buf, 11).unwrap();
        set_pt(&mut buf, 111).unwrap();
        let h = RtpHeader::parse(&buf[..n]).unwrap();
        assert_eq!(
            (h.sequence, h.ssrc, h.timestamp, h.payload_type, h.marker),
            (7, 9, 11, 111, true)
        );
    }

    /// An Opus packet as Chrome sends it: one-byte extensions
    /// ssrc-audio-level (1), abs-send-time (2), transport-cc (3), mid (4),
    /// padded to a word.
    #[test]
    fn chrome_opus_packet() {
        let p: [u8; 40] = [
            0x90, 0xef, 0x1a, 0x2b, 0x00, 0x01, 0xe2, 0x40, 0x5e, 0xed, 0x00, 0x01, // fixed
            0xbe, 0xde, 0x00, 0x03, // one-byte form, 3 words
            0x10, 0xaa, // audio level: V=1, level 42
            0x22, 0x12, 0x34, 0x56, // abs-send-time
            0x31, 0x00, 0x07, // transport-wide seq 7
            0x40, 0x30, // mid "0"
            0x00, // padding
            0xfc, 0xff, 0xfe, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, // payload
        ];
        let h = RtpHeader::parse(&p).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 111);
        assert_eq!(h.sequence, 0x1a2b);
        assert_eq!(h.timestamp, 123_456);
        assert_eq!(h.ssrc, 0x5eed_0001);
        assert_eq!(h.header_len, 28);
        assert_eq!(h.ext_range(), 16..28);
        assert_eq!(h.payload_range(), 28..40);
        let mut it = extensions(&p, &h);
        assert!(!it.is_two_byte());
        let e: Vec<(u8, &[u8])> = it.by_ref().collect();
        assert!(!it.malformed());
        assert_eq!(
            e,
            vec![
                (1, &[0xaa][..]),
                (2, &[0x12, 0x34, 0x56][..]),
                (3, &[0x00, 0x07][..]),
                (4, &b"0"[..]),
            ]
        );
        // The writer produces the same header from the same elements.
        let mut buf = [0u8; 64];
        let f = RtpFields {
            marker: true,
            payload_type: 111,
            sequence: 0x1a2b,
            timestamp: 123_456,
            ssrc: 0x5eed_0001,
        };
        let n = write_header(&mut buf, &f, &e).unwrap();
        assert_eq!(&buf[..n], &p[..28]);
    }

    /// Two-byte form (RFC 8285 §4.3) with app bits, padding between
    /// elements, an empty element, CSRCs and RTP padding.
    #[test]
    fn two_byte_form_with_csrcs_and_padding() {
        let p: [u8; 44] = [
            0xb2, 0x60, 0x00, 0x05, 0, 0, 0, 9, 0, 0, 0, 1, // P, X, cc=2
            0, 0, 0, 0xa1, 0, 0, 0, 0xa2, // CSRCs
            0x10, 0x05, 0x00, 0x03, // two-byte form, app bits 5, 3 words
            0x07, 0x00, // id 7, empty
            0x00, 0x00, // padding
            0x11, 0x03, 0xde, 0xad, 0xbe, // id 17, 3 bytes
            0x00, 0x00, 0x00, // padding
            0x61, 0x62, 0x63, 0x64, // payload "abcd"
            0x00, 0x00, 0x00, 0x04, // RTP padding, 4 bytes
        ];
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.csrc_count, 2);
        assert_eq!(h.csrcs(&p).collect::<Vec<_>>(), vec![0xa1, 0xa2]);
        assert_eq!(h.ext_profile, Some(0x1005));
        assert_eq!(h.padding_len, 4);
        assert_eq!(h.payload(&p), b"abcd");
        let mut it = extensions(&p, &h);
        assert!(it.is_two_byte());
        assert_eq!(it.next(), Some((7, &[][..])));
        assert_eq!(it.next(), Some((17, &[0xde, 0xad, 0xbe][..])));
        assert_eq!(it.next(), None);
        assert!(!it.malformed());
        // Padding of the whole payload is allowed; one byte more is not.
        let mut q = p;
        q[43] = 8;
        assert_eq!(RtpHeader::parse(&q).unwrap().payload_len, 0);
        q[43] = 9;
        assert_eq!(RtpHeader::parse(&q).unwrap_err(), RtpError::BadPadding);
        q[43] = 0;
        assert_eq!(RtpHeader::parse(&q).unwrap_err(), RtpError::BadPadding);
    }

    #[test]
    fn one_byte_form_edge_cases() {
        let mut p = [0u8; 24];
        p[0] = 0x90;
        p[12..16].copy_from_slice(&[0xbe, 0xde, 0, 2]);
        // id 15 stops iteration without an error.
        p[16..20].copy_from_slice(&[0x10, 1, 0xf0, 0x20]);
        let h = RtpHeader::parse(&p).unwrap();
        let mut it = extensions(&p, &h);
        assert_eq!(it.next(), Some((1, &[1][..])));
        assert_eq!(it.next(), None);
        assert!(!it.malformed());
        // id 0 with a length is malformed.
        p[16..20].copy_from_slice(&[0x10, 1, 0x02, 0x20]);
        let mut it = extensions(&p, &h);
        assert_eq!(it.next(), Some((1, &[1][..])));
        assert_eq!(it.next(), None);
        assert!(it.malformed());
        // Unknown profile: no elements.
        p[12] = 0x12;
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(extensions(&p, &h).count(), 0);
        // Writer limits.
        let mut buf = [0u8; 64];
        let f = RtpFields {
            marker: false,
            payload_type: 0,
            sequence: 0,
            timestamp: 0,
            ssrc: 0,
        };
        assert_eq!(
            write_header(&mut buf, &f, &[(0, &[1])]).unwrap_err(),
            RtpError::BadExtension
        );
        let big = [0u8; 256];
        assert_eq!(
            write_header(&mut buf, &f, &[(1, &big[..])]).unwrap_err(),
            RtpError::BadExtension
        );
        assert_eq!(
            write_header(&mut buf[..15], &f, &[(1, &[1])]).unwrap_err(),
            RtpError::BufferTooSmall
        );
        assert_eq!(write_header(&mut buf, &f, &[]).unwrap(), 12);
        assert_eq!(set_seq(&mut buf[..3], 1).unwrap_err(), RtpError::Truncated);
        set_marker(&mut buf, true).unwrap();
        set_pt(&mut buf, 0xff).unwrap();
        let h = RtpHeader::parse(&buf[..12]).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 0x7f);
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(RtpHeader::parse(&[]).unwrap_err(), RtpError::Truncated);
        assert_eq!(
            RtpHeader::parse(&[0x40; 12]).unwrap_err(),
            RtpError::BadVersion
        );
        assert_eq!(
            RtpHeader::parse(&[0x80; 11]).unwrap_err(),
            RtpError::Truncated
        );
        // cc = 15 on a 12-byte packet.
        let mut p = [0u8; 12];
        p[0] = 0x8f;
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), RtpError::Truncated);
        // Extension longer than the packet.
        let mut p = [0u8; 20];
        p[0] = 0x90;
        p[12] = 0xBE;
        p[13] = 0xDE;
        p[15] = 9;
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), RtpError::Truncated);
        // Padding longer than the payload.
        let mut p = [0u8; 16];
        p[0] = 0xa0;
        p[15] = 200;
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), RtpError::BadPadding);
        // An element running past the extension block.
        let mut p = [0u8; 20];
        p[0] = 0x90;
        p[12] = 0xBE;
        p[13] = 0xDE;
        p[15] = 1;
        p[16] = 0x1f; // id 1, 16 bytes, but only 3 follow
        let h = RtpHeader::parse(&p).unwrap();
        let mut it = extensions(&p, &h);
        assert!(it.next().is_none());
        assert!(it.malformed());
    }
}
