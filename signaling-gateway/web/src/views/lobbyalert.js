// What tells a moderator that someone knocks, besides the waiting list: a
// short chime (WebAudio, no asset), a desktop notification (only if the
// moderator granted it; asked from a click, when they first open the
// participants list or the waiting badge, never at page load), the count in
// the page title ("(1) room · Salon"), and a toast per waiting guest with
// Admit / Deny buttons. Toasts never take the focus (the knock is announced
// by the live region instead); past three, the rest are summed in one toast
// that opens the waiting list.
import { t } from '../../i18n.js';
import { store, subscribe } from '../store.js';
import { $ } from './dom.js';

// Toasts shown one per guest; the others are summed.
const MAX_TOASTS = 3;
// At most one chime per this interval (a crowd knocking is one sound).
const CHIME_EVERY_MS = 2000;

let actions = null;
let audio = null;
let lastChime = 0;
let chimes = 0;
let notifications = 0;

/** actions: { resolveKnock(id, admit), showWaiting() }. */
export function initLobbyAlert(a) {
  actions = a;
  subscribe(({ what }) => {
    if (what.has('waiting') || what.has('controls') || what.has('reset') || what.has('phase')) {
      renderToasts();
      renderTitle();
    }
  });
  // A click is the user gesture a permission request needs.
  for (const id of ['toggle-people', 'lobby-badge']) $(id)?.addEventListener('click', askPermission);
}

/** A guest knocks (the first time we see them): chime and notification. */
export function knockAlert(name) {
  if (store.role !== 'moderator') return;
  chime();
  notifyDesktop(name);
}

/** Test hook: { chimes, notifications } so far. */
export function alertCounts() {
  return { chimes, notifications };
}

function askPermission() {
  if (store.role !== 'moderator' || !('Notification' in window)) return;
  if (Notification.permission === 'default') Notification.requestPermission().catch(() => {});
}

function notifyDesktop(name) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  // The toast does the job while the page is in front.
  if (document.visibilityState === 'visible' && document.hasFocus()) return;
  try {
    const n = new Notification(t('knock.notifyTitle', { room: $('room-name')?.textContent ?? '' }), {
      body: t('waiting.knock', { name }),
      tag: 'salon-knock',
    });
    n.onclick = () => {
      window.focus();
      actions.showWaiting();
    };
    notifications += 1;
  } catch {
    // Some browsers allow notifications only from a service worker.
  }
}

/** Two short soft tones, made on the spot. */
function chime() {
  const now = Date.now();
  if (now - lastChime < CHIME_EVERY_MS) return;
  lastChime = now;
  try {
    audio ??= new AudioContext();
    if (audio.state === 'suspended') audio.resume().catch(() => {});
    const start = audio.currentTime + 0.02;
    for (const [i, freq] of [660, 880].entries()) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = 'sine';
      osc.frequency.value = freq;
      const t0 = start + i * 0.16;
      gain.gain.setValueAtTime(0, t0);
      gain.gain.linearRampToValueAtTime(0.08, t0 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.15);
      osc.connect(gain).connect(audio.destination);
      osc.start(t0);
      osc.stop(t0 + 0.16);
    }
    chimes += 1;
  } catch {
    // No audio output: the toast and the announcement remain.
  }
}

/** The page title counts the guests waiting (moderators). */
function renderTitle() {
  const n = store.role === 'moderator' && store.phase === 'call' ? store.waiting.size : 0;
  const base = document.title.replace(/^\(\d+\) /, '');
  document.title = n > 0 ? `(${n}) ${base}` : base;
}

/** One toast per waiting guest (the first three), the rest summed. */
function renderToasts() {
  const box = $('lobby-toasts');
  if (!box) return;
  const show = store.role === 'moderator' && store.phase === 'call';
  const waiting = show ? [...store.waiting] : [];
  const shown = waiting.slice(0, MAX_TOASTS);
  const keep = new Set(shown.map(([id]) => id));
  for (const el of box.querySelectorAll('.toast[data-id]')) if (!keep.has(el.dataset.id)) el.remove();
  for (const [id, name] of shown) {
    if (box.querySelector(`.toast[data-id="${CSS.escape(id)}"]`)) continue;
    const more = box.querySelector('.toast-more');
    if (more) more.before(toast(id, name));
    else box.append(toast(id, name));
  }
  const rest = waiting.length - shown.length;
  let more = box.querySelector('.toast-more');
  if (rest <= 0) {
    more?.remove();
  } else {
    if (!more) {
      more = document.createElement('div');
      more.className = 'toast toast-more';
      const p = document.createElement('p');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'small';
      b.textContent = t('knock.showAll');
      b.addEventListener('click', () => actions.showWaiting());
      more.append(p, b);
      box.append(more);
    }
    more.querySelector('p').textContent = t('knock.more', { n: rest });
  }
  box.hidden = waiting.length === 0;
}

function toast(id, name) {
  const el = document.createElement('div');
  el.className = 'toast';
  el.dataset.id = id;
  el.setAttribute('role', 'group');
  el.setAttribute('aria-label', t('knock.toastLabel', { name }));
  const p = document.createElement('p');
  // User data as text only.
  p.textContent = t('knock.toast', { name });
  const row = document.createElement('div');
  row.className = 'row';
  const admit = document.createElement('button');
  admit.type = 'button';
  admit.className = 'small';
  admit.dataset.action = 'admit';
  // The group's label names the guest; the buttons say what they do
  // (their names differ from the waiting list's, which name the guest).
  admit.textContent = t('waiting.admit');
  admit.addEventListener('click', () => resolve(id, true));
  const deny = document.createElement('button');
  deny.type = 'button';
  deny.className = 'small danger';
  deny.dataset.action = 'deny';
  deny.textContent = t('waiting.deny');
  deny.addEventListener('click', () => resolve(id, false));
  row.append(admit, deny);
  el.append(p, row);
  return el;
}

/** Admit or deny from a toast; the focus moves to the next toast, if any. */
function resolve(id, admit) {
  const box = $('lobby-toasts');
  const hadFocus = box.contains(document.activeElement);
  actions.resolveKnock(id, admit);
  if (hadFocus) {
    const next = box.querySelector('.toast button');
    if (next) next.focus();
    else $('mic')?.focus();
  }
}
