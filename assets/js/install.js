// The installable app: registers the service worker (assets/sw.js, served as /sw.js with the
// shell's version) and, when a deploy brings a new version, offers a reload instead of
// changing the code under a running conversation. A hidden tab with nothing being sent and
// nothing typed takes the new version at once.

import { $ } from './dom.js';
import { state } from './state.js';

let waiting = null;

function idle() {
  const typed = $('message-input') && $('message-input').value.trim() !== '';
  return document.hidden && !typed && state.chat.pending.size === 0;
}

function takeOver() {
  if (waiting) waiting.postMessage({ type: 'take-over' });
}

function offer(worker) {
  waiting = worker;
  if (idle()) {
    takeOver();
    return;
  }
  $('update-banner').hidden = false;
}

export function bindInstall() {
  if (!('serviceWorker' in navigator)) return;
  $('update-reload').addEventListener('click', takeOver);
  // A page the first version took over has nothing to reload; one that had a worker reloads
  // once the new one is in charge.
  let had = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    if (!had) {
      had = true;
      return;
    }
    window.location.reload();
  });
  navigator.serviceWorker.register('/sw.js').then((registration) => {
    if (registration.waiting && navigator.serviceWorker.controller) offer(registration.waiting);
    registration.addEventListener('updatefound', () => {
      const worker = registration.installing;
      if (!worker) return;
      worker.addEventListener('statechange', () => {
        if (worker.state === 'installed' && navigator.serviceWorker.controller) offer(worker);
      });
    });
    // A tab left open for days still learns of a deploy when it comes back into view.
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) {
        if (waiting && idle()) takeOver();
      } else {
        registration.update().catch(() => {});
      }
    });
  }).catch(() => {
    // No worker (an old browser, a private window): the app runs as a plain page.
  });
}
