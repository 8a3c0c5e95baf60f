// Generates a corpus of REAL Yjs pad traffic (yjs, y-protocols and lib0 as
// the browser bundles them, from signaling-gateway/web/node_modules) with a
// fixed seed, for `signaling-gateway/tests/pad_real_yjs.rs`.
//
//   node signaling-gateway/tests/data/make-yjs-corpus.mjs OUT_DIR [--scale small|big] [--seed N]
//
// OUT_DIR gets one sub-directory per room (one gateway document each):
// `NNNNNN-<kind>.bin` frames, in the order the gateway receives them, framed
// exactly as `web/src/pad.js` frames them (varuint type, then for sync a
// varuint step and a length-prefixed payload; for awareness a
// length-prefixed awareness update), and `expected.txt`: the text every JS
// peer converged to once all of them exchanged everything.
//
// Several Y.Doc peers edit one Y.Text('pad') concurrently (delayed,
// shuffled delivery between peers): ASCII, accents, emoji and surrogate
// pairs, CJK, deletes across ranges, `format`, `insert(.., attrs)`,
// `insertEmbed`, Y.UndoManager undo/redo, peers going offline then
// re-syncing (step 1 / step 2 against the gateway's state vector),
// `encodeStateAsUpdate` (full and diff), `mergeUpdates`, `diffUpdate`, gc on
// and off, a long document, many small updates; awareness states as
// y-codemirror.next sets them (user name with accents/emoji, colour, cursor
// anchor/head as relative positions), their removal, awareness queries.
import { createRequire } from 'node:module';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// CommonJS builds through one resolver, so that y-protocols and this script
// share one yjs instance.
const require = createRequire(join(here, '../../web/package.json'));
const Y = require('yjs');
const syncProtocol = require('y-protocols/sync');
const awarenessProtocol = require('y-protocols/awareness');
const encoding = require('lib0/encoding');

const args = process.argv.slice(2);
const out = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a));
if (!out) {
  console.error('usage: make-yjs-corpus.mjs OUT_DIR [--scale small|big] [--seed N]');
  process.exit(2);
}
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const scale = opt('--scale', 'small');
const seed = Number(opt('--seed', '20261204'));
const BIG = scale === 'big';

// mulberry32: a small seeded PRNG, so that the corpus is reproducible.
function prng(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = prng(seed);
const int = (n) => Math.floor(rand() * n);
const pick = (xs) => xs[int(xs.length)];

const SNIPPETS = [
  'ordre du jour ',
  'réunion ',
  'Ça marche, à démain. ',
  'élève ',
  '🎉',
  '👩🏽‍💻 ',
  '🇫🇷',
  '𝄞 ',
  '会议纪要 ',
  '日本語のテキスト ',
  '한국어 ',
  'Ελληνικά ',
  '\n',
  '- [ ] tâche\n',
  '# Titre\n',
  '**gras** ',
  'x',
  'a',
  ' ',
  'naïve façade œuvre ',
];
// The last one is a name cut in the middle of an emoji (a lone surrogate,
// which JSON.stringify writes as an escape).
const NAMES = ['Aline', 'Bérénice 🌻', 'Zoë Ångström', '李雷', 'Ōmura 🎌', 'Renée-Noël', 'Zoé 🎉'.slice(0, 5)];
const COLORS = ['#1f6feb', '#b3261e', '#0a7d33', '#8250df', '#9a6700', '#bf3989'];
const ATTRS = [{ bold: true }, { italic: true }, { link: 'https://exemple.fr/é' }, { bold: null }, { header: 2 }];
const EMBEDS = [{ image: 'https://exemple.fr/a.png' }, { mention: 'Zoë' }, { formula: 'e^{iπ}+1=0' }];

function frameSync(write) {
  const enc = encoding.createEncoder();
  encoding.writeVarUint(enc, 0);
  write(enc);
  return encoding.toUint8Array(enc);
}
// As pad.js sends it when its socket opens.
const step1Of = (doc) => frameSync((enc) => syncProtocol.writeSyncStep1(enc, doc));
// As syncProtocol.writeSyncStep2 writes it, from an already encoded update.
const step2 = (u) =>
  frameSync((enc) => {
    encoding.writeVarUint(enc, syncProtocol.messageYjsSyncStep2);
    encoding.writeVarUint8Array(enc, u);
  });
const updateFrame = (u) => frameSync((enc) => syncProtocol.writeUpdate(enc, u));
function awarenessFrame(aw, clients) {
  const enc = encoding.createEncoder();
  encoding.writeVarUint(enc, 1);
  encoding.writeVarUint8Array(enc, awarenessProtocol.encodeAwarenessUpdate(aw, clients));
  return encoding.toUint8Array(enc);
}

class Room {
  constructor(name, { peers, gc }) {
    this.dir = join(out, name);
    mkdirSync(this.dir, { recursive: true });
    this.n = 0;
    this.bytes = 0;
    this.kinds = {};
    // What the gateway holds, to know its state vector (what it would
    // send as its step 1).
    this.gateway = new Y.Doc({ gc: true });
    this.peers = [];
    this.inflight = []; // [to, update]
    for (let i = 0; i < peers; i++) this.addPeer(gc);
  }

  addPeer(gc) {
    const doc = new Y.Doc({ gc });
    doc.clientID = 1 + int(0xffffffff);
    const text = doc.getText('pad');
    const peer = {
      doc,
      text,
      online: true,
      undo: new Y.UndoManager(text, { captureTimeout: 0 }),
      aw: new awarenessProtocol.Awareness(doc),
      sent: [],
    };
    peer.aw.setLocalStateField('user', {
      name: pick(NAMES),
      color: COLORS[doc.clientID % COLORS.length],
      colorLight: COLORS[doc.clientID % COLORS.length] + '33',
    });
    doc.on('update', (u, origin) => {
      if (origin === 'remote') return;
      peer.sent.push(u);
      if (peer.online) this.send(peer, updateFrame(u), 'update');
    });
    this.peers.push(peer);
    // Opening the socket: step 1, then our awareness (pad.js).
    this.send(peer, step1Of(doc), 'step1');
    this.send(peer, awarenessFrame(peer.aw, [doc.clientID]), 'awareness');
    this.syncFromGateway(peer);
    return peer;
  }

  // The gateway's step 2 reaching `peer`, and the peer's answer to the
  // gateway's step 1 (its greeting).
  syncFromGateway(peer) {
    Y.applyUpdate(peer.doc, Y.encodeStateAsUpdate(this.gateway, Y.encodeStateVector(peer.doc)), 'remote');
    // As pad.js answers: readSyncMessage → writeSyncStep2(enc, doc, sv).
    const sv = Y.encodeStateVector(this.gateway);
    this.send(peer, frameSync((enc) => syncProtocol.writeSyncStep2(enc, peer.doc, sv)), 'step2');
  }

  send(peer, frame, kind) {
    const name = `${String(this.n).padStart(6, '0')}-${kind}.bin`;
    writeFileSync(join(this.dir, name), frame);
    this.n++;
    this.bytes += frame.length;
    this.kinds[kind] = (this.kinds[kind] ?? 0) + 1;
    if (kind === 'update' || kind === 'step2' || kind === 'merged' || kind === 'diff') {
      const u = decodeSyncPayload(frame);
      Y.applyUpdate(this.gateway, u, 'remote');
      // The gateway relays to the other online peers, late and out of order.
      for (const other of this.peers) if (other !== peer && other.online) this.inflight.push([other, u]);
    } else if (kind === 'awareness') {
      for (const other of this.peers) {
        if (other !== peer) awarenessProtocol.applyAwarenessUpdate(other.aw, decodeAwareness(frame), 'remote');
      }
    }
  }

  deliverSome() {
    const k = int(this.inflight.length + 1);
    for (let i = 0; i < k && this.inflight.length; i++) {
      const [to, u] = this.inflight.splice(int(this.inflight.length), 1)[0];
      if (to.online) Y.applyUpdate(to.doc, u, 'remote');
    }
  }

  edit(peer, { big = false } = {}) {
    const { text, doc } = peer;
    const len = text.length;
    const r = rand();
    // An editor never puts a position inside a surrogate pair (Yjs itself
    // would then diverge between peers: it replaces each half of a split
    // pair by U+FFFD on the peer that splits, yjs issue #248).
    const at = (i) => boundary(text, i);
    if (r < 0.35 || len < 8) {
      let s = pick(SNIPPETS);
      if (big) s = s.repeat(1 + int(200));
      else if (rand() < 0.2) s = s.repeat(1 + int(6));
      if (rand() < 0.15) text.insert(at(int(len + 1)), s, pick(ATTRS));
      else text.insert(at(int(len + 1)), s);
    } else if (r < 0.55) {
      const from = at(int(len));
      const to = at(from + 1 + int(Math.min(len - from, big ? 400 : 30)));
      if (to > from) text.delete(from, to - from);
    } else if (r < 0.65) {
      const from = at(int(len));
      const to = at(from + 1 + int(Math.min(len - from, 40)));
      if (to > from) text.format(from, to - from, pick(ATTRS));
    } else if (r < 0.7) {
      text.insertEmbed(at(int(len + 1)), pick(EMBEDS), rand() < 0.5 ? { alt: 'dessin ✏️' } : undefined);
    } else if (r < 0.78) {
      peer.undo.undo();
    } else if (r < 0.83) {
      peer.undo.redo();
    } else if (r < 0.9) {
      // One transaction, several edits: one update.
      doc.transact(() => {
        for (let i = 0; i < 2 + int(5); i++) {
          const l = text.length;
          if (rand() < 0.6 || l < 4) text.insert(at(int(l + 1)), pick(SNIPPETS));
          else {
            const from = at(int(l - 1));
            const to = at(Math.min(l, from + 1 + int(3)));
            if (to > from) text.delete(from, to - from);
          }
        }
      });
    } else {
      // Typing: many one-character updates.
      let i = at(int(len + 1));
      for (const ch of pick(SNIPPETS)) {
        text.insert(i, ch);
        i += ch.length;
      }
    }
  }

  moveCursor(peer) {
    const len = peer.text.length;
    const a = boundary(peer.text, int(len + 1));
    const h = rand() < 0.5 ? a : boundary(peer.text, int(len + 1));
    peer.aw.setLocalStateField('cursor', {
      anchor: Y.createRelativePositionFromTypeIndex(peer.text, a),
      head: Y.createRelativePositionFromTypeIndex(peer.text, h, rand() < 0.5 ? -1 : 0),
    });
    this.send(peer, awarenessFrame(peer.aw, [peer.doc.clientID]), 'awareness');
  }

  goOffline(peer) {
    peer.online = false;
    peer.offlineFrom = peer.sent.length;
    this.inflight = this.inflight.filter(([to]) => to !== peer);
    // Its awareness removal, as the gateway's other peers would see a
    // `setLocalState(null)` before a clean close.
    const state = peer.aw.getLocalState();
    peer.aw.setLocalState(null);
    this.send(peer, awarenessFrame(peer.aw, [peer.doc.clientID]), 'awareness');
    peer.savedState = state;
  }

  comeBack(peer) {
    peer.online = true;
    // y-websocket on reconnect: our step 1, answer the gateway's step 1
    // with a step 2 holding what it misses, then the awareness.
    this.send(peer, step1Of(peer.doc), 'step1');
    this.syncFromGateway(peer);
    const offline = peer.sent.slice(peer.offlineFrom);
    if (offline.length > 1) {
      // What was typed offline, also merged and diffed the ways a
      // provider can (y-indexeddb, y-webrtc).
      const merged = Y.mergeUpdates(offline);
      this.send(peer, updateFrame(merged), 'merged');
      this.send(peer, updateFrame(Y.diffUpdate(merged, Y.encodeStateVector(this.gateway))), 'diff');
    }
    peer.aw.setLocalState(peer.savedState ?? {});
    this.send(peer, awarenessFrame(peer.aw, [peer.doc.clientID]), 'awareness');
  }

  extras(peer) {
    const r = rand();
    if (r < 0.3) {
      this.send(peer, step2(Y.encodeStateAsUpdate(peer.doc)), 'step2');
    } else if (r < 0.5) {
      // A diff against an older state vector of the gateway.
      const sv = Y.encodeStateVector(this.gateway);
      this.send(peer, step2(Y.encodeStateAsUpdate(peer.doc, sv)), 'step2');
    } else if (r < 0.7 && peer.sent.length > 2) {
      const k = 2 + int(Math.min(peer.sent.length - 1, 30));
      this.send(peer, updateFrame(Y.mergeUpdates(peer.sent.slice(-k))), 'merged');
    } else if (r < 0.85) {
      // Several peers' updates merged into one (a relay that batches).
      const all = this.peers.flatMap((p) => p.sent.slice(-3));
      if (all.length) this.send(peer, updateFrame(Y.mergeUpdates(all)), 'merged');
    } else if (r < 0.95) {
      const full = Y.encodeStateAsUpdate(peer.doc);
      const sv = Y.encodeStateVector(this.gateway);
      this.send(peer, updateFrame(Y.diffUpdate(full, sv)), 'diff');
    } else {
      this.send(peer, new Uint8Array([3]), 'awareness-query');
    }
  }

  run(steps, { bigEvery = 0 } = {}) {
    for (let s = 0; s < steps; s++) {
      const peer = pick(this.peers);
      const r = rand();
      if (!peer.online) {
        if (r < 0.15) this.comeBack(peer);
        else this.edit(peer);
      } else if (r < 0.7) {
        this.edit(peer, { big: bigEvery > 0 && s % bigEvery === 0 });
      } else if (r < 0.8) {
        this.moveCursor(peer);
      } else if (r < 0.9) {
        this.extras(peer);
      } else if (r < 0.93 && this.peers.filter((p) => p.online).length > 1) {
        this.goOffline(peer);
      } else {
        this.deliverSome();
      }
      if (rand() < 0.5) this.deliverSome();
    }
  }

  // Everyone back, everything exchanged; returns the converged text.
  finish() {
    for (const p of this.peers) if (!p.online) this.comeBack(p);
    this.inflight = [];
    // Every peer's answer to the gateway's step 1 reaches it, then the
    // gateway's state reaches every peer.
    for (const p of this.peers) this.syncFromGateway(p);
    for (const p of this.peers) {
      Y.applyUpdate(p.doc, Y.encodeStateAsUpdate(this.gateway, Y.encodeStateVector(p.doc)), 'remote');
    }
    const texts = this.peers.map((p) => p.text.toString());
    if (new Set(texts).size !== 1) {
      const [a, b] = [...new Set(texts)];
      let i = 0;
      while (a[i] === b[i]) i++;
      console.error(JSON.stringify({ len: texts.map((t) => t.length), at: i, a: a.slice(i - 5, i + 10), b: b.slice(i - 5, i + 10) }));
      const svs = this.peers.map((p) => Buffer.from(Y.encodeStateVector(p.doc)).toString('hex'));
      console.error(svs.join('\n'));
      throw new Error(`${this.dir}: peers did not converge`);
    }
    if (this.gateway.getText('pad').toString() !== texts[0]) throw new Error(`${this.dir}: gateway mirror differs`);
    writeFileSync(join(this.dir, 'expected.txt'), texts[0]);
    for (const p of this.peers) {
      p.aw.destroy();
      p.undo.destroy();
      p.doc.destroy();
    }
    return texts[0];
  }
}

// `i`, or `i - 1` if `i` falls between the halves of a surrogate pair
// (positions count embeds as one, as Y.Text does).
function boundary(text, i) {
  let pos = 0;
  for (const op of text.toDelta()) {
    const n = typeof op.insert === 'string' ? op.insert.length : 1;
    if (i < pos + n) {
      if (typeof op.insert !== 'string' || i === pos) return i;
      const c = op.insert.charCodeAt(i - pos - 1);
      return c >= 0xd800 && c <= 0xdbff ? i - 1 : i;
    }
    pos += n;
  }
  return i;
}

function deleteRange(text, i, n) {
  const from = boundary(text, i);
  const to = boundary(text, Math.min(text.length, from + n));
  if (to > from) text.delete(from, to - from);
}

function decodeSyncPayload(frame) {
  const decoding = require('lib0/decoding');
  const d = decoding.createDecoder(frame);
  decoding.readVarUint(d);
  decoding.readVarUint(d);
  return decoding.readVarUint8Array(d);
}
function decodeAwareness(frame) {
  const decoding = require('lib0/decoding');
  const d = decoding.createDecoder(frame);
  decoding.readVarUint(d);
  return decoding.readVarUint8Array(d);
}

mkdirSync(out, { recursive: true });
const rooms = [
  // name, peers, gc, steps, long-document inserts every n steps, then a long-document target
  ['concurrent-gc', 4, true, BIG ? 3000 : 150, 0],
  ['concurrent-nogc', 3, false, BIG ? 2000 : 100, 0],
  ['many-small', 2, true, BIG ? 2000 : 80, 0],
  ['long', 3, true, BIG ? 600 : 25, 3],
];
const summary = [];
for (const [name, peers, gc, steps, bigEvery] of rooms) {
  // Only the rooms' directories are replaced (the corpus keeps its
  // .gitattributes).
  rmSync(join(out, name), { recursive: true, force: true });
  const room = new Room(name, { peers, gc });
  room.run(steps, { bigEvery });
  if (name === 'long') {
    // Grow to the target size, then full and diff state updates of it.
    const target = BIG ? 200_000 : 20_000;
    const p = room.peers[0];
    while (p.text.length < target) {
      p.text.insert(boundary(p.text, int(p.text.length + 1)), pick(SNIPPETS).repeat(50 + int(100)));
      if (rand() < 0.3) deleteRange(p.text, int(p.text.length), 20);
      if (rand() < 0.3) room.deliverSome();
    }
    room.run(BIG ? 100 : 10);
  }
  if (name === 'many-small') {
    // Bursts of one-keystroke updates from every peer.
    for (let i = 0; i < (BIG ? 1500 : 60); i++) {
      const p = pick(room.peers);
      p.text.insert(boundary(p.text, int(p.text.length + 1)), pick(['a', 'é', '🎉', '字', '\n', ' ']));
      if (rand() < 0.1) deleteRange(p.text, int(p.text.length), 1);
      if (rand() < 0.3) room.deliverSome();
    }
  }
  const text = room.finish();
  summary.push({ room: name, frames: room.n, bytes: room.bytes, chars: text.length, kinds: room.kinds });
}
console.log(JSON.stringify({ seed, scale, rooms: summary }, null, 1));
