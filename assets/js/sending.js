// Sending: the composer (Enter to send, typing notices, auto-grow), the pending sends shown
// below the timeline until the server acks them (pending / uploading / failed, with retry and
// discard, resent after a reconnect with the same client_id), and files entering the
// composer (attach button, paste, drag and drop) as pending sends that upload first.

import { t } from '../i18n.js';
import { $, ACK_TIMEOUT_MS, h, MAX_TEXT, TYPING_SEND_EVERY_MS } from './dom.js';
import { uuid } from './format.js';
import { state } from './state.js';
import { errorText } from './http.js';
import { hooks } from './hooks.js';
import { toast } from './ui.js';
import { takeSilent } from './notify.js';
import { postFile } from './files.js';
import { wsSend } from './connection.js';
import { jumpToLatest, renderBubble, renderQuote, scrollToBottom, updateEmpty } from './timeline.js';
import { submitEdit, takeReply } from './gestures.js';
import { forget, keep, waiting } from './outbox.js';

// Written order across reloads: the wall clock, made strictly increasing within a page.
let lastOrder = 0;
function nextOrder() {
  lastOrder = Math.max(Date.now(), lastOrder + 1);
  return lastOrder;
}

/** A text chat waits in the outbox (files do not: the upload is the page's). */
function store(p) {
  if (p.localFile || p.file || !state.me || !state.couple) return;
  keep({
    client_id: p.client_id,
    user_id: state.me.id,
    couple_id: state.couple.id,
    text: p.text,
    silent: p.silent,
    quote: p.quote || null,
    created: p.created,
    order: p.order,
    status: p.status,
    code: p.code,
  });
}

/** Brings back the chats a reload left waiting (once per conversation), in the order written,
 *  before anything else goes out. A refused one comes back refused, to retry or discard. */
export async function restoreOutbox() {
  const chat = state.chat;
  if (chat.restored) return chat.restored;
  chat.restored = waiting(state.me.id, state.couple.id).then((entries) => {
    if (state.chat !== chat) return;
    for (const e of entries) {
      if (chat.pending.has(e.client_id)) continue;
      addPending({
        client_id: e.client_id,
        text: e.text,
        file: null,
        silent: e.silent,
        quote: e.quote || null,
        created: e.created,
        order: e.order,
        status: e.status === 'failed' ? 'failed' : 'pending',
        code: e.code,
      });
    }
  });
  return chat.restored;
}

/** What waits to go out again, oldest first. */
export function waitingSends() {
  return [...state.chat.pending.values()].sort((a, b) => a.order - b.order);
}

function sendText(text, quote) {
  const p = {
    client_id: uuid(),
    text,
    file: null,
    quote,
    silent: takeSilent(),
    created: new Date().toISOString(),
    order: nextOrder(),
    status: 'pending',
    code: null,
  };
  addPending(p);
  store(p);
  transmit(p);
}

function addPending(p) {
  // Sending while looking back at older chats: back to the present, where the chat will be.
  if (state.chat.detached) jumpToLatest();
  state.chat.pending.set(p.client_id, p);
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
  if (p.quote) bubble.prepend(renderQuote(p.quote));
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
  } else if (!state.chat.synced && !p.localFile && !p.file) {
    // Waiting for the network: nothing has left yet, so it can still be taken back.
    meta.append(
      h('span', { class: 'msg-status' }, t('chat.waiting')),
      h('span', { class: 'failed-actions' },
        h('button', { type: 'button', 'data-testid': 'discard-button', onclick: () => discardPending(p) }, t('chat.discard'))),
    );
  } else {
    meta.append(h('span', { class: 'msg-status' }, t('chat.sending')));
  }
  root.append(meta);
  return root;
}

/** Builds every pending send's element again (the language changed). */
export function renderAllPending() {
  for (const p of state.chat.pending.values()) {
    const el = renderPending(p);
    if (p.el) p.el.replaceWith(el);
    p.el = el;
  }
}

function updatePending(p) {
  if (!state.chat.pending.has(p.client_id)) return;
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

export function dropPending(p) {
  clearTimeout(p.timer);
  forget(p.client_id);
  state.chat.pending.delete(p.client_id);
  if (p.el) p.el.remove();
  updateEmpty();
}

function discardPending(p) {
  if (p.xhr) p.xhr.abort();
  if (p.preview) URL.revokeObjectURL(p.preview);
  dropPending(p);
  $('message-input').focus();
}

export function transmit(p) {
  if (p.localFile && !p.file) {
    upload(p);
    return;
  }
  const was = p.status;
  p.status = 'pending';
  p.code = null;
  if (was !== 'pending') store(p);
  updatePending(p);
  if (!state.chat.synced) return; // sent when the socket is back and synced
  const frame = { type: 'send', client_id: p.client_id, text: p.text };
  if (p.file) frame.file_id = p.file.id;
  if (p.silent) frame.silent = true;
  if (p.quote) frame.reply_to = p.quote.id;
  if (!wsSend(frame)) return;
  clearTimeout(p.timer);
  p.timer = setTimeout(() => {
    if (state.chat.pending.get(p.client_id) === p && p.status === 'pending' && state.chat.synced) failPending(p, 'unavailable');
  }, ACK_TIMEOUT_MS);
}

export function failPending(p, code) {
  clearTimeout(p.timer);
  p.status = 'failed';
  p.code = code || null;
  store(p);
  updatePending(p);
}

function retryPending(p) {
  transmit(p);
}

/** A file entering the composer: a pending send that uploads first (`voice`: as a voice note). */
function sendFile(file, voice) {
  const p = {
    client_id: uuid(),
    text: '',
    file: null,
    localFile: file,
    voice,
    preview: !voice && /^image\//.test(file.type) ? URL.createObjectURL(file) : null,
    created: new Date().toISOString(),
    order: nextOrder(),
    status: 'uploading',
    progress: 0,
    code: null,
  };
  addPending(p);
  upload(p);
}

/** A recording from the voice button (voice.js): uploaded as a voice note, then sent. */
export function sendVoice(file) {
  sendFile(file, true);
}

function sendFiles(fileList) {
  for (const file of Array.from(fileList || [])) sendFile(file, false);
}

/** Uploads a pending send's file (files.js postFile), then sends it like any chat. */
function upload(p) {
  p.status = 'uploading';
  p.progress = 0;
  p.code = null;
  updatePending(p);
  p.xhr = postFile(p.localFile, {
    voice: !!p.voice,
    onProgress(fraction) {
      p.progress = fraction;
      updateProgress(p);
    },
    onDone(file) {
      p.xhr = null;
      if (!state.chat.pending.has(p.client_id)) return;
      p.file = file;
      transmit(p);
    },
    onFail(status, code) {
      p.xhr = null;
      if (!state.chat.pending.has(p.client_id)) return;
      if (status === 401) {
        hooks.toAuth(t('err.unauthenticated'));
        return;
      }
      if (code === 'too_large') toast(t('file.too_large'));
      else if (status === 404 || status === 405) toast(t('file.unavailable'));
      failPending(p, status === 404 || status === 405 ? 'not_implemented' : code);
    },
  });
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
  state.chat.lastTypingSent = 0;
  if (!submitEdit(text)) sendText(text, takeReply());
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
  // Editing a chat is not typing a new one.
  if (!input.value.trim() || !state.chat.synced || state.chat.editing) return;
  const now = Date.now();
  if (now - state.chat.lastTypingSent >= TYPING_SEND_EVERY_MS) {
    state.chat.lastTypingSent = now;
    wsSend({ type: 'typing' });
  }
}

function autoGrow(el) {
  el.style.height = 'auto';
  el.style.height = `${Math.min(el.scrollHeight + 2, 160)}px`;
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

export function bindComposer() {
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
  bindDrop();
}
