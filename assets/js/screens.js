// Screens: which of loading / auth / pair / chat is shown, and where the shared buttons
// (language, change password, log out) sit on it. Leaving a screen lets go of what it holds (the pairing poll,
// the chat socket) through hooks.shown, which app.js points at pairing.js and chat.js.

import { $ } from './dom.js';
import { state } from './state.js';
import { hooks } from './hooks.js';

function placeShared(screen) {
  const langBtn = $('lang-toggle');
  const logoutBtn = $('logout-button');
  const passwordBtn = $('password-button');
  const parking = $('parking');
  if (screen === 'auth') {
    document.querySelector('[data-slot="lang"]').append(langBtn);
    parking.append(passwordBtn, logoutBtn);
  } else if (screen === 'pair') {
    document.querySelector('[data-slot="pair-tools"]').append(langBtn, passwordBtn, logoutBtn);
  } else if (screen === 'chat') {
    document.querySelector('[data-slot="chat-tools"]').append(langBtn, passwordBtn, logoutBtn);
  } else {
    parking.append(langBtn, passwordBtn, logoutBtn);
  }
}

export function show(screen) {
  state.screen = screen;
  for (const name of ['loading', 'auth', 'pair', 'chat']) {
    $(`screen-${name}`).hidden = name !== screen;
  }
  placeShared(screen);
  hooks.shown(screen);
}
