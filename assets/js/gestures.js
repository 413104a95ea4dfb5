// The gestures on a chat: the bubble's menu (a reaction, reply, edit), the composer's context
// bar while replying or editing, the earlier versions of an edited chat, and the `reacted` and
// `edited` frames. A reaction or an edit is answered like a send (`ack` or `error` with its
// client_id); what it changes arrives as its frame, for both of us alike.

import { t } from '../i18n.js';
import { $, h } from './dom.js';
import { fmtDateTime, parseTime, uuid } from './format.js';
import { bumpSeq, isMine, partnerName, state } from './state.js';
import { api, errorText } from './http.js';
import { hooks } from './hooks.js';
import { toast } from './ui.js';
import { wsSend } from './connection.js';
import { replaceRecordEl } from './timeline.js';
import { saveSoon } from './offline.js';

/** The reactions offered first (the server takes any single emoji). */
export const OFFERED = ['❤️', '😂', '😮', '😢', '👍', '🙏'];

// ---- The bubble's menu ----

let menuFor = null;

export function openBubbleMenu(rec) {
  closeBubbleMenu();
  if (!rec.el || !rec.id) return;
  menuFor = rec;
  const mine = state.me && rec.reactions ? rec.reactions[state.me.id] : null;
  const menu = h('div', { id: 'bubble-menu', class: 'bubble-menu', role: 'menu', 'data-testid': 'bubble-menu' },
    h('div', { class: 'react-row', role: 'group', 'aria-label': t('chat.react_label') },
      ...OFFERED.map((emoji) => h('button', {
        type: 'button',
        role: 'menuitemcheckbox',
        class: 'react-option',
        'data-testid': 'react-option',
        'data-emoji': emoji,
        'aria-checked': mine === emoji ? 'true' : 'false',
        'aria-label': t('chat.react', { emoji }),
        onclick: () => { closeBubbleMenu(); react(rec, emoji); focusMore(rec); },
      }, emoji))),
    h('button', { type: 'button', role: 'menuitem', class: 'menu-item', 'data-testid': 'reply-button', onclick: () => { closeBubbleMenu(); startReply(rec); } }, t('chat.reply')));
  if (isMine(rec.sender_id) && rec.text) {
    menu.append(h('button', { type: 'button', role: 'menuitem', class: 'menu-item', 'data-testid': 'edit-button', onclick: () => { closeBubbleMenu(); startEdit(rec); } }, t('chat.edit')));
  }
  rec.el.append(menu);
  const more = rec.el.querySelector('[data-testid="more-button"]');
  if (more) more.setAttribute('aria-expanded', 'true');
  menu.querySelector('button').focus();
}

export function closeBubbleMenu() {
  const menu = document.getElementById('bubble-menu');
  const more = menuFor && menuFor.el && menuFor.el.querySelector('[data-testid="more-button"]');
  if (more) more.setAttribute('aria-expanded', 'false');
  if (menu) menu.remove();
  menuFor = null;
}

/** Back to the bubble's more button (its element may have been built anew). */
function focusMore(rec) {
  const seq = rec.seq;
  const now = state.chat.records.get(seq);
  const more = now && now.el && now.el.querySelector('[data-testid="more-button"]');
  if (more) more.focus();
}

// ---- Reactions ----

/** Puts my reaction on a chat, or takes it away when it is the one I have. */
function react(rec, emoji) {
  const mine = rec.reactions && state.me ? rec.reactions[state.me.id] : null;
  gesture({ type: 'react', chat_id: rec.id, emoji: mine === emoji ? null : emoji });
}

/** Sends a reaction or an edit; `edit` (the edit's chat, text before and new text) comes back
 * to the composer if it fails. */
function gesture(frame, edit = null) {
  const clientId = uuid();
  if (!wsSend({ ...frame, client_id: clientId })) {
    toast(t('err.network'));
    return false;
  }
  state.chat.gestures.set(clientId, { type: frame.type, edit });
  return true;
}

/** The `ack` of a reaction or an edit: true when it was one. */
export function onGestureAck(f) {
  return state.chat.gestures.delete(f.client_id);
}

/** The `error` of a reaction or an edit: said (an edit's text goes back into the composer, to
 * send again), and true when nothing else needs to see it (an owed question does). */
export function onGestureError(f) {
  const sent = state.chat.gestures.get(f.client_id);
  if (!sent) return false;
  state.chat.gestures.delete(f.client_id);
  if (sent.edit) restoreEdit(sent.edit);
  if (f.code !== 'answer_required') toast(errorText({ code: f.code, serverMessage: f.message }));
  return f.code !== 'answer_required';
}

/** An edit that did not go through: editing it again, with the text that was written. */
function restoreEdit(edit) {
  const input = $('message-input');
  if (input.value.trim()) return; // something new is being written: keep it
  state.chat.replyTo = null;
  state.chat.editing = { id: edit.id, before: edit.before };
  input.value = edit.text;
  showContext();
}

/** The socket closed: reactions and edits on their way get no answer any more. An edit's text
 * comes back to the composer; a reaction is simply made again. */
export function dropGestures() {
  for (const sent of state.chat.gestures.values()) if (sent.edit) restoreEdit(sent.edit);
  state.chat.gestures.clear();
}

export function onReacted(f) {
  bumpSeq(f.seq);
  for (const rec of chatRecords(f.chat_id)) {
    const reactions = { ...(rec.reactions || {}) };
    if (f.emoji) reactions[f.user_id] = f.emoji;
    else delete reactions[f.user_id];
    rec.reactions = reactions;
    refresh(rec);
  }
}

export function onEdited(f) {
  bumpSeq(f.seq);
  if (typeof f.text !== 'string') return;
  for (const rec of chatRecords(f.chat_id)) {
    // A replay passes edits this record already shows: it counts each edit once, by its seq.
    if (f.seq > (rec.editedSeq || 0)) {
      if (rec.text !== f.text) rec.edits = (rec.edits || 0) + 1;
      rec.editedSeq = f.seq;
    }
    rec.text = f.text;
    refresh(rec);
  }
  // Replies quote it as it is now, whether the original itself is held or not.
  const text = Array.from(f.text).slice(0, 100).join('');
  for (const other of [...state.chat.records.values(), ...state.chat.skipped.values()]) {
    if (other.kind === 'chat' && other.reply_to && other.reply_to.id === f.chat_id && !other.reply_to.deleted) {
      other.reply_to = { ...other.reply_to, text };
      refresh(other);
    }
  }
}

/** Every held copy of a chat: shown, and waiting while an older window is shown (the same
 * chat can be both). */
function chatRecords(chatId) {
  const out = [];
  const seq = state.chat.byId.get(chatId);
  if (seq != null && state.chat.records.get(seq)) out.push(state.chat.records.get(seq));
  for (const rec of state.chat.skipped.values()) {
    if (rec.kind === 'chat' && rec.id === chatId && !out.includes(rec)) out.push(rec);
  }
  return out;
}

function refresh(rec) {
  if (rec === menuFor) closeBubbleMenu();
  if (state.chat.records.get(rec.seq) === rec) replaceRecordEl(rec);
  saveSoon();
}

// ---- Replying and editing: the composer's context bar ----

function startReply(rec) {
  if (state.chat.editing) {
    // The chat being edited is not what the reply says.
    $('message-input').value = '';
    state.chat.editing = null;
  }
  state.chat.replyTo = {
    id: rec.id,
    seq: rec.seq,
    sender_id: rec.sender_id,
    text: Array.from(rec.text || '').slice(0, 100).join(''),
  };
  showContext();
}

function startEdit(rec) {
  state.chat.replyTo = null;
  state.chat.editing = { id: rec.id, before: rec.text };
  const input = $('message-input');
  input.value = rec.text;
  input.dispatchEvent(new Event('input'));
  showContext();
}

function showContext() {
  const c = state.chat;
  const bar = $('composer-context');
  if (!c.replyTo && !c.editing) {
    bar.hidden = true;
    return;
  }
  bar.dataset.mode = c.editing ? 'edit' : 'reply';
  const who = c.replyTo && (isMine(c.replyTo.sender_id) ? t('chat.you') : partnerName());
  $('composer-context-title').textContent = c.editing ? t('chat.editing') : t('chat.replying_to', { name: who });
  $('composer-context-text').textContent = c.editing ? c.editing.before : (c.replyTo.text || t('chat.quote_file'));
  bar.hidden = false;
  $('message-input').focus();
}

export function cancelContext() {
  const wasEditing = !!state.chat.editing;
  state.chat.replyTo = null;
  state.chat.editing = null;
  $('composer-context').hidden = true;
  if (wasEditing) {
    const input = $('message-input');
    input.value = '';
    input.dispatchEvent(new Event('input'));
  }
}

/** The chat a send answers, taken from the context bar (which closes). */
export function takeReply() {
  const quote = state.chat.replyTo;
  if (!quote) return null;
  state.chat.replyTo = null;
  $('composer-context').hidden = true;
  return quote;
}

/** While editing, the composer's text is the chat's new text: sent as an edit. Returns
 * whether it was. */
export function submitEdit(text) {
  const editing = state.chat.editing;
  if (!editing) return false;
  state.chat.editing = null;
  $('composer-context').hidden = true;
  if (text === editing.before) return true;
  const edit = { id: editing.id, before: editing.before, text };
  if (!gesture({ type: 'edit', chat_id: editing.id, text }, edit)) restoreEdit(edit);
  return true;
}

// ---- Earlier versions ----

let versionsGen = 0;

export async function showVersions(rec) {
  const gen = ++versionsGen;
  const dlg = $('versions-dialog');
  const list = $('versions-list');
  list.replaceChildren(h('li', { class: 'muted' }, t('answers.loading')));
  if (!dlg.open) dlg.showModal();
  try {
    const body = await api('GET', `/api/chats/${encodeURIComponent(rec.id)}/versions`);
    if (gen !== versionsGen) return;
    const versions = (body && body.versions) || [];
    list.replaceChildren(...versions.map((v, i) => h('li', { class: 'version', 'data-testid': 'version' },
      h('p', { class: 'version-text' }, v.text),
      h('p', { class: 'muted version-when' },
        `${i === 0 ? t('chat.version_sent') : t('chat.version_edited')} · ${fmtDateTime(parseTime(v.at))}`))));
  } catch (err) {
    if (gen !== versionsGen) return;
    if (err.status === 401) {
      dlg.close();
      hooks.toAuth(t('err.unauthenticated'));
      return;
    }
    list.replaceChildren(h('li', { class: 'form-error' }, errorText(err)));
  }
}

export function bindGestures() {
  $('composer-context-cancel').addEventListener('click', () => {
    cancelContext();
    $('message-input').focus();
  });
  $('versions-close').addEventListener('click', () => $('versions-dialog').close());
  document.addEventListener('click', (e) => {
    if (menuFor && !e.target.closest('#bubble-menu') && !e.target.closest('[data-testid="more-button"]')) closeBubbleMenu();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    if (menuFor) {
      const more = menuFor.el && menuFor.el.querySelector('[data-testid="more-button"]');
      closeBubbleMenu();
      if (more) more.focus();
    } else if (!$('composer-context').hidden && document.activeElement === $('message-input')) {
      cancelContext();
    }
  });
}
