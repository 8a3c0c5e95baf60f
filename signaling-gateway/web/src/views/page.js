// The page around the meeting: room name and title, language link, operator
// branding (/config.json), which section shows (pre-join, lobby, call,
// ended, left), the status line and the error line.
import { t, lang } from '../../i18n.js';
import { store, subscribe } from '../store.js';
import { $ } from './dom.js';

let brandName = 'Salon';

export function initPage(room) {
  $('room-name').textContent = room;
  document.title = `${room} · ${brandName}`;
  subscribe(({ what }) => {
    if (what.has('phase')) renderPhase();
    if (what.has('status')) renderStatus();
    if (what.has('error')) $('error').textContent = store.error;
  });
  renderStatus();
  languageLink();
  branding(room);
}

function renderPhase() {
  const phase = store.phase;
  $('prejoin').hidden = phase !== 'prejoin';
  $('lobby').hidden = phase !== 'lobby';
  $('call').hidden = phase !== 'call';
  $('ended').hidden = phase !== 'ended' && phase !== 'kicked';
  $('left').hidden = phase !== 'left';
  // The call fills the window: no page scroll, the bar at the bottom.
  document.body.classList.toggle('in-call', phase === 'call');
}

function renderStatus() {
  const el = $('status');
  el.dataset.state = store.status;
  el.textContent = t('status.' + store.status);
}

// ---- Language and operator branding ----------------------------------------

function languageLink() {
  const other = lang === 'fr' ? 'en' : 'fr';
  const a = $('lang-switch');
  const q = new URLSearchParams(location.search);
  q.set('lang', other);
  a.href = '?' + q.toString();
  a.textContent = t('lang.other');
  a.lang = other;
}

/** Relative luminance (WCAG) of #rrggbb. */
function luminance(hex) {
  const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  const [r, g, b] = c.map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function branding(room) {
  fetch('/config.json')
    .then((r) => (r.ok ? r.json() : null))
    .then((cfg) => {
      const brand = cfg?.brand;
      if (!brand) return;
      if (typeof brand.name === 'string' && brand.name) {
        brandName = brand.name;
        $('brand-name').textContent = brand.name;
        document.title = `${room} · ${brandName}`;
      }
      if (typeof brand.color === 'string' && /^#[0-9a-fA-F]{6}$/.test(brand.color)) {
        const root = document.documentElement.style;
        root.setProperty('--accent', brand.color);
        // Text on the accent colour: whichever of white/black contrasts more.
        const l = luminance(brand.color);
        root.setProperty('--on-accent', (1.05 / (l + 0.05) >= (l + 0.05) / 0.05) ? '#ffffff' : '#000000');
      }
      // The operator's font (salon --brand-font, served at /brand/font;
      // Marianne only for a State service): docs/decisions.md.
      if (brand.font === '/brand/font') document.body.classList.add('font-brand');
      if (typeof brand.logo === 'string' && brand.logo.startsWith('/')) {
        const img = $('brand-logo');
        img.src = brand.logo;
        img.hidden = false;
      }
    })
    .catch(() => {});
}
