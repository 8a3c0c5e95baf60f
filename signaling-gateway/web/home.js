import { applyI18n, t } from '/static/i18n.js';

const ROOM_RE = /^[A-Za-z0-9-]{1,64}$/;

applyI18n();
const lang = new URLSearchParams(location.search).get('lang');
if (lang) document.getElementById('test-link').href = '/test?lang=' + encodeURIComponent(lang);
const form = document.getElementById('room-form');
const input = document.getElementById('room');
const error = document.getElementById('room-error');
input.focus();
form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const room = input.value.trim();
  if (!ROOM_RE.test(room)) {
    error.textContent = t('home.badRoom');
    input.setAttribute('aria-invalid', 'true');
    return;
  }
  location.assign('/' + room + location.search);
});
