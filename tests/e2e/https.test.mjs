// HTTPS in the gateway itself (`--tls-cert`/`--tls-key`): a test CA and a
// server certificate made now with openssl; Chromium accepts that one
// certificate by its SPKI pin (no `--ignore-certificate-errors`). Two
// browsers meet over https:// and decode each other; a WebSocket from
// another site's page is refused over TLS too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  haveCommand,
  httpsGet,
  joinRoom,
  launchBrowser,
  makeTestCerts,
  receiving,
  startSalon,
  upgradeStatus,
} from './helpers.mjs';

test('two browsers meet over the gateway\'s own HTTPS; the origin check holds', { timeout: 120_000 }, async (t) => {
  if (!haveCommand('openssl')) {
    t.skip('openssl not found (apt-get install -y openssl)');
    return;
  }
  const certs = await makeTestCerts();
  t.after(() => certs.cleanup());
  const salon = await startSalon({ tls: certs });
  t.after(() => salon.stop());
  assert.match(salon.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
  assert.match(salon.wsUrl, /^wss:\/\//);

  // A page under the test CA, with HSTS.
  const page = await httpsGet(`${salon.url}SalleTls`, certs.ca);
  assert.equal(page.status, 200);
  assert.equal(page.headers['strict-transport-security'], 'max-age=31536000');

  // Without the pin, Chromium refuses the certificate: the pin is what
  // makes it trusted, nothing else.
  const unpinned = await launchBrowser();
  try {
    const p = await unpinned.context.newPage();
    await assert.rejects(p.goto(`${salon.url}SalleTls`), /ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    await unpinned.close();
  }

  const browser = await launchBrowser({ spki: [certs.spki] });
  t.after(() => browser.close());
  const ana = await joinRoom(browser.context, salon.url, 'SalleTls', 'Ana');
  const bruno = await joinRoom(browser.context, salon.url, 'SalleTls', 'Bruno');
  for (const p of [ana, bruno]) {
    const where = await p.page.evaluate(() => ({ protocol: location.protocol, secure: window.isSecureContext }));
    assert.deepEqual(where, { protocol: 'https:', secure: true });
  }
  const ms = await Promise.all([receiving(ana, bruno, 30_000), receiving(bruno, ana, 30_000)]);
  t.diagnostic(`both decode each other over https (${Math.max(...ms)} ms)`);

  // The origin check over TLS: another site's page is refused, ours opens.
  assert.equal(await upgradeStatus(salon.wsUrl, { origin: 'https://evil.example', ca: certs.ca }), 403);
  assert.equal(await upgradeStatus(salon.wsUrl, { origin: salon.url.replace(/\/$/, ''), ca: certs.ca }), 101);
});
