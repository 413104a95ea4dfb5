// Frames: the dispatch of server frames (PROTOCOL.md) to what they change: the timeline, the
// pending sends, presence, typing, read marks, the couple. Question frames are handled in
// questions.js. connection.js hands every parsed frame here through hooks.frame.

import { t } from '../i18n.js';
import { $, TYPING_SHOW_MS } from './dom.js';
import { bumpSeq, isMine, partnerName, state } from './state.js';
import { errorText } from './http.js';
import { toast } from './ui.js';
import { connect, reportLooking, setConn } from './connection.js';
import { updateBanner } from './couple.js';
import { noteArrival } from './notify.js';
import { applyCalendar, loadCalendar } from './calendar.js';
import { onExcludedWords } from './ourwords.js';
import {
  afterInsert, announce, fillViewport, heldRecord, isHeld, nearBottom, pickChat, placeLive, removeChat,
  replaceRecordEl, scheduleRead, scrollToBottom, updateEmpty, updateLatestButton, updateReadMark,
} from './timeline.js';
import { dropPending, failPending, renderAllPending, restoreOutbox, transmit, waitingSends } from './sending.js';
import { saveSoon } from './offline.js';
import { openAt } from './story.js';
import { onEdited, onGestureAck, onGestureError, onReacted } from './gestures.js';
import { showMemories } from './memories.js';
import {
  hideQuestionCard, onAnswered, onQuestion, updateAnswerButton, updateQuestionCard,
} from './questions.js';

export function handleFrame(f) {
  switch (f.type) {
    case 'hello': return onHello(f);
    case 'chat': return onChat(f);
    case 'deleted': return onDeleted(f);
    case 'reacted': return onReacted(f);
    case 'edited': return onEdited(f);
    case 'question':
      if (state.chat.synced) noteArrival('question', f);
      return onQuestion(f);
    case 'answered': return onAnswered(f);
    case 'synced': return onSynced(f);
    case 'ack': return onAck(f);
    case 'error': return onError(f);
    case 'presence': return onPresence(f);
    case 'typing': return onTyping(f);
    case 'nudge': return onNudge(f);
    case 'read': return onRead(f);
    case 'couple': return onCouple(f);
    case 'anniversaries': return applyCalendar(f);
    case 'excluded_words': return onExcludedWords();
    default: return undefined; // unknown frame types are extensions: ignore
  }
}

// Extension frame: the break-up was scheduled or taken back, by either of us.
function onCouple(f) {
  if (!state.couple) return;
  state.couple.delete_at = f.delete_at || null;
  updateBanner();
}

function onHello(f) {
  if (state.chat.fromDevice) {
    // What was shown offline came from this device: the server's history replaces it.
    state.chat.fromDevice = false;
    resetTimeline();
  }
  const stale = (state.chat.coupleId && f.couple_id && f.couple_id !== state.chat.coupleId)
    || (state.chat.lastSeq != null && typeof f.last_seq === 'number' && f.last_seq < state.chat.lastSeq);
  if (stale) {
    // Another couple, or the server forgot history we hold: start over without `after`.
    const coupleId = f.couple_id;
    resetTimeline();
    state.chat.coupleId = coupleId;
    connect();
    return;
  }
  state.chat.gotHello = true;
  state.chat.helloAt = Date.now();
  if (document.hidden) reportLooking();
  if (f.couple_id) state.chat.coupleId = f.couple_id;
  if (f.partner_id && state.couple && state.couple.partner && !state.couple.partner.id) state.couple.partner.id = f.partner_id;
  setPresence(!!f.partner_online);
  if (typeof f.partner_read_seq === 'number') setPartnerRead(f.partner_read_seq);
  setConn('online');
  // The calendar is state, not a log entry: read it again after any gap.
  loadCalendar();
}

function resetTimeline() {
  state.chat.epoch += 1;
  state.chat.records.clear();
  state.chat.byId.clear();
  state.chat.questions.clear();
  state.chat.lastSeq = null;
  state.chat.readableSeq = 0;
  state.chat.readSent = 0;
  state.chat.partnerReadSeq = 0;
  state.chat.readMarkSeq = null;
  state.chat.hasMore = true;
  state.chat.everSynced = false;
  state.chat.detached = false;
  state.chat.skipped.clear();
  state.chat.unseenWhileAway = 0;
  state.chat.hasNewer = false;
  $('timeline').replaceChildren();
  updateLatestButton();
  hideQuestionCard();
}

function onChat(f) {
  bumpSeq(f.seq);
  if (f.deleted) {
    // Extension: a replay passing a chat deleted since (its `deleted` frame follows).
    removeChat(f.id);
    return;
  }
  const existing = heldRecord(f.seq);
  if (existing) {
    // Same seq seen already (an ack got there first, or a resume overlapped): refresh it.
    if (existing.kind === 'chat') {
      Object.assign(existing, pickChat(f));
      if (state.chat.records.get(f.seq) === existing) replaceRecordEl(existing);
    }
    return;
  }
  if (f.client_id && isMine(f.sender_id)) {
    const p = state.chat.pending.get(f.client_id);
    if (p) dropPending(p);
  }
  const stick = nearBottom();
  const rec = { kind: 'chat', ...pickChat(f) };
  // While an older window is shown the chat waits (and is not read yet): see placeLive.
  if (placeLive(rec)) {
    if (!isMine(f.sender_id)) state.chat.readableSeq = Math.max(state.chat.readableSeq, f.seq);
    afterInsert(stick, isMine(f.sender_id));
  }
  if (state.chat.synced && !isMine(f.sender_id)) {
    $('typing').hidden = true;
    announce(rec);
    noteArrival('chat', f);
  }
  scheduleRead();
  saveSoon();
}

function onDeleted(f) {
  bumpSeq(f.seq);
  removeChat(f.chat_id);
  saveSoon();
}

function onAck(f) {
  if (onGestureAck(f)) return;
  const p = state.chat.pending.get(f.client_id);
  if (!p) return;
  dropPending(p);
  if (isHeld(f.seq)) return;
  // The chat frame usually follows; show it at its seq right away. lastSeq is not moved
  // by an ack: earlier events may still be on their way.
  const stick = nearBottom();
  placeLive({
    kind: 'chat',
    seq: f.seq,
    id: f.id,
    sender_id: state.me.id,
    text: p.text,
    file: p.file,
    sent_at: p.created,
    client_id: p.client_id,
    preview: p.preview,
    reply_to: p.quote || null,
    edits: 0,
    reactions: {},
  });
  afterInsert(stick, true);
}

function onSynced(f) {
  bumpSeq(f.last_seq);
  const first = !state.chat.everSynced;
  state.chat.synced = true;
  state.chat.everSynced = true;
  setConn('online');
  updateEmpty();
  if (first) {
    scrollToBottom();
    showMemories();
  }
  if (state.openAtSeq != null) {
    // Opened from a notification: at the chat it was about.
    const seq = state.openAtSeq;
    state.openAtSeq = null;
    openAt(seq);
  }
  // Resend what was waiting, a reload's outbox first: same client_id, so the server will not
  // duplicate it, and in the order written.
  const chat = state.chat;
  saveSoon();
  renderAllPending();
  restoreOutbox().then(() => {
    if (state.chat !== chat || !chat.synced) return;
    for (const p of waitingSends()) {
      if (p.status === 'pending') transmit(p);
    }
  });
  updateQuestionCard();
  updateAnswerButton();
  scheduleRead();
  if (first) fillViewport();
}

function onError(f) {
  if (f.client_id && onGestureError(f)) return;
  if (f.client_id && state.chat.pending.has(f.client_id)) {
    failPending(state.chat.pending.get(f.client_id), f.code);
  }
  if (f.code === 'answer_required' && f.question_id != null) {
    let q = state.chat.questions.get(f.question_id);
    if (!q) {
      q = { id: f.question_id, seq: null, text: '', keyword: '', asked_at: null, me: false, partner: false };
      state.chat.questions.set(q.id, q);
    }
    q.me = false;
    updateQuestionCard(true);
    return;
  }
  const forAnswer = state.chat.answering != null && !f.client_id
    && (f.question_id == null || f.question_id === state.chat.answering);
  if (forAnswer) {
    state.chat.answering = null;
    updateAnswerButton();
    const el = $('q-error');
    el.textContent = errorText({ code: f.code, serverMessage: f.message });
    el.hidden = false;
    return;
  }
  if (f.client_id) return;
  console.debug('duet: server error frame', f.code);
  if (Date.now() - state.chat.lastDeleteAt < 5000 && (f.code === 'not_found' || f.code === 'forbidden')) {
    toast(t('err.delete_failed'));
  } else if (f.code !== 'rate_limited' && f.code !== 'invalid_input') {
    toast(errorText({ code: f.code, serverMessage: f.message }));
  }
}

function onPresence(f) {
  if (f.user_id && state.me && f.user_id === state.me.id) return;
  setPresence(!!f.online);
  if (!f.online) $('typing').hidden = true;
}

export function setPresence(online) {
  state.chat.partnerOnline = online;
  const el = $('partner-presence');
  el.dataset.online = online ? 'true' : 'false';
  $('presence-label').textContent = online ? t('chat.partner_online') : t('chat.partner_offline');
}

function onTyping(f) {
  if (state.me && f.user_id === state.me.id) return;
  $('typing-text').textContent = t('chat.typing', { name: partnerName() });
  const stick = nearBottom();
  $('typing').hidden = false;
  if (stick) scrollToBottom();
  clearTimeout(state.chat.typingTimer);
  state.chat.typingTimer = setTimeout(() => { $('typing').hidden = true; }, TYPING_SHOW_MS);
}

/** The partner is thinking of us: a heart rises over the conversation, and a word says so. */
function onNudge(f) {
  if (state.me && f.user_id === state.me.id) return;
  toast(t('nudge.got', { name: partnerName() }));
  const heart = $('nudge-heart');
  heart.hidden = false;
  heart.classList.remove('rise');
  void heart.offsetWidth; // restart the animation for a second nudge
  heart.classList.add('rise');
  clearTimeout(state.chat.nudgeTimer);
  state.chat.nudgeTimer = setTimeout(() => { heart.hidden = true; }, 1800);
}

function onRead(f) {
  if (state.me && f.user_id === state.me.id) return;
  setPartnerRead(f.seq);
}

function setPartnerRead(seq) {
  if (typeof seq !== 'number' || seq < state.chat.partnerReadSeq) return;
  state.chat.partnerReadSeq = seq;
  updateReadMark();
}
