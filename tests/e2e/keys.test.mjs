// The client keys every remote track by what the subscribe SDP says for its
// transceiver's mid (`a=msid:<publisher> <publisher>-<mid>`), never by
// `MediaStreamTrack.id`: Firefox names remote tracks at random, and an m-line
// the SFU recycles for a new publisher keeps its transceiver and its track
// object (Chromium: the old msid's track id) under a new msid.
//
// 1. Against mediad: the keys the client uses (inboundVideo, video-constraints)
//    are the msid track ids of the current remote description, and the
//    server accepts them (no `error`; a small tile gets the small layer).
// 2. Against a simulated SFU (as client.test.mjs): an m-line goes inactive
//    (its track leaves the tile), is recycled for another publisher with a
//    `track` event (inactive → sendonly, new msid), then re-labelled again
//    without one (sendonly → sendonly, new msid): each time the tiles, the
//    constraints and the stage follow the SDP, while `track.id` stays the first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, launchBrowser, joinRoom, waitFor, sleep } from './helpers.mjs';

/** mid -> { stream, track } of every `a=msid` in an SDP (runs in Node). */
function msidsOf(sdp) {
  const out = {};
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const mid = section.match(/\r?\na=mid:(\S+)/)?.[1];
    const msid = section.match(/\r?\na=msid:(\S+) (\S+)/);
    if (mid && msid) out[mid] = { stream: msid[1], track: msid[2] };
  }
  return out;
}

/** Every received video as the client keys it, with the remote SDP it came from. */
async function receivedVideo(page) {
  return page.evaluate(async () => ({
    sdp: window.salonTest.pcs().sub?.remoteDescription?.sdp ?? '',
    videos: await window.salonTest.inboundVideo(),
  }));
}

test('remote tracks are keyed by the SDP msid: mediad accepts the keys', { timeout: 120_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const ROOM = 'Cles-Msid';

  // Every message the server sends the pages: no `error` may come back.
  const errors = [];
  browser.context.on('page', (p) =>
    p.on('websocket', (ws) =>
      ws.on('framereceived', ({ payload }) => {
        try {
          const msg = JSON.parse(payload);
          if (msg.type === 'error') errors.push(msg);
        } catch {}
      }),
    ),
  );
  const publisher = await joinRoom(browser.context, salon.url, ROOM, 'Paula');
  const receiver = await joinRoom(browser.context, salon.url, ROOM, 'Rémi', { camera: false });
  await receiver.page.evaluate(() => window.salonTest.setTileHeight(180));

  // Keys = msid track ids of the current remote description, per mid.
  const seen = await waitFor(async () => {
    const { sdp, videos } = await receivedVideo(receiver.page);
    const live = videos.filter((v) => v.publisher === publisher.id && v.framesDecoded > 5);
    return live.length > 0 ? { sdp, videos } : null;
  }, 'the publisher camera decoded', 40_000);
  const msids = msidsOf(seen.sdp);
  for (const v of seen.videos.filter((x) => x.trackId !== null)) {
    assert.deepEqual(
      { trackId: v.trackId, publisher: v.publisher },
      { trackId: msids[v.mid]?.track, publisher: msids[v.mid]?.stream },
      `mid ${v.mid}: ${JSON.stringify(v)} / ${JSON.stringify(msids)}`,
    );
    assert.match(v.trackId, new RegExp(`^${publisher.id}-`));
  }

  // The small tile's max_height goes out under that key and mediad applies
  // it: the receiver decodes the lowest layer (320x180).
  let s = null;
  const until = Date.now() + 40_000;
  while (Date.now() < until) {
    s = (await receiver.page.evaluate(() => window.salonTest.inboundVideo())).find((v) => v.publisher === publisher.id);
    if (s && s.framesDecoded > 10 && s.frameWidth > 0 && s.frameWidth <= 400) break;
    await sleep(1_000);
  }
  const sent = await receiver.page.evaluate(() => window.salonTest.constraintsSent());
  assert.ok(
    sent.some((list) => list.some((c) => c.track_id === s?.trackId && c.max_height > 0 && c.max_height <= 180)),
    `constraints sent under the SDP key ${s?.trackId}: ${JSON.stringify(sent)}`,
  );
  assert.equal(s?.maxHeightSent > 0 && s.maxHeightSent <= 180, true, JSON.stringify(s));
  assert.ok(s && s.frameWidth > 0 && s.frameWidth <= 400, `small tile decodes ${JSON.stringify(s)}\n${salon.logs().slice(-2000)}`);
  assert.deepEqual(errors, []);
  assert.equal((await receiver.page.textContent('#error')).trim(), '');
});

// Runs in the helper page: a tiny in-browser SFU sending one video m-line
// whose msid it rewrites as mediad does (stream id = publisher, track id =
// `<publisher>-<mid>`), and which it can set inactive or re-label.
const HELPER = () => {
  const gather = (pc) =>
    new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve();
      });
    });
  const state = { pub: new RTCPeerConnection(), sub: new RTCPeerConnection(), stream: null, tr: null };
  window.sfu = {
    async answerPublish(sdp) {
      await state.pub.setRemoteDescription({ type: 'offer', sdp });
      await state.pub.setLocalDescription(await state.pub.createAnswer());
      await gather(state.pub);
      return state.pub.localDescription.sdp;
    },
    /** A subscribe offer: the video m-line `direction`, labelled as `publisher`'s. */
    async offer(publisher, direction) {
      if (!state.tr) {
        state.stream = await navigator.mediaDevices.getUserMedia({ audio: false, video: true });
        const track = state.stream.getVideoTracks()[0];
        state.tr = state.sub.addTransceiver(track, { direction: 'sendonly', streams: [state.stream] });
      }
      state.tr.direction = direction;
      await state.sub.setLocalDescription(await state.sub.createOffer());
      await gather(state.sub);
      const mid = state.tr.mid;
      const trackId = state.stream.getVideoTracks()[0].id;
      const sdp = state.sub.localDescription.sdp.replaceAll(trackId, `${publisher}-${mid}`).replaceAll(state.stream.id, publisher);
      return { sdp, mid };
    },
    async acceptAnswer(sdp) {
      await state.sub.setRemoteDescription({ type: 'answer', sdp });
    },
  };
};

test('recycled and inactive m-lines: the client follows the SDP msid, not track.id', { timeout: 120_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const helper = await browser.context.newPage();
  await helper.goto(salon.url + 'Helper');
  await helper.evaluate(HELPER);

  const page = await browser.context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  const constraints = []; // every video-constraints list sent
  let answered = 0;
  let socket = null;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    socket = ws;
    ws.onMessage(async (raw) => {
      const msg = JSON.parse(raw);
      if (msg.type === 'video-constraints') constraints.push(msg.constraints);
      if (msg.type === 'join') {
        ws.send(
          JSON.stringify({
            type: 'joined',
            id: 5,
            room: msg.room,
            participants: [
              { id: 777, name: 'Zoé' },
              { id: 888, name: 'Yann' },
              { id: 999, name: 'Xavier' },
            ],
          }),
        );
      } else if (msg.type === 'publish-offer') {
        const answer = await helper.evaluate((sdp) => window.sfu.answerPublish(sdp), msg.sdp);
        ws.send(JSON.stringify({ type: 'publish-answer', sdp: answer }));
      } else if (msg.type === 'subscribe-answer') {
        await helper.evaluate((sdp) => window.sfu.acceptAnswer(sdp), msg.sdp);
        answered += 1;
        if (answered === 1) ws.send(JSON.stringify({ type: 'connected', transport: 'subscribe' }));
      }
    });
  });
  await page.goto(salon.url + 'Recyclage?lang=fr');
  await page.fill('#name', 'Aline');
  await page.click('#join');
  await page.waitForFunction(() => window.salonTest?.ready === true, null, { timeout: 15_000 });

  /** Sends a subscribe offer from the helper and waits for the client's answer. */
  const offer = async (publisher, direction) => {
    const before = answered;
    const { sdp, mid } = await helper.evaluate(([p, d]) => window.sfu.offer(p, d), [publisher, direction]);
    socket.send(JSON.stringify({ type: 'subscribe-offer', sdp }));
    await waitFor(() => answered > before, `answer to the ${direction} offer of ${publisher}`);
    return mid;
  };
  /** Video tracks in each tile's stream, and how the client keys the received video. */
  const look = () =>
    page.evaluate(async () => {
      const tiles = {};
      for (const id of ['777', '888', '999']) {
        const v = document.getElementById('tile-' + id)?.querySelector('video');
        tiles[id] = v?.srcObject?.getVideoTracks().length ?? 0;
      }
      const sub = window.salonTest.pcs().sub;
      const [video] = await window.salonTest.inboundVideo();
      return { tiles, video: video ?? null, sdp: sub.remoteDescription?.sdp ?? '' };
    });
  const lastKeys = () => (constraints.at(-1) ?? []).map((c) => c.track_id);
  const expect = async (what, pred) => {
    let last;
    const until = Date.now() + 15_000;
    while (Date.now() < until) {
      last = await look();
      if (pred(last)) return last;
      await sleep(200);
    }
    assert.fail(`${what}: ${JSON.stringify({ ...last, sdp: msidsOf(last.sdp), constraints: constraints.slice(-3) })}`);
  };

  // 1. Zoé's camera on a fresh m-line.
  const mid = await offer('777', 'sendonly');
  const first = await expect(
    'Zoé on her tile',
    (s) => s.tiles['777'] === 1 && s.video?.trackId === `777-${mid}` && s.video.framesDecoded > 0 && lastKeys().includes(`777-${mid}`),
  );
  assert.equal(first.video.publisher, '777');
  assert.deepEqual(msidsOf(first.sdp)[mid], { stream: '777', track: `777-${mid}` });
  const firstTrackId = first.video.mediaTrackId;

  // 2. Zoé stops: the m-line goes inactive, the track leaves her tile and the maps.
  await offer('777', 'inactive');
  await expect('inactive m-line dropped', (s) => s.tiles['777'] === 0 && (s.video?.trackId ?? null) === null);
  await page.evaluate(() => window.salonTest.setTileHeight(200));

  // 3. Yann publishes: the same m-line is recycled (inactive → sendonly, new msid).
  assert.equal(await offer('888', 'sendonly'), mid);
  const second = await expect(
    'Yann on the recycled m-line',
    (s) => s.tiles['888'] === 1 && s.tiles['777'] === 0 && s.video?.trackId === `888-${mid}` && lastKeys().includes(`888-${mid}`),
  );
  assert.equal(second.video.publisher, '888');
  assert.equal(second.video.mediaTrackId, firstTrackId, 'the browser kept the track object');
  assert.notEqual(second.video.trackId, second.video.mediaTrackId, 'the key is the SDP msid, not track.id');
  assert.ok(!lastKeys().includes(`777-${mid}`), JSON.stringify(constraints.at(-1)));

  // 4. Re-labelled while sending (no `track` event): Xavier's now.
  await page.evaluate(() => window.salonTest.setTileHeight(240));
  await offer('999', 'sendonly');
  const third = await expect(
    'Xavier on the re-labelled m-line',
    (s) => s.tiles['999'] === 1 && s.tiles['888'] === 0 && s.video?.trackId === `999-${mid}` && lastKeys().includes(`999-${mid}`),
  );
  assert.equal(third.video.publisher, '999');

  // 5. The server says Xavier shares that track: it goes on the stage, by key.
  socket.send(JSON.stringify({ type: 'screen-share', id: 999, track_id: `999-${mid}` }));
  await page.waitForSelector('#stage', { state: 'visible', timeout: 10_000 });
  assert.equal(await page.evaluate(() => document.getElementById('stage').dataset.trackId), `999-${mid}`);
  const screen = await waitFor(async () => {
    const s = await page.evaluate(() => window.salonTest.screenStats());
    return s && s.framesDecoded > 0 ? s : null;
  }, 'stage decoded');
  assert.equal(screen.trackId, `999-${mid}`);
  assert.equal((await look()).tiles['999'], 0, 'the shared track left the tile for the stage');
});
