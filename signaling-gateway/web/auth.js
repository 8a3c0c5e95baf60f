// "Se connecter" / "Se déconnecter": OIDC login for agents (docs/oidc.md).
// A small module of its own, loaded by the home page and the room page: it
// asks /auth/me whether login is configured and who is signed in, then fills
// #auth (or a small bar it adds at the top of the page). The session is an
// HttpOnly cookie: this script never sees it, and no token is in any URL.
import { t } from '/static/i18n.js';

async function me() {
  try {
    const res = await fetch('/auth/me', { credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) return null;
    return await res.json();
  } catch {
    return null;
  }
}

async function logout() {
  // POST (Origin checked by the server): a link could be triggered by any site.
  const res = await fetch('/auth/logout', { method: 'POST', credentials: 'same-origin' });
  const { location: next } = await res.json().catch(() => ({ location: '/' }));
  location.assign(next || '/');
}

async function main() {
  const state = await me();
  if (!state || !state.enabled) return;
  let box = document.getElementById('auth');
  if (!box) {
    box = document.createElement('div');
    box.id = 'auth';
    box.className = 'auth-bar';
    document.body.prepend(box);
  }
  box.replaceChildren();
  if (state.signed_in) {
    const who = document.createElement('span');
    who.id = 'auth-who';
    who.textContent = t('auth.signedInAs', { name: state.name || state.email || '' });
    const out = document.createElement('button');
    out.type = 'button';
    out.id = 'auth-logout';
    out.textContent = t('auth.logout');
    out.addEventListener('click', logout);
    box.append(who, ' ', out);
  } else {
    const a = document.createElement('a');
    a.id = 'auth-login';
    a.className = 'button';
    a.href = '/auth/login?return=' + encodeURIComponent(location.pathname + location.search);
    a.textContent = t('auth.login');
    box.append(a);
  }
}

main();
