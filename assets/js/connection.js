// The WebSocket at /ws: opening it (resuming after the last seq held), sending frames, closing
// it, and reconnecting with exponential backoff and full jitter; the connection pill in the
// chat header. Frames go to hooks.frame (frames.js) and closes to hooks.socketClosed (chat.js),
// which decide what they mean for the app.

import { t } from '../i18n.js';
import { $, BACKOFF_BASE_MS, BACKOFF_CAP_MS } from './dom.js';
import { state } from './state.js';
import { hooks } from './hooks.js';

export function setConn(mode, seconds) {
  const el = $('conn');
  const prev = el.dataset.state;
  el.dataset.state = mode;
  let label;
  if (mode === 'online') label = t('conn.online');
  else if (mode === 'connecting') label = state.chat.everSynced ? t('conn.reconnecting_now') : t('conn.connecting');
  else if (mode === 'reconnecting') label = t('conn.reconnecting', { s: seconds });
  else label = t('conn.offline');
  $('conn-label').textContent = label;
  $('reconnect-now').hidden = mode !== 'reconnecting' && mode !== 'offline';
  if (prev !== mode || !$('sr-conn').textContent) {
    // Announce transitions only, not every second of a countdown.
    $('sr-conn').textContent = mode === 'reconnecting' ? t('conn.reconnecting_now') : label;
  }
}

function wsUrl() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const after = state.chat.lastSeq != null ? `?after=${encodeURIComponent(state.chat.lastSeq)}` : '';
  return `${proto}//${location.host}/ws${after}`;
}

export function connect() {
  if (!state.chat.active) return;
  clearTimeout(state.chat.retryTimer);
  clearInterval(state.chat.countdownTimer);
  state.chat.retryTimer = null;
  if (state.chat.ws) {
    try { state.chat.ws.close(1000); } catch { /* ignore */ }
  }
  const gen = ++state.chat.gen;
  state.chat.gotHello = false;
  state.chat.synced = false;
  setConn('connecting');
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  state.chat.ws = ws;
  ws.onmessage = (event) => {
    if (gen !== state.chat.gen) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame && typeof frame.type === 'string') hooks.frame(frame);
  };
  ws.onclose = (event) => {
    if (gen !== state.chat.gen) return;
    state.chat.ws = null;
    const hadHello = state.chat.gotHello;
    const lived = hadHello ? Date.now() - state.chat.helloAt : 0;
    state.chat.synced = false;
    state.chat.gotHello = false;
    hooks.socketClosed(event.code, hadHello, lived);
  };
  ws.onerror = () => { /* a close event follows */ };
}

function scheduleReconnect() {
  if (!state.chat.active) return;
  clearTimeout(state.chat.retryTimer);
  clearInterval(state.chat.countdownTimer);
  const cap = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** state.chat.attempt);
  state.chat.attempt = Math.min(state.chat.attempt + 1, 20);
  const delay = Math.random() * cap; // full jitter
  state.chat.retryAt = Date.now() + delay;
  state.chat.retryTimer = setTimeout(connect, delay);
  const tick = () => {
    if (!navigator.onLine) {
      setConn('offline');
      return;
    }
    const left = Math.max(1, Math.ceil((state.chat.retryAt - Date.now()) / 1000));
    setConn('reconnecting', left);
  };
  tick();
  state.chat.countdownTimer = setInterval(tick, 250);
}

/** Retries after a close the app still wants: a socket that lived over 10 s starts the backoff over. */
export function reconnectAfter(lived) {
  if (lived > 10000) state.chat.attempt = 0;
  scheduleReconnect();
}

export function reconnectNow() {
  if (state.chat.active && !state.chat.ws) connect();
}

/** Closes the socket for good (the chat is left): its handlers become no-ops, no retry waits. */
export function disconnect() {
  state.chat.gen += 1; // handlers of the current socket become no-ops
  if (state.chat.ws) {
    try { state.chat.ws.close(1000, 'bye'); } catch { /* already closed */ }
  }
  state.chat.ws = null;
  state.chat.synced = false;
  clearTimeout(state.chat.retryTimer);
  clearInterval(state.chat.countdownTimer);
}

/** Tells the server whether this tab shows the conversation: while none of the user's tabs
 * does, their devices get pushes. The server counts a new socket as looking. */
export function reportLooking() {
  return wsSend({ type: 'looking', looking: !document.hidden });
}

/** Sends one frame if the socket is open; false when it could not. */
export function wsSend(frame) {
  if (!state.chat.ws || state.chat.ws.readyState !== WebSocket.OPEN) return false;
  try {
    state.chat.ws.send(JSON.stringify(frame));
    return true;
  } catch {
    return false;
  }
}
