// Formatting of what the user sees (times, days, sizes, initials, emoji-only texts) and
// client-side ids (uuid). Pure: no DOM, no state.

import { lang, t } from '../i18n.js';

/** A v4 UUID; crypto.randomUUID needs a secure context, so fall back to getRandomValues. */
export function uuid() {
  if (typeof crypto.randomUUID === 'function') {
    try {
      return crypto.randomUUID();
    } catch {
      // Not a secure context: build one by hand below.
    }
  }
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function locale() {
  return lang() === 'ko' ? 'ko-KR' : 'en';
}

export function parseTime(value) {
  const d = value ? new Date(value) : new Date();
  return Number.isNaN(d.getTime()) ? new Date() : d;
}

export function dayKey(d) {
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function fmtTime(d) {
  return new Intl.DateTimeFormat(locale(), { hour: 'numeric', minute: '2-digit' }).format(d);
}

export function fmtDay(d) {
  const now = new Date();
  if (dayKey(d) === dayKey(now)) return t('chat.today');
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (dayKey(d) === dayKey(y)) return t('chat.yesterday');
  const opts = { weekday: 'long', month: 'long', day: 'numeric' };
  if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
  return new Intl.DateTimeFormat(locale(), opts).format(d);
}

export function fmtDateTime(d) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }).format(d);
}

export function fmtSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function initial(name) {
  const first = Array.from(String(name || '?').trim())[0];
  return first || '?';
}

const EMOJI_ONLY = /^(?:\p{Extended_Pictographic}|\p{Emoji_Modifier}|\p{Regional_Indicator}|\u200d|\ufe0f|\s)+$/u;

export function isEmojiOnly(text) {
  if (!text || !EMOJI_ONLY.test(text)) return false;
  const count = Array.from(text.replace(/\s/g, '').matchAll(/\p{Extended_Pictographic}|\p{Regional_Indicator}{2}/gu)).length;
  return count > 0 && count <= 3;
}
