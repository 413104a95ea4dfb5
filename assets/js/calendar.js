// Anniversaries and D-day: "N days together" in the header, and the dialog listing milestones
// and our own dates with D-counts, changing day one, adding and removing dates. The server
// computes everything in the couple's time zone; the `anniversaries` frame brings a change
// by either of us.

import { t } from '../i18n.js';
import { $, h, icon } from './dom.js';
import { state } from './state.js';
import { api, errorText } from './http.js';
import { closeMenu, toast } from './ui.js';

let calendar = null;

function title(item) {
  if (item.kind === 'milestone' && item.days) return t('cal.days_milestone', { n: item.days });
  if (item.kind === 'yearly' && item.years === 1) return t('cal.year_one');
  if (item.kind === 'yearly' && item.years) return t('cal.years_milestone', { n: item.years });
  return item.title;
}

/** The calendar last shown, for the conversation kept offline (js/offline.js). */
export function lastCalendar() {
  return calendar;
}

export function applyCalendar(c) {
  if (!c || typeof c.days_together !== 'number') return;
  calendar = c;
  const days = $('days-together');
  days.textContent = t(c.days_together === 1 ? 'cal.together_one' : 'cal.together', { n: c.days_together });
  days.hidden = false;
  if ($('anniversaries-dialog').open) render();
}

export async function loadCalendar() {
  const chat = state.chat;
  try {
    const c = await api('GET', '/api/anniversaries');
    if (chat === state.chat) applyCalendar(c);
  } catch {
    // The header just goes without the count.
  }
}

function render() {
  if (!calendar) return;
  $('cal-summary').textContent = t('cal.summary', { n: calendar.days_together, date: calendar.started_on });
  $('cal-zone').textContent = t('cal.zone', { zone: calendar.time_zone });
  const mine = browserZone();
  const use = $('use-my-zone');
  use.hidden = !mine || mine === calendar.time_zone;
  use.textContent = t('cal.use_zone', { zone: mine });
  $('start-date').value = calendar.started_on;
  $('start-date').max = calendar.today;
  const items = (calendar.upcoming || []).map((item) => h('li', {
    class: `cal-item${item.days_from_today < 0 ? ' past' : ''}`,
    'data-testid': 'cal-item',
    'data-kind': item.kind,
  },
  h('span', { class: 'cal-label', 'data-testid': 'cal-label' }, item.label),
  h('span', { class: 'cal-title' }, title(item)),
  h('span', { class: 'cal-date muted' }, item.date),
  item.id ? h('button', {
    class: 'icon-btn', type: 'button', 'aria-label': t('cal.remove'), 'data-testid': 'cal-remove',
    onclick: () => remove(item.id),
  }, icon('trash')) : null));
  $('cal-upcoming').replaceChildren(...items);
}

function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch {
    return '';
  }
}

function showError(err) {
  const el = $('cal-error');
  el.textContent = err ? errorText(err) : '';
  el.hidden = !err;
}

async function remove(id) {
  try {
    await api('DELETE', `/api/anniversaries/dates/${encodeURIComponent(id)}`);
    showError(null);
  } catch (err) {
    showError(err);
  }
  await loadCalendar();
}

export function bindCalendar() {
  const dlg = $('anniversaries-dialog');
  const open = async () => {
    closeMenu();
    showError(null);
    dlg.showModal();
    await loadCalendar();
    render();
  };
  $('anniversaries-button').addEventListener('click', open);
  $('days-together').addEventListener('click', open);
  dlg.querySelector('[data-close]').addEventListener('click', () => dlg.close());
  $('start-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      applyCalendar(await api('PATCH', '/api/anniversaries', { started_on: $('start-date').value }));
      showError(null);
      toast(t('cal.saved'));
    } catch (err) {
      showError(err);
    }
  });
  $('use-my-zone').addEventListener('click', async () => {
    try {
      applyCalendar(await api('PATCH', '/api/anniversaries', { time_zone: browserZone() }));
      showError(null);
    } catch (err) {
      showError(err);
    }
  });
  $('date-add-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/api/anniversaries/dates', {
        title: $('own-title').value,
        date: $('own-date').value,
        yearly: $('own-yearly').checked,
      });
      $('own-title').value = '';
      showError(null);
      await loadCalendar();
    } catch (err) {
      showError(err);
    }
  });
}

/** The language changed: the header count and an open dialog say it again. */
export function relabelCalendar() {
  if (calendar) applyCalendar(calendar);
}
