// Notifications while the tab is hidden: the count of the partner's unread chats and
// questions in the title and on the installed app's badge, and, once switched on (the browser
// asks only then), a system notification for each, except a chat the partner sent silently;
// switched on, this device also subscribes to Web Push (push.js) for when Duet is closed.
// Also the composer's "silent send" switch, which makes the next chat arrive without a
// notification.

import { t } from '../i18n.js';
import { $ } from './dom.js';
import { partnerName, state } from './state.js';
import { toast } from './ui.js';
import { pushActive, subscribePush, unsubscribePush } from './push.js';

const KEY = 'duet.notify';
let unread = 0;
let baseTitle = null;
let silentNext = false;

function wanted() {
  return localStorage.getItem(KEY) === 'on';
}

function allowed() {
  return 'Notification' in window && Notification.permission === 'granted';
}

export function renderNotifyToggle() {
  const on = wanted() && allowed();
  $('notify-toggle').setAttribute('aria-pressed', String(on));
  $('notify-label').textContent = t(on ? 'notify.on' : 'notify.off');
  $('silent-toggle').setAttribute('aria-pressed', String(silentNext));
}

async function toggle() {
  if (wanted()) {
    localStorage.setItem(KEY, 'off');
    renderNotifyToggle();
    unsubscribePush();
    return;
  }
  if (!('Notification' in window)) {
    toast(t('notify.unsupported'));
    return;
  }
  let permission = Notification.permission;
  if (permission === 'default') permission = await Notification.requestPermission();
  if (permission === 'granted') {
    localStorage.setItem(KEY, 'on');
    subscribePush();
  } else {
    toast(t('notify.denied'));
  }
  renderNotifyToggle();
}

/** Entering the chat with notifications on: this login subscribes this device (again). */
export function resumePush() {
  if (wanted() && allowed()) subscribePush();
}

/** Whether the chat being sent goes silently; the switch turns itself off after one. */
export function takeSilent() {
  const silent = silentNext;
  silentNext = false;
  renderNotifyToggle();
  return silent;
}

/** The installed app's icon shows the count too, where the Badging API exists. */
function badge() {
  if (!('setAppBadge' in navigator)) return;
  const set = unread ? navigator.setAppBadge(unread) : navigator.clearAppBadge();
  set.catch(() => {});
}

/** Looking at the conversation: the pushes' notifications have been seen. */
function closePushed() {
  if (!('serviceWorker' in navigator) || !navigator.serviceWorker.controller) return;
  navigator.serviceWorker.ready
    .then((registration) => registration.getNotifications())
    .then((shown) => shown.filter((n) => n.tag.startsWith('duet-')).forEach((n) => n.close()))
    .catch(() => {});
}

function clearUnread() {
  if (document.hidden) return;
  if (state.screen === 'chat') closePushed();
  if (!unread) return;
  unread = 0;
  if (baseTitle != null) document.title = baseTitle;
  baseTitle = null;
  badge();
}

/** A live chat or question from the partner arrived (`kind`: 'chat' or 'question'). */
export function noteArrival(kind, frame) {
  if (!document.hidden) return;
  unread += 1;
  if (baseTitle == null) baseTitle = document.title;
  document.title = `(${unread}) ${baseTitle}`;
  badge();
  // A device that gets pushes is notified by them (the server pushes while no tab looks).
  if ((kind === 'chat' && frame.silent) || !wanted() || !allowed() || pushActive()) return;
  try {
    const title = kind === 'chat' ? partnerName() : t('q.title');
    const body = kind === 'chat' ? (frame.text || t('notify.file')) : frame.text;
    const n = new Notification(title, { body, tag: `duet-${kind}` });
    n.onclick = () => {
      window.focus();
      n.close();
    };
  } catch {
    // Some browsers only notify from a service worker: the title still counts.
  }
}

export function bindNotify() {
  document.addEventListener('visibilitychange', clearUnread);
  window.addEventListener('focus', clearUnread);
  $('notify-toggle').addEventListener('click', toggle);
  $('silent-toggle').addEventListener('click', () => {
    silentNext = !silentNext;
    renderNotifyToggle();
  });
  renderNotifyToggle();
}
