// The connection-test page (/test): what a citizen or an agent sees before a
// meeting. On loopback every configured check passes (UDP and TCP to
// mediad; the TURN checks read "non configuré" without TURN), the camera
// preview plays and the microphone meter moves. In a network namespace
// whose UDP is dropped, the UDP check fails with its French explanation
// (naming mediad's address and ports) and the TCP check passes. The
// probes leave nothing behind in the server (metrics). With our own coturn
// beside the server, all four checks pass; then with only Salon's HTTP port
// and TURN over TLS let out, only the TURN/TLS check passes and the three
// others say what to open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startSalon, launchBrowser, twoHosts, waitFor, metric, haveCommand, makeTestCerts } from './helpers.mjs';
import { blockUdp, metricIn } from './netns.mjs';
import { SERVER, TURN_PORT, TURNS_PORT, coturnFor } from './coturn.mjs';

/** Opens /test and waits until the page has run every check. */
async function runPage(context, baseUrl, query = '?lang=fr') {
  const page = await context.newPage();
  const started = Date.now();
  await page.goto(new URL('test' + query, baseUrl).href);
  await page.waitForFunction(() => window.salonTest?.done === true, null, { timeout: 60_000 });
  const elapsed = Date.now() - started;
  const checks = await page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('#checks li')].map((li) => [
        li.id,
        {
          state: li.dataset.state,
          result: li.querySelector('.check-result').textContent,
          fix: li.querySelector('.check-fix').textContent,
        },
      ]),
    ),
  );
  const summary = await page.locator('#summary').textContent();
  return { page, checks, summary, elapsed };
}

test('connection test on loopback: camera, microphone, UDP and TCP pass, TURN not configured', { timeout: 120_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  // The links to /test: on the home page and on the pre-join screen.
  const home = await browser.context.newPage();
  await home.goto(salon.url + '?lang=fr');
  assert.equal(await home.locator('#test-link').textContent(), 'Tester ma connexion');
  assert.equal(await home.locator('#test-link').getAttribute('href'), '/test?lang=fr');
  await home.goto(salon.url + 'Salle-Test?lang=fr');
  assert.equal(await home.locator('#prejoin-test-link').textContent(), 'Tester ma connexion');
  assert.equal(await home.locator('#prejoin-test-link').getAttribute('href'), '/test?lang=fr');
  await home.close();

  const { page, checks, summary, elapsed } = await runPage(browser.context, salon.url);
  t.diagnostic(`all checks done in ${elapsed} ms: ${JSON.stringify(checks)}`);
  assert.equal(await page.locator('h1').textContent(), 'Tester ma connexion');
  assert.equal(checks['check-udp'].state, 'ok');
  assert.equal(checks['check-udp'].result, 'OK');
  assert.equal(checks['check-tcp'].state, 'ok');
  assert.equal(checks['check-turn-udp'].state, 'unconfigured');
  assert.equal(checks['check-turn-udp'].result, 'non configuré');
  assert.equal(checks['check-turn-tls'].state, 'unconfigured');
  assert.equal(summary, 'Tout fonctionne : vous pouvez rejoindre une réunion.');

  // Camera preview plays, microphone meter moves (the fake device beeps).
  const video = await page.evaluate(() => ({ w: document.getElementById('preview').videoWidth, playing: !document.getElementById('preview').paused }));
  assert.ok(video.w > 0 && video.playing, `preview plays: ${JSON.stringify(video)}`);
  const level = await waitFor(
    async () => {
      const v = await page.locator('#mic-level').evaluate((m) => m.value);
      return v > 0.01 ? v : null;
    },
    'the microphone meter moves',
    10_000,
    100,
  );
  t.diagnostic(`mic level ${level.toFixed(3)}`);
  const pickers = await page.evaluate(() => ['camera-select', 'mic-select'].map((id) => document.getElementById(id).options.length));
  assert.ok(pickers[0] >= 1 && pickers[1] >= 1, `device pickers filled: ${pickers}`);

  // English too.
  const en = await runPage(browser.context, salon.url, '?lang=en');
  assert.equal(await en.page.locator('h1').textContent(), 'Test my connection');
  assert.equal(en.checks['check-turn-tls'].result, 'not configured');
  assert.equal(en.checks['check-udp'].state, 'ok');

  // Two page runs, two probes each; the probes are gone once the sockets close.
  assert.equal(await metric(salon, 'salon_gateway_probes_total{outcome="started"}'), 4);
  assert.equal(await metric(salon, 'salon_gateway_probes_total{outcome="refused"}'), 0);
  await waitFor(async () => ((await metric(salon, 'salon_gateway_probes_live')) === 0 ? true : null), 'no live probe', 5_000);
  assert.equal(await metric(salon, 'salon_gateway_rooms'), 0, 'a probe makes no room');
});

test(
  'connection test with UDP blocked: the UDP check fails with its explanation, TCP passes',
  { timeout: 150_000, skip: process.getuid?.() !== 0 ? 'needs root for network namespaces' : false },
  async (t) => {
    const net = await twoHosts();
    t.after(() => net.cleanup());
    const blocked = blockUdp(net.rcv);
    t.diagnostic(`UDP dropped in ${net.rcv} with ${blocked.tool}`);
    const salon = await startSalon({ netns: net.srv, listen: '127.0.0.2:0', extraArgs: ['--media-ip', '127.0.0.2'] });
    t.after(() => salon.stop());
    const far = await launchBrowser({ netns: net.rcv });
    t.after(() => far.close());

    const { checks, summary, elapsed } = await runPage(far.context, salon.url);
    t.diagnostic(`all checks done in ${elapsed} ms: ${JSON.stringify(checks)}`);
    assert.equal(checks['check-udp'].state, 'failed');
    assert.equal(checks['check-udp'].result, 'échec');
    assert.match(
      checks['check-udp'].fix,
      /^Votre réseau bloque le trafic UDP vers le serveur de visioconférence\. Demandez à votre service informatique d’autoriser l’UDP sortant vers 127\.0\.0\.2 port \d+, ou d’ouvrir le TCP vers le port \d+\.$/,
    );
    assert.equal(checks['check-tcp'].state, 'ok');
    assert.equal(checks['check-tcp'].fix, '');
    assert.equal(checks['check-turn-udp'].state, 'unconfigured');
    assert.equal(summary, 'Vous pouvez rejoindre une réunion, mais certaines vérifications ont échoué (voir ci-dessous).');
    assert.equal(await metricIn(net.srv, salon, 'salon_gateway_probes_total{outcome="started"}'), 2);
  },
);

/** In namespace `ns`, lets out only TCP to the server's `ports`; all UDP dropped. */
function onlyTcpTo(ns, ports) {
  execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
    input: `table inet salon_conntest {
  chain out {
    type filter hook output priority 0; policy accept;
    meta l4proto udp drop
    ip daddr ${SERVER} tcp dport != { ${ports.join(', ')} } drop
  }
}
`,
    stdio: ['pipe', 'ignore', 'pipe'],
  });
}

const turnSkip =
  process.getuid?.() !== 0
    ? 'needs root for network namespaces and nftables'
    : !haveCommand('turnserver')
      ? 'coturn is not installed (apt-get install coturn)'
      : !haveCommand('nft')
        ? 'nftables is not installed'
        : false;

test('connection test with coturn: all four checks pass, then only TURN/TLS through a strict firewall', { timeout: 240_000, skip: turnSkip }, async (t) => {
  const net = await twoHosts();
  t.after(() => net.cleanup());
  const certs = await makeTestCerts({ dns: ['localhost'], ips: [SERVER] });
  t.after(() => certs.cleanup());
  const { dir, coturn } = await coturnFor(t, net.srv, certs, 'salon-conntest-');
  const salon = await startSalon({
    netns: net.srv,
    listen: `${SERVER}:0`,
    extraArgs: [
      '--media-ip', SERVER,
      '--turn-secret-file', path.join(dir, 'turn-secret'),
      '--turn-url', `turn:${SERVER}:${TURN_PORT}?transport=udp`,
      '--turn-url', `turns:${SERVER}:${TURNS_PORT}?transport=tcp`,
    ],
  });
  t.after(() => salon.stop());
  const far = await launchBrowser({ netns: net.rcv, spki: [certs.spki] });
  t.after(() => far.close());

  const open = await runPage(far.context, salon.url);
  t.diagnostic(`open network, all checks done in ${open.elapsed} ms: ${JSON.stringify(open.checks)}`);
  for (const id of ['check-udp', 'check-tcp', 'check-turn-udp', 'check-turn-tls']) {
    assert.equal(open.checks[id].state, 'ok', `${id}: ${JSON.stringify(open.checks[id])}\n${await coturn.log()}`);
  }
  assert.equal(open.summary, 'Tout fonctionne : vous pouvez rejoindre une réunion.');

  onlyTcpTo(net.rcv, [Number(new URL(salon.url).port), TURNS_PORT]);
  const strict = await runPage(far.context, salon.url);
  t.diagnostic(`strict firewall, all checks done in ${strict.elapsed} ms: ${JSON.stringify(strict.checks)}`);
  assert.equal(strict.checks['check-udp'].state, 'failed');
  assert.equal(strict.checks['check-tcp'].state, 'failed');
  assert.match(
    strict.checks['check-tcp'].fix,
    /^Votre réseau bloque les connexions TCP directes vers le serveur de visioconférence\. Demandez à votre service informatique d’autoriser le TCP sortant vers 127\.0\.0\.2 port \d+\.$/,
  );
  assert.equal(strict.checks['check-turn-udp'].state, 'failed');
  assert.equal(
    strict.checks['check-turn-udp'].fix,
    `Votre réseau bloque l’UDP vers le relais de visioconférence (TURN). Demandez à votre service informatique d’autoriser l’UDP sortant vers ${SERVER} port ${TURN_PORT}.`,
  );
  assert.equal(strict.checks['check-turn-tls'].state, 'ok');
  assert.equal(strict.summary, 'Vous pouvez rejoindre une réunion, mais certaines vérifications ont échoué (voir ci-dessous).');
  assert.equal(await metricIn(net.srv, salon, 'salon_gateway_probes_total{outcome="refused"}'), 0);
});
