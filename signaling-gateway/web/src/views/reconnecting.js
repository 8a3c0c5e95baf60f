// The "reconnecting" badge on the tiles of participants whose socket
// dropped (`participant-reconnecting` until `participant-resumed` or
// `participant-left`). Kept apart from the store: an attribute on the tile,
// drawn by CSS; screen readers get an announcement from room.js.
import { t } from '../../i18n.js';
import { subscribe } from '../store.js';

const away = new Set();

export function initReconnecting() {
  subscribe(({ what }) => {
    if (what.has('reset')) away.clear();
    if (what.has('tiles') || what.has('tile') || what.has('reset')) render();
  });
}

/** Marks (or unmarks) participant `id` as reconnecting. */
export function markReconnecting(id, on) {
  if (on) away.add(String(id));
  else away.delete(String(id));
  render();
}

/** The ids shown as reconnecting (tests). */
export function reconnectingIds() {
  return [...away];
}

function render() {
  for (const tile of document.querySelectorAll('.tile[data-reconnecting]')) {
    if (!away.has(tile.id.replace(/^tile-/, ''))) delete tile.dataset.reconnecting;
  }
  for (const id of away) {
    const tile = document.getElementById('tile-' + id);
    if (tile) tile.dataset.reconnecting = t('tile.reconnecting');
  }
}
