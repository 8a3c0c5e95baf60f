// What a tester found trying to break the lobby (issue 16's lobby slice:
// lobby tokens, a waiting guest's reload), kept as regression tests.
// Chromium against the real binary; the moderator is a plain socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startSalon, launchBrowser, openRoomPage, openSocket, waitFor, sleep,
  DEFAULT_POLICY, writeAuthConfig, mintJwt, drainAll, pageNetwork,
} from './helpers.mjs';

/** Salon with the shipped policy, Chromium, and a moderator socket in `room`. */
async function moderatedRoom(t, room) {
  const auth = await writeAuthConfig();
  const salon = await startSalon({ policy: DEFAULT_POLICY, authConfig: auth.path });
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const mod = await openSocket(salon.wsUrl);
  mod.send({ type: 'join', room, name: 'x', jwt: mintJwt(auth.secret, { name: 'Modo', sub: 'm1', room }) });
  assert.equal((await mod.next()).type, 'joined');
  await drainAll(mod, 300);
  return { salon, browser, mod, auth };
}

const lobbyState = (page) =>
  page.evaluate(() => ({
    phase: window.salonTest.phase(),
    position: window.salonTest.lobbyPosition()?.position ?? null,
    token: window.salonTest.lobbyToken(),
    ended: document.querySelector('#ended-message')?.textContent ?? '',
  }));

for (const [lang, text] of [
  ['fr', 'Tout le monde est parti : la réunion est terminée.'],
  ['en', 'Everyone has left: the meeting is over.'],
]) {
  test(
    `(${lang}) the last moderator leaves while a guest waits: the guest is told in words, not « room-empty »`,
    { timeout: 90_000 },
    async (t) => {
      const R = `Empty${lang}`;
      const { salon, browser, mod } = await moderatedRoom(t, R);
      const { page } = await openRoomPage(browser.context, salon.url, R, 'Léa', { camera: false, lang });
      await waitFor(async () => (await lobbyState(page)).position === 1, 'Léa knocking');
      mod.send({ type: 'leave' });
      await waitFor(async () => (await lobbyState(page)).phase === 'ended', 'the meeting ended');
      const s = await lobbyState(page);
      assert.equal(s.ended, text);
      assert.equal(s.token, null, 'the lobby token is forgotten');
    },
  );
}

for (const [lang, text, reconnecting] of [
  ['fr', 'Il n’y a pas de réunion dans ce salon pour l’instant (pas encore commencée, ou terminée) : attendez son organisateur.', 'Connexion perdue, reconnexion…'],
  ['en', 'There is no meeting in this room right now (not started yet, or over): wait for its host.', 'Connection lost, reconnecting…'],
]) {
  test(
    `(${lang}) a waiting guest offline while the meeting ends comes back to the join form, told why, not stuck « rejoining »`,
    { timeout: 90_000 },
    async (t) => {
      const R = `OffEnd${lang}`;
      const { salon, browser, mod } = await moderatedRoom(t, R);
      const { page } = await openRoomPage(browser.context, salon.url, R, 'Léa', { camera: false, lang });
      await waitFor(async () => (await lobbyState(page)).position === 1, 'Léa knocking');
      const offline = await pageNetwork(browser.context, page);
      await offline(true);
      await page.evaluate(() => window.salonTest.dropSignaling());
      await sleep(500);
      // A blink in the lobby: no claim that the server restarted.
      assert.equal(await page.evaluate(() => window.salonTest.status()), 'reconnecting');
      assert.equal(await page.textContent('#status'), reconnecting);
      // The meeting ends meanwhile (its `meeting-ended` never reaches Léa).
      mod.send({ type: 'leave' });
      await sleep(500);
      await offline(false);
      await waitFor(async () => (await lobbyState(page)).phase === 'prejoin', 'back on the join form', 15_000);
      assert.equal(await page.evaluate(() => window.salonTest.status()), 'disconnected');
      assert.equal(await page.textContent('#error'), text);
      assert.equal((await lobbyState(page)).token, null, 'the lobby token is forgotten');
      assert.equal(await page.isEnabled('#join'), true, 'she can try again');
    },
  );
}

test(
  'a guest admitted while its page is offline gets in by itself (same id, `resumed`) and forgets its lobby token',
  { timeout: 90_000 },
  async (t) => {
    const R = 'AdmittedAway';
    const { salon, browser, mod } = await moderatedRoom(t, R);
    const record = [];
    const { page } = await openRoomPage(browser.context, salon.url, R, 'Léa', { camera: false, record });
    await waitFor(async () => (await lobbyState(page)).position === 1, 'Léa knocking');
    const knock = (await drainAll(mod)).find((m) => m.type === 'knock');
    const offline = await pageNetwork(browser.context, page);
    await offline(true);
    await page.evaluate(() => window.salonTest.dropSignaling());
    await sleep(300);
    mod.send({ type: 'admit', id: knock.id });
    // The room sees her join, reconnecting (her page is away).
    assert.deepEqual(
      (await drainAll(mod)).map((m) => m.type),
      ['participant-joined', 'participant-reconnecting'],
    );
    await offline(false);
    await page.waitForFunction(() => window.salonTest.ready === true, null, { timeout: 20_000 });
    assert.equal(String(await page.evaluate(() => window.salonTest.id)), String(knock.id));
    assert.ok(record.some((m) => m.type === 'resumed'));
    assert.equal((await lobbyState(page)).phase, 'call');
    assert.equal((await lobbyState(page)).token, null, 'the lobby token is forgotten once in the meeting');
    assert.ok((await drainAll(mod)).some((m) => m.type === 'participant-resumed'));
  },
);

for (const [lang, text] of [
  ['fr', 'Plusieurs personnes de votre réseau viennent d’être refusées : patientez un instant avant de frapper.'],
  ['en', 'Several people from your network were just refused: wait a moment before knocking.'],
]) {
  test(
    `(${lang}) a guest held by its network's cooldown reloads: still told it was its network, not that a moderator refused it`,
    { timeout: 90_000 },
    async (t) => {
      const R = `NetHold${lang}`;
      const { salon, browser, mod } = await moderatedRoom(t, R);
      // Three guests from this address (127.0.0.1) refused in a row.
      for (let i = 0; i < 3; i++) {
        const s = await openSocket(salon.wsUrl);
        s.send({ type: 'join', room: R, name: `Troll${i}` });
        const { id } = await s.next();
        await sleep(300);
        mod.send({ type: 'deny', id });
        s.close();
      }
      const { page } = await openRoomPage(browser.context, salon.url, R, 'Léa', { camera: false, lang });
      const message = () => page.textContent('#lobby-message');
      await waitFor(async () => (await message()) === text, 'held by the network');
      await page.reload();
      await waitFor(async () => (await lobbyState(page)).phase === 'lobby', 'back in the lobby');
      await sleep(1_000);
      assert.equal(await message(), text);
      assert.equal(await page.isDisabled('#lobby-reknock'), true, 'the countdown runs');
    },
  );
}

for (const [lang, text] of [
  ['fr', 'Votre place dans la salle d’attente a été reprise par une autre page (un autre onglet ?).'],
  ['en', 'Another page (another tab?) took your place in the waiting room.'],
]) {
  test(
    `(${lang}) a second tab with the guest's lobby token takes its place; the first says so (waiting room, not meeting) and stays quiet`,
    { timeout: 90_000 },
    async (t) => {
      const R = `TwoTabs${lang}`;
      const { salon, browser, mod } = await moderatedRoom(t, R);
      const { page } = await openRoomPage(browser.context, salon.url, R, 'Léa', { camera: false, lang });
      await waitFor(async () => (await lobbyState(page)).position === 1, 'Léa knocking');
      const token = (await lobbyState(page)).token;
      assert.equal((await drainAll(mod)).filter((m) => m.type === 'knock').length, 1);
      // A duplicated tab: its sessionStorage is a copy of the first's.
      const second = await browser.context.newPage();
      await second.addInitScript(([room, tok]) => {
        if (!sessionStorage.getItem(`salon.lobby.${room}`)) {
          sessionStorage.setItem(`salon.lobby.${room}`, JSON.stringify({ token: tok, name: 'Léa' }));
        }
      }, [R, token]);
      await second.goto(`${salon.url}${R}?lang=${lang}`);
      await waitFor(async () => (await lobbyState(second)).position === 1, 'the second tab in her place');
      assert.equal((await lobbyState(second)).token, token);
      await waitFor(async () => (await lobbyState(page)).phase === 'prejoin', 'the first tab back on the form');
      assert.equal(await page.textContent('#error'), text);
      assert.equal((await lobbyState(page)).token, null);
      // The first tab does not take the place back (no ping-pong); the
      // moderator sees nothing of it.
      await sleep(3_000);
      assert.equal((await lobbyState(page)).phase, 'prejoin');
      assert.equal((await lobbyState(second)).phase, 'lobby');
      assert.deepEqual((await drainAll(mod)).filter((m) => m.type === 'knock' || m.type === 'knock-resolved'), []);
    },
  );
}
