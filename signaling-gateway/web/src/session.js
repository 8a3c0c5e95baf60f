// The WebRTC session with mediad (docs/signaling.md): the publish transport
// (our mic, the camera in simulcast, the screen-share transceiver, the
// `layers-wanted` switches) and the subscribe transport (mediad's offers,
// audio-only, the `video-constraints` we send). No DOM and no page state:
// the page gives `send` for signaling messages and hears back through
// `onTrack`, `onError` and `onFailed`. Stats: stats.js.

/** Camera simulcast, low to high (docs/signaling.md, layers). */
export const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

export class Session {
  /**
   * send(msg): a signaling message to the server.
   * onTrack(track, publisherId): a remote track arrived (msid stream id = publisher).
   * onError(error): negotiation failed.
   * onFailed(): the publish transport failed.
   */
  constructor({ send, onTrack, onError, onFailed }) {
    this.send = send;
    this.onTrack = onTrack;
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
    this.streamOf = new WeakMap(); // subscribe transceiver -> publisher id (msid stream id)
    this.layersWanted = new Map(); // our publish mid -> last `active` list applied
    this.sentConstraints = new Map(); // remote track id -> max_height last sent
    this.constraintsLog = []; // every video-constraints message sent (tests)
  }

  /** Opens the subscribe transport (on `joined`). */
  open() {
    this.sub = new RTCPeerConnection();
    this.sub.addEventListener('track', (ev) => this.#remoteTrack(ev));
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
  }

  /** Leaving the page: the transports close, nothing is renegotiated. */
  leave() {
    if (this.screen) this.screen.track.stop();
    for (const pc of [this.pub, this.sub]) if (pc) pc.close();
  }

  // ---- Publishing ---------------------------------------------------------------

  #ensurePublishPc() {
    if (this.pub) return this.pub;
    const pc = new RTCPeerConnection();
    this.pub = pc;
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed') this.onFailed();
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
      this.#applyAudioOnly();
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      this.send({ type: 'subscribe-answer', sdp: pc.localDescription.sdp });
    } catch (e) {
      this.onError(e);
    }
  }

  #remoteTrack(ev) {
    const stream = ev.streams[0];
    if (!stream) return;
    const id = stream.id; // the publisher's participant id
    this.streamOf.set(ev.transceiver, id);
    this.onTrack(ev.track, id);
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

  /** Whether `track` is received on a live, negotiated subscribe transceiver. */
  isReceiving(track) {
    if (!this.sub) return false;
    const tr = this.sub.getTransceivers().find((x) => x.receiver.track === track);
    return Boolean(tr && tr.currentDirection !== 'stopped' && tr.mid !== null);
  }

  /**
   * `video-constraints`: `now` maps each received video track id to the
   * height it is shown at; sent only when a value changed.
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
      const id = tr && this.streamOf.get(tr);
      if (id !== undefined) levels.set(id, Math.max(levels.get(id) ?? 0, s.audioLevel ?? 0));
    });
    return levels;
  }
}
