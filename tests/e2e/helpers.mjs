// Shared helpers of the end-to-end tests: start the real `salon` binary,
// launch Debian's Chromium through playwright-core (or Debian's Firefox ESR
// through puppeteer-core over WebDriver BiDi), talk raw WebSocket.
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate, createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));

export const SALON_BIN = path.resolve(here, process.env.SALON_BIN ?? '../../target/debug/salon');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';
export const IO_BACKEND = process.env.SALON_IO_BACKEND ?? 'auto';
/** The repository root: policy paths are relative to it. */
export const REPO_ROOT = path.resolve(here, '../..');
/** Anyone may create and join a room; the first one in is moderator (Jitsi's anonymous default). */
export const OPEN_POLICY = 'lua/open.lua';
/** The shipped policy: agents (with a token) create rooms, guests wait in the lobby. */
export const DEFAULT_POLICY = 'lua/policy.lua';

/** base64url of a string or a buffer. */
function b64url(v) {
  return Buffer.from(v).toString('base64url');
}

/**
 * A Jitsi-style HS256 token. `claims` overrides the defaults: iss, aud, sub,
 * room, nbf (now - 10 s), exp (now + 1 h), context.user.{id, name, moderator}.
 */
export function mintJwt(secret, { name = 'Agent', sub = 'agent-1', room = '*', moderator = true, iss = 'salon-e2e', aud = 'salon', ...claims } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'HS256', typ: 'JWT' };
  const payload = {
    iss,
    aud,
    sub,
    room,
    nbf: now - 10,
    exp: now + 3600,
    context: { user: { id: sub, name, moderator } },
    ...claims,
  };
  const body = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = createHmac('sha256', secret).update(body).digest('base64url');
  return `${body}.${sig}`;
}

/**
 * Writes a test auth config (TOML, `salon --auth-config`) accepting HS256
 * tokens of `mintJwt(secret)`. Returns { path, secret, cleanup() }.
 */
export async function writeAuthConfig({ secret = randomBytes(32).toString('hex'), issuer = 'salon-e2e', audience = 'salon' } = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'salon-auth-'));
  const file = path.join(dir, 'auth.toml');
  await writeFile(
    file,
    [
      `issuers = ["${issuer}"]`,
      `audiences = ["${audience}"]`,
      'leeway_secs = 30',
      '',
      '[[keys]]',
      'id = "e2e"',
      'algorithms = ["HS256"]',
      `secret = "${secret}"`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return { path: file, secret, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Every process we spawn, killed on exit whatever happens. */
const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * Starts `salon` on free ports and waits for its `Salon: http://…/` line.
 * `policy`: Lua entry file relative to the repository root (default
 * `lua/open.lua`, where anyone may create a room; `null`: the binary's own
 * default); `authConfig`: path of a TOML auth config; `tls`: { cert, key }
 * PEM paths (`url` is then `https://…`); `extraArgs`: more flags.
 * Returns { url, wsUrl, logs(), stop(), exited (a promise of {code, signal}),
 * signal(name) }.
 */
export async function startSalon({
  ioBackend = IO_BACKEND,
  timeoutMs = 20_000,
  policy = OPEN_POLICY,
  authConfig = null,
  extraArgs = [],
  listen = '127.0.0.1:0',
  netns = null,
  tls = null,
} = {}) {
  if (!existsSync(SALON_BIN)) {
    throw new Error(`salon binary not found at ${SALON_BIN}: run \`cargo build -p salon-gateway\` or set SALON_BIN`);
  }
  // `/metrics` is on the admin listener (loopback, a free port: tests run
  // side by side); `metric()` reads it there.
  const args = ['--listen', listen, '--media-port', '0', '--io-backend', ioBackend, '--admin-listen', '127.0.0.1:0'];
  if (policy !== null) args.push('--policy', path.resolve(REPO_ROOT, policy));
  if (authConfig !== null) args.push('--auth-config', authConfig);
  // `tls`: { cert, key } (e.g. from makeTestCerts): HTTPS on --listen.
  if (tls !== null) args.push('--tls-cert', tls.cert, '--tls-key', tls.key);
  args.push(...extraArgs);
  // `netns`: run inside that network namespace (`ip netns exec` execs, so
  // signals still reach salon).
  const [cmd, argv] = netns === null ? [SALON_BIN, args] : ['ip', ['netns', 'exec', netns, SALON_BIN, ...args]];
  const child = spawn(cmd, argv, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' },
  });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => children.delete(child));

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const done = await Promise.race([exited, sleep(5_000).then(() => null)]);
    if (done === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };

  try {
    const [url, adminUrl] = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`salon did not print its URLs in ${timeoutMs} ms\n${stderr}`)), timeoutMs);
      child.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/^Salon: (https?:\/\/\S+\/)\n/m);
        const a = out.match(/^Salon admin: (http:\/\/\S+\/)\n/m);
        if (m && a) {
          clearTimeout(timer);
          resolve([m[1], a[1]]);
        }
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`salon exited early (code ${code}, signal ${signal})\n${stderr}`));
      });
    });
    const wsUrl = url.replace(/^http/, 'ws') + 'ws';
    // `signal('SIGUSR2')`: with `--enable-fault-injection`, a media worker panics.
    const signal = (sig) => child.kill(sig);
    return { url, adminUrl, wsUrl, logs: () => stderr, stop, exited, signal };
  } catch (e) {
    await stop();
    throw e;
  }
}

export const CHROMIUM_ARGS = [
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  // Several pages share one browser: keep background pages running.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/**
 * Headless Chromium with a fresh profile (inside network namespace `netns`
 * if given). `spki`: base64 SHA-256 hashes of the public keys (SPKI) of
 * test server certificates Chromium accepts although no CA it knows signed
 * them (`--ignore-certificate-errors-spki-list`, a pin: any other
 * certificate error still fails; never `--ignore-certificate-errors`).
 * `args`: more Chromium flags. Returns { context, close() }.
 */
export async function launchBrowser({ netns = null, spki = [], args: extraArgs = [] } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: apt-get update && apt-get install -y chromium`);
  }
  const userDataDir = await mkdtemp(path.join(tmpdir(), 'salon-e2e-'));
  let executablePath = CHROMIUM;
  if (netns !== null) {
    executablePath = path.join(userDataDir, 'chromium-in-netns');
    await writeFile(executablePath, `#!/bin/sh\nexec ip netns exec '${netns}' '${CHROMIUM}' "$@"\n`, { mode: 0o755 });
  }
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [...CHROMIUM_ARGS, ...(spki.length ? [`--ignore-certificate-errors-spki-list=${spki.join(',')}`] : []), ...extraArgs],
    viewport: { width: 1280, height: 800 },
  });
  const close = async () => {
    await context.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}

/**
 * Firefox preferences for fake media on loopback (tests/e2e/README.md).
 * Without the two `permissions.default.*` no camera permission is recorded
 * and Firefox gathers only its default-route address: ICE to 127.0.0.1
 * never starts.
 */
export const FIREFOX_PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'permissions.default.camera': 1,
  'permissions.default.microphone': 1,
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  // Remote audio plays without a click.
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  // Several pages share one browser: keep background tabs running.
  'media.suspend-background-video.enabled': false,
  'dom.min_background_timeout_value': 4,
  'dom.timeout.enable_budget_timer_throttling': false,
};

/**
 * The few playwright page methods the tests use, on a puppeteer page, so
 * that `joinRoom`, `openRoomPage` and the tests drive Firefox unchanged.
 * Anything else falls through to the puppeteer page itself.
 */
function playwrightLike(page) {
  const own = {
    puppeteer: page,
    fill: async (selector, value) => {
      await page.$eval(selector, (el) => {
        el.value = '';
      });
      await page.type(selector, value);
    },
    // playwright: waitForFunction(fn, arg, options); puppeteer: (fn, options, ...args).
    waitForFunction: (fn, arg, { timeout = 30_000 } = {}) => page.waitForFunction(fn, { timeout, polling: 100 }, arg),
    waitForSelector: (selector, { state = 'visible', timeout = 30_000 } = {}) => {
      if (state === 'detached' || state === 'hidden') return page.waitForSelector(selector, { hidden: true, timeout });
      return page.waitForSelector(selector, { visible: state === 'visible', timeout });
    },
    textContent: (selector) => page.$eval(selector, (el) => el.textContent),
  };
  return new Proxy(page, {
    get(target, prop) {
      if (Object.hasOwn(own, prop)) return own[prop];
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/**
 * Headless Firefox ESR (Debian's `firefox-esr`) driven by puppeteer-core over
 * WebDriver BiDi, never a downloaded browser. Returns the shape of
 * `launchBrowser()`: { context, close() }, where `context.newPage()` gives a
 * page with the playwright methods the helpers use (see playwrightLike).
 * `executablePath`: a wrapper that starts firefox-esr (e.g. in a network
 * namespace, turn.test.mjs); `prefs`: more preferences.
 */
export async function launchFirefox({ executablePath = FIREFOX, prefs = {} } = {}) {
  if (!existsSync(FIREFOX)) {
    throw new Error(`${FIREFOX} not found: apt-get update && apt-get install -y firefox-esr`);
  }
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath,
    headless: true,
    extraPrefsFirefox: { ...FIREFOX_PREFS, ...prefs },
    defaultViewport: { width: 1280, height: 800 },
  });
  const context = {
    browser,
    newPage: async () => playwrightLike(await browser.newPage()),
  };
  const close = async () => {
    await browser.close().catch(() => {});
  };
  return { context, close };
}

/**
 * Opens the room page (with `?jwt=` if given) and submits the pre-join form
 * under `name`, without waiting for the outcome; returns { page, name }.
 */
export async function openRoomPage(context, baseUrl, room, name, { lang = 'fr', jwt = null, camera = true, record = null } = {}) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[${name}] page error:`, e.message));
  if (record) recordSignaling(page, record);
  const q = new URLSearchParams({ lang });
  if (jwt) q.set('jwt', jwt);
  // Chromium aborts a navigation when the machine's network changes
  // (ERR_NETWORK_CHANGED: the tests make and delete network namespaces and
  // veths); what a user does then is load the page again.
  for (let attempt = 1; ; attempt++) {
    try {
      await page.goto(`${baseUrl}${room}?${q}`);
      break;
    } catch (e) {
      if (attempt >= 3 || !String(e?.message).includes('ERR_NETWORK_CHANGED')) throw e;
      await sleep(500);
    }
  }
  if (!camera) await page.evaluate(() => window.salonTest.withoutCamera());
  await page.fill('#name', name);
  await page.click('#join');
  return { page, name };
}

/**
 * Pushes every signaling message the page receives (on `/ws`, across
 * reloads and reconnects) into the array `into`, parsed, with `at` (ms).
 */
export function recordSignaling(page, into) {
  page.on('websocket', (ws) => {
    if (!new URL(ws.url()).pathname.endsWith('/ws')) return;
    ws.on('framereceived', ({ payload }) => {
      try {
        into.push({ ...JSON.parse(String(payload)), at: Date.now() });
      } catch {
        // Not JSON: not a signaling message.
      }
    });
  });
  return into;
}

/** Opens the room page and joins under `name`; returns the page and its id. */
export async function joinRoom(context, baseUrl, room, name, { lang = 'fr', jwt = null, camera = true, record = null } = {}) {
  const { page } = await openRoomPage(context, baseUrl, room, name, { lang, jwt, camera, record });
  await page.waitForFunction(() => window.salonTest && window.salonTest.ready === true, null, {
    timeout: 15_000,
  });
  const id = await page.evaluate(() => window.salonTest.id);
  return { page, id: String(id), name };
}

/** A WebSocket client with a queue of parsed messages. */
export async function openSocket(wsUrl) {
  const ws = new WebSocket(wsUrl);
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const msg = JSON.parse(data.toString());
    const w = waiters.shift();
    if (w) w(msg);
    else queue.push(msg);
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return {
    ws,
    send: (v) => ws.send(typeof v === 'string' ? v : JSON.stringify(v)),
    sendRaw: (data, opts) => ws.send(data, opts),
    next(timeoutMs = 5_000) {
      if (queue.length) return Promise.resolve(queue.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(done);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`no message in ${timeoutMs} ms`));
        }, timeoutMs);
        const done = (msg) => {
          clearTimeout(timer);
          resolve(msg);
        };
        waiters.push(done);
      });
    },
    close: () => ws.close(),
  };
}

/** Polls `fn` every `everyMs` until it returns a truthy value; throws after `timeoutMs`. */
export async function waitFor(fn, what, timeoutMs = 15_000, everyMs = 200) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    last = await fn();
    if (last) return last;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify(last)}`);
}

export { sleep };

/** Every message socket `s` (from `openSocket`) gets until it is quiet for `quietMs`. */
export async function drainAll(s, quietMs = 800) {
  const seen = [];
  for (;;) {
    try {
      seen.push(await s.next(quietMs));
    } catch {
      return seen;
    }
  }
}

/**
 * Takes `page` (of Chromium `context`) off the network and back, alone
 * (other pages of the browser keep theirs): returns `offline(on)`.
 */
export async function pageNetwork(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  return (on) => cdp.send('Network.emulateNetworkConditions', { offline: on, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
}

/**
 * Two "hosts" on loopback addresses (/work/shared/TESTING-NOTES.md): network
 * namespaces `srv` (127.0.0.2) and `rcv` (127.0.0.3) joined by a veth pair,
 * nothing outside 127/8. Needs root. Returns { srv, rcv, down(), up(),
 * killTcp(ns, filter), cleanup() }; `down`/`up` cut and restore the link (a
 * network drop).
 */
export async function twoHosts() {
  const { execFileSync } = await import('node:child_process');
  const tag = `${process.pid % 100000}`;
  const srv = `salon-srv-${tag}`;
  const rcv = `salon-rcv-${tag}`;
  const ip = (...a) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
  const inNs = (ns, ...a) => ip('netns', 'exec', ns, ...a);
  const cleanup = () => {
    for (const ns of [srv, rcv]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // Already gone.
      }
    }
  };
  cleanup();
  try {
    ip('netns', 'add', srv);
    ip('netns', 'add', rcv);
    ip('link', 'add', `vs${tag}`, 'netns', srv, 'type', 'veth', 'peer', 'name', `vr${tag}`, 'netns', rcv);
    for (const [ns, dev, local, peer] of [
      [srv, `vs${tag}`, '127.0.0.2', '127.0.0.3'],
      [rcv, `vr${tag}`, '127.0.0.3', '127.0.0.2'],
    ]) {
      inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
      for (const k of ['all.route_localnet=1', 'all.rp_filter=0', 'default.rp_filter=0', `${dev}.route_localnet=1`, `${dev}.rp_filter=0`]) {
        inNs(ns, 'sysctl', '-qw', `net.ipv4.conf.${k}`);
      }
      inNs(ns, 'ip', 'route', 'del', 'local', '127.0.0.0/8', 'dev', 'lo', 'table', 'local');
      inNs(ns, 'ip', 'route', 'replace', 'local', '127.0.0.1', 'dev', 'lo', 'table', 'local', 'proto', 'kernel', 'scope', 'host', 'src', '127.0.0.1');
      inNs(ns, 'ip', 'addr', 'add', local, 'peer', peer, 'dev', dev);
      inNs(ns, 'ip', 'link', 'set', dev, 'up');
    }
  } catch (e) {
    cleanup();
    throw new Error(`could not set up the network namespaces: ${e.stderr ?? e.message}`);
  }
  return {
    srv,
    rcv,
    down: () => inNs(rcv, 'ip', 'link', 'set', `vr${tag}`, 'down'),
    /** Destroys the TCP sockets of namespace `ns` matching the `ss` filter (sends no FIN). */
    killTcp: (ns, filter) => inNs(ns, 'ss', '-K', '-t', ...filter.split(' ')),
    up: () => inNs(rcv, 'ip', 'link', 'set', `vr${tag}`, 'up'),
    /**
     * Shapes the receiver's downlink (the server's side of the veth) with
     * `tbf rate R burst B latency 50ms`, or lifts the limit (`rate` null).
     * `rate`, `burst`: tc's words ('400kbit', '10k').
     */
    shape: (rate, burst = '10k') => {
      const dev = `vs${tag}`;
      if (rate === null) {
        try {
          inNs(srv, 'tc', 'qdisc', 'del', 'dev', dev, 'root');
        } catch {
          // No limit to lift.
        }
        return;
      }
      inNs(srv, 'tc', 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', burst, 'latency', '50ms');
    },
    /** What the shaped link sent and dropped so far: { sentBytes, sentPackets, dropped } (zeros unshaped). */
    linkStats: () => {
      const out = execFileSync('ip', ['netns', 'exec', srv, 'tc', '-s', 'qdisc', 'show', 'dev', `vs${tag}`], { encoding: 'utf8' });
      const m = /qdisc tbf[\s\S]*?Sent (\d+) bytes (\d+) pkt \(dropped (\d+)/.exec(out);
      return m ? { sentBytes: Number(m[1]), sentPackets: Number(m[2]), dropped: Number(m[3]) } : { sentBytes: 0, sentPackets: 0, dropped: 0 };
    },
    cleanup,
  };
}

/**
 * The server's `/metrics` text when it runs inside network namespace
 * `netns` (its admin listener is on that namespace's loopback).
 */
export function metricsIn(netns, salon) {
  return execFileSync('ip', ['netns', 'exec', netns, 'curl', '-sf', '--max-time', '5', `${salon.adminUrl}metrics`], {
    encoding: 'utf8',
  });
}

/** A counter or gauge summed over its series in a `/metrics` text (NaN if absent). */
export function sumMetric(text, name) {
  let total = NaN;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
    total = (Number.isNaN(total) ? 0 : total) + Number(m[1]);
  }
  return total;
}

/**
 * Resolves (to the ms it took) when `p` decodes new video frames from `q`
 * and receives more of its audio over 400 ms; throws after `timeoutMs`.
 */
export async function receiving(p, q, timeoutMs) {
  const statsOf = async () => (await p.page.evaluate(() => window.salonTest.stats()))[q.id] ?? null;
  const started = Date.now();
  let last = null;
  while (Date.now() - started < timeoutMs) {
    const a = await statsOf();
    await sleep(400);
    const b = await statsOf();
    last = b;
    if (a && b && b.framesDecoded > a.framesDecoded && b.audioBytesReceived > a.audioBytesReceived) {
      return Date.now() - started;
    }
  }
  throw new Error(`${p.name} does not receive ${q.name} within ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

/** A counter from the server's `/metrics` on its admin listener (NaN if absent). */
export async function metric(salon, name) {
  const text = await (await fetch(`${salon.adminUrl}metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(text);
  return Number(m?.[1] ?? 'NaN');
}

/** Whether `cmd` is on PATH. */
export function haveCommand(cmd) {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * A test CA and a server certificate it signs (for `localhost` and
 * 127.0.0.1, P-256, valid two days), made now with the `openssl` CLI.
 * Returns { ca (PEM text), cert (path of the chain, leaf first), key (path),
 * spki (base64 SHA-256 of the leaf's SubjectPublicKeyInfo, for
 * `launchBrowser({ spki })`), dir, cleanup() }.
 */
export async function makeTestCerts({ dns = ['localhost'], ips = ['127.0.0.1'] } = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'salon-certs-'));
  const f = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-noenc'];
  try {
    openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2',
      '-subj', '/CN=Salon e2e test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    openssl('req', '-new', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
    const san = [...dns.map((d) => `DNS:${d}`), ...ips.map((i) => `IP:${i}`)].join(',');
    await writeFile(
      f('server.ext'),
      `subjectAltName=${san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`,
    );
    openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
      '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-extfile', f('server.ext'), '-out', f('server.pem'));
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`openssl could not make the test certificates: ${e.stderr ?? e.message}`);
  }
  const ca = await readFile(f('ca.pem'), 'utf8');
  const leaf = await readFile(f('server.pem'), 'utf8');
  await writeFile(f('fullchain.pem'), leaf + ca);
  const spki = createHash('sha256')
    .update(new X509Certificate(leaf).publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
  return { ca, cert: f('fullchain.pem'), key: f('server.key'), spki, dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';
/** The operator's template, rendered by `startNginx`. */
export const NGINX_TEMPLATE = path.join(REPO_ROOT, 'deploy/nginx/salon.conf');

/**
 * Debian's nginx, installed if missing and we are root (as
 * scripts/test-all.sh does); null if it is absent and cannot be.
 */
export function ensureNginx() {
  if (existsSync(NGINX)) return NGINX;
  if (process.getuid?.() !== 0) return null;
  const apt = (...args) =>
    execFileSync('apt-get', args, { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  try {
    try {
      apt('install', '-y', '-qq', 'nginx');
    } catch {
      apt('update', '-qq');
      apt('install', '-y', '-qq', 'nginx');
    }
  } catch {
    return null;
  }
  return existsSync(NGINX) ? NGINX : null;
}

/**
 * deploy/nginx/salon.conf for a test: each operator value replaced (the
 * public name by `localhost`, ports 443 and 80 by loopback ports, the
 * certificate paths, the log folder, Salon's address). Throws if one is no
 * longer in the template: the test and the template must not drift apart.
 */
export function renderNginxTemplate(template, { httpsPort, httpPort, upstream, cert, key, logDir }) {
  const swaps = [
    ['https://salon.example.org$request_uri', `https://localhost:${httpsPort}$request_uri`],
    ['/etc/letsencrypt/live/salon.example.org/fullchain.pem', cert],
    ['/etc/letsencrypt/live/salon.example.org/privkey.pem', key],
    ['server_name salon.example.org;', 'server_name localhost;'],
    ['listen 443 ssl;', `listen 127.0.0.1:${httpsPort} ssl;`],
    ['listen [::]:443 ssl;', ''],
    ['listen 80;', `listen 127.0.0.1:${httpPort};`],
    ['listen [::]:80;', ''],
    ['http://127.0.0.1:8080', `http://${upstream}`],
    ['/var/log/nginx/', `${logDir}/`],
  ];
  let out = template;
  for (const [from, to] of swaps) {
    if (!out.includes(from)) throw new Error(`deploy/nginx/salon.conf no longer has ${JSON.stringify(from)}`);
    out = out.split(from).join(to);
  }
  const left = out.split('\n').filter((l) => !l.trim().startsWith('#') && l.includes('salon.example.org'));
  if (left.length) throw new Error(`deploy/nginx/salon.conf has operator values not rendered: ${left.join(' / ')}`);
  return out;
}

/**
 * Our own nginx (never the system service): the rendered template inside a
 * minimal main config with its own pid, logs and temp folders, in the
 * foreground, one process, on loopback ports. `upstream`: Salon's
 * `host:port`; `certs`: from makeTestCerts. Returns { url
 * (https://localhost:PORT/), httpUrl, accessLog(), logs(), stop() }.
 */
export async function startNginx({ upstream, certs, timeoutMs = 10_000 }) {
  const dir = await mkdtemp(path.join(tmpdir(), 'salon-nginx-'));
  for (const d of ['logs', 'tmp']) await mkdir(path.join(dir, d));
  const [httpsPort, httpPort] = [await freePort(), await freePort()];
  const site = renderNginxTemplate(await readFile(NGINX_TEMPLATE, 'utf8'), {
    httpsPort,
    httpPort,
    upstream,
    cert: certs.cert,
    key: certs.key,
    logDir: path.join(dir, 'logs'),
  });
  await writeFile(path.join(dir, 'salon.conf'), site);
  const tmp = (name) => `${name}_temp_path ${path.join(dir, 'tmp', name)};`;
  await writeFile(
    path.join(dir, 'nginx.conf'),
    [
      'daemon off;',
      'master_process off;',
      'worker_processes 1;',
      `pid ${path.join(dir, 'nginx.pid')};`,
      `error_log ${path.join(dir, 'logs', 'main-error.log')} info;`,
      'events { worker_connections 256; }',
      'http {',
      '  default_type application/octet-stream;',
      `  ${tmp('client_body')} ${tmp('proxy')} ${tmp('fastcgi')} ${tmp('uwsgi')} ${tmp('scgi')}`,
      `  access_log ${path.join(dir, 'logs', 'main-access.log')};`,
      `  include ${path.join(dir, 'salon.conf')};`,
      '}',
      '',
    ].join('\n'),
  );
  const args = ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'logs', 'main-error.log')];
  try {
    execFileSync(NGINX, [...args, '-t', '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`nginx -t refused the rendered template: ${e.stderr ?? e.message}`);
  }
  const child = spawn(NGINX, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => children.delete(child));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const done = await Promise.race([exited, sleep(5_000).then(() => null)]);
      if (done === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    await rm(dir, { recursive: true, force: true });
  };
  const readLog = (name) => readFile(path.join(dir, 'logs', name), 'utf8').catch(() => '');
  const until = Date.now() + timeoutMs;
  for (;;) {
    const up = await new Promise((resolve) => {
      const s = net.connect(httpsPort, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) break;
    if (child.exitCode !== null || Date.now() > until) {
      const log = await readLog('main-error.log');
      await stop();
      throw new Error(`nginx did not start\n${stderr}\n${log}`);
    }
    await sleep(50);
  }
  return {
    url: `https://localhost:${httpsPort}/`,
    httpUrl: `http://localhost:${httpPort}/`,
    accessLog: () => readLog('salon-access.log'),
    logs: async () => `${stderr}${await readLog('main-error.log')}${await readLog('salon-error.log')}`,
    stop,
  };
}

/**
 * The HTTP status a WebSocket upgrade to `url` gets (101 if it opened, then
 * closed at once), sent with this `Origin`; `ca`: PEM of the CA to trust
 * for `wss:` (only that one).
 */
export function upgradeStatus(url, { origin, ca = undefined, timeoutMs = 5_000 }) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { origin, ca, handshakeTimeout: timeoutMs });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      resolve(res.statusCode);
    });
    ws.once('error', (e) => reject(e));
  });
}

/** GET `url` over HTTPS trusting only `ca` (PEM): { status, headers, body }. */
export async function httpsGet(url, ca) {
  const https = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.once('timeout', () => req.destroy(new Error(`no answer from ${url}`)));
    req.once('error', reject);
  });
}
