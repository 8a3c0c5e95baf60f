// The participant list (roles, muted state, raised hands, moderation
// buttons, private message), the raised hands in the order they were raised
// (a moderator lowers anyone's, everyone their own), the waiting list
// (moderators admit or deny) and the recipients of private messages.
import { t } from '../../i18n.js';
import { store, subscribe, selfInfo, knockResolved } from '../store.js';
import { $, roleName, smallButton } from './dom.js';

let actions = null;

/** actions: { moderate(msg), privateMessage(id), lowerHand(id) }. */
export function initPeople(a) {
  actions = a;
  handsSection();
  subscribe(({ what }) => {
    if (what.has('people')) renderPeople();
    else if (what.has('waiting')) renderWaiting();
    if (what.has('people') || what.has('hands') || what.has('reset')) renderHands();
  });
}

function renderPeople() {
  const ul = $('people');
  // Keep keyboard focus on the same control across re-renders.
  const focused = document.activeElement?.closest?.('#people li') ? document.activeElement.dataset.action : null;
  const focusedId = focused ? document.activeElement.closest('li').dataset.id : null;
  ul.replaceChildren();
  const mod = store.role === 'moderator';
  const entries = [[String(store.selfId), store.selfName, true], ...[...store.names].map(([id, n]) => [id, n, false])];
  for (const [id, name, self] of entries) {
    const li = document.createElement('li');
    li.id = 'person-' + id;
    li.dataset.id = id;
    const info = self ? selfInfo() : (store.info.get(id) ?? {});
    const span = document.createElement('span');
    span.className = 'who';
    span.textContent = self ? t('call.you', { name }) : name;
    if (info.role) {
      const r = document.createElement('span');
      r.className = 'role-badge';
      r.dataset.role = info.role;
      r.textContent = roleName(info.role);
      span.append(' ', r);
    }
    const flags = [];
    if (info.audioMuted || info.audio === false) flags.push(t('state.audioMuted'));
    if (info.videoStopped || info.video === false) flags.push(t('state.videoStopped'));
    const hand = store.hands.indexOf(id);
    if (hand >= 0) flags.push(t('hand.flag', { n: hand + 1 }));
    if (flags.length) {
      const st = document.createElement('span');
      st.className = 'state';
      st.textContent = ' · ' + flags.join(', ');
      span.append(st);
    }
    li.append(span);
    if (!self && mod) {
      const group = document.createElement('div');
      group.className = 'mod-actions';
      group.setAttribute('role', 'group');
      group.setAttribute('aria-label', t('mod.actions', { name }));
      const nid = Number(id);
      const add = (action, text, label, msg, extra) => {
        const b = smallButton(text, label, () => actions.moderate(msg), extra);
        b.dataset.action = action;
        group.append(b);
      };
      add('mute', t('mod.mute'), t('mod.muteLabel', { name }), { type: 'mute', id: nid });
      add('stop-video', t('mod.stopVideo'), t('mod.stopVideoLabel', { name }), { type: 'stop-video', id: nid });
      if (store.screens.has(id)) {
        add('stop-screen', t('mod.stopScreen'), t('mod.stopScreenLabel', { name }), { type: 'stop-screen', id: nid });
      }
      if (info.role === 'moderator') {
        add('revoke', t('mod.revoke'), t('mod.revokeLabel', { name }), { type: 'revoke-moderator', id: nid });
      } else {
        add('grant', t('mod.grant'), t('mod.grantLabel', { name }), { type: 'grant-moderator', id: nid });
      }
      add('kick', t('mod.kick'), t('mod.kickLabel', { name }), { type: 'kick', id: nid, ban: false }, 'danger');
      add('ban', t('mod.ban'), t('mod.banLabel', { name }), { type: 'kick', id: nid, ban: true }, 'danger');
      li.append(group);
    }
    if (!self) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'ghost small';
      b.textContent = '✉';
      b.dataset.action = 'private';
      b.setAttribute('aria-label', t('people.private', { name }));
      b.addEventListener('click', () => actions.privateMessage(id));
      li.append(b);
    }
    ul.append(li);
  }
  if (focused) ul.querySelector(`li[data-id="${CSS.escape(focusedId)}"] [data-action="${CSS.escape(focused)}"]`)?.focus();
  renderWaiting();
  // Recipients of private messages.
  const select = $('chat-to');
  const current = select.value;
  select.replaceChildren();
  const all = document.createElement('option');
  all.value = '';
  all.textContent = t('chat.everyone');
  select.append(all);
  for (const [id, name] of store.names) {
    const o = document.createElement('option');
    o.value = id;
    o.textContent = name;
    select.append(o);
  }
  select.value = store.names.has(current) ? current : '';
}

// ---- Waiting room (moderators) ---------------------------------------------------

function renderWaiting() {
  const mod = store.role === 'moderator';
  const ul = $('waiting');
  const focusedAction = document.activeElement?.closest?.('#waiting li') ? document.activeElement.dataset.action : null;
  ul.replaceChildren();
  $('waiting-section').hidden = !mod || store.waiting.size === 0;
  $('waiting-title').textContent = t('waiting.title', { n: store.waiting.size });
  if (!mod) return;
  for (const [id, name] of store.waiting) {
    const li = document.createElement('li');
    li.id = 'waiting-' + id;
    li.dataset.id = id;
    const span = document.createElement('span');
    span.className = 'who';
    span.textContent = name;
    const group = document.createElement('div');
    group.className = 'mod-actions';
    const admit = smallButton(t('waiting.admit'), t('waiting.admitLabel', { name }), () => resolveKnock(id, true));
    admit.dataset.action = 'admit';
    const deny = smallButton(t('waiting.deny'), t('waiting.denyLabel', { name }), () => resolveKnock(id, false), 'danger');
    deny.dataset.action = 'deny';
    group.append(admit, deny);
    li.append(span, group);
    ul.append(li);
  }
  if (focusedAction) ul.querySelector('button')?.focus();
}

/** Admits or denies a knocking guest (the waiting list, the lobby toasts). */
export function resolveKnock(id, admit) {
  actions.moderate(admit ? { type: 'admit', id: Number(id) } : { type: 'deny', id: Number(id) });
  // The other moderators get `knock-resolved`; we drop it at once.
  knockResolved(id);
  if (store.waiting.size === 0 && document.activeElement === document.body) $('toggle-people').focus();
}

// ---- Raised hands ---------------------------------------------------------------

/** The raised-hands list, above the participants (made here: one block). */
function handsSection() {
  if ($('hands')) return;
  const section = document.createElement('section');
  section.id = 'hands-section';
  section.hidden = true;
  section.setAttribute('aria-labelledby', 'hands-title');
  const h = document.createElement('h3');
  h.id = 'hands-title';
  h.className = 'sub-title';
  const ol = document.createElement('ol');
  ol.id = 'hands';
  ol.className = 'people hands';
  section.append(h, ol);
  $('people').before(section);
}

/** The raised hands, in the order they were raised: moderators may lower
 * anyone's, everyone their own. */
function renderHands() {
  const ol = $('hands');
  if (!ol) return;
  const focusedId = document.activeElement?.closest?.('#hands li')?.dataset.id ?? null;
  ol.replaceChildren();
  $('hands-section').hidden = store.hands.length === 0;
  $('hands-title').textContent = t('hand.title', { n: store.hands.length });
  const mod = store.role === 'moderator';
  for (const [i, id] of store.hands.entries()) {
    const self = String(id) === String(store.selfId);
    const name = self ? store.selfName : (store.names.get(id) ?? t('call.unknown', { id }));
    const li = document.createElement('li');
    li.id = 'hand-' + id;
    li.dataset.id = id;
    const span = document.createElement('span');
    span.className = 'who';
    span.textContent = `${i + 1}. ${self ? t('call.you', { name }) : name}`;
    li.append(span);
    if (mod || self) {
      const label = self ? t('hand.lower') : t('hand.lowerLabel', { name });
      const b = smallButton(t('hand.lowerShort'), label, () => actions.lowerHand(id));
      b.dataset.action = 'lower-hand';
      li.append(b);
    }
    ol.append(li);
  }
  if (focusedId) {
    // The hand we were on went down: the next one (or the list's end).
    const next = ol.querySelector(`li[data-id="${CSS.escape(focusedId)}"] button`) ?? ol.querySelector('button');
    if (next) next.focus();
    else $('people').querySelector('button')?.focus();
  }
}
