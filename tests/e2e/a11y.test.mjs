// Accessibility of every screen of the room page (issue 16): axe-core
// (WCAG 2.0/2.1 A and AA rules) finds no serious or critical violation on
// the pre-join, the lobby (guest side and moderator side), a meeting of
// three, the screen-share stage, the chat, the pad, the participants list,
// the settings dialog and the phone size (390x844); and a keyboard alone
// can join, mute, raise a hand (once the button exists), send a chat
// message and leave. The connection-test page (/test) and the home page
// are audited too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AxeBuilder } from '@axe-core/playwright';
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

const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

/** axe's serious and critical violations on `page` now, as readable lines. */
async function violations(page) {
  const result = await new AxeBuilder({ page }).withTags(TAGS).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(', ')}`);
}

async function expectClean(t, page, screen) {
  const found = await violations(page);
  t.diagnostic(`${screen}: ${found.length} serious/critical`);
  assert.deepEqual(found, [], `${screen}: ${found.join('\n')}`);
}

test('axe: no serious or critical violation on any screen', { timeout: 300_000 }, async (t) => {
  const auth = await writeAuthConfig();
  t.after(() => auth.cleanup());
  const salon = await startSalon({ policy: DEFAULT_POLICY, authConfig: auth.path });
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const ROOM = 'Acces-Pour-Tous';

  // Pre-join.
  const pre = await browser.context.newPage();
  await pre.goto(`${salon.url}${ROOM}?lang=fr`);
  await pre.waitForFunction(() => document.getElementById('preview').srcObject !== null);
  await expectClean(t, pre, 'pre-join');
  await pre.close();

  // The agent (moderator) and two participants with tokens: a meeting of three.
  const jwt = (name, sub) => mintJwt(auth.secret, { name, sub, room: ROOM });
  const agent = await joinRoom(browser.context, salon.url, ROOM, 'Agnès', { jwt: jwt('Agnès', 'agent-a') });
  const b = await joinRoom(browser.context, salon.url, ROOM, 'Bruno', { jwt: jwt('Bruno', 'agent-b'), camera: false });
  const c = await joinRoom(browser.context, salon.url, ROOM, 'Chloé', { jwt: jwt('Chloé', 'agent-c'), camera: false });

  // A guest knocks: the guest's lobby and the moderator's waiting badge.
  const guest = await openRoomPage(browser.context, salon.url, ROOM, 'Gaston', { camera: false });
  await waitFor(async () => (await guest.page.evaluate(() => window.salonTest.phase())) === 'lobby', 'the guest waits');
  await expectClean(t, guest.page, 'lobby (guest)');
  await agent.page.waitForSelector('#lobby-badge', { state: 'visible' });
  await expectClean(t, agent.page, 'meeting of three, a guest waiting (moderator)');
  await agent.page.click('#lobby-badge');
  await agent.page.waitForSelector('#waiting li');
  await expectClean(t, agent.page, 'participants list with the waiting room (moderator)');
  await agent.page.keyboard.press('Escape');
  await guest.page.close();

  // Grid of three.
  await agent.page.waitForFunction(() => document.querySelectorAll('#tiles .tile').length === 3);
  await expectClean(t, agent.page, 'meeting of three');

  // Screen share on the stage.
  await b.page.evaluate(() => window.salonTest.shareScreen());
  await agent.page.waitForSelector('#stage', { state: 'visible', timeout: 15_000 });
  await expectClean(t, agent.page, 'screen-share stage');
  await b.page.evaluate(() => window.salonTest.stopShare());
  await agent.page.waitForSelector('#stage', { state: 'hidden', timeout: 15_000 });

  // Chat, pad, "more" menu, device menu, settings.
  await c.page.evaluate(() => window.salonTest.chat('Bonjour, voici le lien : https://exemple.gouv.fr'));
  await agent.page.click('#toggle-chat');
  await agent.page.waitForSelector('#chat-log li');
  await expectClean(t, agent.page, 'chat');
  await agent.page.keyboard.press('Escape');
  await agent.page.click('#toggle-pad');
  await agent.page.waitForSelector('#pad-editor .cm-content');
  await expectClean(t, agent.page, 'pad');
  await agent.page.click('#close-pad');
  await agent.page.click('#toggle-people');
  await expectClean(t, agent.page, 'participants list');
  await agent.page.keyboard.press('Escape');
  await agent.page.click('#mic-devices');
  await agent.page.waitForSelector('#mic-menu .device');
  await expectClean(t, agent.page, 'microphone menu');
  await agent.page.keyboard.press('Escape');
  await agent.page.click('#more');
  await expectClean(t, agent.page, 'more menu');
  await agent.page.click('#open-settings');
  await agent.page.waitForSelector('#settings-dialog[open]');
  await expectClean(t, agent.page, 'settings');
  await agent.page.keyboard.press('Escape');

  // Phone size, portrait: meeting, then the chat full-screen; landscape.
  await agent.page.setViewportSize({ width: 390, height: 844 });
  await sleep(500);
  await expectClean(t, agent.page, 'phone 390x844, meeting');
  await agent.page.click('#more');
  await expectClean(t, agent.page, 'phone 390x844, more menu');
  await agent.page.keyboard.press('Escape');
  await agent.page.click('#toggle-chat');
  await expectClean(t, agent.page, 'phone 390x844, chat');
  await agent.page.keyboard.press('Escape');
  await agent.page.setViewportSize({ width: 844, height: 390 });
  await sleep(500);
  await expectClean(t, agent.page, 'phone 844x390 (landscape), meeting');
  await c.page.close();
});

test('axe: the connection-test page (/test) and the home page that links to it', { timeout: 120_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.context.newPage();
  await page.goto(`${salon.url}?lang=fr`);
  await expectClean(t, page, 'home');
  for (const lang of ['fr', 'en']) {
    await page.goto(`${salon.url}test?lang=${lang}`);
    await page.waitForFunction(() => window.salonTest?.done === true, null, { timeout: 60_000 });
    await expectClean(t, page, `connection test (${lang}), checks done`);
  }
});

test('keyboard only: join, mute, raise a hand, chat, leave', { timeout: 120_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const ROOM = 'Clavier';
  const other = await joinRoom(browser.context, salon.url, ROOM, 'Ophélie', { camera: false });

  const page = await browser.context.newPage();
  await page.goto(`${salon.url}${ROOM}?lang=fr`);
  const focused = () => page.evaluate(() => document.activeElement?.id ?? '');
  /** Tabs (at most 60 times) until the element `id` has focus. */
  const tabTo = async (id, back = false) => {
    for (let i = 0; i < 60; i++) {
      if ((await focused()) === id) return;
      await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
    }
    throw new Error(`#${id} cannot be reached with the Tab key (focus on #${await focused()})`);
  };
  /** The focused element shows a visible focus indicator (an outline). */
  const focusVisible = () =>
    page.evaluate(() => {
      const s = getComputedStyle(document.activeElement);
      return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
    });

  // The name field has focus on arrival; Enter joins.
  assert.equal(await focused(), 'name');
  await page.keyboard.type('Kévin Clavier');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => window.salonTest.ready === true, null, { timeout: 15_000 });
  // In the call, focus is on the microphone button.
  await page.waitForFunction(() => document.activeElement?.id === 'mic');
  assert.ok(await focusVisible(), 'the focused mic button shows a focus ring');
  await page.keyboard.press('Enter');
  assert.equal(await page.getAttribute('#mic', 'aria-pressed'), 'true');

  // The bar is a toolbar: the arrow keys move along it.
  await page.keyboard.press('ArrowRight');
  assert.equal(await focused(), 'mic-devices');
  await page.keyboard.press('ArrowLeft');
  assert.equal(await focused(), 'mic');

  // Raise a hand, if this build has the button (issue 16, part A).
  if (await page.$('#btn-hand')) {
    if (await page.isVisible('#btn-hand')) {
      await tabTo('btn-hand');
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.getElementById('btn-hand').getAttribute('aria-pressed') === 'true');
      t.diagnostic('hand raised with the keyboard');
    } else {
      t.diagnostic('no raise-hand action in this build: skipped');
    }
  }

  // Chat: the panel opens with focus in the message field; Enter on the send button.
  await tabTo('toggle-chat');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.id === 'chat-text');
  await page.keyboard.type('Envoyé sans souris');
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'chat-send');
  assert.ok(await focusVisible(), 'the send button shows a focus ring');
  await page.keyboard.press('Enter');
  await other.page.waitForFunction(
    () => [...document.querySelectorAll('#chat-log .text')].some((e) => e.textContent === 'Envoyé sans souris'),
    null,
    { timeout: 10_000 },
  );
  // Escape closes the panel; focus goes back to its button.
  await page.keyboard.press('Escape');
  assert.equal(await focused(), 'toggle-chat');

  // Leave.
  await tabTo('leave');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#left', { state: 'visible' });
  await other.page.waitForFunction(() => document.querySelectorAll('#tiles .tile').length === 1, null, { timeout: 10_000 });
});
