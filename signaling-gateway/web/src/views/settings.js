// The settings dialog: camera, microphone and speaker (views/devices.js),
// the data saver (received videos capped at a low layer: views/layers.js)
// and the language. Focus goes into the dialog and back to the button that
// opened it; Escape closes it (the <dialog> element's own behaviour).
import { lang } from '../../i18n.js';
import { $ } from './dom.js';
import { listDevices, currentDeviceId, switchDevice, canChooseSpeaker } from './devices.js';
import { scheduleConstraints, dataSaver } from './layers.js';
import { t } from '../../i18n.js';

const SAVER_KEY = 'salon.dataSaver';

export function initSettings() {
  const dialog = $('settings-dialog');
  let opener = null;
  $('open-settings').addEventListener('click', async () => {
    opener = $('more');
    $('more-menu').dispatchEvent(new Event('close'));
    await fill();
    dialog.showModal();
    $('set-camera').focus();
  });
  $('settings-close').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => opener?.focus());
  for (const [select, kind] of [
    ['set-camera', 'videoinput'],
    ['set-mic', 'audioinput'],
    ['set-speaker', 'audiooutput'],
  ]) {
    $(select).addEventListener('change', () => switchDevice(kind, $(select).value));
  }
  $('set-datasaver').addEventListener('change', () => {
    localStorage.setItem(SAVER_KEY, $('set-datasaver').checked ? '1' : '0');
    scheduleConstraints();
  });
  $('set-lang').value = lang;
  $('set-lang').addEventListener('change', () => {
    // The page is reloaded in the other language; a resume token in this
    // tab's session storage takes our place back (docs/client.md, Reconnect).
    const q = new URLSearchParams(location.search);
    q.set('lang', $('set-lang').value);
    location.search = q.toString();
  });
  Object.assign(window.salonTest ?? {}, { dataSaver: () => dataSaver() });
}

async function fill() {
  const devices = await listDevices();
  const fillOne = (select, kind) => {
    const list = devices.filter((d) => d.kind === kind && d.deviceId);
    select.replaceChildren();
    const current = currentDeviceId(kind);
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
      o.selected = d.deviceId === current;
      select.append(o);
    });
  };
  fillOne($('set-camera'), 'videoinput');
  fillOne($('set-mic'), 'audioinput');
  $('set-speaker-row').hidden = !canChooseSpeaker;
  if (canChooseSpeaker) fillOne($('set-speaker'), 'audiooutput');
  $('set-datasaver').checked = dataSaver();
}
