//! RTP headers (RFC 3550 §5.1) and header extensions (RFC 8285).

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
    /// Length in bytes of the extension data.
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
        let b1 = b[1];
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

    /// The payload of `packet`, whose header this is.
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet
            .get(self.payload_offset..self.payload_offset + self.payload_len)
            .unwrap_or(&[])
    }
}

/// Iterator over the header extension elements of a packet, as
/// `(id, data)`. Stops at the end or at the first malformed element
/// ([`ExtIter::malformed`] tells which).
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
}

/// The header extension elements of `packet` (one-byte or two-byte form).
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
/// two-byte form.
pub fn write_header(
    buf: &mut [u8],
    f: &RtpFields,
    exts: &[(u8, &[u8])],
) -> Result<usize, RtpError> {
    let one_byte = exts
        .iter()
        .all(|(id, d)| (1..=14).contains(id) && (1..=16).contains(&d.len()));
    let ext_data: usize = exts
        .iter()
        .map(|(_, d)| d.len() + if one_byte { 1 } else { 2 })
        .sum();
    if !one_byte && exts.iter().any(|(id, d)| *id == 0 || d.len() > 255) {
        return Err(RtpError::BadExtension);
    }
    let ext_words = ext_data.div_ceil(4);
    let total = 12
        + if exts.is_empty() {
            0
        } else {
            4 + ext_words * 4
        };
    let out = buf.get_mut(..total).ok_or(RtpError::BufferTooSmall)?;
    out[0] = 0x80 | if exts.is_empty() { 0 } else { 0x10 };
    out[1] = (f.payload_type & 0x7f) | if f.marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&f.sequence.to_be_bytes());
    out[4..8].copy_from_slice(&f.timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&f.ssrc.to_be_bytes());
    if exts.is_empty() {
        return Ok(total);
    }
    let profile: u16 = if one_byte { 0xBEDE } else { 0x1000 };
    out[12..14].copy_from_slice(&profile.to_be_bytes());
    out[14..16].copy_from_slice(&(ext_words as u16).to_be_bytes());
    let mut at = 16;
    for (id, d) in exts {
        if one_byte {
            out[at] = (id << 4) | (d.len() as u8 - 1);
            at += 1;
        } else {
            out[at] = *id;
            out[at + 1] = d.len() as u8;
            at += 2;
        }
        out[at..at + d.len()].copy_from_slice(d);
        at += d.len();
    }
    out[at..total].fill(0);
    Ok(total)
}

/// Set the sequence number of the RTP packet in `buf`.
pub fn set_sequence(buf: &mut [u8], seq: u16) {
    if let Some(s) = buf.get_mut(2..4) {
        s.copy_from_slice(&seq.to_be_bytes());
    }
}

/// Set the timestamp of the RTP packet in `buf`.
pub fn set_timestamp(buf: &mut [u8], ts: u32) {
    if let Some(s) = buf.get_mut(4..8) {
        s.copy_from_slice(&ts.to_be_bytes());
    }
}

/// Set the SSRC of the RTP packet in `buf`.
pub fn set_ssrc(buf: &mut [u8], ssrc: u32) {
    if let Some(s) = buf.get_mut(8..12) {
        s.copy_from_slice(&ssrc.to_be_bytes());
    }
}

/// Set the payload type of the RTP packet in `buf`, keeping the marker.
pub fn set_payload_type(buf: &mut [u8], pt: u8) {
    if let Some(b) = buf.get_mut(1) {
        *b = (*b & 0x80) | (pt & 0x7f);
    }
}

#[cfg(test)]
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

        set_sequence(&mut buf, 7);
        set_ssrc(&mut buf, 9);
        set_timestamp(&mut buf, 11);
        set_payload_type(&mut buf, 111);
        let h = RtpHeader::parse(&buf[..n]).unwrap();
        assert_eq!(
            (h.sequence, h.ssrc, h.timestamp, h.payload_type, h.marker),
            (7, 9, 11, 111, true)
        );
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
