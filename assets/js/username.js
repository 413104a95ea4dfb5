// The username rule and, on the auth screen, the hint under the username field that says
// whether the name typed is still free (GET /api/usernames/{name}). Only a hint: logging in
// and signing up never wait for it. Asks only for well-formed names, ~300 ms after the last
// keystroke, and drops answers for a name that is no longer in the field.

import { t } from '../i18n.js';
import { $, USERNAME_CHECK_MS } from './dom.js';
import { api } from './http.js';

/** 3-32 letters, digits, '_', '.', '-' (the server's rule; it has the last word). */
export function validUsername(name) {
  const n = Array.from(name).length;
  return n >= 3 && n <= 32 && /^[\p{L}\p{M}\p{N}_.-]+$/u.test(name);
}

// This module's own bookkeeping: the debounce timer, a counter that makes older answers stale,
// and what the hint shows now (name and availability, for relabelling after a switch).
const check = { timer: null, gen: 0, shown: null };

function render() {
  const el = $('auth-username-status');
  if (!check.shown) {
    el.hidden = true;
    el.textContent = '';
    el.removeAttribute('data-available');
    return;
  }
  const free = check.shown.available;
  el.dataset.available = free ? 'true' : 'false';
  el.textContent = t(free ? 'auth.username_available' : 'auth.username_taken');
  el.hidden = false;
}

/** Hides the hint and forgets any check in flight (the field changed, or the screen did). */
export function resetUsernameHint() {
  clearTimeout(check.timer);
  check.timer = null;
  check.gen += 1;
  check.shown = null;
  render();
}

/** Re-renders the hint's text in the current language. */
export function relabelUsernameHint() {
  render();
}

async function lookUp(name, gen) {
  try {
    const res = await api('GET', `/api/usernames/${encodeURIComponent(name)}`);
    if (gen !== check.gen || $('auth-username').value.trim() !== name) return; // stale
    if (!res || typeof res.available !== 'boolean') return;
    check.shown = { name, available: res.available };
    render();
  } catch {
    // Malformed after all, rate limited, offline: no hint, nothing else changes.
  }
}

function onInput() {
  const name = $('auth-username').value.trim();
  if (check.shown && check.shown.name === name) return; // still the name the hint is about
  resetUsernameHint();
  if (!validUsername(name)) return;
  const gen = check.gen;
  check.timer = setTimeout(() => lookUp(name, gen), USERNAME_CHECK_MS);
}

export function bindUsernameHint() {
  $('auth-username').addEventListener('input', onInput);
}
