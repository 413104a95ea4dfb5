// The last conversation seen, kept in IndexedDB (js/idb.js) so that Duet opens and reads
// without a network: who we are, the couple, the calendar and the latest chats and questions.
// Only for reading: once the socket is back the timeline is loaded from the server as always
// (frames.js onHello), so nothing shown offline can disagree with it. Forgotten on logout.

import { run } from './idb.js';
import { state } from './state.js';
import { lastCalendar } from './calendar.js';

const STORE = 'conversation';
const KEY = 'last';
const KEEP = 300; // records
const SAVE_AFTER_MS = 500;
let timer = null;

function snapshot() {
  const records = [...state.chat.records.values()]
    .filter((r) => typeof r.seq === 'number')
    .sort((a, b) => a.seq - b.seq)
    .slice(-KEEP)
    .map((r) => r.kind === 'chat'
      ? { kind: 'chat', seq: r.seq, id: r.id, sender_id: r.sender_id, text: r.text, file: r.file, sent_at: r.sent_at, client_id: r.client_id, reply_to: r.reply_to || null, edits: r.edits || 0, reactions: r.reactions || {} }
      : { kind: 'question', seq: r.seq, question_id: r.question_id, text: r.text, asked_at: r.asked_at });
  return { me: state.me, couple: state.couple, calendar: lastCalendar(), records, saved_at: Date.now() };
}

function save() {
  clearTimeout(timer);
  timer = null;
  if (!state.me || !state.couple || !state.chat.everSynced) return;
  const snap = snapshot();
  run(STORE, 'readwrite', (store) => store.put(snap, KEY)).catch(() => {});
}

/** Keeps the conversation as it is now, a moment after the last change (a burst of chats is
 *  one write). */
export function saveSoon() {
  if (!state.me || !state.couple || !state.chat.everSynced) return;
  clearTimeout(timer);
  timer = setTimeout(save, SAVE_AFTER_MS);
}

/** Keeps it at once if a change waits: the network just went, or the page is going away. */
export function saveNow() {
  if (timer) save();
}

export function bindOffline() {
  window.addEventListener('pagehide', saveNow);
}

/** The conversation last kept on this device, or null. */
export async function lastConversation() {
  try {
    return (await run(STORE, 'readonly', (store) => store.get(KEY))) || null;
  } catch {
    return null;
  }
}

/** Logging out (or a session that ended): nothing of the conversation stays on this device. */
export function forgetConversation() {
  clearTimeout(timer);
  return run(STORE, 'readwrite', (store) => store.delete(KEY)).catch(() => {});
}
