// Changing the password: the dialog opened by password-button (in the chat's menu, or in the
// pairing screen's top bar). POST /api/password with the current and the new password; this
// session stays, every other session of the user ends (their sockets close with 4001 and those
// pages go back to the login screen).

import { t } from '../i18n.js';
import { $ } from './dom.js';
import { state } from './state.js';
import { api, errorText } from './http.js';
import { hooks } from './hooks.js';
import { closeMenu, toast } from './ui.js';

let busy = false;

function setError(text, field) {
  const err = $('password-error');
  err.textContent = text;
  err.hidden = !text;
  for (const id of ['password-old', 'password-new']) {
    $(id).setAttribute('aria-invalid', id === field ? 'true' : 'false');
  }
  if (field) {
    $(field).focus();
    $(field).select();
  }
}

function resetForm() {
  $('password-old').value = '';
  $('password-new').value = '';
  setError('');
}

function openPasswordDialog() {
  closeMenu();
  const dlg = $('password-dialog');
  resetForm();
  // For password managers: which account this is (a hidden field, never shown).
  $('password-username').value = (state.me && state.me.username) || '';
  if (!dlg.open) dlg.showModal();
  $('password-old').focus();
}

/** Closes the dialog if it is open (the session ended, or its screen went away). */
export function closePasswordDialog() {
  const dlg = $('password-dialog');
  if (dlg.open) dlg.close();
}

async function onSubmit(event) {
  event.preventDefault();
  if (busy) return;
  const oldPassword = $('password-old').value;
  const newPassword = $('password-new').value;
  setError('');
  if (!oldPassword) return setError(t('err.invalid_input'), 'password-old');
  const n = Array.from(newPassword).length;
  if (n < 8 || n > 128) return setError(t('err.password_rule'), 'password-new');
  busy = true;
  const buttons = [$('password-submit'), $('password-cancel')];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await api('POST', '/api/password', { old_password: oldPassword, new_password: newPassword });
    closePasswordDialog();
    toast(t('password.changed'));
  } catch (err) {
    if (err.status === 401) {
      closePasswordDialog();
      hooks.toAuth(t('err.unauthenticated'));
      return;
    }
    const field = { forbidden: 'password-old', invalid_input: 'password-new' }[err.code] || null;
    setError(errorText(err, { forbidden: 'password.wrong_old', invalid_input: 'err.password_rule' }), field);
  } finally {
    busy = false;
    buttons.forEach((b) => { b.disabled = false; });
  }
}

export function bindPassword() {
  const dlg = $('password-dialog');
  $('password-button').addEventListener('click', openPasswordDialog);
  $('password-form').addEventListener('submit', onSubmit);
  $('password-cancel').addEventListener('click', closePasswordDialog);
  dlg.addEventListener('cancel', (e) => {
    if (busy) e.preventDefault(); // Escape waits for the answer in flight
  });
  dlg.addEventListener('close', () => {
    resetForm(); // passwords do not linger in the DOM
    if (state.screen === 'chat') $('menu-button').focus();
    else if (state.screen === 'pair') $('password-button').focus();
  });
}
