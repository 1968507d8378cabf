// Events: the live bus stream (GET /v1/events), filtered by type, pausable; alerts and
// circuit-breaker transitions stand out.
import { streamEvents } from './api.js';
import { $, el, fmtTime } from './dom.js';

export const TYPES = ['user.input', 'agent.message', 'memory.update', 'integration.alert',
  'circuit.state_changed', 'bus.handler_error', 'feed.dropped'];
const MAX_SHOWN = 500;
let paused = false;
let held = [];
let controller = null;
let retry = null;

function status(text) {
  $('events-status').textContent = text;
}

function shownTypes() {
  return new Set(Array.from(document.querySelectorAll('#events-types input:checked'),
    (box) => box.value));
}

function item(event) {
  const kind = event.type === 'integration.alert' ? 'alert'
    : event.type === 'circuit.state_changed' ? 'breaker' : '';
  let summary = JSON.stringify(event.data);
  if (event.type === 'circuit.state_changed' && event.data) {
    summary = `${event.data.name}: ${event.data.old} → ${event.data.new}`;
  } else if (event.type === 'integration.alert' && event.data) {
    summary = `${event.data.integration} ${event.data.type} ${event.data.state} `
      + `(value ${event.data.value}, threshold ${event.data.threshold})`;
  }
  return el('li', { class: kind, 'data-type': event.type },
    el('span', { class: 'ev-time', text: fmtTime(event.timestamp) }),
    el('span', { class: 'ev-type', text: event.type }),
    el('span', { class: 'ev-data', text: summary }));
}

function applyFilter() {
  const types = shownTypes();
  for (const li of $('events-log').children) li.hidden = !types.has(li.dataset.type);
}

function show(event) {
  const li = item(event);
  li.hidden = !shownTypes().has(event.type);
  const log = $('events-log');
  log.prepend(li);
  while (log.children.length > MAX_SHOWN) log.lastElementChild.remove();
}

function onEvent(event) {
  if (paused) {
    held.push(event);
    status(`paused, ${held.length} held`);
    return;
  }
  show(event);
}

async function run() {
  clearTimeout(retry);
  controller = new AbortController();
  status('live');
  try {
    await streamEvents(onEvent, controller.signal);
    status('stream ended, reconnecting');
  } catch (error) {
    if (controller.signal.aborted) return;
    status(`disconnected (${error.message}), reconnecting`);
  }
  if (!controller.signal.aborted) retry = setTimeout(run, 2000);
}

export function setupEvents() {
  const box = $('events-types');
  for (const type of TYPES) {
    const id = `events-type-${type.replace(/\W/g, '-')}`;
    box.append(el('label', { for: id },
      el('input', { type: 'checkbox', id, value: type, checked: true, onchange: applyFilter }),
      ` ${type}`));
  }
  $('events-pause').addEventListener('click', (event) => {
    paused = !paused;
    event.currentTarget.setAttribute('aria-pressed', String(paused));
    event.currentTarget.textContent = paused ? 'Resume' : 'Pause';
    if (!paused) {
      const backlog = held;
      held = [];
      backlog.forEach(show);
      status('live');
    }
  });
  $('events-clear').addEventListener('click', () => $('events-log').replaceChildren());
  run();
}

export function stopEvents() {
  clearTimeout(retry);
  if (controller) controller.abort();
}
