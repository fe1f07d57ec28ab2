// Reconnect delays: exponential backoff with full jitter (a uniformly random delay between 0
// and the exponential cap). A fixed schedule makes every client of a drained task come back in
// the same millisecond; full jitter spreads them over the whole window.

/**
 * @typedef {object} BackoffOptions
 * @property {number} [initialMs] cap of the first retry's delay (default 500)
 * @property {number} [maxMs] the cap never grows past this (default 30000)
 * @property {number} [factor] growth of the cap per failed attempt (default 2)
 */

export const DEFAULT_BACKOFF = Object.freeze({ initialMs: 500, maxMs: 30000, factor: 2 });

/**
 * The cap of the delay before retry number `attempt` (0 for the first retry).
 * @param {number} attempt
 * @param {BackoffOptions} [options]
 * @returns {number}
 */
export function backoffCap(attempt, options = {}) {
  const { initialMs, maxMs, factor } = { ...DEFAULT_BACKOFF, ...options };
  // Math.min before the power would overflow to Infinity after ~1000 attempts anyway; clamp the
  // exponent so a long outage never yields NaN.
  const exponent = Math.min(Math.max(0, attempt), 64);
  return Math.min(maxMs, initialMs * factor ** exponent);
}

/**
 * A full-jitter delay for retry number `attempt`: uniform in [0, backoffCap(attempt)).
 * @param {number} attempt
 * @param {BackoffOptions} [options]
 * @param {() => number} [random] a source of numbers in [0, 1), Math.random by default
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  return Math.floor(random() * backoffCap(attempt, options));
}
