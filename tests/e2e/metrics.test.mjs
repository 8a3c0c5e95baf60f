// What an operator's Prometheus scrapes during a three-person meeting: the
// exposition parses as OpenMetrics with the Prometheus project's own
// parser (Python `prometheus_client`, strict), and it shows the
// conference, its participants by role, packet counters moving, a
// measured round trip, and each media worker's load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSalon, launchBrowser, joinRoom, receiving, sleep, OPEN_POLICY } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Samples of the exposition, parsed by prometheus_client's OpenMetrics parser. */
function parse(text) {
  const r = spawnSync('python3', [path.join(here, 'openmetrics.py')], { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, `the exposition parses as OpenMetrics: ${r.stderr}`);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

function value(samples, name, labels = {}) {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}

test('a three-person meeting in the metrics an operator scrapes', { timeout: 150_000 }, async (t) => {
  const salon = await startSalon({ policy: OPEN_POLICY });
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const room = 'Salon-Metriques';
  const aline = await joinRoom(browser.context, salon.url, room, 'Aline');
  const bruno = await joinRoom(browser.context, salon.url, room, 'Bruno');
  const chloe = await joinRoom(browser.context, salon.url, room, 'Chloé');
  await receiving(aline, chloe, 30_000);
  await receiving(chloe, bruno, 30_000);

  const scrape = async () => {
    const res = await fetch(`${salon.adminUrl}metrics`);
    assert.match(res.headers.get('content-type'), /^application\/openmetrics-text; version=1\.0\.0/);
    return parse(await res.text());
  };
  const first = await scrape();
  // Rates and a round trip need a little time: transport-wide feedback
  // feeds the estimate (and its RTT) within a second or two; the worker's
  // packet rate is taken between two scrapes a second or more apart.
  let now = first;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    await sleep(1_500);
    now = await scrape();
    if ((value(now, 'mediad_receiver_rtt_seconds_count') ?? 0) > 0 && (value(now, 'mediad_worker_packet_rate', { worker: '0' }) ?? 0) > 0) break;
  }

  assert.equal(value(now, 'salon_gateway_rooms'), 1, 'one conference');
  assert.equal(value(now, 'salon_conferences_by_size', { size: '3-5' }), 1, 'of three people');
  const roles = ['moderator', 'participant', 'guest'].map((role) => value(now, 'salon_participants_by_role', { role }) ?? 0);
  assert.equal(roles.reduce((a, b) => a + b, 0), 3, `three participants by role (${roles})`);
  assert.equal(roles[0], 1, 'the first one in moderates (open policy)');
  for (const c of ['mediad_io_rx_datagrams_total', 'mediad_io_tx_bytes_total', 'mediad_tx_rtp_total', 'mediad_rx_rtp_total']) {
    assert.ok(value(now, c) > value(first, c), `${c} moves (${value(first, c)} → ${value(now, c)})`);
  }
  const rttCount = value(now, 'mediad_receiver_rtt_seconds_count');
  const rttSum = value(now, 'mediad_receiver_rtt_seconds_sum');
  assert.ok(rttCount > 0 && rttSum > 0, `a measured round trip (count ${rttCount}, sum ${rttSum} s)`);
  t.diagnostic(`mean RTT on loopback ${((rttSum / rttCount) * 1000).toFixed(1)} ms over ${rttCount} observations`);
  assert.ok(value(now, 'mediad_loss_in_ratio_count') > 0, 'publishers\' loss is observed');
  assert.ok(value(now, 'mediad_jitter_in_seconds_count') > 0, 'publishers\' jitter is observed');
  const rate = value(now, 'mediad_worker_packet_rate', { worker: '0' });
  const stress = value(now, 'mediad_worker_stress', { worker: '0' });
  assert.ok(rate > 0, `worker 0 moves packets (${rate}/s)`);
  assert.ok(Math.abs(stress - rate / 50_000) < 1e-9, `stress is the rate over the 50,000 pps capacity (${stress})`);
  assert.equal(value(now, 'mediad_stress'), stress, 'one worker: the process stress is its stress');
  assert.ok(value(now, 'mediad_worker_cpu_seconds', { worker: '0' }) > 0, 'the worker thread has used CPU');
  // The Grafana dashboard shipped in deploy/ reads only series that exist.
  const dashboard = JSON.parse(readFileSync(path.join(here, '../../deploy/grafana/salon.json'), 'utf8'));
  const names = new Set(now.map((s) => s.name));
  for (const p of dashboard.panels) {
    for (const { expr } of p.targets) {
      for (const m of expr.match(/\b(?:salon|mediad)_[a-z0-9_]+/g) ?? []) {
        // Families labelled by an event's kind have no sample until one
        // happened (none does in a polite meeting).
        if (/errors_sent|sockets_closed|policy_failures/.test(m)) continue;
        assert.ok(names.has(m), `dashboard panel "${p.title}" reads ${m}, which /metrics has`);
      }
    }
  }
  t.diagnostic(`worker 0: ${rate.toFixed(0)} datagrams/s, stress ${stress.toFixed(4)}, CPU ${(value(now, 'mediad_worker_cpu_load', { worker: '0' }) * 100).toFixed(1)} %`);
});
