// Supervision (docs/security.md): a panic in a media worker makes
// salon exit with status 70; its supervisor starts it again — this test
// plays the supervisor, on the same HTTP port — and the pages get back into
// a meeting by themselves: their resume token means nothing to the new
// process (`resume-failed`), so each joins again as a new participant
// (status « rejoining »), keeping its camera, and they decode each other's
// video again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, launchBrowser, joinRoom, receiving, waitFor } from './helpers.mjs';

const ROOM = 'Reunion-Relance';
const FAULTS = ['--enable-fault-injection'];

test('supervision: a media worker panics, salon exits 70, is restarted, and both pages come back', { timeout: 60_000 }, async (t) => {
  const first = await startSalon({ extraArgs: FAULTS });
  t.after(() => first.stop());
  const port = new URL(first.url).port;
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const started = Date.now();
  const log = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);

  const alice = await joinRoom(browser.context, first.url, ROOM, 'Alice');
  const bruno = await joinRoom(browser.context, first.url, ROOM, 'Bruno');
  await receiving(alice, bruno, 20_000);
  await receiving(bruno, alice, 20_000);
  log('media both ways');

  // Record every state the status line shows through the outage.
  for (const p of [alice, bruno]) {
    await p.page.evaluate(() => {
      const el = document.querySelector('#status');
      window.statesShown = [];
      new MutationObserver(() => window.statesShown.push(el.dataset.state)).observe(el, {
        attributes: true,
        attributeFilter: ['data-state'],
      });
    });
  }

  first.signal('SIGUSR2');
  const { code } = await first.exited;
  assert.equal(code, 70, 'a failed media worker exits with status 70');
  assert.match(first.logs(), /ERROR.*media worker failed/, 'the reason, at error level');
  assert.match(first.logs(), /fault injection: a panic was requested/);
  log('salon exited with 70');

  // The supervisor starts it again on the same address.
  const restartedAt = Date.now();
  const second = await startSalon({ listen: `127.0.0.1:${port}`, extraArgs: FAULTS });
  t.after(() => second.stop());
  log('salon restarted');

  const back = async (p) => {
    await waitFor(
      async () => p.page.evaluate(() => window.salonTest.ready === true && window.salonTest.phase() === 'call'),
      `${p.name} back in the meeting`,
      20_000,
    );
    p.id = String(await p.page.evaluate(() => window.salonTest.id));
  };
  const oldIds = [alice.id, bruno.id];
  await Promise.all([back(alice), back(bruno)]);
  assert.ok(!oldIds.includes(alice.id) && !oldIds.includes(bruno.id), 'new participants of the new process');
  const left = Math.max(1_000, 20_000 - (Date.now() - restartedAt));
  await Promise.all([receiving(alice, bruno, left), receiving(bruno, alice, left)]);
  const took = Date.now() - restartedAt;
  log(`media both ways again ${took} ms after the restart`);
  assert.ok(took <= 20_000, `${took} ms`);

  for (const p of [alice, bruno]) {
    const shown = await p.page.evaluate(() => window.statesShown);
    log(`${p.name}: ${shown.join(' → ')}`);
    assert.ok(shown.includes('rejoining'), `${p.name} showed it was joining again: ${shown}`);
  }
  assert.equal(second.logs().includes('media worker failed'), false);
});
