// Three browsers in one room see and hear each other through mediad; a
// fourth in another room receives nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, launchBrowser, joinRoom, sleep } from './helpers.mjs';

const FLOW_DEADLINE_MS = 45_000;

test('media flows between three participants, not across rooms', { timeout: 120_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const names = ['Aline', 'Bérénice', 'Chloé'];
  const peers = [];
  for (const name of names) {
    peers.push(await joinRoom(browser.context, salon.url, 'NomDuSalon123', name));
  }
  const outsider = await joinRoom(browser.context, salon.url, 'AutreSalon', 'Denis');

  const stats = (p) => p.page.evaluate(() => window.salonTest.stats());
  const started = Date.now();
  const deadline = started + FLOW_DEADLINE_MS;
  let last = null;
  let flowing = false;
  while (Date.now() < deadline) {
    const first = await Promise.all(peers.map(stats));
    await sleep(1_000);
    const second = await Promise.all(peers.map(stats));
    last = second;
    flowing = peers.every((p, i) =>
      peers
        .filter((q) => q !== p)
        .every((q) => {
          const a = first[i][q.id];
          const b = second[i][q.id];
          return a && b && b.framesDecoded > a.framesDecoded && b.audioBytesReceived > 0;
        }),
    );
    if (flowing) break;
  }
  const ids = peers.map((p) => `${p.name}=${p.id}`).join(', ');
  assert.ok(
    flowing,
    `media did not flow within ${FLOW_DEADLINE_MS} ms (${ids})\n` +
      `last stats: ${JSON.stringify(last)}\n--- salon log tail ---\n${salon.logs().slice(-4000)}`,
  );
  t.diagnostic(`media flowing ${Date.now() - started} ms after the last join`);
  for (const [i, p] of peers.entries()) {
    for (const q of peers.filter((x) => x !== p)) {
      const s = last[i][q.id];
      t.diagnostic(
        `${p.name} ← ${q.name}: ${s.frameWidth}x${s.frameHeight}, ${s.framesDecoded} frames, ` +
          `video ${s.videoBytesReceived} B, audio ${s.audioBytesReceived} B`,
      );
      assert.ok(s.frameWidth > 0 && s.frameHeight > 0, `${p.name} sees ${q.name} with a size`);
      assert.ok(s.videoBytesReceived > 0);
    }
  }
  // Each tile shows the publisher's name as text.
  const captions = await peers[0].page.$$eval('#tiles figcaption', (els) => els.map((e) => e.textContent));
  assert.ok(captions.some((c) => c.includes('Bérénice')) && captions.some((c) => c.includes('Chloé')));

  // The outsider, alone in AutreSalon, got no media at all.
  await sleep(2_000);
  const outsiderStats = await outsider.page.evaluate(() => window.salonTest.stats());
  assert.deepEqual(outsiderStats, {});
  assert.equal(await outsider.page.evaluate(() => window.salonTest.inboundBytes()), 0);
  const outsiderTiles = await outsider.page.$$eval('#tiles .tile:not(.self)', (els) => els.length);
  assert.equal(outsiderTiles, 0);

  // Chloé leaves: her tile goes away for the others (mediad re-offers the
  // subscribe transport without her tracks) and the two left keep flowing.
  const [aline, berenice, chloe] = peers;
  await chloe.page.click('#leave');
  for (const p of [aline, berenice]) {
    await p.page.waitForSelector(`#tile-${chloe.id}`, { state: 'detached', timeout: 10_000 });
  }
  let still = false;
  const until = Date.now() + 15_000;
  while (!still && Date.now() < until) {
    const before = await Promise.all([stats(aline), stats(berenice)]);
    await sleep(1_000);
    const after = await Promise.all([stats(aline), stats(berenice)]);
    still =
      after[0][berenice.id]?.framesDecoded > before[0][berenice.id]?.framesDecoded &&
      after[1][aline.id]?.framesDecoded > before[1][aline.id]?.framesDecoded;
  }
  assert.ok(still, 'media stopped between the two who stayed');
  const errors = await Promise.all([aline, berenice].map((p) => p.page.textContent('#error')));
  assert.deepEqual(errors, ['', ''], 'no client error after the re-offer');
});
