// Memory: ranked search with field filters and paging; open, edit, delete, import, export.
import { request, get } from './api.js';
import { $, el, clear, fmtNumber, contentOf } from './dom.js';
import { openMemory, newMemory } from './memory-dialog.js';

let page = 0;
let lastQuery = null;

function status(text) {
  $('memory-status').textContent = text;
}

function pageSize() {
  return Number($('memory-page-size').value) || 25;
}

function searchParams() {
  const params = new URLSearchParams($('memory-filters').value.trim());
  for (const reserved of ['query', 'limit', 'token']) params.delete(reserved);
  params.set('query', $('memory-query').value);
  return params;
}

// The API ranks the top `limit`; a page is a slice of the first (page + 1) pages plus one
// extra result, which says whether a next page exists.
export async function search(newPage = 0) {
  page = Math.max(0, newPage);
  const params = lastQuery && newPage !== 0 ? lastQuery : searchParams();
  lastQuery = params;
  const size = pageSize();
  params.set('limit', String(Math.min(1000, (page + 1) * size + 1)));
  let result;
  try {
    result = await get(`/v1/memories?${params}`);
  } catch (error) {
    status(`search failed: ${error.message}`);
    return;
  }
  const rows = result.results.slice(page * size, (page + 1) * size);
  const body = clear($('memory-results').tBodies[0]);
  for (const r of rows) {
    const b = r.breakdown || {};
    const ranking = { score: r.score, relevance: b.relevance, recency: b.recency,
      importance: b.importance };
    body.append(el('tr', { 'data-memory-id': r.id },
      el('td', {}, el('button', { type: 'button', class: 'link open-memory', text: r.id,
        onclick: () => openMemory(r.id, { ranking, onChanged: refresh }) })),
      el('td', { class: 'content-cell', text: contentOf(r.data) }),
      el('td', { text: fmtNumber(r.score) }),
      el('td', { text: `${fmtNumber(b.relevance, 2)} / ${fmtNumber(b.recency, 2)} / `
        + `${fmtNumber(b.importance, 2)}` })));
  }
  if (rows.length === 0) {
    body.append(el('tr', {}, el('td', { colspan: '4', text: 'no memories match' })));
  }
  $('memory-page').textContent = `page ${page + 1}`;
  $('memory-prev').disabled = page === 0;
  $('memory-next').disabled = result.results.length <= (page + 1) * size;
  const more = result.count > (page + 1) * size;
  const total = more ? `more than ${(page + 1) * size}` : String(result.count);
  status(`${total} ${result.count === 1 ? 'result' : 'results'}`);
}

function refresh() {
  return search(page);
}

async function exportAll() {
  try {
    const response = await request('GET', '/v1/export/memories', { raw: true });
    const blob = await response.blob();
    const link = el('a', { download: `memories-${Date.now()}.jsonl` });
    link.href = URL.createObjectURL(blob);
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    status('export downloaded');
  } catch (error) {
    status(`export failed: ${error.message}`);
  }
}

// Accepts the export's JSON lines ({"id", "data", ...}) or a JSON array of such records.
function recordsOf(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) return JSON.parse(trimmed);
  return trimmed.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

async function importFile(file) {
  let records;
  try {
    records = recordsOf(await file.text());
  } catch (error) {
    status(`import failed: not JSON lines (${error.message})`);
    return;
  }
  let ok = 0;
  let failed = 0;
  for (const record of records) {
    const data = record && typeof record.data === 'object' ? record.data : null;
    if (!record || typeof record.id !== 'string' || !data || record.deleted) {
      failed += 1;
      continue;
    }
    try {
      await request('PUT', `/v1/memories/${encodeURIComponent(record.id)}`, { json: data });
      ok += 1;
    } catch {
      failed += 1;
    }
    status(`importing… ${ok} done`);
  }
  await refresh();
  status(`imported ${ok}, failed ${failed}`);
}

export function setupMemory() {
  $('memory-search').addEventListener('submit', (event) => {
    event.preventDefault();
    lastQuery = null;
    search(0);
  });
  $('memory-prev').addEventListener('click', () => search(page - 1));
  $('memory-next').addEventListener('click', () => search(page + 1));
  $('memory-new').addEventListener('click', () => newMemory(refresh));
  $('memory-export').addEventListener('click', exportAll);
  $('memory-import').addEventListener('change', (event) => {
    const [file] = event.target.files;
    if (file) importFile(file).finally(() => { event.target.value = ''; });
  });
}

export function showMemory() {
  if (lastQuery === null) search(0);
}
