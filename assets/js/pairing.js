// Pairing: the screen for an unpaired user. Sends requests by username, polls the received and
// sent lists, accepts, declines, cancels; moves on to the chat once a couple exists.

import { lang, t } from '../i18n.js';
import { $, h, PAIR_POLL_MS } from './dom.js';
import { fmtDateTime, initial, parseTime } from './format.js';
import { state } from './state.js';
import { api, errorText } from './http.js';
import { hooks } from './hooks.js';
import { show } from './screens.js';
import { showChat } from './chat.js';

// This module's own bookkeeping (no one else reads it): the poll timer, the signature of the
// lists on screen (to skip re-rendering identical lists), and the last lists (for relabel).
const pairing = { timer: null, signature: '', busy: false, lastLists: null };

export function showPairing() {
  show('pair');
  $('pair-me').textContent = t('pair.signed_in_as', { name: state.me.username });
  pairing.signature = '';
  refreshPairing();
  stopPairing();
  pairing.timer = setInterval(refreshPairing, PAIR_POLL_MS);
  setTimeout(() => $('pair-username').focus(), 0);
}

export function stopPairing() {
  if (pairing.timer) clearInterval(pairing.timer);
  pairing.timer = null;
}

async function refreshPairing() {
  if (state.screen !== 'pair' || pairing.busy) return;
  pairing.busy = true;
  try {
    const me = await api('GET', '/api/me');
    if (state.screen !== 'pair') return;
    state.me = me.user;
    if (me.couple) {
      state.couple = me.couple;
      showChat();
      return;
    }
    const lists = await api('GET', '/api/requests');
    if (state.screen === 'pair') renderRequests(lists);
  } catch (err) {
    if (err.status === 401) hooks.toAuth(t('err.unauthenticated'));
  } finally {
    pairing.busy = false;
  }
}

function renderRequests(lists, force = false) {
  const received = (lists && lists.received) || [];
  const sent = (lists && lists.sent) || [];
  const signature = JSON.stringify([received.map((r) => r.id), sent.map((r) => r.id), lang()]);
  pairing.lastLists = lists;
  if (!force && signature === pairing.signature) return;
  pairing.signature = signature;
  const rl = $('received-list');
  const sl = $('sent-list');
  const focusedId = document.activeElement && document.activeElement.closest && document.activeElement.closest('.request')?.dataset.requestId;
  const focusedTestId = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.testid;
  rl.replaceChildren(...received.map((r) => requestItem(r, 'received')));
  sl.replaceChildren(...sent.map((r) => requestItem(r, 'sent')));
  $('received-empty').hidden = received.length > 0;
  $('sent-empty').hidden = sent.length > 0;
  if (focusedId) {
    const again = document.querySelector(`.request[data-request-id="${CSS.escape(focusedId)}"] [data-testid="${CSS.escape(focusedTestId || '')}"]`);
    if (again) again.focus();
  }
}

function requestItem(req, kind) {
  const other = kind === 'received' ? req.from : req.to;
  const name = (other && other.username) || '?';
  const when = parseTime(req.created_at);
  const actions = kind === 'received'
    ? [
      h('button', { class: 'btn btn-primary btn-small', type: 'button', 'data-testid': 'accept-request', onclick: () => acceptRequest(req) }, t('pair.accept')),
      h('button', { class: 'btn btn-secondary btn-small', type: 'button', 'data-testid': 'decline-request', onclick: () => removeRequest(req) }, t('pair.decline')),
    ]
    : [h('button', { class: 'btn btn-secondary btn-small', type: 'button', 'data-testid': 'cancel-request', onclick: () => removeRequest(req) }, t('pair.cancel'))];
  return h('li', { class: 'request', 'data-testid': `${kind}-request`, 'data-request-id': req.id, 'data-username': name },
    h('span', { class: 'avatar', 'aria-hidden': 'true' }, initial(name)),
    h('div', { class: 'request-text' },
      h('strong', null, t(kind === 'received' ? 'pair.from' : 'pair.to', { name })),
      h('time', { datetime: req.created_at }, fmtDateTime(when))),
    h('div', { class: 'request-actions' }, actions));
}

function setPairStatus(text, kind) {
  const el = $('pair-status');
  el.textContent = text;
  el.classList.toggle('is-error', kind === 'error');
  el.classList.toggle('is-ok', kind === 'ok');
}

async function onPairSubmit(event) {
  event.preventDefault();
  const input = $('pair-username');
  const username = input.value.trim();
  if (!username) {
    setPairStatus(t('err.invalid_input'), 'error');
    input.focus();
    return;
  }
  if (state.me && username.toLowerCase() === state.me.username.toLowerCase()) {
    setPairStatus(t('err.self'), 'error');
    input.focus();
    return;
  }
  $('pair-send').disabled = true;
  try {
    await api('POST', '/api/requests', { username });
    input.value = '';
    setPairStatus(t('pair.sent_ok', { name: username }), 'ok');
    await refreshPairing();
  } catch (err) {
    if (err.status === 401) return hooks.toAuth(t('err.unauthenticated'));
    setPairStatus(errorText(err, { not_found: 'err.not_found_user' }), 'error');
    input.focus();
  } finally {
    $('pair-send').disabled = false;
  }
}

async function acceptRequest(req) {
  try {
    const res = await api('POST', `/api/requests/${encodeURIComponent(req.id)}/accept`);
    const me = await api('GET', '/api/me').catch(() => null);
    state.couple = (me && me.couple) || (res && res.couple) || state.couple;
    if (state.couple) showChat();
  } catch (err) {
    if (err.status === 401) return hooks.toAuth(t('err.unauthenticated'));
    setPairStatus(errorText(err), 'error');
    refreshPairing();
  }
}

async function removeRequest(req) {
  try {
    await api('DELETE', `/api/requests/${encodeURIComponent(req.id)}`);
  } catch (err) {
    if (err.status === 401) return hooks.toAuth(t('err.unauthenticated'));
    if (err.code !== 'not_found') setPairStatus(errorText(err), 'error');
  }
  pairing.signature = '';
  refreshPairing();
}

/** The language changed: rebuild what was made from strings. */
export function relabelPairing() {
  $('pair-me').textContent = t('pair.signed_in_as', { name: state.me.username });
  if (pairing.lastLists) renderRequests(pairing.lastLists, true);
  setPairStatus('', null);
}

export function bindPairing() {
  $('pair-form').addEventListener('submit', onPairSubmit);
}
