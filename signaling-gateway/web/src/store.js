// The room client's state. This module owns the one state object and is the
// only one to change it, through the named updates below; every update then
// tells the subscribers what changed. Views read `store` (a read-only view:
// assigning to it throws; its maps and lists are to be read, not changed)
// and re-render what a change concerns.
//
// A change is { what: Set<string>, id: string | null }; `id` is the
// participant concerned, if one is. The `what` names:
//   phase, status, error     the page section, the status line, the error line
//   local                    our camera/mic stream or its tracks' on/off state
//   controls                 anything the toolbar shows
//   people, waiting          the participant list, the waiting list (moderators)
//   tiles                    every tile (joined: self and those already here)
//   tile, tile-removed       one participant's tile (`id`) comes or goes
//   badges                   role and muted flags on `id`'s tile
//   tracks                   a remote track of publisher `id` arrived or went
//   stage                    which screen share is on the stage
//   speaker                  the dominant speaker
//   panels, chat             the side panels open, a chat message (the last of `chat`)
//   audio-only, layout       audio-only mode, the test hook's tile height
//   hands                    the raised hands (their order, or `id`'s hand)
//   reaction                 `id` reacted (the last of `reactions`)
//   reset                    the meeting's media and UI were torn down

const state = {
  phase: 'prejoin', // 'prejoin' | 'lobby' | 'call' | 'ended' | 'kicked' | 'left'
  status: 'idle', // key of the status line (status.<key>)
  error: '', // text of the error line
  local: null, // MediaStream from getUserMedia; its tracks' `enabled` is our mic/camera state
  selfId: null,
  selfName: '',
  role: null, // our role, as the server says
  locked: false,
  joined: false,
  left: false,
  padToken: null,
  connected: { publish: false, subscribe: false },
  names: new Map(), // participant id (string) -> name
  info: new Map(), // participant id (string) -> { role, audioMuted, videoStopped, audio, video }
  waiting: new Map(), // moderators: guest id (string) -> name, in knock order
  screens: new Map(), // publisher id -> screen track key (msid track id)
  // Remote tracks by key: the msid track id the subscribe SDP gives their
  // mid (`<publisher>-<mid>`), never MediaStreamTrack.id (random in Firefox,
  // stale on a recycled m-line).
  remoteTracks: new Map(), // track key -> { track, publisher }
  modMuted: { audio: false, video: false }, // a moderator muted us
  pendingUnmute: null, // 'audio' | 'video' while an unmute request is in flight
  backToLobby: false, // kicked back to the lobby: we must knock ourselves
  sharing: false, // we share our screen
  audioOnly: false,
  panels: [], // open side panels, in opening order: 'people' | 'chat' | 'pad'
  unread: 0,
  chat: [], // `chat` messages received, oldest first (the log outlives a re-join, as the page's)
  dominant: null, // id of the dominant speaker
  tileHeight: null, // test hook: fixed tile height in CSS pixels
  hands: [], // ids (strings) of the raised hands, in the order they were raised
  myHandRaised: false, // our own hand is raised (the server says so)
  reactions: [], // the last reactions received: { id, emoji, at }, oldest first (at most 50)
};

function readOnly() {
  throw new TypeError('the room state changes only through the updates of store.js');
}

/** The state, to read. */
export const store = new Proxy(state, { set: readOnly, deleteProperty: readOnly, defineProperty: readOnly });

const subscribers = new Set();

/** Calls `fn(change)` after every update; returns the unsubscribe function. */
export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

function notify(what, id = null) {
  const change = { what: new Set(what), id: id === null || id === undefined ? null : String(id) };
  for (const fn of subscribers) fn(change);
}

// ---- Derived values ---------------------------------------------------------

/** The side panel opened last (Escape closes it), or null. */
export function lastPanel() {
  return state.panels.at(-1) ?? null;
}

export function isPanelOpen(p) {
  return state.panels.includes(p);
}

export function localTrack(kind) {
  return kind === 'audio' ? state.local?.getAudioTracks()[0] : state.local?.getVideoTracks()[0];
}

/** Our own role and mic/camera state, shaped as `info` entries. */
export function selfInfo() {
  const audio = localTrack('audio');
  const video = localTrack('video');
  return {
    role: state.role,
    audioMuted: state.modMuted.audio,
    videoStopped: state.modMuted.video,
    audio: Boolean(audio && audio.enabled),
    video: Boolean(video && video.enabled),
  };
}

export function isSelf(id) {
  return String(id) === String(state.selfId);
}

// ---- Page ---------------------------------------------------------------------

export function setPhase(phase) {
  state.phase = phase;
  notify(['phase']);
}

export function setStatus(key) {
  state.status = key;
  notify(['status']);
}

export function setError(text) {
  state.error = text;
  notify(['error']);
}

// ---- Our camera and microphone ----------------------------------------------------

/** A new preview stream replaces the old one (whose tracks stop). */
export function setLocalStream(stream) {
  if (state.local) for (const track of state.local.getTracks()) track.stop();
  state.local = stream;
  notify(['local', 'controls']);
}

/** Test hook: joins without a camera. */
export function dropLocalVideo() {
  for (const track of state.local?.getVideoTracks() ?? []) {
    track.stop();
    state.local.removeTrack(track);
  }
  notify(['local', 'controls']);
}

export function stopLocalMedia() {
  if (state.local) for (const track of state.local.getTracks()) track.stop();
}

/** Switches our mic ('audio') or camera ('video') track on or off. */
export function setLocalEnabled(kind, on) {
  const track = localTrack(kind);
  if (!track) return;
  track.enabled = on;
  notify(['local', 'controls', 'badges'], state.selfId);
}

export function setPendingUnmute(kind) {
  state.pendingUnmute = kind;
}

/**
 * `muted`/`unmuted` about our own `kind` ('audio' | 'video'). Muted: the track
 * goes off. Unmuted after our own request: the track comes back on. Returns
 * true in that last case.
 */
export function selfMuted(kind, muted) {
  state.modMuted[kind] = muted;
  const track = localTrack(kind);
  let unmuted = false;
  if (muted) {
    if (track) track.enabled = false;
  } else if (state.pendingUnmute === kind) {
    if (track) track.enabled = true;
    state.pendingUnmute = null;
    unmuted = true;
  }
  notify(['local', 'controls', 'badges', 'people', 'waiting'], state.selfId);
  return unmuted;
}

// ---- Joining and leaving --------------------------------------------------------

export function setSelfName(name) {
  state.selfName = name;
}

/** `joined`: we are in the call with those already there. */
export function joined(msg) {
  state.joined = true;
  state.backToLobby = false;
  state.selfId = msg.id;
  state.role = typeof msg.role === 'string' ? msg.role : null;
  state.locked = Boolean(msg.locked);
  state.padToken = typeof msg.pad_token === 'string' ? msg.pad_token : null;
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
  }
  notify(['tiles', 'people', 'waiting', 'controls']);
}

/** Leaves the meeting's state (the socket and our camera stay). */
export function resetCall() {
  state.joined = false;
  state.sharing = false;
  state.padToken = null;
  state.connected = { publish: false, subscribe: false };
  state.names.clear();
  state.info.clear();
  state.screens.clear();
  state.remoteTracks.clear();
  state.waiting.clear();
  state.modMuted = { audio: false, video: false };
  state.pendingUnmute = null;
  state.panels = [];
  state.hands = [];
  state.myHandRaised = false;
  notify(['reset', 'stage', 'panels', 'controls', 'hands']);
}

/** `lobby`: we wait to be admitted, as a guest. */
export function enterLobby() {
  state.role = 'guest';
  notify(['controls']);
}

/** Sent back to the lobby by a kick: we knock again ourselves. */
export function setBackToLobby(on) {
  state.backToLobby = on;
}

export function setLeft() {
  state.left = true;
}

export function setConnected(transport) {
  state.connected[transport] = true;
}

// ---- Participants -----------------------------------------------------------------

export function participantJoined(msg) {
  const id = String(msg.id);
  state.names.set(id, msg.name);
  state.info.set(id, { role: msg.role ?? null, audioMuted: false, videoStopped: false, audio: true, video: true });
  notify(['tile', 'people', 'waiting', 'controls'], id);
}

export function participantLeft(rawId) {
  const id = String(rawId);
  state.names.delete(id);
  state.info.delete(id);
  state.screens.delete(id);
  for (const [trackId, x] of state.remoteTracks) if (x.publisher === id) state.remoteTracks.delete(trackId);
  // Their hand goes down with them.
  state.hands = state.hands.filter((h) => h !== id);
  notify(['tile-removed', 'stage', 'people', 'waiting', 'controls', 'hands'], id);
}

/** `media-state`: someone's own mic/camera state (display only). */
export function mediaState(msg) {
  const info = state.info.get(String(msg.id));
  if (!info) return;
  info.audio = Boolean(msg.audio);
  info.video = Boolean(msg.video);
  notify(['badges', 'people', 'waiting', 'controls'], msg.id);
}

/** `role-changed`, ours or someone else's. */
export function roleChanged(rawId, role) {
  const id = String(rawId);
  if (isSelf(id)) {
    state.role = role;
    if (role !== 'moderator') state.waiting.clear();
  } else {
    const info = state.info.get(id);
    if (info) info.role = role;
  }
  notify(['badges', 'people', 'waiting', 'controls'], id);
}

/** A moderator muted or stopped someone else's `kind` (or lifted it). */
export function participantMuted(rawId, kind, muted) {
  const info = state.info.get(String(rawId));
  if (!info) return;
  if (kind === 'audio') info.audioMuted = muted;
  if (kind === 'video') info.videoStopped = muted;
  notify(['badges', 'people', 'waiting', 'controls'], rawId);
}

export function setDominant(id) {
  state.dominant = id === null || id === undefined ? null : String(id);
  notify(['speaker'], state.dominant);
}

// ---- Room (moderators) ------------------------------------------------------------

export function setLocked(on) {
  state.locked = on;
  notify(['controls']);
}

/** A guest knocks; returns true the first time we see them. */
export function knocked(rawId, name) {
  const id = String(rawId);
  const fresh = !state.waiting.has(id);
  state.waiting.set(id, name);
  if (state.role === 'moderator') notify(['waiting', 'controls'], id);
  return fresh;
}

/** A knock was admitted or denied (by us or another moderator). */
export function knockResolved(rawId) {
  state.waiting.delete(String(rawId));
  notify(['waiting', 'controls'], rawId);
}

// ---- Media: remote tracks, screens, audio-only, layout -------------------------------

/** Publisher `publisher` sends `track`, keyed `trackKey` (see remoteTracks). */
export function trackAdded(track, publisher, trackKey) {
  const id = String(publisher);
  // One key per track object: a recycled m-line's track leaves its old key.
  const left = new Set();
  for (const [key, x] of state.remoteTracks) {
    if (x.track !== track || key === trackKey) continue;
    state.remoteTracks.delete(key);
    if (x.publisher !== id) left.add(x.publisher);
  }
  state.remoteTracks.set(trackKey, { track, publisher: id });
  for (const old of left) notify(['tracks'], old);
  notify(['tracks', 'stage'], id);
}

/** The track keyed `trackKey` is no longer received (ended, inactive or recycled m-line). */
export function trackEnded(trackKey) {
  const x = state.remoteTracks.get(trackKey);
  if (!x) return;
  state.remoteTracks.delete(trackKey);
  notify(['tracks', 'stage'], x.publisher);
}

/** `screen-share`: publisher `id` shares the track keyed `trackId` (null: stopped). */
export function screenShare(rawId, trackId) {
  const id = String(rawId);
  if (trackId) state.screens.set(id, trackId);
  else state.screens.delete(id);
  notify(['tracks', 'stage', 'people', 'waiting', 'controls'], id);
}

export function setSharing(on) {
  state.sharing = on;
  notify(['controls']);
}

export function setAudioOnly(on) {
  state.audioOnly = on;
  notify(['audio-only', 'controls']);
}

export function setTileHeight(px) {
  state.tileHeight = px ?? null;
  notify(['layout']);
}

// ---- Side panels and chat -------------------------------------------------------------

/** Panels are independent (chat and pad can be open together). */
export function openPanel(which) {
  state.panels = state.panels.filter((p) => p !== which).concat(which);
  if (which === 'chat') state.unread = 0;
  notify(['panels', 'controls']);
}

export function closePanel(which) {
  state.panels = state.panels.filter((p) => p !== which);
  notify(['panels', 'controls']);
}

/** A `chat` message: logged, and counted unread while the chat panel is closed. */
export function chatReceived(msg) {
  state.chat.push(msg);
  if (isPanelOpen('chat')) {
    notify(['chat']);
  } else {
    state.unread += 1;
    notify(['chat', 'controls']);
  }
}

// ---- Devices (layout, part B) ----------------------------------------------------------

/** A new camera ('video') or microphone ('audio') track replaces ours in the local stream. */
export function replaceLocalTrack(kind, track) {
  if (!state.local) state.local = new MediaStream();
  for (const old of kind === 'audio' ? state.local.getAudioTracks() : state.local.getVideoTracks()) {
    state.local.removeTrack(old);
  }
  state.local.addTrack(track);
  notify(['local', 'controls', 'badges'], state.selfId);
}

// ---- Gestures: raised hands and reactions ------------------------------------------

/** `hands`: the raised hands now, oldest first (after `joined` / `resumed`). */
export function setHands(ids) {
  state.hands = (Array.isArray(ids) ? ids : []).map(String);
  state.myHandRaised = state.hands.includes(String(state.selfId));
  notify(['hands', 'people', 'controls']);
}

/** `hand`: `id` raised (to the end of the list) or lowered its hand. */
export function handChanged(rawId, raised) {
  const id = String(rawId);
  const was = state.hands.includes(id);
  if (raised && !was) state.hands = [...state.hands, id];
  else if (!raised && was) state.hands = state.hands.filter((h) => h !== id);
  else return false;
  if (isSelf(id)) state.myHandRaised = raised;
  notify(['hands', 'people', 'controls'], id);
  return true;
}

/** `reaction`: `id` reacted with `emoji`. */
export function reactionReceived(rawId, emoji) {
  state.reactions.push({ id: String(rawId), emoji: String(emoji), at: Date.now() });
  if (state.reactions.length > 50) state.reactions.shift();
  notify(['reaction'], rawId);
}
