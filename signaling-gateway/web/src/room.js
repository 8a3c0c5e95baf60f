// The room page: pre-join (name, devices, preview), publish/subscribe
// transports, tiles with speaker highlight, screen-share stage, participants,
// chat, pad, audio-only, invitation link, leave. Bundled by esbuild
// (web/build.mjs) into web/dist/room.js.
import { applyI18n, t, has, lang } from '../i18n.js';
import { Signaling } from '../signaling.js';
import { appendLinkified } from './linkify.js';
import { Pad } from './pad.js';

const $ = (id) => document.getElementById(id);
const NAME_KEY = 'salon.name';

applyI18n();
const room = decodeURIComponent(location.pathname.slice(1));
$('room-name').textContent = room;
let brandName = 'Salon';
document.title = `${room} · ${brandName}`;

const state = {
  sig: null,
  local: null, // MediaStream from getUserMedia
  pub: null, // publish RTCPeerConnection
  sub: null, // subscribe RTCPeerConnection
  subChain: Promise.resolve(), // subscribe offers are handled one at a time
  pubChain: Promise.resolve(), // publish offers too (renegotiation for screen share)
  pubAnswer: null, // resolve of the pending publish offer
  streamOf: new WeakMap(), // subscribe transceiver -> publisher id (msid stream id)
  names: new Map(), // participant id (string) -> name
  tileStreams: new Map(), // publisher id -> MediaStream of their camera and mic
  screens: new Map(), // publisher id -> screen track id (msid track id)
  remoteTracks: new Map(), // track id -> { track, publisher }
  screen: null, // { transceiver, track } while we share
  audioOnly: false,
  panel: null, // 'people' | 'chat' | 'pad' | null
  unread: 0,
  pad: null,
  padToken: null,
  selfId: null,
  selfName: '',
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
  screenStats: () => screenStats(),
  pcs: () => ({ pub: state.pub, sub: state.sub }),
  padText: () => state.pad?.markdown() ?? null,
  padExport: (kind) => exportText(kind),
  padSynced: () => Boolean(state.pad?.synced),
  openPad: () => openPad(),
  chat: (text, to) => sendChat(text, to),
  shareScreen: () => startShare(),
  stopShare: () => stopShare(),
  leaveNow: () => leave(),
  exports: [],
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

// ---- Language and operator branding ----------------------------------------

{
  const other = lang === 'fr' ? 'en' : 'fr';
  const a = $('lang-switch');
  const q = new URLSearchParams(location.search);
  q.set('lang', other);
  a.href = '?' + q.toString();
  a.textContent = t('lang.other');
  a.lang = other;
}

/** Relative luminance (WCAG) of #rrggbb. */
function luminance(hex) {
  const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  const [r, g, b] = c.map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

fetch('/config.json')
  .then((r) => (r.ok ? r.json() : null))
  .then((cfg) => {
    const brand = cfg?.brand;
    if (!brand) return;
    if (typeof brand.name === 'string' && brand.name) {
      brandName = brand.name;
      $('brand-name').textContent = brand.name;
      document.title = `${room} · ${brandName}`;
    }
    if (typeof brand.color === 'string' && /^#[0-9a-fA-F]{6}$/.test(brand.color)) {
      const root = document.documentElement.style;
      root.setProperty('--accent', brand.color);
      // Text on the accent colour: whichever of white/black contrasts more.
      const l = luminance(brand.color);
      root.setProperty('--on-accent', (1.05 / (l + 0.05) >= (l + 0.05) / 0.05) ? '#ffffff' : '#000000');
    }
    if (typeof brand.logo === 'string' && brand.logo.startsWith('/')) {
      const img = $('brand-logo');
      img.src = brand.logo;
      img.hidden = false;
    }
  })
  .catch(() => {});

// ---- Preview and devices -----------------------------------------------------

async function getMedia(cameraId, micId) {
  return navigator.mediaDevices.getUserMedia({
    audio: micId ? { deviceId: { exact: micId } } : true,
    video: {
      ...(cameraId ? { deviceId: { exact: cameraId } } : {}),
      width: { ideal: 1280 },
      height: { ideal: 720 },
    },
  });
}

async function fillDevices() {
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return;
  }
  const fill = (select, kind, current) => {
    select.replaceChildren();
    const list = devices.filter((d) => d.kind === kind);
    if (list.length === 0) {
      const o = document.createElement('option');
      o.value = '';
      o.textContent = t('prejoin.noDevice');
      select.append(o);
    }
    list.forEach((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${kind} ${i + 1}`;
      if (d.deviceId === current) o.selected = true;
      select.append(o);
    });
  };
  fill($('camera-select'), 'videoinput', state.local?.getVideoTracks()[0]?.getSettings().deviceId);
  fill($('mic-select'), 'audioinput', state.local?.getAudioTracks()[0]?.getSettings().deviceId);
}

async function startPreview(cameraId, micId) {
  try {
    const stream = await getMedia(cameraId, micId);
    if (state.local) for (const track of state.local.getTracks()) track.stop();
    state.local = stream;
    $('preview').srcObject = state.local;
  } catch (e) {
    console.warn('getUserMedia failed', e);
    showError(t('media.denied'));
  }
  await fillDevices();
}

let previewReady = startPreview();
for (const id of ['camera-select', 'mic-select']) {
  $(id).addEventListener('change', () => {
    previewReady = startPreview($('camera-select').value, $('mic-select').value);
  });
}
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
  if (state.local) {
    const cam = state.local.getVideoTracks()[0];
    const mic = state.local.getAudioTracks()[0];
    if (cam && $('join-cam-off').checked) cam.enabled = false;
    if (mic && $('join-mic-off').checked) mic.enabled = false;
  }
  join(name);
});

// ---- Tiles -------------------------------------------------------------------

function tileId(id) {
  return 'tile-' + id;
}

function displayName(id) {
  return state.names.get(String(id)) ?? t('call.unknown', { id });
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
  state.tileStreams.delete(String(id));
}

// ---- Controls ----------------------------------------------------------------

function setButton(el, label, pressed) {
  el.textContent = label;
  el.setAttribute('aria-label', label);
  if (pressed !== undefined) el.setAttribute('aria-pressed', String(pressed));
}

function renderControls() {
  const audio = state.local?.getAudioTracks()[0];
  const video = state.local?.getVideoTracks()[0];
  const micOff = !audio || !audio.enabled;
  const camOff = !video || !video.enabled;
  setButton($('mic'), micOff ? t('mic.unmute') : t('mic.mute'), micOff);
  $('mic').disabled = !audio;
  setButton($('cam'), camOff ? t('cam.on') : t('cam.off'), camOff);
  $('cam').disabled = !video;
  setButton($('share'), state.screen ? t('share.stop') : t('share.start'), Boolean(state.screen));
  $('share').disabled = !navigator.mediaDevices?.getDisplayMedia;
  setButton($('audio-only'), state.audioOnly ? t('audioOnly.off') : t('audioOnly.on'), state.audioOnly);
  const count = state.names.size + 1;
  setButton($('toggle-people'), t('people.count', { n: count }));
  setButton($('toggle-chat'), state.unread ? t('chat.count', { n: state.unread }) : t('panel.chat'));
  setButton($('toggle-pad'), t('panel.pad'));
  for (const p of ['people', 'chat', 'pad']) {
    $('toggle-' + p).setAttribute('aria-expanded', String(isOpen(p)));
  }
  setButton($('copy-link'), t('copy.link'));
  setButton($('leave'), t('leave'));
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
$('share').addEventListener('click', () => (state.screen ? stopShare() : startShare()));
$('audio-only').addEventListener('click', () => setAudioOnly(!state.audioOnly));
$('copy-link').addEventListener('click', async () => {
  const url = location.origin + location.pathname;
  try {
    await navigator.clipboard.writeText(url);
  } catch {
    // No clipboard permission: the status line shows the link to copy by hand.
  }
  $('status').textContent = t('copy.done', { url });
});
$('leave').addEventListener('click', () => requestLeave());

// ---- Side panel (participants, chat, pad) ------------------------------------

// Panels are independent (chat and pad can be open together); Escape
// closes the last one opened.
function openPanel(which) {
  state.panels = (state.panels ?? []).filter((p) => p !== which).concat(which);
  state.panel = which;
  $('panel').hidden = false;
  $('panel-' + which).hidden = false;
  if (which === 'chat') {
    state.unread = 0;
    $('chat-text').focus();
  } else if (which === 'pad') {
    openPad().then(() => state.pad?.view?.focus());
  } else {
    $('people').querySelector('button')?.focus();
  }
  renderControls();
}

function closePanel(which = state.panel) {
  if (!which) return;
  state.panels = (state.panels ?? []).filter((p) => p !== which);
  $('panel-' + which).hidden = true;
  state.panel = state.panels.at(-1) ?? null;
  $('panel').hidden = state.panels.length === 0;
  renderControls();
  $('toggle-' + which).focus();
}

const isOpen = (p) => (state.panels ?? []).includes(p);

for (const p of ['people', 'chat', 'pad']) {
  $('toggle-' + p).addEventListener('click', () => (isOpen(p) ? closePanel(p) : openPanel(p)));
  $('close-' + p).addEventListener('click', () => closePanel(p));
}
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && state.panel && !$('leave-dialog').open) {
    ev.preventDefault();
    closePanel();
  }
});

function renderPeople() {
  const ul = $('people');
  ul.replaceChildren();
  const entries = [[String(state.selfId), state.selfName, true], ...[...state.names].map(([id, n]) => [id, n, false])];
  for (const [id, name, self] of entries) {
    const li = document.createElement('li');
    li.id = 'person-' + id;
    const span = document.createElement('span');
    span.textContent = self ? t('call.you', { name }) : name;
    li.append(span);
    if (!self) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'ghost small';
      b.textContent = '✉';
      b.setAttribute('aria-label', t('people.private', { name }));
      b.addEventListener('click', () => {
        openPanel('chat');
        $('chat-to').value = id;
      });
      li.append(b);
    }
    ul.append(li);
  }
  // Recipients of private messages.
  const select = $('chat-to');
  const current = select.value;
  select.replaceChildren();
  const all = document.createElement('option');
  all.value = '';
  all.textContent = t('chat.everyone');
  select.append(all);
  for (const [id, name] of state.names) {
    const o = document.createElement('option');
    o.value = id;
    o.textContent = name;
    select.append(o);
  }
  select.value = state.names.has(current) ? current : '';
  renderControls();
}

// ---- Chat ----------------------------------------------------------------------

function sendChat(text, to) {
  if (!state.sig) return;
  const msg = { type: 'chat', text };
  if (to !== undefined && to !== null && to !== '') msg.to = Number(to);
  state.sig.send(msg);
}

$('chat-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('chat-text').value;
  if (!text.trim()) return;
  sendChat(text, $('chat-to').value);
  $('chat-text').value = '';
});
$('chat-text').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey) {
    ev.preventDefault();
    $('chat-form').requestSubmit();
  }
});

function onChat(msg) {
  const li = document.createElement('li');
  li.className = 'chat-msg';
  if (msg.to !== undefined) li.classList.add('private');
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('strong');
  who.textContent = String(msg.from) === String(state.selfId) ? t('call.you', { name: msg.name }) : msg.name;
  const when = document.createElement('time');
  const date = new Date(msg.time);
  when.dateTime = date.toISOString();
  when.textContent = date.toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' });
  meta.append(who, ' ', when);
  if (msg.to !== undefined) {
    const tag = document.createElement('em');
    tag.textContent =
      String(msg.from) === String(state.selfId)
        ? ' · ' + t('chat.privateTo', { name: displayName(msg.to) })
        : ' · ' + t('chat.private');
    meta.append(tag);
  }
  const body = document.createElement('p');
  body.className = 'text';
  appendLinkified(body, msg.text);
  li.append(meta, body);
  $('chat-log').append(li);
  li.scrollIntoView({ block: 'end' });
  if (!isOpen('chat')) {
    state.unread += 1;
    renderControls();
  }
}

// ---- Pad -------------------------------------------------------------------------

async function openPad() {
  if (!state.padToken) return;
  if (!state.pad || state.pad.closed) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/pad?token=${encodeURIComponent(state.padToken)}`;
    if (state.pad) state.pad.destroy();
    state.pad = new Pad(url, state.selfName, (key, vars) => {
      $('pad-status').textContent = t(key, vars);
    });
    $('pad-editor').replaceChildren();
  }
  state.pad.mount($('pad-editor'), t('pad.label'));
  await state.pad.whenSynced();
}

function exportText(kind) {
  if (!state.pad) return '';
  return kind === 'txt' ? state.pad.plainText() : state.pad.markdown();
}

function download(kind) {
  const text = exportText(kind);
  window.salonTest.exports.push({ kind, text });
  const blob = new Blob([text], { type: kind === 'txt' ? 'text/plain;charset=utf-8' : 'text/markdown;charset=utf-8' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  const day = new Date().toISOString().slice(0, 10);
  a.download = `${room}-${day}.${kind === 'txt' ? 'txt' : 'md'}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

for (const [id, kind] of [
  ['pad-export-md', 'md'],
  ['pad-export-txt', 'txt'],
  ['leave-export-md', 'md'],
  ['leave-export-txt', 'txt'],
]) {
  $(id).addEventListener('click', async () => {
    await openPad();
    download(kind);
  });
}

// ---- Leaving ---------------------------------------------------------------------

async function requestLeave() {
  if (state.names.size === 0 && state.padToken) {
    // Last one out: the pad dies with the meeting. Offer the export first.
    await openPad();
    if (state.pad && state.pad.markdown().length > 0) {
      const dialog = $('leave-dialog');
      dialog.showModal();
      $('leave-export-md').focus();
      return;
    }
  }
  leave();
}

$('leave-confirm').addEventListener('click', () => {
  $('leave-dialog').close();
  leave();
});
$('leave-cancel').addEventListener('click', () => $('leave-dialog').close());

// ---- Signaling and WebRTC --------------------------------------------------------

function join(name) {
  setStatus('connecting');
  state.selfName = name;
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
    renderPeople();
  });
  sig.on('participant-left', (msg) => {
    const id = String(msg.id);
    state.names.delete(id);
    state.screens.delete(id);
    for (const [trackId, x] of state.remoteTracks) if (x.publisher === id) state.remoteTracks.delete(trackId);
    removeTile(id);
    renderStage();
    renderPeople();
  });
  sig.on('publish-answer', (msg) => {
    const done = state.pubAnswer;
    state.pubAnswer = null;
    state.pub
      .setRemoteDescription({ type: 'answer', sdp: msg.sdp })
      .catch((e) => showError(t('error.webrtc', { message: e.message })))
      .finally(() => done && done());
  });
  sig.on('subscribe-offer', (msg) => {
    state.subChain = state.subChain.then(() => answerSubscribe(msg.sdp));
  });
  sig.on('connected', (msg) => {
    state.connected[msg.transport] = true;
    if (state.connected.publish || state.connected.subscribe) setStatus('media');
  });
  sig.on('chat', onChat);
  sig.on('screen-share', (msg) => setScreen(String(msg.id), msg.track_id ?? null));
  sig.on('dominant-speaker', (msg) => {
    for (const tile of document.querySelectorAll('.tile.dominant')) tile.classList.remove('dominant');
    $(tileId(msg.id))?.classList.add('dominant');
  });
  sig.on('error', (msg) => {
    showError(errorText(msg));
    if (!state.joined) $('join').disabled = false;
  });
  sig.connect();
}

async function onJoined(msg, name) {
  state.joined = true;
  state.selfId = msg.id;
  state.padToken = typeof msg.pad_token === 'string' ? msg.pad_token : null;
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
  renderPeople();
  $('mic').focus();

  state.sub = new RTCPeerConnection();
  state.sub.addEventListener('track', onRemoteTrack);
  window.salonTest.ready = true;
  startLevelMeter();
  if (state.local && state.local.getTracks().length > 0) await publish();
}

function ensurePublishPc() {
  if (state.pub) return state.pub;
  const pc = new RTCPeerConnection();
  state.pub = pc;
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'failed') setStatus('disconnected');
  });
  return pc;
}

/** Sends a (re-)offer on the publish transport; resolves once answered. */
function negotiatePublish() {
  const run = async () => {
    const pc = state.pub;
    try {
      const answered = new Promise((resolve) => {
        state.pubAnswer = resolve;
        setTimeout(resolve, 10_000);
      });
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      state.sig.send({ type: 'publish-offer', sdp: pc.localDescription.sdp });
      await answered;
    } catch (e) {
      showError(t('error.webrtc', { message: e.message }));
    }
  };
  state.pubChain = state.pubChain.then(run);
  return state.pubChain;
}

async function publish() {
  const pc = ensurePublishPc();
  // Audio first, then video; no simulcast yet.
  for (const track of [...state.local.getAudioTracks(), ...state.local.getVideoTracks()]) {
    pc.addTransceiver(track, { direction: 'sendonly', streams: [state.local] });
  }
  await negotiatePublish();
}

// ---- Screen sharing ------------------------------------------------------------

async function startShare() {
  if (state.screen || !state.joined) return;
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) {
    showError(t('share.failed', { message: e.message }));
    return;
  }
  const track = stream.getVideoTracks()[0];
  track.contentHint = 'detail';
  const pc = ensurePublishPc();
  const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
  state.screen = { transceiver, track };
  track.addEventListener('ended', () => stopShare());
  renderControls();
  await negotiatePublish();
  if (state.screen?.transceiver === transceiver && transceiver.mid !== null) {
    state.sig.send({ type: 'screen', mid: transceiver.mid });
  }
}

async function stopShare() {
  const share = state.screen;
  if (!share) return;
  state.screen = null;
  state.sig?.send({ type: 'screen', mid: null });
  share.track.stop();
  try {
    // Inactive in the next offer: mediad drops the track.
    share.transceiver.direction = 'inactive';
    await share.transceiver.sender.replaceTrack(null);
  } catch {
    // The connection may already be closed.
  }
  renderControls();
  if (state.pub && state.pub.signalingState !== 'closed') await negotiatePublish();
}

/** Shows (or clears) publisher `id`'s screen on the stage. */
function setScreen(id, trackId) {
  if (trackId) state.screens.set(id, trackId);
  else state.screens.delete(id);
  placeRemoteTracks(id);
  renderStage();
}

function renderStage() {
  const stage = $('stage');
  const video = $('stage-video');
  // The most recent share wins the stage.
  const entries = [...state.screens];
  for (let i = entries.length - 1; i >= 0; i--) {
    const [id, trackId] = entries[i];
    const found = state.remoteTracks.get(trackId);
    if (found) {
      if (video.srcObject?.getVideoTracks()[0] !== found.track) video.srcObject = new MediaStream([found.track]);
      const label = t('share.of', { name: displayName(id) });
      $('stage-caption').textContent = label;
      video.setAttribute('aria-label', label);
      stage.hidden = false;
      stage.dataset.trackId = trackId;
      document.body.classList.add('has-stage');
      return;
    }
  }
  video.srcObject = null;
  stage.hidden = true;
  delete stage.dataset.trackId;
  document.body.classList.remove('has-stage');
}

// ---- Receiving -------------------------------------------------------------------

async function answerSubscribe(sdp) {
  const pc = state.sub;
  if (!pc) return;
  try {
    await pc.setRemoteDescription({ type: 'offer', sdp });
    applyAudioOnly();
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
  state.remoteTracks.set(ev.track.id, { track: ev.track, publisher: id });
  ev.track.addEventListener('ended', () => state.remoteTracks.delete(ev.track.id));
  placeRemoteTracks(id);
  renderStage();
}

/** Camera and mic of `id` go to its tile; its screen track to the stage. */
function placeRemoteTracks(id) {
  const tracks = [...state.remoteTracks.values()].filter((x) => x.publisher === id).map((x) => x.track);
  if (tracks.length === 0) return;
  const screenId = state.screens.get(id);
  let stream = state.tileStreams.get(id);
  if (!stream) {
    stream = new MediaStream();
    state.tileStreams.set(id, stream);
  }
  for (const track of tracks) {
    const isScreen = track.id === screenId;
    const has = stream.getTrackById(track.id);
    if (isScreen && has) stream.removeTrack(track);
    if (!isScreen && !has && track.readyState === 'live') {
      // Only one camera in the tile: a stale screen track stays out.
      if (track.kind === 'video' && stream.getVideoTracks().length > 0) continue;
      stream.addTrack(track);
    }
  }
  const tile = ensureTile(id, state.names.get(id));
  const video = tile.querySelector('video');
  if (video.srcObject !== stream) video.srcObject = stream;
}

// ---- Audio only ------------------------------------------------------------------

function applyAudioOnly() {
  if (!state.sub) return;
  for (const tr of state.sub.getTransceivers()) {
    if (tr.receiver.track?.kind !== 'video' || tr.currentDirection === 'stopped') continue;
    // Our answer refuses video while audio-only; the receivers render nothing.
    tr.direction = state.audioOnly ? 'inactive' : 'recvonly';
    tr.receiver.track.enabled = !state.audioOnly;
  }
}

function setAudioOnly(on) {
  state.audioOnly = on;
  document.body.classList.toggle('audio-only', on);
  applyAudioOnly();
  state.sig?.send({ type: 'audio-only', on });
  renderControls();
}

// ---- Who speaks ------------------------------------------------------------------

function startLevelMeter() {
  const tick = async () => {
    if (state.left || !state.sub) return;
    try {
      const levels = new Map();
      const transceivers = state.sub.getTransceivers();
      const report = await state.sub.getStats();
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
        const tr = transceivers.find((x) => x.mid === s.mid);
        const id = tr && state.streamOf.get(tr);
        if (id !== undefined) levels.set(id, Math.max(levels.get(id) ?? 0, s.audioLevel ?? 0));
      });
      for (const [id] of state.names) {
        const speaking = (levels.get(id) ?? 0) > 0.03;
        $(tileId(id))?.classList.toggle('speaking', speaking);
        const person = $('person-' + id);
        if (person) person.dataset.speaking = String(speaking);
      }
    } catch {
      // Stats are best effort.
    }
    setTimeout(tick, 400);
  };
  setTimeout(tick, 400);
}

function leave() {
  state.left = true;
  window.salonTest.ready = false;
  if (state.screen) state.screen.track.stop();
  if (state.pad) state.pad.destroy();
  state.pad = null;
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

/** Decoding stats of the screen track on the stage. */
async function screenStats() {
  const trackId = $('stage').dataset.trackId;
  if (!trackId || !state.sub) return null;
  const tr = state.sub.getTransceivers().find((x) => x.receiver.track?.id === trackId);
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
