// The pad panel: the shared Markdown pad of the meeting (pad.js) opened with
// the `pad_token` of `joined`, and its exports (Markdown, text), also offered
// by the last one out before leaving.
import { t } from '../../i18n.js';
import { Pad } from '../pad.js';
import { store } from '../store.js';
import { $ } from './dom.js';

let pad = null;
let room = '';

export function initPadPanel(roomName) {
  room = roomName;
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
}

/** Connects (or reconnects) the pad and mounts its editor; resolves once synced. */
export async function openPad() {
  if (!store.padToken) return;
  if (!pad || pad.closed) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    // The token goes in the subprotocol list, not the URL: URLs end up in
    // proxies' logs (docs/signaling.md, "The pad").
    const url = `${scheme}://${location.host}/pad`;
    const protocols = ['salon-pad', `salon-pad-token.${store.padToken}`];
    if (pad) pad.destroy();
    pad = new Pad(url, protocols, store.selfName, (key, vars) => {
      $('pad-status').textContent = t(key, vars);
    });
    $('pad-editor').replaceChildren();
  }
  pad.mount($('pad-editor'), t('pad.label'));
  await pad.whenSynced();
}

export function focusPad() {
  pad?.view?.focus();
}

/** Disconnects the pad (the meeting is over for us). */
export function destroyPad() {
  if (pad) pad.destroy();
  pad = null;
}

/** Whether the pad has text (checked before the last one out leaves). */
export function padHasText() {
  return Boolean(pad && pad.markdown().length > 0);
}

export function padText() {
  return pad?.markdown() ?? null;
}

export function padSynced() {
  return Boolean(pad?.synced);
}

export function exportText(kind) {
  if (!pad) return '';
  return kind === 'txt' ? pad.plainText() : pad.markdown();
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
