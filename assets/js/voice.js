// Voice notes: hold the microphone button to record (MediaRecorder), let go to send, slide
// away from it to cancel; from the keyboard, Enter or Space starts and a second press sends.
// A recording stops by itself just before the longest a voice note may be; the server measures
// and checks it again (POST /api/files?voice=true). The microphone is on only while the button
// is held (or toggled on): letting go before the microphone is granted records nothing, and
// leaving the conversation, hiding the tab or a question holding the conversation cancel it.

import { t } from '../i18n.js';
import { $ } from './dom.js';
import { state } from './state.js';
import { toast } from './ui.js';
import { sendVoice } from './sending.js';

/** Just under the longest recording the server's default allows (DUET_MAX_VOICE_SECS, 300). */
const MAX_MS = 299 * 1000;
/** How far the pointer may slide off the button before letting go cancels. */
const CANCEL_PX = 60;

const rec = {
  recorder: null,
  stream: null,
  chunks: [],
  started: 0,
  timer: null,
  limit: null,
  cancelled: false,
  origin: null,
  starting: false,
  released: false,
  chat: null,
};

async function start() {
  if (rec.recorder || rec.starting) return;
  if (!navigator.mediaDevices || typeof MediaRecorder !== 'function') {
    toast(t('voice.unsupported'));
    return;
  }
  rec.starting = true;
  rec.released = false;
  rec.cancelled = false;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    rec.starting = false;
    toast(t('voice.denied'));
    return;
  }
  rec.starting = false;
  // Let go (or cancelled) while the microphone was being granted: nothing is recorded.
  if (rec.released) {
    for (const track of stream.getTracks()) track.stop();
    return;
  }
  rec.stream = stream;
  rec.chat = state.chat;
  const type = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/mp4'].find((m) => MediaRecorder.isTypeSupported(m));
  rec.recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  rec.chunks = [];
  rec.recorder.ondataavailable = (e) => { if (e.data && e.data.size) rec.chunks.push(e.data); };
  rec.recorder.onstop = finish;
  rec.recorder.start();
  rec.started = Date.now();
  rec.limit = setTimeout(() => stop(false), MAX_MS);
  show(true);
  rec.timer = setInterval(tick, 250);
  tick();
}

function tick() {
  // A question took the composer (and the button) away: the recording goes too.
  if ($('composer').hidden) {
    stop(true);
    return;
  }
  const s = Math.floor((Date.now() - rec.started) / 1000);
  $('voice-time').textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function stop(cancel) {
  rec.origin = null;
  if (rec.starting) {
    rec.released = true;
    return;
  }
  if (!rec.recorder) return;
  rec.cancelled = rec.cancelled || cancel;
  clearInterval(rec.timer);
  clearTimeout(rec.limit);
  if (rec.recorder.state !== 'inactive') rec.recorder.stop();
  else finish();
}

/** Stops a recording under way and throws it away (the conversation is left, hidden or held). */
export function cancelRecording() {
  if (rec.starting || rec.recorder) stop(true);
}

function finish() {
  const { chunks, cancelled, recorder, chat } = rec;
  for (const track of (rec.stream && rec.stream.getTracks()) || []) track.stop();
  rec.recorder = null;
  rec.stream = null;
  rec.chat = null;
  show(false);
  if (cancelled) {
    toast(t('voice.cancelled'));
    return;
  }
  // Only into the conversation it was recorded in.
  if (chat !== state.chat || !state.chat.active) return;
  const type = (recorder && recorder.mimeType) || 'audio/webm';
  const blob = new Blob(chunks, { type: type.split(';')[0] });
  if (!blob.size) return;
  const ext = type.includes('ogg') ? 'ogg' : type.includes('mp4') ? 'm4a' : 'webm';
  sendVoice(new File([blob], `voice.${ext}`, { type: blob.type }));
}

function show(on) {
  $('voice-button').setAttribute('aria-pressed', on ? 'true' : 'false');
  $('voice-status').hidden = !on;
  $('voice-status').dataset.cancel = 'false';
  $('voice-hint').textContent = on ? t('voice.hint') : '';
}

export function bindVoice() {
  const btn = $('voice-button');
  btn.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    btn.setPointerCapture(e.pointerId);
    rec.origin = { x: e.clientX, y: e.clientY };
    start();
  });
  const far = (e) => !!rec.origin && Math.hypot(e.clientX - rec.origin.x, e.clientY - rec.origin.y) > CANCEL_PX;
  btn.addEventListener('pointermove', (e) => {
    if (rec.recorder && rec.origin) $('voice-status').dataset.cancel = far(e) ? 'true' : 'false';
  });
  btn.addEventListener('pointerup', (e) => {
    if (!rec.origin) return;
    stop(far(e));
  });
  btn.addEventListener('pointercancel', () => {
    if (rec.origin) stop(true);
  });
  btn.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' && e.key !== ' ') return;
    e.preventDefault();
    if (e.repeat) return;
    if (rec.recorder) stop(false);
    else start();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && (rec.recorder || rec.starting)) stop(true);
  });
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) cancelRecording();
  });
}
