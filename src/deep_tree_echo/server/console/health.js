// Health: GET /v1/status every few seconds while the view is open, with a small latency chart.
import { get } from './api.js';
import { $, el, clear, fmtMs, fmtNumber, fmtPercent, fmtTime } from './dom.js';

const POLL_MS = 5000;
const SVG = 'http://www.w3.org/2000/svg';
let timer = null;

function dl(target, pairs) {
  clear(target).append(...pairs.flatMap(([k, v]) => [el('dt', { text: k }),
    v instanceof Node ? el('dd', {}, v) : el('dd', { text: v })]));
}

function badge(text, kind) {
  return el('span', { class: `badge ${kind}`, text });
}

function rows(table, items, cells, empty) {
  const body = clear($(table).tBodies[0]);
  if (items.length === 0) {
    body.append(el('tr', {}, el('td', { colspan: '6', class: 'status', text: empty })));
    return;
  }
  for (const item of items) {
    const [first, ...rest] = cells(item);
    body.append(el('tr', { 'data-name': item.name }, el('th', { scope: 'row', text: first }),
      rest.map((c) => (c instanceof Node ? el('td', {}, c) : el('td', { text: c })))));
  }
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function chart(history) {
  const target = clear($('health-chart'));
  const w = 600;
  const h = 140;
  const root = svg('svg', { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': 'p50, p95 and p99 latency over the last minutes' });
  root.append(svg('line', { class: 'axis', x1: 0, y1: h - 1, x2: w, y2: h - 1 }));
  const max = Math.max(0.001, ...history.map((p) => p.p99));
  const n = history.length;
  for (const q of ['p50', 'p95', 'p99']) {
    const points = history.map((p, i) => {
      const x = n > 1 ? (i * w) / (n - 1) : 0;
      const y = h - 2 - (p[q] / max) * (h - 10);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    if (n === 1) points.push(`${w},${points[0].split(',')[1]}`);
    if (points.length) root.append(svg('polyline', { class: q, points: points.join(' ') }));
  }
  target.append(root, el('p', { class: 'legend' },
    el('span', { class: 'p50', text: 'p50' }), ' ', el('span', { class: 'p95', text: 'p95' }),
    ' ', el('span', { class: 'p99', text: 'p99' }), ` · top of the chart: ${fmtMs(max)}`));
  $('health-chart-caption').textContent = n
    ? `Latency (worst p50/p95/p99 over the integrations) from ${fmtTime(history[0].timestamp)} `
      + `to ${fmtTime(history[n - 1].timestamp)}: `
      + `${history.reduce((s, p) => s + p.requests, 0)} requests, `
      + `${history.reduce((s, p) => s + p.errors, 0)} errors`
    : 'No samples yet';
}

function render(s) {
  dl($('health-node'), [['node', s.node_id], ['version', s.version], ['engine', s.engine],
    ['WebSocket clients', String(s.websocket_connections)], ['as of', fmtTime(s.timestamp)]]);
  dl($('health-store'), [
    ['store', s.store.kind],
    ['store state', badge(s.store.ready ? 'ready' : 'not ready', s.store.ready ? 'ok' : 'bad')],
    ['memories', s.store.memories === null ? '–' : String(s.store.memories)],
    ['store errors', String(s.store.stats.errors ?? 0)],
    ['NATS', s.nats.configured
      ? badge(s.nats.connected ? 'connected' : 'disconnected', s.nats.connected ? 'ok' : 'bad')
      : 'not configured'],
  ]);
  rows('health-breakers', s.breakers, (b) => [b.name, badge(b.state.replace('_', '-'), b.state),
    `${b.failure_count} (opens at ${b.failure_threshold})`,
    b.failure_rate === null ? '–' : fmtPercent(b.failure_rate), `${b.recovery_timeout} s`],
  'no circuit breakers in this process');
  rows('health-limiters', s.limiters, (l) => [l.name, `${l.max_requests} / ${l.time_window} s`,
    String(l.rejections), String(l.tracked_keys)], 'no rate limiters');
  rows('health-integrations', s.integrations, (i) => [i.name, String(i.total_requests),
    fmtPercent(i.error_rate), fmtMs(i.p50), fmtMs(i.p95), fmtMs(i.p99)],
  'no integration calls recorded yet');
  chart(s.history);
  const alerts = clear($('health-alerts'));
  if (s.alerts.length === 0) alerts.append(el('li', { class: 'status', text: 'none' }));
  for (const a of s.alerts) {
    alerts.append(el('li', { 'data-integration': a.integration },
      badge('firing', 'bad'), ` ${a.integration}: ${a.type} (value ${fmtNumber(a.value)}, `
      + `threshold ${fmtNumber(a.threshold)}) since ${fmtTime(a.timestamp)}`));
  }
}

export async function refreshHealth() {
  try {
    render(await get('/v1/status'));
    $('health-status').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $('health-status').textContent = `status failed: ${error.message}`;
  }
}

export function setupHealth() {
  $('health-refresh').addEventListener('click', refreshHealth);
}

export function showHealth() {
  refreshHealth();
  clearInterval(timer);
  timer = setInterval(refreshHealth, POLL_MS);
}

export function hideHealth() {
  clearInterval(timer);
  timer = null;
}
