// People leave and come back: a meeting that empties and refills keeps the
// one who stayed. A and B meet, B leaves (A's subscribe offer then has
// every m-line inactive, still bundled), C joins (C's tracks reuse B's
// m-lines), then B comes back: A sees and hears each of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, launchBrowser, joinRoom, receiving, metric, sleep } from './helpers.mjs';


test('a meeting that empties and refills keeps the one who stayed', { timeout: 150_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const room = 'Salon-Churn';

  const aline = await joinRoom(browser.context, salon.url, room, 'Aline');
  const bruno = await joinRoom(browser.context, salon.url, room, 'Bruno');
  t.diagnostic(`A ← B after ${await receiving(aline, bruno, 30_000)} ms`);

  // B leaves: A is alone, its offer has only inactive lines.
  await bruno.page.click('#leave');
  await aline.page.waitForSelector(`#tile-${bruno.id}`, { state: 'detached', timeout: 10_000 });
  await sleep(1_000);
  const errors = async () => (await aline.page.textContent('#error')).trim();
  assert.equal(await errors(), '', 'no error on the page of the one who stayed');
  await bruno.page.close();

  // C joins: A receives C, C receives A.
  const joined = Date.now();
  const chloe = await joinRoom(browser.context, salon.url, room, 'Chloé');
  const ac = await receiving(aline, chloe, 20_000);
  t.diagnostic(`A ← C ${Date.now() - joined} ms after C opened the page (${ac} ms after C was in)`);
  await receiving(chloe, aline, 20_000);
  const sdp = await aline.page.evaluate(() => window.salonTest.pcs().sub.remoteDescription.sdp);
  const lines = sdp.split(/\r?\n/).filter((l) => l.startsWith('m=')).length;
  t.diagnostic(`A's subscribe SDP has ${lines} m-lines after B left and C came`);
  assert.equal(lines, 2, "C's tracks reuse B's m-lines");

  // B comes back (a new page): A receives B and still C.
  const back = Date.now();
  const bruno2 = await joinRoom(browser.context, salon.url, room, 'Bruno');
  await receiving(aline, bruno2, 20_000);
  t.diagnostic(`A ← B again ${Date.now() - back} ms after B reopened the page`);
  await receiving(aline, chloe, 10_000);
  await receiving(bruno2, aline, 20_000);
  assert.equal(await errors(), '', 'still no error');
  const recycled = await metric(salon, 'mediad_lines_recycled_total');
  assert.ok(recycled >= 2, `m-lines were reused (${recycled})`);
  const failed = await metric(salon, 'mediad_negotiation_failed_total');
  assert.equal(failed, 0, 'no answer was refused');
});
