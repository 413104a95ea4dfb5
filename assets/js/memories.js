// On this day: when earlier years had chats on today's date (in our time zone), a card above
// the conversation shows the most recent of them (its first words, its photos) and opens the
// conversation there. Closing it hides it until tomorrow.

import { t } from '../i18n.js';
import { $, h } from './dom.js';
import { fmtDay } from './format.js';
import { state } from './state.js';
import { api } from './http.js';
import { hooks } from './hooks.js';

const DISMISSED = 'duet.memories.dismissed';

/** Looks for memories once per conversation shown (after its first sync). */
export async function showMemories() {
  const chat = state.chat;
  $('memory-card').hidden = true;
  let body;
  try {
    body = await api('GET', '/api/memories');
  } catch {
    return; // a card is a nicety: no error for it
  }
  if (state.chat !== chat || !body || !Array.isArray(body.days)) return;
  const day = body.days[0];
  if (!day || !day.chats || !day.chats.length || localStorage.getItem(DISMISSED) === body.today) {
    $('memory-card').hidden = true;
    return;
  }
  const first = day.chats.find((c) => c.text) || day.chats[0];
  const photos = day.chats.filter((c) => c.file && /^image\//.test(c.file.content_type)).slice(0, 3);
  const [y, m, d] = String(day.date).split('-').map(Number);
  $('memory-title').textContent = day.years_ago === 1 ? t('memory.title_one') : t('memory.title', { n: day.years_ago });
  $('memory-date').textContent = fmtDay(new Date(y, m - 1, d));
  $('memory-text').textContent = first.text || '';
  $('memory-photos').replaceChildren(...photos.map((c) => {
    const original = `/api/files/${encodeURIComponent(c.file.id)}`;
    const img = h('img', { src: `${original}/thumbnail`, alt: '', class: 'memory-photo', loading: 'lazy' });
    // A photo from before thumbnails were made has none: the original, shrunk by the browser.
    img.addEventListener('error', () => { if (img.src.endsWith('/thumbnail')) img.src = original; }, { once: true });
    return img;
  }));
  $('memory-open').onclick = () => hooks.openAt(day.chats[0].seq);
  $('memory-close').onclick = () => {
    localStorage.setItem(DISMISSED, body.today);
    $('memory-card').hidden = true;
  };
  $('memory-card').hidden = false;
}
