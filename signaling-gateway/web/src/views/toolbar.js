// The call's toolbar (mic, camera, share, audio-only, panels, invitation
// link, leave), the side panels (participants, chat, pad), the moderators'
// room controls (waiting badge, mute all, lock, end meeting) and the dialogs.
import { t } from '../../i18n.js';
import { store, subscribe, localTrack, isPanelOpen, lastPanel, openPanel as storeOpen, closePanel as storeClose } from '../store.js';
import { $, setButton } from './dom.js';
import { openPad, focusPad, padHasText } from './padpanel.js';

const PANELS = ['people', 'chat', 'pad'];

/**
 * actions: { toggleLocal(kind), toggleShare(), setAudioOnly(on), leave(),
 * moderate(msg), raiseHand(), react(emoji) }.
 */
export function initToolbar(actions) {
  subscribe(({ what }) => {
    if (what.has('panels')) renderPanels();
    if (what.has('reset')) for (const d of ['leave-dialog', 'end-dialog']) if ($(d).open) $(d).close();
    if (what.has('controls')) renderControls();
  });

  $('mic').addEventListener('click', () => actions.toggleLocal('audio'));
  $('cam').addEventListener('click', () => actions.toggleLocal('video'));
  $('share').addEventListener('click', () => actions.toggleShare());
  $('audio-only').addEventListener('click', () => actions.setAudioOnly(!store.audioOnly));
  $('copy-link').addEventListener('click', async () => {
    const url = location.origin + location.pathname;
    try {
      await navigator.clipboard.writeText(url);
    } catch {
      // No clipboard permission: the status line shows the link to copy by hand.
    }
    $('status').textContent = t('copy.done', { url });
  });
  $('leave').addEventListener('click', () => requestLeave(actions.leave));
  $('leave-confirm').addEventListener('click', () => {
    $('leave-dialog').close();
    actions.leave();
  });
  $('leave-cancel').addEventListener('click', () => $('leave-dialog').close());

  for (const p of PANELS) {
    $('toggle-' + p).addEventListener('click', () => (isPanelOpen(p) ? closePanel(p) : openPanel(p)));
    $('close-' + p).addEventListener('click', () => closePanel(p));
  }
  // Escape closes the panel opened last.
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && lastPanel() && !$('leave-dialog').open && !$('end-dialog').open) {
      ev.preventDefault();
      closePanel();
    }
  });

  $('lobby-badge').addEventListener('click', () => {
    if (!isPanelOpen('people')) openPanel('people');
    $('waiting').querySelector('button')?.focus();
  });
  $('mute-all').addEventListener('click', () => actions.moderate({ type: 'mute-all' }));
  $('allow-unmute').addEventListener('click', () => actions.moderate({ type: 'allow-unmute' }));
  $('lock').addEventListener('click', () => actions.moderate({ type: 'lock', on: !store.locked }));
  $('end-meeting').addEventListener('click', () => {
    $('end-dialog').showModal();
    $('end-cancel').focus();
  });
  $('end-confirm').addEventListener('click', () => {
    $('end-dialog').close();
    actions.moderate({ type: 'end-meeting' });
  });
  $('end-cancel').addEventListener('click', () => $('end-dialog').close());

  // gestures (part A): the hand and the reactions menu.
  $('btn-hand').addEventListener('click', () => actions.raiseHand());
  const menu = $('reactions-menu');
  const showMenu = (open) => {
    menu.hidden = !open;
    $('btn-reactions').setAttribute('aria-expanded', String(open));
  };
  $('btn-reactions').addEventListener('click', () => showMenu(menu.hidden));
  for (const b of menu.querySelectorAll('[data-emoji]')) b.addEventListener('click', () => actions.react(b.dataset.emoji));
  menu.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Escape') return;
    ev.stopPropagation();
    showMenu(false);
    $('btn-reactions').focus();
  });
}

/** Last one out: the pad dies with the meeting, so its export is offered first. */
async function requestLeave(leave) {
  if (store.names.size === 0 && store.padToken) {
    await openPad();
    if (padHasText()) {
      $('leave-dialog').showModal();
      $('leave-export-md').focus();
      return;
    }
  }
  leave();
}

export function focusMic() {
  $('mic').focus();
}

function renderControls() {
  const audio = localTrack('audio');
  const video = localTrack('video');
  const micOff = !audio || !audio.enabled;
  const camOff = !video || !video.enabled;
  setButton($('mic'), micOff ? t('mic.unmute') : t('mic.mute'), micOff);
  $('mic').disabled = !audio;
  setButton($('cam'), camOff ? t('cam.on') : t('cam.off'), camOff);
  $('cam').disabled = !video;
  setButton($('share'), store.sharing ? t('share.stop') : t('share.start'), store.sharing);
  $('share').disabled = !navigator.mediaDevices?.getDisplayMedia;
  setButton($('audio-only'), store.audioOnly ? t('audioOnly.off') : t('audioOnly.on'), store.audioOnly);
  const count = store.names.size + 1;
  setButton($('toggle-people'), t('people.count', { n: count }));
  setButton($('toggle-chat'), store.unread ? t('chat.count', { n: store.unread }) : t('panel.chat'));
  setButton($('toggle-pad'), t('panel.pad'));
  for (const p of PANELS) {
    $('toggle-' + p).setAttribute('aria-expanded', String(isPanelOpen(p)));
  }
  setButton($('btn-hand'), store.myHandRaised ? t('hand.lower') : t('hand.raise'), store.myHandRaised);
  setButton($('copy-link'), t('copy.link'));
  setButton($('leave'), t('leave'));
  // Moderators: the waiting-room badge and the room-level controls.
  const mod = store.role === 'moderator';
  const waiting = mod ? store.waiting.size : 0;
  const badge = $('lobby-badge');
  badge.hidden = waiting === 0;
  badge.textContent = t('waiting.badge', { n: waiting });
  badge.setAttribute('aria-label', t('waiting.badgeLabel', { n: waiting }));
  $('mod-room').hidden = !mod;
  setButton($('lock'), store.locked ? t('mod.unlock') : t('mod.lock'), store.locked);
  $('locked-badge').hidden = !store.locked;
}

function renderPanels() {
  for (const p of PANELS) $('panel-' + p).hidden = !isPanelOpen(p);
  $('panel').hidden = store.panels.length === 0;
}

/** Opens a side panel (chat and pad can be open together) and moves focus into it. */
export function openPanel(which) {
  storeOpen(which);
  if (which === 'chat') {
    $('chat-text').focus();
  } else if (which === 'pad') {
    openPad().then(() => focusPad());
  } else {
    $('people').querySelector('button')?.focus();
  }
}

/** Closes a side panel (by default the one opened last); focus goes back to its button. */
export function closePanel(which = lastPanel()) {
  if (!which) return;
  storeClose(which);
  $('toggle-' + which).focus();
}
