// TURN with coturn, for networks that let only TCP or HTTPS out. Two
// "hosts" on loopback addresses (twoHosts): the server side (127.0.0.2)
// runs Salon, mediad and our own coturn (deploy/coturn/turnserver.conf
// rendered for the test: loopback addresses, a test certificate made now
// with openssl, its own log); Aline's Chromium sits there too. Bruno's
// Chromium sits on the other side (127.0.0.3) behind an nftables rule that
// drops all of its UDP and every TCP connection to the server except
// Salon's HTTP port and one TURN port: no direct path to mediad, neither
// UDP nor ICE-TCP.
//  1. Only TURN over TLS (5349) open: Bruno joins, both decode each other,
//     and getStats shows Bruno's selected local candidates are `relay` with
//     `relayProtocol: 'tls'` (Chromium trusts coturn's test certificate by
//     its SPKI pin, as https.test.mjs does).
//  2. Only TURN over TCP (3478) open: the same with `relayProtocol: 'tcp'`.
//  3. 30 s after Aline joined (TTL 60 s), fresh credentials reach both of
//     her transports (`ice-servers`, applied with setConfiguration).
// A second test leaves Bruno TCP to port 443 only: nginx's `stream` module
// (deploy/coturn/nginx-stream.conf) splits it by SNI between Salon's HTTPS
// and coturn's TLS; Bruno gets the page and relays over TLS through it.
// A third test puts Firefox ESR on Bruno's side (puppeteer through a
// wrapper that runs it in the namespace, the test CA imported into its
// profile with certutil), TCP to coturn's TLS port only: it decodes a
// Chromium beside the server and back, its selected pairs are `relay`
// over `tls`, and mediad counts it relayed (`--turn-relay-ip`). Firefox
// ignores a `turns:` URL whose host is an IP address: the URL names the
// server, resolved by the namespace's own /etc/hosts.
// coturn relays only to mediad's address (`allowed-peer-ip`; everything
// else is denied: turnutils_uclient's permission for another peer gets
// 403). Needs root (namespaces, nft), coturn and nftables;
// skipped otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  FIREFOX,
  NGINX,
  REPO_ROOT,
  ensureNginx,
  haveCommand,
  joinRoom,
  launchBrowser,
  launchFirefox,
  makeTestCerts,
  receiving,
  sleep,
  startSalon,
  twoHosts,
  waitFor,
} from './helpers.mjs';

import { SERVER, TURN_PORT, TURNS_PORT, coturnFor } from './coturn.mjs';
const STREAM_TEMPLATE = path.join(REPO_ROOT, 'deploy/coturn/nginx-stream.conf');
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/**
 * deploy/coturn/nginx-stream.conf for the test: the TURN name, the
 * backends and the listener on the server's address. Throws if a value is
 * no longer in the file.
 */
function renderStream(template, { turnName, https }) {
  const swaps = [
    ['turn.example.org', turnName],
    ['127.0.0.1:5349', `${SERVER}:${TURNS_PORT}`],
    ['127.0.0.1:8443', https],
    ['listen 443;', `listen ${SERVER}:443;`],
    ['listen [::]:443;', ''],
  ];
  let out = template;
  for (const [from, to] of swaps) {
    if (!out.includes(from)) throw new Error(`deploy/coturn/nginx-stream.conf no longer has ${JSON.stringify(from)}`);
    out = out.split(from).join(to);
  }
  return out;
}

/** Our own nginx (never the system service) in namespace `ns`, with only the rendered `stream` block. */
async function startStreamNginx(ns, stream, dir) {
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(
    conf,
    [
      `load_module ${STREAM_MODULE};`,
      'daemon off;',
      'master_process off;',
      'worker_processes 1;',
      `pid ${path.join(dir, 'nginx.pid')};`,
      `error_log ${path.join(dir, 'nginx-error.log')} info;`,
      'events { worker_connections 256; }',
      stream,
      '',
    ].join('\n'),
  );
  const args = ['-p', dir, '-c', conf, '-e', path.join(dir, 'nginx-error.log')];
  execFileSync(NGINX, [...args, '-t', '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const child = spawn('ip', ['netns', 'exec', ns, NGINX, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    if ((await Promise.race([exited, sleep(5_000).then(() => null)])) === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  const listening = () =>
    execFileSync('ip', ['netns', 'exec', ns, 'ss', '-Hltn', 'sport = :443'], { encoding: 'utf8' }).includes(`${SERVER}:443`);
  try {
    await waitFor(() => child.exitCode === null && listening(), 'nginx listening on 443', 10_000, 100);
  } catch (e) {
    await stop();
    throw new Error(`nginx did not start: ${e.message}\n${await readFile(path.join(dir, 'nginx-error.log'), 'utf8').catch(() => '')}`);
  }
  return { stop };
}

/**
 * Bruno's side lets out only TCP to the server's `ports` (Salon's HTTP
 * port and one TURN port): all UDP is dropped (counted), and so is any
 * other TCP to the server (mediad's ICE-TCP included).
 */
function firewall(ns, ports) {
  const nft = (script) => execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
  try {
    execFileSync('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'salon_turn'], { stdio: 'ignore' });
  } catch {
    // Not there yet.
  }
  nft(`table inet salon_turn {
  chain out {
    type filter hook output priority 0; policy accept;
    meta l4proto udp counter drop
    ip daddr ${SERVER} tcp dport != { ${[...new Set(ports)].join(', ')} } counter drop
  }
}
`);
  return () => {
    const out = execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'salon_turn'], { encoding: 'utf8' });
    const counts = [...out.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
    assert.equal(counts.length, 2, out);
    return { udpDropped: counts[0] ?? 0, tcpDropped: counts[1] ?? 0 };
  };
}

/** A counter of `/metrics` on Salon's admin listener, which is on the loopback of namespace `ns`. */
function metricIn(ns, salon, name) {
  const script = `fetch(${JSON.stringify(`${salon.adminUrl}metrics`)}).then((r) => r.text()).then((t) => process.stdout.write(t))`;
  const text = execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { encoding: 'utf8' });
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? 'NaN');
}

/** The selected candidate pair of each of the page's transports. */
const selectedPairs = (p) =>
  p.page.evaluate(async () => {
    const out = {};
    for (const [name, pc] of Object.entries(window.salonTest.pcs())) {
      if (!pc) continue;
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
      });
      if (!pair) {
        out[name] = null;
        continue;
      }
      const l = stats.get(pair.localCandidateId);
      const r = stats.get(pair.remoteCandidateId);
      out[name] = {
        state: pair.state,
        local: { type: l.candidateType, relayProtocol: l.relayProtocol, protocol: l.protocol, address: l.address, port: l.port },
        remote: { type: r.candidateType, protocol: r.protocol, address: r.address, port: r.port },
      };
    }
    return out;
  });

/**
 * An executable that starts firefox-esr inside namespace `ns` for
 * puppeteer. puppeteer reads Firefox's "WebDriver BiDi listening on
 * ws://127.0.0.1:PORT" and connects there, but that port is on the
 * namespace's loopback: the wrapper relays it through a Unix socket (the
 * file system is shared across network namespaces) to a port of this
 * namespace's loopback under the same port number (Firefox checks the
 * Host header, port included). With `caFile`, the wrapper first imports
 * that CA into the profile puppeteer made (`certutil`, libnss3-tools), so
 * Firefox trusts coturn's test certificate for TURN over TLS. Removed
 * after `t`.
 */
async function firefoxInNamespace(t, ns, caFile = null) {
  const dir = await mkdtemp(path.join(tmpdir(), 'salon-fx-ns-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'bidi.sock');
  const inner = `const net = require('node:net'); const [sock, port] = process.argv.slice(1);
net.createServer((c) => { const u = net.connect(Number(port), '127.0.0.1'); c.pipe(u); u.pipe(c);
  c.on('error', () => u.destroy()); u.on('error', () => c.destroy()); }).listen(sock);`;
  const wrapper = path.join(dir, 'firefox-in-netns.mjs');
  await writeFile(
    wrapper,
    String.raw`#!${process.execPath}
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
const [ns, firefox, sock, inner, caFile] = ${JSON.stringify([ns, FIREFOX, sock, inner, caFile])};
const profile = process.argv[process.argv.indexOf('--profile') + 1];
if (caFile && profile) {
  execFileSync('certutil', ['-N', '--empty-password', '-d', 'sql:' + profile]);
  execFileSync('certutil', ['-A', '-d', 'sql:' + profile, '-n', 'salon-e2e-ca', '-t', 'C,,', '-i', caFile]);
}
const child = spawn('ip', ['netns', 'exec', ns, firefox, ...process.argv.slice(2)], { stdio: ['inherit', 'inherit', 'pipe'] });
let relay = null;
let server = null;
let buf = '';
child.stderr.on('data', (d) => {
  buf += d;
  for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    const m = /^WebDriver BiDi listening on ws:\/\/127\.0\.0\.1:(\d+)(.*)$/.exec(line);
    if (!m) {
      process.stderr.write(line + '\n');
      continue;
    }
    relay = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', inner, sock, m[1]], { stdio: 'inherit' });
    let tries = 0;
    const start = () => {
      if (!existsSync(sock) && ++tries < 250) return setTimeout(start, 20);
      server = net.createServer((c) => {
        const u = net.connect(sock);
        c.pipe(u);
        u.pipe(c);
        c.on('error', () => u.destroy());
        u.on('error', () => c.destroy());
      });
      // The same port number: Firefox checks the Host header, port included.
      server.listen(Number(m[1]), '127.0.0.1', () => process.stderr.write(line + '\n'));
    };
    start();
  }
});
child.on('exit', (code) => {
  relay?.kill();
  server?.close();
  rmSync(sock, { force: true });
  process.exit(code ?? 1);
});
for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, () => child.kill(s));
`,
    { mode: 0o755 },
  );
  return wrapper;
}

/** Firefox's selected pair of each of the page's transports (no `transport` stats there: the `selected` candidate pair). */
const firefoxPairs = (p) =>
  p.page.evaluate(async () => {
    const out = {};
    for (const [name, pc] of Object.entries(window.salonTest.pcs())) {
      if (!pc) continue;
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'candidate-pair' && s.state === 'succeeded' && (s.selected || s.nominated) && !pair) pair = s;
      });
      if (!pair) {
        out[name] = null;
        continue;
      }
      const l = stats.get(pair.localCandidateId);
      const r = stats.get(pair.remoteCandidateId);
      out[name] = {
        state: pair.state,
        selected: pair.selected,
        nominated: pair.nominated,
        local: { type: l?.candidateType, relayProtocol: l?.relayProtocol, protocol: l?.protocol, address: l?.address, port: l?.port },
        remote: { type: r?.candidateType, protocol: r?.protocol, address: r?.address, port: r?.port },
      };
    }
    return out;
  });

const skip =
  process.getuid?.() !== 0
    ? 'needs root for network namespaces and nftables'
    : !haveCommand('turnserver')
      ? 'coturn is not installed (apt-get install coturn)'
      : !haveCommand('nft')
        ? 'nftables is not installed (apt-get install nftables)'
        : false;

test('UDP blocked: through coturn over TLS, then over TCP, never straight to mediad', { timeout: 300_000, skip }, async (t) => {
  const started = Date.now();
  const log = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);
  const net = await twoHosts();
  t.after(() => net.cleanup());
  const certs = await makeTestCerts({ dns: ['localhost'], ips: [SERVER] });
  t.after(() => certs.cleanup());
  const { dir, secret, coturn } = await coturnFor(t, net.srv, certs, 'salon-coturn-');

  // coturn relays to mediad's address only: another peer (here Bruno's
  // side, 127.0.0.3) is refused, with the same valid credentials.
  // (It exits non-zero when refused: its output says why.)
  const uclient = (peer) => {
    const r = spawnSync(
      'ip',
      ['netns', 'exec', net.srv, 'timeout', '10', 'turnutils_uclient', '-W', secret, '-u', 'probe', '-e', peer, '-r', '9', '-n', '1', '-c', SERVER],
      { encoding: 'utf8' },
    );
    return `${r.stdout}${r.stderr}`;
  };
  assert.match(uclient('127.0.0.3'), /403 \(Forbidden IP\)/, 'a peer other than mediad is refused');
  assert.doesNotMatch(uclient(SERVER), /error/i, "mediad's address is allowed");

  const salon = await startSalon({
    netns: net.srv,
    listen: `${SERVER}:0`,
    extraArgs: [
      '--media-ip', SERVER,
      '--turn-secret-file', path.join(dir, 'turn-secret'),
      '--turn-url', `turns:${SERVER}:${TURNS_PORT}?transport=tcp`,
      '--turn-url', `turn:${SERVER}:${TURN_PORT}?transport=tcp`,
      '--turn-url', `turn:${SERVER}:${TURN_PORT}?transport=udp`,
      // The shortest TTL: a refresh (`ice-servers`) comes 30 s after each join.
      '--turn-ttl-secs', '60',
    ],
  });
  t.after(() => salon.stop());
  const httpPort = Number(new URL(salon.url).port);
  let dropped = firewall(net.rcv, [httpPort, TURNS_PORT]);

  const near = await launchBrowser({ netns: net.srv });
  t.after(() => near.close());
  const far = await launchBrowser({ netns: net.rcv, spki: [certs.spki] });
  t.after(() => far.close());

  const aline = await joinRoom(near.context, salon.url, 'Reunion-Relais', 'Aline');
  const alineJoined = Date.now();
  // The credentials of `joined` are in both of Aline's transports.
  const turnUsernames = (p) =>
    p.page.evaluate(() =>
      Object.values(window.salonTest.pcs())
        .filter(Boolean)
        .map((pc) => pc.getConfiguration().iceServers?.[0]?.username ?? null),
    );
  const [first] = await turnUsernames(aline);
  assert.match(first ?? '', /^\d{10}:\d+$/, 'a TURN REST username: <expiry>:<participant id>');
  assert.equal(first.split(':')[1], aline.id);
  // mediad counts ICE from coturn's address (the --turn-url host) as
  // relayed. Aline's checks come from 127.0.0.2 too (she shares the
  // server's address here), so each Bruno is measured as a difference.
  let relayed = metricIn(net.srv, salon, 'mediad_ice_succeeded_relayed_total');
  log(`relayed ICE before Bruno: ${relayed}`);
  for (const [turnPort, relayProtocol, name] of [
    [TURNS_PORT, 'tls', 'Bruno'],
    [TURN_PORT, 'tcp', 'Bruno-TCP'],
  ]) {
    if (turnPort !== TURNS_PORT) dropped = firewall(net.rcv, [httpPort, turnPort]);
    const joinedAt = Date.now();
    const bruno = await joinRoom(far.context, salon.url, 'Reunion-Relais', name);
    const bothWays = await Promise.all([receiving(aline, bruno, 60_000), receiving(bruno, aline, 60_000)]);
    log(`${name} (only TURN/${relayProtocol} open): media both ways ${Date.now() - joinedAt} ms after joining (${bothWays.join(' / ')} ms windows)`);
    const pairs = await selectedPairs(bruno);
    log(`${name}'s selected pairs: ${JSON.stringify(pairs)}`);
    for (const which of ['pub', 'sub']) {
      const pair = pairs[which];
      assert.ok(pair, `${name}'s ${which} transport has a selected pair`);
      assert.equal(pair.local.type, 'relay', `${name}'s ${which} goes through TURN`);
      assert.equal(pair.local.relayProtocol, relayProtocol, `${name}'s ${which} reaches coturn over ${relayProtocol}`);
      // The relayed address is coturn's (relay-ip, min-port..max-port).
      assert.equal(pair.local.address, SERVER);
      assert.ok(pair.local.port >= 49152 && pair.local.port <= 49400, `relay port ${pair.local.port}`);
      assert.equal(pair.remote.address, SERVER, "the far end is mediad's candidate");
      assert.equal(pair.remote.protocol, 'udp', 'coturn relays to mediad over UDP');
    }
    const relayedNow = metricIn(net.srv, salon, 'mediad_ice_succeeded_relayed_total');
    log(`relayed ICE after ${name}: ${relayedNow}`);
    assert.ok(relayedNow - relayed >= 2, `mediad counted ${name}'s two transports relayed (${relayed} → ${relayedNow})`);
    relayed = relayedNow;
    // Aline, beside the server, goes straight to mediad.
    const direct = await selectedPairs(aline);
    assert.equal(direct.sub?.local.type, 'host', 'Aline does not need TURN');
    const d = dropped();
    log(`${name}'s side dropped ${d.udpDropped} UDP and ${d.tcpDropped} other TCP packets`);
    assert.ok(d.udpDropped > 0, 'the browser did try UDP, and it was dropped');
    await bruno.page.evaluate(() => window.salonTest.leaveNow());
    await bruno.page.close();
  }
  // Half-way through their life the gateway sends fresh credentials, and
  // the client applies them to its open transports (setConfiguration).
  const fresh = await waitFor(
    async () => {
      const names = await turnUsernames(aline);
      return names.length === 2 && names.every((n) => n !== first) ? names : null;
    },
    'fresh TURN credentials in both of Aline\'s transports',
    Math.max(1_000, alineJoined + 45_000 - Date.now()),
    250,
  );
  log(`Aline's credentials refreshed ${Date.now() - alineJoined} ms after joining: ${first} → ${fresh[0]}`);
  assert.ok(Number(fresh[0].split(':')[0]) > Number(first.split(':')[0]), 'the fresh ones expire later');
  const minted = metricIn(net.srv, salon, 'salon_gateway_turn_credentials_total');
  log(`credentials minted: ${minted}`);
  assert.ok(minted >= 3, `one per join at least (${minted})`);
  const turnLog = await coturn.log();
  if (process.env.SALON_TURN_LOG) await writeFile(process.env.SALON_TURN_LOG, turnLog);
  // Without `verbose`, coturn logs its start and errors only: no
  // allocation, no username.
  assert.doesNotMatch(turnLog, /\d{10}:\d+/, 'coturn logs no TURN username');
  assert.doesNotMatch(turnLog, new RegExp(secret), 'coturn does not log the secret');
  assert.doesNotMatch(salon.logs(), new RegExp(secret), 'Salon does not log the secret');
});

const skipStream =
  skip ||
  (ensureNginx() === null
    ? "Debian's nginx is not installed (apt-get install nginx)"
    : !existsSync(STREAM_MODULE)
      ? "nginx's stream module is not installed (apt-get install libnginx-mod-stream)"
      : false);

test('only port 443 open: the page and TURN/TLS share it, split by SNI (nginx stream, ssl_preread)', { timeout: 300_000, skip: skipStream }, async (t) => {
  const started = Date.now();
  const log = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);
  const [site, turnName] = ['salon.test', 'turn.salon.test'];
  const net = await twoHosts();
  t.after(() => net.cleanup());
  const certs = await makeTestCerts({ dns: [site, turnName], ips: [SERVER] });
  t.after(() => certs.cleanup());
  const { dir, secret, coturn } = await coturnFor(t, net.srv, certs, 'salon-coturn-');
  // Salon serves HTTPS behind the split, on 8443.
  const https = `${SERVER}:8443`;
  const salon = await startSalon({
    netns: net.srv,
    listen: https,
    tls: { cert: certs.cert, key: certs.key },
    extraArgs: [
      '--media-ip', SERVER,
      '--allowed-host', site,
      '--allowed-host', SERVER,
      '--turn-secret-file', path.join(dir, 'turn-secret'),
      '--turn-url', `turns:${turnName}:443?transport=tcp`,
    ],
  });
  t.after(() => salon.stop());
  const nginx = await startStreamNginx(net.srv, renderStream(await readFile(STREAM_TEMPLATE, 'utf8'), { turnName, https }), dir);
  t.after(() => nginx.stop());
  // Bruno's side: UDP dropped, TCP to the server on 443 only.
  const dropped = firewall(net.rcv, [443]);

  const near = await launchBrowser({ netns: net.srv, spki: [certs.spki] });
  t.after(() => near.close());
  // Both names resolve to the server, as DNS would.
  const far = await launchBrowser({
    netns: net.rcv,
    spki: [certs.spki],
    args: [`--host-resolver-rules=MAP ${site} ${SERVER}, MAP ${turnName} ${SERVER}`],
  });
  t.after(() => far.close());

  const aline = await joinRoom(near.context, salon.url, 'Reunion-443', 'Aline');
  const joinedAt = Date.now();
  const bruno = await joinRoom(far.context, `https://${site}/`, 'Reunion-443', 'Bruno');
  const windows = await Promise.all([receiving(aline, bruno, 60_000), receiving(bruno, aline, 60_000)]);
  log(`Bruno (only 443/tcp open): media both ways ${Date.now() - joinedAt} ms after joining (${windows.join(' / ')} ms windows)`);
  const pairs = await selectedPairs(bruno);
  log(`Bruno's selected pairs: ${JSON.stringify(pairs)}`);
  for (const which of ['pub', 'sub']) {
    const pair = pairs[which];
    assert.ok(pair, `Bruno's ${which} transport has a selected pair`);
    assert.equal(pair.local.type, 'relay');
    assert.equal(pair.local.relayProtocol, 'tls', `Bruno's ${which} reaches coturn over TLS on 443`);
    assert.equal(pair.remote.address, SERVER);
  }
  const d = dropped();
  log(`Bruno's side dropped ${d.udpDropped} UDP and ${d.tcpDropped} other TCP packets`);
  assert.ok(d.udpDropped > 0);
});

test('Firefox with UDP blocked relays through coturn, and decodes a Chromium beside the server', { timeout: 240_000, skip: skip || (!existsSync(FIREFOX) && 'firefox-esr is not installed') }, async (t) => {
  const started = Date.now();
  const log = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);
  const net = await twoHosts();
  t.after(() => net.cleanup());
  // Firefox drops a `turns:` URL whose host is an IP address (it checks
  // coturn's certificate against a name): the name is in Bruno's side's
  // /etc/hosts (`ip netns exec` mounts /etc/netns/<ns>/hosts over it).
  const turnName = 'turn.salon.test';
  const certs = await makeTestCerts({ dns: ['localhost', turnName], ips: [SERVER] });
  t.after(() => certs.cleanup());
  const hostsDir = path.join('/etc/netns', net.rcv);
  await mkdir(hostsDir, { recursive: true });
  t.after(() => rm(hostsDir, { recursive: true, force: true }));
  await writeFile(path.join(hostsDir, 'hosts'), `127.0.0.1 localhost\n::1 localhost\n${SERVER} ${turnName}\n`);
  const { dir } = await coturnFor(t, net.srv, certs, 'salon-coturn-');
  // TURN over TLS needs Firefox to trust the test CA: certutil imports it.
  const certutil = haveCommand('certutil');
  const turnPort = certutil ? TURNS_PORT : TURN_PORT;
  if (!certutil) log('certutil missing (apt-get install libnss3-tools): TURN over TCP instead of TLS');
  const salon = await startSalon({
    netns: net.srv,
    listen: `${SERVER}:0`,
    extraArgs: [
      '--media-ip', SERVER,
      '--turn-secret-file', path.join(dir, 'turn-secret'),
      '--turn-url', `turns:${turnName}:${TURNS_PORT}?transport=tcp`,
      '--turn-url', `turn:${SERVER}:${TURN_PORT}?transport=tcp`,
      // The name does not resolve on the server's side: coturn's relay
      // address is given (mediad counts relayed ICE by it).
      '--turn-relay-ip', SERVER,
    ],
  });
  t.after(() => salon.stop());
  const httpPort = Number(new URL(salon.url).port);
  const dropped = firewall(net.rcv, [httpPort, turnPort]);
  const near = await launchBrowser({ netns: net.srv });
  t.after(() => near.close());
  const fox = await launchFirefox({ executablePath: await firefoxInNamespace(t, net.rcv, certutil ? path.join(certs.dir, 'ca.pem') : null) });
  t.after(() => fox.close());

  const relayedBefore = metricIn(net.srv, salon, 'mediad_ice_succeeded_relayed_total');
  const aline = await joinRoom(near.context, salon.url, 'Reunion-Renard', 'Aline');
  const renard = await joinRoom(fox.context, salon.url, 'Reunion-Renard', 'Renard');
  const joinedAt = Date.now();
  const windows = await Promise.all([receiving(aline, renard, 60_000), receiving(renard, aline, 60_000)]);
  log(`Renard (Firefox, only TCP ${turnPort} open): media both ways ${Date.now() - joinedAt} ms after joining (${windows.join(' / ')} ms windows)`);
  const pairs = await firefoxPairs(renard);
  log(`Renard's selected pairs: ${JSON.stringify(pairs)}`);
  for (const which of ['pub', 'sub']) {
    const pair = pairs[which];
    assert.ok(pair, `Renard's ${which} transport has a selected pair`);
    assert.equal(pair.local.type, 'relay', `Renard's ${which} goes through TURN`);
    assert.equal(pair.local.relayProtocol, turnPort === TURNS_PORT ? 'tls' : 'tcp', `Renard's ${which} reaches coturn over TLS (TCP without certutil)`);
    assert.equal(pair.remote.address, SERVER, "the far end is mediad's candidate");
  }
  const relayedAfter = metricIn(net.srv, salon, 'mediad_ice_succeeded_relayed_total');
  log(`relayed ICE: ${relayedBefore} → ${relayedAfter}`);
  assert.ok(relayedAfter - relayedBefore >= 2, 'mediad counted Renard relayed');
  const d = dropped();
  log(`Renard's side dropped ${d.udpDropped} UDP and ${d.tcpDropped} other TCP packets`);
  assert.ok(d.udpDropped > 0, 'Firefox did try UDP, and it was dropped');
});
