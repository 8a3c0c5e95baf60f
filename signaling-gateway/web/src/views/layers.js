// Layers: the height each remote video is shown at, measured in the page and
// handed to the session, which sends `video-constraints` when it changes.
import { store } from '../store.js';

let session = null;
let timer = null;

const SAVER_KEY = 'salon.dataSaver';
// Data saver (the settings dialog): cameras at most the lowest layer's
// height, screen shares at most 720 lines (text stays readable).
const SAVER_CAMERA = 180;
const SAVER_SCREEN = 720;

/** Whether the data saver is on (kept in localStorage). */
export function dataSaver() {
  try {
    return localStorage.getItem(SAVER_KEY) === '1';
  } catch {
    return false;
  }
}

export function initLayers(s) {
  session = s;
}

/** The rendered height (device pixels) of the element showing `track`; 0 if none shows it. */
function renderedHeight(track) {
  if (store.audioOnly) return 0;
  for (const video of document.querySelectorAll('#tiles video, #stage-video')) {
    const stream = video.srcObject;
    if (!stream || !stream.getVideoTracks().includes(track)) continue;
    const h = video.getBoundingClientRect().height;
    if (!(h > 0) || video.closest('[hidden]')) return 0;
    const px = Math.min(65535, Math.round(h * (window.devicePixelRatio || 1)));
    if (!dataSaver()) return px;
    return Math.min(px, video.id === 'stage-video' ? SAVER_SCREEN : SAVER_CAMERA);
  }
  return 0;
}

/** Track key (the SDP's msid track id) -> max_height for every live remote video track. */
function currentConstraints() {
  const out = new Map();
  for (const [trackKey, { track }] of store.remoteTracks) {
    if (track.kind !== 'video' || track.readyState !== 'live') continue;
    if (!session.isReceiving(trackKey)) continue;
    out.set(trackKey, renderedHeight(track));
  }
  return out;
}

/** Debounced (300 ms): the session sends `video-constraints` when a value changed. */
export function scheduleConstraints() {
  if (timer) clearTimeout(timer);
  timer = setTimeout(sendConstraints, 300);
}

/** Sends the constraints now (no debounce): the test hook's fixed tile height. */
export function flushConstraints() {
  if (timer) clearTimeout(timer);
  sendConstraints();
}

function sendConstraints() {
  timer = null;
  if (!store.joined || !session) return;
  session.sendConstraints(currentConstraints());
}
