// Our album: every photo we sent, newest first, as a grid of the server's thumbnails, more
// as it is scrolled to the end; a photo opens full size, and "show in the conversation"
// jumps to the chat that sent it.

import { t } from '../i18n.js';
import { $, h } from './dom.js';
import { fmtDateTime, parseTime } from './format.js';
import { isMine, partnerName } from './state.js';
import { api, errorText } from './http.js';
import { hooks } from './hooks.js';
import { closeMenu } from './ui.js';

const PAGE = 60;
const album = { before: null, done: false, loading: false, gen: 0 };

async function loadMore() {
  if (album.loading || album.done) return;
  album.loading = true;
  const gen = album.gen;
  const query = album.before == null ? `?limit=${PAGE}` : `?limit=${PAGE}&before=${encodeURIComponent(album.before)}`;
  try {
    const body = await api('GET', `/api/album${query}`);
    if (gen !== album.gen) return;
    const photos = (body && body.photos) || [];
    $('album-grid').append(...photos.map(tile));
    if (photos.length) album.before = photos[photos.length - 1].seq;
    album.done = photos.length < PAGE;
    $('album-more').hidden = album.done;
    $('album-status').textContent = !$('album-grid').childElementCount ? t('album.empty') : '';
  } catch (err) {
    if (gen !== album.gen) return;
    if (err.status === 401) {
      $('album-dialog').close();
      hooks.toAuth(t('err.unauthenticated'));
      return;
    }
    $('album-status').textContent = errorText(err);
    $('album-more').hidden = false; // to try again
  } finally {
    if (gen === album.gen) album.loading = false;
  }
}

function tile(photo) {
  const src = photo.thumbnail ? `/api/files/${encodeURIComponent(photo.file.id)}/thumbnail` : `/api/files/${encodeURIComponent(photo.file.id)}`;
  const who = isMine(photo.sender_id) ? t('chat.you') : partnerName();
  const when = fmtDateTime(parseTime(photo.sent_at));
  return h('li', { class: 'album-item' },
    h('button', {
      type: 'button',
      class: 'album-tile',
      'data-testid': 'album-photo',
      'data-seq': photo.seq,
      'aria-label': t('album.photo', { name: who, when }),
      onclick: () => openPhoto(photo, who, when),
    }, h('img', {
      src,
      alt: '',
      loading: 'lazy',
      decoding: 'async',
      width: photo.thumbnail ? photo.thumbnail.width : null,
      height: photo.thumbnail ? photo.thumbnail.height : null,
    })));
}

function openPhoto(photo, who, when) {
  const dlg = $('photo-dialog');
  $('photo-full').src = `/api/files/${encodeURIComponent(photo.file.id)}`;
  $('photo-caption').textContent = `${who} · ${when}`;
  $('photo-jump').onclick = () => {
    dlg.close();
    $('album-dialog').close();
    hooks.openAt(photo.seq);
  };
  dlg.showModal();
}

export function openAlbum() {
  closeMenu();
  album.gen += 1;
  album.before = null;
  album.done = false;
  album.loading = false;
  $('album-grid').replaceChildren();
  $('album-more').hidden = true;
  $('album-status').textContent = t('answers.loading');
  $('album-dialog').showModal();
  loadMore();
}

export function bindAlbum() {
  $('album-button').addEventListener('click', openAlbum);
  $('album-more').addEventListener('click', loadMore);
  $('album-dialog').querySelector('[data-close]').addEventListener('click', () => $('album-dialog').close());
  $('photo-dialog').querySelector('[data-close]').addEventListener('click', () => $('photo-dialog').close());
  // The dialog is what scrolls: near its end, the next page.
  $('album-dialog').addEventListener('scroll', () => {
    const d = $('album-dialog');
    if (d.scrollHeight - d.scrollTop - d.clientHeight < 200) loadMore();
  }, { passive: true });
}
