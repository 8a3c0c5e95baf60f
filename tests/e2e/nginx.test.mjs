// Salon behind nginx, the way docs/deploy.md tells operators to run it:
// deploy/nginx/salon.conf rendered for the test (a test certificate made
// now, loopback ports), our own nginx process (never the system service),
// Salon in plain HTTP on loopback with --allowed-host and --trusted-proxy.
// Two browsers meet through it and decode each other; a WebSocket from
// another site's page is refused through the proxy; plain HTTP redirects;
// the access log holds no query string.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ensureNginx,
  haveCommand,
  httpsGet,
  joinRoom,
  launchBrowser,
  makeTestCerts,
  receiving,
  startNginx,
  startSalon,
  upgradeStatus,
  waitFor,
} from './helpers.mjs';

test('two browsers meet through nginx as reverse proxy; origin check, redirect, logs', { timeout: 120_000 }, async (t) => {
  if (!haveCommand('openssl')) {
    t.skip('openssl not found (apt-get install -y openssl)');
    return;
  }
  if (ensureNginx() === null) {
    // scripts/test-all.sh installs it: in CI this test runs.
    t.skip('nginx is not installed and cannot be installed here (apt-get install -y nginx)');
    return;
  }
  const certs = await makeTestCerts();
  t.after(() => certs.cleanup());
  const salon = await startSalon({ extraArgs: ['--allowed-host', 'localhost', '--trusted-proxy', '127.0.0.1'] });
  t.after(() => salon.stop());
  const nginx = await startNginx({ upstream: new URL(salon.url).host, certs });
  t.after(() => nginx.stop());

  // Plain HTTP only redirects, to the fixed name.
  const port = new URL(nginx.url).port;
  const redirect = await fetch(`${nginx.httpUrl}SalleProxy?lang=en`, { redirect: 'manual' });
  assert.equal(redirect.status, 308);
  assert.equal(redirect.headers.get('location'), `https://localhost:${port}/SalleProxy?lang=en`);

  // A page through the proxy: Salon's headers and nginx's HSTS.
  const page = await httpsGet(`${nginx.url}SalleProxy?jwt=secret-in-a-query`, certs.ca);
  assert.equal(page.status, 200);
  assert.equal(page.headers['strict-transport-security'], 'max-age=31536000');
  assert.match(page.headers['content-security-policy'] ?? '', /default-src 'self'/);

  const browser = await launchBrowser({ spki: [certs.spki] });
  t.after(() => browser.close());
  const ana = await joinRoom(browser.context, nginx.url, 'SalleProxy', 'Ana');
  const bruno = await joinRoom(browser.context, nginx.url, 'SalleProxy', 'Bruno');
  const where = await ana.page.evaluate(() => location.origin);
  assert.equal(where, `https://localhost:${port}`);
  const ms = await Promise.all([receiving(ana, bruno, 30_000), receiving(bruno, ana, 30_000)]);
  t.diagnostic(`both decode each other through nginx (${Math.max(...ms)} ms)`);

  // The origin check through the proxy (Host kept as the browser sent it).
  const wss = `${nginx.url.replace(/^https/, 'wss')}ws`;
  assert.equal(await upgradeStatus(wss, { origin: 'https://evil.example', ca: certs.ca }), 403);
  assert.equal(await upgradeStatus(wss, { origin: `https://localhost:${port}`, ca: certs.ca }), 101);

  // The access log names paths, never query strings. nginx logs an
  // upgraded request when its connection ends: wait for it (bounded).
  let log = '';
  await waitFor(
    async () => {
      log = await nginx.accessLog();
      return /"GET \/ws HTTP\/1\.1" 101/.test(log);
    },
    'the WebSocket upgrade in the access log',
    10_000,
    100,
  );
  assert.match(log, /"GET \/SalleProxy HTTP\/1\.1" 200/);
  for (const secret of ['secret-in-a-query', 'jwt=', 'lang=', '?']) {
    assert.ok(!log.includes(secret), `the access log holds ${JSON.stringify(secret)}:\n${log}`);
  }
});
