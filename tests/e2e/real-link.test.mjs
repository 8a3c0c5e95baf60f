// Issue 17 in real browsers: a Chromium publisher sends its camera at
// 1280x720 in three simulcast layers; a Chromium receiver watches it in a
// 720-line tile from another network namespace, its downlink shaped by
// `tbf` on the veth between the two (127.0.0.2 ↔ 127.0.0.3, loopback
// addresses only; /work/shared/TESTING-NOTES.md). Per case the link goes
// 5 Mbit/s → the limit (400 or 800 kbit/s, bucket 10 kB or 2 kB) →
// unlimited, and what the receiver's page decodes is sampled every 100 ms
// in the page (`framesDecoded`, frame size, loss, audio concealment).
//
// Asserted at 400 kbit/s: a lower layer decoded within 1 s of the drop;
// in the 20 s after it, no gap in decoded frames over 500 ms, at most 2
// layer switches, video loss under 5 %, audio never silent over 200 ms.
// At 800 kbit/s, in the last 15 s of the limit: 640x360 or better at
// ≥ 90 % of the publisher's 360p frame rate (not 720p at half rate; the
// check says why not 640x360 alone) and no gap over 500 ms. After the
// limit is lifted: 1280x720 within 5 s. The figures of each phase go to the test's
// diagnostics (docs/layers.md, "In real browsers").
//
// Needs root (network namespaces, tc). Runs on one io backend only: its
// subject is the link and mediad's estimator and allocator, which are the
// same above both backends; CI runs the e2e suite once per backend, and
// this file costs about 2.5 minutes (four cases of 29–36 s, plus two
// browsers' start). REAL_LINK_PACING=1 turns mediad's pacer on.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startSalon, launchBrowser, joinRoom, twoHosts, metricsIn, sumMetric, sleep, IO_BACKEND } from './helpers.mjs';

const ROOM = 'Lien-Reel';
/** Seconds of each phase. */
const RAMP_DEADLINE_MS = 60_000; // 5 Mbit/s until the receiver decodes live 720p
const LIMITED_MS = 25_000; // the drop's first second, the 20 s window, margin
const LIFTED_DEADLINE_MS = 10_000; // 720p is asserted within 5 s; measured up to 10
const WINDOW_MS = 20_000;
/** The receiver's rate once the publisher's 720p has ramped up (see the ramp below). */
const FULL_RATE_KBPS = Number(process.env.REAL_LINK_FULL_KBPS ?? 600);

const skip =
  process.getuid?.() !== 0
    ? 'needs root for network namespaces and tc'
    : IO_BACKEND === 'epoll'
      ? 'the link is the subject, not the io backend: run once, with SALON_IO_BACKEND unset or uring'
      : false;

/**
 * Starts sampling in the receiver's page every 100 ms: the publisher's
 * video (by its transceiver's mid) and all received audio.
 */
async function startSampler(page, mid) {
  await page.evaluate((videoMid) => {
    const samples = [];
    const { sub } = window.salonTest.pcs();
    let busy = false;
    const timer = setInterval(async () => {
      if (busy) return; // getStats slower than 100 ms: skip, never pile up
      busy = true;
      try {
        const report = await sub.getStats();
        const s = { t: Date.now(), v: null, a: { packets: 0, total: 0, concealed: 0, silent: 0 } };
        report.forEach((r) => {
          if (r.type !== 'inbound-rtp') return;
          if (r.kind === 'video' && r.mid === videoMid) {
            s.v = {
              frames: r.framesDecoded ?? 0,
              w: r.frameWidth ?? 0,
              h: r.frameHeight ?? 0,
              packets: r.packetsReceived ?? 0,
              lost: r.packetsLost ?? 0,
              bytes: r.bytesReceived ?? 0,
              rtxPackets: r.retransmittedPacketsReceived ?? 0,
              rtxBytes: r.retransmittedBytesReceived ?? 0,
              freezes: r.freezeCount ?? 0,
              freezeMs: (r.totalFreezesDuration ?? 0) * 1000,
            };
          } else if (r.kind === 'audio') {
            s.a.packets += r.packetsReceived ?? 0;
            s.a.total += r.totalSamplesReceived ?? 0;
            s.a.concealed += r.concealedSamples ?? 0;
            s.a.silent += r.silentConcealedSamples ?? 0;
          }
        });
        samples.push(s);
      } finally {
        busy = false;
      }
    }, 100);
    window.realLink = { samples, stop: () => clearInterval(timer) };
  }, mid);
}

/** Samples taken since `from` (ms, Date.now()) and until `to`. */
async function samplesBetween(page, from, to = Infinity) {
  return page.evaluate(([a, b]) => window.realLink.samples.filter((s) => s.t >= a && s.t <= b && s.v), [from, to]);
}

/** The publisher's frames encoded so far per rid, and its send rate setting. */
async function publisherFrames(page) {
  return page.evaluate(async () => {
    const out = {};
    (await window.salonTest.pcs().pub.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video' && r.rid) {
        out[r.rid] = {
          frames: r.framesEncoded ?? 0,
          h: r.frameHeight ?? 0,
          bytes: r.bytesSent ?? 0,
          target: Math.round((r.targetBitrate ?? 0) / 1000),
          limit: r.qualityLimitationReason ?? null,
        };
      } else if (r.type === 'candidate-pair' && r.nominated && r.availableOutgoingBitrate) {
        out.available = Math.round(r.availableOutgoingBitrate / 1000);
      }
    });
    return out;
  });
}

/**
 * The figures of a run of samples: layer shares by decoded height (time
 * weighted), fps, kbit/s, video loss, retransmission share, the longest
 * gap between decoded frames, layer switches, and the longest audio
 * silence (fully concealed playout, from the jitter buffer's own counts;
 * and the longest gap between audio packets, sampling jitter included).
 */
function figures(samples) {
  if (samples.length < 2) return null;
  const first = samples[0];
  const last = samples.at(-1);
  const secs = (last.t - first.t) / 1000;
  const shares = {};
  let longestGap = 0;
  let lastFrameAt = first.t;
  let switches = 0;
  let audioRun = 0;
  let audioLongest = 0;
  let lastAudioAt = first.t;
  let audioPacketGap = 0;
  for (let i = 1; i < samples.length; i++) {
    const [p, s] = [samples[i - 1], samples[i]];
    const dt = s.t - p.t;
    if (s.v.h > 0) shares[s.v.h] = (shares[s.v.h] ?? 0) + dt;
    if (s.v.frames > p.v.frames) {
      // A frame decoded in (p.t, s.t]: the gap since the last sample that
      // saw one (the sampling's own jitter included: pessimistic).
      longestGap = Math.max(longestGap, s.t - lastFrameAt);
      lastFrameAt = s.t;
    }
    if (s.v.h !== p.v.h && p.v.h > 0 && s.v.h > 0) switches++;
    const played = s.a.total - p.a.total;
    const concealed = s.a.concealed - p.a.concealed - (s.a.silent - p.a.silent);
    // A silence: a run of fully concealed sample intervals plus the
    // concealed part of the intervals on either side (an interval partly
    // concealed counts at both ends: pessimistic by at most 100 ms).
    const concealedMs = (Math.max(0, concealed) / 48_000) * 1000;
    if (played > 0 && concealed >= 0.9 * played) {
      audioRun += concealedMs;
    } else {
      audioRun += concealedMs;
      audioLongest = Math.max(audioLongest, audioRun);
      audioRun = concealedMs;
    }
    if (s.a.packets > p.a.packets) {
      audioPacketGap = Math.max(audioPacketGap, s.t - lastAudioAt);
      lastAudioAt = s.t;
    }
  }
  audioLongest = Math.max(audioLongest, audioRun);
  longestGap = Math.max(longestGap, last.t - lastFrameAt);
  const total = Object.values(shares).reduce((a, b) => a + b, 0) || 1;
  const received = last.v.packets - first.v.packets;
  const lost = last.v.lost - first.v.lost;
  const bytes = last.v.bytes - first.v.bytes;
  return {
    secs: Number(secs.toFixed(1)),
    layers: Object.fromEntries(Object.entries(shares).map(([h, ms]) => [`${h}p`, Math.round((100 * ms) / total)])),
    fps: Number(((last.v.frames - first.v.frames) / secs).toFixed(1)),
    kbps: Math.round((bytes * 8) / secs / 1000),
    lossPct: Number(((100 * Math.max(0, lost)) / Math.max(1, received + Math.max(0, lost))).toFixed(1)),
    rtxPct: Number(((100 * (last.v.rtxBytes - first.v.rtxBytes)) / Math.max(1, bytes)).toFixed(1)),
    longestGapMs: longestGap,
    switches,
    chromeFreezes: last.v.freezes - first.v.freezes,
    audioSilentMs: Math.round(audioLongest),
    audioPacketGapMs: audioPacketGap,
    audioPlayed: last.a.total > first.a.total,
  };
}

/** The first sample at or after `from` that decodes a frame of height `ok(h)`; null if none. */
function firstDecoded(samples, from, ok) {
  for (let i = 1; i < samples.length; i++) {
    const [p, s] = [samples[i - 1], samples[i]];
    if (s.t >= from && s.v.frames > p.v.frames && ok(s.v.h)) return s.t - from;
  }
  return null;
}

// Every case is asserted (docs/layers.md, "Fifth round in the browser").
// A case not met in every run could run as `todo` (measured and reported,
// its failed assertions a TODO failure, the suite still green);
// REAL_LINK_STRICT=1 makes such a case count.
const STRICT = process.env.REAL_LINK_STRICT === '1';
const CASES = [
  { rate: '400kbit', burst: '10k' },
  { rate: '400kbit', burst: '2k' },
  { rate: '800kbit', burst: '10k' },
  { rate: '800kbit', burst: '2k' },
];

describe('a real shaped link (issue 17)', { skip, timeout: 600_000 }, () => {
  let net;
  let salon;
  let near;
  let far;
  let publisher;
  let receiver;
  let mid;
  const started = Date.now();

  before(async () => {
    net = await twoHosts();
    net.shape('5mbit', '10k');
    // REAL_LINK_PACING=1: with mediad's pacer (off by default).
    const pacing = process.env.REAL_LINK_PACING === '1' ? ['--media-pacing'] : [];
    salon = await startSalon({
      netns: net.srv,
      listen: '127.0.0.2:0',
      extraArgs: ['--media-ip', '127.0.0.2', ...pacing],
    });
    near = await launchBrowser({ netns: net.srv });
    far = await launchBrowser({ netns: net.rcv });
    publisher = await joinRoom(near.context, salon.url, ROOM, 'Paula');
    receiver = await joinRoom(far.context, salon.url, ROOM, 'Regard', { camera: false });
    await receiver.page.evaluate(() => window.salonTest.setTileHeight(720));
    const until = Date.now() + 30_000;
    while (Date.now() < until && !mid) {
      const all = await receiver.page.evaluate(() => window.salonTest.inboundVideo());
      mid = all.find((s) => s.publisher === publisher.id && s.mid !== null)?.mid;
      if (!mid) await sleep(250);
    }
    assert.ok(mid, 'the receiver has a transceiver for the publisher camera');
    await startSampler(receiver.page, mid);
  });

  after(async () => {
    await far?.close();
    await near?.close();
    await salon?.stop();
    net?.cleanup();
  });

  for (const c of CASES) {
    const todo = STRICT ? false : (c.todo ?? false);
    test(`5 Mbit/s → ${c.rate} (tbf burst ${c.burst}) → unlimited`, { timeout: 180_000, todo }, async (t) => {
      const log = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);
      const costStart = Date.now();
      // REAL_LINK_LOGS=<dir>: mediad's log of the case there (with
      // RUST_LOG=info,salon_mediad=debug: every probe and layer change).
      if (process.env.REAL_LINK_LOGS) {
        t.after(() => writeFile(path.join(process.env.REAL_LINK_LOGS, `${c.rate}-${c.burst}.log`), salon.logs()));
      }

      // 5 Mbit/s until the tile decodes 720p at full rate for 3 s: the
      // publisher has ramped up. (Chrome's fake camera is easy to encode:
      // its 720p layer settles at ~700 kbit/s, under its 1.5 Mbit/s
      // target; 360p at ~320, 180p at ~180.)
      net.shape('5mbit', c.burst);
      const rampFrom = Date.now();
      let live = false;
      while (Date.now() - rampFrom < RAMP_DEADLINE_MS) {
        await sleep(1_000);
        const recent = await samplesBetween(receiver.page, Date.now() - 3_000);
        const f = figures(recent);
        if (f && recent.every((s) => s.v.h >= 720) && f.fps >= 15 && f.kbps >= FULL_RATE_KBPS) {
          live = true;
          break;
        }
      }
      const rampFig = figures(await samplesBetween(receiver.page, rampFrom));
      log(`5 Mbit/s, ${((Date.now() - rampFrom) / 1000).toFixed(1)} s: ${JSON.stringify(rampFig)}`);
      log(`5 Mbit/s: publisher ${JSON.stringify(await publisherFrames(publisher.page))}`);
      assert.ok(live, `no live 720p within ${RAMP_DEADLINE_MS} ms at 5 Mbit/s: ${JSON.stringify(rampFig)}`);

      // The limit.
      const m0 = metricsIn(net.srv, salon);
      const link0 = net.linkStats();
      net.shape(c.rate, c.burst);
      const dropAt = Date.now();
      await sleep(LIMITED_MS - 15_000);
      // The publisher's frame rate over the same last 15 s.
      const pub0 = await publisherFrames(publisher.page);
      const pubFrom = Date.now();
      await sleep(Math.max(0, dropAt + LIMITED_MS - Date.now()));
      const pub1 = await publisherFrames(publisher.page);
      const pubSecs = (Date.now() - pubFrom) / 1000;
      const limitedAll = await samplesBetween(receiver.page, dropAt);
      const link1 = net.linkStats();
      const m1 = metricsIn(net.srv, salon);
      const lowerAfter = firstDecoded(limitedAll, dropAt, (h) => h > 0 && h < 720);
      // The 20 s window starts when the lower layer decodes (1 s after the
      // drop if it never did).
      const windowFrom = dropAt + (lowerAfter ?? 1_000);
      const win = figures(limitedAll.filter((s) => s.t >= windowFrom && s.t <= windowFrom + WINDOW_MS));
      const last15 = figures(limitedAll.filter((s) => s.t >= dropAt + LIMITED_MS - 15_000));
      const pubFps = Object.fromEntries(
        Object.entries(pub1).filter(([, v]) => typeof v === 'object').map(([rid, v]) => [rid, Number(((v.frames - (pub0[rid]?.frames ?? 0)) / pubSecs).toFixed(1))]),
      );
      const delta = (name) => sumMetric(m1, name) - sumMetric(m0, name);
      const mediad = {
        switchesDown: delta('mediad_layer_switches_down_total'),
        switchesUp: delta('mediad_layer_switches_up_total'),
        probes: delta('mediad_probes_total'),
        probesRaised: delta('mediad_probes_raised_total'),
        probesQueueBuilt: delta('mediad_probes_queue_built_total'),
        nackAnswered: delta('mediad_nack_answered_total'),
        nackOverBudget: delta('mediad_nack_over_budget_total'),
        rtxBytes: delta('mediad_rtx_bytes_sent_total'),
      };
      const link = {
        sentKB: Math.round((link1.sentBytes - link0.sentBytes) / 1000),
        dropped: link1.dropped - link0.dropped,
        droppedPct: Number((100 * (link1.dropped - link0.dropped) / Math.max(1, link1.sentPackets - link0.sentPackets + link1.dropped - link0.dropped)).toFixed(1)),
      };
      log(`${c.rate}/${c.burst}: limited at ${new Date(dropAt).toISOString()}, lower layer decoded ${lowerAfter} ms after`);
      log(`${c.rate}/${c.burst}: 20 s window ${JSON.stringify(win)}`);
      log(`${c.rate}/${c.burst}: last 15 s ${JSON.stringify(last15)}; publisher fps ${JSON.stringify(pubFps)}`);
      log(`${c.rate}/${c.burst}: link ${JSON.stringify(link)}; mediad ${JSON.stringify(mediad)}`);

      // Lifted.
      net.shape(null);
      const liftAt = Date.now();
      let upAfter = null;
      while (Date.now() - liftAt < LIFTED_DEADLINE_MS && upAfter === null) {
        await sleep(250);
        upAfter = firstDecoded(await samplesBetween(receiver.page, liftAt - 200), liftAt, (h) => h >= 720);
      }
      log(`${c.rate}/${c.burst}: lifted, 720p decoded after ${upAfter} ms; case took ${((Date.now() - costStart) / 1000).toFixed(0)} s`);

      const failures = [];
      const check = (ok, what) => {
        if (!ok) failures.push(what);
      };
      if (c.rate === '400kbit') {
        check(lowerAfter !== null && lowerAfter <= 1_000, `a lower layer decoded within 1 s of the drop (${lowerAfter} ms)`);
        check(win && win.longestGapMs <= 500, `no gap over 500 ms in decoded frames (${win?.longestGapMs} ms)`);
        check(win && win.switches <= 2, `at most 2 layer switches in 20 s (${win?.switches})`);
        check(win && win.lossPct < 5, `video loss under 5 % (${win?.lossPct} %)`);
        check(win && win.audioPlayed && win.audioSilentMs <= 200, `audio never silent over 200 ms (${win?.audioSilentMs} ms)`);
      } else {
        // 640x360 or better at the publisher's full rate (not 720p at
        // half rate, not 180p). The issue asks for 640x360: its 720p was
        // too dear for the link. Chrome's fake camera's 720p costs 626
        // kbit/s–1.1 Mbit/s (its picture is easy to encode): when it is
        // cheap, it fits 800 kbit/s with the allocator's 15 % margin and
        // audio, and mediad keeps it at full rate (in 3 of the fifth
        // round's 14 runs, 7–85 % of the last 15 s). With a 720p that cannot fit (1.5 Mbit/s, in
        // virtual time: `layers_real_link.rs`) 640x360 is asserted
        // strictly. A camera-like picture (sensor noise) cost this 2-core
        // machine the publisher's frame rate (11–17 fps) and was dropped.
        const want = 0.9 * (pubFps.h ?? 0);
        const atLeast360 = (last15?.layers['360p'] ?? 0) + (last15?.layers['720p'] ?? 0);
        check(
          last15 && atLeast360 >= 90 && last15.fps >= want,
          `640x360 or better at ≥ 90 % of the publisher's ${pubFps.h} fps (${JSON.stringify(last15?.layers)}, ${last15?.fps} fps)`,
        );
        check(last15 && last15.longestGapMs <= 500, `no gap over 500 ms in decoded frames (${last15?.longestGapMs} ms)`);
      }
      check(upAfter !== null && upAfter <= 5_000, `1280x720 within 5 s of the limit lifted (${upAfter} ms)`);
      assert.deepEqual(failures, [], `${c.rate}/${c.burst}: ${failures.join('; ')}`);
    });
  }
});
