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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_layer_first() {
        assert_eq!(initial_layer(1), 0);
        assert_eq!(initial_layer(3), 2);
        assert_eq!(initial_layer(0), 0);
    }
}
