// The meeting itself in headless Chromium against the real binary: chat
// (public, private, isolation, markup shown as text), the pad (two pages
// type at once and converge, export, destroyed with the meeting) and screen
// sharing (another page decodes the shared screen).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, launchBrowser, joinRoom, sleep } from './helpers.mjs';

const XSS = '<img src=x onerror="window.__pwned=1;alert(1)">';

async function waitFor(fn, what, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    last = await fn();
    if (last) return last;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
}

const chatTexts = (p) => p.page.$$eval('#chat-log .chat-msg .text', (els) => els.map((e) => e.textContent));

test('chat, pad and screen sharing in one meeting', { timeout: 180_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const started = Date.now();
  const dialogs = [];
  browser.context.on('page', (page) => page.on('dialog', (d) => (dialogs.push(d.message()), d.dismiss())));

  const aline = await joinRoom(browser.context, salon.url, 'Reunion-42', XSS);
  const bruno = await joinRoom(browser.context, salon.url, 'Reunion-42', 'Bruno');
  const chloe = await joinRoom(browser.context, salon.url, 'Reunion-42', 'Chloé');
  const denis = await joinRoom(browser.context, salon.url, 'Autre-Salon', 'Denis');
  const room = [aline, bruno, chloe];

  // --- Chat: public reaches the room, not the outsider; markup is text.
  await aline.page.click('#toggle-chat');
  await aline.page.fill('#chat-text', XSS + ' voir https://example.org/doc?a=1.');
  await aline.page.press('#chat-text', 'Enter');
  for (const p of room) {
    await waitFor(async () => (await chatTexts(p)).length === 1, `${p.name} receives the chat message`);
    assert.equal((await chatTexts(p))[0], XSS + ' voir https://example.org/doc?a=1.');
    const dom = await p.page.evaluate(() => ({
      imgs: document.querySelectorAll('#chat-log img, #tiles img, #people img').length,
      pwned: window.__pwned ?? null,
      link: [...document.querySelectorAll('#chat-log a')].map((a) => [a.href, a.rel, a.target, a.textContent]),
    }));
    assert.deepEqual(dom, {
      imgs: 0,
      pwned: null,
      link: [['https://example.org/doc?a=1', 'noopener noreferrer nofollow', '_blank', 'https://example.org/doc?a=1']],
    });
  }
  // The name made of markup shows as text in the others' tiles.
  const caption = await bruno.page.textContent(`#tile-${aline.id} figcaption`);
  assert.equal(caption, XSS);
  assert.equal(await denis.page.$$eval('#chat-log .chat-msg', (els) => els.length), 0);

  // --- Private: only the addressee (and the sender's own copy).
  await bruno.page.evaluate((to) => window.salonTest.chat('rien que pour toi', to), chloe.id);
  await waitFor(async () => (await chatTexts(chloe)).includes('rien que pour toi'), 'private message');
  await waitFor(async () => (await chatTexts(bruno)).includes('rien que pour toi'), 'sender copy');
  await sleep(500);
  assert.deepEqual(await chatTexts(aline), [XSS + ' voir https://example.org/doc?a=1.']);
  assert.equal(await denis.page.$$eval('#chat-log .chat-msg', (els) => els.length), 0);
  // Private to someone in another room: refused, nothing delivered.
  await bruno.page.evaluate((to) => window.salonTest.chat('égaré', to), denis.id);
  await waitFor(async () => (await bruno.page.textContent('#error')).length > 0, 'no-such-participant error');
  assert.match(await bruno.page.textContent('#error'), /plus dans le salon/);
  t.diagnostic(`chat checks done at ${Date.now() - started} ms`);

  // --- Pad: two pages type at once and converge.
  for (const p of [aline, bruno]) {
    await p.page.click('#toggle-pad');
    await waitFor(() => p.page.evaluate(() => window.salonTest.padSynced()), `${p.name} pad synced`);
  }
  await Promise.all([
    aline.page.locator('#pad-editor .cm-content').pressSequentially('Ordre du jour A ', { delay: 15 }),
    bruno.page.locator('#pad-editor .cm-content').pressSequentially('Points de Bruno ', { delay: 15 }),
  ]);
  const converged = await waitFor(async () => {
    const [a, b] = await Promise.all([aline, bruno].map((p) => p.page.evaluate(() => window.salonTest.padText())));
    return a === b && a.includes('Ordre du jour A') && a.includes('Points de Bruno') ? a : null;
  }, 'pad convergence');
  assert.equal(converged.length, 'Ordre du jour A '.length + 'Points de Bruno '.length);
  // The editor shows the document.
  const shown = await aline.page.evaluate(() => {
    const clone = document.querySelector('#pad-editor .cm-content').cloneNode(true);
    for (const caret of clone.querySelectorAll('.cm-ySelectionCaret')) caret.remove();
    return clone.textContent;
  });
  assert.equal(shown, converged);
  // Export: Markdown is the text; the button produces it.
  await bruno.page.click('#pad-export-md');
  const exports = await bruno.page.evaluate(() => window.salonTest.exports);
  assert.deepEqual(exports, [{ kind: 'md', text: converged }]);
  await bruno.page.evaluate(() => window.salonTest.padExport('txt'));
  t.diagnostic(`pad checks done at ${Date.now() - started} ms`);

  // --- Screen share: Chloé shares, Aline decodes it on the stage.
  await chloe.page.click('#share');
  let screen;
  try {
    screen = await waitFor(async () => {
      const s = await aline.page.evaluate(() => window.salonTest.screenStats());
      return s && s.framesDecoded > 5 ? s : null;
    }, 'screen share decoded', 45_000);
  } catch (e) {
    // Say where it stuck: the receiver's stage and video receivers, and
    // the media plane's counters.
    const seen = await aline.page.evaluate(async () => {
      const stage = document.getElementById('stage')?.dataset.trackId ?? null;
      const rows = [];
      for (const p of [window.salonTest.pcs?.().sub].filter(Boolean)) {
        const stats = await p.getStats();
        stats.forEach((r) => {
          if (r.type === 'inbound-rtp' && r.kind === 'video') rows.push({ mid: r.mid, ssrc: r.ssrc, bytes: r.bytesReceived, frames: r.framesDecoded, plis: r.pliCount });
        });
      }
      return { stage, rows };
    });
    const metrics = await (await fetch(new URL('/metrics', salon.adminUrl))).text();
    const pick = metrics.split('\n').filter((l) => /keyframe|drop_|tx_rtp|transports_connected/.test(l) && !l.startsWith('#')).join('; ');
    throw new Error(`${e.message}\nreceiver: ${JSON.stringify(seen)}\nmediad: ${pick}`);
  }
  const later = await waitFor(async () => {
    const s = await aline.page.evaluate(() => window.salonTest.screenStats());
    return s && s.framesDecoded > screen.framesDecoded ? s : null;
  }, 'screen frames keep coming');
  t.diagnostic(`screen ${later.frameWidth}x${later.frameHeight}, ${later.framesDecoded} frames at ${Date.now() - started} ms`);
  assert.equal(later.trackId, `${chloe.id}-${later.trackId.split('-')[1]}`);
  assert.ok(later.frameWidth > 0 && later.frameWidth <= 1280 && later.frameWidth * 9 === later.frameHeight * 16, JSON.stringify(later));
  assert.equal(await aline.page.isVisible('#stage'), true);
  assert.match(await aline.page.textContent('#stage-caption'), /Chloé/);
  // Stop: the stage goes away for the others.
  await chloe.page.click('#share');
  await aline.page.waitForSelector('#stage', { state: 'hidden', timeout: 10_000 });

  // --- Everyone leaves; the last one is warned and offered the export.
  for (const p of [bruno, chloe]) await p.page.click('#leave');
  await waitFor(async () => (await aline.page.$$('#tiles .tile:not(.self)')).length === 0, 'others gone');
  await aline.page.click('#leave');
  await aline.page.waitForSelector('#leave-dialog[open]', { timeout: 10_000 });
  await aline.page.click('#leave-export-txt');
  const alineExports = await aline.page.evaluate(() => window.salonTest.exports);
  assert.deepEqual(alineExports, [{ kind: 'txt', text: converged }]);
  await aline.page.click('#leave-confirm');
  await aline.page.waitForSelector('#left:not([hidden])');
  const metrics = await waitFor(async () => {
    const m = await (await fetch(salon.adminUrl + 'metrics')).text();
    return /^salon_pads_live 0$/m.test(m) && /^salon_gateway_rooms 1$/m.test(m) ? m : null;
  }, 'pad destroyed with the meeting');
  assert.ok(metrics);

  // A new meeting with the same name starts with an empty pad.
  const again = await joinRoom(browser.context, salon.url, 'Reunion-42', 'Émile');
  await again.page.click('#toggle-pad');
  await waitFor(() => again.page.evaluate(() => window.salonTest.padSynced()), 'new pad synced');
  assert.equal(await again.page.evaluate(() => window.salonTest.padText()), '');
  assert.deepEqual(dialogs, [], 'no alert() ran');
  t.diagnostic(`meeting test ${Date.now() - started} ms`);
});
