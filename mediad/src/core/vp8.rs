//! The little of VP8's RTP payload format (RFC 7741) the media path needs:
//! is this packet the start of a key frame, and the picture id / TL0PICIDX
//! continuity one receiver's stream keeps across layer switches.

use salon_proto::vp8::Vp8Descriptor;

/// A packet's rewritten picture id and TL0PICIDX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Out {
    /// The picture id to write (15-bit space; a 7-bit field keeps the low bits).
    pub picture_id: u16,
    /// The TL0PICIDX to write, if the packet has one.
    pub tl0picidx: Option<u8>,
}

/// Per receiver of a VP8 track: offsets that make the picture ids and
/// TL0PICIDX it receives continue across layer switches (each simulcast
/// encoding numbers its own pictures), as if one encoder had sent them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vp8Map {
    pic_offset: u16,
    tl0_offset: u8,
    last_pic: Option<u16>,
    last_tl0: Option<u8>,
    resync: bool,
}

const PIC_MASK: u16 = 0x7fff;

impl Vp8Map {
    /// The next packet starts a new source layer: continue after the last
    /// picture sent.
    pub fn resync(&mut self) {
        self.resync = true;
    }

    /// The rewritten fields of a packet that will be sent; remembers the
    /// newest picture sent. `None` without a picture id (nothing to keep
    /// continuous).
    pub fn map(&mut self, d: &Vp8Descriptor) -> Option<Vp8Out> {
        let pid = d.picture_id?.value;
        if std::mem::take(&mut self.resync) {
            if let Some(last) = self.last_pic {
                self.pic_offset = last.wrapping_add(1).wrapping_sub(pid) & PIC_MASK;
            }
            if let (Some(last), Some(t)) = (self.last_tl0, d.tl0picidx) {
                self.tl0_offset = last.wrapping_add(1).wrapping_sub(t);
            }
        }
        let out = self.peek(d)?;
        // Newer pictures only (reordered packets keep the newest).
        if self
            .last_pic
            .is_none_or(|l| out.picture_id.wrapping_sub(l) & PIC_MASK < 0x4000)
        {
            self.last_pic = Some(out.picture_id);
        }
        if let Some(t) = out.tl0picidx
            && self.last_tl0.is_none_or(|l| t.wrapping_sub(l) < 0x80)
        {
            self.last_tl0 = Some(t);
        }
        Some(out)
    }

    /// A picture that is not sent to this receiver (a dropped temporal
    /// layer): later pictures are numbered one lower. Call for every packet
    /// dropped; a picture counts once.
    pub fn skip(&mut self, d: &Vp8Descriptor) {
        let Some(pid) = d.picture_id.map(|p| p.value) else {
            return;
        };
        let out = pid.wrapping_add(self.pic_offset) & PIC_MASK;
        // Only a picture newer than the last one sent, once.
        if self.last_pic.is_some_and(|l| {
            out.wrapping_sub(l) & PIC_MASK != 0 && out.wrapping_sub(l) & PIC_MASK < 0x4000
        }) {
            self.pic_offset = self.pic_offset.wrapping_sub(1) & PIC_MASK;
        }
    }

    /// The rewritten fields with the current offsets (retransmissions).
    pub fn peek(&self, d: &Vp8Descriptor) -> Option<Vp8Out> {
        let pid = d.picture_id?.value;
        Some(Vp8Out {
            picture_id: pid.wrapping_add(self.pic_offset) & PIC_MASK,
            tl0picidx: d.tl0picidx.map(|t| t.wrapping_add(self.tl0_offset)),
        })
    }
}

/// True when `payload` (an RTP payload of a VP8 stream) starts a key frame:
/// the descriptor's S bit is set with partition index 0, and the VP8
/// payload header's P bit (inverse key frame flag) is 0.
pub fn is_keyframe_start(payload: &[u8]) -> bool {
    vp8_header_offset(payload).is_some_and(|i| payload.get(i).is_some_and(|h| h & 0x01 == 0))
}

/// The frame size a key frame announces (RFC 6386 §9.1: after the 3-byte
/// frame tag, the start code 9d 01 2a, then 14-bit width and height, little
/// endian). `None` if `payload` does not start a key frame.
pub fn keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let i = vp8_header_offset(payload)?;
    let &[tag, _, _, s0, s1, s2, w0, w1, h0, h1] = payload.get(i..)?.first_chunk::<10>()?;
    if tag & 0x01 != 0 || [s0, s1, s2] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([w0, w1]) & 0x3fff;
    let ht = u16::from_le_bytes([h0, h1]) & 0x3fff;
    Some((w, ht))
}

/// Offset of the VP8 payload header when `payload` starts partition 0.
fn vp8_header_offset(payload: &[u8]) -> Option<usize> {
    let &b0 = payload.first()?;
    let start_of_partition = b0 & 0x10 != 0;
    let partition_index = b0 & 0x07;
    if !start_of_partition || partition_index != 0 {
        return None;
    }
    let mut i = 1usize;
    if b0 & 0x80 != 0 {
        // Extended control bits: I L T K.
        let &x = payload.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: one byte, or two when M is set.
            let &pid = payload.get(i)?;
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    (i < payload.len()).then_some(i)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;

    fn desc(pic: u16, tl0: u8) -> Vp8Descriptor {
        let p = [0x90, 0xc0, 0x80 | (pic >> 8) as u8, pic as u8, tl0, 0x10];
        Vp8Descriptor::parse(&p).unwrap()
    }

    #[test]
    fn picture_ids_continue_across_switches() {
        let mut m = Vp8Map::default();
        // Layer A: its own numbering passes through at first.
        assert_eq!(m.map(&desc(100, 7)).unwrap().picture_id, 100);
        assert_eq!(m.map(&desc(101, 8)).unwrap().picture_id, 101);
        // Switch to layer B (numbered 30000…): continues at 102, TL0 at 9.
        m.resync();
        let o = m.map(&desc(30_000, 200)).unwrap();
        assert_eq!((o.picture_id, o.tl0picidx), (102, Some(9)));
        assert_eq!(m.map(&desc(30_001, 201)).unwrap().picture_id, 103);
        // A retransmission of the first B packet keeps its rewritten id.
        assert_eq!(m.peek(&desc(30_000, 200)).unwrap().picture_id, 102);
        // Back to A near the 15-bit wrap.
        m.resync();
        assert_eq!(m.map(&desc(32_767, 9)).unwrap().picture_id, 104);
        assert_eq!(m.map(&desc(0, 10)).unwrap().picture_id, 105, "wraps");
        // No picture id: nothing to rewrite.
        let bare = Vp8Descriptor::parse(&[0x10, 0x00]).unwrap();
        assert_eq!(m.map(&bare), None);
    }

    #[test]
    fn keyframe_detection() {
        // Chrome's usual descriptor: X=1, S=1, I=1 with a 15-bit picture id,
        // L=1, T=1, then the VP8 header.
        let key = [0x90, 0xe0, 0x80, 0x01, 0x00, 0x20, 0x10, 0x02, 0x00];
        assert!(is_keyframe_start(&key));
        let delta = [0x90, 0xe0, 0x80, 0x01, 0x00, 0x20, 0x11, 0x02, 0x00];
        assert!(!is_keyframe_start(&delta));
        // Not the start of the partition.
        let cont = [0x80, 0xe0, 0x80, 0x01, 0x00, 0x20, 0x10];
        assert!(!is_keyframe_start(&cont));
        // Minimal descriptor.
        assert!(is_keyframe_start(&[0x10, 0x00]));
        assert!(!is_keyframe_start(&[0x10]));
        assert!(!is_keyframe_start(&[]));
        // Truncated extension.
        assert!(!is_keyframe_start(&[0x90]));
        assert!(!is_keyframe_start(&[0x90, 0x80, 0x80]));
    }

    #[test]
    fn keyframe_size_from_the_frame_header() {
        // Minimal descriptor, frame tag (key frame), start code, 640x360.
        let mut p = vec![0x10, 0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a];
        p.extend_from_slice(&640u16.to_le_bytes());
        p.extend_from_slice(&(360u16 | 0x4000).to_le_bytes()); // scale bits ignored
        assert_eq!(keyframe_size(&p), Some((640, 360)));
        p[4] = 0;
        assert_eq!(keyframe_size(&p), None, "bad start code");
        assert_eq!(keyframe_size(&[0x10, 0x01, 0, 0]), None, "delta frame");
        assert_eq!(keyframe_size(&[0x10, 0x00, 0, 0, 0x9d]), None, "truncated");
    }
}
