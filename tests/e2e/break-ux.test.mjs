// What a tester found trying to break the meeting client (issue 16), kept
// as regression tests: menus, the bar and knock toasts on small and short
// screens. The one still marked `todo` is a server design question (the
// deny cool-down keyed on a shared address), open. Chromium against the
// real binary, two pages, no cameras.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, launchBrowser, joinRoom, sleep } from './helpers.mjs';

const ev = (p, fn, a) => p.page.evaluate(fn, a);
const menuState = (p) =>
  ev(p, () => ({ hidden: document.querySelector('#more-menu').hidden, active: document.activeElement?.id ?? null }));

async function twoInRoom(t, room) {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  await joinRoom(browser.context, salon.url, room, 'Mona', { camera: false });
  return joinRoom(browser.context, salon.url, room, 'Ana', { camera: false });
}

test(
  'at >= 720 px the open "more" menu takes the focus and Escape closes it',
  { timeout: 120_000 },
  async (t) => {
    const a = await twoInRoom(t, 'MoreEsc');
    await a.page.setViewportSize({ width: 1280, height: 720 });
    await sleep(400);
    await a.page.click('#more');
    await sleep(400);
    const opened = await menuState(a);
    assert.equal(opened.hidden, false);
    await a.page.keyboard.press('Escape');
    await sleep(300);
    const after = await menuState(a);
    assert.notEqual(opened.active, 'more', 'focus should move into the open menu');
    assert.equal(after.hidden, true, 'Escape should close the "more" menu');
  },
);

test(
  'phone landscape 844x390: the bar fits, Leave on screen',
  { timeout: 120_000 },
  async (t) => {
    const a = await twoInRoom(t, 'Landscape');
    await a.page.setViewportSize({ width: 844, height: 390 });
    await sleep(800);
    const m = await ev(a, () => {
      const bar = document.querySelector('[role=toolbar]');
      const leave = document.querySelector('#leave').getBoundingClientRect();
      return { scrollW: bar.scrollWidth, clientW: bar.clientWidth, docW: document.documentElement.scrollWidth, leaveRight: leave.right, vw: innerWidth };
    });
    assert.ok(m.scrollW <= m.clientW, `bar overflows: ${JSON.stringify(m)}`);
    assert.ok(m.leaveRight <= m.vw, `leave button off screen: ${JSON.stringify(m)}`);
    assert.ok(m.docW <= m.vw, `page scrolls sideways: ${JSON.stringify(m)}`);
  },
);

test(
  'phone 390x844: the open "more" menu is on screen',
  { timeout: 120_000 },
  async (t) => {
    const a = await twoInRoom(t, 'PhoneMore');
    await a.page.setViewportSize({ width: 390, height: 844 });
    await sleep(600);
    await a.page.click('#more');
    await sleep(400);
    const r = await ev(a, () => {
      const q = document.querySelector('#more-menu').getBoundingClientRect();
      return { left: q.left, right: q.right, top: q.top, bottom: q.bottom, vw: innerWidth, vh: innerHeight };
    });
    assert.ok(r.left >= 0 && r.right <= r.vw && r.top >= 0 && r.bottom <= r.vh, `menu outside the screen: ${JSON.stringify(r)}`);
  },
);

test(
  'BUG (design?): a deny refuses every later guest from the same address, unseen, told "a moderator refused"',
  { timeout: 60_000, todo: 'the deny cooldown is keyed on the network address: behind one NAT (an office), one deny auto-denies all colleagues for 30 s; the moderator never gets their knock and the page says a moderator refused them' },
  async (t) => {
    const { openSocket, DEFAULT_POLICY, writeAuthConfig, mintJwt } = await import('./helpers.mjs');
    const auth = await writeAuthConfig();
    const salon = await startSalon({ policy: DEFAULT_POLICY, authConfig: auth.path });
    t.after(() => salon.stop());
    const R = 'Nat';
    const mod = await openSocket(salon.wsUrl);
    mod.send({ type: 'join', room: R, name: 'x', jwt: mintJwt(auth.secret, { name: 'Modo', sub: 'm1', room: R }) });
    assert.equal((await mod.next()).type, 'joined');
    const spammer = await openSocket(salon.wsUrl);
    spammer.send({ type: 'join', room: R, name: 'Spammer' });
    const { id } = await spammer.next();
    mod.send({ type: 'deny', id });
    await sleep(300);
    const colleague = await openSocket(salon.wsUrl);
    colleague.send({ type: 'join', room: R, name: 'Colleague' });
    const seen = [];
    for (;;) {
      try { seen.push(await colleague.next(1000)); } catch { break; }
    }
    assert.ok(!seen.some((m) => m.type === 'denied'), `colleague auto-denied: ${JSON.stringify(seen)}`);
  },
);

test(
  'a knock toast leaves the bar usable (phone and 1280), and the lobby badge does not push Leave off a 390 px screen',
  { timeout: 90_000 },
  async (t) => {
    const { openSocket, DEFAULT_POLICY, writeAuthConfig, mintJwt } = await import('./helpers.mjs');
    const auth = await writeAuthConfig();
    const salon = await startSalon({ policy: DEFAULT_POLICY, authConfig: auth.path });
    t.after(() => salon.stop());
    const browser = await launchBrowser();
    t.after(() => browser.close());
    const R = 'Cover';
    const mod = await joinRoom(browser.context, salon.url, R, 'x', { camera: false, jwt: mintJwt(auth.secret, { name: 'Modo', sub: 'm1', room: R }) });
    const guest = await openSocket(salon.wsUrl);
    guest.send({ type: 'join', room: R, name: 'Guest One' });
    await mod.page.waitForSelector('#lobby-toasts .toast', { timeout: 10_000 });
    const blocked = {};
    for (const [w, h] of [[390, 844], [1280, 720]]) {
      await mod.page.setViewportSize({ width: w, height: h });
      await sleep(500);
      blocked[`${w}x${h}`] = await ev(mod, () =>
        [...document.querySelectorAll('[role=toolbar] button')]
          .filter((b) => b.offsetParent !== null && !b.closest('.popover'))
          .filter((b) => {
            const r = b.getBoundingClientRect();
            const x = r.left + r.width / 2;
            const y = r.top + r.height / 2;
            if (x >= innerWidth) return true;
            const e = document.elementFromPoint(x, y);
            return !(e === b || b.contains(e));
          })
          .map((b) => b.id),
      );
    }
    assert.deepEqual(blocked, { '390x844': [], '1280x720': [] });
  },
);
