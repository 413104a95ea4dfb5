// The timeline: rendering records (chat bubbles, question events) in seq order, day
// separators, grouping, the partner's read mark, scrolling, the delete button of a bubble,
// this user's own read marks, and paging older history in as the list scrolls up.

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
  };
}

export function insertRecord(rec) {
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
  refreshLayout();
}

export function replaceRecordEl(rec) {
  const el = renderRecord(rec);
  if (rec.el && rec.el.parentNode) rec.el.replaceWith(el);
  rec.el = el;
  refreshLayout();
}

export function removeChat(chatId) {
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
  const row = h('div', { class: 'msg-row' }, bubble);
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
  root.append(row, meta);
  return root;
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
  if (!state.chat.everSynced) return; // the first sync scrolls once at the end
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
    for (const c of list) {
      if (c.deleted || state.chat.records.has(c.seq)) continue;
      insertRecord({ kind: 'chat', ...pickChat(c) });
    }
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

/** Loads older pages until the list can scroll (or history runs out). */
export function fillViewport() {
  const m = $('messages');
  if (state.chat.hasMore && !state.chat.loadingOlder && m.scrollHeight <= m.clientHeight + 40) loadOlder();
}

function onMessagesScroll() {
  const m = $('messages');
  view.stuckToBottom = nearBottom();
  if (m.scrollTop < 120) loadOlder();
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
}
