// The lobby (guests wait to be admitted, denied with a countdown before
// knocking again, or sent back by a kick) and the end pages (meeting ended,
// kicked or banned).
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

export function clearReknock() {
  if (reknockTimer) clearInterval(reknockTimer);
  reknockTimer = null;
}

/** `lobby`: waiting to be admitted, or (sent back by a kick) to knock again. */
export function showLobby(backToLobby) {
  clearReknock();
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
  $('lobby-message').textContent = t('lobby.admitted');
}

/** `denied`: the reason, and a countdown before knocking again. */
export function showDenied(msg) {
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
  if (until > Date.now()) reknockTimer = setInterval(tick, 1000);
}

/** `meeting-ended`. */
export function showEnded(msg) {
  $('ended-title').textContent = t('ended.title');
  $('ended-message').textContent =
    msg.reason === 'ended-by-moderator' ? t('ended.byModerator') : t('ended.other', { reason: String(msg.reason ?? '') });
}

/** `kicked` (or banned) out of the meeting. */
export function showKicked(ban) {
  $('ended-title').textContent = t('kicked.title');
  $('ended-message').textContent = ban ? t('kicked.ban') : t('kicked.body');
}

export function focusEnded() {
  $('ended').querySelector('a').focus();
}
