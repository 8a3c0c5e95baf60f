// Small DOM helpers shared by the views.
import { t, has } from '../../i18n.js';
import { store } from '../store.js';

export const $ = (id) => document.getElementById(id);

/** A participant's name, or "participant <id>". */
export function displayName(id) {
  return store.names.get(String(id)) ?? t('call.unknown', { id });
}

export function roleName(role) {
  return has('role.' + role) ? t('role.' + role) : String(role);
}

/** Polite screen-reader announcement (one live region: announce.js). */
export { announce } from './announce.js';

export function setButton(el, label, pressed) {
  el.textContent = label;
  el.setAttribute('aria-label', label);
  if (pressed !== undefined) el.setAttribute('aria-pressed', String(pressed));
}

export function smallButton(text, label, onClick, extra = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = ('small ' + extra).trim();
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}
