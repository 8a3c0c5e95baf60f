// Shared helpers of the end-to-end tests: start the real `salon` binary,
// launch Debian's Chromium through playwright-core, talk raw WebSocket.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));

export const SALON_BIN = path.resolve(here, process.env.SALON_BIN ?? '../../target/debug/salon');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const IO_BACKEND = process.env.SALON_IO_BACKEND ?? 'auto';

/** Every process we spawn, killed on exit whatever happens. */
const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * Starts `salon` on free ports and waits for its `Salon: http://…/` line.
 * Returns { url, wsUrl, logs(), stop() }.
 */
export async function startSalon({ ioBackend = IO_BACKEND, timeoutMs = 20_000 } = {}) {
  if (!existsSync(SALON_BIN)) {
    throw new Error(`salon binary not found at ${SALON_BIN}: run \`cargo build -p salon-gateway\` or set SALON_BIN`);
  }
  const args = ['--listen', '127.0.0.1:0', '--media-port', '0', '--io-backend', ioBackend];
  const child = spawn(SALON_BIN, args, {
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
    const url = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`salon did not print its URL in ${timeoutMs} ms\n${stderr}`)), timeoutMs);
      child.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/^Salon: (http:\/\/\S+\/)\n/m);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`salon exited early (code ${code}, signal ${signal})\n${stderr}`));
      });
    });
    const wsUrl = url.replace(/^http/, 'ws') + 'ws';
    return { url, wsUrl, logs: () => stderr, stop, exited };
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

/** Headless Chromium with a fresh profile. Returns { context, close() }. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: apt-get update && apt-get install -y chromium`);
  }
  const userDataDir = await mkdtemp(path.join(tmpdir(), 'salon-e2e-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
  const close = async () => {
    await context.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}

/** Opens the room page and joins under `name`; returns the page and its id. */
export async function joinRoom(context, baseUrl, room, name, { lang = 'fr' } = {}) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[${name}] page error:`, e.message));
  await page.goto(`${baseUrl}${room}?lang=${lang}`);
  await page.fill('#name', name);
  await page.click('#join');
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

export { sleep };
