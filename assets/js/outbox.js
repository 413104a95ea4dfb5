// The outbox: text chats not acked yet, kept in IndexedDB so that a reload, a closed tab or a
// phone that ended the app loses none of them. Each goes out again with its client_id, so the
// server creates it once however often it is sent. Entries are per user and couple: a shared
// browser never sends one person's words as another's, nor into a couple that is gone.
// Without IndexedDB (some private windows) the chats still wait, in memory only.

const DB = 'duet';
const STORE = 'outbox';
let opening = null;

function db() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      if (!('indexedDB' in window)) {
        reject(new Error('no IndexedDB'));
        return;
      }
      const request = indexedDB.open(DB, 1);
      request.onupgradeneeded = () => {
        request.result.createObjectStore(STORE, { keyPath: 'client_id' });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  return opening;
}

async function run(mode, work) {
  const conn = await db();
  return new Promise((resolve, reject) => {
    const tx = conn.transaction(STORE, mode);
    const result = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(result && 'result' in result ? result.result : undefined);
    tx.onerror = () => reject(tx.error);
  });
}

/** Keeps (or updates) a waiting chat. */
export function keep(entry) {
  return run('readwrite', (store) => store.put(entry)).catch(() => {});
}

/** Forgets a chat: acked, or removed by its writer. */
export function forget(clientId) {
  return run('readwrite', (store) => store.delete(clientId)).catch(() => {});
}

/** This user's waiting chats for this couple, in the order written; others of theirs (a couple
 *  that is gone) are forgotten. */
export async function waiting(userId, coupleId) {
  let all = [];
  try {
    all = (await run('readonly', (store) => store.getAll())) || [];
  } catch {
    return [];
  }
  const mine = all.filter((e) => e.user_id === userId);
  for (const e of mine) if (e.couple_id !== coupleId) forget(e.client_id);
  return mine.filter((e) => e.couple_id === coupleId).sort((a, b) => a.order - b.order);
}
