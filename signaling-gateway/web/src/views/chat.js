// The chat panel: the message log (links made clickable, user text as text
// only), the form with its recipient list (rendered by people.js), the
// unread count is the toolbar's.
import { t, lang } from '../../i18n.js';
import { store, subscribe, isSelf } from '../store.js';
import { $, displayName } from './dom.js';
import { appendLinkified } from '../linkify.js';

/** actions: { sendChat(text, to) }. */
export function initChat(actions) {
  subscribe(({ what }) => {
    if (what.has('chat')) showChat(store.chat.at(-1));
  });
  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $('chat-text').value;
    if (!text.trim()) return;
    actions.sendChat(text, $('chat-to').value);
    $('chat-text').value = '';
  });
  $('chat-text').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey) {
      ev.preventDefault();
      $('chat-form').requestSubmit();
    }
  });
}

/** Private message to participant `id`: its recipient picked in the form. */
export function setRecipient(id) {
  $('chat-to').value = id;
}

/** Appends a message to the log. */
function showChat(msg) {
  const li = document.createElement('li');
  li.className = 'chat-msg';
  if (msg.to !== undefined) li.classList.add('private');
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('strong');
  who.textContent = isSelf(msg.from) ? t('call.you', { name: msg.name }) : msg.name;
  const when = document.createElement('time');
  const date = new Date(msg.time);
  when.dateTime = date.toISOString();
  when.textContent = date.toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' });
  meta.append(who, ' ', when);
  if (msg.to !== undefined) {
    const tag = document.createElement('em');
    tag.textContent = isSelf(msg.from)
      ? ' · ' + t('chat.privateTo', { name: displayName(msg.to) })
      : ' · ' + t('chat.private');
    meta.append(tag);
  }
  const body = document.createElement('p');
  body.className = 'text';
  appendLinkified(body, msg.text);
  li.append(meta, body);
  $('chat-log').append(li);
  li.scrollIntoView({ block: 'end' });
}
