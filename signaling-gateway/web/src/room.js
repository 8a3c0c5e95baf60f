// The room page: pre-join (name, devices, preview), lobby (waiting room),
// publish/subscribe transports (camera in simulcast), tiles with speaker
// highlight and the layer each tile needs, screen-share stage, participants
// with roles and moderation, chat, pad, audio-only, invitation link, leave.
// Bundled by esbuild (web/build.mjs) into web/dist/room.js.
//
// This entry wires the parts together and handles the signaling messages:
//   store.js     the state, changed only through its named updates, which notify subscribers
//   session.js   the WebRTC session (both transports, simulcast, screen share); stats.js its stats
//   views/       DOM rendering from the store, and the controls that call back here
//   reconnect.js the resume token (sessionStorage, per room) and the retry schedule
import { applyI18n, t, has } from '../i18n.js';
import { Signaling } from '../signaling.js';
import {
  store,
  selfInfo,
  isSelf,
  localTrack,
  setPhase,
  setStatus,
  setError,
  dropLocalVideo,
  stopLocalMedia,
  setLocalEnabled,
  setPendingUnmute,
  selfMuted,
  setSelfName,
  joined,
  resetCall,
  enterLobby,
  setBackToLobby,
  setLeft,
  setConnected,
  participantJoined,
  participantLeft,
  mediaState,
  roleChanged,
  participantMuted,
  setDominant,
  setLocked,
  knocked,
  knockResolved,
  trackAdded,
  trackEnded,
  screenShare,
  setSharing,
  setAudioOnly,
  setTileHeight,
  chatReceived,
  isPanelOpen,
  setHands,
  handChanged,
  reactionReceived,
} from './store.js';
import { Session } from './session.js';
import { subscribeStats, allInboundBytes, screenStats, inboundVideo, publishEncodings } from './stats.js';
import { announce, displayName, roleName } from './views/dom.js';
import { initPage } from './views/page.js';
import { initLayers } from './views/layers.js';
import { initTiles, startLevelMeter, stageTrackId } from './views/tiles.js';
import { initPrejoin, whenPreviewReady, joinFailed, joinPending } from './views/prejoin.js';
import { initToolbar, openPanel, closePanel, focusMic } from './views/toolbar.js';
import { initPeople, resolveKnock } from './views/people.js';
import { initChat, setRecipient } from './views/chat.js';
import { initPadPanel, openPad, destroyPad, padText, padSynced, exportText } from './views/padpanel.js';
import { initLobby, clearReknock, showLobby, showAdmitted, showDenied, showEnded, showKicked, focusEnded, showPosition } from './views/lobby.js';
import { announceReaction, announced } from './views/announce.js';
import { initGestures } from './views/gestures.js';
import { initLobbyAlert, knockAlert, alertCounts } from './views/lobbyalert.js';
import { initShortcuts } from './views/shortcuts.js';
import { initReconnecting, markReconnecting, reconnectingIds } from './views/reconnecting.js';
import { saveResume, loadResume, forgetResume, saveLobby, loadLobby, forgetLobby, backoffMs, RETRY_FOR_MS } from './reconnect.js';
// layout (part B)
import { initDevices } from './views/devices.js';
import { initSettings } from './views/settings.js';

// The access token (`#jwt=`, which never leaves the browser, or `?jwt=` as
// Jitsi, which reaches the server's and proxies' logs) is read once, kept in
// memory only and dropped from the address bar (and so from history,
// bookmarks and the language link) before anything else reads the URL.
const jwt = (() => {
  const q = new URLSearchParams(location.search);
  const h = new URLSearchParams(location.hash.slice(1));
  const inHash = h.has('jwt');
  const token = inHash ? h.get('jwt') : q.get('jwt');
  if (token === null) return null;
  q.delete('jwt');
  h.delete('jwt');
  const rest = q.toString();
  const frag = inHash ? (h.toString() ? '#' + h.toString() : '') : location.hash;
  history.replaceState(history.state, '', location.pathname + (rest ? '?' + rest : '') + frag);
  return token || null;
})();

applyI18n();
const room = decodeURIComponent(location.pathname.slice(1));

let sig = null; // the signaling socket of the current join
// The gateway's close code for a socket whose place another page resumed.
const CLOSE_REPLACED = 4001;
// The server closes a socket that did not get in (joined, resumed or in a
// lobby) within 10 s: after a refused join, the form and its error stay;
// the next join opens a new socket (docs/signaling.md, "Connection bounds").
const CLOSE_JOIN_TIMEOUT = 4002;
// While the socket is down and we try to get back in: { since, attempt, media,
// timer, fresh }; `fresh`: the server no longer knows our place (it restarted,
// or the grace period passed) and we join again as a new participant.
let retry = null;

const session = new Session({
  send: (msg) => sig?.send(msg),
  onTrack: (track, publisher, trackKey) => trackAdded(track, publisher, trackKey),
  onTrackGone: (trackKey) => trackEnded(trackKey),
  onError: (e) => setError(t('error.webrtc', { message: e.message })),
  onFailed: () => transportFailed(),
});

// Test hook for the end-to-end harness (tests/e2e).
window.salonTest = {
  id: null,
  room,
  ready: false,
  stats: () => subscribeStats(session),
  inboundBytes: () => allInboundBytes(session),
  screenStats: () => screenStats(session, stageTrackId()),
  pcs: () => ({ pub: session.pub, sub: session.sub }),
  padText: () => padText(),
  padExport: (kind) => exportText(kind),
  padSynced: () => padSynced(),
  openPad: () => openPad(),
  chat: (text, to) => sendChat(text, to),
  shareScreen: () => startShare(),
  // Publishes `track` through the screen-share path instead of asking
  // getDisplayMedia: headless Firefox cannot fake a screen, so its tests
  // share a canvas captureStream() track this way.
  shareTrack: (track) => startShare(track),
  stopShare: () => stopShare(),
  leaveNow: () => leave(),
  // Closes the signaling socket without `leave` (a network blink).
  dropSignaling: () => sig?.ws?.close(4000, 'test'),
  resumeToken: () => loadResume(room)?.token ?? null,
  lobbyToken: () => loadLobby(room)?.token ?? null,
  // Our place in the lobby's queue as shown ({ position, waiting, text }), or null.
  lobbyPosition: () => {
    const p = document.getElementById('lobby-position');
    if (!p?.dataset.position) return null;
    return { position: Number(p.dataset.position), waiting: Number(p.dataset.waiting), text: p.textContent };
  },
  reconnecting: () => reconnectingIds(),
  status: () => store.status,
  exports: [],
  phase: () => store.phase,
  role: () => store.role,
  waiting: () => [...store.waiting].map(([id, name]) => ({ id, name })),
  inboundVideo: () => inboundVideo(session),
  publishEncodings: () => publishEncodings(session),
  constraintsSent: () => session.constraintsLog.slice(),
  setTileHeight: (px) => setTileHeight(px),
  // Gestures (part A of issue 16).
  raiseHand: () => raiseHand(),
  react: (emoji) => react(emoji),
  hands: () => store.hands.slice(),
  myHandRaised: () => store.myHandRaised,
  reactionsSeen: () => store.reactions.map(({ id, emoji }) => ({ id, emoji })),
  announced: () => announced(),
  alerts: () => alertCounts(),
  jwtInUrl: () =>
    new URLSearchParams(location.search).has('jwt') || new URLSearchParams(location.hash.slice(1)).has('jwt'),
  // Join without a camera (receivers in load-sensitive tests).
  withoutCamera: async () => {
    await whenPreviewReady();
    dropLocalVideo();
  },
};

initPage(room);
initLayers(session);
initTiles(session);
initDevices(session); // layout (part B)
initSettings(); // layout (part B)
initPrejoin({ join });
initToolbar({
  toggleLocal,
  toggleShare: () => (session.screen ? stopShare() : startShare()),
  setAudioOnly: setAudioOnlyMode,
  leave,
  moderate,
  raiseHand,
  react,
});
initPeople({
  moderate,
  privateMessage: (id) => {
    openPanel('chat');
    setRecipient(id);
  },
  lowerHand,
});
initGestures();
initLobbyAlert({ resolveKnock, showWaiting });
initShortcuts({
  toggleLocal,
  raiseHand,
  togglePanel: (p) => (isPanelOpen(p) ? closePanel(p) : openPanel(p)),
});
initChat({ sendChat });
initPadPanel(room);
initReconnecting();
initLobby({
  knock: () => {
    sig?.send({ type: 'knock' });
    setBackToLobby(false);
  },
  leave,
});

function errorText(msg) {
  // The wording of a guest's join to a room with no meeting (the hub's,
  // and the shipped policy's): shown translated.
  if (msg.code === 'denied' && String(msg.message ?? '').startsWith('this room does not exist yet')) return t('error.no-meeting');
  const key = 'error.' + msg.code;
  return has(key) ? t(key, { message: msg.message }) : t('error.generic', { message: msg.message });
}

// ---- Our microphone and camera -----------------------------------------------------

/** Tells the room our own mic/camera state (display only). */
function sendMediaState() {
  if (!store.joined) return;
  const s = selfInfo();
  sig?.send({ type: 'media-state', audio: s.audio, video: s.video });
}

function toggleLocal(kind) {
  const track = localTrack(kind);
  if (!track) return;
  if (!track.enabled && store.modMuted[kind] && store.joined) {
    // A moderator muted us: the server must resume forwarding first; the
    // track comes back on with `unmuted` (or an error says why not).
    setPendingUnmute(kind);
    sig?.send({ type: 'unmute', kind });
    return;
  }
  setLocalEnabled(kind, !track.enabled);
  sendMediaState();
}

function setAudioOnlyMode(on) {
  setAudioOnly(on);
  session.setAudioOnly(on);
  sig?.send({ type: 'audio-only', on });
}

// ---- Screen sharing ------------------------------------------------------------------

/** Shares the screen (or `given`, a video track: salonTest.shareTrack). */
async function startShare(given = null) {
  if (session.screen || !store.joined) return;
  let stream;
  try {
    stream = given ? new MediaStream([given]) : await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) {
    setError(t('share.failed', { message: e.message }));
    return;
  }
  const track = stream.getVideoTracks()[0];
  track.contentHint = 'detail';
  const shared = session.shareScreen(track, stream);
  track.addEventListener('ended', () => stopShare());
  setSharing(true);
  const mid = await shared;
  if (mid !== null) sig.send({ type: 'screen', mid });
}

async function stopShare() {
  const share = session.takeScreen();
  if (!share) return;
  sig?.send({ type: 'screen', mid: null });
  await session.stopScreen(share);
  setSharing(false);
  if (session.publishOpen) await session.negotiatePublish();
}

// ---- Chat and moderation -------------------------------------------------------------

function sendChat(text, to) {
  if (!sig) return;
  const msg = { type: 'chat', text };
  if (to !== undefined && to !== null && to !== '') msg.to = Number(to);
  sig.send(msg);
}

/** A moderation request; the server checks our role and answers with an error if not allowed. */
function moderate(msg) {
  sig?.send(msg);
}

// ---- Gestures: hand and reactions (docs/signaling.md) --------------------------------

/** Raises our hand, or lowers it; the server's `hand` changes what we show. */
function raiseHand() {
  if (!store.joined) return;
  sig?.send({ type: 'hand', raised: !store.myHandRaised });
}

/** Lowers `id`'s hand (ours, or anyone's for a moderator: the server checks). */
function lowerHand(id) {
  sig?.send({ type: 'lower-hand', id: Number(id) });
}

function react(emoji) {
  if (!store.joined) return;
  sig?.send({ type: 'react', emoji });
}

/** Opens the waiting list (a toast's "show all", a notification). */
function showWaiting() {
  if (!isPanelOpen('people')) openPanel('people');
  document.querySelector('#waiting button')?.focus();
}

function onHand(msg) {
  const id = String(msg.id);
  const raised = Boolean(msg.raised);
  if (!handChanged(id, raised)) return;
  const by = msg.by === undefined || msg.by === null ? null : String(msg.by);
  if (isSelf(id)) {
    if (by && !isSelf(by)) announce(t('hand.loweredYou', { name: displayName(by) }));
    else announce(t(raised ? 'hand.youRaised' : 'hand.youLowered'));
  } else if (raised) {
    announce(t('hand.raisedBy', { name: displayName(id), n: store.hands.length }));
  } else if (by && isSelf(by)) {
    announce(t('hand.youLoweredOf', { name: displayName(id) }));
  }
}

// ---- Signaling -------------------------------------------------------------------------

function join(name) {
  setStatus('connecting');
  setSelfName(name);
  forgetResume(room);
  openSignaling(joinMessage);
}

/** A `join` under our name (and the page's token, and our lobby token, if any). */
function joinMessage() {
  const msg = { type: 'join', room, name: store.selfName };
  if (jwt) msg.jwt = jwt;
  const lobby = loadLobby(room);
  if (lobby) msg.lobby_token = lobby.token;
  return msg;
}

/** A new signaling socket whose first message is `first()`. */
function openSignaling(first) {
  // A refused join leaves the socket usable, but a fresh one is simplest.
  if (sig) sig.close();
  const s = new Signaling();
  sig = s;
  s.on('open', () => s.send(first()));
  s.on('close', (ev) => {
    if (sig !== s) return;
    window.salonTest.ready = false;
    if (ev?.code === CLOSE_REPLACED) {
      // Our place was resumed by another page (a duplicated tab): it is theirs.
      placeLost(store.phase === 'lobby' ? 'error.replaced-lobby' : 'error.replaced');
      return;
    }
    if (ev?.code === CLOSE_JOIN_TIMEOUT && !store.joined && !retry) return;
    if (!retry && !store.left && store.phase === 'lobby' && loadLobby(room)) {
      // Waiting in the lobby: join again with our lobby token, which keeps
      // our place in the queue within the grace period.
      retry = { since: Date.now(), attempt: 0, media: 'new', timer: null, fresh: true };
      socketLost();
      return;
    }
    if (retry || (store.joined && !store.left && store.phase === 'call')) {
      socketLost();
      return;
    }
    if (!store.left && store.phase !== 'ended' && store.phase !== 'kicked') setStatus('disconnected');
  });
  s.on('joined', (msg) => {
    if (retry?.fresh) rejoined();
    forgetLobby(room);
    saveResume(room, msg.resume_token, store.selfName);
    onJoined(msg);
    markRosterReconnecting(msg);
  });
  s.on('resumed', (msg) => onResumed(msg));
  s.on('participant-reconnecting', (msg) => {
    markReconnecting(msg.id, true);
    announce(t('notice.reconnecting', { name: displayName(String(msg.id)) }));
  });
  s.on('participant-resumed', (msg) => {
    markReconnecting(msg.id, false);
    announce(t('notice.back', { name: displayName(String(msg.id)) }));
  });
  s.on('lobby', (msg) => {
    if (retry?.fresh) rejoined();
    saveLobby(room, msg.lobby_token, store.selfName);
    onLobby();
  });
  s.on('admitted', () => showAdmitted());
  s.on('denied', (msg) => {
    setPhase('lobby');
    showDenied(msg);
  });
  s.on('meeting-ended', (msg) => onMeetingEnded(msg));
  s.on('kicked', (msg) => onKicked(msg));
  s.on('knock', (msg) => {
    const id = String(msg.id);
    const name = typeof msg.name === 'string' ? msg.name : t('call.unknown', { id });
    const fresh = knocked(id, name);
    if (store.role === 'moderator' && fresh) {
      announce(t('waiting.knock', { name }));
      knockAlert(name);
    }
  });
  s.on('lobby-position', (msg) => showPosition(msg));
  s.on('hand', (msg) => onHand(msg));
  s.on('hands', (msg) => setHands(msg.ids));
  s.on('reaction', (msg) => {
    reactionReceived(msg.id, msg.emoji);
    if (!isSelf(msg.id)) announceReaction(displayName(String(msg.id)), String(msg.emoji));
  });
  s.on('knock-resolved', (msg) => knockResolved(msg.id));
  s.on('role-changed', (msg) => onRoleChanged(msg));
  s.on('room-locked', (msg) => {
    setLocked(Boolean(msg.on));
    announce(t(store.locked ? 'notice.locked' : 'notice.unlocked'));
  });
  s.on('muted', (msg) => onMuted(msg, true));
  s.on('unmuted', (msg) => onMuted(msg, false));
  s.on('media-state', (msg) => mediaState(msg));
  s.on('layers-wanted', (msg) => session.applyLayersWanted(msg));
  s.on('participant-joined', (msg) => {
    participantJoined(msg);
    announce(t('notice.joined', { name: displayName(String(msg.id)) }));
  });
  s.on('participant-left', (msg) => {
    const name = store.names.has(String(msg.id)) ? displayName(String(msg.id)) : null;
    markReconnecting(msg.id, false);
    participantLeft(msg.id);
    if (name) announce(t('notice.left', { name }));
  });
  s.on('ice-servers', (msg) => session.setIceServers(msg.ice_servers));
  s.on('publish-answer', (msg) => session.publishAnswer(msg.sdp));
  s.on('subscribe-offer', (msg) => session.subscribeOffer(msg.sdp));
  s.on('connected', (msg) => {
    setConnected(msg.transport);
    if (store.connected.publish || store.connected.subscribe) setStatus('media');
  });
  s.on('chat', (msg) => {
    const closed = !isPanelOpen('chat');
    chatReceived(msg);
    if (closed && !isSelf(msg.from) && typeof msg.text === 'string') {
      const text = msg.text.length > 140 ? msg.text.slice(0, 140) + '…' : msg.text;
      announce(t(msg.to === undefined ? 'notice.chat' : 'notice.chatPrivate', { name: String(msg.name ?? ''), text }));
    }
  });
  s.on('screen-share', (msg) => screenShare(String(msg.id), msg.track_id ?? null));
  s.on('dominant-speaker', (msg) => setDominant(msg.id));
  s.on('error', (msg) => onError(msg));
  s.connect();
}

// ---- Reconnect (docs/signaling.md) ---------------------------------------------------

/** The socket dropped while we were in the meeting (or resuming, or joining
 * again): try again with backoff. */
function socketLost() {
  const saved = loadResume(room);
  if (!saved && !retry?.fresh) {
    retry = null;
    setStatus('disconnected');
    return;
  }
  if (!retry) retry = { since: Date.now(), attempt: 0, media: 'kept', timer: null, fresh: false };
  if (Date.now() - retry.since > RETRY_FOR_MS) {
    if (retry.fresh) placeLost('error.rejoin-failed');
    else resumeFailed();
    return;
  }
  // A blink in the lobby is not a server restart.
  setStatus(retry.fresh && store.phase !== 'lobby' ? 'rejoining' : 'reconnecting');
  const { media, fresh } = retry;
  retry.timer = setTimeout(() => {
    if (retry) retry.timer = null;
    openSignaling(fresh ? joinMessage : () => ({ type: 'resume', token: loadResume(room)?.token ?? '', media }));
  }, backoffMs(retry.attempt++));
}

/** The server refused our resume token: it no longer knows our place (it was
 * restarted by its supervisor, or the grace period passed). Join again as a
 * new participant, by ourselves, keeping camera and microphone: with the
 * page's token we are back in at once; a guest is back in the lobby, knocking
 * (docs/client.md, "Reconnect"). */
function rejoinFresh() {
  if (retry?.timer) clearTimeout(retry.timer);
  forgetResume(room);
  if (store.joined) teardownCall();
  retry = { since: Date.now(), attempt: 0, media: 'new', timer: null, fresh: true };
  setStatus('rejoining');
  announce(t('notice.rejoining'));
  openSignaling(joinMessage);
}

/** Joined again after `rejoinFresh` (in the meeting or its lobby). */
function rejoined() {
  if (retry?.timer) clearTimeout(retry.timer);
  retry = null;
  announce(t('notice.rejoined'));
}

/** Media restarts after failed transports, to give up on a network that
 * never carries media (no UDP, no TCP, no TURN): at most this many in
 * `TRANSPORT_RESTARTS_WINDOW_MS`. */
const TRANSPORT_RESTARTS = 3;
const TRANSPORT_RESTARTS_WINDOW_MS = 180_000;
let transportRestarts = [];

/** A media transport failed while our socket lives (the network changed
 * under the page: IPv4 gone, IPv6 there; UDP blocked mid-call): take our
 * place back with new transports, as a reload does, without the reload
 * (docs/client.md, "Reconnect"). */
function transportFailed() {
  const now = Date.now();
  transportRestarts = transportRestarts.filter((t) => now - t < TRANSPORT_RESTARTS_WINDOW_MS);
  if (!store.joined || store.left || store.phase !== 'call' || retry || !loadResume(room) || transportRestarts.length >= TRANSPORT_RESTARTS) {
    if (store.phase === 'call' && !store.left) setStatus('disconnected');
    return;
  }
  transportRestarts.push(now);
  teardownCall();
  retry = { since: now, attempt: 0, media: 'new', timer: null, fresh: false };
  setStatus('reconnecting');
  announce(t('notice.reconnecting-media'));
  openSignaling(() => ({ type: 'resume', token: loadResume(room)?.token ?? '', media: 'new' }));
}

/** A reload within the grace period: resume with a new page's media. */
async function resumeAfterReload(saved) {
  setSelfName(saved.name);
  setStatus('reconnecting');
  joinPending();
  await whenPreviewReady();
  retry = { since: Date.now(), attempt: 0, media: 'new', timer: null, fresh: false };
  openSignaling(() => ({ type: 'resume', token: loadResume(room)?.token ?? '', media: 'new' }));
}

/** A reload while waiting in the lobby: join again with our lobby token
 * (the same place in the queue within the grace period). */
async function knockAfterReload(saved) {
  setSelfName(saved.name);
  setStatus('connecting');
  joinPending();
  await whenPreviewReady();
  openSignaling(joinMessage);
}

async function onResumed(msg) {
  if (retry?.timer) clearTimeout(retry.timer);
  retry = null;
  // In the meeting (a guest admitted while its page was away resumes it):
  // the lobby token is done with.
  forgetLobby(room);
  saveResume(room, msg.resume_token, store.selfName);
  if (msg.media === 'new' || !store.joined) {
    // A new page: the same id and role, fresh transports.
    const call = onJoined(msg);
    markRosterReconnecting(msg);
    await call;
    if (msg.audio_muted) selfMuted('audio', true);
    if (msg.video_stopped) selfMuted('video', true);
    if (msg.audio_only) setAudioOnlyMode(true);
    announce(t('notice.resumed'));
    return;
  }
  // The page kept its peer connections: fresh TURN credentials for them,
  // and catch up with the roster.
  session.setIceServers(msg.ice_servers);
  const present = new Set(msg.participants.map((p) => String(p.id)));
  for (const id of [...store.names.keys()]) {
    if (!present.has(id)) {
      markReconnecting(id, false);
      participantLeft(id);
    }
  }
  for (const p of msg.participants) {
    const id = String(p.id);
    if (!store.names.has(id)) participantJoined(p);
    else if (store.info.get(id)?.role !== p.role) roleChanged(id, p.role);
    markReconnecting(id, Boolean(p.reconnecting));
  }
  if (msg.role !== store.role) roleChanged(store.selfId, msg.role);
  setLocked(Boolean(msg.locked));
  // The pad socket may have dropped with the network: the same token opens it again.
  if (isPanelOpen('pad')) openPad();
  setError('');
  setStatus(store.connected.publish || store.connected.subscribe ? 'media' : 'joined');
  announce(t('notice.resumed'));
  window.salonTest.ready = true;
}

/** Marks the participants of a `joined` / `resumed` roster whose socket is down. */
function markRosterReconnecting(msg) {
  for (const p of msg.participants ?? []) if (p.reconnecting) markReconnecting(p.id, true);
}

/** Our place is gone (refused token, or the grace period passed): join
 * again by ourselves if we have a name to join under, else by hand. */
function resumeFailed() {
  if (store.selfName && !store.left) {
    rejoinFresh();
    return;
  }
  placeLost('error.resume-failed');
}

/** Back to the join form with `errorKey`; our place in the meeting is not ours any more. */
function placeLost(errorKey) {
  placeLostWith(t(errorKey));
}

/** As `placeLost`, with the error's text. */
function placeLostWith(text) {
  if (retry?.timer) clearTimeout(retry.timer);
  retry = null;
  forgetResume(room);
  forgetLobby(room);
  sig?.close();
  sig = null;
  if (store.joined) teardownCall();
  setPhase('prejoin');
  setStatus('disconnected');
  joinFailed();
  setError(text);
}

function onError(msg) {
  if (msg.code === 'resume-failed') {
    resumeFailed();
    return;
  }
  if (retry?.fresh && store.phase === 'lobby') {
    // Our join again from the lobby (after a network blink) was refused:
    // the meeting is gone, or the room locked or full. Our place is lost;
    // say why, on the join form.
    placeLostWith(errorText(msg));
    return;
  }
  if (msg.code === 'too-many-reactions') {
    // A reaction over the limit was not sent: nothing to tell.
    return;
  }
  if (msg.code === 'unknown-type') {
    // An older gateway without an optional message (media-state,
    // video-constraints): nothing the user can act on.
    console.warn('server does not know a message type', msg.message);
    return;
  }
  if (msg.code === 'forbidden' && store.pendingUnmute) {
    setPendingUnmute(null);
    setError(t('error.unmute-forbidden'));
    return;
  }
  setError(errorText(msg));
  if (store.phase === 'prejoin') joinFailed();
}

async function onJoined(msg) {
  clearReknock();
  if (store.joined) teardownCall();
  setError('');
  window.salonTest.id = msg.id;
  setPhase('call');
  setStatus('joined');
  joined(msg);
  focusMic();

  session.setIceServers(msg.ice_servers);
  session.open();
  window.salonTest.ready = true;
  startLevelMeter();
  // Everyone starts shown with mic and camera on: say so only if not.
  const me = selfInfo();
  if (!me.audio || !me.video) sendMediaState();
  if (store.local && store.local.getTracks().length > 0) await session.publish(store.local);
}

/** Leaves the meeting's media and UI state, keeping the socket and our camera. */
function teardownCall() {
  window.salonTest.ready = false;
  session.close();
  destroyPad();
  resetCall();
}

// ---- Lobby and the end of the meeting ----------------------------------------------

function onLobby() {
  if (store.joined) teardownCall();
  enterLobby();
  setPhase('lobby');
  setStatus('lobby');
  showLobby(store.backToLobby);
}

function onMeetingEnded(msg) {
  forgetResume(room);
  forgetLobby(room);
  clearReknock();
  teardownCall();
  stopLocalMedia();
  setPhase('ended');
  showEnded(msg);
  setStatus('ended');
  sig?.close();
  focusEnded();
}

function onKicked(msg) {
  forgetResume(room);
  if (store.role === 'guest' && !msg.ban) {
    // The server puts us back in its lobby (`lobby` follows).
    setBackToLobby(true);
    teardownCall();
    return;
  }
  teardownCall();
  stopLocalMedia();
  setPhase('kicked');
  showKicked(msg.ban);
  setStatus('kicked');
  sig?.close();
  focusEnded();
}

function leave() {
  if (retry) clearTimeout(retry.timer);
  retry = null;
  if (store.joined && sig?.ws?.readyState !== WebSocket.OPEN) {
    // Our socket is down: take the place back only to give it up, so the
    // others see us leave now rather than at the end of the grace period.
    const token = loadResume(room)?.token;
    if (token) {
      const s = new Signaling();
      s.on('open', () => {
        s.send({ type: 'resume', token, media: 'kept' });
        s.send({ type: 'leave' });
        s.close();
      });
      s.connect();
    }
  }
  forgetResume(room);
  forgetLobby(room);
  setLeft();
  window.salonTest.ready = false;
  destroyPad();
  if (sig) {
    sig.send({ type: 'leave' });
    sig.close();
  }
  session.leave();
  stopLocalMedia();
  clearReknock();
  setPhase('left');
  setStatus('left');
}

// ---- Roles and moderation notices -------------------------------------------------

function onRoleChanged(msg) {
  const id = String(msg.id);
  const role = String(msg.role);
  if (isSelf(id)) announce(t('notice.youRole', { role: roleName(role) }));
  else announce(t('notice.role', { name: displayName(id), role: roleName(role) }));
  roleChanged(id, role);
}

function onMuted(msg, muted) {
  const id = String(msg.id);
  const kind = msg.kind;
  if (isSelf(id)) {
    if (kind === 'audio' || kind === 'video') {
      const unmuted = selfMuted(kind, muted);
      if (muted) announce(t(kind === 'audio' ? 'notice.mutedYou' : 'notice.stoppedVideo'));
      else if (unmuted) setError('');
      sendMediaState();
    } else if (kind === 'screen' && muted) {
      announce(t('notice.stoppedScreen'));
      stopShare();
    }
    return;
  }
  if (!store.info.has(id)) return;
  participantMuted(id, kind, muted);
  if (muted && kind === 'audio') announce(t('notice.muted', { name: displayName(id) }));
}

// A reload (or a restored tab) within the grace period takes our place back:
// in the meeting, or in the lobby's queue.
const savedPlace = loadResume(room);
const savedLobby = savedPlace ? null : loadLobby(room);
if (savedPlace) resumeAfterReload(savedPlace);
else if (savedLobby) knockAfterReload(savedLobby);
