//! RTCP: what arrives from browsers (sender reports from publishers;
//! NACK, PLI/FIR and transport-wide feedback from receivers) routed to its
//! owner, and what mediad reports (receiver reports to publishers, sender
//! reports relayed to receivers). Every RTCP packet mediad sends goes
//! through [`send_rtcp`]. Key frame requests are [`super::keyframe`]'s,
//! NACK/RTX [`super::nack`]'s.

use std::time::Instant;

use salon_io::TxQueue;
use salon_proto::rtcp::{self, RtcpIter, RtcpPacket};

use super::Worker;
use super::ids::{LayerIdx, Table, TransportId};
use super::track::Legs;
use super::transport::{Route, Transport};
use crate::MediaKind;
use crate::control::TransportKind;
use crate::metrics::Metrics;

/// Write an RTCP compound for transport `idx` (`write` gets the buffer and
/// the transport's RTCP SSRC, returns the length) into the send queue and
/// encrypt it there. Returns true when it was queued.
pub fn send_rtcp(
    transports: &mut Table<TransportId, Transport>,
    metrics: &Metrics,
    tx: &mut TxQueue,
    idx: TransportId,
    write: impl FnOnce(&mut [u8], u32) -> Option<usize>,
) -> bool {
    let Some(t) = transports.get_mut(idx) else {
        return false;
    };
    let sender = t.rtcp_ssrc();
    let Some((addr, ctx)) = t.sender() else {
        return false;
    };
    let Some(buf) = tx.buffer() else {
        metrics.drop_tx_full.inc();
        return false;
    };
    let Some(n) = write(&mut buf[..], sender) else {
        return false;
    };
    match ctx.protect_rtcp(&mut buf[..], n) {
        Ok(len) => {
            tx.commit(addr, len);
            metrics.tx_rtcp.inc();
            true
        }
        Err(_) => false,
    }
}

impl Worker {
    /// [`send_rtcp`] on this worker's transports.
    pub(super) fn send_rtcp(
        &mut self,
        tx: &mut TxQueue,
        idx: TransportId,
        write: impl FnOnce(&mut [u8], u32) -> Option<usize>,
    ) -> bool {
        send_rtcp(&mut self.transports, &self.metrics, tx, idx, write)
    }

    /// One decrypted RTCP compound from transport `idx`.
    pub(super) fn on_rtcp(
        &mut self,
        idx: TransportId,
        kind: TransportKind,
        plain: &[u8],
        now: Instant,
        tx: &mut TxQueue,
    ) {
        // A receiver heard from again after a silence (its network went
        // and came back): what it was sent meanwhile is lost, and its
        // decoders wait for key frames — ask at once rather than after its
        // own timeout (Chrome: 3 s without a decodable frame).
        if kind == TransportKind::Subscribe
            && let Some(t) = self.transports.get_mut(idx)
            && t.on_rtcp(now)
                .is_some_and(|silent| silent >= super::keyframe::RECEIVER_SILENCE)
        {
            let receiver = t.participant();
            self.metrics.receivers_back.inc();
            self.request_shown_keyframes_for(receiver, now, tx);
        }
        for pkt in RtcpIter::new(plain) {
            let pkt = match pkt {
                Ok(p) => p,
                Err(_) => {
                    self.metrics.drop_rtcp_malformed.inc();
                    break;
                }
            };
            match (kind, pkt) {
                (TransportKind::Publish, RtcpPacket::SenderReport(sr)) => {
                    self.on_sender_report(idx, &sr, now, tx)
                }
                (TransportKind::Subscribe, RtcpPacket::Nack(nack)) => {
                    let media = nack.media_ssrc;
                    for seq in nack.lost() {
                        self.metrics.nack_received.inc();
                        if !self
                            .transports
                            .get_mut(idx)
                            .is_some_and(|t| t.take_nack_item(now))
                        {
                            // Over its rate: the rest is not even read.
                            self.metrics.nack_over_rate.inc();
                            break;
                        }
                        self.retransmit(idx, media, seq, now, tx);
                    }
                }
                (TransportKind::Subscribe, RtcpPacket::TransportCc(fb)) => {
                    self.on_transport_feedback(idx, fb.fci, now);
                }
                (TransportKind::Subscribe, RtcpPacket::Pli(pli)) => {
                    self.on_receiver_keyframe_request(idx, pli.media_ssrc, now, tx);
                }
                (TransportKind::Subscribe, RtcpPacket::ReceiverReport(rr)) => {
                    for b in rr.reports() {
                        self.metrics
                            .loss_out
                            .observe(u64::from(b.fraction_lost) * 1000 / 256);
                    }
                }
                (TransportKind::Subscribe, RtcpPacket::Fir(fir)) => {
                    for entry in fir.entries() {
                        self.on_receiver_keyframe_request(idx, entry.ssrc, now, tx);
                    }
                }
                // Reports, SDES, BYE, REMB and the rest carry nothing
                // mediad acts on (and a publisher's feedback is its own
                // browser's business).
                (TransportKind::Publish | TransportKind::Subscribe, _) => {}
            }
        }
    }

    /// Transport-wide feedback from a receiver: into its bandwidth estimate.
    fn on_transport_feedback(&mut self, idx: TransportId, fci: &[u8], now: Instant) {
        let Ok(fb) = salon_proto::twcc::TwccFeedback::parse(fci) else {
            self.metrics.drop_rtcp_malformed.inc();
            return;
        };
        let Some(t) = self.transports.get_mut(idx) else {
            return;
        };
        self.twcc_results.clear();
        for (seq, status) in fb.packets() {
            let arrival_us = match status {
                salon_proto::twcc::PacketStatus::Received { arrival_us, .. } => Some(arrival_us),
                salon_proto::twcc::PacketStatus::NotReceived => None,
            };
            self.twcc_results.push(crate::bwe::PacketResult {
                seq: t.unwrap_twcc(seq),
                arrival_us,
            });
        }
        let before = t.fed_estimate_bps();
        if t.on_transport_feedback(&self.twcc_results, now) {
            self.metrics.twcc_feedback.inc();
            let proven = super::probe::note_probe_outcomes(t, &self.metrics);
            // The estimate fell by more than the allocator's margin: its
            // layers are decided now, not at the next round (up to 100 ms
            // more of the higher layer queued in front of the lower one).
            // A probe proved more: the up-switch it allows is decided now
            // too (it commits without the hold).
            let after = t.fed_estimate_bps();
            let fell = matches!((before, after), (Some(b), Some(a)) if a.saturating_mul(100) < b.saturating_mul(87));
            if fell || proven {
                let pid = t.participant();
                self.allocate_soon(pid, now);
            }
        }
    }

    /// A publisher's sender report: its clock mapping, relayed to every
    /// receiver of that layer under its own SSRC, counts and timestamp
    /// offset, so browsers can synchronise audio and video.
    fn on_sender_report(
        &mut self,
        idx: TransportId,
        sr: &rtcp::SenderReport<'_>,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(Route::Track(ti, li)) = self.transports.get(idx).and_then(|t| t.route(sr.ssrc))
        else {
            return;
        };
        let Some(track) = self.tracks.get_mut(ti) else {
            return;
        };
        if let Some(layer) = track.layers.get_mut(li.index()) {
            layer.stats.on_sender_report(sr.ntp, now);
        }
        let (audio, video) = match &track.legs {
            Legs::Audio(a) => (a.as_slice(), &[][..]),
            Legs::Video(v) => (&[][..], v.as_slice()),
        };
        let showing = audio
            .iter()
            .filter(|l| l.started && li == LayerIdx::BASE)
            .map(|l| &l.out)
            .chain(
                video
                    .iter()
                    .filter(|l| l.sel.current() == Some(li))
                    .map(|l| &l.out),
            )
            .filter(|o| o.live);
        for leg in showing {
            send_rtcp(
                &mut self.transports,
                &self.metrics,
                tx,
                leg.transport,
                |buf, _| {
                    rtcp::write_sender_report(
                        buf,
                        leg.ssrc,
                        sr.ntp,
                        sr.rtp_timestamp.wrapping_add(leg.ts_offset),
                        leg.packets,
                        leg.octets,
                        &[],
                    )
                    .ok()
                },
            );
        }
    }

    /// Receiver reports to every connected publisher, one block per stream
    /// it sends.
    pub(super) fn send_receiver_reports(&mut self, now: Instant, tx: &mut TxQueue) {
        let mut blocks: Vec<rtcp::ReportBlock> = Vec::new();
        for idx in self.transports.handles() {
            let Some(t) = self.transports.get(idx) else {
                continue;
            };
            if t.kind() != TransportKind::Publish || !t.is_connected() {
                continue;
            }
            blocks.clear();
            if let Some(p) = self.participants.get(&t.participant()) {
                for &ti in &p.published {
                    let Some(track) = self.tracks.get_mut(ti) else {
                        continue;
                    };
                    // RTP clock: 48 kHz for Opus, 90 kHz for video.
                    let clock_khz = if track.kind == MediaKind::Audio {
                        48
                    } else {
                        90
                    };
                    for layer in &mut track.layers {
                        if let Some(ssrc) = layer.ssrc
                            && let Some(b) = layer.stats.report(ssrc, now)
                        {
                            self.metrics
                                .loss_in
                                .observe(u64::from(b.fraction_lost) * 1000 / 256);
                            self.metrics
                                .jitter_in
                                .observe(u64::from(b.jitter) / clock_khz);
                            blocks.push(b);
                        }
                    }
                }
            }
            if blocks.is_empty() {
                continue;
            }
            let report = blocks.get(..blocks.len().min(31)).unwrap_or(&[]);
            send_rtcp(
                &mut self.transports,
                &self.metrics,
                tx,
                idx,
                |buf, sender| rtcp::write_receiver_report(buf, sender, report).ok(),
            );
        }
    }
}
