// The lobby (guests wait to be admitted, see their place in the queue, are
// denied with a countdown before knocking again, or sent back by a kick) and
// the end pages (meeting ended, kicked or banned).
import { t } from '../../i18n.js';
import { $ } from './dom.js';

let reknockTimer = null;

/** actions: { knock(), leave() }. */
export function initLobby(actions) {
  $('lobby-reknock').addEventListener('click', () => {
    actions.knock();
    $('lobby-reknock').hidden = true;
    $('lobby-countdown').textContent = '';
    $('lobby-message').textContent = t('lobby.knocked');
    $('lobby-leave').focus();
  });
  $('lobby-leave').addEventListener('click', () => actions.leave());
}

/** The line under the lobby message that gives the place in the queue. */
function positionLine() {
  let p = $('lobby-position');
  if (!p) {
    p = document.createElement('p');
    p.id = 'lobby-position';
    p.className = 'lobby-position';
    p.setAttribute('role', 'status');
    $('lobby-message').after(p);
  }
  return p;
}

/** `lobby-position`: our place in the queue (1: next in). */
export function showPosition(msg) {
  const position = Number(msg.position);
  const waiting = Number(msg.waiting);
  if (!Number.isInteger(position) || position < 1) return;
  const line = positionLine();
  line.textContent =
    position === 1 ? t('lobby.positionNext', { waiting }) : t('lobby.position', { position, waiting });
  line.dataset.position = String(position);
  line.dataset.waiting = String(waiting);
}

function clearPosition() {
  const p = $('lobby-position');
  if (!p) return;
  p.textContent = '';
  delete p.dataset.position;
  delete p.dataset.waiting;
}

export function clearReknock() {
  if (reknockTimer) clearInterval(reknockTimer);
  reknockTimer = null;
}

/** `lobby`: waiting to be admitted, or (sent back by a kick) to knock again. */
export function showLobby(backToLobby) {
  clearReknock();
  clearPosition();
  $('lobby-countdown').textContent = '';
  if (backToLobby) {
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

export function showAdmitted() {
  clearPosition();
  $('lobby-message').textContent = t('lobby.admitted');
}

// The server's own wording of a plain deny (English): shown translated.
const PLAIN_DENY = new Set(['a moderator refused your entry', 'refused by a moderator a moment ago']);
// Several guests from our network were refused: not us (hub/lobby.rs DENIED_NETWORK).
const NETWORK_DENY = 'several guests from your network were refused a moment ago';

/** `denied`: the reason, and a countdown before knocking again. */
export function showDenied(msg) {
  clearPosition();
  const reason = typeof msg.reason === 'string' ? msg.reason.trim() : '';
  $('lobby-message').textContent =
    reason === NETWORK_DENY
      ? t('lobby.deniedNetwork')
      : reason && !PLAIN_DENY.has(reason)
        ? t('lobby.denied', { reason })
        : t('lobby.deniedPlain');
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
  if (until > Date.now()) reknockTimer = setInterval(tick, 1000);
}

/** `meeting-ended`. */
export function showEnded(msg) {
  $('ended-title').textContent = t('ended.title');
  $('ended-message').textContent =
    msg.reason === 'ended-by-moderator'
      ? t('ended.byModerator')
      : msg.reason === 'room-empty'
        ? t('ended.empty')
        : t('ended.other', { reason: String(msg.reason ?? '') });
}

/** `kicked` (or banned) out of the meeting. */
export function showKicked(ban) {
  $('ended-title').textContent = t('kicked.title');
  $('ended-message').textContent = ban ? t('kicked.ban') : t('kicked.body');
}

export function focusEnded() {
  $('ended').querySelector('a').focus();
}
