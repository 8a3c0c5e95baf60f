// Firefox as a first-class browser: Debian's firefox-esr, driven by
// puppeteer-core over WebDriver BiDi (launchFirefox in helpers.mjs, with
// the fake-media and loopback prefs), in the same rooms as Chromium.
// Firefox gives remote tracks random ids and offers new transceivers as
// `m=video 0 … a=bundle-only`; the client keys remote tracks by the SDP's
// msid per mid, so tiles, tile-size constraints and the stage work there.
// Headless Firefox's getDisplayMedia cannot be faked (NotFoundError): its
// "screen" is a canvas captureStream() track published through the same
// share path (window.salonTest.shareTrack).
// At most 3 pages at a time (the machine has 2 cores).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, launchBrowser, launchFirefox, joinRoom, receiving, metric, waitFor, sleep } from './helpers.mjs';



/** Every page receives every other one (audio and video); returns a log line. */
async function allReceiveAll(pages, timeoutMs) {
  const took = [];
  for (const p of pages) {
    for (const q of pages) {
      if (p !== q) took.push(`${p.name}←${q.name} ${await receiving(p, q, timeoutMs)} ms`);
    }
  }
  return took.join(', ');
}

test('Firefox and Chromium in one room decode each other', { timeout: 90_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const firefox = await launchFirefox();
  t.after(() => firefox.close());
  const chromium = await launchBrowser();
  t.after(() => chromium.close());
  const room = 'Renard-Chrome';

  const fox = await joinRoom(firefox.context, salon.url, room, 'Renard');
  const chrome = await joinRoom(chromium.context, salon.url, room, 'Chrome');
  t.diagnostic(await allReceiveAll([fox, chrome], 30_000));

  // Firefox publishes its camera in the same three simulcast layers.
  const enc = await fox.page.evaluate(() => window.salonTest.publishEncodings());
  assert.deepEqual(
    enc.encodings.map((e) => e.rid),
    ['q', 'h', 'f'],
    JSON.stringify(enc),
  );
  const offer = await fox.page.evaluate(() => window.salonTest.pcs().pub.localDescription.sdp);
  assert.match(offer, /^a=simulcast:send q;h;f\r?$/m, 'Firefox offers its three layers');
  // Firefox's remote track ids are its own; the client's keys are the SDP's.
  const [video] = await fox.page.evaluate(() => window.salonTest.inboundVideo());
  t.diagnostic(`Firefox receives ${video.trackId} as MediaStreamTrack ${video.mediaTrackId}`);
  assert.equal(video.publisher, chrome.id);
  assert.equal(video.trackId, `${chrome.id}-${video.trackId.split('-')[1]}`);
  assert.equal((await fox.page.textContent('#error')).trim(), '', 'no error on the Firefox page');
});

test('two Firefox pages and one Chromium page all decode each other', { timeout: 120_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const firefox = await launchFirefox();
  t.after(() => firefox.close());
  const chromium = await launchBrowser();
  t.after(() => chromium.close());
  const room = 'Deux-Renards';

  const fox1 = await joinRoom(firefox.context, salon.url, room, 'Renard1');
  const fox2 = await joinRoom(firefox.context, salon.url, room, 'Renard2');
  const chrome = await joinRoom(chromium.context, salon.url, room, 'Chrome');
  t.diagnostic(await allReceiveAll([fox1, fox2, chrome], 30_000));
  for (const p of [fox1, fox2]) {
    assert.equal((await p.page.textContent('#error')).trim(), '', `no error on ${p.name}'s page`);
  }
  const failed = await metric(salon, 'mediad_negotiation_failed_total');
  assert.equal(failed, 0, 'no answer was refused');
});

test('a Firefox page in a small tile receives the low layer', { timeout: 120_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const firefox = await launchFirefox();
  t.after(() => firefox.close());
  const chromium = await launchBrowser();
  t.after(() => chromium.close());
  const room = 'Renard-Petit';
  const started = Date.now();
  const log = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);

  // Chromium publishes 1280x720 in three layers (320x180, 640x360, 1280x720).
  const publisher = await joinRoom(chromium.context, salon.url, room, 'Paula');
  const fox = await joinRoom(firefox.context, salon.url, room, 'Renard', { camera: false });
  const camera = async () =>
    (await fox.page.evaluate(() => window.salonTest.inboundVideo())).find((s) => s.publisher === publisher.id) ?? null;

  await fox.page.evaluate(() => window.salonTest.setTileHeight(180));
  let s = null;
  const smallUntil = Date.now() + 40_000;
  while (Date.now() < smallUntil) {
    s = await camera();
    if (s && s.framesDecoded > 10 && s.frameWidth > 0 && s.frameWidth <= 400) break;
    await sleep(1_000);
  }
  const sent = await fox.page.evaluate(() => window.salonTest.constraintsSent());
  log(`small tile: ${JSON.stringify(s)}`);
  assert.ok(
    s && s.framesDecoded > 10 && s.frameWidth > 0 && s.frameWidth <= 400,
    `Firefox's small tile decodes ${s?.frameWidth}x${s?.frameHeight}, want ≤ 400 wide: ${JSON.stringify(s)}\n` +
      `constraints sent ${JSON.stringify(sent)}`,
  );
  assert.ok(
    sent.some((list) => list.some((c) => c.track_id === s.trackId && c.max_height > 0 && c.max_height <= 180)),
    `Firefox sent a max_height of at most 180 for ${s.trackId}: ${JSON.stringify(sent)}`,
  );
  // Still the low layer a few seconds on, and still live.
  await sleep(3_000);
  const s2 = await camera();
  log(`small tile 3 s later: ${s2.frameWidth}x${s2.frameHeight}, ${s2.framesDecoded - s.framesDecoded} more frames`);
  assert.ok(s2.frameWidth <= 400 && s2.framesDecoded > s.framesDecoded, JSON.stringify(s2));

  // The same page with a large tile gets a higher layer: the small one was
  // chosen for its size, not because nothing else was sent.
  await fox.page.evaluate(() => window.salonTest.setTileHeight(720));
  let l = null;
  const largeUntil = Date.now() + 45_000;
  while (Date.now() < largeUntil) {
    l = await camera();
    if (l && l.frameWidth > 400) break;
    await sleep(1_000);
  }
  log(`large tile: ${JSON.stringify(l)}`);
  assert.ok(l && l.frameWidth > 400, `Firefox's large tile still decodes ${l?.frameWidth}x${l?.frameHeight}`);
});

test('screen shares between Firefox and Chromium', { timeout: 150_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const firefox = await launchFirefox();
  t.after(() => firefox.close());
  const chromium = await launchBrowser();
  t.after(() => chromium.close());
  const room = 'Renard-Ecran';

  const fox = await joinRoom(firefox.context, salon.url, room, 'Renard');
  const chrome = await joinRoom(chromium.context, salon.url, room, 'Chrome');
  await receiving(fox, chrome, 30_000);
  await receiving(chrome, fox, 30_000);

  /** `p`'s stage once it decodes more than 5 frames, then once more frames came. */
  async function stageDecoded(p, who) {
    const first = await waitFor(async () => {
      const s = await p.page.evaluate(() => window.salonTest.screenStats());
      return s && s.framesDecoded > 5 ? s : null;
    }, `${p.name} decodes ${who}'s screen on the stage`, 30_000);
    const later = await waitFor(async () => {
      const s = await p.page.evaluate(() => window.salonTest.screenStats());
      return s && s.framesDecoded > first.framesDecoded ? s : null;
    }, `${who}'s screen frames keep coming`, 10_000);
    assert.equal(later.trackId.split('-')[0], who === 'Chrome' ? chrome.id : fox.id);
    assert.match(await p.page.textContent('#stage-caption'), new RegExp(who));
    return later;
  }

  await t.test("Chromium's screen share appears on Firefox's stage", async () => {
    const shared = Date.now();
    await chrome.page.evaluate(() => window.salonTest.shareScreen());
    await fox.page.waitForSelector('#stage', { state: 'visible', timeout: 15_000 });
    const s = await stageDecoded(fox, 'Chrome');
    t.diagnostic(`Firefox's stage: ${s.frameWidth}x${s.frameHeight}, ${s.framesDecoded} frames, ${Date.now() - shared} ms after the share`);
    assert.ok(s.frameWidth > 0 && s.frameWidth * 9 === s.frameHeight * 16, JSON.stringify(s));
    await chrome.page.evaluate(() => window.salonTest.stopShare());
    await fox.page.waitForSelector('#stage', { state: 'hidden', timeout: 10_000 });
  });

  await t.test("Firefox's screen share (a canvas captureStream track) is decoded by Chromium", async () => {
    const shared = Date.now();
    // A moving 1280x720 canvas; setInterval, not requestAnimationFrame, so
    // that it keeps drawing in a background tab.
    await fox.page.evaluate(async () => {
      const canvas = document.createElement('canvas');
      canvas.width = 1280;
      canvas.height = 720;
      const g = canvas.getContext('2d');
      let n = 0;
      const draw = () => {
        n += 1;
        g.fillStyle = `hsl(${(n * 7) % 360} 60% 40%)`;
        g.fillRect(0, 0, 1280, 720);
        g.fillStyle = '#fff';
        g.font = '96px sans-serif';
        g.fillText(`Renard ${n}`, 80 + (n % 200) * 4, 360);
      };
      draw();
      window.shareTimer = setInterval(draw, 50);
      const track = canvas.captureStream(20).getVideoTracks()[0];
      await window.salonTest.shareTrack(track);
    });
    await chrome.page.waitForSelector('#stage', { state: 'visible', timeout: 15_000 });
    const s = await stageDecoded(chrome, 'Renard');
    // Firefox offers the new transceiver in the bundled session as port 0 + bundle-only (RFC 8843).
    const offer = await fox.page.evaluate(() => window.salonTest.pcs().pub.localDescription.sdp);
    const screenLine = offer.split(/\r?\nm=/).at(-1);
    t.diagnostic(`Firefox's share m-line: ${screenLine.split(/\r?\n/)[0]}${/a=bundle-only/.test(screenLine) ? ' (bundle-only)' : ''}`);
    t.diagnostic(`Chromium's stage: ${s.frameWidth}x${s.frameHeight}, ${s.framesDecoded} frames, ${Date.now() - shared} ms after the share`);
    assert.ok(s.frameWidth > 0 && s.frameWidth * 9 === s.frameHeight * 16, JSON.stringify(s));
    await fox.page.evaluate(() => window.salonTest.stopShare());
    await chrome.page.waitForSelector('#stage', { state: 'hidden', timeout: 10_000 });
    // The cameras go on after the share (the transceiver went inactive).
    await receiving(chrome, fox, 15_000);
    assert.equal((await fox.page.textContent('#error')).trim(), '', 'no error on the Firefox page');
  });
});

test('empty and refill in Firefox: the one who stayed receives the next ones', { timeout: 150_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const firefox = await launchFirefox();
  t.after(() => firefox.close());
  const room = 'Renard-Churn';

  const aline = await joinRoom(firefox.context, salon.url, room, 'Aline');
  const bruno = await joinRoom(firefox.context, salon.url, room, 'Bruno');
  t.diagnostic(`A ← B after ${await receiving(aline, bruno, 30_000)} ms`);

  // B leaves: A is alone, the server's offer has only inactive lines.
  await bruno.page.click('#leave');
  await aline.page.waitForSelector(`#tile-${bruno.id}`, { state: 'detached', timeout: 10_000 });
  await sleep(1_000);
  const errors = async () => (await aline.page.textContent('#error')).trim();
  assert.equal(await errors(), '', 'no error on the page of the one who stayed');
  await bruno.page.close();

  // C joins: within 5 s of C being in, A decodes C's video and receives its audio.
  const chloe = await joinRoom(firefox.context, salon.url, room, 'Chloé');
  const ac = await receiving(aline, chloe, 5_000);
  t.diagnostic(`A ← C ${ac} ms after C was in`);
  await receiving(chloe, aline, 20_000);
  const sdp = await aline.page.evaluate(() => window.salonTest.pcs().sub.remoteDescription.sdp);
  const lines = sdp.split(/\r?\n/).filter((l) => l.startsWith('m=')).length;
  t.diagnostic(`A's subscribe SDP has ${lines} m-lines after B left and C came`);
  assert.equal(lines, 2, "C's tracks reuse B's m-lines");

  // B comes back (a new page): A receives B and still C.
  const back = Date.now();
  const bruno2 = await joinRoom(firefox.context, salon.url, room, 'Bruno');
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
