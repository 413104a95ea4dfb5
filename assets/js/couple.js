// The couple as the server sees it: /api/me polled while chatting (a break-up by the partner,
// the couple gone), the break-up banner, breaking up and taking it back.

import { t } from '../i18n.js';
import { $ } from './dom.js';
import { fmtDateTime, parseTime } from './format.js';
import { state } from './state.js';
import { api, errorText } from './http.js';
import { hooks } from './hooks.js';
import { closeMenu, confirmDialog, toast } from './ui.js';

export async function pollMe() {
  if (state.screen !== 'chat') return;
  try {
    const me = await api('GET', '/api/me');
    if (!me.couple) {
      hooks.unpaired();
      return;
    }
    state.couple = me.couple;
    updateBanner();
  } catch (err) {
    if (err.status === 401) hooks.toAuth(t('err.unauthenticated'));
  }
}

export function updateBanner() {
  const banner = $('breakup-banner');
  const at = state.couple && state.couple.delete_at;
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
    if (state.couple) state.couple.delete_at = (res && res.delete_at) || state.couple.delete_at;
    updateBanner();
    $('restore-button').focus();
  } catch (err) {
    if (err.status === 401) return hooks.toAuth(t('err.unauthenticated'));
    if (err.code === 'not_paired') return pollMe();
    toast(err.status === 404 || err.status === 405 ? t('err.not_implemented') : errorText(err));
  }
}

async function restore() {
  try {
    const res = await api('POST', '/api/couple/restore');
    if (res && res.couple) state.couple = { ...state.couple, ...res.couple };
    if (state.couple) state.couple.delete_at = (res && res.couple && res.couple.delete_at) || null;
    updateBanner();
    toast(t('breakup.restored'));
    $('message-input').focus();
  } catch (err) {
    if (err.status === 401) return hooks.toAuth(t('err.unauthenticated'));
    toast(err.status === 404 || err.status === 405 ? t('err.not_implemented') : errorText(err));
    pollMe();
  }
}

export function bindCouple() {
  $('breakup-button').addEventListener('click', breakUp);
  $('restore-button').addEventListener('click', restore);
}
