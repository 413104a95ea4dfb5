// The Answers page: a dialog listing every question asked to the couple with both answers
// (the partner's stays hidden until this user has answered too).

import { t } from '../i18n.js';
import { $, h } from './dom.js';
import { fmtDateTime, parseTime } from './format.js';
import { partnerName, state } from './state.js';
import { api, errorText } from './http.js';
import { hooks } from './hooks.js';
import { closeMenu } from './ui.js';

async function openAnswers() {
  closeMenu();
  const dlg = $('answers-dialog');
  if (!dlg.open) dlg.showModal();
  $('answers-close').focus();
  await loadAnswers(true);
}

export async function loadAnswers(showLoading) {
  const list = $('answers-list');
  if (showLoading) list.replaceChildren(h('p', { class: 'answers-empty' }, t('answers.loading')));
  try {
    const res = await api('GET', '/api/answers');
    const answers = (res && res.answers) || [];
    if (!answers.length) {
      list.replaceChildren(h('p', { class: 'answers-empty' }, t('answers.empty')));
      return;
    }
    list.replaceChildren(...answers.map(answerItem));
  } catch (err) {
    if (err.status === 401) {
      $('answers-dialog').close();
      hooks.toAuth(t('err.unauthenticated'));
      return;
    }
    const text = err.status === 404 || err.status === 405 ? t('answers.unavailable') : errorText(err);
    list.replaceChildren(h('p', { class: 'answers-empty' }, text));
  }
}

function answerItem(a) {
  const name = partnerName();
  const mineCol = h('div', { class: 'answer-col answer-mine', 'data-testid': 'answer-mine' },
    h('span', { class: 'who' }, t('answers.me')));
  if (a.mine) mineCol.append(h('span', null, a.mine.text));
  else mineCol.append(h('span', { class: 'placeholder' }, t('answers.not_yet')));
  const partnerCol = h('div', { class: 'answer-col answer-theirs', 'data-testid': 'answer-partner', 'data-hidden': a.partner ? 'false' : 'true' },
    h('span', { class: 'who' }, t('answers.partner', { name })));
  if (a.partner) partnerCol.append(h('span', null, a.partner.text));
  else if (!a.mine) partnerCol.append(h('span', { class: 'placeholder' }, t('answers.hidden', { name })));
  else partnerCol.append(h('span', { class: 'placeholder' }, t('answers.waiting', { name })));
  const asked = a.asked_at ? parseTime(a.asked_at) : null;
  return h('article', { class: 'answer-item', 'data-testid': 'answer-item', 'data-question-id': a.question_id },
    h('h3', null, a.question || ''),
    h('div', { class: 'answer-sub' },
      a.keyword ? h('span', { class: 'keyword' }, `#${a.keyword}`) : null,
      asked ? h('time', { datetime: a.asked_at }, fmtDateTime(asked)) : null),
    h('div', { class: 'answer-cols' }, mineCol, partnerCol));
}

export function bindAnswers() {
  $('answers-link').addEventListener('click', openAnswers);
  $('answers-close').addEventListener('click', () => $('answers-dialog').close());
  $('answers-dialog').addEventListener('close', () => {
    if (state.screen !== 'chat') return;
    if (!$('question-card').hidden) $('answer-input').focus();
    else $('answers-link').focus();
  });
  $('answers-dialog').addEventListener('click', (e) => {
    if (e.target === $('answers-dialog')) $('answers-dialog').close(); // backdrop click
  });
}
