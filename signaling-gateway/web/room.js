// The room page: preview, join, publish/subscribe transports, tiles.
import { applyI18n, t, has } from '/static/i18n.js';
import { Signaling } from '/static/signaling.js';

const $ = (id) => document.getElementById(id);
const NAME_KEY = 'salon.name';

applyI18n();
const room = decodeURIComponent(location.pathname.slice(1));
$('room-name').textContent = room;
document.title = `${room} · Salon`;

const state = {
  sig: null,
  local: null, // MediaStream from getUserMedia
  pub: null, // publish RTCPeerConnection
  sub: null, // subscribe RTCPeerConnection
  subChain: Promise.resolve(), // subscribe offers are handled one at a time
  streamOf: new WeakMap(), // subscribe transceiver -> publisher id (msid stream id)
  names: new Map(), // participant id (string) -> name
  connected: { publish: false, subscribe: false },
  joined: false,
  left: false,
};

// Test hook for the end-to-end harness (tests/e2e).
window.salonTest = {
  id: null,
  room,
  ready: false,
  stats: () => subscribeStats(),
  inboundBytes: () => allInboundBytes(),
};

function setStatus(key) {
  const el = $('status');
  el.dataset.state = key;
  el.textContent = t('status.' + key);
}

function showError(text) {
  $('error').textContent = text;
}

function errorText(msg) {
  const key = 'error.' + msg.code;
  return has(key) ? t(key, { message: msg.message }) : t('error.generic', { message: msg.message });
}

setStatus('idle');

// ---- Preview -------------------------------------------------------------

async function startPreview() {
  try {
    state.local = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: { ideal: 1280 }, height: { ideal: 720 } },
    });
    $('preview').srcObject = state.local;
  } catch (e) {
    console.warn('getUserMedia failed', e);
    showError(t('media.denied'));
  }
}

const previewReady = startPreview();
const nameInput = $('name');
nameInput.value = localStorage.getItem(NAME_KEY) ?? '';
nameInput.focus();

$('join-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const name = nameInput.value.trim();
  // Same rule as the server: 1..=64 characters, no control characters.
  if ([...name].length < 1 || [...name].length > 64 || /\p{Cc}/u.test(name)) {
    showError(t('prejoin.badName'));
    nameInput.setAttribute('aria-invalid', 'true');
    return;
  }
  nameInput.removeAttribute('aria-invalid');
  showError('');
  localStorage.setItem(NAME_KEY, name);
  $('join').disabled = true;
  await previewReady;
  join(name);
});

// ---- Tiles ---------------------------------------------------------------

function tileId(id) {
  return 'tile-' + id;
}

function ensureTile(id, name, self = false) {
  let tile = $(tileId(id));
  if (!tile) {
    tile = document.createElement('figure');
    tile.id = tileId(id);
    tile.className = self ? 'tile self' : 'tile';
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    if (self) video.muted = true;
    const caption = document.createElement('figcaption');
    tile.append(video, caption);
    $('tiles').append(tile);
  }
  const label = name ?? t('call.unknown', { id });
  // User data goes in as text only.
  tile.querySelector('figcaption').textContent = self ? t('call.you', { name: label }) : label;
  tile.querySelector('video').setAttribute('aria-label', t('call.tile', { name: label }));
  return tile;
}

function removeTile(id) {
  const tile = $(tileId(id));
  if (tile) tile.remove();
}

// ---- Controls ------------------------------------------------------------

function renderControls() {
  const audio = state.local?.getAudioTracks()[0];
  const video = state.local?.getVideoTracks()[0];
  const micOff = !audio || !audio.enabled;
  const camOff = !video || !video.enabled;
  const mic = $('mic');
  mic.textContent = micOff ? t('mic.unmute') : t('mic.mute');
  mic.setAttribute('aria-label', mic.textContent);
  mic.setAttribute('aria-pressed', String(micOff));
  mic.disabled = !audio;
  const cam = $('cam');
  cam.textContent = camOff ? t('cam.on') : t('cam.off');
  cam.setAttribute('aria-label', cam.textContent);
  cam.setAttribute('aria-pressed', String(camOff));
  cam.disabled = !video;
  const leave = $('leave');
  leave.textContent = t('leave');
  leave.setAttribute('aria-label', t('leave'));
}

$('mic').addEventListener('click', () => {
  const track = state.local?.getAudioTracks()[0];
  if (track) track.enabled = !track.enabled;
  renderControls();
});
$('cam').addEventListener('click', () => {
  const track = state.local?.getVideoTracks()[0];
  if (track) track.enabled = !track.enabled;
  renderControls();
});
$('leave').addEventListener('click', () => leave());

// ---- Signaling and WebRTC ------------------------------------------------

function join(name) {
  setStatus('connecting');
  const sig = new Signaling();
  state.sig = sig;
  sig.on('open', () => sig.send({ type: 'join', room, name }));
  sig.on('close', () => {
    if (!state.left) setStatus('disconnected');
    window.salonTest.ready = false;
  });
  sig.on('joined', (msg) => onJoined(msg, name));
  sig.on('participant-joined', (msg) => {
    state.names.set(String(msg.id), msg.name);
    ensureTile(msg.id, msg.name);
  });
  sig.on('participant-left', (msg) => {
    state.names.delete(String(msg.id));
    removeTile(msg.id);
  });
  sig.on('publish-answer', (msg) => {
    state.pub
      .setRemoteDescription({ type: 'answer', sdp: msg.sdp })
      .catch((e) => showError(t('error.webrtc', { message: e.message })));
  });
  sig.on('subscribe-offer', (msg) => {
    state.subChain = state.subChain.then(() => answerSubscribe(msg.sdp));
  });
  sig.on('connected', (msg) => {
    state.connected[msg.transport] = true;
    if (state.connected.publish || state.connected.subscribe) setStatus('media');
  });
  sig.on('error', (msg) => {
    showError(errorText(msg));
    if (!state.joined) $('join').disabled = false;
  });
  sig.connect();
}

async function onJoined(msg, name) {
  state.joined = true;
  window.salonTest.id = msg.id;
  $('prejoin').hidden = true;
  $('call').hidden = false;
  setStatus('joined');
  const self = ensureTile(msg.id, name, true);
  if (state.local) self.querySelector('video').srcObject = state.local;
  for (const p of msg.participants) {
    state.names.set(String(p.id), p.name);
    ensureTile(p.id, p.name);
  }
  renderControls();
  $('mic').focus();

  state.sub = new RTCPeerConnection();
  state.sub.addEventListener('track', onRemoteTrack);
  window.salonTest.ready = true;
  if (state.local && state.local.getTracks().length > 0) await publish();
}

async function publish() {
  const pc = new RTCPeerConnection();
  state.pub = pc;
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'failed') setStatus('disconnected');
  });
  // Audio first, then video; no simulcast yet.
  for (const track of [...state.local.getAudioTracks(), ...state.local.getVideoTracks()]) {
    pc.addTransceiver(track, { direction: 'sendonly', streams: [state.local] });
  }
  try {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    state.sig.send({ type: 'publish-offer', sdp: pc.localDescription.sdp });
  } catch (e) {
    showError(t('error.webrtc', { message: e.message }));
  }
}

async function answerSubscribe(sdp) {
  const pc = state.sub;
  if (!pc) return;
  try {
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    state.sig.send({ type: 'subscribe-answer', sdp: pc.localDescription.sdp });
  } catch (e) {
    showError(t('error.webrtc', { message: e.message }));
  }
}

function onRemoteTrack(ev) {
  const stream = ev.streams[0];
  if (!stream) return;
  const id = stream.id; // the publisher's participant id
  state.streamOf.set(ev.transceiver, id);
  const tile = ensureTile(id, state.names.get(id));
  const video = tile.querySelector('video');
  if (video.srcObject !== stream) video.srcObject = stream;
}

function leave() {
  state.left = true;
  window.salonTest.ready = false;
  if (state.sig) {
    state.sig.send({ type: 'leave' });
    state.sig.close();
  }
  for (const pc of [state.pub, state.sub]) if (pc) pc.close();
  if (state.local) for (const track of state.local.getTracks()) track.stop();
  $('call').hidden = true;
  $('left').hidden = false;
  setStatus('left');
}

// ---- Stats for tests -------------------------------------------------------

/** mid -> msid stream id, from the remote (mediad's) subscribe offer. */
function midToStreamFromSdp(sdp) {
  const map = new Map();
  let mid = null;
  let stream = null;
  const flush = () => {
    if (mid !== null && stream !== null) map.set(mid, stream);
  };
  for (const line of (sdp || '').split(/\r?\n/)) {
    if (line.startsWith('m=')) {
      flush();
      mid = null;
      stream = null;
    } else if (line.startsWith('a=mid:')) {
      mid = line.slice(6).trim();
    } else if (line.startsWith('a=msid:')) {
      stream = line.slice(7).split(' ')[0].trim();
    }
  }
  flush();
  return map;
}

/** Per publisher id: frames decoded, size, and bytes received per kind. */
async function subscribeStats() {
  const out = {};
  const pc = state.sub;
  if (!pc) return out;
  const fromSdp = midToStreamFromSdp(pc.remoteDescription?.sdp);
  const transceivers = pc.getTransceivers();
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.mid == null) return;
    const tr = transceivers.find((x) => x.mid === s.mid);
    const id = (tr && state.streamOf.get(tr)) ?? fromSdp.get(s.mid);
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
async function allInboundBytes() {
  let total = 0;
  for (const pc of [state.pub, state.sub]) {
    if (!pc) continue;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') total += s.bytesReceived ?? 0;
    });
  }
  return total;
}
