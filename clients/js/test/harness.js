// Real components for the client's tests: ws-server processes, redis-server, HAProxy, tokens
// signed as the server expects, and the AWS emulator's SQS. Everything listens on loopback on
// free ports and is stopped by the test that started it.

import { spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const JWT_SECRET = 'js-client-tests-secret-of-at-least-32-bytes';
export const PUBLISH_TOKEN = 'js-client-tests-publish-token';

/** The ws-server binary: WS_SERVER_BIN, else the workspace's test build (scripts/test makes it). */
export function serverBin() {
  const bin = process.env.WS_SERVER_BIN || join(REPO, 'target/x86_64-unknown-linux-gnu/debug/ws-server');
  if (!existsSync(bin)) {
    throw new Error(`no ws-server at ${bin}: build it (scripts/test does) or set WS_SERVER_BIN`);
  }
  return bin;
}

export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Polls `check` until it returns a truthy value or `ms` passed. */
export async function until(what, check, ms = 10000, every = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

/** A child process whose output is kept for the failure message and which dies with us. */
function launch(name, cmd, args, env) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = { name, child, output: '' };
  const keep = (chunk) => {
    proc.output = (proc.output + chunk).slice(-20000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  proc.exited = new Promise((ok) => child.on('exit', (code, signal) => ok({ code, signal })));
  proc.alive = () => child.exitCode === null && child.signalCode === null;
  proc.stop = async (signal) => {
    if (typeof signal !== 'string') signal = 'SIGTERM'; // also usable as t.after(proc.stop)
    if (proc.alive()) child.kill(signal);
    return proc.exited;
  };
  liveChildren.add(proc);
  proc.exited.then(() => liveChildren.delete(proc));
  return proc;
}

const liveChildren = new Set();
const tempDirs = [];
process.on('exit', () => {
  for (const proc of liveChildren) proc.child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory under the system's temp dir, removed when the tests end. */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Stops everything still running (for `after` hooks). */
export async function stopAll() {
  await Promise.all([...liveChildren].map((proc) => proc.stop('SIGKILL')));
}

/**
 * Starts ws-server with JWT auth on a free port (or `port`) and waits for /health.
 * @returns {Promise<{port:number, http:string, ws:string, proc:object, stop:Function}>}
 */
export async function startServer(env = {}, { port } = {}) {
  port ??= await freePort();
  const proc = launch(`ws-server :${port}`, serverBin(), [], {
    WEBSOCKET_HOST: '127.0.0.1',
    WEBSOCKET_PORT: String(port),
    WS_JWT_SECRET: JWT_SECRET,
    PUBLISH_TOKEN,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'testing',
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'testing',
    AWS_EC2_METADATA_DISABLED: 'true',
    ENVIRONMENT: 'test',
    WS_METRICS_INTERVAL_SECONDS: '3600',
    RUST_LOG: 'warn',
    ...env,
  });
  const http = `http://127.0.0.1:${port}`;
  await until(`${proc.name} to answer /health`, async () => {
    if (!proc.alive()) throw new Error(`${proc.name} exited at start:\n${proc.output}`);
    try {
      return (await fetch(`${http}/health`)).status === 200;
    } catch {
      return false;
    }
  });
  return { port, http, ws: `ws://127.0.0.1:${port}/ws`, proc, stop: proc.stop };
}

/** A throwaway redis-server on a free port. */
export async function startRedis() {
  const port = await freePort();
  const dir = tempDir('js-redis-');
  const proc = launch(`redis :${port}`, 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
  ]);
  proc.exited.then(() => rmSync(dir, { recursive: true, force: true }));
  await until('redis-server to listen', async () => {
    if (!proc.alive()) throw new Error(`redis-server exited:\n${proc.output}`);
    return proc.output.includes('Ready to accept connections');
  });
  return { port, url: `redis://127.0.0.1:${port}`, proc, stop: proc.stop };
}

/**
 * HAProxy as the ALB: round robin over `backends` (ports) with /health checks every 200 ms.
 * A backend port with nothing on it yet is simply down until a server starts there.
 */
export async function startHaproxy(backends) {
  const port = await freePort();
  const dir = tempDir('js-haproxy-');
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, `global
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 3600s
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  balance roundrobin
  option httpchk GET /health
  default-server inter 200ms fall 1 rise 1
${backends.map((p, i) => `  server t${i} 127.0.0.1:${p} check`).join('\n')}
`);
  const proc = launch(`haproxy :${port}`, 'haproxy', ['-db', '-f', cfg]);
  proc.exited.then(() => rmSync(dir, { recursive: true, force: true }));
  await until('haproxy to listen', async () => {
    if (!proc.alive()) throw new Error(`haproxy exited:\n${proc.output}`);
    try {
      await fetch(`http://127.0.0.1:${port}/health`);
      return true;
    } catch {
      return false;
    }
  });
  return { port, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/ws`, proc, stop: proc.stop };
}

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** An HS256 JWT signed with the tests' secret (what an identity provider would hand the app). */
export function mintToken({ sub = 'alice', ttlSeconds = 600, secret = JWT_SECRET, ...claims } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url({ sub, iat: now, exp: now + ttlSeconds, projects: ['*'], queues: ['*'], ...claims });
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** POST /publish as a backend would; returns {status, body}. */
export async function publish(http, body, { idempotencyKey } = {}) {
  const headers = { authorization: `Bearer ${PUBLISH_TOKEN}`, 'content-type': 'application/json' };
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  const res = await fetch(`${http}/publish`, { method: 'POST', headers, body: JSON.stringify(body) });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (e.g. a proxy's error page): keep the text
  }
  return { status: res.status, body: parsed };
}

/**
 * The AWS emulator's SQS through its JSON protocol (moto accepts any signature), so the tests
 * need no SDK: `AWS_ENDPOINT_URL` comes from `scripts/services env`.
 */
export function emulatorSqs() {
  const endpoint = process.env.AWS_ENDPOINT_URL;
  if (!endpoint) return null;
  const call = async (action, body) => {
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `AmazonSQS.${action}`,
        authorization: 'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0',
      },
      body: JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`SQS ${action}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  return {
    endpoint,
    createQueue: async (prefix) => (await call('CreateQueue', { QueueName: `${prefix}-${randomUUID()}` })).QueueUrl,
    receive: async (queueUrl) =>
      (await call('ReceiveMessage', { QueueUrl: queueUrl, MessageAttributeNames: ['All'], WaitTimeSeconds: 2, MaxNumberOfMessages: 10 })).Messages ?? [],
  };
}

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json' };

/**
 * Serves the dashboard and the client from the repository, as a static host would (only
 * `examples/` and `clients/js/src/`).
 */
export async function serveStatic() {
  const { createServer: createHttp } = await import('node:http');
  const { readFile } = await import('node:fs/promises');
  const { extname, normalize } = await import('node:path');
  const server = createHttp(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (!/^\/(examples\/|clients\/js\/src\/)/.test(path) || path.includes('..')) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(join(REPO, path));
      res.writeHead(200, { 'content-type': MIME[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${server.address().port}`, stop: () => new Promise((ok) => server.close(ok)) };
}
