/**
 * The dump's fast path (main.ts FAST): its options read by fastDump, and the dump run as commander would
 * run it (action: one line and the exit code for an error), without loading commander.
 */
import { action } from './common.js';
import { fastDump, runDump } from './dump-run.js';

export function fast(args: readonly string[]): (() => Promise<void>) | undefined {
  const opts = fastDump(args);
  return opts ? () => action(runDump)(opts) : undefined;
}
