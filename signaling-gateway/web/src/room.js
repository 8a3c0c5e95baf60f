// The room page: pre-join (name, devices, preview), lobby (waiting room),
// publish/subscribe transports (camera in simulcast), tiles with speaker
// highlight and the layer each tile needs, screen-share stage, participants
// with roles and moderation, chat, pad, audio-only, invitation link, leave.
// Bundled by esbuild (web/build.mjs) into web/dist/room.js.
import { applyI18n, t, has, lang } from '../i18n.js';
import { Signaling } from '../signaling.js';
import { appendLinkified } from './linkify.js';
import { Pad } from './pad.js';

const $ = (id) => document.getElementById(id);
const NAME_KEY = 'salon.name';

// The access token (`?jwt=`, as Jitsi) is read once, kept in memory only and
// dropped from the address bar (and so from history, bookmarks and the
// language link) before anything else reads the URL.
const jwt = (() => {
  const q = new URLSearchParams(location.search);
  const token = q.get('jwt');
  if (token === null) return null;
  q.delete('jwt');
  const rest = q.toString();
  history.replaceState(history.state, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
  return token || null;
})();

/** Camera simulcast, low to high (docs/signaling.md, layers). */
const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

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
  phase: 'prejoin', // 'prejoin' | 'lobby' | 'call' | 'ended' | 'kicked' | 'left'
  role: null, // our role, as the server says
  locked: false,
  info: new Map(), // participant id (string) -> { role, audioMuted, videoStopped, audio, video }
  waiting: new Map(), // moderators: guest id (string) -> name, in knock order
  modMuted: { audio: false, video: false }, // a moderator muted us
  pendingUnmute: null, // 'audio' | 'video' while an unmute request is in flight
  backToLobby: false, // kicked back to the lobby: we must knock ourselves
  reknockTimer: null,
  camera: null, // publish transceiver of the camera
  layersWanted: new Map(), // our publish mid -> last `active` list applied
  sentConstraints: new Map(), // remote track id -> max_height last sent
  constraintsLog: [], // every video-constraints message sent (tests)
  constraintsTimer: null,
  tileHeight: null, // test hook: fixed tile height in CSS pixels
  meterGen: 0,
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
  phase: () => state.phase,
  role: () => state.role,
  waiting: () => [...state.waiting].map(([id, name]) => ({ id, name })),
  inboundVideo: () => inboundVideo(),
  publishEncodings: () => publishEncodings(),
  constraintsSent: () => state.constraintsLog.slice(),
  setTileHeight: (px) => setTileHeight(px),
  jwtInUrl: () => new URLSearchParams(location.search).has('jwt'),
  // Join without a camera (receivers in load-sensitive tests).
  withoutCamera: async () => {
    await previewReady;
    for (const track of state.local?.getVideoTracks() ?? []) {
      track.stop();
      state.local.removeTrack(track);
    }
  },
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

// Tiles report their size: the layer each remote video needs follows it.
const resizeObserver = new ResizeObserver(() => scheduleConstraints());
resizeObserver.observe($('stage-video'));

/** Polite screen-reader announcement (knocks, moderation notices). */
function announce(text) {
  const el = $('announce');
  el.textContent = '';
  // A fresh text node each time, so the same message is read again.
  setTimeout(() => (el.textContent = text), 50);
}

function roleName(role) {
  return has('role.' + role) ? t('role.' + role) : String(role);
}

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
    const badges = document.createElement('div');
    badges.className = 'tile-badges';
    tile.append(video, caption, badges);
    $('tiles').append(tile);
    if (!self) resizeObserver.observe(video);
  }
  const label = name ?? t('call.unknown', { id });
  // User data goes in as text only.
  tile.querySelector('figcaption').textContent = self ? t('call.you', { name: label }) : label;
  tile.querySelector('video').setAttribute('aria-label', t('call.tile', { name: label }));
  renderTileBadges(id);
  return tile;
}

/** Role and muted state shown on a tile (text only). */
function renderTileBadges(id) {
  const tile = $(tileId(id));
  if (!tile) return;
  const box = tile.querySelector('.tile-badges');
  box.replaceChildren();
  const self = String(id) === String(state.selfId);
  const info = self ? selfInfo() : state.info.get(String(id));
  if (!info) return;
  if (info.role === 'moderator') {
    const b = document.createElement('span');
    b.className = 'role-flag';
    b.textContent = t('role.moderator');
    box.append(b);
  }
  if (info.audioMuted || info.audio === false) {
    const b = document.createElement('span');
    b.className = 'muted-flag';
    b.dataset.muted = 'audio';
    b.textContent = t('state.audioMuted');
    box.append(b);
  }
  if (info.videoStopped || info.video === false) {
    const b = document.createElement('span');
    b.className = 'muted-flag';
    b.dataset.muted = 'video';
    b.textContent = t('state.videoStopped');
    box.append(b);
  }
}

function selfInfo() {
  const audio = state.local?.getAudioTracks()[0];
  const video = state.local?.getVideoTracks()[0];
  return {
    role: state.role,
    audioMuted: state.modMuted.audio,
    videoStopped: state.modMuted.video,
    audio: Boolean(audio && audio.enabled),
    video: Boolean(video && video.enabled),
  };
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
  // Moderators: the waiting-room badge and the room-level controls.
  const mod = state.role === 'moderator';
  const waiting = mod ? state.waiting.size : 0;
  const badge = $('lobby-badge');
  badge.hidden = waiting === 0;
  badge.textContent = t('waiting.badge', { n: waiting });
  badge.setAttribute('aria-label', t('waiting.badgeLabel', { n: waiting }));
  $('mod-room').hidden = !mod;
  setButton($('lock'), state.locked ? t('mod.unlock') : t('mod.lock'), state.locked);
  $('locked-badge').hidden = !state.locked;
}

/** Tells the room our own mic/camera state (display only). */
function sendMediaState() {
  if (!state.joined) return;
  const s = selfInfo();
  state.sig?.send({ type: 'media-state', audio: s.audio, video: s.video });
  renderTileBadges(state.selfId);
}

function toggleLocal(kind) {
  const track = kind === 'audio' ? state.local?.getAudioTracks()[0] : state.local?.getVideoTracks()[0];
  if (!track) return;
  if (!track.enabled && state.modMuted[kind] && state.joined) {
    // A moderator muted us: the server must resume forwarding first; the
    // track comes back on with `unmuted` (or an error says why not).
    state.pendingUnmute = kind;
    state.sig?.send({ type: 'unmute', kind });
    return;
  }
  track.enabled = !track.enabled;
  renderControls();
  sendMediaState();
}
$('mic').addEventListener('click', () => toggleLocal('audio'));
$('cam').addEventListener('click', () => toggleLocal('video'));
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
  if (ev.key === 'Escape' && state.panel && !$('leave-dialog').open && !$('end-dialog').open) {
    ev.preventDefault();
    closePanel();
  }
});

function smallButton(text, label, onClick, extra = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = ('small ' + extra).trim();
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}

/** A moderation request; the server checks our role and answers with an error if not allowed. */
function moderate(msg) {
  state.sig?.send(msg);
}

function renderPeople() {
  const ul = $('people');
  // Keep keyboard focus on the same control across re-renders.
  const focused = document.activeElement?.closest?.('#people li') ? document.activeElement.dataset.action : null;
  const focusedId = focused ? document.activeElement.closest('li').dataset.id : null;
  ul.replaceChildren();
  const mod = state.role === 'moderator';
  const entries = [[String(state.selfId), state.selfName, true], ...[...state.names].map(([id, n]) => [id, n, false])];
  for (const [id, name, self] of entries) {
    const li = document.createElement('li');
    li.id = 'person-' + id;
    li.dataset.id = id;
    const info = self ? selfInfo() : (state.info.get(id) ?? {});
    const span = document.createElement('span');
    span.className = 'who';
    span.textContent = self ? t('call.you', { name }) : name;
    if (info.role) {
      const r = document.createElement('span');
      r.className = 'role-badge';
      r.dataset.role = info.role;
      r.textContent = roleName(info.role);
      span.append(' ', r);
    }
    const flags = [];
    if (info.audioMuted || info.audio === false) flags.push(t('state.audioMuted'));
    if (info.videoStopped || info.video === false) flags.push(t('state.videoStopped'));
    if (flags.length) {
      const st = document.createElement('span');
      st.className = 'state';
      st.textContent = ' · ' + flags.join(', ');
      span.append(st);
    }
    li.append(span);
    if (!self && mod) {
      const group = document.createElement('div');
      group.className = 'mod-actions';
      group.setAttribute('role', 'group');
      group.setAttribute('aria-label', t('mod.actions', { name }));
      const nid = Number(id);
      const add = (action, text, label, msg, extra) => {
        const b = smallButton(text, label, () => moderate(msg), extra);
        b.dataset.action = action;
        group.append(b);
      };
      add('mute', t('mod.mute'), t('mod.muteLabel', { name }), { type: 'mute', id: nid });
      add('stop-video', t('mod.stopVideo'), t('mod.stopVideoLabel', { name }), { type: 'stop-video', id: nid });
      if (state.screens.has(id)) {
        add('stop-screen', t('mod.stopScreen'), t('mod.stopScreenLabel', { name }), { type: 'stop-screen', id: nid });
      }
      if (info.role === 'moderator') {
        add('revoke', t('mod.revoke'), t('mod.revokeLabel', { name }), { type: 'revoke-moderator', id: nid });
      } else {
        add('grant', t('mod.grant'), t('mod.grantLabel', { name }), { type: 'grant-moderator', id: nid });
      }
      add('kick', t('mod.kick'), t('mod.kickLabel', { name }), { type: 'kick', id: nid, ban: false }, 'danger');
      add('ban', t('mod.ban'), t('mod.banLabel', { name }), { type: 'kick', id: nid, ban: true }, 'danger');
      li.append(group);
    }
    if (!self) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'ghost small';
      b.textContent = '✉';
      b.dataset.action = 'private';
      b.setAttribute('aria-label', t('people.private', { name }));
      b.addEventListener('click', () => {
        openPanel('chat');
        $('chat-to').value = id;
      });
      li.append(b);
    }
    ul.append(li);
  }
  if (focused) ul.querySelector(`li[data-id="${CSS.escape(focusedId)}"] [data-action="${CSS.escape(focused)}"]`)?.focus();
  renderWaiting();
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

// ---- Waiting room (moderators) ---------------------------------------------------

function renderWaiting() {
  const mod = state.role === 'moderator';
  const ul = $('waiting');
  const focusedAction = document.activeElement?.closest?.('#waiting li') ? document.activeElement.dataset.action : null;
  ul.replaceChildren();
  $('waiting-section').hidden = !mod || state.waiting.size === 0;
  $('waiting-title').textContent = t('waiting.title', { n: state.waiting.size });
  if (!mod) return;
  for (const [id, name] of state.waiting) {
    const li = document.createElement('li');
    li.id = 'waiting-' + id;
    li.dataset.id = id;
    const span = document.createElement('span');
    span.className = 'who';
    span.textContent = name;
    const group = document.createElement('div');
    group.className = 'mod-actions';
    const admit = smallButton(t('waiting.admit'), t('waiting.admitLabel', { name }), () => resolveKnock(id, true));
    admit.dataset.action = 'admit';
    const deny = smallButton(t('waiting.deny'), t('waiting.denyLabel', { name }), () => resolveKnock(id, false), 'danger');
    deny.dataset.action = 'deny';
    group.append(admit, deny);
    li.append(span, group);
    ul.append(li);
  }
  if (focusedAction) ul.querySelector('button')?.focus();
}

function resolveKnock(id, admit) {
  moderate(admit ? { type: 'admit', id: Number(id) } : { type: 'deny', id: Number(id) });
  // The other moderators get `knock-resolved`; we drop it at once.
  state.waiting.delete(String(id));
  renderWaiting();
  renderControls();
  if (state.waiting.size === 0 && document.activeElement === document.body) $('toggle-people').focus();
}

function onKnock(msg) {
  const id = String(msg.id);
  const name = typeof msg.name === 'string' ? msg.name : t('call.unknown', { id });
  const fresh = !state.waiting.has(id);
  state.waiting.set(id, name);
  if (state.role === 'moderator') {
    renderWaiting();
    renderControls();
    if (fresh) announce(t('waiting.knock', { name }));
  }
}

$('lobby-badge').addEventListener('click', () => {
  if (!isOpen('people')) openPanel('people');
  $('waiting').querySelector('button')?.focus();
});
$('mute-all').addEventListener('click', () => moderate({ type: 'mute-all' }));
$('allow-unmute').addEventListener('click', () => moderate({ type: 'allow-unmute' }));
$('lock').addEventListener('click', () => moderate({ type: 'lock', on: !state.locked }));
$('end-meeting').addEventListener('click', () => {
  $('end-dialog').showModal();
  $('end-cancel').focus();
});
$('end-confirm').addEventListener('click', () => {
  $('end-dialog').close();
  moderate({ type: 'end-meeting' });
});
$('end-cancel').addEventListener('click', () => $('end-dialog').close());

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
  // A refused join leaves the socket usable, but a fresh one is simplest.
  if (state.sig) state.sig.close();
  const sig = new Signaling();
  state.sig = sig;
  sig.on('open', () => {
    const msg = { type: 'join', room, name };
    if (jwt) msg.jwt = jwt;
    sig.send(msg);
  });
  sig.on('close', () => {
    if (state.sig !== sig) return;
    if (!state.left && state.phase !== 'ended' && state.phase !== 'kicked') setStatus('disconnected');
    window.salonTest.ready = false;
  });
  sig.on('joined', (msg) => onJoined(msg, name));
  sig.on('lobby', () => onLobby());
  sig.on('admitted', () => {
    $('lobby-message').textContent = t('lobby.admitted');
  });
  sig.on('denied', (msg) => onDenied(msg));
  sig.on('meeting-ended', (msg) => onMeetingEnded(msg));
  sig.on('kicked', (msg) => onKicked(msg));
  sig.on('knock', onKnock);
  sig.on('knock-resolved', (msg) => {
    state.waiting.delete(String(msg.id));
    renderWaiting();
    renderControls();
  });
  sig.on('role-changed', (msg) => onRoleChanged(msg));
  sig.on('room-locked', (msg) => {
    state.locked = Boolean(msg.on);
    announce(t(state.locked ? 'notice.locked' : 'notice.unlocked'));
    renderControls();
  });
  sig.on('muted', (msg) => onMuted(msg, true));
  sig.on('unmuted', (msg) => onMuted(msg, false));
  sig.on('media-state', (msg) => {
    const info = state.info.get(String(msg.id));
    if (!info) return;
    info.audio = Boolean(msg.audio);
    info.video = Boolean(msg.video);
    renderTileBadges(msg.id);
    renderPeople();
  });
  sig.on('layers-wanted', (msg) => applyLayersWanted(msg));
  sig.on('participant-joined', (msg) => {
    const id = String(msg.id);
    state.names.set(id, msg.name);
    state.info.set(id, { role: msg.role ?? null, audioMuted: false, videoStopped: false, audio: true, video: true });
    ensureTile(msg.id, msg.name);
    renderPeople();
  });
  sig.on('participant-left', (msg) => {
    const id = String(msg.id);
    state.names.delete(id);
    state.info.delete(id);
    state.screens.delete(id);
    for (const [trackId, x] of state.remoteTracks) if (x.publisher === id) state.remoteTracks.delete(trackId);
    removeTile(id);
    renderStage();
    renderPeople();
    scheduleConstraints();
  });
  sig.on('publish-answer', (msg) => {
    const done = state.pubAnswer;
    state.pubAnswer = null;
    if (!state.pub) return done && done();
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
  sig.on('screen-share', (msg) => {
    setScreen(String(msg.id), msg.track_id ?? null);
    renderPeople();
  });
  sig.on('dominant-speaker', (msg) => {
    for (const tile of document.querySelectorAll('.tile.dominant')) tile.classList.remove('dominant');
    $(tileId(msg.id))?.classList.add('dominant');
  });
  sig.on('error', (msg) => onError(msg));
  sig.connect();
}

function onError(msg) {
  if (msg.code === 'unknown-type') {
    // An older gateway without an optional message (media-state,
    // video-constraints): nothing the user can act on.
    console.warn('server does not know a message type', msg.message);
    return;
  }
  if (msg.code === 'forbidden' && state.pendingUnmute) {
    state.pendingUnmute = null;
    showError(t('error.unmute-forbidden'));
    return;
  }
  showError(errorText(msg));
  if (state.phase === 'prejoin') $('join').disabled = false;
}

function showPhase(phase) {
  state.phase = phase;
  $('prejoin').hidden = phase !== 'prejoin';
  $('lobby').hidden = phase !== 'lobby';
  $('call').hidden = phase !== 'call';
  $('ended').hidden = phase !== 'ended' && phase !== 'kicked';
  $('left').hidden = phase !== 'left';
}

async function onJoined(msg, name) {
  clearReknock();
  if (state.joined) teardownCall();
  showError('');
  state.joined = true;
  state.backToLobby = false;
  state.selfId = msg.id;
  state.role = typeof msg.role === 'string' ? msg.role : null;
  state.locked = Boolean(msg.locked);
  state.padToken = typeof msg.pad_token === 'string' ? msg.pad_token : null;
  window.salonTest.id = msg.id;
  showPhase('call');
  setStatus('joined');
  const self = ensureTile(msg.id, name, true);
  if (state.local) self.querySelector('video').srcObject = state.local;
  for (const p of msg.participants) {
    const id = String(p.id);
    state.names.set(id, p.name);
    state.info.set(id, {
      role: p.role ?? null,
      audioMuted: Boolean(p.audio_muted),
      videoStopped: Boolean(p.video_stopped),
      audio: true,
      video: true,
    });
    ensureTile(p.id, p.name);
  }
  renderPeople();
  renderControls();
  $('mic').focus();

  state.sub = new RTCPeerConnection();
  state.sub.addEventListener('track', onRemoteTrack);
  window.salonTest.ready = true;
  startLevelMeter();
  // Everyone starts shown with mic and camera on: say so only if not.
  const me = selfInfo();
  if (!me.audio || !me.video) sendMediaState();
  if (state.local && state.local.getTracks().length > 0) await publish();
}

/** Leaves the meeting's media and UI state, keeping the socket and our camera. */
function teardownCall() {
  state.joined = false;
  window.salonTest.ready = false;
  if (state.screen) {
    state.screen.track.stop();
    state.screen = null;
  }
  if (state.pad) state.pad.destroy();
  state.pad = null;
  state.padToken = null;
  for (const pc of [state.pub, state.sub]) if (pc) pc.close();
  state.pub = null;
  state.sub = null;
  state.camera = null;
  if (state.pubAnswer) state.pubAnswer();
  state.pubAnswer = null;
  state.subChain = Promise.resolve();
  state.pubChain = Promise.resolve();
  state.connected = { publish: false, subscribe: false };
  state.names.clear();
  state.info.clear();
  state.screens.clear();
  state.remoteTracks.clear();
  state.tileStreams.clear();
  state.waiting.clear();
  state.layersWanted.clear();
  state.sentConstraints.clear();
  state.modMuted = { audio: false, video: false };
  state.pendingUnmute = null;
  for (const video of document.querySelectorAll('#tiles video')) resizeObserver.unobserve(video);
  $('tiles').replaceChildren();
  renderStage();
  for (const p of [...(state.panels ?? [])]) {
    state.panels = state.panels.filter((x) => x !== p);
    $('panel-' + p).hidden = true;
  }
  state.panel = null;
  $('panel').hidden = true;
  for (const d of ['leave-dialog', 'end-dialog']) if ($(d).open) $(d).close();
}

function stopLocalMedia() {
  if (state.local) for (const track of state.local.getTracks()) track.stop();
}

// ---- Lobby (guests) -----------------------------------------------------------

function onLobby() {
  if (state.joined) teardownCall();
  state.role = 'guest';
  showPhase('lobby');
  setStatus('lobby');
  clearReknock();
  $('lobby-countdown').textContent = '';
  if (state.backToLobby) {
    // Sent back by a kick: we are not knocking until we say so.
    $('lobby-message').textContent = t('lobby.kicked');
    $('lobby-reknock').hidden = false;
    $('lobby-reknock').disabled = false;
    $('lobby-reknock').focus();
  } else {
    $('lobby-message').textContent = t('lobby.waiting');
    $('lobby-reknock').hidden = true;
    $('lobby-leave').focus();
  }
}

function clearReknock() {
  if (state.reknockTimer) clearInterval(state.reknockTimer);
  state.reknockTimer = null;
}

function onDenied(msg) {
  showPhase('lobby');
  const reason = typeof msg.reason === 'string' && msg.reason ? msg.reason : '—';
  $('lobby-message').textContent = t('lobby.denied', { reason });
  const until = Date.now() + Math.max(0, Number(msg.retry_after_ms) || 0);
  const button = $('lobby-reknock');
  button.hidden = false;
  clearReknock();
  const tick = () => {
    const left = until - Date.now();
    if (left <= 0) {
      clearReknock();
      button.disabled = false;
      $('lobby-countdown').textContent = t('lobby.canReknock');
      return;
    }
    button.disabled = true;
    $('lobby-countdown').textContent = t('lobby.countdown', { s: Math.ceil(left / 1000) });
  };
  tick();
  if (until > Date.now()) state.reknockTimer = setInterval(tick, 1000);
}

$('lobby-reknock').addEventListener('click', () => {
  state.sig?.send({ type: 'knock' });
  state.backToLobby = false;
  $('lobby-reknock').hidden = true;
  $('lobby-countdown').textContent = '';
  $('lobby-message').textContent = t('lobby.knocked');
  $('lobby-leave').focus();
});
$('lobby-leave').addEventListener('click', () => leave());

function onMeetingEnded(msg) {
  clearReknock();
  teardownCall();
  stopLocalMedia();
  showPhase('ended');
  $('ended-title').textContent = t('ended.title');
  $('ended-message').textContent =
    msg.reason === 'ended-by-moderator' ? t('ended.byModerator') : t('ended.other', { reason: String(msg.reason ?? '') });
  setStatus('ended');
  state.sig?.close();
  $('ended').querySelector('a').focus();
}

function onKicked(msg) {
  if (state.role === 'guest' && !msg.ban) {
    // The server puts us back in its lobby (`lobby` follows).
    state.backToLobby = true;
    teardownCall();
    return;
  }
  teardownCall();
  stopLocalMedia();
  showPhase('kicked');
  $('ended-title').textContent = t('kicked.title');
  $('ended-message').textContent = msg.ban ? t('kicked.ban') : t('kicked.body');
  setStatus('kicked');
  state.sig?.close();
  $('ended').querySelector('a').focus();
}

// ---- Roles and moderation notices -------------------------------------------------

function onRoleChanged(msg) {
  const id = String(msg.id);
  const role = String(msg.role);
  if (id === String(state.selfId)) {
    state.role = role;
    if (role !== 'moderator') state.waiting.clear();
    announce(t('notice.youRole', { role: roleName(role) }));
  } else {
    const info = state.info.get(id);
    if (info) info.role = role;
    announce(t('notice.role', { name: displayName(id), role: roleName(role) }));
  }
  renderTileBadges(id);
  renderPeople();
  renderControls();
}

function onMuted(msg, muted) {
  const id = String(msg.id);
  const kind = msg.kind;
  if (id === String(state.selfId)) {
    if (kind === 'audio' || kind === 'video') {
      state.modMuted[kind] = muted;
      const track = kind === 'audio' ? state.local?.getAudioTracks()[0] : state.local?.getVideoTracks()[0];
      if (muted) {
        if (track) track.enabled = false;
        announce(t(kind === 'audio' ? 'notice.mutedYou' : 'notice.stoppedVideo'));
      } else if (state.pendingUnmute === kind) {
        // Our own unmute went through: switch the track back on.
        if (track) track.enabled = true;
        state.pendingUnmute = null;
        showError('');
      }
      renderControls();
      sendMediaState();
    } else if (kind === 'screen' && muted) {
      announce(t('notice.stoppedScreen'));
      stopShare();
    }
    renderPeople();
    return;
  }
  const info = state.info.get(id);
  if (!info) return;
  if (kind === 'audio') info.audioMuted = muted;
  if (kind === 'video') info.videoStopped = muted;
  if (muted && kind === 'audio') announce(t('notice.muted', { name: displayName(id) }));
  renderTileBadges(id);
  renderPeople();
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
  // Audio first, then the camera in three simulcast layers, low to high.
  for (const track of state.local.getAudioTracks()) {
    pc.addTransceiver(track, { direction: 'sendonly', streams: [state.local] });
  }
  for (const track of state.local.getVideoTracks()) {
    state.camera = pc.addTransceiver(track, {
      direction: 'sendonly',
      streams: [state.local],
      sendEncodings: SIMULCAST.map((e) => ({ ...e })),
    });
  }
  await negotiatePublish();
}

/** `layers-wanted {mid, active}`: switch off the encodings nobody needs. */
async function applyLayersWanted(msg) {
  if (!state.pub || typeof msg.mid !== 'string' || !Array.isArray(msg.active)) return;
  const tr = state.pub.getTransceivers().find((x) => x.mid === msg.mid);
  if (!tr || tr.currentDirection === 'stopped') return;
  const active = msg.active.map(Boolean);
  // The camera always keeps its lowest layer: never all off.
  if (tr === state.camera && !active.some(Boolean)) active[0] = true;
  state.layersWanted.set(msg.mid, active);
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

async function publishEncodings() {
  const tr = state.camera;
  if (!tr) return null;
  const params = tr.sender.getParameters();
  const out = (params.encodings ?? []).map((e) => ({
    rid: e.rid ?? null,
    active: e.active !== false,
    scaleResolutionDownBy: e.scaleResolutionDownBy ?? null,
    maxBitrate: e.maxBitrate ?? null,
  }));
  const sent = {};
  if (state.pub) {
    const report = await state.pub.getStats();
    report.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) {
        sent[s.rid] = { frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0, bytesSent: s.bytesSent ?? 0 };
      }
    });
  }
  return { mid: tr.mid, encodings: out, sent };
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
      scheduleConstraints();
      return;
    }
  }
  video.srcObject = null;
  stage.hidden = true;
  delete stage.dataset.trackId;
  document.body.classList.remove('has-stage');
  scheduleConstraints();
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
  scheduleConstraints();
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
  scheduleConstraints();
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
  scheduleConstraints();
}

// ---- Layers: the height each remote video is shown at ------------------------------

/** The rendered height (device pixels) of the element showing `track`; 0 if none shows it. */
function renderedHeight(track) {
  if (state.audioOnly) return 0;
  for (const video of document.querySelectorAll('#tiles video, #stage-video')) {
    const stream = video.srcObject;
    if (!stream || !stream.getVideoTracks().includes(track)) continue;
    const h = video.getBoundingClientRect().height;
    if (!(h > 0) || video.closest('[hidden]')) return 0;
    return Math.min(65535, Math.round(h * (window.devicePixelRatio || 1)));
  }
  return 0;
}

/** track id -> max_height for every live remote video track. */
function currentConstraints() {
  const out = new Map();
  if (!state.sub) return out;
  const transceivers = state.sub.getTransceivers();
  for (const [trackId, { track }] of state.remoteTracks) {
    if (track.kind !== 'video' || track.readyState !== 'live') continue;
    const tr = transceivers.find((x) => x.receiver.track === track);
    if (!tr || tr.currentDirection === 'stopped' || tr.mid === null) continue;
    out.set(trackId, renderedHeight(track));
  }
  return out;
}

/** Debounced (300 ms): sends `video-constraints` when a value changed. */
function scheduleConstraints() {
  if (state.constraintsTimer) clearTimeout(state.constraintsTimer);
  state.constraintsTimer = setTimeout(sendConstraints, 300);
}

function sendConstraints() {
  state.constraintsTimer = null;
  if (!state.joined || !state.sig) return;
  const now = currentConstraints();
  let changed = false;
  for (const [id, h] of now) if (state.sentConstraints.get(id) !== h) changed = true;
  for (const id of [...state.sentConstraints.keys()]) if (!now.has(id)) state.sentConstraints.delete(id);
  if (!changed) return;
  const constraints = [...now].map(([track_id, max_height]) => ({ track_id, max_height }));
  state.sig.send({ type: 'video-constraints', constraints });
  state.constraintsLog.push(constraints);
  if (state.constraintsLog.length > 100) state.constraintsLog.shift();
  state.sentConstraints = now;
}

/** Test hook: every tile `px` CSS pixels high (null: the normal grid). */
function setTileHeight(px) {
  const tiles = $('tiles');
  state.tileHeight = px ?? null;
  if (px === null || px === undefined) {
    tiles.classList.remove('fixed-height');
    tiles.style.removeProperty('--tile-height');
  } else {
    tiles.style.setProperty('--tile-height', `${Number(px)}px`);
    tiles.classList.add('fixed-height');
  }
  scheduleConstraints();
}

/** Per remote video track: what is decoded (tests). */
async function inboundVideo() {
  const out = [];
  const pc = state.sub;
  if (!pc) return out;
  const transceivers = pc.getTransceivers();
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
    const tr = transceivers.find((x) => x.mid === s.mid);
    const track = tr?.receiver.track;
    out.push({
      trackId: track?.id ?? null,
      publisher: (tr && state.streamOf.get(tr)) ?? null,
      mid: s.mid ?? null,
      frameWidth: s.frameWidth ?? 0,
      frameHeight: s.frameHeight ?? 0,
      framesDecoded: s.framesDecoded ?? 0,
      bytesReceived: s.bytesReceived ?? 0,
      maxHeightSent: track ? (state.sentConstraints.get(track.id) ?? null) : null,
    });
  });
  return out;
}

// ---- Who speaks ------------------------------------------------------------------

function startLevelMeter() {
  // One meter per meeting: a re-join (after the lobby) starts a new one.
  const gen = ++state.meterGen;
  const tick = async () => {
    if (state.left || !state.sub || gen !== state.meterGen) return;
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
  clearReknock();
  showPhase('left');
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
