//! Which packets of a video track one receiver gets: the layer selector
//! (LiveKit's `videolayerselector`). The allocator sets a target (spatial
//! layer, highest temporal layer); the selector returns a decision per
//! packet and switches only where the stream allows it — a spatial layer at
//! its key frame, a temporal layer down at any frame start, up at a layer
//! sync frame or a key frame.

use crate::core::ids::LayerIdx;
use crate::core::track::PacketView;

/// What to do with one packet for one receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not this receiver's layer (or not yet: waiting for its key frame).
    Drop,
    /// Its layer, but a temporal layer above the receiver's: skip it in
    /// the numbering. `switched_to` as for `Forward`.
    SkipTemporal {
        /// This key frame started the layer.
        switched_to: Option<LayerIdx>,
    },
    /// Send it.
    Forward {
        /// This key frame started (or switched to) the layer: the leg
        /// restarts its timestamps and picture ids here.
        switched_to: Option<LayerIdx>,
    },
}

/// One receiver's layer state on one video track.
#[derive(Debug, Clone)]
pub struct LayerSelector {
    /// The layer being forwarded; `None` until a key frame of `target`.
    current: Option<LayerIdx>,
    /// The layer this receiver should get.
    target: LayerIdx,
    /// Highest temporal layer the allocator gives this receiver.
    target_tid: u8,
    /// Highest temporal layer being forwarded.
    current_tid: u8,
    /// The target is below the layer being forwarded: stop forwarding the
    /// higher layer at once (the link is short of bandwidth; its packets
    /// would only queue in front of the lower layer's key frame).
    cut: bool,
}

impl LayerSelector {
    /// Waiting for a key frame of `target`, every temporal layer.
    pub fn new(target: LayerIdx) -> Self {
        Self {
            current: None,
            target,
            target_tid: u8::MAX,
            current_tid: u8::MAX,
            cut: false,
        }
    }

    /// The layer being forwarded.
    pub fn current(&self) -> Option<LayerIdx> {
        self.current
    }

    /// The layer wanted.
    pub fn target(&self) -> LayerIdx {
        self.target
    }

    /// The receiver waits for a key frame of its target.
    pub fn is_waiting(&self) -> bool {
        self.current != Some(self.target)
    }

    /// The layer shown, or about to be.
    pub fn shown(&self) -> LayerIdx {
        self.current.unwrap_or(self.target)
    }

    /// Stop forwarding until the next key frame of the target (a pause, a
    /// resume, moderation).
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// Aim at `layer`; true when it changed. Down from the layer being
    /// forwarded, that layer stops at once (switch down fast); up, it
    /// keeps flowing until the new layer's key frame (no gap).
    pub fn set_target(&mut self, layer: LayerIdx) -> bool {
        let changed = self.target != layer;
        self.target = layer;
        self.cut = self.current.is_some_and(|c| layer < c);
        changed
    }

    /// Whether the layer being forwarded was cut (a down-switch waiting for
    /// the lower layer's key frame).
    pub fn is_cut(&self) -> bool {
        self.cut && self.is_waiting()
    }

    /// The highest temporal layer wanted (`u8::MAX`: all).
    pub fn target_tid(&self) -> u8 {
        self.target_tid
    }

    /// Forward temporal layers up to `tid` (`u8::MAX`: all).
    pub fn set_target_tid(&mut self, tid: u8) {
        self.target_tid = tid;
    }

    /// The decision for one packet.
    #[inline]
    pub fn decide(&mut self, pkt: &PacketView, layer_sync: bool) -> Decision {
        let mut switched_to = None;
        if self.current != Some(pkt.layer) {
            if pkt.layer != self.target || !pkt.keyframe {
                return Decision::Drop;
            }
            self.current = Some(pkt.layer);
            self.cut = false;
            switched_to = Some(pkt.layer);
        } else if self.cut && pkt.layer != self.target {
            return Decision::Drop;
        }
        if let Some(t) = pkt.tid {
            let down = self.target_tid < self.current_tid;
            let up_here = self.target_tid > self.current_tid
                && t > self.current_tid
                && t <= self.target_tid
                && layer_sync;
            if pkt.frame_start && (pkt.keyframe || down || up_here) {
                self.current_tid = self.target_tid;
            }
            if t > self.current_tid {
                return Decision::SkipTemporal { switched_to };
            }
        }
        Decision::Forward { switched_to }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;

    fn pkt(layer: u8, keyframe: bool, frame_start: bool, tid: Option<u8>) -> PacketView {
        PacketView {
            layer: LayerIdx::from(layer),
            keyframe,
            frame_start,
            desc: None,
            tid,
            level: None,
        }
    }

    #[test]
    fn a_layer_starts_at_its_key_frame_only() {
        let mut s = LayerSelector::new(LayerIdx::from(1));
        assert_eq!(s.decide(&pkt(1, false, true, None), false), Decision::Drop);
        assert_eq!(s.decide(&pkt(0, true, true, None), false), Decision::Drop);
        assert_eq!(
            s.decide(&pkt(1, true, true, None), false),
            Decision::Forward {
                switched_to: Some(LayerIdx::from(1))
            }
        );
        assert_eq!(
            s.decide(&pkt(1, false, false, None), false),
            Decision::Forward { switched_to: None }
        );
        // A higher target: the old layer flows until the new one's key
        // frame.
        assert!(s.set_target(LayerIdx::from(2)));
        assert!(s.is_waiting() && !s.is_cut());
        assert_eq!(
            s.decide(&pkt(1, false, true, None), false),
            Decision::Forward { switched_to: None }
        );
        // A lower one: the old layer stops at once.
        assert!(s.set_target(LayerIdx::from(0)));
        assert!(s.is_cut());
        assert_eq!(s.decide(&pkt(1, false, true, None), false), Decision::Drop);
        assert_eq!(s.decide(&pkt(0, false, true, None), false), Decision::Drop);
        assert_eq!(
            s.decide(&pkt(0, true, true, None), false),
            Decision::Forward {
                switched_to: Some(LayerIdx::from(0))
            }
        );
    }

    #[test]
    fn temporal_layers_go_down_at_a_frame_start_and_up_at_a_sync() {
        let mut s = LayerSelector::new(LayerIdx::BASE);
        let fwd = Decision::Forward { switched_to: None };
        let skip = Decision::SkipTemporal { switched_to: None };
        assert!(matches!(
            s.decide(&pkt(0, true, true, Some(0)), false),
            Decision::Forward { .. }
        ));
        s.set_target_tid(0);
        // Mid-frame: still everything.
        assert_eq!(s.decide(&pkt(0, false, false, Some(2)), false), fwd);
        // The next frame start lowers it.
        assert_eq!(s.decide(&pkt(0, false, true, Some(2)), false), skip);
        assert_eq!(s.decide(&pkt(0, false, true, Some(0)), false), fwd);
        s.set_target_tid(u8::MAX);
        // Up only at a layer sync frame of a higher layer.
        assert_eq!(s.decide(&pkt(0, false, true, Some(1)), false), skip);
        assert_eq!(s.decide(&pkt(0, false, true, Some(1)), true), fwd);
        assert_eq!(s.decide(&pkt(0, false, true, Some(2)), false), fwd);
    }
}
