// The WebSocket signaling client (protocol: docs/signaling.md).

export class Signaling {
  constructor() {
    this.handlers = new Map();
    this.ws = null;
  }

  /** Registers a handler for a server message type ('open' and 'close' too). */
  on(type, fn) {
    this.handlers.set(type, fn);
  }

  emit(type, msg) {
    const fn = this.handlers.get(type);
    if (fn) fn(msg);
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    ws.addEventListener('open', () => this.emit('open'));
    ws.addEventListener('close', (ev) => this.emit('close', ev));
    ws.addEventListener('message', (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && typeof msg.type === 'string') this.emit(msg.type, msg);
    });
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  close() {
    if (this.ws) this.ws.close(1000);
  }
}
