// The browser client against a simulated media plane: the page's WebSocket
// is routed to this test (Playwright `routeWebSocket`), and a helper page
// plays mediad's part with two RTCPeerConnections (it answers the publish
// offer and offers its own fake camera/mic on the subscribe transport with
// msid stream id = a fake publisher id). This checks the client's publish and
// subscribe paths, tile naming and the `salonTest.stats()` mapping without
// depending on mediad.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, launchBrowser, sleep } from './helpers.mjs';

const FAKE_PUBLISHER = 777;

// Runs in the helper page: a tiny in-browser "SFU" for one client.
const HELPER = () => {
  const gather = (pc) =>
    new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve();
      });
    });
  const state = { pub: new RTCPeerConnection(), sub: new RTCPeerConnection(), tracks: [] };
  state.pub.addEventListener('track', (ev) => state.tracks.push(ev.track));
  window.sfu = {
    async answerPublish(sdp) {
      await state.pub.setRemoteDescription({ type: 'offer', sdp });
      await state.pub.setLocalDescription(await state.pub.createAnswer());
      await gather(state.pub);
      return state.pub.localDescription.sdp;
    },
    async offerSubscribe(streamId) {
      // Chrome does not relay received audio tracks to another connection,
      // so the "forwarded" media is the helper's own fake camera and mic.
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      for (const track of stream.getTracks()) state.sub.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      await state.sub.setLocalDescription(await state.sub.createOffer());
      await gather(state.sub);
      // Relabel the stream id as mediad does (publisher's participant id).
      return state.sub.localDescription.sdp.replaceAll(stream.id, streamId);
    },
    async acceptAnswer(sdp) {
      await state.sub.setRemoteDescription({ type: 'answer', sdp });
    },
  };
};

test('client publishes, subscribes and reports stats per publisher', { timeout: 90_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const helper = await browser.context.newPage();
  await helper.goto(salon.url + 'Helper');
  await helper.evaluate(HELPER);

  const page = await browser.context.newPage();
  const seen = [];
  const constraints = []; // every video-constraints list sent
  await page.routeWebSocket(/\/ws$/, (ws) => {
    ws.onMessage(async (raw) => {
      const msg = JSON.parse(raw);
      seen.push(msg.type);
      if (msg.type === 'video-constraints') constraints.push(msg.constraints);
      if (msg.type === 'join') {
        ws.send(
          JSON.stringify({
            type: 'joined',
            id: 5,
            room: msg.room,
            participants: [{ id: FAKE_PUBLISHER, name: 'Zoé <script>' }],
          }),
        );
      } else if (msg.type === 'publish-offer') {
        const answer = await helper.evaluate((sdp) => window.sfu.answerPublish(sdp), msg.sdp);
        ws.send(JSON.stringify({ type: 'publish-answer', sdp: answer }));
        const offer = await helper.evaluate((id) => window.sfu.offerSubscribe(id), String(FAKE_PUBLISHER));
        ws.send(JSON.stringify({ type: 'subscribe-offer', sdp: offer }));
      } else if (msg.type === 'subscribe-answer') {
        await helper.evaluate((sdp) => window.sfu.acceptAnswer(sdp), msg.sdp);
        ws.send(JSON.stringify({ type: 'connected', transport: 'subscribe' }));
      }
    });
  });
  await page.goto(salon.url + 'NomDuSalon123?lang=fr');
  await page.fill('#name', 'Aline');
  await page.click('#join');
  await page.waitForFunction(() => window.salonTest?.ready === true, null, { timeout: 15_000 });
  assert.equal(await page.evaluate(() => window.salonTest.id), 5);

  const deadline = Date.now() + 30_000;
  let s1;
  let s2;
  let ok = false;
  while (Date.now() < deadline && !ok) {
    s1 = await page.evaluate(() => window.salonTest.stats());
    await sleep(1_000);
    s2 = await page.evaluate(() => window.salonTest.stats());
    const a = s1[FAKE_PUBLISHER];
    const b = s2[FAKE_PUBLISHER];
    ok = Boolean(a && b && b.framesDecoded > a.framesDecoded && b.audioBytesReceived > 0);
  }
  assert.ok(ok, `no media from the simulated SFU: ${JSON.stringify({ s1, s2, seen })}`);
  const s = s2[FAKE_PUBLISHER];
  assert.ok(s.frameWidth > 0 && s.frameHeight > 0 && s.videoBytesReceived > 0, JSON.stringify(s));
  assert.deepEqual(Object.keys(s2), [String(FAKE_PUBLISHER)]);
  assert.deepEqual(seen.slice(0, 3), ['join', 'publish-offer', 'subscribe-answer']);

  // The remote tile holds the stream, and the name is text, not markup.
  const tile = await page.evaluate((id) => {
    const t = document.getElementById('tile-' + id);
    return {
      caption: t.querySelector('figcaption').textContent,
      scripts: t.querySelectorAll('script').length,
      tracks: t.querySelector('video').srcObject?.getTracks().length ?? 0,
    };
  }, FAKE_PUBLISHER);
  assert.deepEqual(tile, { caption: 'Zoé <script>', scripts: 0, tracks: 2 });
  assert.equal(await page.textContent('#status'), 'Connecté');

  // Layers: the tile's height (device pixels) goes out as the video's
  // max_height, debounced, only when it changes; 0 in audio-only mode.
  const videoTrack = await page.evaluate(
    (id) => document.getElementById('tile-' + id).querySelector('video').srcObject.getVideoTracks()[0].id,
    FAKE_PUBLISHER,
  );
  const lastFor = () => constraints.at(-1)?.find((c) => c.track_id === videoTrack)?.max_height;
  const expectHeight = async (h) => {
    const end = Date.now() + 5_000;
    while (Date.now() < end && lastFor() !== h) await sleep(100);
    assert.equal(lastFor(), h, `constraints sent: ${JSON.stringify(constraints)}`);
  };
  assert.ok(constraints.length >= 1, 'a first video-constraints after the track arrived');
  await page.evaluate(() => window.salonTest.setTileHeight(180));
  await expectHeight(180);
  await page.evaluate(() => window.salonTest.setTileHeight(360));
  await expectHeight(360);
  const count = constraints.length;
  await page.evaluate(() => window.salonTest.setTileHeight(360));
  await sleep(800);
  assert.equal(constraints.length, count, 'nothing sent when nothing changed');
  await page.click('#audio-only');
  await expectHeight(0);
  await page.click('#audio-only');
  await expectHeight(360);
  assert.deepEqual(constraints.at(-1), [{ track_id: videoTrack, max_height: 360 }]);
});

// The lobby, roles and moderation UI against a scripted server (protocol
// v2, docs/signaling.md): what the client shows for each server message and
// what it sends for each control, independent of the gateway's policy.
test('client: token, lobby, roles and moderation against a scripted server', { timeout: 90_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const page = await browser.context.newPage();
  const got = []; // messages from the client, in order
  let server = null;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    server = ws;
    ws.onMessage((raw) => got.push(JSON.parse(raw)));
  });
  const send = (msg) => server.send(JSON.stringify(msg));
  const until = async (pred, what) => {
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      const m = got.find(pred);
      if (m) return m;
      await sleep(50);
    }
    throw new Error(`the client did not send ${what}: ${JSON.stringify(got)}`);
  };
  const phase = () => page.evaluate(() => window.salonTest.phase());

  // The token from the URL goes into `join` and leaves the address bar.
  await page.goto(salon.url + 'Scripte?lang=fr&jwt=abc.def.ghi');
  assert.equal(new URL(page.url()).search, '?lang=fr');
  assert.equal(await page.getAttribute('#lang-switch', 'href'), '?lang=en');
  await page.fill('#name', 'Inès');
  await page.click('#join');
  const join = await until((m) => m.type === 'join', 'join');
  assert.deepEqual(join, { type: 'join', room: 'Scripte', name: 'Inès', jwt: 'abc.def.ghi' });

  // Lobby: waiting, then denied with a countdown, then knock again.
  send({ type: 'lobby', id: 9, room: 'Scripte' });
  await page.waitForSelector('#lobby:not([hidden])');
  assert.equal(await page.textContent('#lobby-message'), 'En attente d’un modérateur…');
  send({ type: 'denied', reason: 'pas maintenant', retry_after_ms: 1_500 });
  await page.waitForFunction(() => document.getElementById('lobby-message').textContent.includes('pas maintenant'));
  assert.equal(await page.isDisabled('#lobby-reknock'), true);
  assert.match(await page.textContent('#lobby-countdown'), /dans [12] s/);
  await page.waitForSelector('#lobby-reknock:not([disabled])', { timeout: 5_000 });
  await page.click('#lobby-reknock');
  await until((m) => m.type === 'knock', 'knock');

  // Admitted: the meeting, with roles shown.
  send({ type: 'admitted' });
  send({
    type: 'joined',
    id: 9,
    room: 'Scripte',
    role: 'guest',
    locked: false,
    pad_token: 'x',
    participants: [{ id: 3, name: 'Modo', role: 'moderator', audio_muted: false, video_stopped: true }],
  });
  await page.waitForFunction(() => window.salonTest.ready === true);
  assert.equal(await phase(), 'call');
  assert.equal(await page.evaluate(() => window.salonTest.role()), 'guest');
  await page.click('#toggle-people');
  assert.equal(await page.textContent('#person-3 .role-badge'), 'modérateur');
  assert.equal(await page.textContent('#tile-3 .muted-flag'), 'vidéo coupée');
  // A guest sees no moderation control.
  assert.equal(await page.locator('#people .mod-actions button').count(), 0);
  assert.equal(await page.isHidden('#mod-room'), true);

  // Muted by a moderator: the mic shows it; unmuting asks the server.
  send({ type: 'muted', id: 9, by: 3, kind: 'audio' });
  await page.waitForSelector('#mic[aria-pressed="true"]');
  await page.click('#mic');
  await until((m) => m.type === 'unmute' && m.kind === 'audio', 'unmute');
  send({ type: 'error', code: 'forbidden', message: 'muted by a moderator' });
  await page.waitForFunction(() => document.getElementById('error').textContent.includes('tous les micros'));
  assert.equal(await page.getAttribute('#mic', 'aria-pressed'), 'true');
  got.length = 0;
  await page.click('#mic');
  await until((m) => m.type === 'unmute', 'a second unmute');
  send({ type: 'unmuted', id: 9, kind: 'audio' });
  await page.waitForSelector('#mic[aria-pressed="false"]');

  // Made moderator: the controls appear live; knocks fill the waiting list.
  send({ type: 'role-changed', id: 9, role: 'moderator' });
  await page.waitForSelector('#mod-room:not([hidden])');
  send({ type: 'knock', id: 20, name: 'Ulysse <b>' });
  send({ type: 'knock', id: 21, name: 'Vera' });
  await page.waitForSelector('#lobby-badge:not([hidden])');
  assert.equal(await page.textContent('#lobby-badge'), '2 en attente');
  assert.equal(await page.textContent('#waiting-20 .who'), 'Ulysse <b>');
  // Knocks that come together are read together (announce.js gathers
  // what arrives within 150 ms): Vera's is in what is read.
  await page.waitForFunction(() => document.getElementById('announce').textContent.includes('Vera attend en salle d’attente.'));
  got.length = 0;
  await page.getByRole('button', { name: 'Faire entrer Ulysse <b>' }).click();
  assert.deepEqual(await until((m) => m.type === 'admit', 'admit'), { type: 'admit', id: 20 });
  send({ type: 'knock-resolved', id: 21, by: 3, admitted: false });
  await page.waitForSelector('#lobby-badge', { state: 'hidden' });

  // Per-participant and room controls send what the protocol says.
  await page.getByRole('button', { name: 'Couper le micro de Modo' }).click();
  assert.deepEqual(await until((m) => m.type === 'mute', 'mute'), { type: 'mute', id: 3 });
  await page.getByRole('button', { name: 'Exclure et bannir Modo' }).click();
  assert.deepEqual(await until((m) => m.type === 'kick', 'kick'), { type: 'kick', id: 3, ban: true });
  await page.click('#mute-all');
  await until((m) => m.type === 'mute-all', 'mute-all');
  await page.click('#lock');
  assert.deepEqual(await until((m) => m.type === 'lock', 'lock'), { type: 'lock', on: true });
  send({ type: 'room-locked', on: true, by: 9 });
  await page.waitForSelector('#locked-badge:not([hidden])');
  assert.equal(await page.getAttribute('#lock', 'aria-pressed'), 'true');
  // Ending asks for confirmation first.
  await page.click('#end-meeting');
  await page.click('#end-cancel');
  assert.equal(got.some((m) => m.type === 'end-meeting'), false);
  await page.click('#end-meeting');
  await page.click('#end-confirm');
  await until((m) => m.type === 'end-meeting', 'end-meeting');
  // `layers-wanted` switches the camera's encodings, never all off.
  const enc = await page.evaluate(() => window.salonTest.publishEncodings());
  assert.deepEqual(enc.encodings.map((e) => e.rid), ['q', 'h', 'f']);
  const actives = () =>
    page.evaluate(async () => (await window.salonTest.publishEncodings()).encodings.map((e) => e.active));
  send({ type: 'layers-wanted', mid: enc.mid, active: [true, true, false] });
  await page.waitForFunction(async () => !(await window.salonTest.publishEncodings()).encodings[2].active);
  assert.deepEqual(await actives(), [true, true, false]);
  send({ type: 'layers-wanted', mid: enc.mid, active: [false, false, false] });
  await page.waitForFunction(async () => !(await window.salonTest.publishEncodings()).encodings[1].active);
  assert.deepEqual(await actives(), [true, false, false]);

  send({ type: 'kicked', by: 3, ban: false });
  await page.waitForSelector('#ended:not([hidden])');
  assert.equal(await phase(), 'kicked');
  assert.equal(await page.textContent('#ended-message'), 'Un modérateur vous a exclu de la réunion.');
});
