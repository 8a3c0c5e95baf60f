//! Which layer of a track each receiver gets: policy, apart from the
//! forwarding mechanism, which carries a choice out at the next key frame of
//! the chosen layer (and asks the publisher for one).
//!
//! Today the choice is static: the best layer on offer. Bandwidth-aware
//! allocation replaces this unit, not the forwarding code.

/// The layer a new receiver starts with, for a track with `layers`
/// encodings listed lowest quality first.
pub fn initial_layer(layers: usize) -> usize {
    layers.saturating_sub(1)
}

/// The best layer whose height fits `max_height`, given each layer's frame
/// size when known (from its key frames), lowest quality first. A layer of
/// unknown size is assumed half the height of the next one up (simulcast
/// scales by 2). With no limit, or no size known at all, the best layer;
/// when nothing fits, the lowest.
pub fn choose_layer(sizes: &[Option<(u16, u16)>], max_height: Option<u16>) -> usize {
    let top = sizes.len().saturating_sub(1);
    let Some(max) = max_height else {
        return top;
    };
    // Estimate unknown heights from the nearest known layer above or below.
    let known = sizes
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, s)| s.map(|(_, h)| (i, h)));
    let Some((ki, kh)) = known else {
        return top;
    };
    let height = |i: usize| -> u32 {
        match sizes.get(i).copied().flatten() {
            Some((_, h)) => u32::from(h),
            None if i < ki => u32::from(kh) >> (ki - i).min(16),
            None => u32::from(kh) << (i - ki).min(4),
        }
    };
    (0..sizes.len())
        .rev()
        .find(|&i| height(i) <= u32::from(max))
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn best_layer_first() {
        assert_eq!(initial_layer(1), 0);
        assert_eq!(initial_layer(3), 2);
        assert_eq!(initial_layer(0), 0);
    }

    #[test]
    fn the_best_layer_that_fits_the_tile() {
        let all = [Some((320, 180)), Some((640, 360)), Some((1280, 720))];
        assert_eq!(choose_layer(&all, None), 2);
        assert_eq!(choose_layer(&all, Some(720)), 2);
        assert_eq!(choose_layer(&all, Some(400)), 1);
        assert_eq!(choose_layer(&all, Some(180)), 0);
        assert_eq!(choose_layer(&all, Some(100)), 0, "nothing fits: the lowest");
        // Only the top size is known yet: the others are estimated.
        let top_only = [None, None, Some((1280, 720))];
        assert_eq!(choose_layer(&top_only, Some(200)), 0);
        assert_eq!(choose_layer(&top_only, Some(360)), 1);
        assert_eq!(
            choose_layer(&[None, None, None], Some(200)),
            2,
            "nothing known: best"
        );
        assert_eq!(choose_layer(&[Some((640, 480))], Some(100)), 0);
    }
}
