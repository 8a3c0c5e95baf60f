// The call's bottom bar: round icon buttons with a short visible label
// and the full action as accessible name and tooltip (mic and camera with
// their device menus, share, audio-only, raise hand, reactions, chat,
// participants, pad, "more", leave). It never wraps: on narrower screens
// the lower-priority actions leave the bar for the "more" menu (app.css,
// .tier1/.tier2 and their .menu-tier* twins). Also the side panels
// (participants, chat, pad), the moderators' room controls (waiting badge,
// mute all, lock, end meeting) and the dialogs.
import { t } from '../../i18n.js';
import { store, subscribe, localTrack, isPanelOpen, lastPanel, openPanel as storeOpen, closePanel as storeClose } from '../store.js';
import { $, setButton } from './dom.js';
import { openPad, focusPad, padHasText } from './padpanel.js';
import { icon, setIcon } from '../icons.js';
import { bindPopover } from './devices.js';

const PANELS = ['people', 'chat', 'pad'];
// The reactions offered (part A shows and announces them).
export const REACTIONS = [
  ['👍', 'reaction.thumbsUp'],
  ['👏', 'reaction.clap'],
  ['😂', 'reaction.laugh'],
  ['😮', 'reaction.surprised'],
  ['❤️', 'reaction.heart'],
  ['🎉', 'reaction.party'],
];

let actions = null;

/**
 * actions: { toggleLocal(kind), toggleShare(), setAudioOnly(on), leave(),
 * moderate(msg), raiseHand?(), react?(emoji) }; without raiseHand or react
 * their buttons stay hidden.
 */
export function initToolbar(a) {
  actions = a;
  subscribe(({ what }) => {
    if (what.has('panels')) renderPanels();
    if (what.has('reset')) for (const d of ['leave-dialog', 'end-dialog', 'settings-dialog']) if ($(d).open) $(d).close();
    // Part A's hand state (store.myHandRaised) may come with 'controls' or 'hands'.
    if (what.has('controls') || what.has('local') || what.has('hands') || what.has('hand')) renderControls();
  });
  for (const id of ['close-people', 'close-chat', 'close-pad', 'settings-close']) setIcon($(id), 'close');
  for (const el of document.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);

  $('mic').addEventListener('click', () => actions.toggleLocal('audio'));
  $('cam').addEventListener('click', () => actions.toggleLocal('video'));
  $('share').addEventListener('click', () => actions.toggleShare());
  $('audio-only').addEventListener('click', () => actions.setAudioOnly(!store.audioOnly));
  $('copy-link').addEventListener('click', async () => {
    closeMore();
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
    const dialogOpen = ['leave-dialog', 'end-dialog', 'settings-dialog'].some((d) => $(d).open);
    if (ev.key === 'Escape' && lastPanel() && !dialogOpen) {
      ev.preventDefault();
      closePanel();
    }
  });

  // Raise hand and reactions: only with the actions that carry them out.
  $('btn-hand').hidden = typeof actions.raiseHand !== 'function';
  $('more-hand').hidden = $('btn-hand').hidden;
  $('btn-hand').addEventListener('click', () => actions.raiseHand?.());
  $('more-hand').addEventListener('click', () => {
    closeMore();
    actions.raiseHand?.();
  });
  $('btn-reactions').hidden = typeof actions.react !== 'function';
  $('more-reactions').hidden = $('btn-reactions').hidden;
  $('more-reactions').setAttribute('aria-label', t('reactions.menu'));
  const reactions = bindPopover($('btn-reactions'), $('reactions-menu'));
  for (const [menu, close] of [
    [$('reactions-menu'), () => reactions.close(true)],
    [$('more-reactions'), () => closeMore()],
  ]) {
    for (const [emoji, key] of REACTIONS) {
      const b = document.createElement('button');
      b.type = 'button';
      b.dataset.emoji = emoji;
      b.textContent = emoji;
      b.setAttribute('aria-label', t(key));
      b.title = t(key);
      b.addEventListener('click', () => {
        actions.react?.(emoji);
        close();
      });
      menu.append(b);
    }
  }

  // "More": layout, audio-only, invitation link, settings, and on narrow
  // screens the actions the bar has no room for.
  more = bindPopover($('more'), $('more-menu'));
  $('more-share').addEventListener('click', () => {
    closeMore();
    actions.toggleShare();
  });
  $('more-audio-only').addEventListener('click', () => {
    closeMore();
    actions.setAudioOnly(!store.audioOnly);
  });
  for (const p of ['people', 'pad']) {
    $('more-' + p).addEventListener('click', () => {
      closeMore();
      if (isPanelOpen(p)) closePanel(p);
      else openPanel(p);
    });
  }
  for (const [id, name] of [
    ['more-share', 'share'],
    ['more-hand', 'hand'],
    ['more-people', 'people'],
    ['more-pad', 'pad'],
    ['more-audio-only', 'headphones'],
    ['copy-link', 'link'],
    ['open-settings', 'settings'],
  ]) {
    $(id).append(icon(name), document.createElement('span'));
  }

  // The bar is a toolbar: Left/Right arrows (and Home/End) move between its
  // buttons, as well as Tab.
  document.querySelector('.controls').addEventListener('keydown', (ev) => {
    if (!['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(ev.key) || ev.target.closest('.popover')) return;
    const buttons = [...document.querySelectorAll('.controls button')].filter(
      (b) => !b.closest('.popover') && b.offsetParent !== null && !b.disabled,
    );
    const i = buttons.indexOf(ev.target);
    if (i < 0) return;
    ev.preventDefault();
    const next = { ArrowLeft: i - 1, ArrowRight: i + 1, Home: 0, End: buttons.length - 1 }[ev.key];
    buttons[(next + buttons.length) % buttons.length].focus();
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
  renderControls();
}

let more = null;

function closeMore() {
  more?.close(false);
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

/** A bar button: its icon, its short visible label, its full name (aria-label and tooltip). */
function setTool(el, iconName, label, name, pressed) {
  setIcon(el, iconName);
  el.querySelector('.label').textContent = label;
  el.setAttribute('aria-label', name);
  el.title = name;
  if (pressed !== undefined) el.setAttribute('aria-pressed', String(pressed));
}

/** A "more" menu entry: its text (the icon is set once). */
function setItem(el, text, pressed) {
  el.querySelector('span').textContent = text;
  if (pressed !== undefined) el.setAttribute('aria-pressed', String(pressed));
}

function renderControls() {
  const audio = localTrack('audio');
  const video = localTrack('video');
  const micOff = !audio || !audio.enabled;
  const camOff = !video || !video.enabled;
  setTool($('mic'), micOff ? 'micOff' : 'mic', t('tool.mic'), micOff ? t('mic.unmute') : t('mic.mute'), micOff);
  $('mic').disabled = !audio;
  setTool($('cam'), camOff ? 'camOff' : 'cam', t('tool.cam'), camOff ? t('cam.on') : t('cam.off'), camOff);
  $('cam').disabled = !video;
  const canShare = Boolean(navigator.mediaDevices?.getDisplayMedia);
  setTool($('share'), 'share', store.sharing ? t('tool.stopShare') : t('tool.share'), store.sharing ? t('share.stop') : t('share.start'), store.sharing);
  $('share').disabled = !canShare;
  setItem($('more-share'), store.sharing ? t('share.stop') : t('share.start'), store.sharing);
  $('more-share').disabled = !canShare;
  const audioOnlyName = store.audioOnly ? t('audioOnly.off') : t('audioOnly.on');
  setTool($('audio-only'), 'headphones', store.audioOnly ? t('tool.videos') : t('tool.audioOnly'), audioOnlyName, store.audioOnly);
  setItem($('more-audio-only'), audioOnlyName, store.audioOnly);
  const raised = store.myHandRaised === true;
  setTool($('btn-hand'), 'hand', t('tool.hand'), raised ? t('hand.lower') : t('hand.raise'), raised);
  setItem($('more-hand'), raised ? t('hand.lower') : t('hand.raise'), raised);
  setTool($('btn-reactions'), 'smile', t('tool.reactions'), t('reactions.menu'));
  const count = store.names.size + 1;
  setTool($('toggle-people'), 'people', t('panel.people'), t('people.count', { n: count }));
  $('people-count').textContent = String(count);
  setItem($('more-people'), t('people.count', { n: count }));
  setTool($('toggle-chat'), 'chat', t('panel.chat'), store.unread ? t('chat.count', { n: store.unread }) : t('panel.chat'));
  $('chat-unread').hidden = !store.unread;
  $('chat-unread').textContent = String(store.unread);
  setTool($('toggle-pad'), 'pad', t('panel.pad'), t('panel.pad'));
  setItem($('more-pad'), t('panel.pad'));
  for (const p of PANELS) {
    $('toggle-' + p).setAttribute('aria-expanded', String(isPanelOpen(p)));
  }
  for (const p of ['people', 'pad']) $('more-' + p).setAttribute('aria-expanded', String(isPanelOpen(p)));
  setTool($('more'), 'more', t('tool.more'), t('tool.moreName'));
  setItem($('copy-link'), t('copy.link'));
  setItem($('open-settings'), t('settings.title'));
  setTool($('leave'), 'leave', t('leave'), t('leave'));
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
    ($('people').querySelector('button') ?? $('close-people')).focus();
  }
}

/** Closes a side panel (by default the one opened last); focus goes back to its button. */
export function closePanel(which = lastPanel()) {
  if (!which) return;
  storeClose(which);
  // Back to the button that opened it, or to "more" when the bar has no room for it.
  const button = $('toggle-' + which);
  (button.offsetParent !== null ? button : $('more')).focus();
}
