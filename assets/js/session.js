// The session: who is signed in and which screen that means. Loads /api/me at start, signs up
// and logs in, logs out, and sends the user back to the login screen (toAuth) or to pairing
// (unpaired) when the server says the session or the couple is gone.

import { t } from '../i18n.js';
import { $ } from './dom.js';
import { state } from './state.js';
import { api, errorText } from './http.js';
import { closeMenu, toast } from './ui.js';
import { show } from './screens.js';
import { resetUsernameHint, validUsername } from './username.js';
import { leaveChat, resetChatState, showChat } from './chat.js';
import { showPairing } from './pairing.js';
import { handleFrame } from './frames.js';
import { applyCalendar } from './calendar.js';
import { restoreOutbox } from './sending.js';
import { forgetConversation, lastConversation } from './offline.js';
import { forgetUser } from './outbox.js';
import { forgetPushDevice } from './push.js';

export async function loadMe() {
  show('loading');
  $('loading-text').textContent = t('app.loading');
  $('loading-retry').hidden = true;
  try {
    const me = await api('GET', '/api/me');
    route(me);
  } catch (err) {
    if (err.status === 401) {
      showAuth();
    } else if (!err.status && await openFromDevice()) {
      // No network: the conversation kept on this device, to read (and write to the outbox).
    } else {
      $('loading-text').textContent = `${t('app.unreachable')} ${errorText(err)}`;
      $('loading-retry').hidden = false;
      $('loading-retry').focus();
    }
  }
}

/** Opens the conversation last kept on this device (js/offline.js); false when there is none. */
async function openFromDevice() {
  const kept = await lastConversation();
  if (!kept || !kept.me || !kept.couple) return false;
  state.me = kept.me;
  state.couple = kept.couple;
  showChat();
  state.chat.fromDevice = true;
  for (const r of kept.records || []) handleFrame({ ...r, type: r.kind });
  // The socket, once back, loads the history afresh (frames.js onHello), not after these.
  state.chat.lastSeq = null;
  if (kept.calendar) applyCalendar(kept.calendar);
  restoreOutbox();
  return true;
}

function route(me) {
  const previousUser = state.me && state.me.id;
  state.me = me.user;
  state.couple = me.couple;
  if (previousUser && previousUser !== state.me.id) resetChatState();
  if (state.couple) showChat();
  else showPairing();
}

export function toAuth(message) {
  // Nothing of a signed-out session stays on this device.
  forgetConversation();
  forgetPushDevice();
  if (state.me) forgetUser(state.me.id);
  state.me = null;
  state.couple = null;
  resetChatState();
  showAuth(message);
}

/** The couple is gone (the break-up fell due, or the server no longer pairs us): pair again. */
export function unpaired() {
  state.couple = null;
  resetChatState();
  showPairing();
}

function showAuth(message) {
  show('auth');
  const err = $('auth-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('auth-password').value = '';
  resetUsernameHint();
  setTimeout(() => $('auth-username').focus(), 0);
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

async function logout() {
  closeMenu();
  const from = state.screen;
  // Stop the socket first: the server closes it with 4001 when the session ends, and that
  // must not read as "your session expired".
  leaveChat();
  try {
    await api('POST', '/api/logout');
  } catch (err) {
    if (err.status !== 401) {
      toast(errorText(err));
      if (from === 'chat' && state.couple) showChat();
      return;
    }
  }
  toAuth();
}

export function bindSession() {
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
  $('logout-button').addEventListener('click', logout);
}
