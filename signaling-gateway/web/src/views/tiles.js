// Tiles: one per participant (camera and mic of each publisher), the
// screen-share stage, role and muted badges, who speaks, the dominant
// speaker, an avatar with initials when there is no video, the pin button,
// the connection-quality indicator, and the test hook's fixed tile height.
// Where each tile goes is views/layout.js's business.
import { t } from '../../i18n.js';
import { store, subscribe, selfInfo, isSelf, localTrack } from '../store.js';
import { $, displayName } from './dom.js';
import { scheduleConstraints } from './layers.js';
import { initLayout, relayout, pin, pinnedId } from './layout.js';
import { icon } from '../icons.js';
import { applySink } from './devices.js';

const tileStreams = new Map(); // publisher id -> MediaStream of their camera and mic
let session = null;
let meterGen = 0;

// Tiles report their size: the layer each remote video needs follows it.
const resizeObserver = new ResizeObserver(() => scheduleConstraints());

export function initTiles(s) {
  session = s;
  resizeObserver.observe($('stage-video'));
  subscribe(onChange);
  initLayout();
}

function onChange({ what, id }) {
  if (what.has('reset')) clearTiles();
  if (what.has('tiles')) {
    const self = ensureTile(store.selfId, store.selfName, true);
    if (store.local) self.querySelector('video').srcObject = store.local;
    for (const [pid, name] of store.names) ensureTile(pid, name);
  }
  if (what.has('tile')) ensureTile(id, store.names.get(id));
  if (what.has('tile-removed')) removeTile(id);
  if (what.has('badges')) renderTileBadges(id);
  if (what.has('tracks')) placeRemoteTracks(id);
  if (what.has('stage')) renderStage();
  if (what.has('speaker')) {
    for (const tile of document.querySelectorAll('.tile.dominant')) tile.classList.remove('dominant');
    $(tileId(id))?.classList.add('dominant');
  }
  if (what.has('audio-only')) document.body.classList.toggle('audio-only', store.audioOnly);
  if (what.has('layout')) applyTileHeight();
  if (what.has('local') && store.selfId !== null) renderVideoState(String(store.selfId));
  if (what.has('tracks') || what.has('tile-removed') || what.has('audio-only') || what.has('layout')) {
    scheduleConstraints();
  }
}

function tileId(id) {
  return 'tile-' + id;
}

/** Up to two initials of a name, for the avatar. */
export function initials(name) {
  const words = String(name).trim().split(/[\s\-_.]+/u).filter(Boolean);
  const first = (w) => [...w][0] ?? '';
  if (words.length === 0) return '?';
  if (words.length === 1) return first(words[0]).toUpperCase();
  return (first(words[0]) + first(words[words.length - 1])).toUpperCase();
}

/** A stable hue per name, dark enough for white initials (contrast ≥ 4.5:1). */
function avatarColor(name) {
  let h = 0;
  for (const c of String(name)) h = (h * 31 + c.codePointAt(0)) % 360;
  return `hsl(${h} 55% 32%)`;
}

function ensureTile(id, name, self = false) {
  let tile = $(tileId(id));
  if (!tile) {
    tile = document.createElement('figure');
    tile.id = tileId(id);
    tile.className = self ? 'tile self' : 'tile';
    tile.dataset.id = String(id);
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    if (self) video.muted = true;
    else applySink(video);
    const avatar = document.createElement('div');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    const caption = document.createElement('figcaption');
    const badges = document.createElement('div');
    badges.className = 'tile-badges';
    const flags = document.createElement('span');
    flags.className = 'flags';
    flags.style.display = 'contents';
    const net = document.createElement('span');
    net.className = 'net';
    net.setAttribute('role', 'img');
    net.hidden = true;
    net.append(document.createElement('i'), document.createElement('i'), document.createElement('i'));
    badges.append(flags, net);
    const pinButton = document.createElement('button');
    pinButton.type = 'button';
    pinButton.className = 'tile-pin';
    pinButton.setAttribute('aria-pressed', 'false');
    pinButton.append(icon('pin'));
    pinButton.addEventListener('click', () => {
      pin(pinnedId() === String(id) ? null : String(id));
      renderPins();
    });
    tile.append(video, avatar, caption, badges, pinButton);
    $('tiles').append(tile);
    if (!self) resizeObserver.observe(video);
    relayout();
  }
  const label = name ?? t('call.unknown', { id });
  // User data goes in as text only.
  tile.querySelector('figcaption').textContent = self ? t('call.you', { name: label }) : label;
  tile.querySelector('video').setAttribute('aria-label', t('call.tile', { name: label }));
  const avatar = tile.querySelector('.avatar');
  avatar.textContent = initials(label);
  avatar.style.setProperty('--avatar', avatarColor(label));
  renderPin(tile, label);
  renderTileBadges(id);
  return tile;
}

function renderPin(tile, label) {
  const pinned = pinnedId() === tile.dataset.id;
  const b = tile.querySelector('.tile-pin');
  b.setAttribute('aria-pressed', String(pinned));
  const text = t(pinned ? 'layout.unpin' : 'layout.pin', { name: label });
  b.setAttribute('aria-label', text);
  b.title = text;
}

/** Every pin button says whether its tile is the pinned one. */
export function renderPins() {
  for (const tile of document.querySelectorAll('#tiles .tile')) {
    renderPin(tile, tile.querySelector('figcaption').textContent);
  }
}

/** Role and muted state shown on a tile (text only). */
function renderTileBadges(id) {
  const tile = $(tileId(id));
  if (!tile) return;
  const box = tile.querySelector('.tile-badges .flags');
  box.replaceChildren();
  renderVideoState(String(id));
  const info = isSelf(id) ? selfInfo() : store.info.get(String(id));
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

/** The avatar replaces the video when there is none to show. */
function renderVideoState(id) {
  const tile = $(tileId(id));
  if (!tile) return;
  let noVideo;
  if (isSelf(id)) {
    const v = localTrack('video');
    noVideo = !v || !v.enabled;
  } else {
    const info = store.info.get(id);
    const stream = tileStreams.get(id);
    const live = stream?.getVideoTracks().some((x) => x.readyState === 'live');
    noVideo = !live || Boolean(info && (info.video === false || info.videoStopped));
  }
  tile.classList.toggle('no-video', noVideo);
}

function removeTile(id) {
  const tile = $(tileId(id));
  if (tile) tile.remove();
  tileStreams.delete(String(id));
  relayout();
}

function clearTiles() {
  tileStreams.clear();
  for (const video of document.querySelectorAll('#tiles video')) resizeObserver.unobserve(video);
  $('tiles').replaceChildren();
}

/**
 * Camera and mic of `id` go to its tile; its screen track to the stage.
 * Tracks are matched by their key (the SDP's msid track id, store.js); a
 * track no longer keyed to `id` (gone, or its m-line recycled) leaves the tile.
 */
function placeRemoteTracks(id) {
  const entries = [...store.remoteTracks].filter(([, x]) => x.publisher === id);
  let stream = tileStreams.get(id);
  if (entries.length === 0 && !stream) return;
  if (!stream) {
    stream = new MediaStream();
    tileStreams.set(id, stream);
  }
  const screenKey = store.screens.get(id);
  const mine = new Set(entries.filter(([key]) => key !== screenKey).map(([, x]) => x.track));
  for (const track of stream.getTracks()) if (!mine.has(track)) stream.removeTrack(track);
  for (const [key, { track }] of entries) {
    const isScreen = key === screenKey;
    const has = stream.getTracks().includes(track);
    if (!isScreen && !has && track.readyState === 'live') {
      // Only one camera in the tile: a stale screen track stays out.
      if (track.kind === 'video' && stream.getVideoTracks().length > 0) continue;
      stream.addTrack(track);
    }
  }
  renderVideoState(id);
  if (entries.length === 0) return;
  const tile = ensureTile(id, store.names.get(id));
  const video = tile.querySelector('video');
  if (video.srcObject !== stream) video.srcObject = stream;
  scheduleConstraints();
}

function renderStage() {
  const stage = $('stage');
  const video = $('stage-video');
  // The most recent share wins the stage.
  const entries = [...store.screens];
  for (let i = entries.length - 1; i >= 0; i--) {
    const [id, trackId] = entries[i];
    const found = store.remoteTracks.get(trackId);
    if (found && found.publisher === id) {
      if (video.srcObject?.getVideoTracks()[0] !== found.track) video.srcObject = new MediaStream([found.track]);
      const label = t('share.of', { name: displayName(id) });
      $('stage-caption').textContent = label;
      video.setAttribute('aria-label', label);
      stage.hidden = false;
      stage.dataset.trackId = trackId;
      stage.dataset.publisher = id;
      document.body.classList.add('has-stage');
      relayout();
      scheduleConstraints();
      return;
    }
  }
  video.srcObject = null;
  stage.hidden = true;
  delete stage.dataset.trackId;
  delete stage.dataset.publisher;
  document.body.classList.remove('has-stage');
  relayout();
  scheduleConstraints();
}

/** The key (msid track id) of the screen track shown on the stage, if any. */
export function stageTrackId() {
  return $('stage').dataset.trackId;
}

/** Test hook: every tile `store.tileHeight` CSS pixels high (null: the normal grid). */
function applyTileHeight() {
  const tiles = $('tiles');
  const px = store.tileHeight;
  if (px === null) {
    tiles.classList.remove('fixed-height');
    tiles.style.removeProperty('--tile-height');
  } else {
    tiles.style.setProperty('--tile-height', `${Number(px)}px`);
    tiles.classList.add('fixed-height');
  }
  relayout();
}

/** Who speaks: polls the inbound audio levels every 400 ms while in the call;
 * the connection quality every 2 s. */
export function startLevelMeter() {
  // One meter per meeting: a re-join (after the lobby) starts a new one.
  const gen = ++meterGen;
  let n = 0;
  const tick = async () => {
    if (store.left || !session.sub || gen !== meterGen) return;
    try {
      const levels = await session.audioLevels();
      for (const [id] of store.names) {
        const speaking = (levels.get(id) ?? 0) > 0.03;
        $(tileId(id))?.classList.toggle('speaking', speaking);
        const person = $('person-' + id);
        if (person) person.dataset.speaking = String(speaking);
      }
      if (n++ % 5 === 0) await renderQuality();
    } catch {
      // Stats are best effort.
    }
    setTimeout(tick, 400);
  };
  setTimeout(tick, 400);
}

// ---- Connection quality -------------------------------------------------------

const lastCounts = new Map(); // publisher id -> { lost, received }

/** good | fair | poor from a loss fraction (0..1) and a round-trip time (s). */
export function quality(loss, rtt) {
  if (loss < 0.02 && rtt < 0.3) return 'good';
  if (loss < 0.08 && rtt < 0.6) return 'fair';
  return 'poor';
}

/**
 * Each remote tile: the loss of what we receive from that publisher since
 * the last look, and our subscribe transport's round-trip time; our own
 * tile: the loss and RTT the server reports for what we send.
 */
async function renderQuality() {
  const sub = session.sub;
  if (!sub) return;
  const report = await sub.getStats();
  let rtt = 0;
  const counts = new Map();
  const transceivers = sub.getTransceivers();
  report.forEach((s) => {
    if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime;
    if (s.type !== 'inbound-rtp') return;
    const tr = transceivers.find((x) => x.mid === s.mid);
    const id = tr && session.remoteOf(tr)?.publisher;
    if (id === undefined) return;
    const c = counts.get(id) ?? { lost: 0, received: 0 };
    c.lost += Math.max(0, s.packetsLost ?? 0);
    c.received += s.packetsReceived ?? 0;
    counts.set(id, c);
  });
  for (const [id, c] of counts) {
    const prev = lastCounts.get(id) ?? { lost: 0, received: 0 };
    lastCounts.set(id, c);
    const lost = c.lost - prev.lost;
    const got = c.received - prev.received;
    if (got + lost <= 0) continue;
    showQuality(id, quality(lost / (got + lost), rtt));
  }
  if (session.pub) {
    let loss = 0;
    let pubRtt = 0;
    (await session.pub.getStats()).forEach((s) => {
      if (s.type === 'remote-inbound-rtp') {
        loss = Math.max(loss, s.fractionLost ?? 0);
        pubRtt = Math.max(pubRtt, s.roundTripTime ?? 0);
      }
    });
    showQuality(String(store.selfId), quality(loss, pubRtt));
  }
}

function showQuality(id, q) {
  const net = $(tileId(id))?.querySelector('.net');
  if (!net) return;
  net.hidden = false;
  if (net.dataset.quality === q) return;
  net.dataset.quality = q;
  const text = t('net.' + q);
  net.setAttribute('aria-label', text);
  net.title = text;
}
