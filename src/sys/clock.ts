/**
 * A monotonic clock in milliseconds, for durations and deadlines.
 *
 * The same reading as performance.now() less its origin, without the global `performance`, whose first
 * use loads Node's perf_hooks modules (about 1.5 ms of a command's start).
 */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
