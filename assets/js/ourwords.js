// Our words: the couple's most used words with both counts, leaving a word out and taking it
// back in. The `excluded_words` frame brings a change by either of us.

import { t } from '../i18n.js';
import { $, h } from './dom.js';
import { partnerName } from './state.js';
import { api, errorText } from './http.js';
import { closeMenu, toast } from './ui.js';

async function load() {
  if (!$('words-dialog').open) return;
  try {
    const body = await api('GET', '/api/words?limit=30');
    $('words-status').textContent = body.complete ? '' : t('words.counting');
    if (!body.words.length) $('words-status').textContent = t('words.empty');
    $('words-list').replaceChildren(...body.words.map((w) => h('li', {
      class: 'word-item', 'data-testid': 'word-item', 'data-word': w.word,
    },
    h('span', { class: 'word' }, w.word),
    h('span', { class: 'word-counts muted' }, t('words.counts', { mine: w.mine, partner: w.partner, name: partnerName() })),
    h('button', {
      class: 'link-btn', type: 'button', 'data-testid': 'word-exclude',
      onclick: () => change('PUT', w.word),
    }, t('words.exclude')))));
    $('words-excluded').replaceChildren(...body.excluded.map((word) => h('li', {
      class: 'word-excluded', 'data-testid': 'word-excluded', 'data-word': word,
    },
    h('span', null, word),
    h('button', {
      class: 'link-btn', type: 'button', 'data-testid': 'word-include',
      onclick: () => change('DELETE', word),
    }, t('words.include')))));
  } catch (err) {
    $('words-status').textContent = errorText(err);
  }
}

async function change(method, word) {
  try {
    await api(method, `/api/words/excluded/${encodeURIComponent(word)}`);
  } catch (err) {
    toast(errorText(err));
  }
  await load();
}

/** The words we leave out changed (by either of us). */
export function onExcludedWords() {
  load();
}

export function bindWords() {
  const dlg = $('words-dialog');
  $('words-button').addEventListener('click', () => {
    closeMenu();
    dlg.showModal();
    $('words-status').textContent = t('answers.loading');
    load();
  });
  dlg.querySelector('[data-close]').addEventListener('click', () => dlg.close());
}
