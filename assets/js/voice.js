// Voice notes: hold the microphone button to record (MediaRecorder), let go to send, slide
// away from it to cancel; from the keyboard, Enter or Space starts and a second press sends.
// A recording stops by itself at the longest a voice note may be; the server measures and
// checks it again (POST /api/files?voice=true).

import { t } from '../i18n.js';
import { $ } from './dom.js';
import { toast } from './ui.js';
import { sendVoice } from './sending.js';

/** The longest recording, as the server's default allows (DUET_MAX_VOICE_SECS). */
const MAX_MS = 300 * 1000;
/** How far the pointer may slide off the button before letting go cancels. */
const CANCEL_PX = 60;

const rec = { recorder: null, stream: null, chunks: [], started: 0, timer: null, cancelled: false, origin: null };

async function start(origin) {
  if (rec.recorder) return;
  if (!navigator.mediaDevices || typeof MediaRecorder !== 'function') {
    toast(t('voice.unsupported'));
    return;
  }
  rec.cancelled = false;
  rec.origin = origin;
  try {
    rec.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    toast(t('voice.denied'));
    return;
  }
  const type = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/mp4'].find((m) => MediaRecorder.isTypeSupported(m));
  rec.recorder = new MediaRecorder(rec.stream, type ? { mimeType: type } : undefined);
  rec.chunks = [];
  rec.recorder.ondataavailable = (e) => { if (e.data && e.data.size) rec.chunks.push(e.data); };
  rec.recorder.onstop = finish;
  rec.recorder.start();
  rec.started = Date.now();
  show(true);
  rec.timer = setInterval(tick, 250);
  tick();
}

function tick() {
  const ms = Date.now() - rec.started;
  const s = Math.floor(ms / 1000);
  $('voice-time').textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  if (ms >= MAX_MS) stop(false);
}

function stop(cancel) {
  if (!rec.recorder) return;
  rec.cancelled = rec.cancelled || cancel;
  clearInterval(rec.timer);
  if (rec.recorder.state !== 'inactive') rec.recorder.stop();
  else finish();
}

function finish() {
  const { chunks, cancelled, recorder } = rec;
  for (const track of (rec.stream && rec.stream.getTracks()) || []) track.stop();
  rec.recorder = null;
  rec.stream = null;
  show(false);
  if (cancelled) {
    toast(t('voice.cancelled'));
    return;
  }
  const type = (recorder && recorder.mimeType) || 'audio/webm';
  const blob = new Blob(chunks, { type: type.split(';')[0] });
  if (!blob.size) return;
  const ext = type.includes('ogg') ? 'ogg' : type.includes('mp4') ? 'm4a' : 'webm';
  sendVoice(new File([blob], `voice.${ext}`, { type: blob.type }));
}

function show(on) {
  $('voice-button').setAttribute('aria-pressed', on ? 'true' : 'false');
  $('voice-status').hidden = !on;
  $('voice-hint').textContent = on ? t('voice.hint') : '';
}

export function bindVoice() {
  const btn = $('voice-button');
  btn.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    btn.setPointerCapture(e.pointerId);
    start({ x: e.clientX, y: e.clientY });
  });
  btn.addEventListener('pointermove', (e) => {
    if (!rec.recorder || !rec.origin) return;
    const far = Math.hypot(e.clientX - rec.origin.x, e.clientY - rec.origin.y) > CANCEL_PX;
    $('voice-status').dataset.cancel = far ? 'true' : 'false';
  });
  btn.addEventListener('pointerup', (e) => {
    if (!rec.origin) return;
    const far = Math.hypot(e.clientX - rec.origin.x, e.clientY - rec.origin.y) > CANCEL_PX;
    rec.origin = null;
    stop(far);
  });
  btn.addEventListener('pointercancel', () => {
    rec.origin = null;
    stop(true);
  });
  btn.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' && e.key !== ' ') return;
    e.preventDefault();
    if (rec.recorder) stop(false);
    else start(null);
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && rec.recorder) stop(true);
  });
}
