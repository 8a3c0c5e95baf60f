// The pre-join screen's and the connection test's camera and microphone
// pickers: one <option> per device of a kind ("no device" when there is
// none), the one in use selected.
import { t } from '../i18n.js';

/** Fills `cameraSelect` and `micSelect`; `current` holds the device ids in use. */
export async function fillDeviceSelects(cameraSelect, micSelect, current = {}) {
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return;
  }
  const fill = (select, kind, currentId) => {
    select.replaceChildren();
    const list = devices.filter((d) => d.kind === kind);
    if (list.length === 0) {
      const o = document.createElement('option');
      o.value = '';
      o.textContent = t('prejoin.noDevice');
      select.append(o);
    }
    list.forEach((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${kind} ${i + 1}`;
      if (d.deviceId === currentId) o.selected = true;
      select.append(o);
    });
  };
  fill(cameraSelect, 'videoinput', current.camera);
  fill(micSelect, 'audioinput', current.mic);
}
