// The call area's layout: grid, speaker view or screen-share stage (the
// choice in the "more" menu, the automatic switch to the stage when a share
// starts), the pin, pages (buttons, swipe) and the tiles' rectangles
// computed by layout-core.js from the area's size. Every change of layout
// re-sends the video constraints (views/layers.js): a larger tile asks the
// server for a higher layer, a tile off the page for none.
import { t } from '../../i18n.js';
import { store, subscribe } from '../store.js';
import { plan, STAGE } from '../layout-core.js';
import { $ } from './dom.js';
import { icon, setIcon } from '../icons.js';
import { scheduleConstraints, flushConstraints } from './layers.js';

const state = {
  chosen: null, // 'grid' | 'speaker' | 'stage' chosen by the user; null: automatic
  beforeStage: null, // the choice to go back to when the share ends
  pinned: null, // participant id
  page: 0,
  maxPerPage: 16,
  lastStage: null, // track key on the stage at the last layout
  last: null, // the last plan applied
};
let frame = 0;

export function initLayout() {
  new ResizeObserver(() => relayout()).observe($('area'));
  subscribe(({ what }) => {
    if (what.has('reset')) {
      state.pinned = null;
      state.page = 0;
    }
    if (what.has('layout')) {
      // The test hook's fixed tile height: laid out and sent at once, so a
      // test reads the constraints of the size it asked for.
      apply();
      flushConstraints();
    } else if (['tiles', 'tile', 'tile-removed', 'stage', 'speaker', 'panels', 'phase', 'audio-only'].some((w) => what.has(w))) {
      relayout();
    }
  });
  for (const mode of ['grid', 'speaker', 'stage']) {
    $('layout-' + mode).prepend(icon(mode === 'stage' ? 'share' : mode));
    $('layout-' + mode).addEventListener('click', () => choose(mode));
  }
  setIcon($('page-prev'), 'prev');
  setIcon($('page-next'), 'next');
  $('page-prev').addEventListener('click', () => turnPage(-1));
  $('page-next').addEventListener('click', () => turnPage(1));
  swipe($('area'));
  // Test hooks (tests/e2e/layout.test.mjs).
  Object.assign(window.salonTest ?? {}, {
    layout: () => ({
      mode: state.last?.mode ?? null,
      main: state.last?.main ?? null,
      page: state.last?.page ?? 0,
      pages: state.last?.pages ?? 1,
      shown: state.last ? [...state.last.rects.keys()] : [],
      pinned: state.pinned,
    }),
    setPageSize: (n) => {
      state.maxPerPage = Math.max(1, Number(n) || 16);
      relayout();
    },
    chooseLayout: (mode) => choose(mode),
  });
}

/** The layout the user chose (or null for automatic). */
function choose(mode) {
  state.chosen = mode;
  if (mode !== 'speaker') state.pinned = null;
  state.page = 0;
  relayout();
}

/** Pins participant `id` (null: unpins): it takes the speaker view's main place. */
export function pin(id) {
  state.pinned = id === null ? null : String(id);
  state.page = 0;
  relayout();
}

export function pinnedId() {
  return state.pinned;
}

function turnPage(delta) {
  if (!state.last) return;
  const next = Math.min(state.last.pages - 1, Math.max(0, state.last.page + delta));
  if (next === state.page && next === state.last.page) return;
  state.page = next;
  relayout();
}

/** A horizontal swipe on the area turns the page (phones). */
function swipe(el) {
  let start = null;
  el.addEventListener('pointerdown', (ev) => {
    if (ev.pointerType !== 'mouse') start = { x: ev.clientX, y: ev.clientY };
  });
  el.addEventListener('pointerup', (ev) => {
    if (!start) return;
    const dx = ev.clientX - start.x;
    const dy = ev.clientY - start.y;
    start = null;
    if (Math.abs(dx) > 50 && Math.abs(dx) > 1.5 * Math.abs(dy)) turnPage(dx < 0 ? 1 : -1);
  });
  el.addEventListener('pointercancel', () => (start = null));
}

/**
 * Lays out once for many changes: on the next animation frame, or after
 * 100 ms in a background tab (where frames do not come).
 */
export function relayout() {
  if (frame) return;
  const run = () => {
    if (!frame) return;
    cancelAnimationFrame(frame.raf);
    clearTimeout(frame.timer);
    frame = 0;
    apply();
  };
  frame = { raf: requestAnimationFrame(run), timer: setTimeout(run, 100) };
}

function currentMode(narrow, hasStage) {
  const stageKey = hasStage ? $('stage').dataset.trackId : null;
  // A new share: the stage, whatever was shown; its end: back to the choice before.
  if (stageKey && stageKey !== state.lastStage) {
    state.beforeStage = state.chosen;
    state.chosen = 'stage';
    state.page = 0;
  } else if (!stageKey && state.lastStage && state.chosen === 'stage') {
    state.chosen = state.beforeStage;
  }
  state.lastStage = stageKey;
  if (state.pinned !== null && state.chosen !== 'stage') return 'speaker';
  return state.chosen ?? (narrow ? 'speaker' : 'grid');
}

function apply() {
  const area = $('area');
  const tiles = $('tiles');
  if (store.phase !== 'call') return;
  if (state.pinned !== null && !store.names.has(state.pinned) && state.pinned !== String(store.selfId)) state.pinned = null;
  // Test hook: fixed tile height, the plain flow of tiles (views/tiles.js).
  if (store.tileHeight !== null) {
    for (const el of tiles.children) {
      el.hidden = false;
      el.removeAttribute('style');
    }
    $('stage').removeAttribute('style');
    $('pager').hidden = true;
    state.last = null;
    scheduleConstraints();
    return;
  }
  const width = area.clientWidth;
  const height = area.clientHeight;
  if (width === 0 || height === 0) return;
  const hasStage = !$('stage').hidden;
  const narrow = width < 600;
  const ids = [String(store.selfId), ...store.names.keys()].filter((id) => $('tile-' + id));
  const result = plan({
    mode: currentMode(narrow, hasStage),
    width,
    height,
    ids,
    selfId: String(store.selfId),
    pinned: state.pinned,
    dominant: store.dominant,
    hasStage,
    presenter: $('stage').dataset.publisher ?? null,
    page: state.page,
    maxPerPage: state.maxPerPage,
    minTile: narrow ? 140 : 200,
    gap: narrow ? 4 : 8,
    fillMain: narrow && height > width,
  });
  state.page = result.page;
  state.last = result;
  for (const id of ids) place($('tile-' + id), result.rects.get(id), result.main === id);
  if (hasStage) place($('stage'), result.rects.get(STAGE), result.main === STAGE);
  renderPager(result);
  renderChoice(result.mode, hasStage);
  scheduleConstraints();
}

function place(el, r, main) {
  if (!r) {
    el.hidden = true;
    return;
  }
  el.hidden = false;
  el.classList.toggle('main', main);
  const s = el.style;
  s.left = r.x + 'px';
  s.top = r.y + 'px';
  s.width = r.w + 'px';
  s.height = r.h + 'px';
}

function renderPager({ page, pages }) {
  $('pager').hidden = pages <= 1;
  $('page-info').textContent = t('layout.page', { n: page + 1, total: pages });
  $('page-prev').disabled = page === 0;
  $('page-next').disabled = page >= pages - 1;
}

function renderChoice(mode, hasStage) {
  $('layout-stage').hidden = !hasStage;
  for (const m of ['grid', 'speaker', 'stage']) {
    const b = $('layout-' + m);
    b.setAttribute('aria-pressed', String(mode === m));
    setText(b, t('layout.' + m));
  }
}

function setText(button, text) {
  const span = button.querySelector('span') ?? button.appendChild(document.createElement('span'));
  span.textContent = text;
}
