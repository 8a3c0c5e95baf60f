// UDP blocked: a guest whose network lets only TCP out (as in many public
// administrations) still reaches mediad directly, over ICE-TCP (RFC 6544
// passive candidate, RFC 4571 framing), with no TURN server configured.
// Bruno's Chromium sits in its own network namespace where an nftables
// rule drops every UDP packet it sends; Aline's Chromium is beside the
// server. Both decode each other's media, and the pair each browser
// selected says how: TCP for Bruno, UDP for Aline (UDP comes first when it
// works). Needs root (network namespaces, nft); skipped otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, launchBrowser, joinRoom, twoHosts, receiving, waitFor } from './helpers.mjs';
import { blockUdp, metricIn } from './netns.mjs';

/** The selected candidate pair of `p`'s publish or subscribe connection, from getStats. */
const selectedPair = (p, which) =>
  p.page.evaluate(async (which) => {
    const pc = window.salonTest.pcs()[which];
    if (!pc) return null;
    const byId = new Map();
    (await pc.getStats()).forEach((s) => byId.set(s.id, s));
    let pair = null;
    for (const s of byId.values()) {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) ?? null;
    }
    if (pair === null) {
      pair = [...byId.values()].find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') ?? null;
    }
    if (pair === null) return null;
    const side = (c) => c && { protocol: c.protocol, type: c.candidateType, tcpType: c.tcpType ?? null, address: c.address, port: c.port };
    return {
      state: pair.state,
      nominated: pair.nominated,
      bytesReceived: pair.bytesReceived,
      local: side(byId.get(pair.localCandidateId)),
      remote: side(byId.get(pair.remoteCandidateId)),
    };
  }, which);

test(
  'UDP blocked: media both ways over ICE-TCP, no TURN',
  { timeout: 150_000, skip: process.getuid?.() !== 0 ? 'needs root for network namespaces' : false },
  async (t) => {
    const net = await twoHosts();
    t.after(() => net.cleanup());
    const blocked = blockUdp(net.rcv);
    t.diagnostic(`UDP dropped in ${net.rcv} with ${blocked.tool}`);
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

    const aline = await joinRoom(near.context, salon.url, 'Reseau-Ferme', 'Aline');
    const bruno = await joinRoom(far.context, salon.url, 'Reseau-Ferme', 'Bruno');
    const [toBruno, toAline] = await Promise.all([receiving(bruno, aline, 60_000), receiving(aline, bruno, 60_000)]);
    t.diagnostic(`both decode each other ${Date.now() - started} ms after the first join (windows ${toBruno} / ${toAline} ms)`);

    for (const which of ['pub', 'sub']) {
      const pair = await waitFor(async () => selectedPair(bruno, which), `Bruno's ${which} pair`, 10_000, 250);
      t.diagnostic(`Bruno ${which}: ${JSON.stringify(pair)}`);
      assert.equal(pair.state, 'succeeded');
      assert.equal(pair.nominated, true);
      assert.equal(pair.local.protocol, 'tcp', `Bruno's ${which} local candidate is TCP`);
      assert.equal(pair.remote.protocol, 'tcp', `Bruno's ${which} remote candidate is TCP`);
      assert.equal(pair.remote.tcpType, 'passive');
      assert.equal(pair.remote.address, '127.0.0.2');
      assert.ok(pair.bytesReceived > 0);

      const udp = await waitFor(async () => selectedPair(aline, which), `Aline's ${which} pair`, 10_000, 250);
      t.diagnostic(`Aline ${which}: ${JSON.stringify(udp)}`);
      assert.equal(udp.state, 'succeeded');
      assert.equal(udp.local.protocol, 'udp', 'UDP first where it works');
      assert.equal(udp.remote.protocol, 'udp');
    }

    // The server saw it the same way, and the rule really dropped UDP.
    const metric = (name) => metricIn(net.srv, salon, name);
    const counts = Object.fromEntries(
      ['ice_succeeded_tcp_total', 'ice_succeeded_udp_total', 'io_tcp_accepted_total', 'io_tcp_open', 'io_tcp_rx_frames_total', 'io_tcp_closed_malformed_total', 'io_tcp_tx_dropped_total'].map(
        (n) => [n, metric(`mediad_${n}`)],
      ),
    );
    t.diagnostic(`server: ${JSON.stringify(counts)}`);
    assert.ok(counts.ice_succeeded_tcp_total >= 2, 'two transports over TCP');
    assert.ok(counts.ice_succeeded_udp_total >= 2, 'two transports over UDP');
    assert.ok(counts.io_tcp_accepted_total >= 2);
    assert.ok(counts.io_tcp_open >= 2);
    assert.equal(counts.io_tcp_closed_malformed_total, 0);
    if (blocked.tool === 'nft') {
      const dropped = blocked.count();
      t.diagnostic(`UDP packets dropped in Bruno's namespace: ${dropped}`);
      assert.ok(dropped > 0, 'Bruno tried UDP and it was dropped');
    }
  },
);
