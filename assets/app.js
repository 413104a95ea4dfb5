// Duet browser client: plain ES module, no build step, no dependencies.
// Speaks the wire contract in PROTOCOL.md (HTTP under /api, WebSocket at /ws).
//
// Rules this file keeps: user data only ever reaches the DOM through textContent or
// attributes (never innerHTML), and message text is never written to the console.
//
// Stable data-testid attributes (for end-to-end tests):
//   Screens:     loading-screen, auth-screen, pairing-screen, chat-screen
//   Auth:        auth-form, auth-username, auth-password, login-button, signup-button, auth-error
//   Everywhere:  lang-toggle, logout-button (one element each, moved into the visible screen;
//                in the chat, logout-button sits in the menu opened by menu-button), toast
//   Pairing:     pair-username, pair-send, pair-status, received-list, sent-list,
//                received-request / sent-request (li; data-request-id, data-username),
//                accept-request, decline-request, cancel-request
//   Chat header: partner-name, partner-presence (data-online="true|false"),
//                connection-state (data-state="connecting|online|reconnecting|offline"),
//                reconnect-now, answers-link, menu-button, breakup-button,
//                breakup-banner, restore-button
//   Messages:    message-list, day-separator, bubble (data-seq, data-mine="true|false",
//                data-chat-id, data-client-id, data-status="sent|pending|uploading|failed"),
//                bubble-text, bubble-time, read-mark, delete-button, retry-button,
//                discard-button, upload-progress, file-image, file-chip, question-event
//                (data-question-id), typing-indicator, new-messages-button
//   Composer:    message-input, send-button, attach-button, attach-input (the file input)
//   Questions:   question-card (data-question-id), question-text, answer-input,
//                answer-submit, question-error
//   Answers:     answers-page (the dialog), answers-list, answer-item (data-question-id),
//                answer-mine, answer-partner, answers-close
//   Dialogs:     confirm-dialog, confirm-ok, confirm-cancel

import { t, lang, setLang, otherLang, applyStatic, has } from './i18n.js';

// ---------------------------------------------------------------------------------------------
// Small helpers

const $ = (id) => document.getElementById(id);

const HISTORY_PAGE = 50;
const MAX_TEXT = 4000;
const TYPING_SEND_EVERY_MS = 2500;
const TYPING_SHOW_MS = 5000;
const PAIR_POLL_MS = 3000;
const ME_POLL_MS = 30000;
const ACK_TIMEOUT_MS = 15000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30000;
const IMAGE_MAX_W = 320;
const IMAGE_MAX_H = 360;

/** Creates an element. Strings among children become text nodes, never markup. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value == null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      // Through the CSSOM: a style attribute would be refused by the Content-Security-Policy.
      else if (key === 'style') el.style.cssText = String(value);
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const ICONS = {
  heart: { fill: true, d: ['M12 21.2 3.9 13.2a5.4 5.4 0 0 1 7.6-7.7l.5.5.5-.5a5.4 5.4 0 0 1 7.6 7.7z'] },
  heartOff: { d: ['M20.8 4.6a5.5 5.5 0 0 0-7.8 0L12 5.7l-1-1.1a5.5 5.5 0 0 0-7.8 7.8l1 1L12 21.2l7.8-7.8 1-1a5.5 5.5 0 0 0 0-7.8z', 'M12 5.7 10 10l4 2.5-2 4'] },
  send: { d: ['M22 2 11 13', 'M22 2 15 22 11 13 2 9z'] },
  clip: { d: ['M21.4 11.1 12.3 20.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5'] },
  trash: { d: ['M3 6h18', 'M19 6l-1 14a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2L5 6', 'M10 11v6', 'M14 11v6', 'M9 6V4a1 1 0 0 1 1-1h4a1 1 0 0 1 1 1v2'] },
  more: { d: ['M5 12h.01', 'M12 12h.01', 'M19 12h.01'], width: 3.2 },
  book: { d: ['M2 4h6a4 4 0 0 1 4 4v13a3 3 0 0 0-3-3H2z', 'M22 4h-6a4 4 0 0 0-4 4v13a3 3 0 0 1 3-3h7z'] },
  file: { d: ['M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z', 'M14 2v6h6'] },
  x: { d: ['M18 6 6 18', 'M6 6l12 12'] },
  globe: { d: ['M12 2a10 10 0 1 0 0 20a10 10 0 1 0 0-20', 'M2 12h20', 'M12 2a15 15 0 0 1 4 10 15 15 0 0 1-4 10 15 15 0 0 1-4-10 15 15 0 0 1 4-10z'] },
  logout: { d: ['M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4', 'M16 17l5-5-5-5', 'M21 12H9'] },
  eye: { d: ['M1 12s4-8 11-8 11 8 11 8-4 8-11 8S1 12 1 12z', 'M12 9a3 3 0 1 0 0 6a3 3 0 1 0 0-6'] },
  sparkle: { d: ['M12 3v4', 'M12 17v4', 'M3 12h4', 'M17 12h4', 'M6 6l2.5 2.5', 'M15.5 15.5 18 18', 'M6 18l2.5-2.5', 'M15.5 8.5 18 6'] },
};

function icon(name) {
  const spec = ICONS[name];
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  if (spec.fill) {
    svg.setAttribute('fill', 'currentColor');
  } else {
    svg.setAttribute('fill', 'none');
    svg.setAttribute('stroke', 'currentColor');
    svg.setAttribute('stroke-width', String(spec.width || 2));
    svg.setAttribute('stroke-linecap', 'round');
    svg.setAttribute('stroke-linejoin', 'round');
  }
  for (const d of spec.d) {
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

function fillIcons(root = document) {
  for (const el of root.querySelectorAll('[data-icon]')) {
    if (!el.firstChild && ICONS[el.dataset.icon]) el.append(icon(el.dataset.icon));
  }
}

/** A v4 UUID; crypto.randomUUID needs a secure context, so fall back to getRandomValues. */
function uuid() {
  if (typeof crypto.randomUUID === 'function') {
    try {
      return crypto.randomUUID();
    } catch {
      // Not a secure context: build one by hand below.
    }
  }
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function locale() {
  return lang() === 'ko' ? 'ko-KR' : 'en';
}

function parseTime(value) {
  const d = value ? new Date(value) : new Date();
  return Number.isNaN(d.getTime()) ? new Date() : d;
}

function dayKey(d) {
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

function fmtTime(d) {
  return new Intl.DateTimeFormat(locale(), { hour: 'numeric', minute: '2-digit' }).format(d);
}

function fmtDay(d) {
  const now = new Date();
  if (dayKey(d) === dayKey(now)) return t('chat.today');
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (dayKey(d) === dayKey(y)) return t('chat.yesterday');
  const opts = { weekday: 'long', month: 'long', day: 'numeric' };
  if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
  return new Intl.DateTimeFormat(locale(), opts).format(d);
}

function fmtDateTime(d) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }).format(d);
}

function fmtSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

function initial(name) {
  const first = Array.from(String(name || '?').trim())[0];
  return first || '?';
}

const EMOJI_ONLY = /^(?:\p{Extended_Pictographic}|\p{Emoji_Modifier}|\p{Regional_Indicator}|\u200d|\ufe0f|\s)+$/u;
function isEmojiOnly(text) {
  if (!text || !EMOJI_ONLY.test(text)) return false;
  const count = Array.from(text.replace(/\s/g, '').matchAll(/\p{Extended_Pictographic}|\p{Regional_Indicator}{2}/gu)).length;
  return count > 0 && count <= 3;
}

// ---------------------------------------------------------------------------------------------
// HTTP

class ApiError extends Error {
  constructor(status, code, message) {
    super(code);
    this.status = status;
    this.code = code;
    this.serverMessage = message || '';
  }
}

function codeForStatus(status) {
  switch (status) {
    case 0: return 'network';
    case 400: case 422: return 'invalid_input';
    case 401: return 'unauthenticated';
    case 403: return 'forbidden_origin';
    case 404: return 'not_found';
    case 405: case 501: return 'not_implemented';
    case 413: return 'too_large';
    case 429: return 'rate_limited';
    case 503: return 'unavailable';
    default: return 'internal';
  }
}

async function api(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body !== undefined ? { 'Content-Type': 'application/json', Accept: 'application/json' } : { Accept: 'application/json' },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiError(0, 'network', '');
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || codeForStatus(res.status), err.message);
  }
  return data;
}

/** A friendly, localized text for an error code; `overrides` maps codes to i18n keys. */
function errorText(err, overrides = {}) {
  const code = (err && err.code) || 'unknown';
  if (overrides[code]) return t(overrides[code]);
  if (code === 'invalid_input' && lang() === 'en' && err.serverMessage) {
    const m = err.serverMessage.trim();
    return m.charAt(0).toUpperCase() + m.slice(1) + (/[.!?]$/.test(m) ? '' : '.');
  }
  if (has(`err.${code}`)) return t(`err.${code}`);
  return err.serverMessage || t('err.unknown');
}

// ---------------------------------------------------------------------------------------------
// App-wide state and screens

const app = {
  me: null, // { id, username }
  couple: null, // { id, since, partner: { id, username }, delete_at }
  screen: 'loading',
};

function toast(text, ms = 3800) {
  const el = h('div', { class: 'toast', 'data-testid': 'toast' }, text);
  $('toasts').append(el);
  setTimeout(() => el.remove(), ms);
}

function placeShared(screen) {
  const langBtn = $('lang-toggle');
  const logoutBtn = $('logout-button');
  const parking = $('parking');
  if (screen === 'auth') {
    document.querySelector('[data-slot="lang"]').append(langBtn);
    parking.append(logoutBtn);
  } else if (screen === 'pair') {
    document.querySelector('[data-slot="pair-tools"]').append(langBtn, logoutBtn);
  } else if (screen === 'chat') {
    document.querySelector('[data-slot="chat-tools"]').append(langBtn, logoutBtn);
  } else {
    parking.append(langBtn, logoutBtn);
  }
}

function show(screen) {
  app.screen = screen;
  for (const name of ['loading', 'auth', 'pair', 'chat']) {
    $(`screen-${name}`).hidden = name !== screen;
  }
  placeShared(screen);
  if (screen !== 'pair') stopPairing();
  if (screen !== 'chat') leaveChat();
}

async function boot() {
  fillIcons();
  applyStatic();
  updateLangButton();
  bindStatic();
  await loadMe();
}

async function loadMe() {
  show('loading');
  $('loading-text').textContent = t('app.loading');
  $('loading-retry').hidden = true;
  try {
    const me = await api('GET', '/api/me');
    route(me);
  } catch (err) {
    if (err.status === 401) {
      showAuth();
    } else {
      $('loading-text').textContent = `${t('app.unreachable')} ${errorText(err)}`;
      $('loading-retry').hidden = false;
      $('loading-retry').focus();
    }
  }
}

function route(me) {
  const previousUser = app.me && app.me.id;
  app.me = me.user;
  app.couple = me.couple;
  if (previousUser && previousUser !== app.me.id) resetChatState();
  if (app.couple) showChat();
  else showPairing();
}

function toAuth(message) {
  app.me = null;
  app.couple = null;
  resetChatState();
  showAuth(message);
}

// ---------------------------------------------------------------------------------------------
// Sign up / log in

function showAuth(message) {
  show('auth');
  const err = $('auth-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('auth-password').value = '';
  setTimeout(() => $('auth-username').focus(), 0);
}

function validUsername(name) {
  const n = Array.from(name).length;
  return n >= 3 && n <= 32 && /^[\p{L}\p{M}\p{N}_.-]+$/u.test(name);
}

function setAuthError(text, fields = []) {
  const err = $('auth-error');
  err.textContent = text;
  err.hidden = !text;
  for (const id of ['auth-username', 'auth-password']) {
    $(id).setAttribute('aria-invalid', fields.includes(id) ? 'true' : 'false');
  }
  if (fields[0]) $(fields[0]).focus();
}

async function onAuthSubmit(event) {
  event.preventDefault();
  const action = (event.submitter && event.submitter.value) || 'login';
  const username = $('auth-username').value.trim();
  const password = $('auth-password').value;
  setAuthError('');
  if (!username || !password) {
    setAuthError(t('err.invalid_input'), [!username ? 'auth-username' : 'auth-password']);
    return;
  }
  if (action === 'signup') {
    if (!validUsername(username)) return setAuthError(t('err.username_rule'), ['auth-username']);
    const plen = Array.from(password).length;
    if (plen < 8 || plen > 128) return setAuthError(t('err.password_rule'), ['auth-password']);
  }
  const buttons = [$('login-button'), $('signup-button')];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await api('POST', action === 'signup' ? '/api/signup' : '/api/login', { username, password });
    const me = await api('GET', '/api/me');
    $('auth-password').value = '';
    route(me);
  } catch (err) {
    const fields = {
      invalid_credentials: ['auth-password'],
      username_taken: ['auth-username'],
      invalid_input: [],
    }[err.code] || [];
    setAuthError(errorText(err), fields);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

// ---------------------------------------------------------------------------------------------
// Pairing

const pairing = { timer: null, signature: '', busy: false };

function showPairing() {
  show('pair');
  $('pair-me').textContent = t('pair.signed_in_as', { name: app.me.username });
  pairing.signature = '';
  refreshPairing();
  stopPairing();
  pairing.timer = setInterval(refreshPairing, PAIR_POLL_MS);
  setTimeout(() => $('pair-username').focus(), 0);
}

function stopPairing() {
  if (pairing.timer) clearInterval(pairing.timer);
  pairing.timer = null;
}

async function refreshPairing() {
  if (app.screen !== 'pair' || pairing.busy) return;
  pairing.busy = true;
  try {
    const me = await api('GET', '/api/me');
    if (app.screen !== 'pair') return;
    app.me = me.user;
    if (me.couple) {
      app.couple = me.couple;
      showChat();
      return;
    }
    const lists = await api('GET', '/api/requests');
    if (app.screen === 'pair') renderRequests(lists);
  } catch (err) {
    if (err.status === 401) toAuth(t('err.unauthenticated'));
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
  if (app.me && username.toLowerCase() === app.me.username.toLowerCase()) {
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
    if (err.status === 401) return toAuth(t('err.unauthenticated'));
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
    app.couple = (me && me.couple) || (res && res.couple) || app.couple;
    if (app.couple) showChat();
  } catch (err) {
    if (err.status === 401) return toAuth(t('err.unauthenticated'));
    setPairStatus(errorText(err), 'error');
    refreshPairing();
  }
}

async function removeRequest(req) {
  try {
    await api('DELETE', `/api/requests/${encodeURIComponent(req.id)}`);
  } catch (err) {
    if (err.status === 401) return toAuth(t('err.unauthenticated'));
    if (err.code !== 'not_found') setPairStatus(errorText(err), 'error');
  }
  pairing.signature = '';
  refreshPairing();
}

// ---------------------------------------------------------------------------------------------
// Chat state

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
    lastTypingSent: 0,
    mePoll: null,
    lastDeleteAt: 0,
    epoch: 0, // bumped when the timeline is thrown away, so late history pages are dropped
  };
}

let chat = freshChat();

function resetChatState() {
  leaveChat();
  for (const p of chat.pending.values()) if (p.preview) URL.revokeObjectURL(p.preview);
  chat = freshChat();
  $('timeline').replaceChildren();
  $('pending-items').replaceChildren();
  $('history-status').textContent = '';
  hideQuestionCard();
}

function partnerName() {
  return (app.couple && app.couple.partner && app.couple.partner.username) || '';
}

function partnerId() {
  return app.couple && app.couple.partner && app.couple.partner.id;
}

function isMine(senderId) {
  return app.me && senderId === app.me.id;
}

function showChat() {
  if (app.couple && chat.coupleId && chat.coupleId !== app.couple.id) resetChatState();
  show('chat');
  chat.active = true;
  chat.coupleId = app.couple.id;
  const name = partnerName();
  $('partner-name').textContent = name;
  $('partner-avatar').textContent = initial(name);
  document.title = `Duet · ${name}`;
  setPresence(chat.partnerOnline);
  updateBanner();
  updateEmpty();
  clearInterval(chat.mePoll);
  chat.mePoll = setInterval(pollMe, ME_POLL_MS);
  connect();
  setTimeout(() => {
    if (!$('question-card').hidden) $('answer-input').focus();
    else $('message-input').focus();
  }, 0);
}

function leaveChat() {
  if (!chat.active) return;
  chat.active = false;
  chat.gen += 1; // handlers of the current socket become no-ops
  if (chat.ws) {
    try { chat.ws.close(1000, 'bye'); } catch { /* already closed */ }
  }
  chat.ws = null;
  chat.synced = false;
  clearTimeout(chat.retryTimer);
  clearInterval(chat.countdownTimer);
  clearInterval(chat.mePoll);
  clearTimeout(chat.typingTimer);
  clearTimeout(chat.readTimer);
  for (const p of chat.pending.values()) clearTimeout(p.timer);
  $('typing').hidden = true;
  closeMenu();
  if ($('answers-dialog').open) $('answers-dialog').close();
  document.title = 'Duet';
}

async function pollMe() {
  if (app.screen !== 'chat') return;
  try {
    const me = await api('GET', '/api/me');
    if (!me.couple) {
      app.couple = null;
      resetChatState();
      showPairing();
      return;
    }
    app.couple = me.couple;
    updateBanner();
  } catch (err) {
    if (err.status === 401) toAuth(t('err.unauthenticated'));
  }
}

// ---------------------------------------------------------------------------------------------
// Connection

function setConn(state, seconds) {
  const el = $('conn');
  const prev = el.dataset.state;
  el.dataset.state = state;
  let label;
  if (state === 'online') label = t('conn.online');
  else if (state === 'connecting') label = chat.everSynced ? t('conn.reconnecting_now') : t('conn.connecting');
  else if (state === 'reconnecting') label = t('conn.reconnecting', { s: seconds });
  else label = t('conn.offline');
  $('conn-label').textContent = label;
  $('reconnect-now').hidden = state !== 'reconnecting' && state !== 'offline';
  if (prev !== state || !$('sr-conn').textContent) {
    // Announce transitions only, not every second of a countdown.
    $('sr-conn').textContent = state === 'reconnecting' ? t('conn.reconnecting_now') : label;
  }
}

function wsUrl() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const after = chat.lastSeq != null ? `?after=${encodeURIComponent(chat.lastSeq)}` : '';
  return `${proto}//${location.host}/ws${after}`;
}

function connect() {
  if (!chat.active) return;
  clearTimeout(chat.retryTimer);
  clearInterval(chat.countdownTimer);
  chat.retryTimer = null;
  if (chat.ws) {
    try { chat.ws.close(1000); } catch { /* ignore */ }
  }
  const gen = ++chat.gen;
  chat.gotHello = false;
  chat.synced = false;
  setConn('connecting');
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  chat.ws = ws;
  ws.onmessage = (event) => {
    if (gen !== chat.gen) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame && typeof frame.type === 'string') handleFrame(frame);
  };
  ws.onclose = (event) => {
    if (gen !== chat.gen) return;
    chat.ws = null;
    onSocketClosed(event.code);
  };
  ws.onerror = () => { /* a close event follows */ };
}

async function onSocketClosed(code) {
  const hadHello = chat.gotHello;
  const lived = hadHello ? Date.now() - chat.helloAt : 0;
  chat.synced = false;
  chat.gotHello = false;
  for (const p of chat.pending.values()) clearTimeout(p.timer);
  $('typing').hidden = true;
  updateAnswerButton();
  if (!chat.active) return;
  if (code === 4001) {
    toAuth(t('err.unauthenticated'));
    return;
  }
  if (code === 4002) {
    // The break-up fell due: the couple is gone, both of us may pair again.
    app.couple = null;
    resetChatState();
    showPairing();
    return;
  }
  if (!hadHello) {
    // The upgrade may have been refused (401, 409 not_paired...): the browser hides the
    // status, so ask the API what state we are in.
    setConn('connecting');
    try {
      const me = await api('GET', '/api/me');
      if (!chat.active) return;
      app.me = me.user;
      if (!me.couple) {
        app.couple = null;
        resetChatState();
        showPairing();
        return;
      }
      if (me.couple.id !== chat.coupleId) {
        app.couple = me.couple;
        resetChatState();
        showChat();
        return;
      }
      app.couple = me.couple;
      updateBanner();
    } catch (err) {
      if (err.status === 401) {
        toAuth(t('err.unauthenticated'));
        return;
      }
    }
    if (!chat.active) return;
  }
  if (lived > 10000) chat.attempt = 0;
  scheduleReconnect();
}

function scheduleReconnect() {
  if (!chat.active) return;
  clearTimeout(chat.retryTimer);
  clearInterval(chat.countdownTimer);
  const cap = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** chat.attempt);
  chat.attempt = Math.min(chat.attempt + 1, 20);
  const delay = Math.random() * cap; // full jitter
  chat.retryAt = Date.now() + delay;
  chat.retryTimer = setTimeout(connect, delay);
  const tick = () => {
    if (!navigator.onLine) {
      setConn('offline');
      return;
    }
    const left = Math.max(1, Math.ceil((chat.retryAt - Date.now()) / 1000));
    setConn('reconnecting', left);
  };
  tick();
  chat.countdownTimer = setInterval(tick, 250);
}

function reconnectNow() {
  if (chat.active && !chat.ws) connect();
}

function wsSend(frame) {
  if (!chat.ws || chat.ws.readyState !== WebSocket.OPEN) return false;
  try {
    chat.ws.send(JSON.stringify(frame));
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Frames

function bumpSeq(seq) {
  if (typeof seq !== 'number') return;
  if (chat.lastSeq == null || seq > chat.lastSeq) chat.lastSeq = seq;
}

function handleFrame(f) {
  switch (f.type) {
    case 'hello': return onHello(f);
    case 'chat': return onChat(f);
    case 'deleted': return onDeleted(f);
    case 'question': return onQuestion(f);
    case 'answered': return onAnswered(f);
    case 'synced': return onSynced(f);
    case 'ack': return onAck(f);
    case 'error': return onError(f);
    case 'presence': return onPresence(f);
    case 'typing': return onTyping(f);
    case 'read': return onRead(f);
    case 'couple': return onCouple(f);
    default: return undefined; // unknown frame types are extensions: ignore
  }
}

// Extension frame: the break-up was scheduled or taken back, by either of us.
function onCouple(f) {
  if (!app.couple) return;
  app.couple.delete_at = f.delete_at || null;
  updateBanner();
}

function onHello(f) {
  const stale = (chat.coupleId && f.couple_id && f.couple_id !== chat.coupleId)
    || (chat.lastSeq != null && typeof f.last_seq === 'number' && f.last_seq < chat.lastSeq);
  if (stale) {
    // Another couple, or the server forgot history we hold: start over without `after`.
    const coupleId = f.couple_id;
    resetTimeline();
    chat.coupleId = coupleId;
    connect();
    return;
  }
  chat.gotHello = true;
  chat.helloAt = Date.now();
  if (f.couple_id) chat.coupleId = f.couple_id;
  if (f.partner_id && app.couple && app.couple.partner && !app.couple.partner.id) app.couple.partner.id = f.partner_id;
  setPresence(!!f.partner_online);
  if (typeof f.partner_read_seq === 'number') setPartnerRead(f.partner_read_seq);
  setConn('online');
}

function resetTimeline() {
  chat.epoch += 1;
  chat.records.clear();
  chat.byId.clear();
  chat.questions.clear();
  chat.lastSeq = null;
  chat.readableSeq = 0;
  chat.readSent = 0;
  chat.partnerReadSeq = 0;
  chat.readMarkSeq = null;
  chat.hasMore = true;
  chat.everSynced = false;
  $('timeline').replaceChildren();
  hideQuestionCard();
}

function onChat(f) {
  bumpSeq(f.seq);
  if (f.deleted) {
    // Extension: a replay passing a chat deleted since (its `deleted` frame follows).
    removeChat(f.id);
    return;
  }
  const existing = chat.records.get(f.seq);
  if (existing) {
    // Same seq seen already (an ack got there first, or a resume overlapped): refresh it.
    if (existing.kind === 'chat') {
      Object.assign(existing, pickChat(f));
      replaceRecordEl(existing);
    }
    return;
  }
  if (f.client_id && isMine(f.sender_id)) {
    const p = chat.pending.get(f.client_id);
    if (p) dropPending(p);
  }
  const stick = nearBottom();
  const rec = { kind: 'chat', ...pickChat(f) };
  if (!isMine(f.sender_id)) chat.readableSeq = Math.max(chat.readableSeq, f.seq);
  insertRecord(rec);
  afterInsert(stick, isMine(f.sender_id));
  if (chat.synced && !isMine(f.sender_id)) {
    $('typing').hidden = true;
    announce(rec);
  }
  scheduleRead();
}

function pickChat(f) {
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

function onDeleted(f) {
  bumpSeq(f.seq);
  removeChat(f.chat_id);
}

function onAck(f) {
  const p = chat.pending.get(f.client_id);
  if (!p) return;
  dropPending(p);
  if (chat.records.has(f.seq)) return;
  // The chat frame usually follows; show it at its seq right away. lastSeq is not moved
  // by an ack: earlier events may still be on their way.
  const stick = nearBottom();
  insertRecord({
    kind: 'chat',
    seq: f.seq,
    id: f.id,
    sender_id: app.me.id,
    text: p.text,
    file: p.file,
    sent_at: p.created,
    client_id: p.client_id,
    preview: p.preview,
  });
  afterInsert(stick, true);
}

function onSynced(f) {
  bumpSeq(f.last_seq);
  const first = !chat.everSynced;
  chat.synced = true;
  chat.everSynced = true;
  setConn('online');
  updateEmpty();
  if (first) scrollToBottom();
  // Resend what was waiting: same client_id, so the server will not duplicate it.
  for (const p of chat.pending.values()) {
    if (p.status === 'pending') transmit(p);
  }
  updateQuestionCard();
  updateAnswerButton();
  scheduleRead();
  if (first) fillViewport();
}

function onError(f) {
  if (f.client_id && chat.pending.has(f.client_id)) {
    failPending(chat.pending.get(f.client_id), f.code);
  }
  if (f.code === 'answer_required' && f.question_id != null) {
    let q = chat.questions.get(f.question_id);
    if (!q) {
      q = { id: f.question_id, seq: null, text: '', keyword: '', asked_at: null, me: false, partner: false };
      chat.questions.set(q.id, q);
    }
    q.me = false;
    updateQuestionCard(true);
    return;
  }
  const forAnswer = chat.answering != null && !f.client_id
    && (f.question_id == null || f.question_id === chat.answering);
  if (forAnswer) {
    chat.answering = null;
    updateAnswerButton();
    const el = $('q-error');
    el.textContent = errorText({ code: f.code, serverMessage: f.message });
    el.hidden = false;
    return;
  }
  if (f.client_id) return;
  console.debug('duet: server error frame', f.code);
  if (Date.now() - chat.lastDeleteAt < 5000 && (f.code === 'not_found' || f.code === 'forbidden')) {
    toast(t('err.delete_failed'));
  } else if (f.code !== 'rate_limited' && f.code !== 'invalid_input') {
    toast(errorText({ code: f.code, serverMessage: f.message }));
  }
}

function onPresence(f) {
  if (f.user_id && app.me && f.user_id === app.me.id) return;
  setPresence(!!f.online);
  if (!f.online) $('typing').hidden = true;
}

function setPresence(online) {
  chat.partnerOnline = online;
  const el = $('partner-presence');
  el.dataset.online = online ? 'true' : 'false';
  $('presence-label').textContent = online ? t('chat.partner_online') : t('chat.partner_offline');
}

function onTyping(f) {
  if (app.me && f.user_id === app.me.id) return;
  $('typing-text').textContent = t('chat.typing', { name: partnerName() });
  const stick = nearBottom();
  $('typing').hidden = false;
  if (stick) scrollToBottom();
  clearTimeout(chat.typingTimer);
  chat.typingTimer = setTimeout(() => { $('typing').hidden = true; }, TYPING_SHOW_MS);
}

function onRead(f) {
  if (app.me && f.user_id === app.me.id) return;
  setPartnerRead(f.seq);
}

function setPartnerRead(seq) {
  if (typeof seq !== 'number' || seq < chat.partnerReadSeq) return;
  chat.partnerReadSeq = seq;
  updateReadMark();
}

// ---------------------------------------------------------------------------------------------
// Timeline rendering

function insertRecord(rec) {
  chat.records.set(rec.seq, rec);
  if (rec.kind === 'chat') chat.byId.set(rec.id, rec.seq);
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

function replaceRecordEl(rec) {
  const el = renderRecord(rec);
  if (rec.el && rec.el.parentNode) rec.el.replaceWith(el);
  rec.el = el;
  refreshLayout();
}

function removeChat(chatId) {
  const seq = chat.byId.get(chatId);
  if (seq == null) return;
  const rec = chat.records.get(seq);
  chat.byId.delete(chatId);
  chat.records.delete(seq);
  if (rec && rec.el) {
    const hadFocus = rec.el.contains(document.activeElement);
    rec.el.remove();
    if (hadFocus) $('message-input').focus();
  }
  refreshLayout();
  updateEmpty();
}

function renderAllRecords() {
  const stick = nearBottom();
  const recs = [...chat.records.values()].sort((a, b) => a.seq - b.seq);
  for (const rec of recs) rec.el = renderRecord(rec);
  $('timeline').replaceChildren(...recs.map((r) => r.el));
  for (const p of chat.pending.values()) {
    const el = renderPending(p);
    if (p.el) p.el.replaceWith(el);
    p.el = el;
  }
  refreshLayout();
  if (stick) scrollToBottom();
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

function renderBubble(text, file, preview) {
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

function fileUrl(file) {
  return `/api/files/${encodeURIComponent(file.id)}`;
}

function renderFile(file, preview) {
  const type = String(file.content_type || '');
  const name = String(file.name || 'file');
  if (type.startsWith('image/') || (preview && !file.id)) {
    const img = h('img', {
      class: 'file-image',
      src: preview || fileUrl(file),
      alt: name,
      loading: 'lazy',
      decoding: 'async',
      'data-testid': 'file-image',
    });
    const w = Number(file.width);
    const hgt = Number(file.height);
    if (w > 0 && hgt > 0) {
      // Reserve the image's box before it loads so the list does not jump.
      const scale = Math.min(1, IMAGE_MAX_W / w, IMAGE_MAX_H / hgt);
      img.width = w;
      img.height = hgt;
      img.style.width = `${Math.round(w * scale)}px`;
      img.style.aspectRatio = `${w} / ${hgt}`;
    } else {
      img.classList.add('no-size');
      img.addEventListener('load', () => img.classList.remove('no-size'), { once: true });
    }
    if (!file.id) return img;
    return h('a', { class: 'file-image-link', href: fileUrl(file), target: '_blank', rel: 'noopener' }, img);
  }
  const chip = h(file.id ? 'a' : 'div', {
    class: 'file-chip',
    'data-testid': 'file-chip',
    href: file.id ? fileUrl(file) : null,
    download: file.id ? name : null,
    'aria-label': file.id ? t('chat.download', { name }) : null,
  },
  h('span', { class: 'file-icon', 'aria-hidden': 'true' }, icon('file')),
  h('span', { class: 'file-text' },
    h('span', { class: 'file-name' }, name),
    h('span', { class: 'file-size' }, fmtSize(file.size))));
  return chip;
}

function renderQuestionEvent(rec) {
  const q = chat.questions.get(rec.question_id) || {};
  let state = t('q.waiting');
  if (q.me && q.partner) state = t('q.answered_both');
  else if (q.me) state = t('q.answered_me');
  else if (q.partner) state = t('q.answered_partner', { name: partnerName() });
  return h('div', {
    class: 'question-event',
    'data-testid': 'question-event',
    'data-seq': rec.seq,
    'data-question-id': rec.question_id,
    'data-day': dayKey(parseTime(rec.asked_at)),
  },
  h('p', { class: 'q-kicker' }, icon('sparkle'), t('chat.question_event')),
  h('p', { class: 'q-event-text' }, rec.text || q.text || ''),
  h('p', { class: 'q-event-state' }, state));
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
      const rec = chat.records.get(Number(el.dataset.seq));
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

function updateReadMark() {
  let best = null;
  for (const rec of chat.records.values()) {
    if (rec.kind === 'chat' && isMine(rec.sender_id) && rec.seq <= chat.partnerReadSeq && (best == null || rec.seq > best.seq)) best = rec;
  }
  const current = document.querySelector('#timeline [data-testid="read-mark"]');
  if (best && current && current.closest('[data-seq]') === best.el) return;
  if (current) current.remove();
  chat.readMarkSeq = best ? best.seq : null;
  if (best && best.el) {
    const meta = best.el.querySelector('.msg-meta');
    if (meta) meta.append(h('span', { class: 'read-mark', 'data-testid': 'read-mark' }, t('chat.read')));
  }
}

function updateEmpty() {
  const empty = chat.everSynced && chat.records.size === 0 && chat.pending.size === 0;
  $('chat-empty').hidden = !empty;
}

function nearBottom() {
  const m = $('messages');
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

// Whether the list was at its bottom before the last change of its size (question card,
// on-screen keyboard, window resize): then it is kept there.
let stuckToBottom = true;

function scrollToBottom() {
  const m = $('messages');
  m.scrollTop = m.scrollHeight;
  stuckToBottom = true;
  $('new-messages').hidden = true;
}

function afterInsert(stick, mine) {
  updateEmpty();
  if (!chat.everSynced) return; // the first sync scrolls once at the end
  if (stick || mine) scrollToBottom();
  else $('new-messages').hidden = false;
}

function announce(rec) {
  const name = partnerName();
  const text = rec.file && !rec.text
    ? t('chat.new_file_from', { name, file: rec.file.name || '' })
    : t('chat.new_from', { name, text: rec.text });
  const live = $('sr-messages');
  live.append(h('p', null, text));
  while (live.childNodes.length > 3) live.firstChild.remove();
}

// ---------------------------------------------------------------------------------------------
// Sending

function sendText(text) {
  const p = {
    client_id: uuid(),
    text,
    file: null,
    created: new Date().toISOString(),
    status: 'pending',
    code: null,
  };
  addPending(p);
  transmit(p);
}

function addPending(p) {
  chat.pending.set(p.client_id, p);
  p.el = renderPending(p);
  $('pending-items').append(p.el);
  updateEmpty();
  scrollToBottom();
}

function renderPending(p) {
  const root = h('div', {
    class: `msg mine ${p.status === 'failed' ? 'failed' : 'pending'}`,
    'data-testid': 'bubble',
    'data-mine': 'true',
    'data-seq': '',
    'data-client-id': p.client_id,
    'data-status': p.status,
  });
  const fileView = p.file || (p.localFile ? { name: p.localFile.name, size: p.localFile.size, content_type: p.localFile.type } : null);
  const bubble = renderBubble(p.text, fileView, p.preview);
  if (p.status === 'uploading') {
    const pct = Math.round((p.progress || 0) * 100);
    bubble.append(h('div', {
      class: 'progress',
      role: 'progressbar',
      'aria-valuemin': '0',
      'aria-valuemax': '100',
      'aria-valuenow': String(pct),
      'aria-label': t('chat.uploading', { pct }),
      'data-testid': 'upload-progress',
    }, h('div', { class: 'progress-bar', style: `width:${pct}%` })));
  }
  root.append(h('div', { class: 'msg-row' }, bubble));
  const meta = h('div', { class: 'msg-meta' });
  if (p.status === 'failed') {
    const reason = p.code ? errorText({ code: p.code }) : t('chat.failed');
    meta.append(
      h('span', { class: 'msg-status is-failed' }, `${t('chat.failed')} · ${reason}`),
      h('span', { class: 'failed-actions' },
        h('button', { type: 'button', 'data-testid': 'retry-button', onclick: () => retryPending(p) }, t('chat.retry')),
        h('button', { type: 'button', 'data-testid': 'discard-button', onclick: () => discardPending(p) }, t('chat.discard'))),
    );
  } else if (p.status === 'uploading') {
    meta.append(h('span', { class: 'msg-status' }, t('chat.uploading', { pct: Math.round((p.progress || 0) * 100) })));
  } else {
    meta.append(h('span', { class: 'msg-status' }, t('chat.sending')));
  }
  root.append(meta);
  return root;
}

function updatePending(p) {
  if (!chat.pending.has(p.client_id)) return;
  const el = renderPending(p);
  const hadFocus = p.el && p.el.contains(document.activeElement);
  if (p.el) p.el.replaceWith(el);
  p.el = el;
  if (hadFocus) {
    const retry = el.querySelector('[data-testid="retry-button"]');
    (retry || $('message-input')).focus();
  }
}

function updateProgress(p) {
  if (!p.el) return;
  const pct = Math.round((p.progress || 0) * 100);
  const bar = p.el.querySelector('.progress-bar');
  const box = p.el.querySelector('.progress');
  const status = p.el.querySelector('.msg-status');
  if (bar) bar.style.width = `${pct}%`;
  if (box) {
    box.setAttribute('aria-valuenow', String(pct));
    box.setAttribute('aria-label', t('chat.uploading', { pct }));
  }
  if (status) status.textContent = t('chat.uploading', { pct });
}

function dropPending(p) {
  clearTimeout(p.timer);
  chat.pending.delete(p.client_id);
  if (p.el) p.el.remove();
  updateEmpty();
}

function discardPending(p) {
  if (p.xhr) p.xhr.abort();
  if (p.preview) URL.revokeObjectURL(p.preview);
  dropPending(p);
  $('message-input').focus();
}

function transmit(p) {
  if (p.localFile && !p.file) {
    upload(p);
    return;
  }
  p.status = 'pending';
  p.code = null;
  updatePending(p);
  if (!chat.synced) return; // sent when the socket is back and synced
  const frame = { type: 'send', client_id: p.client_id, text: p.text };
  if (p.file) frame.file_id = p.file.id;
  if (!wsSend(frame)) return;
  clearTimeout(p.timer);
  p.timer = setTimeout(() => {
    if (chat.pending.get(p.client_id) === p && p.status === 'pending' && chat.synced) failPending(p, 'unavailable');
  }, ACK_TIMEOUT_MS);
}

function failPending(p, code) {
  clearTimeout(p.timer);
  p.status = 'failed';
  p.code = code || null;
  updatePending(p);
}

function retryPending(p) {
  transmit(p);
}

function onComposerSubmit(event) {
  event.preventDefault();
  const input = $('message-input');
  const text = input.value.trim();
  const err = $('composer-error');
  if (!text) return;
  if (Array.from(text).length > MAX_TEXT) {
    err.textContent = t('chat.too_long');
    err.hidden = false;
    return;
  }
  err.hidden = true;
  input.value = '';
  autoGrow(input);
  // The partner's indicator hides when this chat arrives: announce the next keystroke again.
  chat.lastTypingSent = 0;
  sendText(text);
  input.focus();
}

function onComposerKey(event) {
  if (event.key !== 'Enter' || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.isComposing || event.keyCode === 229) return; // IME (Hangul) composition in progress
  event.preventDefault();
  $('composer').requestSubmit();
}

function onComposerInput() {
  const input = $('message-input');
  autoGrow(input);
  if (!$('composer-error').hidden && Array.from(input.value.trim()).length <= MAX_TEXT) $('composer-error').hidden = true;
  if (!input.value.trim() || !chat.synced) return;
  const now = Date.now();
  if (now - chat.lastTypingSent >= TYPING_SEND_EVERY_MS) {
    chat.lastTypingSent = now;
    wsSend({ type: 'typing' });
  }
}

function autoGrow(el) {
  el.style.height = 'auto';
  el.style.height = `${Math.min(el.scrollHeight + 2, 160)}px`;
}

// Read marks: tell the server how far this user has seen, while the page is visible.
function scheduleRead() {
  if (chat.readTimer) return;
  chat.readTimer = setTimeout(() => {
    chat.readTimer = null;
    sendRead();
  }, 400);
}

function sendRead() {
  if (!chat.synced || document.visibilityState !== 'visible') return;
  const seq = chat.readableSeq;
  if (seq <= chat.readSent) return;
  if (wsSend({ type: 'read', seq })) chat.readSent = seq;
}

// ---------------------------------------------------------------------------------------------
// Deleting

async function confirmDelete(rec) {
  const ok = await confirmDialog(t('chat.delete_confirm'), t('chat.delete'));
  if (!ok) {
    const btn = rec.el && rec.el.querySelector('[data-testid="delete-button"]');
    if (btn) btn.focus();
    return;
  }
  chat.lastDeleteAt = Date.now();
  if (!wsSend({ type: 'delete', chat_id: rec.id })) toast(t('err.network'));
  $('message-input').focus();
}

function confirmDialog(text, okLabel) {
  const dlg = $('confirm-dialog');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel || t('dialog.ok');
  dlg.returnValue = '';
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.showModal();
    const cancel = dlg.querySelector('[data-testid="confirm-cancel"]');
    if (cancel) cancel.focus();
  });
}

// ---------------------------------------------------------------------------------------------
// Older history

/** The oldest chat held: history pages continue below it. Question events do not count:
 * a still-open question may be far older than the replayed window. */
function lowestSeq() {
  let low = null;
  for (const rec of chat.records.values()) {
    if (rec.kind === 'chat' && (low == null || rec.seq < low)) low = rec.seq;
  }
  return low;
}

async function loadOlder() {
  if (chat.loadingOlder || !chat.hasMore || !chat.everSynced) return;
  const low = lowestSeq();
  if (low == null || low <= 1) {
    chat.hasMore = false;
    if (low != null) $('history-status').textContent = t('chat.beginning');
    return;
  }
  chat.loadingOlder = true;
  const status = $('history-status');
  status.textContent = t('chat.loading_older');
  const state = chat;
  const epoch = chat.epoch;
  try {
    const res = await api('GET', `/api/chats?before=${encodeURIComponent(low)}&limit=${HISTORY_PAGE}`);
    if (state !== chat || epoch !== chat.epoch || !chat.active) return;
    const list = (res && res.chats) || [];
    const m = $('messages');
    const prevHeight = m.scrollHeight;
    const prevTop = m.scrollTop;
    for (const c of list) {
      if (c.deleted || chat.records.has(c.seq)) continue;
      insertRecord({ kind: 'chat', ...pickChat(c) });
    }
    m.scrollTop = prevTop + (m.scrollHeight - prevHeight);
    if (list.length < HISTORY_PAGE) chat.hasMore = false;
    status.textContent = chat.hasMore ? '' : t('chat.beginning');
  } catch (err) {
    status.textContent = '';
    if (state !== chat) return;
    if (err.status === 401) return toAuth(t('err.unauthenticated'));
    if (err.status === 404 || err.status === 409 || err.status === 405) chat.hasMore = false;
  } finally {
    state.loadingOlder = false;
  }
  if (state === chat) fillViewport();
}

/** Loads older pages until the list can scroll (or history runs out). */
function fillViewport() {
  const m = $('messages');
  if (chat.hasMore && !chat.loadingOlder && m.scrollHeight <= m.clientHeight + 40) loadOlder();
}

function onMessagesScroll() {
  const m = $('messages');
  stuckToBottom = nearBottom();
  if (m.scrollTop < 120) loadOlder();
  if (stuckToBottom) {
    $('new-messages').hidden = true;
    scheduleRead();
  }
}

// ---------------------------------------------------------------------------------------------
// Questions

function onQuestion(f) {
  bumpSeq(f.seq);
  if (typeof f.seq === 'number') chat.readableSeq = Math.max(chat.readableSeq, f.seq);
  let q = chat.questions.get(f.question_id);
  if (!q) {
    q = { id: f.question_id, me: false, partner: false };
    chat.questions.set(q.id, q);
  }
  Object.assign(q, { seq: f.seq, text: f.text, keyword: f.keyword, asked_at: f.asked_at });
  if (typeof f.seq === 'number' && !chat.records.has(f.seq)) {
    const stick = nearBottom();
    insertRecord({ kind: 'question', seq: f.seq, question_id: f.question_id, text: f.text, asked_at: f.asked_at });
    afterInsert(stick, false);
  }
  if (chat.synced) updateQuestionCard();
}

function onAnswered(f) {
  bumpSeq(f.seq);
  let q = chat.questions.get(f.question_id);
  if (!q) {
    q = { id: f.question_id, seq: null, text: '', me: false, partner: false };
    chat.questions.set(q.id, q);
  }
  if (isMine(f.user_id)) {
    q.me = true;
    if (chat.answering === q.id) chat.answering = null;
  } else {
    q.partner = true;
  }
  for (const rec of chat.records.values()) {
    if (rec.kind === 'question' && rec.question_id === q.id) replaceRecordEl(rec);
  }
  updateQuestionCard();
  updateAnswerButton();
  if (isMine(f.user_id)) {
    // The gate is open again: resend what it held back.
    const waiting = [...chat.pending.values()].filter((p) => p.status === 'failed' && p.code === 'answer_required');
    if (!currentQuestion()) waiting.forEach(transmit);
  }
  if ($('answers-dialog').open) loadAnswers();
}

function currentQuestion() {
  let best = null;
  for (const q of chat.questions.values()) {
    if (q.me) continue;
    if (!best || (q.seq ?? Infinity) < (best.seq ?? Infinity) || ((q.seq ?? Infinity) === (best.seq ?? Infinity) && q.id < best.id)) best = q;
  }
  return best;
}

function updateQuestionCard(force) {
  if (!chat.synced && !force) return;
  const q = currentQuestion();
  const card = $('question-card');
  if (!q) {
    const hadFocus = card.contains(document.activeElement);
    hideQuestionCard();
    if (hadFocus) $('message-input').focus();
    return;
  }
  card.dataset.questionId = String(q.id);
  $('q-text').textContent = q.text || t('q.unknown');
  if (!q.text) lookUpQuestion(q);
  if (chat.activeQuestion !== q.id || card.hidden) {
    chat.activeQuestion = q.id;
    $('answer-input').value = '';
    $('q-error').hidden = true;
    card.hidden = false;
    $('composer').hidden = true;
    $('composer-error').hidden = true;
    updateAnswerButton();
    if (app.screen === 'chat' && !$('confirm-dialog').open && !$('answers-dialog').open) $('answer-input').focus();
  }
}

/** A question known only by id (from an answer_required error): its text is in the answers list. */
async function lookUpQuestion(q) {
  if (q.lookingUp) return;
  q.lookingUp = true;
  try {
    const res = await api('GET', '/api/answers');
    const found = ((res && res.answers) || []).find((a) => a.question_id === q.id);
    if (found && !q.text) {
      q.text = found.question;
      q.keyword = found.keyword;
      q.asked_at = found.asked_at;
      updateQuestionCard(true);
    }
  } catch {
    // Not available (yet): the card keeps its generic text.
  }
}

function hideQuestionCard() {
  chat.activeQuestion = null;
  $('question-card').hidden = true;
  delete $('question-card').dataset.questionId;
  $('composer').hidden = false;
}

function updateAnswerButton() {
  const btn = $('answer-submit');
  const busy = chat.answering != null;
  btn.disabled = busy || !chat.synced;
  btn.textContent = busy ? t('q.sending') : t('q.submit');
}

function onAnswerSubmit(event) {
  event.preventDefault();
  const q = currentQuestion();
  const text = $('answer-input').value.trim();
  const err = $('q-error');
  if (!q || !text) {
    $('answer-input').focus();
    return;
  }
  if (Array.from(text).length > MAX_TEXT) {
    err.textContent = t('err.too_long');
    err.hidden = false;
    return;
  }
  err.hidden = true;
  if (!chat.synced || !wsSend({ type: 'answer', question_id: q.id, text })) {
    err.textContent = t('err.network');
    err.hidden = false;
    return;
  }
  chat.answering = q.id;
  updateAnswerButton();
}

function onAnswerKey(event) {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    $('answer-form').requestSubmit();
  }
}

// ---------------------------------------------------------------------------------------------
// Answers page

async function openAnswers() {
  closeMenu();
  const dlg = $('answers-dialog');
  if (!dlg.open) dlg.showModal();
  $('answers-close').focus();
  await loadAnswers(true);
}

async function loadAnswers(showLoading) {
  const list = $('answers-list');
  if (showLoading) list.replaceChildren(h('p', { class: 'answers-empty' }, t('answers.loading')));
  try {
    const res = await api('GET', '/api/answers');
    const answers = (res && res.answers) || [];
    if (!answers.length) {
      list.replaceChildren(h('p', { class: 'answers-empty' }, t('answers.empty')));
      return;
    }
    list.replaceChildren(...answers.map(answerItem));
  } catch (err) {
    if (err.status === 401) {
      $('answers-dialog').close();
      toAuth(t('err.unauthenticated'));
      return;
    }
    const text = err.status === 404 || err.status === 405 ? t('answers.unavailable') : errorText(err);
    list.replaceChildren(h('p', { class: 'answers-empty' }, text));
  }
}

function answerItem(a) {
  const name = partnerName();
  const mineCol = h('div', { class: 'answer-col answer-mine', 'data-testid': 'answer-mine' },
    h('span', { class: 'who' }, t('answers.me')));
  if (a.mine) mineCol.append(h('span', null, a.mine.text));
  else mineCol.append(h('span', { class: 'placeholder' }, t('answers.not_yet')));
  const partnerCol = h('div', { class: 'answer-col answer-theirs', 'data-testid': 'answer-partner', 'data-hidden': a.partner ? 'false' : 'true' },
    h('span', { class: 'who' }, t('answers.partner', { name })));
  if (a.partner) partnerCol.append(h('span', null, a.partner.text));
  else if (!a.mine) partnerCol.append(h('span', { class: 'placeholder' }, t('answers.hidden', { name })));
  else partnerCol.append(h('span', { class: 'placeholder' }, t('answers.waiting', { name })));
  const asked = a.asked_at ? parseTime(a.asked_at) : null;
  return h('article', { class: 'answer-item', 'data-testid': 'answer-item', 'data-question-id': a.question_id },
    h('h3', null, a.question || ''),
    h('div', { class: 'answer-sub' },
      a.keyword ? h('span', { class: 'keyword' }, `#${a.keyword}`) : null,
      asked ? h('time', { datetime: a.asked_at }, fmtDateTime(asked)) : null),
    h('div', { class: 'answer-cols' }, mineCol, partnerCol));
}

// ---------------------------------------------------------------------------------------------
// Files

function sendFiles(fileList) {
  for (const file of Array.from(fileList || [])) {
    const isImage = /^image\//.test(file.type);
    const p = {
      client_id: uuid(),
      text: '',
      file: null,
      localFile: file,
      preview: isImage ? URL.createObjectURL(file) : null,
      created: new Date().toISOString(),
      status: 'uploading',
      progress: 0,
      code: null,
    };
    addPending(p);
    upload(p);
  }
}

function upload(p) {
  p.status = 'uploading';
  p.progress = 0;
  p.code = null;
  updatePending(p);
  const xhr = new XMLHttpRequest();
  p.xhr = xhr;
  xhr.open('POST', '/api/files');
  xhr.responseType = 'text';
  xhr.upload.onprogress = (event) => {
    if (!event.lengthComputable) return;
    p.progress = event.loaded / event.total;
    updateProgress(p);
  };
  xhr.onload = () => {
    p.xhr = null;
    if (!chat.pending.has(p.client_id)) return;
    let data = null;
    try { data = JSON.parse(xhr.responseText); } catch { data = null; }
    if (xhr.status === 201 || (xhr.status >= 200 && xhr.status < 300 && data && data.file)) {
      p.file = data.file;
      transmit(p);
      return;
    }
    if (xhr.status === 401) {
      toAuth(t('err.unauthenticated'));
      return;
    }
    const code = (data && data.error && data.error.code) || codeForStatus(xhr.status);
    if (code === 'too_large') toast(t('file.too_large'));
    else if (xhr.status === 404 || xhr.status === 405) toast(t('file.unavailable'));
    failPending(p, xhr.status === 404 || xhr.status === 405 ? 'not_implemented' : code);
  };
  xhr.onerror = () => {
    p.xhr = null;
    if (chat.pending.has(p.client_id)) failPending(p, 'network');
  };
  const form = new FormData();
  form.append('file', p.localFile, p.localFile.name);
  xhr.send(form);
}

function bindDrop() {
  const zone = $('screen-chat');
  const overlay = $('drop-overlay');
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
  zone.addEventListener('dragenter', (e) => {
    if (!hasFiles(e) || $('composer').hidden) return;
    e.preventDefault();
    depth += 1;
    overlay.hidden = false;
  });
  zone.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = $('composer').hidden ? 'none' : 'copy';
  });
  zone.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) overlay.hidden = true;
  });
  zone.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    if ($('composer').hidden) return; // a question holds the conversation
    sendFiles(e.dataTransfer.files);
  });
}

// ---------------------------------------------------------------------------------------------
// Break-up, log out, menu, language

function updateBanner() {
  const banner = $('breakup-banner');
  const at = app.couple && app.couple.delete_at;
  if (!at) {
    banner.hidden = true;
    return;
  }
  $('breakup-text').textContent = t('breakup.banner', { date: fmtDateTime(parseTime(at)) });
  banner.hidden = false;
}

async function breakUp() {
  closeMenu();
  const ok = await confirmDialog(t('breakup.confirm'), t('breakup.ok'));
  if (!ok) {
    $('menu-button').focus();
    return;
  }
  try {
    const res = await api('DELETE', '/api/couple');
    if (app.couple) app.couple.delete_at = (res && res.delete_at) || app.couple.delete_at;
    updateBanner();
    $('restore-button').focus();
  } catch (err) {
    if (err.status === 401) return toAuth(t('err.unauthenticated'));
    if (err.code === 'not_paired') return pollMe();
    toast(err.status === 404 || err.status === 405 ? t('err.not_implemented') : errorText(err));
  }
}

async function restore() {
  try {
    const res = await api('POST', '/api/couple/restore');
    if (res && res.couple) app.couple = { ...app.couple, ...res.couple };
    if (app.couple) app.couple.delete_at = (res && res.couple && res.couple.delete_at) || null;
    updateBanner();
    toast(t('breakup.restored'));
    $('message-input').focus();
  } catch (err) {
    if (err.status === 401) return toAuth(t('err.unauthenticated'));
    toast(err.status === 404 || err.status === 405 ? t('err.not_implemented') : errorText(err));
    pollMe();
  }
}

async function logout() {
  closeMenu();
  const from = app.screen;
  // Stop the socket first: the server closes it with 4001 when the session ends, and that
  // must not read as "your session expired".
  leaveChat();
  try {
    await api('POST', '/api/logout');
  } catch (err) {
    if (err.status !== 401) {
      toast(errorText(err));
      if (from === 'chat' && app.couple) showChat();
      return;
    }
  }
  toAuth();
}

function openMenu() {
  $('menu').hidden = false;
  $('menu-button').setAttribute('aria-expanded', 'true');
  const first = $('menu').querySelector('button');
  if (first) first.focus();
}

function closeMenu() {
  if ($('menu').hidden) return;
  $('menu').hidden = true;
  $('menu-button').setAttribute('aria-expanded', 'false');
}

function updateLangButton() {
  $('lang-toggle-label').textContent = t('lang.switch');
  $('lang-toggle').setAttribute('aria-label', t('lang.switch_label'));
  $('lang-toggle').setAttribute('lang', otherLang());
}

function switchLang() {
  setLang(otherLang());
  applyStatic();
  updateLangButton();
  // Re-render what was built from strings.
  if (app.screen === 'auth') { /* static only */ }
  if (app.screen === 'pair') {
    $('pair-me').textContent = t('pair.signed_in_as', { name: app.me.username });
    if (pairing.lastLists) renderRequests(pairing.lastLists, true);
    setPairStatus('', null);
  }
  if (app.screen === 'chat') {
    const state = $('conn').dataset.state;
    if (state === 'reconnecting') setConn(state, Math.max(1, Math.ceil((chat.retryAt - Date.now()) / 1000)));
    else setConn(state);
    setPresence(chat.partnerOnline);
    updateBanner();
    renderAllRecords();
    updateAnswerButton();
    const q = currentQuestion();
    if (q && !q.text) $('q-text').textContent = t('q.unknown');
    $('typing-text').textContent = t('chat.typing', { name: partnerName() });
    if ($('answers-dialog').open) loadAnswers();
  }
  if ($('lang-toggle').closest('.menu')) {
    closeMenu();
    $('menu-button').focus();
  } else {
    $('lang-toggle').focus();
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function bindStatic() {
  $('loading-retry').addEventListener('click', loadMe);
  $('auth-form').addEventListener('submit', onAuthSubmit);
  $('auth-reveal').addEventListener('click', () => {
    const input = $('auth-password');
    const reveal = input.type === 'password';
    input.type = reveal ? 'text' : 'password';
    $('auth-reveal').setAttribute('aria-pressed', reveal ? 'true' : 'false');
    $('auth-reveal').setAttribute('aria-label', t(reveal ? 'auth.hide_password' : 'auth.show_password'));
  });
  $('signup-button').addEventListener('click', () => {
    $('auth-password').setAttribute('autocomplete', 'new-password');
  });
  $('pair-form').addEventListener('submit', onPairSubmit);
  $('lang-toggle').addEventListener('click', switchLang);
  $('logout-button').addEventListener('click', logout);

  $('composer').addEventListener('submit', onComposerSubmit);
  $('message-input').addEventListener('keydown', onComposerKey);
  $('message-input').addEventListener('input', onComposerInput);
  $('message-input').addEventListener('paste', (e) => {
    const files = e.clipboardData && e.clipboardData.files;
    if (files && files.length) {
      e.preventDefault();
      sendFiles(files);
    }
  });
  $('attach-button').addEventListener('click', () => $('attach-input').click());
  $('attach-input').addEventListener('change', (e) => {
    sendFiles(e.target.files);
    e.target.value = '';
    $('message-input').focus();
  });
  $('messages').addEventListener('scroll', onMessagesScroll, { passive: true });
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(() => {
      if (stuckToBottom && app.screen === 'chat') {
        const m = $('messages');
        m.scrollTop = m.scrollHeight;
      }
    }).observe($('messages'));
  }
  $('new-messages').addEventListener('click', () => {
    scrollToBottom();
    $('message-input').focus();
  });
  $('reconnect-now').addEventListener('click', () => {
    chat.attempt = 0;
    reconnectNow();
  });
  $('answer-form').addEventListener('submit', onAnswerSubmit);
  $('answer-input').addEventListener('keydown', onAnswerKey);
  $('answers-link').addEventListener('click', openAnswers);
  $('answers-close').addEventListener('click', () => $('answers-dialog').close());
  $('answers-dialog').addEventListener('close', () => {
    if (app.screen !== 'chat') return;
    if (!$('question-card').hidden) $('answer-input').focus();
    else $('answers-link').focus();
  });
  $('answers-dialog').addEventListener('click', (e) => {
    if (e.target === $('answers-dialog')) $('answers-dialog').close(); // backdrop click
  });
  $('breakup-button').addEventListener('click', breakUp);
  $('restore-button').addEventListener('click', restore);

  $('menu-button').addEventListener('click', () => {
    if ($('menu').hidden) openMenu();
    else closeMenu();
  });
  document.addEventListener('click', (e) => {
    if (!$('menu').hidden && !e.target.closest('.menu-wrap')) closeMenu();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !$('menu').hidden) {
      closeMenu();
      $('menu-button').focus();
    }
  });
  $('menu').addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const items = [...$('menu').querySelectorAll('button')];
    const i = items.indexOf(document.activeElement);
    const next = e.key === 'ArrowDown' ? (i + 1) % items.length : (i - 1 + items.length) % items.length;
    items[next].focus();
    e.preventDefault();
  });

  bindDrop();

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible' || app.screen !== 'chat') return;
    scheduleRead();
    if (!chat.ws && chat.retryTimer) {
      chat.attempt = 0;
      reconnectNow();
    }
  });
  window.addEventListener('focus', () => { if (app.screen === 'chat') scheduleRead(); });
  window.addEventListener('online', () => {
    if (app.screen === 'chat' && !chat.ws) {
      chat.attempt = 0;
      reconnectNow();
    }
  });
  window.addEventListener('offline', () => {
    if (app.screen === 'chat' && !chat.ws) setConn('offline');
  });
}

boot();
