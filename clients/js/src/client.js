// The ws-server client: one WebSocket that authenticates, keeps every subscribed project's
// position (offset and epoch) across reconnects, and reconnects with jittered backoff.
// The wire protocol it speaks is docs/protocol.md; the names of frames and codes below are
// that document's.

import { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';

/** @typedef {'idle'|'connecting'|'open'|'reconnecting'|'closed'} ConnectionState */
/** @typedef {{offset: number, epoch: string}} Position */

/** A failed request: `code` is the server's stable error code, or one of the client's own
 * (`timeout`, `disconnected`, `closed`). */
export class ClientError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {object} [reply] the server's error frame, when there is one
   */
  constructor(code, message, reply) {
    super(message);
    this.name = 'ClientError';
    this.code = code;
    this.reply = reply;
  }
}

// The close code of authentication, slowness, keepalive and rate-limit closes; its reason says which.
const POLICY_VIOLATION = 1008;
// docs/protocol.md: after a `rate limit` close, wait at least 10 s.
const MIN_RATE_LIMIT_BACKOFF_MS = 10000;
// docs/protocol.md, "Draining and reconnecting": a 1001 without a `reconnect` frame.
const DEFAULT_DRAIN_JITTER_MS = 2000;

const DEFAULTS = {
  requestTimeoutMs: 10000,
  connectTimeoutMs: 10000,
  // refresh this long before `expires_at` (or at half the token's life, if that is shorter):
  // ahead of the server's `token_expiring` warning (60 s by default), which is the fallback
  refreshLeadMs: 90000,
  // send an application ping after this long without any frame from the server; a browser
  // cannot see WebSocket pings, so this is how it notices a dead connection
  heartbeatMs: 25000,
};

let clientCount = 0;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class WsClient {
  /**
   * @param {object} options
   * @param {string} options.url the server's `/ws` URL (ws:// or wss://)
   * @param {(ctx: {reason: 'connect'|'refresh'}) => Promise<string>|string} [options.getToken]
   *   supplies a JWT; without it the client does not authenticate (servers with WS_AUTH=none)
   * @param {import('./backoff.js').BackoffOptions} [options.backoff]
   * @param {number} [options.requestTimeoutMs]
   * @param {number} [options.connectTimeoutMs]
   * @param {number} [options.refreshLeadMs]
   * @param {number} [options.heartbeatMs] 0 turns the heartbeat off
   * @param {() => number} [options.random] source of jitter, Math.random by default
   * @param {typeof WebSocket} [options.WebSocket] the WebSocket class (globalThis.WebSocket by default)
   */
  constructor(options) {
    if (!options || typeof options.url !== 'string') {
      throw new TypeError('WsClient: options.url (the server\'s ws:// or wss:// /ws URL) is required');
    }
    this.url = options.url;
    this.getToken = options.getToken;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.options = { ...DEFAULTS, ...options };
    this.random = options.random ?? Math.random;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== 'function') {
      throw new TypeError('WsClient: no WebSocket class; pass options.WebSocket (Node 20: run with --experimental-websocket, or pass the ws package\'s WebSocket)');
    }

    /** @type {ConnectionState} */
    this.state = 'idle';
    /** what the client counted, for dashboards and tests */
    this.stats = { connects: 0, reconnects: 0, replayed: 0, duplicatesDropped: 0, resets: 0, refreshes: 0 };
    /** @type {Map<string, {position: Position|null, subs: Set<Subscription>}>} */
    this.projects = new Map();
    this.listeners = new Map();
    this.prefix = `c${++clientCount}-`;
    this.nextId = 1;
    this.pending = new Map(); // request_id -> {resolve, reject, timer, frame, sent, meta}
    this.queue = []; // requests waiting for an open connection, in order
    this.gen = 0; // generation of the current socket; events of older sockets are ignored
    this.ws = null;
    this.attempt = 0;
    this.everOpen = false;
    this.authenticated = false;
    this.expiresAt = null;
    this.drainWindowMs = null;
    this.timers = { reconnect: null, connect: null, refresh: null, heartbeat: null };
  }

  // --- events ------------------------------------------------------------------------------

  /**
   * Events: `state` ({state, ...detail}), `update` (an update without a project: a broadcast
   * or a per-user update), `reset` ({projectId, reason, position}), `authenticated`
   * ({user_id, expires_at}), `refreshed`, `error` (ClientError), `frame` (every frame).
   * @returns {() => void} removes the listener
   */
  on(event, listener) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(listener);
    return () => this.listeners.get(event)?.delete(listener);
  }

  emit(event, value) {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        listener(value);
      } catch (err) {
        // a failing listener must not break the connection's bookkeeping
        queueMicrotask(() => { throw err; });
      }
    }
  }

  setState(state, detail = {}) {
    this.state = state;
    this.emit('state', { state, ...detail });
  }

  // --- life --------------------------------------------------------------------------------

  /** Starts connecting (again, after `close()` or an authentication failure). */
  connect() {
    if (this.state !== 'idle' && this.state !== 'closed') return this;
    this.stopped = false;
    this.attempt = 0;
    this.everOpen = false;
    this.open();
    return this;
  }

  /** Closes the connection and stops reconnecting; pending requests fail with `closed`. */
  close() {
    this.stopped = true;
    this.detach(1000, 'client closed');
    this.failAll(new ClientError('closed', 'the client was closed'), true);
    this.setState('closed', { reason: 'closed by the application' });
  }

  open() {
    const gen = ++this.gen;
    this.authenticated = false;
    this.drainWindowMs = null;
    this.setState(this.everOpen || this.attempt > 0 ? 'reconnecting' : 'connecting', { attempt: this.attempt });
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (err) {
      // a malformed URL will never work: say so instead of retrying forever
      this.fail(new ClientError('invalid_url', `cannot open ${this.url}: ${err.message}`));
      return;
    }
    this.ws = ws;
    this.welcome = new Promise((resolve) => {
      this.gotWelcome = resolve;
    });
    this.stats.connects++;
    this.timers.connect = setTimeout(() => {
      if (gen === this.gen) this.lost(4000, 'connect timeout');
    }, this.options.connectTimeoutMs);
    ws.onopen = () => {
      if (gen === this.gen) this.start(gen);
    };
    ws.onmessage = (event) => {
      if (gen === this.gen) this.onFrame(event.data);
    };
    ws.onclose = (event) => {
      if (gen === this.gen) this.lost(event.code, event.reason);
    };
    ws.onerror = () => {
      // browsers follow every error with a close event (which carries the code); Node 20's
      // WebSocket does not after a failed connect, so an error without a close is a loss too
      setTimeout(() => {
        if (gen === this.gen) this.lost(1006, 'connection failed');
      }, 50);
    };
  }

  /** The socket is open: wait for the welcome, authenticate, resubscribe, send what waited. */
  async start(gen) {
    this.armHeartbeat();
    try {
      const welcome = await this.welcome;
      if (gen !== this.gen) return;
      clearTimeout(this.timers.connect);
      // a token from the upgrade's header (or WS_AUTH=none) already authenticated the connection
      if (this.getToken && welcome.user_id == null) {
        const token = await this.getToken({ reason: 'connect' });
        if (gen !== this.gen) return;
        const reply = await this.send({ action: 'authenticate', token }, { direct: true });
        if (gen !== this.gen) return;
        if (reply.type === 'error' && reply.code === 'unknown_action') {
          // a server from before authentication existed: nothing to authenticate to
          this.onAuthenticated(welcome);
        } else if (reply.type === 'error') {
          // the server closes with 1008 `auth failed` next; `lost` decides on this code
          this.authError = reply;
          return;
        } else {
          this.onAuthenticated(reply);
        }
      } else {
        this.onAuthenticated(welcome);
      }
    } catch (err) {
      if (gen !== this.gen) return;
      // the token source failed or the server did not answer: try again later
      this.emit('error', err instanceof ClientError ? err : new ClientError('token_source', `getToken failed: ${err?.message ?? err}`));
      this.lost(4001, 'authentication did not complete');
      return;
    }
    this.everOpen = true;
    this.attempt = 0;
    for (const projectId of this.projects.keys()) this.sendSubscribe(projectId);
    this.setState('open', { userId: this.userId });
    const waiting = this.queue.splice(0);
    for (const entry of waiting) this.transmit(entry);
  }

  onAuthenticated(reply) {
    this.authenticated = true;
    this.expiresAt = typeof reply.expires_at === 'number' ? reply.expires_at : null;
    this.userId = reply.user_id;
    this.emit('authenticated', reply);
    this.scheduleRefresh();
  }

  authFailed(code, message, reply) {
    const err = new ClientError(code ?? 'unauthenticated', `authentication refused: ${message ?? code}`, reply);
    this.fail(err);
  }

  /** Stops for good (until `connect()`): reconnecting cannot fix this. */
  fail(err) {
    this.stopped = true;
    this.detach(1000, 'giving up');
    this.failAll(err, true);
    this.emit('error', err);
    this.setState('closed', { reason: err.message, code: err.code });
  }

  /** Forgets the current socket without waiting for its close handshake. */
  detach(code, reason) {
    this.gen++;
    for (const key of Object.keys(this.timers)) {
      clearTimeout(this.timers[key]);
      this.timers[key] = null;
    }
    const ws = this.ws;
    this.ws = null;
    this.authenticated = false;
    // subscriptions belong to a connection: the next one subscribes again
    for (const project of this.projects.values()) project.subscribedAt = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    }
  }

  /** The connection is gone (closed by the server, the network, or a timeout here). */
  lost(code, reason) {
    const authError = this.authError;
    const drainWindowMs = this.drainWindowMs;
    this.authError = null;
    this.detach(code >= 4000 ? code : 1000, 'reconnecting');
    this.failAll(new ClientError('disconnected', `connection lost (${code} ${reason || ''}) before the reply: the request may or may not have been done`), false);
    if (this.stopped) return;
    // docs/protocol.md, "Close codes": the reason's text up to the first `:` is stable
    const kind = code === POLICY_VIOLATION ? String(reason ?? '').split(':')[0] : '';
    if (authError ? authError.code !== 'token_expired' : kind === 'auth failed') {
      // this token will never work: stop instead of hammering the server with it
      this.authFailed(authError?.code ?? 'invalid_token', authError?.message ?? reason, authError);
      return;
    }
    if (code === 1002 || code === 1007 || code === 1009) {
      this.fail(new ClientError('protocol_error', `the server closed the connection (${code} ${reason}): a client bug, not retried`));
      return;
    }
    let delayMs;
    if (code === 1001) {
      // the task drains: come back soon, spread over the window of its `reconnect` frame;
      // it was not our failure, so the backoff does not grow
      delayMs = Math.floor(this.random() * (drainWindowMs ?? DEFAULT_DRAIN_JITTER_MS));
    } else {
      delayMs = backoffDelay(this.attempt, this.backoff, this.random);
      if (kind === 'rate limit') delayMs = Math.max(delayMs, MIN_RATE_LIMIT_BACKOFF_MS);
      this.attempt++;
    }
    this.stats.reconnects++;
    this.setState('reconnecting', { code, reason, delayMs, attempt: this.attempt });
    this.timers.reconnect = setTimeout(() => this.open(), delayMs);
  }

  // --- frames ------------------------------------------------------------------------------

  onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // the server only sends JSON text frames; ignore anything else
    }
    if (!frame || typeof frame !== 'object') return;
    this.armHeartbeat();
    this.emit('frame', frame);
    const entry = frame.request_id != null ? this.pending.get(String(frame.request_id)) : undefined;
    switch (frame.type) {
      case 'update':
        this.onUpdate(frame);
        break;
      case 'subscribed':
        // handled here, before any replayed update that follows it is read; without a
        // request_id it is the server saying it could not deliver some updates (reload)
        this.onSubscribed(frame, entry ? (entry.meta ?? {}) : { unsolicited: true });
        break;
      case 'welcome':
        this.gotWelcome(frame);
        break;
      case 'refreshed':
        if (entry) this.onRefreshed(frame);
        break;
      case 'token_expiring':
        this.refresh();
        break;
      case 'reconnect':
        this.onDrainHint(frame);
        break;
      case 'error':
        if (!entry) this.emit('error', new ClientError(frame.code, frame.message, frame));
        break;
      default:
        break;
    }
    if (entry) {
      this.pending.delete(String(frame.request_id));
      clearTimeout(entry.timer);
      entry.resolve(frame);
    }
  }

  onDrainHint(frame) {
    const ms = Number(frame.jitter_ms);
    if (Number.isFinite(ms) && ms >= 0) this.drainWindowMs = ms;
  }

  onSubscribed(frame, meta) {
    const project = this.projects.get(frame.project_id);
    if (!project || typeof frame.offset !== 'number') return;
    const top = { offset: frame.offset, epoch: frame.epoch };
    if ((meta.since || meta.unsolicited) && frame.recovered === false) {
      // the gap cannot be filled: the application reloads the project's state
      project.position = top;
      this.reset(frame.project_id, 'not_recovered', top);
    } else if (!meta.since && !meta.unsolicited) {
      project.position = top;
    } else {
      // recovered: the missed updates up to the top follow, each moving the position on
      project.replayUntil = top.offset;
    }
  }

  onUpdate(frame) {
    const meta = { offset: frame.offset, epoch: frame.epoch, projectId: frame.project_id };
    if (frame.project_id == null) {
      this.emit('update', { data: frame.data, ...meta, userId: frame.user_id });
      return;
    }
    const project = this.projects.get(frame.project_id);
    if (!project) return; // unsubscribed meanwhile
    if (typeof frame.offset === 'number') {
      const at = project.position;
      if (at && frame.epoch === at.epoch) {
        if (frame.offset <= at.offset) {
          this.stats.duplicatesDropped++;
          return;
        }
        if (frame.offset > at.offset + 1) this.reset(frame.project_id, 'gap', { offset: frame.offset, epoch: frame.epoch });
      } else if (at && frame.epoch !== at.epoch) {
        this.reset(frame.project_id, 'epoch_changed', { offset: frame.offset, epoch: frame.epoch });
      }
      project.position = { offset: frame.offset, epoch: frame.epoch };
      if (frame.offset <= (project.replayUntil ?? 0)) this.stats.replayed++;
    }
    for (const sub of [...project.subs]) sub.deliver(frame.data, meta);
  }

  reset(projectId, reason, position) {
    this.stats.resets++;
    const project = this.projects.get(projectId);
    const info = { projectId, reason, position };
    for (const sub of [...(project?.subs ?? [])]) sub.onReset?.(projectId, info);
    this.emit('reset', info);
  }

  // --- requests ----------------------------------------------------------------------------

  /**
   * Sends a request and resolves with the server's reply frame (errors included). Requests made
   * while not connected wait for the connection; `timeoutMs` covers the wait.
   * @param {object} frame
   * @param {{timeoutMs?: number, direct?: boolean, meta?: object}} [options] `timeoutMs` 0: none;
   *   `direct` sends on the current socket even before authentication (the handshake's own
   *   requests)
   * @returns {Promise<object>}
   */
  send(frame, { timeoutMs = this.options.requestTimeoutMs, direct = false, meta } = {}) {
    return new Promise((resolve, reject) => {
      if (this.stopped && this.state === 'closed') {
        reject(new ClientError('closed', 'the client is closed; call connect() first'));
        return;
      }
      const id = this.prefix + this.nextId++;
      const entry = { id, frame: { ...frame, request_id: id }, resolve, reject, meta, sent: false };
      if (timeoutMs > 0) {
        entry.timer = setTimeout(() => {
          this.pending.delete(id);
          const at = this.queue.indexOf(entry);
          if (at >= 0) this.queue.splice(at, 1);
          reject(new ClientError('timeout', `no reply to ${frame.action} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      if (direct || this.isOpen()) this.transmit(entry);
      else this.queue.push(entry);
    });
  }

  isOpen() {
    return this.ws && this.state === 'open';
  }

  transmit(entry) {
    this.pending.set(entry.id, entry);
    entry.sent = true;
    try {
      this.ws.send(JSON.stringify(entry.frame));
    } catch {
      // the socket is closing: its close event fails the entry
    }
  }

  /** Fails requests sent on the lost connection; queued ones keep waiting unless `all`. */
  failAll(err, all) {
    for (const [id, entry] of this.pending) {
      this.pending.delete(id);
      clearTimeout(entry.timer);
      entry.reject(err);
    }
    if (all) {
      for (const entry of this.queue.splice(0)) {
        clearTimeout(entry.timer);
        entry.reject(err);
      }
    }
  }

  /**
   * A request that resolves with its reply and rejects with a ClientError when the server
   * answers `type: "error"`.
   */
  async request(frame, options) {
    const reply = await this.send(frame, options);
    if (reply.type === 'error') throw new ClientError(reply.code, reply.message, reply);
    return reply;
  }

  /**
   * Forwards `data` to an agent queue; resolves with `{type:"forwarded", queue, message_id}`.
   * @param {'pm'|'dev'|'qa'|'ops'} type
   * @param {object} data
   * @param {{projectId?: string, timeoutMs?: number}} [options]
   */
  forward(type, data, { projectId, timeoutMs } = {}) {
    const frame = { action: 'forward', type, data };
    if (projectId != null) frame.project_id = projectId;
    return this.request(frame, { timeoutMs });
  }

  // --- subscriptions -----------------------------------------------------------------------

  /**
   * Follows a project. `onUpdate(data, {offset, epoch, projectId})` sees every update once, in
   * order, across reconnects; `onReset(projectId, {reason, position})` is called when updates
   * were lost (the server could not replay them): reload the project's state then.
   * @param {string} projectId
   * @param {{onUpdate?: Function, onReset?: Function, since?: Position}} [handlers]
   * @returns {Subscription}
   */
  subscribe(projectId, handlers = {}) {
    let project = this.projects.get(projectId);
    const fresh = !project;
    if (fresh) {
      project = { position: handlers.since ?? null, subs: new Set(), waiters: [], subscribedAt: null };
      this.projects.set(projectId, project);
    }
    const sub = new Subscription(this, projectId, handlers);
    project.subs.add(sub);
    if (fresh && this.isOpen()) this.sendSubscribe(projectId);
    // resolves at the first `subscribed` (a connection lost before it just delays it)
    sub.ready = this.whenSubscribed(projectId);
    sub.ready.catch(() => {}); // the caller may not await it
    return sub;
  }

  sendSubscribe(projectId, { reset = false } = {}) {
    const project = this.projects.get(projectId);
    const since = project.position ?? undefined;
    const frame = { action: 'subscribe', project_id: projectId };
    if (since) frame.since = { offset: since.offset, epoch: since.epoch };
    // no timeout: while the broker is down the server answers when it is back (a lost
    // connection still fails it, and the next connection subscribes again)
    const done = this.send(frame, { meta: { since }, timeoutMs: 0 }).then((reply) => {
      if (this.projects.get(projectId) !== project) return reply; // unsubscribed meanwhile
      if (reply.type === 'error' && reply.code === 'invalid_since' && since) {
        // a stored position the server cannot read: start over from the top, and say so
        project.position = null;
        return this.sendSubscribe(projectId, { reset: true });
      }
      if (reply.type === 'error' && reply.code === 'rate_limited') {
        const gen = this.gen;
        return sleep(1000 + Math.floor(this.random() * 1000)).then(() =>
          gen === this.gen && this.projects.get(projectId) === project ? this.sendSubscribe(projectId) : reply);
      }
      if (reply.type === 'error') {
        const err = new ClientError(reply.code, reply.message, reply);
        // a refused subscription stays refused on every reconnect: stop following it
        this.projects.delete(projectId);
        for (const sub of project.subs) sub.onError?.(err);
        for (const waiter of project.waiters.splice(0)) waiter.reject(err);
        this.emit('error', err);
        throw err;
      }
      project.subscribedAt = reply;
      if (reset) this.reset(projectId, 'not_recovered', { offset: reply.offset, epoch: reply.epoch });
      for (const waiter of project.waiters.splice(0)) waiter.resolve(reply);
      return reply;
    });
    done.catch(() => {});
    return done;
  }

  whenSubscribed(projectId) {
    const project = this.projects.get(projectId);
    if (project.subscribedAt && this.state === 'open') return Promise.resolve(project.subscribedAt);
    return new Promise((resolve, reject) => project.waiters.push({ resolve, reject }));
  }

  /** The last position seen for a project (what the next resubscribe sends as `since`). */
  position(projectId) {
    const at = this.projects.get(projectId)?.position;
    return at ? { ...at } : null;
  }

  unsubscribeOne(sub) {
    const project = this.projects.get(sub.projectId);
    if (!project) return;
    project.subs.delete(sub);
    if (project.subs.size === 0) {
      this.projects.delete(sub.projectId);
      if (this.isOpen()) {
        this.send({ action: 'unsubscribe', project_id: sub.projectId }).catch(() => {});
      }
    }
  }

  // --- token refresh -----------------------------------------------------------------------

  scheduleRefresh() {
    clearTimeout(this.timers.refresh);
    if (this.expiresAt == null || !this.getToken) return;
    const left = this.expiresAt * 1000 - Date.now();
    const lead = Math.min(this.options.refreshLeadMs, left / 2);
    this.timers.refresh = setTimeout(() => this.refresh(), Math.max(0, left - lead));
  }

  /** A refresh was accepted: new expiry, and the new grants may have ended subscriptions. */
  onRefreshed(reply) {
    if (typeof reply.expires_at === 'number') this.expiresAt = reply.expires_at;
    if (!Array.isArray(reply.subscriptions)) return;
    const kept = new Set(reply.subscriptions);
    for (const [projectId, project] of this.projects) {
      if (kept.has(projectId) || !project.subscribedAt) continue;
      this.projects.delete(projectId);
      const err = new ClientError('forbidden', `the refreshed token does not grant project ${projectId}: its subscription ended`);
      for (const sub of project.subs) sub.onError?.(err);
      this.emit('error', err);
    }
  }

  /** Fetches a new token and sends it before the current one expires. */
  async refresh() {
    if (this.refreshing || !this.getToken || !this.authenticated) return;
    this.refreshing = true;
    const gen = this.gen;
    const before = this.expiresAt;
    try {
      const token = await this.getToken({ reason: 'refresh' });
      if (gen !== this.gen) return;
      const reply = await this.send({ action: 'refresh', token }, { direct: true });
      if (reply.type === 'error') throw new ClientError(reply.code, `refresh refused: ${reply.message}`, reply);
      this.stats.refreshes++;
      this.emit('refreshed', reply);
      if (typeof reply.expires_at === 'number' && reply.expires_at <= before) {
        // getToken handed back a token that expires no later: refreshing again cannot help
        this.emit('error', new ClientError('token_not_renewed', 'getToken returned a token that does not expire later; the connection closes at expires_at and reconnects with a new token'));
        return;
      }
      this.scheduleRefresh();
    } catch (err) {
      if (gen !== this.gen) return;
      this.emit('error', err instanceof ClientError ? err : new ClientError('token_source', `getToken failed: ${err?.message ?? err}`));
      // try again soon; if the token runs out first, the server closes and we reconnect with a
      // fresh token
      clearTimeout(this.timers.refresh);
      this.timers.refresh = setTimeout(() => this.refresh(), 1000 + Math.floor(this.random() * 4000));
    } finally {
      this.refreshing = false;
    }
  }

  // --- heartbeat ---------------------------------------------------------------------------

  armHeartbeat() {
    clearTimeout(this.timers.heartbeat);
    if (!this.options.heartbeatMs) return;
    const gen = this.gen;
    this.timers.heartbeat = setTimeout(() => {
      if (gen !== this.gen) return;
      this.send({ action: 'ping' }, { direct: true }).catch((err) => {
        if (gen === this.gen && err.code === 'timeout') this.lost(4002, 'no answer to ping');
      });
    }, this.options.heartbeatMs);
  }
}

/** One caller's interest in a project (several may share the server subscription). */
export class Subscription {
  constructor(client, projectId, { onUpdate, onReset, onError }) {
    this.client = client;
    this.projectId = projectId;
    this.onUpdate = onUpdate;
    this.onReset = onReset;
    this.onError = onError;
    /** resolves with the `subscribed` reply of the current connection */
    this.ready = null;
  }

  deliver(data, meta) {
    this.onUpdate?.(data, meta);
  }

  /** The last position delivered for this project. */
  get position() {
    return this.client.position(this.projectId);
  }

  unsubscribe() {
    this.client.unsubscribeOne(this);
  }
}
