// A guest waiting in the lobby who reloads the page keeps its place in the
// queue (issue 16): the `lobby` message's token, kept in sessionStorage,
// goes back in `join` within the grace period (docs/signaling.md, "Lobby").
// Chromium guest page against the real binary; the moderator and the
// first guest are plain sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startSalon, launchBrowser, openRoomPage, openSocket, waitFor, sleep,
  DEFAULT_POLICY, writeAuthConfig, mintJwt, drainAll,
} from './helpers.mjs';
import { saveLobby, loadLobby, forgetLobby, loadResume } from '../../signaling-gateway/web/src/reconnect.js';

test('the lobby token is kept per room apart from the resume token, and forgotten', () => {
  const items = new Map();
  globalThis.sessionStorage = {
    getItem: (k) => (items.has(k) ? items.get(k) : null),
    setItem: (k, v) => items.set(k, String(v)),
    removeItem: (k) => items.delete(k),
  };
  try {
    saveLobby('A', 'ab'.repeat(16), 'Léa');
    saveLobby('A', '', 'Léa'); // no token: nothing changes
    assert.deepEqual(loadLobby('A'), { token: 'ab'.repeat(16), name: 'Léa' });
    assert.equal(loadLobby('B'), null);
    assert.equal(loadResume('A'), null, 'not a resume token');
    forgetLobby('A');
    assert.equal(loadLobby('A'), null);
  } finally {
    delete globalThis.sessionStorage;
  }
});

test(
  'a waiting guest at position 2 of 2 reloads, is still 2 of 2 under the same id, and gets in when admitted',
  { timeout: 90_000 },
  async (t) => {
    const auth = await writeAuthConfig();
    const salon = await startSalon({ policy: DEFAULT_POLICY, authConfig: auth.path });
    t.after(() => salon.stop());
    const browser = await launchBrowser();
    t.after(() => browser.close());
    const R = 'Queue';
    const mod = await openSocket(salon.wsUrl);
    mod.send({ type: 'join', room: R, name: 'x', jwt: mintJwt(auth.secret, { name: 'Modo', sub: 'm1', room: R }) });
    assert.equal((await mod.next()).type, 'joined');
    await drainAll(mod, 300);
    const first = await openSocket(salon.wsUrl);
    first.send({ type: 'join', room: R, name: 'First' });
    assert.deepEqual((await drainAll(first, 500)).map((m) => m.type), ['lobby', 'lobby-position']);

    const { page } = await openRoomPage(browser.context, salon.url, R, 'Léa', { camera: false });
    const place = () => page.evaluate(() => window.salonTest.lobbyPosition());
    await waitFor(async () => (await place())?.position === 2, 'Léa at position 2');
    assert.deepEqual(await place(), { position: 2, waiting: 2, text: await page.textContent('#lobby-position') });
    const token = await page.evaluate(() => window.salonTest.lobbyToken());
    assert.match(token, /^[0-9a-f]{32}$/);
    const knocks = (await drainAll(mod)).filter((m) => m.type === 'knock');
    assert.deepEqual(knocks.map((m) => m.name), ['First', 'Léa']);
    const leaId = knocks[1].id;

    const reloadedAt = Date.now();
    await page.reload();
    await waitFor(async () => (await page.evaluate(() => window.salonTest.phase())) === 'lobby', 'back in the lobby');
    await waitFor(async () => (await place())?.position === 2, 'Léa still at position 2');
    const back = Date.now() - reloadedAt;
    t.diagnostic(`reload to position shown again: ${back} ms`);
    assert.deepEqual((await place()).waiting, 2);
    assert.equal(await page.evaluate(() => window.salonTest.lobbyToken()), token, 'the same lobby token');
    // The moderator saw no change: no duplicate knock, no resolution.
    const duringReload = await drainAll(mod, 1_000);
    assert.deepEqual(
      duringReload.filter((m) => m.type === 'knock' || m.type === 'knock-resolved'),
      [],
      JSON.stringify(duringReload),
    );

    // Admitted under the id the moderator knows: Léa gets in.
    mod.send({ type: 'admit', id: leaId });
    await page.waitForFunction(() => window.salonTest.ready === true, null, { timeout: 20_000 });
    assert.equal(await page.evaluate(() => window.salonTest.phase()), 'call');
    assert.equal(String(await page.evaluate(() => window.salonTest.id)), String(leaId));
    assert.equal(await page.evaluate(() => window.salonTest.lobbyToken()), null, 'forgotten once in the meeting');
    const joined = (await drainAll(mod)).filter((m) => m.type === 'participant-joined');
    assert.deepEqual(joined.map((m) => [m.id, m.name]), [[leaId, 'Léa']]);
    // The first guest is still waiting (its place did not change: no message).
    assert.deepEqual(await drainAll(first, 300), []);
  },
);

test(
  'a waiting guest whose socket drops (network blink) joins again by itself and keeps its place',
  { timeout: 90_000 },
  async (t) => {
    const auth = await writeAuthConfig();
    const salon = await startSalon({ policy: DEFAULT_POLICY, authConfig: auth.path });
    t.after(() => salon.stop());
    const browser = await launchBrowser();
    t.after(() => browser.close());
    const R = 'Blink';
    const mod = await openSocket(salon.wsUrl);
    mod.send({ type: 'join', room: R, name: 'x', jwt: mintJwt(auth.secret, { name: 'Modo', sub: 'm1', room: R }) });
    assert.equal((await mod.next()).type, 'joined');
    const first = await openSocket(salon.wsUrl);
    first.send({ type: 'join', room: R, name: 'First' });
    const record = [];
    const { page } = await openRoomPage(browser.context, salon.url, R, 'Léa', { camera: false, record });
    const place = () => page.evaluate(() => window.salonTest.lobbyPosition());
    await waitFor(async () => (await place())?.position === 2, 'Léa at position 2');
    await drainAll(mod);
    await page.evaluate(() => window.salonTest.dropSignaling());
    // Back by itself (first retry after 0.4-0.6 s), at the same place.
    await sleep(300);
    await waitFor(async () => (await page.evaluate(() => window.salonTest.status())) === 'lobby' && (await place())?.position === 2, 'back at position 2', 10_000);
    const lobbies = record.filter((m) => m.type === 'lobby');
    assert.equal(lobbies.length, 2, 'a second `lobby`, on the new socket');
    assert.equal(lobbies[1].id, lobbies[0].id, 'the same id');
    assert.equal(lobbies[1].lobby_token, lobbies[0].lobby_token);
    const seen = await drainAll(mod, 1_000);
    assert.deepEqual(seen.filter((m) => m.type === 'knock' || m.type === 'knock-resolved'), [], JSON.stringify(seen));
  },
);
