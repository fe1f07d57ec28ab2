// ws-client: the browser and Node 20+ client of ws-server (docs/protocol.md).
export { WsClient, Subscription, ClientError } from './client.js';
export { backoffDelay, backoffCap, DEFAULT_BACKOFF } from './backoff.js';
