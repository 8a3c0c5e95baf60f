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
  await page.routeWebSocket(/\/ws$/, (ws) => {
    ws.onMessage(async (raw) => {
      const msg = JSON.parse(raw);
      seen.push(msg.type);
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
});
