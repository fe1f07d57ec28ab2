// The dashboard page (examples/dashboard) in headless Chromium, through a round-robin HAProxy
// in front of two ws-server tasks sharing a Redis broker, while one task is replaced as a
// rolling deploy does: SIGTERM to the old task, a new one starts. Every page must end showing
// every update exactly once, in order. Screenshots are kept in target/dashboard-test/.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  freePort, mintToken, publish, REPO, serveStatic, sleep, startHaproxy, startRedis, startServer, stopAll, tempDir,
} from './harness.js';

after(stopAll);

const UPDATES = 150;
const PUBLISH_EVERY_MS = 40; // 25 updates a second
const REPLACE_AT = 40; // SIGTERM the old task after this many updates
const PAGES = 4; // round robin puts pages on both tasks
const PROJECT = 'demo-project';
const ARTIFACTS = join(REPO, 'target/dashboard-test');

async function chromium() {
  let playwright;
  try {
    playwright = await import('playwright-core');
  } catch {
    throw new Error('playwright-core is not installed: run `npm ci` in clients/js (.ci/run does)');
  }
  const executablePath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
  // a fresh profile; no sandbox (root in CI); nothing that talks to the network by itself
  return playwright.chromium.launchPersistentContext(tempDir('js-chromium-'), {
    executablePath,
    headless: true,
    viewport: { width: 1100, height: 900 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
    ],
  });
}

/** What a page shows: its state badge, counters and rows. */
const readPage = (page) =>
  page.evaluate(() => ({
    state: document.getElementById('state').dataset.state,
    reconnects: Number(document.getElementById('reconnects').textContent),
    replayed: Number(document.getElementById('replayed').textContent),
    duplicates: Number(document.getElementById('duplicates').textContent),
    log: [...document.querySelectorAll('#log li')].map((li) => li.textContent),
    resets: Number(document.getElementById('resets').textContent),
    notice: document.getElementById('notice').hidden ? '' : document.getElementById('notice').textContent,
    rows: [...document.querySelectorAll('#updates li')].map((li) => ({
      offset: li.dataset.offset === undefined ? null : Number(li.dataset.offset),
      data: li.dataset.json ? JSON.parse(li.dataset.json) : null,
      text: li.textContent,
    })),
  }));

const connections = async (server) => (await (await fetch(`${server.http}/health`)).json()).connections;

test('the dashboard shows every update exactly once while one of two tasks is replaced', { timeout: 120000 }, async (t) => {
  const redis = await startRedis();
  const env = { WS_REDIS_URL: redis.url, WS_DRAIN_SECONDS: '3', WS_SHUTDOWN_TIMEOUT_SECONDS: '10' };
  const tasks = [await startServer(env), await startServer(env)];
  const replacementPort = await freePort(); // registered in the balancer, down until it starts
  const lb = await startHaproxy([tasks[0].port, tasks[1].port, replacementPort]);
  const site = await serveStatic();
  t.after(site.stop);
  const browser = await chromium();
  t.after(() => browser.close());

  // each page is an operator's tab: endpoint and token in the fragment, as the page documents
  const token = mintToken({ sub: 'operator', projects: [PROJECT], ttlSeconds: 3600 });
  const url = `${site.url}/examples/dashboard/index.html#endpoint=${encodeURIComponent(lb.ws)}&token=${token}&project=${PROJECT}`;
  const pages = [];
  for (let i = 0; i < PAGES; i++) {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(url);
    await page.waitForSelector('#state[data-state="open"]', { timeout: 15000 });
    await page.waitForFunction(() => window.dashboard.client.position(window.dashboard.projectId) !== null);
    pages.push({ page, errors });
  }
  const spread = await Promise.all(tasks.map(connections));
  assert.ok(spread.every((n) => n > 0), `pages on both tasks (connections per task: ${spread})`);

  // the backend: steady publishes through the balancer, each retried with its Idempotency-Key
  // until accepted (as docs/protocol.md tells backends to do on 503s and timeouts)
  const accepted = [];
  let retries = 0;
  let replaced;
  for (let seq = 1; seq <= UPDATES; seq++) {
    for (;;) {
      let res;
      try {
        res = await publish(lb.http, { project_id: PROJECT, data: { seq } }, { idempotencyKey: `dash-${seq}` });
      } catch {
        res = { status: 0 };
      }
      if (res.status === 202) {
        accepted.push(res.body.offset);
        break;
      }
      retries++;
      await sleep(50);
    }
    if (seq === REPLACE_AT) {
      // the rolling deploy: the old task is told to stop, the new one starts meanwhile
      replaced = tasks[0];
      replaced.stop('SIGTERM');
      tasks[0] = await startServer(env, { port: replacementPort });
    }
    await sleep(PUBLISH_EVERY_MS);
  }
  const exit = await replaced.proc.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, 'the replaced task drained and exited 0');
  // offsets of the accepted publishes: one each, consecutive
  assert.deepEqual(accepted, accepted.map((_, i) => accepted[0] + i), 'every publish got the next offset once');

  mkdirSync(ARTIFACTS, { recursive: true });
  const seen = [];
  for (const [i, { page, errors }] of pages.entries()) {
    await page
      .waitForFunction((n) => document.querySelectorAll('#updates li').length >= n, UPDATES, { timeout: 20000 })
      .catch(() => {});
    await sleep(300); // a duplicate arriving late would show up now
    const shown = await readPage(page);
    await page.screenshot({ path: join(ARTIFACTS, `dashboard-${i}.png`), fullPage: true });
    seen.push(shown);
    const seqs = shown.rows.map((r) => r.data?.seq);
    t.diagnostic(
      `page ${i}: state ${shown.state}, ${shown.rows.length} rows, seq ${seqs[0]}..${seqs.at(-1)}, ` +
      `offsets ${shown.rows[0]?.offset}..${shown.rows.at(-1)?.offset}, reconnects ${shown.reconnects}, replayed ${shown.replayed}, ` +
      `duplicates dropped ${shown.duplicates}, resets ${shown.resets}`,
    );
    if (shown.reconnects) t.diagnostic(`page ${i} connection log: ${shown.log.join(' | ')}`);
    assert.deepEqual(errors, [], `page ${i} threw`);
    assert.equal(shown.state, 'open', `page ${i} is connected at the end`);
    assert.equal(shown.resets, 0, `page ${i} was never told to reload: ${shown.notice}`);
    assert.deepEqual(seqs, Array.from({ length: UPDATES }, (_, k) => k + 1), `page ${i} shows every update exactly once, in order`);
    assert.deepEqual(shown.rows.map((r) => r.offset), accepted, `page ${i} shows the offsets the publishes got`);
  }
  const moved = seen.filter((s) => s.reconnects > 0).length;
  t.diagnostic(`${moved} of ${PAGES} pages reconnected during the replacement; publisher retries: ${retries}`);
  assert.ok(moved > 0, 'some page was on the replaced task and reconnected');
  await Promise.all([lb.stop(), redis.stop(), ...tasks.map((s) => s.stop())]);
});
