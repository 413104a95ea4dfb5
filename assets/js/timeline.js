// The timeline: rendering records (chat bubbles, question events) in seq order, day
// separators, grouping, the partner's read mark, scrolling, the delete button of a bubble,
// what a bubble shows of its gestures (the chat it quotes, its reactions, "edited"; the menu
// that makes them is gestures.js's),
// this user's own read marks, and paging older history in as the list scrolls up.
//
// Looking back: showWindow puts an older window of history in place of the present (a search
// hit or a day jumped to). Records from the socket then wait in state.chat.skipped (placeLive)
// together with what was shown before, so nothing lands out of order below the window;
// scrolling down pages newer history in until the window reaches the present (attach), and the
// "jump to latest" button goes straight back to the present.

import { t } from '../i18n.js';
import { $, h, HISTORY_PAGE, icon } from './dom.js';
import { dayKey, fmtDateTime, fmtDay, fmtTime, isEmojiOnly, parseTime } from './format.js';
import { isMine, partnerName, state } from './state.js';
import { api } from './http.js';
import { hooks } from './hooks.js';
import { confirmDialog, toast } from './ui.js';
import { renderFile } from './files.js';
import { wsSend } from './connection.js';

/** The fields of a chat frame (or a history item) that a timeline record keeps. */
export function pickChat(f) {
  return {
    seq: f.seq,
    id: f.id,
    sender_id: f.sender_id,
    text: typeof f.text === 'string' ? f.text : '',
    file: f.file || null,
    sent_at: f.sent_at,
    client_id: f.client_id || null,
    reply_to: f.reply_to || null,
    edits: typeof f.edits === 'number' ? f.edits : 0,
    reactions: reactionsOf(f.reactions),
  };
}

/** A chat's reactions as user id -> emoji (the wire's array, or a record kept offline). */
function reactionsOf(list) {
  if (!list) return {};
  if (!Array.isArray(list)) return { ...list };
  const out = {};
  for (const r of list) {
    if (r && typeof r.user_id === 'string' && typeof r.emoji === 'string') out[r.user_id] = r.emoji;
  }
  return out;
}

export function insertRecord(rec, layout = true) {
  state.chat.records.set(rec.seq, rec);
  if (rec.kind === 'chat') state.chat.byId.set(rec.id, rec.seq);
  rec.el = renderRecord(rec);
  const timeline = $('timeline');
  // Most inserts are at the end (live) or the start (older history): walk from the end.
  let before = null;
  const items = timeline.querySelectorAll(':scope > [data-seq]');
  for (let i = items.length - 1; i >= 0; i -= 1) {
    if (Number(items[i].dataset.seq) < rec.seq) {
      before = items[i].nextSibling;
      break;
    }
    before = items[i];
  }
  timeline.insertBefore(rec.el, before);
  if (layout) refreshLayout();
}

/** Inserts many records (in any order) with one layout pass. */
function insertMany(recs) {
  const sorted = [...recs].sort((a, b) => a.seq - b.seq);
  for (const rec of sorted) insertRecord(rec, false);
  if (sorted.length) refreshLayout();
}

/** Whether a record with this seq is shown or waiting to be (see placeLive). */
export function isHeld(seq) {
  return state.chat.records.has(seq) || state.chat.skipped.has(seq);
}

/** The shown or waiting record at this seq. */
export function heldRecord(seq) {
  return state.chat.records.get(seq) || state.chat.skipped.get(seq);
}

// At most this many records wait while looking back; past it the oldest go (what waits stays
// a contiguous stretch up to the present, so the way back is still complete).
const MAX_SKIPPED = 2000;

/** A record from the socket: into the timeline, or, while an older window is shown, onto the
 * wait list. Returns whether it was shown. */
export function placeLive(rec) {
  const c = state.chat;
  if (!c.detached) {
    insertRecord(rec);
    return true;
  }
  c.skipped.set(rec.seq, rec);
  if (c.skipped.size > MAX_SKIPPED) {
    const oldest = Math.min(...c.skipped.keys());
    c.skipped.delete(oldest);
  }
  if (rec.kind === 'chat' && !isMine(rec.sender_id)) c.unseenWhileAway += 1;
  updateLatestButton();
  return false;
}

export function replaceRecordEl(rec) {
  const el = renderRecord(rec);
  if (rec.el && rec.el.parentNode) rec.el.replaceWith(el);
  rec.el = el;
  refreshLayout();
}

export function removeChat(chatId) {
  markQuotesDeleted(chatId);
  for (const [seq, rec] of state.chat.skipped) {
    if (rec.kind === 'chat' && rec.id === chatId) state.chat.skipped.delete(seq);
  }
  const seq = state.chat.byId.get(chatId);
  if (seq == null) return;
  const rec = state.chat.records.get(seq);
  state.chat.byId.delete(chatId);
  state.chat.records.delete(seq);
  if (rec && rec.el) {
    const hadFocus = rec.el.contains(document.activeElement);
    rec.el.remove();
    if (hadFocus) $('message-input').focus();
  }
  refreshLayout();
  updateEmpty();
}

/** Replies to a chat that is gone say so, shown or waiting. */
function markQuotesDeleted(chatId) {
  for (const rec of [...state.chat.records.values(), ...state.chat.skipped.values()]) {
    if (rec.kind === 'chat' && rec.reply_to && rec.reply_to.id === chatId && !rec.reply_to.deleted) {
      rec.reply_to = { ...rec.reply_to, text: '', deleted: true };
      if (rec.el && state.chat.records.get(rec.seq) === rec) replaceRecordEl(rec);
    }
  }
}

/** Builds every record's element again (the language changed). The pending sends below the
 * timeline are sending.js's: see renderAllPending. */
export function renderAllRecords() {
  const recs = [...state.chat.records.values()].sort((a, b) => a.seq - b.seq);
  for (const rec of recs) rec.el = renderRecord(rec);
  $('timeline').replaceChildren(...recs.map((r) => r.el));
  refreshLayout();
}

function renderRecord(rec) {
  return rec.kind === 'question' ? renderQuestionEvent(rec) : renderChat(rec);
}

function renderChat(rec) {
  const mine = isMine(rec.sender_id);
  const when = parseTime(rec.sent_at);
  const root = h('div', {
    class: `msg ${mine ? 'mine' : 'theirs'}`,
    'data-testid': 'bubble',
    'data-seq': rec.seq,
    'data-mine': mine ? 'true' : 'false',
    'data-chat-id': rec.id,
    'data-client-id': rec.client_id || null,
    'data-status': 'sent',
    'data-sender': rec.sender_id,
    'data-day': dayKey(when),
  });
  const bubble = renderBubble(rec.text, rec.file, rec.preview);
  if (rec.reply_to) bubble.prepend(renderQuote(rec.reply_to));
  const row = h('div', { class: 'msg-row' }, bubble);
  if (rec.id) {
    row.append(h('button', {
      class: 'msg-more',
      type: 'button',
      'data-testid': 'more-button',
      'aria-label': t('chat.more'),
      'aria-haspopup': 'menu',
      'aria-expanded': 'false',
      title: t('chat.more'),
      onclick: () => hooks.bubbleMenu(rec),
    }, icon('more')));
  }
  if (mine && rec.id) {
    row.append(h('button', {
      class: 'msg-delete',
      type: 'button',
      'data-testid': 'delete-button',
      'aria-label': t('chat.delete'),
      title: t('chat.delete'),
      onclick: () => confirmDelete(rec),
    }, icon('trash')));
  }
  const meta = h('div', { class: 'msg-meta' },
    h('time', { datetime: when.toISOString(), 'data-testid': 'bubble-time', title: fmtDateTime(when) }, fmtTime(when)));
  if (rec.edits) {
    meta.append(h('button', {
      class: 'edited-mark',
      type: 'button',
      'data-testid': 'edited-mark',
      title: t('chat.versions'),
      onclick: () => hooks.showVersions(rec),
    }, t('chat.edited')));
  }
  root.append(row);
  const reactions = Object.entries(rec.reactions || {});
  if (reactions.length) {
    root.append(h('div', { class: 'reactions', 'data-testid': 'reactions' },
      ...reactions.map(([user, emoji]) => {
        const who = isMine(user) ? t('chat.you') : partnerName();
        return h('span', {
          class: `reaction${isMine(user) ? ' is-mine' : ''}`,
          'data-testid': 'reaction',
          'data-user': user,
          role: 'img',
          'aria-label': t('chat.reaction_by', { emoji, name: who }),
          title: who,
        }, emoji);
      })));
  }
  root.append(meta);
  return root;
}

/** The chat a reply answers, above its text: a jump to it while it exists. */
export function renderQuote(quote) {
  const who = isMine(quote.sender_id) ? t('chat.you') : partnerName();
  const text = quote.deleted ? t('chat.quote_deleted') : (quote.text || t('chat.quote_file'));
  return h('button', {
    class: `quote${quote.deleted ? ' is-deleted' : ''}`,
    type: 'button',
    'data-testid': 'quote',
    'data-quote-seq': quote.seq,
    disabled: quote.deleted ? true : null,
    title: quote.deleted ? null : t('chat.quote_jump'),
    onclick: () => hooks.openAt(quote.seq),
  },
  h('span', { class: 'quote-who' }, who),
  h('span', { class: 'quote-text' }, text));
}

export function renderBubble(text, file, preview) {
  const bubble = h('div', { class: 'bubble' });
  if (file) {
    bubble.classList.add('has-file');
    bubble.append(renderFile(file, preview));
  }
  if (text) {
    if (!file && isEmojiOnly(text)) bubble.classList.add('emoji-only');
    bubble.append(h('p', { class: 'bubble-text', 'data-testid': 'bubble-text' }, text));
  }
  return bubble;
}

function renderQuestionEvent(rec) {
  const q = state.chat.questions.get(rec.question_id) || {};
  let label = t('q.waiting');
  if (q.me && q.partner) label = t('q.answered_both');
  else if (q.me) label = t('q.answered_me');
  else if (q.partner) label = t('q.answered_partner', { name: partnerName() });
  return h('div', {
    class: 'question-event',
    'data-testid': 'question-event',
    'data-seq': rec.seq,
    'data-question-id': rec.question_id,
    'data-day': dayKey(parseTime(rec.asked_at)),
  },
  h('p', { class: 'q-kicker' }, icon('sparkle'), t('chat.question_event')),
  h('p', { class: 'q-event-text' }, rec.text || q.text || ''),
  h('p', { class: 'q-event-state' }, label));
}

/** Day separators, bubble grouping and the read mark, recomputed over the timeline. */
function refreshLayout() {
  const timeline = $('timeline');
  for (const sep of timeline.querySelectorAll(':scope > .day-sep')) sep.remove();
  let prevDay = null;
  let prevSender = null;
  for (const el of [...timeline.children]) {
    const day = el.dataset.day;
    if (day && day !== prevDay) {
      const rec = state.chat.records.get(Number(el.dataset.seq));
      const when = rec ? parseTime(rec.kind === 'chat' ? rec.sent_at : rec.asked_at) : new Date();
      timeline.insertBefore(h('div', { class: 'day-sep', role: 'separator', 'data-testid': 'day-separator' }, fmtDay(when)), el);
      prevSender = null;
    }
    prevDay = day;
    const sender = el.dataset.sender || null;
    el.classList.toggle('grouped', !!sender && sender === prevSender);
    prevSender = sender;
  }
  updateReadMark();
}

export function updateReadMark() {
  let best = null;
  for (const rec of state.chat.records.values()) {
    if (rec.kind === 'chat' && isMine(rec.sender_id) && rec.seq <= state.chat.partnerReadSeq && (best == null || rec.seq > best.seq)) best = rec;
  }
  const current = document.querySelector('#timeline [data-testid="read-mark"]');
  if (best && current && current.closest('[data-seq]') === best.el) return;
  if (current) current.remove();
  state.chat.readMarkSeq = best ? best.seq : null;
  if (best && best.el) {
    const meta = best.el.querySelector('.msg-meta');
    if (meta) meta.append(h('span', { class: 'read-mark', 'data-testid': 'read-mark' }, t('chat.read')));
  }
}

export function updateEmpty() {
  const empty = state.chat.everSynced && state.chat.records.size === 0 && state.chat.pending.size === 0;
  $('chat-empty').hidden = !empty;
}

export function nearBottom() {
  const m = $('messages');
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

// This module's own: whether the list was at its bottom before the last change of its size
// (question card, on-screen keyboard, window resize): then it is kept there.
const view = { stuckToBottom: true };

export function scrollToBottom() {
  const m = $('messages');
  m.scrollTop = m.scrollHeight;
  view.stuckToBottom = true;
  $('new-messages').hidden = true;
}

export function afterInsert(stick, mine) {
  updateEmpty();
  if (!state.chat.everSynced || state.chat.detached) return; // the first sync scrolls once at the end
  if (stick || mine) scrollToBottom();
  else $('new-messages').hidden = false;
}

export function announce(rec) {
  const name = partnerName();
  const text = rec.file && !rec.text
    ? t('chat.new_file_from', { name, file: rec.file.name || '' })
    : t('chat.new_from', { name, text: rec.text });
  const live = $('sr-messages');
  live.append(h('p', null, text));
  while (live.childNodes.length > 3) live.firstChild.remove();
}

async function confirmDelete(rec) {
  const ok = await confirmDialog(t('chat.delete_confirm'), t('chat.delete'));
  if (!ok) {
    const btn = rec.el && rec.el.querySelector('[data-testid="delete-button"]');
    if (btn) btn.focus();
    return;
  }
  state.chat.lastDeleteAt = Date.now();
  if (!wsSend({ type: 'delete', chat_id: rec.id })) toast(t('err.network'));
  $('message-input').focus();
}

// Read marks: tell the server how far this user has seen, while the page is visible.
export function scheduleRead() {
  if (state.chat.readTimer) return;
  state.chat.readTimer = setTimeout(() => {
    state.chat.readTimer = null;
    sendRead();
  }, 400);
}

function sendRead() {
  if (!state.chat.synced || document.visibilityState !== 'visible') return;
  const seq = state.chat.readableSeq;
  if (seq <= state.chat.readSent) return;
  if (wsSend({ type: 'read', seq })) state.chat.readSent = seq;
}

/** The oldest chat held: history pages continue below it. Question events do not count:
 * a still-open question may be far older than the replayed window. */
function lowestSeq() {
  let low = null;
  for (const rec of state.chat.records.values()) {
    if (rec.kind === 'chat' && (low == null || rec.seq < low)) low = rec.seq;
  }
  return low;
}

/** The newest chat held (the window's end while looking back). */
function highestSeq() {
  let high = null;
  for (const rec of state.chat.records.values()) {
    if (rec.kind === 'chat' && (high == null || rec.seq > high)) high = rec.seq;
  }
  return high;
}

/** Question events this client knows of between two seqs (history pages hold only chats). */
function questionRecords(low, high) {
  const out = [];
  for (const q of state.chat.questions.values()) {
    if (typeof q.seq !== 'number' || q.seq < low || q.seq > high || state.chat.records.has(q.seq)) continue;
    out.push({ kind: 'question', seq: q.seq, question_id: q.id, text: q.text, asked_at: q.asked_at });
  }
  return out;
}

async function loadOlder() {
  if (state.chat.loadingOlder || !state.chat.hasMore || !state.chat.everSynced) return;
  const low = lowestSeq();
  if (low == null || low <= 1) {
    state.chat.hasMore = false;
    if (low != null) $('history-status').textContent = t('chat.beginning');
    return;
  }
  state.chat.loadingOlder = true;
  const status = $('history-status');
  status.textContent = t('chat.loading_older');
  const held = state.chat; // a reset replaces it: then this page belongs to nobody
  const epoch = state.chat.epoch;
  try {
    const res = await api('GET', `/api/chats?before=${encodeURIComponent(low)}&limit=${HISTORY_PAGE}`);
    if (held !== state.chat || epoch !== state.chat.epoch || !state.chat.active) return;
    const list = (res && res.chats) || [];
    const m = $('messages');
    const prevHeight = m.scrollHeight;
    const prevTop = m.scrollTop;
    const recs = list.filter((c) => !c.deleted && !state.chat.records.has(c.seq)).map((c) => ({ kind: 'chat', ...pickChat(c) }));
    if (state.chat.detached && recs.length) {
      recs.push(...questionRecords(Math.min(...recs.map((r) => r.seq)), low));
    }
    insertMany(recs);
    m.scrollTop = prevTop + (m.scrollHeight - prevHeight);
    if (list.length < HISTORY_PAGE) state.chat.hasMore = false;
    status.textContent = state.chat.hasMore ? '' : t('chat.beginning');
  } catch (err) {
    status.textContent = '';
    if (held !== state.chat) return;
    if (err.status === 401) return hooks.toAuth(t('err.unauthenticated'));
    if (err.status === 404 || err.status === 409 || err.status === 405) state.chat.hasMore = false;
  } finally {
    held.loadingOlder = false;
  }
  if (held === state.chat) fillViewport();
}

/** Loads older pages until the list can scroll (or history runs out); in an older window,
 * newer ones too. */
export function fillViewport() {
  const m = $('messages');
  const short = m.scrollHeight <= m.clientHeight + 40;
  if (state.chat.hasMore && !state.chat.loadingOlder && short) loadOlder();
  if (state.chat.detached && short) loadNewer();
}

// ---- Looking back ----

/** The window shown meets the present: what waited joins it, live records go in again. */
function attach() {
  const c = state.chat;
  const recs = [...c.skipped.values()].filter((r) => !c.records.has(r.seq));
  c.skipped.clear();
  c.detached = false;
  c.hasNewer = false;
  c.unseenWhileAway = 0;
  insertMany(recs);
  for (const r of recs) {
    if (r.kind === 'question' || (r.kind === 'chat' && !isMine(r.sender_id))) c.readableSeq = Math.max(c.readableSeq, r.seq);
  }
  updateLatestButton();
  updateEmpty();
  scheduleRead();
}

/** Whether the window reaches the newest chat that waits (the present, as this client knows it). */
function meetsSkipped() {
  let newest = null;
  for (const rec of state.chat.skipped.values()) {
    if (rec.kind === 'chat' && (newest == null || rec.seq > newest)) newest = rec.seq;
  }
  const high = highestSeq();
  return newest != null && high != null && high >= newest;
}

/**
 * Shows a window of history (a page from GET /api/chats, newest first) in place of the
 * timeline, with the chat at `anchorSeq` in view and flashed. `atEnd`: the window reaches the
 * present (then it simply joins what is held).
 */
export function showWindow(chats, anchorSeq, atEnd) {
  const c = state.chat;
  if (!c.detached) {
    // What is shown now is the present: it waits, with whatever comes live, for the way back.
    for (const rec of c.records.values()) c.skipped.set(rec.seq, rec);
    c.detached = true;
    c.unseenWhileAway = 0;
  }
  c.epoch += 1; // older pages on their way belong to the timeline that goes now
  c.records.clear();
  c.byId.clear();
  $('timeline').replaceChildren();
  c.hasMore = true;
  c.hasNewer = !atEnd;
  $('history-status').textContent = '';
  const recs = chats.filter((x) => !x.deleted).map((x) => ({ kind: 'chat', ...pickChat(x) }));
  if (recs.length) {
    const seqs = recs.map((r) => r.seq);
    recs.push(...questionRecords(Math.min(...seqs), atEnd ? Infinity : Math.max(...seqs)));
  }
  insertMany(recs);
  if (atEnd || meetsSkipped()) attach();
  updateLatestButton();
  updateEmpty();
  const rec = anchorSeq != null ? c.records.get(anchorSeq) : null;
  if (rec && rec.el) {
    rec.el.dataset.jumped = 'true';
    rec.el.classList.add('jumped');
    rec.el.scrollIntoView({ block: 'center' });
    view.stuckToBottom = nearBottom();
  } else {
    scrollToBottom();
  }
  fillViewport();
}

/** Scrolled to the end of an older window: the next newer page. */
async function loadNewer() {
  const c = state.chat;
  if (!c.detached || !c.hasNewer || c.loadingNewer) return;
  const high = highestSeq();
  if (high == null) return;
  c.loadingNewer = true;
  const epoch = c.epoch;
  try {
    const res = await api('GET', `/api/chats?after=${encodeURIComponent(high)}&limit=${HISTORY_PAGE}`);
    if (c !== state.chat || epoch !== c.epoch || !c.detached) return;
    const list = (res && res.chats) || [];
    const end = list.length < HISTORY_PAGE;
    const recs = list.filter((x) => !x.deleted && !c.records.has(x.seq)).map((x) => ({ kind: 'chat', ...pickChat(x) }));
    if (recs.length) recs.push(...questionRecords(high, end ? Infinity : Math.max(...recs.map((r) => r.seq))));
    insertMany(recs);
    if (end || meetsSkipped()) attach();
  } catch (err) {
    if (c !== state.chat) return;
    if (err.status === 401) {
      hooks.toAuth(t('err.unauthenticated'));
      return;
    }
    toast(t('err.network'));
  } finally {
    c.loadingNewer = false;
  }
  if (c === state.chat && c.detached) {
    const m = $('messages');
    if (m.scrollHeight - m.scrollTop - m.clientHeight < 200) loadNewer();
  }
}

/** Back to the present from an older window (the "jump to latest" button, or sending). */
export async function jumpToLatest() {
  const c = state.chat;
  if (!c.detached) {
    scrollToBottom();
    return;
  }
  if ([...c.skipped.values()].some((r) => r.kind === 'chat')) {
    // The present is held already: what was shown before looking back, and what came since.
    c.epoch += 1;
    c.records.clear();
    c.byId.clear();
    $('timeline').replaceChildren();
    c.hasMore = true;
    $('history-status').textContent = '';
    attach();
    scrollToBottom();
    fillViewport();
    return;
  }
  // Nothing of the present is held (the conversation was empty): read the newest page.
  const epoch = c.epoch;
  try {
    const res = await api('GET', `/api/chats?limit=${HISTORY_PAGE}`);
    if (c !== state.chat || epoch !== c.epoch || !c.detached) return;
    showWindow((res && res.chats) || [], null, true);
    scrollToBottom();
  } catch (err) {
    if (err.status === 401) hooks.toAuth(t('err.unauthenticated'));
    else toast(t('err.network'));
  }
}

/** The "jump to latest" button: shown while an older window is; counts the partner's chats
 * that came meanwhile. */
export function updateLatestButton() {
  const c = state.chat;
  const btn = $('jump-latest');
  btn.hidden = !c.detached;
  btn.dataset.unseen = String(c.detached ? c.unseenWhileAway : 0);
  $('jump-latest-label').textContent = c.unseenWhileAway
    ? t('chat.jump_latest_new', { n: c.unseenWhileAway })
    : t('chat.jump_latest');
  if (c.detached) $('new-messages').hidden = true;
}

function onMessagesScroll() {
  const m = $('messages');
  view.stuckToBottom = nearBottom();
  if (m.scrollTop < 120) loadOlder();
  if (state.chat.detached) {
    if (m.scrollHeight - m.scrollTop - m.clientHeight < 200) loadNewer();
    return;
  }
  if (view.stuckToBottom) {
    $('new-messages').hidden = true;
    scheduleRead();
  }
}

export function bindTimeline() {
  $('messages').addEventListener('scroll', onMessagesScroll, { passive: true });
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(() => {
      if (view.stuckToBottom && state.screen === 'chat') {
        const m = $('messages');
        m.scrollTop = m.scrollHeight;
      }
    }).observe($('messages'));
  }
  $('new-messages').addEventListener('click', () => {
    scrollToBottom();
    $('message-input').focus();
  });
  $('jump-latest').addEventListener('click', async () => {
    await jumpToLatest();
    $('message-input').focus();
  });
}
