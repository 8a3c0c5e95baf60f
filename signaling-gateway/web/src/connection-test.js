// The connection-test page (/test): camera and microphone preview with a
// level meter and device pickers, then network checks to the media plane,
// each OK or failed with what to ask the IT department.
//
// Each network check opens its own signaling socket, sends `probe` with the
// offer of a fresh RTCPeerConnection (one silent audio track), and gets
// mediad's answer for a hidden, short-lived transport that is in no
// meeting (docs/signaling.md, "Connectivity probe"). The answer's
// candidates are filtered to the one path under test (UDP host, or ICE-TCP
// passive); the TURN checks force `iceTransportPolicy: 'relay'` through one
// TURN URL. A check passes when the connection (ICE, then DTLS) reaches
// `connected` within CHECK_MS.
import { applyI18n, t, lang } from '../i18n.js';
import { fillDeviceSelects } from './device-select.js';

const CHECK_MS = 8000;
const $ = (id) => document.getElementById(id);

// ---- Camera and microphone ---------------------------------------------------

let stream = null;
let meterCtx = null;
let meterTimer = 0;

async function startPreview(cameraId, micId) {
  for (const tr of stream?.getTracks() ?? []) tr.stop();
  stream = null;
  $('media-error').textContent = '';
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: micId ? { deviceId: { exact: micId } } : true,
      video: cameraId ? { deviceId: { exact: cameraId } } : true,
    });
  } catch (e) {
    console.warn('getUserMedia failed', e);
    $('media-error').textContent = t('media.denied');
  }
  $('preview').srcObject = stream;
  startMeter();
  await fillDevices();
}

/** The microphone's level (RMS of the waveform) on the meter, 10 times a second. */
function startMeter() {
  clearInterval(meterTimer);
  const track = stream?.getAudioTracks()[0];
  if (!track) {
    $('mic-level').value = 0;
    return;
  }
  meterCtx ??= new AudioContext();
  const source = meterCtx.createMediaStreamSource(new MediaStream([track]));
  const analyser = meterCtx.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  meterTimer = setInterval(() => {
    if (meterCtx.state === 'suspended') meterCtx.resume().catch(() => {});
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    // RMS of full-scale speech is about 0.1–0.3: stretch it over the meter.
    $('mic-level').value = Math.min(1, Math.sqrt(sum / buf.length) * 4);
  }, 100);
}

async function fillDevices() {
  await fillDeviceSelects($('camera-select'), $('mic-select'), {
    camera: stream?.getVideoTracks()[0]?.getSettings().deviceId,
    mic: stream?.getAudioTracks()[0]?.getSettings().deviceId,
  });
}

// ---- Network checks ------------------------------------------------------------

/** A silent audio track: the probe offer needs one, the microphone may be absent. */
function silentTrack() {
  const ctx = new AudioContext();
  const dest = ctx.createMediaStreamDestination();
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  gain.gain.value = 0;
  osc.connect(gain).connect(dest);
  osc.start();
  const track = dest.stream.getAudioTracks()[0];
  return { track, close: () => ctx.close().catch(() => {}) };
}

/** Opens a signaling socket; resolves once open. */
function openSocket() {
  return new Promise((resolve, reject) => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    ws.addEventListener('open', () => resolve(ws), { once: true });
    ws.addEventListener('error', () => reject(new Error('socket')), { once: true });
  });
}

/** The first `probe-answer` or `error` on `ws`, or null after `ms`. */
function probeReply(ws, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    ws.addEventListener('message', (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg?.type === 'probe-answer' || msg?.type === 'error') {
        clearTimeout(timer);
        resolve(msg);
      }
    });
    ws.addEventListener('close', () => {
      clearTimeout(timer);
      resolve(null);
    });
  });
}

/** The host candidates of an SDP: [{ protocol, address, port, line }]. */
function candidates(sdp) {
  const out = [];
  for (const line of sdp.split(/\r?\n/)) {
    const m = /^a=candidate:\S+ \d+ (udp|tcp) \d+ (\S+) (\d+) typ host/i.exec(line);
    if (m) out.push({ protocol: m[1].toLowerCase(), address: m[2], port: Number(m[3]), line });
  }
  return out;
}

/**
 * The `protocol` candidates of `c` as one { address, port }: every address
 * (a dual-stack server announces an IPv4 and an IPv6 one, and the user's
 * network may have only one of the two families), the first one's port.
 */
function hostOf(c, protocol) {
  const of = c.filter((x) => x.protocol === protocol);
  if (of.length === 0) return null;
  return { address: [...new Set(of.map((x) => x.address))].join(', '), port: of[0].port };
}

/** `sdp` with only the candidates of `protocol` left. */
function keepOnly(sdp, protocol) {
  return sdp
    .split(/\r\n/)
    .filter((line) => {
      if (!line.startsWith('a=candidate:')) return true;
      const c = candidates(line)[0];
      return c?.protocol === protocol;
    })
    .join('\r\n');
}

/** Waits for `connected` (true), `failed` or the deadline (false). */
function connected(pc, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const look = () => {
      if (pc.connectionState === 'connected') {
        clearTimeout(timer);
        resolve(true);
      } else if (pc.connectionState === 'failed' || pc.connectionState === 'closed') {
        clearTimeout(timer);
        resolve(false);
      }
    };
    pc.addEventListener('connectionstatechange', look);
    look();
  });
}

/**
 * One check: `path` is 'udp' or 'tcp' (direct to mediad, remote candidates
 * filtered), or { turn: iceServer } (relay only). Resolves to
 * { ok, serverError, answer, iceServers, ms }.
 */
async function runCheck(path) {
  const started = performance.now();
  const config = path.turn ? { iceServers: [path.turn], iceTransportPolicy: 'relay' } : {};
  const pc = new RTCPeerConnection(config);
  const silent = silentTrack();
  let ws = null;
  try {
    pc.addTransceiver(silent.track, { direction: 'sendonly' });
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    ws = await openSocket();
    const reply = probeReply(ws, CHECK_MS);
    ws.send(JSON.stringify({ type: 'probe', sdp: offer.sdp }));
    const msg = await reply;
    if (msg?.type !== 'probe-answer') {
      return { ok: false, serverError: msg?.message ?? msg?.code ?? 'timeout', answer: null, iceServers: [] };
    }
    const sdp = keepOnly(msg.sdp, path.turn ? 'udp' : path);
    await pc.setRemoteDescription({ type: 'answer', sdp });
    const ok = await connected(pc, CHECK_MS);
    return { ok, serverError: null, answer: msg.sdp, iceServers: msg.ice_servers ?? [], ms: Math.round(performance.now() - started) };
  } catch (e) {
    console.warn('connection check failed', e);
    return { ok: false, serverError: String(e?.message ?? e), answer: null, iceServers: [] };
  } finally {
    pc.close();
    silent.close();
    ws?.close(1000);
  }
}

/** The TURN server of `servers` whose URLs match `want`, with only those URLs. */
function turnServer(servers, want) {
  for (const s of servers) {
    const urls = (Array.isArray(s.urls) ? s.urls : [s.urls]).filter(want);
    if (urls.length > 0) return { urls, username: s.username, credential: s.credential };
  }
  return null;
}
const isTurnUdp = (u) => /^turn:/i.test(u) && !/transport=tcp/i.test(u);
const isTurns = (u) => /^turns:/i.test(u);

/** `turn:host:port?transport=udp` → "host port port". */
function describeTurn(url) {
  const m = /^turns?:([^?]+?)(?::(\d+))?(?:\?.*)?$/i.exec(url);
  if (!m) return url;
  const port = m[2] ?? (isTurns(url) ? '443' : '3478');
  return t('test.hostPort', { host: m[1], port });
}

function show(id, state, fix = '') {
  const li = $(id);
  li.dataset.state = state;
  li.querySelector('.check-result').textContent = t(`test.state.${state}`);
  li.querySelector('.check-fix').textContent = fix;
}

let running = false;

async function runAll() {
  if (running) return;
  running = true;
  $('rerun').disabled = true;
  const ids = ['check-udp', 'check-tcp', 'check-turn-udp', 'check-turn-tls'];
  for (const id of ids) show(id, 'pending');
  $('summary').dataset.state = 'running';
  $('summary').textContent = t('test.summary.running');

  const results = {};
  let servers = [];
  let udpAddr = null;
  let tcpAddr = null;
  const serverFix = (r) => t('test.fix.server', { message: r.serverError });

  show('check-udp', 'running');
  const udp = await runCheck('udp');
  servers = udp.iceServers;
  if (udp.answer) {
    const c = candidates(udp.answer);
    udpAddr = hostOf(c, 'udp');
    tcpAddr = hostOf(c, 'tcp');
  }

  show('check-tcp', 'running');
  const tcp = await runCheck('tcp');
  if (tcp.answer) {
    servers = tcp.iceServers;
    tcpAddr = hostOf(candidates(tcp.answer), 'tcp') ?? tcpAddr;
  }
  results.udp = udp.ok;
  // No TCP candidate (`--media-tcp-port off`): not configured, no failure.
  results.tcp = tcp.ok || tcp.serverError || tcpAddr !== null ? tcp.ok : null;
  if (udp.ok) show('check-udp', 'ok');
  else if (udp.serverError) show('check-udp', 'failed', serverFix(udp));
  else
    show(
      'check-udp',
      'failed',
      tcpAddr
        ? t('test.fix.udp', { address: udpAddr?.address ?? '', port: udpAddr?.port ?? '', tcpPort: tcpAddr.port })
        : t('test.fix.udpOnly', { address: udpAddr?.address ?? '', port: udpAddr?.port ?? '' }),
    );
  if (tcp.ok) show('check-tcp', 'ok');
  else if (tcp.serverError) show('check-tcp', 'failed', serverFix(tcp));
  else if (!tcpAddr) show('check-tcp', 'unconfigured');
  else show('check-tcp', 'failed', t('test.fix.tcp', { address: tcpAddr.address, port: tcpAddr.port }));

  for (const [id, key, want] of [
    ['check-turn-udp', 'turnUdp', isTurnUdp],
    ['check-turn-tls', 'turnTls', isTurns],
  ]) {
    const server = turnServer(servers, want);
    if (!server) {
      show(id, 'unconfigured');
      results[key] = null;
      continue;
    }
    show(id, 'running');
    const r = await runCheck({ turn: server });
    results[key] = r.ok;
    if (r.iceServers.length > 0) servers = r.iceServers;
    if (r.ok) show(id, 'ok');
    else if (r.serverError) show(id, 'failed', serverFix(r));
    else show(id, 'failed', t(`test.fix.${key}`, { server: server.urls.map(describeTurn).join(', ') }));
  }

  const checked = Object.values(results).filter((v) => v !== null);
  const any = checked.some((v) => v);
  const all = checked.every((v) => v);
  const state = all ? 'ok' : any ? 'partial' : 'failed';
  $('summary').dataset.state = state;
  $('summary').textContent = t(`test.summary.${state}`);
  window.salonTest = { results, done: true };
  running = false;
  $('rerun').disabled = false;
}

// ---- Page ------------------------------------------------------------------------

function languageLink() {
  const other = lang === 'fr' ? 'en' : 'fr';
  const a = $('lang-switch');
  const q = new URLSearchParams(location.search);
  q.set('lang', other);
  a.href = '?' + q.toString();
  a.textContent = t('lang.other');
  a.lang = other;
}

applyI18n();
document.title = `${t('test.title')} · Salon`;
languageLink();
const home = new URLSearchParams();
if (new URLSearchParams(location.search).has('lang')) home.set('lang', lang);
$('back-home').href = '/' + (home.size > 0 ? '?' + home.toString() : '');
window.salonTest = { done: false };
for (const id of ['camera-select', 'mic-select']) {
  $(id).addEventListener('change', () => startPreview($('camera-select').value, $('mic-select').value));
}
$('rerun').addEventListener('click', () => runAll());
await startPreview();
runAll();
