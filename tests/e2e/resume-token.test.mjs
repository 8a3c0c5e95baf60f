// The client's reconnect helpers (signaling-gateway/web/src/reconnect.js)
// in Node, without a browser: the retry schedule, and the resume token kept
// per room in sessionStorage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffMs, saveResume, loadResume, forgetResume, RETRY_FOR_MS } from '../../signaling-gateway/web/src/reconnect.js';

test('retries start at 0.5 s, double up to 5 s, with ±25 % jitter', () => {
  const mid = () => 0.5;
  assert.deepEqual([0, 1, 2, 3, 4, 5, 30].map((n) => backoffMs(n, mid)), [500, 1000, 2000, 4000, 5000, 5000, 5000]);
  assert.equal(backoffMs(0, () => 0), 375);
  assert.equal(backoffMs(9, () => 0.999999), 6250);
  // Within the gateway's default grace period, several attempts fit.
  let total = 0;
  let n = 0;
  while (total + backoffMs(n, () => 1) < RETRY_FOR_MS) total += backoffMs(n++, () => 1);
  assert.ok(n >= 6, `${n} attempts in ${RETRY_FOR_MS} ms`);
});

test('the resume token is kept per room, and forgotten', () => {
  const items = new Map();
  globalThis.sessionStorage = {
    getItem: (k) => (items.has(k) ? items.get(k) : null),
    setItem: (k, v) => items.set(k, String(v)),
    removeItem: (k) => items.delete(k),
  };
  try {
    assert.equal(loadResume('A'), null);
    saveResume('A', 'ab'.repeat(16), 'Ana');
    saveResume('B', 'cd'.repeat(16), 'Bob');
    saveResume('A', '', 'Ana'); // no token: nothing changes
    assert.deepEqual(loadResume('A'), { token: 'ab'.repeat(16), name: 'Ana' });
    forgetResume('A');
    assert.equal(loadResume('A'), null);
    assert.equal(loadResume('B').name, 'Bob');
    items.set('salon.resume.C', '{not json');
    assert.equal(loadResume('C'), null);
  } finally {
    delete globalThis.sessionStorage;
  }
  // Without storage (Node, or refused): nothing breaks.
  saveResume('A', 'x', 'y');
  assert.equal(loadResume('A'), null);
});
