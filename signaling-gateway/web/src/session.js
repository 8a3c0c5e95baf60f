// The WebRTC session with mediad (docs/signaling.md): the publish transport
// (our mic, the camera in simulcast, the screen-share transceiver, the
// `layers-wanted` switches) and the subscribe transport (mediad's offers,
// audio-only, the `video-constraints` we send). No DOM and no page state:
// the page gives `send` for signaling messages and hears back through
// `onTrack`, `onTrackGone`, `onError` and `onFailed`. Stats: stats.js.
//
// Remote tracks are known by what mediad's SDP says for their transceiver's
// mid (`a=msid:<publisher> <publisher>-<publisher mid>`), never by
// `MediaStreamTrack.id`: Firefox gives remote tracks random ids, and an
// m-line mediad recycles for a new publisher keeps its transceiver and its
// track object (same `track.id`) under a new msid.

/** Camera simulcast, low to high (docs/signaling.md, layers). */
export const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/**
 * mid -> { publisher, trackKey, sending } for every m-section of a remote
 * (mediad's) subscribe description that has a mid and an `a=msid`:
 * publisher = msid stream id, trackKey = msid track id (`<publisher>-<mid>`),
 * sending = the m-line is open (port not 0) and its direction sends
 * (`sendonly`/`sendrecv`, the default).
 */
export function remoteMsids(sdp) {
  const map = new Map();
  let m = null;
  const flush = () => {
    if (m && m.mid !== null && m.publisher !== null && m.trackKey !== null) {
      map.set(m.mid, { publisher: m.publisher, trackKey: m.trackKey, sending: !m.closed && m.sends });
    }
  };
  for (const line of (sdp || '').split(/\r?\n/)) {
    if (line.startsWith('m=')) {
      flush();
      m = { mid: null, publisher: null, trackKey: null, sends: true, closed: line.split(' ')[1] === '0' };
    } else if (!m) {
      continue;
    } else if (line.startsWith('a=mid:')) {
      m.mid = line.slice(6).trim();
    } else if (line.startsWith('a=msid:')) {
      const [stream, track] = line.slice(7).trim().split(/\s+/);
      m.publisher = stream || null;
      m.trackKey = track || null;
    } else if (/^a=(sendonly|sendrecv|recvonly|inactive)\s*$/.test(line)) {
      const dir = line.slice(2).trim();
      m.sends = dir === 'sendonly' || dir === 'sendrecv';
    } else if (line.startsWith('a=bundle-only')) {
      // Port 0 with bundle-only is an open, bundled m-line (RFC 8843).
      m.closed = false;
    }
  }
  flush();
  return map;
}

export class Session {
  /**
   * send(msg): a signaling message to the server.
   * onTrack(track, publisherId, trackKey): a remote track arrived, or an
   *   m-line now carries another publisher's track (`trackKey` = the SDP's
   *   msid track id for its mid, `<publisher>-<publisher mid>`).
   * onTrackGone(trackKey, publisherId): that track is no longer received (its
   *   m-line went inactive, was recycled or stopped, or the track ended).
   * onError(error): negotiation failed.
   * onFailed(): a transport (publish or subscribe) failed: ICE found no
   *   path any more (the network changed, UDP went away).
   */
  constructor({ send, onTrack, onTrackGone, onError, onFailed }) {
    this.send = send;
    this.onTrack = onTrack;
    this.onTrackGone = onTrackGone;
    this.onError = onError;
    this.onFailed = onFailed;
    this.pub = null; // publish RTCPeerConnection
    this.sub = null; // subscribe RTCPeerConnection
    this.subChain = Promise.resolve(); // subscribe offers are handled one at a time
    this.pubChain = Promise.resolve(); // publish offers too (renegotiation for screen share)
    this.pubAnswer = null; // resolve of the pending publish offer
    this.camera = null; // publish transceiver of the camera
    this.screen = null; // { transceiver, track } while we share
    this.audioOnly = false;
    this.remote = new Map(); // subscribe transceiver -> { publisher, trackKey, track } announced by onTrack
    this.watched = new WeakSet(); // remote tracks we listen to for `ended`
    this.layersWanted = new Map(); // our publish mid -> last `active` list applied
    this.sentConstraints = new Map(); // remote track key -> max_height last sent
    this.constraintsLog = []; // every video-constraints message sent (tests)
    this.iceServers = []; // TURN servers and their credentials (joined, resumed, ice-servers)
  }

  /**
   * The `ice_servers` of `joined`, `resumed` or `ice-servers`: transports
   * made from now on use them, open ones at their next ICE gathering (a
   * restart). Credentials expire: the gateway sends fresh ones in time.
   */
  setIceServers(list) {
    this.iceServers = (Array.isArray(list) ? list : []).filter(
      (s) =>
        s && Array.isArray(s.urls) && s.urls.every((u) => typeof u === 'string') &&
        typeof s.username === 'string' && typeof s.credential === 'string',
    );
    for (const pc of [this.pub, this.sub]) {
      if (!pc) continue;
      try {
        pc.setConfiguration({ ...pc.getConfiguration(), iceServers: this.iceServers });
      } catch (e) {
        console.warn('ice servers not applied', e);
      }
    }
  }

  /** A transport with the TURN servers; without them if the browser refuses their URLs. */
  #newPc() {
    try {
      return new RTCPeerConnection({ iceServers: this.iceServers });
    } catch (e) {
      console.warn('ice servers refused', e);
      return new RTCPeerConnection();
    }
  }

  /** Opens the subscribe transport (on `joined`). */
  open() {
    const pc = this.#newPc();
    this.sub = pc;
    pc.addEventListener('track', (ev) => this.#remoteTrack(ev));
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' && this.sub === pc) this.onFailed();
    });
  }

  /** Closes both transports and forgets the meeting (back to the lobby, ended, kicked). */
  close() {
    if (this.screen) {
      this.screen.track.stop();
      this.screen = null;
    }
    for (const pc of [this.pub, this.sub]) if (pc) pc.close();
    this.pub = null;
    this.sub = null;
    this.camera = null;
    if (this.pubAnswer) this.pubAnswer();
    this.pubAnswer = null;
    this.subChain = Promise.resolve();
    this.pubChain = Promise.resolve();
    this.layersWanted.clear();
    this.sentConstraints.clear();
    this.remote.clear();
  }

  /** Leaving the page: the transports close, nothing is renegotiated. */
  leave() {
    if (this.screen) this.screen.track.stop();
    for (const pc of [this.pub, this.sub]) if (pc) pc.close();
  }

  // ---- Publishing ---------------------------------------------------------------

  #ensurePublishPc() {
    if (this.pub) return this.pub;
    const pc = this.#newPc();
    this.pub = pc;
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' && this.pub === pc) this.onFailed();
    });
    return pc;
  }

  /** Sends a (re-)offer on the publish transport; resolves once answered. */
  negotiatePublish() {
    const run = async () => {
      const pc = this.pub;
      try {
        const answered = new Promise((resolve) => {
          this.pubAnswer = resolve;
          setTimeout(resolve, 10_000);
        });
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        this.send({ type: 'publish-offer', sdp: pc.localDescription.sdp });
        await answered;
      } catch (e) {
        this.onError(e);
      }
    };
    this.pubChain = this.pubChain.then(run);
    return this.pubChain;
  }

  /** `publish-answer` from the server. */
  publishAnswer(sdp) {
    const done = this.pubAnswer;
    this.pubAnswer = null;
    if (!this.pub) return done && done();
    this.pub
      .setRemoteDescription({ type: 'answer', sdp })
      .catch((e) => this.onError(e))
      .finally(() => done && done());
  }

  /** Publishes the mic, then the camera in three simulcast layers, low to high. */
  async publish(local) {
    const pc = this.#ensurePublishPc();
    for (const track of local.getAudioTracks()) {
      pc.addTransceiver(track, { direction: 'sendonly', streams: [local] });
    }
    for (const track of local.getVideoTracks()) {
      this.camera = pc.addTransceiver(track, {
        direction: 'sendonly',
        streams: [local],
        sendEncodings: SIMULCAST.map((e) => ({ ...e })),
      });
    }
    await this.negotiatePublish();
  }

  /** `layers-wanted {mid, active}`: switch off the encodings nobody needs. */
  async applyLayersWanted(msg) {
    if (!this.pub || typeof msg.mid !== 'string' || !Array.isArray(msg.active)) return;
    const tr = this.pub.getTransceivers().find((x) => x.mid === msg.mid);
    if (!tr || tr.currentDirection === 'stopped') return;
    const active = msg.active.map(Boolean);
    // The camera always keeps its lowest layer: never all off.
    if (tr === this.camera && !active.some(Boolean)) active[0] = true;
    this.layersWanted.set(msg.mid, active);
    try {
      const params = tr.sender.getParameters();
      if (!params.encodings || params.encodings.length === 0) return;
      let changed = false;
      params.encodings.forEach((e, i) => {
        const want = i < active.length ? active[i] : true;
        if (e.active !== want) {
          e.active = want;
          changed = true;
        }
      });
      if (changed) await tr.sender.setParameters(params);
    } catch (e) {
      console.warn('layers-wanted not applied', e);
    }
  }

  // ---- Screen sharing --------------------------------------------------------------

  /**
   * Adds the screen `track` (of `stream`) to the publish transport and
   * renegotiates; resolves to its mid once answered, or null if the share was
   * stopped meanwhile or has no mid.
   */
  async shareScreen(track, stream) {
    const pc = this.#ensurePublishPc();
    const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    const share = { transceiver, track };
    this.screen = share;
    await this.negotiatePublish();
    return this.screen === share && transceiver.mid !== null ? transceiver.mid : null;
  }

  /** Forgets the current share, if any; returns it (for stopScreen) or null. */
  takeScreen() {
    const share = this.screen;
    this.screen = null;
    return share;
  }

  /** Stops a share taken by takeScreen: inactive in the next offer, mediad drops the track. */
  async stopScreen(share) {
    share.track.stop();
    try {
      share.transceiver.direction = 'inactive';
      await share.transceiver.sender.replaceTrack(null);
    } catch {
      // The connection may already be closed.
    }
  }

  /** Whether the publish transport exists and is not closed. */
  get publishOpen() {
    return Boolean(this.pub && this.pub.signalingState !== 'closed');
  }

  // ---- Receiving -----------------------------------------------------------------

  /** `subscribe-offer` from the server: answered in turn. */
  subscribeOffer(sdp) {
    this.subChain = this.subChain.then(() => this.#answerSubscribe(sdp));
  }

  async #answerSubscribe(sdp) {
    const pc = this.sub;
    if (!pc) return;
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      if (pc !== this.sub) return;
      // A recycled m-line may carry a new msid without a new `track` event.
      this.#reconcile(false);
      this.#applyAudioOnly();
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      if (pc !== this.sub) return;
      this.#reconcile(true);
      this.send({ type: 'subscribe-answer', sdp: pc.localDescription.sdp });
    } catch (e) {
      this.onError(e);
    }
  }

  /** What the current remote subscribe description says for `mid`, or undefined. */
  #msidOf(mid) {
    if (!this.sub || mid === null) return undefined;
    return remoteMsids(this.sub.remoteDescription?.sdp).get(mid);
  }

  #remoteTrack(ev) {
    const tr = ev.transceiver;
    if (!this.watched.has(ev.track)) {
      this.watched.add(ev.track);
      ev.track.addEventListener('ended', () => this.#ended(ev.track));
    }
    // Fired while the offer is applied: remoteDescription is already the new one.
    const m = this.#msidOf(tr.mid);
    if (!m) {
      console.warn('remote track without an msid in the offer', tr.mid);
      return;
    }
    this.#announce(tr, m.publisher, m.trackKey);
  }

  /** Tells the page that `tr` now carries `trackKey` of `publisher` (once per change). */
  #announce(tr, publisher, trackKey) {
    const track = tr.receiver.track;
    const prev = this.remote.get(tr);
    if (prev && prev.trackKey === trackKey && prev.publisher === publisher && prev.track === track) return;
    if (prev) this.#gone(tr);
    this.remote.set(tr, { publisher, trackKey, track });
    this.onTrack(track, publisher, trackKey);
  }

  #gone(tr) {
    const prev = this.remote.get(tr);
    if (!prev) return;
    this.remote.delete(tr);
    this.sentConstraints.delete(prev.trackKey);
    this.onTrackGone(prev.trackKey, prev.publisher);
  }

  #ended(track) {
    for (const [tr, x] of this.remote) if (x.track === track) this.#gone(tr);
  }

  /**
   * After the remote offer (`negotiated` false) and after our answer (true):
   * every subscribe transceiver is compared with what the current remote
   * description says for its mid. A changed msid (a recycled m-line) is
   * announced as a new track; an m-line that no longer sends (`inactive`,
   * port 0, gone), a stopped transceiver, or, once negotiated, one whose
   * `currentDirection` is `inactive` although we want to receive, is gone.
   */
  #reconcile(negotiated) {
    const pc = this.sub;
    if (!pc) return;
    const msids = remoteMsids(pc.remoteDescription?.sdp);
    const transceivers = pc.getTransceivers();
    for (const tr of [...this.remote.keys()]) if (!transceivers.includes(tr)) this.#gone(tr);
    for (const tr of transceivers) {
      const m = tr.mid === null ? undefined : msids.get(tr.mid);
      const stopped = tr.currentDirection === 'stopped' || tr.direction === 'stopped';
      const wantsToReceive = tr.direction === 'recvonly' || tr.direction === 'sendrecv';
      const idle = negotiated && tr.currentDirection === 'inactive' && wantsToReceive;
      if (!m || !m.sending || stopped || idle) {
        this.#gone(tr);
      } else if (this.remote.has(tr) || (negotiated && tr.receiver.track.readyState === 'live')) {
        // Known and maybe re-labelled; or sending again without a `track` event.
        this.#announce(tr, m.publisher, m.trackKey);
      }
    }
  }

  /** Publisher id and track key a subscribe transceiver carries, or undefined. */
  remoteOf(tr) {
    return this.remote.get(tr);
  }

  /** The subscribe transceiver carrying `trackKey`, or null. */
  transceiverOf(trackKey) {
    for (const [tr, x] of this.remote) if (x.trackKey === trackKey) return tr;
    return null;
  }

  /** Audio-only: our answers refuse video and the video receivers render nothing. */
  setAudioOnly(on) {
    this.audioOnly = on;
    this.#applyAudioOnly();
  }

  #applyAudioOnly() {
    if (!this.sub) return;
    for (const tr of this.sub.getTransceivers()) {
      if (tr.receiver.track?.kind !== 'video' || tr.currentDirection === 'stopped') continue;
      tr.direction = this.audioOnly ? 'inactive' : 'recvonly';
      tr.receiver.track.enabled = !this.audioOnly;
    }
  }

  /** Whether `trackKey` is received on a live, negotiated subscribe transceiver. */
  isReceiving(trackKey) {
    if (!this.sub) return false;
    const tr = this.transceiverOf(trackKey);
    return Boolean(tr && tr.currentDirection !== 'stopped' && tr.mid !== null);
  }

  /**
   * `video-constraints`: `now` maps each received video track key (the
   * SDP's msid track id) to the height it is shown at; sent only when a
   * value changed.
   */
  sendConstraints(now) {
    let changed = false;
    for (const [id, h] of now) if (this.sentConstraints.get(id) !== h) changed = true;
    for (const id of [...this.sentConstraints.keys()]) if (!now.has(id)) this.sentConstraints.delete(id);
    if (!changed) return;
    const constraints = [...now].map(([track_id, max_height]) => ({ track_id, max_height }));
    this.send({ type: 'video-constraints', constraints });
    this.constraintsLog.push(constraints);
    if (this.constraintsLog.length > 100) this.constraintsLog.shift();
    this.sentConstraints = now;
  }

  /** Publisher id -> loudest inbound audio level (who speaks); null without a subscribe transport. */
  async audioLevels() {
    if (!this.sub) return null;
    const levels = new Map();
    const transceivers = this.sub.getTransceivers();
    const report = await this.sub.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
      const tr = transceivers.find((x) => x.mid === s.mid);
      const id = tr && this.remote.get(tr)?.publisher;
      if (id !== undefined) levels.set(id, Math.max(levels.get(id) ?? 0, s.audioLevel ?? 0));
    });
    return levels;
  }
}
