//! Allocation policy per kind of content: which (spatial, temporal) layers
//! a video climbs through, and in which order. Policy only — the
//! mechanism that spends a budget on these steps is [`super::distribute`].
//!
//! - **Camera**: motion matters more than detail. A lower spatial layer at
//!   its full frame rate is preferred to a higher one with temporal layers
//!   dropped: temporal layers are given up only on the lowest spatial
//!   layer (when even it does not fit whole); above it, a spatial layer is
//!   taken only with all its temporal layers. At 800 kbit/s a 720p/360p/180p
//!   camera gives 360p at 30 fps, not 720p at 7.5 fps.
//! - **Screen share**: detail matters more than motion (text must stay
//!   readable). Resolution first, each spatial layer at its base temporal
//!   layer; frame rate is added only on the highest spatial layer the tile
//!   shows.

/// What a video shows, for the allocator's ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Content {
    /// A camera: keep the frame rate, drop resolution.
    #[default]
    Camera,
    /// A screen share: keep the resolution, drop frame rate.
    Screen,
}

impl Content {
    /// The order of layers for this content: a step is "up" when its rank
    /// is greater. Camera: spatial first, then temporal; screen: temporal
    /// first, then spatial.
    pub fn rank(self, spatial: u8, temporal: u8) -> (u8, u8) {
        match self {
            Content::Camera => (spatial, temporal),
            Content::Screen => (temporal, spatial),
        }
    }

    /// Whether layer (`spatial`, `temporal`) is a step of this content's
    /// ladder. `lowest` and `highest` are the lowest and highest eligible
    /// spatial layers, `top_temporal` the highest eligible temporal layer
    /// of `spatial`.
    pub fn on_ladder(
        self,
        spatial: u8,
        temporal: u8,
        lowest: u8,
        highest: u8,
        top_temporal: u8,
    ) -> bool {
        match self {
            Content::Camera => spatial == lowest || temporal == top_temporal,
            Content::Screen => spatial == highest || temporal == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ladders of a 3 × 3 video, in order.
    fn ladder(c: Content) -> Vec<(u8, u8)> {
        let mut v: Vec<(u8, u8)> = (0..3u8)
            .flat_map(|s| (0..3u8).map(move |t| (s, t)))
            .filter(|&(s, t)| c.on_ladder(s, t, 0, 2, 2))
            .collect();
        v.sort_by_key(|&(s, t)| c.rank(s, t));
        v
    }

    #[test]
    fn camera_keeps_frame_rate_screen_keeps_resolution() {
        assert_eq!(
            ladder(Content::Camera),
            [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2)]
        );
        assert_eq!(
            ladder(Content::Screen),
            [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2)]
        );
    }
}
