// The client against real ws-server processes (and Redis, and the AWS emulator's SQS): what an
// application using it would check. Run: node --experimental-websocket --test (see package.json).

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { backoffCap, backoffDelay, ClientError, WsClient } from '../src/index.js';
import { emulatorSqs, mintToken, publish, sleep, startHaproxy, startRedis, startServer, stopAll, until } from './harness.js';

after(stopAll);

/** A client that records its states, errors and every update it delivered. */
function client(url, options = {}) {
  const c = new WsClient({ url, getToken: () => mintToken(), ...options });
  c.seen = { states: [], errors: [], updates: [], resets: [] };
  c.on('state', (s) => c.seen.states.push({ ...s, at: Date.now() }));
  c.on('error', (e) => c.seen.errors.push(e));
  return c;
}

function follow(c, projectId) {
  return c.subscribe(projectId, {
    onUpdate: (data, meta) => c.seen.updates.push({ ...data, offset: meta.offset, epoch: meta.epoch }),
    onReset: (id, info) => c.seen.resets.push(info),
  });
}

const opened = (c) => until('the client to be open', () => c.state === 'open');

describe('connecting and authenticating', () => {
  test('authenticates with the token from getToken and reports connecting, then open', async (t) => {
    const server = await startServer();
    t.after(server.stop);
    const reasons = [];
    const c = client(server.ws, { getToken: ({ reason }) => (reasons.push(reason), mintToken({ sub: 'carol' })) });
    let authenticated;
    c.on('authenticated', (reply) => (authenticated = reply));
    c.connect();
    await opened(c);
    assert.deepEqual(c.seen.states.map((s) => s.state), ['connecting', 'open']);
    assert.equal(authenticated.user_id, 'carol');
    assert.ok(authenticated.expires_at > Date.now() / 1000, `expires_at ${authenticated.expires_at} is in the future`);
    assert.deepEqual(reasons, ['connect']);
    const pong = await c.request({ action: 'ping' });
    assert.equal(pong.type, 'pong');
    c.close();
    assert.equal(c.state, 'closed');
  });

  test('a refused token stops the client: state closed with the server\'s code, no retries', async (t) => {
    const server = await startServer();
    t.after(server.stop);
    const c = client(server.ws, {
      getToken: () => mintToken({ secret: 'another-secret-that-the-server-does-not-know' }),
      backoff: { initialMs: 50, maxMs: 100 },
    });
    c.connect();
    await until('the client to give up', () => c.state === 'closed');
    const last = c.seen.states.at(-1);
    assert.equal(last.code, 'invalid_token', JSON.stringify(last));
    assert.ok(c.seen.errors.some((e) => e instanceof ClientError && e.code === 'invalid_token'));
    await sleep(1000); // ten backoff windows: a hammering client would have reconnected by now
    assert.equal(c.stats.connects, 1, 'one connection attempt only');
    await assert.rejects(c.forward('dev', {}), { code: 'closed' });
  });

  test('refreshes the token when the server warns of expiry, and the connection outlives the first token', async (t) => {
    // the warning comes 60 s before exp by default, i.e. at once for this 4 s token
    const server = await startServer();
    t.after(server.stop);
    const reasons = [];
    const c = client(server.ws, {
      getToken: ({ reason }) => (reasons.push(reason), mintToken({ ttlSeconds: reason === 'connect' ? 4 : 600 })),
      refreshLeadMs: 0, // only the server's `token_expiring` frame starts this refresh
    });
    const refreshed = [];
    c.on('refreshed', (r) => refreshed.push(r));
    let firstExpiry;
    c.on('authenticated', (r) => (firstExpiry = r.expires_at));
    c.connect();
    await until('a refresh', () => refreshed.length > 0);
    assert.deepEqual(reasons.slice(0, 2), ['connect', 'refresh']);
    assert.ok(refreshed[0].expires_at > firstExpiry + 500, `new expiry ${refreshed[0].expires_at} after ${firstExpiry}`);
    const sub = follow(c, 'p-refresh');
    await sub.ready;
    // past the first token's expiry, when the server would have closed the connection
    await sleep((firstExpiry + 3) * 1000 - Date.now());
    assert.equal(c.state, 'open');
    assert.equal(c.stats.connects, 1, 'still the first connection');
    await publish(server.http, { project_id: 'p-refresh', data: { n: 1 } });
    await until('the update after the first expiry', () => c.seen.updates.length === 1);
    c.close();
  });

  test('a token that could not be refreshed: closed at expiry, the client reconnects with a fresh token and resubscribes', async (t) => {
    const server = await startServer();
    t.after(server.stop);
    let identityProviderDown = true;
    const c = client(server.ws, {
      backoff: { initialMs: 100, maxMs: 200 },
      getToken: ({ reason }) => {
        if (reason === 'refresh' && identityProviderDown) throw new Error('identity provider unreachable');
        return mintToken({ ttlSeconds: 3 });
      },
    });
    c.connect();
    await follow(c, 'p-expiry').ready;
    await publish(server.http, { project_id: 'p-expiry', data: { n: 1 } });
    await until('the first update', () => c.seen.updates.length === 1);
    await until('the expiry close', () => c.seen.states.some((s) => s.code === 1008), 8000);
    const closed = c.seen.states.find((s) => s.code === 1008);
    assert.match(closed.reason, /^token expired/);
    assert.ok(c.seen.errors.some((e) => e.code === 'token_source'), 'the failed refresh was reported');
    identityProviderDown = false;
    await until('open again with a new token', () => c.state === 'open' && c.stats.connects === 2);
    await c.subscribe('p-expiry').ready; // resubscribed on the new connection
    await publish(server.http, { project_id: 'p-expiry', data: { n: 2 } });
    await until('the update after the reconnect', () => c.seen.updates.length === 2);
    assert.deepEqual(c.seen.updates.map((u) => u.n), [1, 2]);
    assert.deepEqual(c.seen.resets, []);
    c.close();
  });

  test('refreshes on its own schedule before expires_at', async (t) => {
    const server = await startServer({ WS_AUTH_EXPIRY_WARNING_SECONDS: '1' });
    t.after(server.stop);
    const c = client(server.ws, { getToken: () => mintToken({ ttlSeconds: 8 }), refreshLeadMs: 5000 });
    const refreshed = [];
    c.on('refreshed', (r) => refreshed.push({ at: Date.now(), ...r }));
    c.connect();
    await opened(c);
    const start = Date.now();
    await until('the scheduled refresh', () => refreshed.length > 0, 8000);
    const after = refreshed[0].at - start;
    // lead 5 s, capped at half of the 8 s life: about 4 s in, well before the server's warning
    assert.ok(after >= 2500 && after <= 6000, `refreshed ${after} ms after open`);
    c.close();
  });
});

describe('subscriptions and positions', () => {
  test('every update once, in order, with its offset; a reconnect resubscribes with since and replays what was missed', async (t) => {
    const redis = await startRedis();
    t.after(redis.stop);
    const server = await startServer({ WS_REDIS_URL: redis.url });
    t.after(server.stop);
    const c = client(server.ws);
    c.connect();
    const sub = follow(c, 'p-order');
    const subscribed = await sub.ready;
    assert.equal(typeof subscribed.offset, 'number');
    for (let n = 1; n <= 5; n++) assert.equal((await publish(server.http, { project_id: 'p-order', data: { n } })).status, 202);
    await until('five updates', () => c.seen.updates.length === 5);
    assert.deepEqual(c.seen.updates.map((u) => u.n), [1, 2, 3, 4, 5]);
    const offsets = c.seen.updates.map((u) => u.offset);
    assert.deepEqual(offsets, offsets.map((_, i) => subscribed.offset + 1 + i));
    assert.deepEqual(c.position('p-order'), { offset: offsets.at(-1), epoch: subscribed.epoch });

    // away while 3 more are published, then back: they arrive, in order, and no reset
    c.close();
    for (let n = 6; n <= 8; n++) await publish(server.http, { project_id: 'p-order', data: { n } });
    const resubscribes = [];
    c.on('frame', (f) => f.type === 'subscribed' && resubscribes.push(f));
    c.connect();
    await until('the replayed updates', () => c.seen.updates.length === 8);
    assert.equal(resubscribes[0].recovered, true, JSON.stringify(resubscribes[0]));
    await publish(server.http, { project_id: 'p-order', data: { n: 9 } });
    await until('the live update after the replay', () => c.seen.updates.length === 9);
    assert.deepEqual(c.seen.updates.map((u) => u.n), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(c.seen.resets, []);
    c.close();
  });

  test('calls onReset when the server answers recovered:false, replays nothing, and follows on from the new top', async (t) => {
    const redis = await startRedis();
    t.after(redis.stop);
    const server = await startServer({ WS_REDIS_URL: redis.url, WS_RECOVERY_MAX: '3' });
    t.after(server.stop);
    const c = client(server.ws);
    c.connect();
    await follow(c, 'p-reset').ready;
    await publish(server.http, { project_id: 'p-reset', data: { n: 1 } });
    await until('the first update', () => c.seen.updates.length === 1);

    c.close();
    let top;
    for (let n = 2; n <= 6; n++) top = (await publish(server.http, { project_id: 'p-reset', data: { n } })).body;
    c.connect();
    await until('the reset', () => c.seen.resets.length === 1);
    const [reset] = c.seen.resets;
    assert.equal(reset.projectId, 'p-reset');
    assert.equal(reset.reason, 'not_recovered');
    assert.deepEqual(reset.position, { offset: top.offset, epoch: top.epoch });
    await publish(server.http, { project_id: 'p-reset', data: { n: 7 } });
    await until('the next live update', () => c.seen.updates.length === 2);
    assert.deepEqual(c.seen.updates.map((u) => u.n), [1, 7], 'nothing of the lost stretch was replayed');
    assert.equal(c.seen.updates[1].offset, top.offset + 1);
    c.close();
  });

  test('a stored position the server cannot read (invalid_since) starts over from the top with a reset', async (t) => {
    const server = await startServer();
    t.after(server.stop);
    const c = client(server.ws);
    c.connect();
    const sub = c.subscribe('p-since', {
      since: { offset: -1, epoch: 'not valid!' }, // e.g. a corrupted sessionStorage entry
      onUpdate: (data) => c.seen.updates.push(data),
      onReset: (id, info) => c.seen.resets.push(info),
    });
    const subscribed = await sub.ready;
    assert.equal(c.seen.resets.length, 1);
    assert.equal(c.seen.resets[0].reason, 'not_recovered');
    assert.deepEqual(c.position('p-since'), { offset: subscribed.offset, epoch: subscribed.epoch });
    await publish(server.http, { project_id: 'p-since', data: { n: 1 } });
    await until('the update', () => c.seen.updates.length === 1);
    c.close();
  });

  test('updates to the user (job progress) and broadcasts arrive as update events', async (t) => {
    const server = await startServer();
    t.after(server.stop);
    const c = client(server.ws, { getToken: () => mintToken({ sub: 'erin' }) });
    const got = [];
    c.on('update', (u) => got.push(u));
    c.connect();
    await opened(c);
    assert.equal((await publish(server.http, { user_id: 'erin', data: { job: 7, progress: 50 } })).status, 202);
    assert.equal((await publish(server.http, { user_id: 'someone-else', data: { job: 8 } })).status, 202);
    assert.equal((await publish(server.http, { data: { notice: 'maintenance at noon' } })).status, 202);
    await until('two updates', () => got.length === 2);
    await sleep(200);
    assert.deepEqual(got.map((u) => u.data), [{ job: 7, progress: 50 }, { notice: 'maintenance at noon' }]);
    assert.equal(got[0].userId, 'erin');
    c.close();
  });
});

describe('forwarding', () => {
  test('forward resolves with the SQS MessageId; the message carries the data and who sent it', async (t) => {
    const sqs = emulatorSqs();
    assert.ok(sqs, 'AWS_ENDPOINT_URL is not set: start the emulator (scripts/services up moto; eval "$(scripts/services env)")');
    const queue = await sqs.createQueue('js-dev');
    const server = await startServer({ SQS_QUEUE_URL_DEV: queue, AWS_ENDPOINT_URL: sqs.endpoint });
    t.after(server.stop);
    const c = client(server.ws, { getToken: () => mintToken({ sub: 'dana', queues: ['dev'] }) });
    c.connect();
    const data = { task: 'build', files: ['a.rs'] };
    // several in flight at once: each promise gets its own reply
    const replies = await Promise.all([1, 2, 3].map((n) => c.forward('dev', { ...data, n }, { projectId: 'p-fwd' })));
    assert.deepEqual(replies.map((r) => r.type), ['forwarded', 'forwarded', 'forwarded']);
    const messages = [];
    await until('three messages in the queue', async () => (messages.push(...(await sqs.receive(queue))), messages.length >= 3));
    for (const [i, reply] of replies.entries()) {
      const m = messages.find((msg) => msg.MessageId === reply.message_id);
      assert.ok(m, `message ${reply.message_id} is in the queue`);
      assert.deepEqual(JSON.parse(m.Body), { ...data, n: i + 1 });
      assert.equal(m.MessageAttributes.user_id.StringValue, 'dana');
      assert.equal(m.MessageAttributes.project_id.StringValue, 'p-fwd');
    }
    c.close();
  });

  test('a forward the server refuses rejects with its code, and the connection carries on', async (t) => {
    const server = await startServer(); // no SQS_QUEUE_URL_* at all
    t.after(server.stop);
    const c = client(server.ws, { getToken: () => mintToken({ queues: ['ops'] }) });
    c.connect();
    await assert.rejects(c.forward('ops', { x: 1 }), (err) => err instanceof ClientError && err.code === 'queue_not_configured');
    await assert.rejects(c.forward('dev', { x: 1 }), { code: 'forbidden' });
    assert.equal((await c.request({ action: 'ping' })).type, 'pong');
    assert.equal(c.stats.connects, 1);
    c.close();
  });
});

describe('reconnecting', () => {
  test('backoff: full jitter between 0 and a cap that doubles up to the maximum', () => {
    const options = { initialMs: 100, maxMs: 1000 };
    assert.deepEqual([0, 1, 2, 3, 4, 10, 5000].map((n) => backoffCap(n, options)), [100, 200, 400, 800, 1000, 1000, 1000]);
    for (let attempt = 0; attempt < 8; attempt++) {
      assert.equal(backoffDelay(attempt, options, () => 0), 0);
      assert.equal(backoffDelay(attempt, options, () => 0.999999), backoffCap(attempt, options) - 1);
    }
    const delays = Array.from({ length: 1000 }, () => backoffDelay(3, options));
    assert.ok(delays.every((d) => d >= 0 && d < 800));
    // uniform over [0, 800): every eighth of the window is used
    const buckets = new Set(delays.map((d) => Math.floor(d / 100)));
    assert.equal(buckets.size, 8, `buckets used: ${[...buckets]}`);
  });

  test('a lost server: retries wait the jittered delays they announce, within the caps, and resubscribe once it is back', async (t) => {
    const server = await startServer();
    const backoff = { initialMs: 100, maxMs: 800 };
    const clients = Array.from({ length: 10 }, () => client(server.ws, { backoff }));
    for (const c of clients) follow(c.connect(), 'p-back');
    await Promise.all(clients.map(opened));

    await server.stop('SIGKILL'); // no drain: the connections just break
    await sleep(2500);
    const restarted = await startServer({}, { port: server.port });
    t.after(restarted.stop);
    await Promise.all(clients.map(opened));

    for (const [i, c] of clients.entries()) {
      const states = c.seen.states;
      const waits = states.filter((s) => s.delayMs !== undefined);
      assert.ok(waits.length >= 3, `client ${i} retried ${waits.length} times in 2.5 s`);
      for (const [n, w] of waits.entries()) {
        const cap = backoffCap(n, backoff);
        assert.ok(w.delayMs >= 0 && w.delayMs < cap, `client ${i}: retry ${n} waited ${w.delayMs} ms, cap ${cap}`);
        // and the next attempt really came no sooner than announced
        const next = states.find((s) => s.at >= w.at && s !== w && s.delayMs === undefined);
        assert.ok(next.at - w.at >= w.delayMs - 2, `client ${i}: retry ${n} came after ${next.at - w.at} ms, announced ${w.delayMs}`);
      }
    }
    // jitter: the ten clients did not pick the same first delay
    const firsts = clients.map((c) => c.seen.states.find((s) => s.delayMs !== undefined).delayMs);
    assert.ok(new Set(firsts).size >= 6, `first delays ${firsts}`);

    // resubscribed: an update published now reaches every client
    await publish(restarted.http, { project_id: 'p-back', data: { n: 1 } });
    await Promise.all(clients.map((c) => until('the update after the restart', () => c.seen.updates.length === 1)));
    for (const c of clients) c.close();
  });

  test('a drain: each client waits a random delay within the reconnect frame\'s jitter_ms, then the balancer puts it on the other task', async (t) => {
    const env = { WS_DRAIN_SECONDS: '2' };
    const tasks = [await startServer(env), await startServer(env)];
    t.after(() => Promise.all(tasks.map((s) => s.stop())));
    const lb = await startHaproxy(tasks.map((s) => s.port));
    t.after(lb.stop);
    const clients = Array.from({ length: 20 }, () => client(lb.ws, { backoff: { initialMs: 5000, maxMs: 5000 } }));
    const hints = clients.map(() => []);
    clients.forEach((c, i) => c.on('frame', (f) => f.type === 'reconnect' && hints[i].push(f)));
    for (const c of clients) c.connect();
    await Promise.all(clients.map(opened));
    const onFirst = (await (await fetch(`${tasks[0].http}/health`)).json()).connections;
    assert.ok(onFirst > 0, 'round robin put clients on the first task');

    await tasks[0].stop('SIGTERM');
    await until('every client back on the second task', async () =>
      clients.every((c) => c.state === 'open') && (await (await fetch(`${tasks[1].http}/health`)).json()).connections === 20);
    const moved = clients.map((c, i) => ({ c, hint: hints[i][0] })).filter((m) => m.hint);
    assert.equal(moved.length, onFirst, 'every client of the drained task got the reconnect frame');
    const delays = moved.map(({ c }) => c.seen.states.find((s) => s.code === 1001).delayMs);
    for (const [k, { hint }] of moved.entries()) {
      assert.ok(hint.jitter_ms > 0, JSON.stringify(hint));
      // within the server's window, not the 5 s backoff: a drain is not the client's failure
      assert.ok(delays[k] >= 0 && delays[k] < hint.jitter_ms, `waited ${delays[k]} ms, jitter_ms ${hint.jitter_ms}`);
    }
    assert.ok(new Set(delays).size >= Math.min(moved.length, 5), `delays ${delays} are spread`);
    for (const c of clients) c.close();
  });
});
