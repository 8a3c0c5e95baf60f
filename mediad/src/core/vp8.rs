//! The little of VP8's RTP payload format (RFC 7741) the media path needs
//! now: is this packet the start of a key frame?

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
    let h = payload.get(i..i + 10)?;
    if h[0] & 0x01 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
    let ht = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
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
mod tests {
    use super::*;

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
