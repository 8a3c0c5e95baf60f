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
} from './store.js';
import { Session } from './session.js';
import { subscribeStats, allInboundBytes, screenStats, inboundVideo, publishEncodings } from './stats.js';
import { announce, displayName, roleName } from './views/dom.js';
import { initPage } from './views/page.js';
import { initLayers } from './views/layers.js';
import { initTiles, startLevelMeter, stageTrackId } from './views/tiles.js';
import { initPrejoin, whenPreviewReady, joinFailed } from './views/prejoin.js';
import { initToolbar, openPanel, focusMic } from './views/toolbar.js';
import { initPeople } from './views/people.js';
import { initChat, setRecipient } from './views/chat.js';
import { initPadPanel, openPad, destroyPad, padText, padSynced, exportText } from './views/padpanel.js';
import { initLobby, clearReknock, showLobby, showAdmitted, showDenied, showEnded, showKicked, focusEnded } from './views/lobby.js';

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

applyI18n();
const room = decodeURIComponent(location.pathname.slice(1));

let sig = null; // the signaling socket of the current join

const session = new Session({
  send: (msg) => sig?.send(msg),
  onTrack: (track, publisher, trackKey) => trackAdded(track, publisher, trackKey),
  onTrackGone: (trackKey) => trackEnded(trackKey),
  onError: (e) => setError(t('error.webrtc', { message: e.message })),
  onFailed: () => setStatus('disconnected'),
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
  exports: [],
  phase: () => store.phase,
  role: () => store.role,
  waiting: () => [...store.waiting].map(([id, name]) => ({ id, name })),
  inboundVideo: () => inboundVideo(session),
  publishEncodings: () => publishEncodings(session),
  constraintsSent: () => session.constraintsLog.slice(),
  setTileHeight: (px) => setTileHeight(px),
  jwtInUrl: () => new URLSearchParams(location.search).has('jwt'),
  // Join without a camera (receivers in load-sensitive tests).
  withoutCamera: async () => {
    await whenPreviewReady();
    dropLocalVideo();
  },
};

initPage(room);
initLayers(session);
initTiles(session);
initPrejoin({ join });
initToolbar({
  toggleLocal,
  toggleShare: () => (session.screen ? stopShare() : startShare()),
  setAudioOnly: setAudioOnlyMode,
  leave,
  moderate,
});
initPeople({
  moderate,
  privateMessage: (id) => {
    openPanel('chat');
    setRecipient(id);
  },
});
initChat({ sendChat });
initPadPanel(room);
initLobby({
  knock: () => {
    sig?.send({ type: 'knock' });
    setBackToLobby(false);
  },
  leave,
});

function errorText(msg) {
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

// ---- Signaling -------------------------------------------------------------------------

function join(name) {
  setStatus('connecting');
  setSelfName(name);
  // A refused join leaves the socket usable, but a fresh one is simplest.
  if (sig) sig.close();
  const s = new Signaling();
  sig = s;
  s.on('open', () => {
    const msg = { type: 'join', room, name };
    if (jwt) msg.jwt = jwt;
    s.send(msg);
  });
  s.on('close', () => {
    if (sig !== s) return;
    if (!store.left && store.phase !== 'ended' && store.phase !== 'kicked') setStatus('disconnected');
    window.salonTest.ready = false;
  });
  s.on('joined', (msg) => onJoined(msg));
  s.on('lobby', () => onLobby());
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
    if (store.role === 'moderator' && fresh) announce(t('waiting.knock', { name }));
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
  s.on('participant-joined', (msg) => participantJoined(msg));
  s.on('participant-left', (msg) => participantLeft(msg.id));
  s.on('publish-answer', (msg) => session.publishAnswer(msg.sdp));
  s.on('subscribe-offer', (msg) => session.subscribeOffer(msg.sdp));
  s.on('connected', (msg) => {
    setConnected(msg.transport);
    if (store.connected.publish || store.connected.subscribe) setStatus('media');
  });
  s.on('chat', (msg) => chatReceived(msg));
  s.on('screen-share', (msg) => screenShare(String(msg.id), msg.track_id ?? null));
  s.on('dominant-speaker', (msg) => setDominant(msg.id));
  s.on('error', (msg) => onError(msg));
  s.connect();
}

function onError(msg) {
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
