// Chat: talk to the agent over WS /v1/ws; each answer shows its confidence and the
// memories it used, each of which opens with the score breakdown it was ranked with.
import { socketUrl } from './api.js';
import { $, el, fmtNumber } from './dom.js';
import { openMemory } from './memory-dialog.js';

const SESSIONS = 'dte.console.sessions';
let socket = null;
let retry = null;
let stopped = false;
let nextId = 1;
const pending = new Map(); // request id -> session id
const logs = new Map(); // session id -> list items (kept while the tab lives)

function sessions() {
  try {
    const list = JSON.parse(sessionStorage.getItem(SESSIONS) || '[]');
    return Array.isArray(list) ? list.filter((s) => typeof s === 'string') : [];
  } catch {
    return [];
  }
}

function saveSessions(list) {
  sessionStorage.setItem(SESSIONS, JSON.stringify(list));
}

function newSessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function current() {
  return $('chat-session').value;
}

function fillSessions(selected) {
  const select = $('chat-session');
  select.replaceChildren(...sessions().map((s) => el('option', { value: s, text: s })));
  select.value = selected;
}

function addSession(id) {
  const list = sessions().filter((s) => s !== id);
  list.unshift(id);
  saveSessions(list.slice(0, 50));
  fillSessions(id);
  showLog(id);
  send({ type: 'subscribe', session_id: id });
}

function showLog(sessionId) {
  if (!logs.has(sessionId)) logs.set(sessionId, []);
  $('chat-log').replaceChildren(...logs.get(sessionId));
}

function addEntry(sessionId, item) {
  if (!logs.has(sessionId)) logs.set(sessionId, []);
  logs.get(sessionId).push(item);
  if (sessionId === current()) {
    const log = $('chat-log');
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }
}

function setStatus(text) {
  $('chat-status').textContent = text;
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(message));
    return true;
  }
  return false;
}

function memoryButton(used) {
  const label = `${used.id} (score ${fmtNumber(used.score)})`;
  return el('button', { type: 'button', class: 'link memory-used', 'data-memory-id': used.id,
    text: label, onclick: () => openMemory(used.id, { ranking: used }) });
}

function answerItem(reply) {
  if (reply.status !== 'success') {
    const error = reply.error || {};
    return el('li', { class: 'error', role: 'alert', text: `error: ${error.message || 'failed'}` });
  }
  const response = reply.cognitive_response || {};
  const used = Array.isArray(response.memories_used) ? response.memories_used : [];
  return el('li', { class: 'agent' },
    el('div', { class: 'chat-text', text: response.text ?? '' }),
    el('div', { class: 'chat-meta' },
      el('span', { class: 'confidence', text: `confidence ${fmtNumber(reply.confidence, 2)}` }),
      ` · ${response.agent ?? 'agent'} · ${used.length} memories used`),
    used.length ? el('div', { class: 'chat-memories', 'aria-label': 'Memories used' },
      used.map(memoryButton)) : null);
}

function onMessage(event) {
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return;
  }
  if (message.type === 'response') {
    const sessionId = pending.get(message.request_id) || message.session_id || current();
    pending.delete(message.request_id);
    addEntry(sessionId, answerItem(message));
  } else if (message.type === 'agent_message') {
    if (pending.size === 0) { // a reply to another client of this session
      addEntry(current(), el('li', { class: 'agent',
        text: `${message.agent_id ?? 'agent'} (other client): ${message.message ?? ''}` }));
    }
  } else if (message.type === 'error') {
    addEntry(current(), el('li', { class: 'error', role: 'alert',
      text: `error: ${message.error?.message ?? 'unknown'}` }));
  } else if (message.type === 'ping') {
    send({ type: 'pong', ts: message.ts });
  }
}

function connect() {
  clearTimeout(retry);
  const sessionId = current();
  socket = new WebSocket(socketUrl(sessionId ? { session_id: sessionId } : {}));
  setStatus('connecting');
  socket.addEventListener('open', () => setStatus('connected'));
  socket.addEventListener('message', onMessage);
  socket.addEventListener('close', (event) => {
    setStatus(event.code === 1008 ? 'key refused' : 'disconnected, retrying');
    socket = null;
    if (event.code !== 1008 && !stopped) retry = setTimeout(connect, 2000);
  });
}

export function setupChat() {
  stopped = false;
  const list = sessions();
  if (list.length === 0) saveSessions([newSessionId()]);
  fillSessions(sessions()[0]);
  showLog(current());
  $('chat-session').addEventListener('change', () => {
    showLog(current());
    send({ type: 'subscribe', session_id: current() });
  });
  $('chat-new-session').addEventListener('click', () => addSession(newSessionId()));
  $('chat-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('chat-input');
    const text = input.value.trim();
    if (!text) return;
    const id = `c${nextId++}`;
    const sessionId = current();
    if (!send({ type: 'user_message', id, session_id: sessionId, message: text })) {
      setStatus('not connected; try again in a moment');
      return;
    }
    pending.set(id, sessionId);
    addEntry(sessionId, el('li', { class: 'user', text }));
    input.value = '';
  });
  connect();
}

export function stopChat() {
  stopped = true;
  clearTimeout(retry);
  if (socket) socket.close();
}
