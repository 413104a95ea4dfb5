// Finding our way back: the search dialog (hits newest first, the matched part marked, more
// on demand; a date to jump to) and the context view that opens the conversation at a hit or
// a day, with older and newer pages from there. The live timeline underneath stays as it is,
// so live chats keep arriving in order while we look back.

import { t } from '../i18n.js';
import { $, h, HISTORY_PAGE } from './dom.js';
import { fmtDateTime, parseTime } from './format.js';
import { isMine, partnerName } from './state.js';
import { api, errorText } from './http.js';
import { renderBubble } from './timeline.js';

let query = '';
let lastSeq = null;
const context = { oldest: null, newest: null };

/** The text as nodes, with every case-insensitive occurrence of `needle` in a <mark>. */
function marked(text, needle) {
  const nodes = [];
  const lower = text.toLowerCase();
  const n = needle.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(n); n && i !== -1; i = lower.indexOf(n, at)) {
    if (i > at) nodes.push(text.slice(at, i));
    nodes.push(h('mark', { 'data-testid': 'search-mark' }, text.slice(i, i + n.length)));
    at = i + n.length;
  }
  if (at < text.length) nodes.push(text.slice(at));
  return nodes;
}

function hit(chat) {
  const who = isMine(chat.sender_id) ? t('answers.me') : partnerName();
  return h('li', { class: 'search-hit' },
    h('button', {
      class: 'search-hit-btn', type: 'button', 'data-testid': 'search-hit', 'data-seq': chat.seq,
      onclick: () => openAround(chat.seq),
    },
    h('span', { class: 'search-who muted' }, `${who} · ${fmtDateTime(parseTime(chat.sent_at))}`),
    h('span', { class: 'search-text' }, marked(chat.text, query))));
}

async function search(more) {
  const status = $('search-status');
  if (!more) {
    query = $('search-input').value.trim();
    lastSeq = null;
    $('search-results').replaceChildren();
  }
  if (!query) return;
  status.textContent = t('answers.loading');
  try {
    const before = lastSeq != null ? `&before=${lastSeq}` : '';
    const body = await api('GET', `/api/chats/search?q=${encodeURIComponent(query)}&limit=${HISTORY_PAGE}${before}`);
    $('search-results').append(...body.chats.map(hit));
    if (body.chats.length) lastSeq = body.chats[body.chats.length - 1].seq;
    $('search-more').hidden = body.chats.length < HISTORY_PAGE;
    const count = $('search-results').children.length;
    status.textContent = count ? t('search.count', { n: count }) : t('search.none');
  } catch (err) {
    status.textContent = errorText(err);
  }
}

function bubble(chat, anchor) {
  const mine = isMine(chat.sender_id);
  const when = parseTime(chat.sent_at);
  return h('div', {
    class: `msg ${mine ? 'mine' : 'theirs'}${anchor ? ' anchor' : ''}`,
    'data-testid': 'context-bubble',
    'data-seq': chat.seq,
    'data-mine': mine ? 'true' : 'false',
    'data-anchor': anchor ? 'true' : null,
  },
  h('div', { class: 'msg-row' }, renderBubble(chat.text, chat.file)),
  h('div', { class: 'msg-meta' }, h('time', { datetime: when.toISOString() }, fmtDateTime(when))));
}

/** Pages come newest first; the view shows oldest first. */
function place(chats, where, anchorSeq) {
  const els = [...chats].reverse().map((c) => bubble(c, c.seq === anchorSeq));
  const list = $('context-list');
  if (where === 'start') list.prepend(...els);
  else list.append(...els);
  if (chats.length) {
    const seqs = chats.map((c) => c.seq);
    const oldest = Math.min(...seqs);
    const newest = Math.max(...seqs);
    context.oldest = context.oldest == null ? oldest : Math.min(context.oldest, oldest);
    context.newest = context.newest == null ? newest : Math.max(context.newest, newest);
  }
}

function openContext(body) {
  context.oldest = null;
  context.newest = null;
  $('context-list').replaceChildren();
  place(body.chats, 'end', body.anchor);
  $('context-older').hidden = false;
  $('context-newer').hidden = false;
  const dlg = $('context-dialog');
  if (!dlg.open) dlg.showModal();
  const anchor = $('context-list').querySelector('[data-anchor="true"]');
  if (anchor) anchor.scrollIntoView({ block: 'center' });
}

async function openAround(seq) {
  try {
    openContext(await api('GET', `/api/chats?around=${seq}&limit=${HISTORY_PAGE}`));
  } catch (err) {
    $('search-status').textContent = errorText(err);
  }
}

async function jumpToDay(day) {
  if (!day) return;
  try {
    const body = await api('GET', `/api/chats?date=${encodeURIComponent(day)}&limit=${HISTORY_PAGE}`);
    if (body.anchor == null) {
      $('search-status').textContent = t('search.nothing_since');
      return;
    }
    openContext(body);
  } catch (err) {
    $('search-status').textContent = errorText(err);
  }
}

async function page(direction) {
  const button = direction === 'older' ? $('context-older') : $('context-newer');
  const param = direction === 'older' ? `before=${context.oldest}` : `after=${context.newest}`;
  if ((direction === 'older' ? context.oldest : context.newest) == null) return;
  try {
    const body = await api('GET', `/api/chats?${param}&limit=${HISTORY_PAGE}`);
    if (direction === 'older') {
      const scroll = $('context-scroll');
      const fromBottom = scroll.scrollHeight - scroll.scrollTop;
      place(body.chats, 'start', null);
      scroll.scrollTop = scroll.scrollHeight - fromBottom;
    } else {
      place(body.chats, 'end', null);
    }
    if (body.chats.length < HISTORY_PAGE) button.hidden = true;
  } catch (err) {
    button.textContent = errorText(err);
  }
}

export function bindStory() {
  const dlg = $('search-dialog');
  $('search-button').addEventListener('click', () => {
    dlg.showModal();
    $('search-input').focus();
  });
  dlg.querySelector('[data-close]').addEventListener('click', () => dlg.close());
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    search(false);
  });
  $('search-more').addEventListener('click', () => search(true));
  $('date-form').addEventListener('submit', (e) => {
    e.preventDefault();
    jumpToDay($('search-date').value);
  });
  const ctx = $('context-dialog');
  ctx.querySelector('[data-close]').addEventListener('click', () => ctx.close());
  $('context-older').addEventListener('click', () => page('older'));
  $('context-newer').addEventListener('click', () => page('newer'));
}
