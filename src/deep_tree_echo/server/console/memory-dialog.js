// The memory dialog shared by Chat and Memory: view one memory (with the score breakdown
// it was ranked with, when known), edit its data as JSON, delete it, or create a new one.
import { request, get } from './api.js';
import { $, el, append, clear, fmtNumber, fmtTime, contentOf } from './dom.js';

const dialog = () => $('memory-dialog');
const body = () => $('memory-dialog-body');
let changed = () => {};

export function setupMemoryDialog() {
  $('memory-dialog-close').addEventListener('click', () => dialog().close());
}

function show(title) {
  $('memory-dialog-title').textContent = title;
  if (!dialog().open) dialog().showModal();
}

function breakdownTable(ranking) {
  const rows = [['score', ranking.score], ['relevance', ranking.relevance],
    ['recency', ranking.recency], ['importance', ranking.importance]];
  return el('table', { id: 'memory-breakdown', 'aria-label': 'Score breakdown' },
    el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Signal' }),
      el('th', { scope: 'col', text: 'Value' }))),
    el('tbody', {}, rows.map(([name, value]) => el('tr', { 'data-signal': name },
      el('th', { scope: 'row', text: name }), el('td', { text: fmtNumber(value) })))));
}

export async function openMemory(id, { ranking = null, onChanged = () => {} } = {}) {
  changed = onChanged;
  show(`Memory ${id}`);
  clear(body()).append(el('p', { class: 'status', text: 'loading…' }));
  let record;
  try {
    record = await get(`/v1/memories/${encodeURIComponent(id)}`);
  } catch (error) {
    clear(body()).append(el('p', { class: 'error', role: 'alert', text: error.message }));
    return;
  }
  renderRecord(record, ranking);
}

function renderRecord(record, ranking) {
  const meta = [['id', record.id], ['version', record.version],
    ['created', fmtTime(record.created_at)], ['updated', fmtTime(record.updated_at)],
    ['accessed', `${record.access_count} times`]];
  if (record.expires_at) meta.push(['expires', fmtTime(record.expires_at)]);
  append(clear(body()), [
    el('h3', { text: 'Content' }),
    el('div', { class: 'memory-content', id: 'memory-dialog-content', text: contentOf(record.data) }),
    ranking ? [el('h3', { text: 'Score breakdown' }), breakdownTable(ranking)] : null,
    el('h3', { text: 'Details' }),
    el('dl', {}, meta.map(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })])),
    el('h3', { text: 'Data' }),
    el('pre', { id: 'memory-dialog-data', text: JSON.stringify(record.data, null, 2) }),
    el('div', { class: 'actions' },
      el('button', { type: 'button', id: 'memory-edit', class: 'secondary', text: 'Edit',
        onclick: () => renderEditor(record.id, record.data, false) }),
      el('button', { type: 'button', id: 'memory-delete', class: 'danger', text: 'Delete',
        onclick: () => remove(record.id) })),
    el('p', { id: 'memory-dialog-error', class: 'error', role: 'alert' }),
  ]);
}

export function newMemory(onChanged = () => {}) {
  changed = onChanged;
  show('New memory');
  renderEditor('', { content: '', importance: 0.5 }, true);
}

function renderEditor(id, data, creating) {
  const idInput = el('input', { id: 'memory-edit-id', type: 'text', value: id, required: true,
    readonly: !creating, autocomplete: 'off' });
  const text = el('textarea', { id: 'memory-edit-data', spellcheck: 'false' });
  text.value = JSON.stringify(data, null, 2);
  const error = el('p', { id: 'memory-dialog-error', class: 'error', role: 'alert' });
  const form = el('form', { class: 'editor', id: 'memory-editor' },
    el('label', { for: 'memory-edit-id', text: 'Memory id' }), idInput,
    el('label', { for: 'memory-edit-data', text: 'Data (a JSON object)' }), text,
    el('div', { class: 'actions' },
      el('button', { type: 'submit', id: 'memory-save', text: 'Save' }),
      creating ? null : el('button', { type: 'button', class: 'secondary', text: 'Cancel',
        onclick: () => openMemory(id, { onChanged: changed }) })),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let parsed;
    try {
      parsed = JSON.parse(text.value);
    } catch (e) {
      error.textContent = `not valid JSON: ${e.message}`;
      return;
    }
    const memoryId = idInput.value.trim();
    try {
      await request('PUT', `/v1/memories/${encodeURIComponent(memoryId)}`, { json: parsed });
    } catch (e) {
      error.textContent = e.message;
      return;
    }
    changed();
    await openMemory(memoryId, { onChanged: changed });
  });
  clear(body()).append(form);
  (creating ? idInput : text).focus();
}

async function remove(id) {
  // eslint-disable-next-line no-alert
  if (!window.confirm(`Delete memory ${id}?`)) return;
  try {
    await request('DELETE', `/v1/memories/${encodeURIComponent(id)}`);
  } catch (e) {
    $('memory-dialog-error').textContent = e.message;
    return;
  }
  dialog().close();
  changed();
}
