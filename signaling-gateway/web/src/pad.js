// The meeting's pad: a Y.Doc edited with CodeMirror 6 (y-codemirror.next),
// synced with the gateway over the Yjs sync protocol (y-protocols), one
// message per binary WebSocket frame, on `/pad` (the token offered as the
// subprotocol `salon-pad-token.<token>`, next to `salon-pad`).
import * as Y from 'yjs';
import * as syncProtocol from 'y-protocols/sync';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import { EditorView, keymap, drawSelection, highlightActiveLine } from '@codemirror/view';
import { EditorState } from '@codemirror/state';
import { defaultKeymap, indentWithTab } from '@codemirror/commands';
import { markdown } from '@codemirror/lang-markdown';
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next';

const MSG_SYNC = 0;
const MSG_AWARENESS = 1;
const COLORS = ['#1f6feb', '#b3261e', '#0a7d33', '#8250df', '#9a6700', '#bf3989'];

export class Pad {
  /** `url`: ws(s)://host/pad; `protocols`: `salon-pad` and the token's; `onStatus(key, vars)`. */
  constructor(url, protocols, name, onStatus) {
    this.doc = new Y.Doc();
    this.text = this.doc.getText('pad');
    this.awareness = new awarenessProtocol.Awareness(this.doc);
    this.awareness.setLocalStateField('user', {
      name,
      color: COLORS[this.doc.clientID % COLORS.length],
      colorLight: COLORS[this.doc.clientID % COLORS.length] + '33',
    });
    this.onStatus = onStatus;
    this.synced = false;
    this.syncedWaiters = [];
    this.view = null;
    this.ws = new WebSocket(url, protocols);
    this.ws.binaryType = 'arraybuffer';
    onStatus('pad.connecting');
    this.ws.addEventListener('open', () => {
      const enc = encoding.createEncoder();
      encoding.writeVarUint(enc, MSG_SYNC);
      syncProtocol.writeSyncStep1(enc, this.doc);
      this.ws.send(encoding.toUint8Array(enc));
      this.sendAwareness([this.doc.clientID]);
    });
    this.ws.addEventListener('message', (ev) => this.onMessage(new Uint8Array(ev.data)));
    this.ws.addEventListener('close', (ev) => {
      this.closed = true;
      onStatus('pad.closed', { reason: ev.reason || String(ev.code) });
      for (const w of this.syncedWaiters) w();
    });
    this.doc.on('update', (update, origin) => {
      if (origin === this) return;
      const enc = encoding.createEncoder();
      encoding.writeVarUint(enc, MSG_SYNC);
      syncProtocol.writeUpdate(enc, update);
      this.send(encoding.toUint8Array(enc));
    });
    this.awareness.on('update', ({ added, updated, removed }, origin) => {
      if (origin === this) return;
      this.sendAwareness([...added, ...updated, ...removed]);
    });
  }

  send(bytes) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  sendAwareness(clients) {
    const enc = encoding.createEncoder();
    encoding.writeVarUint(enc, MSG_AWARENESS);
    encoding.writeVarUint8Array(enc, awarenessProtocol.encodeAwarenessUpdate(this.awareness, clients));
    this.send(encoding.toUint8Array(enc));
  }

  onMessage(bytes) {
    const dec = decoding.createDecoder(bytes);
    const type = decoding.readVarUint(dec);
    if (type === MSG_SYNC) {
      const enc = encoding.createEncoder();
      encoding.writeVarUint(enc, MSG_SYNC);
      const step = syncProtocol.readSyncMessage(dec, enc, this.doc, this);
      if (encoding.length(enc) > 1) this.send(encoding.toUint8Array(enc));
      if (step === syncProtocol.messageYjsSyncStep2 && !this.synced) {
        this.synced = true;
        this.onStatus('pad.synced');
        for (const w of this.syncedWaiters) w();
        this.syncedWaiters = [];
      }
    } else if (type === MSG_AWARENESS) {
      awarenessProtocol.applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(dec), this);
    }
  }

  /** Resolves once the first SyncStep2 arrived (or the socket closed), at most `ms`. */
  whenSynced(ms = 3000) {
    if (this.synced || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.syncedWaiters.push(resolve);
      setTimeout(resolve, ms);
    });
  }

  /** Mounts the editor in `parent` (once). */
  mount(parent, label) {
    if (this.view) return this.view;
    const undoManager = new Y.UndoManager(this.text);
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        doc: this.text.toString(),
        extensions: [
          keymap.of([...yUndoManagerKeymap, ...defaultKeymap, indentWithTab]),
          drawSelection(),
          highlightActiveLine(),
          markdown(),
          EditorView.lineWrapping,
          EditorView.contentAttributes.of({ 'aria-label': label, 'aria-multiline': 'true' }),
          yCollab(this.text, this.awareness, { undoManager }),
        ],
      }),
    });
    return this.view;
  }

  markdown() {
    return this.text.toString();
  }

  plainText() {
    return toPlainText(this.text.toString());
  }

  destroy() {
    this.awareness.setLocalState(null);
    this.ws.close(1000);
    if (this.view) this.view.destroy();
    this.doc.destroy();
  }
}

/** Markdown → plain text: drops the markup, keeps the words and link targets. */
export function toPlainText(md) {
  return md
    .split('\n')
    .map((line) =>
      line
        .replace(/^\s{0,3}#{1,6}\s+/, '')
        .replace(/^\s{0,3}>\s?/, '')
        .replace(/^(\s*)[-*+]\s+\[( |x|X)\]\s+/, '$1- ')
        .replace(/!?\[([^\]]*)\]\(([^)\s]*)[^)]*\)/g, (_, text, href) => (href ? `${text} (${href})` : text))
        .replace(/(\*\*|__)(.+?)\1/g, '$2')
        .replace(/(\*|_)(.+?)\1/g, '$2')
        .replace(/`([^`]*)`/g, '$1')
        .replace(/~~(.+?)~~/g, '$1'),
    )
    .join('\n');
}
