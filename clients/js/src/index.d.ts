// Types of @agenticai/ws-client (the code is plain ES modules in this directory).

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A project's position in its update stream (docs/protocol.md, positions and recovery). */
export interface Position {
  offset: number;
  epoch: string;
}

export interface BackoffOptions {
  /** cap of the first retry's delay, ms (default 500) */
  initialMs?: number;
  /** largest cap, ms (default 30000) */
  maxMs?: number;
  /** growth of the cap per failed attempt (default 2) */
  factor?: number;
}

export const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>>;
/** The cap of the delay before retry number `attempt` (0-based). */
export function backoffCap(attempt: number, options?: BackoffOptions): number;
/** Full jitter: uniform in [0, backoffCap(attempt)). */
export function backoffDelay(attempt: number, options?: BackoffOptions, random?: () => number): number;

export interface ClientOptions {
  /** the server's /ws URL, ws:// or wss:// */
  url: string;
  /** supplies a JWT on every connect and before expiry; omit for servers with WS_AUTH=none */
  getToken?: (ctx: { reason: 'connect' | 'refresh' }) => string | Promise<string>;
  backoff?: BackoffOptions;
  /** default timeout of a request (forward, subscribe...), ms; default 10000 */
  requestTimeoutMs?: number;
  /** time to get the welcome frame after connecting, ms; default 10000 */
  connectTimeoutMs?: number;
  /** refresh this long before expires_at (at most half the token's life), ms; default 90000 */
  refreshLeadMs?: number;
  /** ping after this long without a frame from the server, ms; 0 = off; default 25000 */
  heartbeatMs?: number;
  /** jitter source in [0, 1); default Math.random */
  random?: () => number;
  /** WebSocket class; default globalThis.WebSocket */
  WebSocket?: unknown;
}

export interface UpdateMeta {
  offset?: number;
  epoch?: string;
  projectId?: string;
}

export interface ResetInfo {
  projectId: string;
  /** not_recovered: the server could not replay the gap; epoch_changed / gap: seen in the stream */
  reason: 'not_recovered' | 'epoch_changed' | 'gap';
  /** the position the stream continues from */
  position: Position;
}

export interface SubscribeHandlers {
  onUpdate?: (data: any, meta: UpdateMeta) => void;
  /** updates were lost: reload the project's state from the backend */
  onReset?: (projectId: string, info: ResetInfo) => void;
  /** the subscription was refused or ended (e.g. `forbidden`) */
  onError?: (error: ClientError) => void;
  /** resume from a position kept elsewhere (e.g. sessionStorage) */
  since?: Position;
}

export class ClientError extends Error {
  /** the server's error code (invalid_token, forbidden, queue_error...) or timeout, disconnected, closed */
  code: string;
  reply?: any;
}

export class Subscription {
  readonly projectId: string;
  /** resolves with the `subscribed` reply */
  ready: Promise<any>;
  readonly position: Position | null;
  unsubscribe(): void;
}

export interface StateEvent {
  state: ConnectionState;
  attempt?: number;
  delayMs?: number;
  code?: number;
  reason?: string;
  userId?: string;
}

export interface ClientEvents {
  state: StateEvent;
  /** updates without a project: broadcasts and per-user updates */
  update: { data: any; userId?: string; offset?: number; epoch?: string };
  reset: ResetInfo;
  authenticated: any;
  refreshed: any;
  error: ClientError;
  frame: any;
}

export class WsClient {
  constructor(options: ClientOptions);
  readonly state: ConnectionState;
  /** replayed: updates delivered from history after a resubscribe with `since` */
  readonly stats: { connects: number; reconnects: number; replayed: number; duplicatesDropped: number; resets: number; refreshes: number };
  on<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): () => void;
  connect(): this;
  close(): void;
  subscribe(projectId: string, handlers?: SubscribeHandlers): Subscription;
  position(projectId: string): Position | null;
  /** resolves with {type:"forwarded", queue, message_id}; rejects with a ClientError */
  forward(
    type: 'pm' | 'dev' | 'qa' | 'ops',
    data: object,
    options?: { projectId?: string; timeoutMs?: number },
  ): Promise<{ type: 'forwarded'; queue: string; message_id: string; request_id: string }>;
  /** any request; rejects with a ClientError on an error reply */
  request(frame: object, options?: { timeoutMs?: number }): Promise<any>;
  /** refreshes the token now (normally automatic) */
  refresh(): Promise<void>;
}
