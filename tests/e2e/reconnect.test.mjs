// "A meeting survives real life": a guest admitted from the lobby reloads
// its page within the grace period and comes back without knocking, with
// the same id and role, while the agent never sees it leave; then its
// signaling socket drops with its page offline for 5 s and it resumes
// by itself, keeping its peer connections. Media flows both ways after each.
// Leaving while the socket is down is seen at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startSalon,
  launchBrowser,
  joinRoom,
  pageNetwork,
  openRoomPage,
  recordSignaling,
  writeAuthConfig,
  mintJwt,
  DEFAULT_POLICY,
  waitFor,
  sleep,
} from './helpers.mjs';

const ROOM = 'Reunion-Reprise';

const stats = (p) => p.page.evaluate(() => window.salonTest.stats());
const evaluate = (p, fn) => p.page.evaluate(fn);

/** Waits until `a` decodes `b`'s video and `b` decodes `a`'s; returns the time it took. */
async function videoBothWays(a, b, timeoutMs, salon) {
  const started = Date.now();
  let last = null;
  while (Date.now() - started < timeoutMs) {
    const a1 = await stats(a);
    const b1 = await stats(b);
    await sleep(1_000);
    const a2 = await stats(a);
    const b2 = await stats(b);
    last = { [a.name]: a2, [b.name]: b2 };
    if (
      a2[b.id]?.framesDecoded > (a1[b.id]?.framesDecoded ?? 0) &&
      b2[a.id]?.framesDecoded > (b1[a.id]?.framesDecoded ?? 0) &&
      a2[b.id]?.audioBytesReceived > (a1[b.id]?.audioBytesReceived ?? 0)
    ) {
      return Date.now() - started;
    }
  }
  throw new Error(`no media both ways in ${timeoutMs} ms: ${JSON.stringify(last)}\n${salon.logs().slice(-3000)}`);
}

const about = (msgs, type, id) => msgs.filter((m) => m.type === type && String(m.id) === String(id));

test(
  'reconnect: a reloaded guest keeps its place, a dropped socket resumes by itself',
  { timeout: 180_000 },
  async (t) => {
    const auth = await writeAuthConfig();
    t.after(() => auth.cleanup());
    const salon = await startSalon({ policy: DEFAULT_POLICY, authConfig: auth.path });
    t.after(() => salon.stop());
    const browser = await launchBrowser();
    t.after(() => browser.close());
    const started = Date.now();
    const log = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);

    const agentHeard = [];
    const jwt = mintJwt(auth.secret, { name: 'Agnès', sub: 'agent-agnes', room: ROOM });
    const agent = await joinRoom(browser.context, salon.url, ROOM, 'Agnès', { jwt, record: agentHeard });
    const guestHeard = [];
    const guest = await openRoomPage(browser.context, salon.url, ROOM, 'Gaston', { record: guestHeard });
    await waitFor(async () => (await evaluate(guest, () => window.salonTest.phase())) === 'lobby', 'Gaston knocks');
    await agent.page.click('#lobby-badge');
    await agent.page.getByRole('button', { name: 'Faire entrer Gaston' }).click();
    await guest.page.waitForFunction(() => window.salonTest.ready === true, null, { timeout: 15_000 });
    guest.id = String(await evaluate(guest, () => window.salonTest.id));
    assert.equal(await evaluate(guest, () => window.salonTest.role()), 'guest');
    assert.match(await evaluate(guest, () => window.salonTest.resumeToken()), /^[0-9a-f]{32}$/);
    log(`guest ${guest.id} admitted`);
    log(`media both ways after ${await videoBothWays(agent, guest, 45_000, salon)} ms`);

    // 1. The guest reloads its page.
    const badge = agent.page
      .waitForSelector(`#tile-${guest.id}[data-reconnecting]`, { timeout: 10_000 })
      .then(() => true, () => false);
    const reloadedAt = Date.now();
    await guest.page.reload();
    await guest.page.waitForFunction(() => window.salonTest.ready === true, null, { timeout: 20_000 });
    log(`reloaded page back in the meeting after ${Date.now() - reloadedAt} ms`);
    assert.equal(String(await evaluate(guest, () => window.salonTest.id)), guest.id, 'the same id');
    assert.equal(await evaluate(guest, () => window.salonTest.role()), 'guest', 'the same role');
    assert.equal(await evaluate(guest, () => window.salonTest.phase()), 'call');
    const afterReload = guestHeard.filter((m) => m.at >= reloadedAt);
    assert.deepEqual(
      afterReload.filter((m) => ['lobby', 'joined', 'resumed'].includes(m.type)).map((m) => [m.type, m.media ?? null]),
      [['resumed', 'new']],
      'resumed with new media, never in the lobby',
    );
    assert.equal(about(agentHeard, 'participant-resumed', guest.id).length, 1);
    assert.deepEqual(about(agentHeard, 'participant-left', guest.id), [], 'the agent never saw the guest leave');
    // The gateway may see the old socket close before the resume (the
    // others get participant-reconnecting, briefly) or after it (the resume
    // replaces it): both are fine, and the window is short.
    t.diagnostic(
      `during the reload the agent got ${about(agentHeard, 'participant-reconnecting', guest.id).length} participant-reconnecting; ` +
        `badge seen: ${await badge}`,
    );
    await agent.page.waitForSelector(`#tile-${guest.id}:not([data-reconnecting])`, { timeout: 5_000 });
    log(`media both ways again after ${await videoBothWays(agent, guest, 45_000, salon)} ms`);

    // 2. The network drops for 5 s: the socket closes and cannot reopen.
    // Offline for this page only (the agent shares the browser).
    const offline = await pageNetwork(browser.context, guest.page);
    const told = about(agentHeard, 'participant-reconnecting', guest.id).length;
    const back = about(agentHeard, 'participant-resumed', guest.id).length;
    const droppedAt = Date.now();
    await offline(true);
    await evaluate(guest, () => window.salonTest.dropSignaling());
    await waitFor(async () => about(agentHeard, 'participant-reconnecting', guest.id).length === told + 1, 'the agent told');
    await waitFor(async () => (await evaluate(guest, () => window.salonTest.status())) === 'reconnecting', 'reconnecting shown');
    assert.match(await guest.page.textContent('#status'), /reconnexion/i);
    assert.deepEqual(await evaluate(agent, () => window.salonTest.reconnecting()), [guest.id]);
    // The guest's tile stays, marked (not removed).
    assert.equal(
      await agent.page.getAttribute(`#tile-${guest.id}`, 'data-reconnecting', { timeout: 2_000 }),
      'Reconnexion…',
    );
    await sleep(Math.max(0, 5_000 - (Date.now() - droppedAt)));
    await offline(false);
    await waitFor(async () => about(agentHeard, 'participant-resumed', guest.id).length === back + 1, 'resumed', 15_000);
    log(`socket resumed ${Date.now() - droppedAt} ms after the drop`);
    const resumed = guestHeard.filter((m) => m.type === 'resumed').at(-1);
    assert.equal(resumed.media, 'kept');
    assert.equal(String(resumed.id), guest.id);
    await waitFor(async () => (await evaluate(guest, () => window.salonTest.status())) !== 'reconnecting', 'status back');
    assert.deepEqual(await evaluate(agent, () => window.salonTest.reconnecting()), []);
    assert.deepEqual(about(agentHeard, 'participant-left', guest.id), [], 'still never left');
    log(`media both ways after the drop: ${await videoBothWays(agent, guest, 30_000, salon)} ms`);

    // 3. Leaving while the socket is down is still a departure at once (the
    // client resumes only to leave), and the token is forgotten.
    const leftAt = Date.now();
    await evaluate(guest, () => {
      window.salonTest.dropSignaling();
      window.salonTest.leaveNow();
    });
    await waitFor(async () => about(agentHeard, 'participant-left', guest.id).length === 1, 'the agent sees the leave', 5_000).catch((e) => {
      throw new Error(`${e.message}\nagent heard: ${JSON.stringify(agentHeard.slice(-6))}\n${salon.logs().slice(-2000)}`);
    });
    log(`the agent saw the guest leave ${Date.now() - leftAt} ms after it left with its socket down`);
    assert.equal(await evaluate(guest, () => window.salonTest.resumeToken()), null);
  },
);
