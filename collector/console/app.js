/*
 * Picket console: the browser side of the collector's web console.
 * Vanilla JS, no build step; served by the collector at /console/app.js.
 *
 * Pages (hash routes; every view's state is in the URL, so a URL can be shared):
 *   #/login?next=<route>        user name + password, or an access token when the
 *                               collector has no users file; then back to <route>
 *   #/overview?from=&to=        failed vs successful logins over time, top attacking
 *                               addresses, top targeted users, alerts by rule
 *   #/search?q=&from=&to=       query box (field suggestions), time range, histogram
 *                               (drag across it to zoom), total, events, facets
 *   #/alerts?status=&rule=      alerts newest first, filtered by status (and rule)
 *   #/alerts/<id>               one alert: fields, status and history, triage buttons
 *                               (analysts only), sample events, link to all its events
 *   #/hosts                     every host: heartbeat, agent, buffer, events/min
 * Times in the URL: relative `from=now-15m` (no `to`), or absolute ISO 8601 UTC.
 *
 * API (same origin, JSON; the HttpOnly session cookie goes along by itself; every
 * POST sends X-CSRF-Token and Content-Type: application/json; any 401 -> #/login):
 *   GET  /console/api/session        200 {user, role, csrf} | 401 {error, users}
 *   POST /console/api/login          {user, password} | {token} -> {user, role, csrf}
 *   POST /console/api/logout         204
 *   POST /api/search                 {query, from, to, size, aggs}
 *                                    -> {total, hits, aggregations, truncated}
 *   GET  /api/alerts?q=&from=&to=&size=   {total, hits} (404: alerts are off)
 *   GET  /api/alerts/<id>            the alert
 *   POST /api/alerts/<id>/status     {status} -> the updated alert
 *   GET  /api/hosts                  {silent_after_secs, hosts: [...]}
 *   GET  /api/fields                 {fields: [...]}
 *
 * Everything that comes from events is put into the page as text (textContent,
 * createElement), never as HTML.
 */
'use strict';

/* ------------------------------------------------------------------ DOM helpers */

const SVG_NS = 'http://www.w3.org/2000/svg';
const $ = (selector, root = document) => root.querySelector(selector);

// Sets attributes, text, dataset and event listeners on a node.
function setAttrs(node, attrs, isSvg) {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key === 'class' && !isSvg) node.className = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
}

// Appends children; strings become text nodes (never parsed as HTML).
function appendAll(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Replaces a node's children (null / false children are left out).
function setChildren(node, ...children) {
  node.replaceChildren();
  return appendAll(node, children);
}

// el('div', {class: 'x'}, child, 'text', ...): an HTML element.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs, false);
  return appendAll(node, children);
}

// svg('rect', {...}): an SVG element.
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs, true);
  return appendAll(node, children);
}

const loadingNode = () => el('p', { class: 'loading', text: 'loading…' });
const errorNode = (error) =>
  el('p', { class: 'error', role: 'alert', text: error && error.message ? error.message : String(error) });
const emptyNode = (text) => el('p', { class: 'empty', text });

/* ------------------------------------------------------------------ formatting */

const pad = (n, width = 2) => String(n).padStart(width, '0');
const fmtNumber = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '—');

// "2026-12-07 10:00:00" in the browser's time zone.
function fmtTime(value, withSeconds = true) {
  const ms = typeof value === 'number' ? value : Date.parse(value);
  if (!Number.isFinite(ms)) return value == null ? '' : String(value);
  const d = new Date(ms);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}` + (withSeconds ? `:${pad(d.getSeconds())}` : '');
  return `${date} ${time}`;
}

// ISO 8601 UTC without milliseconds when they are zero (shorter URLs).
function isoUtc(ms) {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

// "3 min ago" (or "in 2 min" for a clock ahead of ours).
function ago(value) {
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) return '—';
  const secs = Math.round((Date.now() - ms) / 1000);
  const abs = Math.abs(secs);
  let text;
  if (abs < 5) return 'just now';
  if (abs < 60) text = `${abs} s`;
  else if (abs < 3600) text = `${Math.floor(abs / 60)} min`;
  else if (abs < 86400) text = `${Math.floor(abs / 3600)} h`;
  else text = `${Math.floor(abs / 86400)} d`;
  return secs >= 0 ? `${text} ago` : `in ${text}`;
}

// 1536 -> "1.5 KiB".
function humanBytes(n) {
  if (typeof n !== 'number') return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

// 4000 -> "1 h 6 min".
function humanSecs(s) {
  if (typeof s !== 'number') return '—';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

// A time cell: local time, the exact ISO value as the tooltip.
function timeCell(value) {
  return el('td', { class: 'col-time', title: value || '', text: value ? fmtTime(value) : '—' });
}

// A query-string phrase: "value" with " and \ escaped.
const quote = (value) => `"${String(value).replace(/[\\"]/g, '\\$&')}"`;

// Adds a clause to a query with AND (bracketing a query that has a top-level OR).
function addClause(query, clause) {
  let q = query.trim();
  if (!q) return clause.startsWith('NOT ') ? `* AND ${clause}` : clause;
  if (/\bOR\b/.test(q) && !(q.startsWith('(') && q.endsWith(')'))) q = `(${q})`;
  return `${q} AND ${clause}`;
}

/* ------------------------------------------------------------------ URL (hash) */

// Percent-encodes a value for the hash, keeping : / @ , readable.
const encodeHashValue = (value) =>
  encodeURIComponent(value).replace(/%(3A|2F|40|2C)/gi, (m) => decodeURIComponent(m));

// '#/search?q=...&from=...' from a path and parameters (empty values left out).
function hashFor(path, params = {}) {
  const parts = Object.entries(params)
    .filter(([, v]) => v != null && v !== '')
    .map(([k, v]) => `${k}=${encodeHashValue(v)}`);
  return `#${path}${parts.length ? `?${parts.join('&')}` : ''}`;
}

// The current route: its path and parameters.
function parseHash() {
  const hash = location.hash.replace(/^#/, '') || '/overview';
  const i = hash.indexOf('?');
  return {
    path: i < 0 ? hash : hash.slice(0, i),
    params: new URLSearchParams(i < 0 ? '' : hash.slice(i + 1)),
    route: hash,
  };
}

// Goes to a route; re-renders when it is the current one (a repeated search).
function navigate(path, params) {
  const hash = hashFor(path, params);
  if (location.hash === hash) render();
  else location.hash = hash;
}

/* ------------------------------------------------------------------ API and session */

class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// undefined: not known yet; null: not signed in; else {user, role, csrf}.
let session;
// The 401 body of /console/api/session ({users: bool}), for the login form.
let sessionInfo = null;
// Settles once the session is known.
let sessionReady = null;

// One JSON request. Throws ApiError with the body's "error" text on failure; a 401
// from a data call sends the user to the login page.
async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (session && session.csrf) headers['X-CSRF-Token'] = session.csrf;
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `cannot reach the collector (${e.message})`);
  }
  let data = null;
  const text = await response.text().catch(() => '');
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (response.status === 401 && !path.startsWith('/console/api/')) sessionExpired();
  if (!response.ok) {
    const message = data && typeof data.error === 'string' ? data.error
      : `${response.status} ${response.statusText || 'error'}`.trim();
    throw new ApiError(response.status, message, data);
  }
  return data;
}

// POST /api/search.
function search(body) {
  return api('POST', '/api/search', body);
}

// Asks the collector who we are (sets session / sessionInfo).
function loadSession() {
  sessionReady = api('GET', '/console/api/session').then(
    (data) => { session = data; sessionInfo = null; renderTopbar(); return data; },
    (e) => {
      if (e.status === 401) { session = null; sessionInfo = e.body || {}; renderTopbar(); return null; }
      session = undefined;
      throw e;
    });
  return sessionReady;
}

// The login page, remembering where the user was.
function goLogin() {
  const { path, route } = parseHash();
  if (path === '/login') return;
  location.hash = hashFor('/login', { next: route });
}

// A data call answered 401: the session is gone.
function sessionExpired() {
  session = null;
  fieldsCache = null;
  sessionReady = Promise.resolve(null);
  renderTopbar();
  goLogin();
}

// Known field names for the query suggestions (fetched once per session).
let fieldsCache = null;
function loadFields() {
  if (!fieldsCache) {
    fieldsCache = api('GET', '/api/fields').then((d) => (Array.isArray(d && d.fields) ? d.fields : []));
    fieldsCache.catch(() => { fieldsCache = null; });
  }
  return fieldsCache;
}

/* ------------------------------------------------------------------ time ranges */

const RELATIVE_RANGES = [
  ['15m', 'Last 15 minutes'], ['1h', 'Last hour'], ['4h', 'Last 4 hours'],
  ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days'],
];
const UNIT_MS = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 };

// An instant from a URL bound: "now", "now-15m", or ISO 8601.
function parseBound(text, now) {
  if (text === 'now') return now;
  const m = /^now-(\d+)([smhdw])$/.exec(text);
  if (m) return now - Number(m[1]) * UNIT_MS[m[2]];
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) throw new Error(`${JSON.stringify(text)} is not a time (use now-1h or ISO 8601)`);
  return ms;
}

// The range of a page from its URL: {from, to, relative ("15m" or null)}.
function readRange(params, fallback) {
  const from = params.get('from') || `now-${fallback}`;
  const to = params.get('to') || '';
  const m = /^now-(\d+[smhdw])$/.exec(from);
  return { from, to, relative: m && (!to || to === 'now') ? m[1] : null };
}

// {start, end} in epoch ms for a range (end = now when open).
function rangeBounds(range, now = Date.now()) {
  const start = parseBound(range.from, now);
  const end = range.to ? parseBound(range.to, now) : now;
  if (!(start < end)) throw new Error('the start of the time range is not before its end');
  return { start, end };
}

// The range as URL parameters.
const rangeParams = (range) => ({ from: range.from, to: range.relative ? '' : range.to });

// Histogram intervals the store understands (fixed_interval), smallest first.
const INTERVALS = [
  ['1s', 1e3], ['5s', 5e3], ['10s', 1e4], ['30s', 3e4], ['1m', 6e4], ['5m', 3e5],
  ['10m', 6e5], ['30m', 18e5], ['1h', 36e5], ['3h', 108e5], ['12h', 432e5], ['1d', 864e5], ['7d', 6048e5],
];

// The smallest interval giving at most maxBars buckets over spanMs.
function pickInterval(spanMs, maxBars = 120) {
  for (const [name, ms] of INTERVALS) if (spanMs / ms <= maxBars) return { name, ms };
  const [name, ms] = INTERVALS[INTERVALS.length - 1];
  return { name, ms };
}

const dateHistogram = (interval) => ({ date_histogram: { field: 'utctimestamp', fixed_interval: interval.name } });

// Buckets of a date_histogram answer with the missing (empty) ones filled in:
// [{t, count}] from the bucket holding start to the one holding end.
function fillBuckets(aggregation, start, end, ms) {
  const counts = new Map();
  for (const b of (aggregation && aggregation.buckets) || []) {
    const key = typeof b.key === 'number' ? b.key : Date.parse(b.key_as_string || b.key);
    if (Number.isFinite(key)) counts.set(Math.round(key), (counts.get(Math.round(key)) || 0) + (b.doc_count || 0));
  }
  const out = [];
  const first = Math.floor(start / ms) * ms;
  for (let t = first; t < end; t += ms) {
    out.push({ t, count: counts.get(t) || 0 });
    counts.delete(t);
  }
  // Buckets off the grid (another alignment, or past our "now" by the time the
  // collector answered): keep them rather than lose counts.
  for (const [t, count] of counts) out.push({ t, count });
  return out.sort((a, b) => a.t - b.t);
}

/* ------------------------------------------------------------------ range picker */

// A value for <input type=datetime-local> (local time, seconds).
function localInputValue(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// The time-range picker: a select of relative ranges plus "absolute", which shows
// two datetime-local inputs. onChange({from, to}) when the user picks a range;
// .value() gives the range as chosen now.
function rangePicker(id, range, onChange) {
  const select = el('select', { id, title: 'Time range' });
  for (const [value, label] of RELATIVE_RANGES) select.append(el('option', { value, text: label }));
  if (range.relative && !RELATIVE_RANGES.some(([v]) => v === range.relative)) {
    select.append(el('option', { value: range.relative, text: `Last ${range.relative}` }));
  }
  select.append(el('option', { value: 'absolute', text: 'Absolute…' }));
  select.value = range.relative || 'absolute';

  const fromInput = el('input', { type: 'datetime-local', id: 'range-from', step: 1, title: 'From (local time)' });
  const toInput = el('input', { type: 'datetime-local', id: 'range-to', step: 1, title: 'To (local time; empty: now)' });
  const absolute = el('span', { class: 'range-absolute' }, fromInput, el('span', { text: '→' }), toInput);
  // Prefill the inputs with the range's bounds.
  const fill = () => {
    try {
      const b = rangeBounds(range);
      fromInput.value = localInputValue(b.start);
      toInput.value = localInputValue(b.end);
    } catch { /* an invalid range: leave empty */ }
  };
  fill();
  absolute.hidden = select.value !== 'absolute';

  // The range the controls hold now (null when the absolute inputs are incomplete).
  const value = () => {
    if (select.value !== 'absolute') return { from: `now-${select.value}`, to: '' };
    const from = Date.parse(fromInput.value);
    const to = toInput.value ? Date.parse(toInput.value) : NaN;
    if (!Number.isFinite(from)) return null;
    return { from: isoUtc(from), to: Number.isFinite(to) ? isoUtc(to) : '' };
  };
  select.addEventListener('change', () => {
    absolute.hidden = select.value !== 'absolute';
    if (select.value === 'absolute') { fill(); fromInput.focus(); return; }
    onChange(value());
  });
  const inputChanged = () => {
    const v = value();
    if (v && (!v.to || Date.parse(v.from) < Date.parse(v.to))) onChange(v);
  };
  fromInput.addEventListener('change', inputChanged);
  toInput.addEventListener('change', inputChanged);

  const node = el('span', { class: 'range-picker' }, select, absolute);
  return { node, value };
}

/* ------------------------------------------------------------------ charts (SVG) */

const niceMax = (max) => {
  if (max <= 5) return Math.max(1, max);
  const magnitude = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= max) return step * magnitude;
  return max;
};

// A time chart frame: axes, grid and tick labels. Returns scales and the plot box.
function timeFrame({ width, height, start, end, yMax, id, label }) {
  const plot = { left: 44, right: width - 8, top: 8, bottom: height - 20 };
  const x = (t) => plot.left + ((t - start) / (end - start)) * (plot.right - plot.left);
  const top = niceMax(yMax);
  const y = (v) => plot.bottom - (v / top) * (plot.bottom - plot.top);
  const root = svg('svg', {
    id, class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label,
  });
  // Y grid and labels: 0, half, top.
  for (const v of [0, top / 2, top]) {
    const yy = Math.round(y(v)) + 0.5;
    root.append(svg('line', { class: 'grid', x1: plot.left, x2: plot.right, y1: yy, y2: yy }));
    const text = Number.isInteger(v) ? fmtNumber(v) : v.toFixed(1);
    root.append(svg('text', { class: 'axis', x: plot.left - 4, y: yy + 3, 'text-anchor': 'end' }, text));
  }
  // X ticks: about one per 110 px, on round local times.
  const span = end - start;
  const wanted = span / Math.max(2, Math.floor((plot.right - plot.left) / 110));
  const tickSteps = [...INTERVALS.map(([, ms]) => ms), 2 * 36e5, 6 * 36e5, 2 * 864e5, 30 * 864e5]
    .sort((a, b) => a - b).filter((ms) => ms >= 6e4 || span < 6e5);
  const step = tickSteps.find((ms) => ms >= wanted) || wanted;
  const offset = -new Date(start).getTimezoneOffset() * 6e4;
  for (let t = Math.ceil((start + offset) / step) * step - offset; t <= end; t += step) {
    const xx = Math.round(x(t)) + 0.5;
    root.append(svg('line', { class: 'tick', x1: xx, x2: xx, y1: plot.bottom, y2: plot.bottom + 4 }));
    const d = new Date(t);
    let text = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    if (step < 6e4) text += `:${pad(d.getSeconds())}`;
    if (span > 864e5) text = step >= 864e5 ? `${pad(d.getMonth() + 1)}-${pad(d.getDate())}` : `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${text}`;
    root.append(svg('text', { class: 'axis', x: xx, y: height - 5, 'text-anchor': 'middle' }, text));
  }
  root.append(svg('line', { class: 'baseline', x1: plot.left, x2: plot.right, y1: plot.bottom + 0.5, y2: plot.bottom + 0.5 }));
  return { root, plot, x, y };
}

// Click-drag across a chart selects a time span: onSelect(t0, t1); a plain click
// calls onClick(t) when given.
function attachBrush(frame, start, end, onSelect, onClick) {
  const { root, plot } = frame;
  const brush = svg('rect', { class: 'brush', y: plot.top, height: plot.bottom - plot.top, x: 0, width: 0, visibility: 'hidden' });
  root.append(brush);
  root.classList.add('brushable');
  const clampX = (e) => {
    const box = root.getBoundingClientRect();
    const scale = box.width ? Number(root.getAttribute('width')) / box.width : 1;
    return Math.min(plot.right, Math.max(plot.left, (e.clientX - box.left) * scale));
  };
  const timeAt = (px) => start + ((px - plot.left) / (plot.right - plot.left)) * (end - start);
  let x0 = null;
  root.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    x0 = clampX(e);
    try { root.setPointerCapture(e.pointerId); } catch { /* synthetic pointer */ }
  });
  root.addEventListener('pointermove', (e) => {
    if (x0 === null) return;
    const x1 = clampX(e);
    setAttrs(brush, { x: Math.min(x0, x1), width: Math.abs(x1 - x0), visibility: 'visible' }, true);
  });
  const finish = (e, cancelled) => {
    if (x0 === null) return;
    const x1 = clampX(e);
    const a = Math.min(x0, x1);
    const b = Math.max(x0, x1);
    x0 = null;
    brush.setAttribute('visibility', 'hidden');
    if (cancelled) return;
    if (b - a >= 4) onSelect(timeAt(a), timeAt(b));
    else if (onClick) onClick(timeAt(a));
  };
  root.addEventListener('pointerup', (e) => finish(e, false));
  root.addEventListener('pointercancel', (e) => finish(e, true));
}

// The match histogram: one bar per non-empty bucket (class "bar").
function drawHistogram(container, { id, buckets, start, end, ms, onZoom }) {
  const width = Math.max(300, container.clientWidth || 900);
  const yMax = buckets.reduce((m, b) => Math.max(m, b.count), 0);
  const frame = timeFrame({ width, height: 110, start, end, yMax, id, label: 'Matches over time' });
  const barWidth = Math.max(1, frame.x(start + ms) - frame.x(start) - 1);
  for (const b of buckets) {
    if (!b.count) continue;
    const x = Math.min(frame.plot.right - 1, Math.max(frame.plot.left, frame.x(b.t)));
    const w = Math.max(1, Math.min(barWidth, frame.plot.right - x));
    const y = frame.y(b.count);
    frame.root.append(svg('rect', {
      class: 'bar', x: x.toFixed(1), y: y.toFixed(1), width: w.toFixed(1),
      height: Math.max(1, frame.plot.bottom - y).toFixed(1), 'data-time': isoUtc(b.t), 'data-count': b.count,
    }, svg('title', {}, `${fmtTime(b.t)}: ${fmtNumber(b.count)}`)));
  }
  if (onZoom) {
    attachBrush(frame, start, end, onZoom, (t) => {
      const hit = buckets.find((b) => b.count && t >= b.t && t < b.t + ms);
      if (hit) onZoom(hit.t, hit.t + ms);
    });
  }
  setChildren(container, frame.root);
}

// A line chart of several series over the same buckets.
function drawLines(container, { id, series, start, end, ms, onZoom }) {
  const width = Math.max(300, container.clientWidth || 560);
  const yMax = Math.max(0, ...series.flatMap((s) => s.buckets.map((b) => b.count)));
  const frame = timeFrame({ width, height: 200, start, end, yMax, id, label: series.map((s) => s.name).join(' vs ') });
  const half = ms / 2;
  for (const s of series) {
    const points = s.buckets.map((b) => `${frame.x(Math.min(end, b.t + half)).toFixed(1)},${frame.y(b.count).toFixed(1)}`);
    if (points.length === 1) points.push(points[0].replace(/^[^,]+/, frame.plot.right));
    frame.root.append(svg('polyline', { class: `line ${s.cls}`, points: points.join(' ') }));
  }
  // Hover zones: one per bucket, telling every series' count.
  const base = series[0].buckets;
  const zoneWidth = Math.max(1, frame.x(start + ms) - frame.x(start));
  base.forEach((b, i) => {
    const tip = `${fmtTime(b.t)}\n` + series.map((s) => `${s.name}: ${fmtNumber((s.buckets[i] || {}).count || 0)}`).join('\n');
    frame.root.append(svg('rect', {
      class: 'hover', x: Math.max(frame.plot.left, frame.x(b.t)).toFixed(1), y: frame.plot.top,
      width: zoneWidth.toFixed(1), height: frame.plot.bottom - frame.plot.top,
    }, svg('title', {}, tip)));
  });
  if (onZoom) attachBrush(frame, start, end, onZoom);
  setChildren(container, frame.root);
}

// A small sparkline of numbers (oldest first).
function sparkline(values) {
  const width = 120;
  const height = 22;
  const max = Math.max(1, ...values);
  const n = Math.max(1, values.length - 1);
  const points = values.map((v, i) => `${((i / n) * (width - 2) + 1).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
  const total = values.reduce((a, b) => a + b, 0);
  return svg('svg', { class: 'sparkline', width, height, viewBox: `0 0 ${width} ${height}` },
    svg('title', {}, `${fmtNumber(total)} events in the last ${values.length} min; peak ${fmtNumber(Math.max(0, ...values))}/min; now ${fmtNumber(values[values.length - 1] || 0)}/min`),
    svg('polyline', { points: points.join(' ') }));
}

// A ranked list (label, count, proportional bar); link(key) gives each an href.
function topList(buckets, link, emptyText) {
  if (!buckets || !buckets.length) return emptyNode(emptyText);
  const max = Math.max(1, ...buckets.map((b) => b.doc_count || 0));
  return el('ol', { class: 'top-list' }, buckets.map((b) => {
    const key = b.key_as_string != null && typeof b.key !== 'string' ? b.key_as_string : String(b.key);
    const bar = el('span');
    bar.style.width = `${((100 * (b.doc_count || 0)) / max).toFixed(1)}%`; // CSSOM: allowed by the CSP
    return el('li', { class: 'top-item', dataset: { value: key } },
      el('a', { href: link(key), class: 'top-label', title: key, text: key }),
      el('span', { class: 'top-bar' }, bar),
      el('span', { class: 'top-count', text: fmtNumber(b.doc_count || 0) }));
  }));
}

/* ------------------------------------------------------------------ shared widgets */

// Runs one panel's request: "loading…" until it answers, then renderData(data), or
// showError(error) (by default the error text in place of the container's content).
// Marks the container data-state=loading|done|error and data-hash=<its route>.
async function fill(ctx, container, task, renderData, showError) {
  container.dataset.state = 'loading';
  container.dataset.hash = ctx.hash;
  try {
    const data = await task();
    if (!ctx.alive()) return;
    renderData(data);
    container.dataset.state = 'done';
  } catch (e) {
    if (!ctx.alive()) return;
    if (e && e.status === 401) return; // on its way to the login page
    if (e && !(e instanceof ApiError)) console.error(e);
    if (showError) showError(e);
    else setChildren(container, errorNode(e));
    container.dataset.state = 'error';
  }
}

// A panel: a titled box with a body to fill.
function panel(id, title, ...extra) {
  const body = el('div', { class: 'panel-body' }, loadingNode());
  const node = el('section', { class: 'panel', id }, el('h2', {}, title, ...extra), body);
  return { node, body };
}

// Columns of an event table: header, value, class.
const EVENT_COLUMNS = [
  ['Time', (e) => e.utctimestamp, 'col-time'],
  ['Host', (e) => e.hostname, 'col-host'],
  ['Program', (e) => e.processname, 'col-program'],
  ['Category', (e) => e.category, 'col-category'],
  ['Summary', (e) => e.summary, 'col-summary'],
  ['User', (e) => e.details && e.details.username, 'col-user'],
  ['Source address', (e) => e.details && e.details.sourceipaddress, 'col-source'],
];

// An event table (id): setEvents(events) fills it; a click on a row shows the
// event's JSON under it; setMessage(node) shows one full-width line instead.
function eventTable(id) {
  const tbody = el('tbody');
  const table = el('table', { id, class: 'data events' },
    el('colgroup', {}, EVENT_COLUMNS.map(([, , cls]) => el('col', { class: cls }))),
    el('thead', {}, el('tr', {}, EVENT_COLUMNS.map(([name, , cls]) => el('th', { class: cls, text: name })))),
    tbody);
  const setMessage = (node) => setChildren(tbody, el('tr', { class: 'message' }, el('td', { colspan: EVENT_COLUMNS.length }, node)));
  setMessage(loadingNode());

  // Shows or hides the JSON of the event of a row.
  const toggle = (row, event) => {
    const next = row.nextElementSibling;
    if (next && next.classList.contains('event-detail')) {
      next.remove();
      row.classList.remove('expanded');
      row.setAttribute('aria-expanded', 'false');
      return;
    }
    row.classList.add('expanded');
    row.setAttribute('aria-expanded', 'true');
    row.after(el('tr', { class: 'event-detail' },
      el('td', { colspan: EVENT_COLUMNS.length }, el('pre', { class: 'event-json', text: JSON.stringify(event, null, 2) }))));
  };

  const setEvents = (events) => {
    if (!events.length) { setMessage(emptyNode('No events.')); return; }
    setChildren(tbody, ...events.map((event) => {
      const row = el('tr', { class: 'event-row', tabindex: 0, 'aria-expanded': 'false', dataset: { eventid: event.eventid || '' } },
        EVENT_COLUMNS.map(([, get, cls]) => {
          const value = get(event);
          if (cls === 'col-time') return timeCell(value);
          const text = value == null ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
          return el('td', { class: cls, title: text, text });
        }));
      row.addEventListener('click', () => { if (!window.getSelection().toString()) toggle(row, event); });
      row.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(row, event); } });
      return row;
    }));
  };
  return { table, setEvents, setMessage };
}

// Severity and status badges.
const severityBadge = (severity) => {
  const s = String(severity || 'UNKNOWN').toUpperCase();
  return el('span', { class: `sev sev-${s.toLowerCase().replace(/[^a-z]/g, '')}`, text: s });
};
const statusBadge = (status) => {
  const s = String(status || 'NEW').toUpperCase();
  return el('span', { class: `badge status-${s.toLowerCase().replace(/[^a-z]/g, '')}`, text: s });
};

/* ------------------------------------------------------------------ query suggestions */

// Field-name suggestions under the query box for the word being typed;
// Tab / Enter / click completes it as "field:".
function attachSuggest(input, list) {
  let fields = [];
  let items = [];
  let active = 0;
  let word = null;
  loadFields().then((f) => { fields = f; if (document.activeElement === input) update(); }, () => {});

  const hide = () => { list.hidden = true; items = []; setChildren(list); };

  // The word at the caret: {text, start, end} (after a leading -, + or !).
  const wordAtCaret = () => {
    const pos = input.selectionStart == null ? input.value.length : input.selectionStart;
    const before = input.value.slice(0, pos);
    const m = /[^\s()"]*$/.exec(before);
    let start = pos - m[0].length;
    while (/[-+!]/.test(input.value[start] || '') && start < pos) start++;
    const after = /^[^\s()":]*/.exec(input.value.slice(pos))[0];
    return { text: input.value.slice(start, pos), start, end: pos + after.length };
  };

  const update = () => {
    word = wordAtCaret();
    const w = word.text.toLowerCase();
    if (!w || w.includes(':') || /^(and|or|not)$/i.test(w) || !fields.length) { hide(); return; }
    const starts = fields.filter((f) => f.toLowerCase().startsWith(w));
    const contains = fields.filter((f) => !f.toLowerCase().startsWith(w) && f.toLowerCase().includes(w));
    items = [...starts, ...contains].slice(0, 12);
    if (!items.length || (items.length === 1 && items[0].toLowerCase() === w && input.value[word.end] === ':')) { hide(); return; }
    active = Math.min(active, items.length - 1);
    setChildren(list, ...items.map((f, i) => el('li', {
      class: i === active ? 'active' : '', role: 'option', 'aria-selected': String(i === active), dataset: { field: f }, text: f,
      onmousedown: (e) => { e.preventDefault(); complete(f); },
    })));
    list.hidden = false;
  };

  const complete = (field) => {
    const { start, end } = word || wordAtCaret();
    const rest = input.value.slice(end);
    const colon = rest.startsWith(':') ? '' : ':';
    input.value = input.value.slice(0, start) + field + colon + rest;
    const caret = start + field.length + 1;
    input.setSelectionRange(caret, caret);
    input.focus();
    hide();
  };

  input.addEventListener('input', () => { active = 0; update(); });
  input.addEventListener('keydown', (e) => {
    if (list.hidden || !items.length) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      active = (active + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
      update();
    } else if (e.key === 'Tab' || e.key === 'Enter') {
      e.preventDefault();
      complete(items[active] || items[0]);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      hide();
    }
  });
  input.addEventListener('blur', hide);
  hide();
}

/* ------------------------------------------------------------------ page: login */

// Where to go after signing in: a known page, not the login page itself.
function safeNext(next) {
  return next && /^\/(overview|search|alerts|hosts)(\/|\?|$)/.test(next) ? next : '/overview';
}

async function pageLogin(view, ctx) {
  const box = el('section', { class: 'login-box' }, el('h1', { text: 'Sign in to Picket' }), loadingNode());
  view.append(box);
  try {
    await sessionReady;
  } catch { /* shown below as the login form; a failed login explains */ }
  if (!ctx.alive()) return;
  if (!session && !sessionInfo) {
    try { await loadSession(); } catch { /* keep the password form */ }
    if (!ctx.alive()) return;
  }
  const next = safeNext(ctx.params.get('next'));
  const tokenMode = !session && sessionInfo && sessionInfo.users === false;
  const error = el('p', { id: 'login-error', class: 'error', role: 'alert', hidden: true });
  const submit = el('button', { id: 'login-submit', type: 'submit', class: 'primary', text: 'Sign in' });
  const fields = tokenMode
    ? [el('label', { for: 'login-token', text: 'Access token' }),
      el('input', { id: 'login-token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' }),
      el('p', { class: 'hint', text: "Paste a reader or analyst token, e.g. the collector's own from <data_dir>/read.token." })]
    : [el('label', { for: 'login-user', text: 'User name' }),
      el('input', { id: 'login-user', type: 'text', autocomplete: 'username', required: true, autocapitalize: 'off', spellcheck: 'false' }),
      el('label', { for: 'login-password', text: 'Password' }),
      el('input', { id: 'login-password', type: 'password', autocomplete: 'current-password', required: true })];
  const form = el('form', { id: 'login-form', class: 'login-form' }, fields, submit, error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    const body = tokenMode
      ? { token: $('#login-token').value.trim() }
      : { user: $('#login-user').value.trim(), password: $('#login-password').value };
    try {
      const data = await api('POST', '/console/api/login', body);
      session = data;
      sessionInfo = null;
      fieldsCache = null;
      sessionReady = Promise.resolve(data);
      renderTopbar();
      location.hash = `#${next}`;
    } catch (err) {
      if (!ctx.alive()) return;
      error.textContent = err.message || 'Sign-in failed.';
      error.hidden = false;
      submit.disabled = false;
      const secret = $(tokenMode ? '#login-token' : '#login-password');
      if (secret) { secret.select(); secret.focus(); }
    }
  });
  setChildren(box, el('h1', { text: 'Sign in to Picket' }),
    session ? el('p', { class: 'hint', text: `Signed in as ${session.user} (${session.role}). Sign in again to switch user.` }) : null,
    form);
  $(tokenMode ? '#login-token' : '#login-user').focus();
}

/* ------------------------------------------------------------------ page: overview */

const FAILED_LOGINS = 'category:authentication AND details.success:false';
const GOOD_LOGINS = 'category:authentication AND details.success:true';

function pageOverview(view, ctx) {
  const range = readRange(ctx.params, '24h');
  const picker = rangePicker('overview-range', range, (r) => navigate('/overview', { from: r.from, to: r.to }));
  const logins = panel('overview-logins', 'Logins over time',
    el('span', { class: 'legend' }, el('span', { class: 'key failed', text: 'failed' }), el('span', { class: 'key success', text: 'successful' })));
  const attackers = panel('overview-attackers', 'Top attacking addresses', el('small', { text: ' (failed logins)' }));
  const users = panel('overview-users', 'Top targeted users', el('small', { text: ' (failed logins)' }));
  const rules = panel('overview-rules', 'Alerts by rule');
  view.append(
    el('div', { class: 'page-head' }, el('h1', { text: 'Overview' }), picker.node),
    el('div', { id: 'overview', class: 'overview-grid' }, logins.node, attackers.node, users.node, rules.node));

  let bounds;
  try {
    bounds = rangeBounds(range);
  } catch (e) {
    for (const p of [logins, attackers, users, rules]) setChildren(p.body, errorNode(e));
    return;
  }
  const { start, end } = bounds;
  const interval = pickInterval(end - start);
  const span = { from: range.from, to: range.to || undefined };
  const searchLink = (field) => (value) => hashFor('/search', { q: `${field}:${quote(value)}`, ...rangeParams(range) });

  // Failed logins: the chart's first series and both top lists, in one request.
  const failed = search({
    query: FAILED_LOGINS, ...span, size: 0,
    aggs: {
      over_time: dateHistogram(interval),
      addresses: { terms: { field: 'details.sourceipaddress', size: 10 } },
      users: { terms: { field: 'details.username', size: 10 } },
    },
  });
  const good = search({ query: GOOD_LOGINS, ...span, size: 0, aggs: { over_time: dateHistogram(interval) } });
  failed.catch(() => {});
  good.catch(() => {});

  fill(ctx, logins.body, () => Promise.all([failed, good]), ([f, g]) => {
    const series = [
      { name: 'Failed', cls: 'failed', buckets: fillBuckets(f.aggregations && f.aggregations.over_time, start, end, interval.ms) },
      { name: 'Successful', cls: 'success', buckets: fillBuckets(g.aggregations && g.aggregations.over_time, start, end, interval.ms) },
    ];
    const chart = el('div', { class: 'chart-box' });
    setChildren(logins.body,
      el('p', { class: 'totals' },
        el('a', { class: 'failed', href: hashFor('/search', { q: FAILED_LOGINS, ...rangeParams(range) }), text: `${fmtNumber(f.total)} failed` }),
        ' · ',
        el('a', { class: 'success', href: hashFor('/search', { q: GOOD_LOGINS, ...rangeParams(range) }), text: `${fmtNumber(g.total)} successful` }),
        el('span', { class: 'muted', text: ` · per ${interval.name} · drag to zoom` })),
      chart);
    drawLines(chart, {
      id: 'overview-chart', series, start, end, ms: interval.ms,
      onZoom: (t0, t1) => navigate('/overview', { from: isoUtc(Math.floor(t0 / 1000) * 1000), to: isoUtc(Math.ceil(t1 / 1000) * 1000) }),
    });
  });
  fill(ctx, attackers.body, () => failed, (f) => setChildren(attackers.body,
    topList(f.aggregations && f.aggregations.addresses && f.aggregations.addresses.buckets,
      searchLink('details.sourceipaddress'), 'No failed logins in this range.')));
  fill(ctx, users.body, () => failed, (f) => setChildren(users.body,
    topList(f.aggregations && f.aggregations.users && f.aggregations.users.buckets,
      searchLink('details.username'), 'No failed logins in this range.')));

  // Alerts by rule: counted here over the newest alerts of the range.
  const size = 200; // alerts carry sample events: keep the answer small
  const alertQuery = new URLSearchParams({ q: '', from: range.from, size: String(size) });
  if (range.to) alertQuery.set('to', range.to);
  fill(ctx, rules.body, () => api('GET', `/api/alerts?${alertQuery}`).catch((e) => {
    if (e.status === 404) throw new ApiError(404, 'alerts are off on this collector (no rules folder)');
    throw e;
  }), (data) => {
    const counts = new Map();
    for (const a of data.hits || []) {
      const rule = (a.details && a.details.rule) || '(no rule)';
      counts.set(rule, (counts.get(rule) || 0) + 1);
    }
    const buckets = [...counts].sort((a, b) => b[1] - a[1]).map(([key, doc_count]) => ({ key, doc_count }));
    const hits = (data.hits || []).length;
    setChildren(rules.body,
      topList(buckets, (rule) => hashFor('/alerts', { rule }), 'No alerts in this range.'),
      data.total > hits ? el('p', { class: 'muted', text: `Counted over the newest ${fmtNumber(hits)} of ${fmtNumber(data.total)} alerts.` }) : null);
  });
}

/* ------------------------------------------------------------------ page: search */

const FACET_FIELDS = ['hostname', 'category', 'processname', 'details.username', 'details.sourceipaddress'];
let lastSearchHash = '#/search';

function pageSearch(view, ctx) {
  const query = ctx.params.get('q') || '';
  const range = readRange(ctx.params, '1h');
  lastSearchHash = location.hash || '#/search';
  renderTopbar();

  // The form: query box with suggestions, time range, submit.
  const input = el('input', {
    id: 'search-query', type: 'text', value: query, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'e.g. details.username:root AND NOT hostname:web*', 'aria-label': 'Query',
  });
  const suggest = el('ul', { id: 'search-suggest', class: 'suggest', role: 'listbox', hidden: true });
  const runWith = (r) => navigate('/search', { q: input.value.trim(), from: r.from, to: r.to });
  const picker = rangePicker('search-range', range, runWith);
  const form = el('form', { id: 'search-form', class: 'search-form' },
    el('div', { class: 'query-wrap' }, input, suggest),
    picker.node,
    el('button', { id: 'search-submit', type: 'submit', class: 'primary', text: 'Search' }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const r = picker.value();
    if (r) runWith(r);
  });

  const total = el('span', { id: 'search-total', class: 'total', text: '…' });
  const rangeText = el('span', { class: 'muted' });
  const histogramBox = el('div', { id: 'search-histogram-box', class: 'chart-box histogram' }, loadingNode());
  const facets = el('aside', { id: 'facets', class: 'facets' }, loadingNode());
  const results = eventTable('search-results');
  view.append(
    form,
    el('div', { class: 'search-summary' }, total, rangeText),
    histogramBox,
    el('div', { class: 'search-body' }, facets, el('div', { class: 'results-box' }, results.table)));
  attachSuggest(input, suggest);
  if (!query) input.focus();

  let bounds;
  try {
    bounds = rangeBounds(range);
  } catch (e) {
    for (const node of [histogramBox, facets]) setChildren(node, errorNode(e));
    results.setMessage(errorNode(e));
    total.textContent = '—';
    return;
  }
  const { start, end } = bounds;
  rangeText.textContent = ` ${fmtTime(start)} → ${range.to ? fmtTime(end) : 'now'}`;
  const interval = pickInterval(end - start);
  const span = { from: range.from, to: range.to || undefined };

  // Events, total and histogram in one request.
  const main = () => search({ query, ...span, size: 100, aggs: { over_time: dateHistogram(interval) } });
  fill(ctx, results.table, main, (data) => {
    const hits = data.hits || [];
    total.textContent = `${fmtNumber(data.total)} events`;
    total.dataset.total = String(data.total);
    if (data.total > hits.length) rangeText.textContent += ` · showing the newest ${fmtNumber(hits.length)}`;
    if (data.truncated) rangeText.textContent += ' (answer cut short by its size limit)';
    results.setEvents(hits);
    drawHistogram(histogramBox, {
      id: 'search-histogram', start, end, ms: interval.ms,
      buckets: fillBuckets(data.aggregations && data.aggregations.over_time, start, end, interval.ms),
      onZoom: (t0, t1) => navigate('/search', {
        q: query, from: isoUtc(Math.floor(t0 / 1000) * 1000), to: isoUtc(Math.ceil(t1 / 1000) * 1000),
      }),
    });
  }, (e) => {
    setChildren(histogramBox, errorNode(e));
    results.setMessage(errorNode(e));
    total.textContent = '—';
  });

  // Facets: top values of a few fields, in a second request.
  const aggs = {};
  FACET_FIELDS.forEach((field, i) => { aggs[`facet${i}`] = { terms: { field, size: 10 } }; });
  fill(ctx, facets, () => search({ query, ...span, size: 0, aggs }), (data) => {
    const filterBy = (clause) => navigate('/search', { q: addClause(query, clause), ...rangeParams(range) });
    setChildren(facets, ...FACET_FIELDS.map((field, i) => {
      const buckets = (data.aggregations && data.aggregations[`facet${i}`] && data.aggregations[`facet${i}`].buckets) || [];
      return el('section', { class: 'facet', dataset: { field } },
        el('h3', { text: field }),
        buckets.length ? el('ul', {}, buckets.map((b) => {
          const value = b.key_as_string != null && typeof b.key !== 'string' ? b.key_as_string : String(b.key);
          const clause = `${field}:${quote(value)}`;
          return el('li', { class: 'facet-value', dataset: { field, value } },
            el('span', { class: 'facet-label', title: value, text: value }),
            el('span', { class: 'facet-count', text: fmtNumber(b.doc_count) }),
            el('button', { type: 'button', class: 'facet-in', title: `Only ${clause}`, text: '+', onclick: () => filterBy(clause) }),
            el('button', { type: 'button', class: 'facet-out', title: `Without ${clause}`, text: '−', onclick: () => filterBy(`NOT ${clause}`) }));
        })) : emptyNode('no values'));
    }));
  });
}

/* ------------------------------------------------------------------ page: alerts */

const STATUSES = ['NEW', 'ACKNOWLEDGED', 'CLOSED'];

function pageAlerts(view, ctx) {
  const status = (ctx.params.get('status') || '').toUpperCase();
  const rule = ctx.params.get('rule') || '';
  const select = el('select', { id: 'alerts-status', title: 'Status' },
    el('option', { value: '', text: 'All statuses' }), STATUSES.map((s) => el('option', { value: s, text: s })));
  select.value = STATUSES.includes(status) ? status : '';
  select.addEventListener('change', () => navigate('/alerts', { status: select.value, rule }));
  const count = el('span', { id: 'alerts-count', class: 'muted' });
  const tbody = el('tbody', {}, el('tr', { class: 'message' }, el('td', { colspan: 7 }, loadingNode())));
  const table = el('table', { id: 'alerts-table', class: 'data alerts' },
    el('colgroup', {}, ['col-time', 'col-sev', 'col-rule', 'col-summary', 'col-status', 'col-by', 'col-at'].map((c) => el('col', { class: c }))),
    el('thead', {}, el('tr', {}, ['Time', 'Severity', 'Rule', 'Summary', 'Status', 'By', 'When'].map((h) => el('th', { text: h })))),
    tbody);
  view.append(
    el('div', { class: 'page-head' }, el('h1', { text: 'Alerts' }), select,
      rule ? el('span', { class: 'chip' }, `rule: ${rule} `, el('a', { href: hashFor('/alerts', { status }), title: 'Any rule', text: '×' })) : null,
      count),
    table);

  // The status is filtered here, over the newest alerts: the embedded store does not
  // index an alert's status (Elasticsearch would), so `status:NEW` cannot be searched.
  const q = rule ? `details.rule:${quote(rule)}` : '';
  const wanted = STATUSES.includes(status) ? status : '';
  const message = (node) => setChildren(tbody, el('tr', { class: 'message' }, el('td', { colspan: 7 }, node)));
  fill(ctx, table, () => api('GET', `/api/alerts?${new URLSearchParams({ q, size: '1000' })}`).catch((e) => {
    if (e.status === 404) throw new ApiError(404, 'alerts are off on this collector (no rules folder)');
    throw e;
  }), (data) => {
    const newest = data.hits || [];
    const hits = wanted ? newest.filter((a) => (a.status || 'NEW').toUpperCase() === wanted) : newest;
    count.textContent = wanted
      ? `${fmtNumber(hits.length)} ${wanted.toLowerCase()} among the newest ${fmtNumber(newest.length)} of ${fmtNumber(data.total)} alerts`
      : `${fmtNumber(data.total)} alerts${data.total > newest.length ? ` (newest ${fmtNumber(newest.length)} shown)` : ''}`;
    if (!hits.length) { message(emptyNode('No alerts.')); return; }
    setChildren(tbody, ...hits.map((a) => {
      const href = hashFor(`/alerts/${a.id}`);
      const row = el('tr', { class: 'alert-row', tabindex: 0, dataset: { id: a.id, status: a.status || 'NEW' } },
        timeCell(a.utctimestamp),
        el('td', {}, severityBadge(a.severity)),
        el('td', { class: 'col-rule', text: (a.details && a.details.rule) || '' }),
        el('td', { class: 'col-summary', title: a.summary || '' }, el('a', { href, text: a.summary || a.id })),
        el('td', {}, statusBadge(a.status)),
        el('td', { text: a.statusby || '' }),
        el('td', { title: a.statusat || '', text: a.statusat ? ago(a.statusat) : '' }));
      row.addEventListener('click', (e) => { if (!e.target.closest('a')) location.hash = href; });
      row.addEventListener('keydown', (e) => { if (e.key === 'Enter') location.hash = href; });
      return row;
    }));
  }, (e) => message(errorNode(e)));
}

/* ------------------------------------------------------------------ page: one alert */

function pageAlert(view, ctx, id) {
  const body = el('div', { id: 'alert', class: 'alert-page' }, loadingNode());
  view.append(el('p', { class: 'back' }, el('a', { href: '#/alerts', text: '← Alerts' })), body);
  fill(ctx, body, () => api('GET', `/api/alerts/${encodeURIComponent(id)}`).catch((e) => {
    if (e.status === 404) throw new ApiError(404, e.message || `no alert ${id}`);
    throw e;
  }), (alert) => renderAlert(body, ctx, alert));
}

// The alert page's content.
function renderAlert(body, ctx, alert) {
  const details = alert.details || {};
  const events = (Array.isArray(alert.events) ? alert.events : []).filter((e) => e && typeof e === 'object');
  const statusBox = el('section', { id: 'alert-status', class: 'panel status-box' });
  renderAlertStatus(statusBox, ctx, alert);

  // Its fields, the rule's details after the common ones.
  const rows = [
    ['ID', alert.id], ['Time', alert.utctimestamp ? `${fmtTime(alert.utctimestamp)} (${alert.utctimestamp})` : ''],
    ['Severity', severityBadge(alert.severity)], ['Category', alert.category], ['Rule', details.rule],
    ['Hosts', list(alert.hostnames)], ['Tags', list(alert.tags)],
  ];
  for (const [key, value] of Object.entries(details)) {
    if (key === 'rule') continue;
    if (value == null) continue;
    rows.push([`details.${key}`, typeof value === 'object' ? JSON.stringify(value) : String(value)]);
  }
  const fields = el('dl', { class: 'fields' }, rows.filter(([, v]) => v != null && v !== '').map(([k, v]) => [el('dt', { text: k }), el('dd', {}, v)]));

  // Its sample events, and a search for all of them.
  const table = eventTable('alert-events');
  table.setEvents(events.map((e) => e.documentsource || { eventid: e.documentid }));
  const ids = events.map((e) => e.documentid).filter(Boolean);
  let link = el('span', { class: 'muted', text: 'no events recorded' });
  const t = Date.parse(alert.utctimestamp);
  const window = durationMs(details.window);
  if (details.query && details.type !== 'deadman' && Number.isFinite(t) && window) {
    // The rule's own query over its window, narrowed to the value it alerted on: every
    // event behind the alert, not only the samples kept in it.
    let q = `(${details.query})`;
    if (details.field && details.value != null) q += ` AND ${details.field}:${quote(String(details.value))}`;
    link = el('a', {
      id: 'alert-events-link',
      href: hashFor('/search', { q, from: isoUtc(t - window), to: isoUtc(t + 1e3) }),
      text: 'all events of this alert',
    });
  } else if (ids.length && Number.isFinite(t)) {
    let q = `eventid:(${ids.map(quote).join(' OR ')})`;
    for (let n = ids.length; q.length > 15000 && n > 1; n = Math.floor(n / 2)) q = `eventid:(${ids.slice(0, n).map(quote).join(' OR ')})`;
    link = el('a', {
      id: 'alert-events-link',
      href: hashFor('/search', { q, from: isoUtc(t - 864e5), to: isoUtc(t + 6e4) }),
      text: 'all events of this alert',
    });
  }

  setChildren(body,
    el('div', { class: 'page-head' }, severityBadge(alert.severity), el('h1', { id: 'alert-summary', text: alert.summary || alert.id })),
    el('div', { class: 'alert-grid' }, el('section', { class: 'panel' }, el('h2', { text: 'Fields' }), fields), statusBox),
    el('section', { class: 'panel' },
      el('h2', {}, `Sample events (${fmtNumber(events.length)}) `, link),
      table.table));
}

// A list field shown as text, whatever it holds (an array, one string, nothing).
function list(value) {
  if (Array.isArray(value)) return value.filter((v) => v != null).map(String).join(', ');
  return value == null ? '' : String(value);
}

// A rule's window as the alert says it ("90s", "2m", "1h", "1d"), in milliseconds.
function durationMs(text) {
  const m = /^(\d+)\s*(ms|s|m|h|d)$/.exec(String(text || '').trim());
  if (!m) return 0;
  return Number(m[1]) * { ms: 1, s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[m[2]];
}

// The status, its history and (for analysts) the triage buttons.
function renderAlertStatus(box, ctx, alert) {
  const status = String(alert.status || 'NEW').toUpperCase();
  box.dataset.status = status;
  const error = el('p', { id: 'alert-action-error', class: 'error', role: 'alert', hidden: true });
  const buttons = [];
  if (session && session.role === 'analyst') {
    const button = (id, label, target) => el('button', {
      id, type: 'button', disabled: status === target, title: status === target ? `already ${target}` : `Set ${target}`, text: label,
      onclick: async (e) => {
        for (const b of box.querySelectorAll('button')) b.disabled = true;
        e.currentTarget.textContent = `${label}…`;
        try {
          const updated = await api('POST', `/api/alerts/${encodeURIComponent(alert.id)}/status`, { status: target });
          if (!ctx.alive()) return;
          renderAlertStatus(box, ctx, updated && updated.id ? updated : { ...alert, status: target });
        } catch (err) {
          if (!ctx.alive()) return;
          renderAlertStatus(box, ctx, alert);
          const shown = $('#alert-action-error', box);
          shown.textContent = err.message;
          shown.hidden = false;
        }
      },
    });
    buttons.push(button('alert-ack', 'Acknowledge', 'ACKNOWLEDGED'), button('alert-close', 'Close', 'CLOSED'), button('alert-reopen', 'Reopen', 'NEW'));
  }
  const history = (Array.isArray(alert.statushistory) ? alert.statushistory : []).filter((h) => h && typeof h === 'object');
  setChildren(box,
    el('h2', { text: 'Status' }),
    el('p', { class: 'status-line' }, statusBadge(status),
      alert.statusby ? [' by ', el('strong', { id: 'alert-status-by', text: alert.statusby })] : null,
      alert.statusat ? [' ', el('span', { title: alert.statusat, text: ago(alert.statusat) })] : null),
    buttons.length ? el('p', { class: 'actions' }, buttons) : el('p', { class: 'muted', text: 'Only analysts can change the status.' }),
    error,
    el('h3', { text: 'History' }),
    history.length
      ? el('ol', { id: 'alert-history', class: 'history' }, [...history].reverse().map((h) => el('li', {},
        statusBadge(h.status), ` by ${h.by || '?'} `, el('span', { title: h.at || '', text: h.at ? `${fmtTime(h.at)} (${ago(h.at)})` : '' }))))
      : emptyNode('Never changed.'));
}

/* ------------------------------------------------------------------ page: hosts */

function pageHosts(view, ctx) {
  const note = el('span', { id: 'hosts-note', class: 'muted' });
  const tbody = el('tbody', {}, el('tr', { class: 'message' }, el('td', { colspan: 7 }, loadingNode())));
  const columns = ['Host', 'Last heartbeat', 'Last event', 'Agent', 'Buffer', 'Oldest buffered', 'Events/min (60 min)'];
  const table = el('table', { id: 'hosts-table', class: 'data hosts' },
    el('thead', {}, el('tr', {}, columns.map((h) => el('th', { text: h })))), tbody);
  view.append(el('div', { class: 'page-head' }, el('h1', { text: 'Hosts' }), note), table);

  // One load at a time: a slow answer (a large fleet) is not asked for again meanwhile.
  let loading = false;
  const load = () => {
    if (loading) return;
    loading = true;
    fill(ctx, table, () => api('GET', '/api/hosts'), render, (e) => setChildren(tbody, el('tr', { class: 'message' }, el('td', { colspan: 7 }, errorNode(e)))))
      .finally(() => { loading = false; });
  };
  const render = (data) => {
    const hosts = [...(data.hosts || [])].sort((a, b) => Number(!!b.silent) - Number(!!a.silent));
    const silent = hosts.filter((h) => h.silent).length;
    note.textContent = `${fmtNumber(hosts.length)} hosts, ${fmtNumber(silent)} silent (no heartbeat for ${humanSecs(data.silent_after_secs)}) · refreshed ${fmtTime(Date.now())}`;
    if (!hosts.length) { setChildren(tbody, el('tr', { class: 'message' }, el('td', { colspan: 7 }, emptyNode('No hosts yet.')))); return; }
    setChildren(tbody, ...hosts.map((h) => el('tr', { class: h.silent ? 'host-row silent' : 'host-row', dataset: { host: h.hostname } },
      el('td', { class: 'col-host' },
        el('a', { href: hashFor('/search', { q: `hostname:${quote(h.hostname)}`, from: 'now-1h' }), text: h.hostname }),
        h.silent ? el('span', { class: 'badge silent-badge', text: 'silent' }) : null),
      el('td', { title: h.last_heartbeat || 'never', text: h.last_heartbeat ? ago(h.last_heartbeat) : 'never' }),
      el('td', { title: h.last_event || 'never', text: h.last_event ? ago(h.last_event) : 'never' }),
      el('td', { text: typeof h.agent_version === 'string' && h.agent_version ? h.agent_version : '—' }),
      el('td', { class: 'num', title: h.buffer_bytes == null ? '' : `${h.buffer_bytes} bytes`, text: humanBytes(h.buffer_bytes) }),
      el('td', { class: 'num', text: humanSecs(h.buffer_oldest_age_secs) }),
      el('td', {}, Array.isArray(h.events_per_minute) ? sparkline(h.events_per_minute) : '—'))));
  };
  load();
  // Keep it current while it is shown.
  const timer = setInterval(() => { if (ctx.alive() && !document.hidden) load(); }, 30000);
  ctx.onLeave(() => clearInterval(timer));
}

/* ------------------------------------------------------------------ top bar */

function renderTopbar() {
  const nav = $('#nav');
  const who = $('#whoami');
  if (!nav || !who) return;
  const { path } = parseHash();
  if (!session) { setChildren(nav); setChildren(who); return; }
  const links = [['Overview', '#/overview', '/overview'], ['Search', lastSearchHash, '/search'], ['Alerts', '#/alerts', '/alerts'], ['Hosts', '#/hosts', '/hosts']];
  setChildren(nav, ...links.map(([label, href, prefix]) =>
    el('a', { href, class: path === prefix || path.startsWith(`${prefix}/`) ? 'active' : '', text: label })));
  const logout = el('button', { id: 'logout', type: 'button', text: 'Log out' });
  logout.addEventListener('click', async () => {
    logout.disabled = true;
    try { await api('POST', '/console/api/logout'); } catch { /* signed out either way */ }
    session = null;
    fieldsCache = null;
    lastSearchHash = '#/search';
    renderTopbar();
    loadSession().catch(() => {});
    location.hash = '#/login';
  });
  setChildren(who, el('span', { class: 'user', text: session.user }), el('span', { class: `role role-${session.role}`, text: session.role }), logout);
}

/* ------------------------------------------------------------------ router */

const ROUTES = [
  [/^\/login$/, pageLogin],
  [/^\/overview$/, pageOverview],
  [/^\/search$/, pageSearch],
  [/^\/alerts$/, pageAlerts],
  [/^\/alerts\/([^/?]+)$/, pageAlert],
  [/^\/hosts$/, pageHosts],
];
const current = { gen: 0, leave: null };

// Renders the page of the current hash; a newer render makes older ones stale
// (their late answers are dropped).
async function render() {
  if (current.leave) { try { current.leave(); } catch { /* ignore */ } }
  current.leave = null;
  const gen = ++current.gen;
  const { path, params } = parseHash();
  const view = $('#view');
  const match = ROUTES.map(([re, page]) => [re.exec(path), page]).find(([m]) => m);
  if (!match) { location.replace('#/overview'); return; }
  const [m, page] = match;
  if (page !== pageLogin) {
    // The very first page waits for the session (a few ms) so that nobody signed
    // out sees an empty page flash; later pages render at once.
    if (session === undefined) {
      try { await sessionReady; } catch (e) {
        if (gen !== current.gen) return;
        setChildren(view, el('section', { class: 'panel' }, errorNode(e),
          el('button', { type: 'button', text: 'Retry', onclick: () => { loadSession().catch(() => {}); render(); } })));
        return;
      }
      if (gen !== current.gen) return;
    }
    if (!session) { goLogin(); return; }
  }
  renderTopbar();
  document.title = `Picket · ${path.split('/')[1] || ''}`;
  setChildren(view);
  view.className = `page-${path.split('/')[1]}`;
  const ctx = {
    gen, params, hash: location.hash,
    alive: () => gen === current.gen,
    onLeave: (fn) => { current.leave = fn; },
  };
  try {
    await page(view, ctx, ...m.slice(1).map(decodeURIComponent));
  } catch (e) {
    if (ctx.alive()) view.append(errorNode(e));
    console.error(e);
  }
}

// Start: ask for the session, render the page, follow hash changes.
loadSession().catch(() => {});
window.addEventListener('hashchange', render);
render();
