// HTTP: the fetch wrapper for the JSON API under /api (errors become ApiError with a code)
// and the friendly, localized text of an error code.

import { has, lang, t } from '../i18n.js';

class ApiError extends Error {
  constructor(status, code, message) {
    super(code);
    this.status = status;
    this.code = code;
    this.serverMessage = message || '';
  }
}

export function codeForStatus(status) {
  switch (status) {
    case 0: return 'network';
    case 400: case 422: return 'invalid_input';
    case 401: return 'unauthenticated';
    case 403: return 'forbidden_origin';
    case 404: return 'not_found';
    case 405: case 501: return 'not_implemented';
    case 413: return 'too_large';
    case 429: return 'rate_limited';
    case 503: return 'unavailable';
    default: return 'internal';
  }
}

export async function api(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body !== undefined ? { 'Content-Type': 'application/json', Accept: 'application/json' } : { Accept: 'application/json' },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiError(0, 'network', '');
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || codeForStatus(res.status), err.message);
  }
  return data;
}

/** A friendly, localized text for an error code; `overrides` maps codes to i18n keys. */
export function errorText(err, overrides = {}) {
  const code = (err && err.code) || 'unknown';
  if (overrides[code]) return t(overrides[code]);
  if (code === 'invalid_input' && lang() === 'en' && err.serverMessage) {
    const m = err.serverMessage.trim();
    return m.charAt(0).toUpperCase() + m.slice(1) + (/[.!?]$/.test(m) ? '' : '.');
  }
  if (has(`err.${code}`)) return t(`err.${code}`);
  return err.serverMessage || t('err.unknown');
}
