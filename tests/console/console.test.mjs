// Browser test of the Picket web console (collector/console/), against a real
// collector started by the Rust harness (`cargo test -p picket-tests --test console`).
//
// Environment (set by the harness):
//   PICKET_URL                    https://127.0.0.1:<port> (self-signed: TLS errors ignored)
//   PICKET_ANALYST_USER/_PASSWORD an analyst of the users file
//   PICKET_READER_USER/_PASSWORD  a reader of the users file
//   PICKET_SHIPPER_TOKEN          a shipper bearer token (refused by the console and API)
//   PICKET_SILENT_HOST            a host whose last heartbeat is old (shown red, first)
//   PICKET_LIVE_HOST              a host with a recent heartbeat (not red)
//   PICKET_ATTACKER               an address with many failed logins in the last hour
//   PICKET_ALERT_RULE             the rule of an alert that exists, status NEW
//   SCREENSHOT_DIR                where the screenshots go (1280×800 PNGs)
//   CHROMIUM                      the browser (default /usr/bin/chromium)
//
// The steps share one browser and run in order; each waits on the page's own
// signals (data-state="done" and data-hash=<the route> on every panel the page
// fills), never on fixed sleeps.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, request as playwrightRequest } from 'playwright-core';

// ---- environment

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value == null || value === '') throw new Error(`the environment variable ${name} is not set`);
  return value;
}
const BASE = env('PICKET_URL').replace(/\/+$/, '');
const ANALYST = env('PICKET_ANALYST_USER');
const ANALYST_PASSWORD = env('PICKET_ANALYST_PASSWORD');
const READER = env('PICKET_READER_USER');
const READER_PASSWORD = env('PICKET_READER_PASSWORD');
const SHIPPER_TOKEN = env('PICKET_SHIPPER_TOKEN');
const SILENT_HOST = env('PICKET_SILENT_HOST');
const LIVE_HOST = env('PICKET_LIVE_HOST');
const ATTACKER = env('PICKET_ATTACKER');
// Most milliseconds a page may take to fill (bench/console.sh sets it; unset: reported only).
const BUDGET_MS = Number(process.env.CONSOLE_BUDGET_MS || 0);
const ALERT_RULE = env('PICKET_ALERT_RULE');
const SCREENSHOT_DIR = env('SCREENSHOT_DIR', path.join(os.tmpdir(), 'picket-console-screenshots'));
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const VIEWPORT = { width: 1280, height: 800 };
const SCREENSHOTS = ['login', 'overview', 'search', 'search-zoomed', 'alerts', 'alert', 'hosts'];
const WAIT = 20_000; // the longest any one panel may take to answer

// ---- shared state

let browser;
let context;
let page;
const state = {}; // what a step finds for the next ones (alert id, totals)
const consoleLog = []; // the page's console and errors, for failure reports
const pageErrors = []; // uncaught exceptions and CSP violations: none allowed

function watch(p, label) {
  p.on('console', (m) => {
    const line = `[${label} console.${m.type()}] ${m.text()}`;
    consoleLog.push(line);
    if (/Content Security Policy/i.test(m.text())) pageErrors.push(line);
  });
  p.on('pageerror', (e) => {
    const line = `[${label} uncaught] ${e.stack || e.message}`;
    consoleLog.push(line);
    pageErrors.push(line);
  });
  p.on('requestfailed', (r) => consoleLog.push(`[${label} request failed] ${r.method()} ${r.url()} ${r.failure() && r.failure().errorText}`));
}

before(async () => {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  for (const name of SCREENSHOTS) fs.rmSync(path.join(SCREENSHOT_DIR, `${name}.png`), { force: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: VIEWPORT });
  page = await context.newPage();
  watch(page, 'page');
});

after(async () => {
  if (browser) await browser.close();
});

// Runs a step; on failure prints where the page was and what it logged, and
// saves a screenshot, then fails with the original error.
async function step(name, body) {
  try {
    await body();
  } catch (error) {
    let where = '(no page)';
    try {
      where = page.url();
      const file = path.join(SCREENSHOT_DIR, `failure-${name.replace(/[^a-z0-9]+/gi, '-')}.png`);
      await page.screenshot({ path: file });
      where += `\n  screenshot: ${file}`;
      const text = (await page.locator('body').innerText({ timeout: 2000 })).slice(0, 1500);
      where += `\n  page text:\n    ${text.replace(/\n/g, '\n    ')}`;
    } catch { /* the page itself may be gone */ }
    console.error(`\n--- step "${name}" failed at ${where}\n  last console lines:\n    ${consoleLog.slice(-25).join('\n    ')}\n`);
    throw error;
  }
}

// ---- page helpers

const consoleUrl = (hash = '') => `${BASE}/console/${hash}`;

// The route's parameters (q, from, to) as the page's URL has them.
async function hashParams(p = page) {
  const hash = await p.evaluate(() => location.hash);
  const i = hash.indexOf('?');
  return { hash, params: new URLSearchParams(i < 0 ? '' : hash.slice(i + 1)) };
}

// A hash for the search page.
function searchHash(params) {
  return `#/search?${new URLSearchParams(params).toString().replace(/\+/g, '%20')}`;
}

// Goes to a route of the already loaded console.
async function goHash(hash, p = page) {
  await p.evaluate((h) => { location.hash = h; }, hash);
}

// Waits until the panel `selector` has answered for the current route; throws
// with the panel's text when it shows an error.
async function waitDone(selector, p = page, timeout = WAIT) {
  let handle;
  try {
    handle = await p.waitForFunction((sel) => {
      const node = document.querySelector(sel);
      if (!node || node.dataset.hash !== location.hash) return null;
      return node.dataset.state === 'done' || node.dataset.state === 'error' ? node.dataset.state : null;
    }, selector, { timeout, polling: 50 });
  } catch (e) {
    const info = await p.evaluate((sel) => {
      const node = document.querySelector(sel);
      return node ? { state: node.dataset.state, hash: node.dataset.hash, location: location.hash } : { missing: sel, location: location.hash };
    }, selector).catch(() => ({}));
    throw new Error(`${selector} did not finish loading: ${JSON.stringify(info)} (${e.message.split('\n')[0]})`);
  }
  if ((await handle.jsonValue()) === 'error') {
    throw new Error(`${selector} shows an error: ${await p.locator(selector).innerText()}`);
  }
}

// Waits for the URL hash's parameters to satisfy check(params, hash).
async function waitHash(check, description, p = page, timeout = 10_000) {
  const start = Date.now();
  for (;;) {
    const { hash, params } = await hashParams(p);
    if (check(params, hash)) return { hash, params };
    if (Date.now() - start > timeout) throw new Error(`the URL never came to ${description}; it is ${hash}`);
    await p.waitForTimeout(50); // short polling
  }
}

// The total of the search page (its data-total).
async function searchTotal() {
  const text = await page.getAttribute('#search-total', 'data-total');
  const total = Number(text);
  assert.ok(Number.isInteger(total) && total >= 0, `#search-total has data-total=${text}`);
  return total;
}

// Every result row: eventid and the text of each column.
function resultRows(selector = '#search-results') {
  return page.$$eval(`${selector} tr.event-row`, (rows) => rows.map((r) => ({
    eventid: r.dataset.eventid,
    host: r.querySelector('.col-host').textContent,
    source: r.querySelector('.col-source').textContent,
    text: r.textContent,
  })));
}

// Saves a screenshot of the page, after checking that none of the console's own
// text shows a stray null / undefined / NaN (event data is left out of the check).
async function screenshot(name, p = page) {
  const stray = await p.evaluate(() => {
    const clone = document.body.cloneNode(true);
    clone.querySelectorAll('pre, input, table.events, dl.fields').forEach((n) => n.remove());
    const m = clone.textContent.match(/\b(undefined|null|NaN)\b|\[object Object\]/);
    return m ? m[0] : null;
  });
  assert.equal(stray, null, `the ${name} page shows a stray "${stray}"`);
  await p.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`) });
}

// Signs in on the login page (already shown) and waits for the overview.
async function logIn(user, password, p = page) {
  await p.waitForSelector('#login-user', { timeout: WAIT });
  await p.fill('#login-user', user);
  await p.fill('#login-password', password);
  await p.click('#login-submit');
  await waitHash((_, hash) => hash.startsWith('#/overview'), '#/overview after logging in', p, WAIT);
}

// A fresh API client (no cookies), with extra headers.
function apiClient(extraHTTPHeaders = {}) {
  return playwrightRequest.newContext({ baseURL: BASE, ignoreHTTPSErrors: true, extraHTTPHeaders });
}

// ---- the steps

test('1. anonymous visitors get the login page; shipper tokens are refused', { timeout: 60_000 }, () => step('anonymous', async () => {
  const anonymous = await apiClient();
  try {
    const pageAnswer = await anonymous.get('/console/');
    assert.equal(pageAnswer.status(), 200, 'GET /console/ without credentials');
    assert.match(await pageAnswer.text(), /app\.js/, '/console/ is the console page');
    assert.equal((await anonymous.get('/api/search')).status(), 401, 'GET /api/search without credentials');
    assert.equal((await anonymous.post('/api/search', { data: { query: '*' } })).status(), 401, 'POST /api/search without credentials');
    assert.equal((await anonymous.get('/console/api/session')).status(), 401, 'GET /console/api/session without a session');
  } finally {
    await anonymous.dispose();
  }

  const shipper = await apiClient({ Authorization: `Bearer ${SHIPPER_TOKEN}` });
  try {
    for (const route of ['/console/', '/api/alerts', '/api/hosts', '/api/fields']) {
      assert.equal((await shipper.get(route)).status(), 403, `GET ${route} with a shipper token`);
    }
    assert.equal((await shipper.post('/api/search', { data: { query: '*' } })).status(), 403, 'POST /api/search with a shipper token');
  } finally {
    await shipper.dispose();
  }

  // In the browser: the login form, and no data asked for or shown.
  const answered = [];
  const onResponse = (r) => { if (new URL(r.url()).pathname.startsWith('/api/')) answered.push(`${r.status()} ${r.url()}`); };
  page.on('response', onResponse);
  await page.goto(consoleUrl());
  await page.waitForSelector('#login-user', { state: 'visible', timeout: WAIT });
  await page.waitForLoadState('networkidle');
  page.off('response', onResponse);
  assert.ok((await hashParams()).hash.startsWith('#/login'), 'the URL is the login page');
  assert.equal(await page.locator('.event-row, .alert-row, .host-row, #overview, #logout').count(), 0, 'nothing but the login form is shown');
  assert.deepEqual(answered.filter((a) => !a.startsWith('401 ')), [], 'no data answered to an anonymous page');
  await screenshot('login');
}));

test('2. the analyst logs in (a wrong password is refused) and lands on the overview', { timeout: 90_000 }, () => step('login', async () => {
  await page.fill('#login-user', ANALYST);
  await page.fill('#login-password', `${ANALYST_PASSWORD}-wrong`);
  await page.click('#login-submit');
  await page.waitForSelector('#login-error:not([hidden])', { timeout: WAIT });
  const error = (await page.innerText('#login-error')).trim();
  assert.ok(error.length > 0, 'the login error says why');
  assert.ok((await hashParams()).hash.startsWith('#/login'), 'still on the login page after a wrong password');
  assert.equal((await context.cookies(BASE)).length, 0, 'no cookie after a wrong password');

  await page.fill('#login-password', ANALYST_PASSWORD);
  await page.click('#login-submit');
  await waitHash((_, hash) => hash.startsWith('#/overview'), '#/overview after logging in', page, WAIT);
  await page.waitForSelector('#overview-logins', { state: 'visible', timeout: 1000 });

  const cookies = await context.cookies(BASE);
  assert.ok(cookies.length > 0, 'logging in set a cookie');
  for (const cookie of cookies) {
    assert.equal(cookie.httpOnly, true, `cookie ${cookie.name} is HttpOnly`);
    assert.equal(cookie.secure, true, `cookie ${cookie.name} is Secure`);
    assert.equal(cookie.sameSite, 'Strict', `cookie ${cookie.name} is SameSite=Strict`);
  }
  assert.equal(await page.evaluate(() => document.cookie), '', 'the script cannot read the session cookie');

  assert.equal((await page.innerText('#whoami .user')).trim(), ANALYST, 'the top bar names the user');
  assert.equal((await page.innerText('#whoami .role')).trim(), 'analyst', 'the top bar names the role');
  for (const panel of ['#overview-logins', '#overview-attackers', '#overview-users', '#overview-rules']) {
    await waitDone(`${panel} .panel-body`);
  }
  assert.ok(await page.locator('#overview-chart polyline.failed').count() === 1, 'the logins chart has a failed series');
  assert.ok(await page.locator('#overview-chart polyline.success').count() === 1, 'the logins chart has a successful series');
  const attackers = await page.$$eval('#overview-attackers .top-item', (items) => items.map((i) => i.dataset.value));
  assert.ok(attackers.includes(ATTACKER), `${ATTACKER} is among the top attacking addresses: ${attackers.join(', ')}`);
  const rules = await page.$$eval('#overview-rules .top-item', (items) => items.map((i) => i.dataset.value));
  assert.ok(rules.includes(ALERT_RULE), `${ALERT_RULE} is among the alerts by rule: ${rules.join(', ')}`);
  await screenshot('overview');

  // A top address leads to a search for it.
  const href = await page.getAttribute(`#overview-attackers .top-item[data-value="${ATTACKER}"] a`, 'href');
  const params = new URLSearchParams(href.slice(href.indexOf('?') + 1));
  assert.equal(params.get('q'), `details.sourceipaddress:"${ATTACKER}"`, 'the address links to a search for it');
}));

test('3. a search finds the attacker, draws its histogram, expands rows, survives a reload', { timeout: 90_000 }, () => step('search', async () => {
  await goHash('#/search?from=now-1h');
  await page.waitForSelector('#search-query', { state: 'visible', timeout: 1000 });
  assert.equal(await page.inputValue('#search-range'), '1h', 'the range picker shows the last hour');
  await page.fill('#search-query', ATTACKER);
  await page.click('#search-submit');
  await waitHash((p) => p.get('q') === ATTACKER && p.get('from') === 'now-1h', `q=${ATTACKER}&from=now-1h`);
  await waitDone('#search-results');

  const total = await searchTotal();
  assert.ok(total > 0, `the search for ${ATTACKER} over the last hour found events`);
  const rows = await resultRows();
  assert.ok(rows.length > 0, 'the table has rows');
  assert.ok(rows.length <= total, 'no more rows than the total');
  assert.ok(rows.some((r) => r.source === ATTACKER), `a row's source address is ${ATTACKER}`);
  for (const row of rows) assert.ok(row.text.includes(ATTACKER), `row ${row.eventid} mentions ${ATTACKER}: ${row.text}`);
  const bars = await page.locator('#search-histogram rect.bar').count();
  assert.ok(bars > 0, 'the histogram has bars');
  const barSum = await page.$$eval('#search-histogram rect.bar', (rs) => rs.reduce((s, r) => s + Number(r.dataset.count), 0));
  assert.equal(barSum, total, 'the histogram\'s bars add up to the total');

  // A row opens to its event's JSON.
  await page.locator('#search-results tr.event-row').first().click();
  const json = page.locator('#search-results tr.event-detail pre.event-json').first();
  await json.waitFor({ state: 'visible', timeout: 1000 });
  const event = JSON.parse(await json.innerText());
  assert.ok(JSON.stringify(event).includes(ATTACKER), 'the expanded JSON holds the address');
  assert.equal(event.eventid, rows[0].eventid, 'the JSON is the clicked row\'s event');
  state.searchHash = (await hashParams()).hash;
  state.searchTotal = total;
  await screenshot('search');

  // The URL is the search: a reload brings it back.
  await page.reload();
  await waitDone('#search-results');
  assert.equal(await page.inputValue('#search-query'), ATTACKER, 'the query box after a reload');
  assert.equal(await page.inputValue('#search-range'), '1h', 'the range after a reload');
  const again = await searchTotal();
  assert.ok(again > 0, 'the reloaded search finds events');
  if (again !== total) console.log(`note: the total went from ${total} to ${again} across the reload (events still arriving or leaving the last hour)`);
  const reloaded = await resultRows();
  assert.ok(reloaded.length > 0 && reloaded.every((r) => r.text.includes(ATTACKER)), 'the reloaded rows are the attacker\'s');
  state.searchTotal = again;
}));

test('4. dragging across the histogram zooms into that span', { timeout: 60_000 }, () => step('zoom', async () => {
  assert.ok(state.searchHash, 'step 3 found the attacker');
  const before = state.searchTotal;
  const svgBox = await page.locator('#search-histogram').boundingBox();
  assert.ok(svgBox && svgBox.width > 100, 'the histogram is drawn');
  const bars = await page.$$eval('#search-histogram rect.bar', (rs) => rs.map((r) => {
    const b = r.getBoundingClientRect();
    return { left: b.left, right: b.right, count: Number(r.dataset.count) };
  }));
  // The middle half of the span the bars cover (all of it when narrow).
  const first = Math.min(...bars.map((b) => b.left));
  const last = Math.max(...bars.map((b) => b.right));
  let x0 = first - 2;
  let x1 = last + 2;
  if (last - first >= 100) { x0 = first + (last - first) / 4; x1 = last - (last - first) / 4; }
  if (x1 - x0 < 30) { const mid = (x0 + x1) / 2; x0 = mid - 15; x1 = mid + 15; }
  x0 = Math.max(svgBox.x + 1, x0);
  x1 = Math.min(svgBox.x + svgBox.width - 1, x1);
  // Events of bars wholly inside the selection must all be found again.
  const atLeast = bars.filter((b) => b.left >= x0 && b.right + 2 <= x1).reduce((s, b) => s + b.count, 0);
  const y = svgBox.y + svgBox.height / 2;

  await page.mouse.move(x0, y);
  await page.mouse.down();
  await page.mouse.move((x0 + x1) / 2, y, { steps: 4 });
  await page.mouse.move(x1, y, { steps: 4 });
  await page.mouse.up();

  const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
  const { params } = await waitHash((p) => iso.test(p.get('from') || '') && iso.test(p.get('to') || ''), 'absolute from and to');
  assert.equal(params.get('q'), ATTACKER, 'the zoomed search keeps the query');
  const span = Date.parse(params.get('to')) - Date.parse(params.get('from'));
  assert.ok(span > 0 && span < 3600e3, `the zoomed range (${params.get('from')} to ${params.get('to')}) is inside the hour`);
  await waitDone('#search-results');
  const after = await searchTotal();
  assert.ok(after <= before, `the zoomed total ${after} is at most the hour's ${before}`);
  assert.ok(after >= atLeast, `the zoomed total ${after} holds the ${atLeast} events of the bars wholly selected`);
  assert.equal(await page.inputValue('#search-range'), 'absolute', 'the range picker shows an absolute range');
  await page.waitForSelector('#range-from', { state: 'visible', timeout: 1000 });
  if (after > 0) assert.ok(await page.locator('#search-histogram rect.bar').count() > 0, 'the zoomed histogram has bars');
  await screenshot('search-zoomed');
}));

test('5. facets filter in and out', { timeout: 90_000 }, () => step('facets', async () => {
  const base = searchHash({ q: ATTACKER, from: 'now-1h' });
  await goHash(base);
  await waitDone('#search-results');
  await waitDone('#facets');
  const baseTotal = await searchTotal();
  const value = page.locator('#facets .facet-value[data-field="hostname"]').first();
  await value.waitFor({ state: 'visible', timeout: 1000 });
  const host = await value.getAttribute('data-value');
  const count = Number((await value.locator('.facet-count').innerText()).replace(/\D/g, ''));
  assert.ok(host && count > 0, `the hostname facet has a value with a count (${host}: ${count})`);

  // "+": only that host.
  await value.locator('.facet-in').click();
  await waitHash((p) => (p.get('q') || '').includes(`hostname:"${host}"`) && !(p.get('q') || '').includes('NOT'), `q with hostname:"${host}"`);
  await waitDone('#search-results');
  const inTotal = await searchTotal();
  assert.ok(inTotal > 0 && inTotal <= baseTotal, `filtering in ${host} finds ${inTotal} of ${baseTotal}`);
  const inRows = await resultRows();
  assert.ok(inRows.length > 0, 'rows after filtering in');
  for (const row of inRows) assert.equal(row.host, host, `every row's host is ${host}`);

  // "−": everything but that host.
  await goHash(base);
  await waitDone('#facets');
  const again = page.locator(`#facets .facet-value[data-field="hostname"][data-value="${host}"]`);
  await again.locator('.facet-out').click();
  await waitHash((p) => (p.get('q') || '').includes(`NOT hostname:"${host}"`), `q with NOT hostname:"${host}"`);
  await waitDone('#search-results');
  const outTotal = await searchTotal();
  assert.ok(outTotal < baseTotal, `filtering out ${host} leaves fewer events (${outTotal} of ${baseTotal})`);
  for (const row of await resultRows()) assert.notEqual(row.host, host, `no row's host is ${host}`);
  await waitDone('#facets');
  const hostsLeft = await page.$$eval('#facets .facet-value[data-field="hostname"]', (vs) => vs.map((v) => v.dataset.value));
  assert.ok(!hostsLeft.includes(host), `${host} is gone from the hostname facet: ${hostsLeft.join(', ')}`);
}));

test('6. the query box suggests field names', { timeout: 30_000 }, () => step('suggest', async () => {
  await page.fill('#search-query', '');
  await page.click('#search-query');
  await page.keyboard.type('details.us');
  const item = page.locator('#search-suggest li[data-field="details.username"]');
  await item.waitFor({ state: 'visible', timeout: 5000 });
  const shown = await page.$$eval('#search-suggest li', (lis) => lis.map((l) => l.dataset.field));
  assert.ok(shown.every((f) => f.toLowerCase().includes('details.us')), `only matching fields are offered: ${shown.join(', ')}`);
  await item.click();
  assert.equal(await page.inputValue('#search-query'), 'details.username:', 'a click completes the field name');
  assert.ok(await page.locator('#search-suggest').isHidden(), 'the list closes after completing');
}));

test('7. the analyst acknowledges an alert', { timeout: 90_000 }, () => step('alerts', async () => {
  await goHash('#/alerts');
  await page.waitForSelector('#alerts-table', { state: 'visible', timeout: 1000 });
  await waitDone('#alerts-table');
  const rows = await page.$$eval('#alerts-table tr.alert-row', (rs) => rs.map((r) => ({
    id: r.dataset.id,
    rule: r.querySelector('.col-rule').textContent,
    status: r.dataset.status,
    badge: r.querySelector('.badge').textContent,
  })));
  const alert = rows.find((r) => r.rule === ALERT_RULE && r.status === 'NEW' && r.badge === 'NEW');
  assert.ok(alert, `a NEW alert of ${ALERT_RULE} is listed: ${JSON.stringify(rows.slice(0, 20))}`);
  assert.match(alert.id, /^[0-9a-f]{32}$/, 'the alert id is 32 hex digits');
  state.alertId = alert.id;
  await screenshot('alerts');

  // The status filter.
  await page.selectOption('#alerts-status', 'NEW');
  await waitHash((p) => p.get('status') === 'NEW', 'status=NEW');
  await waitDone('#alerts-table');
  const statuses = await page.$$eval('#alerts-table tr.alert-row', (rs) => rs.map((r) => r.dataset.status));
  assert.ok(statuses.length > 0 && statuses.every((s) => s === 'NEW'), `only NEW alerts: ${statuses.join(', ')}`);

  await page.click(`#alerts-table tr.alert-row[data-id="${alert.id}"] td.col-rule`);
  await waitHash((_, hash) => hash === `#/alerts/${alert.id}`, `#/alerts/${alert.id}`);
  await waitDone('#alert');
  assert.equal(await page.getAttribute('#alert-status', 'data-status'), 'NEW');
  const events = await page.locator('#alert-events tr.event-row').count();
  assert.ok(events > 0, 'the alert shows its sample events');

  await page.click('#alert-ack');
  await page.waitForSelector('#alert-status[data-status="ACKNOWLEDGED"]', { timeout: WAIT });
  assert.equal((await page.innerText('#alert-status .badge')).trim(), 'ACKNOWLEDGED');
  assert.equal((await page.innerText('#alert-status-by')).trim(), ANALYST, 'acknowledged by the analyst');
  assert.ok(await page.locator('#alert-history li').count() >= 1, 'the history has the change');

  await page.reload();
  await waitDone('#alert');
  assert.equal(await page.getAttribute('#alert-status', 'data-status'), 'ACKNOWLEDGED', 'still ACKNOWLEDGED after a reload');
  assert.equal((await page.innerText('#alert-status-by')).trim(), ANALYST);
  await screenshot('alert');

  const answer = await page.request.get(`${BASE}/api/alerts/${alert.id}`);
  assert.equal(answer.status(), 200, 'GET /api/alerts/<id> with the session cookie');
  const stored = await answer.json();
  assert.equal(stored.status, 'ACKNOWLEDGED', 'the stored status');
  assert.equal(stored.statusby, ANALYST, 'the stored statusby');

  // "all events of this alert" finds them.
  const href = await page.getAttribute('#alert-events-link', 'href');
  const linkParams = new URLSearchParams(href.slice(href.indexOf('?') + 1));
  // The rule's query over its window, narrowed to the address it alerted on: every
  // event it counted, not only the samples.
  assert.ok(linkParams.get('q').includes(`details.sourceipaddress:"${ATTACKER}"`), `the events link's query: ${linkParams.get('q')}`);
  await page.click('#alert-events-link');
  await waitHash((_, hash) => hash.startsWith('#/search?'), 'the search of the alert\'s events');
  await waitDone('#search-results');
  assert.equal(await searchTotal(), stored.details.count, 'the search finds every event the alert counted');
}));

test('8. a state change without the CSRF token is refused', { timeout: 30_000 }, () => step('csrf', async () => {
  assert.ok(state.alertId, 'step 7 found an alert');
  const refused = await page.request.post(`${BASE}/api/alerts/${state.alertId}/status`, { data: { status: 'CLOSED' } });
  assert.equal(refused.status(), 403, `POST status with the cookie but no X-CSRF-Token: ${await refused.text()}`);
  const wrong = await page.request.post(`${BASE}/api/alerts/${state.alertId}/status`, {
    data: { status: 'CLOSED' }, headers: { 'X-CSRF-Token': 'not-the-token' },
  });
  assert.equal(wrong.status(), 403, 'POST status with a wrong X-CSRF-Token');
  const stored = await (await page.request.get(`${BASE}/api/alerts/${state.alertId}`)).json();
  assert.equal(stored.status, 'ACKNOWLEDGED', 'the refused changes changed nothing');
}));

test('9. silent hosts come first, in red', { timeout: 60_000 }, () => step('hosts', async () => {
  await goHash('#/hosts');
  await page.waitForSelector('#hosts-table', { state: 'visible', timeout: 1000 });
  await waitDone('#hosts-table');
  const rows = await page.$$eval('#hosts-table tr.host-row', (rs) => rs.map((r) => ({
    host: r.dataset.host,
    silent: r.classList.contains('silent'),
    color: getComputedStyle(r.cells[0]).color,
  })));
  const silent = rows.findIndex((r) => r.host === SILENT_HOST);
  const live = rows.findIndex((r) => r.host === LIVE_HOST);
  const listing = JSON.stringify(rows.map((r) => `${r.host}${r.silent ? ' (silent)' : ''}`));
  assert.ok(silent >= 0, `${SILENT_HOST} is listed: ${listing}`);
  assert.ok(live >= 0, `${LIVE_HOST} is listed: ${listing}`);
  assert.ok(rows[silent].silent, `${SILENT_HOST}'s row has class silent`);
  assert.ok(!rows[live].silent, `${LIVE_HOST}'s row is not silent`);
  assert.ok(silent < live, `${SILENT_HOST} comes before ${LIVE_HOST}: ${listing}`);
  const [r, g, b] = rows[silent].color.match(/\d+/g).map(Number);
  assert.ok(r > 100 && g < 90 && b < 90, `${SILENT_HOST} is shown in red (${rows[silent].color})`);
  const [lr, lg, lb] = rows[live].color.match(/\d+/g).map(Number);
  assert.ok(!(lr > 100 && lg < 90 && lb < 90), `${LIVE_HOST} is not red (${rows[live].color})`);
  assert.ok(await page.locator('#hosts-table tr.host-row svg.sparkline').count() > 0, 'events/min sparklines');
  await screenshot('hosts');
}));

test('10. a reader sees no triage buttons and may not change a status', { timeout: 90_000 }, () => step('reader', async () => {
  assert.ok(state.alertId, 'step 7 found an alert');
  await page.click('#logout');
  await waitHash((_, hash) => hash.startsWith('#/login'), '#/login after logging out');
  assert.equal((await page.request.get(`${BASE}/console/api/session`)).status(), 401, 'the session ended with the logout');
  await logIn(READER, READER_PASSWORD);
  assert.equal((await page.innerText('#whoami .role')).trim(), 'reader');

  await goHash(`#/alerts/${state.alertId}`);
  await waitDone('#alert');
  assert.equal(await page.getAttribute('#alert-status', 'data-status'), 'ACKNOWLEDGED');
  for (const button of ['#alert-ack', '#alert-close', '#alert-reopen']) {
    assert.equal(await page.locator(button).count(), 0, `no ${button} for a reader`);
  }
  const session = await (await page.request.get(`${BASE}/console/api/session`)).json();
  assert.equal(session.role, 'reader');
  assert.equal(session.user, READER);
  const refused = await page.request.post(`${BASE}/api/alerts/${state.alertId}/status`, {
    data: { status: 'CLOSED' }, headers: { 'X-CSRF-Token': session.csrf },
  });
  assert.equal(refused.status(), 403, `a reader's status change with its CSRF token: ${await refused.text()}`);
  const stored = await (await page.request.get(`${BASE}/api/alerts/${state.alertId}`)).json();
  assert.equal(stored.status, 'ACKNOWLEDGED', 'the reader changed nothing');
}));

test('11. every page has its screenshot', { timeout: 10_000 }, () => step('screenshots', async () => {
  for (const name of SCREENSHOTS) {
    const file = path.join(SCREENSHOT_DIR, `${name}.png`);
    assert.ok(fs.existsSync(file), `${file} exists`);
    const png = fs.readFileSync(file);
    assert.equal(png.toString('latin1', 1, 4), 'PNG', `${file} is a PNG`);
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [VIEWPORT.width, VIEWPORT.height], `${file} is 1280×800`);
  }
}));

test('12. page budget: first load ≤ 300 KB; each page\'s time to shown and filled (≤ CONSOLE_BUDGET_MS when set)', { timeout: 120_000 }, () => step('budget', async () => {
  const fresh = await browser.newContext({ ignoreHTTPSErrors: true, viewport: VIEWPORT });
  const p = await fresh.newPage();
  watch(p, 'budget');
  try {
    const sizes = [];
    const pending = [];
    p.on('requestfinished', (r) => pending.push(r.sizes().then((s) => sizes.push([s.responseBodySize, r.url()]))));
    await p.goto(consoleUrl());
    await logIn(ANALYST, ANALYST_PASSWORD, p);
    for (const panel of ['#overview-logins', '#overview-attackers', '#overview-users', '#overview-rules']) {
      await waitDone(`${panel} .panel-body`, p);
    }
    await p.waitForLoadState('networkidle');
    await Promise.all(pending);
    const total = sizes.reduce((s, [n]) => s + n, 0);
    const listing = sizes.map(([n, u]) => `${String(n).padStart(8)} ${u}`).join('\n');
    assert.ok(total <= 300 * 1024, `the first load moved ${total} bytes:\n${listing}`);
    console.log(`first load: ${total} bytes in ${sizes.length} requests`);

    // Each page, loaded afresh and reached from another page: the time to its main
    // element, and to every panel filled with data (the store's answers drawn), on the
    // harness's background events (100,000 by default). The budget is 1 s for both.
    const pages = [
      ['#/overview', '#overview-logins', ['#overview-logins .panel-body', '#overview-attackers .panel-body', '#overview-users .panel-body', '#overview-rules .panel-body']],
      [searchHash({ q: ATTACKER, from: 'now-1h' }), '#search-results', ['#search-results', '#facets']],
      [searchHash({ q: '*', from: 'now-24h' }), '#search-results', ['#search-results', '#facets']],
      ['#/alerts', '#alerts-table', ['#alerts-table']],
      [`#/alerts/${state.alertId}`, '#alert', ['#alert']],
      ['#/hosts', '#hosts-table', ['#hosts-table']],
    ];
    const timings = [];
    const timed = async (label, go, selector, panels) => {
      const started = Date.now();
      await go();
      await p.waitForSelector(selector, { state: 'visible', timeout: 1000 });
      const shown = Date.now() - started;
      for (const panel of panels) await waitDone(panel, p, 5_000);
      const filled = Date.now() - started;
      timings.push(`${label}: shown ${shown} ms, filled ${filled} ms`);
      // Times are a benchmark's to judge (bench/console.sh sets the budget), not a
      // test's: a loaded CI machine must not fail a correct console.
      if (BUDGET_MS) assert.ok(filled <= BUDGET_MS, `${label} took ${filled} ms to fill (budget ${BUDGET_MS} ms)`);
    };
    for (const [hash, selector, panels] of pages) {
      await p.goto('about:blank');
      await timed(`load ${hash}`, () => p.goto(consoleUrl(hash)), selector, panels);
      const other = hash === '#/hosts' ? ['#/alerts', '#alerts-table', ['#alerts-table']] : ['#/hosts', '#hosts-table', ['#hosts-table']];
      await timed(`to ${other[0]}`, () => goHash(other[0], p), other[1], other[2]);
      await timed(`to ${hash}`, () => goHash(hash, p), selector, panels);
    }
    console.log(`page timings (${process.env.PICKET_STORED_EVENTS || '?'} background events stored):\n  ${timings.join('\n  ')}`);
  } finally {
    await fresh.close();
  }
}));

test('13. no uncaught exception or CSP violation in any page', () => {
  assert.deepEqual(pageErrors, [], 'the pages ran cleanly');
});
