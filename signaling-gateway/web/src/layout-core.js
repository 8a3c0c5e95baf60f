// Where each tile goes: a pure function of the call area's size, the
// participants, the mode (grid, speaker, stage), the pin, the dominant
// speaker and the page shown. No DOM and no clock: views/layout.js measures
// the area, calls `plan` and applies the rectangles; tests call it directly.
//
// Items are participant ids, plus STAGE for the screen share on the stage.
//   grid     every item on a 16:9 grid that fills the area (as large as the
//            area allows), paginated: at most `maxPerPage` per page, fewer if
//            tiles would be narrower than `minTile` px.
//   speaker  one main item (the pinned one, else the dominant speaker, else
//            the first other participant) large, the others in a filmstrip
//            (right of it on a wide area, below it on a tall or narrow one),
//            paginated.
//   stage    the screen share as the main item, its presenter first in the
//            filmstrip.

export const ASPECT = 16 / 9;
export const STAGE = '@stage';

/** The best grid for `n` tiles of 16:9 in `width` x `height` with `gap`: { cols, rows, w, h }. */
export function fitGrid(n, width, height, gap) {
  let best = { cols: 1, rows: Math.max(1, n), w: 0, h: 0 };
  if (n <= 0 || width <= 0 || height <= 0) return best;
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const cellW = (width - (cols - 1) * gap) / cols;
    const cellH = (height - (rows - 1) * gap) / rows;
    if (cellW <= 0 || cellH <= 0) continue;
    const w = Math.min(cellW, cellH * ASPECT);
    if (w > best.w) best = { cols, rows, w, h: w / ASPECT };
  }
  return best;
}

/** How many tiles a grid page holds: at most `max`, and none narrower than `minTile` (at least 1). */
export function gridPageSize(width, height, gap, max, minTile) {
  for (let k = Math.max(1, max); k > 1; k--) {
    if (fitGrid(k, width, height, gap).w >= minTile) return k;
  }
  return 1;
}

const rect = (x, y, w, h) => ({ x: Math.round(x), y: Math.round(y), w: Math.round(w), h: Math.round(h) });

/** Rectangles of `ids` laid out as a centred grid in the box (x, y, width, height). */
function gridRects(ids, x, y, width, height, gap, out) {
  const { cols, rows, w, h } = fitGrid(ids.length, width, height, gap);
  const totalH = rows * h + (rows - 1) * gap;
  const top = y + (height - totalH) / 2;
  ids.forEach((id, i) => {
    const row = Math.floor(i / cols);
    // The last row is centred when it is not full.
    const inRow = row === rows - 1 ? ids.length - row * cols : cols;
    const rowW = inRow * w + (inRow - 1) * gap;
    const left = x + (width - rowW) / 2;
    out.set(id, rect(left + (i - row * cols) * (w + gap), top + row * (h + gap), w, h));
  });
}

/**
 * The layout. `input`: { mode: 'grid'|'speaker'|'stage', width, height,
 * ids (participants in display order, self included), selfId, pinned,
 * dominant, hasStage, presenter (id sharing on the stage), page,
 * maxPerPage (grid), minTile, gap, fillMain }.
 * Returns { mode (the one applied), main (item or null), rects: Map item ->
 * {x, y, w, h} for the items shown, hidden: items not on this page, page,
 * pages, strip: 'right'|'bottom'|null }.
 */
export function plan(input) {
  const { width, height, ids, selfId = null, pinned = null, dominant = null, hasStage = false, presenter = null } = input;
  const gap = input.gap ?? 8;
  const minTile = input.minTile ?? 200;
  const maxPerPage = input.maxPerPage ?? 16;
  let mode = input.mode;
  if (mode === 'stage' && !hasStage) mode = 'speaker';
  const rects = new Map();
  const all = hasStage ? [STAGE, ...ids] : [...ids];

  if (mode === 'grid' || all.length <= 1) {
    const size = gridPageSize(width, height, gap, maxPerPage, minTile);
    const pages = Math.max(1, Math.ceil(all.length / size));
    const page = clamp(input.page ?? 0, 0, pages - 1);
    const shown = all.slice(page * size, (page + 1) * size);
    gridRects(shown, 0, 0, width, height, gap, rects);
    return { mode: 'grid', main: null, rects, hidden: all.filter((x) => !rects.has(x)), page, pages, strip: null };
  }

  // Speaker or stage: one main item and a filmstrip.
  let main;
  if (mode === 'stage') main = STAGE;
  else if (pinned !== null && all.includes(pinned)) main = pinned;
  else if (dominant !== null && dominant !== selfId && all.includes(dominant)) main = dominant;
  else main = all.find((x) => x !== selfId && x !== STAGE) ?? all[0];
  let others = all.filter((x) => x !== main);
  if (mode === 'stage' && presenter !== null && others.includes(presenter)) {
    others = [presenter, ...others.filter((x) => x !== presenter)];
  }

  // The strip goes right of the main item on a landscape area wide enough,
  // else below it.
  const side = width >= 700 && width / height >= 1.2;
  let thumbW;
  let thumbH;
  let perPage;
  let mainBox;
  if (side) {
    thumbW = clamp(Math.round(width * 0.2), 160, 280);
    thumbH = thumbW / ASPECT;
    perPage = Math.max(1, Math.floor((height + gap) / (thumbH + gap)));
    mainBox = [0, 0, width - thumbW - gap, height];
  } else {
    // At least three thumbnails across (phones in portrait).
    thumbW = Math.min(clamp(Math.round(height * 0.16), 72, 140) * ASPECT, (width - 2 * gap) / 3);
    thumbH = thumbW / ASPECT;
    perPage = Math.max(1, Math.floor((width + gap) / (thumbW + gap)));
    mainBox = [0, 0, width, height - thumbH - gap];
  }
  if (others.length === 0) mainBox = [0, 0, width, height];
  const pages = Math.max(1, Math.ceil(others.length / perPage));
  const page = clamp(input.page ?? 0, 0, pages - 1);
  const shown = others.slice(page * perPage, (page + 1) * perPage);

  // The main item: as large as 16:9 allows in its box, centred; or the
  // whole box (`fillMain`: a phone in portrait, the video cropped to fit).
  const [mx, my, mw, mh] = mainBox;
  const w = input.fillMain ? mw : Math.min(mw, mh * ASPECT);
  const h = input.fillMain ? mh : w / ASPECT;
  rects.set(main, rect(mx + (mw - w) / 2, my + (mh - h) / 2, w, h));

  shown.forEach((id, i) => {
    if (side) {
      const total = shown.length * thumbH + (shown.length - 1) * gap;
      rects.set(id, rect(width - thumbW, (height - total) / 2 + i * (thumbH + gap), thumbW, thumbH));
    } else {
      const total = shown.length * thumbW + (shown.length - 1) * gap;
      rects.set(id, rect((width - total) / 2 + i * (thumbW + gap), height - thumbH, thumbW, thumbH));
    }
  });
  return {
    mode,
    main,
    rects,
    hidden: all.filter((x) => !rects.has(x)),
    page,
    pages,
    strip: others.length ? (side ? 'right' : 'bottom') : null,
  };
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}
