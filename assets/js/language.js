// The language button: switches between Korean and English (i18n.js) and rebuilds, on the
// screen shown, everything that was made from UI strings.

import { applyStatic, otherLang, setLang, t } from '../i18n.js';
import { $ } from './dom.js';
import { partnerName, state } from './state.js';
import { closeMenu } from './ui.js';
import { relabelUsernameHint } from './username.js';
import { setConn } from './connection.js';
import { updateBanner } from './couple.js';
import { loadAnswers } from './answers.js';
import { nearBottom, renderAllRecords, scrollToBottom, updateLatestButton } from './timeline.js';
import { renderAllPending } from './sending.js';
import { currentQuestion, updateAnswerButton } from './questions.js';
import { setPresence } from './frames.js';
import { relabelPairing } from './pairing.js';
import { renderNotifyToggle } from './notify.js';
import { relabelCalendar } from './calendar.js';

export function updateLangButton() {
  $('lang-toggle-label').textContent = t('lang.switch');
  $('lang-toggle').setAttribute('aria-label', t('lang.switch_label'));
  $('lang-toggle').setAttribute('lang', otherLang());
}

function switchLang() {
  setLang(otherLang());
  applyStatic();
  updateLangButton();
  renderNotifyToggle();
  // Re-render what was built from strings.
  if (state.screen === 'auth') relabelUsernameHint();
  if (state.screen === 'pair') relabelPairing();
  if (state.screen === 'chat') {
    const mode = $('conn').dataset.state;
    if (mode === 'reconnecting') setConn(mode, Math.max(1, Math.ceil((state.chat.retryAt - Date.now()) / 1000)));
    else setConn(mode);
    setPresence(state.chat.partnerOnline);
    updateBanner();
    const stick = nearBottom();
    renderAllRecords();
    renderAllPending();
    updateLatestButton();
    if (stick) scrollToBottom();
    updateAnswerButton();
    const q = currentQuestion();
    if (q && !q.text) $('q-text').textContent = t('q.unknown');
    $('typing-text').textContent = t('chat.typing', { name: partnerName() });
    if ($('answers-dialog').open) loadAnswers();
    relabelCalendar();
  }
  if ($('lang-toggle').closest('.menu')) {
    closeMenu();
    $('menu-button').focus();
  } else {
    $('lang-toggle').focus();
  }
}

export function bindLanguage() {
  $('lang-toggle').addEventListener('click', switchLang);
}
