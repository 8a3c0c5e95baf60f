// A real network drop: the guest's browser sits in its own network
// namespace, joined to the server's by a veth link (127.0.0.3 ↔ 127.0.0.2,
// loopback addresses only). The link goes down for 5 s and the guest's TCP
// connections die meanwhile (as on a network change), then the link comes
// back: the guest resumes by itself (the gateway, which never saw the old
// socket close, replaces it), Aline never sees it leave, and media flows
// both ways again (ICE and consent freshness recover by themselves).
// Needs root (network namespaces); skipped otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, launchBrowser, joinRoom, recordSignaling, twoHosts, waitFor, sleep } from './helpers.mjs';

const stats = (p) => p.page.evaluate(() => window.salonTest.stats());
const about = (msgs, type, id) => msgs.filter((m) => m.type === type && String(m.id) === String(id));

async function videoBothWays(a, b, timeoutMs, windowMs = 1_000) {
  const started = Date.now();
  let last = null;
  while (Date.now() - started < timeoutMs) {
    const a1 = await stats(a);
    const b1 = await stats(b);
    await sleep(windowMs);
    const a2 = await stats(a);
    const b2 = await stats(b);
    last = { [a.name]: a2[b.id], [b.name]: b2[a.id] };
    if (a2[b.id]?.framesDecoded > (a1[b.id]?.framesDecoded ?? 0) && b2[a.id]?.framesDecoded > (b1[a.id]?.framesDecoded ?? 0)) {
      return Date.now() - started;
    }
  }
  throw new Error(`no video both ways in ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

test(
  'reconnect over a real link: 5 s down, then up — same place, media again',
  { timeout: 150_000, skip: process.getuid?.() !== 0 ? 'needs root for network namespaces' : false },
  async (t) => {
    const net = await twoHosts();
    t.after(() => net.cleanup());
    const salon = await startSalon({
      netns: net.srv,
      listen: '127.0.0.2:0',
      extraArgs: ['--media-ip', '127.0.0.2'],
    });
    t.after(() => salon.stop());
    const near = await launchBrowser({ netns: net.srv });
    t.after(() => near.close());
    const far = await launchBrowser({ netns: net.rcv });
    t.after(() => far.close());
    const started = Date.now();
    const log = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);

    const heard = [];
    const aline = await joinRoom(near.context, salon.url, 'Reunion-Lien', 'Aline', { record: heard });
    const bruno = await joinRoom(far.context, salon.url, 'Reunion-Lien', 'Bruno');
    log(`media both ways after ${await videoBothWays(aline, bruno, 45_000)} ms`);

    const port = new URL(salon.url).port;
    const downAt = Date.now();
    net.down();
    try {
      // The guest's machine changes networks: its TCP connections die
      // (`ss -K`, as on an address change) while the link is down. The
      // gateway does not know yet; the client retries, in vain until the
      // link is back.
      await sleep(500);
      net.killTcp(net.rcv, `dst 127.0.0.2 dport = :${port}`);
      await waitFor(async () => (await bruno.page.evaluate(() => window.salonTest.status())) === 'reconnecting', 'Bruno reconnecting', 4_000, 100);
      await sleep(Math.max(0, 5_000 - (Date.now() - downAt)));
    } finally {
      net.up();
    }
    const upAt = Date.now();
    log(`link up again after ${upAt - downAt} ms`);
    // Media does not wait for signaling: the same transports carry it as
    // soon as packets pass again (consent never lapsed in 5 s). What was
    // sent during the outage is lost both ways, so both decoders need key
    // frames: mediad asks the publishers at once — Bruno's first RTCP after
    // a second of silence, Bruno's video numbering jumping by hundreds —
    // instead of waiting for Chrome's own request (3 s without a decodable
    // frame). Measured: 0.3 s (3.4–3.5 s before), measurement window
    // included; the goal is 3 s.
    const mediaBack = await videoBothWays(aline, bruno, 10_000, 300);
    const back = Date.now() - upAt;
    log(`media both ways ${back} ms after the link returned`);
    assert.ok(back <= 3_000, `media back within 3 s of the link (${back} ms, window ${mediaBack} ms)`);
    await waitFor(
      async () => (await bruno.page.evaluate(() => window.salonTest.ready)) === true,
      'Bruno back in the meeting',
      40_000,
      250,
    );
    log(`Bruno ready again ${Date.now() - downAt} ms after the drop`);
    assert.equal(String(await bruno.page.evaluate(() => window.salonTest.id)), bruno.id);
    log(`media both ways again after ${await videoBothWays(aline, bruno, 45_000)} ms`);
    assert.deepEqual(about(heard, 'participant-left', bruno.id), [], 'Aline never saw Bruno leave');
    assert.equal(about(heard, 'participant-resumed', bruno.id).length, 1, 'Bruno resumed once');
    t.diagnostic(
      `Aline heard: ${JSON.stringify(heard.filter((m) => m.type.startsWith('participant-')).map((m) => m.type))}`,
    );
  },
);
