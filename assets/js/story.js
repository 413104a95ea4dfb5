// Finding our way back: the search dialog (hits newest first, the matched part marked, more
// on demand) and the day picker; a hit or a day opens the conversation right there: the
// timeline shows that window of history (timeline.js showWindow), pages older and newer
// chats in as it scrolls, and goes back to the present with "jump to latest".

import { t } from '../i18n.js';
import { $, h, HISTORY_PAGE } from './dom.js';
import { fmtDateTime, parseTime } from './format.js';
import { isMine, partnerName, state } from './state.js';
import { api, errorText } from './http.js';
import { hooks } from './hooks.js';
import { showWindow } from './timeline.js';

let query = '';
let lastSeq = null;
let searchGen = 0; // a newer search makes the pages of an older one land nowhere

/** The text as nodes, every case-insensitive occurrence of `needle` in a <mark>. Text only:
 * user data never becomes markup. */
function marked(text, needle) {
  const nodes = [];
  const n = needle.toLowerCase();
  if (!n) return [text];
  let at = 0;
  let plain = 0;
  while (at + needle.length <= text.length) {
    if (text.slice(at, at + needle.length).toLowerCase() === n) {
      if (at > plain) nodes.push(text.slice(plain, at));
      nodes.push(h('mark', { class: 'search-mark', 'data-testid': 'search-mark' }, text.slice(at, at + needle.length)));
      at += needle.length;
      plain = at;
    } else {
      at += 1;
    }
  }
  if (plain < text.length) nodes.push(text.slice(plain));
  return nodes;
}

function hit(chat) {
  const who = isMine(chat.sender_id) ? t('answers.me') : partnerName();
  return h('li', { class: 'search-hit' },
    h('button', {
      class: `search-hit-btn ${isMine(chat.sender_id) ? 'mine' : 'theirs'}`,
      type: 'button',
      'data-testid': 'search-hit',
      'data-seq': chat.seq,
      onclick: () => openAround(chat.seq),
    },
    h('span', { class: 'search-who muted' }, `${who} · ${fmtDateTime(parseTime(chat.sent_at))}`),
    h('span', { class: 'search-text' }, marked(chat.text || '', query))));
}

function setStatus(text) {
  $('search-status').textContent = text;
}

function failed(err) {
  if (err && err.status === 401) {
    $('search-dialog').close();
    hooks.toAuth(t('err.unauthenticated'));
    return;
  }
  setStatus(errorText(err));
}

async function search(more) {
  if (!more) {
    query = $('search-input').value.trim();
    lastSeq = null;
    $('search-results').replaceChildren();
    $('search-more').hidden = true;
  }
  if (!query) {
    setStatus('');
    $('search-input').focus();
    return;
  }
  const gen = ++searchGen;
  setStatus(t('answers.loading'));
  try {
    const before = lastSeq != null ? `&before=${encodeURIComponent(lastSeq)}` : '';
    const body = await api('GET', `/api/chats/search?q=${encodeURIComponent(query)}&limit=${HISTORY_PAGE}${before}`);
    if (gen !== searchGen) return;
    const chats = (body && body.chats) || [];
    $('search-results').append(...chats.map(hit));
    if (chats.length) lastSeq = Math.min(...chats.map((c) => c.seq));
    $('search-more').hidden = chats.length < HISTORY_PAGE;
    const count = $('search-results').children.length;
    setStatus(count ? t('search.count', { n: count }) : t('search.none'));
  } catch (err) {
    if (gen === searchGen) failed(err);
  }
}

/** A window reaches the present when fewer newer chats came than were asked for (half). */
function reachesPresent(chats, anchor) {
  return chats.filter((c) => c.seq > anchor).length < Math.floor(HISTORY_PAGE / 2);
}

function openWindow(body, anchor) {
  if (!state.chat.active) return;
  const dlg = $('search-dialog');
  if (dlg.open) dlg.close();
  showWindow((body && body.chats) || [], anchor, reachesPresent((body && body.chats) || [], anchor));
}

/** Shows the history around `seq` (a search hit, a notification clicked). */
export function openAt(seq) {
  return openAround(seq);
}

async function openAround(seq) {
  const gen = ++searchGen;
  setStatus(t('answers.loading'));
  try {
    const body = await api('GET', `/api/chats?around=${encodeURIComponent(seq)}&limit=${HISTORY_PAGE}`);
    if (gen !== searchGen) return;
    setStatus('');
    openWindow(body, typeof body.anchor === 'number' ? body.anchor : seq);
  } catch (err) {
    if (gen === searchGen) failed(err);
  }
}

async function jumpToDay(day) {
  if (!day) {
    $('search-date').focus();
    return;
  }
  const gen = ++searchGen;
  setStatus(t('answers.loading'));
  try {
    const body = await api('GET', `/api/chats?date=${encodeURIComponent(day)}&limit=${HISTORY_PAGE}`);
    if (gen !== searchGen) return;
    if (body.anchor == null) {
      setStatus(t('search.nothing_since'));
      return;
    }
    setStatus('');
    openWindow(body, body.anchor);
  } catch (err) {
    if (gen === searchGen) failed(err);
  }
}

function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

export function bindStory() {
  const dlg = $('search-dialog');
  $('search-button').addEventListener('click', () => {
    if (!$('search-date').value) $('search-date').value = today();
    dlg.showModal();
    $('search-input').focus();
    $('search-input').select();
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
}
