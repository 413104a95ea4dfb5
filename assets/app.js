// Duet browser client: plain ES modules, no build step, no dependencies. This file is the entry
// point index.html loads: it wires the modules in js/ together and starts the app.
// Speaks the wire contract in PROTOCOL.md (HTTP under /api, WebSocket at /ws).
//
// The modules, each importing only from the ones listed before it (no import cycles; the few
// calls that must go the other way pass through js/hooks.js, filled in below):
//   i18n.js          UI strings in Korean and English
//   js/dom.js        $, h (builds elements), icons, constants
//   js/format.js     times, days, sizes, initials, uuid
//   js/state.js      the shared mutable state: the one `state` object
//   js/http.js       fetch wrapper for /api, error codes and their texts
//   js/hooks.js      the calls that go up the graph (toAuth, unpaired, shown, frame, socketClosed)
//   js/ui.js         toasts, the confirm dialog, the chat menu
//   js/push.js       Web Push: this device's subscription, the devices dialog
//   js/notify.js     while the tab is hidden: unread count in the title, system notifications;
//                    the silent-send switch
//   js/screens.js    which screen is shown, where the shared buttons sit
//   js/username.js   the username rule, the "is it free" hint on the auth screen
//   js/files.js      image / file chips in bubbles, the upload request
//   js/connection.js the WebSocket: connect, send, reconnect with backoff, the connection pill
//   js/couple.js     /api/me poll while chatting, the break-up banner, break up and restore
//   js/password.js   the change-password dialog
//   js/answers.js    the Answers page
//   js/calendar.js   anniversaries: "N days together", milestones and our dates (D-day)
//   js/ourwords.js   our most used words, leaving words out
//   js/timeline.js   bubbles, day separators, read marks, scrolling, deleting, older history;
//                    an older window (after a jump) with newer pages and the way back to the present
//   js/story.js      search (hits with the match marked), jumping to a hit or a day (the timeline
//                    shows that window: timeline.js showWindow / jumpToLatest)
//   js/idb.js        the browser's database (IndexedDB) that the two below keep things in
//   js/outbox.js     the chats not acked yet, kept across reloads
//   js/offline.js    the last conversation seen, to open and read without a network
//   js/sending.js    the composer and pending sends (ack, retry, discard), files being sent
//   js/questions.js  question events, the question card (answer gate), answering
//   js/frames.js     dispatch of server frames
//   js/chat.js       the chat screen's lifecycle, what a closed socket means
//   js/pairing.js    the pairing screen
//   js/session.js    /api/me at start, log in / sign up / log out, back to auth or pairing
//   js/language.js   the language button and re-rendering after a switch
//   js/install.js    the service worker (the installable app, the shell offline) and the offer
//                    to reload when a new version is deployed
//
// Rules every module keeps: user data only ever reaches the DOM through textContent or
// attributes (never innerHTML), styles go through the CSSOM (the Content-Security-Policy allows
// no inline script or style), and message text is never written to the console.
//
// Stable data-testid attributes (for end-to-end tests):
//   Screens:     loading-screen, auth-screen, pairing-screen, chat-screen
//   Auth:        auth-form, auth-username, auth-password, login-button, signup-button, auth-error,
//                username-hint (under auth-username; data-available="true|false", shown only
//                once the server answered for the well-formed name typed)
//   Everywhere:  lang-toggle, logout-button, password-button (one element each, moved into the
//                visible screen: the pairing screen's top bar; in the chat, the menu opened by
//                menu-button; not on the auth screen), toast
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
//                (data-question-id), typing-indicator, new-messages-button, jump-latest (shown
//                while an older window is: data-unseen = the partner's chats that came meanwhile);
//                bubble data-jumped="true" on the chat a search hit or a day jumped to
//   Composer:    message-input, send-button, attach-button, attach-input (the file input)
//   Questions:   question-card (data-question-id), question-text, answer-input,
//                answer-submit, question-error
//   Answers:     answers-page (the dialog), answers-list, answer-item (data-question-id),
//                answer-mine, answer-partner, answers-close
//   Search:      search-button, search-dialog, search-input, search-submit, search-date, date-submit,
//                search-status, search-results, search-hit (data-seq), search-mark, search-more,
//                search-close
//   Calendar:    days-together (header), anniversaries-button (menu), anniversaries-dialog,
//                cal-summary, cal-zone, use-my-zone, cal-upcoming, cal-item (data-kind), cal-label, cal-remove, start-date,
//                start-submit, own-title, own-date, own-yearly, own-submit, cal-error
//   Our words:   words-button (menu), words-dialog, words-list, word-item (data-word), word-exclude,
//                words-excluded, word-excluded (data-word), word-include
//   Export:      export-link (menu), banner-export-link (break-up banner)
//   Notify:      notify-toggle (menu; aria-pressed), silent-toggle (composer; aria-pressed)
//   Dialogs:     confirm-dialog, confirm-ok, confirm-cancel
//   Password:    password-dialog, password-old, password-new, password-submit, password-error,
//                password-cancel
//   Update:      update-banner, update-reload

import { applyStatic } from './i18n.js';
import { fillIcons } from './js/dom.js';
import { registerHooks } from './js/hooks.js';
import { bindMenu } from './js/ui.js';
import { bindPush } from './js/push.js';
import { bindNotify } from './js/notify.js';
import { bindCalendar } from './js/calendar.js';
import { bindWords } from './js/ourwords.js';
import { bindStory, openAt } from './js/story.js';
import { state } from './js/state.js';
import { bindUsernameHint } from './js/username.js';
import { bindCouple } from './js/couple.js';
import { bindPassword, closePasswordDialog } from './js/password.js';
import { bindAnswers } from './js/answers.js';
import { bindTimeline } from './js/timeline.js';
import { bindGestures, openBubbleMenu, showVersions } from './js/gestures.js';
import { bindAlbum } from './js/album.js';
import { bindVoice } from './js/voice.js';
import { bindComposer } from './js/sending.js';
import { bindQuestions } from './js/questions.js';
import { handleFrame } from './js/frames.js';
import { bindChat, leaveChat, onSocketClosed } from './js/chat.js';
import { bindPairing, stopPairing } from './js/pairing.js';
import { bindSession, loadMe, toAuth, unpaired } from './js/session.js';
import { bindLanguage, updateLangButton } from './js/language.js';
import { bindInstall } from './js/install.js';
import { bindOffline } from './js/offline.js';

// The calls that go up the module graph (see js/hooks.js), wired before anything runs.
registerHooks({
  toAuth,
  unpaired,
  shown(screen) {
    if (screen !== 'pair') stopPairing();
    if (screen !== 'chat') leaveChat();
    if (screen === 'auth' || screen === 'loading') closePasswordDialog();
  },
  frame: handleFrame,
  socketClosed: onSocketClosed,
  openAt,
  bubbleMenu: openBubbleMenu,
  showVersions,
});

/** A notification clicked (sw.js): Duet opens at its chat, given as `/?seq=N` to a new window
 * or by message to one already open. */
function bindOpenAt() {
  const params = new URLSearchParams(window.location.search);
  const seq = Number.parseInt(params.get('seq') || '', 10);
  if (Number.isFinite(seq)) {
    state.openAtSeq = seq;
    window.history.replaceState(null, '', '/');
  }
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.addEventListener('message', (event) => {
    const data = event.data || {};
    if (data.type !== 'open-chat' || typeof data.seq !== 'number') return;
    if (state.screen === 'chat' && state.chat.synced) openAt(data.seq);
    else state.openAtSeq = data.seq;
  });
}

async function boot() {
  fillIcons();
  applyStatic();
  updateLangButton();
  bindSession();
  bindUsernameHint();
  bindPairing();
  bindLanguage();
  bindComposer();
  bindTimeline();
  bindGestures();
  bindAlbum();
  bindVoice();
  bindChat();
  bindQuestions();
  bindAnswers();
  bindCouple();
  bindPassword();
  bindMenu();
  bindNotify();
  bindPush();
  bindCalendar();
  bindWords();
  bindStory();
  bindInstall();
  bindOffline();
  bindOpenAt();
  await loadMe();
}

boot();
