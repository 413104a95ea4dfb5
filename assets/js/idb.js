// The browser's database (IndexedDB) that keeps what Duet needs without a network: the
// outbox (js/outbox.js) and the last conversation seen (js/offline.js). Without IndexedDB
// (some private windows) every call fails and its callers carry on without it.

const NAME = 'duet';
let opening = null;

function db() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      if (!('indexedDB' in window)) {
        reject(new Error('no IndexedDB'));
        return;
      }
      const request = indexedDB.open(NAME, 2);
      request.onupgradeneeded = () => {
        const conn = request.result;
        if (!conn.objectStoreNames.contains('outbox')) conn.createObjectStore('outbox', { keyPath: 'client_id' });
        if (!conn.objectStoreNames.contains('conversation')) conn.createObjectStore('conversation');
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  return opening;
}

/** Runs `work(store)` in one transaction; resolves with its request's result once committed. */
export async function run(storeName, mode, work) {
  const conn = await db();
  return new Promise((resolve, reject) => {
    const tx = conn.transaction(storeName, mode);
    const request = work(tx.objectStore(storeName));
    tx.oncomplete = () => resolve(request && 'result' in request ? request.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}
