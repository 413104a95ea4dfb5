// The client's shared mutable state, in one place. Every module reads and writes it through
// `state`; nothing else is shared between modules (a module's own bookkeeping stays private to
// it, and goes out through functions).
//
//   state.me, state.couple  who is signed in and their couple, as GET /api/me last said
//   state.screen            the screen shown: 'loading' | 'auth' | 'pair' | 'chat'
//   state.chat              everything about the open conversation (see freshChat); replaced
//                           as a whole by resetChat(), so a late async result can tell that the
//                           conversation it started in is gone by comparing the object

/** The state of one conversation: its socket, its timeline, its pending sends, its questions. */
function freshChat() {
  return {
    active: false,
    coupleId: null,
    ws: null,
    gen: 0,
    gotHello: false,
    helloAt: 0,
    synced: false,
    everSynced: false,
    lastSeq: null, // highest persisted seq seen; null until the first sync
    records: new Map(), // seq -> { kind: 'chat' | 'question', ...frame, el }
    byId: new Map(), // chat id -> seq
    pending: new Map(), // client_id -> pending send
    restored: null, // the outbox's chats brought back into `pending` (a promise, once)
    fromDevice: false, // the timeline shows the conversation kept offline, until the socket's hello
    partnerOnline: false,
    partnerReadSeq: 0,
    readMarkSeq: null,
    readableSeq: 0, // highest seq of an event not by me: marking my own chats read tells nobody anything
    readSent: 0,
    readTimer: null,
    questions: new Map(), // question_id -> { id, seq, text, keyword, asked_at, me, partner }
    activeQuestion: null,
    answering: null,
    attempt: 0,
    retryTimer: null,
    countdownTimer: null,
    retryAt: 0,
    hasMore: true,
    loadingOlder: false,
    typingTimer: null,
    nudgeTimer: null,
    lastTypingSent: 0,
    mePoll: null,
    lastDeleteAt: 0,
    epoch: 0, // bumped when the timeline is thrown away, so late history pages are dropped
    // Looking back (a search hit or a day jumped to): the timeline holds an older window, not
    // the present. Live records then wait in `skipped` (seq -> record) until the window reaches
    // the present again (paging newer, or "jump to latest"), so nothing lands out of order.
    detached: false,
    skipped: new Map(),
    unseenWhileAway: 0, // the partner's chats among them, for the "jump to latest" button
    hasNewer: false,
    loadingNewer: false,
    // Gestures (gestures.js): the chat the next send answers, the chat being edited, and the
    // reactions and edits sent and not yet answered (client_id -> type).
    replyTo: null,
    editing: null,
    gestures: new Map(),
  };
}

export const state = {
  me: null, // { id, username }
  couple: null, // { id, since, partner: { id, username }, delete_at }
  screen: 'loading',
  openAtSeq: null, // a notification's chat to show once the history is in (app.js)
  chat: freshChat(),
};

/** Throws the conversation away (its DOM is the caller's business: see chat.js resetChatState). */
export function resetChat() {
  state.chat = freshChat();
}

export function partnerName() {
  return (state.couple && state.couple.partner && state.couple.partner.username) || '';
}

export function isMine(senderId) {
  return state.me && senderId === state.me.id;
}

/** Moves the resume point (the highest persisted seq seen) forward, never back. */
export function bumpSeq(seq) {
  if (typeof seq !== 'number') return;
  if (state.chat.lastSeq == null || seq > state.chat.lastSeq) state.chat.lastSeq = seq;
}
