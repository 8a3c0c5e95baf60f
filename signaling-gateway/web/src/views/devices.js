// Devices during the call: the menus on the mic and camera buttons, the
// switch of camera or microphone without renegotiation (the new track
// replaces the old one on the same sender: RTCRtpSender.replaceTrack), and
// the speaker output (HTMLMediaElement.setSinkId, where the browser has it).
// The settings dialog (views/settings.js) uses the same functions.
import { t } from '../../i18n.js';
import { localTrack, replaceLocalTrack, setError } from '../store.js';
import { $ } from './dom.js';
import { icon, setIcon } from '../icons.js';

const SPEAKER_KEY = 'salon.speaker';
let session = null;
let switching = Promise.resolve();

export const canChooseSpeaker = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;

export function initDevices(s) {
  session = s;
  setIcon($('mic-devices'), 'caret');
  setIcon($('cam-devices'), 'caret');
  for (const [button, menu, kinds] of [
    ['mic-devices', 'mic-menu', ['audioinput', 'audiooutput']],
    ['cam-devices', 'cam-menu', ['videoinput']],
  ]) {
    bindPopover($(button), $(menu), () => renderMenu($(menu), kinds));
  }
  navigator.mediaDevices?.addEventListener?.('devicechange', () => {
    for (const menu of ['mic-menu', 'cam-menu']) if (!$(menu).hidden) $(menu).dispatchEvent(new Event('refresh'));
  });
  Object.assign(window.salonTest ?? {}, {
    devices: () => listDevices(),
    switchDevice: (kind, deviceId) => switchDevice(kind, deviceId),
    currentDevice: (kind) => localTrack(kind)?.getSettings().deviceId ?? null,
  });
}

/**
 * A button that opens `menu` (a popover under it): aria-expanded, Escape
 * and a click elsewhere close it and focus goes back to the button.
 * `render()` (may be async) fills it before it shows.
 */
export function bindPopover(button, menu, render = () => {}) {
  const close = (refocus) => {
    if (menu.hidden) return;
    menu.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    if (refocus) button.focus();
  };
  const open = async () => {
    for (const other of document.querySelectorAll('.popover:not([hidden])')) {
      if (other !== menu) other.dispatchEvent(new Event('close'));
    }
    await render();
    menu.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    // The first control actually shown (items can be hidden by CSS, e.g.
    // the "more" menu's copies of the bar's buttons on a wide screen); the
    // menu itself otherwise, so that Escape still reaches its listener.
    const first = [...menu.querySelectorAll('button:not([hidden]):not(:disabled), select, input')].find(
      (el) => el.offsetParent !== null,
    );
    if (first) first.focus();
    else {
      menu.tabIndex = -1;
      menu.focus();
    }
  };
  button.addEventListener('click', () => (menu.hidden ? open() : close(true)));
  menu.addEventListener('close', () => close(false));
  menu.addEventListener('refresh', () => render());
  menu.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      ev.preventDefault();
      ev.stopPropagation();
      close(true);
    }
  });
  document.addEventListener('pointerdown', (ev) => {
    if (!menu.hidden && !menu.contains(ev.target) && !button.contains(ev.target)) close(false);
  });
  // Focus leaving the menu (Tab past its end) closes it.
  menu.addEventListener('focusout', (ev) => {
    if (ev.relatedTarget && !menu.contains(ev.relatedTarget) && ev.relatedTarget !== button) close(false);
  });
  return { open, close };
}

export async function listDevices() {
  try {
    return (await navigator.mediaDevices.enumerateDevices()).map((d) => ({ kind: d.kind, deviceId: d.deviceId, label: d.label }));
  } catch {
    return [];
  }
}

/** The device in use for `kind` ('audioinput' | 'videoinput' | 'audiooutput'). */
export function currentDeviceId(kind) {
  if (kind === 'audioinput') return localTrack('audio')?.getSettings().deviceId ?? null;
  if (kind === 'videoinput') return localTrack('video')?.getSettings().deviceId ?? null;
  return localStorage.getItem(SPEAKER_KEY) ?? 'default';
}

const TITLES = { audioinput: 'devices.mics', audiooutput: 'devices.speakers', videoinput: 'devices.cameras' };

async function renderMenu(menu, kinds) {
  const devices = await listDevices();
  menu.replaceChildren();
  for (const kind of kinds) {
    if (kind === 'audiooutput' && !canChooseSpeaker) continue;
    const list = devices.filter((d) => d.kind === kind && d.deviceId);
    const title = document.createElement('p');
    title.className = 'menu-title';
    title.id = `${menu.id}-${kind}`;
    title.textContent = t(TITLES[kind]);
    const group = document.createElement('div');
    group.setAttribute('role', 'group');
    group.setAttribute('aria-labelledby', title.id);
    const current = currentDeviceId(kind);
    if (list.length === 0) {
      const p = document.createElement('p');
      p.className = 'help';
      p.textContent = t('prejoin.noDevice');
      group.append(p);
    }
    list.forEach((d, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'device';
      b.dataset.deviceId = d.deviceId;
      b.dataset.kind = kind;
      b.setAttribute('aria-pressed', String(d.deviceId === current));
      b.append(icon(kind === 'videoinput' ? 'cam' : kind === 'audioinput' ? 'mic' : 'headphones'));
      const span = document.createElement('span');
      span.textContent = d.label || `${t(TITLES[kind])} ${i + 1}`;
      b.append(span);
      b.addEventListener('click', async () => {
        await switchDevice(kind, d.deviceId);
        await renderMenu(menu, kinds);
        menu.querySelector(`button[data-device-id="${CSS.escape(d.deviceId)}"]`)?.focus();
      });
      group.append(b);
    });
    menu.append(title, group);
  }
}

/**
 * Uses `deviceId` for `kind` from now on. A camera or microphone: a new
 * track from getUserMedia replaces the old one in our stream and, if we
 * publish, on its sender (no renegotiation); it keeps the old one's on/off
 * state. A speaker: every remote video element plays there.
 */
export function switchDevice(kind, deviceId) {
  switching = switching.then(() => doSwitch(kind, deviceId)).catch((e) => {
    setError(t('devices.failed', { message: e.message }));
  });
  return switching;
}

async function doSwitch(kind, deviceId) {
  if (kind === 'audiooutput') {
    localStorage.setItem(SPEAKER_KEY, deviceId);
    await Promise.all([...document.querySelectorAll('#tiles .tile:not(.self) video')].map((v) => applySink(v)));
    return;
  }
  const media = kind === 'videoinput' ? 'video' : 'audio';
  const old = localTrack(media);
  if (old && old.getSettings().deviceId === deviceId) return;
  const constraints =
    media === 'video'
      ? { video: { deviceId: { exact: deviceId }, width: { ideal: 1280 }, height: { ideal: 720 } } }
      : { audio: { deviceId: { exact: deviceId } } };
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(constraints);
  } catch (e) {
    // Some systems cannot open two cameras at once: the old one stops first.
    if (!old || media !== 'video') throw e;
    old.stop();
    stream = await navigator.mediaDevices.getUserMedia(constraints);
  }
  const track = stream.getTracks()[0];
  if (old) track.enabled = old.enabled;
  const sender = senderFor(media);
  if (sender) await sender.replaceTrack(track);
  replaceLocalTrack(media, track);
  if (old) old.stop();
}

/** Our publish sender of the camera ('video') or the microphone ('audio'), if we publish. */
function senderFor(media) {
  const pc = session?.pub;
  if (!pc || pc.signalingState === 'closed') return null;
  if (media === 'video') return session.camera?.sender ?? null;
  const screen = session.screen?.transceiver;
  const tr = pc.getTransceivers().find((x) => x !== screen && x !== session.camera && (x.sender.track?.kind === 'audio' || x.receiver.track?.kind === 'audio'));
  return tr?.sender ?? null;
}

/** Plays `video`'s sound on the chosen speaker (where the browser can). */
export async function applySink(video) {
  if (!canChooseSpeaker) return;
  const id = localStorage.getItem(SPEAKER_KEY);
  if (!id || video.sinkId === id) return;
  try {
    await video.setSinkId(id);
  } catch {
    // The device is gone: the default output stays.
  }
}
