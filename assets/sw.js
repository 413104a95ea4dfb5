// Duet's service worker: keeps the app shell (the files of assets/, by version) so the app
// opens without a network, and hands over to a new version only when the page asks
// (js/install.js), so a running conversation never changes code under its feet.
// The server writes `SHELL` ({ version, files }) above this file (src/http/shell.rs).
/* global SHELL */

const PREFIX = 'duet-shell-';
const CACHE = PREFIX + SHELL.version;
// Always from the network: the API, the socket, probes, and the worker itself.
const LIVE = /^\/(api\/|ws$|healthz$|readyz$|sw\.js$)/;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL.files)));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names
      .filter((name) => name.startsWith(PREFIX) && name !== CACHE)
      .map((name) => caches.delete(name)));
    // The first version takes the open pages at once; later ones only when asked (below).
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'take-over') self.skipWaiting();
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || LIVE.test(url.pathname)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    // Every page of the app is the one page at `/`.
    const hit = request.mode === 'navigate'
      ? await cache.match('/')
      : await cache.match(request);
    return hit || fetch(request);
  })());
});
