// Pre-join: name, camera and microphone choice with a preview, joining with
// the camera or the mic off.
import { t } from '../../i18n.js';
import { store, subscribe, setLocalStream, setLocalEnabled, localTrack, setError } from '../store.js';
import { $ } from './dom.js';
import { fillDeviceSelects } from '../device-select.js';

const NAME_KEY = 'salon.name';
let previewReady = Promise.resolve();

/** Resolves once the camera/mic preview asked for last is there (or failed). */
export function whenPreviewReady() {
  return previewReady;
}

/** actions: { join(name) }. */
export function initPrejoin(actions) {
  subscribe(({ what }) => {
    if (what.has('local') && $('preview').srcObject !== store.local) $('preview').srcObject = store.local;
  });
  previewReady = startPreview();
  for (const id of ['camera-select', 'mic-select']) {
    $(id).addEventListener('change', () => {
      previewReady = startPreview($('camera-select').value, $('mic-select').value);
    });
  }
  // The connection test, in the page's language when the address forces one.
  const forced = new URLSearchParams(location.search).get('lang');
  if (forced) $('prejoin-test-link').href = '/test?lang=' + encodeURIComponent(forced);
  const nameInput = $('name');
  nameInput.value = localStorage.getItem(NAME_KEY) ?? '';
  nameInput.focus();

  $('join-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = nameInput.value.trim();
    // Same rule as the server: 1..=64 characters, no control characters.
    if ([...name].length < 1 || [...name].length > 64 || /\p{Cc}/u.test(name)) {
      setError(t('prejoin.badName'));
      nameInput.setAttribute('aria-invalid', 'true');
      return;
    }
    nameInput.removeAttribute('aria-invalid');
    setError('');
    localStorage.setItem(NAME_KEY, name);
    $('join').disabled = true;
    await previewReady;
    if (store.local) {
      if (localTrack('video') && $('join-cam-off').checked) setLocalEnabled('video', false);
      if (localTrack('audio') && $('join-mic-off').checked) setLocalEnabled('audio', false);
    }
    actions.join(name);
  });
}

/** A join (or a resume) is under way: the form waits. */
export function joinPending() {
  $('join').disabled = true;
}

/** A refused join: the form can be sent again. */
export function joinFailed() {
  $('join').disabled = false;
}

async function getMedia(cameraId, micId) {
  return navigator.mediaDevices.getUserMedia({
    audio: micId ? { deviceId: { exact: micId } } : true,
    video: {
      ...(cameraId ? { deviceId: { exact: cameraId } } : {}),
      width: { ideal: 1280 },
      height: { ideal: 720 },
    },
  });
}

async function fillDevices() {
  await fillDeviceSelects($('camera-select'), $('mic-select'), {
    camera: localTrack('video')?.getSettings().deviceId,
    mic: localTrack('audio')?.getSettings().deviceId,
  });
}

async function startPreview(cameraId, micId) {
  try {
    setLocalStream(await getMedia(cameraId, micId));
  } catch (e) {
    console.warn('getUserMedia failed', e);
    setError(t('media.denied'));
  }
  await fillDevices();
}
