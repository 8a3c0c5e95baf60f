// Gestures on the tiles: a raised hand's badge (with its place in the order
// of raising) and a reaction floating up from the sender's tile for a few
// seconds (with prefers-reduced-motion: no motion, a badge that fades out).
// Everything goes in one overlay per tile (`.tile-gestures`, keyed by
// `data-participant`), which tiles.js does not touch: it re-renders its own
// badges freely.
import { t } from '../../i18n.js';
import { store, subscribe, isSelf } from '../store.js';
import { displayName } from './dom.js';
import { icon } from '../icons.js';

// How long a reaction stays on its tile.
const REACTION_MS = 3000;
// Most reactions shown at once on one tile (a burst does not pile up).
const MAX_FLOATING = 4;

export function initGestures() {
  subscribe(({ what }) => {
    if (what.has('tiles') || what.has('tile') || what.has('hands') || what.has('reset')) renderHands();
    if (what.has('reaction')) showReaction(store.reactions.at(-1));
  });
}

/** The gesture overlay of `tile` (participant `id`), made if missing. */
export function decorateTile(tile, id) {
  let overlay = tile.querySelector(':scope > .tile-gestures');
  if (!overlay) {
    overlay = document.createElement('div');
    overlay.className = 'tile-gestures';
    overlay.dataset.participant = String(id);
    tile.append(overlay);
  }
  return overlay;
}

function tileOf(id) {
  return document.getElementById('tile-' + id);
}

/** The hand badge on every tile, numbered in the order of raising. */
function renderHands() {
  for (const tile of document.querySelectorAll('#tiles .tile')) {
    const id = tile.id.slice('tile-'.length);
    const overlay = decorateTile(tile, id);
    const pos = store.hands.indexOf(id);
    let flag = overlay.querySelector('.hand-flag');
    if (pos < 0) {
      flag?.remove();
      continue;
    }
    if (!flag) {
      // The hand is the toolbar's SVG icon, not the ✋ emoji: workstations
      // without a colour emoji font (common on locked-down ones) drew a box.
      flag = document.createElement('span');
      flag.className = 'hand-flag';
      flag.append(icon('hand'), document.createElement('span'));
      overlay.prepend(flag);
    }
    flag.lastElementChild.textContent = String(pos + 1);
    const name = isSelf(id) ? t('hand.you') : displayName(id);
    flag.title = t('hand.tileLabel', { name, n: pos + 1 });
  }
}

/** A reaction floats up from its sender's tile. */
function showReaction(r) {
  if (!r) return;
  const tile = tileOf(r.id);
  if (!tile) return;
  const overlay = decorateTile(tile, r.id);
  const floating = overlay.querySelectorAll('.reaction-float');
  if (floating.length >= MAX_FLOATING) floating[0].remove();
  const el = document.createElement('span');
  el.className = 'reaction-float';
  el.dataset.emoji = r.emoji;
  // Read out by announce.js, summed; here only seen.
  el.setAttribute('aria-hidden', 'true');
  el.textContent = r.emoji;
  // A little horizontal spread so a burst does not stack exactly.
  el.style.setProperty('--drift', `${(store.reactions.length % 5) * 12 - 24}px`);
  overlay.append(el);
  setTimeout(() => el.remove(), REACTION_MS);
}
