// The chat screen's lifecycle: opening it for the couple (socket, polls, header), leaving it,
// throwing its state away, and what a closed socket means (session gone, couple gone, or
// just reconnect). Also the page-level events that matter to an open chat (visibility,
// focus, online/offline) and the reconnect-now button.

import { loadCalendar } from './calendar.js';
import { t } from '../i18n.js';
import { $, ME_POLL_MS } from './dom.js';
import { initial } from './format.js';
import { partnerName, resetChat, state } from './state.js';
import { api } from './http.js';
import { hooks } from './hooks.js';
import { closeMenu, toast } from './ui.js';
import { resumePush } from './notify.js';
import { show } from './screens.js';
import { connect, disconnect, reconnectAfter, reconnectNow, reportLooking, setConn, wsSend } from './connection.js';
import { pollMe, updateBanner } from './couple.js';
import { scheduleRead, updateEmpty, updateLatestButton } from './timeline.js';
import { hideQuestionCard, updateAnswerButton } from './questions.js';
import { setPresence } from './frames.js';
import { renderAllPending } from './sending.js';
import { saveNow } from './offline.js';
import { cancelRecording } from './voice.js';
import { dropGestures } from './gestures.js';

/** Forgets the conversation: leaves the chat, drops its state and empties its DOM. */
export function resetChatState() {
  leaveChat();
  for (const p of state.chat.pending.values()) if (p.preview) URL.revokeObjectURL(p.preview);
  resetChat();
  $('timeline').replaceChildren();
  updateLatestButton();
  $('pending-items').replaceChildren();
  $('history-status').textContent = '';
  hideQuestionCard();
}

export function showChat() {
  if (state.couple && state.chat.coupleId && state.chat.coupleId !== state.couple.id) resetChatState();
  show('chat');
  state.chat.active = true;
  state.chat.coupleId = state.couple.id;
  const name = partnerName();
  $('partner-name').textContent = name;
  $('partner-avatar').textContent = initial(name);
  document.title = `Duet · ${name}`;
  setPresence(state.chat.partnerOnline);
  updateBanner();
  updateEmpty();
  clearInterval(state.chat.mePoll);
  state.chat.mePoll = setInterval(pollMe, ME_POLL_MS);
  connect();
  loadCalendar();
  resumePush();
  setTimeout(() => {
    if (!$('question-card').hidden) $('answer-input').focus();
    else $('message-input').focus();
  }, 0);
}

export function leaveChat() {
  if (!state.chat.active) return;
  state.chat.active = false;
  disconnect();
  clearInterval(state.chat.mePoll);
  clearTimeout(state.chat.typingTimer);
  clearTimeout(state.chat.readTimer);
  for (const p of state.chat.pending.values()) clearTimeout(p.timer);
  $('typing').hidden = true;
  closeMenu();
  cancelRecording();
  // Nothing of this conversation stays on screen for whoever comes next.
  for (const id of ['answers-dialog', 'album-dialog', 'photo-dialog', 'versions-dialog']) {
    if ($(id).open) $(id).close();
  }
  $('composer-context').hidden = true;
  $('memory-card').hidden = true;
  document.title = 'Duet';
}

/** hooks.socketClosed: the socket closed (connection.js has marked it down already). */
export async function onSocketClosed(code, hadHello, lived) {
  for (const p of state.chat.pending.values()) clearTimeout(p.timer);
  dropGestures(); // unanswered now: an edit's text comes back to the composer
  renderAllPending(); // what is not sent now waits, and can be taken back
  saveNow(); // the network may be gone for a while: keep what was seen
  $('typing').hidden = true;
  updateAnswerButton();
  if (!state.chat.active) return;
  if (code === 4001) {
    hooks.toAuth(t('err.unauthenticated'));
    return;
  }
  if (code === 4002) {
    // The break-up fell due: the couple is gone, both of us may pair again.
    hooks.unpaired();
    return;
  }
  if (!hadHello) {
    // The upgrade may have been refused (401, 409 not_paired...): the browser hides the
    // status, so ask the API what state we are in.
    setConn('connecting');
    try {
      const me = await api('GET', '/api/me');
      if (!state.chat.active) return;
      state.me = me.user;
      if (!me.couple) {
        hooks.unpaired();
        return;
      }
      if (me.couple.id !== state.chat.coupleId) {
        state.couple = me.couple;
        resetChatState();
        showChat();
        return;
      }
      state.couple = me.couple;
      updateBanner();
    } catch (err) {
      if (err.status === 401) {
        hooks.toAuth(t('err.unauthenticated'));
        return;
      }
    }
    if (!state.chat.active) return;
  }
  reconnectAfter(lived);
}

function nudge() {
  closeMenu();
  toast(wsSend({ type: 'nudge' }) ? t('nudge.sent') : t('err.network'));
}

export function bindChat() {
  $('nudge-button').addEventListener('click', nudge);
  $('reconnect-now').addEventListener('click', () => {
    state.chat.attempt = 0;
    reconnectNow();
  });
  document.addEventListener('visibilitychange', () => {
    if (state.screen === 'chat') reportLooking();
    if (document.visibilityState !== 'visible' || state.screen !== 'chat') return;
    scheduleRead();
    if (!state.chat.ws && state.chat.retryTimer) {
      state.chat.attempt = 0;
      reconnectNow();
    }
  });
  window.addEventListener('focus', () => { if (state.screen === 'chat') scheduleRead(); });
  window.addEventListener('online', () => {
    if (state.screen === 'chat' && !state.chat.ws) {
      state.chat.attempt = 0;
      reconnectNow();
    }
  });
  window.addEventListener('offline', () => {
    if (state.screen === 'chat' && !state.chat.ws) setConn('offline');
  });
}
