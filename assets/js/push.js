// Web Push: with notifications on, this device subscribes to the server's pushes (the VAPID
// key from GET /api/push/key, the subscription to POST /api/push/devices), so the partner's
// chats reach it while Duet is closed; the service worker (sw.js) shows them. The devices
// dialog lists my devices: remove one, or let it show the chat's text (off by default).
// A subscription is tied to the login that made it: after logging in again it is sent again.

import { t } from '../i18n.js';
import { $, h } from './dom.js';
import { api, errorText } from './http.js';
import { closeMenu, toast } from './ui.js';

const DEVICE = 'duet.push.device';

/** This device gets pushes: the page leaves notifying to them (one notification, not two). */
export function pushActive() {
  return localStorage.getItem(DEVICE) !== null;
}

/** The session ended: its device is gone on the server too. */
export function forgetPushDevice() {
  localStorage.removeItem(DEVICE);
}

export function pushSupported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

function bytes(base64url) {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function sameKey(subscription, key) {
  const given = subscription.options && subscription.options.applicationServerKey;
  if (!given) return true;
  const a = new Uint8Array(given);
  return a.length === key.length && a.every((b, i) => b === key[i]);
}

/** What this device is called in the list: the platform and browser, as far as they show. */
function deviceName() {
  const ua = navigator.userAgent;
  const platform = /Android/.test(ua) ? 'Android'
    : /iPhone|iPad/.test(ua) ? 'iOS'
      : /Mac OS X/.test(ua) ? 'macOS'
        : /Windows/.test(ua) ? 'Windows'
          : /Linux/.test(ua) ? 'Linux' : '';
  const browser = /Edg\//.test(ua) ? 'Edge'
    : /Firefox\//.test(ua) ? 'Firefox'
      : /Chrome\/|Chromium\//.test(ua) ? 'Chrome'
        : /Safari\//.test(ua) ? 'Safari' : '';
  return [browser, platform].filter(Boolean).join(' · ') || 'Browser';
}

/** Subscribes this device (again: the server replaces what the endpoint was). */
export async function subscribePush() {
  if (!pushSupported() || Notification.permission !== 'granted') {
    localStorage.removeItem(DEVICE);
    return false;
  }
  try {
    const registration = await navigator.serviceWorker.ready;
    const { public_key: publicKey } = await api('GET', '/api/push/key');
    const key = bytes(publicKey);
    let subscription = await registration.pushManager.getSubscription();
    if (subscription && !sameKey(subscription, key)) {
      await subscription.unsubscribe();
      subscription = null;
    }
    if (!subscription) {
      subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    }
    const json = subscription.toJSON();
    const device = await api('POST', '/api/push/devices', {
      endpoint: json.endpoint, keys: json.keys, device: deviceName(),
    });
    localStorage.setItem(DEVICE, device.id);
    return true;
  } catch {
    // No push service reachable, or the browser has none: notifications still work while
    // a tab is open, from the page.
    localStorage.removeItem(DEVICE);
    return false;
  }
}

/** Stops pushes to this device. */
export async function unsubscribePush() {
  const id = localStorage.getItem(DEVICE);
  localStorage.removeItem(DEVICE);
  if (id) await api('DELETE', `/api/push/devices/${encodeURIComponent(id)}`).catch(() => {});
  if (!pushSupported()) return;
  try {
    const registration = await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.getSubscription();
    if (subscription) await subscription.unsubscribe();
  } catch {
    // Nothing to undo.
  }
}

async function loadDevices() {
  const dlg = $('devices-dialog');
  if (!dlg.open) return;
  try {
    const { devices } = await api('GET', '/api/push/devices');
    $('devices-status').textContent = devices.length ? '' : t('devices.none');
    $('devices-list').replaceChildren(...devices.map((d) => h('li', {
      class: 'device-item', 'data-testid': 'device-item', 'data-device-id': d.id, 'data-current': String(d.current),
    },
    h('span', { class: 'device-name' }, d.device || t('devices.unnamed'),
      d.current ? h('span', { class: 'muted' }, ` · ${t('devices.this')}`) : null),
    h('label', { class: 'device-preview' },
      h('input', {
        type: 'checkbox', 'data-testid': 'device-preview', checked: d.preview,
        onchange: (e) => setPreview(d.id, e.target.checked),
      }),
      h('span', null, t('devices.preview'))),
    h('button', {
      class: 'link-btn', type: 'button', 'data-testid': 'device-remove',
      onclick: () => remove(d),
    }, t('devices.remove')))));
  } catch (err) {
    $('devices-status').textContent = errorText(err);
  }
}

async function setPreview(id, preview) {
  try {
    await api('PATCH', `/api/push/devices/${encodeURIComponent(id)}`, { preview });
  } catch (err) {
    toast(errorText(err));
  }
  await loadDevices();
}

async function remove(device) {
  try {
    if (device.current) await unsubscribePush();
    else await api('DELETE', `/api/push/devices/${encodeURIComponent(device.id)}`);
  } catch (err) {
    toast(errorText(err));
  }
  await loadDevices();
}

export function bindPush() {
  const dlg = $('devices-dialog');
  $('devices-button').addEventListener('click', () => {
    closeMenu();
    dlg.showModal();
    $('devices-status').textContent = t('answers.loading');
    loadDevices();
  });
  dlg.querySelector('[data-close]').addEventListener('click', () => dlg.close());
}
