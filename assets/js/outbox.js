// The outbox: text chats not acked yet, kept in IndexedDB (js/idb.js) so that a reload, a
// closed tab or a phone that ended the app loses none of them. Each goes out again with its
// client_id, so the server creates it once however often it is sent. Entries are per user and
// couple: a shared browser never sends one person's words as another's, nor into a couple
// that is gone. Without IndexedDB the chats still wait, in memory only.

import { run } from './idb.js';

const STORE = 'outbox';

/** Keeps (or updates) a waiting chat. */
export function keep(entry) {
  return run(STORE, 'readwrite', (store) => store.put(entry)).catch(() => {});
}

/** Forgets a chat: acked, or removed by its writer. */
export function forget(clientId) {
  return run(STORE, 'readwrite', (store) => store.delete(clientId)).catch(() => {});
}

async function all() {
  try {
    return (await run(STORE, 'readonly', (store) => store.getAll())) || [];
  } catch {
    return [];
  }
}

/** This user's waiting chats for this couple, in the order written; others of theirs (a couple
 *  that is gone) are forgotten. */
export async function waiting(userId, coupleId) {
  const mine = (await all()).filter((e) => e.user_id === userId);
  for (const e of mine) if (e.couple_id !== coupleId) forget(e.client_id);
  return mine.filter((e) => e.couple_id === coupleId).sort((a, b) => a.order - b.order);
}

/** Logging out: nothing of this user's waits on this device any more. */
export async function forgetUser(userId) {
  for (const e of await all()) if (e.user_id === userId) await forget(e.client_id);
}
