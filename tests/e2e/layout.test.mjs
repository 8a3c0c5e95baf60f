// Layouts (issue 16): the layout core's arithmetic; in the browser, a grid
// that fills the window at 16:9 without scrolling, the pin (the pinned
// tile is large, and asks the server for a higher layer than the
// filmstrip), the speaker view following the server's dominant speaker, and
// a room of 30 (2 Chromium publishers, 26 participants of the load harness
// with audio and video, one coming and going on signaling, and the
// observer) where the grid paginates (buttons and touch swipes) and no task
// of the page takes 100 ms of CPU over a minute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitGrid, gridPageSize, plan, STAGE } from '../../signaling-gateway/web/src/layout-core.js';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startSalon, launchBrowser, joinRoom, openSocket, waitFor, sleep, CHROMIUM, CHROMIUM_ARGS, REPO_ROOT } from './helpers.mjs';

/**
 * Chromium whose fake microphone plays a steady tone (a WAV written here,
 * looped by `--use-file-for-fake-audio-capture`) instead of the default
 * short beeps: mediad's dominant speaker needs 800 ms of clearly louder
 * speech to switch, which the beeps' gaps rarely give.
 */
async function launchWithSteadyVoice() {
  const dir = await mkdtemp(path.join(tmpdir(), 'salon-e2e-voice-'));
  const rate = 48_000;
  const samples = rate * 2;
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write('RIFF', 0);
  wav.writeUInt32LE(36 + samples * 2, 4);
  wav.write('WAVEfmt ', 8);
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(rate, 24);
  wav.writeUInt32LE(rate * 2, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36);
  wav.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) wav.writeInt16LE(Math.round(12_000 * Math.sin((2 * Math.PI * 220 * i) / rate)), 44 + 2 * i);
  const file = path.join(dir, 'voice.wav');
  await writeFile(file, wav);
  const profile = path.join(dir, 'profile');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, `--use-file-for-fake-audio-capture=${file}`],
    viewport: { width: 1280, height: 800 },
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

test('layout core: grids fill the area at 16:9, pages, speaker and stage', () => {
  // Four tiles in 1400x800: 2x2, each as large as the height allows.
  const g = fitGrid(4, 1400, 800, 8);
  assert.equal(g.cols, 2);
  assert.ok(Math.abs(g.w / g.h - 16 / 9) < 1e-9);
  assert.ok(g.h * 2 + 8 <= 800.0001 && g.w * 2 + 8 <= 1400.0001);
  // The limiting side is full: no room left in both directions.
  assert.ok(2 * g.h + 8 > 799 || 2 * g.w + 8 > 1399, JSON.stringify(g));
  // Two tiles side by side in a wide area, stacked in a tall one.
  assert.equal(fitGrid(2, 1400, 500, 8).cols, 2);
  assert.equal(fitGrid(2, 390, 700, 4).cols, 1);
  // Page size: at most the maximum, and no tile narrower than the minimum.
  assert.equal(gridPageSize(1400, 800, 8, 16, 200), 16);
  const phone = gridPageSize(382, 600, 4, 16, 140);
  assert.ok(phone < 16 && fitGrid(phone, 382, 600, 4).w >= 140, String(phone));

  const ids = Array.from({ length: 30 }, (_, i) => String(i + 1));
  const grid = plan({ mode: 'grid', width: 1400, height: 800, ids, selfId: '1', page: 0, maxPerPage: 16 });
  assert.equal(grid.rects.size, 16);
  assert.equal(grid.pages, 2);
  const second = plan({ mode: 'grid', width: 1400, height: 800, ids, selfId: '1', page: 1, maxPerPage: 16 });
  assert.deepEqual([...second.rects.keys()], ids.slice(16));
  for (const r of grid.rects.values()) {
    assert.ok(r.x >= 0 && r.y >= 0 && r.x + r.w <= 1400 && r.y + r.h <= 800, JSON.stringify(r));
  }
  // Past the last page: the last page.
  assert.equal(plan({ mode: 'grid', width: 1400, height: 800, ids, page: 9 }).page, 1);

  // Speaker: pinned first, else the dominant speaker (never ourselves), else the first other.
  const four = ['1', '2', '3', '4'];
  const base = { mode: 'speaker', width: 1400, height: 800, ids: four, selfId: '1' };
  assert.equal(plan({ ...base, pinned: '3', dominant: '2' }).main, '3');
  assert.equal(plan({ ...base, dominant: '4' }).main, '4');
  assert.equal(plan({ ...base, dominant: '1' }).main, '2');
  const sp = plan({ ...base, dominant: '4' });
  const main = sp.rects.get('4');
  for (const id of ['1', '2', '3']) assert.ok(sp.rects.get(id).h * 2 < main.h, 'the filmstrip is small');
  assert.equal(sp.strip, 'right');
  assert.equal(plan({ ...base, width: 390, height: 700 }).strip, 'bottom');
  // Stage: the share is the main item, its presenter first in the strip.
  const st = plan({ ...base, mode: 'stage', hasStage: true, presenter: '3' });
  assert.equal(st.main, STAGE);
  assert.equal([...st.rects.keys()][1], '3');
  // No share: the stage falls back to the speaker view.
  assert.equal(plan({ ...base, mode: 'stage', hasStage: false }).mode, 'speaker');
});

/** The 1-minute load average divided by the number of cores. */
function loadPerCore() {
  return os.loadavg()[0] / Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

/** The last max_height the page sent for each track key. */
const lastHeights = (p) =>
  p.page.evaluate(() => {
    const out = {};
    for (const msg of window.salonTest.constraintsSent()) for (const c of msg) out[c.track_id] = c.max_height;
    return out;
  });

/** The track key (msid track id) of `id`'s camera as `p` receives it. */
const cameraKey = (p, id) =>
  p.page.evaluate((pid) => {
    const v = document.querySelector(`#tile-${pid} video`).srcObject?.getVideoTracks()[0];
    return v ? v.id : null;
  }, id);

test('grid fills the window, pin, speaker view follows the dominant speaker', { timeout: 240_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchWithSteadyVoice();
  t.after(() => browser.close());
  const ROOM = 'Disposition';
  const seen = [];
  const a = await joinRoom(browser.context, salon.url, ROOM, 'Aline', { record: seen });
  const b = await joinRoom(browser.context, salon.url, ROOM, 'Bruno');
  const c = await joinRoom(browser.context, salon.url, ROOM, 'Chloé');
  t.after(() => t.diagnostic(`dominant-speaker: ${JSON.stringify(seen.filter((m) => m.type === 'dominant-speaker').map((m) => [m.id, m.at % 100000]))}`));
  await a.page.bringToFront();
  await a.page.setViewportSize({ width: 1440, height: 900 });
  await a.page.waitForFunction(() => window.salonTest.layout().shown.length === 3, null, { timeout: 15_000 });
  await sleep(600); // the tiles' 0.2 s move

  // The grid: 16:9 tiles inside the area, which fills the window; no scroll.
  const geo = await a.page.evaluate(() => {
    const area = document.getElementById('area').getBoundingClientRect();
    const tiles = [...document.querySelectorAll('#tiles .tile')].map((el) => el.getBoundingClientRect());
    const bar = document.querySelector('.controls').getBoundingClientRect();
    return {
      area: { w: area.width, h: area.height, bottom: area.bottom },
      tiles: tiles.map((r) => ({ x: r.x - area.x, y: r.y - area.y, w: r.width, h: r.height })),
      scroll: document.scrollingElement.scrollHeight - innerHeight,
      bar: { top: bar.top, bottom: bar.bottom, h: bar.height, w: bar.width },
      barScroll: document.querySelector('.controls').scrollWidth - document.querySelector('.controls').clientWidth,
      innerHeight,
    };
  });
  t.diagnostic(JSON.stringify(geo));
  assert.ok(geo.scroll <= 0, 'no page scroll');
  assert.ok(geo.area.h > 0.75 * geo.innerHeight, 'the tiles area takes most of the window');
  assert.ok(geo.bar.bottom <= geo.innerHeight + 0.5 && geo.bar.h < 110, 'one bottom bar, not wrapped');
  assert.ok(geo.barScroll <= 0, 'the bar does not overflow');
  for (const r of geo.tiles) {
    assert.ok(Math.abs(r.w / r.h - 16 / 9) < 0.02, `16:9: ${JSON.stringify(r)}`);
    assert.ok(r.x >= -0.5 && r.y >= -0.5 && r.x + r.w <= geo.area.w + 0.5 && r.y + r.h <= geo.area.h + 0.5, 'inside the area');
  }
  // Three tiles fill the area's height or width (2 + 1 rows, centred).
  const usedH = Math.max(...geo.tiles.map((r) => r.y + r.h)) - Math.min(...geo.tiles.map((r) => r.y));
  const usedW = Math.max(...geo.tiles.map((r) => r.x + r.w)) - Math.min(...geo.tiles.map((r) => r.x));
  assert.ok(usedH > geo.area.h - 20 || usedW > geo.area.w - 20, `fills: ${usedW}x${usedH}`);

  // Pin Chloé with the tile's pin button: speaker view, Chloé large; her
  // camera is asked at a higher height than Bruno's in the filmstrip.
  await a.page.hover(`#tile-${c.id}`);
  await a.page.click(`#tile-${c.id} .tile-pin`);
  await a.page.waitForFunction((id) => window.salonTest.layout().main === id, c.id);
  assert.equal(await a.page.getAttribute(`#tile-${c.id} .tile-pin`, 'aria-pressed'), 'true');
  const [ck, bk] = [await cameraKey(a, c.id), await cameraKey(a, b.id)];
  await waitFor(async () => {
    const h = await lastHeights(a);
    return h[ck] > 2 * h[bk] && h[ck] >= 540;
  }, 'the pinned tile asks for a higher layer than the filmstrip', 10_000);
  const heights = await lastHeights(a);
  t.diagnostic(`pinned ${heights[ck]} px, filmstrip ${heights[bk]} px`);
  // Unpin: back to the grid.
  await a.page.click(`#tile-${c.id} .tile-pin`);
  await a.page.waitForFunction(() => window.salonTest.layout().mode === 'grid');

  // Speaker view: only Chloé's microphone is on (Bruno, the first other
  // participant, is on the main tile until someone speaks), then only
  // Bruno's; the main tile follows the server's dominant speaker (mediad
  // waits for a challenger to hold the floor before it switches).
  await a.page.click('#more');
  await a.page.click('#layout-speaker');
  await a.page.click('#mic');
  await b.page.click('#mic');
  await waitFor(async () => (await a.page.evaluate(() => window.salonTest.layout().main)) === c.id, 'Chloé on the main tile', 45_000);
  assert.ok(await a.page.$eval(`#tile-${c.id}`, (el) => el.classList.contains('main')));
  await c.page.click('#mic');
  await b.page.click('#mic');
  await waitFor(async () => (await a.page.evaluate(() => window.salonTest.layout().main)) === b.id, 'Bruno on the main tile', 45_000);
  assert.ok(await a.page.$eval(`#tile-${b.id}`, (el) => el.classList.contains('main')));
});

/**
 * The main-thread tasks of every Chromium renderer of `context` while
 * `during()` runs, from a Chrome trace (`devtools.timeline` `RunTask`
 * events): `wall` is the task's duration as PerformanceObserver's
 * `longtask` sees it, `cpu` the renderer thread's own CPU time for it
 * (`tdur`). On a machine whose load is above its cores the renderer is
 * descheduled mid-task, so a task's wall time grows with the load of
 * everything else while its CPU time stays what the page asked for.
 */
async function rendererTasks(context, page, during) {
  const cdp = await context.newCDPSession(page);
  const events = [];
  cdp.on('Tracing.dataCollected', (e) => events.push(...e.value));
  const complete = new Promise((resolve) => cdp.once('Tracing.tracingComplete', resolve));
  await cdp.send('Tracing.start', { traceConfig: { includedCategories: ['devtools.timeline', 'disabled-by-default-devtools.timeline'], recordMode: 'recordContinuously' } });
  try {
    await during();
  } finally {
    await cdp.send('Tracing.end');
    await complete;
  }
  const mainThreads = new Set(events.filter((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`));
  return events
    .filter((e) => e.name === 'RunTask' && e.ph === 'X' && mainThreads.has(`${e.pid}:${e.tid}`))
    .map((e) => ({ wall: e.dur / 1000, cpu: (e.tdur ?? e.dur) / 1000, hasCpu: e.tdur !== undefined }));
}

/**
 * The load harness (`salon-perf`, built beside `salon`) filling room `room`
 * of a running Salon with `n` synthetic participants: each does real ICE,
 * DTLS and SRTP, publishes audio (one packet every 20 ms) and a VP8-shaped
 * video stream (15 frames/s of one 700-byte packet, as a small tile's
 * layer), and subscribes to everybody else. Its JSON report is read
 * when it ends.
 */
async function harness(salon, room, n, seconds) {
  const bin = process.env.SALON_PERF_BIN ?? path.join(REPO_ROOT, 'target/debug/salon-perf');
  if (!existsSync(bin)) throw new Error(`${bin} not found: cargo build -p salon-perf --bin salon-perf`);
  const dir = await mkdtemp(path.join(tmpdir(), 'salon-e2e-harness-'));
  const scenario = path.join(dir, 'room.toml');
  await writeFile(
    scenario,
    [
      'name = "e2e-room-of-30"',
      'rooms = 1',
      `room_sizes = [${n}]`,
      'video_fraction = 1.0',
      'join_rate = 5.0',
      `duration_s = ${seconds}`,
      '[media]',
      'video_fps = 15',
      'video_packets_per_frame = 1',
      'video_payload_bytes = 700',
      'keyframe_packets = 3',
      // One stream the size of a small tile's layer (~85 kbit/s), not three
      // layers: every synthetic participant also receives all the others.
      'simulcast = false',
      '',
    ].join('\n'),
  );
  const out = path.join(dir, 'report');
  const child = spawn(bin, ['run', '--scenario', scenario, '--target', salon.url, '--room', room, '--threads', '1', '--quiet', '--out', out], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    log: () => log,
    /** Waits (bounded) for the run to end and returns its report. */
    async report(timeoutMs) {
      const code = await Promise.race([exited, sleep(timeoutMs).then(() => 'timeout')]);
      if (code === 'timeout') child.kill('SIGKILL');
      const r = JSON.parse(await readFile(`${out}.json`, 'utf8'));
      return { code, r };
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

test('a room of 30 with media: the grid paginates, no task of the page reaches 100 ms over a minute', { timeout: 300_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const ROOM = 'Grande-Salle';
  // Two Chromium publishers (camera and mic), 26 participants of the load
  // harness with audio and video, one participant on signaling only who
  // leaves and is replaced every 10 s (people coming and going), and the
  // observer in a Chromium of its own (its renderer alone in the trace):
  // 30 in the room.
  const pubs = [await joinRoom(browser.context, salon.url, ROOM, 'Pia'), await joinRoom(browser.context, salon.url, ROOM, 'Quentin')];
  const synthetic = await harness(salon, ROOM, 26, 110);
  t.after(() => synthetic.stop());
  let visitor = await openSocket(salon.wsUrl);
  visitor.send({ type: 'join', room: ROOM, name: 'Invité 1' });
  t.after(() => visitor.ws.close());
  const watcher = await launchBrowser();
  t.after(() => watcher.close());
  const o = await joinRoom(watcher.context, salon.url, ROOM, 'Observatrice', { camera: false });
  await o.page.setViewportSize({ width: 1440, height: 900 });
  await o.page.waitForFunction(() => document.querySelectorAll('#tiles .tile').length === 30, null, { timeout: 45_000 }).catch((e) => {
    throw new Error(`${e.message}\nharness: ${synthetic.log()}`);
  });
  await o.page.evaluate(() => {
    window.longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.longTasks.push({ at: Math.round(e.startTime), ms: Math.round(e.duration) });
    }).observe({ type: 'longtask' });
  });

  // 16 tiles on the first page, 14 on the second; the others are not rendered.
  let lay = await o.page.evaluate(() => window.salonTest.layout());
  assert.equal(lay.mode, 'grid');
  assert.equal(lay.pages, 2);
  assert.equal(lay.shown.length, 16);
  const shown = await o.page.evaluate(() => [...document.querySelectorAll('#tiles .tile')].filter((el) => !el.hidden).length);
  assert.equal(shown, 16);
  assert.ok(await o.page.isVisible('#page-next'));
  // A publisher not on the page is asked for no video (max_height 0).
  const onPage = new Set(lay.shown);
  const off = pubs.find((p) => !onPage.has(p.id));
  if (off) {
    const key = await cameraKey(o, off.id);
    await waitFor(async () => (await lastHeights(o))[key] === 0, 'no video for a tile off the page', 10_000);
  }
  // A swipe from right to left (touch) turns to the next page, the other way back.
  const swipe = (from, to) =>
    o.page.evaluate(
      ([x0, x1]) => {
        const area = document.getElementById('area');
        const at = (type, x) => area.dispatchEvent(new PointerEvent(type, { pointerType: 'touch', clientX: x, clientY: 400, bubbles: true }));
        at('pointerdown', x0);
        at('pointerup', x1);
      },
      [from, to],
    );
  await swipe(900, 500);
  await o.page.waitForFunction(() => window.salonTest.layout().page === 1);
  await swipe(500, 900);
  await o.page.waitForFunction(() => window.salonTest.layout().page === 0);
  // Next page with the button, then back; then a minute of the room with
  // a page turn every 10 s and people coming and going.
  await o.page.click('#page-next');
  // The layout follows on the next animation frame.
  await o.page.waitForFunction(() => window.salonTest.layout().page === 1, null, { timeout: 5_000 });
  lay = await o.page.evaluate(() => window.salonTest.layout());
  assert.equal(lay.shown.length, 14);
  const loadBefore = loadPerCore();
  const started = Date.now();
  // The minute measured starts now, with the 30 in the room: the page's
  // load (evaluating a 700 KB bundle) and the arrivals before are reported
  // apart, not held to the budget.
  const from = await o.page.evaluate(() => performance.now());
  const events = [];
  let turns = 0;
  const tasks = await rendererTasks(watcher.context, o.page, async () => {
    while (Date.now() - started < 60_000) {
      await sleep(10_000);
      events.push(['turn', await o.page.evaluate(() => Math.round(performance.now()))]);
      await o.page.click(turns % 2 === 0 ? '#page-prev' : '#page-next');
      turns++;
      visitor.ws.close();
      visitor = await openSocket(salon.wsUrl);
      visitor.send({ type: 'join', room: ROOM, name: `Invité ${turns + 1}` });
    }
  });
  // The page receives the video of the tiles on its page: the harness's
  // streams and the publishers', not only signaling (counted over 2 s
  // windows, for up to 20 s).
  const flowing = () =>
    o.page.evaluate(async () => {
      const count = async () => {
        const bytes = new Map();
        for (const pc of Object.values(window.salonTest.pcs()).filter(Boolean)) {
          for (const s of (await pc.getStats()).values()) if (s.type === 'inbound-rtp' && s.kind === 'video') bytes.set(s.ssrc, s.bytesReceived);
        }
        return bytes;
      };
      const a = await count();
      await new Promise((r) => setTimeout(r, 2000));
      const b = await count();
      return [...b].filter(([ssrc, n]) => n > (a.get(ssrc) ?? 0)).length;
    });
  let receiving = 0;
  for (let i = 0; i < 10 && receiving < 10; i++) receiving = Math.max(receiving, await flowing());
  const all = await o.page.evaluate(() => window.longTasks);
  const before = all.filter((x) => x.at < from);
  const observed = all.filter((x) => x.at >= from);
  const load = Math.max(loadBefore, loadPerCore());
  const long = tasks.filter((x) => x.wall >= 50 || x.cpu >= 50).sort((x, y) => y.cpu - x.cpu);
  const maxCpu = Math.max(0, ...tasks.map((x) => x.cpu));
  const maxWall = Math.max(0, ...observed.map((x) => x.ms));
  t.diagnostic(`before the minute (page load, arrivals): ${JSON.stringify(before)}`);
  t.diagnostic(`longtask entries over ${((Date.now() - started) / 1000).toFixed(0)} s: ${observed.length}, longest ${maxWall} ms (wall): ${JSON.stringify(observed)}`);
  t.diagnostic(`renderer main-thread tasks: ${tasks.length}, longest CPU time ${maxCpu.toFixed(1)} ms; over 50 ms (wall/cpu): ${JSON.stringify(long.map((x) => [Math.round(x.wall), Math.round(x.cpu)]))}`);
  t.diagnostic(`page turns and arrivals at (page time, ms): ${JSON.stringify(events)}; video streams flowing into the page: ${receiving}; load average per core ${load.toFixed(1)}`);
  // The budget is 100 ms per task of the page's own work. A longtask
  // entry is wall time: with this machine loaded (the harness, mediad and
  // three browsers on two cores), the renderer is descheduled mid-task and
  // a 30 ms task can last 150 ms. So the bound holds on the task's CPU
  // time from the trace; the entries' wall times are reported above.
  // Some events may come without their thread time (a run of 2026-12-04
  // had at least one among 20,472 tasks, and failed on it): those count at
  // their wall time, which is never less; at most 1 % of them.
  const withoutCpu = tasks.filter((x) => !x.hasCpu).length;
  t.diagnostic(`tasks without CPU time in the trace (counted at wall time): ${withoutCpu}`);
  assert.ok(tasks.length > 100 && withoutCpu <= tasks.length / 100, `the trace has the renderer tasks with their CPU time (${withoutCpu} of ${tasks.length} without)`);
  assert.ok(maxCpu < 100, `a task of ${maxCpu.toFixed(0)} ms of CPU (load per core ${load.toFixed(1)})`);
  assert.ok((await o.page.evaluate(() => window.salonTest.layout().shown.length)) <= 16);
  assert.ok(receiving >= 10, `only ${receiving} video streams flowing into the page`);
  // The harness's participants were in the meeting with media all along:
  // each connected and received the others' audio and video. The default
  // policy's last-N is 20 videos a receiver, and the harness counts only
  // the streams its own participants stamped: Pia's and Quentin's video
  // (Chromium, unstamped) may hold two of the 20 places for a participant
  // that joined while they spoke (a CI run of 2026-12-04 had one with 19).
  const { code, r } = await synthetic.report(60_000);
  const counts = r.receivers.map((rx) => rx.from.filter((f) => f.kind === 'video' && f.packets > 0).length);
  t.diagnostic(`harness: exit ${code}, ${r.participants_connected}/${r.participants} connected, loss ${r.loss_percent} %, ${Math.round(r.packets_in_per_s)} packets/s in; harness videos received by each: ${JSON.stringify(counts)}`);
  assert.equal(code, 0, synthetic.log());
  assert.equal(r.participants_connected, 26);
  for (const [i, videos] of counts.entries()) {
    assert.ok(videos >= 18, `harness participant ${r.receivers[i].index} received ${videos} videos of the others in the harness`);
  }
});
