//! Gateway counters, exposed on `/metrics` through `prometheus-client`
//! (OpenMetrics text, `salon_mediad::exposition`).

use salon_mediad::exposition::Exposition;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use salon_plugins::PolicyHost;

/// Counters and gauges of the gateway. Relaxed atomics: they are statistics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests served.
    pub http_requests: AtomicU64,
    /// WebSocket connections accepted.
    pub ws_connections: AtomicU64,
    /// WebSocket connections open now.
    pub ws_open: AtomicU64,
    /// Signaling frames received.
    pub frames_in: AtomicU64,
    /// Signaling messages sent.
    pub frames_out: AtomicU64,
    /// Sockets dropped because they did not read their messages.
    pub slow_consumers: AtomicU64,
    /// Participants in a room now.
    pub participants: AtomicU64,
    /// Non-empty rooms now.
    pub rooms: AtomicU64,
    /// Commands sent to the media plane.
    pub media_commands: AtomicU64,
    /// Events received from the media plane.
    pub media_events: AtomicU64,
    /// Live pad documents (one per meeting that opened its pad).
    pub pads_live: AtomicU64,
    /// Pad frames received.
    pub pad_frames_in: AtomicU64,
    /// Pad sockets closed for a refused frame (malformed, too large, full).
    pub pad_frames_refused: AtomicU64,
    /// Sessions waiting in lobbies now.
    pub lobby_waiting: AtomicU64,
    /// Successful policy reloads.
    pub policy_reloads: AtomicU64,
    /// WebSocket upgrades refused: the server holds its most sockets.
    pub refused_global: AtomicU64,
    /// WebSocket upgrades refused: the peer's address holds its most sockets.
    pub refused_per_ip: AtomicU64,
    /// TCP connections closed at accept: the peer's address holds its most
    /// HTTP connections.
    pub refused_http_per_ip: AtomicU64,
    /// HTTP requests refused for a `Host` that is not allowed.
    pub refused_host: AtomicU64,
    /// `accept` failures (out of file descriptors, mostly).
    pub accept_errors: AtomicU64,
    /// TLS handshakes that failed or did not finish in time.
    pub tls_handshake_failures: AtomicU64,
    /// TURN credentials handed out (`joined`, `resumed`, `ice-servers`).
    pub turn_credentials: AtomicU64,
    /// Hands raised (copied from the hub).
    pub hands_raised: AtomicU64,
    /// Reactions relayed to a room (copied from the hub).
    pub reactions_relayed: AtomicU64,
    /// Reactions refused by the per-participant limit (copied from the hub).
    pub reactions_refused: AtomicU64,
    /// Connectivity probes started, refused, expired (copied from the hub).
    pub probes_started: AtomicU64,
    /// See `probes_started`.
    pub probes_refused: AtomicU64,
    /// See `probes_started`.
    pub probes_expired: AtomicU64,
    /// Live probe transports (copied from the hub).
    pub probes_live: AtomicU64,
    /// Sockets closed by the server's abuse bounds, by close reason.
    sockets_closed: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Policy failures: (hook, kind, count), non-zero ones.
    policy_failures: Mutex<Vec<(&'static str, &'static str, u64)>>,
    /// `error` messages sent to browsers, by code (media errors, refused
    /// constraints, forbidden actions…): what went wrong, for operators.
    errors_sent: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Rooms by size and members by role, as of the hub task's last turn
    /// (at most a second old).
    census: Mutex<(crate::hub::Census, Option<std::time::Instant>)>,
}

impl Metrics {
    /// One `error` message with this code was sent to a browser.
    pub fn error_sent(&self, code: &'static str) {
        if let Ok(mut m) = self.errors_sent.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    /// The server closed one socket for this reason (`join-timeout`,
    /// `ping-timeout`, `rate-limited`, `too-many-failed-joins`, `too-large`).
    pub fn socket_closed(&self, reason: &'static str) {
        if let Ok(mut m) = self.sockets_closed.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes one from a gauge.
    pub fn dec(gauge: &AtomicU64) {
        gauge.fetch_sub(1, Ordering::Relaxed);
    }

    /// Copies the hub's gesture counters (called by the hub task).
    pub fn set_gestures(&self, counts: crate::hub::GestureCounts) {
        self.hands_raised
            .store(counts.hands_raised, Ordering::Relaxed);
        self.reactions_relayed
            .store(counts.reactions_relayed, Ordering::Relaxed);
        self.reactions_refused
            .store(counts.reactions_refused, Ordering::Relaxed);
    }

    /// Copies the hub's probe counters (called by the hub task).
    pub fn set_probes(&self, counts: crate::hub::ProbeCounts, live: usize) {
        self.probes_started.store(counts.started, Ordering::Relaxed);
        self.probes_refused.store(counts.refused, Ordering::Relaxed);
        self.probes_expired.store(counts.expired, Ordering::Relaxed);
        self.probes_live.store(live as u64, Ordering::Relaxed);
    }

    /// Copies the policy host's counters (called by the hub task).
    pub fn set_policy(&self, policy: &PolicyHost) {
        self.policy_reloads
            .store(policy.reload_count(), Ordering::Relaxed);
        if let Ok(mut f) = self.policy_failures.lock() {
            f.clear();
            f.extend(
                policy
                    .failure_counters()
                    .map(|(h, k, n)| (h.name(), k.as_str(), n)),
            );
        }
    }

    /// The gateway's metrics for one scrape (`/metrics` joins mediad's).
    pub fn collect(&self) -> Exposition {
        let rows: [(&str, &str, &str, &AtomicU64); 20] = [
            (
                "salon_gateway_http_requests_total",
                "counter",
                "HTTP requests served",
                &self.http_requests,
            ),
            (
                "salon_gateway_ws_connections_total",
                "counter",
                "WebSocket connections accepted",
                &self.ws_connections,
            ),
            (
                "salon_gateway_ws_connections_open",
                "gauge",
                "WebSocket connections open",
                &self.ws_open,
            ),
            (
                "salon_gateway_signaling_frames_in_total",
                "counter",
                "Signaling frames received",
                &self.frames_in,
            ),
            (
                "salon_gateway_signaling_frames_out_total",
                "counter",
                "Signaling messages sent",
                &self.frames_out,
            ),
            (
                "salon_gateway_slow_consumers_total",
                "counter",
                "Sockets dropped for not reading",
                &self.slow_consumers,
            ),
            (
                "salon_gateway_participants",
                "gauge",
                "Participants in a room",
                &self.participants,
            ),
            (
                "salon_gateway_rooms",
                "gauge",
                "Non-empty rooms",
                &self.rooms,
            ),
            (
                "salon_gateway_media_commands_total",
                "counter",
                "Commands sent to mediad",
                &self.media_commands,
            ),
            (
                "salon_gateway_media_events_total",
                "counter",
                "Events received from mediad",
                &self.media_events,
            ),
            (
                "salon_pads_live",
                "gauge",
                "Live pad documents (in memory only)",
                &self.pads_live,
            ),
            (
                "salon_gateway_pad_frames_in_total",
                "counter",
                "Pad frames received",
                &self.pad_frames_in,
            ),
            (
                "salon_gateway_pad_refused_total",
                "counter",
                "Pad sockets closed for a refused frame",
                &self.pad_frames_refused,
            ),
            (
                "salon_gateway_lobby_waiting",
                "gauge",
                "Sessions waiting in lobbies",
                &self.lobby_waiting,
            ),
            (
                "salon_gateway_turn_credentials_total",
                "counter",
                "TURN credentials minted for participants",
                &self.turn_credentials,
            ),
            (
                "salon_policy_reloads_total",
                "counter",
                "Successful policy reloads",
                &self.policy_reloads,
            ),
            (
                "salon_gateway_accept_errors_total",
                "counter",
                "TCP accept failures (file descriptors exhausted, mostly)",
                &self.accept_errors,
            ),
            (
                "salon_gateway_host_refused_total",
                "counter",
                "HTTP requests refused for a Host header that is not allowed",
                &self.refused_host,
            ),
            (
                "salon_gateway_tls_handshake_failures_total",
                "counter",
                "TLS handshakes that failed or did not finish within the handshake timeout",
                &self.tls_handshake_failures,
            ),
            (
                "salon_gateway_hands_raised_total",
                "counter",
                "Hands raised in meetings",
                &self.hands_raised,
            ),
        ];
        let mut e = Exposition::new();
        for (name, kind, help, v) in rows {
            let v = v.load(Ordering::Relaxed);
            match kind {
                "counter" => e.counter(name, help, v),
                _ => e.gauge_int(name, help, v),
            }
        }
        if let Ok(f) = self.policy_failures.lock() {
            for (hook, kind, n) in f.iter() {
                e.counter_with(
                    "salon_policy_failures_total",
                    "Policy hook or load failures (failed closed)",
                    &[("hook", hook), ("kind", kind)],
                    *n,
                );
            }
        }
        for (reason, v) in [
            ("global-cap", &self.refused_global),
            ("per-ip-cap", &self.refused_per_ip),
            ("http-per-ip-cap", &self.refused_http_per_ip),
        ] {
            e.counter_with(
                "salon_gateway_connections_refused_total",
                "WebSocket upgrades and TCP connections refused, by reason",
                &[("reason", reason)],
                v.load(Ordering::Relaxed),
            );
        }
        e.gauge_int(
            "salon_gateway_probes_live",
            "Connectivity probe transports alive (the /test page)",
            self.probes_live.load(Ordering::Relaxed),
        );
        for (outcome, v) in [
            ("started", &self.probes_started),
            ("refused", &self.probes_refused),
            ("expired", &self.probes_expired),
        ] {
            e.counter_with(
                "salon_gateway_probes_total",
                "Connectivity probes (the /test page): started, refused by a limit or state, ended by their lifetime",
                &[("outcome", outcome)],
                v.load(Ordering::Relaxed),
            );
        }
        for (outcome, v) in [
            ("relayed", &self.reactions_relayed),
            ("refused", &self.reactions_refused),
        ] {
            e.counter_with(
                "salon_gateway_reactions_total",
                "Reactions relayed to a room, or refused by the per-participant limit",
                &[("outcome", outcome)],
                v.load(Ordering::Relaxed),
            );
        }
        if let Ok(m) = self.sockets_closed.lock() {
            for (reason, n) in m.iter() {
                e.counter_with(
                    "salon_gateway_sockets_closed_total",
                    "Sockets closed by the abuse bounds, by reason",
                    &[("reason", reason)],
                    *n,
                );
            }
        }
        if let Ok(m) = self.errors_sent.lock() {
            for (code, n) in m.iter() {
                e.counter_with(
                    "salon_gateway_errors_sent_total",
                    "Error messages sent to browsers, by code",
                    &[("code", code)],
                    *n,
                );
            }
        }
        if let Ok(guard) = self.census.lock() {
            let c = &guard.0;
            for ((_, size), n) in crate::hub::SIZE_BUCKETS.iter().zip(c.by_size) {
                e.gauge_int_with(
                    "salon_conferences_by_size",
                    "Conferences by their number of participants (lobby excluded), as jicofo's conference_sizes",
                    &[("size", size)],
                    n,
                );
            }
            for (role, n) in ["moderator", "participant", "guest"].iter().zip(c.by_role) {
                e.gauge_int_with(
                    "salon_participants_by_role",
                    "Participants in a conference, by role",
                    &[("role", role)],
                    n,
                );
            }
        }
        e
    }

    /// Takes the hub's census of rooms and roles if the last one is a
    /// second old (called by the hub task after each turn; O(members)).
    pub fn census_if_due(&self, hub: &crate::hub::Hub, now: std::time::Instant) {
        if let Ok(mut c) = self.census.lock()
            && c.1.is_none_or(|at| {
                now.saturating_duration_since(at) >= std::time::Duration::from_secs(1)
            })
        {
            *c = (hub.census(), Some(now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::inc(&m.ws_connections);
        Metrics::inc(&m.ws_connections);
        let text = m.collect().encode();
        assert!(text.contains("salon_gateway_ws_connections_total 2\n"));
        assert!(text.contains("# TYPE salon_gateway_rooms gauge\n"));
        m.error_sent("media");
        m.error_sent("media");
        m.error_sent("forbidden");
        let text = m.collect().encode();
        assert!(text.contains("salon_gateway_errors_sent_total{code=\"media\"} 2\n"));
        assert!(text.contains("salon_gateway_errors_sent_total{code=\"forbidden\"} 1\n"));
        m.set_gestures(crate::hub::GestureCounts {
            hands_raised: 1,
            reactions_relayed: 3,
            reactions_refused: 2,
        });
        let text = m.collect().encode();
        assert!(text.contains("salon_gateway_reactions_total{outcome=\"relayed\"} 3\n"));
        assert!(text.contains("salon_gateway_reactions_total{outcome=\"refused\"} 2\n"));
        assert!(text.contains("salon_gateway_hands_raised_total 1\n"));
        m.set_probes(
            crate::hub::ProbeCounts {
                started: 8,
                refused: 1,
                expired: 2,
            },
            3,
        );
        let text = m.collect().encode();
        assert!(text.contains("salon_gateway_probes_total{outcome=\"started\"} 8\n"));
        assert!(text.contains("salon_gateway_probes_total{outcome=\"refused\"} 1\n"));
        assert!(text.contains("salon_gateway_probes_total{outcome=\"expired\"} 2\n"));
        assert!(text.contains("salon_gateway_probes_live 3\n"));
    }
}
