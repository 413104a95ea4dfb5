// Shared widgets: toasts, the confirm dialog and the chat header's menu.

import { t } from '../i18n.js';
import { $, h } from './dom.js';

export function toast(text, ms = 3800) {
  const el = h('div', { class: 'toast', 'data-testid': 'toast' }, text);
  $('toasts').append(el);
  setTimeout(() => el.remove(), ms);
}

export function confirmDialog(text, okLabel) {
  const dlg = $('confirm-dialog');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel || t('dialog.ok');
  dlg.returnValue = '';
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.showModal();
    const cancel = dlg.querySelector('[data-testid="confirm-cancel"]');
    if (cancel) cancel.focus();
  });
}

function openMenu() {
  $('menu').hidden = false;
  $('menu-button').setAttribute('aria-expanded', 'true');
  const first = $('menu').querySelector('button');
  if (first) first.focus();
}

export function closeMenu() {
  if ($('menu').hidden) return;
  $('menu').hidden = true;
  $('menu-button').setAttribute('aria-expanded', 'false');
}

export function bindMenu() {
  $('menu-button').addEventListener('click', () => {
    if ($('menu').hidden) openMenu();
    else closeMenu();
  });
  document.addEventListener('click', (e) => {
    if (!$('menu').hidden && !e.target.closest('.menu-wrap')) closeMenu();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !$('menu').hidden) {
      closeMenu();
      $('menu-button').focus();
    }
  });
  $('menu').addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const items = [...$('menu').querySelectorAll('button')];
    const i = items.indexOf(document.activeElement);
    const next = e.key === 'ArrowDown' ? (i + 1) % items.length : (i - 1 + items.length) % items.length;
    items[next].focus();
    e.preventDefault();
  });
}
