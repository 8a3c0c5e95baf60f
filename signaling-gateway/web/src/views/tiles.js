// Tiles: one per participant (camera and mic of each publisher), the
// screen-share stage, role and muted badges, who speaks, the dominant
// speaker, audio-only and the test hook's fixed tile height.
import { t } from '../../i18n.js';
import { store, subscribe, selfInfo, isSelf } from '../store.js';
import { $, displayName } from './dom.js';
import { scheduleConstraints } from './layers.js';

const tileStreams = new Map(); // publisher id -> MediaStream of their camera and mic
let session = null;
let meterGen = 0;

// Tiles report their size: the layer each remote video needs follows it.
const resizeObserver = new ResizeObserver(() => scheduleConstraints());

export function initTiles(s) {
  session = s;
  resizeObserver.observe($('stage-video'));
  subscribe(onChange);
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
  if (what.has('tracks') || what.has('tile-removed') || what.has('audio-only') || what.has('layout')) {
    scheduleConstraints();
  }
}

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

function removeTile(id) {
  const tile = $(tileId(id));
  if (tile) tile.remove();
  tileStreams.delete(String(id));
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
}

/** Who speaks: polls the inbound audio levels every 400 ms while in the call. */
export function startLevelMeter() {
  // One meter per meeting: a re-join (after the lobby) starts a new one.
  const gen = ++meterGen;
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
    } catch {
      // Stats are best effort.
    }
    setTimeout(tick, 400);
  };
  setTimeout(tick, 400);
}
