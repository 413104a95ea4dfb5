// Files: how a file looks in a bubble (an image, or a chip with name and size, linking to
// /api/files/{id}) and the upload itself (POST /api/files with progress). What an upload means
// for a pending send is sending.js's business.

import { t } from '../i18n.js';
import { h, icon, IMAGE_MAX_H, IMAGE_MAX_W } from './dom.js';
import { fmtSize } from './format.js';
import { codeForStatus } from './http.js';

function fileUrl(file) {
  return `/api/files/${encodeURIComponent(file.id)}`;
}

/** m:ss of a length in milliseconds, counted as the browser's player counts (whole seconds
 * gone by), but never 0:00 for a recording. */
function clock(ms) {
  const s = Math.max(1, Math.floor(Number(ms) / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function renderFile(file, preview) {
  const type = String(file.content_type || '');
  const name = String(file.name || 'file');
  if (type.startsWith('audio/') && file.id) {
    // A voice note (or any recording): the browser's player shows the position and plays it;
    // the length is the server's (a recording made in a browser often does not say its own).
    const length = typeof file.duration_ms === 'number' ? clock(file.duration_ms) : '';
    return h('div', { class: 'voice', 'data-testid': 'voice-note' },
      h('audio', { controls: true, preload: 'metadata', src: fileUrl(file), 'data-testid': 'voice-player', 'aria-label': t('voice.note', { length }) }),
      h('span', { class: 'voice-length', 'data-testid': 'voice-length' }, length));
  }
  if (type.startsWith('audio/') && !file.id) {
    return h('div', { class: 'voice' }, icon('mic'), h('span', { class: 'voice-length' }, t('voice.sending')));
  }
  if (type.startsWith('image/') || (preview && !file.id)) {
    const img = h('img', {
      class: 'file-image',
      src: preview || fileUrl(file),
      alt: name,
      loading: 'lazy',
      decoding: 'async',
      'data-testid': 'file-image',
    });
    const w = Number(file.width);
    const hgt = Number(file.height);
    if (w > 0 && hgt > 0) {
      // Reserve the image's box before it loads so the list does not jump.
      const scale = Math.min(1, IMAGE_MAX_W / w, IMAGE_MAX_H / hgt);
      img.width = w;
      img.height = hgt;
      img.style.width = `${Math.round(w * scale)}px`;
      img.style.aspectRatio = `${w} / ${hgt}`;
    } else {
      img.classList.add('no-size');
      img.addEventListener('load', () => img.classList.remove('no-size'), { once: true });
    }
    if (!file.id) return img;
    return h('a', { class: 'file-image-link', href: fileUrl(file), target: '_blank', rel: 'noopener' }, img);
  }
  const chip = h(file.id ? 'a' : 'div', {
    class: 'file-chip',
    'data-testid': 'file-chip',
    href: file.id ? fileUrl(file) : null,
    download: file.id ? name : null,
    'aria-label': file.id ? t('chat.download', { name }) : null,
  },
  h('span', { class: 'file-icon', 'aria-hidden': 'true' }, icon('file')),
  h('span', { class: 'file-text' },
    h('span', { class: 'file-name' }, name),
    h('span', { class: 'file-size' }, fmtSize(file.size))));
  return chip;
}

/**
 * Posts one file to /api/files as multipart form data. Reports progress (0..1) while it goes,
 * then exactly one of onDone(file), with the server's file object, or onFail(status, code),
 * status 0 for a network error. Returns the request, for abort().
 */
export function postFile(file, { onProgress, onDone, onFail, voice = false }) {
  const xhr = new XMLHttpRequest();
  xhr.open('POST', voice ? '/api/files?voice=true' : '/api/files');
  xhr.responseType = 'text';
  xhr.upload.onprogress = (event) => {
    if (!event.lengthComputable) return;
    onProgress(event.loaded / event.total);
  };
  xhr.onload = () => {
    let data = null;
    try { data = JSON.parse(xhr.responseText); } catch { data = null; }
    if (xhr.status === 201 || (xhr.status >= 200 && xhr.status < 300 && data && data.file)) {
      onDone(data.file);
      return;
    }
    onFail(xhr.status, (data && data.error && data.error.code) || codeForStatus(xhr.status));
  };
  xhr.onerror = () => onFail(0, 'network');
  const form = new FormData();
  form.append('file', file, file.name);
  xhr.send(form);
  return xhr;
}
