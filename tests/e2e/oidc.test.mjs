// OIDC login for agents against a real OpenID Provider (`oidc-provider`,
// tests/e2e/oidc-provider.mjs), with Debian's Chromium:
// - an agent of an allowed e-mail domain signs in from the pre-join screen
//   ("Se connecter"), is back in the room signed in, and opens it as its
//   moderator; its identity reached the policy (no token in any URL);
// - someone of another domain, signed in too, cannot open a room (the
//   shipped policy refuses: only agents create rooms);
// - a callback with a changed `state`, a replayed callback, a used code
//   under a fresh state and an ID token whose `nonce` was altered on the
//   way to the provider are refused with a clear page;
// - logout (POST) ends the session at Salon and at the provider: a reload
//   shows "Se connecter", and the old cookie no longer signs anyone in
//   (neither /auth/me nor the WebSocket join).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { DEFAULT_POLICY, REPO_ROOT, freePort, launchBrowser, makeTestCerts, recordSignaling, startSalon, waitFor } from './helpers.mjs';
import { startProvider } from './oidc-provider.mjs';

const AGENT = 'agent@mairie.example.fr';
const OTHER = 'someone@other.example';

/** The shipped policy, its AGENT_DOMAINS set to the test's domain. */
async function policyFor(domain) {
  const dir = await mkdtemp(path.join(tmpdir(), 'salon-oidc-policy-'));
  const src = path.join(REPO_ROOT, path.dirname(DEFAULT_POLICY));
  const policy = await readFile(path.join(src, 'policy.lua'), 'utf8');
  const changed = policy.replace(/^local AGENT_DOMAINS = .*$/m, `local AGENT_DOMAINS = { "${domain}" }`);
  assert.notEqual(changed, policy, 'the shipped policy has an AGENT_DOMAINS setting');
  await writeFile(path.join(dir, 'policy.lua'), changed);
  await copyFile(path.join(src, 'agents.lua'), path.join(dir, 'agents.lua'));
  return { file: path.join(dir, 'policy.lua'), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** At the provider's (dev) login form: signs in as `email`. */
async function providerLogin(page, issuer, email) {
  await page.waitForURL((u) => u.href.startsWith(issuer), { timeout: 15_000 });
  await page.fill('input[name=login]', email);
  await page.fill('input[name=password]', 'any');
  await page.click('button[type=submit]');
}

/** The `/auth/me` answer for a raw Cookie header (outside the browser). */
async function meWithCookie(baseUrl, cookie) {
  const res = await fetch(`${baseUrl}auth/me`, { headers: cookie ? { cookie } : {} });
  return res.json();
}

/** Joins `room` over a raw WebSocket with `cookie`; resolves with the first answer. */
function joinWithCookie(wsUrl, cookie, room) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { headers: { cookie } });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('no answer to join in 10 s'));
    }, 10_000);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'join', room, name: 'Old cookie' })));
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'joined' || msg.type === 'error' || msg.type === 'lobby') {
        clearTimeout(timer);
        ws.close();
        resolve(msg);
      }
    });
    ws.on('error', reject);
  });
}

test('OIDC: agent signs in and opens a room; other domain refused; tampered callbacks refused; logout', { timeout: 240_000 }, async () => {
  const t0 = Date.now();
  const [opPort, salonPort] = [await freePort(), await freePort()];
  const base = `http://127.0.0.1:${salonPort}/`;
  const op = await startProvider({ port: opPort, redirectUri: `${base}auth/callback`, postLogoutUri: base });
  const policy = await policyFor('mairie.example.fr');
  const secretDir = await mkdtemp(path.join(tmpdir(), 'salon-oidc-secret-'));
  const secretFile = path.join(secretDir, 'client-secret');
  await writeFile(secretFile, `${op.clientSecret}\n`, { mode: 0o600 });
  const salon = await startSalon({
    policy: policy.file,
    listen: `127.0.0.1:${salonPort}`,
    extraArgs: [
      '--oidc-issuer', op.issuer,
      '--oidc-client-id', op.clientId,
      '--oidc-client-secret-file', secretFile,
      '--oidc-redirect-url', `${base}auth/callback`,
      '--oidc-acr-values', 'eidas1',
      '--oidc-post-logout-redirect-url', base,
    ],
  });
  const browsers = [];
  const browser = async () => {
    const b = await launchBrowser();
    browsers.push(b);
    return b.context;
  };
  const urls = [];
  try {
    assert.equal(salon.url, base);
    // --- An agent signs in from the pre-join screen and opens the room.
    const agentCtx = await browser();
    const agent = await agentCtx.newPage();
    agent.on('request', (r) => urls.push(r.url()));
    const agentSignaling = recordSignaling(agent, []);
    await agent.goto(`${base}Conseil?lang=fr`);
    await agent.waitForSelector('#auth-login', { timeout: 10_000 });
    assert.equal(await agent.textContent('#auth-login'), 'Se connecter');
    const tLogin = Date.now();
    await agent.click('#auth-login');
    await providerLogin(agent, op.issuer, AGENT);
    await agent.waitForURL(`${base}Conseil?lang=fr`, { timeout: 15_000 });
    const loginMs = Date.now() - tLogin;
    await agent.waitForSelector('#auth-who', { timeout: 10_000 });
    assert.equal(await agent.textContent('#auth-who'), 'Connecté·e : Camille Martin');
    const [session] = (await agentCtx.cookies(base)).filter((c) => c.name === 'salon_session');
    assert.ok(session, 'a session cookie');
    assert.deepEqual(op.events.find((e) => e.name === 'userinfo'), { name: 'userinfo', type: 'application/jwt', status: 200 }, 'signed user info read');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');
    assert.equal(session.path, '/');
    assert.ok(session.expires > Date.now() / 1000, 'an expiring cookie');
    assert.match(session.value, /^[A-Za-z0-9_-]{43}$/, '256-bit random id');
    await agent.fill('#name', 'Typed name');
    await agent.click('#join');
    await agent.waitForFunction(() => window.salonTest && window.salonTest.ready === true, null, { timeout: 15_000 });
    assert.equal(await agent.evaluate(() => window.salonTest.role()), 'moderator', 'the agent opened the room');
    assert.ok(agentSignaling.find((m) => m.type === 'joined'), 'joined');
    // No token and no session id in any URL the browser loaded at Salon.
    for (const u of urls.filter((u) => u.startsWith(base))) {
      assert.ok(!u.includes(session.value), `session id in ${u}`);
      assert.ok(!/[?&](jwt|id_token|access_token)=/.test(u), `token in ${u}`);
    }

    // --- Someone of another domain signs in but cannot open a room.
    const otherCtx = await browser();
    const other = await otherCtx.newPage();
    const otherSignaling = recordSignaling(other, []);
    await other.goto(`${base}auth/login?return=%2FAutre%3Flang%3Dfr`);
    await providerLogin(other, op.issuer, OTHER);
    await other.waitForURL(`${base}Autre?lang=fr`, { timeout: 15_000 });
    await other.waitForSelector('#auth-who', { timeout: 10_000 });
    assert.equal(await other.textContent('#auth-who'), 'Connecté·e : Dominique Durand');
    await other.fill('#name', 'Dominique');
    await other.click('#join');
    const refused = await waitFor(() => otherSignaling.find((m) => m.type === 'error'), 'the refusal', 15_000);
    assert.equal(refused.code, 'denied', JSON.stringify(refused));
    assert.equal(await other.evaluate(() => window.salonTest.ready), false);
    // It may join the agent's room, as a participant, and sees the agent
    // under the name the provider vouched for (not the one typed).
    const otherInRoom = recordSignaling(other, []);
    await other.goto(`${base}Conseil?lang=fr`);
    await other.fill('#name', 'Dominique');
    await other.click('#join');
    await other.waitForFunction(() => window.salonTest && window.salonTest.ready === true, null, { timeout: 15_000 });
    assert.equal(await other.evaluate(() => window.salonTest.role()), 'participant');
    const seen = otherInRoom.find((m) => m.type === 'joined');
    assert.deepEqual(seen.participants.map((p) => p.name), ['Camille Martin'], JSON.stringify(seen));
    await other.evaluate(() => window.salonTest.leaveNow());

    // --- Tampered and replayed callbacks.
    const evilCtx = await browser();
    const evil = await evilCtx.newPage();
    const callbacks = [];
    evil.on('request', (r) => {
      if (r.url().startsWith(`${base}auth/callback`)) callbacks.push(r.url());
    });
    await evil.goto(`${base}auth/login?return=/`);
    await providerLogin(evil, op.issuer, AGENT);
    await evil.waitForURL(base, { timeout: 15_000 });
    const first = new URL(callbacks[0]);
    const sessionOf = async () => (await evilCtx.cookies(base)).find((c) => c.name === 'salon_session')?.value;
    assert.equal((await meWithCookie(base, `salon_session=${await sessionOf()}`)).signed_in, true);
    // Replayed: the state was used.
    let res = await evil.goto(first.href);
    assert.equal(res.status(), 400);
    assert.match(await evil.textContent('#auth-error'), /^Connexion refusée : unknown, expired or already used login \(state\)/);
    // A login whose redirects this browser follows by hand (its cookies,
    // Salon's state cookie included), stopping at the callback; `alter`
    // may change a request to the provider on the way (a proxy).
    const heldLogin = async (alter = (u) => u) => {
      let url = `${base}auth/login?return=/`;
      for (let i = 0; i < 10; i++) {
        const r = await evilCtx.request.get(alter(url), { maxRedirects: 0 });
        const location = r.headers().location;
        assert.ok(location, `a redirect from ${new URL(url).pathname} (${r.status()})`);
        url = new URL(location, url).href;
        if (url.startsWith(`${base}auth/callback`)) return new URL(url);
      }
      throw new Error('no callback after 10 redirects');
    };
    // `state` changed on the way back: refused; the real one still works.
    const second = await heldLogin();
    const changed = new URL(second);
    const st = second.searchParams.get('state');
    changed.searchParams.set('state', (st[0] === 'A' ? 'B' : 'A') + st.slice(1));
    res = await evil.goto(changed.href);
    assert.equal(res.status(), 400);
    assert.match(await evil.textContent('#auth-error'), /\(state\)/);
    await evil.goto(second.href);
    assert.equal(evil.url(), base, 'the untampered callback signs in');
    // Another browser's login (login CSRF): its state is not this browser's.
    const stranger = await (await browser()).newPage();
    res = await stranger.goto((await heldLogin()).href);
    assert.equal(res.status(), 400);
    assert.match(await stranger.textContent('#auth-error'), /not started by this browser \(state\)/);
    // A used code under a fresh login's state: the provider refuses it.
    const third = await heldLogin();
    third.searchParams.set('code', first.searchParams.get('code'));
    res = await evil.goto(third.href);
    assert.equal(res.status(), 400);
    assert.match(await evil.textContent('#auth-error'), /tokens could not be verified/);
    assert.ok(op.events.some((e) => e.name === 'grant.error' && e.error === 'invalid_grant'), JSON.stringify(op.events));
    // A `nonce` altered on the way to the provider: the ID token carries it.
    const fourth = await heldLogin((u) => {
      if (!u.startsWith(`${op.issuer}/auth?`)) return u;
      const x = new URL(u);
      x.searchParams.set('nonce', 'altered-by-a-proxy');
      return x.href;
    });
    res = await evil.goto(fourth.href);
    assert.equal(res.status(), 400);
    assert.match(await evil.textContent('#auth-error'), /\(nonce\)/);
    // An `iss` (RFC 9207) naming another provider: a mix-up, refused.
    const fifth = await heldLogin();
    assert.equal(fifth.searchParams.get('iss'), op.issuer, 'the provider sends iss');
    fifth.searchParams.set('iss', 'https://other-idp.example');
    res = await evil.goto(fifth.href);
    assert.equal(res.status(), 400);
    assert.match(await evil.textContent('#auth-error'), /\(iss\)/);

    // --- Logout ends the session, here and at the provider.
    await agent.goto(`${base}?lang=fr`);
    await agent.waitForSelector('#auth-logout', { timeout: 10_000 });
    await agent.click('#auth-logout');
    await agent.waitForURL((u) => u.href.startsWith(`${op.issuer}/session/end`), { timeout: 15_000 });
    const endUrl = new URL(agent.url());
    await agent.click('button[name=logout]');
    await agent.waitForURL(base, { timeout: 15_000 });
    await agent.waitForSelector('#auth-login', { timeout: 10_000 });
    await agent.reload();
    await agent.waitForSelector('#auth-login', { timeout: 10_000 });
    assert.ok(urls.some((u) => u.startsWith(`${op.issuer}/session/end`) && u.includes('id_token_hint=') && u.includes('post_logout_redirect_uri=')), 'end_session with id_token_hint and post_logout_redirect_uri');
    assert.ok(endUrl.href.startsWith(`${op.issuer}/session/end`));
    const old = `salon_session=${session.value}`;
    assert.equal((await meWithCookie(base, old)).signed_in, false, 'the old cookie is dead');
    const answer = await joinWithCookie(salon.wsUrl, old, 'Nouvelle');
    assert.equal(answer.type, 'error', JSON.stringify(answer));
    assert.equal(answer.code, 'denied', 'a guest now: may not open a room');
    // Logout must be a same-origin POST.
    const get = await fetch(`${base}auth/logout`);
    assert.equal(get.status, 405);
    const cross = await fetch(`${base}auth/logout`, { method: 'POST', headers: { origin: 'https://evil.example' } });
    assert.equal(cross.status, 403);

    // Nothing personal or secret in Salon's log.
    const logs = salon.logs();
    for (const secret of [AGENT, OTHER, 'Camille', 'Martin', session.value, first.searchParams.get('code'), op.clientSecret]) {
      assert.ok(!logs.includes(secret), `"${secret}" in the log`);
    }
    console.log(`oidc: login round trip ${loginMs} ms; whole test ${Date.now() - t0} ms`);
  } finally {
    for (const b of browsers) await b.close();
    await salon.stop();
    await op.close();
    await policy.cleanup();
    await rm(secretDir, { recursive: true, force: true });
  }
});

test('OIDC: a provider down at start-up is reported, logins wait, and discovery is retried', { timeout: 90_000 }, async () => {
  const [opPort, salonPort] = [await freePort(), await freePort()];
  const base = `http://127.0.0.1:${salonPort}/`;
  const salon = await startSalon({
    policy: DEFAULT_POLICY,
    listen: `127.0.0.1:${salonPort}`,
    extraArgs: [
      '--oidc-issuer', `http://127.0.0.1:${opPort}`,
      '--oidc-client-id', 'salon-e2e',
      '--oidc-redirect-url', `${base}auth/callback`,
    ],
  });
  let op = null;
  try {
    assert.match(salon.logs(), /OIDC provider unreachable.*openid-configuration/);
    assert.deepEqual(await meWithCookie(base, null), { enabled: true, ready: false, signed_in: false });
    const res = await fetch(`${base}auth/login?return=/`, { redirect: 'manual' });
    assert.equal(res.status, 503);
    assert.match(await res.text(), /injoignable/);
    op = await startProvider({ port: opPort, redirectUri: `${base}auth/callback` });
    const t0 = Date.now();
    await waitFor(async () => (await meWithCookie(base, null)).ready, 'discovery retried', 60_000, 250);
    const waited = Date.now() - t0;
    const login = await fetch(`${base}auth/login?return=/`, { redirect: 'manual' });
    assert.equal(login.status, 303);
    const to = new URL(login.headers.get('location'));
    assert.equal(to.origin, op.issuer);
    for (const p of ['state', 'nonce', 'code_challenge']) assert.ok(to.searchParams.get(p), p);
    assert.equal(to.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(to.searchParams.get('scope'), 'openid given_name usual_name email uid siret');
    assert.match(login.headers.get('set-cookie'), /^salon_oidc_state=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Lax; Path=\/auth\/; Max-Age=600$/);
    console.log(`oidc: discovery retried ${waited} ms after the provider came up`);
  } finally {
    await salon.stop();
    if (op) await op.close();
  }
});

test('OIDC: a provider over HTTPS is reached with the CA of --oidc-ca-file, and only with it', { timeout: 120_000 }, async () => {
  const certs = await makeTestCerts({ dns: ['localhost'], ips: ['127.0.0.1'] });
  const [opPort, salonPort, otherPort] = [await freePort(), await freePort(), await freePort()];
  const base = `http://127.0.0.1:${salonPort}/`;
  const op = await startProvider({ port: opPort, redirectUri: `${base}auth/callback`, postLogoutUri: base, tls: certs });
  const policy = await policyFor('mairie.example.fr');
  const secretDir = await mkdtemp(path.join(tmpdir(), 'salon-oidc-secret-'));
  const secretFile = path.join(secretDir, 'client-secret');
  await writeFile(secretFile, op.clientSecret, { mode: 0o600 });
  const oidcArgs = (redirectBase) => [
    '--oidc-issuer', op.issuer,
    '--oidc-client-id', op.clientId,
    '--oidc-client-secret-file', secretFile,
    '--oidc-redirect-url', `${redirectBase}auth/callback`,
  ];
  const salon = await startSalon({
    policy: policy.file,
    listen: `127.0.0.1:${salonPort}`,
    extraArgs: [...oidcArgs(base), '--oidc-ca-file', path.join(certs.dir, 'ca.pem')],
  });
  // The system's CA bundle does not know the test CA: discovery must fail.
  const untrusting = await startSalon({
    policy: policy.file,
    listen: `127.0.0.1:${otherPort}`,
    extraArgs: oidcArgs(`http://127.0.0.1:${otherPort}/`),
  });
  let b = null;
  try {
    assert.equal(op.issuer, `https://127.0.0.1:${opPort}`);
    assert.equal((await meWithCookie(base, null)).ready, true, 'discovered over TLS');
    assert.match(untrusting.logs(), /OIDC provider unreachable.*tls/);
    assert.equal((await meWithCookie(`http://127.0.0.1:${otherPort}/`, null)).ready, false);
    // A whole login: code, tokens and user info over TLS.
    b = await launchBrowser({ spki: [certs.spki] });
    const page = await b.context.newPage();
    await page.goto(`${base}auth/login?return=%2F%3Flang%3Dfr`);
    await providerLogin(page, op.issuer, AGENT);
    await page.waitForURL(`${base}?lang=fr`, { timeout: 15_000 });
    await page.waitForSelector('#auth-who', { timeout: 10_000 });
    assert.equal(await page.textContent('#auth-who'), 'Connecté·e : Camille Martin');
  } finally {
    if (b) await b.close();
    await salon.stop();
    await untrusting.stop();
    await op.close();
    await policy.cleanup();
    await certs.cleanup();
    await rm(secretDir, { recursive: true, force: true });
  }
});

test('OIDC: an ID token at a lower level than the acr_values asked for is refused', { timeout: 90_000 }, async () => {
  const [opPort, salonPort] = [await freePort(), await freePort()];
  const base = `http://127.0.0.1:${salonPort}/`;
  // The provider authenticated the agent at `eidas0` (say, a fallback it
  // allows) while Salon asks for `eidas1`: no session.
  const op = await startProvider({ port: opPort, redirectUri: `${base}auth/callback`, acr: 'eidas0' });
  const secretDir = await mkdtemp(path.join(tmpdir(), 'salon-oidc-secret-'));
  const secretFile = path.join(secretDir, 'client-secret');
  await writeFile(secretFile, `${op.clientSecret}\n`, { mode: 0o600 });
  const salon = await startSalon({
    policy: DEFAULT_POLICY,
    listen: `127.0.0.1:${salonPort}`,
    extraArgs: [
      '--oidc-issuer', op.issuer,
      '--oidc-client-id', op.clientId,
      '--oidc-client-secret-file', secretFile,
      '--oidc-redirect-url', `${base}auth/callback`,
      '--oidc-acr-values', 'eidas1',
    ],
  });
  const b = await launchBrowser();
  try {
    const page = await b.context.newPage();
    let callback = null;
    page.on('response', (r) => {
      if (r.url().startsWith(`${base}auth/callback`)) callback = r;
    });
    await page.goto(`${base}auth/login?return=/`);
    await providerLogin(page, op.issuer, AGENT);
    await waitFor(() => callback, 'the callback', 15_000);
    assert.equal(callback.status(), 400);
    await page.waitForSelector('#auth-error', { timeout: 10_000 });
    assert.match(await page.textContent('#auth-error'), /^Connexion refusée : .*acr/);
    assert.equal((await b.context.cookies(base)).find((c) => c.name === 'salon_session'), undefined, 'no session');
  } finally {
    await b.close();
    await salon.stop();
    await op.close();
    await rm(secretDir, { recursive: true, force: true });
  }
});
