//! The VP8 RTP payload descriptor (RFC 7741 §4.2) and, at the start of a
//! frame, the VP8 payload header (RFC 7741 §4.3, RFC 6386 §9.1).
//!
//! ```text
//!  X R N S R PID(3)            always
//!  I L T K RSV(4)              if X
//!  M PictureID(7 or 15)        if I (M set: 15 bits, two bytes)
//!  TL0PICIDX(8)                if L
//!  TID(2) Y KEYIDX(5)          if T or K
//! ```
//!
//! [`Vp8Descriptor::parse`] returns the fields with the byte offsets of the
//! rewritable ones, so an SFU can patch PictureID and TL0PICIDX in place
//! ([`set_picture_id`], [`set_tl0picidx`]) without moving bytes.

/// Why a VP8 payload was refused or could not be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Vp8Error {
    /// Shorter than its descriptor says.
    #[error("VP8 payload descriptor truncated")]
    Truncated,
    /// The descriptor has no such field to rewrite.
    #[error("VP8 payload descriptor lacks the field")]
    NoField,
}

/// The PictureID field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureId {
    /// The value (7 or 15 bits).
    pub value: u16,
    /// True for the 15-bit (two-byte, M bit set) form.
    pub long: bool,
    /// Byte offset of its first byte in the payload.
    pub offset: usize,
}

/// The start of a frame: the VP8 payload header, present when the packet
/// starts partition 0 (S set, PID 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStart {
    /// The inverse P bit: true for a key frame.
    pub key_frame: bool,
    /// On key frames with the full 10-byte header: width and height
    /// (14 bits each; the scaling bits are dropped).
    pub size: Option<(u16, u16)>,
}

/// A parsed VP8 payload descriptor. `Copy`, no borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// N: non-reference frame (may be dropped).
    pub non_reference: bool,
    /// S: start of a VP8 partition.
    pub start_of_partition: bool,
    /// PID: partition index (3 bits).
    pub partition_index: u8,
    /// PictureID, if I is set.
    pub picture_id: Option<PictureId>,
    /// TL0PICIDX, if L is set.
    pub tl0picidx: Option<u8>,
    /// Byte offset of TL0PICIDX (valid when `tl0picidx` is some).
    pub tl0picidx_offset: usize,
    /// TID, if T is set.
    pub tid: Option<u8>,
    /// Y: layer sync (meaningful when T is set).
    pub layer_sync: bool,
    /// KEYIDX, if K is set.
    pub keyidx: Option<u8>,
    /// Descriptor length: the offset of the VP8 payload.
    pub header_len: usize,
    /// The VP8 payload header, if this packet starts a frame and has one.
    pub frame: Option<FrameStart>,
}

impl Vp8Descriptor {
    /// Parse the descriptor at the start of an RTP payload of a VP8 stream.
    pub fn parse(p: &[u8]) -> Result<Self, Vp8Error> {
        let at = |i: usize| p.get(i).copied().ok_or(Vp8Error::Truncated);
        let b0 = at(0)?;
        let mut d = Self {
            non_reference: b0 & 0x20 != 0,
            start_of_partition: b0 & 0x10 != 0,
            partition_index: b0 & 0x07,
            picture_id: None,
            tl0picidx: None,
            tl0picidx_offset: 0,
            tid: None,
            layer_sync: false,
            keyidx: None,
            header_len: 1,
            frame: None,
        };
        let mut i = 1;
        if b0 & 0x80 != 0 {
            let x = at(1)?;
            i = 2;
            if x & 0x80 != 0 {
                let m = at(i)?;
                if m & 0x80 != 0 {
                    let lo = at(i + 1)?;
                    d.picture_id = Some(PictureId {
                        value: (u16::from(m & 0x7f) << 8) | u16::from(lo),
                        long: true,
                        offset: i,
                    });
                    i += 2;
                } else {
                    d.picture_id = Some(PictureId {
                        value: u16::from(m),
                        long: false,
                        offset: i,
                    });
                    i += 1;
                }
            }
            if x & 0x40 != 0 {
                d.tl0picidx = Some(at(i)?);
                d.tl0picidx_offset = i;
                i += 1;
            }
            if x & 0x30 != 0 {
                let t = at(i)?;
                if x & 0x20 != 0 {
                    d.tid = Some(t >> 6);
                    d.layer_sync = t & 0x20 != 0;
                }
                if x & 0x10 != 0 {
                    d.keyidx = Some(t & 0x1f);
                }
                i += 1;
            }
        }
        d.header_len = i;
        if d.start_of_partition && d.partition_index == 0 {
            d.frame = p.get(i..).and_then(frame_start);
        }
        Ok(d)
    }

    /// True if this packet starts a key frame.
    pub fn is_key_frame_start(&self) -> bool {
        self.frame.is_some_and(|f| f.key_frame)
    }
}

/// The VP8 payload header (RFC 6386 §9.1): 3-byte frame tag whose bit 0 is
/// the inverse key frame flag; on key frames the start code 9d 01 2a and
/// the 14-bit width and height, little endian.
fn frame_start(h: &[u8]) -> Option<FrameStart> {
    let tag = *h.first()?;
    let key_frame = tag & 0x01 == 0;
    let size = match h.first_chunk::<10>() {
        Some(&[_, _, _, 0x9d, 0x01, 0x2a, w0, w1, h0, h1]) if key_frame => Some((
            u16::from_le_bytes([w0, w1]) & 0x3fff,
            u16::from_le_bytes([h0, h1]) & 0x3fff,
        )),
        _ => None,
    };
    Some(FrameStart { key_frame, size })
}

/// Rewrite the PictureID of the descriptor `d` (parsed from `payload`) in
/// place, keeping its width. A 15-bit field gets `id & 0x7fff`; a 7-bit
/// field gets `id & 0x7f` — the value wraps at 128, which a decoder sees as
/// an ordinary wrap as long as consecutive pictures get consecutive ids, so
/// a forwarder must keep one width per outgoing stream (switching between a
/// 15-bit and a 7-bit source keeps the low bits continuous).
pub fn set_picture_id(payload: &mut [u8], d: &Vp8Descriptor, id: u16) -> Result<(), Vp8Error> {
    let pid = d.picture_id.ok_or(Vp8Error::NoField)?;
    if pid.long {
        let f = payload
            .get_mut(pid.offset..)
            .and_then(<[u8]>::first_chunk_mut::<2>)
            .ok_or(Vp8Error::Truncated)?;
        *f = [0x80 | ((id >> 8) as u8 & 0x7f), id as u8];
    } else {
        let f = payload.get_mut(pid.offset).ok_or(Vp8Error::Truncated)?;
        *f = (id & 0x7f) as u8;
    }
    Ok(())
}

/// Rewrite the TL0PICIDX of the descriptor `d` (parsed from `payload`).
pub fn set_tl0picidx(payload: &mut [u8], d: &Vp8Descriptor, v: u8) -> Result<(), Vp8Error> {
    if d.tl0picidx.is_none() {
        return Err(Vp8Error::NoField);
    }
    let f = payload
        .get_mut(d.tl0picidx_offset)
        .ok_or(Vp8Error::Truncated)?;
    *f = v;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests may index
mod tests {
    use super::*;

    /// Build a descriptor with the given optional fields, then a payload.
    #[allow(clippy::too_many_arguments)]
    fn build(
        n: bool,
        s: bool,
        pid: u8,
        picture_id: Option<(u16, bool)>,
        tl0: Option<u8>,
        tid: Option<(u8, bool)>,
        keyidx: Option<u8>,
        payload: &[u8],
    ) -> Vec<u8> {
        let ext = picture_id.is_some() || tl0.is_some() || tid.is_some() || keyidx.is_some();
        let mut v =
            vec![(u8::from(ext) << 7) | (u8::from(n) << 5) | (u8::from(s) << 4) | (pid & 7)];
        if ext {
            v.push(
                (u8::from(picture_id.is_some()) << 7)
                    | (u8::from(tl0.is_some()) << 6)
                    | (u8::from(tid.is_some()) << 5)
                    | (u8::from(keyidx.is_some()) << 4),
            );
            if let Some((id, long)) = picture_id {
                if long {
                    v.push(0x80 | (id >> 8) as u8);
                    v.push(id as u8);
                } else {
                    v.push(id as u8 & 0x7f);
                }
            }
            if let Some(t) = tl0 {
                v.push(t);
            }
            if tid.is_some() || keyidx.is_some() {
                let (t, y) = tid.unwrap_or((0, false));
                v.push((t << 6) | (u8::from(y) << 5) | keyidx.unwrap_or(0));
            }
        }
        v.extend_from_slice(payload);
        v
    }

    const KEY: [u8; 12] = [
        0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x41, 0xaa, 0xbb,
    ]; // 640 x 480 (0x01e0 with scale bits 01 on height)
    const DELTA: [u8; 4] = [0x31, 0x22, 0x00, 0x77];

    #[test]
    fn every_flag_combination() {
        for mask in 0u32..64 {
            for long in [false, true] {
                let picture_id =
                    (mask & 1 != 0).then_some((if long { 0x1234 } else { 0x55 }, long));
                let tl0 = (mask & 2 != 0).then_some(0xab);
                let tid = (mask & 4 != 0).then_some((2, mask & 8 != 0));
                let keyidx = (mask & 16 != 0).then_some(0x15);
                let key = mask & 32 != 0;
                let payload: &[u8] = if key { &KEY } else { &DELTA };
                let p = build(!key, true, 0, picture_id, tl0, tid, keyidx, payload);
                let d = Vp8Descriptor::parse(&p).unwrap();
                assert_eq!(d.picture_id.map(|x| (x.value, x.long)), picture_id);
                assert_eq!(d.tl0picidx, tl0);
                assert_eq!(d.tid, tid.map(|t| t.0));
                assert_eq!(d.layer_sync, tid.is_some_and(|t| t.1));
                assert_eq!(d.keyidx, keyidx);
                assert_eq!(d.non_reference, !key);
                assert_eq!(&p[d.header_len..], payload);
                assert_eq!(d.is_key_frame_start(), key);
                assert_eq!(d.frame.and_then(|f| f.size), key.then_some((640, 480)));
                // Every truncation of the descriptor is refused.
                for cut in 0..d.header_len {
                    assert_eq!(Vp8Descriptor::parse(&p[..cut]), Err(Vp8Error::Truncated));
                }
                // Rewrites change only their bytes.
                let mut q = p.clone();
                let r = set_picture_id(&mut q, &d, 0x7abc);
                assert_eq!(r.is_ok(), picture_id.is_some());
                let r = set_tl0picidx(&mut q, &d, 0x01);
                assert_eq!(r.is_ok(), tl0.is_some());
                let e = Vp8Descriptor::parse(&q).unwrap();
                let want_id = if long { 0x7abc } else { 0x3c };
                assert_eq!(e.picture_id.map(|x| x.value), picture_id.map(|_| want_id));
                assert_eq!(e.tl0picidx, tl0.map(|_| 0x01));
                assert_eq!(e.header_len, d.header_len);
                assert_eq!((e.tid, e.keyidx, e.frame), (d.tid, d.keyidx, d.frame));
                assert_eq!(&q[d.header_len..], payload);
            }
        }
    }

    #[test]
    fn frame_start_only_on_partition_zero() {
        let p = build(false, true, 1, None, None, None, None, &KEY);
        assert_eq!(Vp8Descriptor::parse(&p).unwrap().frame, None);
        let p = build(false, false, 0, None, None, None, None, &KEY);
        assert_eq!(Vp8Descriptor::parse(&p).unwrap().frame, None);
        // A key frame tag without the full header: key, no size.
        let p = build(
            false,
            true,
            0,
            Some((3, false)),
            None,
            None,
            None,
            &KEY[..5],
        );
        let d = Vp8Descriptor::parse(&p).unwrap();
        assert_eq!(
            d.frame,
            Some(FrameStart {
                key_frame: true,
                size: None
            })
        );
        // Descriptor only: no frame header.
        let p = build(false, true, 0, None, None, None, None, &[]);
        assert_eq!(Vp8Descriptor::parse(&p).unwrap().frame, None);
        assert_eq!(Vp8Descriptor::parse(&[]), Err(Vp8Error::Truncated));
        // X set with an empty extension byte: two-byte descriptor.
        let d = Vp8Descriptor::parse(&[0x90, 0x00, 0x01]).unwrap();
        assert_eq!(d.header_len, 2);
        assert_eq!(d.frame.map(|f| f.key_frame), Some(false));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut data = [0u8; 24];
        for _ in 0..200_000 {
            let n = (rnd() % 24) as usize;
            for b in &mut data[..n] {
                *b = rnd() as u8;
            }
            if let Ok(d) = Vp8Descriptor::parse(&data[..n]) {
                assert!(d.header_len <= n);
                let mut copy = data;
                let _ = set_picture_id(&mut copy[..n], &d, rnd() as u16);
                let _ = set_tl0picidx(&mut copy[..n], &d, rnd() as u8);
                let e = Vp8Descriptor::parse(&copy[..n]).unwrap();
                assert_eq!(e.header_len, d.header_len);
            }
        }
    }
}
