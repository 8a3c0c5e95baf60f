//! salon-perf: the load harness (being built).
