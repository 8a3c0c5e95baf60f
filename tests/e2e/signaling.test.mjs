// Raw WebSocket signaling against the real binary (no browser needed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSalon, openSocket, sleep } from './helpers.mjs';

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

test('an oversized frame: refused once joined, closes the socket before', { timeout: 15_000 }, async () => {
  const sock = await openSocket(salon.wsUrl);
  try {
    sock.send(join('Big'));
    await expectJoined(sock, 'Big');
    sock.send({ type: 'publish-offer', sdp: 'a'.repeat(700 * 1024) });
    await expectError(sock, 'too-large');
  } finally {
    sock.close();
  }
  // Before a join, 16 KiB is the most (a join with a token fits).
  const early = await openSocket(salon.wsUrl);
  const closed = new Promise((resolve) => early.ws.once('close', (code, reason) => resolve([code, String(reason)])));
  early.send({ type: 'publish-offer', sdp: 'a'.repeat(32 * 1024) });
  assert.deepEqual(await closed, [1009, 'too-large']);
});

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
    assert.deepEqual(jb.participants, [
      { id: ja.id, name: 'Ana', role: 'moderator', audio_muted: false, video_stopped: false, reconnecting: false },
    ]);
    assert.deepEqual(await a.next(), { type: 'participant-joined', id: jb.id, name: 'Bob', role: 'participant' });
    // Closing B (without `leave`) tells A that B is reconnecting; `leave`
    // from a new socket that resumed makes it a departure.
    b.close();
    assert.deepEqual(await a.next(), { type: 'participant-reconnecting', id: jb.id });
    const b2 = await openSocket(salon.wsUrl);
    b2.send({ type: 'resume', token: jb.resume_token, media: 'kept' });
    assert.equal((await b2.next()).type, 'resumed');
    assert.deepEqual(await a.next(), { type: 'participant-resumed', id: jb.id });
    b2.send({ type: 'leave' });
    assert.deepEqual(await a.next(), { type: 'participant-left', id: jb.id });
    b2.close();
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
  // `/metrics` is on the admin listener only.
  assert.equal((await fetch(salon.url + 'metrics')).status, 404);
  const metrics = await (await fetch(salon.adminUrl + 'metrics')).text();
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

test('a dropped socket resumes its place with its token, once', { timeout: 15_000 }, async () => {
  const a = await openSocket(salon.wsUrl);
  const b = await openSocket(salon.wsUrl);
  const socks = [a, b];
  try {
    a.send(join('Resume'));
    const ja = await expectJoined(a, 'Resume');
    b.send(join('Resume', 'Bob'));
    const jb = await expectJoined(b, 'Resume');
    assert.match(jb.resume_token, /^[0-9a-f]{32}$/);
    await a.next(); // participant-joined
    b.ws.terminate(); // no close handshake: a dead network
    assert.deepEqual(await a.next(), { type: 'participant-reconnecting', id: jb.id });
    const b2 = await openSocket(salon.wsUrl);
    socks.push(b2);
    b2.send({ type: 'resume', token: jb.resume_token, media: 'kept' });
    const r = await b2.next();
    assert.equal(r.type, 'resumed', JSON.stringify(r));
    assert.equal(r.id, jb.id);
    assert.equal(r.role, 'participant');
    assert.equal(r.media, 'kept');
    assert.equal(r.pad_token, jb.pad_token);
    assert.notEqual(r.resume_token, jb.resume_token);
    assert.deepEqual(r.participants.map((p) => p.id), [ja.id]);
    assert.deepEqual(await a.next(), { type: 'participant-resumed', id: jb.id });
    // The new socket speaks as Bob.
    b2.send({ type: 'chat', text: 'me revoilà' });
    const chat = await a.next();
    assert.equal(chat.from, jb.id);
    assert.equal(chat.text, 'me revoilà');
    // The used token is refused; the socket may then join normally.
    const b3 = await openSocket(salon.wsUrl);
    socks.push(b3);
    b3.send({ type: 'resume', token: jb.resume_token });
    await expectError(b3, 'resume-failed');
    // Each failed attempt doubles the wait before the next (0.25 s, 0.5 s…).
    b3.send({ type: 'resume', token: 'f'.repeat(32) });
    await expectError(b3, 'join-too-soon');
    await sleep(300);
    b3.send({ type: 'resume', token: 'f'.repeat(32) });
    await expectError(b3, 'resume-failed');
    await sleep(600);
    b3.send(join('Resume', 'Cy'));
    await expectJoined(b3, 'Resume');
  } finally {
    for (const s of socks) s.close();
  }
});

test('past the grace period a resume fails and the others saw the departure', { timeout: 20_000 }, async () => {
  const own = await startSalon({ extraArgs: ['--reconnect-grace-secs', '1'] });
  const a = await openSocket(own.wsUrl);
  const b = await openSocket(own.wsUrl);
  try {
    a.send(join('Late'));
    await expectJoined(a, 'Late');
    b.send(join('Late', 'Bob'));
    const jb = await expectJoined(b, 'Late');
    await a.next(); // participant-joined
    b.close();
    assert.deepEqual(await a.next(), { type: 'participant-reconnecting', id: jb.id });
    const started = Date.now();
    assert.deepEqual(await a.next(3_000), { type: 'participant-left', id: jb.id });
    const waited = Date.now() - started;
    assert.ok(waited > 700 && waited < 2_500, `left after ${waited} ms`);
    const b2 = await openSocket(own.wsUrl);
    b2.send({ type: 'resume', token: jb.resume_token, media: 'new' });
    await expectError(b2, 'resume-failed');
    b2.close();
  } finally {
    a.close();
    b.close();
    await own.stop();
  }
});

test('resume, leave and close sent at once: the others see the departure', { timeout: 15_000 }, async () => {
  const a = await openSocket(salon.wsUrl);
  const b = await openSocket(salon.wsUrl);
  try {
    a.send(join('AtOnce'));
    await expectJoined(a, 'AtOnce');
    b.send(join('AtOnce', 'Bob'));
    const jb = await expectJoined(b, 'AtOnce');
    await a.next(); // participant-joined
    b.ws.terminate();
    assert.deepEqual(await a.next(), { type: 'participant-reconnecting', id: jb.id });
    // The gateway's answer to `resume` finds the socket gone: the `leave`
    // read before the close still counts.
    const c = await openSocket(salon.wsUrl);
    c.send({ type: 'resume', token: jb.resume_token, media: 'kept' });
    c.send({ type: 'leave' });
    c.ws.close();
    assert.deepEqual(await a.next(), { type: 'participant-resumed', id: jb.id });
    assert.deepEqual(await a.next(), { type: 'participant-left', id: jb.id });
  } finally {
    a.close();
  }
});

test('a resume while the old socket is still open closes it as replaced', { timeout: 15_000 }, async () => {
  const a = await openSocket(salon.wsUrl);
  const b = await openSocket(salon.wsUrl);
  const c = await openSocket(salon.wsUrl);
  try {
    a.send(join('Twin'));
    await expectJoined(a, 'Twin');
    b.send(join('Twin', 'Bob'));
    const jb = await expectJoined(b, 'Twin');
    await a.next(); // participant-joined
    const closed = new Promise((resolve) => b.ws.once('close', (code, reason) => resolve([code, String(reason)])));
    c.send({ type: 'resume', token: jb.resume_token, media: 'new' });
    const r = await c.next();
    assert.equal(r.type, 'resumed');
    assert.equal(r.id, jb.id);
    assert.deepEqual(await closed, [4001, 'replaced']);
    assert.deepEqual(await a.next(), { type: 'participant-resumed', id: jb.id });
    // The old socket's close was not a drop: nobody hears of it.
    a.send({ type: 'ping?' });
    await expectError(a, 'unknown-type');
  } finally {
    for (const s of [a, b, c]) s.close();
  }
});
