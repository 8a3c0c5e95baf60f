// Raw WebSocket signaling against the real binary (no browser needed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, openSocket } from './helpers.mjs';

let salon;
before(async () => {
  salon = await startSalon();
});
after(async () => {
  await salon?.stop();
});

const join = (room = 'NomDuSalon123', name = 'Ana') => ({ type: 'join', room, name });

async function expectError(sock, code) {
  const msg = await sock.next();
  assert.equal(msg.type, 'error', JSON.stringify(msg));
  assert.equal(msg.code, code, JSON.stringify(msg));
  assert.equal(typeof msg.message, 'string');
}

async function expectJoined(sock, room = 'NomDuSalon123') {
  const msg = await sock.next();
  assert.equal(msg.type, 'joined', JSON.stringify(msg));
  assert.equal(msg.room, room);
  assert.ok(Number.isInteger(msg.id) && msg.id > 0);
  assert.ok(Array.isArray(msg.participants));
  return msg;
}

const badFrames = [
  ['bad JSON', (s) => s.send('{"type": "join",'), 'bad-json'],
  ['unknown type', (s) => s.send({ type: 'dance' }), 'unknown-type'],
  ['wrong field type', (s) => s.send({ type: 'join', room: 42, name: 'Ana' }), 'bad-message'],
  ['message before join', (s) => s.send({ type: 'publish-offer', sdp: 'v=0' }), 'not-joined'],
  [
    'oversized frame',
    (s) => s.send({ type: 'publish-offer', sdp: 'a'.repeat(700 * 1024) }),
    'too-large',
  ],
  ['binary frame', (s) => s.sendRaw(Buffer.from([1, 2, 3]), { binary: true }), 'not-text'],
  ['bad room', (s) => s.send(join('../etc/passwd')), 'bad-room'],
  ['bad name', (s) => s.send(join('NomDuSalon123', '\u0007')), 'bad-name'],
];

for (const [what, sendBad, code] of badFrames) {
  test(`${what} → error ${code}, then a valid join works`, { timeout: 15_000 }, async () => {
    const sock = await openSocket(salon.wsUrl);
    try {
      sendBad(sock);
      await expectError(sock, code);
      sock.send(join(`Err-${code}`));
      await expectJoined(sock, `Err-${code}`);
    } finally {
      sock.close();
    }
  });
}

test('second join → already-joined, and the socket stays in its room', { timeout: 15_000 }, async () => {
  const a = await openSocket(salon.wsUrl);
  const b = await openSocket(salon.wsUrl);
  try {
    a.send(join('Twice'));
    const ja = await expectJoined(a, 'Twice');
    a.send(join('Twice'));
    await expectError(a, 'already-joined');
    b.send(join('Twice', 'Bob'));
    const jb = await expectJoined(b, 'Twice');
    // Open policy: the first one in is moderator, the next a participant.
    assert.equal(ja.role, 'moderator');
    assert.equal(jb.role, 'participant');
    assert.equal(jb.locked, false);
    assert.deepEqual(jb.participants, [{ id: ja.id, name: 'Ana', role: 'moderator', audio_muted: false, video_stopped: false }]);
    assert.deepEqual(await a.next(), { type: 'participant-joined', id: jb.id, name: 'Bob', role: 'participant' });
    // Closing B tells A.
    b.close();
    assert.deepEqual(await a.next(), { type: 'participant-left', id: jb.id });
  } finally {
    a.close();
    b.close();
  }
});

test('rooms are isolated and ids are unique', { timeout: 15_000 }, async () => {
  const a = await openSocket(salon.wsUrl);
  const b = await openSocket(salon.wsUrl);
  try {
    a.send(join('RoomA', 'Same'));
    b.send(join('RoomB', 'Same'));
    const ja = await expectJoined(a, 'RoomA');
    const jb = await expectJoined(b, 'RoomB');
    assert.notEqual(ja.id, jb.id);
    assert.deepEqual(jb.participants, []);
    // Nothing about B reaches A: the next thing A sees is its own error.
    a.send({ type: 'ping?' });
    await expectError(a, 'unknown-type');
  } finally {
    a.close();
    b.close();
  }
});

test('HTTP: pages, 400 for bad room names, security headers', async () => {
  const home = await fetch(salon.url);
  assert.equal(home.status, 200);
  assert.match(home.headers.get('content-security-policy'), /default-src 'self'/);
  assert.equal(home.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(home.headers.get('referrer-policy'), 'no-referrer');
  const room = await fetch(salon.url + 'NomDuSalon123');
  assert.equal(room.status, 200);
  const bad = await fetch(salon.url + 'pas.valide');
  assert.equal(bad.status, 400);
  const text = await bad.text();
  assert.match(text, /Nom de salon invalide/);
  assert.match(text, /Invalid room name/);
  assert.equal((await fetch(salon.url + 'healthz')).status, 200);
  const metrics = await (await fetch(salon.url + 'metrics')).text();
  assert.match(metrics, /salon_gateway_ws_connections_total \d+/);
});

test('SIGTERM shuts down cleanly and closes open sockets', { timeout: 20_000 }, async () => {
  const own = await startSalon();
  const sock = await openSocket(own.wsUrl);
  sock.send(join('Bye'));
  await expectJoined(sock, 'Bye');
  const closed = new Promise((resolve) => sock.ws.once('close', (code) => resolve(code)));
  await own.stop();
  assert.deepEqual(await own.exited, { code: 0, signal: null });
  assert.equal(await closed, 1001); // going away
});
