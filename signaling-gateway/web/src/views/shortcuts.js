// Keyboard shortcuts in the call: M microphone, V camera, H raise or lower
// the hand, C chat, P participants, ? this list (a modal <dialog>). Plain
// keys only (no Ctrl, Alt, Meta or Shift, except Shift for "?", so the
// browser's and screen readers' own shortcuts keep working), and never
// while typing (inputs, text areas, selects, the pad editor) or while a
// dialog is open.
import { t } from '../../i18n.js';
import { store } from '../store.js';
import { $ } from './dom.js';

const KEYS = [
  ['m', 'shortcut.mic'],
  ['v', 'shortcut.cam'],
  ['h', 'shortcut.hand'],
  ['c', 'shortcut.chat'],
  ['p', 'shortcut.people'],
  ['?', 'shortcut.help'],
];

let opener = null;

/** actions: { toggleLocal(kind), raiseHand(), togglePanel(which) }. */
export function initShortcuts(actions) {
  const run = {
    m: () => actions.toggleLocal('audio'),
    v: () => actions.toggleLocal('video'),
    h: () => actions.raiseHand(),
    c: () => actions.togglePanel('chat'),
    p: () => actions.togglePanel('people'),
    '?': () => openHelp(),
  };
  document.addEventListener('keydown', (ev) => {
    if (store.phase !== 'call' || ev.defaultPrevented || ev.repeat || ev.isComposing) return;
    if (ev.ctrlKey || ev.altKey || ev.metaKey) return;
    const key = ev.key === '?' ? '?' : ev.shiftKey ? null : ev.key.toLowerCase();
    const fn = key && Object.hasOwn(run, key) ? run[key] : null;
    if (!fn || typing(ev.target) || document.querySelector('dialog[open]')) return;
    ev.preventDefault();
    fn();
  });
  const dialog = $('shortcuts-dialog');
  if (!dialog) return;
  renderList();
  $('shortcuts-close').addEventListener('click', () => dialog.close());
  // Escape closes the dialog (the browser does), not a side panel too.
  dialog.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') ev.stopPropagation();
  });
  dialog.addEventListener('close', () => {
    const back = opener?.isConnected ? opener : $('call-main');
    opener = null;
    back?.focus();
  });
  $('btn-shortcuts')?.addEventListener('click', () => openHelp());
}

/** Whether a key press goes into a text field (or the pad's editor). */
function typing(target) {
  if (!(target instanceof Element)) return false;
  return Boolean(target.closest('input, textarea, select, [contenteditable]:not([contenteditable="false"]), .cm-editor'));
}

function renderList() {
  const dl = $('shortcuts-list');
  dl.replaceChildren();
  for (const [key, label] of KEYS) {
    const dt = document.createElement('dt');
    const kbd = document.createElement('kbd');
    kbd.textContent = key.toUpperCase();
    dt.append(kbd);
    const dd = document.createElement('dd');
    dd.textContent = t(label);
    dl.append(dt, dd);
  }
}

/** Opens the list of shortcuts; closing it gives the focus back. */
export function openHelp() {
  const dialog = $('shortcuts-dialog');
  if (!dialog || dialog.open) return;
  opener = document.activeElement;
  dialog.showModal();
  $('shortcuts-close').focus();
}
