// End-to-end browser test of Duet: two people in two real browsers against real duet servers.
//
//   node tests/e2e/chat.e2e.mjs                  embedded: one duet node (SQLite, in-process bus)
//   E2E_MODE=cluster node tests/e2e/chat.e2e.mjs two duet nodes on a fresh Postgres database and
//                                                Redis; A's browser talks to node 1, B's to node 2
//
// Environment: DUET_BIN (default <repo>/target/debug/duet), CHROMIUM_BIN (default /usr/bin/chromium),
// E2E_PG_HOST / E2E_PG_PORT / E2E_PG_USER (cluster; default 127.0.0.1 / 5432 / postgres),
// E2E_REDIS_URL (cluster; default redis://127.0.0.1:6379), E2E_KEEP=1 keeps the temp dir.
// Screenshots go to tests/e2e/screenshots/<mode>/. Exit code 0 only when every step passed.

import { chromium } from 'playwright-core';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const MODE = process.env.E2E_MODE || 'embedded';
const DUET_BIN = path.resolve(process.env.DUET_BIN || path.join(REPO, 'target', 'debug', 'duet'));
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ASSETS = path.join(REPO, 'assets');
const SHOTS = path.join(HERE, 'screenshots', MODE);
const RUN = crypto.randomBytes(4).toString('hex');
const PASSWORD = 'e2e-password-123';
const NEW_PASSWORD = 'e2e-new-password-456'; // A's after the password change (the last steps)
const GLOBAL_TIMEOUT_MS = 150_000;
const WAIT_MS = 10_000;

// Every node gets these: plain logs, a one-line error instead of a backtrace, a quick drain.
const QUIET = { NO_COLOR: '1', RUST_BACKTRACE: '0', RUST_LIB_BACKTRACE: '0', DUET_DRAIN_SECS: '2', DUET_DRAIN_DELAY_SECS: '0' };
// The test's own push service listens on this machine, over http (see the Web Push step).
const PUSH_ENV = { DUET_PUSH_ALLOW_HTTP: 'true', DUET_PUSH_COLLAPSE_MS: '0' };

const QUESTION_KO = '우리가 함께 꼭 가보고 싶은 곳은 어디야?';
const QUESTION_EN = 'Where is the one place we must travel to together?';

const SKY_BLUE = 'rgb(135, 206, 235)'; // --mine, #87ceeb
const PINK = 'rgb(255, 214, 226)'; // --theirs, #ffd6e2

// "external": a running deployment (e.g. tests/cluster/start.sh, nginx in front of three
// nodes) at E2E_BASE_URL; both people go through it and the balancer spreads their sockets.
if (MODE !== 'embedded' && MODE !== 'cluster' && MODE !== 'external') {
  console.error(`E2E_MODE must be "embedded", "cluster" or "external", not "${MODE}"`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping: child processes, temp dir, database; cleaned up on every way out.

const started = Date.now();
const since = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const log = (...args) => console.log(...args);
const children = new Set(); // { proc, name, logFile }
const pages = new Map(); // label -> page, for failure screenshots
const pageErrors = [];
const warnings = []; // things worth a look that do not fail the run
const consoleErrors = [];
let tmpDir = null;
let pgDb = null;
let redisPrefix = null;
let browser = null;
let currentStep = '(setup)';
let cleanedUp = false;

function pgArgs() {
  return ['-h', process.env.E2E_PG_HOST || '127.0.0.1', '-p', process.env.E2E_PG_PORT || '5432',
    '-U', process.env.E2E_PG_USER || 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAt', '-d', 'postgres'];
}

/** Synchronous part of the cleanup: safe from signal handlers, the watchdog and 'exit'. */
function cleanupSync() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const c of children) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) {
      try { c.proc.kill('SIGKILL'); } catch { /* gone */ }
    }
  }
  if (pgDb) {
    const r = spawnSync('psql', [...pgArgs(), '-c', `DROP DATABASE IF EXISTS ${pgDb} WITH (FORCE)`], { encoding: 'utf8', timeout: 15000 });
    if (r.status !== 0) console.error(`could not drop database ${pgDb}: ${(r.stderr || r.error || '').toString().trim()}`);
    pgDb = null;
  }
  if (redisPrefix) {
    const url = process.env.E2E_REDIS_URL || 'redis://127.0.0.1:6379';
    const keys = spawnSync('redis-cli', ['-u', url, '--scan', '--pattern', `${redisPrefix}*`], { encoding: 'utf8', timeout: 5000 });
    const list = (keys.stdout || '').split('\n').filter(Boolean);
    if (list.length) spawnSync('redis-cli', ['-u', url, 'DEL', ...list], { timeout: 5000 });
    redisPrefix = null;
  }
  if (tmpDir && !process.env.E2E_KEEP) {
    try { fs.rmSync(tmpDir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
}

/** Stops the servers gracefully (SIGTERM, they drain and exit 0), then the sync cleanup. */
async function cleanup() {
  if (browser) {
    await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
    browser = null;
  }
  await Promise.all([...children].map(async (c) => {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
    c.proc.kill('SIGTERM');
    const ended = await Promise.race([once(c.proc, 'exit').then(() => true), sleep(5000).then(() => false)]);
    if (!ended) {
      log(`  warning: ${c.name} did not exit within 5 s of SIGTERM (it should drain and exit 0): killing it`);
      c.proc.kill('SIGKILL');
    } else if (c.proc.exitCode !== 0) {
      log(`  warning: ${c.name} exited with ${c.proc.exitCode ?? c.proc.signalCode} on SIGTERM (it should drain and exit 0)`);
    }
  }));
  cleanupSync();
}

process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping (step "${currentStep}")`);
    cleanupSync();
    process.exit(130);
  });
}
const watchdog = setTimeout(() => {
  console.error(`\n✘ FAILED: the whole run took longer than ${GLOBAL_TIMEOUT_MS / 1000} s (stuck in step "${currentStep}")`);
  printServerLogs();
  cleanupSync();
  process.exit(1);
}, GLOBAL_TIMEOUT_MS);
watchdog.unref();

// ---------------------------------------------------------------------------------------------
// Small helpers

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function once(emitter, event) {
  return new Promise((r) => emitter.once(event, r));
}

function fail(message) {
  throw new Error(message);
}

function check(condition, message) {
  if (!condition) fail(message);
}

function stripAnsi(s) {
  return s.replace(/\x1b\[[0-9;]*m/g, '');
}

function tail(file, lines = 30) {
  try {
    return stripAnsi(fs.readFileSync(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}

function printServerLogs() {
  for (const c of children) {
    if (c.reported) continue;
    log(`\n----- last lines of ${c.name} (${c.logFile}) -----\n${tail(c.logFile, 25)}`);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A valid PNG of one solid colour, built by hand (signature, IHDR, IDAT, IEND). */
function solidPng(width, height, [r, g, b]) {
  const crcTable = new Int32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
  });
  const crc32 = (buf) => {
    let c = -1;
    for (const byte of buf) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ -1) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  const row = Buffer.alloc(1 + width * 3); // filter byte 0, then pixels
  for (let x = 0; x < width; x++) row.set([r, g, b], 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ---------------------------------------------------------------------------------------------
// Servers

/** This process's environment minus every duet setting (a CI job may export DATABASE_URL for
 * cargo test): the nodes get exactly the configuration this test gives them. */
function inheritedEnv() {
  return Object.fromEntries(Object.entries(process.env)
    .filter(([k]) => !k.startsWith('DUET_') && k !== 'DATABASE_URL' && k !== 'REDIS_URL'));
}

async function startNode(name, env, fixedPort = null) {
  for (let attempt = 1; ; attempt++) {
    const port = fixedPort || (await freePort());
    const base = `http://127.0.0.1:${port}`;
    const logFile = path.join(tmpDir, `${name.replace(/\s+/g, '-')}.log`);
    const out = fs.openSync(logFile, 'w');
    const fullEnv = { ...inheritedEnv(), ...QUIET, ...PUSH_ENV, ...env(port), DUET_BIND: `127.0.0.1:${port}` };
    const proc = spawn(DUET_BIN, [], { env: fullEnv, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const child = { proc, name, logFile, base, port };
    children.add(child);
    proc.on('error', (e) => { child.spawnError = e; });
    try {
      await waitHealthy(child);
      log(`  ${name} is up at ${base} (log: ${logFile})`);
      return child;
    } catch (err) {
      const text = tail(logFile, 40);
      if (!fixedPort && attempt < 3 && /in use|AddrInUse/i.test(text)) {
        children.delete(child);
        log(`  port ${port} was taken, retrying with another one`);
        continue;
      }
      throw err;
    }
  }
}

async function waitHealthy(child, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.spawnError) fail(`could not start ${child.name} (${DUET_BIN}): ${child.spawnError.message}`);
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      child.reported = true; // its output is in the message below
      fail(`${child.name} exited (code ${child.proc.exitCode ?? child.proc.signalCode}) before answering GET /healthz.\n`
        + `Its last output:\n${tail(child.logFile, 12)}`);
    }
    try {
      const res = await fetch(`${child.base}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) fail(`${child.name} did not answer GET /healthz with 200 within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

async function startServers() {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), `duet-e2e-${MODE}-`));
  if (MODE === 'external') {
    const base = (process.env.E2E_BASE_URL || 'http://127.0.0.1:8090').replace(/\/$/, '');
    const res = await fetch(`${base}/readyz`).catch((e) => fail(`nothing answers at ${base}: ${e.message}`));
    if (!res.ok) fail(`${base}/readyz answered ${res.status}`);
    log(`  using the deployment at ${base}`);
    const node = { base, name: base };
    return [node, node];
  }
  if (!fs.existsSync(DUET_BIN)) fail(`duet binary not found at ${DUET_BIN}: run cargo build first (or set DUET_BIN)`);
  if (MODE === 'embedded') {
    const node = await startNode('duet', () => ({
      DUET_DATA_DIR: path.join(tmpDir, 'data'),
      DUET_ASSETS_DIR: ASSETS,
    }));
    return [node, node];
  }
  // Cluster: a fresh Postgres database, Redis with a private prefix, two nodes sharing files.
  const db = `duet_e2e_${RUN}`;
  const created = spawnSync('psql', [...pgArgs(), '-c', `CREATE DATABASE ${db}`], { encoding: 'utf8', timeout: 15000 });
  if (created.error) fail(`cluster mode needs psql and Postgres on ${process.env.E2E_PG_HOST || '127.0.0.1'}: ${created.error.message}`);
  if (created.status !== 0) fail(`could not create database ${db}: ${created.stderr.trim()}`);
  pgDb = db;
  redisPrefix = `duet-e2e-${RUN}:`;
  const pgUrl = `postgres://${process.env.E2E_PG_USER || 'postgres'}@${process.env.E2E_PG_HOST || '127.0.0.1'}:${process.env.E2E_PG_PORT || '5432'}/${db}`;
  const redisUrl = process.env.E2E_REDIS_URL || 'redis://127.0.0.1:6379';
  log(`  database ${db}, Redis prefix ${redisPrefix}`);
  // Both ports are needed up front: each node's DUET_ORIGINS lists both nodes.
  const ports = [await freePort(), await freePort()];
  while (ports[1] === ports[0]) ports[1] = await freePort();
  const origins = ports.map((p) => `http://127.0.0.1:${p}`).join(',');
  const filesDir = path.join(tmpDir, 'files'); // what a shared volume is in production
  const nodes = [];
  for (const [i, port] of ports.entries()) {
    const name = `duet node ${i + 1}`;
    const logFile = path.join(tmpDir, `node${i + 1}.log`);
    const out = fs.openSync(logFile, 'w');
    const proc = spawn(DUET_BIN, [], {
      env: {
        ...inheritedEnv(),
        ...QUIET,
        ...PUSH_ENV,
        DUET_BIND: `127.0.0.1:${port}`,
        DUET_DATA_DIR: path.join(tmpDir, `data${i + 1}`),
        DUET_FILES_DIR: filesDir,
        DUET_ASSETS_DIR: ASSETS,
        DATABASE_URL: pgUrl,
        REDIS_URL: redisUrl,
        DUET_REDIS_PREFIX: redisPrefix,
        DUET_ORIGINS: origins,
      },
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    const child = { proc, name, logFile, base: `http://127.0.0.1:${port}`, port };
    proc.on('error', (e) => { child.spawnError = e; });
    children.add(child);
    nodes.push(child);
    // Start them one after the other: both run the migrations at start.
    await waitHealthy(child).catch((err) => {
      fail(`${err.message}\n(cluster mode needs a duet build with the Redis bus, Postgres and Redis reachable; REDIS_URL=${redisUrl})`);
    });
    log(`  ${name} is up at ${child.base} (log: ${logFile})`);
  }
  return nodes;
}

// ---------------------------------------------------------------------------------------------
// Browser helpers

async function person(label, name, base, opts = {}) {
  const ctx = await browser.newContext({
    baseURL: base,
    viewport: opts.viewport || { width: 1280, height: 800 },
    deviceScaleFactor: opts.deviceScaleFactor || 1,
    isMobile: !!opts.isMobile,
    hasTouch: !!opts.isMobile,
    locale: opts.locale || 'en-US',
    timezoneId: 'Asia/Seoul',
    reducedMotion: 'reduce', // no entry animations in screenshots
  });
  ctx.setDefaultTimeout(WAIT_MS);
  const p = { label, name, base, ctx, page: null, sockets: [], cuttable: !!opts.cuttable };
  if (opts.cuttable) {
    // A transparent proxy of the chat socket, so the test can cut B's network for real
    // (context.setOffline does not close an open WebSocket in Chromium).
    p.cut = false;
    p.live = new Set();
    await ctx.routeWebSocket(/\/ws(\?|$)/, (ws) => {
      p.sockets.push(ws.url());
      if (p.cut) {
        ws.close({ code: 1001, reason: 'e2e: network down' });
        return;
      }
      const server = ws.connectToServer();
      const link = { ws, server };
      p.live.add(link);
      ws.onMessage((m) => server.send(m));
      server.onMessage((m) => ws.send(m));
      ws.onClose(() => { p.live.delete(link); server.close(); });
      server.onClose((code, reason) => { p.live.delete(link); ws.close({ code, reason }); });
    });
  }
  await openPage(p);
  return p;
}

async function openPage(p) {
  const page = await p.ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${p.label}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    consoleErrors.push(`${p.label}: ${m.text()}`);
    // The server's Content-Security-Policy must never block a part of the app.
    if (m.text().includes('Content Security Policy')) pageErrors.push(`${p.label}: ${m.text()}`);
  });
  if (!p.cuttable) page.on('websocket', (ws) => p.sockets.push(ws.url()));
  p.page = page;
  pages.set(p.label, page);
  return page;
}

const tid = (page, id) => page.getByTestId(id);

const AXE = fs.readFileSync(path.join(HERE, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

/** What axe-core finds serious or critical on the page as it is (WCAG 2.x A and AA rules). */
async function axeProblems(page) {
  // Evaluated through DevTools, which the page's Content-Security-Policy does not govern.
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    resultTypes: ['violations'],
  }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

/** Buttons, links and fields the user can touch that are smaller than 44 x 44 px. */
async function smallTargets(page) {
  return page.evaluate(() => [...document.querySelectorAll('button, a[href], input, select, textarea, [role=button]')]
    .filter((el) => {
      // A checkbox's target is its label, which toggles it too.
      const target = el.matches('[type=checkbox], [type=radio]') ? (el.closest('label') || el) : el;
      const r = target.getBoundingClientRect();
      const style = getComputedStyle(el);
      // 1 px or less is a visually hidden control (the file input behind the attach button).
      return r.width > 1 && r.height > 1 && style.visibility !== 'hidden' && (r.width < 44 || r.height < 44);
    })
    .map((el) => `${el.dataset.testid || el.id || el.tagName.toLowerCase()} ${Math.round(el.getBoundingClientRect().width)}x${Math.round(el.getBoundingClientRect().height)}`));
}

async function see(locator, message, timeout = WAIT_MS) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout });
  } catch {
    fail(`${message} (not seen within ${timeout / 1000} s)`);
  }
}

async function gone(locator, message, timeout = WAIT_MS) {
  try {
    await locator.first().waitFor({ state: 'detached', timeout });
  } catch {
    fail(`${message} (still there after ${timeout / 1000} s)`);
  }
}

async function hidden(locator, message, timeout = WAIT_MS) {
  try {
    await locator.first().waitFor({ state: 'hidden', timeout });
  } catch {
    fail(`${message} (still visible after ${timeout / 1000} s)`);
  }
}

async function eventually(fn, message, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) fail(`${message} (last seen: ${JSON.stringify(last)})`);
    await sleep(100);
  }
}

function bubbleWithText(page, text) {
  return page.locator('[data-testid=bubble]').filter({
    has: page.locator('[data-testid=bubble-text]', { hasText: new RegExp(`^${escapeRe(text)}$`) }),
  });
}

async function online(p) {
  await see(p.page.locator('[data-testid=connection-state][data-state=online]'),
    `${p.label} should be connected (the header says online)`);
}

/** Types a message in the composer and presses Enter; waits for the server's ack. */
async function say(p, text) {
  const input = tid(p.page, 'message-input');
  await see(input, `${p.label} should have a message box to type "${text}"`);
  await input.fill(text);
  await input.press('Enter');
  await see(bubbleWithText(p.page, text).and(p.page.locator('[data-mine=true][data-status=sent]:not([data-seq=""])')),
    `${p.label}'s message "${text}" should be sent (acknowledged by the server, on ${p.label}'s side)`);
}

/** Takes a cuttable person's network away for real: HTTP fails and the open socket closes. */
async function cutNetwork(p) {
  p.cut = true;
  await p.ctx.setOffline(true);
  for (const link of [...p.live]) {
    link.ws.close({ code: 1001, reason: 'e2e: network down' });
    link.server.close();
  }
  await eventually(async () => (await tid(p.page, 'connection-state').getAttribute('data-state')) !== 'online',
    `${p.label}'s header should stop saying online once the network is gone`);
}

async function texts(page) {
  return page.locator('#timeline [data-testid=bubble-text]').allTextContents();
}

/** Where a bubble sits and what colour it has: the first box in it that paints a background. */
async function looks(bubble) {
  return bubble.evaluate((el) => {
    let painted = el;
    for (const node of [el, ...el.querySelectorAll('*')]) {
      const bg = getComputedStyle(node).backgroundColor;
      if (bg && bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') { painted = node; break; }
    }
    const list = document.querySelector('[data-testid=message-list]').getBoundingClientRect();
    const box = painted.getBoundingClientRect();
    return {
      mine: el.dataset.mine,
      background: getComputedStyle(painted).backgroundColor,
      gapLeft: Math.round(box.left - list.left),
      gapRight: Math.round(list.right - box.right),
    };
  });
}

async function checkSide(p, text, mine) {
  const bubble = bubbleWithText(p.page, text);
  await see(bubble, `${p.label} should see "${text}"`);
  const l = await looks(bubble.first());
  const who = mine ? `${p.label}'s own message` : `${p.label}'s partner's message`;
  check(l.mine === String(mine), `${who} "${text}" should be marked data-mine="${mine}" on ${p.label}'s screen, got ${l.mine}`);
  if (mine) {
    check(l.background === SKY_BLUE, `${who} "${text}" should be sky-blue (${SKY_BLUE}), got ${l.background}`);
    check(l.gapRight < l.gapLeft && l.gapRight < 60, `${who} "${text}" should sit on the right (gap left ${l.gapLeft}px, right ${l.gapRight}px)`);
  } else {
    check(l.background === PINK, `${who} "${text}" should be pink (${PINK}), got ${l.background}`);
    check(l.gapLeft < l.gapRight && l.gapLeft < 60, `${who} "${text}" should sit on the left (gap left ${l.gapLeft}px, right ${l.gapRight}px)`);
  }
}

/** Moves a chat one year into the past, straight in the database (the test's only way to
 * have a story older than the test). */
function backdateYear(text) {
  if (MODE === 'cluster') {
    const sql = `UPDATE chats SET sent_at = sent_at - interval '1 year' WHERE text = '${text.replace(/'/g, "''")}'`;
    const r = spawnSync('psql', [...pgArgs().slice(0, -1), pgDb, '-c', sql], { encoding: 'utf8', timeout: 15000 });
    if (r.status !== 0) fail(`backdating "${text}": ${r.stderr}`);
    return;
  }
  // SQLite keeps times as text starting with the year: one year less is the year less one.
  const py = `import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
rows = db.execute("SELECT id, sent_at FROM chats WHERE text = ?", (sys.argv[2],)).fetchall()
assert rows, "no such chat"
for (id, at) in rows:
    db.execute("UPDATE chats SET sent_at = ? WHERE id = ?", (str(int(at[:4]) - 1) + at[4:], id))
db.commit()`;
  const r = spawnSync('python3', ['-c', py, path.join(tmpDir, 'data', 'duet.db'), text], { encoding: 'utf8', timeout: 15000 });
  if (r.status !== 0) fail(`backdating "${text}": ${r.stderr}`);
}

async function shot(p, file) {
  await p.page.waitForTimeout(150); // let the last frame paint
  const target = path.join(SHOTS, file);
  await p.page.screenshot({ path: target });
  log(`    screenshot ${path.relative(REPO, target)}`);
}

/** Opens a socket of its own from the page (same session) and tries to send a chat. */
async function rawSend(page, text) {
  const clientId = crypto.randomUUID();
  return page.evaluate(async ({ text, clientId }) => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
    const seen = [];
    return new Promise((resolve) => {
      const done = (result) => { clearTimeout(timer); try { ws.close(); } catch { /* closed */ } resolve({ ...result, seen }); };
      const timer = setTimeout(() => done({ timeout: true }), 6000);
      ws.onmessage = (ev) => {
        const f = JSON.parse(ev.data);
        seen.push(f.type);
        if (f.type === 'synced') ws.send(JSON.stringify({ type: 'send', client_id: clientId, text }));
        if ((f.type === 'error' || f.type === 'ack') && f.client_id === clientId) done({ reply: f });
      };
      ws.onclose = (ev) => done({ closed: ev.code });
    });
  }, { text, clientId });
}

/** Sends many chats from the page's session over a socket of its own, one at a time (each
 * acknowledged before the next), under the server's frame rate. Returns each ack's seq. */
async function burst(page, list) {
  const frames = list.map((text) => ({ type: 'send', client_id: crypto.randomUUID(), text }));
  return page.evaluate(async (frames) => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
    await new Promise((resolve, reject) => {
      ws.onmessage = (ev) => { if (JSON.parse(ev.data).type === 'synced') resolve(); };
      ws.onclose = (ev) => reject(new Error(`socket closed (${ev.code}) before synced`));
    });
    const out = [];
    for (const frame of frames) {
      const t0 = performance.now();
      const reply = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ type: 'timeout' }), 5000);
        ws.onmessage = (ev) => {
          const f = JSON.parse(ev.data);
          if ((f.type === 'ack' || f.type === 'error') && f.client_id === frame.client_id) {
            clearTimeout(timer);
            resolve(f);
          }
        };
        ws.send(JSON.stringify(frame));
      });
      out.push(reply.type === 'ack' ? reply.seq : reply);
      const spent = performance.now() - t0;
      if (spent < 60) await new Promise((r) => setTimeout(r, 60 - spent));
    }
    ws.close();
    return out;
  }, frames);
}

async function getJson(page, url) {
  return page.evaluate(async (url) => {
    const res = await fetch(url, { credentials: 'same-origin' });
    let body = null;
    try { body = await res.json(); } catch { /* not json */ }
    return { status: res.status, body };
  }, url);
}

async function fetchFile(page, url) {
  return page.evaluate(async (url) => {
    const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    const bytes = (await res.arrayBuffer()).byteLength;
    return { status: res.status, type: res.headers.get('content-type'), nosniff: res.headers.get('x-content-type-options'), bytes };
  }, url);
}

/** Reads an exported zip with Python's zipfile (another implementation than the server's). */
function readZip(file) {
  const code = [
    'import json, sys, zipfile',
    'z = zipfile.ZipFile(sys.argv[1])',
    'assert z.testzip() is None',
    'names = z.namelist()',
    'chats = z.read("chats.ndjson").decode() if "chats.ndjson" in names else ""',
    'answers = json.loads(z.read("answers.json")) if "answers.json" in names else []',
    'print(json.dumps({"names": names, "chats": chats, "answers": len(answers)}))',
  ].join('\n');
  const out = spawnSync('python3', ['-c', code, file], { encoding: 'utf8' });
  if (out.status !== 0) fail(`the export is not a valid zip: ${out.stderr}`);
  return JSON.parse(out.stdout);
}

async function openAnswers(p) {
  await tid(p.page, 'answers-link').click();
  await see(tid(p.page, 'answers-page'), `${p.label} should see the Answers page after clicking Answers`);
}

async function closeAnswers(p) {
  await tid(p.page, 'answers-close').click();
  await hidden(tid(p.page, 'answers-page'), `${p.label}'s Answers page should close`);
}

// ---------------------------------------------------------------------------------------------
// The scenario


// ---------------------------------------------------------------------------------------------
// Web Push: a push service of the test's own, and what a browser does with what it receives

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();

/** A push service on this machine: keeps every request (headers and body) and answers 201. */
async function startPushService() {
  const received = [];
  const server = (await import('node:http')).createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(201);
      res.end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return { base, received, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** RFC 8291: decrypts an `aes128gcm` push body with the device's keys, as its browser would. */
function openPush(body, { privateJwk, p256dh, auth }) {
  const salt = body.subarray(0, 16);
  const idlen = body[20];
  const asPublic = body.subarray(21, 21 + idlen);
  const sealed = body.subarray(21 + idlen);
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(privateJwk.d, 'base64url'));
  const shared = ecdh.computeSecret(asPublic);
  const uaPublic = Buffer.from(p256dh, 'base64url');
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic, Buffer.from([1])]);
  const ikm = hmac(hmac(Buffer.from(auth, 'base64url'), shared), keyInfo);
  const prk = hmac(salt, ikm);
  const cek = hmac(prk, Buffer.from('Content-Encoding: aes128gcm\0\x01')).subarray(0, 16);
  const nonce = hmac(prk, Buffer.from('Content-Encoding: nonce\0\x01')).subarray(0, 12);
  const decipher = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  const padded = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]);
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end -= 1;
  check(padded[end] === 2, 'a single-record push ends with the 0x02 delimiter');
  return JSON.parse(padded.subarray(0, end).toString('utf8'));
}

const steps = [];
async function step(name, fn) {
  currentStep = name;
  const t0 = Date.now();
  log(`▶ ${name}`);
  await fn();
  steps.push(name);
  log(`  ✔ ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}

async function main() {
  fs.rmSync(SHOTS, { recursive: true, force: true });
  fs.mkdirSync(SHOTS, { recursive: true });
  log(`Duet e2e, ${MODE} mode, run ${RUN}`);

  let nodeA;
  let nodeB;
  await step(`start ${MODE === 'cluster' ? 'two duet nodes (Postgres + Redis)' : 'one duet node'}`, async () => {
    [nodeA, nodeB] = await startServers();
  });

  let A;
  let B;
  await step('launch chromium', async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // The fake microphone (a beep) and no permission prompt: voice notes record for real.
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
    });
    A = await person('A', `민지_${RUN}`, nodeA.base, { locale: 'ko-KR' });
    B = await person('B', `jun.${RUN}`, nodeB.base, { locale: 'en-US', cuttable: true });
  });

  await step('the app installs (no installability error), opens offline, and a deploy is offered, not forced', async () => {
    // A node of its own, so that this step can deploy a new version on the same origin.
    const assets = path.join(tmpDir, 'deploy-assets');
    fs.cpSync(ASSETS, assets, { recursive: true });
    const env = () => ({ DUET_DATA_DIR: path.join(tmpDir, 'deploy-data'), DUET_ASSETS_DIR: assets });
    let node = await startNode('duet (deploys)', env);
    const stop = async (n) => {
      if (n.proc.exitCode === null && n.proc.signalCode === null) {
        const exited = once(n.proc, 'exit');
        n.proc.kill('SIGTERM');
        await exited;
      }
      children.delete(n);
    };
    // Installability is not checked in a context that keeps nothing (Playwright's contexts
    // are like incognito windows): this one has a profile of its own.
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'duet-e2e-install-'));
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      // The fake microphone (a beep) and no permission prompt: voice notes record for real.
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
      baseURL: node.base,
    });
    try {
      const page = ctx.pages()[0] || (await ctx.newPage());
      page.on('pageerror', (e) => pageErrors.push(`install: ${e.message}`));
      await page.goto('/');
      await see(tid(page, 'auth-screen'), 'the app should open at / in a fresh profile');
      await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: WAIT_MS });
      const cdp = await ctx.newCDPSession(page);
      const manifest = await cdp.send('Page.getAppManifest');
      check(manifest.errors.length === 0, `the manifest should parse cleanly: ${JSON.stringify(manifest.errors)}`);
      const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
      check(installabilityErrors.length === 0, `Chromium should find Duet installable, found: ${JSON.stringify(installabilityErrors)}`);

      // Offline, the app shell comes from the worker's cache: Duet's own page says it cannot
      // reach the server (not Chromium's error page), with a way to try again.
      await ctx.setOffline(true);
      await page.reload();
      await see(tid(page, 'loading-screen'), 'offline, the installed app should still open its own page');
      await see(page.locator('#loading-retry'), 'offline, the app should offer to try again');
      await ctx.setOffline(false);
      await page.locator('#loading-retry').click();
      await see(tid(page, 'auth-screen'), 'back online, trying again should reach Duet');
      const shells = () => page.evaluate(() => caches.keys());
      const before = await shells();
      check(before.length === 1, `one shell kept: ${before}`);

      // A deploy: the same origin serves changed assets. Someone is typing; the page must not
      // change under them, only offer the new version.
      fs.appendFileSync(path.join(assets, 'style.css'), '\n/* e2e: a deploy */\n');
      await stop(node);
      node = await startNode('duet (deployed)', env, node.port);
      await tid(page, 'auth-username').fill('still-typing');
      await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r && r.update()));
      await see(tid(page, 'update-banner'), 'a new version should be offered with a banner');
      check(await tid(page, 'auth-username').inputValue() === 'still-typing', 'the offer must not reload the page by itself');
      await tid(page, 'update-reload').click();
      await eventually(async () => {
        const now = await shells();
        return now.length === 1 && now[0] !== before[0];
      }, 'after the reload, the new version\'s shell should be the only one kept');
      await see(tid(page, 'auth-screen'), 'the reloaded page should run the new version');
      check(await tid(page, 'update-banner').isHidden(), 'the new version has nothing to offer');
      log(`    installable: no installability errors; shell ${before[0]} -> ${(await shells())[0]}`);
    } finally {
      await ctx.close();
      fs.rmSync(profile, { recursive: true, force: true });
      await stop(node);
    }
  });

  await step('A and B sign up', async () => {
    for (const p of [A, B]) {
      await p.page.goto('/');
      await see(tid(p.page, 'auth-screen'), `${p.label} should see the sign-up / log-in screen on first visit`);
      await tid(p.page, 'auth-username').fill(p.name);
      await tid(p.page, 'auth-password').fill(PASSWORD);
      await tid(p.page, 'signup-button').click();
      await see(tid(p.page, 'pairing-screen'), `${p.label} (${p.name}) should land on the pairing screen after signing up`);
    }
  });

  await step('A sends a pairing request to B, B accepts, both land in the chat', async () => {
    await tid(A.page, 'pair-username').fill(B.name);
    await tid(A.page, 'pair-send').click();
    await see(A.page.locator(`[data-testid=sent-request][data-username="${B.name}"]`), `A should see the request to ${B.name} under "Requests you sent"`);
    const received = B.page.locator(`[data-testid=received-request][data-username="${A.name}"]`);
    await see(received, `B should receive A's pairing request (${A.name})`, 12000);
    await received.getByTestId('accept-request').click();
    for (const p of [B, A]) {
      await see(tid(p.page, 'chat-screen'), `${p.label} should land in the chat once B accepted`, 12000);
      await online(p);
    }
    const partnerOf = { A: B.name, B: A.name };
    for (const p of [A, B]) {
      const shown = (await tid(p.page, 'partner-name').textContent()).trim();
      check(shown === partnerOf[p.label], `${p.label}'s chat header should name the partner ${partnerOf[p.label]}, got "${shown}"`);
    }
    await see(A.page.locator('[data-testid=partner-presence][data-online=true]'), 'A should see B as online');
    await see(B.page.locator('[data-testid=partner-presence][data-online=true]'), 'B should see A as online');
  });

  await step('chat both ways: mine on the right in sky-blue, partner\'s on the left in pink', async () => {
    await say(A, 'Hi from A 👋');
    await see(bubbleWithText(B.page, 'Hi from A 👋'), 'B should receive A\'s "Hi from A 👋" live');
    await say(B, 'Hello back from B');
    await see(bubbleWithText(A.page, 'Hello back from B'), 'A should receive B\'s "Hello back from B" live');
    await say(A, '오늘 하루 어땠어?');
    await see(bubbleWithText(B.page, '오늘 하루 어땠어?'), 'B should receive A\'s Korean message live');
    await checkSide(A, 'Hi from A 👋', true);
    await checkSide(A, 'Hello back from B', false);
    await checkSide(B, 'Hi from A 👋', false);
    await checkSide(B, 'Hello back from B', true);
    const ta = await texts(A.page);
    const tb = await texts(B.page);
    check(JSON.stringify(ta) === JSON.stringify(tb), `A and B should see the same conversation in the same order: A ${JSON.stringify(ta)} vs B ${JSON.stringify(tb)}`);
    await shot(A, '01-paired-chat-A.png');
    await shot(B, '01-paired-chat-B.png');
  });

  let qid;
  await step('thinking of you: A taps it in the menu and B, on the other node in cluster mode, sees a heart rise and who sent it', async () => {
    await tid(A.page, 'menu-button').click();
    await tid(A.page, 'nudge-button').click();
    await see(tid(B.page, 'nudge-heart'), 'B should see the heart of A\'s nudge');
    await see(tid(B.page, 'toast').filter({ hasText: A.name }), 'B should be told A is thinking of B');
    await shot(B, '05b-nudge-B.png');
    check(await tid(A.page, 'nudge-heart').isHidden(), 'the sender sees no heart of their own');
  });

  await step('A mentions 여행: both get the question card and both are blocked', async () => {
    await say(A, '이번 여행 어디 갈까?');
    await see(bubbleWithText(B.page, '이번 여행 어디 갈까?'), 'B should receive "이번 여행 어디 갈까?" before the question');
    for (const p of [A, B]) {
      await see(tid(p.page, 'question-card'), `${p.label} should see the question card after "여행" was mentioned`);
      const text = (await tid(p.page, 'question-text').textContent()).trim();
      check(text === QUESTION_KO, `${p.label}'s question card should ask "${QUESTION_KO}", got "${text}"`);
      await hidden(tid(p.page, 'message-input'), `${p.label}'s message box should be replaced by the question card`);
      await hidden(tid(p.page, 'send-button'), `${p.label}'s send button should be gone while the question is open`);
      await see(tid(p.page, 'question-event'), `${p.label} should see the question in the conversation too`);
    }
    qid = await tid(A.page, 'question-card').getAttribute('data-question-id');
    const qidB = await tid(B.page, 'question-card').getAttribute('data-question-id');
    check(qid && qid === qidB, `A and B should be asked the same question (ids ${qid} / ${qidB})`);
    await shot(A, '02-question-card-A.png');
    await shot(B, '02-question-card-B.png');
  });

  await step('the server refuses chats from both until they answer', async () => {
    for (const [p, other] of [[A, B], [B, A]]) {
      const text = `sneaky message from ${p.label} ${RUN}`;
      const r = await rawSend(p.page, text);
      check(r.reply, `${p.label}'s send past the question should be answered by the server (got ${JSON.stringify(r)})`);
      check(r.reply.type === 'error' && r.reply.code === 'answer_required',
        `the server should refuse ${p.label}'s chat with answer_required while the question is open, got ${JSON.stringify(r.reply)}`);
      check(String(r.reply.question_id) === qid, `the refusal should name question ${qid}, got ${r.reply.question_id}`);
      await other.page.waitForTimeout(600);
      check(await bubbleWithText(other.page, text).count() === 0, `${other.label} must not receive ${p.label}'s refused message`);
      const hist = await getJson(other.page, '/api/chats?limit=200');
      check(hist.status === 200, `GET /api/chats should answer 200 for ${other.label}, got ${hist.status}`);
      check(!hist.body.chats.some((c) => c.text === text), `the refused message of ${p.label} must not be stored (GET /api/chats)`);
    }
  });

  await step('A answers: A can chat again while B still sees the card', async () => {
    await tid(A.page, 'answer-input').fill('제주도 해안 도로를 자전거로 한 바퀴');
    await tid(A.page, 'answer-submit').click();
    await hidden(tid(A.page, 'question-card'), 'A\'s question card should go away once A answered');
    await see(tid(A.page, 'message-input'), 'A\'s message box should come back once A answered');
    await say(A, 'I answered, your turn');
    await see(bubbleWithText(B.page, 'I answered, your turn'), 'B should receive A\'s message sent after A answered');
    await see(tid(B.page, 'question-card'), 'B should still see the question card (B has not answered)');
    await hidden(tid(B.page, 'message-input'), 'B\'s message box should still be replaced by the card');
    // B must not be able to read A's answer before answering.
    const fromB = await getJson(B.page, '/api/answers');
    const itemB = (fromB.body.answers || []).find((a) => String(a.question_id) === qid);
    check(itemB, `B's GET /api/answers should list question ${qid}: ${JSON.stringify(fromB.body)}`);
    check(itemB.mine === null && itemB.partner === null, `B's answers should show neither answer before B answers (A's stays hidden), got ${JSON.stringify(itemB)}`);
    await openAnswers(A);
    const item = A.page.locator(`[data-testid=answer-item][data-question-id="${qid}"]`);
    await see(item.getByTestId('answer-mine').getByText('제주도 해안 도로를 자전거로 한 바퀴'), 'A\'s Answers page should show A\'s own answer');
    check(await item.getByTestId('answer-partner').getAttribute('data-hidden') === 'true', 'A\'s Answers page should not show an answer from B yet');
    await closeAnswers(A);
  });

  await step('B answers: both see both answers side by side on the Answers page', async () => {
    await tid(B.page, 'answer-input').fill('Lisbon, riding the old tram together');
    await tid(B.page, 'answer-submit').click();
    await hidden(tid(B.page, 'question-card'), 'B\'s question card should go away once B answered');
    await say(B, 'Answered too');
    await see(bubbleWithText(A.page, 'Answered too'), 'A should receive B\'s message after B answered');
    const answer = { A: '제주도 해안 도로를 자전거로 한 바퀴', B: 'Lisbon, riding the old tram together' };
    for (const [p, other] of [[A, B], [B, A]]) {
      await openAnswers(p);
      const item = p.page.locator(`[data-testid=answer-item][data-question-id="${qid}"]`);
      await see(item, `${p.label}'s Answers page should list the travel question`);
      const q = (await item.locator('h3').textContent()).trim();
      check(q === QUESTION_KO, `${p.label}'s Answers page should show the question "${QUESTION_KO}", got "${q}"`);
      await see(item.getByTestId('answer-mine').getByText(answer[p.label]), `${p.label}'s Answers page should show ${p.label}'s own answer`);
      await see(item.getByTestId('answer-partner').getByText(answer[other.label]), `${p.label}'s Answers page should show ${other.label}'s answer`);
      const mineBox = await item.getByTestId('answer-mine').boundingBox();
      const theirBox = await item.getByTestId('answer-partner').boundingBox();
      check(Math.abs(mineBox.y - theirBox.y) < 4 && mineBox.x + mineBox.width <= theirBox.x + 1,
        `${p.label}'s Answers page should put the two answers side by side, mine first (mine ${JSON.stringify(mineBox)}, partner ${JSON.stringify(theirBox)})`);
      await shot(p, `03-answers-page-${p.label}.png`);
      await closeAnswers(p);
    }
  });

  let chatId;
  let fileUrl;
  await step('A sends a photo: both see it inline', async () => {
    const png = solidPng(40, 30, [255, 127, 80]);
    const before = await A.page.locator('[data-testid=bubble][data-mine=true][data-status=sent]').count();
    await tid(A.page, 'attach-input').setInputFiles({ name: 'coral-e2e.png', mimeType: 'image/png', buffer: png });
    const mineImg = A.page.locator('[data-testid=bubble][data-mine=true][data-status=sent]').filter({ has: A.page.getByTestId('file-image') });
    await see(mineImg, 'A\'s photo should be sent (acknowledged by the server)', 15000);
    check(await A.page.locator('[data-testid=bubble][data-mine=true][data-status=sent]').count() === before + 1, 'A\'s photo should appear exactly once');
    chatId = await mineImg.last().getAttribute('data-chat-id');
    check(chatId, 'A\'s photo bubble should carry its chat id');
    const theirs = B.page.locator(`[data-testid=bubble][data-chat-id="${chatId}"]`);
    await see(theirs.getByTestId('file-image'), 'B should see A\'s photo inline in the chat');
    check(await theirs.getAttribute('data-mine') === 'false', 'A\'s photo should be on B\'s partner side');
    for (const [p, img] of [[A, mineImg.last().getByTestId('file-image')], [B, theirs.getByTestId('file-image')]]) {
      await img.scrollIntoViewIfNeeded();
      const size = await eventually(() => img.evaluate((el) => el.complete && el.naturalWidth > 0 && { w: el.naturalWidth, h: el.naturalHeight, src: el.getAttribute('src'), attrW: el.getAttribute('width'), attrH: el.getAttribute('height') }),
        `${p.label}'s photo should load (img complete with naturalWidth > 0)`);
      check(size.w === 40 && size.h === 30, `${p.label}'s photo should be the 40x30 picture A sent, got ${size.w}x${size.h}`);
      if (p === B) {
        fileUrl = size.src;
        check(/^\/api\/files\/[0-9a-f-]{36}$/i.test(fileUrl), `B's photo should load from /api/files/{id}, got ${fileUrl}`);
        check(size.attrW === '40' && size.attrH === '30', `the chat's file should carry width 40 and height 30 (B's img has width=${size.attrW} height=${size.attrH})`);
      }
    }
    const got = await fetchFile(B.page, fileUrl);
    check(got.status === 200 && got.type === 'image/png' && got.nosniff === 'nosniff' && got.bytes === png.length,
      `GET ${fileUrl} by B should give the PNG back (200, image/png, nosniff, ${png.length} bytes), got ${JSON.stringify(got)}`);
    await A.page.waitForTimeout(200);
    await shot(A, '04-image-in-chat-A.png');
    await shot(B, '04-image-in-chat-B.png');
  });

  await step('a voice note: A holds the microphone (Chromium\'s fake one) and lets go; B, on the other node in cluster mode, gets it with its length and plays it; sliding away cancels', async () => {
    const btn = tid(A.page, 'voice-button');
    const box = await btn.boundingBox();
    const before = await A.page.locator('[data-testid=voice-note]').count();
    await A.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await A.page.mouse.down();
    await see(tid(A.page, 'voice-status'), 'A should see the recording under way');
    await A.page.waitForTimeout(1600);
    await A.page.mouse.up();
    await hidden(tid(A.page, 'voice-status'), 'letting go should end the recording');
    const noteB = B.page.locator('[data-testid=bubble]').filter({ has: B.page.getByTestId('voice-note') }).last();
    await see(noteB, 'B should receive A\'s voice note', 15000);
    check(await noteB.getAttribute('data-mine') === 'false', 'A\'s voice note is on B\'s partner side');
    const length = (await noteB.getByTestId('voice-length').textContent()).trim();
    check(/^0:0[12]$/.test(length), `the voice note should say it lasts one or two seconds (the server measured it), got "${length}"`);
    const played = await noteB.getByTestId('voice-player').evaluate(async (audio) => {
      audio.muted = true;
      await audio.play();
      await new Promise((resolve) => setTimeout(resolve, 800));
      audio.pause();
      return audio.currentTime;
    });
    check(played > 0.2, `B should be able to play the voice note (position after 0.8 s: ${played})`);
    await shot(B, '04g-voice-note-B.png');
    // Slide away before letting go: nothing is sent.
    await A.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await A.page.mouse.down();
    await see(tid(A.page, 'voice-status'), 'A should see a second recording under way');
    await A.page.waitForTimeout(700);
    await A.page.mouse.move(box.x - 150, box.y - 40, { steps: 5 });
    await A.page.mouse.up();
    await hidden(tid(A.page, 'voice-status'), 'sliding away should end the recording');
    await A.page.waitForTimeout(1500);
    const after = await A.page.locator('[data-testid=voice-note]').count();
    check(after === before + 1, `a cancelled recording must not be sent (voice notes on A's side: ${before} before, ${after} after)`);
  });

  await step('our album: B opens it from the menu and sees A\'s photo as the server\'s thumbnail, opens it full size and jumps to it in the conversation', async () => {
    await tid(B.page, 'menu-button').click();
    await tid(B.page, 'album-button').click();
    await see(tid(B.page, 'album-dialog'), 'B should see our album');
    const tile = tid(B.page, 'album-photo').first();
    await see(tile, 'B\'s album should show A\'s photo');
    const thumb = await eventually(() => tile.locator('img').evaluate((el) => el.complete && el.naturalWidth > 0 && { src: el.getAttribute('src'), w: el.naturalWidth, h: el.naturalHeight }),
      'the album\'s thumbnail should load');
    check(/^\/api\/files\/[0-9a-f-]{36}\/thumbnail$/i.test(thumb.src), `the album should show the server's thumbnail, got ${thumb.src}`);
    check(thumb.w === 40 && thumb.h === 30, `a 40x30 photo's thumbnail keeps its size (at most 400 px), got ${thumb.w}x${thumb.h}`);
    await shot(B, '04e-album-B.png');
    await tile.click();
    await see(tid(B.page, 'photo-dialog'), 'B should see the photo full size');
    const full = await eventually(() => tid(B.page, 'photo-full').evaluate((el) => el.complete && el.naturalWidth > 0 && el.getAttribute('src')),
      'the full-size photo should load');
    check(full === fileUrl, `the full-size photo should be the original ${fileUrl}, got ${full}`);
    await tid(B.page, 'photo-jump').click();
    await hidden(tid(B.page, 'album-dialog'), 'the album should close on the jump');
    await see(B.page.locator(`[data-testid=bubble][data-chat-id="${chatId}"][data-jumped=true]`), 'B should be taken to A\'s photo in the conversation');
    if (await tid(B.page, 'jump-latest').isVisible()) await tid(B.page, 'jump-latest').click();
  });

  await step('A deletes the photo: it disappears for both and the file is gone (404)', async () => {
    const bubble = A.page.locator(`[data-testid=bubble][data-chat-id="${chatId}"]`);
    await bubble.hover();
    await bubble.getByTestId('delete-button').click();
    await see(tid(A.page, 'confirm-dialog'), 'A should be asked to confirm deleting the photo');
    await tid(A.page, 'confirm-ok').click();
    await gone(A.page.locator(`[data-testid=bubble][data-chat-id="${chatId}"]`), 'the photo should disappear from A\'s chat');
    await gone(B.page.locator(`[data-testid=bubble][data-chat-id="${chatId}"]`), 'the photo should disappear from B\'s chat');
    for (const p of [A, B]) {
      const got = await fetchFile(p.page, fileUrl);
      check(got.status === 404, `GET ${fileUrl} by ${p.label} should be 404 after the photo was deleted, got ${got.status}`);
    }
    // Not fatal (yet): what B's browser still shows from its HTTP cache for the deleted photo.
    const cached = await B.page.evaluate((u) => fetch(u).then((r) => r.status), fileUrl);
    if (cached !== 404) {
      warnings.push(`B's browser still gets ${cached} for the deleted photo ${fileUrl} from its HTTP cache `
        + '(the server sends Cache-Control: private, max-age=86400 for files; no-cache would make the browser revalidate and get the 404)');
    }
  });

  await step('gestures: B replies to A\'s chat and the quote jumps to it; A reacts ❤️ and B, on the other node in cluster mode, sees it live; A edits a chat and B sees "edited" and the earlier version', async () => {
    const original = `Sunset at Gwangalli tonight? ${RUN}`;
    await say(A, original);
    const origB = bubbleWithText(B.page, original);
    await see(origB, 'B should receive the chat B will reply to');
    await origB.hover();
    await origB.getByTestId('more-button').click();
    await see(tid(B.page, 'bubble-menu'), 'B should see the bubble\'s menu');
    await tid(B.page, 'reply-button').click();
    await see(tid(B.page, 'composer-context').filter({ hasText: original }), 'B\'s composer should say what B replies to');
    const answer = `Yes, let's go ${RUN}`;
    await say(B, answer);
    await hidden(tid(B.page, 'composer-context'), 'the reply bar should close once the reply is sent');
    const replyA = bubbleWithText(A.page, answer);
    await see(replyA.getByTestId('quote').filter({ hasText: original }), 'A should see B\'s reply quoting A\'s chat');
    await see(bubbleWithText(B.page, answer).getByTestId('quote').filter({ hasText: original }), 'B should see the quote on B\'s own reply');

    // A reacts to B's reply; B sees it under the bubble, live.
    await replyA.hover();
    await replyA.getByTestId('more-button').click();
    await A.page.locator('[data-testid=react-option][data-emoji="❤️"]').click();
    const replyB = bubbleWithText(B.page, answer);
    await see(replyB.getByTestId('reaction').filter({ hasText: '❤️' }), 'B should see A\'s ❤️ under B\'s reply');
    await see(replyA.getByTestId('reaction').filter({ hasText: '❤️' }), 'A should see A\'s own ❤️');

    // A edits the original; B sees the new text, marked edited, and can read the earlier one.
    const origA = bubbleWithText(A.page, original);
    await origA.hover();
    await origA.getByTestId('more-button').click();
    await tid(A.page, 'edit-button').click();
    const input = tid(A.page, 'message-input');
    check(await input.inputValue() === original, `A's composer should hold the chat being edited, got "${await input.inputValue()}"`);
    const edited = `Sunset at Haeundae tonight? ${RUN}`;
    await input.fill(edited);
    await input.press('Enter');
    const editedB = bubbleWithText(B.page, edited);
    await see(editedB.getByTestId('edited-mark'), 'B should see A\'s chat with its new text, marked edited');
    await see(bubbleWithText(A.page, edited).getByTestId('edited-mark'), 'A should see the chat edited too');
    check(await bubbleWithText(B.page, original).count() === 0, 'the old text should be gone from B\'s conversation');
    await see(replyB.getByTestId('quote'), 'B\'s reply keeps its quote');
    await shot(A, '04c-gestures-A.png');
    await shot(B, '04c-gestures-B.png');
    await editedB.getByTestId('edited-mark').click();
    await see(tid(B.page, 'versions-dialog'), 'B should see the earlier versions');
    const versions = tid(B.page, 'version');
    await see(versions.nth(1), 'B should see two versions');
    const first = (await versions.nth(0).locator('.version-text').textContent()).trim();
    const latest = (await versions.nth(1).locator('.version-text').textContent()).trim();
    check(first === original && latest === edited, `B's versions should be "${original}" then "${edited}", got "${first}", "${latest}"`);
    await shot(B, '04d-versions-B.png');
    await tid(B.page, 'versions-close').click();

    // The quote opens the conversation at the chat it answers (the same jump as a search hit).
    await bubbleWithText(A.page, answer).getByTestId('quote').click();
    await see(A.page.locator('[data-testid=bubble][data-jumped=true]').filter({ hasText: edited }), 'A\'s click on the quote should open the conversation at the chat it answers');
    // The window around it reaches the present here (a short conversation): no way back needed.
    if (await tid(A.page, 'jump-latest').isVisible()) await tid(A.page, 'jump-latest').click();
    await hidden(tid(A.page, 'jump-latest'), 'A should be back at the present');
  });

  await step('on this day: A\'s first chat is dated a year back; when B opens Duet again a card shows it, and opens the conversation that day', async () => {
    backdateYear('Hi from A 👋');
    await B.page.reload();
    const card = tid(B.page, 'memory-card');
    await see(card, 'B should see an on-this-day card for the chat of a year ago');
    const text = (await tid(B.page, 'memory-text').textContent()).trim();
    check(text === 'Hi from A 👋', `the card should show what A said a year ago, got "${text}"`);
    await shot(B, '04f-on-this-day-B.png');
    await tid(B.page, 'memory-open').click();
    await see(B.page.locator('[data-testid=bubble][data-jumped=true]').filter({ hasText: 'Hi from A 👋' }), 'the card should open the conversation at that chat');
    if (await tid(B.page, 'jump-latest').isVisible()) await tid(B.page, 'jump-latest').click();
    await tid(B.page, 'memory-close').click();
    await hidden(card, 'a closed card goes until tomorrow');
    await B.page.reload();
    await online(B);
    await B.page.waitForTimeout(500);
    check(await card.isHidden(), 'a card closed today stays closed after a reload');
  });

  const notes = ['Note 1 while you were away', 'Note 2 while you were away', 'Note 3 while you were away'];
  await step('B closes the app, A sends 3 messages, B comes back and finds each exactly once, in order', async () => {
    await B.page.close();
    pages.delete('B');
    await see(A.page.locator('[data-testid=partner-presence][data-online=false]'), 'A should see B go offline when B closed the app');
    for (const n of notes) await say(A, n);
    await openPage(B);
    await B.page.goto('/');
    await see(tid(B.page, 'chat-screen'), 'B should be back in the chat when opening Duet again (still logged in)');
    await online(B);
    await see(bubbleWithText(B.page, notes[2]), 'B should find A\'s last message after coming back');
    const tb = await texts(B.page);
    for (const n of notes) check(tb.filter((t) => t === n).length === 1, `B should see "${n}" exactly once, saw it ${tb.filter((t) => t === n).length} times`);
    const order = notes.map((n) => tb.indexOf(n));
    check(order[0] < order[1] && order[1] < order[2], `B should see A's 3 messages in the order they were sent, got positions ${order}`);
    await see(A.page.locator('[data-testid=partner-presence][data-online=true]'), 'A should see B online again');
  });

  const pings = ['Ping 4 while your network was down', 'Ping 5 while your network was down', 'Ping 6 while your network was down'];
  await step('B loses the network, A sends 3 messages, B reconnects and resumes without gaps or repeats', async () => {
    const socketsBefore = B.sockets.length;
    await cutNetwork(B);
    await see(A.page.locator('[data-testid=partner-presence][data-online=false]'), 'A should see B go offline when B lost the network');
    for (const n of pings) await say(A, n);
    check(await bubbleWithText(B.page, pings[0]).count() === 0, 'B cannot have received anything while offline');
    B.cut = false;
    await B.ctx.setOffline(false);
    await online(B);
    await see(bubbleWithText(B.page, pings[2]), 'B should receive what A sent while B was offline');
    const resumeUrl = B.sockets.slice(socketsBefore).filter((u) => /[?&]after=\d+/.test(u)).at(-1);
    check(resumeUrl, `B should resume with /ws?after=<last seq>, sockets opened: ${JSON.stringify(B.sockets.slice(socketsBefore))}`);
    const tb = await texts(B.page);
    for (const n of [...notes, ...pings]) check(tb.filter((t) => t === n).length === 1, `B should see "${n}" exactly once, saw it ${tb.filter((t) => t === n).length} times`);
    const order = pings.map((n) => tb.indexOf(n));
    check(order[0] > tb.indexOf(notes[2]) && order[0] < order[1] && order[1] < order[2], `B should see the messages in the order they were sent, got ${JSON.stringify(tb)}`);
    const ta = await texts(A.page);
    check(JSON.stringify(ta) === JSON.stringify(tb), `after reconnecting B should see exactly A's conversation: A ${JSON.stringify(ta)} vs B ${JSON.stringify(tb)}`);
    const seqs = await B.page.locator('#timeline [data-seq]').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
    check(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `B's timeline should be in seq order without repeats: ${seqs}`);
    await shot(B, '05-after-reconnect-B.png');
    await shot(A, '05-after-reconnect-A.png');
  });

  await step('offline, B writes three chats and takes one more back, reloads and reads the conversation from the device, and once online A receives exactly the three, in order', async () => {
    const words = ['outbox one', 'outbox two', 'outbox three'];
    const takenBack = 'outbox taken back';
    await cutNetwork(B);
    for (const text of [words[0], takenBack, words[1], words[2]]) {
      await tid(B.page, 'message-input').fill(text);
      await tid(B.page, 'message-input').press('Enter');
    }
    const waiting = B.page.locator('#pending-items [data-testid=bubble][data-status=pending]');
    await eventually(async () => (await waiting.count()) === 4, 'the four chats should wait, shown as waiting');
    await waiting.filter({ hasText: takenBack }).getByTestId('discard-button').click();
    await eventually(async () => (await waiting.count()) === 3, 'the one taken back should be gone');
    await shot(B, '05b-outbox-waiting-B.png');
    // A reload without a network: the shell comes from the service worker, the conversation
    // from the device, and the chats still wait in the outbox.
    await B.page.reload();
    await see(tid(B.page, 'chat-screen'), 'offline, the reloaded app should open the conversation kept on the device');
    await see(bubbleWithText(B.page, pings[2]), 'offline, the history kept on the device should be there to read');
    await eventually(async () => (await waiting.count()) === 3, 'offline, the three chats should still wait in the outbox');
    check(await tid(B.page, 'connection-state').getAttribute('data-state') !== 'online', 'offline, the header must not say online');
    await shot(B, '05c-offline-reading-B.png');
    B.cut = false;
    await B.ctx.setOffline(false);
    await online(B);
    await see(bubbleWithText(A.page, words[2]), 'A should receive what B wrote offline');
    await eventually(async () => (await waiting.count()) === 0, 'B\'s outbox should be empty once the server has acked everything');
    await sleep(500); // anything sent twice would have arrived by now
    for (const page of [A.page, B.page]) {
      const seen = await texts(page);
      for (const text of words) check(seen.filter((t) => t === text).length === 1, `"${text}" should arrive exactly once, got ${seen.filter((t) => t === text).length}`);
      check(!seen.includes(takenBack), 'the chat taken back should never leave');
      const at = words.map((text) => seen.indexOf(text));
      check(at[0] < at[1] && at[1] < at[2], `the chats should arrive in the order written: ${JSON.stringify(seen.slice(-5))}`);
    }
  });

  let M;
  await step(`A logs in on a phone (390x844${MODE === 'cluster' ? ', node 2' : ''}) and sees the chat`, async () => {
    M = await person('A-phone', A.name, MODE === 'cluster' ? nodeB.base : nodeA.base, {
      viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, locale: 'ko-KR',
    });
    await M.page.goto('/');
    await see(tid(M.page, 'auth-screen'), 'the phone should show the log-in screen');
    await tid(M.page, 'auth-username').fill(A.name);
    await tid(M.page, 'auth-password').fill(PASSWORD);
    await tid(M.page, 'login-button').click();
    await see(tid(M.page, 'chat-screen'), 'A should land in the chat after logging in on the phone');
    await online(M);
    await see(bubbleWithText(M.page, pings[2]), 'A\'s phone should show the conversation history');
    await checkSide(M, pings[2], true);
    await checkSide(M, 'Answered too', false);
    const overflow = await M.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `the phone layout should not scroll sideways (overflows by ${overflow}px)`);
    await shot(M, '06-phone-chat-A.png');
  });

  await step('on the phone A mentions travel: the question card shows on the phone, and answering unblocks everywhere', async () => {
    await say(M, 'Any travel ideas for us?');
    for (const p of [M, A, B]) {
      await see(tid(p.page, 'question-card'), `${p.label} should see the new question card`);
      await eventually(async () => (await tid(p.page, 'question-text').textContent()).trim() === QUESTION_EN,
        `${p.label}'s question card should ask "${QUESTION_EN}"`);
      await hidden(tid(p.page, 'message-input'), `${p.label}'s message box should be replaced by the question card`);
    }
    const box = await tid(M.page, 'question-card').boundingBox();
    check(box.x >= 0 && box.x + box.width <= 390 + 0.5, `the question card should fit the phone's width (${JSON.stringify(box)})`);
    await shot(M, '07-phone-question-card-A.png');
    await tid(M.page, 'answer-input').fill('Iceland, to see the northern lights');
    await tid(M.page, 'answer-submit').click();
    await hidden(tid(M.page, 'question-card'), 'the card should go away on the phone once A answered there');
    await hidden(tid(A.page, 'question-card'), 'A\'s desktop card should go away too when A answered on the phone');
    await see(tid(B.page, 'question-card'), 'B should still have to answer');
    await tid(B.page, 'answer-input').fill('Patagonia');
    await tid(B.page, 'answer-submit').click();
    await hidden(tid(B.page, 'question-card'), 'B\'s card should go away once B answered');
    await openAnswers(M);
    await see(M.page.locator('[data-testid=answer-item]').first().getByTestId('answer-partner').getByText('Patagonia'),
      'A\'s phone should show B\'s answer to the newest question first on the Answers page');
    await shot(M, '08-phone-answers-A.png');
    await closeAnswers(M);
  });

  await step('A schedules a break-up: B sees it live and takes it back, and the banner goes for both', async () => {
    await tid(A.page, 'menu-button').click();
    await tid(A.page, 'breakup-button').click();
    await tid(A.page, 'confirm-ok').click();
    for (const p of [A, B]) {
      await see(tid(p.page, 'breakup-banner'), `${p.label} should see the scheduled break-up banner`);
    }
    await shot(B, '09-breakup-banner-B.png');
    // The banner offers our whole story while the break-up is pending.
    const [download] = await Promise.all([
      B.page.waitForEvent('download'),
      tid(B.page, 'banner-export-link').click(),
    ]);
    const zipFile = path.join(tmpDir, 'our-story.zip');
    await download.saveAs(zipFile);
    check(/^duet-\d{4}-\d{2}-\d{2}\.zip$/.test(download.suggestedFilename()), `the export should be named duet-<date>.zip, got ${download.suggestedFilename()}`);
    const story = readZip(zipFile);
    for (const name of ['manifest.json', 'chats.ndjson', 'answers.json', 'anniversaries.json']) {
      check(story.names.includes(name), `the export should hold ${name}, it holds ${JSON.stringify(story.names)}`);
    }
    check(story.chats.includes('Hello back from B') && story.chats.includes('이번 여행 어디 갈까?'), 'the exported chats.ndjson should hold the conversation');
    check(story.answers >= 1, 'the exported answers.json should hold the answered question');
    const { body: me } = await getJson(B.page, '/api/me');
    check(me.couple && typeof me.couple.delete_at === 'string', `/api/me should carry delete_at, got ${JSON.stringify(me.couple)}`);
    await tid(B.page, 'restore-button').click();
    for (const p of [B, A]) {
      await hidden(tid(p.page, 'breakup-banner'), `${p.label}'s banner should go once B took the break-up back`);
    }
    await say(A, 'Still us 💙');
    await see(bubbleWithText(B.page, 'Still us 💙'), 'B should still get A\'s chats after the break-up was taken back');
  });

  const fillers = Array.from({ length: 60 }, (_, i) => `Filler ${String(i + 1).padStart(2, '0')}`);
  await step('search: A sends 60 more chats and "여행을 가자"; B finds 여행 (marked), opens the hit in the timeline with its neighbours; a live chat waits below the window until "jump to latest"', async () => {
    const acks = await burst(A.page, fillers);
    check(acks.every((a) => typeof a === 'number'), `A's 60 chats should all be acknowledged, got ${JSON.stringify(acks.filter((a) => typeof a !== 'number').slice(0, 3))}`);
    await see(bubbleWithText(B.page, fillers.at(-1)), `B should receive "${fillers.at(-1)}" live`);
    await say(A, '여행을 가자 🚗');
    await see(bubbleWithText(B.page, '여행을 가자 🚗'), 'B should receive "여행을 가자 🚗"');
    await tid(B.page, 'search-button').click();
    await see(tid(B.page, 'search-dialog'), 'B should see the search dialog');
    await tid(B.page, 'search-input').fill('여행');
    await tid(B.page, 'search-submit').click();
    const hits = B.page.locator('[data-testid=search-hit]');
    await eventually(async () => (await hits.count()) >= 2, 'searching 여행 should list at least the two chats that mention it');
    const first = (await hits.first().textContent()) || '';
    check(first.includes('여행을 가자 🚗'), `the newest hit should come first ("여행을 가자 🚗"), got "${first}"`);
    const hitSeqs = (await hits.evaluateAll((els) => els.map((e) => Number(e.dataset.seq))));
    check(hitSeqs.every((s, i) => i === 0 || s < hitSeqs[i - 1]), `hits should be newest first: ${hitSeqs}`);
    const marks = await hits.first().locator('[data-testid=search-mark]').allTextContents();
    check(marks.length === 1 && marks[0] === '여행', `the matched part should be marked: ${JSON.stringify(marks)}`);
    await shot(B, '16-search-B.png');

    await hits.filter({ hasText: '이번 여행 어디 갈까?' }).first().click();
    await hidden(tid(B.page, 'search-dialog'), 'clicking a hit should close the search and show the conversation there');
    const jumped = B.page.locator('#timeline [data-testid=bubble][data-jumped=true]');
    await see(jumped, 'the chat jumped to should be highlighted in the timeline');
    check(((await jumped.textContent()) || '').includes('이번 여행 어디 갈까?'), 'the highlighted chat should be the hit clicked');
    const inView = await jumped.evaluate((el) => {
      const list = document.querySelector('[data-testid=message-list]').getBoundingClientRect();
      const box = el.getBoundingClientRect();
      return box.top >= list.top && box.bottom <= list.bottom;
    });
    check(inView, 'the chat jumped to should be scrolled into view');
    const around = await texts(B.page);
    const at = around.indexOf('이번 여행 어디 갈까?');
    check(around.includes('오늘 하루 어땠어?') && at > around.indexOf('오늘 하루 어땠어?'), `older neighbours should be above it: ${JSON.stringify(around)}`);
    check(around.includes('I answered, your turn') && around.indexOf('I answered, your turn') > at, `newer neighbours should be below it: ${JSON.stringify(around)}`);
    check(!around.includes('여행을 가자 🚗') && !around.includes(fillers.at(-1)), `the window should not reach the present (the newest chats are further on): ${JSON.stringify(around)}`);
    await see(tid(B.page, 'jump-latest'), 'an older window should offer "jump to latest"');
    await shot(B, '17-jump-to-hit-B.png');

    // A live chat from A must not land below the old window: it waits for the way back.
    await say(A, 'Live while B looks back');
    await eventually(async () => (await tid(B.page, 'jump-latest').getAttribute('data-unseen')) === '1', 'B\'s "jump to latest" should count A\'s new chat');
    check(await bubbleWithText(B.page, 'Live while B looks back').count() === 0, 'a live chat must not be appended below an older window');
    await tid(B.page, 'jump-latest').click();
    await see(bubbleWithText(B.page, 'Live while B looks back'), 'jumping to the latest should show the chat that came meanwhile');
    await hidden(tid(B.page, 'jump-latest'), '"jump to latest" should go once the present is shown');
    check(await B.page.locator('#timeline [data-jumped=true]').count() === 0, 'the present should not carry the jump highlight');
    const ta = await texts(A.page);
    const tb = await texts(B.page);
    check(JSON.stringify(ta) === JSON.stringify(tb), `back at the present B should see exactly A's conversation: A ${ta.length} chats, B ${tb.length}`);
    await say(A, 'Live again');
    await see(bubbleWithText(B.page, 'Live again'), 'live chats should be appended again');
    check((await texts(B.page)).at(-1) === 'Live again', 'the live chat should be the last one');
  });

  await step('jumps: B opens "filler 3" hits (marked ignoring case), scrolls up through older pages and down through newer ones to the present; a day with nothing since says so; today opens at its first chat', async () => {
    const olderAsked = [];
    const newerAsked = [];
    const onRequest = (r) => {
      if (/\/api\/chats\?before=/.test(r.url())) olderAsked.push(r.url());
      if (/\/api\/chats\?after=/.test(r.url())) newerAsked.push(r.url());
    };
    B.page.on('request', onRequest);
    await tid(B.page, 'search-button').click();
    await tid(B.page, 'search-input').fill('filler 3');
    await tid(B.page, 'search-submit').click();
    const hits = B.page.locator('[data-testid=search-hit]');
    await eventually(async () => (await hits.count()) === 10, 'searching "filler 3" should find Filler 30 to Filler 39');
    const marks = await B.page.locator('[data-testid=search-hit] [data-testid=search-mark]').allTextContents();
    check(marks.length === 10 && marks.every((m) => m === 'Filler 3'), `the marks should keep the chat's own case ("Filler 3"): ${JSON.stringify(marks)}`);
    await hits.filter({ hasText: 'Filler 30' }).click();
    const jumped = B.page.locator('#timeline [data-testid=bubble][data-jumped=true]');
    await see(jumped, 'the hit should open highlighted');
    check(((await jumped.textContent()) || '').includes('Filler 30'), 'the highlighted chat should be Filler 30');
    let shown = await texts(B.page);
    check(!shown.includes('Hi from A 👋') && !shown.includes('Live again'), `the window should hold neither the first nor the newest chat: ${JSON.stringify(shown)}`);
    const list = tid(B.page, 'message-list');
    // Up: older pages until the first chat.
    await eventually(async () => {
      await list.evaluate((el) => { el.scrollTop = 0; });
      return (await texts(B.page)).includes('Hi from A 👋');
    }, 'scrolling up should page older chats in, down to the first one');
    check(olderAsked.length >= 1, 'older chats should come from GET /api/chats?before=');
    // Down: newer pages until the present, which then joins what was held.
    await eventually(async () => {
      await list.evaluate((el) => { el.scrollTop = el.scrollHeight; });
      return !(await tid(B.page, 'jump-latest').isVisible()) && (await texts(B.page)).includes('Live again');
    }, 'scrolling down should page newer chats in until the present is reached', 15000);
    check(newerAsked.length >= 1, 'newer chats should come from GET /api/chats?after=');
    shown = await texts(B.page);
    const ta = await texts(A.page);
    check(JSON.stringify(ta) === JSON.stringify(shown), `after scrolling to the present B should see A's whole conversation once, in order: A ${ta.length} chats, B ${shown.length}`);
    const seqs = await B.page.locator('#timeline [data-seq]').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
    check(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `B's timeline should be in seq order without repeats: ${seqs}`);
    await shot(B, '20-scrolled-to-present-B.png');
    await say(A, 'Live at the end');
    await see(bubbleWithText(B.page, 'Live at the end'), 'once at the present, live chats should be appended');

    // A day with nothing from it on, then today (the couple's calendar says which day that is).
    const { body: calendar } = await getJson(B.page, '/api/anniversaries');
    const tomorrow = new Date(new Date(`${calendar.today}T00:00:00Z`).getTime() + 86400000).toISOString().slice(0, 10);
    await tid(B.page, 'search-button').click();
    await tid(B.page, 'search-date').fill(tomorrow);
    await tid(B.page, 'date-submit').click();
    await eventually(async () => ((await tid(B.page, 'search-status').textContent()) || '').includes('Nothing from that day on'),
      'a day with nothing from it on should say so');
    check(await tid(B.page, 'search-dialog').isVisible(), 'the search should stay open when there is nothing to jump to');
    await tid(B.page, 'search-date').fill(calendar.today);
    await tid(B.page, 'date-submit').click();
    await hidden(tid(B.page, 'search-dialog'), 'jumping to today should show the conversation');
    // A's very first chat was dated a year back (on this day): today starts at B's answer.
    await eventually(async () => ((await jumped.textContent()) || '').includes('Hello back from B'), 'today should open at its first chat ("Hello back from B"), highlighted');
    shown = await texts(B.page);
    check(shown[0] === 'Hi from A 👋' && shown[1] === 'Hello back from B' && !shown.includes('Live at the end'), `the day's window should hold its first chat, the one before it, and not reach the present: ${JSON.stringify(shown.slice(0, 3))}…`);
    await shot(B, '21-jump-to-day-B.png');
    await tid(B.page, 'jump-latest').click();
    await hidden(tid(B.page, 'jump-latest'), '"jump to latest" should bring B back to the present');
    check(JSON.stringify(await texts(A.page)) === JSON.stringify(await texts(B.page)), 'back at the present B should see A\'s whole conversation');
    B.page.off('request', onRequest);
  });

  await step('export from the menu: A downloads our story, a zip (PK…) with manifest.json and every chat in chats.ndjson, oldest first', async () => {
    await tid(A.page, 'menu-button').click();
    const link = tid(A.page, 'export-link');
    await see(link, 'the chat menu should offer to download our story');
    check(await link.getAttribute('href') === '/api/export' && await link.getAttribute('download') !== null,
      'the menu item should be a plain download link to /api/export');
    await shot(A, '22-menu-export-A.png');
    const [download] = await Promise.all([A.page.waitForEvent('download'), link.click()]);
    const file = path.join(tmpDir, 'our-story-menu.zip');
    await download.saveAs(file);
    const head = fs.readFileSync(file).subarray(0, 2).toString('latin1');
    check(head === 'PK', `the export should be a zip (starts with "PK"), it starts with ${JSON.stringify(head)}`);
    const story = readZip(file);
    for (const name of ['manifest.json', 'chats.ndjson']) {
      check(story.names.includes(name), `the export should hold ${name}, it holds ${JSON.stringify(story.names)}`);
    }
    const chats = story.chats.trim().split('\n').map((line) => JSON.parse(line));
    // A chat without text (the voice note) has no text to show: the others, in order.
    const exported = chats.filter((c) => c.text).map((c) => c.text);
    check(chats.some((c) => !c.text && c.file && c.file.duration_ms > 0), 'the export should hold the voice note, with its length');
    const shown = await texts(A.page);
    check(JSON.stringify(exported) === JSON.stringify(shown), `chats.ndjson should hold the conversation A sees, oldest first (${exported.length} exported, ${shown.length} shown)`);
    check(chats.every((c, i) => i === 0 || c.seq > chats[i - 1].seq), 'chats.ndjson should be in seq order');
    await A.page.keyboard.press('Escape');
  });

  await step('anniversaries: A moves day one back 99 days and adds a date; B sees day 100 and the new date live', async () => {
    await see(tid(B.page, 'days-together'), 'B\'s header should say how many days they have been together');
    check(/\b1\b/.test((await tid(B.page, 'days-together').textContent()) || ''), 'a new couple is on day 1');
    await tid(B.page, 'days-together').click();
    await see(tid(B.page, 'anniversaries-dialog'), 'clicking the day count should open B\'s anniversaries');
    await tid(A.page, 'menu-button').click();
    await tid(A.page, 'anniversaries-button').click();
    await see(tid(A.page, 'anniversaries-dialog'), 'A should open the anniversaries from the menu');
    // A's browser is in Asia/Seoul; the couple's dates start in the server's default (UTC).
    await see(tid(A.page, 'use-my-zone'), 'A should be offered to put our dates in A\'s time zone');
    await tid(A.page, 'use-my-zone').click();
    await eventually(async () => ((await tid(A.page, 'cal-zone').textContent()) || '').includes('Asia/Seoul'), 'our dates should now be in Asia/Seoul');
    await hidden(tid(A.page, 'use-my-zone'), 'the offer should go once the zones agree');
    const { body: calendar } = await getJson(A.page, '/api/anniversaries');
    const today = new Date(`${calendar.today}T00:00:00Z`);
    const dayOne = new Date(today.getTime() - 99 * 86400000).toISOString().slice(0, 10);
    const soon = new Date(today.getTime() + 10 * 86400000).toISOString().slice(0, 10);
    await tid(A.page, 'start-date').fill(dayOne);
    await tid(A.page, 'start-submit').click();
    await eventually(async () => /함께한 지 100일/.test((await tid(A.page, 'days-together').textContent()) || ''), 'A\'s header should say 함께한 지 100일');
    await eventually(async () => /\b100\b/.test((await tid(B.page, 'days-together').textContent()) || ''), 'B\'s header should say day 100 live, without reloading');
    await see(B.page.locator('[data-testid=cal-item][data-kind=milestone]').filter({ hasText: 'D-day' }), 'B should see the 100-day milestone as D-day');
    await tid(A.page, 'own-title').fill('첫 여행 기념일');
    await tid(A.page, 'own-date').fill(soon);
    await tid(A.page, 'own-yearly').check();
    await tid(A.page, 'own-submit').click();
    const added = B.page.locator('[data-testid=cal-item][data-kind=date]').filter({ hasText: '첫 여행 기념일' });
    await see(added, 'B should see the date A added, live');
    check(((await added.locator('[data-testid=cal-label]').textContent()) || '') === 'D-10', 'a date ten days ahead should say D-10');
    await shot(B, '18-anniversaries-B.png');
    await shot(A, '18-anniversaries-A.png');
    await tid(A.page, 'anniversaries-close').click();
    await tid(B.page, 'anniversaries-close').click();
  });

  await step('our words: both see 여행 counted without its particle; B leaves it out and A sees that live', async () => {
    for (const p of [A, B]) {
      await tid(p.page, 'menu-button').click();
      await tid(p.page, 'words-button').click();
      await see(tid(p.page, 'words-dialog'), `${p.label} should open our words from the menu`);
    }
    const trip = (p) => p.page.locator('[data-testid=word-item][data-word="여행"]');
    await see(trip(A), 'A should see 여행 among our words ("여행을" and "여행" count as one word)');
    await see(trip(B), 'B should see 여행 among our words');
    await trip(B).locator('[data-testid=word-exclude]').click();
    for (const p of [B, A]) {
      await see(p.page.locator('[data-testid=word-excluded][data-word="여행"]'), `${p.label} should see 여행 left out`);
      await gone(trip(p), `${p.label} should no longer see 여행 ranked`);
    }
    await shot(A, '19-words-A.png');
    await B.page.locator('[data-testid=word-excluded][data-word="여행"] [data-testid=word-include]').click();
    await see(trip(A), 'A should see 여행 ranked again once B brought it back');
    for (const p of [A, B]) await tid(p.page, 'words-close').click();
  });

  await step('notifications: while B\'s tab is hidden the title counts A\'s chats and a notification shows, except for a silent send', async () => {
    await B.page.evaluate(() => {
      window.__notes = [];
      window.Notification = class {
        static permission = 'default';
        static async requestPermission() { this.permission = 'granted'; return 'granted'; }
        constructor(title, opts) { window.__notes.push({ title, body: opts && opts.body }); }
        close() {}
      };
    });
    await tid(B.page, 'menu-button').click();
    await tid(B.page, 'notify-toggle').click();
    await see(B.page.locator('[data-testid=notify-toggle][aria-pressed=true]'), 'switching notifications on should show them on');
    await B.page.keyboard.press('Escape');
    const setHidden = (hide) => B.page.evaluate((hide) => {
      Object.defineProperty(document, 'hidden', { value: hide, configurable: true });
      Object.defineProperty(document, 'visibilityState', { value: hide ? 'hidden' : 'visible', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    }, hide);
    await setHidden(true);
    await say(A, '보고 있어?');
    await eventually(async () => (await B.page.title()).startsWith('(1) '), 'B\'s title should count one unread chat');
    await eventually(async () => (await B.page.evaluate(() => window.__notes.length)) === 1, 'B should get one notification');
    const note = await B.page.evaluate(() => window.__notes[0]);
    check(note.body === '보고 있어?', `the notification should carry the chat, got ${JSON.stringify(note)}`);
    await tid(A.page, 'silent-toggle').click();
    await see(A.page.locator('[data-testid=silent-toggle][aria-pressed=true]'), 'the silent switch should show on');
    await say(A, '조용히 보낼게');
    await see(A.page.locator('[data-testid=silent-toggle][aria-pressed=false]'), 'the silent switch should turn itself off after one send');
    await eventually(async () => (await B.page.title()).startsWith('(2) '), 'B\'s title should count the silent chat too');
    await B.page.waitForTimeout(300);
    check((await B.page.evaluate(() => window.__notes.length)) === 1, 'a silent send should not notify');
    await setHidden(false);
    await eventually(async () => !(await B.page.title()).startsWith('('), 'the count should go once B looks again');
  });


  await step('Web Push: with B\'s tab hidden, A\'s chat reaches B\'s device once through a push service, the service worker shows it, and a click opens B\'s Duet at that chat', async () => {
    const pushService = await startPushService();
    try {
      // Chromium can create a push subscription only with its vendor's push service, which this
      // machine cannot reach: this one browser call (PushManager's subscribe) is stood in for,
      // with a real P-256 key pair and auth secret whose private half the test keeps to decrypt
      // what the server sends, as the browser would. Everything else is the real path.
      await B.ctx.grantPermissions(['notifications'], { origin: B.base });
      await B.ctx.addInitScript((endpoint) => {
        if (!('PushManager' in window)) return;
        let current = null;
        const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
        PushManager.prototype.getSubscription = async function getSubscription() { return current; };
        PushManager.prototype.subscribe = async function subscribe(options) {
          const pair = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
          const json = {
            endpoint,
            expirationTime: null,
            keys: {
              p256dh: b64(await crypto.subtle.exportKey('raw', pair.publicKey)),
              auth: b64(crypto.getRandomValues(new Uint8Array(16))),
            },
          };
          window.__device = { ...json.keys, privateJwk: await crypto.subtle.exportKey('jwk', pair.privateKey) };
          current = {
            endpoint,
            options: { applicationServerKey: options.applicationServerKey },
            toJSON: () => json,
            unsubscribe: async () => { current = null; return true; },
          };
          return current;
        };
      }, `${pushService.base}/push/b-phone`);
      // The real Notification again (the step before replaced it), with notifications on:
      // entering the chat subscribes this device.
      await B.page.reload();
      await online(B);
      const devices = async () => (await getJson(B.page, '/api/push/devices')).body.devices;
      await eventually(async () => (await devices()).length === 1, 'B\'s device should be subscribed once notifications are on');
      const [device] = await devices();
      check(device.current === true && device.preview === false, `this device, previews off by default: ${JSON.stringify(device)}`);
      const keys = await B.page.evaluate(() => window.__device);

      await B.page.evaluate(() => {
        Object.defineProperty(document, 'hidden', { value: true, configurable: true });
        Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      });
      await B.page.waitForTimeout(300);
      await say(A, '자니?');
      await eventually(async () => pushService.received.length >= 1, 'the server should push A\'s chat to B\'s device');
      await B.page.waitForTimeout(500);
      check(pushService.received.length === 1, `one chat, one push: ${pushService.received.length}`);
      const [request] = pushService.received;
      check(request.headers['content-encoding'] === 'aes128gcm', 'the push is encrypted (aes128gcm)');
      check(/^vapid t=[^,]+, k=/.test(request.headers.authorization || ''), 'the push carries a VAPID signature');
      const payload = openPush(request.body, keys);
      const seq = Number(await bubbleWithText(A.page, '자니?').getAttribute('data-seq'));
      check(payload.kind === 'chat' && payload.seq === seq && payload.count === 1 && payload.unread >= 1 && payload.from === A.name && payload.text === undefined,
        `the decrypted push should name the chat and A, without its text: ${JSON.stringify(payload)}`);

      // What the browser does when its push service delivers: the decrypted body reaches the
      // service worker's push event.
      const cdp = await B.ctx.newCDPSession(B.page);
      const registered = new Promise((resolve) => {
        cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
          const mine = registrations.find((r) => r.scopeURL === `${B.base}/` && !r.isDeleted);
          if (mine) resolve(mine.registrationId);
        });
      });
      await cdp.send('ServiceWorker.enable');
      const registrationId = await registered;
      await cdp.send('ServiceWorker.deliverPushMessage', { origin: B.base, registrationId, data: JSON.stringify(payload) });
      const shown = () => B.page.evaluate(async () => {
        const registration = await navigator.serviceWorker.ready;
        return (await registration.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }));
      });
      await eventually(async () => (await shown()).length === 1, 'the service worker should show the push as a notification');
      const [note] = await shown();
      check(note.title === A.name && note.data.seq === seq && note.data.count === payload.unread
        && (payload.unread > 1 || ['New message', '새 메시지'].includes(note.body)),
        `the notification should say a new message from A, at that chat: ${JSON.stringify(note)}`);
      // A second push of the same kind merges into it: one notification, the server's count of
      // unread chats, opening at the first.
      const more = { ...payload, seq: seq + 1, unread: payload.unread + 1 };
      await cdp.send('ServiceWorker.deliverPushMessage', { origin: B.base, registrationId, data: JSON.stringify(more) });
      await eventually(async () => {
        const now = await shown();
        return now.length === 1 && now[0].data.count === more.unread && now[0].data.seq === seq;
      }, 'a second push should merge into the notification shown, with the new count');

      // The click: Chromium has no DevTools call to click a notification, so the test runs
      // what sw.js's notificationclick handler runs, with the notification shown.
      const [worker] = B.ctx.serviceWorkers();
      check(worker, 'B\'s service worker should be running');
      await worker.evaluate(async () => {
        const [shownNote] = await self.registration.getNotifications();
        shownNote.close();
        await openAt(shownNote.data);
      });
      await see(B.page.locator(`[data-testid=bubble][data-seq="${seq}"][data-jumped=true]`), 'the click should open B\'s Duet at the chat the notification was about');
      check((await shown()).length === 0, 'the clicked notification should close');
      await B.page.evaluate(() => {
        Object.defineProperty(document, 'hidden', { value: false, configurable: true });
        Object.defineProperty(document, 'visibilityState', { value: 'visible', configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      });
      await cdp.detach();
      log(`    push: ${request.body.length} bytes encrypted, decrypted to ${JSON.stringify(payload)}`);
    } finally {
      await pushService.close();
    }
  });

  await step('on a phone (390x844), in Korean and English, light and dark: every screen passes axe-core, never scrolls sideways, and every target is at least 44 px', async () => {
    const problems = [];
    const audit = async (p, screen) => {
      for (const colorScheme of ['light', 'dark']) {
        await p.page.emulateMedia({ colorScheme });
        const where = `${screen} (${p.label}, ${colorScheme})`;
        for (const v of await axeProblems(p.page)) problems.push(`${where}: axe ${v}`);
        const overflow = await p.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        if (overflow > 0) problems.push(`${where}: scrolls sideways by ${overflow}px`);
        for (const small of await smallTargets(p.page)) problems.push(`${where}: target ${small}`);
        await shot(p, `16-phone-${screen}-${p.label}-${colorScheme}.png`);
      }
      await p.page.emulateMedia({ colorScheme: 'light' });
    };
    const dialogs = [
      ['menu', async (page) => tid(page, 'menu-button').click()],
      ['answers', async (page) => tid(page, 'answers-link').click()],
      ['search', async (page) => tid(page, 'search-button').click()],
      ['anniversaries', async (page) => { await tid(page, 'menu-button').click(); await tid(page, 'anniversaries-button').click(); }],
      ['our-words', async (page) => { await tid(page, 'menu-button').click(); await tid(page, 'words-button').click(); }],
      ['devices', async (page) => { await tid(page, 'menu-button').click(); await tid(page, 'devices-button').click(); }],
      ['album', async (page) => { await tid(page, 'menu-button').click(); await tid(page, 'album-button').click(); }],
      ['bubble-menu', async (page) => { const b = page.locator('[data-testid=bubble][data-status=sent]').last(); await b.hover(); await b.getByTestId('more-button').click(); }],
      ['password', async (page) => { await tid(page, 'menu-button').click(); await tid(page, 'password-button').click(); }],
    ];
    const phone = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true };
    const N = await person('B-phone', B.name, MODE === 'cluster' ? nodeA.base : nodeB.base, { ...phone, locale: 'en-US' });
    await N.page.goto('/');
    await see(tid(N.page, 'auth-screen'), 'the English phone should show the log-in screen');
    await audit(N, 'auth');
    await tid(N.page, 'auth-username').fill(B.name);
    await tid(N.page, 'auth-password').fill(PASSWORD);
    await tid(N.page, 'login-button').click();
    await see(tid(N.page, 'chat-screen'), 'B should land in the chat on the phone');
    for (const p of [M, N]) {
      await online(p);
      await audit(p, 'chat');
      for (const [screen, open] of dialogs) {
        await open(p.page);
        await sleep(150);
        await audit(p, screen);
        await p.page.keyboard.press('Escape');
        await sleep(150);
      }
    }
    // The on-screen keyboard takes the lower half (the page is resized with it, see the
    // viewport's interactive-widget): the composer stays in view above it.
    await tid(M.page, 'message-input').focus();
    await M.page.setViewportSize({ width: 390, height: 420 });
    await sleep(150);
    const composer = await tid(M.page, 'message-input').boundingBox();
    const send = await tid(M.page, 'send-button').boundingBox();
    check(composer && send && composer.y + composer.height <= 420 && send.y + send.height <= 420,
      `with the keyboard up the composer should stay in view: ${JSON.stringify({ composer, send })}`);
    await shot(M, '16-phone-keyboard-A-phone.png');
    await M.page.setViewportSize({ width: 390, height: 844 });
    // The pairing screen, in Korean, for someone new.
    const P = await person('new-phone', `새사람_${RUN}`, nodeA.base, { ...phone, locale: 'ko-KR' });
    await P.page.goto('/');
    await see(tid(P.page, 'auth-screen'), 'a new phone should show the sign-up screen');
    await tid(P.page, 'auth-username').fill(P.name);
    await tid(P.page, 'auth-password').fill(PASSWORD);
    await tid(P.page, 'signup-button').click();
    await see(tid(P.page, 'pairing-screen'), 'signing up on the phone should land on pairing');
    await audit(P, 'pairing');
    for (const p of [N, P]) await p.ctx.close();
    check(problems.length === 0, `on the phone:\n  ${problems.join('\n  ')}`);
  });

  let C;
  await step('signing up: the username hint says taken for A\'s name (any case) and free for a new one', async () => {
    C = await person('C', `new.${RUN}`, nodeA.base, { locale: 'en-US' });
    const asked = [];
    C.page.on('request', (r) => { if (r.url().includes('/api/usernames/')) asked.push(r.url()); });
    await C.page.goto('/');
    await see(tid(C.page, 'auth-screen'), 'a fresh browser should show the sign-up / log-in screen');
    const input = tid(C.page, 'auth-username');
    const hint = tid(C.page, 'username-hint');
    await input.fill('ab');
    await C.page.waitForTimeout(600);
    check(asked.length === 0, `a malformed name ("ab") should not be looked up, asked ${JSON.stringify(asked)}`);
    check(!(await hint.isVisible()), 'no hint should show for a malformed name');
    await input.fill('');
    await input.pressSequentially(A.name, { delay: 25 }); // typing fast: one look-up for the whole name
    await see(C.page.locator('[data-testid=username-hint][data-available=false]'), `the hint should say ${A.name} (A, signed up) is taken`);
    check(asked.length === 1 && asked[0].endsWith(`/api/usernames/${encodeURIComponent(A.name)}`),
      `typing fast should ask once, for the whole name, percent-encoded; asked ${JSON.stringify(asked)}`);
    await shot(C, '10-username-hint-taken-C.png');
    await input.fill(A.name.toUpperCase());
    await see(C.page.locator('[data-testid=username-hint][data-available=false]'), 'the hint should say A\'s name in capitals is taken too (names compare ignoring case)');
    await input.fill(C.name);
    await see(C.page.locator('[data-testid=username-hint][data-available=true]'), `the hint should say ${C.name} is free`);
    const said = (await hint.textContent()).trim();
    check(said.length > 0, 'the hint should say something');
    await shot(C, '10-username-hint-free-C.png');
    await tid(C.page, 'auth-password').fill(PASSWORD);
    await tid(C.page, 'signup-button').click();
    await see(tid(C.page, 'pairing-screen'), `${C.name} should be able to sign up with the name the hint said is free`);
    // The pairing screen has the change-password button too.
    await tid(C.page, 'password-button').click();
    await see(tid(C.page, 'password-dialog'), 'the change-password dialog should open from the pairing screen');
    await tid(C.page, 'password-cancel').click();
    await hidden(tid(C.page, 'password-dialog'), 'cancel should close the change-password dialog');
    await C.ctx.close();
    pages.delete('C');
  });

  let A2;
  await step('A changes the password: a wrong current one is refused, then the other sessions end and A logs in again with the new one', async () => {
    // A second session of A in another browser (node 1, next to A's first; the phone is on node 2 in cluster mode).
    A2 = await person('A-2', A.name, nodeA.base, { locale: 'en-US' });
    await A2.ctx.addInitScript(() => {
      // Remember every close code of the page's sockets.
      window.__wsCloses = [];
      const Native = window.WebSocket;
      window.WebSocket = class extends Native {
        constructor(...args) {
          super(...args);
          this.addEventListener('close', (e) => window.__wsCloses.push(e.code));
        }
      };
    });
    await A2.page.goto('/');
    await tid(A2.page, 'auth-username').fill(A.name);
    await tid(A2.page, 'auth-password').fill(PASSWORD);
    await tid(A2.page, 'login-button').click();
    await see(tid(A2.page, 'chat-screen'), 'A should land in the chat after logging in in a second browser');
    await online(A2);
    await online(M);

    await tid(A.page, 'menu-button').click();
    await tid(A.page, 'password-button').click();
    await see(tid(A.page, 'password-dialog'), 'A should see the change-password dialog after choosing it in the menu');
    await tid(A.page, 'password-old').fill('not-the-password-1');
    await tid(A.page, 'password-new').fill(NEW_PASSWORD);
    await shot(A, '11-password-dialog-A.png');
    await tid(A.page, 'password-submit').click();
    await see(tid(A.page, 'password-error'), 'a wrong current password should be refused in the dialog');
    const said = (await tid(A.page, 'password-error').textContent()).trim();
    check(said.length > 0, 'the dialog should say why the change was refused');
    await see(tid(A.page, 'password-dialog'), 'the dialog should stay open after a refusal');
    await shot(A, '12-password-error-A.png');
    check((await getJson(A2.page, '/api/me')).status === 200, 'a refused change must not end A\'s other sessions');

    await tid(A.page, 'password-old').fill(PASSWORD);
    await tid(A.page, 'password-new').fill(NEW_PASSWORD);
    await tid(A.page, 'password-submit').click();
    await hidden(tid(A.page, 'password-dialog'), 'the dialog should close once the password is changed');
    await see(tid(A.page, 'toast').filter({ hasText: /비밀번호|password/i }), 'A should be told the password was changed');
    await shot(A, '13-password-changed-A.png');

    for (const p of [A2, M]) {
      await see(tid(p.page, 'auth-screen'), `${p.label} (another session of A) should drop to the log-in screen once A changed the password`);
      await see(tid(p.page, 'auth-error'), `${p.label}'s log-in screen should say why (log in again)`);
      const me = await getJson(p.page, '/api/me');
      check(me.status === 401, `GET /api/me in ${p.label} should be 401 after the password change, got ${me.status}`);
      // Nothing of the ended session stays on the device to read offline.
      const kept = await p.page.evaluate(() => new Promise((resolve) => {
        const open = indexedDB.open('duet', 2);
        open.onsuccess = () => {
          const get = open.result.transaction('conversation').objectStore('conversation').get('last');
          get.onsuccess = () => resolve(get.result ? get.result.records.length : 0);
          get.onerror = () => resolve(-1);
        };
        open.onerror = () => resolve(-1);
      }));
      check(kept === 0, `${p.label} should keep no conversation on the device once its session ended, kept ${kept} records`);
    }
    const closes = await A2.page.evaluate(() => window.__wsCloses);
    check(closes.includes(4001), `A-2's chat socket should have been closed with 4001, saw close codes ${JSON.stringify(closes)}`);
    await shot(A2, '14-logged-out-A-2.png');

    // The session that changed it stays: A still chats.
    check((await getJson(A.page, '/api/me')).status === 200, 'A\'s own session should survive the password change');
    await online(A);
    await say(A, 'New password, same us');
    await see(bubbleWithText(B.page, 'New password, same us'), 'B should get A\'s chat sent after the password change');

    await tid(A2.page, 'auth-username').fill(A.name);
    await tid(A2.page, 'auth-password').fill(PASSWORD);
    await tid(A2.page, 'login-button').click();
    await see(tid(A2.page, 'auth-error'), 'the old password should no longer log A in');
    check(await tid(A2.page, 'auth-screen').isVisible(), 'A-2 should stay on the log-in screen with the old password');
    await tid(A2.page, 'auth-password').fill(NEW_PASSWORD);
    await tid(A2.page, 'login-button').click();
    await see(tid(A2.page, 'chat-screen'), 'A should land in the chat after logging in with the new password');
    await online(A2);
    await see(bubbleWithText(A2.page, 'New password, same us'), 'A-2 should show the conversation after logging in again');
    await tid(A2.page, 'menu-button').click();
    await see(tid(A2.page, 'password-button'), 'the chat menu should offer to change the password');
    await shot(A2, '15-menu-with-password-A-2.png');
    await A2.page.keyboard.press('Escape');
    await hidden(tid(A2.page, 'password-button'), 'Escape should close the chat menu');
  });

  await step('no uncaught errors in the pages', async () => {
    check(pageErrors.length === 0, `uncaught page errors: ${pageErrors.join(' | ')}`);
  });
}

// ---------------------------------------------------------------------------------------------

let exitCode = 0;
try {
  await main();
  log(`\n✔ PASSED: ${steps.length} steps in ${since()} (${MODE} mode)`);
} catch (err) {
  exitCode = 1;
  log(`\n✘ FAILED at step "${currentStep}" (${MODE} mode, after ${since()}):\n  ${err.message.split('\n').join('\n  ')}`);
  if (!(err.message || '').includes('\n')) log(err.stack.split('\n').slice(1, 4).join('\n'));
  for (const [label, page] of pages) {
    if (page.isClosed()) continue;
    const file = path.join(SHOTS, `FAILED-${label}.png`);
    try {
      await page.screenshot({ path: file, timeout: 5000 });
      log(`  failure screenshot: ${path.relative(REPO, file)}`);
    } catch { /* page gone */ }
  }
  if (pageErrors.length) log(`  page errors: ${pageErrors.join(' | ')}`);
  if (consoleErrors.length) log(`  console errors: ${consoleErrors.slice(-10).join(' | ')}`);
  printServerLogs();
}
if (consoleErrors.length && exitCode === 0) log(`  (console errors seen, not fatal: ${consoleErrors.join(' | ')})`);
for (const w of warnings) log(`  warning: ${w}`);
await cleanup();
log(`Screenshots: ${SHOTS}`);
process.exit(exitCode);
