// Questions: the question events in the conversation and the card that holds the composer
// until this user answers (the answer gate), answer submission, and the `question` /
// `answered` frames (dispatched here by frames.js).

import { t } from '../i18n.js';
import { $, MAX_TEXT } from './dom.js';
import { bumpSeq, isMine, state } from './state.js';
import { api } from './http.js';
import { wsSend } from './connection.js';
import { loadAnswers } from './answers.js';
import { afterInsert, isHeld, nearBottom, placeLive, replaceRecordEl } from './timeline.js';
import { transmit } from './sending.js';

export function onQuestion(f) {
  bumpSeq(f.seq);
  if (typeof f.seq === 'number' && !state.chat.detached) state.chat.readableSeq = Math.max(state.chat.readableSeq, f.seq);
  let q = state.chat.questions.get(f.question_id);
  if (!q) {
    q = { id: f.question_id, me: false, partner: false };
    state.chat.questions.set(q.id, q);
  }
  Object.assign(q, { seq: f.seq, text: f.text, keyword: f.keyword, asked_at: f.asked_at });
  if (typeof f.seq === 'number' && !isHeld(f.seq)) {
    const stick = nearBottom();
    if (placeLive({ kind: 'question', seq: f.seq, question_id: f.question_id, text: f.text, asked_at: f.asked_at })) afterInsert(stick, false);
  }
  if (state.chat.synced) updateQuestionCard();
}

export function onAnswered(f) {
  bumpSeq(f.seq);
  let q = state.chat.questions.get(f.question_id);
  if (!q) {
    q = { id: f.question_id, seq: null, text: '', me: false, partner: false };
    state.chat.questions.set(q.id, q);
  }
  if (isMine(f.user_id)) {
    q.me = true;
    if (state.chat.answering === q.id) state.chat.answering = null;
  } else {
    q.partner = true;
  }
  for (const rec of state.chat.records.values()) {
    if (rec.kind === 'question' && rec.question_id === q.id) replaceRecordEl(rec);
  }
  updateQuestionCard();
  updateAnswerButton();
  if (isMine(f.user_id)) {
    // The gate is open again: resend what it held back.
    const waiting = [...state.chat.pending.values()].filter((p) => p.status === 'failed' && p.code === 'answer_required');
    if (!currentQuestion()) waiting.forEach(transmit);
  }
  if ($('answers-dialog').open) loadAnswers();
}

export function currentQuestion() {
  let best = null;
  for (const q of state.chat.questions.values()) {
    if (q.me) continue;
    if (!best || (q.seq ?? Infinity) < (best.seq ?? Infinity) || ((q.seq ?? Infinity) === (best.seq ?? Infinity) && q.id < best.id)) best = q;
  }
  return best;
}

export function updateQuestionCard(force) {
  if (!state.chat.synced && !force) return;
  const q = currentQuestion();
  const card = $('question-card');
  if (!q) {
    const hadFocus = card.contains(document.activeElement);
    hideQuestionCard();
    if (hadFocus) $('message-input').focus();
    return;
  }
  card.dataset.questionId = String(q.id);
  $('q-text').textContent = q.text || t('q.unknown');
  if (!q.text) lookUpQuestion(q);
  if (state.chat.activeQuestion !== q.id || card.hidden) {
    state.chat.activeQuestion = q.id;
    $('answer-input').value = '';
    $('q-error').hidden = true;
    card.hidden = false;
    $('composer').hidden = true;
    $('composer-error').hidden = true;
    updateAnswerButton();
    if (state.screen === 'chat' && !$('confirm-dialog').open && !$('answers-dialog').open) $('answer-input').focus();
  }
}

/** A question known only by id (from an answer_required error): its text is in the answers list. */
async function lookUpQuestion(q) {
  if (q.lookingUp) return;
  q.lookingUp = true;
  try {
    const res = await api('GET', '/api/answers');
    const found = ((res && res.answers) || []).find((a) => a.question_id === q.id);
    if (found && !q.text) {
      q.text = found.question;
      q.keyword = found.keyword;
      q.asked_at = found.asked_at;
      updateQuestionCard(true);
    }
  } catch {
    // Not available (yet): the card keeps its generic text.
  }
}

export function hideQuestionCard() {
  state.chat.activeQuestion = null;
  $('question-card').hidden = true;
  delete $('question-card').dataset.questionId;
  $('composer').hidden = false;
}

export function updateAnswerButton() {
  const btn = $('answer-submit');
  const busy = state.chat.answering != null;
  btn.disabled = busy || !state.chat.synced;
  btn.textContent = busy ? t('q.sending') : t('q.submit');
}

function onAnswerSubmit(event) {
  event.preventDefault();
  const q = currentQuestion();
  const text = $('answer-input').value.trim();
  const err = $('q-error');
  if (!q || !text) {
    $('answer-input').focus();
    return;
  }
  if (Array.from(text).length > MAX_TEXT) {
    err.textContent = t('err.too_long');
    err.hidden = false;
    return;
  }
  err.hidden = true;
  if (!state.chat.synced || !wsSend({ type: 'answer', question_id: q.id, text })) {
    err.textContent = t('err.network');
    err.hidden = false;
    return;
  }
  state.chat.answering = q.id;
  updateAnswerButton();
}

function onAnswerKey(event) {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    $('answer-form').requestSubmit();
  }
}

export function bindQuestions() {
  $('answer-form').addEventListener('submit', onAnswerSubmit);
  $('answer-input').addEventListener('keydown', onAnswerKey);
}
