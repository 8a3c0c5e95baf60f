// Issue 16, part A, in Chromium against the real binary: raised hands in
// the order of raising (a moderator lowers anyone's; a leave clears one; a
// late joiner sees them), reactions (delivered, a burst cut at the limit,
// the refusals counted and not shown), the keyboard shortcuts (H, M, ?,
// Escape, none while typing), and the lobby made visible to a moderator (a
// toast with Admit / Deny, the count in the title, an announcement; the
// waiting guests see their place in the queue, and a clear denial).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startSalon,
  launchBrowser,
  joinRoom,
  openRoomPage,
  writeAuthConfig,
  mintJwt,
  DEFAULT_POLICY,
  waitFor,
  sleep,
} from './helpers.mjs';

const hook = (p, fn, arg) => p.page.evaluate(fn, arg);
const hands = (p) => hook(p, () => window.salonTest.hands());
const phase = (p) => hook(p, () => window.salonTest.phase());
const announced = (p) => hook(p, () => window.salonTest.announced().join(' | '));

/** A labelled counter from the server's /metrics (0 if absent). */
async function counter(salon, line) {
  const text = await (await fetch(`${salon.adminUrl}metrics`)).text();
  const row = text.split('\n').find((l) => l.startsWith(line + ' '));
  return row ? Number(row.slice(line.length + 1)) : 0;
}

test('gestures: hands in order, a moderator lowers one, reactions bounded, keyboard shortcuts', { timeout: 180_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const started = Date.now();
  const log = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);
  const ROOM = 'Gestes';

  // The first one in moderates (open policy). No cameras: four pages on two cores.
  const mod = await joinRoom(browser.context, salon.url, ROOM, 'Mona', { camera: false });
  assert.equal(await hook(mod, () => window.salonTest.role()), 'moderator');
  const a = await joinRoom(browser.context, salon.url, ROOM, 'Ana', { camera: false });
  const b = await joinRoom(browser.context, salon.url, ROOM, 'Bruno', { camera: false });
  const c = await joinRoom(browser.context, salon.url, ROOM, 'Chloé', { camera: false });
  log('four in the room');

  // B, C, then A raise their hand with the toolbar button; each is seen by
  // the moderator before the next one raises.
  for (const [p, n] of [[b, 1], [c, 2], [a, 3]]) {
    await p.page.click('#btn-hand');
    await p.page.waitForSelector('#btn-hand[aria-pressed="true"]', { timeout: 10_000 });
    await waitFor(async () => (await hands(mod)).length === n, `${p.name}'s hand at the moderator`);
  }
  assert.deepEqual(await hands(mod), [b.id, c.id, a.id]);
  // Everyone sees the same order; the moderator's list shows it, with names.
  for (const p of [a, b, c]) await waitFor(async () => (await hands(p)).join() === [b.id, c.id, a.id].join(), `order at ${p.name}`);
  await mod.page.click('#toggle-people');
  await mod.page.waitForSelector('#hands-section:not([hidden])');
  const listed = await mod.page.locator('#hands li .who').allTextContents();
  assert.deepEqual(listed, ['1. Bruno', '2. Chloé', '3. Ana']);
  // The tiles carry the hand and its rank.
  assert.equal(await mod.page.textContent(`#tile-${c.id} .hand-flag`), '2');
  assert.equal(await mod.page.locator(`#tile-${c.id} .hand-flag svg.icon`).count(), 1, 'the hand icon (SVG, no emoji font needed)');
  // The raise is announced to the moderator.
  await waitFor(async () => (await announced(mod)).includes('Chloé lève la main'), 'the announcement of a raised hand');
  // A participant has a button for its own hand only.
  await b.page.click('#toggle-people');
  await b.page.waitForSelector('#hands-section:not([hidden])');
  assert.equal(await b.page.locator('#hands button').count(), 1);
  assert.equal(await b.page.locator(`#hand-${b.id} button`).count(), 1);
  log('hands raised in order B, C, A');

  // The moderator lowers C's hand from the list: C's page shows it lowered
  // (and says who did it), the others drop it.
  await mod.page.click(`#hand-${c.id} button`);
  await c.page.waitForSelector('#btn-hand[aria-pressed="false"]', { timeout: 10_000 });
  assert.equal(await hook(c, () => window.salonTest.myHandRaised()), false);
  await waitFor(async () => (await announced(c)).includes('Mona a baissé votre main'), 'C told who lowered the hand');
  for (const p of [mod, a, b]) await waitFor(async () => (await hands(p)).join() === [b.id, a.id].join(), `C's hand gone at ${p.name}`);
  await mod.page.waitForSelector(`#tile-${c.id} .hand-flag`, { state: 'detached' });
  assert.equal(await mod.page.textContent(`#tile-${a.id} .hand-flag`), '2');

  // A late joiner sees the hands raised, in order.
  const d = await joinRoom(browser.context, salon.url, ROOM, 'Denis', { camera: false });
  await waitFor(async () => (await hands(d)).join() === [b.id, a.id].join(), 'the hands at the late joiner');
  await d.page.waitForSelector(`#tile-${b.id} .hand-flag`);
  // A leave clears the hand.
  await hook(a, () => window.salonTest.leaveNow());
  for (const p of [mod, b, d]) await waitFor(async () => (await hands(p)).join() === b.id, `A's hand gone at ${p.name}`);
  // Joins and leaves are announced.
  await waitFor(async () => (await announced(mod)).includes('Denis a rejoint la réunion.'), 'the join announcement');
  await waitFor(async () => (await announced(mod)).includes('Ana a quitté la réunion.'), 'the leave announcement');
  // A dropped socket that resumes within the grace period keeps its hand up.
  await hook(b, () => window.salonTest.dropSignaling());
  await waitFor(async () => (await hook(b, () => window.salonTest.status())) === 'reconnecting', 'B reconnecting', 5_000, 50).catch(() => {});
  await waitFor(async () => ['media', 'joined'].includes(await hook(b, () => window.salonTest.status())), 'B resumed');
  assert.deepEqual(await hands(b), [b.id]);
  assert.equal(await b.page.getAttribute('#btn-hand', 'aria-pressed'), 'true');
  assert.deepEqual(await hands(mod), [b.id]);
  log('lowered by the moderator, seen by a late joiner, cleared by a leave');

  // Reactions: one from the menu reaches the others, on the sender's tile
  // (floating up; with reduced motion, a badge that does not move).
  await d.page.emulateMedia({ reducedMotion: 'reduce' });
  await mod.page.click('#btn-reactions');
  await mod.page.click('#reactions-menu [data-emoji="🎉"]');
  await d.page.waitForSelector(`#tile-${mod.id} .reaction-float[data-emoji="🎉"]`, { timeout: 10_000 });
  assert.equal(await d.page.$eval(`#tile-${mod.id} .reaction-float`, (el) => getComputedStyle(el).animationName), 'salon-fade');
  await b.page.waitForSelector(`#tile-${mod.id} .reaction-float[data-emoji="🎉"]`, { timeout: 10_000 });
  assert.equal(await b.page.$eval(`#tile-${mod.id} .reaction-float`, (el) => getComputedStyle(el).animationName), 'salon-float');
  await waitFor(
    async () => (await hook(b, () => window.salonTest.reactionsSeen())).some((r) => r.emoji === '🎉'),
    'the reaction at B',
  );
  // A burst of six: at most the burst (3) reaches the others; the sender
  // shows no error; the refusals are counted.
  const refusedBefore = await counter(salon, 'salon_gateway_reactions_total{outcome="refused"}');
  await hook(b, () => {
    for (let i = 0; i < 6; i++) window.salonTest.react('👏');
  });
  await sleep(2_000);
  const claps = (await hook(mod, () => window.salonTest.reactionsSeen())).filter((r) => r.id === b.id && r.emoji === '👏');
  log(`burst of 6 reactions: ${claps.length} delivered`);
  assert.ok(claps.length >= 1 && claps.length <= 3, `delivered ${claps.length}`);
  assert.equal(await b.page.textContent('#error'), '');
  const refused = (await counter(salon, 'salon_gateway_reactions_total{outcome="refused"}')) - refusedBefore;
  assert.equal(refused, 6 - claps.length);
  assert.equal(await counter(salon, 'salon_gateway_errors_sent_total{code="too-many-reactions"}'), refused);
  // Announced once, summed.
  await waitFor(async () => (await announced(mod)).includes(`Bruno a réagi 👏 ×${claps.length}`), 'the summed reaction announcement');
  log('reactions delivered, the burst cut');

  // Keyboard only, on D's page: H raises the hand, M mutes, ? opens the
  // help and Escape closes it, giving the focus back.
  await d.page.focus('#mic');
  assert.equal(await d.page.getAttribute('#mic', 'aria-pressed'), 'false');
  await d.page.keyboard.press('h');
  await d.page.waitForSelector('#btn-hand[aria-pressed="true"]', { timeout: 10_000 });
  await waitFor(async () => (await hands(mod)).join() === [b.id, d.id].join(), "D's hand at the moderator");
  await d.page.keyboard.press('m');
  await d.page.waitForSelector('#mic[aria-pressed="true"]', { timeout: 5_000 });
  await d.page.keyboard.press('?');
  await d.page.waitForSelector('#shortcuts-dialog[open]', { timeout: 5_000 });
  assert.equal(await d.page.evaluate(() => document.activeElement.id), 'shortcuts-close');
  assert.match(await d.page.textContent('#shortcuts-list'), /Lever ou baisser la main/);
  // Keys do nothing while the dialog is open.
  await d.page.keyboard.press('m');
  assert.equal(await d.page.getAttribute('#mic', 'aria-pressed'), 'true');
  await d.page.keyboard.press('Escape');
  await d.page.waitForSelector('#shortcuts-dialog:not([open])', { state: 'attached', timeout: 5_000 });
  assert.equal(await d.page.evaluate(() => document.activeElement.id), 'mic');
  // C opens the chat; typing H and M there writes them, nothing else.
  await d.page.keyboard.press('c');
  await d.page.waitForSelector('#panel-chat:not([hidden])');
  assert.equal(await d.page.evaluate(() => document.activeElement.id), 'chat-text');
  await d.page.keyboard.type('hm');
  assert.equal(await d.page.inputValue('#chat-text'), 'hm');
  assert.equal(await hook(d, () => window.salonTest.myHandRaised()), true);
  assert.equal(await d.page.getAttribute('#mic', 'aria-pressed'), 'true');
  // Sent, the message is announced to those whose chat panel is closed.
  await d.page.keyboard.press('Enter');
  await waitFor(async () => (await announced(mod)).includes('Message de Denis : hm'), 'the chat announcement');
  // With a modifier the key is the browser's, not ours.
  await d.page.focus('#mic');
  await d.page.keyboard.press('Control+h');
  await sleep(300);
  assert.equal(await hook(d, () => window.salonTest.myHandRaised()), true);
  log('keyboard shortcuts');
});

test('lobby alert: toast, title and announcement; admit and deny from the toast; queue positions', { timeout: 180_000 }, async (t) => {
  const auth = await writeAuthConfig();
  t.after(() => auth.cleanup());
  const salon = await startSalon({ policy: DEFAULT_POLICY, authConfig: auth.path });
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const started = Date.now();
  const log = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);
  const ROOM = 'Accueil';
  // Count the pages' notification permission requests and notifications.
  await browser.context.addInitScript(() => {
    window.__notify = { asked: 0, shown: 0 };
    const Real = window.Notification;
    if (!Real) return;
    class Counted extends Real {
      constructor(...args) {
        super(...args);
        window.__notify.shown += 1;
      }
      static get permission() {
        return Real.permission;
      }
      static requestPermission(...args) {
        window.__notify.asked += 1;
        return Real.requestPermission(...args);
      }
    }
    window.Notification = Counted;
  });
  const notify = (p) => p.page.evaluate(() => window.__notify);

  const jwt = mintJwt(auth.secret, { name: 'Agnès', sub: 'agent-agnes', room: ROOM });
  const agent = await joinRoom(browser.context, salon.url, ROOM, 'Agnès', { jwt, camera: false });
  assert.equal(await hook(agent, () => window.salonTest.role()), 'moderator');
  const title = await agent.page.title();
  assert.ok(!title.startsWith('('), title);
  const focusedBefore = await agent.page.evaluate(() => document.activeElement.id);

  // A guest knocks: the agent gets a toast, the count in the title, a chime
  // and an announcement — and keeps the focus where it was.
  const g1 = await openRoomPage(browser.context, salon.url, ROOM, 'Gaston', { camera: false });
  await waitFor(async () => (await phase(g1)) === 'lobby', 'Gaston in the lobby');
  const toast1 = agent.page.locator('#lobby-toasts .toast', { hasText: 'Gaston demande à entrer.' });
  await toast1.waitFor({ timeout: 10_000 });
  assert.equal(await agent.page.title(), `(1) ${title}`);
  await waitFor(async () => (await announced(agent)).includes('Gaston attend en salle d’attente.'), 'the knock announcement');
  assert.ok((await hook(agent, () => window.salonTest.alerts())).chimes >= 1);
  assert.equal(await agent.page.evaluate(() => document.activeElement.id), focusedBefore, 'the toast took the focus');
  // Gaston is next in.
  await waitFor(async () => (await g1.page.textContent('#lobby-position')) === 'Vous êtes le prochain à entrer.', 'Gaston next in');
  // Notification permission: never asked without a click; asked when the
  // moderator opens the participants list.
  assert.equal((await notify(agent)).asked, 0);
  await agent.page.click('#toggle-people');
  await waitFor(async () => (await notify(agent)).asked === 1, 'the permission request on click');
  await agent.page.click('#close-people');
  log('knock: toast, title, announcement');

  // A second guest: second in the queue, then first when Gaston is admitted.
  const g2 = await openRoomPage(browser.context, salon.url, ROOM, 'Hortense', { camera: false });
  await waitFor(async () => (await phase(g2)) === 'lobby', 'Hortense in the lobby');
  await waitFor(async () => (await g2.page.textContent('#lobby-position'))?.includes('n° 2'), 'Hortense second');
  await agent.page.locator('#lobby-toasts .toast', { hasText: 'Hortense' }).waitFor({ timeout: 10_000 });
  assert.equal(await agent.page.title(), `(2) ${title}`);
  assert.equal(await agent.page.locator('#lobby-toasts .toast[data-id]').count(), 2);
  // Two more: three toasts, the fourth summed. Notifications granted now
  // show while the agent's page is in the background (headless pages all
  // have the focus: the agent's page is told it has not).
  await browser.context.grantPermissions(['notifications'], { origin: new URL(salon.url).origin });
  await agent.page.evaluate(() => {
    document.hasFocus = () => false;
  });
  const g3 = await openRoomPage(browser.context, salon.url, ROOM, 'Inès', { camera: false });
  const g4 = await openRoomPage(browser.context, salon.url, ROOM, 'Jules', { camera: false });
  await waitFor(async () => (await agent.page.title()) === `(4) ${title}`, 'four waiting in the title');
  await agent.page.locator('#lobby-toasts .toast-more', { hasText: 'Et 1 autre(s) en attente.' }).waitFor({ timeout: 10_000 });
  assert.deepEqual(
    await agent.page.locator('#lobby-toasts .toast[data-id] p').allTextContents(),
    ['Gaston demande à entrer.', 'Hortense demande à entrer.', 'Inès demande à entrer.'],
  );
  await waitFor(async () => (await g4.page.textContent('#lobby-position'))?.includes('n° 4'), 'Jules fourth');
  assert.equal((await notify(agent)).shown, 2);
  assert.equal((await hook(agent, () => window.salonTest.alerts())).notifications, 2);
  await agent.page.evaluate(() => {
    delete document.hasFocus;
  });

  // Admit Gaston from his toast, with the keyboard.
  await toast1.locator('[data-action="admit"]').focus();
  await agent.page.keyboard.press('Enter');
  await g1.page.waitForFunction(() => window.salonTest.ready === true, null, { timeout: 15_000 });
  assert.equal(await phase(g1), 'call');
  await waitFor(async () => (await g2.page.textContent('#lobby-position')) === 'Vous êtes le prochain à entrer.', 'Hortense moves up');
  assert.equal(await agent.page.title(), `(3) ${title}`);
  // The focus went to the next toast; Jules's toast replaced the summary.
  assert.equal(await agent.page.evaluate(() => document.activeElement.dataset.action), 'admit');
  await agent.page.locator('#lobby-toasts .toast', { hasText: 'Jules' }).waitFor({ timeout: 10_000 });
  assert.equal(await agent.page.locator('#lobby-toasts .toast-more').count(), 0);
  await waitFor(async () => (await g4.page.textContent('#lobby-position'))?.includes('n° 3'), 'Jules third');
  log('admitted from the toast; the queue moved');

  // Deny Hortense from hers: she sees a clear denial; the toast and the
  // title count go.
  await agent.page.locator('#lobby-toasts .toast', { hasText: 'Hortense' }).locator('[data-action="deny"]').click();
  await waitFor(async () => (await g2.page.textContent('#lobby-message')) === 'Un modérateur a refusé votre entrée.', 'the denial');
  assert.equal(await g2.page.textContent('#lobby-position'), '');
  assert.match(await g2.page.textContent('#lobby-countdown'), /frapper à nouveau dans \d+ s/);
  await waitFor(async () => (await agent.page.title()) === `(2) ${title}`, 'two waiting in the title');
  await waitFor(async () => (await g4.page.textContent('#lobby-position'))?.includes('n° 2'), 'Jules second');
  log('denied from the toast');
  // The last two leave the lobby: the toasts and the count go.
  for (const g of [g3, g4]) await g.page.click('#lobby-leave');
  await agent.page.waitForSelector('#lobby-toasts', { state: 'hidden' });
  await waitFor(async () => (await agent.page.title()) === title, 'no count in the title');

});
