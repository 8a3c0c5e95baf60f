//! The little of VP8's RTP payload format (RFC 7741) the media path needs
//! now: is this packet the start of a key frame?

/// True when `payload` (an RTP payload of a VP8 stream) starts a key frame:
/// the descriptor's S bit is set with partition index 0, and the VP8
/// payload header's P bit (inverse key frame flag) is 0.
pub fn is_keyframe_start(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let start_of_partition = b0 & 0x10 != 0;
    let partition_index = b0 & 0x07;
    if !start_of_partition || partition_index != 0 {
        return false;
    }
    let mut i = 1usize;
    if b0 & 0x80 != 0 {
        // Extended control bits: I L T K.
        let Some(&x) = payload.get(i) else {
            return false;
        };
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: one byte, or two when M is set.
            let Some(&pid) = payload.get(i) else {
                return false;
            };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    match payload.get(i) {
        Some(&h) => h & 0x01 == 0,
        None => false,
    }
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
}
