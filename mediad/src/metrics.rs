//! Counters a worker keeps and the operator reads (`/metrics`).
//!
//! Each worker owns one [`Metrics`]; only that worker's thread writes it
//! (relaxed atomic adds, uncontended), the gateway thread reads it.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Add `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (bytes held, a configured limit).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Set it.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Take `n` away (never below zero).
    pub fn sub(&self, n: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (bit/s) of the buckets of receiver estimates; the last
/// bucket is `+Inf`.
pub const ESTIMATE_BUCKETS: [u64; 8] = [
    100_000, 200_000, 400_000, 800_000, 1_600_000, 3_200_000, 6_400_000, 12_800_000,
];

/// The buckets of a [`Histogram`]: eight upper bounds in the unit
/// observed, and the divisor that turns that unit into the exposed one
/// (milliseconds observed, seconds exposed: 1000).
pub trait Buckets: std::fmt::Debug + Default + Send + Sync {
    /// Upper bounds, ascending; the last bucket is `+Inf`.
    const BOUNDS: [u64; 8];
    /// Observed unit per exposed unit.
    const SCALE: f64;
}

/// Receivers' bandwidth estimates, bit/s.
#[derive(Debug, Default)]
pub struct EstimateBps;
impl Buckets for EstimateBps {
    const BOUNDS: [u64; 8] = ESTIMATE_BUCKETS;
    const SCALE: f64 = 1.0;
}

/// Round trips, observed in milliseconds, exposed in seconds.
#[derive(Debug, Default)]
pub struct RttMs;
impl Buckets for RttMs {
    const BOUNDS: [u64; 8] = [10, 25, 50, 100, 200, 400, 800, 1600];
    const SCALE: f64 = 1000.0;
}

/// Loss fractions, observed in thousandths, exposed as fractions.
#[derive(Debug, Default)]
pub struct LossPerMille;
impl Buckets for LossPerMille {
    const BOUNDS: [u64; 8] = [1, 5, 10, 20, 50, 100, 200, 500];
    const SCALE: f64 = 1000.0;
}

/// Interarrival jitter, observed in milliseconds, exposed in seconds.
#[derive(Debug, Default)]
pub struct JitterMs;
impl Buckets for JitterMs {
    const BOUNDS: [u64; 8] = [1, 2, 5, 10, 20, 50, 100, 200];
    const SCALE: f64 = 1000.0;
}

/// A fixed-bucket histogram (non-cumulative counts; rendered cumulative),
/// written by one worker thread with relaxed atomics: e.g. one observation
/// per receiver per allocation round, so the counts are receiver-time
/// (×100 ms) spent in each bucket, whatever the number of receivers — no
/// per-receiver series.
#[derive(Debug, Default)]
pub struct Histogram<B: Buckets = EstimateBps> {
    buckets: [AtomicU64; 9],
    sum: AtomicU64,
    _bounds: std::marker::PhantomData<B>,
}

impl<B: Buckets> Histogram<B> {
    /// Count one observation of `v`.
    pub fn observe(&self, v: u64) {
        let i = B::BOUNDS
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(B::BOUNDS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    /// Observations per bucket (not cumulative), and their sum.
    pub fn counts(&self) -> ([u64; 9], u64) {
        let mut out = [0; 9];
        for (o, b) in out.iter_mut().zip(&self.buckets) {
            *o = b.load(Ordering::Relaxed);
        }
        (out, self.sum.load(Ordering::Relaxed))
    }
}

/// Several workers' histograms summed, into `e` under `name`.
fn collect_histogram<B: Buckets>(
    e: &mut crate::exposition::Exposition,
    name: &str,
    help: &str,
    of: impl Iterator<Item = ([u64; 9], u64)>,
) {
    let mut total = [0u64; 9];
    let mut sum = 0u64;
    for (c, s) in of {
        for (t, x) in total.iter_mut().zip(c) {
            *t += x;
        }
        sum += s;
    }
    let buckets: Vec<(f64, u64)> = B::BOUNDS
        .iter()
        .zip(total)
        .map(|(&le, n)| (le as f64 / B::SCALE, n))
        .collect();
    e.histogram(
        name,
        help,
        sum as f64 / B::SCALE,
        total.iter().sum(),
        &buckets,
    );
}

macro_rules! metrics {
    ($($name:ident: $help:literal,)* ; $($gauge:ident: $ghelp:literal,)*) => {
        /// One worker's counters and gauges.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $help] pub $name: Counter,)*
            $(#[doc = $ghelp] pub $gauge: Gauge,)*
            /// Receivers' bandwidth estimates, one observation per receiver
            /// per allocation round (`mediad_receiver_estimate_bps`).
            pub receiver_estimate: Histogram,
            /// Receivers' round trips (from transport-wide feedback), one
            /// observation per receiver per allocation round.
            pub receiver_rtt: Histogram<RttMs>,
            /// Loss of what publishers send mediad, per stream, at each
            /// receiver report mediad sends them (every second).
            pub loss_in: Histogram<LossPerMille>,
            /// Loss of what mediad sends receivers, per stream, as their
            /// receiver reports say.
            pub loss_out: Histogram<LossPerMille>,
            /// Interarrival jitter of what publishers send mediad, per
            /// stream, at each receiver report mediad sends them.
            pub jitter_in: Histogram<JitterMs>,
        }

        impl Metrics {
            /// `(name, help, value)` for every counter.
            pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $help, self.$name.get()),)*]
            }

            /// `(name, help, value)` for every gauge.
            pub fn gauges(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($gauge), $ghelp, self.$gauge.get()),)*]
            }
        }
    };
}

metrics! {
    rx_datagrams: "Datagrams received.",
    rx_stun: "STUN messages received.",
    rx_dtls: "DTLS datagrams received.",
    rx_rtp: "SRTP packets received and authenticated.",
    rx_rtcp: "SRTCP packets received and authenticated.",
    drop_unknown_kind: "Datagrams dropped: not STUN, DTLS, RTP or RTCP.",
    drop_stun_malformed: "STUN messages dropped: malformed.",
    drop_stun_auth: "STUN messages dropped: unknown user or bad MESSAGE-INTEGRITY or FINGERPRINT.",
    drop_addr_taken: "STUN checks dropped: from an address another transport has latched.",
    drop_unlatched: "Datagrams dropped: from an address no authenticated STUN request latched.",
    drop_not_connected: "Media dropped: transport not connected yet.",
    drop_srtp_auth: "SRTP/SRTCP packets dropped: authentication or replay check failed.",
    drop_rtp_malformed: "RTP packets dropped: malformed header.",
    drop_rtp_unknown_ssrc: "RTP packets dropped: SSRC not negotiated.",
    drop_rtx_unused: "RTP packets on a publisher's RTX stream with nothing to repair (padding probes).",
    drop_rtcp_malformed: "RTCP packets dropped: malformed.",
    drop_muted: "RTP packets not forwarded: forwarding disabled by moderation.",
    drop_tx_full: "Packets dropped: send queue full.",
    dtls_failed: "DTLS handshakes that failed.",
    dtls_fingerprint_mismatch: "DTLS peers whose certificate did not match the SDP fingerprint.",
    transports_connected: "Transports that completed ICE and DTLS.",
    tx_rtp: "RTP packets forwarded.",
    tx_rtcp: "RTCP packets sent.",
    twcc_feedback: "Transport-wide congestion control feedback packets used.",
    twcc_feedback_sent: "Transport-wide congestion control feedback packets sent to publishers.",
    nack_received: "Sequence numbers receivers asked to retransmit.",
    nack_answered: "Retransmissions sent from the cache.",
    nack_unanswerable: "NACKed packets no longer known (too old, or never sent).",
    nack_sent: "Sequence numbers mediad asked publishers to retransmit.",
    nack_too_soon: "NACKed packets not sent again: already sent again less than a round trip ago.",
    nack_too_many: "NACKed packets not sent again: sent again three times already.",
    nack_stale_layer: "NACKed packets not sent again: from a layer the receiver is leaving (a key frame of its new layer is awaited).",
    nack_over_budget: "NACKed packets not sent again: the receiver's retransmission budget (a share of its bandwidth estimate) was spent.",
    rtx_bytes_sent: "Bytes of retransmissions sent to receivers.",
    rtx_received: "Retransmissions from publishers (RTX) forwarded as the packets they repair.",
    keyframe_requests: "PLI sent to publishers.",
    layer_switches: "Receiver layer targets changed by the allocator.",
    layer_switches_up: "Receiver layer targets raised (a higher spatial layer).",
    layer_switches_down: "Receiver layer targets lowered (a lower spatial layer; the higher one stops at once).",
    layer_pauses: "Videos the allocator stopped sending a receiver (last-N, no budget).",
    probes: "Bandwidth probe clusters started.",
    probes_raised: "Probe clusters whose result raised the receiver's estimate.",
    probes_queue_built: "Probe clusters that failed: the one-way delay grew across the cluster (a queue built, e.g. behind a token bucket's burst).",
    probes_cut: "Probe clusters cut short: their feedback already showed a queue building.",
    probes_not_raised: "Probe clusters that neither raised the estimate nor built a queue (too little feedback, or a result below the estimate).",
    tx_padding: "Padding-only RTP packets sent to probe for bandwidth.",
    paced: "Packets to receivers the pacer held for their turn (a burst spread at 2.5 times the receiver's estimate).",
    pacer_full: "Packets to receivers sent at once because their pacer was full or too far behind (150 ms).",
    negotiation_failed: "Subscribe answers refused (unparseable, or not matching the offer): the negotiation was reset and offered again.",
    offer_timeouts: "Subscribe offers left unanswered too long, offered again.",
    lines_recycled: "Subscribe m-lines reused for a new track (JSEP mid reuse).",
    consent_lost: "Transports whose peer sent no authenticated STUN request for 30 s: sending stopped (RFC 7675).",
    dtls_closed: "Transports whose peer closed its DTLS session (close_notify: a page reloaded or left): sending stopped.",
    ice_restarts: "ICE restarts (new local credentials on a transport).",
    ice_succeeded_udp: "ICE succeeded over UDP: an authenticated check latched (or, with USE-CANDIDATE, moved) a transport's address to a UDP peer.",
    ice_succeeded_tcp: "ICE succeeded over TCP (ICE-TCP, RFC 6544): an authenticated check latched (or moved) a transport's address to a TCP connection.",
    ice_succeeded_relayed: "ICE succeeded through a TURN relay: a UDP latch (counted in ice_succeeded_udp too) from an address the TURN servers relay from (--turn-url hosts, --turn-relay-ip).",
    consent_regained: "Transports whose peer consented again after a loss of consent.",
    receivers_back: "Receivers heard again after a second or more without feedback (their network came back): key frames asked for what they are sent.",
    nack_over_rate: "NACKs cut short: the receiver asked for more than 2,000 sequence numbers a second (4,000 at once); the rest of the NACK was not read.",
    upstream_gaps: "Publisher streams that resumed after a loss too large to repair by NACK: a key frame was asked for.",
    offers_too_large: "Publish offers or subscribe answers refused: larger than the limit.",
    offers_rate_limited: "Publish offers refused: the participant made too many too fast.",
    publish_over_budget: "Publish offers refused: their buffers would not fit in the worker's memory budget.",
    rtx_cache_over_budget: "Retransmission caches not created (a layer's first packet) or not grown (to its rate) because the memory budget was spent.",
    alloc_rounds: "Allocation rounds run (every 100 ms, or at once after receive constraints or last-N changed; several changes coalesce into one).",
    ;
    memory_used_bytes: "Bytes the worker's big buffers (retransmission caches, sent logs) hold.",
    memory_budget_bytes: "The worker's memory budget for those buffers.",
    video_legs_spatial0: "Video legs (receiver × video) forwarding the lowest spatial layer, at the last allocation round.",
    video_legs_spatial1: "Video legs forwarding the second spatial layer.",
    video_legs_spatial2: "Video legs forwarding the third spatial layer or above.",
    video_legs_switching: "Video legs waiting for the key frame of a new target layer.",
    video_legs_thinned: "Video legs whose temporal layers the allocator thinned (reduced frame rate).",
    relayed_transports: "Transports latched to a TURN relay's address now.",
    receivers_held: "Receivers whose estimate is held under the ceiling of a recent congestion episode.",
}

/// Render several workers' counters (summed), the estimate histogram and
/// the per-worker gauges, as OpenMetrics text (`crate::exposition`).
pub fn render_prometheus(workers: &[&Metrics]) -> String {
    let mut e = crate::exposition::Exposition::new();
    collect(&mut e, workers);
    e.encode()
}

/// Adds several workers' counters (summed), the estimate histogram and the
/// per-worker gauges to `e`.
pub fn collect(e: &mut crate::exposition::Exposition, workers: &[&Metrics]) {
    let Some(first) = workers.first() else {
        return;
    };
    for (i, (name, help, _)) in first.snapshot().into_iter().enumerate() {
        let total: u64 = workers
            .iter()
            .map(|m| m.snapshot().get(i).map_or(0, |s| s.2))
            .sum();
        e.counter(&format!("mediad_{name}"), help, total);
    }
    collect_histogram::<EstimateBps>(
        e,
        "mediad_receiver_estimate_bps",
        "Receivers' bandwidth estimates, one observation per receiver per 100 ms allocation round.",
        workers.iter().map(|m| m.receiver_estimate.counts()),
    );
    collect_histogram::<RttMs>(
        e,
        "mediad_receiver_rtt_seconds",
        "Receivers' round-trip times (transport-wide feedback), one observation per receiver per 100 ms allocation round.",
        workers.iter().map(|m| m.receiver_rtt.counts()),
    );
    collect_histogram::<LossPerMille>(
        e,
        "mediad_loss_in_ratio",
        "Loss fraction of publishers' streams into mediad, one observation per stream per receiver report (1 s).",
        workers.iter().map(|m| m.loss_in.counts()),
    );
    collect_histogram::<LossPerMille>(
        e,
        "mediad_loss_out_ratio",
        "Loss fraction of the streams mediad sends, as receivers report it, one observation per report block.",
        workers.iter().map(|m| m.loss_out.counts()),
    );
    collect_histogram::<JitterMs>(
        e,
        "mediad_jitter_in_seconds",
        "Interarrival jitter of publishers' streams into mediad, one observation per stream per receiver report (1 s).",
        workers.iter().map(|m| m.jitter_in.counts()),
    );
    // Gauges per worker: a budget is per worker, not a sum.
    for (i, (name, help, _)) in first.gauges().into_iter().enumerate() {
        for (w, m) in workers.iter().enumerate() {
            let v = m.gauges().get(i).map_or(0, |g| g.2);
            e.gauge_int_with(
                &format!("mediad_{name}"),
                help,
                &[("worker", &w.to_string())],
                v,
            );
        }
    }
}

/// Adds the io drivers' counters (summed over workers) to `e`.
pub fn collect_io(e: &mut crate::exposition::Exposition, workers: &[salon_io::IoStatsSnapshot]) {
    let sum = |f: fn(&salon_io::IoStatsSnapshot) -> u64| -> u64 { workers.iter().map(f).sum() };
    let rows: [(&str, &str, u64); 16] = [
        (
            "rx_datagrams",
            "Datagrams received by the io driver.",
            sum(|s| s.rx_datagrams),
        ),
        (
            "rx_bytes",
            "Bytes received by the io driver.",
            sum(|s| s.rx_bytes),
        ),
        (
            "rx_truncated",
            "Datagrams dropped for exceeding 1500 bytes.",
            sum(|s| s.rx_truncated),
        ),
        ("rx_errors", "Failed receives.", sum(|s| s.rx_errors)),
        (
            "tx_datagrams",
            "Datagrams sent by the io driver.",
            sum(|s| s.tx_datagrams),
        ),
        (
            "tx_bytes",
            "Bytes sent by the io driver.",
            sum(|s| s.tx_bytes),
        ),
        ("tx_errors", "Failed sends.", sum(|s| s.tx_errors)),
        (
            "tx_queue_full",
            "Datagrams refused because the send queue was full.",
            sum(|s| s.tx_queue_full),
        ),
        (
            "tcp_accepted",
            "TCP media connections accepted (ICE-TCP).",
            sum(|s| s.tcp_accepted),
        ),
        (
            "tcp_refused",
            "TCP media connections refused: over the global or per-IP limit.",
            sum(|s| s.tcp_refused),
        ),
        (
            "tcp_closed",
            "TCP media connections closed, for any reason.",
            sum(|s| s.tcp_closed),
        ),
        (
            "tcp_closed_malformed",
            "TCP media connections closed for a malformed RFC 4571 frame (empty, or over 1500 bytes).",
            sum(|s| s.tcp_closed_malformed),
        ),
        (
            "tcp_closed_timeout",
            "TCP media connections closed for no valid STUN check within 10 s of opening, or nothing received for 40 s.",
            sum(|s| s.tcp_closed_timeout),
        ),
        (
            "tcp_rx_frames",
            "Frames received on TCP media connections.",
            sum(|s| s.tcp_rx_frames),
        ),
        (
            "tcp_tx_frames",
            "Frames queued on TCP media connections.",
            sum(|s| s.tcp_tx_frames),
        ),
        (
            "tcp_tx_dropped",
            "Frames for TCP media connections dropped: the connection's send buffer was full, or it had gone.",
            sum(|s| s.tcp_tx_dropped),
        ),
    ];
    for (name, help, v) in rows {
        e.counter(&format!("mediad_io_{name}"), help, v);
    }
    e.gauge_int(
        "mediad_io_tcp_open",
        "TCP media connections open now (all workers).",
        sum(|s| s.tcp_open),
    );
}
