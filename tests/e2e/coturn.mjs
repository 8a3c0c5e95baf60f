// coturn for the e2e tests: deploy/coturn/turnserver.conf rendered for
// loopback addresses, and our own turnserver process in a namespace (never
// the system service). Used by turn.test.mjs and connection-test.test.mjs.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO_ROOT, sleep, waitFor } from './helpers.mjs';

export const SERVER = '127.0.0.2';
export const TURN_PORT = 3478;
export const TURNS_PORT = 5349;

export const TEMPLATE = path.join(REPO_ROOT, 'deploy/coturn/turnserver.conf');

/**
 * deploy/coturn/turnserver.conf for the test: each operator value replaced.
 * Everything here lives on 127/8, which coturn refuses as peers by default:
 * `allow-loopback-peers` lifts that, and the template's own `denied-peer-ip`
 * (everything) / `allowed-peer-ip` (mediad only) still decide. Throws if a
 * value is no longer in the template: the test and the file must not drift.
 */
export function renderCoturn(template, { cert, key, secret, dir }) {
  const swaps = [
    ['listening-ip=198.51.100.20', `listening-ip=${SERVER}`],
    ['relay-ip=198.51.100.20', `relay-ip=${SERVER}`],
    ['max-port=65535', 'max-port=49400'],
    ['/etc/letsencrypt/live/turn.example.org/fullchain.pem', cert],
    ['/etc/letsencrypt/live/turn.example.org/privkey.pem', key],
    ['static-auth-secret=CHANGE-ME-openssl-rand-hex-32', `static-auth-secret=${secret}`],
    ['realm=turn.example.org', 'realm=salon-e2e'],
    ['allowed-peer-ip=203.0.113.10', `allowed-peer-ip=${SERVER}\nallow-loopback-peers`],
    ['\nsyslog\n', `\nlog-file=${dir}/turn.log\nsimple-log\nno-stdout-log\npidfile=${dir}/turn.pid\n`],
  ];
  let out = template;
  for (const [from, to] of swaps) {
    if (!out.includes(from)) throw new Error(`deploy/coturn/turnserver.conf no longer has ${JSON.stringify(from)}`);
    out = out.split(from).join(to);
  }
  const left = out.split('\n').filter((l) => !l.trim().startsWith('#') && /example\.org|198\.51\.100|203\.0\.113/.test(l));
  if (left.length) throw new Error(`deploy/coturn/turnserver.conf has operator values not rendered: ${left.join(' / ')}`);
  return out;
}

/** Our own turnserver in namespace `ns` (never the system service). */
export async function startCoturn(ns, conf, dir) {
  const child = spawn('ip', ['netns', 'exec', ns, 'turnserver', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const log = () => readFile(path.join(dir, 'turn.log'), 'utf8').catch(() => '');
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    if ((await Promise.race([exited, sleep(5_000).then(() => null)])) === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  const listening = () => {
    const out = execFileSync('ip', ['netns', 'exec', ns, 'ss', '-Hltn', `sport = :${TURNS_PORT}`], { encoding: 'utf8' });
    return out.includes(`${SERVER}:${TURNS_PORT}`);
  };
  try {
    await waitFor(() => child.exitCode === null && listening(), 'coturn listening', 10_000, 100);
  } catch (e) {
    await stop();
    throw new Error(`coturn did not start: ${e.message}\n${stderr}\n${await log()}`);
  }
  return { stop, log };
}

/**
 * A fresh shared secret (in `dir/turn-secret`, for `--turn-secret-file`),
 * coturn's configuration rendered from the template with `certs`, and
 * coturn running in namespace `ns`; everything is removed after test `t`.
 * Returns { dir, secret, coturn }.
 */
export async function coturnFor(t, ns, certs, prefix = 'salon-coturn-') {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const secret = randomBytes(32).toString('hex');
  await writeFile(path.join(dir, 'turn-secret'), `${secret}\n`, { mode: 0o600 });
  const conf = path.join(dir, 'turnserver.conf');
  await writeFile(conf, renderCoturn(await readFile(TEMPLATE, 'utf8'), { cert: certs.cert, key: certs.key, secret, dir }));
  const coturn = await startCoturn(ns, conf, dir);
  t.after(() => coturn.stop());
  return { dir, secret, coturn };
}
