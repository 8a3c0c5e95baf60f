// What screen readers are told, through one polite live region (#announce):
// joins and leaves, raised hands, knocks, chat messages while the chat panel
// is closed, reactions, moderation notices. Messages that come close
// together are read as one; reactions are summed per person over a short
// window ("Ana reacted 👏 ×3"), so a burst of them is one sentence.
import { t } from '../../i18n.js';

// Messages within this long of each other are read together.
const GATHER_MS = 150;
// Reactions are summed over this window.
const REACTION_WINDOW_MS = 1500;
// What was announced, for the tests (the last 50).
const HISTORY = 50;

let pending = [];
let timer = null;
let reactions = new Map(); // name -> Map(emoji -> count), in arrival order
let reactionTimer = null;
const history = [];

/** Says `text` politely (after what is being read). */
export function announce(text) {
  if (!text) return;
  pending.push(text);
  if (!timer) timer = setTimeout(flush, GATHER_MS);
}

/** `name` reacted with `emoji`: summed with the others of the window. */
export function announceReaction(name, emoji) {
  if (!reactions.has(name)) reactions.set(name, new Map());
  const counts = reactions.get(name);
  counts.set(emoji, (counts.get(emoji) ?? 0) + 1);
  if (!reactionTimer) reactionTimer = setTimeout(flushReactions, REACTION_WINDOW_MS);
}

/** The texts announced so far (test hook), oldest first. */
export function announced() {
  return history.slice();
}

function flushReactions() {
  reactionTimer = null;
  const parts = [];
  for (const [name, counts] of reactions) {
    const emojis = [...counts].map(([e, n]) => (n > 1 ? `${e} ×${n}` : e)).join(' ');
    parts.push(t('gesture.reacted', { name, emojis }));
  }
  reactions = new Map();
  for (const p of parts) announce(p);
}

function flush() {
  timer = null;
  const text = pending.join(' ');
  pending = [];
  history.push(text);
  if (history.length > HISTORY) history.shift();
  const el = document.getElementById('announce');
  if (!el) return;
  el.textContent = '';
  // A fresh text node each time, so the same message is read again.
  setTimeout(() => (el.textContent = text), 50);
}
