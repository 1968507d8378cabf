// Talking to the API: the key lives in sessionStorage (this tab only) and travels in the
// Authorization header; the WebSocket is the one place it goes in a URL (?token=).
const KEY = 'dte.console.key';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const out = { ...extra };
  const key = getKey();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || 'request failed';
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(response.status, code, message);
}

export async function request(method, path, { json, body, contentType, raw } = {}) {
  const init = { method, headers: headers(), cache: 'no-store' };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['Content-Type'] = 'application/json';
  } else if (body !== undefined) {
    init.body = body;
    if (contentType) init.headers['Content-Type'] = contentType;
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await errorOf(response);
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path) => request('GET', path);

export function socketUrl(params = {}) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const query = new URLSearchParams(params);
  const key = getKey();
  if (key) query.set('token', key);
  const qs = query.toString();
  return `${scheme}://${location.host}/v1/ws${qs ? `?${qs}` : ''}`;
}

// Read GET /v1/events (server-sent events over fetch, so the key stays in a header) and
// call onEvent for every event; resolves when the stream ends or `signal` aborts it.
export async function streamEvents(onEvent, signal) {
  const response = await fetch('/v1/events', { headers: headers(), signal, cache: 'no-store' });
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split('\n').filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6)).join('\n');
      if (data) {
        try {
          onEvent(JSON.parse(data));
        } catch (error) {
          console.warn('bad event frame', error);
        }
      }
    }
  }
}
