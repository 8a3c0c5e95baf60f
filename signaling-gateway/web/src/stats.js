// WebRTC statistics of a Session, for the end-to-end tests (window.salonTest).
// No DOM: what the page shows comes in as arguments. Remote tracks are
// named as the session knows them: by the SDP's msid for their mid.
import { remoteMsids } from './session.js';

/** Per publisher id: frames decoded, size, and bytes received per kind. */
export async function subscribeStats(session) {
  const out = {};
  const pc = session.sub;
  if (!pc) return out;
  const fromSdp = remoteMsids(pc.remoteDescription?.sdp);
  const transceivers = pc.getTransceivers();
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.mid == null) return;
    const tr = transceivers.find((x) => x.mid === s.mid);
    const id = (tr && session.remoteOf(tr)?.publisher) ?? fromSdp.get(s.mid)?.publisher;
    if (id === undefined) return;
    const e = (out[id] ??= {
      framesDecoded: 0,
      frameWidth: 0,
      frameHeight: 0,
      audioBytesReceived: 0,
      videoBytesReceived: 0,
    });
    if (s.kind === 'video') {
      e.framesDecoded += s.framesDecoded ?? 0;
      e.frameWidth = Math.max(e.frameWidth, s.frameWidth ?? 0);
      e.frameHeight = Math.max(e.frameHeight, s.frameHeight ?? 0);
      e.videoBytesReceived += s.bytesReceived ?? 0;
    } else if (s.kind === 'audio') {
      e.audioBytesReceived += s.bytesReceived ?? 0;
    }
  });
  return out;
}

/** Bytes of every inbound RTP stream on both transports (isolation checks). */
export async function allInboundBytes(session) {
  let total = 0;
  for (const pc of [session.pub, session.sub]) {
    if (!pc) continue;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') total += s.bytesReceived ?? 0;
    });
  }
  return total;
}

/** Decoding stats of the screen track keyed `trackId` (the one on the stage). */
export async function screenStats(session, trackId) {
  if (!trackId || !session.sub) return null;
  const tr = session.transceiverOf(trackId);
  if (!tr) return null;
  let out = null;
  const report = await tr.receiver.getStats();
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      out = { trackId, framesDecoded: s.framesDecoded ?? 0, frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0 };
    }
  });
  return out;
}

/**
 * Per remote video track: what is decoded, and the height we asked for.
 * `trackId` is the client's key for it (the SDP's msid track id),
 * `mediaTrackId` the browser's `MediaStreamTrack.id`.
 */
export async function inboundVideo(session) {
  const out = [];
  const pc = session.sub;
  if (!pc) return out;
  const transceivers = pc.getTransceivers();
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
    const tr = transceivers.find((x) => x.mid === s.mid);
    const track = tr?.receiver.track;
    const remote = tr ? session.remoteOf(tr) : undefined;
    out.push({
      trackId: remote?.trackKey ?? null,
      mediaTrackId: track?.id ?? null,
      publisher: remote?.publisher ?? null,
      mid: s.mid ?? null,
      frameWidth: s.frameWidth ?? 0,
      frameHeight: s.frameHeight ?? 0,
      framesDecoded: s.framesDecoded ?? 0,
      bytesReceived: s.bytesReceived ?? 0,
      maxHeightSent: remote ? (session.sentConstraints.get(remote.trackKey) ?? null) : null,
    });
  });
  return out;
}

/** The camera's simulcast encodings and what each sends. */
export async function publishEncodings(session) {
  const tr = session.camera;
  if (!tr) return null;
  const params = tr.sender.getParameters();
  const out = (params.encodings ?? []).map((e) => ({
    rid: e.rid ?? null,
    active: e.active !== false,
    scaleResolutionDownBy: e.scaleResolutionDownBy ?? null,
    maxBitrate: e.maxBitrate ?? null,
  }));
  const sent = {};
  if (session.pub) {
    const report = await session.pub.getStats();
    report.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) {
        sent[s.rid] = { frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0, bytesSent: s.bytesSent ?? 0 };
      }
    });
  }
  return { mid: tr.mid, encodings: out, sent };
}
